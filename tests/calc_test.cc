// medsettle-calc's library (tools/calc): loading policy folders, settling
// the shipped example bills one by one and as an NDJSON stream, error JSON,
// and the --explain table's display-width alignment.
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/status.h"
#include "tools/calc/calc_runner.h"
#include "tools/calc/explain.h"

namespace medsettle::calc {
namespace {

namespace fs = std::filesystem;
using engine::FieldOf;
using engine::ReasonOf;

const fs::path kSource = MEDSETTLE_SOURCE_DIR;
const fs::path kExamples = kSource / "tools/calc/examples";

const engine::Engine& ShippedEngine() {
  static const engine::Engine* engine = [] {
    absl::StatusOr<engine::PolicySet> policies = LoadPolicyDir(kSource / "engine/policies");
    absl::StatusOr<engine::Catalog> catalog =
        LoadCatalogFile(kSource / "engine/catalog/demo-catalog.csv");
    if (!policies.ok() || !catalog.ok()) {
      ADD_FAILURE() << policies.status() << " " << catalog.status();
      std::abort();
    }
    return new engine::Engine(*std::move(policies), *std::move(catalog));
  }();
  return *engine;
}

std::vector<fs::path> ExampleFiles() {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(kExamples)) {
    if (entry.path().extension() == ".json") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

v1::CalcScenario LoadScenario(const fs::path& file) {
  absl::StatusOr<std::string> json = ReadFile(file, "TEST");
  EXPECT_TRUE(json.ok()) << json.status();
  v1::CalcScenario scenario;
  absl::Status status = ParseScenarioJson(json.value_or(""), &scenario);
  EXPECT_TRUE(status.ok()) << file << ": " << status;
  return scenario;
}

// ---- loading ----------------------------------------------------------------

TEST(LoadPolicyDir, LoadsEveryShippedPolicy) {
  absl::StatusOr<engine::PolicySet> set = LoadPolicyDir(kSource / "engine/policies");
  ASSERT_TRUE(set.ok()) << set.status();
  for (const char* id : {"quzhou-2024", "quzhou-2025", "dianjiang-2024", "fenghua-2025"}) {
    EXPECT_NE(set->FindById(id), nullptr) << id;
  }
}

TEST(LoadPolicyDir, RefusesAFolderWithoutPolicies) {
  absl::StatusOr<engine::PolicySet> empty = LoadPolicyDir(kExamples);  // *.json only
  EXPECT_EQ(ReasonOf(empty.status()), "POLICY_FILE_INVALID");
  absl::StatusOr<engine::PolicySet> missing = LoadPolicyDir(kSource / "no-such-folder");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ReasonOf(missing.status()), "POLICY_FILE_INVALID");
}

TEST(LoadCatalogFile, MissingFileIsNotFound) {
  absl::StatusOr<engine::Catalog> catalog = LoadCatalogFile(kSource / "no-such.csv");
  EXPECT_EQ(catalog.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ReasonOf(catalog.status()), "CATALOG_FILE_INVALID");
}

// ---- scenarios ----------------------------------------------------------------

TEST(ParseScenarioJson, UnknownFieldsAndBadJsonAreScenarioInvalid) {
  v1::CalcScenario scenario;
  for (const char* bad : {R"({"name":"x","bogus":1})", R"({"name":)", "[]",
                          R"({"request":{"visit":{"type":"VISIT_TYPE_NOPE"}}})"}) {
    absl::Status status = ParseScenarioJson(bad, &scenario);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(ReasonOf(status), "SCENARIO_INVALID") << bad;
  }
}

TEST(ParseScenarioJson, AShortEnumNameNamesTheFieldAndTheFullSpelling) {
  v1::CalcScenario scenario;
  absl::Status status = ParseScenarioJson(R"({"request":{"visit":{"type":"INPATIENT"}}})", &scenario);
  EXPECT_EQ(ReasonOf(status), "SCENARIO_INVALID");
  EXPECT_EQ(FieldOf(status), "request.visit.type");
  EXPECT_NE(std::string(status.message()).find("VISIT_TYPE_INPATIENT"), std::string::npos);
}

TEST(RunNdjson, APrettyPrintedFileOnStdinGetsAHint) {
  ScenarioRunner runner(&ShippedEngine());
  std::istringstream in("{\n  \"name\": \"x\"\n}\n");
  std::ostringstream out;
  StreamStats stats;
  ASSERT_TRUE(RunNdjson(&runner, in, out, &stats));
  EXPECT_NE(out.str().find("use --scenario FILE"), std::string::npos) << out.str();
}

TEST(ScenarioRunner, EveryExampleSettlesUnderThePolicyItIsNamedAfter) {
  ScenarioRunner runner(&ShippedEngine());
  const std::vector<fs::path> files = ExampleFiles();
  ASSERT_GE(files.size(), 7u);
  for (const fs::path& file : files) {
    SCOPED_TRACE(file.filename().string());
    v1::CalcScenario scenario = LoadScenario(file);
    v1::SettleResponse response;
    absl::Status status = runner.Run(scenario, &response);
    if (file.filename().string().find("refused") != std::string::npos) {
      EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
      continue;
    }
    ASSERT_TRUE(status.ok()) << status;
    // "quzhou-2024-inpatient-….json" settles under quzhou-2024.
    EXPECT_EQ(file.filename().string().rfind(response.policy_id() + "-", 0), 0u);
    EXPECT_EQ(response.status(), v1::SETTLEMENT_STATUS_TRIAL);
    EXPECT_EQ(response.settlement_id(), "");
    EXPECT_EQ(response.settled_at(), "");
    EXPECT_EQ(response.request_id(), scenario.request().request_id());
    EXPECT_EQ(response.person_key(), scenario.enrollment().person_key());
    EXPECT_EQ(response.institution_id(), scenario.institution().institution_id());
    const v1::Amounts& a = response.amounts();
    EXPECT_EQ(a.total_cents(), a.base_fund_cents() + a.critical_illness_cents() +
                                   a.supplementary_cents() + a.patient_cents());
    EXPECT_EQ(response.lines_size(), scenario.request().items_size());
    EXPECT_FALSE(response.trace().empty());
  }
}

TEST(ScenarioRunner, ReuseLeavesNothingBehind) {
  const std::vector<fs::path> files = ExampleFiles();
  ScenarioRunner fresh(&ShippedEngine());
  ScenarioRunner reused(&ShippedEngine());
  v1::SettleResponse warm_up;
  for (const fs::path& file : files) (void)reused.Run(LoadScenario(file), &warm_up);
  for (const fs::path& file : files) {
    SCOPED_TRACE(file.filename().string());
    v1::CalcScenario scenario = LoadScenario(file);
    v1::SettleResponse expected;
    v1::SettleResponse got;
    absl::Status expected_status = fresh.Run(scenario, &expected);
    absl::Status got_status = reused.Run(scenario, &got);
    EXPECT_EQ(expected_status, got_status);
    if (expected_status.ok()) {
      EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(expected, got));
    }
  }
}

TEST(ScenarioRunner, EnginePathsAreRootedAtTheRequest) {
  v1::CalcScenario scenario = LoadScenario(kExamples / "quzhou-2024-chronic-spill-over.json");
  scenario.mutable_request()->mutable_items(2)->set_amount_cents(1);
  ScenarioRunner runner(&ShippedEngine());
  v1::SettleResponse response;
  absl::Status status = runner.Run(scenario, &response);
  EXPECT_EQ(ReasonOf(status), "AMOUNT_MISMATCH");
  EXPECT_EQ(FieldOf(status), "request.items[2].amount_cents");
}

TEST(ScenarioRunner, ContractRefusalsNameTheScenarioPath) {
  v1::CalcScenario scenario = LoadScenario(kExamples / "quzhou-2024-chronic-spill-over.json");
  scenario.set_voucher_issued_at("2024-10-21 08:55");
  ScenarioRunner runner(&ShippedEngine());
  v1::SettleResponse response;
  absl::Status status = runner.Run(scenario, &response);
  EXPECT_EQ(ReasonOf(status), "DATE_INVALID");
  EXPECT_EQ(FieldOf(status), "voucher_issued_at");
}

TEST(ScenarioRunner, YearToDateMustBeTheEnrollmentsPersonAndYear) {
  v1::CalcScenario scenario = LoadScenario(kExamples / "quzhou-2024-chronic-spill-over.json");
  ScenarioRunner runner(&ShippedEngine());
  v1::SettleResponse response;
  scenario.mutable_year_to_date()->set_person_key("someone-else");
  absl::Status status = runner.Run(scenario, &response);
  EXPECT_EQ(ReasonOf(status), "ACCUMULATORS_INVALID");
  EXPECT_EQ(FieldOf(status), "year_to_date.person_key");
  scenario = LoadScenario(kExamples / "quzhou-2024-chronic-spill-over.json");
  scenario.mutable_year_to_date()->set_year(2023);
  status = runner.Run(scenario, &response);
  EXPECT_EQ(ReasonOf(status), "ACCUMULATORS_INVALID");
  EXPECT_EQ(FieldOf(status), "year_to_date.year");
}

// ---- NDJSON stream --------------------------------------------------------------

TEST(RunNdjson, OneLinePerScenarioBlankLinesSkipped) {
  absl::StatusOr<std::string> all = ReadFile(kExamples / "all.ndjson", "TEST");
  ASSERT_TRUE(all.ok()) << all.status();
  std::istringstream in("\n" + *all + "\n  \n{\"name\": \n");
  std::ostringstream out;
  ScenarioRunner runner(&ShippedEngine());
  StreamStats stats;
  ASSERT_TRUE(RunNdjson(&runner, in, out, &stats));
  const int64_t examples = static_cast<int64_t>(ExampleFiles().size());
  EXPECT_EQ(stats.scenarios, examples + 1);
  EXPECT_EQ(stats.errors, 2);  // the refused example and the broken last line

  std::istringstream lines(out.str());
  std::string line;
  int64_t count = 0;
  int64_t waiting = 0;
  while (std::getline(lines, line)) {
    ++count;
    if (line.rfind("{\"error\":", 0) == 0) {
      if (line.find("\"reason\":\"WAITING_PERIOD\"") != std::string::npos) ++waiting;
      continue;
    }
    v1::SettleResponse response;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(line, &response).ok()) << line;
    EXPECT_EQ(response.status(), v1::SETTLEMENT_STATUS_TRIAL);
  }
  EXPECT_EQ(count, examples + 1);
  EXPECT_EQ(waiting, 1);
  EXPECT_NE(out.str().find("\"reason\":\"SCENARIO_INVALID\""), std::string::npos);
}

TEST(ResponseJson, PrintsZeroValues) {
  v1::SettleResponse response;
  response.mutable_amounts();
  const std::string json = ResponseJson(response, /*pretty=*/false);
  EXPECT_NE(json.find("\"patientCents\":\"0\""), std::string::npos) << json;
  EXPECT_EQ(json.find('\n'), std::string::npos);
}

TEST(ErrorJson, CodeReasonFieldAndEscapedMessage) {
  absl::Status status = engine::InvalidField("QUANTITY_INVALID", "request.items[0].quantity",
                                             "bad \"1.00001\"\n\t\x01 数量");
  EXPECT_EQ(ErrorJson(status),
            R"({"error":{"code":"INVALID_ARGUMENT","reason":"QUANTITY_INVALID",)"
            R"("field":"request.items[0].quantity","message":"bad \"1.00001\"\n\t\u0001 数量"}})");
  EXPECT_EQ(
      ErrorJson(engine::Refused("WAITING_PERIOD", "wait")),
      R"({"error":{"code":"FAILED_PRECONDITION","reason":"WAITING_PERIOD","message":"wait"}})");
}

// ---- --explain ------------------------------------------------------------------

TEST(DisplayWidth, CjkIsTwoColumns) {
  EXPECT_EQ(DisplayWidth(""), 0);
  EXPECT_EQ(DisplayWidth("total"), 5);
  EXPECT_EQ(DisplayWidth("总费用"), 6);
  EXPECT_EQ(DisplayWidth("总费用 total"), 12);
  EXPECT_EQ(DisplayWidth("（甲类）"), 8);   // fullwidth parentheses
  EXPECT_EQ(DisplayWidth("e\xcc\x81"), 1);  // e + combining acute
  EXPECT_EQ(DisplayWidth("\xff"), 1);       // invalid byte
  EXPECT_EQ(DisplayWidth("\xe6\x80"), 2);   // truncated sequence: two bad bytes
  EXPECT_EQ(DisplayWidth("↳ 十四.3"), 1 + 1 + 4 + 2);
}

TEST(TextTable, AlignsColumnsByDisplayWidth) {
  using A = TextTable::Align;
  TextTable table({{"name"}, {"amount", A::kRight}, {"note"}});
  table.AddRow({"总费用 total", "28870.38", "x"});
  table.AddRow({"自费 out of scope", "568.00", "y"});
  std::string out;
  table.Render("  ", &out);
  std::istringstream lines(out);
  std::string line;
  std::vector<int> note_columns;
  while (std::getline(lines, line)) {
    EXPECT_NE(line.back(), ' ') << "trailing space: [" << line << "]";
    note_columns.push_back(DisplayWidth(line) - DisplayWidth(line.substr(line.rfind(' ') + 1)));
  }
  ASSERT_EQ(note_columns.size(), 3u);
  EXPECT_EQ(note_columns[0], note_columns[1]);
  EXPECT_EQ(note_columns[1], note_columns[2]);
}

TEST(Explain, ShowsTheAmountsWithTheirChineseNames) {
  v1::CalcScenario scenario = LoadScenario(kExamples / "fenghua-2025-adult-inpatient-tianyi.json");
  ScenarioRunner runner(&ShippedEngine());
  v1::SettleResponse response;
  ASSERT_TRUE(runner.Run(scenario, &response).ok());
  const std::string text = Explain(scenario, response);
  for (const char* label :
       {"总费用", "自费", "超限价", "先行自付", "政策范围内", "起付标准", "统筹基金", "大病保险",
        "惠民保", "个人负担", "fenghua-2025", "宁波市奉化区人民医院", "tianyi-yongning-2025"}) {
    EXPECT_NE(text.find(label), std::string::npos) << label;
  }
  EXPECT_NE(text.find(engine::FormatYuan(response.amounts().total_cents())), std::string::npos);
}

}  // namespace
}  // namespace medsettle::calc
