// medsettle-cli: what an HIS integrator uses to try the settlement service.
// One command per SettlementService call (coverage, presettle, settle,
// reverse, get, reconcile) plus health, each from flags or a JSON request
// file; see tools/cli/README.md. main.cc only forwards argv to Run, so
// tests drive the whole tool in-process against a fake server.
#ifndef MEDSETTLE_TOOLS_CLI_CLI_H_
#define MEDSETTLE_TOOLS_CLI_CLI_H_

#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "grpcpp/support/status.h"

namespace medsettle::cli {

// Exit codes (documented in README.md; scripts branch on them).
inline constexpr int kExitOk = 0;
inline constexpr int kExitRefused = 1;      // the service answered with a non-OK status
inline constexpr int kExitUsage = 2;        // bad flags or a bad request file
inline constexpr int kExitNoAnswer = 3;     // UNAVAILABLE or DEADLINE_EXCEEDED

// 0 for OK, 3 for UNAVAILABLE and DEADLINE_EXCEEDED, else 1.
int ExitCodeFor(grpc::StatusCode code);

// What the tool takes from the process, injectable so tests need neither
// the real environment, the clock nor randomness.
struct Env {
  // An environment variable (MEDSETTLE_TARGET, MEDSETTLE_INSTITUTION);
  // nullopt when unset.
  std::function<std::optional<std::string>(const std::string&)> getenv;
  // A fresh request id (1–64 printable ASCII) for presettle, settle and
  // reverse when none is given.
  std::function<std::string()> new_request_id;
  // Today as YYYY-MM-DD: the coverage date when --date is absent.
  std::function<std::string()> today;
};

// The process's environment, the local clock, and request ids
// "cli-YYYYMMDDTHHMMSS-<8 random hex>".
Env ProcessEnv();

// The usage text (--help).
std::string_view UsageText();

// Runs one command line (`args` without the program name): the response
// goes to `out`, errors and notes (a generated request id) to `err`.
// Returns the exit code (kExit*). Thread-compatible; blocks for at most
// --timeout-ms per call made.
int Run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
        const Env& env);

}  // namespace medsettle::cli

#endif  // MEDSETTLE_TOOLS_CLI_CLI_H_
