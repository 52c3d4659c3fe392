// The one interface through which medsettle talks to Redis, the value type
// of a reply, and the stable reasons of Redis failures.
//
// Everything above cache/ (the gateway, the snapshot loader, the ledger's
// shipper, the tools) holds a RedisClient&, never a connection or a pool,
// so that one server (cache/connection_pool.h, cache/async_redis_client.h)
// and a Redis Cluster (cache/cluster_client.h) serve the same callers,
// chosen by configuration (cache/redis_factory.h). What a cluster needs,
// every caller gives: each call names its routing key — a key of its
// commands, or the hash tag they share ("3f" routes like "{3f}") — and
// every key named in one Command or one Pipeline hashes to that key's
// slot (one person's keys share a hash tag, "{<first 2 hex of the person
// key>}"). Commands that address a whole server rather than a key (PING,
// INFO, TIME, SCAN) go to NodeCommand, once per node.
#ifndef MEDSETTLE_CACHE_REDIS_CLIENT_H_
#define MEDSETTLE_CACHE_REDIS_CLIENT_H_

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace medsettle::cache {

// Stable reason strings of the cache layer (read them with
// engine::ReasonOf). Never rename one: the gateway maps them to gRPC
// statuses and clients branch on them.
namespace reason {
// UNAVAILABLE: Redis could not be reached, the connection broke, a command
// did not answer within its timeout, or Redis answered that it cannot serve
// yet (LOADING its AOF, BUSY, MASTERDOWN, TRYAGAIN, CLUSTERDOWN). Whether a
// write sent before the failure was applied is unknown; callers must make
// writes idempotent.
inline constexpr std::string_view kRedisUnavailable = "REDIS_UNAVAILABLE";
// INTERNAL: Redis answered with any other error reply (WRONGTYPE, a syntax
// error, an error raised by a script); the message is Redis's text.
inline constexpr std::string_view kRedisError = "REDIS_ERROR";
// Redis answered "NOSCRIPT": EVALSHA of a script it does not hold. Callers
// load the script (SCRIPT LOAD or EVAL) and retry. Code FAILED_PRECONDITION.
inline constexpr std::string_view kRedisNoscript = "REDIS_NOSCRIPT";
// RESOURCE_EXHAUSTED: no pooled connection became free within the
// acquire timeout (the process is overloaded or Redis is slow).
inline constexpr std::string_view kRedisPoolExhausted = "REDIS_POOL_EXHAUSTED";
}  // namespace reason

// One reply, owned and independent of hiredis. `str` holds the bytes of a
// bulk string, the text of a status ("OK") or of an error reply; `integer`
// the value of an integer reply; `elements` the items of an array (items may
// themselves be errors, e.g. inside an EXEC result). A nil bulk string or
// nil array is kNil.
struct RedisReply {
  enum class Type { kNil, kInteger, kString, kArray, kStatus, kError };

  Type type = Type::kNil;
  int64_t integer = 0;
  std::string str;
  std::vector<RedisReply> elements;

  bool is_nil() const { return type == Type::kNil; }
  bool is_error() const { return type == Type::kError; }
};

// The arguments of one command, e.g. {"SET", key, value}. The views must
// stay valid for the duration of the call only; they may hold any bytes.
using RedisArgv = std::vector<std::string_view>;

// The result of one command: its reply, or the status an error reply maps
// to (ErrorReplyStatus).
using RedisResult = absl::StatusOr<RedisReply>;

// The status of an error reply `text` (as Redis sent it, e.g.
// "NOSCRIPT No matching script..."), by its first word: NOSCRIPT →
// kRedisNoscript; LOADING, BUSY, MASTERDOWN, TRYAGAIN, CLUSTERDOWN →
// kRedisUnavailable; anything else → kRedisError. The message is `text`.
absl::Status ErrorReplyStatus(std::string_view text);

// Redis access for the rest of medsettle. Implementations are safe to call
// from many threads at once and block the calling thread for at most their
// configured timeouts (acquire + connect + command).
class RedisClient {
 public:
  virtual ~RedisClient() = default;

  // Sends one command to the server of `routing_key`'s slot (a key of
  // `argv`, or the hash tag of its keys; a single server ignores it) and
  // returns its reply. A top-level error reply is returned as its status
  // (ErrorReplyStatus); I/O failures and timeouts as UNAVAILABLE
  // kRedisUnavailable. REQUIRES: !argv.empty().
  virtual RedisResult Command(std::string_view routing_key, const RedisArgv& argv) = 0;

  // Sends `commands` (every key in `routing_key`'s slot) in one write and
  // reads their replies in order: one round trip. On success the vector has
  // one RedisResult per command, each a reply or the status of that
  // command's error reply (one command's error does not fail the others).
  // Any I/O failure or timeout fails the whole pipeline with UNAVAILABLE;
  // none of the replies is then returned, and any of the commands may have
  // been applied. REQUIRES: every element of `commands` is non-empty.
  virtual absl::StatusOr<std::vector<RedisResult>> Pipeline(
      std::string_view routing_key, const std::vector<RedisArgv>& commands) = 0;

  // Commands of many slots, `routing_keys[i]` naming the slot of
  // `commands[i]`: one pipeline per server (one round trip on a single
  // server, one per primary of a cluster, sent one after another). Results
  // in the order of `commands`, failures as Pipeline. For readers of every
  // tag at once (the shipper's journal heads, operators' tools).
  // REQUIRES: routing_keys.size() == commands.size().
  virtual absl::StatusOr<std::vector<RedisResult>> PipelineAcrossSlots(
      const std::vector<std::string_view>& routing_keys,
      const std::vector<RedisArgv>& commands) = 0;

  // What SendPipeline calls when the pipeline is done.
  using PipelineDone = absl::AnyInvocable<void(absl::StatusOr<std::vector<RedisResult>>) &&>;

  // Pipeline without waiting, where the client can: sends `commands`
  // (every key under the hash tag `routing_key`, e.g. "3f" of "{3f}") and
  // calls `done` exactly once with what Pipeline would return. The
  // commands are copied before SendPipeline returns. This default blocks:
  // it runs Pipeline and calls `done` on the calling thread. An
  // asynchronous client (cache/async_redis.h) returns at once and calls
  // `done` on its I/O thread; the tag keeps one person's calls in order on
  // one connection (and, in a cluster, picks the slot).
  virtual void SendPipeline(std::string_view routing_key, const std::vector<RedisArgv>& commands,
                            PipelineDone done) {
    std::move(done)(Pipeline(routing_key, commands));
  }

  // The servers that hold data: 1 for a single server, the primaries of a
  // cluster (as its slot table lists them now).
  virtual int NodeCount() { return 1; }
  // A command about a server rather than a key (PING, INFO, TIME, DBSIZE,
  // SCAN), sent to server `node` (0 ≤ node < NodeCount()); a SCAN cursor
  // belongs to the node that returned it. FAILED_PRECONDITION
  // REDIS_CLUSTER_NODE_GONE for a node that no longer exists.
  virtual RedisResult NodeCommand(int node, const RedisArgv& argv) = 0;
  // Server `node`'s address, "host:port" (health, metrics and logs name
  // nodes by it); "" for a node that no longer exists.
  virtual std::string NodeName(int node) = 0;
};

// `co_await AwaitPipeline(redis, tag, commands)` in a cache::Task
// (cache/task.h): SendPipeline, the coroutine resuming with its result on
// the thread that completed it (at once, without parking, when the client
// completed it inline). `commands` must stay valid until the co_await
// returns.
class AwaitPipeline {
 public:
  AwaitPipeline(RedisClient& redis, std::string_view hash_tag,
                const std::vector<RedisArgv>& commands)
      : redis_(redis), hash_tag_(hash_tag), commands_(commands) {}

  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> awaiter) {
    awaiter_ = awaiter;
    redis_.SendPipeline(hash_tag_, commands_,
                        [this](absl::StatusOr<std::vector<RedisResult>> result) {
                          result_ = std::move(result);
                          // Second to arrive resumes: if await_suspend has
                          // not returned yet, it sees the flag and does not
                          // park the coroutine at all.
                          if (finished_.exchange(true, std::memory_order_acq_rel)) {
                            awaiter_.resume();
                          }
                        });
    return !finished_.exchange(true, std::memory_order_acq_rel);
  }
  absl::StatusOr<std::vector<RedisResult>> await_resume() { return std::move(result_); }

 private:
  RedisClient& redis_;
  std::string_view hash_tag_;
  const std::vector<RedisArgv>& commands_;
  std::coroutine_handle<> awaiter_;
  std::atomic<bool> finished_{false};
  absl::StatusOr<std::vector<RedisResult>> result_ = absl::UnknownError("not run");
};

}  // namespace medsettle::cache

#endif  // MEDSETTLE_CACHE_REDIS_CLIENT_H_
