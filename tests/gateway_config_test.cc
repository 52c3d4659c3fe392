// The gateway's configuration (file, flags, validation) and its one
// error-mapping place; no servers needed.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "cache/redis_client.h"
#include "engine/status.h"
#include "gateway/config.h"
#include "gateway/error_mapping.h"

namespace medsettle::gateway {
namespace {

std::string WriteTemp(const std::string& name, const std::string& text) {
  std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

TEST(GatewayConfig, ShippedFileLoadsAndResolvesPathsBesideIt) {
  GatewayConfig c;
  const std::string shipped =
      std::string(MEDSETTLE_SOURCE_DIR) + "/deploy/gateway/medsettle-gateway.yaml";
  ASSERT_TRUE(LoadConfigFile(shipped, &c).ok());
  GatewayConfig defaults;
  EXPECT_EQ(c.listen, defaults.listen);
  EXPECT_EQ(c.redis_pool_size, defaults.redis_pool_size);
  EXPECT_EQ(c.request_timeout_ms, defaults.request_timeout_ms);
  EXPECT_EQ(c.catalog_file, std::string(MEDSETTLE_SOURCE_DIR) + "/engine/catalog/demo-catalog.csv");
  EXPECT_EQ(c.policy_dir, std::string(MEDSETTLE_SOURCE_DIR) + "/engine/policies");
  EXPECT_EQ(c.tls_reload_interval_s, defaults.tls_reload_interval_s);
  EXPECT_EQ(c.ec_token_clock_skew_seconds, defaults.ec_token_clock_skew_seconds);
  EXPECT_EQ(c.rate_limit.requests_per_second, defaults.rate_limit.requests_per_second);
  EXPECT_EQ(c.rate_limit.burst, defaults.rate_limit.burst);
  EXPECT_TRUE(c.rate_limit_overrides.empty());
  EXPECT_FALSE(c.insecure_dev);
}

TEST(GatewayConfig, TlsTokenAndRateLimitKeysWithPathsBesideTheFile) {
  const std::string file = WriteTemp("tls.yaml",
                                     "tls:\n"
                                     "  cert_file: pki/server.pem\n"
                                     "  key_file: /etc/medsettle/server.key.pem\n"
                                     "  client_ca_file: pki/ca.pem\n"
                                     "  reload_interval_s: 5\n"
                                     "ec_token:\n"
                                     "  issuer_keys_dir: issuers\n"
                                     "  clock_skew_seconds: 30\n"
                                     "rate_limit:\n"
                                     "  overrides:\n"
                                     "    H3308000002: {requests_per_second: 2000, burst: 4000}\n"
                                     "    P3308000007:\n"
                                     "      burst: 10\n"
                                     "    C3302130003: {requests_per_second: 0}\n"
                                     "  requests_per_second: 50\n"
                                     "  burst: 100\n");
  GatewayConfig c;
  absl::Status loaded = LoadConfigFile(file, &c);
  ASSERT_TRUE(loaded.ok()) << loaded;
  const std::string dir = ::testing::TempDir();
  auto beside = [&](const std::string& name) {
    return (std::filesystem::path(dir) / name).lexically_normal().string();
  };
  EXPECT_EQ(c.tls_cert_file, beside("pki/server.pem"));
  EXPECT_EQ(c.tls_key_file, "/etc/medsettle/server.key.pem");
  EXPECT_EQ(c.tls_client_ca_file, beside("pki/ca.pem"));
  EXPECT_EQ(c.tls_reload_interval_s, 5);
  EXPECT_EQ(c.ec_token_issuer_keys_dir, beside("issuers"));
  EXPECT_EQ(c.ec_token_clock_skew_seconds, 30);
  EXPECT_EQ(c.rate_limit.requests_per_second, 50);
  EXPECT_EQ(c.rate_limit.burst, 100);
  // An override's absent key takes the default's value, wherever the
  // default appears in the file.
  ASSERT_EQ(c.rate_limit_overrides.size(), 3u);
  EXPECT_EQ(c.rate_limit_overrides[0].first, "H3308000002");
  EXPECT_EQ(c.rate_limit_overrides[0].second.requests_per_second, 2000);
  EXPECT_EQ(c.rate_limit_overrides[0].second.burst, 4000);
  EXPECT_EQ(c.rate_limit_overrides[1].first, "P3308000007");
  EXPECT_EQ(c.rate_limit_overrides[1].second.requests_per_second, 50);
  EXPECT_EQ(c.rate_limit_overrides[1].second.burst, 10);
  EXPECT_EQ(c.rate_limit_overrides[2].second.requests_per_second, 0);  // unlimited
  c.key_file = "/dev/null";
  EXPECT_TRUE(ValidateConfig(c).ok()) << ValidateConfig(c);

  // Flags win; on the command line paths are as given.
  bool help = false;
  ASSERT_TRUE(ApplyFlags({"--config", file, "--tls-cert", "a.pem", "--tls-key=b.pem",
                          "--tls-client-ca", "c.pem", "--ec-issuer-keys", "keys"},
                         &c, &help)
                  .ok());
  EXPECT_EQ(c.tls_cert_file, "a.pem");
  EXPECT_EQ(c.tls_key_file, "b.pem");
  EXPECT_EQ(c.tls_client_ca_file, "c.pem");
  EXPECT_EQ(c.ec_token_issuer_keys_dir, "keys");
  for (const char* flag : {"--tls-cert", "--tls-key", "--tls-client-ca", "--ec-issuer-keys"}) {
    EXPECT_NE(FlagsUsage().find(flag), std::string::npos) << flag;
  }
}

TEST(GatewayConfig, TlsCrlDirIsOptionalBesideTheFileAndHasAFlag) {
  // Unset by default and in the shipped file: no revocation check.
  GatewayConfig defaults;
  EXPECT_EQ(defaults.tls_crl_dir, "");
  GatewayConfig shipped;
  ASSERT_TRUE(LoadConfigFile(std::string(MEDSETTLE_SOURCE_DIR) +
                                 "/deploy/gateway/medsettle-gateway.yaml",
                             &shipped)
                  .ok());
  EXPECT_EQ(shipped.tls_crl_dir, "");

  // In the file, a relative folder is beside the file.
  const std::string file = WriteTemp("crl.yaml", "tls:\n  crl_dir: pki/crl\n");
  GatewayConfig c;
  ASSERT_TRUE(LoadConfigFile(file, &c).ok());
  EXPECT_EQ(c.tls_crl_dir,
            (std::filesystem::path(::testing::TempDir()) / "pki/crl").lexically_normal().string());
  GatewayConfig absolute;
  ASSERT_TRUE(LoadConfigFile(WriteTemp("crl-abs.yaml", "tls:\n  crl_dir: /etc/medsettle/crl\n"),
                             &absolute)
                  .ok());
  EXPECT_EQ(absolute.tls_crl_dir, "/etc/medsettle/crl");

  // The flag wins, as given.
  bool help = false;
  ASSERT_TRUE(ApplyFlags({"--config", file, "--tls-crl-dir", "crl"}, &c, &help).ok());
  EXPECT_EQ(c.tls_crl_dir, "crl");
  ASSERT_TRUE(ApplyFlags({"--tls-crl-dir=/var/lib/medsettle/crl"}, &c, &help).ok());
  EXPECT_EQ(c.tls_crl_dir, "/var/lib/medsettle/crl");
  EXPECT_NE(FlagsUsage().find("--tls-crl-dir V"), std::string::npos) << FlagsUsage();
  EXPECT_NE(FlagsUsage().find("[tls.crl_dir]"), std::string::npos);
  EXPECT_EQ(engine::ReasonOf(ApplyFlags({"--tls-crl-dir"}, &c, &help)), "CONFIG_INVALID");

  // Optional: mutual TLS validates without it and with it (the folder
  // itself is checked at start, GatewayServer::Start).
  GatewayConfig tls;
  tls.key_file = "/dev/null";
  tls.tls_cert_file = "server.pem";
  tls.tls_key_file = "server.key.pem";
  tls.tls_client_ca_file = "ca.pem";
  EXPECT_TRUE(ValidateConfig(tls).ok());
  tls.tls_crl_dir = "crl";
  EXPECT_TRUE(ValidateConfig(tls).ok());

  // One folder, not a list.
  absl::Status list =
      LoadConfigFile(WriteTemp("crl-list.yaml", "tls:\n  crl_dir: [a, b]\n"), &c);
  EXPECT_EQ(engine::ReasonOf(list), "CONFIG_INVALID");
  EXPECT_NE(list.message().find(":2: tls.crl_dir"), std::string::npos) << list.message();
}

TEST(GatewayConfig, BadRateLimitOverridesNameTheKey) {
  struct Case {
    std::string yaml;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {"rate_limit:\n  overrides:\n    H1: {rps: 3}\n", ":3: rate_limit.overrides.H1.rps"},
      {"rate_limit:\n  overrides:\n    H1: {burst: many}\n", "rate_limit.overrides.H1.burst"},
      {"rate_limit:\n  overrides:\n    H1: 5\n", "rate_limit.overrides.H1"},
      {"rate_limit:\n  overrides:\n    'bad id': {burst: 1}\n", "not an institution id"},
      {"rate_limit:\n  overrides: [H1]\n", "rate_limit.overrides"},
      {"rate_limit:\n  requests_per_second: fast\n", "rate_limit.requests_per_second"},
      {"tls:\n  cert: x.pem\n", "tls.cert"},
  };
  for (const Case& c : cases) {
    GatewayConfig config;
    absl::Status s = LoadConfigFile(WriteTemp("override.yaml", c.yaml), &config);
    EXPECT_EQ(engine::ReasonOf(s), "CONFIG_INVALID") << c.yaml;
    EXPECT_NE(s.message().find(c.needle), std::string::npos) << c.yaml << "\n" << s.message();
  }
}

TEST(GatewayConfig, TlsFilesAreRequiredUnlessInsecureDev) {
  GatewayConfig c;
  c.key_file = "/dev/null";
  c.listen = "0.0.0.0:50051";
  for (const char* key : {"tls.cert_file", "tls.key_file", "tls.client_ca_file"}) {
    absl::Status missing = ValidateConfig(c);
    EXPECT_EQ(missing.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(engine::ReasonOf(missing), "CONFIG_INVALID");
    EXPECT_EQ(engine::FieldOf(missing), key);
    EXPECT_NE(missing.message().find("--tls-"), std::string::npos) << missing.message();
    if (std::string_view(key) == "tls.cert_file") c.tls_cert_file = "server.pem";
    if (std::string_view(key) == "tls.key_file") c.tls_key_file = "server.key.pem";
    if (std::string_view(key) == "tls.client_ca_file") c.tls_client_ca_file = "ca.pem";
  }
  // Mutual TLS may listen anywhere.
  EXPECT_TRUE(ValidateConfig(c).ok()) << ValidateConfig(c);
}

TEST(GatewayConfig, TlsTokenAndRateLimitRanges) {
  GatewayConfig c;
  c.insecure_dev = true;
  c.key_file = "/dev/null";
  ASSERT_TRUE(ValidateConfig(c).ok());
  auto field_after = [&](auto change) {
    GatewayConfig changed = c;
    change(changed);
    return std::string(engine::FieldOf(ValidateConfig(changed)));
  };
  EXPECT_EQ(field_after([](GatewayConfig& x) { x.tls_reload_interval_s = 0; }),
            "tls.reload_interval_s");
  EXPECT_EQ(field_after([](GatewayConfig& x) { x.tls_reload_interval_s = 3601; }),
            "tls.reload_interval_s");
  EXPECT_EQ(field_after([](GatewayConfig& x) { x.ec_token_clock_skew_seconds = 601; }),
            "ec_token.clock_skew_seconds");
  EXPECT_EQ(field_after([](GatewayConfig& x) { x.rate_limit.requests_per_second = -1; }),
            "rate_limit.requests_per_second");
  EXPECT_EQ(field_after([](GatewayConfig& x) { x.rate_limit.burst = 0.5; }), "rate_limit.burst");
  EXPECT_EQ(field_after([](GatewayConfig& x) { x.rate_limit = {0, 0}; }), "");  // unlimited
  EXPECT_EQ(field_after([](GatewayConfig& x) {
              x.rate_limit_overrides = {{"H1", {10, 0}}};
            }),
            "rate_limit.overrides.H1.burst");
  EXPECT_EQ(field_after([](GatewayConfig& x) {
              x.rate_limit_overrides = {{"H1", {10, 10}}, {"H1", {5, 5}}};
            }),
            "rate_limit.overrides.H1");
}

TEST(GatewayConfig, UnknownKeysAndBadValuesNameTheKeyAndLine) {
  GatewayConfig c;
  absl::Status unknown =
      LoadConfigFile(WriteTemp("unknown.yaml", "listen: 127.0.0.1:1\nredis:\n  pool: 3\n"), &c);
  EXPECT_EQ(unknown.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(engine::ReasonOf(unknown), "CONFIG_INVALID");
  EXPECT_NE(unknown.message().find(":3: redis.pool"), std::string::npos) << unknown.message();

  absl::Status bad = LoadConfigFile(WriteTemp("bad.yaml", "workers:\n  threads: many\n"), &c);
  EXPECT_NE(bad.message().find("workers.threads"), std::string::npos) << bad.message();
  absl::Status address = LoadConfigFile(WriteTemp("addr.yaml", "redis:\n  address: nohost\n"), &c);
  EXPECT_EQ(engine::ReasonOf(address), "CONFIG_INVALID");
}

TEST(GatewayConfig, ARedisClusterIsNamedByModeAndAnyOfItsNodes) {
  GatewayConfig c;
  ASSERT_TRUE(LoadConfigFile(WriteTemp("cluster.yaml",
                                       "redis:\n  mode: cluster\n"
                                       "  address: redis-0.redis:6379,redis-1.redis:6379,"
                                       "[::1]:7002\n  replica_acks: 1\n"
                                       "  replica_ack_timeout_ms: 150\n"),
                             &c)
                  .ok());
  EXPECT_EQ(c.redis_mode, "cluster");
  EXPECT_EQ(c.redis_address, "redis-0.redis:6379,redis-1.redis:6379,[::1]:7002");
  EXPECT_EQ(c.redis_replica_acks, 1);
  EXPECT_EQ(c.redis_replica_ack_timeout_ms, 150);
  // (Only the required files, not given here, are missing.)
  EXPECT_EQ(ValidateConfig(c).message().find("redis"), std::string::npos) << ValidateConfig(c);

  // Several nodes without the mode: refused, saying what to set.
  GatewayConfig several;
  ASSERT_TRUE(LoadConfigFile(WriteTemp("several.yaml", "redis:\n  address: a:1,b:2\n"), &several)
                  .ok());
  absl::Status standalone = ValidateConfig(several);
  EXPECT_EQ(engine::ReasonOf(standalone), "CONFIG_INVALID");
  EXPECT_NE(standalone.message().find("redis.mode: cluster"), std::string::npos) << standalone;

  for (std::string bad : {"redis:\n  mode: sentinel\n", "redis:\n  address: a:1,,b:2\n",
                          "redis:\n  address: a:1,b\n"}) {
    GatewayConfig refused;
    absl::Status s = LoadConfigFile(WriteTemp("bad-cluster.yaml", bad), &refused);
    EXPECT_EQ(engine::ReasonOf(s), "CONFIG_INVALID") << bad;
  }
  GatewayConfig acks;
  acks.redis_replica_acks = 17;
  EXPECT_NE(ValidateConfig(acks).message().find("redis.replica_acks"), std::string::npos);
}

TEST(GatewayConfig, FlagsOverrideTheFileWhereverConfigAppears) {
  const std::string file = WriteTemp("base.yaml",
                                     "listen: 127.0.0.1:7000\nredis:\n  address: 10.0.0.1:6400\n"
                                     "workers:\n  threads: 4\n");
  GatewayConfig c;
  bool help = false;
  ASSERT_TRUE(ApplyFlags({"--workers=6", "--config", file, "--redis", "127.0.0.1:6390",
                          "--insecure-dev"},
                         &c, &help)
                  .ok());
  EXPECT_FALSE(help);
  EXPECT_EQ(c.listen, "127.0.0.1:7000");  // from the file
  EXPECT_EQ(c.worker_threads, 6);          // the flag, although it came first
  EXPECT_EQ(c.redis_address, "127.0.0.1:6390");
  EXPECT_TRUE(c.insecure_dev);

  EXPECT_EQ(engine::ReasonOf(ApplyFlags({"--no-such-flag", "1"}, &c, &help)), "CONFIG_INVALID");
  EXPECT_EQ(engine::ReasonOf(ApplyFlags({"--workers"}, &c, &help)), "CONFIG_INVALID");
  EXPECT_EQ(engine::ReasonOf(ApplyFlags({"--redis-pool", "x"}, &c, &help)), "CONFIG_INVALID");
  ASSERT_TRUE(ApplyFlags({"--help"}, &c, &help).ok());
  EXPECT_TRUE(help);
  EXPECT_NE(FlagsUsage().find("--key-file"), std::string::npos);
}

TEST(GatewayConfig, InsecureDevOnlyOnLoopback) {
  for (const char* ok : {"127.0.0.1:50051", "127.1.2.3:0", "localhost:1", "[::1]:50051"}) {
    EXPECT_TRUE(IsLoopbackListen(ok)) << ok;
  }
  for (const char* no : {"0.0.0.0:50051", "10.0.0.1:1", "[::]:50051", "example.org:1",
                         "128.0.0.1:1", "127.0.0:1", "127.0.0.256:1"}) {
    EXPECT_FALSE(IsLoopbackListen(no)) << no;
  }
  GatewayConfig c;
  c.key_file = "/dev/null";
  c.insecure_dev = true;
  EXPECT_TRUE(ValidateConfig(c).ok());
  c.listen = "0.0.0.0:50051";
  absl::Status off_loopback = ValidateConfig(c);
  EXPECT_EQ(off_loopback.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(engine::ReasonOf(off_loopback), "INSECURE_LISTEN");
  // TLS files do not make --insecure-dev acceptable off loopback.
  c.tls_cert_file = "server.pem";
  c.tls_key_file = "server.key.pem";
  c.tls_client_ca_file = "ca.pem";
  EXPECT_EQ(engine::ReasonOf(ValidateConfig(c)), "INSECURE_LISTEN");
}

TEST(GatewayConfig, RangesAndTheKeyFileAreChecked) {
  GatewayConfig c;
  c.insecure_dev = true;
  EXPECT_EQ(engine::FieldOf(ValidateConfig(c)), "files.key_file");
  c.key_file = "/dev/null";
  c.worker_threads = 0;
  EXPECT_EQ(engine::FieldOf(ValidateConfig(c)), "workers.threads");
  c.worker_threads = 4;
  c.snapshot_refresh_ms = 2000;  // a flip must be seen within 500 ms
  EXPECT_EQ(engine::FieldOf(ValidateConfig(c)), "snapshot_refresh_ms");
}

TEST(ErrorMapping, ReasonAndFieldTravelWithTheCode) {
  GrpcError e = ToGrpcError(engine::InvalidField("DATE_INVALID", "visit.service_date", "bad"));
  EXPECT_EQ(e.code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(e.reason, "DATE_INVALID");
  EXPECT_EQ(e.field, "visit.service_date");
  EXPECT_EQ(e.message, "bad");

  GrpcError down = ToGrpcError(engine::Refusal(absl::StatusCode::kUnavailable,
                                               cache::reason::kRedisUnavailable, "", "down"));
  EXPECT_EQ(down.code, grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(down.reason, "REDIS_UNAVAILABLE");
  EXPECT_TRUE(down.field.empty());

  // Every gRPC code keeps its number; a status without a reason gets the
  // code's name so the trailer is never missing.
  for (int code = 1; code <= 16; ++code) {
    GrpcError plain = ToGrpcError(absl::Status(static_cast<absl::StatusCode>(code), "x"));
    EXPECT_EQ(static_cast<int>(plain.code), code);
    EXPECT_FALSE(plain.reason.empty());
  }
  EXPECT_EQ(ToGrpcError(absl::InternalError("boom")).reason, "INTERNAL");
  // NOSCRIPT is the cache layer's business; if it escaped it is a bug.
  EXPECT_EQ(ToGrpcError(engine::Refusal(absl::StatusCode::kFailedPrecondition,
                                        cache::reason::kRedisNoscript, "", "x"))
                .code,
            grpc::StatusCode::INTERNAL);
  EXPECT_EQ(ToGrpcError(absl::OkStatus()).code, grpc::StatusCode::OK);
}

}  // namespace
}  // namespace medsettle::gateway
