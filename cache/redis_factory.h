// The one place that turns configuration into Redis clients: a single
// server or a Redis Cluster, chosen by RedisTarget::cluster, behind the same
// RedisClient interface (cache/redis_client.h), so that the gateway, the
// shipper and the tools run unchanged on either.
//
//                       blocking()                 pipelined()
//   single server       ConnectionPool             AsyncRedisClient over AsyncRedis
//                       (pool_size connections)    (io_threads connections)
//   cluster             ClusterClient: per primary, pool_size blocking connections
//                       and io_threads pipelined ones (both roles)
//
// Thread safety: the clients are; Open, WaitConnected and Stop are not
// meant to race with each other.
#ifndef MEDSETTLE_CACHE_REDIS_FACTORY_H_
#define MEDSETTLE_CACHE_REDIS_FACTORY_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cache/async_redis.h"
#include "cache/async_redis_client.h"
#include "cache/cluster_client.h"
#include "cache/cluster_slots.h"
#include "cache/connection_pool.h"
#include "cache/redis_client.h"

namespace medsettle::cache {

struct RedisTarget {
  bool cluster = false;
  // A single server: exactly one. A cluster: any of its nodes (seeds).
  std::vector<NodeAddress> nodes;
  int connect_timeout_ms = 200;
  int command_timeout_ms = 500;
  int acquire_timeout_ms = 100;
  int pool_size = 16;   // blocking connections (a cluster: per primary)
  int io_threads = 2;   // pipelined connections (a cluster: per primary); 0: none
  size_t max_pending_per_loop = 10000;
  std::function<void(int64_t round_trip_us)> on_round_trip;
  std::function<void(int64_t wait_us)> on_acquire;  // single server's pool only
};

class RedisClients {
 public:
  // Opens the clients; they connect in the background, so a server or a
  // cluster that is down at start is not an error (calls fail UNAVAILABLE
  // until it is up). Errors: INVALID_ARGUMENT for a target without nodes
  // (or several for a single server); UNAVAILABLE
  // kRedisClusterTopologyInvalid when the seeds answer but are not a
  // cluster.
  static absl::StatusOr<std::unique_ptr<RedisClients>> Open(RedisTarget target);
  ~RedisClients();  // Stop()

  RedisClients(const RedisClients&) = delete;
  RedisClients& operator=(const RedisClients&) = delete;

  // For callers that block their thread (snapshot, registry, rule files,
  // journals, the shipper, tools).
  RedisClient& blocking();
  // For the settle path: SendPipeline returns at once and completes on an
  // I/O thread (blocking() when io_threads is 0).
  RedisClient& pipelined();

  // Waits up to `timeout` until every pipelined connection is up (every
  // loop; in a cluster, of every primary the slot table names). True when
  // they are.
  bool WaitConnected(std::chrono::milliseconds timeout);

  // Stops the I/O threads (in-flight pipelines fail UNAVAILABLE); blocking
  // calls still work. Idempotent. REQUIRES: not on an I/O thread.
  void Stop();

  // "127.0.0.1:6379", or "cluster, seeds 10.0.0.1:6379,10.0.0.2:6379": for
  // the start line and logs.
  const std::string& description() const { return description_; }
  bool is_cluster() const { return cluster_ != nullptr; }
  // A cluster: its client's redirections, retries and refreshes so far
  // (ClusterClient::Stats); nullopt for a single server.
  std::optional<ClusterClientStats> cluster_stats() const {
    if (cluster_ == nullptr) return std::nullopt;
    return cluster_->Stats();
  }

 private:
  RedisClients() = default;

  std::string description_;
  std::unique_ptr<ConnectionPool> pool_;
  std::unique_ptr<AsyncRedis> async_;
  std::unique_ptr<AsyncRedisClient> async_client_;
  std::unique_ptr<ClusterClient> cluster_;
};

}  // namespace medsettle::cache

#endif  // MEDSETTLE_CACHE_REDIS_FACTORY_H_
