// The whole gateway, assembled: Redis pool, stores, snapshot watcher,
// engine, workers, the gRPC service with health checking and reflection.
// medsettle-gateway (main.cc) runs one; end-to-end tests run one in-process.
//
//   Start  → reads the key file, checks the TLS files (and the CRL folder
//            when tls_crl_dir is set), loads policies and catalog,
//            connects lazily to Redis, polls snap:current once, listens:
//            mutual TLS (a verified, unrevoked client certificate required;
//            the TLS files re-read every tls_reload_interval_s, the CRL
//            folder at every handshake), or plaintext with the development
//            header under insecure_dev.
//   Shutdown → health NOT_SERVING, stop accepting calls, let calls in
//            flight finish (up to drain_timeout_ms), stop workers and the
//            watcher.
//
// The gateway starts even when Redis is down or no snapshot is loaded yet:
// it reports NOT_SERVING and answers UNAVAILABLE until both are there, and
// recovers by itself.
#ifndef MEDSETTLE_GATEWAY_GATEWAY_SERVER_H_
#define MEDSETTLE_GATEWAY_GATEWAY_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cache/person_key.h"
#include "cache/redis_factory.h"
#include "cache/redis_settlement_store.h"
#include "cache/snapshot_store.h"
#include "gateway/authenticator.h"
#include "gateway/config.h"
#include "gateway/counters.h"
#include "gateway/call_gate.h"
#include "gateway/call_observer.h"
#include "gateway/engine_holder.h"
#include "gateway/grpc_service.h"
#include "gateway/rate_limiter.h"
#include "gateway/redis_node_monitor.h"
#include "gateway/settlement_handler.h"
#include "gateway/shipping_monitor.h"
#include "gateway/snapshot_watcher.h"
#include "gateway/tls_files.h"
#include "gateway/worker_pool.h"
#include "logging/json_log.h"
#include "metrics/http_endpoint.h"
#include "metrics/registry.h"

namespace medsettle::gateway {

namespace reason {
// UNAVAILABLE: the listen address could not be bound.
inline constexpr std::string_view kListenFailed = "LISTEN_FAILED";
// NOT_FOUND: the key file is missing or unreadable. (A secret shorter than
// 32 bytes is INVALID_ARGUMENT PERSON_KEY_SECRET_TOO_SHORT.)
inline constexpr std::string_view kKeyFileUnreadable = "KEY_FILE_UNREADABLE";
}  // namespace reason

// The service name health checks report besides "" (the whole server).
inline constexpr std::string_view kServiceName = "medsettle.v1.SettlementService";

// What a GatewayServer takes besides its configuration (tests).
struct StartOptions {
  // Where the JSON log lines go; default stderr.
  std::function<void(std::string_view line)> log_sink;
};

class GatewayServer {
 public:
  // REQUIRES: ValidateConfig(config) ok, catalog_file and policy_dir set.
  static absl::StatusOr<std::unique_ptr<GatewayServer>> Start(const GatewayConfig& config,
                                                              StartOptions options = {});
  ~GatewayServer();  // Shutdown() if not done

  GatewayServer(const GatewayServer&) = delete;
  GatewayServer& operator=(const GatewayServer&) = delete;

  int port() const { return port_; }  // the bound port (useful with port 0)
  // "mutual TLS: …" (CheckTlsFiles' description) or "insecure-dev: …".
  const std::string& transport_description() const { return transport_description_; }
  // "127.0.0.1:6379" or "cluster, seeds …" (cache/redis_factory.h).
  const std::string& redis_description() const { return redis_->description(); }
  // redis.mode cluster: how often the cluster client was redirected (MOVED,
  // ASK), retried and re-read the slot table (cache::ClusterClientStats);
  // nullopt on one server. Read-only, for metrics and tests.
  std::optional<cache::ClusterClientStats> redis_cluster_stats() const {
    return redis_ != nullptr ? redis_->cluster_stats() : std::nullopt;
  }
  // The snapshot version in use, if any (for the start banner and tests).
  std::optional<std::string> snapshot_version() const;

  // Reloads policies, catalog and the e-insurance code issuer keys
  // (SIGHUP). On error the old engine and keys stay.
  absl::Status ReloadEngine();
  // Drains and stops. Idempotent; blocks up to drain_timeout_ms plus the
  // longest Redis command.
  void Shutdown();

  const GatewayCounters& counters() const { return counters_; }
  // The Prometheus endpoint's bound port; 0 when metrics.listen is "" or
  // its port could not be bound (logged as metrics_listen_failed).
  int metrics_port() const;
  // The metrics as the endpoint renders them (tests, and a stop summary).
  const metrics::Registry& metrics() const { return registry_; }
  logging::JsonLog& log() { return log_; }
  // The journal's backlog as last read (health service kShippingHealthService).
  ShippingBacklog shipping_backlog() const { return shipping_monitor_->Current(); }

 private:
  GatewayServer(const GatewayConfig& config, cache::PersonKeyer keyer, StartOptions options);
  // The gateway's own gauges and counters (Redis, snapshot, backlog, queue,
  // TLS expiry, build) as scrape-time callbacks.
  absl::Status RegisterMetrics();
  // The whole server serves while a snapshot is current (the watcher) and
  // a quorum of Redis nodes answers (the node monitor); each reports its
  // half.
  void SetSnapshotServing(bool serving);
  void SetRedisQuorum(bool quorum);
  void UpdateServing();
  void SetShippingServing(bool serving);
  // Publishes `loaded`'s policy files and catalog in Redis once
  // (HandlerOptions::ensure_rules_published).
  absl::Status EnsureRulesPublished(const std::shared_ptr<const engine_files::LoadedEngine>& loaded);

  const GatewayConfig config_;
  logging::JsonLog log_;
  // Declared before redis_: the pool's round-trip and wait callbacks
  // observe these histograms (set by RegisterMetrics, before any call).
  metrics::Registry registry_;
  std::atomic<metrics::Histogram*> redis_round_trip_{nullptr};
  std::atomic<metrics::Histogram*> redis_pool_wait_{nullptr};
  cache::PersonKeyer keyer_;
  EngineHolder engines_;
  // One Redis server or a Redis Cluster (redis.mode; cache/redis_factory.h).
  // The snapshot store blocks on it (watcher thread, workers); the
  // settlement store's Settle and PreSettle wait for it without a thread
  // (its pipelined client), other callers block from workers.
  std::unique_ptr<cache::RedisClients> redis_;
  std::unique_ptr<cache::SnapshotStore> snapshot_store_;
  std::unique_ptr<cache::RedisSettlementStore> settlement_store_;
  GatewayCounters counters_;
  std::unique_ptr<CallObserver> observer_;
  std::unique_ptr<SnapshotWatcher> watcher_;
  std::unique_ptr<RedisNodeMonitor> node_monitor_;
  std::unique_ptr<ShippingMonitor> shipping_monitor_;
  WorkerPool workers_;
  std::unique_ptr<SettlementArchive> archive_;  // null without ledger.conninfo
  std::unique_ptr<SettlementHandler> handler_;
  std::unique_ptr<Authenticator> authenticator_;  // MtlsAuthenticator unless insecure_dev
  RateLimiter rate_limiter_;
  std::unique_ptr<CallGate> gate_;
  std::unique_ptr<SettlementGrpcService> service_;
  std::string transport_description_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;

  // The engine whose files are in Redis: held so its address is not reused
  // while `rules_published_raw_` (the lock-free check) names it.
  std::mutex rules_mutex_;
  std::shared_ptr<const engine_files::LoadedEngine> rules_published_;  // guarded by rules_mutex_
  std::atomic<const engine_files::LoadedEngine*> rules_published_raw_{nullptr};

  std::mutex health_log_mutex_;  // UpdateServing: one verdict at a time; before health_mutex_
  std::mutex health_mutex_;
  bool serving_ = false;   // guarded by health_mutex_: both below
  bool snapshot_serving_ = false;  // guarded by health_mutex_
  bool redis_quorum_ = false;      // guarded by health_mutex_
  bool snapshot_reported_ = false;  // guarded by health_mutex_
  bool quorum_reported_ = false;    // guarded by health_mutex_
  bool shipping_serving_ = false;  // guarded by health_mutex_
  bool health_logged_ = false;     // guarded by health_mutex_

  // Last, so it is destroyed first: its threads call into the members
  // above (Shutdown stops it too). Null when off or unbound.
  std::unique_ptr<metrics::MetricsEndpoint> metrics_endpoint_;
  bool stopped_ = false;   // guarded by health_mutex_
};

}  // namespace medsettle::gateway

#endif  // MEDSETTLE_GATEWAY_GATEWAY_SERVER_H_
