#include "gateway/config.h"

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>

#include "engine/status.h"
#include "engine/text.h"
#include "gateway/authenticator.h"
#include "logging/json_log.h"
#include "metrics/http_endpoint.h"

namespace medsettle::gateway {

using engine::Cat;
namespace {

absl::Status Invalid(std::string_view where, std::string_view message) {
  return engine::Refusal(absl::StatusCode::kInvalidArgument, reason::kConfigInvalid, where,
                         Cat(where, ": ", message));
}

bool ParseInt(std::string_view text, int* out) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, *out);
  return ec == std::errc() && ptr == end && !text.empty();
}

bool ParseDouble(std::string_view text, double* out) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, *out);
  return ec == std::errc() && ptr == end && !text.empty() && std::isfinite(*out);
}

bool ParseBool(std::string_view text, bool* out) {
  if (text == "true" || text == "1" || text == "yes") {
    *out = true;
    return true;
  }
  if (text == "false" || text == "0" || text == "no") {
    *out = false;
    return true;
  }
  return false;
}

// "host:port" (IPv6 hosts in brackets) into its parts.
bool SplitHostPort(std::string_view address, std::string* host, int* port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  std::string_view h = address.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  if (!ParseInt(address.substr(colon + 1), port) || *port <= 0 || *port > 65535) return false;
  *host = std::string(h);
  return !host->empty();
}

// One setting, reachable by its YAML key path and (optionally) a flag.
struct Setting {
  std::string key;   // "redis.pool_size"
  std::string flag;  // "redis-pool" ("" = file only)
  std::string help;
  std::function<bool(std::string_view, GatewayConfig*)> set;  // false: bad value
  bool is_path = false;  // relative paths in the file are relative to the file
};

std::function<bool(std::string_view, GatewayConfig*)> IntField(int GatewayConfig::*field) {
  return [field](std::string_view v, GatewayConfig* c) { return ParseInt(v, &(c->*field)); };
}
std::function<bool(std::string_view, GatewayConfig*)> RateField(
    double GatewayConfig::RateLimit::*field) {
  return [field](std::string_view v, GatewayConfig* c) {
    return ParseDouble(v, &(c->rate_limit.*field));
  };
}
std::function<bool(std::string_view, GatewayConfig*)> StringField(
    std::string GatewayConfig::*field) {
  return [field](std::string_view v, GatewayConfig* c) {
    c->*field = std::string(v);
    return true;
  };
}

const std::vector<Setting>& Settings() {
  static const std::vector<Setting> settings = {
      {"listen", "listen", "host:port to serve gRPC on (port 0: any free port)",
       StringField(&GatewayConfig::listen)},
      {"insecure_dev", "insecure-dev",
       "development: plaintext, institution from the x-medsettle-institution header (loopback only)",
       [](std::string_view v, GatewayConfig* c) { return ParseBool(v, &c->insecure_dev); }},
      {"tls.cert_file", "tls-cert", "server certificate chain, PEM (required unless --insecure-dev)",
       StringField(&GatewayConfig::tls_cert_file), true},
      {"tls.key_file", "tls-key", "the server certificate's private key, PEM",
       StringField(&GatewayConfig::tls_key_file), true},
      {"tls.client_ca_file", "tls-client-ca",
       "CA bundle institution certificates must chain to, PEM",
       StringField(&GatewayConfig::tls_client_ca_file), true},
      {"tls.reload_interval_s", "", "how often the TLS files are re-read",
       IntField(&GatewayConfig::tls_reload_interval_s)},
      {"tls.crl_dir", "tls-crl-dir",
       "folder of CRLs (openssl rehash) client certificates are checked against",
       StringField(&GatewayConfig::tls_crl_dir), true},
      {"ec_token.issuer_keys_dir", "ec-issuer-keys",
       "folder of e-insurance code issuer public keys (<kid>.pub.pem)",
       StringField(&GatewayConfig::ec_token_issuer_keys_dir), true},
      {"ec_token.clock_skew_seconds", "", "tolerance on e-insurance code validity times",
       IntField(&GatewayConfig::ec_token_clock_skew_seconds)},
      {"ec_token.max_lifetime_minutes", "", "longest e-insurance code validity accepted",
       IntField(&GatewayConfig::ec_token_max_lifetime_minutes)},
      {"rate_limit.requests_per_second", "", "per-institution refill rate (0 = unlimited)",
       RateField(&GatewayConfig::RateLimit::requests_per_second)},
      {"rate_limit.burst", "", "per-institution bucket capacity",
       RateField(&GatewayConfig::RateLimit::burst)},
      {"redis.mode", "redis-mode", "standalone (one Redis) or cluster (Redis Cluster)",
       [](std::string_view v, GatewayConfig* c) {
         c->redis_mode = std::string(v);
         return v == "standalone" || v == "cluster";
       }},
      {"redis.address", "redis", "Redis host:port (cluster: host:port,host:port,… of any nodes)",
       [](std::string_view v, GatewayConfig* c) {
         c->redis_address = std::string(v);
         for (size_t start = 0; start <= v.size();) {
           size_t comma = v.find(',', start);
           if (comma == std::string_view::npos) comma = v.size();
           std::string host;
           int port = 0;
           if (!SplitHostPort(v.substr(start, comma - start), &host, &port)) return false;
           start = comma + 1;
         }
         return true;
       }},
      {"redis.replica_acks", "redis-replica-acks",
       "replicas that must confirm a settlement before it is acknowledged (WAIT)",
       IntField(&GatewayConfig::redis_replica_acks)},
      {"redis.replica_ack_timeout_ms", "redis-replica-ack-timeout-ms",
       "how long a settlement waits for those replicas",
       IntField(&GatewayConfig::redis_replica_ack_timeout_ms)},
      {"redis.pool_size", "redis-pool", "Redis connections",
       IntField(&GatewayConfig::redis_pool_size)},
      {"redis.io_threads", "redis-io-threads",
       "Redis I/O threads of the settle path, one pipelined connection each",
       IntField(&GatewayConfig::redis_io_threads)},
      {"redis.connect_timeout_ms", "redis-connect-timeout-ms", "Redis connect timeout",
       IntField(&GatewayConfig::redis_connect_timeout_ms)},
      {"redis.command_timeout_ms", "redis-timeout-ms", "Redis command timeout",
       IntField(&GatewayConfig::redis_command_timeout_ms)},
      {"redis.acquire_timeout_ms", "redis-acquire-timeout-ms",
       "wait for a free Redis connection", IntField(&GatewayConfig::redis_acquire_timeout_ms)},
      {"redis.node_probe_ms", "",
       "probe interval of each Redis node (PING; a cluster's primaries: CLUSTER INFO); health "
       "needs more than half of them up",
       IntField(&GatewayConfig::redis_node_probe_ms)},
      {"workers.threads", "workers", "request worker threads",
       IntField(&GatewayConfig::worker_threads)},
      {"workers.queue_limit", "queue-limit", "requests waiting before RESOURCE_EXHAUSTED",
       IntField(&GatewayConfig::queue_limit)},
      {"workers.max_in_flight", "max-in-flight",
       "Settle/PreSettle calls admitted and unfinished before RESOURCE_EXHAUSTED",
       IntField(&GatewayConfig::max_in_flight)},
      {"request_timeout_ms", "request-timeout-ms", "a call's budget without a shorter deadline",
       IntField(&GatewayConfig::request_timeout_ms)},
      {"commit_retries", "commit-retries", "recomputations on a concurrent settlement",
       IntField(&GatewayConfig::commit_retries)},
      {"snapshot_refresh_ms", "snapshot-refresh-ms", "poll interval of snap:current",
       IntField(&GatewayConfig::snapshot_refresh_ms)},
      {"max_message_bytes", "max-message-bytes", "largest request or response",
       IntField(&GatewayConfig::max_message_bytes)},
      {"drain_timeout_ms", "drain-timeout-ms", "SIGTERM: time for calls in flight",
       IntField(&GatewayConfig::drain_timeout_ms)},
      {"idempotency_ttl_days", "idempotency-ttl-days", "idempotency record lifetime (0 = never)",
       IntField(&GatewayConfig::idempotency_ttl_days)},
      {"utc_offset_minutes", "", "minutes east of UTC of the bureau's clock",
       IntField(&GatewayConfig::utc_offset_minutes)},
      {"ledger.conninfo", "ledger", "PostgreSQL connection string of the ledger (libpq)",
       StringField(&GatewayConfig::ledger_conninfo)},
      {"ledger.hot_window_hours", "hot-window-hours",
       "how long a shipped settlement stays in Redis (= the shipper's)",
       IntField(&GatewayConfig::ledger_hot_window_hours)},
      {"ledger.backlog_poll_ms", "", "how often the shipping backlog is read",
       IntField(&GatewayConfig::ledger_backlog_poll_ms)},
      {"ledger.max_shipping_lag_seconds", "max-shipping-lag-seconds",
       "shipping lag beyond which health reports medsettle.ledger.Shipping NOT_SERVING",
       IntField(&GatewayConfig::ledger_max_shipping_lag_seconds)},
      {"metrics.listen", "metrics-listen",
       "host:port of the Prometheus endpoint (/metrics, /healthz); \"\" = off",
       StringField(&GatewayConfig::metrics_listen)},
      {"log.level", "log-level", "lowest level of the JSON log lines: debug|info|warn|error",
       StringField(&GatewayConfig::log_level)},
      {"log.lines_per_second", "", "log lines per second per event (0 = unlimited)",
       IntField(&GatewayConfig::log_lines_per_second)},
      {"log.burst", "", "log lines an event may write at once before the rate applies",
       IntField(&GatewayConfig::log_burst)},
      {"files.key_file", "key-file", "pseudonymisation secret file (required)",
       StringField(&GatewayConfig::key_file), true},
      {"files.catalog", "catalog", "catalog CSV", StringField(&GatewayConfig::catalog_file),
       true},
      {"files.policy_dir", "policy-dir", "policy YAML folder",
       StringField(&GatewayConfig::policy_dir), true},
  };
  return settings;
}

// rate_limit.overrides as read, before absent keys take the defaults.
struct PendingOverride {
  std::string institution_id;
  std::optional<double> requests_per_second;
  std::optional<double> burst;
};
struct Pending {
  bool has_overrides = false;
  std::vector<PendingOverride> overrides;
};

// rate_limit.overrides: {<institution id>: {requests_per_second, burst}}.
absl::Status LoadOverrides(const YAML::Node& node, const std::string& key,
                           const std::string& file, Pending* pending) {
  pending->has_overrides = true;
  pending->overrides.clear();
  if (node.IsNull()) return absl::OkStatus();
  if (!node.IsMap()) {
    return Invalid(Cat(file, ":", node.Mark().line + 1, ": ", key),
                   "must map institution ids to {requests_per_second, burst}");
  }
  for (const auto& entry : node) {
    const std::string id = entry.first.as<std::string>();
    const std::string where = Cat(file, ":", entry.first.Mark().line + 1, ": ", key, ".", id);
    if (!IsWellFormedInstitutionId(id)) {
      return Invalid(where, "not an institution id (1-64 characters of A-Z a-z 0-9 _ . -)");
    }
    if (!entry.second.IsMap()) return Invalid(where, "must be {requests_per_second, burst}");
    PendingOverride o;
    o.institution_id = id;
    for (const auto& field : entry.second) {
      const std::string name = field.first.as<std::string>();
      const std::string at = Cat(file, ":", field.first.Mark().line + 1, ": ", key, ".", id, ".", name);
      std::optional<double>* target = name == "requests_per_second" ? &o.requests_per_second
                                      : name == "burst"             ? &o.burst
                                                                    : nullptr;
      if (target == nullptr) return Invalid(at, "unknown key");
      double value = 0;
      if (!field.second.IsScalar() || !ParseDouble(field.second.as<std::string>(), &value)) {
        return Invalid(at, "must be a number");
      }
      *target = value;
    }
    pending->overrides.push_back(std::move(o));
  }
  return absl::OkStatus();
}

absl::Status LoadNode(const YAML::Node& node, const std::string& prefix,
                      const std::filesystem::path& base, const std::string& file,
                      GatewayConfig* config, Pending* pending) {
  for (const auto& item : node) {
    const std::string key = prefix + item.first.as<std::string>();
    const std::string where = Cat(file, ":", item.first.Mark().line + 1, ": ", key);
    if (key == "rate_limit.overrides") {
      if (absl::Status s = LoadOverrides(item.second, key, file, pending); !s.ok()) return s;
      continue;
    }
    if (item.second.IsMap()) {
      if (absl::Status s = LoadNode(item.second, key + ".", base, file, config, pending);
          !s.ok()) {
        return s;
      }
      continue;
    }
    const Setting* setting = nullptr;
    for (const Setting& s : Settings()) {
      if (s.key == key) setting = &s;
    }
    if (setting == nullptr) return Invalid(where, "unknown key");
    if (!item.second.IsScalar()) return Invalid(where, "must be a single value");
    std::string value = item.second.as<std::string>();
    if (setting->is_path && !value.empty() && std::filesystem::path(value).is_relative()) {
      value = (base / value).lexically_normal().string();
    }
    if (!setting->set(value, config)) return Invalid(where, Cat("bad value \"", value, "\""));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status LoadConfigFile(const std::string& path, GatewayConfig* config) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    return Invalid(path, e.what());
  }
  if (root.IsNull()) return absl::OkStatus();  // an empty file: all defaults
  if (!root.IsMap()) return Invalid(path, "must be a mapping of keys to values");
  const std::filesystem::path base = std::filesystem::absolute(path).parent_path();
  Pending pending;
  try {
    if (absl::Status s = LoadNode(root, "", base, path, config, &pending); !s.ok()) return s;
  } catch (const YAML::Exception& e) {
    return Invalid(path, e.what());
  }
  if (pending.has_overrides) {
    // Absent keys of an override take the (final) default's value.
    config->rate_limit_overrides.clear();
    for (const PendingOverride& o : pending.overrides) {
      GatewayConfig::RateLimit limit = config->rate_limit;
      if (o.requests_per_second) limit.requests_per_second = *o.requests_per_second;
      if (o.burst) limit.burst = *o.burst;
      config->rate_limit_overrides.emplace_back(o.institution_id, limit);
    }
  }
  return absl::OkStatus();
}

std::string FlagsUsage() {
  std::string out =
      "usage: medsettle-gateway [--config FILE] [flags]\n"
      "  --config FILE  YAML configuration (deploy/gateway/medsettle-gateway.yaml)\n";
  for (const Setting& s : Settings()) {
    if (s.flag.empty()) continue;
    std::string flag = "  --" + s.flag;
    if (s.flag != "insecure-dev") flag += " V";
    flag.resize(std::max<size_t>(flag.size() + 1, 30), ' ');
    out += Cat(flag, s.help, " [", s.key, "]\n");
  }
  return out;
}

absl::Status ApplyFlags(const std::vector<std::string>& args, GatewayConfig* config, bool* help) {
  *help = false;
  // Split into (flag, value) pairs first, so --config is applied before the rest.
  std::vector<std::pair<std::string, std::string>> flags;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    if (arg == "--help" || arg == "-h") {
      *help = true;
      return absl::OkStatus();
    }
    if (arg.rfind("--", 0) != 0) return Invalid(arg, "unexpected argument");
    arg = arg.substr(2);
    std::string value;
    bool has_value = false;
    if (size_t eq = arg.find('='); eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_value = true;
    }
    if (arg == "insecure-dev" && !has_value) {
      value = "true";
      has_value = true;
    }
    if (!has_value) {
      if (i + 1 >= args.size()) return Invalid("--" + arg, "needs a value");
      value = args[++i];
    }
    flags.emplace_back(arg, value);
  }
  for (const auto& [flag, value] : flags) {
    if (flag == "config") {
      if (absl::Status s = LoadConfigFile(value, config); !s.ok()) return s;
    }
  }
  for (const auto& [flag, value] : flags) {
    if (flag == "config") continue;
    const Setting* setting = nullptr;
    for (const Setting& s : Settings()) {
      if (!s.flag.empty() && s.flag == flag) setting = &s;
    }
    if (setting == nullptr) return Invalid("--" + flag, "unknown flag (see --help)");
    if (!setting->set(value, config)) {
      return Invalid("--" + flag, Cat("bad value \"", value, "\""));
    }
  }
  return absl::OkStatus();
}

bool IsLoopbackListen(std::string_view listen) {
  const size_t colon = listen.rfind(':');
  std::string_view host = colon == std::string_view::npos ? listen : listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host == "localhost" || host == "::1") return true;
  // 127.0.0.0/8: four decimal octets, the first 127.
  int octets[4];
  size_t pos = 0;
  for (int i = 0; i < 4; ++i) {
    size_t end = host.find('.', pos);
    if ((i < 3) != (end != std::string_view::npos)) return false;
    std::string_view part = host.substr(pos, end == std::string_view::npos ? end : end - pos);
    if (part.empty() || part.size() > 3 || !ParseInt(part, &octets[i]) || octets[i] > 255) {
      return false;
    }
    pos = end + 1;
  }
  return octets[0] == 127;
}

namespace {

absl::Status CheckRateLimit(std::string_view key, const GatewayConfig::RateLimit& l) {
  if (!std::isfinite(l.requests_per_second) || l.requests_per_second < 0 ||
      l.requests_per_second > 1e6) {
    return Invalid(Cat(key, ".requests_per_second"), "is outside 0..1000000 (0 = unlimited)");
  }
  if (!std::isfinite(l.burst) || l.burst < 0 || l.burst > 1e7) {
    return Invalid(Cat(key, ".burst"), "is outside 0..10000000");
  }
  if (l.requests_per_second > 0 && l.burst < 1) {
    return Invalid(Cat(key, ".burst"), "must be at least 1 when requests_per_second > 0");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateConfig(const GatewayConfig& c) {
  struct Range {
    std::string_view key;
    int value;
    int min;
    int max;
  };
  const Range ranges[] = {
      {"redis.pool_size", c.redis_pool_size, 1, 1024},
      {"redis.connect_timeout_ms", c.redis_connect_timeout_ms, 1, 60000},
      {"redis.command_timeout_ms", c.redis_command_timeout_ms, 1, 60000},
      {"redis.acquire_timeout_ms", c.redis_acquire_timeout_ms, 0, 60000},
      {"redis.node_probe_ms", c.redis_node_probe_ms, 100, 60000},
      {"workers.threads", c.worker_threads, 1, 1024},
      {"workers.queue_limit", c.queue_limit, 1, 1 << 20},
      {"workers.max_in_flight", c.max_in_flight, 1, 1 << 20},
      {"redis.io_threads", c.redis_io_threads, 1, 64},
      {"redis.replica_acks", c.redis_replica_acks, 0, 16},
      {"redis.replica_ack_timeout_ms", c.redis_replica_ack_timeout_ms, 1, 60000},
      {"request_timeout_ms", c.request_timeout_ms, 1, 600000},
      {"commit_retries", c.commit_retries, 0, 100},
      {"snapshot_refresh_ms", c.snapshot_refresh_ms, 10, 500},
      {"max_message_bytes", c.max_message_bytes, 4 << 20, 1 << 30},
      {"drain_timeout_ms", c.drain_timeout_ms, 0, 600000},
      {"idempotency_ttl_days", c.idempotency_ttl_days, 0, 3650},
      {"utc_offset_minutes", c.utc_offset_minutes, -14 * 60, 14 * 60},
      {"ledger.hot_window_hours", c.ledger_hot_window_hours, 1, 8760},
      {"ledger.backlog_poll_ms", c.ledger_backlog_poll_ms, 100, 3600000},
      {"ledger.max_shipping_lag_seconds", c.ledger_max_shipping_lag_seconds, 1, 604800},
      {"log.lines_per_second", c.log_lines_per_second, 0, 1000000},
      {"log.burst", c.log_burst, 1, 1000000},
      {"tls.reload_interval_s", c.tls_reload_interval_s, 1, 3600},
      {"ec_token.clock_skew_seconds", c.ec_token_clock_skew_seconds, 0, 600},
      {"ec_token.max_lifetime_minutes", c.ec_token_max_lifetime_minutes, 1, 1440},
  };
  for (const Range& r : ranges) {
    if (r.value < r.min || r.value > r.max) {
      return Invalid(r.key, Cat(r.value, " is outside ", r.min, "..", r.max));
    }
  }
  if (c.redis_replica_acks > 0 && c.redis_replica_ack_timeout_ms >= c.redis_command_timeout_ms) {
    return Invalid("redis.replica_ack_timeout_ms",
                   Cat(c.redis_replica_ack_timeout_ms,
                       " must be below redis.command_timeout_ms (", c.redis_command_timeout_ms,
                       "): the WAIT shares the commit's round trip"));
  }
  if (c.redis_mode == "standalone" && c.redis_address.find(',') != std::string::npos) {
    return Invalid("redis.address",
                   Cat("\"", c.redis_address,
                       "\" lists several nodes; a Redis Cluster needs redis.mode: cluster"));
  }
  if (absl::Status s = CheckRateLimit("rate_limit", c.rate_limit); !s.ok()) return s;
  std::set<std::string, std::less<>> overridden;
  for (const auto& [id, limit] : c.rate_limit_overrides) {
    const std::string key = Cat("rate_limit.overrides.", id);
    if (!IsWellFormedInstitutionId(id)) {
      return Invalid(key, "not an institution id (1-64 characters of A-Z a-z 0-9 _ . -)");
    }
    if (!overridden.insert(id).second) return Invalid(key, "given twice");
    if (absl::Status s = CheckRateLimit(key, limit); !s.ok()) return s;
  }
  if (logging::Level level; !logging::ParseLevel(c.log_level, &level)) {
    return Invalid("log.level", Cat("\"", c.log_level, "\" is not debug, info, warn or error"));
  }
  std::string metrics_host;
  int metrics_port = 0;
  if (!c.metrics_listen.empty() &&
      !metrics::ParseListenAddress(c.metrics_listen, &metrics_host, &metrics_port)) {
    return Invalid("metrics.listen",
                   Cat("\"", c.metrics_listen, "\" is not HOST:PORT (port 0..65535) or \"\""));
  }
  if (c.key_file.empty()) {
    return Invalid("files.key_file", "required (--key-file): the pseudonymisation secret");
  }
  if (!c.insecure_dev) {
    const std::pair<std::string_view, const std::string*> tls_files[] = {
        {"tls.cert_file", &c.tls_cert_file},
        {"tls.key_file", &c.tls_key_file},
        {"tls.client_ca_file", &c.tls_client_ca_file},
    };
    const std::string_view flags[] = {"--tls-cert", "--tls-key", "--tls-client-ca"};
    for (size_t i = 0; i < 3; ++i) {
      if (tls_files[i].second->empty()) {
        return Invalid(tls_files[i].first,
                       Cat("required (", flags[i],
                           "): the gateway serves mutual TLS only; --insecure-dev is for "
                           "loopback development"));
      }
    }
    return absl::OkStatus();
  }
  if (!IsLoopbackListen(c.listen)) {
    return engine::Refusal(absl::StatusCode::kFailedPrecondition, reason::kInsecureListen,
                           "listen",
                           Cat("--insecure-dev refuses to listen on ", c.listen,
                               ": only loopback addresses (127.0.0.0/8, ::1, localhost)"));
  }
  return absl::OkStatus();
}

}  // namespace medsettle::gateway
