// The gateway on a Redis Cluster (label cluster): the same persons, bills,
// reversals and reconciliations sent to a gateway over one Redis server and
// to a gateway over a cluster of three primaries and three replicas
// (tests/support/redis_cluster.h, redis.mode: cluster) give the same
// amounts and year-to-date totals to the fen, every person's keys live on
// the primary that serves their tag, and re-sent requests replay.
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cache/cluster_slots.h"
#include "cache/settlement_store.h"
#include "cache/snapshot_store.h"
#include "engine/status.h"
#include "engine/text.h"
#include "gateway/credentials/ec_token.h"
#include "medsettle/v1/service.grpc.pb.h"
#include "tests/support/engine_fixture.h"
#include "tests/support/gateway_harness.h"
#include "tests/support/http_client.h"
#include "tests/support/redis_cluster.h"
#include "tests/support/settling_clients.h"
#include "tools/journal/journal_tool.h"
#include "tools/snapshot/snapshot_tool.h"

namespace medsettle::testing {
namespace {

using engine::Cat;
using Stub = v1::SettlementService::Stub;
namespace creds = credentials;

constexpr engine::RegionCode kQuzhou = 330800;
constexpr int kPersons = 240;

std::vector<SnapshotPerson> Persons() { return QuzhouPersons2024(kPersons); }

std::vector<engine::Institution> Institutions() {
  return {Hospital(kQuzhou, 2), Hospital(kQuzhou, 3), Pharmacy(kQuzhou)};
}

// What must be equal between the two gateways: everything but the ids
// and times each run makes itself.
std::string Comparable(v1::SettleResponse r) {
  r.clear_settlement_id();
  r.clear_settled_at();
  return r.SerializeAsString();
}

class GatewayClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (FindRedisServer().empty() || FindRedisCli().empty()) {
      GTEST_SKIP() << "needs redis-server and redis-cli (bash deploy/install-deps.sh)";
    }
  }
};

TEST_F(GatewayClusterTest, EverySettlementOnAClusterEqualsTheSingleServersToTheFen) {
  absl::StatusOr<std::unique_ptr<GatewayHarness>> single =
      GatewayHarness::Start(Persons(), Institutions());
  ASSERT_TRUE(single.ok()) << single.status();
  absl::StatusOr<std::unique_ptr<GatewayHarness>> cluster =
      GatewayHarness::Start(Persons(), Institutions(), nullptr, {.cluster = true});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  GatewayHarness* both[] = {single->get(), cluster->get()};

  // The persons' tags reach every shard.
  absl::StatusOr<cache::SlotMap> map = (*cluster)->cluster().Slots();
  ASSERT_TRUE(map.ok()) << map.status();
  std::set<std::string> tags;
  std::set<int> shards;
  for (int i = 1; i <= kPersons; ++i) {
    const std::string tag = (*cluster)->PersonKey(QuzhouId(i)).substr(0, 2);
    tags.insert(tag);
    shards.insert(*map->ShardOf(cache::TagSlot(tag)));
  }
  EXPECT_GT(tags.size(), 150u);
  EXPECT_EQ(shards.size(), 3u);

  const std::string hospital = Hospital(kQuzhou, 2).institution_id;
  const std::string pharmacy = Pharmacy(kQuzhou).institution_id;
  std::vector<std::string> settled_ids[2];
  std::vector<std::string> settled_by;
  std::string first_of_person_7;
  for (int i = 1; i <= kPersons; ++i) {
    // Two visits each, the second on top of the first's totals; an
    // inpatient stay for every fifth person.
    std::vector<std::pair<std::string, v1::SettleRequest>> calls = {
        {pharmacy, GeneralOutpatientBill(Cat("p-", i), QuzhouId(i), 1 + i % 4)},
        {hospital, GeneralOutpatientBill(Cat("h-", i), QuzhouId(i), 2)}};
    if (i % 5 == 0) calls.push_back({hospital, InpatientBill(Cat("ip-", i), QuzhouId(i))});
    for (const auto& [institution, request] : calls) {
      v1::SettleResponse out[2];
      for (int g = 0; g < 2; ++g) {
        CallResult c = both[g]->Call(&Stub::Settle, institution, request, &out[g]);
        ASSERT_TRUE(c.ok()) << (g == 0 ? "single: " : "cluster: ") << Describe(c);
        settled_ids[g].push_back(out[g].settlement_id());
      }
      settled_by.push_back(institution);
      if (request.request_id() == "p-7") first_of_person_7 = out[1].settlement_id();
      ASSERT_EQ(Comparable(out[0]), Comparable(out[1]))
          << request.request_id() << "\nsingle:  " << out[0].ShortDebugString()
          << "\ncluster: " << out[1].ShortDebugString();
    }
  }

  // Every person's year totals live on the primary that serves their tag.
  for (int i = 1; i <= kPersons; i += 7) {
    const std::string key = (*cluster)->PersonKey(QuzhouId(i));
    const std::string acc = cache::AccumulatorsKey(key, 2024);
    const int owner = (*cluster)->cluster().IndexOf(*map->PrimaryOf(cache::KeySlot(acc)));
    cache::RedisResult exists = (*cluster)->cluster().Command(owner, {"EXISTS", acc});
    ASSERT_TRUE(exists.ok()) << exists.status();
    EXPECT_EQ(exists->integer, 1) << acc;
  }

  // A re-sent request replays on the cluster, with the same settlement.
  v1::SettleResponse replayed;
  ASSERT_TRUE((*cluster)->Call(&Stub::Settle, pharmacy,
                               GeneralOutpatientBill("p-7", QuzhouId(7), 4),
                               &replayed)
                  .ok());
  EXPECT_TRUE(replayed.replayed());
  EXPECT_EQ(replayed.settlement_id(), first_of_person_7);

  // Reversals of every ninth settlement: the same amounts back, on both.
  for (size_t k = 0; k < settled_ids[0].size(); k += 9) {
    v1::ReverseResponse undone[2];
    for (int g = 0; g < 2; ++g) {
      v1::ReverseRequest reverse;
      reverse.set_request_id(Cat("undo-", k));
      reverse.set_settlement_id(settled_ids[g][k]);
      CallResult c = both[g]->Call(&Stub::Reverse, settled_by[k], reverse, &undone[g]);
      ASSERT_TRUE(c.ok()) << Describe(c);
    }
    EXPECT_EQ(undone[0].amounts().SerializeAsString(), undone[1].amounts().SerializeAsString());
  }

  // Reconcile of each institution's day: the same totals.
  for (const std::string& institution : {hospital, pharmacy}) {
    for (const std::string date : {"2024-06-20", "2024-06-12"}) {
      v1::ReconcileRequest request;
      request.set_date(date);
      v1::ReconcileResponse out[2];
      for (int g = 0; g < 2; ++g) {
        CallResult c = both[g]->Call(&Stub::Reconcile, institution, request, &out[g]);
        ASSERT_TRUE(c.ok()) << Describe(c);
      }
      EXPECT_EQ(out[0].settled().SerializeAsString(), out[1].settled().SerializeAsString())
          << institution << " " << date;
      EXPECT_EQ(out[0].reversed().SerializeAsString(), out[1].reversed().SerializeAsString());
      EXPECT_EQ(out[0].net().SerializeAsString(), out[1].net().SerializeAsString());
    }
  }

  // And the year to date after all of it.
  for (int i = 1; i <= kPersons; i += 11) {
    v1::CheckCoverageResponse coverage[2];
    for (int g = 0; g < 2; ++g) {
      CallResult c = both[g]->Call(&Stub::CheckCoverage, hospital, CoverageRequest(QuzhouId(i)),
                                   &coverage[g]);
      ASSERT_TRUE(c.ok()) << Describe(c);
    }
    EXPECT_EQ(coverage[0].year_to_date().SerializeAsString(),
              coverage[1].year_to_date().SerializeAsString())
        << "person " << i;
  }
}

// redis.replica_acks: with one replica per primary, asking for one gives
// settlements as usual; asking for two (more than exist) writes on the
// primary but reports the outcome unknown (UNAVAILABLE
// REPLICA_ACK_TIMEOUT), and re-sending the same request replays the
// settlement the primary holds: never paid twice.
TEST_F(GatewayClusterTest, ReplicaAcknowledgementsGateTheAnswer) {
  absl::StatusOr<std::unique_ptr<GatewayHarness>> h = GatewayHarness::Start(
      Persons(), Institutions(),
      [](gateway::GatewayConfig& c) {
        c.redis_replica_acks = 1;
        c.redis_replica_ack_timeout_ms = 2000;
        c.redis_command_timeout_ms = 3000;
      },
      {.cluster = true});
  ASSERT_TRUE(h.ok()) << h.status();
  const std::string pharmacy = Pharmacy(kQuzhou).institution_id;
  v1::SettleResponse first;
  CallResult c = (*h)->Call(&Stub::Settle, pharmacy,
                            GeneralOutpatientBill("acks-1", QuzhouId(3), 2), &first);
  ASSERT_TRUE(c.ok()) << Describe(c);

  gateway::GatewayConfig two = (*h)->config();
  two.redis_replica_acks = 2;
  two.redis_replica_ack_timeout_ms = 50;
  absl::StatusOr<std::unique_ptr<gateway::GatewayServer>> strict =
      gateway::GatewayServer::Start(two);
  ASSERT_TRUE(strict.ok()) << strict.status();
  std::unique_ptr<Stub> stub = v1::SettlementService::NewStub(
      GatewayHarness::Connected(GatewayHarness::ChannelTo((*strict)->port())));
  ASSERT_NE(stub, nullptr);
  const v1::SettleRequest request = GeneralOutpatientBill("acks-2", QuzhouId(4), 3);
  v1::SettleResponse unknown;
  c = GatewayHarness::Call(*stub, &Stub::Settle, pharmacy, request, &unknown);
  EXPECT_EQ(c.code(), grpc::StatusCode::UNAVAILABLE) << Describe(c);
  EXPECT_EQ(c.reason, "REPLICA_ACK_TIMEOUT");

  // A replay is held to the same rule: through the strict gateway it is
  // still unknown (the replicas cannot confirm it), through the other it
  // is answered, with the settlement the primary holds.
  v1::SettleResponse still_unknown;
  c = GatewayHarness::Call(*stub, &Stub::Settle, pharmacy, request, &still_unknown);
  EXPECT_EQ(c.code(), grpc::StatusCode::UNAVAILABLE) << Describe(c);
  EXPECT_EQ(c.reason, "REPLICA_ACK_TIMEOUT");
  v1::SettleResponse replayed;
  c = (*h)->Call(&Stub::Settle, pharmacy, request, &replayed);
  ASSERT_TRUE(c.ok()) << Describe(c);
  EXPECT_TRUE(replayed.replayed());
  (*strict)->Shutdown();
}

// The operators' tools on a cluster: medsettle-snapshot synthesises and
// loads a population into it (--redis-mode cluster, any node as a seed),
// the gateway settles persons of every shard from that snapshot, and
// medsettle-journal counts exactly those settlements across the shards.
TEST_F(GatewayClusterTest, TheSnapshotAndJournalToolsWorkOnACluster) {
  absl::StatusOr<std::unique_ptr<GatewayHarness>> h =
      GatewayHarness::Start({}, {}, nullptr, {.cluster = true});
  ASSERT_TRUE(h.ok()) << h.status();
  const std::string dir = (*h)->cluster().node(0).dir();
  const std::string seeds = (*h)->cluster().Seeds();
  auto run = [](auto tool, const std::vector<std::string>& args, std::string* out_text) {
    std::ostringstream out, err;
    const int code = tool(args, out, err);
    if (out_text != nullptr) *out_text = out.str();
    EXPECT_EQ(code, 0) << err.str();
    return code;
  };
  auto snapshot = [](const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    return snapshot_tool::Run(args, out, err);
  };
  auto journal = [](const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    return journal_tool::Run(args, out, err);
  };
  ASSERT_EQ(run(snapshot,
                {"synth", "--persons", "600", "--seed", "11", "--out", dir + "/persons.csv",
                 "--institutions-out", dir + "/institutions.csv"},
                nullptr),
            0);
  std::string loaded;
  ASSERT_EQ(run(snapshot,
                {"load", "--persons", dir + "/persons.csv", "--institutions",
                 dir + "/institutions.csv", "--key-file", (*h)->config().key_file, "--redis",
                 seeds, "--redis-mode", "cluster"},
                &loaded),
            0);
  EXPECT_NE(loaded.find("loaded 600 persons"), std::string::npos) << loaded;
  // The gateway's watcher sees the flip within its refresh interval.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!(*h)->gateway().snapshot_version().has_value() &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE((*h)->gateway().snapshot_version().has_value());

  // Settle an outpatient visit for each of the first persons the CSV
  // lists whose year is 2024 and who are active, until every shard has one.
  absl::StatusOr<cache::SlotMap> map = (*h)->cluster().Slots();
  ASSERT_TRUE(map.ok());
  std::ifstream persons(dir + "/persons.csv");
  std::string line;
  std::getline(persons, line);  // header
  std::set<int> shards;
  int settled = 0;
  int tried = 0;
  const std::string hospital = "H3308000001";  // a synthesised Quzhou hospital
  while (std::getline(persons, line) && shards.size() < 3 && tried < 200) {
    const std::string id = line.substr(0, line.find(','));
    if (line.find(",2024,330800,") == std::string::npos || line.find(",ACTIVE,") == std::string::npos) {
      continue;
    }
    ++tried;
    v1::SettleRequest request;
    request.set_request_id(Cat("tool-", tried));
    request.mutable_credential()->set_id_card_no(id);
    request.mutable_visit()->set_type(v1::VISIT_TYPE_GENERAL_OUTPATIENT);
    request.mutable_visit()->set_service_date("2024-09-10");
    AddBillItem(&request, "FA0002", 2350, 2);
    v1::SettleResponse out;
    CallResult c = (*h)->Call(&Stub::Settle, hospital, request, &out);
    if (!c.ok()) continue;  // a waiting period, a suspension: another person
    ++settled;
    shards.insert(*map->ShardOf(cache::TagSlot((*h)->PersonKey(id).substr(0, 2))));
  }
  EXPECT_EQ(shards.size(), 3u) << settled << " settled of " << tried;

  std::string stats;
  ASSERT_EQ(run(journal, {"stats", "--redis", seeds, "--redis-mode", "cluster"}, &stats), 0);
  EXPECT_NE(stats.find(Cat("entries: ", settled, " in ")), std::string::npos) << stats;
}

// kill -9 of a primary while four clients settle (issue 11): with
// redis.replica_acks 1, every settlement the gateway acknowledged is there
// after the replica's promotion, and none is paid twice; the killed node
// comes back as the new primary's replica. Clients re-send a
// request with the same request id after any UNAVAILABLE, DEADLINE_EXCEEDED
// or ABORTED, as HIS systems are told to; each person is settled by one
// client, in order, so the year to date of a person's last acknowledged
// settlement must equal what the cluster holds at the end (a lost
// settlement leaves less, a double payment more), and the day's Reconcile
// must count exactly the acknowledged settlements.
TEST_F(GatewayClusterTest, Kill9OfAPrimaryUnderLoadLosesNothingAcknowledgedAndPaysNothingTwice) {
  absl::StatusOr<std::unique_ptr<GatewayHarness>> started = GatewayHarness::Start(
      Persons(), Institutions(), UseReplicaAcksForFailover, {.cluster = true});
  ASSERT_TRUE(started.ok()) << started.status();
  GatewayHarness& h = **started;
  const std::string hospital = Hospital(kQuzhou, 2).institution_id;
  absl::StatusOr<cache::SlotMap> map = h.cluster().Slots();
  ASSERT_TRUE(map.ok());
  // The victim: the primary that serves person 1.
  const int victim_shard = *map->ShardOf(cache::TagSlot(h.PersonKey(QuzhouId(1)).substr(0, 2)));
  const cache::ClusterShard victim = map->shards()[static_cast<size_t>(victim_shard)];
  auto on_victim = [&](int person) {
    return *map->ShardOf(cache::TagSlot(h.PersonKey(QuzhouId(person)).substr(0, 2))) ==
           victim_shard;
  };

  std::atomic<int64_t> killed_at_ms{0}, first_served_after_kill_ms{0};
  auto now_ms = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  };
  AcknowledgedModel model;
  std::vector<int> everyone;
  for (int person = 1; person <= kPersons; ++person) everyone.push_back(person);
  SettlingClients clients(
      h,
      {.clients = 4,
       .persons = everyone,
       .institution = hospital,
       .request =
           [](int person, int round) {
             return GeneralOutpatientBill(Cat("fo-", person, "-", round), QuzhouId(person),
                                          1 + round % 3);
           },
       .resend = {},
       .on_acknowledged =
           [&](int person) {
             int64_t unset = 0;
             if (killed_at_ms.load() != 0 && on_victim(person)) {
               first_served_after_kill_ms.compare_exchange_strong(unset, now_ms());
             }
           }},
      model);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  RedisServer& victim_node = h.cluster().node(h.cluster().IndexOf(victim.primary));
  victim_node.Kill9();
  killed_at_ms = now_ms();
  // Its replica is promoted after the node timeout (1 s); with no replica
  // left, that shard's commits cannot be confirmed (REPLICA_ACK_TIMEOUT,
  // clients re-send) until the old primary is back, as the replica of the
  // new one: an operator's (or Kubernetes') restart.
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  ASSERT_TRUE(victim_node.Restart().ok());
  // Load until the victim's persons were served again for 3 s (≤ 25 s).
  while (now_ms() - killed_at_ms.load() < 25000 &&
         (first_served_after_kill_ms.load() == 0 ||
          now_ms() - first_served_after_kill_ms.load() < 3000)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  clients.Stop();

  ASSERT_NE(first_served_after_kill_ms.load(), 0) << "the victim's persons were never served again";
  std::printf("kill -9 of primary %s under load: %zu settlements acknowledged, %d re-sent, "
              "served again %lld ms after the kill\n",
              victim.primary.ToString().c_str(), model.settlements(), clients.resent(),
              static_cast<long long>(first_served_after_kill_ms.load() - killed_at_ms.load()));
  EXPECT_EQ(clients.unanswered(), 0);
  EXPECT_EQ(clients.refused(), 0);
  // Load ran (Release: 585–670; a loaded sanitizer build far fewer).
  EXPECT_GT(model.settlements(), 50u);
  int on_the_victim = 0;
  for (int person : everyone) on_the_victim += on_victim(person) && !model.Unreversed(person).empty();
  EXPECT_GT(on_the_victim, 0);

  // Nothing acknowledged is lost, nothing is paid twice.
  model.ExpectGatewayHolds(h, hospital, "2024-06-20", QuzhouId,
                           Cat("kill -9 of ", victim.primary.ToString()));
}

// Enrollment deltas and e-insurance codes on a cluster, for a person of
// every shard: a code settles once (its nonce is written beside the
// person's accumulators, on their primary) and is refused as replayed for
// any other request; a family member of another shard presents a parent's
// code once a delta bound them, and not after another unbound them; a
// suspension, a lost-voucher report and a mid-year enrollee reach the
// gateway without a snapshot load, on every shard; an institution delta
// too.
TEST_F(GatewayClusterTest, DeltasAndEInsuranceCodesWorkForPersonsOfEveryShard) {
  const std::filesystem::path keys_dir =
      std::filesystem::temp_directory_path() / Cat("medsettle-cluster-issuer-", ::getpid());
  std::filesystem::create_directories(keys_dir);
  struct RemoveDir {
    std::filesystem::path dir;
    ~RemoveDir() {
      std::error_code ignored;
      std::filesystem::remove_all(dir, ignored);
    }
  } remove_keys{keys_dir};
  absl::StatusOr<creds::IssuerSigningKey> signer = creds::IssuerSigningKey::Generate();
  ASSERT_TRUE(signer.ok()) << signer.status();
  std::ofstream(keys_dir / "vp-cluster.pub.pem") << signer->PublicKeyPem();
  absl::StatusOr<std::unique_ptr<GatewayHarness>> started = GatewayHarness::Start(
      Persons(), Institutions(),
      [&](gateway::GatewayConfig& c) { c.ec_token_issuer_keys_dir = keys_dir.string(); },
      {.cluster = true});
  ASSERT_TRUE(started.ok()) << started.status();
  GatewayHarness& h = **started;
  const std::string hospital = Hospital(kQuzhou, 2).institution_id;
  absl::StatusOr<cache::SlotMap> map = h.cluster().Slots();
  ASSERT_TRUE(map.ok()) << map.status();
  auto shard_of = [&](const std::string& id_number) {
    return *map->ShardOf(cache::TagSlot(h.PersonKey(id_number).substr(0, 2)));
  };
  // The first enrolled person of each shard, and an ID number of each shard
  // the snapshot does not have (mid-year enrollees).
  std::map<int, std::string> enrolled, newcomers;
  for (int i = 1; i <= kPersons; ++i) enrolled.emplace(shard_of(QuzhouId(i)), QuzhouId(i));
  for (int i = kPersons + 1; newcomers.size() < map->shards().size(); ++i) {
    newcomers.emplace(shard_of(QuzhouId(i)), QuzhouId(i));
  }
  ASSERT_EQ(enrolled.size(), map->shards().size());
  const int64_t now_minute = std::chrono::duration_cast<std::chrono::minutes>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
  auto token = [&](const std::string& id_number, const std::string& presenter = "",
                   int age_minutes = 0) {
    creds::EcTokenClaims claims;
    claims.key_id = "vp-cluster";
    claims.person_key = h.PersonKey(id_number);
    if (!presenter.empty()) claims.presenter_key = h.PersonKey(presenter);
    claims.issued_at_minute = now_minute - age_minutes;
    claims.expires_at_minute = claims.issued_at_minute + 10;
    claims.scopes = creds::kAllScopes;
    absl::StatusOr<std::string> t = signer->Issue(claims);
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? *t : std::string();
  };
  auto settle_with = [&](const std::string& request_id, const std::string& code,
                         v1::SettleResponse* out) {
    v1::SettleRequest r = GeneralOutpatientBill(request_id, "", 1);
    r.mutable_credential()->Clear();
    r.mutable_credential()->set_ec_token(code);
    return h.Call(&Stub::Settle, hospital, r, out);
  };
  auto poll_until = [](const std::function<bool()>& done) {
    for (int i = 0; i < 100; ++i) {  // ≤ 5 s: the gateway's next snapshot poll
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  };

  for (const auto& [shard, id_number] : enrolled) {
    SCOPED_TRACE(Cat("shard ", shard));
    const std::string code = token(id_number);
    v1::SettleResponse first, again, other;
    CallResult c = settle_with(Cat("ec-", shard), code, &first);
    ASSERT_TRUE(c.ok()) << Describe(c);
    EXPECT_EQ(first.person_key(), h.PersonKey(id_number));
    c = settle_with(Cat("ec-", shard), code, &again);
    ASSERT_TRUE(c.ok()) << Describe(c);
    EXPECT_TRUE(again.replayed());
    EXPECT_EQ(again.settlement_id(), first.settlement_id());
    c = settle_with(Cat("ec-other-", shard), code, &other);
    EXPECT_EQ(c.reason, creds::reason::kTokenReplayed) << Describe(c);
  }

  // A parent of one shard binds a child of another (亲情账户).
  const std::string parent = enrolled.begin()->second;
  const std::string child = std::next(enrolled.begin())->second;
  cache::Delta bind{.kind = cache::DeltaKind::kBindPresenter};
  bind.enrollment.person_key = h.PersonKey(parent);
  bind.presenter_key = h.PersonKey(child);
  ASSERT_TRUE(h.snapshot_store().ApplyDelta(bind).ok());
  v1::SettleResponse out;
  CallResult c;
  int family = 0;
  EXPECT_TRUE(poll_until([&] {
    c = settle_with(Cat("family-", ++family), token(parent, child), &out);
    return c.ok();
  })) << Describe(c);
  EXPECT_EQ(out.person_key(), h.PersonKey(parent));
  EXPECT_EQ(out.presenter_key(), h.PersonKey(child));
  cache::Delta unbind = bind;
  unbind.kind = cache::DeltaKind::kUnbindPresenter;
  ASSERT_TRUE(h.snapshot_store().ApplyDelta(unbind).ok());
  EXPECT_TRUE(poll_until([&] {
    c = settle_with(Cat("family-", ++family), token(parent, child), &out);
    return c.reason == creds::reason::kPresenterNotBound;
  })) << Describe(c);

  for (const auto& [shard, id_number] : enrolled) {
    SCOPED_TRACE(Cat("shard ", shard));
    // A lost voucher: a code issued before the report is refused.
    cache::Delta revoke{.kind = cache::DeltaKind::kRevokeVoucher};
    revoke.enrollment.person_key = h.PersonKey(id_number);
    revoke.revoked_at_unix = now_minute * 60 - 60;
    ASSERT_TRUE(h.snapshot_store().ApplyDelta(revoke).ok());
    int attempt = 0;
    EXPECT_TRUE(poll_until([&] {
      c = settle_with(Cat("lost-", shard, "-", ++attempt), token(id_number, "", 5), &out);
      return c.reason == engine::reason::kVoucherRevoked;
    })) << Describe(c);
    // Suspended: refused by ID card too.
    cache::Delta suspend{.kind = cache::DeltaKind::kSuspend};
    suspend.enrollment.person_key = h.PersonKey(id_number);
    ASSERT_TRUE(h.snapshot_store().ApplyDelta(suspend).ok());
    EXPECT_TRUE(poll_until([&] {
      c = h.Call(&Stub::Settle, hospital, GeneralOutpatientBill(Cat("susp-", shard, "-", ++attempt),
                                                      id_number, 1),
                 &out);
      return c.reason == "ENROLLMENT_SUSPENDED";
    })) << Describe(c);
  }
  for (const auto& [shard, id_number] : newcomers) {
    SCOPED_TRACE(Cat("shard ", shard));
    c = h.Call(&Stub::Settle, hospital,
               GeneralOutpatientBill(Cat("new-", shard, "-0"), id_number, 1), &out);
    EXPECT_EQ(c.reason, "PERSON_NOT_ENROLLED") << Describe(c);
    cache::Delta upsert{.kind = cache::DeltaKind::kUpsertPerson};
    upsert.enrollment = Person(kQuzhou, 2024, 0);
    upsert.enrollment.person_key = h.PersonKey(id_number);
    ASSERT_TRUE(h.snapshot_store().ApplyDelta(upsert).ok());
    int attempt = 0;
    EXPECT_TRUE(poll_until([&] {
      c = h.Call(&Stub::Settle, hospital,
                 GeneralOutpatientBill(Cat("new-", shard, "-", ++attempt), id_number, 1), &out);
      return c.ok();
    })) << Describe(c);
  }

  // The institution registry: a suspension reaches the gateway too.
  cache::InstitutionDelta suspend{.kind = cache::InstitutionDeltaKind::kSuspendInstitution};
  suspend.institution.institution_id = hospital;
  ASSERT_TRUE(h.snapshot_store().ApplyInstitutionDelta(suspend).ok());
  int attempt = 0;
  EXPECT_TRUE(poll_until([&] {
    c = h.Call(&Stub::Settle, hospital,
               GeneralOutpatientBill(Cat("inst-", ++attempt), newcomers.begin()->second, 1), &out);
    return c.reason == "INSTITUTION_SUSPENDED";
  })) << Describe(c);
}

// Health per node: the gateway probes each primary of the slot table
// (redis.node_probe_ms) and serves while more than half answer. One
// primary killed — the one holding snap:current, which the snapshot
// watcher polls: its node shows down in medsettle_redis_node_up, the
// gateway stays SERVING on its last snapshot view (two thirds of the
// persons can settle), and after the failover the promoted replica takes
// its place in the metrics, with no replica of its own until the old
// primary is back as one. Two primaries killed at once (no majority left
// to elect replacements): no quorum, NOT_SERVING until they are back.
TEST_F(GatewayClusterTest, HealthFollowsAQuorumOfPrimariesAndMetricsNameEachNode) {
  absl::StatusOr<std::unique_ptr<GatewayHarness>> started = GatewayHarness::Start(
      Persons(), Institutions(),
      [](gateway::GatewayConfig& c) {
        c.redis_node_probe_ms = 100;
        c.redis_connect_timeout_ms = 200;
        c.redis_command_timeout_ms = 300;
      },
      {.cluster = true});
  ASSERT_TRUE(started.ok()) << started.status();
  GatewayHarness& h = **started;
  const int port = h.gateway().metrics_port();
  ASSERT_GT(port, 0);
  auto healthy = [&] {
    return HttpGet(port, "/healthz").find("HTTP/1.1 200") != std::string::npos;
  };
  auto metric = [&](std::string_view series) {
    return MetricValue(HttpGetBody(port, "/metrics"), std::string(series));
  };
  auto of_node = [](std::string_view name, const cache::NodeAddress& node) {
    return Cat(name, "{node=\"", node.ToString(), "\"}");
  };
  auto poll_until = [](int timeout_ms, const std::function<bool()>& done) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (!done()) {
      if (std::chrono::steady_clock::now() > until) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return true;
  };
  absl::StatusOr<cache::SlotMap> map = h.cluster().Slots();
  ASSERT_TRUE(map.ok()) << map.status();
  ASSERT_EQ(map->shards().size(), 3u);
  ASSERT_TRUE(poll_until(3000, healthy));
  EXPECT_EQ(metric("medsettle_redis_quorum"), 1.0);
  for (const cache::ClusterShard& shard : map->shards()) {
    EXPECT_EQ(metric(of_node("medsettle_redis_node_up", shard.primary)), 1.0);
    EXPECT_TRUE(poll_until(3000, [&] {
      return metric(of_node("medsettle_redis_node_replicas", shard.primary)) == 1.0;
    })) << shard.primary.ToString() << " shows no replica";
  }

  // One of three down, the snapshot watcher's: still a quorum, and the
  // watcher serves on its last view.
  const cache::ClusterShard watched =
      map->shards()[static_cast<size_t>(*map->ShardOf(cache::KeySlot(cache::kSnapCurrentKey)))];
  RedisServer& first = h.cluster().node(h.cluster().IndexOf(watched.primary));
  first.Kill9();
  ASSERT_TRUE(poll_until(3000, [&] {
    return metric(of_node("medsettle_redis_node_up", watched.primary)) == 0.0;
  })) << "the killed primary " << watched.primary.ToString() << " never showed down";
  EXPECT_TRUE(healthy()) << "one primary of three down must not stop the gateway";
  EXPECT_EQ(metric("medsettle_redis_quorum"), 1.0);
  // Its replica is promoted (node timeout 1 s) and replaces it in the
  // client's table, so in the metrics: up, and without a replica.
  const cache::NodeAddress promoted = watched.replicas.at(0);
  ASSERT_TRUE(poll_until(15000, [&] {
    return metric(of_node("medsettle_redis_node_up", watched.primary)) == -1.0 &&
           metric(of_node("medsettle_redis_node_up", promoted)) == 1.0;
  })) << "the promoted replica " << promoted.ToString() << " did not replace "
      << watched.primary.ToString();
  EXPECT_EQ(metric(of_node("medsettle_redis_node_replicas", promoted)), 0.0);
  EXPECT_TRUE(healthy());
  ASSERT_TRUE(first.Restart().ok());  // back, as the new primary's replica
  ASSERT_TRUE(h.cluster().WaitHealthy(20000, 1).ok());
  EXPECT_TRUE(poll_until(5000, [&] {
    return metric(of_node("medsettle_redis_node_replicas", promoted)) == 1.0;
  })) << "the old primary came back, and the promoted one still shows no replica";

  // Two of three down at once: no majority to promote their replicas, no
  // quorum for the gateway (the survivor sees the cluster down too).
  absl::StatusOr<cache::SlotMap> now = h.cluster().Slots();
  ASSERT_TRUE(now.ok()) << now.status();
  const std::vector<int> victims = {h.cluster().IndexOf(now->shards()[0].primary),
                                    h.cluster().IndexOf(now->shards()[1].primary)};
  const auto killed_at = std::chrono::steady_clock::now();
  for (int v : victims) h.cluster().node(v).Kill9();
  ASSERT_TRUE(poll_until(5000, [&] { return metric("medsettle_redis_quorum") == 0.0; }))
      << "two primaries of three down, and the gateway still counts a quorum";
  EXPECT_FALSE(healthy()) << "no quorum, and the gateway still reports SERVING";
  const auto not_serving_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::chrono::steady_clock::now() - killed_at)
                                  .count();
  for (int v : victims) {
    EXPECT_TRUE(poll_until(3000, [&] {
      return metric(of_node("medsettle_redis_node_up", h.cluster().address(v))) == 0.0;
    })) << h.cluster().address(v).ToString() << " killed and still shown up";
  }
  for (int v : victims) ASSERT_TRUE(h.cluster().node(v).Restart().ok());
  const auto restarted_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(poll_until(20000, healthy)) << "the primaries are back, the gateway is not serving";
  std::printf("two primaries of three killed: no quorum after %lld ms; SERVING %lld ms after "
              "their restart\n",
              static_cast<long long>(not_serving_ms),
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::steady_clock::now() - restarted_at)
                                         .count()));
  // A quorum is back; every shard serves once all three nodes see the
  // cluster ok again (a settlement of each shard's person, re-sent while
  // UNAVAILABLE for at most 10 s).
  for (int person = 1; person <= 12; ++person) {
    CallResult c;
    ASSERT_TRUE(poll_until(10000, [&] {
      v1::SettleResponse out;
      c = h.Call(&Stub::Settle, Hospital(kQuzhou, 2).institution_id,
                 GeneralOutpatientBill(Cat("after-quorum-", person), QuzhouId(person), 1), &out);
      return c.code() != grpc::StatusCode::UNAVAILABLE;
    }));
    EXPECT_TRUE(c.ok()) << Describe(c);
  }
}

// A gateway told that one plain Redis server is a cluster refuses to
// start, naming why (and stops cleanly: nothing was opened).
TEST_F(GatewayClusterTest, AGatewayPointedAtSeedsThatAreNotAClusterRefusesToStart) {
  absl::StatusOr<std::unique_ptr<GatewayHarness>> h = GatewayHarness::Start(Persons(), Institutions());
  ASSERT_TRUE(h.ok()) << h.status();
  gateway::GatewayConfig config = (*h)->config();
  config.redis_mode = "cluster";
  absl::StatusOr<std::unique_ptr<gateway::GatewayServer>> refused =
      gateway::GatewayServer::Start(config);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(engine::ReasonOf(refused.status()), "REDIS_CLUSTER_TOPOLOGY_INVALID")
      << refused.status();
}

}  // namespace
}  // namespace medsettle::testing
