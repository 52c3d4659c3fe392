// AsyncRedis (cache/async_redis.h) behind the RedisClient interface
// (cache/redis_client.h), so that stores written once run on either:
// SendPipeline goes out without waiting, on the I/O thread chosen by the
// hash tag (one person's calls stay in order on one connection), and the
// blocking Command and Pipeline wait for their reply, which is why they must
// never be called on an I/O thread (they refuse with FAILED_PRECONDITION).
//
// Thread safety: as AsyncRedis.
#ifndef MEDSETTLE_CACHE_ASYNC_REDIS_CLIENT_H_
#define MEDSETTLE_CACHE_ASYNC_REDIS_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cache/async_redis.h"
#include "cache/redis_client.h"

namespace medsettle::cache {

class AsyncRedisClient final : public RedisClient {
 public:
  // `redis` must outlive the client.
  explicit AsyncRedisClient(AsyncRedis& redis) : redis_(redis) {}

  // One server: the routing key is not needed; blocking calls spread over
  // the connections.
  RedisResult Command(std::string_view /*routing_key*/, const RedisArgv& argv) override {
    return NodeCommand(0, argv);
  }

  absl::StatusOr<std::vector<RedisResult>> Pipeline(
      std::string_view /*routing_key*/, const std::vector<RedisArgv>& commands) override {
    return redis_.PipelineBlocking(NextShard(), commands);
  }

  absl::StatusOr<std::vector<RedisResult>> PipelineAcrossSlots(
      const std::vector<std::string_view>& /*routing_keys*/,
      const std::vector<RedisArgv>& commands) override {
    return redis_.PipelineBlocking(NextShard(), commands);
  }

  RedisResult NodeCommand(int /*node*/, const RedisArgv& argv) override {
    absl::StatusOr<std::vector<RedisResult>> replies =
        redis_.PipelineBlocking(NextShard(), {argv});
    if (!replies.ok()) return replies.status();
    return std::move(replies->front());
  }

  std::string NodeName(int /*node*/) override {
    return redis_.options().redis.host + ":" + std::to_string(redis_.options().redis.port);
  }

  void SendPipeline(std::string_view routing_key, const std::vector<RedisArgv>& commands,
                    PipelineDone done) override {
    redis_.Send(static_cast<uint32_t>(std::hash<std::string_view>{}(routing_key)), commands,
                std::move(done));
  }

 private:
  // Calls without a tag spread over the connections.
  uint32_t NextShard() { return next_shard_.fetch_add(1, std::memory_order_relaxed); }

  AsyncRedis& redis_;
  std::atomic<uint32_t> next_shard_{0};
};

}  // namespace medsettle::cache

#endif  // MEDSETTLE_CACHE_ASYNC_REDIS_CLIENT_H_
