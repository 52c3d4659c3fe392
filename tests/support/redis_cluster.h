// Test support: a real Redis Cluster of the test's own on loopback —
// `primaries` redis-servers with `cluster-enabled yes` and, for each,
// `replicas_per_primary` replicas (tests/support/redis_server.h: free
// ports, own directories, AOF always, killed with the test), joined by
// `redis-cli --cluster create … --cluster-replicas N --cluster-yes` exactly
// as an operator would (docs/OPERATIONS.md), then waited for until every
// node reports cluster_state:ok and every primary lists its replicas.
//
// Only 127.0.0.1 is used. Not thread-safe: one thread drives it (Redis
// clients of the cluster may run on any thread).
#ifndef MEDSETTLE_TESTS_SUPPORT_REDIS_CLUSTER_H_
#define MEDSETTLE_TESTS_SUPPORT_REDIS_CLUSTER_H_

#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cache/cluster_slots.h"
#include "cache/redis_client.h"
#include "tests/support/redis_server.h"

namespace medsettle::testing {

// redis-cli next to redis-server (or on PATH); "" when there is none.
std::string FindRedisCli();

class RedisCluster {
 public:
  struct Options {
    int primaries = 3;
    int replicas_per_primary = 1;
    // cluster-node-timeout: how long a primary may be unreachable before
    // its replica is promoted. Short, so failover tests finish quickly.
    int node_timeout_ms = 1000;
    // Waits for a healthy cluster at most this long.
    int ready_timeout_ms = 30000;
  };

  // Starts the nodes, creates the cluster and waits until it is healthy
  // (WaitHealthy). NOT_FOUND without redis-server or redis-cli; otherwise
  // an error naming what failed (redis-cli's output, a node's log).
  static absl::StatusOr<std::unique_ptr<RedisCluster>> Start(Options options);
  static absl::StatusOr<std::unique_ptr<RedisCluster>> Start() { return Start(Options()); }

  RedisCluster(const RedisCluster&) = delete;
  RedisCluster& operator=(const RedisCluster&) = delete;
  ~RedisCluster() = default;  // the servers stop and remove their directories

  int size() const { return static_cast<int>(nodes_.size()); }
  RedisServer& node(int i) { return *nodes_[static_cast<size_t>(i)]; }
  cache::NodeAddress address(int i) const {
    return {.host = nodes_[static_cast<size_t>(i)]->host(),
            .port = nodes_[static_cast<size_t>(i)]->port()};
  }
  // The index of the node at `address`, -1 when none.
  int IndexOf(const cache::NodeAddress& address) const;
  // "127.0.0.1:p1,127.0.0.1:p2,…": every node, as a seed list.
  std::string Seeds() const;

  // One command to node i, on a connection of its own (timeouts 1 s).
  cache::RedisResult Command(int i, const cache::RedisArgv& argv);
  // Commands to node i in one pipeline on one connection (ASKING, then
  // the command it allows).
  absl::StatusOr<std::vector<cache::RedisResult>> Pipeline(
      int i, const std::vector<cache::RedisArgv>& commands);

  // Waits (≤ timeout_ms) until every running node says cluster_state:ok,
  // knows every running node, and CLUSTER SLOTS (asked of each) covers all
  // slots with `replicas` replicas per shard. DEADLINE_EXCEEDED naming the
  // node and what it still said otherwise.
  absl::Status WaitHealthy(int timeout_ms, int replicas);

  // The slot table as a running node sees it now.
  absl::StatusOr<cache::SlotMap> Slots();

  // Resharding one slot in steps, as `redis-cli --cluster reshard` does.
  // BeginSlotMove marks `slot` IMPORTING on node `to` and MIGRATING on its
  // owner; MigrateSlotKeys moves up to `max_keys` of its keys (MIGRATE),
  // and returns how many moved. Meanwhile a command for a key already
  // moved answers ASK from the owner; the others are served there.
  // FinishSlotMove migrates the rest and gives the slot to `to` (CLUSTER
  // SETSLOT NODE on both), after which the old owner answers MOVED.
  // MoveSlot is all three. REQUIRES: `to` is a primary that does not own it.
  absl::Status BeginSlotMove(int slot, int to);
  absl::StatusOr<int> MigrateSlotKeys(int slot, int to, int max_keys);
  absl::Status FinishSlotMove(int slot, int to);
  absl::Status MoveSlot(int slot, int to);

 private:
  explicit RedisCluster(Options options) : options_(options) {}

  Options options_;
  std::vector<std::unique_ptr<RedisServer>> nodes_;
};

// A fixture that skips the test, saying why, without redis-server or
// redis-cli.
class RedisClusterTest : public ::testing::Test {
 protected:
  void SetUp() override;
};

}  // namespace medsettle::testing

#endif  // MEDSETTLE_TESTS_SUPPORT_REDIS_CLUSTER_H_
