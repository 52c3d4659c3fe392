// The Redis connection and pool against a real redis-server of the test's
// own (tests/support/redis_server.h): replies, one-round-trip pipelines,
// the mapping of error replies and I/O failures to statuses, recovery after
// Redis is killed and restarted, and the pool under exhaustion and under
// concurrent use. Every wait is bounded; timing assertions are upper bounds
// with room for a loaded 2-core CI machine.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "cache/connection_pool.h"
#include "cache/redis_client.h"
#include "cache/redis_connection.h"
#include "engine/status.h"
#include "tests/support/redis_server.h"

namespace medsettle::cache {
namespace {

// A TCP socket listening on 127.0.0.1 (a free port, in `*addr`) with the
// given accept backlog; -1 on failure.
int LoopbackListener(int backlog, sockaddr_in* addr) {
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0) return -1;
  addr->sin_family = AF_INET;
  addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr->sin_port = 0;
  socklen_t len = sizeof(*addr);
  if (bind(listener, reinterpret_cast<sockaddr*>(addr), sizeof(*addr)) != 0 ||
      listen(listener, backlog) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(addr), &len) != 0) {
    close(listener);
    return -1;
  }
  return listener;
}

using engine::ReasonOf;
using medsettle::testing::FreeLoopbackPort;
using medsettle::testing::RedisServer;
using medsettle::testing::RedisServerTest;
using Clock = std::chrono::steady_clock;

// Generous: the machine may be busy with another test process.
constexpr int kConnectTimeoutMs = 1000;
constexpr int kCommandTimeoutMs = 2000;
// Upper bound for "fails quickly": far below any TCP retransmission-driven
// hang, far above scheduling noise.
constexpr auto kQuickly = std::chrono::milliseconds(2500);

RedisOptions OptionsFor(const RedisServer& server) {
  return RedisOptions{.host = server.host(),
                      .port = server.port(),
                      .connect_timeout_ms = kConnectTimeoutMs,
                      .command_timeout_ms = kCommandTimeoutMs};
}

std::unique_ptr<RedisConnection> ConnectTo(const RedisServer& server) {
  absl::StatusOr<std::unique_ptr<RedisConnection>> connection = RedisConnection::Connect(
      server.host(), server.port(), kConnectTimeoutMs, kCommandTimeoutMs);
  EXPECT_TRUE(connection.ok()) << connection.status();
  return connection.ok() ? *std::move(connection) : nullptr;
}

// The integer after "<field>:" (or "<field>:calls=" for commandstats) in
// INFO <section>; -1 when absent.
int64_t InfoValue(RedisConnection& connection, std::string_view section,
                  std::string_view field) {
  RedisResult info = connection.Command({"INFO", section});
  EXPECT_TRUE(info.ok()) << info.status();
  if (!info.ok()) return -1;
  const std::string& text = info->str;
  std::string needle = "\n" + std::string(field) + ":";
  size_t at = ("\n" + text).find(needle);
  if (at == std::string::npos) return -1;
  at += needle.size() - 1;  // ("\n" + text) is one longer
  if (text.compare(at, 6, "calls=") == 0) at += 6;
  return std::strtoll(text.c_str() + at, nullptr, 10);
}

RedisReply Ok(const RedisResult& result) {
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? *result : RedisReply{};
}

TEST(ErrorReplyStatus, MapsByTheFirstWordOfTheError) {
  struct Case {
    std::string_view text;
    absl::StatusCode code;
    std::string_view reason;
  };
  for (const Case& c : {
           Case{"NOSCRIPT No matching script. Please use EVAL.",
                absl::StatusCode::kFailedPrecondition, reason::kRedisNoscript},
           Case{"NOSCRIPT", absl::StatusCode::kFailedPrecondition, reason::kRedisNoscript},
           Case{"WRONGTYPE Operation against a key holding the wrong kind of value",
                absl::StatusCode::kInternal, reason::kRedisError},
           Case{"ERR unknown command 'NOPE'", absl::StatusCode::kInternal, reason::kRedisError},
           Case{"NOSCRIPTS is not NOSCRIPT", absl::StatusCode::kInternal, reason::kRedisError},
           Case{"BUSYKEY Target key name already exists.", absl::StatusCode::kInternal,
                reason::kRedisError},
           Case{"LOADING Redis is loading the dataset in memory",
                absl::StatusCode::kUnavailable, reason::kRedisUnavailable},
           Case{"BUSY Redis is busy running a script.", absl::StatusCode::kUnavailable,
                reason::kRedisUnavailable},
           Case{"MASTERDOWN Link with MASTER is down", absl::StatusCode::kUnavailable,
                reason::kRedisUnavailable},
       }) {
    absl::Status status = ErrorReplyStatus(c.text);
    EXPECT_EQ(status.code(), c.code) << c.text;
    EXPECT_EQ(ReasonOf(status), c.reason) << c.text;
    EXPECT_EQ(std::string(status.message()), c.text);
  }
}

class RedisConnectionTest : public RedisServerTest {};

TEST_F(RedisConnectionTest, CommandRoundTripsEveryReplyType) {
  std::unique_ptr<RedisConnection> redis = ConnectTo(this->redis());
  ASSERT_NE(redis, nullptr);

  RedisReply set = Ok(redis->Command({"SET", "k", "v"}));
  EXPECT_EQ(set.type, RedisReply::Type::kStatus);
  EXPECT_EQ(set.str, "OK");

  RedisReply get = Ok(redis->Command({"GET", "k"}));
  EXPECT_EQ(get.type, RedisReply::Type::kString);
  EXPECT_EQ(get.str, "v");

  EXPECT_TRUE(Ok(redis->Command({"GET", "missing"})).is_nil());

  const std::string binary("a\0b\r\nc", 6);
  Ok(redis->Command({"SET", "bin", binary}));
  EXPECT_EQ(Ok(redis->Command({"GET", "bin"})).str, binary);

  RedisReply incr = Ok(redis->Command({"INCRBY", "n", "41"}));
  EXPECT_EQ(incr.type, RedisReply::Type::kInteger);
  EXPECT_EQ(incr.integer, 41);

  Ok(redis->Command({"RPUSH", "list", "x", "y"}));
  RedisReply range = Ok(redis->Command({"LRANGE", "list", "0", "-1"}));
  ASSERT_EQ(range.type, RedisReply::Type::kArray);
  ASSERT_EQ(range.elements.size(), 2u);
  EXPECT_EQ(range.elements[0].str, "x");
  EXPECT_EQ(range.elements[1].str, "y");
}

// Redis counts each read of a client socket (INFO stats
// total_reads_processed). Three commands sent one by one cost three reads;
// pipelined, one: they arrived in one write. An observer connection reads
// the counter, and its own INFO adds one read to each difference.
TEST_F(RedisConnectionTest, PipelineOfThreeCommandsIsOneRoundTrip) {
  std::unique_ptr<RedisConnection> observer = ConnectTo(redis());
  std::unique_ptr<RedisConnection> client = ConnectTo(redis());
  ASSERT_NE(observer, nullptr);
  ASSERT_NE(client, nullptr);

  int64_t before = InfoValue(*observer, "stats", "total_reads_processed");
  for (int i = 0; i < 3; ++i) Ok(client->Command({"INCR", "one_by_one"}));
  int64_t after_one_by_one = InfoValue(*observer, "stats", "total_reads_processed");
  EXPECT_EQ(after_one_by_one - before, 3 + 1) << "the counter does not count what we think";

  int64_t calls_before = InfoValue(*observer, "commandstats", "cmdstat_incr");
  absl::StatusOr<std::vector<RedisResult>> replies =
      client->Pipeline({{"INCR", "piped"}, {"INCR", "piped"}, {"GET", "piped"}});
  int64_t after_pipeline = InfoValue(*observer, "stats", "total_reads_processed");
  int64_t calls_after = InfoValue(*observer, "commandstats", "cmdstat_incr");

  ASSERT_TRUE(replies.ok()) << replies.status();
  ASSERT_EQ(replies->size(), 3u);
  EXPECT_EQ(Ok((*replies)[0]).integer, 1);
  EXPECT_EQ(Ok((*replies)[1]).integer, 2);
  EXPECT_EQ(Ok((*replies)[2]).str, "2");
  EXPECT_EQ(calls_after - calls_before, 2) << "both INCRs executed";
  // The observer's INFO commandstats between the two counters is one read.
  EXPECT_EQ(after_pipeline - after_one_by_one, 1 + 1 + 1) << "pipeline + two observer INFOs";
}

TEST_F(RedisConnectionTest, ErrorReplyIsRedisErrorWithItsTextAndKeepsTheConnection) {
  std::unique_ptr<RedisConnection> redis = ConnectTo(this->redis());
  ASSERT_NE(redis, nullptr);
  Ok(redis->Command({"SET", "s", "v"}));

  RedisResult wrong_type = redis->Command({"LPUSH", "s", "x"});
  ASSERT_FALSE(wrong_type.ok());
  EXPECT_EQ(ReasonOf(wrong_type.status()), reason::kRedisError);
  EXPECT_NE(wrong_type.status().message().find("WRONGTYPE"), absl::string_view::npos)
      << wrong_type.status();

  RedisResult unknown = redis->Command({"NO_SUCH_COMMAND"});
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(ReasonOf(unknown.status()), reason::kRedisError);
  EXPECT_NE(unknown.status().message().find("unknown command"), absl::string_view::npos)
      << unknown.status();

  EXPECT_TRUE(redis->connected()) << "an error reply is not an I/O error";
  EXPECT_EQ(Ok(redis->Command({"GET", "s"})).str, "v");
}

TEST_F(RedisConnectionTest, PipelineReportsEachCommandsErrorOnItsOwn) {
  std::unique_ptr<RedisConnection> redis = ConnectTo(this->redis());
  ASSERT_NE(redis, nullptr);
  absl::StatusOr<std::vector<RedisResult>> replies =
      redis->Pipeline({{"SET", "p", "1"}, {"LPUSH", "p", "x"}, {"INCR", "p"}});
  ASSERT_TRUE(replies.ok()) << replies.status();
  ASSERT_EQ(replies->size(), 3u);
  EXPECT_TRUE((*replies)[0].ok());
  ASSERT_FALSE((*replies)[1].ok());
  EXPECT_EQ(ReasonOf((*replies)[1].status()), reason::kRedisError);
  EXPECT_EQ(Ok((*replies)[2]).integer, 2);
}

TEST_F(RedisConnectionTest, EvalshaOfAnUnknownScriptIsNoscriptUntilLoaded) {
  std::unique_ptr<RedisConnection> redis = ConnectTo(this->redis());
  ASSERT_NE(redis, nullptr);
  const std::string script = "return tonumber(ARGV[1]) * 2";

  // The SHA1 of the script, which this fresh server has never seen.
  RedisReply sha = Ok(redis->Command({"SCRIPT", "LOAD", script}));
  Ok(redis->Command({"SCRIPT", "FLUSH"}));

  RedisResult missing = redis->Command({"EVALSHA", sha.str, "0", "21"});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReasonOf(missing.status()), reason::kRedisNoscript);

  absl::StatusOr<std::vector<RedisResult>> piped =
      redis->Pipeline({{"EVALSHA", sha.str, "0", "21"}, {"PING"}});
  ASSERT_TRUE(piped.ok()) << piped.status();
  EXPECT_EQ(ReasonOf((*piped)[0].status()), reason::kRedisNoscript);
  EXPECT_EQ(Ok((*piped)[1]).str, "PONG");

  // What the caller does on NOSCRIPT: load, retry.
  EXPECT_EQ(Ok(redis->Command({"SCRIPT", "LOAD", script})).str, sha.str);
  EXPECT_EQ(Ok(redis->Command({"EVALSHA", sha.str, "0", "21"})).integer, 42);
}

TEST(RedisConnection, ClosedPortIsUnavailableQuickly) {
  int port = FreeLoopbackPort();  // nothing listens there
  ASSERT_NE(port, 0);
  auto start = Clock::now();
  absl::StatusOr<std::unique_ptr<RedisConnection>> connection =
      RedisConnection::Connect("127.0.0.1", port, /*connect_timeout_ms=*/300,
                               /*command_timeout_ms=*/300);
  auto elapsed = Clock::now() - start;
  ASSERT_FALSE(connection.ok());
  EXPECT_EQ(connection.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ReasonOf(connection.status()), reason::kRedisUnavailable);
  EXPECT_LT(elapsed, kQuickly);

  // The lazy form reports the same on its first command.
  RedisConnection lazy(RedisOptions{.host = "127.0.0.1", .port = port});
  RedisResult ping = lazy.Command({"PING"});
  EXPECT_EQ(ReasonOf(ping.status()), reason::kRedisUnavailable);
  EXPECT_FALSE(lazy.connected());
}

// A listener whose accept queue is full drops new SYNs, so a connect hangs
// (the kernel would retry for minutes); the connect timeout must cut it
// short. Should the connect get through anyway, nobody ever answers, and
// the command timeout cuts the read short: UNAVAILABLE either way.
TEST(RedisConnection, HangingServerIsUnavailableWithinTheTimeouts) {
  sockaddr_in addr{};
  const int listener = LoopbackListener(0, &addr);
  ASSERT_GE(listener, 0);
  std::vector<int> fillers;
  for (int i = 0; i < 4; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    ASSERT_GE(fd, 0);
    connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));  // may stay pending
    fillers.push_back(fd);
  }

  RedisConnection redis(RedisOptions{.host = "127.0.0.1",
                                     .port = ntohs(addr.sin_port),
                                     .connect_timeout_ms = 200,
                                     .command_timeout_ms = 200});
  auto start = Clock::now();
  RedisResult ping = redis.Command({"PING"});
  auto elapsed = Clock::now() - start;
  EXPECT_EQ(ping.status().code(), absl::StatusCode::kUnavailable) << ping.status();
  EXPECT_EQ(ReasonOf(ping.status()), reason::kRedisUnavailable);
  EXPECT_LT(elapsed, kQuickly);

  for (int fd : fillers) close(fd);
  close(listener);
}

TEST_F(RedisConnectionTest, CommandTimeoutIsUnavailableAndTheNextCallReconnects) {
  RedisConnection redis(RedisOptions{.host = this->redis().host(),
                                     .port = this->redis().port(),
                                     .connect_timeout_ms = kConnectTimeoutMs,
                                     .command_timeout_ms = 200});
  Ok(redis.Command({"SET", "k", "v"}));
  // BLPOP on an empty list holds the reply back for 10 s.
  auto start = Clock::now();
  RedisResult blocked = redis.Command({"BLPOP", "empty", "10"});
  auto elapsed = Clock::now() - start;
  ASSERT_FALSE(blocked.ok());
  EXPECT_EQ(blocked.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ReasonOf(blocked.status()), reason::kRedisUnavailable);
  EXPECT_LT(elapsed, kQuickly);
  EXPECT_FALSE(redis.connected()) << "a context that timed out is discarded";

  EXPECT_EQ(Ok(redis.Command({"GET", "k"})).str, "v");
  EXPECT_TRUE(redis.connected());
}

TEST_F(RedisConnectionTest, ServerKilledMidUseIsUnavailableAndTheSameClientRecovers) {
  std::unique_ptr<RedisConnection> client = ConnectTo(redis());
  ASSERT_NE(client, nullptr);
  Ok(client->Command({"SET", "durable", "acknowledged"}));

  redis().Kill9();
  for (int i = 0; i < 2; ++i) {  // the broken context, then a refused connect
    auto start = Clock::now();
    RedisResult get = client->Command({"GET", "durable"});
    EXPECT_EQ(get.status().code(), absl::StatusCode::kUnavailable) << get.status();
    EXPECT_EQ(ReasonOf(get.status()), reason::kRedisUnavailable);
    EXPECT_LT(Clock::now() - start, kQuickly);
  }
  absl::StatusOr<std::vector<RedisResult>> piped = client->Pipeline({{"PING"}, {"PING"}});
  EXPECT_EQ(ReasonOf(piped.status()), reason::kRedisUnavailable);

  ASSERT_TRUE(redis().Restart().ok());
  // Same object, no recreation: it reconnects, and the acknowledged write
  // survived kill -9 through the AOF (appendfsync always).
  EXPECT_EQ(Ok(client->Command({"GET", "durable"})).str, "acknowledged");
  absl::StatusOr<std::vector<RedisResult>> after = client->Pipeline({{"PING"}, {"PING"}});
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->size(), 2u);
}

TEST_F(RedisConnectionTest, IdleConnectionNoticesARestartBeforeSending) {
  std::unique_ptr<RedisConnection> client = ConnectTo(redis());
  ASSERT_NE(client, nullptr);
  Ok(client->Command({"SET", "k", "v"}));

  redis().Stop();  // a clean shutdown while the client is idle
  ASSERT_TRUE(redis().Restart().ok());
  // The old socket was closed by the old server; the client replaces it
  // before sending instead of failing the call.
  EXPECT_EQ(Ok(client->Command({"GET", "k"})).str, "v");
}

TEST_F(RedisConnectionTest, PoolExhaustionIsResourceExhausted) {
  ConnectionPool pool(PoolOptions{.redis = OptionsFor(redis()), .size = 2,
                                  .acquire_timeout_ms = 50});
  EXPECT_EQ(pool.idle(), 2);
  {
    absl::StatusOr<ConnectionPool::Lease> first = pool.Acquire(1000);
    absl::StatusOr<ConnectionPool::Lease> second = pool.Acquire(1000);
    ASSERT_TRUE(first.ok() && second.ok());
    EXPECT_EQ(Ok((*first)->Command({"PING"})).str, "PONG");
    EXPECT_EQ(pool.idle(), 0);

    auto start = Clock::now();
    absl::StatusOr<ConnectionPool::Lease> third = pool.Acquire(50);
    ASSERT_FALSE(third.ok());
    EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
    EXPECT_EQ(ReasonOf(third.status()), reason::kRedisPoolExhausted);
    EXPECT_LT(Clock::now() - start, kQuickly);

    RedisResult through_pool = pool.Command({"PING"});
    EXPECT_EQ(through_pool.status().code(), absl::StatusCode::kResourceExhausted);
    EXPECT_EQ(ReasonOf(through_pool.status()), reason::kRedisPoolExhausted);
    EXPECT_EQ(ReasonOf(pool.Pipeline({{"PING"}}).status()), reason::kRedisPoolExhausted);

    ConnectionPool::Lease moved = *std::move(first);  // a moved lease still holds one
    EXPECT_EQ(pool.idle(), 0);
  }
  EXPECT_EQ(pool.idle(), 2);
  EXPECT_EQ(Ok(pool.Command({"PING"})).str, "PONG");
}

TEST_F(RedisConnectionTest, PoolReleasesAWaiterWhenALeaseReturns) {
  ConnectionPool pool(PoolOptions{.redis = OptionsFor(redis()), .size = 1,
                                  .acquire_timeout_ms = 10000});
  absl::StatusOr<ConnectionPool::Lease> held = pool.Acquire(1000);
  ASSERT_TRUE(held.ok());
  std::atomic<bool> served{false};
  std::thread waiter([&] {
    RedisResult pong = pool.Command({"PING"});  // waits for the lease
    served = pong.ok() && pong->str == "PONG";
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  { ConnectionPool::Lease release = *std::move(held); }  // returned here
  waiter.join();
  EXPECT_TRUE(served);
}

TEST_F(RedisConnectionTest, PoolServesEightThreadsAtOnce) {
  constexpr int kThreads = 8;
  constexpr int kIterations = 200;
  ConnectionPool pool(PoolOptions{.redis = OptionsFor(redis()), .size = 4,
                                  .acquire_timeout_ms = 10000});
  RedisClient& client = pool;  // what the rest of medsettle sees
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&client, &failures, t] {
      std::string own_key = "thread:" + std::to_string(t);
      for (int i = 0; i < kIterations; ++i) {
        if (!client.Command("total", {"INCR", "total"}).ok()) ++failures;
        absl::StatusOr<std::vector<RedisResult>> piped =
            client.Pipeline("", {{"INCR", "total"}, {"INCR", own_key}});
        if (!piped.ok() || !(*piped)[0].ok() || !(*piped)[1].ok()) {
          ++failures;
          continue;
        }
        if ((*piped)[1]->integer != i + 1) ++failures;  // own key: strictly sequential
      }
    });
  }
  for (std::thread& thread : threads) thread.join();

  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(Ok(pool.Command({"GET", "total"})).str, std::to_string(kThreads * kIterations * 2));
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(Ok(pool.Command({"GET", "thread:" + std::to_string(t)})).str,
              std::to_string(kIterations));
  }
  EXPECT_EQ(pool.idle(), 4);
}

TEST_F(RedisConnectionTest, PoolRecoversByItselfWhenRedisReturns) {
  ConnectionPool pool(PoolOptions{.redis = OptionsFor(redis()), .size = 3,
                                  .acquire_timeout_ms = 1000});
  {  // connect all three
    std::vector<ConnectionPool::Lease> leases;
    for (int i = 0; i < 3; ++i) {
      absl::StatusOr<ConnectionPool::Lease> lease = pool.Acquire(1000);
      ASSERT_TRUE(lease.ok());
      Ok((*lease)->Command({"INCR", "n"}));
      leases.push_back(*std::move(lease));
    }
  }

  redis().Kill9();
  RedisResult down = pool.Command({"GET", "n"});
  EXPECT_EQ(down.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ReasonOf(down.status()), reason::kRedisUnavailable);

  ASSERT_TRUE(redis().Restart().ok());
  // All three at once, so the two that still hold dead contexts are used
  // too: each replaces its context before sending.
  std::vector<ConnectionPool::Lease> leases;
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<ConnectionPool::Lease> lease = pool.Acquire(1000);
    ASSERT_TRUE(lease.ok());
    EXPECT_EQ(Ok((*lease)->Command({"GET", "n"})).str, "3") << "connection " << i;
    leases.push_back(*std::move(lease));
  }
}

// A peer that closes the socket while a large command is still being
// written: the write fails with EPIPE, which raises SIGPIPE, whose default
// action would kill the test process (checked: it does when the suppression
// is removed). The connection suppresses it for the calling thread and
// reports UNAVAILABLE.
TEST(RedisConnection, PeerClosingDuringAWriteIsUnavailableNotSigpipe) {
  sockaddr_in addr{};
  const int listener = LoopbackListener(4, &addr);
  ASSERT_GE(listener, 0);
  std::thread rude_server([listener] {
    int fd = accept(listener, nullptr, nullptr);  // the client connects within its timeout
    if (fd < 0) return;
    char byte = 0;
    (void)read(fd, &byte, 1);  // the client is writing now, and blocks: nobody reads
    shutdown(fd, SHUT_WR);     // FIN: the client's socket goes to CLOSE_WAIT
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    close(fd);  // unread data: RST, which in CLOSE_WAIT makes the next write EPIPE
  });

  RedisConnection redis(RedisOptions{.host = "127.0.0.1",
                                     .port = ntohs(addr.sin_port),
                                     .connect_timeout_ms = kConnectTimeoutMs,
                                     .command_timeout_ms = kCommandTimeoutMs});
  const std::string big(16 << 20, 'x');  // far more than the socket buffers hold
  RedisResult set = redis.Command({"SET", "big", big});
  rude_server.join();
  close(listener);
  EXPECT_EQ(set.status().code(), absl::StatusCode::kUnavailable) << set.status();
  EXPECT_EQ(ReasonOf(set.status()), reason::kRedisUnavailable);
  EXPECT_FALSE(redis.connected());
}

}  // namespace
}  // namespace medsettle::cache
