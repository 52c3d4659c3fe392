// kill -9 of a gateway under load (issue 11, label cluster): two real
// medsettle-gateway processes (tests/support/child_process.h) over one
// Redis Cluster of three primaries and three replicas (redis.mode cluster,
// replica_acks 1; tests/support/gateway_harness.h starts the cluster and
// loads the snapshot, its in-process gateway idles). Clients settle
// distinct request ids through gateway A; A is killed mid-load, and every
// call left without a definite answer is re-sent — same request id, same
// body — to gateway B, as HIS systems are told to. Afterwards:
//
//   Redis      every request id acknowledged once, and a replay of it
//              answers its settlement id; no settlement id twice; each
//              person's year to date is what its last acknowledged
//              settlement reported (a lost settlement leaves less, a
//              double payment more); the day's Reconcile counts exactly
//              the acknowledged request ids
//   ledger     the journals shipped from the cluster into a real
//              PostgreSQL (tests/support/postgres_server.h) by
//              medsettle-ledger ship --redis-mode cluster: every
//              acknowledged settlement exactly once, with the amounts
//              acknowledged, and nothing else; verify finds Redis and the
//              ledger in agreement
//
// Prints the figures (acknowledged, re-sent, replayed, kill → first
// answer from B). Only 127.0.0.1 is used; skipped without redis-server,
// redis-cli or PostgreSQL.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cache/cluster_slots.h"
#include "cache/redis_settlement_store.h"
#include "engine/text.h"
#include "google/protobuf/util/message_differencer.h"
#include "ledger/pg_connection.h"
#include "medsettle/v1/ledger.pb.h"
#include "medsettle/v1/service.grpc.pb.h"
#include "tests/support/child_process.h"
#include "tests/support/engine_fixture.h"
#include "tests/support/gateway_harness.h"
#include "tests/support/postgres_server.h"
#include "tests/support/redis_cluster.h"
#include "tests/support/settling_clients.h"
#include "tools/ledger/ledger_tool.h"

namespace medsettle::testing {
namespace {

using engine::Cat;
using google::protobuf::util::MessageDifferencer;
using Stub = v1::SettlementService::Stub;
using Clock = std::chrono::steady_clock;

constexpr engine::RegionCode kQuzhou = 330800;
constexpr int kPersons = 300;
constexpr int kClients = 6;
constexpr char kServiceDate[] = "2024-06-20";  // GeneralOutpatientBill's
// Load through A before the kill, and through B after its first answer.
constexpr int kLoadBeforeKillMs = 1500;
constexpr int kLoadAfterFailoverMs = 1500;
// A request still without a definite answer this long is counted
// unresolved (a failure): the test stays bounded whatever happens.
constexpr int kGiveUpMs = 15000;

int64_t MsSince(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

std::vector<SnapshotPerson> Persons() {
  std::vector<SnapshotPerson> all;
  for (int i = 1; i <= kPersons; ++i) all.push_back({QuzhouId(i), Person(kQuzhou, 2024, 0)});
  return all;
}

std::string HospitalId() { return Hospital(kQuzhou, 2).institution_id; }

// A stub of the plaintext gateway on 127.0.0.1:`port`, connected.
std::unique_ptr<Stub> StubTo(int port) {
  return v1::SettlementService::NewStub(GatewayHarness::Connected(GatewayHarness::ChannelTo(port)));
}

// Runs `body(0)` … `body(threads - 1)` on as many threads and waits.
void RunInThreads(int threads, const std::function<void(int)>& body) {
  std::vector<std::thread> all;
  for (int t = 0; t < threads; ++t) all.emplace_back(body, t);
  for (std::thread& t : all) t.join();
}

// medsettle-ledger in-process; its exit code, with its output for failure
// messages.
struct ToolResult {
  int code = -1;
  std::string output;
};
ToolResult RunLedgerTool(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  ToolResult r;
  r.code = ledger_tool::Run(args, out, err);
  r.output = Cat("stdout: ", out.str(), "\nstderr: ", err.str());
  return r;
}

// A request and the answer it got.
struct Acknowledged {
  v1::SettleRequest request;
  v1::SettleResponse response;
};

// What the clients saw.
struct LoadResult {
  // Every acknowledged request, by request id (one answer each: a client
  // stops sending a request once it is answered).
  std::map<std::string, Acknowledged> acknowledged;
  // Each person's acknowledged request ids, in the order settled (one
  // client settles a person, one bill at a time).
  std::map<int, std::vector<std::string>> by_person;
  int resent_requests = 0;   // requests sent to B after A left them without an answer
  int resent_calls = 0;      // calls made to answer them (re-sends of re-sends included)
  int replayed = 0;          // of those, answered as a replay (A had committed them)
  int unresolved = 0;        // requests still without an answer after kGiveUpMs
  int refused = 0;           // requests answered with a refusal (none expected)
  int64_t kill_to_first_answer_from_b_ms = -1;
};

class GatewayFailoverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (FindRedisServer().empty() || FindRedisCli().empty()) {
      GTEST_SKIP() << "needs redis-server and redis-cli (bash deploy/install-deps.sh)";
    }
  }

  // A medsettle-gateway process over the harness's cluster, serving
  // plaintext on 127.0.0.1; its port, or 0 after reporting why not.
  int StartGateway(GatewayHarness& h, std::unique_ptr<ChildProcess>* process) {
    // The clients of one institution send far more than the default rate
    // limit allows (500/s), which only a configuration file can lift.
    const std::string config = h.cluster().node(0).dir() + "/failover-gateway.yaml";
    std::ofstream(config) << "rate_limit:\n  requests_per_second: 0\n";
    *process = ChildProcess::Spawn(
        MEDSETTLE_GATEWAY_BINARY,
        {"--config", config, "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
         "--insecure-dev", "--redis-mode", "cluster", "--redis", h.cluster().Seeds(),
         "--redis-replica-acks", "1", "--redis-replica-ack-timeout-ms", "2000",
         "--redis-timeout-ms", "3000", "--request-timeout-ms", "5000", "--key-file",
         h.config().key_file, "--snapshot-refresh-ms", "50"});
    if (*process == nullptr) {
      ADD_FAILURE() << "cannot start " << MEDSETTLE_GATEWAY_BINARY;
      return 0;
    }
    const int port = (*process)->WaitServing(20000);
    if (port == 0) {
      ADD_FAILURE() << "no \"listening on\" line; stdout: " << (*process)->out()
                    << "\nstderr: " << (*process)->err();
    }
    return port;
  }
};

// Settles bills of every person in rounds from kClients threads through
// gateway A, kills A with SIGKILL kLoadBeforeKillMs in, and goes on
// through B until B has answered for kLoadAfterFailoverMs. A client moves
// to B after its first call without a definite answer, re-sending that
// very request; client t settles persons t+1, t+1+kClients, …
LoadResult SettleThroughAKillAndFailover(ChildProcess& gateway_a, int port_a, int port_b) {
  LoadResult result;
  std::mutex mutex;  // guards result
  std::atomic<bool> stop{false};
  const Clock::time_point started = Clock::now();
  std::atomic<int64_t> killed_at_ms{-1};   // since `started`
  std::atomic<int64_t> first_from_b_ms{-1};  // since `started`, after the kill

  std::vector<std::thread> clients;
  for (int t = 0; t < kClients; ++t) {
    clients.emplace_back([&, t] {
      std::unique_ptr<Stub> gateway[2] = {StubTo(port_a), StubTo(port_b)};
      int target = 0;  // A, until it leaves a call without an answer
      for (int round = 0; !stop.load(); ++round) {
        for (int person = 1 + t; person <= kPersons && !stop.load(); person += kClients) {
          const v1::SettleRequest request = GeneralOutpatientBill(
              Cat("fo-", person, "-", round), QuzhouId(person), 1 + round % 3);
          const Clock::time_point first_sent = Clock::now();
          bool resent = false;
          for (;;) {
            v1::SettleResponse out;
            const CallResult c = GatewayHarness::Call(*gateway[target], &Stub::Settle,
                                                      HospitalId(), request, &out, 5000);
            if (c.ok() && target == 1 && killed_at_ms.load() >= 0) {
              int64_t none = -1;
              first_from_b_ms.compare_exchange_strong(none, MsSince(started));
            }
            if (!OutcomeUnknown(c.code())) {
              std::lock_guard<std::mutex> lock(mutex);
              if (!c.ok()) {
                ++result.refused;
                ADD_FAILURE() << request.request_id() << ": " << Describe(c);
                break;
              }
              if (resent && out.replayed()) ++result.replayed;
              result.by_person[person].push_back(request.request_id());
              result.acknowledged.emplace(request.request_id(),
                                          Acknowledged{request, std::move(out)});
              break;
            }
            if (MsSince(first_sent) > kGiveUpMs) {
              std::lock_guard<std::mutex> lock(mutex);
              ++result.unresolved;
              ADD_FAILURE() << request.request_id() << " unresolved: " << Describe(c);
              break;
            }
            // The same request, to B from now on (after a pause when B
            // itself left it without an answer).
            if (target == 1) std::this_thread::sleep_for(std::chrono::milliseconds(20));
            target = 1;
            std::lock_guard<std::mutex> lock(mutex);
            if (!resent) ++result.resent_requests;
            ++result.resent_calls;
            resent = true;
          }
        }
      }
    });
  }

  std::this_thread::sleep_for(std::chrono::milliseconds(kLoadBeforeKillMs));
  killed_at_ms = MsSince(started);
  gateway_a.Kill9();
  while (MsSince(started) - killed_at_ms.load() < kGiveUpMs &&
         (first_from_b_ms.load() < 0 ||
          MsSince(started) - first_from_b_ms.load() < kLoadAfterFailoverMs)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  stop = true;
  for (std::thread& c : clients) c.join();
  if (first_from_b_ms.load() >= 0) {
    result.kill_to_first_answer_from_b_ms = first_from_b_ms.load() - killed_at_ms.load();
  }
  return result;
}

// Every acknowledged settlement is in the ledger exactly once with the
// amounts acknowledged, and the ledger holds nothing else.
void ExpectLedgerHoldsExactlyTheAcknowledged(
    const std::string& conninfo, const std::map<std::string, Acknowledged>& acknowledged) {
  std::map<std::string, const v1::SettleResponse*> by_settlement;
  for (const auto& [request_id, a] : acknowledged) {
    by_settlement[a.response.settlement_id()] = &a.response;
  }
  absl::StatusOr<std::unique_ptr<ledger::PgConnection>> pg = ledger::PgConnection::Connect(
      {.conninfo = conninfo, .application_name = "gateway_failover_test"});
  ASSERT_TRUE(pg.ok()) << pg.status();
  absl::StatusOr<ledger::PgResult> rows = (*pg)->Exec(
      "SELECT settlement_id, request_id, total_cents, base_fund_cents, patient_cents, record "
      "FROM ledger.settlements");
  ASSERT_TRUE(rows.ok()) << rows.status();
  std::map<std::string, int> times;
  int unknown = 0, differing = 0;
  for (int i = 0; i < rows->rows(); ++i) {
    const std::string id(rows->text(i, 0));
    ++times[id];
    const auto it = by_settlement.find(id);
    if (it == by_settlement.end()) {
      if (++unknown <= 5) ADD_FAILURE() << "the ledger holds " << id << ", never acknowledged";
      continue;
    }
    const v1::SettleResponse& acked = *it->second;
    v1::LedgerRecord record;
    const bool same =
        rows->text(i, 1) == acked.request_id() &&
        rows->int64(i, 2) == acked.amounts().total_cents() &&
        rows->int64(i, 3) == acked.amounts().base_fund_cents() &&
        rows->int64(i, 4) == acked.amounts().patient_cents() &&
        record.ParseFromString(rows->bytea(i, 5)) &&
        MessageDifferencer::Equals(record.response().amounts(), acked.amounts()) &&
        MessageDifferencer::Equals(record.response().year_to_date(), acked.year_to_date());
    if (!same && ++differing <= 5) {
      ADD_FAILURE() << id << " (" << acked.request_id() << "): the ledger's row differs from "
                    << "what was acknowledged: " << acked.amounts().ShortDebugString();
    }
  }
  int twice = 0, missing = 0;
  for (const auto& [id, n] : times) {
    if (n != 1 && ++twice <= 5) ADD_FAILURE() << "the ledger holds " << id << " " << n << " times";
  }
  for (const auto& [id, response] : by_settlement) {
    if (!times.contains(id) && ++missing <= 5) {
      ADD_FAILURE() << "the ledger lacks " << id << " (" << response->request_id() << ")";
    }
  }
  EXPECT_EQ(static_cast<size_t>(rows->rows()), acknowledged.size());
  EXPECT_EQ(unknown + differing + twice + missing, 0)
      << unknown << " unknown, " << differing << " differing, " << twice << " duplicated, "
      << missing << " missing";
  absl::StatusOr<ledger::PgResult> reversals = (*pg)->Exec("SELECT count(*) FROM ledger.reversals");
  ASSERT_TRUE(reversals.ok()) << reversals.status();
  EXPECT_EQ(reversals->int64(0, 0), 0);
}

TEST_F(GatewayFailoverTest, Kill9OfAGatewayUnderLoadLosesNothingAcknowledgedAndPaysNothingTwice) {
  const Clock::time_point test_started = Clock::now();
  absl::StatusOr<std::unique_ptr<PostgresServer>> postgres = PostgresServer::Start();
  if (postgres.status().code() == absl::StatusCode::kNotFound) {
    GTEST_SKIP() << postgres.status().message();
  }
  ASSERT_TRUE(postgres.ok()) << postgres.status();
  absl::StatusOr<std::unique_ptr<GatewayHarness>> started = GatewayHarness::Start(
      Persons(), {Hospital(kQuzhou, 2)}, nullptr, {.cluster = true});
  ASSERT_TRUE(started.ok()) << started.status();
  GatewayHarness& h = **started;

  // The persons' tags reach every shard.
  absl::StatusOr<cache::SlotMap> map = h.cluster().Slots();
  ASSERT_TRUE(map.ok()) << map.status();
  std::set<int> shards;
  for (int i = 1; i <= kPersons; ++i) {
    shards.insert(*map->ShardOf(cache::TagSlot(h.PersonKey(QuzhouId(i)).substr(0, 2))));
  }
  EXPECT_EQ(shards.size(), 3u);

  std::unique_ptr<ChildProcess> gateway_a, gateway_b;
  const int port_a = StartGateway(h, &gateway_a);
  ASSERT_GT(port_a, 0);
  const int port_b = StartGateway(h, &gateway_b);
  ASSERT_GT(port_b, 0);

  LoadResult load = SettleThroughAKillAndFailover(*gateway_a, port_a, port_b);
  std::printf("kill -9 of gateway A under load (%d clients, Redis Cluster, replica_acks 1): %zu "
              "settlements acknowledged, %d requests re-sent to gateway B (%d calls, %d "
              "replayed: committed by A before it died), first answer from B %lld ms after "
              "the kill\n",
              kClients, load.acknowledged.size(), load.resent_requests, load.resent_calls,
              load.replayed, static_cast<long long>(load.kill_to_first_answer_from_b_ms));
  ASSERT_GE(load.kill_to_first_answer_from_b_ms, 0) << "gateway B never answered";
  EXPECT_EQ(load.unresolved, 0);
  EXPECT_EQ(load.refused, 0);
  // Every client's first call after the kill (if none before) went to A,
  // found it gone and was re-sent.
  EXPECT_GE(load.resent_requests, kClients);
  // Load ran on both sides of the kill (Release: thousands; a loaded
  // sanitizer build far fewer).
  EXPECT_GT(load.acknowledged.size(), 50u);

  // Each request id has one settlement: a replay answers it again, and no
  // other request id has it.
  std::unique_ptr<Stub> stub_b = StubTo(port_b);
  std::set<std::string> settlement_ids;
  for (const auto& [request_id, a] : load.acknowledged) {
    EXPECT_TRUE(settlement_ids.insert(a.response.settlement_id()).second)
        << a.response.settlement_id() << " acknowledged for two request ids";
  }
  std::vector<const Acknowledged*> all;
  for (const auto& [request_id, a] : load.acknowledged) all.push_back(&a);
  std::atomic<int> replays_differing{0};
  RunInThreads(kClients, [&](int t) {
    for (size_t i = static_cast<size_t>(t); i < all.size(); i += kClients) {
      const v1::SettleResponse& acked = all[i]->response;
      v1::SettleResponse again;
      const CallResult c = GatewayHarness::Call(*stub_b, &Stub::Settle, HospitalId(),
                                                all[i]->request, &again);
      if (!c.ok() || !again.replayed() || again.settlement_id() != acked.settlement_id() ||
          !MessageDifferencer::Equals(again.amounts(), acked.amounts())) {
        if (++replays_differing <= 5) {
          ADD_FAILURE() << acked.request_id() << " replayed as " << Describe(c) << " "
                        << again.settlement_id() << " (acknowledged " << acked.settlement_id()
                        << ")";
        }
      }
    }
  });
  EXPECT_EQ(replays_differing.load(), 0);

  // Nothing acknowledged is lost, nothing is paid twice: each person's year
  // to date is the one its last acknowledged settlement reported.
  for (const auto& [person, request_ids] : load.by_person) {
    v1::CheckCoverageResponse now;
    const CallResult c = GatewayHarness::Call(*stub_b, &Stub::CheckCoverage, HospitalId(),
                                              CoverageRequest(QuzhouId(person)), &now);
    ASSERT_TRUE(c.ok()) << Describe(c);
    EXPECT_TRUE(MessageDifferencer::Equals(
        now.year_to_date(), load.acknowledged.at(request_ids.back()).response.year_to_date()))
        << "person " << person << " after " << request_ids.back();
  }
  v1::ReconcileRequest day;
  day.set_date(kServiceDate);
  v1::ReconcileResponse reconciled;
  const CallResult c =
      GatewayHarness::Call(*stub_b, &Stub::Reconcile, HospitalId(), day, &reconciled);
  ASSERT_TRUE(c.ok()) << Describe(c);
  EXPECT_EQ(reconciled.settled().count(), static_cast<int64_t>(load.acknowledged.size()));
  gateway_b.reset();  // nothing more is settled: the journals are complete

  // The ledger: what the cluster's journals hold, shipped by
  // medsettle-ledger as an operator runs it against a cluster.
  const std::string conninfo = (*postgres)->conninfo();
  const std::vector<std::string> redis_flags = {"--redis", h.cluster().Seeds(), "--redis-mode",
                                                "cluster"};
  auto with_redis = [&](std::vector<std::string> args) {
    args.insert(args.end(), redis_flags.begin(), redis_flags.end());
    return args;
  };
  const ToolResult migrated = RunLedgerTool({"migrate", "--ledger", conninfo});
  ASSERT_EQ(migrated.code, 0) << migrated.output;
  const Clock::time_point shipping = Clock::now();
  const ToolResult shipped = RunLedgerTool(
      with_redis({"ship", "--drain", "--report-seconds", "0", "--ledger", conninfo}));
  ASSERT_EQ(shipped.code, 0) << shipped.output;
  const int64_t ship_ms = MsSince(shipping);
  EXPECT_NE(shipped.output.find(Cat("shipped ", load.acknowledged.size(), " journal entries")),
            std::string::npos)
      << shipped.output;
  cache::RedisSettlementStore journals(h.client());
  absl::StatusOr<std::vector<cache::RedisSettlementStore::JournalLength>> lengths =
      journals.JournalLengths();
  ASSERT_TRUE(lengths.ok()) << lengths.status();
  int64_t left = 0;
  for (const auto& l : *lengths) left += l.entries;
  EXPECT_EQ(left, 0) << "journal entries left in the cluster after ship --drain";

  ExpectLedgerHoldsExactlyTheAcknowledged(conninfo, load.acknowledged);
  const ToolResult verified = RunLedgerTool(with_redis({"verify", "--ledger", conninfo}));
  EXPECT_EQ(verified.code, 0) << verified.output;
  std::printf("shipped %zu settlements from the cluster into the ledger in %lld ms; the whole "
              "test took %lld ms\n",
              load.acknowledged.size(), static_cast<long long>(ship_ms),
              static_cast<long long>(MsSince(test_started)));
}

}  // namespace
}  // namespace medsettle::testing
