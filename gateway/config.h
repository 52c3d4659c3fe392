// The gateway's configuration: one YAML file (every key optional, defaults
// below and in deploy/gateway/medsettle-gateway.yaml) plus command-line
// flags for the common overrides. Flags win over the file; the file wins
// over the defaults. docs/OPERATIONS.md lists every key.
#ifndef MEDSETTLE_GATEWAY_CONFIG_H_
#define MEDSETTLE_GATEWAY_CONFIG_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace medsettle::gateway {

namespace reason {
// INVALID_ARGUMENT: the configuration file or a flag is malformed or out of
// range; the message names the key or flag.
inline constexpr std::string_view kConfigInvalid = "CONFIG_INVALID";
// FAILED_PRECONDITION: the gateway would accept an institution identity it
// cannot verify (--insecure-dev) on a non-loopback address.
inline constexpr std::string_view kInsecureListen = "INSECURE_LISTEN";
}  // namespace reason

struct GatewayConfig {
  // host:port to serve gRPC on; port 0 picks a free port (tests).
  std::string listen = "127.0.0.1:50051";
  // Development only: no TLS, and the institution is read from a metadata
  // header (DevHeaderAuthenticator). Allowed only on a loopback address;
  // the gateway says so loudly at start. Otherwise mutual TLS (tls_*), and
  // the institution is the verified client certificate's (MtlsAuthenticator).
  bool insecure_dev = false;

  // Mutual TLS (docs/SECURITY.md). PEM files, all three required unless
  // insecure_dev (ignored with it). Every connection must present a client
  // certificate that chains to tls_client_ca_file. The files are re-read
  // every tls_reload_interval_s (gRPC's FileWatcherCertificateProvider), so
  // a new server certificate and key or CA bundle takes effect for new
  // connections without a restart.
  std::string tls_cert_file;       // server certificate chain
  std::string tls_key_file;        // its private key
  std::string tls_client_ca_file;  // CA bundle institution certificates chain to
  int tls_reload_interval_s = 60;  // 1..3600
  // Optional: a folder of certificate revocation lists (PEM, named
  // <issuer-hash>.rN by `openssl rehash`) every client certificate is
  // checked against at the handshake; empty = no revocation check. gRPC
  // looks the folder up again at every handshake, so a CRL added under the
  // next .rN refuses new connections at once. At start every CA of
  // tls_client_ca_file must have a current CRL there (GatewayServer::Start;
  // docs/SECURITY.md says why).
  std::string tls_crl_dir;

  // E-insurance codes (gateway/credentials/ec_token.h). Without a folder of
  // issuer public keys ("<kid>.pub.pem") tokens are refused
  // FAILED_PRECONDITION EC_TOKEN_NOT_CONFIGURED. Re-read on SIGHUP.
  std::string ec_token_issuer_keys_dir;
  int ec_token_clock_skew_seconds = 60;  // 0..600
  // A code valid longer than this (expiry − issue) is refused
  // EC_TOKEN_LIFETIME_TOO_LONG: codes live minutes. 1..1440.
  int ec_token_max_lifetime_minutes = 60;

  // Per-institution rate limit (token bucket, gateway/rate_limiter.h):
  // requests_per_second refill (0..1e6; 0 = unlimited), burst capacity
  // (1..1e7 when limited). Overrides by institution id; an override's
  // absent key takes the default's value. A refused call is
  // RESOURCE_EXHAUSTED RATE_LIMITED.
  struct RateLimit {
    double requests_per_second = 0;
    double burst = 0;
  };
  RateLimit rate_limit{500, 1000};
  std::vector<std::pair<std::string, RateLimit>> rate_limit_overrides;

  // Redis: one server (redis_mode "standalone"), or a Redis Cluster
  // ("cluster", cache/cluster_client.h) whose topology is read from the
  // nodes redis.address lists ("host:port,host:port,…", any of them).
  std::string redis_mode = "standalone";
  std::string redis_address = "127.0.0.1:6379";  // host:port[,host:port…]
  // A settlement is acknowledged only once this many replicas confirmed it
  // (WAIT, within replica_ack_timeout_ms); 0 = once the primary has it.
  int redis_replica_acks = 0;
  int redis_replica_ack_timeout_ms = 200;
  int redis_pool_size = 16;
  // Settle and PreSettle talk to Redis through cache/async_redis.h: this
  // many I/O threads, each with one connection on which the calls of many
  // requests are pipelined (a person's calls always on the same one).
  int redis_io_threads = 2;
  int redis_connect_timeout_ms = 200;
  int redis_command_timeout_ms = 500;
  int redis_acquire_timeout_ms = 100;
  // How often each node (the server, or every primary of a cluster) is
  // probed for health and metrics (gateway/redis_node_monitor.h).
  int redis_node_probe_ms = 1000;

  // Workers: the threads that run requests (Redis I/O and the engine), so
  // that no gRPC thread ever blocks. A request that finds queue_limit
  // requests waiting is refused with RESOURCE_EXHAUSTED at once.
  int worker_threads = 16;
  int queue_limit = 2048;
  // Settle and PreSettle hold no worker while they wait for Redis: at most
  // this many are admitted and unfinished; one more is refused at once
  // with RESOURCE_EXHAUSTED.
  int max_in_flight = 4096;

  // A call's budget when the caller sets no (or a longer) deadline.
  int request_timeout_ms = 5000;
  // Recomputations after another settlement of the same person moved the
  // accumulators between read and commit; then ABORTED.
  int commit_retries = 8;
  // How often snap:current is polled (a flip is seen within this).
  int snapshot_refresh_ms = 250;
  // Largest request or response message (a 10,000-line bill is about 0.3 MB
  // and its response 0.24 MB: tests/gateway_test.cc prints both).
  int max_message_bytes = 64 << 20;
  // SIGTERM: calls in flight get this long to finish.
  int drain_timeout_ms = 10000;
  // Idempotency records expire after this many days (0 = never); see
  // docs/REDIS-KEYS.md for the trade-off.
  int idempotency_ttl_days = 35;
  // Minutes east of UTC of the bureau's clock (settled_at, default dates).
  int utc_offset_minutes = 480;

  // The ledger (PostgreSQL, ledger/): where settlements are read once they
  // have left Redis. A libpq connection string; empty = no ledger (a
  // settlement older than the hot window is then NOT_FOUND). The gateway
  // never writes to it (medsettle-ledger ship does) and starts without it:
  // an unreachable ledger fails only the calls that need it.
  std::string ledger_conninfo;
  // How long a shipped settlement stays in Redis; must equal the shipper's
  // --hot-window-hours. Reconcile of a day whose window has ended reads the
  // ledger. 1..8760.
  int ledger_hot_window_hours = 168;
  // The shipping backlog (gateway/shipping_monitor.h): how often the
  // journal's length and oldest entry are read, and the lag beyond which
  // health reports medsettle.ledger.Shipping NOT_SERVING. The gateway
  // journals whether or not a ledger is configured, so this runs always.
  int ledger_backlog_poll_ms = 5000;
  int ledger_max_shipping_lag_seconds = 300;

  // Observability. The Prometheus endpoint (GET /metrics, GET /healthz;
  // metrics/http_endpoint.h): host:port, port 0 picks a free one, "" = off.
  // It has no authentication: keep it on loopback unless a scraper
  // elsewhere needs it. A port that cannot be bound is logged and the
  // gateway serves on without it (settlements matter more than metrics;
  // the scraper's `up` alert says so).
  std::string metrics_listen = "127.0.0.1:9464";
  // Structured logs on stderr (logging/json_log.h): the lowest level
  // written ("debug", "info", "warn", "error") and the rate limit per
  // event (lines per second, burst; 0 lines_per_second = unlimited).
  std::string log_level = "info";
  int log_lines_per_second = 20;
  int log_burst = 100;
  // Files.
  std::string key_file;     // pseudonymisation secret (≥ 32 bytes); required
  std::string catalog_file;  // catalog CSV; default: the bundled demo catalog
  std::string policy_dir;    // policy YAML folder; default: engine/policies
};

// Reads `path` (YAML mapping; unknown keys are errors) into `*config`,
// keeping defaults for absent keys. INVALID_ARGUMENT kConfigInvalid naming
// the file, key and line.
absl::Status LoadConfigFile(const std::string& path, GatewayConfig* config);

// The usage text for --help.
std::string FlagsUsage();

// Applies command-line flags (argv[1..]) in order: `--config FILE` is read
// first wherever it appears, then every other flag overrides it. Accepts
// "--flag value" and "--flag=value". Sets `*help` for --help / -h.
// INVALID_ARGUMENT kConfigInvalid for an unknown flag or a bad value.
absl::Status ApplyFlags(const std::vector<std::string>& args, GatewayConfig* config, bool* help);

// Range checks, the TLS files (required unless insecure_dev) and the
// loopback rule. INVALID_ARGUMENT kConfigInvalid naming the key;
// FAILED_PRECONDITION kInsecureListen when insecure_dev is on and the listen
// host is not loopback. Does not open the files (GatewayServer::Start does).
absl::Status ValidateConfig(const GatewayConfig& config);

// True for 127.0.0.0/8, ::1 and "localhost" (the host part of host:port,
// brackets allowed for IPv6).
bool IsLoopbackListen(std::string_view listen);

}  // namespace medsettle::gateway

#endif  // MEDSETTLE_GATEWAY_CONFIG_H_
