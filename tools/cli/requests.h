// The command line of medsettle-cli, turned into request messages: the
// split of argv into a command and flags, the parsers of each flag's value,
// and one builder per call. Pure: no network, no clock, no environment
// (the caller passes what those would give). Every error is
// INVALID_ARGUMENT with a message for the user (exit code 2).
#ifndef MEDSETTLE_TOOLS_CLI_REQUESTS_H_
#define MEDSETTLE_TOOLS_CLI_REQUESTS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/message.h"
#include "medsettle/v1/settlement.pb.h"

namespace medsettle::cli {

enum class Command { kNone, kCoverage, kPreSettle, kSettle, kReverse, kGet, kReconcile, kHealth };

// "coverage", "presettle", ...; "" for kNone.
std::string_view CommandName(Command command);

// The command line split into its command and flags. Flags are written
// "--name VALUE" or "--name=VALUE" (switches take no value) and may come
// before or after the command.
struct Args {
  Command command = Command::kNone;
  bool help = false;  // --help, -h or "help"
  // Flag name without the dashes → its values, in the order given.
  std::map<std::string, std::vector<std::string>, std::less<>> values;
  std::set<std::string, std::less<>> switches;

  // The value of a single-valued flag; nullptr when not given.
  const std::string* Value(std::string_view name) const;
  // Every value of a repeatable flag (empty when not given).
  const std::vector<std::string>& Values(std::string_view name) const;
  bool Switch(std::string_view name) const { return switches.count(name) != 0; }
};

// Splits `args` (without the program name). Refuses unknown flags, flags
// the command does not take, a missing value, a repeated single-valued
// flag, an empty value and a second positional argument.
absl::StatusOr<Args> ParseArgs(const std::vector<std::string>& args);

// --visit-type: inpatient, general, chronic, special, prenatal, natural,
// caesarean, or the full enum name (VISIT_TYPE_INPATIENT).
absl::StatusOr<v1::VisitType> ParseVisitType(std::string_view text);
// --specialty: psychiatry, pediatrics, tcm, or the full enum name.
absl::StatusOr<v1::Specialty> ParseSpecialty(std::string_view text);
// A whole number 1..max, e.g. --timeout-ms; `flag` names it in errors.
absl::StatusOr<int64_t> ParsePositiveFlag(std::string_view flag, std::string_view text,
                                          int64_t max);
// A strict YYYY-MM-DD date (2024-02-30 refused); `flag` names it in errors.
absl::Status CheckDate(std::string_view flag, std::string_view text);
// --item CODE:QUANTITY:UNIT_PRICE_YUAN[:NAME] as bill line `line_no`:
// quantity an exact decimal (≤ 4 places), unit price exact yuan (≤ 2
// places), amount_cents = quantity × unit price rounded half up, exactly.
// The name is everything after the third colon (it may hold colons).
absl::StatusOr<v1::BillItem> ParseItem(std::string_view spec, int32_t line_no);

// Reads protobuf JSON from `path` into `message` (cleared first). Field
// names may be the proto names (request_id) or the JSON names (requestId);
// unknown fields are refused.
absl::Status ReadJsonFile(const std::string& path, google::protobuf::Message* message);

// The request of each call, from --request FILE and/or the flags; a flag
// given overrides the file's field. Fields the flags do not name keep the
// file's value. Identifiers that may be generated (SettleRequest and
// ReverseRequest request_id) are left empty when not given.
absl::Status BuildSettleRequest(const Args& args, v1::SettleRequest* request);
// `today` (YYYY-MM-DD) is the service date when neither --date nor the file gives one.
absl::Status BuildCoverageRequest(const Args& args, std::string_view today,
                                  v1::CheckCoverageRequest* request);
absl::Status BuildReverseRequest(const Args& args, v1::ReverseRequest* request);
absl::Status BuildGetRequest(const Args& args, v1::GetSettlementRequest* request);
absl::Status BuildReconcileRequest(const Args& args, v1::ReconcileRequest* request);

}  // namespace medsettle::cli

#endif  // MEDSETTLE_TOOLS_CLI_REQUESTS_H_
