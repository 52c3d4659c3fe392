// gateway::RedisNodeMonitor on a fake client (unit): which nodes are up,
// the quorum (more than half), and the node and quorum changes it reports.
#include "gateway/redis_node_monitor.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace medsettle::gateway {
namespace {

// Nodes "n0:1", "n1:1", … that answer PING (or CLUSTER INFO, and ROLE
// with one replica) while up; a busy one answers like a full pool.
class FakeNodes final : public cache::RedisClient {
 public:
  explicit FakeNodes(int count) : up_(static_cast<size_t>(count), true) {}
  void Set(int node, bool up) { up_[static_cast<size_t>(node)] = up; }
  void Resize(int count) { up_.resize(static_cast<size_t>(count), true); }
  void SetBusy(bool busy) { busy_ = busy; }

  cache::RedisResult Command(std::string_view, const cache::RedisArgv&) override {
    return absl::UnimplementedError("not used");
  }
  absl::StatusOr<std::vector<cache::RedisResult>> Pipeline(
      std::string_view, const std::vector<cache::RedisArgv>&) override {
    return absl::UnimplementedError("not used");
  }
  absl::StatusOr<std::vector<cache::RedisResult>> PipelineAcrossSlots(
      const std::vector<std::string_view>&, const std::vector<cache::RedisArgv>&) override {
    return absl::UnimplementedError("not used");
  }
  int NodeCount() override { return static_cast<int>(up_.size()); }
  std::string NodeName(int node) override { return "n" + std::to_string(node) + ":1"; }
  cache::RedisResult NodeCommand(int node, const cache::RedisArgv& argv) override {
    if (busy_) return absl::ResourceExhaustedError("no free connection");
    if (!up_[static_cast<size_t>(node)]) return absl::UnavailableError("connection refused");
    cache::RedisReply reply;
    if (argv[0] == "ROLE") {
      reply.type = cache::RedisReply::Type::kArray;
      reply.elements.resize(3);
      reply.elements[0].type = cache::RedisReply::Type::kString;
      reply.elements[0].str = "master";
      reply.elements[2].type = cache::RedisReply::Type::kArray;
      reply.elements[2].elements.resize(1);  // one replica
    } else if (argv[0] == "PING") {
      reply.type = cache::RedisReply::Type::kStatus;
      reply.str = "PONG";
    } else {
      reply.type = cache::RedisReply::Type::kString;
      reply.str = "cluster_state:ok\r\ncluster_slots_assigned:16384\r\n";
    }
    return reply;
  }

 private:
  std::vector<bool> up_;
  bool busy_ = false;
};

TEST(RedisNodeMonitor, AQuorumIsMoreThanHalfOfTheNodes) {
  auto nodes = [](std::vector<bool> up) {
    std::vector<RedisNodeHealth> out;
    for (bool u : up) out.push_back({.node = "x", .up = u});
    return out;
  };
  EXPECT_FALSE(RedisNodeMonitor::HasQuorum({}));
  EXPECT_TRUE(RedisNodeMonitor::HasQuorum(nodes({true})));
  EXPECT_FALSE(RedisNodeMonitor::HasQuorum(nodes({false})));
  EXPECT_TRUE(RedisNodeMonitor::HasQuorum(nodes({true, true, false})));
  EXPECT_FALSE(RedisNodeMonitor::HasQuorum(nodes({true, false, false})));
  EXPECT_FALSE(RedisNodeMonitor::HasQuorum(nodes({true, true, false, false})));
}

TEST(RedisNodeMonitor, ReportsEachNodeAndChangesOfNodesAndQuorum) {
  FakeNodes redis(3);
  std::vector<bool> verdicts;
  std::vector<std::string> changes;
  RedisNodeMonitor monitor(
      redis, RedisNodeMonitor::Probe::kClusterState, 1000,
      {.on_quorum = [&](bool q) { verdicts.push_back(q); },
       .on_node_change =
           [&](const RedisNodeHealth& n) {
             changes.push_back(n.node + (n.up ? " up" : " down"));
           }});
  EXPECT_TRUE(monitor.ProbeNow());
  EXPECT_EQ(verdicts, std::vector<bool>{true});  // the first round is reported
  ASSERT_EQ(monitor.Nodes().size(), 3u);
  EXPECT_EQ(monitor.Nodes()[2].node, "n2:1");
  EXPECT_TRUE(changes.empty());

  redis.Set(1, false);
  EXPECT_TRUE(monitor.ProbeNow());  // two of three
  EXPECT_FALSE(monitor.Nodes()[1].up);
  EXPECT_EQ(changes, std::vector<std::string>{"n1:1 down"});
  EXPECT_EQ(verdicts.size(), 1u);  // unchanged: not reported again

  redis.Set(2, false);
  EXPECT_FALSE(monitor.ProbeNow());
  EXPECT_FALSE(monitor.quorum());
  EXPECT_EQ(verdicts, (std::vector<bool>{true, false}));

  redis.Set(1, true);
  redis.Set(2, true);
  EXPECT_TRUE(monitor.ProbeNow());
  EXPECT_EQ(verdicts, (std::vector<bool>{true, false, true}));
  EXPECT_EQ(changes, (std::vector<std::string>{"n1:1 down", "n2:1 down", "n1:1 up", "n2:1 up"}));

  // A node that appears (a new shard) is news only when it is down.
  redis.Resize(5);
  redis.Set(4, false);
  EXPECT_TRUE(monitor.ProbeNow());
  EXPECT_EQ(changes.back(), "n4:1 down");
  EXPECT_EQ(changes.size(), 5u);
}

TEST(RedisNodeMonitor, CountsReplicasAndKeepsTheLastStateWhenThePoolIsBusy) {
  FakeNodes redis(3);
  RedisNodeMonitor monitor(redis, RedisNodeMonitor::Probe::kClusterState, 1000, {});
  EXPECT_TRUE(monitor.ProbeNow());
  EXPECT_EQ(monitor.Nodes()[0].replicas, 1);
  redis.Set(2, false);
  EXPECT_TRUE(monitor.ProbeNow());
  EXPECT_EQ(monitor.Nodes()[2].replicas, 0);  // down: none known
  // A full pool says nothing about the nodes.
  redis.SetBusy(true);
  redis.Set(2, true);
  EXPECT_TRUE(monitor.ProbeNow());
  EXPECT_TRUE(monitor.Nodes()[0].up);
  EXPECT_FALSE(monitor.Nodes()[2].up);
}

TEST(RedisNodeMonitor, APingThatIsNotPongIsDown) {
  FakeNodes redis(1);
  RedisNodeMonitor monitor(redis, RedisNodeMonitor::Probe::kPing, 1000, {});
  EXPECT_TRUE(monitor.ProbeNow());
  redis.Set(0, false);
  EXPECT_FALSE(monitor.ProbeNow());
  EXPECT_FALSE(monitor.Nodes()[0].up);
  EXPECT_GE(monitor.Nodes()[0].probe_seconds, 0.0);
}

}  // namespace
}  // namespace medsettle::gateway
