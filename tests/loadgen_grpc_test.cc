// medsettle-loadgen against real servers (grpc): a real gateway in-process
// over a real redis-server (tests/support/gateway_harness.h), plaintext and
// mutual TLS, and the echo floor server; each run through the tool's
// command line, checked through its JSON report: every call made is
// counted once, status codes add up, p50 ≤ p99, replays, reversals, the
// paired floor mode.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gateway/credentials/ec_token.h"
#include "gtest/gtest.h"
#include "tests/support/engine_fixture.h"
#include "tests/support/gateway_harness.h"
#include "tools/loadgen/echo_server.h"
#include "tools/loadgen/loadgen_tool.h"
#include "tools/loadgen/report.h"

namespace medsettle::loadgen {
namespace {

using testing::GatewayHarness;
using testing::HarnessOptions;
using testing::QuzhouId;
using testing::SnapshotPerson;

constexpr engine::RegionCode kQuzhou = 330800;

class LoadgenGrpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("loadgen-grpc-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    h_.reset();
    std::filesystem::remove_all(dir_);
  }

  // A gateway with 40 Quzhou 2024 persons, three hospitals and a pharmacy,
  // and the same in persons.csv / institutions.csv for the tool.
  void StartGateway(bool tls, bool voucher = false) {
    std::vector<SnapshotPerson> persons;
    for (int i = 1; i <= 40; ++i) persons.push_back({QuzhouId(i), testing::Person(kQuzhou, 2024)});
    std::vector<engine::Institution> institutions;
    for (int level = 1; level <= 3; ++level) institutions.push_back(testing::Hospital(kQuzhou, level));
    institutions.push_back(testing::Pharmacy(kQuzhou));
    std::string issuer_dir;
    if (voucher) {
      absl::StatusOr<credentials::IssuerSigningKey> key = credentials::IssuerSigningKey::Generate();
      ASSERT_TRUE(key.ok());
      issuer_dir = Path("issuer-keys");
      std::filesystem::create_directories(issuer_dir);
      std::ofstream(issuer_dir + "/lgtest.pub.pem") << key->PublicKeyPem();
      std::ofstream(Path("lgtest.key.pem")) << key->PrivateKeyPem();
    }
    HarnessOptions options;
    options.tls = tls;
    absl::StatusOr<std::unique_ptr<GatewayHarness>> h = GatewayHarness::Start(
        persons, institutions,
        [issuer_dir](gateway::GatewayConfig& c) {
          if (!issuer_dir.empty()) c.ec_token_issuer_keys_dir = issuer_dir;
        },
        options);
    if (!h.ok() && h.status().code() == absl::StatusCode::kNotFound) {
      GTEST_SKIP() << h.status().message();
    }
    ASSERT_TRUE(h.ok()) << h.status();
    h_ = *std::move(h);
    std::ofstream p(Path("persons.csv"));
    p << "id_number,year,region_code,concentrated,newborn,reenrolled_after_gap,status,"
         "voucher_revoked_at_unix\n";
    for (const SnapshotPerson& person : persons) {
      p << person.id_number << ",2024,330800,1,0,0,ACTIVE,\n";
    }
    std::ofstream i(Path("institutions.csv"));
    i << "institution_id,name,region_code,kind,level,suspended\n";
    for (const engine::Institution& row : institutions) {
      i << row.institution_id << ",x,330800,"
        << (row.kind == engine::InstitutionKind::kPharmacy ? "PHARMACY" : "HOSPITAL") << ","
        << row.level << ",0\n";
    }
  }

  std::string Path(const std::string& name) const { return (dir_ / name).string(); }
  std::string Target() const { return "127.0.0.1:" + std::to_string(h_->gateway().port()); }
  std::vector<std::string> Files() const {
    return {"--persons", Path("persons.csv"), "--institutions", Path("institutions.csv")};
  }

  // Runs the tool; the JSON report it wrote.
  v1::LoadReport RunTool(std::vector<std::string> args, const std::string& json_name) {
    args.push_back("--quiet");
    args.push_back("--json");
    args.push_back(Path(json_name));
    std::ostringstream out, err;
    const int code = loadgen::Run(args, out, err, ToolEnv{});
    EXPECT_EQ(code, kExitOk) << err.str() << out.str();
    absl::StatusOr<v1::LoadReport> report = ReadJson(Path(json_name));
    EXPECT_TRUE(report.ok()) << report.status();
    last_out_ = out.str();
    return report.ok() ? *report : v1::LoadReport{};
  }

  // The invariants of every report.
  static void CheckConsistent(const v1::LoadReport& r) {
    uint64_t codes = 0;
    for (const v1::CodeCount& c : r.codes()) codes += c.count();
    EXPECT_EQ(codes, r.summary().count());
    uint64_t scenarios = 0;
    for (const v1::ScenarioCount& s : r.scenarios()) scenarios += s.count();
    EXPECT_EQ(scenarios, r.summary().count());
    uint64_t buckets = 0;
    for (const v1::Bucket& b : r.histogram()) buckets += b.count();
    EXPECT_EQ(buckets, r.summary().count());
    int64_t p50 = -1, p99 = -1;
    for (const v1::Percentile& p : r.percentiles()) {
      if (p.percentile() == 50) p50 = p.latency_us();
      if (p.percentile() == 99) p99 = p.latency_us();
    }
    EXPECT_GT(p50, 0);
    EXPECT_LE(p50, p99);
    EXPECT_LE(p99, r.summary().slowest_us());
    EXPECT_GT(r.summary().rps(), 0);
    uint64_t done = 0;
    for (const v1::Second& s : r.series()) done += s.done();
    EXPECT_EQ(done, r.summary().count() + r.summary().warmup_calls() + r.replays().sent());
  }

  static std::string Describe(const v1::LoadReport& r) {
    std::string out;
    for (const v1::ReasonCount& c : r.reasons()) {
      out += c.code() + " " + c.reason() + " " + std::to_string(c.count()) + "\n";
    }
    return out;
  }

  std::filesystem::path dir_;
  std::unique_ptr<GatewayHarness> h_;
  std::string last_out_;
};

TEST_F(LoadgenGrpcTest, ClosedLoopMixCountsEveryCallOnce) {
  StartGateway(false);
  if (h_ == nullptr) return;
  std::vector<std::string> args = {"--target", Target(), "--insecure-dev", "--count", "300",
                                   "--concurrency", "16", "--seed", "3"};
  for (const std::string& f : Files()) args.push_back(f);
  const v1::LoadReport r = RunTool(args, "mix.json");
  CheckConsistent(r);
  EXPECT_EQ(r.summary().count(), 300u);
  EXPECT_EQ(r.summary().sent(), 300u);
  EXPECT_EQ(r.summary().ok(), 300u) << Describe(r);
  EXPECT_EQ(r.options().loop(), "closed");
  EXPECT_EQ(r.summary().latency_origin(), "send");
  EXPECT_NE(last_out_.find("Count:\t300"), std::string::npos) << last_out_;
  EXPECT_NE(last_out_.find("[OK]\t300 responses"), std::string::npos) << last_out_;
}

TEST_F(LoadgenGrpcTest, OpenLoopWithECodesAndReplays) {
  StartGateway(false, /*voucher=*/true);
  if (h_ == nullptr) return;
  std::vector<std::string> args = {"--target", Target(), "--insecure-dev", "--rate", "150",
                                   "--duration", "2", "--retry-ratio", "0.2", "--voucher-key",
                                   Path("lgtest.key.pem"), "--key-file", h_->config().key_file,
                                   "--mix", "pharmacy=80,outpatient=20"};
  for (const std::string& f : Files()) args.push_back(f);
  const v1::LoadReport r = RunTool(args, "open.json");
  CheckConsistent(r);
  // 150/s for 2 s: calls 0..299 are due before 2 s.
  EXPECT_EQ(r.summary().count(), 300u);
  EXPECT_EQ(r.summary().dropped(), 0u);
  EXPECT_EQ(r.summary().ok(), 300u) << Describe(r);
  EXPECT_EQ(r.summary().latency_origin(), "scheduled start");
  EXPECT_NE(r.options().credential_note().find("e-insurance code"), std::string::npos);
  // Re-sent with the same id and content: the stored result, replayed.
  EXPECT_GT(r.replays().sent(), 20u);
  EXPECT_EQ(r.replays().replayed(), r.replays().sent());
  EXPECT_EQ(r.summary().sent(), 300u + r.replays().sent());
}

TEST_F(LoadgenGrpcTest, ReverseReversesThisRunsSettlements) {
  StartGateway(false);
  if (h_ == nullptr) return;
  std::vector<std::string> args = {"--target", Target(), "--insecure-dev", "--method",
                                   "Reverse", "--count", "120", "--concurrency", "4",
                                   "--mix", "pharmacy=1,outpatient=1"};
  for (const std::string& f : Files()) args.push_back(f);
  const v1::LoadReport r = RunTool(args, "reverse.json");
  CheckConsistent(r);
  EXPECT_EQ(r.summary().ok(), 120u) << Describe(r);
  uint64_t reversed = 0, settled = 0;
  for (const v1::ScenarioCount& s : r.scenarios()) {
    if (s.name() == "reverse") reversed = s.ok();
    if (s.name() == "settle-for-reverse") settled = s.ok();
  }
  EXPECT_GT(reversed, 30u);
  EXPECT_GE(settled, reversed);
}

TEST_F(LoadgenGrpcTest, MutualTlsWithAnInstitutionsCertificate) {
  StartGateway(true);
  if (h_ == nullptr) return;
  const std::string hospital = testing::Hospital(kQuzhou, 3).institution_id;
  std::vector<std::string> args = {"--target", Target(), "--ca", h_->pki_dir() + "/ca.pem",
                                   "--cert", h_->pki_dir() + "/" + hospital + ".pem", "--key",
                                   h_->pki_dir() + "/" + hospital + ".key.pem", "--count", "100",
                                   "--connections", "2"};
  for (const std::string& f : Files()) args.push_back(f);
  const v1::LoadReport r = RunTool(args, "tls.json");
  CheckConsistent(r);
  EXPECT_EQ(r.summary().ok(), 100u) << Describe(r);
  EXPECT_EQ(r.options().transport(), "mutual TLS as " + hospital);
  // A hospital's certificate: no pharmacy purchases.
  for (const v1::ScenarioCount& s : r.scenarios()) EXPECT_NE(s.name(), "pharmacy");

  // A certificate the CSV does not know: exit 2 before anything is sent.
  std::ofstream(Path("few.csv")) << "institution_id,region_code,kind,level,suspended\n"
                                    "P3308000007,330800,PHARMACY,2,0\n";
  std::vector<std::string> unknown = args;
  unknown[unknown.size() - 1] = Path("few.csv");
  std::ostringstream out, err;
  EXPECT_EQ(loadgen::Run(unknown, out, err, ToolEnv{}), kExitUsage);
  EXPECT_NE(err.str().find("names institution " + hospital + ", which is not in --institutions"),
            std::string::npos)
      << err.str();
}

TEST_F(LoadgenGrpcTest, EchoFloorAndThePairedMode) {
  StartGateway(false);
  if (h_ == nullptr) return;
  EchoServerOptions options;
  options.insecure_dev = true;
  absl::StatusOr<std::unique_ptr<EchoServer>> echo = EchoServer::Start(options);
  ASSERT_TRUE(echo.ok()) << echo.status();
  const std::string echo_target = "127.0.0.1:" + std::to_string((*echo)->port());
  const v1::LoadReport e = RunTool(
      {"--target", echo_target, "--insecure-dev", "--method", "echo", "--count", "500"}, "echo.json");
  CheckConsistent(e);
  EXPECT_EQ(e.summary().ok(), 500u);

  std::vector<std::string> args = {"--target", Target(), "--insecure-dev", "--floor-target",
                                   echo_target, "--floor-pairs", "2", "--floor-round", "1",
                                   "--concurrency", "8"};
  for (const std::string& f : Files()) args.push_back(f);
  const v1::LoadReport r = RunTool(args, "floor.json");
  CheckConsistent(r);
  // Each round continues the run's sequence: new request ids, never a
  // replay or REQUEST_ID_REUSED of an earlier round's.
  EXPECT_EQ(r.summary().ok(), r.summary().count()) << Describe(r);
  ASSERT_EQ(r.floor().pairs_size(), 2);
  for (const v1::FloorPair& p : r.floor().pairs()) {
    EXPECT_GT(p.echo_rps(), 0);
    EXPECT_GT(p.target_rps(), 0);
    EXPECT_NEAR(p.rps_ratio(), p.target_rps() / p.echo_rps(), 1e-9);
  }
  EXPECT_GT(r.floor().median_rps_ratio(), 0);
  EXPECT_NE(last_out_.find("median rps ratio"), std::string::npos) << last_out_;
}

}  // namespace
}  // namespace medsettle::loadgen
