// The asynchronous Redis client (cache/async_redis.h) against a real
// redis-server of the test's own (tests/support/redis_server.h): replies
// identical to the blocking connection's, the per-shard order under 8
// sending threads, Send from inside a done, one write per loop turn, a 4 MB
// value, the command timeout, kill -9 and restart, no server at all, Stop
// with pipelines in flight, the pending limit, and PipelineBlocking on an
// I/O thread. Every wait is bounded; timing assertions are upper bounds with
// room for a loaded 2-core CI machine (and the sanitizer build).
#include "cache/async_redis.h"

#include <pthread.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "cache/redis_client.h"
#include "cache/redis_connection.h"
#include "engine/status.h"
#include "tests/support/redis_server.h"

namespace medsettle::cache {
namespace {

using engine::ReasonOf;
using medsettle::testing::FreeLoopbackPort;
using medsettle::testing::RedisServer;
using medsettle::testing::RedisServerTest;
using Clock = std::chrono::steady_clock;
using PipelineResult = absl::StatusOr<std::vector<RedisResult>>;

// Generous: the machine may be busy with another test process.
constexpr int kConnectTimeoutMs = 1000;
constexpr int kCommandTimeoutMs = 2000;
// The longest any test waits for something that should take milliseconds.
constexpr auto kBound = std::chrono::seconds(10);

// A Lua script that keeps Redis busy for ARGV[1] microseconds, as DEBUG
// SLEEP would (the shipped configuration leaves DEBUG disabled). Nothing
// else is served meanwhile; pipelines sent behind it stay in flight.
constexpr std::string_view kBusyScript =
    "local t = redis.call('TIME') "
    "local start = t[1] * 1000000 + t[2] "
    "while true do "
    "  t = redis.call('TIME') "
    "  if t[1] * 1000000 + t[2] - start >= tonumber(ARGV[1]) then return 1 end "
    "end";

AsyncRedisOptions OptionsFor(const RedisServer& server, int loops = 2) {
  AsyncRedisOptions options;
  options.redis = RedisOptions{.host = server.host(),
                               .port = server.port(),
                               .connect_timeout_ms = kConnectTimeoutMs,
                               .command_timeout_ms = kCommandTimeoutMs};
  options.loops = loops;
  return options;
}

// Polls `condition` every millisecond for at most `limit`.
bool WaitUntil(const std::function<bool()>& condition, Clock::duration limit = kBound) {
  const Clock::time_point end = Clock::now() + limit;
  while (!condition()) {
    if (Clock::now() >= end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

bool AllConnected(const AsyncRedis& client) {
  for (int i = 0; i < client.loops(); ++i) {
    if (!client.connected(static_cast<uint32_t>(i))) return false;
  }
  return true;
}

std::string ThreadName() {
  char name[32] = {};
  pthread_getname_np(pthread_self(), name, sizeof(name));
  return name;
}

bool SameReply(const RedisReply& a, const RedisReply& b) {
  if (a.type != b.type || a.integer != b.integer || a.str != b.str ||
      a.elements.size() != b.elements.size()) {
    return false;
  }
  for (size_t i = 0; i < a.elements.size(); ++i) {
    if (!SameReply(a.elements[i], b.elements[i])) return false;
  }
  return true;
}

// Records each done by its index: how often it ran (exactly once is the
// contract), its result and its thread; waits for all of them.
class Dones {
 public:
  explicit Dones(size_t count) : calls_(count, 0), results_(count), threads_(count) {}

  AsyncRedis::Done For(size_t index) {
    return [this, index](PipelineResult result) {
      std::lock_guard<std::mutex> lock(mutex_);
      ++calls_[index];
      results_[index] = std::move(result);
      threads_[index] = ThreadName();
      ++finished_;
      changed_.notify_all();
    };
  }

  bool WaitAll(Clock::duration limit = kBound) {
    std::unique_lock<std::mutex> lock(mutex_);
    return changed_.wait_for(lock, limit, [&] { return finished_ >= calls_.size(); });
  }
  size_t finished() {
    std::lock_guard<std::mutex> lock(mutex_);
    return finished_;
  }
  // After WaitAll (or Stop): the dones no longer run.
  int calls(size_t index) const { return calls_[index]; }
  const PipelineResult& result(size_t index) const { return results_[index]; }
  const std::string& thread(size_t index) const { return threads_[index]; }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<int> calls_;
  std::vector<PipelineResult> results_;
  std::vector<std::string> threads_;
  size_t finished_ = 0;
};

class AsyncRedisTest : public RedisServerTest {
 protected:
  // A client of `loops` I/O threads, connected (or the test fails).
  std::unique_ptr<AsyncRedis> Connected(AsyncRedisOptions options) {
    auto client = std::make_unique<AsyncRedis>(std::move(options));
    EXPECT_TRUE(WaitUntil([&] { return AllConnected(*client); })) << "never connected";
    return client;
  }

  std::unique_ptr<RedisConnection> Blocking() {
    absl::StatusOr<std::unique_ptr<RedisConnection>> connection = RedisConnection::Connect(
        redis().host(), redis().port(), kConnectTimeoutMs, kCommandTimeoutMs);
    EXPECT_TRUE(connection.ok()) << connection.status();
    return connection.ok() ? *std::move(connection) : nullptr;
  }
};

TEST_F(AsyncRedisTest, PipelineRepliesEqualWhatARedisConnectionGets) {
  std::unique_ptr<RedisConnection> blocking = Blocking();
  ASSERT_NE(blocking, nullptr);
  const std::string binary("a\0b\r\nc", 6);
  ASSERT_TRUE(blocking->Command({"SET", "bin", binary}).ok());
  ASSERT_TRUE(blocking->Command({"RPUSH", "list", "x", "", "z"}).ok());
  ASSERT_TRUE(blocking->Command({"SET", "n", "41"}).ok());

  const std::vector<RedisArgv> commands = {
      {"GET", "bin"},                                     // string with NUL and CRLF
      {"GET", "missing"},                                 // nil
      {"INCRBY", "n", "0"},                               // integer
      {"LRANGE", "list", "0", "-1"},                      // array with an empty string
      {"MGET", "bin", "missing"},                         // array with a nil
      {"SET", "s", "v"},                                  // status OK
      {"LPUSH", "bin", "x"},                              // WRONGTYPE: this element only
      {"EVALSHA", "0123456789012345678901234567890123456789", "0"},  // NOSCRIPT
      {"EVAL", "return {1, 'two', {3, false}, redis.status_reply('FINE')}", "0"},
      {"EVAL", "return redis.error_reply('MY script failed')", "0"},
      {"PING"},
  };
  absl::StatusOr<std::vector<RedisResult>> expected = blocking->Pipeline(commands);
  ASSERT_TRUE(expected.ok()) << expected.status();

  std::atomic<int> round_trips{0};
  AsyncRedisOptions options = OptionsFor(redis());
  options.redis.on_round_trip = [&](int64_t round_trip_us) {
    EXPECT_GE(round_trip_us, 0);
    ++round_trips;
  };
  std::unique_ptr<AsyncRedis> client = Connected(std::move(options));
  PipelineResult got = client->PipelineBlocking(7, commands);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), expected->size());
  for (size_t i = 0; i < commands.size(); ++i) {
    const RedisResult& want = (*expected)[i];
    const RedisResult& have = (*got)[i];
    ASSERT_EQ(have.ok(), want.ok()) << "command " << i;
    if (want.ok()) {
      EXPECT_TRUE(SameReply(*have, *want)) << "command " << i;
    } else {
      EXPECT_EQ(have.status(), want.status()) << "command " << i;
      EXPECT_EQ(ReasonOf(have.status()), ReasonOf(want.status())) << "command " << i;
    }
  }
  // And what those values are.
  EXPECT_EQ((*got)[0]->str, binary);
  EXPECT_TRUE((*got)[1]->is_nil());
  EXPECT_EQ((*got)[2]->type, RedisReply::Type::kInteger);
  EXPECT_EQ((*got)[2]->integer, 41);
  ASSERT_EQ((*got)[3]->elements.size(), 3u);
  EXPECT_EQ((*got)[3]->elements[1].str, "");
  ASSERT_EQ((*got)[4]->elements.size(), 2u);
  EXPECT_TRUE((*got)[4]->elements[1].is_nil());
  EXPECT_EQ((*got)[5]->type, RedisReply::Type::kStatus);
  EXPECT_EQ((*got)[5]->str, "OK");
  EXPECT_EQ(ReasonOf((*got)[6].status()), reason::kRedisError);
  EXPECT_EQ((*got)[7].status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReasonOf((*got)[7].status()), reason::kRedisNoscript);
  ASSERT_EQ((*got)[8]->elements.size(), 4u);
  EXPECT_EQ((*got)[8]->elements[2].elements.size(), 2u);
  EXPECT_TRUE((*got)[8]->elements[2].elements[1].is_nil());  // Lua false
  EXPECT_EQ((*got)[8]->elements[3].type, RedisReply::Type::kStatus);
  EXPECT_EQ(ReasonOf((*got)[9].status()), reason::kRedisError);
  EXPECT_EQ((*got)[10]->str, "PONG");
  EXPECT_EQ(round_trips.load(), 1);

  // The done of an accepted pipeline runs on the loop's thread.
  Dones dones(1);
  client->Send(1, {{"PING"}}, dones.For(0));
  ASSERT_TRUE(dones.WaitAll());
  EXPECT_EQ(dones.thread(0), "redis-io-1");
  EXPECT_TRUE(dones.result(0).ok());
}

TEST_F(AsyncRedisTest, BadCommandsAreRefusedOnTheCallingThread) {
  std::unique_ptr<AsyncRedis> client = Connected(OptionsFor(redis()));
  const std::string caller = ThreadName();
  for (const std::vector<RedisArgv>& commands : std::vector<std::vector<RedisArgv>>{
           {{"PING"}, {}}, {{"SUBSCRIBE", "c"}}, {{"psubscribe", "c*"}}, {{"MONITOR"}}}) {
    Dones dones(1);
    client->Send(0, commands, dones.For(0));
    ASSERT_EQ(dones.finished(), 1u) << "refused before Send returned";
    EXPECT_EQ(dones.thread(0), caller);
    EXPECT_EQ(dones.result(0).status().code(), absl::StatusCode::kInvalidArgument);
  }
  PipelineResult none = client->PipelineBlocking(0, {});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  PipelineResult ping = client->PipelineBlocking(0, {{"PING"}});
  ASSERT_TRUE(ping.ok()) << ping.status();
}

// 8 threads × 2,000 pipelines {INCR, GET} of a key of their own, each thread
// on a shard of its own (4 shards per loop): every done runs once, and each
// thread sees 1, 2, 3, ... in the order it sent (one thread's pipelines on
// one shard are written and answered in Send order).
TEST_F(AsyncRedisTest, EightThreadsKeepTheirOrderPerShard) {
  constexpr int kThreads = 8;
  constexpr int kPipelines = 2000;
  Dones dones(kThreads * kPipelines);
  std::vector<std::vector<int64_t>> seen(kThreads, std::vector<int64_t>(kPipelines, -1));
  AsyncRedisOptions options = OptionsFor(redis());
  options.max_pending_per_loop = kThreads * kPipelines;
  std::unique_ptr<AsyncRedis> client = Connected(std::move(options));

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string key = "count:{" + std::to_string(t) + "}";
      for (int i = 0; i < kPipelines; ++i) {
        const size_t index = static_cast<size_t>(t * kPipelines + i);
        AsyncRedis::Done record = dones.For(index);
        client->Send(static_cast<uint32_t>(t), {{"INCR", key}, {"GET", key}},
                     [&seen, t, i, record = std::move(record)](PipelineResult result) mutable {
                       if (result.ok() && result->size() == 2 && (*result)[0].ok() &&
                           (*result)[1].ok() &&
                           std::to_string((*result)[0]->integer) == (*result)[1]->str) {
                         seen[t][i] = (*result)[0]->integer;
                       }
                       std::move(record)(std::move(result));
                     });
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  ASSERT_TRUE(dones.WaitAll()) << dones.finished() << " of " << kThreads * kPipelines;

  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPipelines; ++i) {
      const size_t index = static_cast<size_t>(t * kPipelines + i);
      ASSERT_EQ(dones.calls(index), 1) << "thread " << t << " pipeline " << i;
      ASSERT_TRUE(dones.result(index).ok()) << dones.result(index).status();
      ASSERT_EQ(seen[t][i], i + 1) << "thread " << t << " pipeline " << i << " out of order";
    }
    const std::string key = "count:{" + std::to_string(t) + "}";
    PipelineResult total = client->PipelineBlocking(static_cast<uint32_t>(t), {{"GET", key}});
    ASSERT_TRUE(total.ok()) << total.status();
    EXPECT_EQ((*total)[0]->str, std::to_string(kPipelines));
  }
}

// A chain of 1,000 dependent calls, each sent by the previous one's done on
// the I/O thread (appended directly, no wakeup). Each link ECHOes its own
// number from a string that dies as Send returns (the commands are copied
// by then); ECHO, not INCR, because every write waits for the AOF's fsync.
TEST_F(AsyncRedisTest, SendFromInsideADoneChainsAThousandCalls) {
  constexpr int64_t kLinks = 1000;
  std::mutex mutex;
  std::condition_variable finished;
  int64_t links = 0;
  bool broken = false;
  bool over = false;
  std::function<void(int64_t)> next;
  std::unique_ptr<AsyncRedis> client = Connected(OptionsFor(redis()));
  next = [&](int64_t link) {
    const std::string text = std::to_string(link);
    client->Send(3, {{"ECHO", text}}, [&, link](PipelineResult result) {
      {
        std::lock_guard<std::mutex> lock(mutex);
        if (!result.ok() || !(*result)[0].ok() || (*result)[0]->str != std::to_string(link) ||
            link != links + 1 || ThreadName() != "redis-io-1") {  // shard 3 of 2 loops
          broken = true;
        } else {
          ++links;
        }
        if (broken || links == kLinks) {
          over = true;
          finished.notify_all();
          return;
        }
      }
      next(link + 1);  // its done runs in a later loop turn
    });
  };
  next(1);
  std::unique_lock<std::mutex> lock(mutex);
  ASSERT_TRUE(finished.wait_for(lock, kBound, [&] { return over; }));
  EXPECT_FALSE(broken) << "after " << links << " links";
  EXPECT_EQ(links, kLinks);
}

// Everything a done sends to its own loop leaves in one write: Redis reads
// 100 pipelines in one read (INFO stats total_reads_processed; the blocking
// observer's INFO is one read more).
TEST_F(AsyncRedisTest, PipelinesSentInOneLoopTurnLeaveInOneWrite) {
  std::unique_ptr<RedisConnection> observer = Blocking();
  ASSERT_NE(observer, nullptr);
  constexpr size_t kBurst = 100;
  Dones dones(kBurst);
  std::unique_ptr<AsyncRedis> client = Connected(OptionsFor(redis(), 1));
  auto reads = [&]() -> int64_t {
    RedisResult info = observer->Command({"INFO", "stats"});
    EXPECT_TRUE(info.ok()) << info.status();
    if (!info.ok()) return -1;
    const std::string needle = "total_reads_processed:";
    size_t at = info->str.find(needle);
    if (at == std::string::npos) return -1;
    return std::strtoll(info->str.c_str() + at + needle.size(), nullptr, 10);
  };
  Dones trigger(1);
  const int64_t before = reads();
  client->Send(0, {{"PING"}}, [&](PipelineResult result) {
    for (size_t i = 0; i < kBurst; ++i) client->Send(0, {{"INCR", "burst"}}, dones.For(i));
    trigger.For(0)(std::move(result));
  });
  ASSERT_TRUE(dones.WaitAll());
  ASSERT_TRUE(trigger.WaitAll());
  const int64_t after = reads();
  // PING, the burst, and the observer's second INFO.
  EXPECT_EQ(after - before, 3);
  for (size_t i = 0; i < kBurst; ++i) {
    ASSERT_TRUE(dones.result(i).ok());
    EXPECT_EQ((*dones.result(i))[0]->integer, static_cast<int64_t>(i + 1));
  }
}

TEST_F(AsyncRedisTest, FourMegabyteValueRoundTrips) {
  std::string value(4 << 20, '\0');
  std::mt19937_64 random(20240611);
  for (char& c : value) c = static_cast<char>(random() & 0xff);
  std::unique_ptr<AsyncRedis> client = Connected(OptionsFor(redis()));
  PipelineResult got = client->PipelineBlocking(
      0, {{"SET", "big", value}, {"GET", "big"}, {"STRLEN", "big"}});
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE((*got)[1].ok());
  EXPECT_TRUE((*got)[1]->str == value) << "4 MB value changed on the way";
  EXPECT_EQ((*got)[2]->integer, static_cast<int64_t>(value.size()));
}

// No reply within command_timeout_ms fails the pipeline (and the one behind
// it) with UNAVAILABLE; the client then reconnects by itself.
TEST_F(AsyncRedisTest, CommandTimeoutFailsInFlightPipelinesAndRecovers) {
  AsyncRedisOptions options = OptionsFor(redis(), 1);
  options.redis.command_timeout_ms = 100;
  std::unique_ptr<AsyncRedis> client = Connected(std::move(options));

  Dones dones(2);
  const Clock::time_point start = Clock::now();
  std::atomic<int64_t> slow_ms{-1};
  AsyncRedis::Done record_slow = dones.For(0);
  client->Send(0, {{"EVAL", kBusyScript, "0", "500000"}},
               [&, record = std::move(record_slow)](PipelineResult result) mutable {
                 slow_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                               Clock::now() - start)
                               .count();
                 std::move(record)(std::move(result));
               });
  client->Send(0, {{"PING"}}, dones.For(1));
  ASSERT_TRUE(dones.WaitAll());
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(dones.calls(i), 1);
    EXPECT_EQ(dones.result(i).status().code(), absl::StatusCode::kUnavailable) << i;
    EXPECT_EQ(ReasonOf(dones.result(i).status()), reason::kRedisUnavailable) << i;
  }
  EXPECT_NE(dones.result(0).status().message().find("no reply within 100 ms"),
            absl::string_view::npos)
      << dones.result(0).status();
  EXPECT_GE(slow_ms.load(), 95);
  EXPECT_LE(slow_ms.load(), 450) << "the script ends at 500 ms: that would be its reply";

  // Redis is busy for the rest of the 500 ms (calls time out or are refused
  // while reconnecting), then a call succeeds on a new connection.
  PipelineResult ping = absl::UnknownError("not run");
  EXPECT_TRUE(WaitUntil(
      [&] {
        ping = client->PipelineBlocking(0, {{"PING"}});
        return ping.ok();
      },
      std::chrono::seconds(5)))
      << ping.status();
}

// kill -9 with pipelines in flight: each fails UNAVAILABLE exactly once;
// while Redis is down calls fail at once; after a restart the client
// reconnects by itself.
TEST_F(AsyncRedisTest, KilledRedisFailsInFlightPipelinesAndRecoversAfterRestart) {
  AsyncRedisOptions options = OptionsFor(redis(), 1);
  options.redis.command_timeout_ms = 10000;  // the kill, not the timeout, fails them
  std::unique_ptr<AsyncRedis> client = Connected(std::move(options));

  constexpr size_t kInFlight = 200;
  Dones dones(kInFlight);
  client->Send(0, {{"EVAL", kBusyScript, "0", "2000000"}}, dones.For(0));
  for (size_t i = 1; i < kInFlight; ++i) client->Send(0, {{"INCR", "n"}}, dones.For(i));
  // Let the loop write them; Redis is inside the script and answers nothing.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(dones.finished(), 0u);
  redis().Kill9();
  ASSERT_TRUE(dones.WaitAll(std::chrono::seconds(5)));
  for (size_t i = 0; i < kInFlight; ++i) {
    ASSERT_EQ(dones.calls(i), 1) << i;
    EXPECT_EQ(dones.result(i).status().code(), absl::StatusCode::kUnavailable) << i;
    EXPECT_EQ(ReasonOf(dones.result(i).status()), reason::kRedisUnavailable) << i;
  }
  EXPECT_FALSE(client->connected(0));

  // Down: refused at once, on the calling thread.
  for (int i = 0; i < 3; ++i) {
    Dones down(1);
    const Clock::time_point start = Clock::now();
    client->Send(0, {{"PING"}}, down.For(0));
    ASSERT_EQ(down.finished(), 1u) << "refused before Send returned";
    EXPECT_LT(Clock::now() - start, std::chrono::milliseconds(50));
    EXPECT_EQ(ReasonOf(down.result(0).status()), reason::kRedisUnavailable);
    std::this_thread::sleep_for(std::chrono::milliseconds(30));  // across reconnect attempts
  }

  ASSERT_TRUE(redis().Restart().ok());
  // Reconnect attempts back off to at most 1 s apart.
  EXPECT_TRUE(WaitUntil([&] { return client->connected(0); }, std::chrono::seconds(5)));
  PipelineResult ping = client->PipelineBlocking(0, {{"PING"}});
  ASSERT_TRUE(ping.ok()) << ping.status();
  EXPECT_EQ((*ping)[0]->str, "PONG");
}

TEST(AsyncRedisNoServerTest, SendFailsAtOnceAndNothingIsConnected) {
  AsyncRedisOptions options;
  options.redis.host = "127.0.0.1";
  options.redis.port = FreeLoopbackPort();  // nobody listens there
  options.redis.connect_timeout_ms = kConnectTimeoutMs;
  AsyncRedis client(std::move(options));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // a few connect attempts
  for (uint32_t shard = 0; shard < 2; ++shard) {
    EXPECT_FALSE(client.connected(shard));
    Dones dones(1);
    const Clock::time_point start = Clock::now();
    client.Send(shard, {{"PING"}}, dones.For(0));
    ASSERT_EQ(dones.finished(), 1u) << "refused before Send returned";
    EXPECT_LT(Clock::now() - start, std::chrono::milliseconds(50));
    EXPECT_EQ(dones.result(0).status().code(), absl::StatusCode::kUnavailable);
    EXPECT_EQ(ReasonOf(dones.result(0).status()), reason::kRedisUnavailable);
  }
  PipelineResult blocking = client.PipelineBlocking(0, {{"PING"}});
  EXPECT_EQ(blocking.status().code(), absl::StatusCode::kUnavailable);
}

// Stop with 1,000 pipelines queued or in flight on two loops, while another
// thread keeps sending: every done runs exactly once; afterwards Send is
// refused at once.
TEST_F(AsyncRedisTest, StopCallsEveryPendingDoneOnce) {
  constexpr size_t kPipelines = 1000;
  constexpr size_t kRacing = 5000;
  Dones dones(kPipelines);
  Dones racing(kRacing);
  std::unique_ptr<AsyncRedis> client = Connected(OptionsFor(redis()));
  // Keep Redis busy so that nothing behind the script is answered.
  client->Send(0, {{"EVAL", kBusyScript, "0", "600000"}}, [](PipelineResult) {});
  for (size_t i = 0; i < kPipelines; ++i) {
    client->Send(static_cast<uint32_t>(i), {{"INCR", "n"}, {"GET", "n"}}, dones.For(i));
  }
  std::atomic<bool> go{false};
  std::thread racer([&] {
    go = true;
    for (size_t i = 0; i < kRacing; ++i) {
      client->Send(static_cast<uint32_t>(i), {{"PING"}}, racing.For(i));
    }
  });
  ASSERT_TRUE(WaitUntil([&] { return go.load(); }));
  client->Stop();
  racer.join();

  ASSERT_TRUE(dones.WaitAll(std::chrono::seconds(1))) << "Stop returned before every done";
  ASSERT_TRUE(racing.WaitAll(std::chrono::seconds(1)));
  size_t failed = 0;
  for (size_t i = 0; i < kPipelines; ++i) {
    ASSERT_EQ(dones.calls(i), 1) << i;
    if (!dones.result(i).ok()) {
      ++failed;
      EXPECT_EQ(ReasonOf(dones.result(i).status()), reason::kRedisUnavailable);
    }
  }
  // Shard 0's loop had them behind the script: none of its half can have
  // been answered before Stop.
  EXPECT_GE(failed, kPipelines / 2);
  for (size_t i = 0; i < kRacing; ++i) ASSERT_EQ(racing.calls(i), 1) << i;

  Dones after(1);
  client->Send(0, {{"PING"}}, after.For(0));
  ASSERT_EQ(after.finished(), 1u) << "refused before Send returned";
  EXPECT_EQ(ReasonOf(after.result(0).status()), reason::kRedisUnavailable);
  EXPECT_FALSE(client->connected(0));
  client->Stop();  // idempotent
}

TEST_F(AsyncRedisTest, TooManyPendingPipelinesAreRefusedAtOnce) {
  AsyncRedisOptions options = OptionsFor(redis(), 1);
  options.max_pending_per_loop = 5;
  std::unique_ptr<AsyncRedis> client = Connected(std::move(options));
  Dones dones(5);
  client->Send(0, {{"EVAL", kBusyScript, "0", "300000"}}, dones.For(0));
  for (size_t i = 1; i < 5; ++i) client->Send(0, {{"PING"}}, dones.For(i));

  Dones refused(1);
  client->Send(0, {{"PING"}}, refused.For(0));
  ASSERT_EQ(refused.finished(), 1u) << "refused before Send returned";
  EXPECT_EQ(refused.result(0).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ReasonOf(refused.result(0).status()), reason::kRedisPoolExhausted);

  ASSERT_TRUE(dones.WaitAll());
  for (size_t i = 0; i < 5; ++i) EXPECT_TRUE(dones.result(i).ok()) << dones.result(i).status();
  // Answered pipelines free their places.
  PipelineResult ping = client->PipelineBlocking(0, {{"PING"}});
  EXPECT_TRUE(ping.ok()) << ping.status();
}

TEST_F(AsyncRedisTest, PipelineBlockingOnAnIoThreadIsRefused) {
  std::unique_ptr<AsyncRedis> client = Connected(OptionsFor(redis()));
  Dones dones(1);
  std::atomic<int> inner_code{-1};
  AsyncRedis::Done record = dones.For(0);
  client->Send(0, {{"PING"}}, [&, record = std::move(record)](PipelineResult result) mutable {
    inner_code = static_cast<int>(client->PipelineBlocking(0, {{"PING"}}).status().code());
    std::move(record)(std::move(result));
  });
  ASSERT_TRUE(dones.WaitAll());
  EXPECT_EQ(inner_code.load(), static_cast<int>(absl::StatusCode::kFailedPrecondition));
  EXPECT_TRUE(dones.result(0).ok());
}

}  // namespace
}  // namespace medsettle::cache
