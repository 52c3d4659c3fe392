// Watches every Redis server that holds data — the one server, or each
// primary of a Redis Cluster as its slot table lists them now — so that
// health and metrics speak of nodes, not of "Redis" as a whole.
//
// Every probe_ms one probe goes to each node in turn (RedisClient::
// NodeCommand, bounded by the client's connect and command timeouts). A
// single server is up when it answers PING with PONG; a primary of a
// cluster when CLUSTER INFO says cluster_state:ok — a node that answers but
// sees the cluster down (no majority of primaries reachable, slots
// uncovered) refuses every key with CLUSTERDOWN, so it is not up. A node
// that is up is asked ROLE too, for its connected replicas. A probe that
// found the connection pool busy (RESOURCE_EXHAUSTED) says nothing about
// the node: its last state stands. The gateway has a quorum while more
// than half of the nodes are up: with three shards one may be down (its
// persons' calls fail UNAVAILABLE until its replica is promoted or it is
// back) and the gateway still serves the other two thirds; with two of
// three down the cluster cannot elect a replacement either, and the gateway
// reports NOT_SERVING so that load balancers send HIS traffic elsewhere. A
// single server is a quorum of one: up or not.
//
// After a failover the promoted replica takes its primary's place in the
// table and the old primary drops out of the list; a node removed by a
// reshard drops out the same way.
//
// Thread safety: Nodes() and quorum() may be called from any thread;
// Start/Stop from the owner's.
#ifndef MEDSETTLE_GATEWAY_REDIS_NODE_MONITOR_H_
#define MEDSETTLE_GATEWAY_REDIS_NODE_MONITOR_H_

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "cache/redis_client.h"
#include "gateway/periodic_thread.h"

namespace medsettle::gateway {

struct RedisNodeHealth {
  std::string node;             // "host:port"
  bool up = false;              // answered the last probe as a serving node does
  double probe_seconds = 0;     // that probe's round trip (also when it failed)
  // Replicas connected to it (ROLE), when up: fewer than redis.replica_acks
  // and every commit of its slots answers REPLICA_ACK_TIMEOUT.
  int replicas = 0;
};

class RedisNodeMonitor {
 public:
  enum class Probe { kPing, kClusterState };
  struct Callbacks {
    // After the first round, and whenever the verdict changes.
    std::function<void(bool has_quorum)> on_quorum;
    // A node that went down or came back (one that newly appears up, e.g.
    // a promoted replica, is not reported; one that appears down is).
    std::function<void(const RedisNodeHealth& node)> on_node_change;
  };
  // `redis` must outlive the monitor. The callbacks run on the probing
  // thread (or ProbeNow's caller), outside the monitor's lock.
  RedisNodeMonitor(cache::RedisClient& redis, Probe probe, int probe_ms, Callbacks callbacks);
  ~RedisNodeMonitor();
  RedisNodeMonitor(const RedisNodeMonitor&) = delete;
  RedisNodeMonitor& operator=(const RedisNodeMonitor&) = delete;

  // One round of probes now; returns whether a quorum is up.
  bool ProbeNow();
  // Polls every period on a PeriodicThread; Stop is idempotent, and Start
  // after Stop starts again.
  void Start();
  void Stop();

  // The last round, in the order of the client's nodes.
  std::vector<RedisNodeHealth> Nodes() const;
  bool quorum() const;

  // More than half of `nodes` up (false for none).
  static bool HasQuorum(const std::vector<RedisNodeHealth>& nodes);

 private:
  cache::RedisClient& redis_;
  const Probe probe_;
  const int probe_ms_;
  const Callbacks callbacks_;

  mutable std::mutex mutex_;
  std::vector<RedisNodeHealth> nodes_;  // guarded by mutex_
  int verdict_ = -1;                    // guarded by mutex_: -1 unknown, 0 no quorum, 1 quorum
  PeriodicThread prober_;  // last: stopped before the rest goes
};

}  // namespace medsettle::gateway

#endif  // MEDSETTLE_GATEWAY_REDIS_NODE_MONITOR_H_
