// The medsettle-gateway process itself (the real binary, run by
// tests/support/child_process.h), over a real redis-server with a loaded
// snapshot (tests/support/gateway_harness.h provides both; its in-process
// gateway idles):
//
//   flags      neither TLS files nor --insecure-dev: exit 2 CONFIG_INVALID;
//              --insecure-dev on a non-loopback address: exit 2
//              INSECURE_LISTEN; TLS files missing or not matching: exit 1;
//              nothing served
//   TLS        with --tls-cert, --tls-key, --tls-client-ca it serves mutual
//              TLS: an institution certificate is served, no certificate
//              is not; --insecure-dev prints its warning
//   SIGTERM    calls in flight finish OK, then "stopped" and exit 0 within
//              the drain timeout
//   SIGHUP     policies, catalog and issuer keys reloaded, and the gateway keeps serving
//
// Only 127.0.0.1 is used.
#include <signal.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cache/redis_client.h"
#include "cache/redis_settlement_store.h"
#include "engine/text.h"
#include "tests/support/child_process.h"
#include "tests/support/engine_fixture.h"
#include "tests/support/gateway_harness.h"

namespace medsettle::testing {
namespace {

using engine::Cat;
using Stub = v1::SettlementService::Stub;
using Clock = std::chrono::steady_clock;

constexpr engine::RegionCode kQuzhou = 330800;

int64_t MsSince(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

// A fresh temporary directory with a key file (≥ 32 bytes), removed after.
class TempDir {
 public:
  TempDir() {
    char path[] = "/tmp/medsettle-gw-process-XXXXXX";
    if (mkdtemp(path) != nullptr) path_ = path;
  }
  ~TempDir() {
    if (!path_.empty()) std::system(("rm -rf '" + path_ + "'").c_str());
  }
  std::string Write(const std::string& name, const std::string& content) const {
    const std::string file = path_ + "/" + name;
    std::ofstream(file, std::ios::binary) << content;
    return file;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// deploy/pki/make-dev-pki.sh into `dir` for `ids`; false when it failed.
bool MakePki(const std::string& dir, const std::vector<std::string>& ids) {
  std::string command = Cat("bash '", MEDSETTLE_SOURCE_DIR, "/deploy/pki/make-dev-pki.sh' '", dir,
                            "'");
  for (const std::string& id : ids) command += Cat(" '", id, "'");
  return std::system((command + " >/dev/null 2>&1").c_str()) == 0;
}

class GatewayProcessTest : public ::testing::Test {
 protected:
  // Redis with a snapshot of Quzhou 2024 residents 1..8 and the Quzhou
  // institutions; skips when redis-server is not installed.
  void StartRedis() {
    std::vector<SnapshotPerson> persons;
    for (int i = 1; i <= 8; ++i) persons.push_back({QuzhouId(i), Person(kQuzhou, 2024)});
    std::vector<engine::Institution> institutions;
    for (int level = 1; level <= 3; ++level) institutions.push_back(Hospital(kQuzhou, level));
    absl::StatusOr<std::unique_ptr<GatewayHarness>> h =
        GatewayHarness::Start(persons, institutions);
    if (!h.ok() && h.status().code() == absl::StatusCode::kNotFound) {
      GTEST_SKIP() << h.status().message();
    }
    ASSERT_TRUE(h.ok()) << h.status();
    h_ = *std::move(h);
  }

  // Starts the binary on 127.0.0.1 (a port of its choosing) over the
  // harness's Redis and key, and waits for its "listening on" line; the
  // port it serves, or 0 (a failure was recorded). --insecure-dev unless
  // `extra` gives the TLS files.
  int SpawnServing(const std::vector<std::string>& extra) {
    std::vector<std::string> flags = {
        "--listen", "127.0.0.1:0",
        "--metrics-listen", "127.0.0.1:0",
        "--redis", Cat("127.0.0.1:", h_->redis().port()),
        "--key-file", h_->config().key_file,
        "--snapshot-refresh-ms", "50"};
    if (std::find(extra.begin(), extra.end(), "--tls-cert") == extra.end()) {
      flags.push_back("--insecure-dev");
    }
    flags.insert(flags.end(), extra.begin(), extra.end());
    process_ = ChildProcess::Spawn(MEDSETTLE_GATEWAY_BINARY, flags);
    if (process_ == nullptr) {
      ADD_FAILURE() << "cannot start " << MEDSETTLE_GATEWAY_BINARY;
      return 0;
    }
    const int port = process_->WaitServing(20000);
    if (port == 0) {
      ADD_FAILURE() << "no \"listening on\" line; stdout: " << process_->out()
                    << "\nstderr: " << process_->err();
      return 0;
    }
    EXPECT_EQ(process_->out().find("snapshot none yet"), std::string::npos) << process_->out();
    return port;
  }

  std::unique_ptr<GatewayHarness> h_;
  std::unique_ptr<ChildProcess> process_;
};

// ---- (a) flags ------------------------------------------------------------

TEST_F(GatewayProcessTest, RefusesToStartWithoutGoodTlsFilesOrInsecureDevOffLoopback) {
  TempDir dir;
  const std::string key = dir.Write("key", "process-test-secret-0123456789abcdefghij");
  ASSERT_TRUE(MakePki(dir.path() + "/pki", {"H1"}));
  ASSERT_TRUE(MakePki(dir.path() + "/pki2", {"H1"}));
  const std::string pki = dir.path() + "/pki/";
  const int port = FreeLoopbackPort();
  const std::vector<std::string> base = {"--listen", Cat("127.0.0.1:", port),
                                         "--metrics-listen", "127.0.0.1:0", "--redis",
                                         "127.0.0.1:1", "--key-file", key};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> flags = base;
    flags.insert(flags.end(), extra.begin(), extra.end());
    return flags;
  };
  struct Case {
    std::string name;
    std::vector<std::string> flags;
    int exit_code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"neither TLS files nor --insecure-dev", base, 2, "CONFIG_INVALID: tls.cert_file"},
      {"no client CA",
       with({"--tls-cert", pki + "server.pem", "--tls-key", pki + "server.key.pem"}), 2,
       "CONFIG_INVALID: tls.client_ca_file"},
      {"--insecure-dev on 0.0.0.0",
       {"--insecure-dev", "--listen", Cat("0.0.0.0:", port), "--redis", "127.0.0.1:1",
        "--key-file", key},
       2, "INSECURE_LISTEN"},
      {"a TLS file missing",
       with({"--tls-cert", pki + "server.pem", "--tls-key", pki + "server.key.pem",
             "--tls-client-ca", pki + "no-such-ca.pem"}),
       1, "TLS_FILE_UNREADABLE: cannot read the client CA file"},
      {"a key of another certificate",
       with({"--tls-cert", pki + "server.pem", "--tls-key",
             dir.path() + "/pki2/server.key.pem", "--tls-client-ca", pki + "ca.pem"}),
       1, "TLS_FILE_INVALID"},
      {"a certificate file without a certificate",
       with({"--tls-cert", pki + "server.key.pem", "--tls-key", pki + "server.key.pem",
             "--tls-client-ca", pki + "ca.pem"}),
       1, "TLS_FILE_INVALID"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::unique_ptr<ChildProcess> p = ChildProcess::Spawn(MEDSETTLE_GATEWAY_BINARY, c.flags);
    ASSERT_NE(p, nullptr);
    std::optional<int> code = p->WaitExit(20000);
    ASSERT_TRUE(code.has_value()) << "still running; stdout: " << p->out();
    EXPECT_EQ(*code, c.exit_code) << p->err();
    EXPECT_TRUE(p->WaitFor(c.message, /*on_stderr=*/true, 2000)) << p->err();
    EXPECT_EQ(p->out().find("listening on"), std::string::npos) << p->out();
  }
}

TEST_F(GatewayProcessTest, ServesMutualTlsWithTheFilesGiven) {
  StartRedis();
  if (IsSkipped() || HasFatalFailure()) return;
  TempDir dir;
  const std::string inst = Hospital(kQuzhou, 1).institution_id;
  const std::string pki = dir.path() + "/pki/";
  ASSERT_TRUE(MakePki(dir.path() + "/pki", {inst}));
  const int port = SpawnServing({"--tls-cert", pki + "server.pem", "--tls-key",
                                 pki + "server.key.pem", "--tls-client-ca", pki + "ca.pem"});
  ASSERT_GT(port, 0);
  EXPECT_NE(process_->out().find("(mutual TLS"), std::string::npos) << process_->out();
  EXPECT_TRUE(process_->WaitFor("mutual TLS: server certificate", /*on_stderr=*/true, 2000))
      << process_->err();
  EXPECT_EQ(process_->err().find("WARNING"), std::string::npos) << process_->err();

  // An institution certificate is served, and names the institution.
  auto stub = v1::SettlementService::NewStub(GatewayHarness::TlsChannelTo(
      port, pki + "ca.pem", pki + inst + ".pem", pki + inst + ".key.pem"));
  v1::CheckCoverageResponse out;
  CallResult c = GatewayHarness::Call(*stub, &Stub::CheckCoverage, "", CoverageRequest(QuzhouId(1)),
                                      &out, 10000);
  ASSERT_TRUE(c.ok()) << Describe(c) << "\n" << process_->err();
  EXPECT_TRUE(out.covered()) << out.reason();
  // Without one, or in plaintext, nothing is.
  auto anonymous = v1::SettlementService::NewStub(
      GatewayHarness::TlsChannelTo(port, pki + "ca.pem", "", ""));
  EXPECT_EQ(GatewayHarness::Call(*anonymous, &Stub::CheckCoverage, inst,
                                 CoverageRequest(QuzhouId(1)), &out, 10000)
                .code(),
            grpc::StatusCode::UNAVAILABLE);
  auto plaintext = v1::SettlementService::NewStub(GatewayHarness::ChannelTo(port));
  EXPECT_EQ(GatewayHarness::Call(*plaintext, &Stub::CheckCoverage, inst,
                                 CoverageRequest(QuzhouId(1)), &out, 10000)
                .code(),
            grpc::StatusCode::UNAVAILABLE);

  process_->Signal(SIGTERM);
  std::optional<int> code = process_->WaitExit(20000);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << process_->err();
}

// ---- (b) SIGTERM drains ---------------------------------------------------

TEST_F(GatewayProcessTest, SigtermLetsCallsInFlightFinishThenExitsZero) {
  StartRedis();
  if (IsSkipped() || HasFatalFailure()) return;
  // One worker, and Redis paused for a while: the first 10,000-line bill
  // waits in its Redis read, the other three wait in the queue, all of them
  // received and accepted long before SIGTERM. (A call still on the wire
  // when the server shuts down is refused by gRPC itself, CANCELLED or
  // UNAVAILABLE; that is not what this test is about.) The Redis command
  // timeout outlasts the pause.
  const int port = SpawnServing({"--workers", "1", "--drain-timeout-ms", "15000",
                                 "--redis-timeout-ms", "10000"});
  ASSERT_GT(port, 0);
  const std::string inst = Hospital(kQuzhou, 2).institution_id;

  constexpr int kCalls = 4;
  constexpr int kPauseMs = 1500;
  std::vector<std::unique_ptr<Stub>> stubs;
  for (int i = 0; i < kCalls; ++i) {
    stubs.push_back(v1::SettlementService::NewStub(GatewayHarness::ChannelTo(port)));
    v1::CheckCoverageResponse out;  // connects the channel and checks it serves
    CallResult c = GatewayHarness::Call(*stubs.back(), &Stub::CheckCoverage, inst,
                                        CoverageRequest(QuzhouId(1)), &out, 10000);
    ASSERT_TRUE(c.ok()) << Describe(c);
    ASSERT_TRUE(out.covered()) << out.reason();
  }
  // Built before the pause: serialising four bills takes a while too.
  std::vector<v1::SettleRequest> bills;
  for (int i = 0; i < kCalls; ++i) bills.push_back(InpatientBill(Cat("drain-", i), QuzhouId(2 + i), 10000));

  ASSERT_TRUE(h_->redis_client().Command({"CLIENT", "PAUSE", Cat(kPauseMs), "ALL"}).ok());
  const auto paused = Clock::now();
  std::vector<CallResult> results(kCalls);
  std::vector<v1::SettleResponse> responses(kCalls);
  std::vector<Clock::time_point> finished(kCalls);
  std::vector<std::thread> threads;
  for (int i = 0; i < kCalls; ++i) {
    threads.emplace_back([&, i] {
      results[i] = GatewayHarness::Call(*stubs[i], &Stub::Settle, inst, bills[i], &responses[i],
                                        60000);
      finished[i] = Clock::now();
    });
  }
  // Well into the pause, the calls long arrived: SIGTERM.
  std::this_thread::sleep_for(std::chrono::milliseconds(kPauseMs / 2));
  process_->Signal(SIGTERM);
  const auto signalled = Clock::now();
  const int64_t signalled_ms = MsSince(paused);
  std::optional<int> code = process_->WaitExit(20000);
  const int64_t exit_ms = MsSince(signalled);
  for (std::thread& t : threads) t.join();

  ASSERT_TRUE(code.has_value()) << "still running 20 s after SIGTERM; stderr: " << process_->err();
  EXPECT_EQ(*code, 0) << process_->err();
  EXPECT_LT(exit_ms, 15000 + 2000);
  EXPECT_TRUE(process_->WaitFor("medsettle-gateway: stopped", /*on_stderr=*/true, 2000))
      << process_->err();
  int after_signal = 0;
  for (int i = 0; i < kCalls; ++i) {
    EXPECT_TRUE(results[i].ok()) << "call " << i << ": " << Describe(results[i]);
    EXPECT_EQ(responses[i].lines_size(), results[i].ok() ? 10000 : 0);
    if (finished[i] > signalled) ++after_signal;
  }
  EXPECT_EQ(after_signal, kCalls) << "SIGTERM came " << signalled_ms
                                  << " ms into the pause, after some call was back";
  // Every one was committed, too (and exactly once: four journal entries).
  cache::RedisSettlementStore store(h_->redis_client());
  int committed = 0;
  for (int i = 0; i < kCalls; ++i) {
    absl::StatusOr<std::vector<cache::JournalEntry>> journal =
        store.ReadJournal(h_->PersonKey(QuzhouId(2 + i)).substr(0, 2), 0, INT64_MAX);
    ASSERT_TRUE(journal.ok()) << journal.status();
    for (const cache::JournalEntry& e : *journal) {
      if (e.settlement.request_id() == Cat("drain-", i)) ++committed;
    }
  }
  EXPECT_EQ(committed, kCalls);
  std::printf("SIGTERM %lld ms into a %d ms Redis pause; exit %lld ms after the signal\n",
              static_cast<long long>(signalled_ms), kPauseMs, static_cast<long long>(exit_ms));
  if (HasFailure()) std::printf("gateway stderr:\n%s\n", process_->err().c_str());
}

// ---- (c) SIGHUP reloads ---------------------------------------------------

TEST_F(GatewayProcessTest, SighupReloadsAndKeepsServing) {
  StartRedis();
  if (IsSkipped() || HasFatalFailure()) return;
  const int port = SpawnServing({});
  ASSERT_GT(port, 0);
  // --insecure-dev says what it risks, loudly.
  EXPECT_TRUE(process_->WaitFor("WARNING: --insecure-dev. NOT FOR PRODUCTION", true, 2000))
      << process_->err();
  EXPECT_NE(process_->out().find("(insecure-dev"), std::string::npos) << process_->out();
  const std::string inst = Hospital(kQuzhou, 1).institution_id;
  auto stub = v1::SettlementService::NewStub(GatewayHarness::ChannelTo(port));
  v1::SettleResponse first;
  CallResult s = GatewayHarness::Call(*stub, &Stub::Settle, inst, InpatientBill("hup-0", QuzhouId(6), 3),
                                      &first, 10000);
  ASSERT_TRUE(s.ok()) << Describe(s);

  process_->Signal(SIGHUP);
  EXPECT_TRUE(process_->WaitFor("policies, catalog and issuer keys reloaded", /*on_stderr=*/true, 10000))
      << process_->err();
  EXPECT_FALSE(process_->WaitExit(0).has_value()) << "exited on SIGHUP";

  v1::SettleResponse second;
  CallResult again = GatewayHarness::Call(*stub, &Stub::Settle, inst,
                                          InpatientBill("hup-1", QuzhouId(6), 3), &second, 10000);
  ASSERT_TRUE(again.ok()) << Describe(again);
  EXPECT_EQ(second.year_to_date().version(), 2);
  // Replays still answer from Redis after the reload.
  v1::SettleResponse replay;
  ASSERT_TRUE(GatewayHarness::Call(*stub, &Stub::Settle, inst, InpatientBill("hup-0", QuzhouId(6), 3),
                                   &replay, 10000)
                  .ok());
  EXPECT_TRUE(replay.replayed());
  EXPECT_EQ(replay.settlement_id(), first.settlement_id());

  process_->Signal(SIGTERM);
  std::optional<int> code = process_->WaitExit(20000);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << process_->err();
  EXPECT_TRUE(process_->WaitFor("medsettle-gateway: stopped", /*on_stderr=*/true, 2000));
}

}  // namespace
}  // namespace medsettle::testing
