// A non-blocking, pipelining Redis client: a few I/O threads, each running
// its own epoll loop with ONE hiredis asynchronous connection (hiredis 0.14's
// async API; the event-loop adapter is our own, over epoll, so there is no
// libevent or libuv). Callers on any thread Send a pipeline and get its
// results by callback on that loop's thread.
//
// Why: with the blocking pool (cache/connection_pool.h) every request holds
// a worker thread and a connection for each round trip, and thread switches
// and one write plus one read per call dominate. Here the commands of many
// requests share a connection: everything submitted to a loop within one
// turn goes out in one write(), and the replies of one read() complete many
// pipelines. Request handlers written as coroutines (cache/task.h) resume
// on the I/O thread that completed their pipeline, with no hop back.
//
// Contract of a pipeline: as RedisClient::Pipeline (cache/redis_client.h).
// An I/O failure, a disconnect, or no reply within command_timeout_ms of
// being written fails the WHOLE pipeline, and every other pipeline then in
// flight on that connection, with UNAVAILABLE kRedisUnavailable: any prefix
// of their commands may have been applied. Nothing is ever resent.
//
// Recovery: a broken connection is freed and reconnected in the background,
// after reconnect_backoff_ms, doubling up to 1 s while connects fail. While
// a loop is not connected, Send fails at once (nothing waits for a
// reconnect), so a Redis outage costs callers no time.
//
// Not for: SUBSCRIBE / PSUBSCRIBE / UNSUBSCRIBE / PUNSUBSCRIBE / MONITOR
// (refused: they change how hiredis matches replies), CLIENT REPLY, HELLO 3,
// and blocking commands (BLPOP, XREAD BLOCK, ...): one slow command delays
// every pipeline behind it on its connection and trips the command timeout.
//
// Thread safety: Send, PipelineBlocking, connected and loops are safe from
// any thread, including from inside a Done running on an I/O thread. Stop
// (and so the destructor) must not run on an I/O thread (it joins them);
// Send may race with Stop, but not with the destructor. SIGPIPE is blocked
// in the I/O threads, the only ones that write to Redis sockets, so the
// process needs no signal setup.
#ifndef MEDSETTLE_CACHE_ASYNC_REDIS_H_
#define MEDSETTLE_CACHE_ASYNC_REDIS_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cache/redis_client.h"
#include "cache/redis_connection.h"

namespace medsettle::cache {

struct AsyncRedisOptions {
  // host, port; connect_timeout_ms bounds each (re)connect,
  // command_timeout_ms the wait for a pipeline's replies from its write;
  // on_round_trip (if set) gets the microseconds from a pipeline's write to
  // its last reply, on the I/O thread.
  RedisOptions redis;
  int loops = 2;  // I/O threads, each with its own epoll loop and ONE connection
  int reconnect_backoff_ms = 20;  // first retry delay; doubles up to 1000 ms
  // Pipelines submitted to one loop and not yet answered (queued or in
  // flight). Beyond it Send refuses at once: RESOURCE_EXHAUSTED.
  size_t max_pending_per_loop = 10000;
};

class AsyncRedis {
 public:
  // Called exactly once per Send: one RedisResult per command, or the status
  // that failed the whole pipeline.
  using Done = absl::AnyInvocable<void(absl::StatusOr<std::vector<RedisResult>>) &&>;

  // Starts `options.loops` I/O threads ("redis-io-<n>"); they connect in
  // the background, so a client made while Redis is down works once it is
  // up. REQUIRES: loops >= 1, timeouts > 0, reconnect_backoff_ms > 0,
  // max_pending_per_loop >= 1, 0 < port < 65536. Aborts when the process
  // cannot create an epoll instance or an eventfd (out of descriptors).
  explicit AsyncRedis(AsyncRedisOptions options);
  // Stop().
  ~AsyncRedis();

  AsyncRedis(const AsyncRedis&) = delete;
  AsyncRedis& operator=(const AsyncRedis&) = delete;

  // Sends `commands` as one pipeline on loop `shard % loops()` and calls
  // `done` exactly once. The commands are formatted before Send returns:
  // the views need to live for this call only.
  //
  // `done` runs on that loop's thread, with the results (each a reply or
  // the status of its error reply, ErrorReplyStatus) or UNAVAILABLE
  // kRedisUnavailable (I/O failure, timeout, disconnect, Stop: outcome
  // unknown). It runs on the calling thread, before Send returns, when the
  // pipeline is refused at once: stopped or loop not connected
  // (UNAVAILABLE kRedisUnavailable), max_pending_per_loop reached
  // (RESOURCE_EXHAUSTED kRedisPoolExhausted), an empty command or a
  // subscribe/monitor command (INVALID_ARGUMENT); or when `commands` is
  // empty (an empty vector).
  //
  // Order: pipelines that one thread sends to one shard are written, and
  // answered, in the order of the Send calls; so callers that key `shard`
  // by a person's hash tag keep that person's calls in order. Called on the
  // target loop's own thread (from a Done), Send appends to the connection
  // directly, without a wakeup.
  void Send(uint32_t shard, const std::vector<RedisArgv>& commands, Done done);

  // Send, and block the calling thread until `done`. For tools and tests.
  // FAILED_PRECONDITION (nothing sent) when called on an I/O thread of any
  // AsyncRedis, which would wait for itself.
  absl::StatusOr<std::vector<RedisResult>> PipelineBlocking(
      uint32_t shard, const std::vector<RedisArgv>& commands);

  // True while the connection of loop `shard % loops()` is up.
  bool connected(uint32_t shard) const;
  int loops() const { return static_cast<int>(loops_.size()); }

  // Fails every queued and in-flight pipeline with UNAVAILABLE (each done
  // called exactly once, on its loop's thread), closes the connections and
  // joins the I/O threads. Afterwards Send refuses at once. Idempotent;
  // safe while other threads Send. REQUIRES: not called on one of this
  // client's I/O threads (from a done): it would join itself, so it aborts.
  void Stop();

  const AsyncRedisOptions& options() const { return options_; }

 private:
  class Loop;  // one I/O thread: epoll, eventfd, hiredis context, queues

  Loop& LoopFor(uint32_t shard) const { return *loops_[shard % loops_.size()]; }

  const AsyncRedisOptions options_;
  std::vector<std::unique_ptr<Loop>> loops_;
  std::atomic<bool> stopped_{false};
  std::mutex stop_mutex_;  // serializes Stop
};

}  // namespace medsettle::cache

#endif  // MEDSETTLE_CACHE_ASYNC_REDIS_H_
