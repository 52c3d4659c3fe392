// A real Redis Cluster on loopback (tests/support/redis_cluster.h: three
// primaries, each with a replica, created by redis-cli --cluster create),
// read through cache/cluster_slots.h: the slot table it reports, the slot
// of every key shape the project writes (CLUSTER KEYSLOT), and the MOVED
// and ASK answers of a slot being resharded (label cluster).
#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <set>
#include <string>

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
  const int owner = cluster().IndexOf(*map->PrimaryOf(slot));
  ASSERT_GE(owner, 0);
  int other = -1;
  for (const ClusterShard& shard : map->shards()) {
    if (cluster().IndexOf(shard.primary) != owner) other = cluster().IndexOf(shard.primary);
  }
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
  const int from = cluster().IndexOf(*before->PrimaryOf(slot));
  int to = -1;
  for (const ClusterShard& shard : before->shards()) {
    if (cluster().IndexOf(shard.primary) != from) to = cluster().IndexOf(shard.primary);
  }
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

}  // namespace
}  // namespace medsettle::cache
