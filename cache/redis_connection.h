// One synchronous connection to one Redis server (hiredis, blocking I/O with
// timeouts). The hiredis context and every reply are owned by unique_ptrs
// with custom deleters, as sewenew/redis-plus-plus does; replies are copied
// into RedisReply values before the hiredis reply is freed.
//
// Recovery: a context that reported an I/O error (connection refused or
// reset, EOF, a read or write timeout) is discarded at once, and the next
// call connects a fresh one. Before each call an idle connection is also
// checked, without a round trip, for a peer that closed it (Redis
// restarted); such a context is replaced before anything is sent. A command
// that failed is never resent: whether it was applied is unknown.
//
// Thread safety: not thread-safe; one thread at a time (ConnectionPool hands
// each connection to one caller at a time). SIGPIPE from a write to a broken
// socket is suppressed for the calling thread only, so the process needs no
// signal setup.
#ifndef MEDSETTLE_CACHE_REDIS_CONNECTION_H_
#define MEDSETTLE_CACHE_REDIS_CONNECTION_H_

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cache/redis_client.h"

struct redisContext;  // hiredis, kept out of this header

namespace medsettle::cache {

// Where and how patiently to talk to Redis.
struct RedisOptions {
  std::string host = "127.0.0.1";  // an IP address or a resolvable name
  int port = 6379;
  int connect_timeout_ms = 200;  // bounds the TCP connect
  int command_timeout_ms = 500;  // bounds each socket read and write
  // Called after every Command or Pipeline that read all its replies, with
  // the microseconds from the send to the last reply (the gateway's Redis
  // round-trip histogram). Runs on the caller's thread; must be cheap and
  // thread-safe (a pool's connections share it). Null: not measured.
  std::function<void(int64_t round_trip_us)> on_round_trip;
};

class RedisConnection {
 public:
  // A connection that connects on its first call (or on EnsureConnected).
  // REQUIRES: timeouts > 0, 0 < port < 65536.
  explicit RedisConnection(RedisOptions options);
  ~RedisConnection();

  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // Connects now to host:port (redisConnectWithTimeout, then
  // redisSetTimeout for commands). UNAVAILABLE kRedisUnavailable when the
  // connect fails or takes longer than connect_timeout_ms.
  static absl::StatusOr<std::unique_ptr<RedisConnection>> Connect(
      std::string_view host, int port, int connect_timeout_ms,
      int command_timeout_ms);

  // Connects if there is no live context; OK if there already is one.
  // UNAVAILABLE kRedisUnavailable on failure.
  absl::Status EnsureConnected();

  // True while a context is held (it may still turn out to be broken).
  bool connected() const { return context_ != nullptr; }

  // As RedisClient::Command and RedisClient::Pipeline (cache/redis_client.h).
  RedisResult Command(const RedisArgv& argv);
  absl::StatusOr<std::vector<RedisResult>> Pipeline(
      const std::vector<RedisArgv>& commands);

  const RedisOptions& options() const { return options_; }

 private:
  struct ContextDeleter {
    void operator()(redisContext* context) const;
  };
  using ContextPtr = std::unique_ptr<redisContext, ContextDeleter>;

  // Drops the context and returns UNAVAILABLE naming `what` and hiredis's
  // error text.
  absl::Status Discard(std::string_view what);
  // Appends one command to the context's output buffer.
  absl::Status Append(const RedisArgv& argv);
  // Reads the next reply (flushing the output buffer first).
  absl::StatusOr<RedisReply> ReadReply();
  // Calls options_.on_round_trip with the time since `sent`, if set.
  void ReportRoundTrip(std::chrono::steady_clock::time_point sent) const;

  RedisOptions options_;
  ContextPtr context_;
};

}  // namespace medsettle::cache

#endif  // MEDSETTLE_CACHE_REDIS_CONNECTION_H_
