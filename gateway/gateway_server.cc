#include "gateway/gateway_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include "cache/rule_files.h"
#include "gateway/ledger_archive.h"
#include "engine/status.h"
#include "engine/text.h"
#include "medsettle/v1/service.pb.h"

// service.proto defines no message, so nothing references its generated
// descriptor and the linker would drop it from the static library; server
// reflection could then list the service but not describe it. This anchor
// keeps it linked.
extern const void* const kServiceDescriptorAnchor;
const void* const kServiceDescriptorAnchor = &::descriptor_table_medsettle_2fv1_2fservice_2eproto;

namespace medsettle::gateway {

using engine::Cat;
namespace {

absl::StatusOr<cache::PersonKeyer> ReadKeyer(const std::string& key_file) {
  std::ifstream in(key_file, std::ios::binary);
  if (!in) {
    return engine::Refusal(absl::StatusCode::kNotFound, reason::kKeyFileUnreadable, "key_file",
                           Cat("cannot read the key file ", key_file));
  }
  std::stringstream secret;
  secret << in.rdbuf();
  return cache::PersonKeyer::Create(secret.str());
}

// How long a connection lives before the gateway closes it (then the
// client reconnects and is checked again), and the grace for its calls.
constexpr int kMaxConnectionAgeMs = 30 * 60 * 1000;
constexpr int kConnectionGraceMs = 5 * 60 * 1000;

logging::LogOptions LogOptionsOf(const GatewayConfig& c, StartOptions& start) {
  logging::LogOptions options;
  (void)logging::ParseLevel(c.log_level, &options.min_level);  // ValidateConfig checked it
  options.lines_per_second = c.log_lines_per_second;
  options.burst = c.log_burst;
  options.utc_offset_minutes = c.utc_offset_minutes;
  options.sink = std::move(start.log_sink);
  return options;
}

// Observes `micros` in the histogram `*slot` once it is set.
void ObserveMicros(const std::atomic<metrics::Histogram*>& slot, int64_t micros) {
  if (metrics::Histogram* h = slot.load(std::memory_order_acquire)) {
    h->Observe(static_cast<double>(micros) / 1e6);
  }
}

int64_t NowUnixSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

absl::StatusOr<cache::RedisTarget> TargetOf(const GatewayConfig& c) {
  cache::RedisTarget target;
  target.cluster = c.redis_mode == "cluster";
  absl::StatusOr<std::vector<cache::NodeAddress>> nodes = cache::ParseNodeList(c.redis_address);
  if (!nodes.ok()) return nodes.status();
  target.nodes = *std::move(nodes);
  target.connect_timeout_ms = c.redis_connect_timeout_ms;
  target.command_timeout_ms = c.redis_command_timeout_ms;
  target.acquire_timeout_ms = c.redis_acquire_timeout_ms;
  target.pool_size = c.redis_pool_size;
  target.io_threads = c.redis_io_threads;
  target.max_pending_per_loop = static_cast<size_t>(c.max_in_flight) * 2;
  return target;
}

}  // namespace

GatewayServer::GatewayServer(const GatewayConfig& config, cache::PersonKeyer keyer,
                             StartOptions options)
    : config_(config),
      log_(LogOptionsOf(config, options)),
      keyer_(std::move(keyer)),
      engines_(config.policy_dir, config.catalog_file),
      workers_(config.worker_threads, static_cast<size_t>(config.queue_limit)),
      rate_limiter_(config.rate_limit, config.rate_limit_overrides) {}

// The voucher platform's public keys, or null when none are configured
// (e-insurance codes are then refused EC_TOKEN_NOT_CONFIGURED).
absl::StatusOr<std::shared_ptr<const credentials::IssuerKeyring>> LoadIssuerKeys(
    const GatewayConfig& config) {
  if (config.ec_token_issuer_keys_dir.empty()) return nullptr;
  absl::StatusOr<credentials::IssuerKeyring> keys =
      credentials::IssuerKeyring::LoadDirectory(config.ec_token_issuer_keys_dir);
  if (!keys.ok()) return keys.status();
  return std::make_shared<const credentials::IssuerKeyring>(*std::move(keys));
}

absl::StatusOr<std::unique_ptr<GatewayServer>> GatewayServer::Start(const GatewayConfig& config,
                                                                    StartOptions start) {
  absl::StatusOr<cache::PersonKeyer> keyer = ReadKeyer(config.key_file);
  if (!keyer.ok()) return keyer.status();
  absl::StatusOr<std::shared_ptr<const credentials::IssuerKeyring>> issuer_keys =
      LoadIssuerKeys(config);
  if (!issuer_keys.ok()) return issuer_keys.status();
  // The transport: mutual TLS, or the loopback development mode.
  std::shared_ptr<grpc::ServerCredentials> credentials;
  std::unique_ptr<Authenticator> authenticator;
  std::string transport;
  if (config.insecure_dev) {
    credentials = grpc::InsecureServerCredentials();
    authenticator = std::make_unique<DevHeaderAuthenticator>();
    transport = "insecure-dev: plaintext, institution from the x-medsettle-institution header";
  } else {
    absl::StatusOr<std::string> tls = CheckTlsFiles(config);
    if (!tls.ok()) return tls.status();
    // gRPC re-reads the three files every interval; new connections use
    // what it read last (a failed read keeps the previous credentials).
    auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
        config.tls_key_file, config.tls_cert_file, config.tls_client_ca_file,
        static_cast<unsigned int>(config.tls_reload_interval_s));
    grpc::experimental::TlsServerCredentialsOptions options(provider);
    options.watch_root_certs();
    options.watch_identity_key_cert_pairs();
    // No certificate, or one that does not chain to the client CA: no
    // connection. (gRPC's TLS accepts TLS 1.2 and 1.3 only.)
    options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    // A revoked one neither. gRPC reads the folder itself, at every
    // handshake (what it does: the CRL section above).
    if (!config.tls_crl_dir.empty()) options.set_crl_directory(config.tls_crl_dir);
    credentials = grpc::experimental::TlsServerCredentials(options);
    authenticator = std::make_unique<MtlsAuthenticator>();
    transport = Cat("mutual TLS: ", *tls);
  }
  std::unique_ptr<GatewayServer> g(new GatewayServer(config, *std::move(keyer), std::move(start)));
  if (absl::Status s = g->RegisterMetrics(); !s.ok()) return s;
  absl::StatusOr<cache::RedisTarget> target = TargetOf(config);
  if (!target.ok()) return target.status();
  GatewayServer* observed = g.get();
  target->on_round_trip = [observed](int64_t us) {
    ObserveMicros(observed->redis_round_trip_, us);
  };
  target->on_acquire = [observed](int64_t us) { ObserveMicros(observed->redis_pool_wait_, us); };
  absl::StatusOr<std::unique_ptr<cache::RedisClients>> redis =
      cache::RedisClients::Open(*std::move(target));
  if (!redis.ok()) return redis.status();
  g->redis_ = *std::move(redis);
  g->snapshot_store_ = std::make_unique<cache::SnapshotStore>(g->redis_->blocking());
  g->settlement_store_ = std::make_unique<cache::RedisSettlementStore>(
      g->redis_->pipelined(),
      cache::SettlementStoreOptions{
          .idempotency_ttl_seconds = int64_t{config.idempotency_ttl_days} * 86400,
          .replica_acks = config.redis_replica_acks,
          .replica_ack_timeout_ms = config.redis_replica_ack_timeout_ms});
  g->authenticator_ = std::move(authenticator);
  g->transport_description_ = std::move(transport);
  if (absl::Status s = g->engines_.Reload(); !s.ok()) return s;

  GatewayServer* self = g.get();
  g->watcher_ = std::make_unique<SnapshotWatcher>(
      *g->snapshot_store_, config.snapshot_refresh_ms,
      [self](bool serving) { self->SetSnapshotServing(serving); });
  g->watcher_->set_on_flip([self](const std::string& from, const std::string& to) {
    self->log_.Write(logging::Level::kInfo, "snapshot_current",
                     {{"from", from}, {"to", to}});
  });
  // Redis down or no snapshot yet is not fatal: the watcher keeps polling.
  (void)g->watcher_->RefreshNow();
  g->node_monitor_ = std::make_unique<RedisNodeMonitor>(
      g->redis_->blocking(),
      g->redis_->is_cluster() ? RedisNodeMonitor::Probe::kClusterState
                              : RedisNodeMonitor::Probe::kPing,
      config.redis_node_probe_ms,
      RedisNodeMonitor::Callbacks{
          .on_quorum = [self](bool quorum) { self->SetRedisQuorum(quorum); },
          .on_node_change =
              [self](const RedisNodeHealth& n) {
                self->log_.Write(n.up ? logging::Level::kInfo : logging::Level::kError,
                                 n.up ? "redis_node_up" : "redis_node_down",
                                 {{"node", n.node}});
              }});
  (void)g->node_monitor_->ProbeNow();
  // The settle path's connections open in the background; give them the
  // connect timeout to be up before the first call (a Redis that is down
  // is not fatal either: they keep reconnecting).
  (void)g->redis_->WaitConnected(std::chrono::milliseconds(config.redis_connect_timeout_ms));
  g->shipping_monitor_ = std::make_unique<ShippingMonitor>(
      *g->settlement_store_,
      ShippingMonitor::Options{.poll_ms = config.ledger_backlog_poll_ms,
                               .max_lag_seconds = config.ledger_max_shipping_lag_seconds},
      [self](bool serving) { self->SetShippingServing(serving); });
  (void)g->shipping_monitor_->PollNow();

  if (!config.ledger_conninfo.empty()) {
    g->archive_ = std::make_unique<LedgerArchive>(ledger::LedgerOptions{
        .conninfo = config.ledger_conninfo,
        .connect_timeout_s = std::max(1, config.redis_connect_timeout_ms / 1000),
        .statement_timeout_ms = config.request_timeout_ms,
        .application_name = "medsettle-gateway"});
  }
  HandlerOptions handler_options;
  handler_options.archive = g->archive_.get();
  handler_options.commit_retries = config.commit_retries;
  handler_options.utc_offset_minutes = config.utc_offset_minutes;
  handler_options.issuer_keys = *std::move(issuer_keys);
  handler_options.token_clock_skew_seconds = config.ec_token_clock_skew_seconds;
  handler_options.token_max_lifetime_minutes = config.ec_token_max_lifetime_minutes;
  handler_options.hot_window_ms = int64_t{config.ledger_hot_window_hours} * 3600 * 1000;
  handler_options.offload = [self](std::function<void()> task) {
    return self->workers_.TrySubmit(std::move(task));
  };
  handler_options.ensure_rules_published =
      [self](const std::shared_ptr<const engine_files::LoadedEngine>& loaded) {
        return self->EnsureRulesPublished(loaded);
      };
  g->handler_ = std::make_unique<SettlementHandler>(g->engines_, *g->watcher_,
                                                    *g->settlement_store_, g->keyer_,
                                                    g->counters_, handler_options);
  g->gate_ = std::make_unique<CallGate>(*g->authenticator_, g->rate_limiter_, g->workers_,
                                         g->counters_, *g->observer_, config.request_timeout_ms,
                                         static_cast<size_t>(config.max_in_flight));
  g->service_ = std::make_unique<SettlementGrpcService>(*g->gate_, *g->handler_);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(config.listen, credentials, &g->port_);
  builder.RegisterService(g->service_.get());
  // No SO_REUSEPORT: a second gateway on a port already served must fail
  // to start, not silently share the port.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(config.max_message_bytes);
  builder.SetMaxSendMessageSize(config.max_message_bytes);
  // Certificates are checked at the handshake only: every connection is
  // closed (gracefully, calls in flight get kConnectionGraceMs) after
  // kMaxConnectionAgeMs, so a rotated CA bundle or an expired client
  // certificate reaches long-lived HIS connections too. Clients reconnect
  // by themselves.
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS, kMaxConnectionAgeMs);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS, kConnectionGraceMs);
  g->server_ = builder.BuildAndStart();
  if (g->server_ == nullptr || g->port_ == 0) {
    g->workers_.Stop();
    return engine::Refusal(absl::StatusCode::kUnavailable, reason::kListenFailed, "listen",
                           Cat("cannot listen on ", config.listen));
  }
  {
    std::lock_guard<std::mutex> lock(g->health_mutex_);
    const bool serving = g->serving_;
    g->server_->GetHealthCheckService()->SetServingStatus("", serving);
    g->server_->GetHealthCheckService()->SetServingStatus(std::string(kServiceName), serving);
    g->server_->GetHealthCheckService()->SetServingStatus(std::string(kShippingHealthService),
                                                          g->shipping_serving_);
  }
  g->watcher_->Start();
  g->node_monitor_->Start();
  g->shipping_monitor_->Start();
  std::string metrics_host;
  int metrics_port = 0;
  // ValidateConfig checked the address.
  if (metrics::ParseListenAddress(config.metrics_listen, &metrics_host, &metrics_port)) {
    auto endpoint = std::make_unique<metrics::MetricsEndpoint>(
        g->registry_,
        metrics::EndpointOptions{
            .host = metrics_host,
            .port = metrics_port,
            .health = [self]() -> absl::Status {
              std::lock_guard<std::mutex> lock(self->health_mutex_);
              if (self->serving_ && !self->stopped_) return absl::OkStatus();
              return absl::UnavailableError(
                  "NOT_SERVING (no snapshot current, or no quorum of Redis nodes answers)");
            },
            // Bounds how long Shutdown waits for an idle scraper's connection.
            .keep_alive_timeout_s = 2});
    if (absl::Status s = endpoint->Start(); s.ok()) {
      g->metrics_endpoint_ = std::move(endpoint);
    } else {
      // Settlements matter more than metrics: serve on, say so loudly.
      g->log_.Write(logging::Level::kError, "metrics_listen_failed",
                    {{"listen", config.metrics_listen}, {"message", std::string(s.message())}});
    }
  }
  g->log_.Write(logging::Level::kInfo, "gateway_started",
                {{"port", g->port_},
                 {"metrics_port", g->metrics_port()},
                 {"transport", config.insecure_dev ? "insecure-dev" : "mutual TLS"},
                 {"snapshot", g->snapshot_version().value_or("")}});
  return g;
}

GatewayServer::~GatewayServer() { Shutdown(); }

std::optional<std::string> GatewayServer::snapshot_version() const {
  absl::StatusOr<std::shared_ptr<SnapshotView>> view = watcher_->Current();
  if (!view.ok()) return std::nullopt;
  return (*view)->version();
}

absl::Status GatewayServer::ReloadEngine() {
  // Both or neither: a bad key folder keeps the old engine and keys too.
  absl::StatusOr<std::shared_ptr<const credentials::IssuerKeyring>> keys =
      LoadIssuerKeys(config_);
  if (!keys.ok()) return keys.status();
  if (absl::Status s = engines_.Reload(); !s.ok()) return s;
  handler_->SetIssuerKeys(*std::move(keys));
  return absl::OkStatus();
}

absl::Status GatewayServer::EnsureRulesPublished(
    const std::shared_ptr<const engine_files::LoadedEngine>& loaded) {
  if (rules_published_raw_.load(std::memory_order_acquire) == loaded.get()) {
    return absl::OkStatus();
  }
  std::lock_guard<std::mutex> lock(rules_mutex_);
  if (rules_published_.get() == loaded.get()) return absl::OkStatus();
  std::vector<cache::RuleFile> files;
  for (const auto& [policy_id, file] : loaded->policies) {
    (void)policy_id;
    files.push_back({.sha256 = file.sha256_hex, .kind = "policy", .name = file.file_name,
                     .content = file.bytes});
  }
  files.push_back({.sha256 = loaded->catalog.sha256_hex, .kind = "catalog",
                   .name = loaded->catalog.file_name, .content = loaded->catalog.bytes});
  if (absl::Status s = cache::PublishRuleFiles(redis_->blocking(), files); !s.ok()) return s;
  rules_published_ = loaded;
  rules_published_raw_.store(loaded.get(), std::memory_order_release);
  return absl::OkStatus();
}

int GatewayServer::metrics_port() const {
  return metrics_endpoint_ != nullptr ? metrics_endpoint_->port() : 0;
}

absl::Status GatewayServer::RegisterMetrics() {
  const std::vector<double> latency(metrics::kGrpcLatencyBucketsSeconds.begin(),
                                    metrics::kGrpcLatencyBucketsSeconds.end());
  absl::StatusOr<metrics::HistogramFamily*> round_trip = registry_.AddHistogram(
      "medsettle_redis_roundtrip_seconds",
      "Time from sending a Redis command (or pipeline) to its last reply.", {}, latency);
  if (!round_trip.ok()) return round_trip.status();
  redis_round_trip_.store(&(*round_trip)->WithLabels({}), std::memory_order_release);
  absl::StatusOr<metrics::HistogramFamily*> pool_wait = registry_.AddHistogram(
      "medsettle_redis_pool_wait_seconds",
      "Time a request waited for a free Redis connection of the pool.", {}, latency);
  if (!pool_wait.ok()) return pool_wait.status();
  redis_pool_wait_.store(&(*pool_wait)->WithLabels({}), std::memory_order_release);

  absl::StatusOr<std::unique_ptr<CallObserver>> observer =
      CallObserver::Create(counters_, log_, &registry_);
  if (!observer.ok()) return observer.status();
  observer_ = *std::move(observer);

  using metrics::CallbackSample;
  using metrics::MetricType;
  struct Gauge {
    std::string_view name, help;
    std::function<double()> value;
  };
  const Gauge gauges[] = {
      {"medsettle_redis_up", "1 when Redis answered the gateway's last snapshot poll, else 0.",
       [this] { return watcher_ != nullptr && watcher_->redis_answering() ? 1.0 : 0.0; }},
      {"medsettle_snapshot_age_seconds",
       "Seconds since the current enrollment snapshot was committed (0: none or unknown).",
       [this]() -> double {
         const int64_t at = watcher_ != nullptr ? watcher_->current_committed_at_unix() : 0;
         return at > 0 ? static_cast<double>(NowUnixSeconds() - at) : 0.0;
       }},
      {"medsettle_ledger_shipping_backlog_entries",
       "Journal entries in Redis not yet shipped to the ledger (PostgreSQL); -1 when the "
       "journal could not be read.",
       [this] {
         if (shipping_monitor_ == nullptr) return -1.0;
         const ShippingBacklog b = shipping_monitor_->Current();
         return b.known ? static_cast<double>(b.entries) : -1.0;
       }},
      {"medsettle_ledger_shipping_lag_seconds",
       "Age of the oldest journal entry not yet shipped to the ledger; -1 when the journal "
       "could not be read.",
       [this] {
         if (shipping_monitor_ == nullptr) return -1.0;
         const ShippingBacklog b = shipping_monitor_->Current();
         return b.known ? static_cast<double>(b.lag_ms) / 1000.0 : -1.0;
       }},
      {"medsettle_redis_quorum",
       "1 while more than half of the Redis nodes (a cluster: its primaries) answer their probe; "
       "0 makes the gateway NOT_SERVING.",
       [this] { return node_monitor_ != nullptr && node_monitor_->quorum() ? 1.0 : 0.0; }},
      {"medsettle_redis_replica_acks_required",
       "redis.replica_acks: replicas that must confirm each commit (a primary with fewer "
       "connected cannot settle).",
       [this] { return static_cast<double>(config_.redis_replica_acks); }},
      {"medsettle_worker_queue_depth", "Calls admitted and waiting for a worker thread.",
       [this] { return static_cast<double>(workers_.queued()); }},
  };
  for (const Gauge& g : gauges) {
    if (absl::Status s = registry_.AddCallbackGauge(g.name, g.help, g.value); !s.ok()) return s;
  }
  struct Count {
    std::string_view name, help;
    const std::atomic<uint64_t>* value;
  };
  const Count counts[] = {
      {"medsettle_commit_retries_total",
       "Settlements computed again because the person's accumulators moved before the commit.",
       &counters_.commit_retries},
      {"medsettle_rate_limited_total", "Calls refused RATE_LIMITED (an institution over its limit).",
       &counters_.rate_limited_refusals},
      {"medsettle_overload_refusals_total",
       "Calls refused GATEWAY_OVERLOADED (the worker queue was full).",
       &counters_.overload_refusals},
  };
  for (const Count& c : counts) {
    if (absl::Status s = registry_.AddCallbackFamily(
            c.name, c.help, MetricType::kCounter, {},
            [value = c.value] {
              return std::vector<CallbackSample>{
                  {{}, static_cast<double>(value->load(std::memory_order_relaxed))}};
            });
        !s.ok()) {
      return s;
    }
  }
  if (absl::Status s = registry_.AddCallbackFamily(
          "medsettle_log_lines_suppressed_total",
          "Log lines not written because their event was over its rate limit.",
          MetricType::kCounter, {},
          [this] {
            return std::vector<CallbackSample>{
                {{}, static_cast<double>(log_.suppressed_total())}};
          });
      !s.ok()) {
    return s;
  }
  if (absl::Status s = registry_.AddCallbackFamily(
          "medsettle_snapshot_version", "The enrollment snapshot version in use (value 1).",
          MetricType::kGauge, {"version"},
          [this] {
            std::vector<CallbackSample> out;
            if (std::optional<std::string> v = snapshot_version()) out.push_back({{*v}, 1});
            return out;
          });
      !s.ok()) {
    return s;
  }
  if (absl::Status s = registry_.AddCallbackFamily(
          "medsettle_tls_certificate_expiry_timestamp_seconds",
          "When the gateway's server certificate expires (Unix seconds).", MetricType::kGauge,
          {"certificate"},
          [this] {
            std::vector<CallbackSample> out;
            const TlsExpiry e = ReadTlsExpiry(config_);
            if (e.server_not_after_unix > 0) {
              out.push_back({{"server"}, static_cast<double>(e.server_not_after_unix)});
            }
            return out;
          });
      !s.ok()) {
    return s;
  }
  if (absl::Status s = registry_.AddCallbackFamily(
          "medsettle_tls_crl_next_update_timestamp_seconds",
          "Per CRL issuer in tls.crl_dir: the latest nextUpdate (Unix seconds); a client CA "
          "whose CRL passed it refuses every connection.",
          MetricType::kGauge, {"issuer"},
          [this] {
            std::vector<CallbackSample> out;
            for (const auto& [issuer, next] : ReadTlsExpiry(config_).crl_next_update_unix) {
              out.push_back({{issuer}, static_cast<double>(next)});
            }
            return out;
          });
      !s.ok()) {
    return s;
  }
  // Per Redis node (the server, or each primary of a cluster), from the
  // node monitor's last round; nothing before Redis is opened.
  struct NodeGauge {
    std::string_view name, help;
    double (*value)(const RedisNodeHealth&);
  };
  const NodeGauge node_gauges[] = {
      {"medsettle_redis_node_up",
       "1 when the Redis node answered the last probe (PING; a cluster's primaries: CLUSTER "
       "INFO with cluster_state:ok).",
       [](const RedisNodeHealth& n) { return n.up ? 1.0 : 0.0; }},
      {"medsettle_redis_node_probe_seconds", "Round trip of the last probe of the Redis node.",
       [](const RedisNodeHealth& n) { return n.probe_seconds; }},
      {"medsettle_redis_node_replicas",
       "Replicas connected to the Redis node (ROLE) at its last probe; 0 while it is down.",
       [](const RedisNodeHealth& n) { return static_cast<double>(n.replicas); }},
  };
  for (const NodeGauge& g : node_gauges) {
    if (absl::Status s = registry_.AddCallbackFamily(
            g.name, g.help, MetricType::kGauge, {"node"},
            [this, value = g.value] {
              std::vector<CallbackSample> out;
              if (node_monitor_ == nullptr) return out;
              for (const RedisNodeHealth& n : node_monitor_->Nodes()) {
                out.push_back({{n.node}, value(n)});
              }
              return out;
            });
        !s.ok()) {
      return s;
    }
  }
  // The cluster client's redirections, retries and table reads (none on
  // one server).
  struct ClusterCount {
    std::string_view name, help;
    std::vector<std::string_view> labels;
    std::function<std::vector<CallbackSample>(const cache::ClusterClientStats&)> samples;
  };
  const ClusterCount cluster_counts[] = {
      {"medsettle_redis_cluster_redirects_total",
       "Redis Cluster redirections followed: MOVED (a slot has a new owner) and ASK (a key of a "
       "slot being migrated is at the target).",
       {"kind"},
       [](const cache::ClusterClientStats& s) {
         return std::vector<CallbackSample>{{{"moved"}, static_cast<double>(s.moved)},
                                            {{"ask"}, static_cast<double>(s.ask)}};
       }},
      {"medsettle_redis_cluster_retries_total",
       "Pauses before sending again after TRYAGAIN, CLUSTERDOWN, LOADING, MASTERDOWN or READONLY.",
       {},
       [](const cache::ClusterClientStats& s) {
         return std::vector<CallbackSample>{{{}, static_cast<double>(s.retries)}};
       }},
      {"medsettle_redis_cluster_slot_table_reads_total",
       "Redis Cluster slot tables read (CLUSTER SLOTS), the first at start included.",
       {},
       [](const cache::ClusterClientStats& s) {
         return std::vector<CallbackSample>{{{}, static_cast<double>(s.refreshes)}};
       }},
  };
  for (const ClusterCount& c : cluster_counts) {
    if (absl::Status s = registry_.AddCallbackFamily(
            c.name, c.help, MetricType::kCounter, c.labels,
            [this, samples = c.samples] {
              const std::optional<cache::ClusterClientStats> stats = redis_cluster_stats();
              return stats ? samples(*stats) : std::vector<CallbackSample>{};
            });
        !s.ok()) {
      return s;
    }
  }
  return registry_.AddCallbackFamily(
      "medsettle_build_info", "The gateway's build (value 1).", MetricType::kGauge,
      {"version"}, [] { return std::vector<CallbackSample>{{{MEDSETTLE_VERSION}, 1}}; });
}

void GatewayServer::SetSnapshotServing(bool serving) {
  {
    std::lock_guard<std::mutex> lock(health_mutex_);
    snapshot_serving_ = serving;
    snapshot_reported_ = true;
  }
  UpdateServing();
}

void GatewayServer::SetRedisQuorum(bool quorum) {
  {
    std::lock_guard<std::mutex> lock(health_mutex_);
    redis_quorum_ = quorum;
    quorum_reported_ = true;
  }
  UpdateServing();
}

void GatewayServer::UpdateServing() {
  // Both halves report from their own threads: one verdict (and its log
  // line) at a time, so the last line logged is the state in force.
  std::lock_guard<std::mutex> one_verdict_at_a_time(health_log_mutex_);
  bool changed = false;
  bool serving = false;
  bool snapshot_serving = false;
  bool redis_quorum = false;
  {
    std::lock_guard<std::mutex> lock(health_mutex_);
    // At start each half reports once: the first verdict waits for both,
    // so that the log does not say "not serving" for the half not yet in.
    if (!snapshot_reported_ || !quorum_reported_) return;
    snapshot_serving = snapshot_serving_;
    redis_quorum = redis_quorum_;
    serving = snapshot_serving_ && redis_quorum_;
    changed = serving != serving_ || !health_logged_;
    health_logged_ = true;
    serving_ = serving;
    // By name: the overload without one would set every service, the
    // shipping backlog's included.
    if (server_ != nullptr && !stopped_) {
      server_->GetHealthCheckService()->SetServingStatus("", serving);
      server_->GetHealthCheckService()->SetServingStatus(std::string(kServiceName), serving);
    }
  }
  // Logged outside health_mutex_: a slow stderr must not hold up /healthz.
  if (!changed) return;
  int nodes_up = 0;
  int nodes = 0;
  if (node_monitor_ != nullptr) {
    for (const RedisNodeHealth& n : node_monitor_->Nodes()) {
      ++nodes;
      nodes_up += n.up ? 1 : 0;
    }
  }
  std::string cause;
  if (!redis_quorum) {
    cause = Cat("no quorum of Redis nodes answers (", nodes_up, " of ", nodes, ")");
  }
  if (!snapshot_serving) cause += Cat(cause.empty() ? "" : "; ", "no snapshot version is known");
  log_.Write(serving ? logging::Level::kInfo : logging::Level::kError,
             serving ? "serving" : "not_serving",
             {{"redis_up", watcher_ != nullptr && watcher_->redis_answering()},
              {"redis_nodes_up", nodes_up},
              {"redis_nodes", nodes},
              {"cause", cause}});
}

void GatewayServer::SetShippingServing(bool serving) {
  {
    std::lock_guard<std::mutex> lock(health_mutex_);
    shipping_serving_ = serving;
    if (server_ != nullptr && !stopped_) {
      server_->GetHealthCheckService()->SetServingStatus(std::string(kShippingHealthService),
                                                        serving);
    }
  }
  if (shipping_monitor_ != nullptr) {
    const ShippingBacklog b = shipping_monitor_->Current();
    log_.Write(serving ? logging::Level::kInfo : logging::Level::kWarn,
               serving ? "shipping_backlog_ok" : "shipping_backlog_late",
               {{"entries", b.entries},
                {"lag_seconds", static_cast<double>(b.lag_ms) / 1000.0},
                {"known", b.known},
                {"max_lag_seconds", config_.ledger_max_shipping_lag_seconds}});
  }
}

void GatewayServer::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(health_mutex_);
    if (stopped_) return;
    stopped_ = true;
    // Load balancers stop sending first; then the server stops accepting.
    if (server_ != nullptr) server_->GetHealthCheckService()->Shutdown();
  }
  if (server_ != nullptr) {
    server_->Shutdown(std::chrono::system_clock::now() +
                      std::chrono::milliseconds(config_.drain_timeout_ms));
    server_->Wait();
  }
  workers_.Stop();
  if (watcher_ != nullptr) watcher_->Stop();
  if (node_monitor_ != nullptr) node_monitor_->Stop();
  // Before the store's Redis: its last poll must not see Redis stopped.
  if (shipping_monitor_ != nullptr) shipping_monitor_->Stop();
  // Null when Start failed before opening Redis (a bad address, seeds that
  // are not a cluster).
  if (redis_ != nullptr) redis_->Stop();  // no call is left to wait for its I/O threads
  // Last: the scraper sees the drain through to its end.
  if (metrics_endpoint_ != nullptr) metrics_endpoint_->Stop();
}

}  // namespace medsettle::gateway
