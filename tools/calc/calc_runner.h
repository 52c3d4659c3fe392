// The reusable part of medsettle-calc: settling CalcScenarios (one, or an
// NDJSON stream) with the engine, without a server, a clock or Redis.
// Policies and the catalog are loaded by medsettle::engine_files
// (engine/files/loaded_engine.h). main.cc only parses flags.
#ifndef MEDSETTLE_TOOLS_CALC_CALC_RUNNER_H_
#define MEDSETTLE_TOOLS_CALC_CALC_RUNNER_H_

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/engine.h"
#include "engine/files/loaded_engine.h"
#include "medsettle/v1/calc.pb.h"
#include "medsettle/v1/settlement.pb.h"

namespace medsettle::calc {

// The whole text of a file (scenario files too). NOT_FOUND (reason
// `reason`) when it cannot be read.
using engine_files::ReadFile;

// Every *.yaml in `dir`, in file-name order, parsed and added to one set
// (engine_files::ReadPolicyDir, then ParsePolicies). Errors: the first
// file's ParsePolicy / PolicySet::Add error; NOT_FOUND or INVALID_ARGUMENT
// (POLICY_FILE_INVALID) when the folder cannot be listed or holds no policy
// file. To build an engine, engine_files::LoadEngine keeps the digests too.
absl::StatusOr<engine::PolicySet> LoadPolicyDir(const std::filesystem::path& dir);

// A catalog CSV file (Catalog::Parse, named by its file name).
absl::StatusOr<engine::Catalog> LoadCatalogFile(const std::filesystem::path& file);

// A CalcScenario from protobuf JSON; unknown fields are errors.
// INVALID_ARGUMENT, reason SCENARIO_INVALID, on any parse error.
absl::Status ParseScenarioJson(std::string_view json, v1::CalcScenario* scenario);

// The response as protobuf JSON (lowerCamel names, zero values printed).
// `pretty`: indented over several lines; else a single line.
std::string ResponseJson(const v1::SettleResponse& response, bool pretty);

// Appends `text` as the body of a JSON string (quotes not included): '"',
// '\\' and control characters escaped, UTF-8 passed through as it is.
void AppendJsonEscaped(std::string_view text, std::string* out);
// Appends the member "name":"value": `name` as it is (a JSON-safe literal),
// `value` escaped by AppendJsonEscaped.
void AppendJsonMember(std::string_view name, std::string_view value, std::string* out);

// The canonical name of a status code, "FAILED_PRECONDITION", "UNAVAILABLE",
// ... (absl::StatusCodeToString); "UNKNOWN" for a code outside that set.
// gRPC status codes have the same numbers: cast them to absl::StatusCode.
std::string StatusCodeName(absl::StatusCode code);

// {"error":{"code":"FAILED_PRECONDITION","reason":"WAITING_PERIOD",
// "field":"...","message":"..."}} on one line; "field" only when known.
std::string ErrorJson(const absl::Status& status);

// Settles scenarios one after another, reusing its conversion buffers and
// its engine::Settlement between them. Not thread-safe: one per thread.
// The engine must outlive the runner.
class ScenarioRunner {
 public:
  explicit ScenarioRunner(const engine::Engine* engine) : engine_(*engine) {}
  ScenarioRunner(const ScenarioRunner&) = delete;
  ScenarioRunner& operator=(const ScenarioRunner&) = delete;

  // Converts `scenario`, settles it and overwrites `*response`: status
  // TRIAL, no settlement_id, no settled_at. Refusals are the contract's and
  // the engine's, every field path rooted in the CalcScenario
  // ("request.items[2].amount_cents", "enrollment.birth_date").
  absl::Status Run(const v1::CalcScenario& scenario, v1::SettleResponse* response);

 private:
  const engine::Engine& engine_;
  engine::Enrollment enrollment_;
  engine::Institution institution_;
  engine::Accumulators year_to_date_;
  engine::Claim claim_;
  engine::Settlement settlement_;
};

struct StreamStats {
  int64_t scenarios = 0;  // non-blank lines read
  int64_t errors = 0;     // of them answered with an error object
};

// Reads NDJSON CalcScenarios from `in` and writes one line per scenario to
// `out`: the SettleResponse JSON or the ErrorJson. Blank lines are skipped.
// Output is buffered and not flushed per line. Returns false when `out`
// failed (the stream could not be processed).
bool RunNdjson(ScenarioRunner* runner, std::istream& in, std::ostream& out, StreamStats* stats);

}  // namespace medsettle::calc

#endif  // MEDSETTLE_TOOLS_CALC_CALC_RUNNER_H_
