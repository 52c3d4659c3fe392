// Redis Cluster's key space without a server (cache/cluster_slots.h): the
// CRC16 and hash tags of the specification, the reading of CLUSTER SLOTS
// replies (empty and unknown hosts, several ranges of one primary, gaps,
// overlaps, a node not in cluster mode) and of MOVED/ASK redirections.
// tests/cluster_test.cc checks the same functions against a real cluster.
#include "cache/cluster_slots.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engine/status.h"

namespace medsettle::cache {
namespace {

RedisReply Int(int64_t v) {
  RedisReply r;
  r.type = RedisReply::Type::kInteger;
  r.integer = v;
  return r;
}
RedisReply Str(std::string s) {
  RedisReply r;
  r.type = RedisReply::Type::kString;
  r.str = std::move(s);
  return r;
}
RedisReply Arr(std::vector<RedisReply> items) {
  RedisReply r;
  r.type = RedisReply::Type::kArray;
  r.elements = std::move(items);
  return r;
}
RedisReply Node(std::string host, int port, std::string id = "") {
  std::vector<RedisReply> items = {Str(std::move(host)), Int(port)};
  if (!id.empty()) items.push_back(Str(std::move(id)));
  return Arr(std::move(items));
}
RedisReply Range(int start, int end, std::vector<RedisReply> nodes) {
  std::vector<RedisReply> items = {Int(start), Int(end)};
  for (RedisReply& n : nodes) items.push_back(std::move(n));
  return Arr(std::move(items));
}

const NodeAddress kAsked{.host = "10.0.0.9", .port = 7000};

TEST(ClusterSlotsTest, Crc16IsTheXmodemVariantRedisUses) {
  // The check value of CRC-16/XMODEM, the one Redis's crc16.c documents.
  EXPECT_EQ(Crc16("123456789"), 0x31C3);
  EXPECT_EQ(Crc16(""), 0);
}

TEST(ClusterSlotsTest, KeySlotMatchesTheValuesRedisDocuments) {
  // redis.io, CLUSTER KEYSLOT: "somekey" → 11058, "foo{hash_tag}" → 2515.
  EXPECT_EQ(KeySlot("somekey"), 11058);
  EXPECT_EQ(KeySlot("foo{hash_tag}"), 2515);
  EXPECT_EQ(KeySlot("{hash_tag}"), KeySlot("hash_tag"));
}

TEST(ClusterSlotsTest, HashTagsFollowTheSpecification) {
  // The examples of the cluster specification, "Hash tags".
  EXPECT_EQ(HashedPartOf("{user1000}.following"), "user1000");
  EXPECT_EQ(HashedPartOf("{user1000}.followers"), "user1000");
  EXPECT_EQ(HashedPartOf("foo{}{bar}"), "foo{}{bar}");  // empty tag: the whole key
  EXPECT_EQ(HashedPartOf("foo{{bar}}zap"), "{bar");     // first '{' to first '}'
  EXPECT_EQ(HashedPartOf("foo{bar}{zap}"), "bar");      // only the first tag
  EXPECT_EQ(HashedPartOf("no-braces"), "no-braces");
  EXPECT_EQ(HashedPartOf("open{only"), "open{only");
}

TEST(ClusterSlotsTest, EveryKeyOfOnePersonIsInTheSlotOfItsTag) {
  // The project's key layout (docs/REDIS-KEYS.md): one tag per person key's
  // first two hex characters, every key of a settlement under it.
  for (std::string tag : {"00", "3f", "a7", "ff"}) {
    const int slot = TagSlot(tag);
    for (std::string key : {"acc:{" + tag + "}:" + tag + "9e77:2025", "idem:{" + tag + "}:H1:r-1",
                            "stl:{" + tag + "}:" + tag + "-0193a1b2c3d4-9e3779b97f4a7c15",
                            "journal:{" + tag + "}", "nonce:{" + tag + "}:abc"}) {
      EXPECT_EQ(KeySlot(key), slot) << key;
    }
  }
}

TEST(ClusterSlotsTest, ReadsASlotTableWithReplicasAndSplitRanges) {
  RedisReply reply = Arr({
      Range(0, 5460, {Node("10.0.0.1", 7000, "id-a"), Node("10.0.0.4", 7003, "id-d")}),
      Range(5461, 10922, {Node("10.0.0.2", 7001, "id-b"), Node("10.0.0.5", 7004)}),
      Range(10923, 16000, {Node("10.0.0.3", 7002, "id-c"), Node("10.0.0.6", 7005)}),
      // A slot range moved to the first primary by a reshard: the same shard.
      Range(16001, 16383, {Node("10.0.0.1", 7000, "id-a"), Node("10.0.0.4", 7003)}),
  });
  absl::StatusOr<SlotMap> map = SlotMap::FromClusterSlots(reply, kAsked);
  ASSERT_TRUE(map.ok()) << map.status();
  EXPECT_TRUE(map->CheckCoverage().ok());
  ASSERT_EQ(map->shards().size(), 3u);
  EXPECT_EQ(map->shards()[0].primary.ToString(), "10.0.0.1:7000");
  EXPECT_EQ(map->shards()[0].primary_id, "id-a");
  ASSERT_EQ(map->shards()[0].replicas.size(), 1u);  // listed twice, kept once
  EXPECT_EQ(map->shards()[0].replicas[0].ToString(), "10.0.0.4:7003");
  EXPECT_EQ(map->SlotCounts(), (std::vector<int>{5461 + 383, 5462, 5078}));
  EXPECT_EQ(map->PrimaryOf(0)->ToString(), "10.0.0.1:7000");
  EXPECT_EQ(map->PrimaryOf(16383)->ToString(), "10.0.0.1:7000");
  EXPECT_EQ(map->PrimaryOf(10923)->ToString(), "10.0.0.3:7002");
  EXPECT_EQ(*map->ShardOf(5461), 1);
}

TEST(ClusterSlotsTest, AnEmptyHostIsTheNodeThatAnswered) {
  RedisReply reply = Arr({Range(0, 16383, {Node("", 7000)})});
  absl::StatusOr<SlotMap> map = SlotMap::FromClusterSlots(reply, kAsked);
  ASSERT_TRUE(map.ok()) << map.status();
  EXPECT_EQ(map->PrimaryOf(42)->ToString(), "10.0.0.9:7000");
}

TEST(ClusterSlotsTest, GapsAndUnknownEndpointsLeaveSlotsUncovered) {
  RedisReply gap = Arr({Range(0, 99, {Node("10.0.0.1", 7000)}),
                        Range(200, 16383, {Node("10.0.0.2", 7001)})});
  absl::StatusOr<SlotMap> map = SlotMap::FromClusterSlots(gap, kAsked);
  ASSERT_TRUE(map.ok()) << map.status();
  absl::Status coverage = map->CheckCoverage();
  EXPECT_EQ(coverage.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(engine::ReasonOf(coverage), reason::kRedisClusterSlotsUncovered);
  EXPECT_NE(coverage.message().find("100-199"), std::string_view::npos) << coverage;
  EXPECT_FALSE(map->PrimaryOf(150).has_value());

  // A primary with no endpoint yet ("?", Redis 7) serves nothing.
  RedisReply unknown = Arr({Range(0, 8191, {Node("?", 7000)}),
                            Range(8192, 16383, {Node("10.0.0.2", 7001)})});
  map = SlotMap::FromClusterSlots(unknown, kAsked);
  ASSERT_TRUE(map.ok()) << map.status();
  EXPECT_FALSE(map->PrimaryOf(0).has_value());
  EXPECT_EQ(engine::ReasonOf(map->CheckCoverage()), reason::kRedisClusterSlotsUncovered);
}

TEST(ClusterSlotsTest, RefusesWhatIsNotASlotTable) {
  RedisReply disabled;
  disabled.type = RedisReply::Type::kError;
  disabled.str = "ERR This instance has cluster support disabled";
  absl::StatusOr<SlotMap> map = SlotMap::FromClusterSlots(disabled, kAsked);
  EXPECT_EQ(map.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(engine::ReasonOf(map.status()), reason::kRedisClusterTopologyInvalid);
  EXPECT_NE(map.status().message().find("cluster support disabled"), std::string_view::npos);

  const std::vector<RedisReply> bad = {
      Arr({Range(0, 100, {Node("10.0.0.1", 7000)}), Range(50, 16383, {Node("10.0.0.2", 7001)})}),
      Arr({Range(10, 5, {Node("10.0.0.1", 7000)})}),
      Arr({Range(0, 16384, {Node("10.0.0.1", 7000)})}),
      Arr({Arr({Int(0), Int(16383)})}),
      Arr({Range(0, 16383, {Arr({Int(1), Int(2)})})}),
      Arr({Str("not an entry")}),
  };
  for (size_t i = 0; i < bad.size(); ++i) {
    map = SlotMap::FromClusterSlots(bad[i], kAsked);
    EXPECT_EQ(engine::ReasonOf(map.status()), reason::kRedisClusterTopologyInvalid) << i;
  }
}

TEST(ClusterSlotsTest, MoveRepointsOneSlot) {
  RedisReply reply = Arr({Range(0, 16383, {Node("10.0.0.1", 7000)})});
  absl::StatusOr<SlotMap> map = SlotMap::FromClusterSlots(reply, kAsked);
  ASSERT_TRUE(map.ok());
  map->Move(3999, NodeAddress{.host = "10.0.0.2", .port = 7001});
  EXPECT_EQ(map->PrimaryOf(3999)->ToString(), "10.0.0.2:7001");
  EXPECT_EQ(map->PrimaryOf(3998)->ToString(), "10.0.0.1:7000");
  EXPECT_EQ(map->SlotCounts(), (std::vector<int>{16383, 1}));
}

TEST(ClusterSlotsTest, ParsesMovedAndAsk) {
  std::optional<Redirection> moved = ParseRedirection("MOVED 3999 127.0.0.1:6381", kAsked);
  ASSERT_TRUE(moved.has_value());
  EXPECT_EQ(moved->kind, Redirection::Kind::kMoved);
  EXPECT_EQ(moved->slot, 3999);
  EXPECT_EQ(moved->node.ToString(), "127.0.0.1:6381");

  std::optional<Redirection> ask = ParseRedirection("ASK 0 ::1:7002", kAsked);
  ASSERT_TRUE(ask.has_value());
  EXPECT_EQ(ask->kind, Redirection::Kind::kAsk);
  EXPECT_EQ(ask->node.host, "::1");
  EXPECT_EQ(ask->node.port, 7002);

  std::optional<Redirection> no_host = ParseRedirection("MOVED 16383 :7005", kAsked);
  ASSERT_TRUE(no_host.has_value());
  EXPECT_EQ(no_host->node.ToString(), "10.0.0.9:7005");

  for (std::string_view text :
       {"ERR unknown command", "MOVED", "MOVED 3999", "MOVED x 1.2.3.4:5", "MOVED 16384 a:1",
        "ASK 1 host", "ASK 1 host:0", "ASK 1 host:99999", "MOVED -1 a:1", "TRYAGAIN later"}) {
    EXPECT_FALSE(ParseRedirection(text, kAsked).has_value()) << text;
  }
}

TEST(ClusterSlotsTest, ReadsSeedLists) {
  absl::StatusOr<std::vector<NodeAddress>> nodes =
      ParseNodeList("redis-0.redis:6379, 10.0.0.2:7001,[::1]:7002");
  ASSERT_TRUE(nodes.ok()) << nodes.status();
  ASSERT_EQ(nodes->size(), 3u);
  EXPECT_EQ((*nodes)[0].ToString(), "redis-0.redis:6379");
  EXPECT_EQ((*nodes)[1].ToString(), "10.0.0.2:7001");
  EXPECT_EQ((*nodes)[2].host, "::1");
  for (std::string_view bad : {"", "host", "host:", ":6379", "a:1,,b:2", "a:70000", "a:1,b"}) {
    absl::StatusOr<std::vector<NodeAddress>> parsed = ParseNodeList(bad);
    EXPECT_EQ(engine::ReasonOf(parsed.status()), reason::kRedisAddressInvalid) << bad;
  }
}

}  // namespace
}  // namespace medsettle::cache
