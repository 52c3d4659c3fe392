// The gateway's configuration (file, flags, validation) and its one
// error-mapping place; no servers needed.
#include <gtest/gtest.h>

#include <cstdio>
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
  EXPECT_EQ(c.redis_host, "127.0.0.1");
  EXPECT_EQ(c.redis_port, 6390);
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
  absl::Status no_flag = ValidateConfig(c);
  EXPECT_EQ(no_flag.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(engine::ReasonOf(no_flag), "INSECURE_LISTEN");
  c.insecure_dev = true;
  EXPECT_TRUE(ValidateConfig(c).ok());
  c.listen = "0.0.0.0:50051";
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
