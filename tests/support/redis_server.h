// Test support: a real redis-server of the test's own, on a free loopback
// port, in a fresh temporary directory, with the persistence the project
// ships (no RDB snapshots; AOF with appendfsync always), so tests can stop,
// kill -9 and restart it and see what survived.
//
// Only 127.0.0.1 is used. The server is a child of the thread that started it
// and is killed if that thread's process dies (PR_SET_PDEATHSIG), so a crashed
// test leaves no server behind. Not thread-safe: one thread drives it.
#ifndef MEDSETTLE_TESTS_SUPPORT_REDIS_SERVER_H_
#define MEDSETTLE_TESTS_SUPPORT_REDIS_SERVER_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace medsettle::testing {

// The redis-server executable: the first on PATH, else /usr/bin/redis-server;
// "" when there is none.
std::string FindRedisServer();

// A free TCP port on 127.0.0.1 right now (bound with port 0, then released;
// someone else may take it before it is used).
int FreeLoopbackPort();

class RedisServer {
 public:
  // Starts a server and waits (≤ 5 s) until it answers PING and proves to be
  // the process just started. A port taken meanwhile by someone else is
  // retried with another. NOT_FOUND when there is no redis-server; otherwise
  // an error naming the log file. `extra_args` follow the project's own
  // (e.g. {"--cluster-enabled", "yes"}) and are kept for Restart.
  static absl::StatusOr<std::unique_ptr<RedisServer>> Start(
      std::vector<std::string> extra_args = {});

  // Stops the server (Stop) and removes its directory.
  ~RedisServer();

  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  const std::string& host() const { return host_; }  // "127.0.0.1"
  int port() const { return port_; }
  const std::string& dir() const { return dir_; }  // data dir and redis.log
  pid_t pid() const { return pid_; }  // 0 when not running
  bool running() const { return pid_ != 0; }

  // SIGTERM and wait (≤ 10 s, then SIGKILL): a clean shutdown. No-op when
  // not running.
  void Stop();
  // SIGKILL and wait: a crash; only what reached the AOF survives.
  void Kill9();
  // SIGSTOP / SIGCONT: the server freezes (a stalled machine, a long GC
  // pause, a network partition of its own) and later carries on where it
  // was, with its connections open. Stop and Kill9 work on a paused
  // server. No-ops when not running.
  void Pause();
  void Resume();
  // Starts the server again on the same port and directory, so it replays
  // its AOF; waits (≤ 5 s after the port is free) until it answers PING.
  // REQUIRES: !running().
  absl::Status Restart();

 private:
  RedisServer(std::string binary, std::string dir, std::vector<std::string> extra_args);
  // Spawns on port_ and waits until ready; `retryable` is set when the
  // child exited early (the port was taken).
  absl::Status SpawnAndWait(bool* retryable);
  void Reap(int timeout_ms);

  std::string binary_;
  std::string dir_;
  std::vector<std::string> extra_args_;
  std::string host_ = "127.0.0.1";
  int port_ = 0;
  pid_t pid_ = 0;
};

// A fixture that starts a fresh RedisServer for each test, or skips the
// test with a clear message when redis-server is not installed.
class RedisServerTest : public ::testing::Test {
 protected:
  void SetUp() override;
  RedisServer& redis() { return *redis_; }

  std::unique_ptr<RedisServer> redis_;
};

}  // namespace medsettle::testing

#endif  // MEDSETTLE_TESTS_SUPPORT_REDIS_SERVER_H_
