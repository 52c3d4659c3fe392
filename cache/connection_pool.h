// A fixed-size pool of RedisConnections to one Redis server, and today's
// implementation of RedisClient (cache/redis_client.h). Callers that need
// several commands on one connection take a Lease; everyone else calls
// Command and Pipeline, which lease a connection for the call.
//
// Connections are created with the pool and connect lazily, on first use,
// so a pool built while Redis is down works once Redis is up. A connection
// whose context failed stays in the pool and reconnects on its next use
// (cache/redis_connection.h).
//
// Thread safety: Acquire, Command and Pipeline are safe from any number of
// threads. A Lease and its connection belong to one thread at a time. The
// pool must outlive every Lease it handed out.
#ifndef MEDSETTLE_CACHE_CONNECTION_POOL_H_
#define MEDSETTLE_CACHE_CONNECTION_POOL_H_

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cache/redis_client.h"
#include "cache/redis_connection.h"

namespace medsettle::cache {

struct PoolOptions {
  RedisOptions redis;
  int size = 8;                 // connections, fixed for the pool's life
  int acquire_timeout_ms = 50;  // how long Command and Pipeline wait for one
  // Called after every Acquire that got a connection, with the microseconds
  // it waited (the gateway's pool-wait histogram). Must be cheap and
  // thread-safe. Null: not measured.
  std::function<void(int64_t wait_us)> on_acquire;
};

class ConnectionPool final : public RedisClient {
 public:
  // Exclusive use of one pooled connection; returns it to the pool when
  // destroyed. Movable, not copyable.
  class Lease {
   public:
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&& other) noexcept;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease();

    RedisConnection& connection() const { return *connection_; }
    RedisConnection* operator->() const { return connection_.get(); }

   private:
    friend class ConnectionPool;
    Lease(ConnectionPool* pool, std::unique_ptr<RedisConnection> connection);
    void Return();

    ConnectionPool* pool_ = nullptr;
    std::unique_ptr<RedisConnection> connection_;
  };

  // REQUIRES: options.size > 0, options.acquire_timeout_ms >= 0.
  explicit ConnectionPool(PoolOptions options);
  // REQUIRES: no Lease outstanding.
  ~ConnectionPool() override;

  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  // Waits up to `timeout_ms` for a free connection. RESOURCE_EXHAUSTED
  // kRedisPoolExhausted if none became free in time. Does not connect.
  absl::StatusOr<Lease> Acquire(int timeout_ms);

  // RedisClient: lease a connection for up to acquire_timeout_ms (else
  // RESOURCE_EXHAUSTED kRedisPoolExhausted), then as RedisConnection.
  // One server: the routing key is not needed, and these forms without it
  // are for code that holds the pool itself (tests, single-server tools).
  RedisResult Command(const RedisArgv& argv);
  absl::StatusOr<std::vector<RedisResult>> Pipeline(const std::vector<RedisArgv>& commands);
  RedisResult Command(std::string_view /*routing_key*/, const RedisArgv& argv) override {
    return Command(argv);
  }
  absl::StatusOr<std::vector<RedisResult>> Pipeline(
      std::string_view /*routing_key*/, const std::vector<RedisArgv>& commands) override {
    return Pipeline(commands);
  }
  absl::StatusOr<std::vector<RedisResult>> PipelineAcrossSlots(
      const std::vector<std::string_view>& /*routing_keys*/,
      const std::vector<RedisArgv>& commands) override {
    return Pipeline(commands);
  }
  RedisResult NodeCommand(int /*node*/, const RedisArgv& argv) override { return Command(argv); }
  std::string NodeName(int /*node*/) override {
    return options_.redis.host + ":" + std::to_string(options_.redis.port);
  }

  int size() const { return options_.size; }
  // Connections not leased right now (a snapshot; for metrics and tests).
  int idle() const;

 private:
  void Release(std::unique_ptr<RedisConnection> connection);

  const PoolOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable returned_;
  std::vector<std::unique_ptr<RedisConnection>> idle_;  // guarded by mutex_
};

}  // namespace medsettle::cache

#endif  // MEDSETTLE_CACHE_CONNECTION_POOL_H_
