#include "gateway/redis_node_monitor.h"

#include <chrono>
#include <string>
#include <utility>

namespace medsettle::gateway {

RedisNodeMonitor::RedisNodeMonitor(cache::RedisClient& redis, Probe probe, int probe_ms,
                                   Callbacks callbacks)
    : redis_(redis),
      probe_(probe),
      probe_ms_(probe_ms),
      callbacks_(std::move(callbacks)),
      // The verdict goes to on_quorum, the nodes to Nodes().
      prober_(std::chrono::milliseconds(probe_ms_), [this] { (void)ProbeNow(); }) {}

RedisNodeMonitor::~RedisNodeMonitor() { Stop(); }

bool RedisNodeMonitor::HasQuorum(const std::vector<RedisNodeHealth>& nodes) {
  size_t up = 0;
  for (const RedisNodeHealth& n : nodes) up += n.up ? 1 : 0;
  return !nodes.empty() && up * 2 > nodes.size();
}

bool RedisNodeMonitor::ProbeNow() {
  std::vector<RedisNodeHealth> round;
  const std::vector<RedisNodeHealth> last_round = Nodes();
  const int count = redis_.NodeCount();
  for (int node = 0; node < count; ++node) {
    RedisNodeHealth health{.node = redis_.NodeName(node)};
    // The table changed under us (a failover or a reshard just refreshed
    // it): this node is gone, and the next round lists its successor.
    if (health.node.empty()) continue;
    const auto sent = std::chrono::steady_clock::now();
    const cache::RedisResult probe =
        redis_.NodeCommand(node, probe_ == Probe::kPing ? cache::RedisArgv{"PING"}
                                                        : cache::RedisArgv{"CLUSTER", "INFO"});
    health.probe_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - sent).count();
    if (!probe.ok() && probe.status().code() == absl::StatusCode::kResourceExhausted) {
      for (const RedisNodeHealth& b : last_round) {
        if (b.node == health.node) health = b;
      }
      round.push_back(std::move(health));
      continue;
    }
    if (probe_ == Probe::kPing) {
      health.up =
          probe.ok() && probe->type == cache::RedisReply::Type::kStatus && probe->str == "PONG";
    } else {
      health.up = probe.ok() && probe->str.find("cluster_state:ok") != std::string::npos;
    }
    if (health.up) {
      // ROLE of a primary: "master", its offset, then one entry per replica.
      const cache::RedisResult role = redis_.NodeCommand(node, {"ROLE"});
      if (role.ok() && role->elements.size() >= 3) {
        health.replicas = static_cast<int>(role->elements[2].elements.size());
      }
    }
    round.push_back(std::move(health));
  }
  const bool quorum = HasQuorum(round);
  bool changed = false;
  std::vector<RedisNodeHealth> node_changes;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const RedisNodeHealth& n : round) {
      bool was_up = true;  // a node not listed before: only news when down
      for (const RedisNodeHealth& before : nodes_) {
        if (before.node == n.node) was_up = before.up;
      }
      if (n.up != was_up) node_changes.push_back(n);
    }
    nodes_ = std::move(round);
    const int verdict = quorum ? 1 : 0;
    changed = verdict != verdict_;
    verdict_ = verdict;
  }
  if (callbacks_.on_node_change) {
    for (const RedisNodeHealth& n : node_changes) callbacks_.on_node_change(n);
  }
  if (changed && callbacks_.on_quorum) callbacks_.on_quorum(quorum);
  return quorum;
}

void RedisNodeMonitor::Start() { prober_.Start(); }

void RedisNodeMonitor::Stop() { prober_.Stop(); }

std::vector<RedisNodeHealth> RedisNodeMonitor::Nodes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return nodes_;
}

bool RedisNodeMonitor::quorum() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return verdict_ == 1;
}

}  // namespace medsettle::gateway
