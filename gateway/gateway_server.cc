#include "gateway/gateway_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include <chrono>
#include <fstream>
#include <sstream>

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
      workers_(config.worker_threads, static_cast<size_t>(config.queue_limit)) {}

absl::StatusOr<std::unique_ptr<GatewayServer>> GatewayServer::Start(const GatewayConfig& config) {
  absl::StatusOr<cache::PersonKeyer> keyer = ReadKeyer(config.key_file);
  if (!keyer.ok()) return keyer.status();
  std::unique_ptr<GatewayServer> g(new GatewayServer(config, *std::move(keyer)));
  if (absl::Status s = g->engines_.Reload(); !s.ok()) return s;

  GatewayServer* self = g.get();
  g->watcher_ = std::make_unique<SnapshotWatcher>(
      g->snapshot_store_, config.snapshot_refresh_ms,
      [self](bool serving) { self->SetServing(serving); });
  // Redis down or no snapshot yet is not fatal: the watcher keeps polling.
  (void)g->watcher_->RefreshNow();

  HandlerOptions handler_options;
  handler_options.commit_retries = config.commit_retries;
  handler_options.utc_offset_minutes = config.utc_offset_minutes;
  g->handler_ = std::make_unique<SettlementHandler>(g->engines_, *g->watcher_,
                                                    g->settlement_store_, g->keyer_,
                                                    g->counters_, handler_options);
  g->service_ = std::make_unique<SettlementGrpcService>(
      g->authenticator_, *g->handler_, g->workers_, g->counters_, config.request_timeout_ms);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // Mutual TLS replaces these credentials in the next issue.
  builder.AddListeningPort(config.listen, grpc::InsecureServerCredentials(), &g->port_);
  builder.RegisterService(g->service_.get());
  // No SO_REUSEPORT: a second gateway on a port already served must fail
  // to start, not silently share the port.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(config.max_message_bytes);
  builder.SetMaxSendMessageSize(config.max_message_bytes);
  g->server_ = builder.BuildAndStart();
  if (g->server_ == nullptr || g->port_ == 0) {
    g->workers_.Stop();
    return engine::Refusal(absl::StatusCode::kUnavailable, reason::kListenFailed, "listen",
                           Cat("cannot listen on ", config.listen));
  }
  {
    std::lock_guard<std::mutex> lock(g->health_mutex_);
    const bool serving = g->serving_;
    g->server_->GetHealthCheckService()->SetServingStatus(serving);
    g->server_->GetHealthCheckService()->SetServingStatus(std::string(kServiceName), serving);
  }
  g->watcher_->Start();
  return g;
}

GatewayServer::~GatewayServer() { Shutdown(); }

std::optional<std::string> GatewayServer::snapshot_version() const {
  absl::StatusOr<std::shared_ptr<SnapshotView>> view = watcher_->Current();
  if (!view.ok()) return std::nullopt;
  return (*view)->version();
}

absl::Status GatewayServer::ReloadEngine() { return engines_.Reload(); }

void GatewayServer::SetServing(bool serving) {
  std::lock_guard<std::mutex> lock(health_mutex_);
  serving_ = serving;
  if (server_ != nullptr && !stopped_) {
    server_->GetHealthCheckService()->SetServingStatus(serving);
    server_->GetHealthCheckService()->SetServingStatus(std::string(kServiceName), serving);
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
}

}  // namespace medsettle::gateway
