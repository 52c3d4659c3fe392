#include "tests/support/redis_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/string_view.h"

namespace medsettle::testing {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kReadyTimeoutMs = 5000;
constexpr int kStartAttempts = 8;

absl::Status Error(absl::StatusCode code, const std::string& message) {
  return absl::Status(code, absl::string_view(message.data(), message.size()));
}

bool IsExecutable(const std::string& path) {
  return !path.empty() && access(path.c_str(), X_OK) == 0 &&
         std::filesystem::is_regular_file(path);
}

std::string LogTail(const std::string& dir) {
  std::ifstream in(dir + "/redis.log");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::string tail;
  for (size_t i = lines.size() > 8 ? lines.size() - 8 : 0; i < lines.size(); ++i) {
    tail += "\n  " + lines[i];
  }
  return tail;
}

struct ContextFree {
  void operator()(redisContext* c) const { redisFree(c); }
};
struct ReplyFree {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};

// 1 when the server on `port` answers PING with PONG and its INFO names
// process `pid`; 0 when it does not answer yet (or is still loading);
// -1 when someone else's server answers on that port.
int ProbeReady(int port, pid_t pid) {
  timeval tv{0, 100 * 1000};
  std::unique_ptr<redisContext, ContextFree> c(redisConnectWithTimeout("127.0.0.1", port, tv));
  if (c == nullptr || c->err != 0) return 0;
  if (redisSetTimeout(c.get(), tv) != REDIS_OK) return 0;
  std::unique_ptr<redisReply, ReplyFree> pong(
      static_cast<redisReply*>(redisCommand(c.get(), "PING")));
  if (pong == nullptr || pong->type != REDIS_REPLY_STATUS ||
      std::string(pong->str, pong->len) != "PONG") {
    return 0;
  }
  std::unique_ptr<redisReply, ReplyFree> info(
      static_cast<redisReply*>(redisCommand(c.get(), "INFO server")));
  if (info == nullptr || info->type != REDIS_REPLY_STRING) return 0;
  std::string text(info->str, info->len);
  return text.find("process_id:" + std::to_string(pid) + "\r\n") != std::string::npos ? 1 : -1;
}

}  // namespace

std::string FindRedisServer() {
  if (const char* path = std::getenv("PATH"); path != nullptr) {
    std::stringstream dirs(path);
    for (std::string dir; std::getline(dirs, dir, ':');) {
      if (dir.empty()) continue;
      std::string candidate = dir + "/redis-server";
      if (IsExecutable(candidate)) return candidate;
    }
  }
  return IsExecutable("/usr/bin/redis-server") ? "/usr/bin/redis-server" : "";
}

int FreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

RedisServer::RedisServer(std::string binary, std::string dir, std::vector<std::string> extra_args)
    : binary_(std::move(binary)), dir_(std::move(dir)), extra_args_(std::move(extra_args)) {}

absl::StatusOr<std::unique_ptr<RedisServer>> RedisServer::Start(
    std::vector<std::string> extra_args) {
  std::string binary = FindRedisServer();
  if (binary.empty()) {
    return Error(absl::StatusCode::kNotFound,
                 "redis-server not found on PATH or at /usr/bin/redis-server "
                 "(install the Debian package redis-server: bash deploy/install-deps.sh)");
  }
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                        "/medsettle-redis-XXXXXX";
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  if (mkdtemp(buffer.data()) == nullptr) {
    return Error(absl::StatusCode::kInternal,
                 "mkdtemp " + pattern + ": " + std::strerror(errno));
  }
  std::unique_ptr<RedisServer> server(
      new RedisServer(binary, buffer.data(), std::move(extra_args)));
  absl::Status last;
  for (int attempt = 0; attempt < kStartAttempts; ++attempt) {
    server->port_ = FreeLoopbackPort();
    if (server->port_ == 0) continue;
    bool retryable = false;
    last = server->SpawnAndWait(&retryable);
    if (last.ok()) return server;
    if (!retryable) break;
  }
  return last;
}

RedisServer::~RedisServer() {
  Stop();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

absl::Status RedisServer::SpawnAndWait(bool* retryable) {
  *retryable = false;
  std::string port = std::to_string(port_);
  std::string log = dir_ + "/redis.log";
  std::vector<std::string> args = {
      binary_,         "--port",       port,      "--bind",       host_,
      "--save",        "",             "--appendonly", "yes",     "--appendfsync",
      "always",        "--dir",        dir_,      "--logfile",    log,
      "--daemonize",   "no",           "--protected-mode", "yes"};
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);

  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    return Error(absl::StatusCode::kInternal, std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(126);
    int null_fd = open("/dev/null", O_RDWR);
    if (null_fd >= 0) {
      dup2(null_fd, 0);
      dup2(null_fd, 1);
      dup2(null_fd, 2);
    }
    // Do not hand the test's sockets (clients of a previous server) on.
    if (close_range(3, ~0U, 0) != 0) {
      for (int fd = 3; fd < 1024; ++fd) close(fd);
    }
    execv(argv[0], argv.data());
    _exit(127);
  }
  pid_ = pid;

  const auto deadline = Clock::now() + std::chrono::milliseconds(kReadyTimeoutMs);
  while (Clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = 0;
      *retryable = true;  // most likely the port was taken meanwhile
      return Error(absl::StatusCode::kUnavailable,
                   "redis-server on port " + port + " exited at start; log " + log + ":" +
                       LogTail(dir_));
    }
    int probe = ProbeReady(port_, pid_);
    if (probe == 1) return absl::OkStatus();
    if (probe == -1) {
      // Another test's server holds the port; ours will fail to bind.
      Kill9();
      *retryable = true;
      return Error(absl::StatusCode::kUnavailable, "port " + port + " taken by another server");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  Kill9();
  return Error(absl::StatusCode::kDeadlineExceeded,
               "redis-server on port " + port + " did not answer PING within " +
                   std::to_string(kReadyTimeoutMs) + " ms; log " + log + ":" + LogTail(dir_));
}

void RedisServer::Reap(int timeout_ms) {
  if (pid_ == 0) return;
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  int status = 0;
  while (Clock::now() < deadline) {
    pid_t done = waitpid(pid_, &status, WNOHANG);
    if (done == pid_ || (done < 0 && errno == ECHILD)) {
      pid_ = 0;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  kill(pid_, SIGKILL);
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = 0;
}

void RedisServer::Stop() {
  if (pid_ == 0) return;
  kill(pid_, SIGTERM);
  kill(pid_, SIGCONT);  // a paused server acts on SIGTERM only once resumed
  Reap(10000);
}

void RedisServer::Pause() {
  if (pid_ != 0) kill(pid_, SIGSTOP);
}

void RedisServer::Resume() {
  if (pid_ != 0) kill(pid_, SIGCONT);
}

void RedisServer::Kill9() {
  if (pid_ == 0) return;
  kill(pid_, SIGKILL);
  Reap(10000);
}

absl::Status RedisServer::Restart() {
  if (pid_ != 0) return Error(absl::StatusCode::kFailedPrecondition, "still running");
  // The same port: a client that knows only host:port must find it again.
  // Should the bind fail (the port briefly held elsewhere), try a few times.
  absl::Status last;
  for (int attempt = 0; attempt < 5; ++attempt) {
    bool retryable = false;
    last = SpawnAndWait(&retryable);
    if (last.ok() || !retryable) return last;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return last;
}

void RedisServerTest::SetUp() {
  if (FindRedisServer().empty()) {
    GTEST_SKIP() << "redis-server is not installed (not on PATH, not at "
                    "/usr/bin/redis-server); this test needs a real Redis. Install "
                    "the Debian package redis-server (bash deploy/install-deps.sh).";
  }
  absl::StatusOr<std::unique_ptr<RedisServer>> server = RedisServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  redis_ = *std::move(server);
}

}  // namespace medsettle::testing
