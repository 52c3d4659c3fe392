#include "tools/calc/calc_runner.h"

#include <algorithm>
#include <istream>
#include <optional>
#include <ostream>
#include <utility>
#include <vector>

#include "engine/catalog.h"
#include "engine/policy_loader.h"
#include "engine/status.h"
#include "engine/text.h"
#include "google/protobuf/util/json_util.h"
#include "proto/contract/convert.h"

namespace medsettle::calc {
namespace {

namespace reason = engine::reason;
namespace fs = std::filesystem;

// The engine names claim fields relative to the SettleRequest
// ("items[2].amount_cents", "visit.type"), as the gateway's callers see them;
// in a CalcScenario the request sits under "request".
absl::Status UnderRequest(const absl::Status& status) {
  const std::string field = engine::FieldOf(status);
  const std::string_view head = std::string_view(field).substr(0, field.find_first_of(".["));
  if (head != "request_id" && head != "credential" && head != "visit" && head != "items") {
    return status;
  }
  return engine::Refusal(status.code(), engine::ReasonOf(status), "request." + field,
                         std::string(status.message()));
}

}  // namespace

void AppendJsonEscaped(std::string_view text, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default:
        if (u < 0x20) {
          out->append("\\u00");
          out->push_back(kHex[u >> 4]);
          out->push_back(kHex[u & 0xF]);
        } else {
          out->push_back(c);  // UTF-8 passes through
        }
    }
  }
}

void AppendJsonMember(std::string_view name, std::string_view value, std::string* out) {
  out->push_back('"');
  out->append(name);
  out->append("\":\"");
  AppendJsonEscaped(value, out);
  out->push_back('"');
}

std::string StatusCodeName(absl::StatusCode code) {
  std::string name = absl::StatusCodeToString(code);
  // Abseil names no code outside the canonical set.
  if (name.empty()) name = "UNKNOWN";
  return name;
}

absl::StatusOr<engine::PolicySet> LoadPolicyDir(const fs::path& dir) {
  absl::StatusOr<std::vector<engine_files::SourceFile>> files = engine_files::ReadPolicyDir(dir);
  if (!files.ok()) return files.status();
  return engine_files::ParsePolicies(*files);
}

absl::StatusOr<engine::Catalog> LoadCatalogFile(const fs::path& file) {
  absl::StatusOr<engine_files::SourceFile> read =
      engine_files::ReadSourceFile(file, reason::kCatalogFileInvalid);
  if (!read.ok()) return read.status();
  return engine::Catalog::Parse(read->file_name, read->bytes);
}

absl::Status ParseScenarioJson(std::string_view json, v1::CalcScenario* scenario) {
  scenario->Clear();
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto parsed = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), scenario, options);
  if (parsed.ok()) return absl::OkStatus();
  // The parser appends an excerpt of the input after a blank line: keep the
  // first line, the message proper.
  std::string message = parsed.message().ToString();
  message.erase(std::min(message.find('\n'), message.size()));
  // The parser names the field in parentheses, e.g. "(request.visit.type)".
  std::string field;
  if (size_t open = message.find('('), close = message.find(')', open);
      open != std::string::npos && close != std::string::npos) {
    field = message.substr(open + 1, close - open - 1);
  }
  if (message.find("invalid value") != std::string::npos &&
      message.find("medsettle.v1.") != std::string::npos) {
    message += " (enum values are written in full, e.g. VISIT_TYPE_INPATIENT or "
               "CATEGORY_ADULT: see proto/medsettle/v1/*.proto)";
  }
  return engine::InvalidField(reason::kScenarioInvalid, field, "not a CalcScenario: " + message);
}

std::string ResponseJson(const v1::SettleResponse& response, bool pretty) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = pretty;
  options.always_print_primitive_fields = true;
  std::string json;
  // Printing a well-formed generated message cannot fail.
  (void)google::protobuf::util::MessageToJsonString(response, &json, options);
  if (pretty && !json.empty() && json.back() == '\n') json.pop_back();
  return json;
}

std::string ErrorJson(const absl::Status& status) {
  std::string json = "{\"error\":{";
  AppendJsonMember("code", StatusCodeName(status.code()), &json);
  json.push_back(',');
  AppendJsonMember("reason", engine::ReasonOf(status), &json);
  if (std::string field = engine::FieldOf(status); !field.empty()) {
    json.push_back(',');
    AppendJsonMember("field", field, &json);
  }
  json.push_back(',');
  AppendJsonMember("message", std::string_view(status.message().data(), status.message().size()),
                   &json);
  json.append("}}");
  return json;
}

absl::Status ScenarioRunner::Run(const v1::CalcScenario& scenario, v1::SettleResponse* response) {
  if (absl::Status s = contract::EnrollmentFromProto(scenario.enrollment(), &enrollment_);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = contract::InstitutionFromProto(scenario.institution(), &institution_);
      !s.ok()) {
    return s;
  }
  // Unset year_to_date: a fresh year (all zero).
  if (absl::Status s = contract::AccumulatorsFromProto(scenario.year_to_date(), &year_to_date_);
      !s.ok()) {
    return s;
  }
  // The year so far must be this person's and this enrollment's year.
  const v1::Accumulators& ytd = scenario.year_to_date();
  if (!ytd.person_key().empty() && ytd.person_key() != enrollment_.person_key) {
    return engine::InvalidField(engine::reason::kAccumulatorsInvalid, "year_to_date.person_key",
                                "year_to_date belongs to another person than the enrollment");
  }
  if (ytd.year() != 0 && ytd.year() != enrollment_.year) {
    return engine::InvalidField(engine::reason::kAccumulatorsInvalid, "year_to_date.year",
                                "year_to_date is for another year than the enrollment");
  }
  if (absl::Status s = contract::ClaimFromProto(scenario.request(), &claim_); !s.ok()) return s;
  engine::SettleInput input;
  if (absl::Status s = contract::ParseTimestampField(
          scenario.voucher_issued_at(), "voucher_issued_at", &input.voucher_issued_at_unix);
      !s.ok()) {
    return s;
  }
  input.enrollment = &enrollment_;
  input.institution = &institution_;
  input.year_to_date = &year_to_date_;
  input.claim = &claim_;
  if (absl::Status s = engine_.Settle(input, &settlement_); !s.ok()) return UnderRequest(s);
  contract::SettlementToProto(settlement_, claim_, enrollment_.person_key,
                              institution_.institution_id, response);
  // The calculator records nothing and has no clock.
  response->set_status(v1::SETTLEMENT_STATUS_TRIAL);
  return absl::OkStatus();
}

bool RunNdjson(ScenarioRunner* runner, std::istream& in, std::ostream& out, StreamStats* stats) {
  v1::CalcScenario scenario;
  v1::SettleResponse response;
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (std::all_of(line.begin(), line.end(),
                    [](char c) { return c == ' ' || c == '\t' || c == '\r'; })) {
      continue;
    }
    ++stats->scenarios;
    absl::Status status = ParseScenarioJson(line, &scenario);
    if (!status.ok()) {
      // A pretty-printed file fed to stdin breaks on its first line.
      const bool pretty_printed = line.find_first_not_of(" \t\r{") == std::string::npos;
      status = engine::InvalidField(
          reason::kScenarioInvalid, engine::FieldOf(status),
          engine::Cat("line ", line_no, ": ", std::string(status.message()),
                      pretty_printed ? " (standard input takes one scenario per line, "
                                       "NDJSON; for a multi-line JSON file use --scenario FILE)"
                                     : ""));
    } else {
      status = runner->Run(scenario, &response);
    }
    if (status.ok()) {
      out << ResponseJson(response, /*pretty=*/false) << '\n';
    } else {
      ++stats->errors;
      out << ErrorJson(status) << '\n';
    }
    if (!out) return false;
  }
  out.flush();
  return static_cast<bool>(out);
}

}  // namespace medsettle::calc
