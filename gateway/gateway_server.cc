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

cache::PoolOptions PoolOptionsOf(const GatewayConfig& c) {
  cache::PoolOptions options;
  options.redis.host = c.redis_host;
  options.redis.port = c.redis_port;
  options.redis.connect_timeout_ms = c.redis_connect_timeout_ms;
  options.redis.command_timeout_ms = c.redis_command_timeout_ms;
  options.size = c.redis_pool_size;
  options.acquire_timeout_ms = c.redis_acquire_timeout_ms;
  return options;
}

}  // namespace

GatewayServer::GatewayServer(const GatewayConfig& config, cache::PersonKeyer keyer)
    : config_(config),
      keyer_(std::move(keyer)),
      engines_(config.policy_dir, config.catalog_file),
      redis_(PoolOptionsOf(config)),
      snapshot_store_(redis_),
      settlement_store_(redis_, cache::SettlementStoreOptions{
                                    .idempotency_ttl_seconds =
                                        int64_t{config.idempotency_ttl_days} * 86400}),
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

absl::StatusOr<std::unique_ptr<GatewayServer>> GatewayServer::Start(const GatewayConfig& config) {
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
  std::unique_ptr<GatewayServer> g(new GatewayServer(config, *std::move(keyer)));
  g->authenticator_ = std::move(authenticator);
  g->transport_description_ = std::move(transport);
  if (absl::Status s = g->engines_.Reload(); !s.ok()) return s;

  GatewayServer* self = g.get();
  g->watcher_ = std::make_unique<SnapshotWatcher>(
      g->snapshot_store_, config.snapshot_refresh_ms,
      [self](bool serving) { self->SetServing(serving); });
  // Redis down or no snapshot yet is not fatal: the watcher keeps polling.
  (void)g->watcher_->RefreshNow();
  g->shipping_monitor_ = std::make_unique<ShippingMonitor>(
      g->settlement_store_,
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
  handler_options.ensure_rules_published =
      [self](const std::shared_ptr<const engine_files::LoadedEngine>& loaded) {
        return self->EnsureRulesPublished(loaded);
      };
  g->handler_ = std::make_unique<SettlementHandler>(g->engines_, *g->watcher_,
                                                    g->settlement_store_, g->keyer_,
                                                    g->counters_, handler_options);
  g->service_ = std::make_unique<SettlementGrpcService>(*g->authenticator_, g->rate_limiter_,
                                                        *g->handler_, g->workers_, g->counters_,
                                                        config.request_timeout_ms);

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
  g->shipping_monitor_->Start();
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
  if (absl::Status s = cache::PublishRuleFiles(redis_, files); !s.ok()) return s;
  rules_published_ = loaded;
  rules_published_raw_.store(loaded.get(), std::memory_order_release);
  return absl::OkStatus();
}

void GatewayServer::SetServing(bool serving) {
  std::lock_guard<std::mutex> lock(health_mutex_);
  serving_ = serving;
  // By name: the overload without one would set every service, the
  // shipping backlog's included.
  if (server_ != nullptr && !stopped_) {
    server_->GetHealthCheckService()->SetServingStatus("", serving);
    server_->GetHealthCheckService()->SetServingStatus(std::string(kServiceName), serving);
  }
}

void GatewayServer::SetShippingServing(bool serving) {
  std::lock_guard<std::mutex> lock(health_mutex_);
  shipping_serving_ = serving;
  if (server_ != nullptr && !stopped_) {
    server_->GetHealthCheckService()->SetServingStatus(std::string(kShippingHealthService),
                                                      serving);
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
  if (shipping_monitor_ != nullptr) shipping_monitor_->Stop();
}

}  // namespace medsettle::gateway
