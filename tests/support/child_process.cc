#include "tests/support/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>

namespace medsettle::testing {
namespace {

using Clock = std::chrono::steady_clock;

int64_t MsSince(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

}  // namespace

std::unique_ptr<ChildProcess> ChildProcess::Spawn(const std::string& binary,
                                                  const std::vector<std::string>& flags) {
  std::unique_ptr<ChildProcess> p(new ChildProcess());
  std::vector<std::string> args = {binary};
  args.insert(args.end(), flags.begin(), flags.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int out[2];
  int err[2];
  if (pipe2(out, O_CLOEXEC) != 0) return nullptr;
  if (pipe2(err, O_CLOEXEC) != 0) {
    close(out[0]);
    close(out[1]);
    return nullptr;
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    for (int fd : {out[0], out[1], err[0], err[1]}) close(fd);
    return nullptr;
  }
  if (pid == 0) {
    // Child: async-signal-safe calls only until exec.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(126);
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0) dup2(null_fd, 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    if (close_range(3, ~0U, 0) != 0) {
      for (int fd = 3; fd < 1024; ++fd) close(fd);
    }
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  p->pid_ = pid;
  p->readers_.emplace_back([raw = p.get(), fd = out[0]] { raw->Drain(fd, &raw->stdout_); });
  p->readers_.emplace_back([raw = p.get(), fd = err[0]] { raw->Drain(fd, &raw->stderr_); });
  return p;
}

ChildProcess::~ChildProcess() {
  Kill9();
  for (std::thread& t : readers_) t.join();
}

void ChildProcess::Signal(int signal_number) {
  if (pid_ != 0) kill(pid_, signal_number);
}

void ChildProcess::Kill9() {
  if (pid_ == 0) return;
  kill(pid_, SIGKILL);
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = 0;
  exit_code_ = 128 + SIGKILL;
}

bool ChildProcess::WaitFor(std::string_view needle, bool on_stderr, int timeout_ms) {
  std::unique_lock<std::mutex> lock(mutex_);
  const std::string& text = on_stderr ? stderr_ : stdout_;
  return changed_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                           [&] { return text.find(needle) != std::string::npos; });
}

int ChildProcess::WaitServing(int timeout_ms) {
  // The whole line: it ends with the snapshot version and ")".
  constexpr std::string_view kListening = "listening on 127.0.0.1:";
  const auto start = Clock::now();
  while (!WaitFor(")\n", /*on_stderr=*/false, 100) && MsSince(start) < timeout_ms &&
         !WaitExit(0).has_value()) {
  }
  const std::string text = out();
  const size_t at = text.find(kListening);
  if (at == std::string::npos) return 0;
  return std::atoi(text.c_str() + at + kListening.size());
}

std::optional<int> ChildProcess::WaitExit(int timeout_ms) {
  if (pid_ == 0) return exit_code_;
  const auto start = Clock::now();
  for (;;) {
    int status = 0;
    const pid_t done = waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      pid_ = 0;
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return exit_code_;
    }
    if (MsSince(start) > timeout_ms) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::string ChildProcess::out() {
  std::lock_guard<std::mutex> lock(mutex_);
  return stdout_;
}

std::string ChildProcess::err() {
  std::lock_guard<std::mutex> lock(mutex_);
  return stderr_;
}

void ChildProcess::Drain(int fd, std::string* into) {
  char buffer[4096];
  for (;;) {
    const ssize_t n = read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    std::lock_guard<std::mutex> lock(mutex_);
    into->append(buffer, static_cast<size_t>(n));
    changed_.notify_all();
  }
  close(fd);
}

}  // namespace medsettle::testing
