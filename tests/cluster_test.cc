// A real Redis Cluster on loopback (tests/support/redis_cluster.h: three
// primaries, each with a replica, created by redis-cli --cluster create),
// read through cache/cluster_slots.h: the slot table it reports, the slot
// of every key shape the project writes (CLUSTER KEYSLOT), and the MOVED
// and ASK answers of a slot being resharded; then cache/cluster_client.h
// routing every tag, following MOVED and ASK, refusing what is not a
// cluster, and serving again after kill -9 of a primary (label cluster).
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <thread>
#include <random>
#include <set>
#include <string>

#include "cache/cluster_client.h"
#include "cache/cluster_slots.h"
#include "cache/settlement_store.h"
#include "engine/status.h"
#include "tests/support/redis_cluster.h"

namespace medsettle::cache {
namespace {

using testing::RedisCluster;

// The text of a failed command's error reply.
std::string Message(const RedisResult& result) {
  return std::string(result.status().message().data(), result.status().message().size());
}

class ClusterTest : public testing::RedisClusterTest {
 protected:
  // One cluster for the suite: creating one takes a few seconds.
  static void SetUpTestSuite() {
    if (testing::FindRedisServer().empty() || testing::FindRedisCli().empty()) return;
    absl::StatusOr<std::unique_ptr<RedisCluster>> started = RedisCluster::Start();
    ASSERT_TRUE(started.ok()) << started.status();
    cluster_ = std::move(*started);
  }
  static void TearDownTestSuite() { cluster_.reset(); }

  static RedisCluster& cluster() { return *cluster_; }
  // The node index of `slot`'s primary in `map`, and of another primary:
  // where a test moves the slot.
  static std::pair<int, int> OwnerAndAnotherPrimary(const SlotMap& map, int slot) {
    const int owner = cluster().IndexOf(*map.PrimaryOf(slot));
    int other = -1;
    for (const ClusterShard& shard : map.shards()) {
      if (cluster().IndexOf(shard.primary) != owner) other = cluster().IndexOf(shard.primary);
    }
    EXPECT_GE(owner, 0);
    EXPECT_GE(other, 0);
    return {owner, other};
  }
  static std::unique_ptr<RedisCluster> cluster_;
};
std::unique_ptr<RedisCluster> ClusterTest::cluster_;

TEST_F(ClusterTest, EveryNodeReportsAFullSlotTableOfThreeShards) {
  for (int i = 0; i < cluster().size(); ++i) {
    RedisResult slots = cluster().Command(i, {"CLUSTER", "SLOTS"});
    ASSERT_TRUE(slots.ok()) << slots.status();
    absl::StatusOr<SlotMap> map = SlotMap::FromClusterSlots(*slots, cluster().address(i));
    ASSERT_TRUE(map.ok()) << map.status();
    EXPECT_TRUE(map->CheckCoverage().ok()) << map->CheckCoverage();
    ASSERT_EQ(map->shards().size(), 3u) << "node " << i;
    std::set<int> primaries;
    for (const ClusterShard& shard : map->shards()) {
      const int index = cluster().IndexOf(shard.primary);
      EXPECT_GE(index, 0) << shard.primary.ToString();
      primaries.insert(index);
      ASSERT_EQ(shard.replicas.size(), 1u);
      EXPECT_GE(cluster().IndexOf(shard.replicas[0]), 0);
      EXPECT_EQ(shard.primary_id.size(), 40u);  // a node id
    }
    EXPECT_EQ(primaries.size(), 3u);
    for (int count : map->SlotCounts()) EXPECT_NEAR(count, kClusterSlots / 3, 2);
  }
}

TEST_F(ClusterTest, OurSlotOfEveryKeyShapeIsTheClustersAndEveryTagIsServed) {
  std::mt19937_64 random(20261204);
  std::set<int> shards_used;
  absl::StatusOr<SlotMap> map = cluster().Slots();
  ASSERT_TRUE(map.ok()) << map.status();
  for (int t = 0; t < 256; ++t) {
    char tag[3];
    std::snprintf(tag, sizeof tag, "%02x", t);
    const std::string person_key = std::string(tag) + std::string(62, '7');  // 64 hex
    const std::vector<std::string> keys = {
        AccumulatorsKey(person_key, 2025),
        IdempotencyKey(tag, "H3308000002", "req-" + std::to_string(random())),
        JournalKey(tag),
        ReconcileKey(tag, "P3308000007", engine::Date::FromYmd(2025, 3, 1)),
        "no-tag-" + std::to_string(random()),
        "{" + std::to_string(random()) + "}",
    };
    for (const std::string& key : keys) {
      RedisResult slot = cluster().Command(t % cluster().size(), {"CLUSTER", "KEYSLOT", key});
      ASSERT_TRUE(slot.ok()) << slot.status();
      EXPECT_EQ(KeySlot(key), slot->integer) << key;
    }
    EXPECT_EQ(TagSlot(tag), KeySlot(keys[0]));
    shards_used.insert(*map->ShardOf(TagSlot(tag)));
  }
  // 256 tags reach every shard: persons spread over the whole cluster.
  EXPECT_EQ(shards_used.size(), 3u);
}

TEST_F(ClusterTest, ANodeThatDoesNotOwnTheSlotAnswersMovedToTheOwner) {
  absl::StatusOr<SlotMap> map = cluster().Slots();
  ASSERT_TRUE(map.ok()) << map.status();
  const std::string key = "acc:{3f}:moved-probe";
  const int slot = KeySlot(key);
  const auto [owner, other] = OwnerAndAnotherPrimary(*map, slot);
  ASSERT_GE(other, 0);
  RedisResult wrong = cluster().Command(other, {"SET", key, "1"});
  ASSERT_FALSE(wrong.ok());
  std::optional<Redirection> r =
      ParseRedirection(Message(wrong), cluster().address(other));
  ASSERT_TRUE(r.has_value()) << wrong.status();
  EXPECT_EQ(r->kind, Redirection::Kind::kMoved);
  EXPECT_EQ(r->slot, slot);
  EXPECT_EQ(r->node, cluster().address(owner));
  EXPECT_TRUE(cluster().Command(owner, {"SET", key, "1"}).ok());
}

TEST_F(ClusterTest, ASlotBeingReshardedAnswersAskForMovedKeysThenMovedOnceDone) {
  const std::string tag = "a7";
  const int slot = TagSlot(tag);
  absl::StatusOr<SlotMap> before = cluster().Slots();
  ASSERT_TRUE(before.ok()) << before.status();
  const auto [from, to] = OwnerAndAnotherPrimary(*before, slot);
  ASSERT_GE(from, 0);
  ASSERT_GE(to, 0);
  constexpr int kKeys = 20;
  for (int i = 0; i < kKeys; ++i) {
    RedisResult set =
        cluster().Command(from, {"SET", "k:{" + tag + "}:" + std::to_string(i), std::to_string(i)});
    ASSERT_TRUE(set.ok()) << set.status();
  }

  ASSERT_TRUE(cluster().BeginSlotMove(slot, to).ok());
  absl::StatusOr<int> moved = cluster().MigrateSlotKeys(slot, to, 5);
  ASSERT_TRUE(moved.ok()) << moved.status();
  ASSERT_EQ(*moved, 5);
  int asks = 0;
  int served = 0;
  for (int i = 0; i < kKeys; ++i) {
    const std::string key = "k:{" + tag + "}:" + std::to_string(i);
    RedisResult get = cluster().Command(from, {"GET", key});
    if (get.ok()) {
      EXPECT_EQ(get->str, std::to_string(i));
      ++served;
      continue;
    }
    std::optional<Redirection> r = ParseRedirection(Message(get), cluster().address(from));
    ASSERT_TRUE(r.has_value()) << get.status();
    EXPECT_EQ(r->kind, Redirection::Kind::kAsk);
    EXPECT_EQ(r->node, cluster().address(to));
    ++asks;
    // The ASK target serves it after ASKING on the same connection, and
    // only then (without it, it sends the client back to the owner).
    RedisResult plain = cluster().Command(to, {"GET", key});
    ASSERT_FALSE(plain.ok());
    std::optional<Redirection> back =
        ParseRedirection(Message(plain), cluster().address(to));
    ASSERT_TRUE(back.has_value()) << plain.status();
    EXPECT_EQ(back->kind, Redirection::Kind::kMoved);
    EXPECT_EQ(back->node, cluster().address(from));
    absl::StatusOr<std::vector<RedisResult>> asking =
        cluster().Pipeline(to, {{"ASKING"}, {"GET", key}});
    ASSERT_TRUE(asking.ok()) << asking.status();
    ASSERT_TRUE((*asking)[1].ok()) << (*asking)[1].status();
    EXPECT_EQ((*asking)[1]->str, std::to_string(i));
  }
  EXPECT_EQ(asks, 5);
  EXPECT_EQ(served, kKeys - 5);

  ASSERT_TRUE(cluster().FinishSlotMove(slot, to).ok());
  RedisResult old_owner = cluster().Command(from, {"GET", "k:{" + tag + "}:0"});
  ASSERT_FALSE(old_owner.ok());
  std::optional<Redirection> r =
      ParseRedirection(Message(old_owner), cluster().address(from));
  ASSERT_TRUE(r.has_value()) << old_owner.status();
  EXPECT_EQ(r->kind, Redirection::Kind::kMoved);
  EXPECT_EQ(r->node, cluster().address(to));
  for (int i = 0; i < kKeys; ++i) {
    RedisResult get = cluster().Command(to, {"GET", "k:{" + tag + "}:" + std::to_string(i)});
    ASSERT_TRUE(get.ok()) << get.status();
    EXPECT_EQ(get->str, std::to_string(i));
  }
  absl::StatusOr<SlotMap> after = cluster().Slots();
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(*after->PrimaryOf(slot), cluster().address(to));
  EXPECT_TRUE(after->CheckCoverage().ok());
  // Give the slot back so that the other tests see the layout they expect.
  ASSERT_TRUE(cluster().MoveSlot(slot, from).ok());
}

ClusterOptions OptionsFor(RedisCluster& cluster) {
  absl::StatusOr<std::vector<NodeAddress>> seeds = ParseNodeList(cluster.Seeds());
  EXPECT_TRUE(seeds.ok()) << seeds.status();
  ClusterOptions options;
  options.seeds = seeds.ok() ? *seeds : std::vector<NodeAddress>{};
  options.command_timeout_ms = 2000;
  return options;
}

std::string Tag(int t) {
  char tag[3];
  std::snprintf(tag, sizeof tag, "%02x", t);
  return tag;
}

TEST_F(ClusterTest, TheClientRoutesEveryTagToItsPrimary) {
  absl::StatusOr<std::unique_ptr<ClusterClient>> client = ClusterClient::Connect(OptionsFor(cluster()));
  ASSERT_TRUE(client.ok()) << client.status();
  absl::StatusOr<SlotMap> map = cluster().Slots();
  ASSERT_TRUE(map.ok());
  for (int t = 0; t < 256; ++t) {
    const std::string tag = Tag(t);
    const std::string key = "route:{" + tag + "}:a";
    absl::StatusOr<std::vector<RedisResult>> replies = (*client)->Pipeline(
        tag, {{"SET", key, "v" + tag}, {"HSET", "route:{" + tag + "}:h", "f", "1"}, {"GET", key}});
    ASSERT_TRUE(replies.ok()) << replies.status();
    for (const RedisResult& r : *replies) ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ((*replies)[2]->str, "v" + tag);
    // The key is on the primary the cluster names, and nowhere else.
    const int owner = cluster().IndexOf(*map->PrimaryOf(TagSlot(tag)));
    RedisResult there = cluster().Command(owner, {"GET", key});
    ASSERT_TRUE(there.ok()) << there.status();
    EXPECT_EQ(there->str, "v" + tag);
  }
  EXPECT_EQ((*client)->Stats().moved + (*client)->Stats().ask, 0u);
}

TEST_F(ClusterTest, TheClientFollowsMovedAfterAReshardAndLearnsTheNewOwner) {
  absl::StatusOr<std::unique_ptr<ClusterClient>> client = ClusterClient::Connect(OptionsFor(cluster()));
  ASSERT_TRUE(client.ok()) << client.status();
  const std::string tag = "5c";
  const int slot = TagSlot(tag);
  ASSERT_TRUE((*client)->Command(tag, {"SET", "moved:{5c}", "before"}).ok());
  const auto [from, to] = OwnerAndAnotherPrimary(*(*client)->slots(), slot);
  ASSERT_TRUE(cluster().MoveSlot(slot, to).ok());

  // The client's table still names the old owner: it is answered MOVED,
  // sends the command to the new owner, and reads the table again.
  RedisResult get = (*client)->Command(tag, {"GET", "moved:{5c}"});
  ASSERT_TRUE(get.ok()) << get.status();
  EXPECT_EQ(get->str, "before");
  EXPECT_EQ((*client)->Stats().moved, 1u);
  EXPECT_EQ(*(*client)->slots()->PrimaryOf(slot), cluster().address(to));
  ASSERT_TRUE((*client)->Command(tag, {"SET", "moved:{5c}", "after"}).ok());
  EXPECT_EQ((*client)->Stats().moved, 1u);  // no second redirection
  RedisResult there = cluster().Command(to, {"GET", "moved:{5c}"});
  ASSERT_TRUE(there.ok());
  EXPECT_EQ(there->str, "after");
  ASSERT_TRUE(cluster().MoveSlot(slot, from).ok());
}

// A one-slot pipeline redirected by MOVED goes to the new owner whole: a
// MULTI … EXEC is not split into parts that run outside the transaction.
TEST_F(ClusterTest, ATransactionRedirectedByMovedRunsWholeOnTheNewOwner) {
  absl::StatusOr<std::unique_ptr<ClusterClient>> client = ClusterClient::Connect(OptionsFor(cluster()));
  ASSERT_TRUE(client.ok()) << client.status();
  const std::string tag = "c4";
  const int slot = TagSlot(tag);
  const auto [from, to] = OwnerAndAnotherPrimary(*(*client)->slots(), slot);
  ASSERT_TRUE(cluster().MoveSlot(slot, to).ok());
  absl::StatusOr<std::vector<RedisResult>> replies = (*client)->Pipeline(
      tag, {{"MULTI"}, {"SET", "tx:{c4}:a", "1"}, {"SET", "tx:{c4}:b", "2"}, {"EXEC"}});
  ASSERT_TRUE(replies.ok()) << replies.status();
  ASSERT_TRUE((*replies)[3].ok()) << (*replies)[3].status();  // not EXECABORT
  ASSERT_EQ((*replies)[3]->elements.size(), 2u);
  EXPECT_EQ((*client)->Stats().moved, 2u);  // each SET was answered MOVED; then one round
  RedisResult b = cluster().Command(to, {"GET", "tx:{c4}:b"});
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->str, "2");
  ASSERT_TRUE(cluster().MoveSlot(slot, from).ok());
}

TEST_F(ClusterTest, ThePipelineOfASlotBeingMigratedFollowsAskForTheMovedKeysOnly) {
  absl::StatusOr<std::unique_ptr<ClusterClient>> client = ClusterClient::Connect(OptionsFor(cluster()));
  ASSERT_TRUE(client.ok()) << client.status();
  const std::string tag = "e1";
  const int slot = TagSlot(tag);
  constexpr int kKeys = 12;
  std::vector<RedisArgv> sets;
  std::vector<std::string> keys;
  for (int i = 0; i < kKeys; ++i) keys.push_back("ask:{e1}:" + std::to_string(i));
  std::vector<std::string> values;
  for (int i = 0; i < kKeys; ++i) values.push_back(std::to_string(i * 7));
  for (int i = 0; i < kKeys; ++i) sets.push_back({"SET", keys[static_cast<size_t>(i)], values[static_cast<size_t>(i)]});
  ASSERT_TRUE((*client)->Pipeline(tag, sets).ok());
  const auto [from, to] = OwnerAndAnotherPrimary(*(*client)->slots(), slot);
  ASSERT_TRUE(cluster().BeginSlotMove(slot, to).ok());
  absl::StatusOr<int> moved = cluster().MigrateSlotKeys(slot, to, 4);
  ASSERT_TRUE(moved.ok() && *moved == 4);

  std::vector<RedisArgv> gets;
  for (const std::string& key : keys) gets.push_back({"GET", key});
  absl::StatusOr<std::vector<RedisResult>> replies = (*client)->Pipeline(tag, gets);
  ASSERT_TRUE(replies.ok()) << replies.status();
  for (int i = 0; i < kKeys; ++i) {
    ASSERT_TRUE((*replies)[static_cast<size_t>(i)].ok()) << i << " " << (*replies)[static_cast<size_t>(i)].status();
    EXPECT_EQ((*replies)[static_cast<size_t>(i)]->str, values[static_cast<size_t>(i)]) << i;
  }
  EXPECT_EQ((*client)->Stats().ask, 4u);  // one ASK per moved key
  // ASK does not change the table: the slot is still the old owner's.
  EXPECT_EQ(*(*client)->slots()->PrimaryOf(slot), cluster().address(from));

  ASSERT_TRUE(cluster().FinishSlotMove(slot, to).ok());
  ASSERT_TRUE(cluster().MoveSlot(slot, from).ok());
  replies = (*client)->Pipeline(tag, gets);
  ASSERT_TRUE(replies.ok()) << replies.status();
  EXPECT_EQ((*replies)[0]->str, values[0]);
}

// SendPipeline through the primaries' AsyncRedis: the same results as the
// blocking path, by callback, across every tag, a reshard (MOVED) and a
// migration (ASK).
absl::StatusOr<std::vector<RedisResult>> SendAndWait(ClusterClient& client, std::string_view key,
                                                     const std::vector<RedisArgv>& commands) {
  std::promise<absl::StatusOr<std::vector<RedisResult>>> promise;
  std::future<absl::StatusOr<std::vector<RedisResult>>> future = promise.get_future();
  client.SendPipeline(key, commands,
                      [&promise](absl::StatusOr<std::vector<RedisResult>> r) {
                        promise.set_value(std::move(r));
                      });
  return future.get();
}

TEST_F(ClusterTest, TheAsyncPathRoutesAndFollowsMovedAndAsk) {
  ClusterOptions options = OptionsFor(cluster());
  options.async_loops_per_node = 1;
  absl::StatusOr<std::unique_ptr<ClusterClient>> client = ClusterClient::Connect(options);
  ASSERT_TRUE(client.ok()) << client.status();
  // Connect started every primary's pipelined connection; once they are
  // up, calls take the fast path (until then, the blocking one).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (const ClusterShard& shard : (*client)->slots()->shards()) {
    while (!(*client)->AsyncConnected(shard.primary) &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ASSERT_TRUE((*client)->AsyncConnected(shard.primary)) << shard.primary.ToString();
  }
  for (int t = 0; t < 256; ++t) {
    const std::string tag = Tag(t);
    absl::StatusOr<std::vector<RedisResult>> replies = SendAndWait(
        **client, tag, {{"SET", "async:{" + tag + "}", tag}, {"GET", "async:{" + tag + "}"}});
    ASSERT_TRUE(replies.ok()) << replies.status();
    ASSERT_TRUE((*replies)[1].ok()) << (*replies)[1].status();
    EXPECT_EQ((*replies)[1]->str, tag);
  }
  EXPECT_EQ((*client)->Stats().moved + (*client)->Stats().ask, 0u);

  const std::string tag = "9d";
  const int slot = TagSlot(tag);
  const auto [from, to] = OwnerAndAnotherPrimary(*(*client)->slots(), slot);
  ASSERT_TRUE(cluster().MoveSlot(slot, to).ok());
  absl::StatusOr<std::vector<RedisResult>> moved =
      SendAndWait(**client, tag, {{"GET", "async:{9d}"}});
  ASSERT_TRUE(moved.ok()) << moved.status();
  ASSERT_TRUE((*moved)[0].ok()) << (*moved)[0].status();
  EXPECT_EQ((*moved)[0]->str, "9d");
  EXPECT_EQ((*client)->Stats().moved, 1u);
  EXPECT_EQ(*(*client)->slots()->PrimaryOf(slot), cluster().address(to));

  // Back to `from`, half-way: the key already moved answers ASK.
  ASSERT_TRUE((*client)->Command(tag, {"SET", "async:{9d}:b", "b"}).ok());
  ASSERT_TRUE(cluster().BeginSlotMove(slot, from).ok());
  absl::StatusOr<int> migrated = cluster().MigrateSlotKeys(slot, from, 1);
  ASSERT_TRUE(migrated.ok() && *migrated == 1);
  absl::StatusOr<std::vector<RedisResult>> asked =
      SendAndWait(**client, tag, {{"GET", "async:{9d}"}, {"GET", "async:{9d}:b"}});
  ASSERT_TRUE(asked.ok()) << asked.status();
  ASSERT_TRUE((*asked)[0].ok() && (*asked)[1].ok());
  EXPECT_EQ((*asked)[0]->str, "9d");
  EXPECT_EQ((*asked)[1]->str, "b");
  EXPECT_EQ((*client)->Stats().ask, 1u);
  ASSERT_TRUE(cluster().FinishSlotMove(slot, from).ok());
}

TEST_F(ClusterTest, SeedsThatAreNotAClusterAreRefusedByName) {
  absl::StatusOr<std::unique_ptr<testing::RedisServer>> plain = testing::RedisServer::Start();
  ASSERT_TRUE(plain.ok()) << plain.status();
  ClusterOptions options;
  options.seeds = {NodeAddress{.host = "127.0.0.1", .port = (*plain)->port()}};
  absl::StatusOr<std::unique_ptr<ClusterClient>> client = ClusterClient::Connect(options);
  EXPECT_EQ(client.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(engine::ReasonOf(client.status()), reason::kRedisClusterTopologyInvalid);
  EXPECT_NE(client.status().message().find("cluster support disabled"), std::string_view::npos)
      << client.status();

  options.seeds = {NodeAddress{.host = "127.0.0.1", .port = testing::FreeLoopbackPort()}};
  client = ClusterClient::Connect(options);
  EXPECT_EQ(engine::ReasonOf(client.status()), reason::kRedisClusterUnreachable) << client.status();
}

// Kill -9 of a primary: calls to its slots fail UNAVAILABLE (never resent)
// until its replica is promoted, then the client finds the new primary by
// itself and every write acknowledged by a replica (WAIT 1) is there.
TEST(ClusterFailoverTest, AfterKill9OfAPrimaryItsReplicaServesWhatWasReplicated) {
  if (testing::FindRedisServer().empty() || testing::FindRedisCli().empty()) {
    GTEST_SKIP() << "needs redis-server and redis-cli";
  }
  absl::StatusOr<std::unique_ptr<RedisCluster>> started = RedisCluster::Start();
  ASSERT_TRUE(started.ok()) << started.status();
  RedisCluster& cluster = **started;
  absl::StatusOr<std::unique_ptr<ClusterClient>> client = ClusterClient::Connect(OptionsFor(cluster));
  ASSERT_TRUE(client.ok()) << client.status();
  const std::string tag = "3f";
  const int slot = TagSlot(tag);
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE((*client)->Command(tag, {"SET", "fo:{3f}:" + std::to_string(i), std::to_string(i)}).ok());
  }
  RedisResult acked = (*client)->Command(tag, {"WAIT", "1", "2000"});
  ASSERT_TRUE(acked.ok()) << acked.status();
  ASSERT_EQ(acked->integer, 1);  // the replica has every write above

  const ClusterShard shard = (*client)->slots()->shards()[static_cast<size_t>(*(*client)->slots()->ShardOf(slot))];
  const int primary = cluster.IndexOf(shard.primary);
  const int replica = cluster.IndexOf(shard.replicas.at(0));
  ASSERT_GE(primary, 0);
  ASSERT_GE(replica, 0);
  cluster.node(primary).Kill9();
  const auto killed = std::chrono::steady_clock::now();

  int unavailable = 0;
  RedisResult get = absl::UnknownError("not tried");
  while (std::chrono::steady_clock::now() - killed < std::chrono::seconds(20)) {
    get = (*client)->Command(tag, {"GET", "fo:{3f}:49"});
    if (get.ok()) break;
    EXPECT_EQ(get.status().code(), absl::StatusCode::kUnavailable) << get.status();
    ++unavailable;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const auto served_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::steady_clock::now() - killed)
                             .count();
  ASSERT_TRUE(get.ok()) << "not served again within 20 s: " << get.status();
  std::printf("failover: served again %lld ms after kill -9 (node timeout %d ms), %d calls refused\n",
              static_cast<long long>(served_ms), 1000, unavailable);
  EXPECT_GT(unavailable, 0);
  EXPECT_EQ(*(*client)->slots()->PrimaryOf(slot), cluster.address(replica));
  for (int i = 0; i < 50; ++i) {
    RedisResult value = (*client)->Command(tag, {"GET", "fo:{3f}:" + std::to_string(i)});
    ASSERT_TRUE(value.ok()) << value.status();
    EXPECT_EQ(value->str, std::to_string(i));
  }
}

}  // namespace
}  // namespace medsettle::cache
