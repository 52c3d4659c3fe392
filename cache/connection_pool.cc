#include "cache/connection_pool.h"

#include <cassert>
#include <chrono>
#include <utility>

#include "engine/status.h"
#include "engine/text.h"

namespace medsettle::cache {

ConnectionPool::Lease::Lease(ConnectionPool* pool, std::unique_ptr<RedisConnection> connection)
    : pool_(pool), connection_(std::move(connection)) {}

ConnectionPool::Lease::Lease(Lease&& other) noexcept
    : pool_(std::exchange(other.pool_, nullptr)), connection_(std::move(other.connection_)) {}

ConnectionPool::Lease& ConnectionPool::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    Return();
    pool_ = std::exchange(other.pool_, nullptr);
    connection_ = std::move(other.connection_);
  }
  return *this;
}

ConnectionPool::Lease::~Lease() { Return(); }

void ConnectionPool::Lease::Return() {
  if (pool_ != nullptr && connection_ != nullptr) pool_->Release(std::move(connection_));
  pool_ = nullptr;
  connection_.reset();
}

ConnectionPool::ConnectionPool(PoolOptions options) : options_(std::move(options)) {
  assert(options_.size > 0 && options_.acquire_timeout_ms >= 0);
  idle_.reserve(static_cast<size_t>(options_.size));
  for (int i = 0; i < options_.size; ++i) {
    idle_.push_back(std::make_unique<RedisConnection>(options_.redis));
  }
}

ConnectionPool::~ConnectionPool() {
  std::lock_guard<std::mutex> lock(mutex_);
  assert(idle_.size() == static_cast<size_t>(options_.size) && "a Lease outlived its pool");
}

absl::StatusOr<ConnectionPool::Lease> ConnectionPool::Acquire(int timeout_ms) {
  const auto asked = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lock(mutex_);
  if (!returned_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                          [this] { return !idle_.empty(); })) {
    return engine::Refusal(
        absl::StatusCode::kResourceExhausted, reason::kRedisPoolExhausted, "",
        engine::Cat("no Redis connection free within ", timeout_ms, " ms (pool of ",
                    options_.size, ")"));
  }
  std::unique_ptr<RedisConnection> connection = std::move(idle_.back());
  idle_.pop_back();
  lock.unlock();
  if (options_.on_acquire) {
    options_.on_acquire(std::chrono::duration_cast<std::chrono::microseconds>(
                            std::chrono::steady_clock::now() - asked)
                            .count());
  }
  return Lease(this, std::move(connection));
}

void ConnectionPool::Release(std::unique_ptr<RedisConnection> connection) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    idle_.push_back(std::move(connection));
  }
  returned_.notify_one();
}

int ConnectionPool::idle() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int>(idle_.size());
}

RedisResult ConnectionPool::Command(const RedisArgv& argv) {
  absl::StatusOr<Lease> lease = Acquire(options_.acquire_timeout_ms);
  if (!lease.ok()) return lease.status();
  return (*lease)->Command(argv);
}

absl::StatusOr<std::vector<RedisResult>> ConnectionPool::Pipeline(
    const std::vector<RedisArgv>& commands) {
  absl::StatusOr<Lease> lease = Acquire(options_.acquire_timeout_ms);
  if (!lease.ok()) return lease.status();
  return (*lease)->Pipeline(commands);
}

}  // namespace medsettle::cache
