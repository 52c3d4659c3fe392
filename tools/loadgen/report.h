// The figures of a run as the LoadReport message (load_report.proto), and
// what is made of it: the ghz-like text summary, the JSON file (protobuf's
// JSON printer, proto field names), and the comparison of two JSON files.
// Pure functions apart from ReadMachine (/proc, uname) and the file I/O.
#ifndef MEDSETTLE_TOOLS_LOADGEN_REPORT_H_
#define MEDSETTLE_TOOLS_LOADGEN_REPORT_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "medsettle/loadgen/v1/load_report.pb.h"
#include "tools/loadgen/runner.h"

namespace medsettle::loadgen {

// The percentiles every report lists.
inline constexpr double kPercentiles[] = {10, 25, 50, 75, 90, 95, 99, 99.9};

// nproc, the CPU model (/proc/cpuinfo), the kernel (uname -srm), the host name.
v1::Machine ReadMachine();

// The report of `result`. `options` and `machine` are copied in; `floor`
// (paired mode) when given. `latency_origin` says what the latency counts
// from ("scheduled start" or "send").
v1::LoadReport BuildReport(const RunResult& result, const v1::RunOptions& options,
                           const v1::Machine& machine, const std::string& run_id,
                           const std::string& latency_origin, const v1::Floor* floor);

// The text summary (count, total, slowest, fastest, average, rps, the
// histogram, the latency distribution, status codes, refusal reasons,
// scenarios, replays, dropped, the floor pairs).
std::string TextSummary(const v1::LoadReport& report);

// Writes / reads the JSON form. Errors name the file.
absl::Status WriteJson(const v1::LoadReport& report, const std::string& path);

// The output files of a run (--json, --html): CheckWritable before
// anything is sent or written (opens `path` for appending, so it creates a
// missing file and changes nothing an existing one holds; INVALID_ARGUMENT
// "cannot write FLAG PATH"), WriteTextFile with the results at the end
// (replaces the file; INVALID_ARGUMENT "cannot write PATH").
absl::Status CheckWritable(std::string_view flag, const std::string& path);
absl::Status WriteTextFile(const std::string& path, std::string_view text);
absl::StatusOr<v1::LoadReport> ReadJson(const std::string& path);

// A table of B against A: throughput, p50, p90, p99, errors, each with
// B ÷ A; "a" and "b" name the files in the header.
std::string CompareReports(const v1::LoadReport& a, const v1::LoadReport& b,
                           const std::string& a_name, const std::string& b_name);

// The median of `values` (the mean of the middle two when even); 0 when empty.
double Median(std::vector<double> values);

// "OK", "PERMISSION_DENIED", ... of a grpc::StatusCode number.
std::string CodeName(int code);

}  // namespace medsettle::loadgen

#endif  // MEDSETTLE_TOOLS_LOADGEN_REPORT_H_
