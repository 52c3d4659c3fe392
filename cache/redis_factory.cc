#include "cache/redis_factory.h"

#include <thread>
#include <utility>

#include "engine/status.h"
#include "engine/text.h"

namespace medsettle::cache {

using engine::Cat;

absl::StatusOr<std::unique_ptr<RedisClients>> RedisClients::Open(RedisTarget target) {
  if (target.nodes.empty() || (!target.cluster && target.nodes.size() != 1)) {
    return engine::InvalidField(
        reason::kRedisAddressInvalid, "redis.address",
        Cat(target.nodes.size(),
            " Redis addresses given: a single server needs one, a cluster at least one"));
  }
  std::unique_ptr<RedisClients> clients(new RedisClients());
  const RedisOptions redis{.host = target.nodes[0].host,
                           .port = target.nodes[0].port,
                           .connect_timeout_ms = target.connect_timeout_ms,
                           .command_timeout_ms = target.command_timeout_ms,
                           .on_round_trip = target.on_round_trip};
  if (!target.cluster) {
    clients->description_ = target.nodes[0].ToString();
    clients->pool_ = std::make_unique<ConnectionPool>(
        PoolOptions{.redis = redis,
                    .size = target.pool_size,
                    .acquire_timeout_ms = target.acquire_timeout_ms,
                    .on_acquire = target.on_acquire});
    if (target.io_threads > 0) {
      clients->async_ = std::make_unique<AsyncRedis>(
          AsyncRedisOptions{.redis = redis,
                            .loops = target.io_threads,
                            .reconnect_backoff_ms = 20,
                            .max_pending_per_loop = target.max_pending_per_loop});
      clients->async_client_ = std::make_unique<AsyncRedisClient>(*clients->async_);
    }
    return clients;
  }
  std::string seeds;
  for (const NodeAddress& node : target.nodes) {
    seeds += (seeds.empty() ? "" : ",") + node.ToString();
  }
  clients->description_ = Cat("cluster, seeds ", seeds);
  ClusterOptions options;
  options.seeds = target.nodes;
  options.connect_timeout_ms = target.connect_timeout_ms;
  options.command_timeout_ms = target.command_timeout_ms;
  options.pool_size_per_node = target.pool_size;
  options.acquire_timeout_ms = target.acquire_timeout_ms;
  options.async_loops_per_node = target.io_threads;
  options.max_pending_per_loop = target.max_pending_per_loop;
  options.on_round_trip = target.on_round_trip;
  options.require_reachable = false;
  absl::StatusOr<std::unique_ptr<ClusterClient>> cluster = ClusterClient::Connect(options);
  if (!cluster.ok()) return cluster.status();
  clients->cluster_ = std::move(*cluster);
  return clients;
}

RedisClients::~RedisClients() { Stop(); }

RedisClient& RedisClients::blocking() {
  if (cluster_ != nullptr) return *cluster_;
  return *pool_;
}

RedisClient& RedisClients::pipelined() {
  if (cluster_ != nullptr) return *cluster_;
  if (async_client_ != nullptr) return *async_client_;
  return *pool_;
}

bool RedisClients::WaitConnected(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto up = [this] {
    if (cluster_ != nullptr) {
      std::shared_ptr<const SlotMap> map = cluster_->slots();
      if (map == nullptr || map->shards().empty()) return false;
      for (const ClusterShard& shard : map->shards()) {
        if (!cluster_->AsyncConnected(shard.primary)) return false;
      }
      return true;
    }
    if (async_ == nullptr) return true;
    for (int loop = 0; loop < async_->loops(); ++loop) {
      if (!async_->connected(static_cast<uint32_t>(loop))) return false;
    }
    return true;
  };
  while (!up()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

void RedisClients::Stop() {
  if (cluster_ != nullptr) cluster_->Stop();
  if (async_ != nullptr) async_->Stop();
}

}  // namespace medsettle::cache
