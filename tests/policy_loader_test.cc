// Policy files: the shipped ones parse and carry their figures, PolicySet
// selects by region and date, and every validation rule refuses a broken
// file with INVALID_ARGUMENT / POLICY_FILE_INVALID naming the file and key.
#include "engine/policy_loader.h"

#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "engine/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace medsettle::engine {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;

std::string ReadPolicyFile(const std::string& name) {
  std::ifstream in(std::string(MEDSETTLE_SOURCE_DIR) + "/engine/policies/" + name);
  EXPECT_TRUE(in.good()) << "cannot open " << name;
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

Policy LoadShipped(const std::string& name) {
  absl::StatusOr<Policy> policy = ParsePolicy(name, ReadPolicyFile(name));
  EXPECT_TRUE(policy.ok()) << policy.status();
  return policy.ok() ? *std::move(policy) : Policy();
}

const Scheme& SchemeNamed(const Policy& policy, std::string_view name) {
  int32_t index = policy.SchemeIndex(name);
  EXPECT_GE(index, 0) << name;
  return policy.schemes.at(static_cast<size_t>(index < 0 ? 0 : index));
}

// ------------------------------------------------------------ shipped files

TEST(ShippedPolicies, AllFourParseWithSourcesOnEveryFigure) {
  for (const char* file :
       {"quzhou-2024.yaml", "quzhou-2025.yaml", "dianjiang-2024.yaml", "fenghua-2025.yaml"}) {
    SCOPED_TRACE(file);
    Policy policy = LoadShipped(file);
    EXPECT_EQ(policy.file_name, file);
    EXPECT_EQ(policy.id + ".yaml", file);
    EXPECT_FALSE(policy.coverage.source.empty());
    for (int t = 1; t < kVisitTypeCount; ++t) EXPECT_GE(policy.routes[t].scheme, 0);
    for (const Scheme& s : policy.schemes) {
      SCOPED_TRACE(s.name);
      if (s.kind == Scheme::Kind::kAllowance) {
        EXPECT_FALSE(s.allowance_source.empty());
        continue;
      }
      EXPECT_FALSE(s.ratio_source.empty());
      EXPECT_FALSE(s.segments.empty());
      if (s.deductible.per != DeductibleRule::Per::kNone) {
        EXPECT_FALSE(s.deductible.source.empty());
      }
      if (!s.fund_cap.amounts.empty()) {
        EXPECT_FALSE(s.fund_cap.source.empty());
      }
      for (const Bonus& b : s.bonuses) EXPECT_FALSE(b.source.empty());
    }
  }
}

TEST(ShippedPolicies, Quzhou2025FiguresAndAssumedMarks) {
  Policy p = LoadShipped("quzhou-2025.yaml");
  const Scheme& go = SchemeNamed(p, "general_outpatient");
  EXPECT_EQ(go.fund_cap.amounts.at(0).value, 400000);
  EXPECT_THAT(go.deductible.source, EndsWith("[ASSUMED]"));
  EXPECT_THAT(p.coverage.source, EndsWith("[ASSUMED]"));  // concentrated period
  EXPECT_EQ(p.coverage.mid_year.at(0).kind, BenefitStartRule::Kind::kMonthsAfter);
  EXPECT_EQ(p.coverage.newborn_within_days, 90);
  const Scheme& inpatient = SchemeNamed(p, "inpatient");
  EXPECT_EQ(inpatient.deductible.amount_by_class, (std::vector<Cents>{30000, 50000, 70000}));
  EXPECT_EQ(inpatient.deductible.annual_ceiling_cents, 140000);
  EXPECT_THAT(p.critical_illness.source, EndsWith("[ASSUMED]"));
  ASSERT_EQ(p.critical_illness.terms.size(), 2u);
  EXPECT_EQ(p.critical_illness.terms[0].value.threshold_cents, 1500000);
  EXPECT_EQ(p.critical_illness.terms[0].value.cap_cents, std::nullopt);
  EXPECT_EQ(p.critical_illness.terms[1].value.cap_cents, 40000000);
}

TEST(ShippedPolicies, DianjiangTiersMaternityAndUncoveredLevel3) {
  Policy p = LoadShipped("dianjiang-2024.yaml");
  EXPECT_EQ(p.tiers, (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(p.regions, (std::vector<RegionCode>{500231}));
  EXPECT_EQ(p.pooling_area, (std::vector<RegionCode>{500000}));
  const Scheme& go = SchemeNamed(p, "general_outpatient");
  EXPECT_EQ(go.uncovered_class_mask, 1u << p.ClassIndex("level_3"));
  ASSERT_EQ(go.class_overrides.size(), 1u);
  EXPECT_EQ(go.class_overrides[0].class_index, p.ClassIndex("level_2"));
  EXPECT_EQ(go.class_overrides[0].class_name, "level_2");
  EXPECT_FALSE(go.class_overrides[0].source.empty());
  const Scheme& inpatient = SchemeNamed(p, "inpatient");
  EXPECT_EQ(inpatient.deductible.tcm_lower_class, (std::vector<int32_t>{-1, 0, 1}));
  EXPECT_EQ(inpatient.fund_cap.ledgers,
            LedgerBit(Ledger::kInpatient) | LedgerBit(Ledger::kSpecialOutpatient));
  const VisitRoute& caesarean = p.routes[static_cast<size_t>(VisitType::kDeliveryCaesarean)];
  EXPECT_EQ(caesarean.scheme, p.SchemeIndex("inpatient"));
  EXPECT_EQ(caesarean.top_up_to_cents, 60000);
  // Booked in the routed scheme's ledger, under its cap (POLICY-NOTES Reading).
  EXPECT_EQ(caesarean.top_up_ledger, Ledger::kInpatient);
  const Scheme& natural = SchemeNamed(p, "delivery_natural");
  EXPECT_EQ(natural.kind, Scheme::Kind::kAllowance);
  EXPECT_EQ(natural.allowance_cents, 60000);
  EXPECT_EQ(p.critical_illness.terms.at(0).value.threshold_cents, 891650);
}

TEST(ShippedPolicies, FenghuaSharedTotalsAndSupplementary) {
  Policy p = LoadShipped("fenghua-2025.yaml");
  // Two `community` entries are one class.
  EXPECT_EQ(p.classes.size(), 4u);
  EXPECT_EQ(p.ClassIndex("community"), 0);
  EXPECT_EQ(p.ClassIndex("tertiary"), 1);
  EXPECT_EQ(p.ClassIndex("other"), 2);
  const Scheme& go = SchemeNamed(p, "general_outpatient");
  EXPECT_EQ(go.position_ledgers,
            LedgerBit(Ledger::kGeneralOutpatient) | LedgerBit(Ledger::kChronicOutpatient));
  EXPECT_EQ(go.segments.at(0).upto_cents, 500000);
  EXPECT_TRUE(go.fund_cap.amounts.empty());
  const Scheme& inpatient = SchemeNamed(p, "inpatient");
  ASSERT_EQ(inpatient.segments.size(), 2u);
  EXPECT_EQ(inpatient.segments[1].upto_cents, 30000000);
  EXPECT_TRUE(inpatient.supplementary);
  EXPECT_FALSE(p.critical_illness.enabled);
  ASSERT_TRUE(p.supplementary.has_value());
  EXPECT_EQ(p.supplementary->product, "tianyi-yongning-2025");
  ASSERT_EQ(p.supplementary->responsibilities.size(), 4u);
  EXPECT_EQ(p.supplementary->responsibilities[1].settle, Responsibility::Settle::kCounterInRegion);
  EXPECT_EQ(p.supplementary->responsibilities[3].cap_cents, 10000000);
}

// ---------------------------------------------------------------- PolicySet

PolicySet ShippedSet() {
  PolicySet set;
  for (const char* file :
       {"quzhou-2024.yaml", "quzhou-2025.yaml", "dianjiang-2024.yaml", "fenghua-2025.yaml"}) {
    absl::Status added = set.Add(LoadShipped(file));
    EXPECT_TRUE(added.ok()) << added;
  }
  return set;
}

Date D(std::string_view text) { return *Date::Parse(text); }

TEST(PolicySet, SelectsByInsuredRegionAndDate) {
  PolicySet set = ShippedSet();
  struct Case {
    RegionCode region;
    const char* date;
    const char* want;  // nullptr: no policy
  };
  for (const Case& c : {
           Case{330802, "2024-01-01", "quzhou-2024"},
           Case{330881, "2024-12-31", "quzhou-2024"},
           Case{330802, "2025-01-01", "quzhou-2025"},
           Case{500231, "2024-06-30", "dianjiang-2024"},
           Case{330213, "2025-07-01", "fenghua-2025"},
           Case{500231, "2025-01-01", nullptr},  // no Dianjiang 2025 policy
           Case{500101, "2024-06-30", nullptr},  // Chongqing, not Dianjiang
           Case{330203, "2025-07-01", nullptr},  // Ningbo, not Fenghua
           Case{330802, "2023-12-31", nullptr},
           Case{110101, "2024-06-30", nullptr},
       }) {
    SCOPED_TRACE(testing::Message() << c.region << " " << c.date);
    const Policy* got = set.Select(c.region, D(c.date));
    if (c.want == nullptr) {
      EXPECT_EQ(got, nullptr);
    } else {
      ASSERT_NE(got, nullptr);
      EXPECT_EQ(got->id, c.want);
    }
  }
  EXPECT_EQ(set.Select(330802, Date()), nullptr);
  ASSERT_NE(set.FindById("dianjiang-2024"), nullptr);
  EXPECT_EQ(set.FindById("dianjiang-2024")->year, 2024);
  EXPECT_EQ(set.FindById("dianjiang-2025"), nullptr);
}

// ------------------------------------------------------- validation rules

// A small valid policy; each rule below breaks one thing in it.
constexpr std::string_view kValid = R"yaml(
id: test-2024
title: test policy
source_document: seeds/test.txt
year: 2024
valid_from: 2024-01-01
valid_to: 2024-12-31
regions: ["330800"]
pooling_area: ["330800"]
tiers: [0]
institution_classes:
  - name: level_1
    when: { level: [1] }
  - name: level_2
    when: { level: [2, 3] }
coverage:
  source: coverage section
  concentrated_period: { from: 2023-11-01, to: 2023-12-20 }
  mid_year:
    - { paid_from: 2023-12-21, paid_to: 2024-12-31, start: month_start_after, n: 2 }
schemes:
  outpatient:
    title: outpatient
    ledger: GENERAL_OUTPATIENT
    deductible:
      per: year
      amounts_yuan: { level_1: 100, level_2: 200 }
      source: deductible section
    ratios:
      source: ratio section
      segments:
        - rows:
            - { when: { class: [level_1] }, pct: 60 }
            - { pct: 50 }
    fund_cap:
      rows:
        - { yuan: 1800 }
      source: cap section
  inpatient:
    title: inpatient
    ledger: INPATIENT
    deductible: { per: visit, amounts_yuan: { level_1: 400, level_2: 800 }, source: ded }
    ratios:
      source: ratio section
      segments:
        - upto_yuan: 40000
          rows:
            - { pct: 80 }
        - upto_yuan: 300000
          rows:
            - { pct: 85 }
    critical_illness: true
visits:
  GENERAL_OUTPATIENT: { scheme: outpatient }
  CHRONIC_OUTPATIENT: { scheme: outpatient }
  SPECIAL_OUTPATIENT: { scheme: inpatient }
  INPATIENT: { scheme: inpatient }
  PRENATAL_CHECK: { scheme: outpatient }
  DELIVERY_NATURAL: { scheme: inpatient }
  DELIVERY_CAESAREAN: { scheme: inpatient }
critical_illness:
  source: critical illness section
  terms:
    - { threshold_yuan: 18000, pct: 70, cap_yuan: 250000 }
)yaml";

constexpr std::string_view kFile = "test-2024.yaml";

// kValid with the one occurrence of `from` replaced by `to`.
std::string Edit(std::string_view from, std::string_view to) {
  std::string text(kValid);
  size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << "not in kValid: " << from;
  EXPECT_EQ(text.find(from, at + 1), std::string::npos) << "ambiguous edit: " << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

void ExpectPolicyFileInvalid(const absl::Status& status, std::string_view file,
                             std::string_view key_path, std::string_view what) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_EQ(ReasonOf(status), "POLICY_FILE_INVALID") << status;
  EXPECT_EQ(FieldOf(status), key_path) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(std::string(file) + ": ")) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(std::string(key_path) + ": ")) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(std::string(what))) << status;
}

TEST(PolicyLoader, ValidBaseParsesWithDefaults) {
  absl::StatusOr<Policy> p = ParsePolicy(kFile, kValid);
  ASSERT_TRUE(p.ok()) << p.status();
  const Scheme& outpatient = p->schemes.at(0);
  EXPECT_EQ(outpatient.kind, Scheme::Kind::kCoinsurance);
  EXPECT_EQ(outpatient.position_ledgers, LedgerBit(Ledger::kGeneralOutpatient));
  EXPECT_EQ(outpatient.fund_cap.ledgers, LedgerBit(Ledger::kGeneralOutpatient));
  EXPECT_EQ(outpatient.deductible.paid_ledgers, LedgerBit(Ledger::kGeneralOutpatient));
  EXPECT_EQ(p->schemes.at(1).fund_cap.amounts.size(), 0u);  // no fund_cap: uncapped
  EXPECT_EQ(p->schemes.at(1).segments.at(1).upto_cents, 30000000);
  EXPECT_EQ(p->coverage.mid_year.at(0).source, "coverage section");  // inherited
  EXPECT_FALSE(p->coverage.newborn_within_days.has_value());
}

TEST(PolicyLoader, AssumedIsMarkedInTheSource) {
  absl::StatusOr<Policy> p =
      ParsePolicy(kFile, Edit("      source: ratio section\n      segments:\n        - rows:",
                              "      source: ratio section\n      assumed: true\n      segments:\n"
                              "        - rows:"));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->schemes.at(0).ratio_source, "ratio section [ASSUMED]");
}

struct BadFile {
  const char* rule;  // test name
  std::string_view from;
  std::string_view to;
  const char* key_path;
  const char* what;  // part of the message
};

// Test names and failure messages show the rule, not the struct's bytes.
void PrintTo(const BadFile& bad, std::ostream* os) { *os << bad.rule; }

class PolicyLoaderRejects : public testing::TestWithParam<BadFile> {};

TEST_P(PolicyLoaderRejects, NamesFileAndKey) {
  const BadFile& bad = GetParam();
  absl::StatusOr<Policy> p = ParsePolicy(kFile, Edit(bad.from, bad.to));
  ASSERT_FALSE(p.ok());
  ExpectPolicyFileInvalid(p.status(), kFile, bad.key_path, bad.what);
}

INSTANTIATE_TEST_SUITE_P(
    Rules, PolicyLoaderRejects,
    testing::Values(
        BadFile{"UnknownKey", "    fund_cap:\n", "    fund_caps:\n", "schemes.outpatient.fund_caps",
                "unknown key"},
        BadFile{"UnknownMatcherKey", "{ class: [level_1] }", "{ clas: [level_1] }",
                "schemes.outpatient.ratios.segments[0].rows[0].when.clas", "unknown key"},
        BadFile{"DuplicateKey", "title: test policy\n", "title: test policy\ntitle: again\n",
                "title", "duplicate key"},
        BadFile{"BadYuan", "level_2: 200", "level_2: 80x",
                "schemes.outpatient.deductible.amounts_yuan.level_2", "got \"80x\""},
        BadFile{"YuanWithThreeDecimals", "{ yuan: 1800 }", "{ yuan: 1800.005 }",
                "schemes.outpatient.fund_cap.rows[0].yuan", "at most 2 decimals"},
        BadFile{"PercentAbove100", "pct: 60", "pct: 101",
                "schemes.outpatient.ratios.segments[0].rows[0].pct", "0..100"},
        BadFile{"MissingSource", "      source: cap section\n", "",
                "schemes.outpatient.fund_cap.source", "missing source"},
        BadFile{"EmptySource", "source: critical illness section", "source: \"  \"",
                "critical_illness.source", "must not be empty"},
        BadFile{"UnknownClass", "class: [level_1]", "class: [level_9]",
                "schemes.outpatient.ratios.segments[0].rows[0].when.class[0]",
                "unknown institution class"},
        BadFile{"DeductibleMissesAClass", "{ level_1: 400, level_2: 800 }", "{ level_1: 400 }",
                "schemes.inpatient.deductible.amounts_yuan.level_2", "missing the amount"},
        BadFile{"UnroutedVisitType", "  PRENATAL_CHECK: { scheme: outpatient }\n", "",
                "visits.PRENATAL_CHECK", "not routed"},
        BadFile{"RouteToUnknownScheme", "PRENATAL_CHECK: { scheme: outpatient }",
                "PRENATAL_CHECK: { scheme: prenatal }", "visits.PRENATAL_CHECK.scheme",
                "unknown scheme"},
        BadFile{"NonIncreasingSegments", "upto_yuan: 300000", "upto_yuan: 40000",
                "schemes.inpatient.ratios.segments[1].upto_yuan", "strictly increasing"},
        BadFile{"OpenSegmentNotLast", "        - upto_yuan: 40000\n", "        -\n",
                "schemes.inpatient.ratios.segments[0].upto_yuan", "only the last"},
        BadFile{"BadRegionCode", "regions: [\"330800\"]", "regions: [\"33080\"]", "regions[0]",
                "6-digit"},
        BadFile{"InvalidRegionCode", "pooling_area: [\"330800\"]", "pooling_area: [\"000800\"]",
                "pooling_area[0]", "6-digit"},
        BadFile{"BadDate", "valid_to: 2024-12-31", "valid_to: 2024-02-30", "valid_to",
                "YYYY-MM-DD"},
        BadFile{"ValidityOutsideYear", "valid_to: 2024-12-31", "valid_to: 2025-01-31", "valid_to",
                "policy year"},
        BadFile{"MidYearWindowOverlapsConcentrated", "paid_from: 2023-12-21",
                "paid_from: 2023-12-01", "coverage.mid_year[0].paid_from", "ordered"},
        BadFile{"MidYearWindowsLeaveAGap", "paid_from: 2023-12-21", "paid_from: 2024-01-01",
                "coverage.mid_year[0].paid_from", "no gap"},
        BadFile{"MidYearWindowsStopBeforeTheYearEnds", "paid_to: 2024-12-31, start",
                "paid_to: 2024-11-30, start", "coverage.mid_year", "meet no payment window"},
        BadFile{"SpillOverNeedsOneRatio", "    critical_illness: true\n",
                "    critical_illness: true\n    fund_cap: { rows: [ { yuan: 1000 } ], source: c }\n"
                "    spill_over: { to: outpatient, source: s }\n",
                "schemes.inpatient.spill_over", "one ratio"},
        BadFile{"SpillOverToItself", "      source: cap section\n",
                "      source: cap section\n    spill_over: { to: outpatient, source: s }\n",
                "schemes.outpatient.spill_over.to", "itself"},
        BadFile{"CriticalIllnessFlagWithoutLayer",
                "critical_illness:\n  source: critical illness section\n  terms:\n"
                "    - { threshold_yuan: 18000, pct: 70, cap_yuan: 250000 }\n",
                "", "schemes.inpatient.critical_illness", "no enabled"},
        BadFile{"CapMustBeExplicit", ", cap_yuan: 250000 }", " }",
                "critical_illness.terms[0].cap_yuan", "missing required key"},
        BadFile{"TierNotInPolicy", "{ pct: 50 }", "{ when: { tier: [2] }, pct: 50 }",
                "schemes.outpatient.ratios.segments[0].rows[1].when.tier[0]",
                "not one of the policy's tiers"},
        BadFile{"UnknownEnumName", "ledger: INPATIENT", "ledger: HOSPITAL",
                "schemes.inpatient.ledger", "unknown ledger"}),
    [](const testing::TestParamInfo<BadFile>& rule) { return std::string(rule.param.rule); });

TEST(PolicyLoader, SyntaxErrorNamesTheFile) {
  absl::StatusOr<Policy> p = ParsePolicy(kFile, "id: [unclosed\n");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReasonOf(p.status()), "POLICY_FILE_INVALID");
  EXPECT_THAT(std::string(p.status().message()), HasSubstr("test-2024.yaml: "));
}

TEST(PolicySet, RefusesDuplicateId) {
  PolicySet set;
  ASSERT_TRUE(set.Add(*ParsePolicy("a.yaml", kValid)).ok());
  absl::Status second = set.Add(*ParsePolicy("b.yaml", kValid));
  ExpectPolicyFileInvalid(second, "b.yaml", "id", "already loaded from a.yaml");
}

TEST(PolicySet, RefusesOverlappingRegionsAndDates) {
  PolicySet set;
  ASSERT_TRUE(set.Add(*ParsePolicy("a.yaml", kValid)).ok());
  // A district inside Quzhou city, the same year: overlaps.
  std::string district = Edit("regions: [\"330800\"]", "regions: [\"330802\"]");
  district.replace(district.find("id: test-2024"), 13, "id: district-2024");
  absl::Status overlapping = set.Add(*ParsePolicy("district-2024.yaml", district));
  ExpectPolicyFileInvalid(overlapping, "district-2024.yaml", "regions", "overlap policy test-2024");

  // Another year of the same region does not overlap.
  std::string next_year(kValid);
  for (auto [from, to] :
       {std::pair{"id: test-2024", "id: test-2025"}, std::pair{"year: 2024", "year: 2025"},
        std::pair{"valid_from: 2024-01-01", "valid_from: 2025-01-01"},
        std::pair{"valid_to: 2024-12-31", "valid_to: 2025-12-31"},
        std::pair{"{ from: 2023-11-01, to: 2023-12-20 }", "{ from: 2024-11-01, to: 2024-12-20 }"},
        std::pair{"paid_from: 2023-12-21, paid_to: 2024-12-31",
                  "paid_from: 2024-12-21, paid_to: 2025-12-31"}}) {
    next_year.replace(next_year.find(from), std::string_view(from).size(), to);
  }
  absl::StatusOr<Policy> p2025 = ParsePolicy("test-2025.yaml", next_year);
  ASSERT_TRUE(p2025.ok()) << p2025.status();
  EXPECT_TRUE(set.Add(*std::move(p2025)).ok());
}

}  // namespace
}  // namespace medsettle::engine
