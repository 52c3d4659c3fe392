// Test support: one of our binaries (medsettle-gateway, medsettle-ledger) as
// a child process, with its stdout and stderr captured, for tests of what
// only the process shows (flags, signals, exit codes) or of what a crash of
// it leaves behind (kill -9 under load). A test target gets the binary's
// path, and has it built first, by linking medsettle_gateway_binary
// (MEDSETTLE_GATEWAY_BINARY) or medsettle_ledger_binary
// (MEDSETTLE_LEDGER_BINARY).
//
// The child is killed if the test process dies (PR_SET_PDEATHSIG) and by
// the destructor otherwise. Not thread-safe apart from out(), err() and
// WaitFor, which may be called from any thread: one thread drives it.
#ifndef MEDSETTLE_TESTS_SUPPORT_CHILD_PROCESS_H_
#define MEDSETTLE_TESTS_SUPPORT_CHILD_PROCESS_H_

#include <sys/types.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace medsettle::testing {

class ChildProcess {
 public:
  // Starts `binary` with `flags` (stdin /dev/null, output captured);
  // nullptr when it cannot be forked (an exec failure shows as exit 127).
  static std::unique_ptr<ChildProcess> Spawn(const std::string& binary,
                                             const std::vector<std::string>& flags);

  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();  // SIGKILL if still running, then reaps it

  pid_t pid() const { return pid_; }
  void Signal(int signal_number);
  // SIGKILL and reap: a crash at whatever instant the gateway was at.
  void Kill9();

  // Waits (≤ timeout_ms) until stdout (or stderr) contains `needle`.
  bool WaitFor(std::string_view needle, bool on_stderr, int timeout_ms);

  // Waits (≤ timeout_ms) for the whole "listening on 127.0.0.1:<port> (…)"
  // line medsettle-gateway prints once it serves; the port, or 0 when it
  // exited or said nothing of the kind in time (out() and err() tell why).
  int WaitServing(int timeout_ms);

  // Waits (≤ timeout_ms) for the exit; the exit code (128 + signal for a
  // signal), or nullopt while still running.
  std::optional<int> WaitExit(int timeout_ms);

  std::string out();
  std::string err();

 private:
  ChildProcess() = default;
  void Drain(int fd, std::string* into);

  pid_t pid_ = 0;
  std::optional<int> exit_code_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::string stdout_;  // guarded by mutex_
  std::string stderr_;  // guarded by mutex_
  std::vector<std::thread> readers_;
};

}  // namespace medsettle::testing

#endif  // MEDSETTLE_TESTS_SUPPORT_CHILD_PROCESS_H_
