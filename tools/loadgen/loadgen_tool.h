// medsettle-loadgen's command line (README.md): a load run (the default),
// `serve-echo` (the echo floor server), `compare A.json B.json` and
// `disk-floor --dir DIR` (tools/loadgen/disk_floor.h). Every
// option is checked, and every file read, before anything is sent: a bad
// option, an unreadable CSV, an unknown institution or a certificate that
// does not load is a message naming it and exit code 2. Only --target (and
// --floor-target when given) is ever called. main.cc only forwards argv.
#ifndef MEDSETTLE_TOOLS_LOADGEN_LOADGEN_TOOL_H_
#define MEDSETTLE_TOOLS_LOADGEN_LOADGEN_TOOL_H_

#include <atomic>
#include <iosfwd>
#include <string>
#include <vector>

namespace medsettle::loadgen {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;  // could not connect, could not write a report
inline constexpr int kExitUsage = 2;   // bad command line or input file

struct ToolEnv {
  // Set by SIGINT/SIGTERM: a run stops scheduling and reports what it has;
  // serve-echo stops serving.
  const std::atomic<bool>* stop = nullptr;
};

// The whole command line without the program name. The summary and
// results go to `out`, progress and errors to `err`.
int Run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
        const ToolEnv& env);

}  // namespace medsettle::loadgen

#endif  // MEDSETTLE_TOOLS_LOADGEN_LOADGEN_TOOL_H_
