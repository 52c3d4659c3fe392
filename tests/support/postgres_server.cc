#include "tests/support/postgres_server.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "absl/strings/string_view.h"
#include "tests/support/redis_server.h"  // FreeLoopbackPort

namespace medsettle::testing {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kStartReadyTimeoutMs = 15000;
constexpr int kRestartReadyTimeoutMs = 30000;
constexpr int kStartAttempts = 8;

absl::Status Error(absl::StatusCode code, const std::string& message) {
  return absl::Status(code, absl::string_view(message.data(), message.size()));
}

bool IsExecutable(const std::string& path) {
  return access(path.c_str(), X_OK) == 0 && std::filesystem::is_regular_file(path);
}

std::string LogTail(const std::string& path, size_t lines_wanted = 10) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::string tail;
  for (size_t i = lines.size() > lines_wanted ? lines.size() - lines_wanted : 0; i < lines.size();
       ++i) {
    tail += "\n  " + lines[i];
  }
  return tail;
}

// Who runs initdb and the server: the postgres system user when we are
// root (PostgreSQL refuses root), else ourselves.
struct RunAs {
  bool drop = false;
  uid_t uid = 0;
  gid_t gid = 0;
};

absl::StatusOr<RunAs> ServerUser() {
  if (geteuid() != 0) return RunAs{};
  const passwd* pw = getpwnam("postgres");
  if (pw == nullptr) {
    return Error(absl::StatusCode::kNotFound,
                 "running as root, and there is no 'postgres' system user to run PostgreSQL "
                 "as (install the Debian package postgresql: bash deploy/install-deps.sh)");
  }
  return RunAs{.drop = true, .uid = pw->pw_uid, .gid = pw->pw_gid};
}

// In a forked child: only async-signal-safe calls until exec. Sends
// stdout/stderr to `log_fd`, moves into `cwd` and drops to `as`.
[[noreturn]] void ExecChild(const RunAs& as, int log_fd, const char* cwd,
                            std::vector<std::string>& args, bool own_group, pid_t parent) {
  if (own_group) setpgid(0, 0);
  if (as.drop) {
    if (setgroups(0, nullptr) != 0 || setgid(as.gid) != 0 || setuid(as.uid) != 0) _exit(125);
  }
  // After the credential change (which clears it): die with the test.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(126);
  int null_fd = open("/dev/null", O_RDONLY);
  if (null_fd >= 0) dup2(null_fd, 0);
  if (log_fd >= 0) {
    dup2(log_fd, 1);
    dup2(log_fd, 2);
  }
  if (close_range(3, ~0U, 0) != 0) {
    for (int fd = 3; fd < 1024; ++fd) close(fd);
  }
  if (chdir(cwd) != 0) _exit(124);
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  execv(argv[0], argv.data());
  _exit(127);
}

// The pids whose parent is `parent` (/proc/<pid>/stat, field 4).
std::vector<pid_t> ChildrenOf(pid_t parent) {
  std::vector<pid_t> out;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return out;
  while (dirent* entry = readdir(proc)) {
    const pid_t pid = static_cast<pid_t>(std::atoi(entry->d_name));
    if (pid <= 0) continue;
    std::ifstream stat(std::string("/proc/") + entry->d_name + "/stat");
    std::string text;
    std::getline(stat, text);
    const size_t close_paren = text.rfind(')');  // the command may hold spaces
    if (close_paren == std::string::npos) continue;
    char state = 0;
    int ppid = 0;
    if (std::sscanf(text.c_str() + close_paren + 1, " %c %d", &state, &ppid) == 2 &&
        ppid == parent) {
      out.push_back(pid);
    }
  }
  closedir(proc);
  return out;
}

// 1: our server accepts connections; 0: not (yet); -1: another server
// (another data directory) answers on that port.
int ProbeReady(const std::string& conninfo, const std::string& data_dir) {
  const std::string probe = conninfo + " connect_timeout=2";
  if (PQping(probe.c_str()) != PQPING_OK) return 0;
  PGconn* conn = PQconnectdb(probe.c_str());
  int result = 0;
  if (PQstatus(conn) == CONNECTION_OK) {
    PGresult* r = PQexec(conn, "SHOW data_directory");
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
      result = data_dir == PQgetvalue(r, 0, 0) ? 1 : -1;
    }
    PQclear(r);
  }
  PQfinish(conn);
  return result;
}

}  // namespace

std::string FindPostgresBinDir() {
  auto complete = [](const std::string& dir) {
    return IsExecutable(dir + "/postgres") && IsExecutable(dir + "/initdb");
  };
  if (const char* env = std::getenv("MEDSETTLE_PG_BINDIR"); env != nullptr && *env != '\0') {
    return complete(env) ? std::string(env) : "";
  }
  int best_major = -1;
  std::string best;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/usr/lib/postgresql", ec)) {
    const std::string name = entry.path().filename().string();
    const int major = std::atoi(name.c_str());
    const std::string bin = entry.path().string() + "/bin";
    if (major > best_major && complete(bin)) {
      best_major = major;
      best = bin;
    }
  }
  return best;
}

PostgresServer::PostgresServer(std::string bin_dir, std::string dir,
                               std::vector<std::string> settings)
    : bin_dir_(std::move(bin_dir)), dir_(std::move(dir)), settings_(std::move(settings)) {}

std::string PostgresServer::conninfo() const {
  return "host=" + host_ + " port=" + std::to_string(port_) + " user=postgres dbname=postgres";
}

absl::StatusOr<std::unique_ptr<PostgresServer>> PostgresServer::Start(
    std::vector<std::string> settings) {
  const std::string bin_dir = FindPostgresBinDir();
  if (bin_dir.empty()) {
    return Error(absl::StatusCode::kNotFound,
                 "PostgreSQL not found (no /usr/lib/postgresql/<major>/bin with postgres and "
                 "initdb; or set MEDSETTLE_PG_BINDIR). Install the Debian package postgresql: "
                 "bash deploy/install-deps.sh");
  }
  absl::StatusOr<RunAs> as = ServerUser();
  if (!as.ok()) return as.status();

  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                        "/medsettle-pg-XXXXXX";
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  if (mkdtemp(buffer.data()) == nullptr) {
    return Error(absl::StatusCode::kInternal, "mkdtemp " + pattern + ": " + std::strerror(errno));
  }
  std::unique_ptr<PostgresServer> server(
      new PostgresServer(bin_dir, buffer.data(), std::move(settings)));
  if (as->drop && chown(server->dir_.c_str(), as->uid, as->gid) != 0) {
    return Error(absl::StatusCode::kInternal,
                 "chown " + server->dir_ + " to postgres: " + std::strerror(errno));
  }

  // initdb, without fsync (a test's cluster need not survive a power cut;
  // the server itself runs with fsync on).
  const std::string initdb_log = server->dir_ + "/initdb.log";
  int log_fd = open(initdb_log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  std::vector<std::string> args = {bin_dir + "/initdb", "-D",          server->data_dir(),
                                   "-U",                "postgres",    "-A",
                                   "trust",             "-E",          "UTF8",
                                   "--locale=C",        "--no-sync",   "--no-instructions"};
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    return Error(absl::StatusCode::kInternal, std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) ExecChild(*as, log_fd, server->dir_.c_str(), args, false, parent);
  if (log_fd >= 0) close(log_fd);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return Error(absl::StatusCode::kInternal,
                 "initdb failed (status " + std::to_string(status) + "); log " + initdb_log + ":" +
                     LogTail(initdb_log));
  }

  absl::Status last;
  for (int attempt = 0; attempt < kStartAttempts; ++attempt) {
    server->port_ = FreeLoopbackPort();
    if (server->port_ == 0) continue;
    bool retryable = false;
    last = server->SpawnAndWait(kStartReadyTimeoutMs, &retryable);
    if (last.ok()) return server;
    if (!retryable) break;
  }
  return last;
}

PostgresServer::~PostgresServer() {
  Stop();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

absl::Status PostgresServer::SpawnAndWait(int ready_timeout_ms, bool* retryable) {
  *retryable = false;
  absl::StatusOr<RunAs> as = ServerUser();
  if (!as.ok()) return as.status();
  const std::string port = std::to_string(port_);
  const std::string log = dir_ + "/postgres.log";
  int log_fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  std::vector<std::string> args = {bin_dir_ + "/postgres",
                                   "-D", data_dir(),
                                   "-p", port,
                                   "-c", "listen_addresses=" + host_,
                                   "-c", "unix_socket_directories=" + dir_,
                                   "-c", "shared_buffers=32MB",
                                   "-c", "max_connections=40",
                                   "-c", "max_wal_size=2GB",
                                   "-c", "logging_collector=off"};
  for (const std::string& setting : settings_) {
    args.push_back("-c");
    args.push_back(setting);
  }
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    if (log_fd >= 0) close(log_fd);
    return Error(absl::StatusCode::kInternal, std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) ExecChild(*as, log_fd, dir_.c_str(), args, true, parent);
  if (log_fd >= 0) close(log_fd);
  pid_.store(pid);

  const auto deadline = Clock::now() + std::chrono::milliseconds(ready_timeout_ms);
  while (Clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      pid_.store(0);
      const std::string tail = LogTail(log);
      // A port taken meanwhile is worth another try; anything else is not.
      *retryable = tail.find("already in use") != std::string::npos ||
                   tail.find("could not create any TCP/IP sockets") != std::string::npos;
      return Error(absl::StatusCode::kUnavailable,
                   "postgres on port " + port + " exited at start; log " + log + ":" + tail);
    }
    const int probe = ProbeReady(conninfo(), data_dir());
    if (probe == 1) return absl::OkStatus();
    if (probe == -1) {
      Kill9();
      *retryable = true;
      return Error(absl::StatusCode::kUnavailable, "port " + port + " taken by another server");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  Kill9();
  return Error(absl::StatusCode::kDeadlineExceeded,
               "postgres on port " + port + " did not accept connections within " +
                   std::to_string(ready_timeout_ms) + " ms; log " + log + ":" + LogTail(log));
}

void PostgresServer::Reap(int timeout_ms) {
  const pid_t pid = pid_.load();
  if (pid == 0) return;
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  int status = 0;
  while (Clock::now() < deadline) {
    pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid || (done < 0 && errno == ECHILD)) {
      pid_.store(0);
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const std::vector<pid_t> children = ChildrenOf(pid);
  kill(pid, SIGKILL);
  for (pid_t child : children) kill(child, SIGKILL);
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  pid_.store(0);
}

void PostgresServer::Stop() {
  const pid_t pid = pid_.load();
  if (pid == 0) return;
  kill(pid, SIGINT);  // fast shutdown
  Reap(30000);
}

void PostgresServer::Kill9() {
  const pid_t pid = pid_.load();
  if (pid == 0) return;
  // The backends are their own process groups (postgres makes each one
  // a group leader), so they are found by parent and killed one by one.
  const std::vector<pid_t> children = ChildrenOf(pid);
  kill(pid, SIGKILL);
  for (pid_t child : children) kill(child, SIGKILL);
  Reap(10000);
  // Stragglers forked between the scan and the kill exit on their own when
  // they notice the postmaster is gone; the restart waits for them.
}

absl::Status PostgresServer::Restart() {
  if (pid_.load() != 0) return Error(absl::StatusCode::kFailedPrecondition, "still running");
  // The same port: a client that knows only host:port must find it again.
  // A bind that fails (the port briefly held elsewhere), or shared memory
  // still held by a dying backend, is tried again for a while.
  absl::Status last;
  const auto deadline = Clock::now() + std::chrono::milliseconds(kRestartReadyTimeoutMs);
  do {
    bool retryable = false;
    last = SpawnAndWait(kRestartReadyTimeoutMs, &retryable);
    if (last.ok()) return last;
    const std::string tail = LogTail(dir_ + "/postgres.log", 4);
    if (!retryable && tail.find("shared memory block") == std::string::npos &&
        tail.find("lock file") == std::string::npos) {
      return last;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  } while (Clock::now() < deadline);
  return last;
}

void PostgresServerTest::SetUp() {
  if (FindPostgresBinDir().empty()) {
    GTEST_SKIP() << "PostgreSQL is not installed (no /usr/lib/postgresql/<major>/bin with "
                    "postgres and initdb, and MEDSETTLE_PG_BINDIR unset); this test needs a "
                    "real PostgreSQL. Install the Debian package postgresql "
                    "(bash deploy/install-deps.sh).";
  }
  absl::StatusOr<std::unique_ptr<PostgresServer>> server = PostgresServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  postgres_ = *std::move(server);
}

}  // namespace medsettle::testing
