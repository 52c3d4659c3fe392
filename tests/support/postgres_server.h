// Test support: a real PostgreSQL server of the test's own — initdb into a
// fresh temporary directory, a free loopback port, its unix socket inside
// that directory — so tests can stop, kill -9 and restart it and see what
// survived. Durable as shipped (fsync and synchronous_commit on); only the
// initdb skips its fsync, and shared_buffers is small, for a fast start.
//
// PostgreSQL refuses to run as root, and CI runs as root: then the
// directory is given to the `postgres` system user and initdb and the
// server run as that user (the forked child drops to it before exec, as
// `runuser -u postgres --` would, so the pid held here is the postmaster's
// own). The server is a child of the thread that started it and is killed
// if that thread's process dies (PR_SET_PDEATHSIG); its backends exit when
// it does. Not thread-safe: one thread drives it (Kill9 may be called from
// another thread while the driver waits on the server).
#ifndef MEDSETTLE_TESTS_SUPPORT_POSTGRES_SERVER_H_
#define MEDSETTLE_TESTS_SUPPORT_POSTGRES_SERVER_H_

#include <sys/types.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace medsettle::testing {

// The folder holding initdb, postgres and pg_ctl: $MEDSETTLE_PG_BINDIR if
// set, else the newest /usr/lib/postgresql/<major>/bin (Debian's layout);
// "" when there is none.
std::string FindPostgresBinDir();

class PostgresServer {
 public:
  // initdb's a cluster (superuser "postgres", trust authentication on
  // loopback and the socket, UTF8, locale C) and starts it; waits (≤ 15 s)
  // until it accepts connections and proves to be the server just started.
  // A port taken meanwhile is retried with another. NOT_FOUND when the
  // PostgreSQL binaries are missing (or, as root, the postgres user);
  // otherwise an error naming the log file.
  // `settings` ("name=value") are passed as -c after the defaults, e.g.
  // {"shared_buffers=256MB"} for a benchmark.
  static absl::StatusOr<std::unique_ptr<PostgresServer>> Start(
      std::vector<std::string> settings = {});

  // Stops the server (Stop) and removes its directory.
  ~PostgresServer();

  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  const std::string& host() const { return host_; }  // "127.0.0.1"
  int port() const { return port_; }
  const std::string& dir() const { return dir_; }  // data/, the socket, postgres.log
  std::string data_dir() const { return dir_ + "/data"; }
  pid_t pid() const { return pid_.load(); }  // the postmaster; 0 when not running
  bool running() const { return pid_.load() != 0; }
  // "host=127.0.0.1 port=<port> user=postgres dbname=postgres".
  std::string conninfo() const;

  // A fast shutdown (SIGINT: sessions are ended, then a checkpoint), waiting
  // ≤ 30 s before SIGKILL. No-op when not running.
  void Stop();
  // SIGKILL to the postmaster and to every backend of it: a crash. Only
  // what was committed (WAL flushed) survives; the next start recovers.
  void Kill9();
  // Starts the server again on the same port and directory; waits (≤ 30 s:
  // crash recovery) until it accepts connections. REQUIRES: !running().
  absl::Status Restart();

 private:
  PostgresServer(std::string bin_dir, std::string dir, std::vector<std::string> settings);
  // Spawns the postmaster on port_ and waits until ready; `retryable` is
  // set when it exited early (most likely the port was taken).
  absl::Status SpawnAndWait(int ready_timeout_ms, bool* retryable);
  void Reap(int timeout_ms);

  std::string bin_dir_;
  std::string dir_;
  std::vector<std::string> settings_;
  std::string host_ = "127.0.0.1";
  int port_ = 0;
  std::atomic<pid_t> pid_{0};
};

// A fixture that starts a fresh PostgresServer for each test, or skips the
// test with a clear message when PostgreSQL is not installed.
class PostgresServerTest : public ::testing::Test {
 protected:
  void SetUp() override;
  PostgresServer& postgres() { return *postgres_; }

  std::unique_ptr<PostgresServer> postgres_;
};

}  // namespace medsettle::testing

#endif  // MEDSETTLE_TESTS_SUPPORT_POSTGRES_SERVER_H_
