// Golden cases for Quzhou 2024 (seeds/quzhou-2024-resident-policy-qa.txt;
// POLICY-NOTES "Quzhou 2024"). Each expected figure has its arithmetic
// beside it, in yuan. Demo catalog: engine/catalog/demo-catalog.csv.
#include <gtest/gtest.h>

#include "engine/status.h"
#include "tests/support/engine_fixture.h"
#include "tests/support/golden.h"

namespace medsettle::testing {
namespace {

using namespace medsettle::engine;

constexpr RegionCode kQuzhou = 330800;
constexpr RegionCode kKecheng = 330802;  // a district inside the pooling area

// A general-outpatient bill: FA0001 consultation 10.00 (A), XA0001 2 × 15.00
// (A), XB0001 50.00 (B, 10% pre-self-pay), XC0002 20.00 (C).
Claim SmallOutpatientBill(VisitType type = VisitType::kGeneralOutpatient) {
  return Outpatient(type, "2024-06-10",
                    {Line(1, "FA0001", "1", 1000), Line(2, "XA0001", "2", 1500),
                     Line(3, "XB0001", "1", 5000), Line(4, "XC0002", "1", 2000)});
}

TEST(Quzhou2024, ClassificationOverLimitThenPreSelfPayThenInScope) {
  // FB0001 CT 350.00, cap 300.00 → over 50.00; rest 300.00 B 10% → pre 30.00,
  // in 270.00. XB0004 albumin 2 × 450.00 = 900.00, cap 2 × 400.00 → over
  // 100.00; rest 800.00 B 20% → pre 160.00, in 640.00. Unknown code → out.
  Settlement s;
  ASSERT_TRUE(SettleWith(Person(kQuzhou, 2024), Hospital(kKecheng, 2), {},
                         Stay(VisitType::kInpatient, "2024-03-01", "2024-03-05",
                              {Line(1, "FB0001", "1", 35000), Line(2, "XB0004", "2", 45000),
                               Line(3, "NOT-IN-CATALOG", "1", 3000)}),
                         &s).ok());
  ExpectSplit(s, {.total = 128000,          // 350 + 900 + 30
                  .out_of_scope = 3000,     // the unknown code
                  .over_limit = 15000,      // 50 + 100
                  .pre_self_pay = 19000,    // 30 + 160
                  .in_scope = 91000});      // 270 + 640
  ASSERT_EQ(s.lines.size(), 3u);
  EXPECT_EQ(s.lines[2].item_class, ItemClass::kUnknown);
  bool flagged = false;
  for (const TraceStep& t : s.trace) flagged |= t.rule == TraceRule::kUnknownItem && t.count == 3;
  EXPECT_TRUE(flagged) << "unknown code flagged in the trace";
}

TEST(Quzhou2024, GeneralOutpatientAnnualDeductibleThenSixtyPercent) {
  // In scope: 10 + 30 + 45 = 85.00; pre-self-pay 5.00; out of scope 20.00.
  Settlement first;
  ASSERT_TRUE(SettleWith(Person(kQuzhou, 2024), Community(kKecheng), {}, SmallOutpatientBill(),
                         &first).ok());
  // Deductible min(85, 100 − 0) = 85.00: nothing from the fund.
  ExpectSplit(first, {.total = 11000, .in_scope = 8500, .deductible = 8500, .base_fund = 0,
                      .patient = 11000});
  // Second visit: 15.00 of the deductible left; (85 − 15) × 60% = 42.00.
  Settlement second;
  ASSERT_TRUE(SettleWith(Person(kQuzhou, 2024), Community(kKecheng), first.after,
                         SmallOutpatientBill(), &second).ok());
  ExpectSplit(second, {.deductible = 1500, .base_fund = 4200, .patient = 6800});  // 110 − 42
}

TEST(Quzhou2024, GeneralOutpatientBonusesZeroMarkupAndSpecialty) {
  Accumulators paid_deductible;
  paid_deductible.ledger(Ledger::kGeneralOutpatient).deductible_paid_cents = 10000;
  // Level 2, zero mark-up, paediatrics: 50% + 10 + 5 = 65%; 85 × 65% = 55.25.
  Institution level2 = Hospital(kKecheng, 2);
  level2.zero_markup = true;
  Claim pediatrics = SmallOutpatientBill();
  pediatrics.visit.specialty = Specialty::kPediatrics;
  Settlement s;
  ASSERT_TRUE(SettleWith(Person(kQuzhou, 2024), level2, paid_deductible, pediatrics, &s).ok());
  ExpectSplit(s, {.deductible = 0, .base_fund = 5525});
  EXPECT_EQ(s.base_fund_ratio_bp, 6500);
  // The trace names each bonus applied, with its points and source.
  std::vector<std::string_view> bonuses;
  for (const TraceStep& t : s.trace) {
    if (t.rule == TraceRule::kBonus) bonuses.push_back(t.subject);
  }
  EXPECT_EQ(bonuses, (std::vector<std::string_view>{"zero_markup", "specialty_level_2"}));
  // Level 3, zero mark-up (no bonus above level 2), psychiatry +10: 40 + 10 =
  // 50%; 85 × 50% = 42.50.
  Institution level3 = Hospital(kKecheng, 3);
  level3.zero_markup = true;
  pediatrics.visit.specialty = Specialty::kPsychiatry;
  ASSERT_TRUE(SettleWith(Person(kQuzhou, 2024), level3, paid_deductible, pediatrics, &s).ok());
  ExpectSplit(s, {.base_fund = 4250});
  // Out of area (with a filing), the in-city bonuses do not apply: 40%.
  Enrollment filed = Person(kQuzhou, 2024);
  filed.out_of_area_filings.push_back({330100, D("2024-01-01"), D("2024-12-31")});
  Institution hangzhou = Hospital(330106, 3);
  hangzhou.zero_markup = true;
  ASSERT_TRUE(SettleWith(filed, hangzhou, paid_deductible, pediatrics, &s).ok());
  ExpectSplit(s, {.base_fund = 3400});  // 85 × 40%
}

TEST(Quzhou2024, GeneralOutpatientCapOf1800) {
  Accumulators near_cap;
  near_cap.ledger(Ledger::kGeneralOutpatient).deductible_paid_cents = 10000;
  near_cap.ledger(Ledger::kGeneralOutpatient).fund_paid_cents = 179000;  // 10.00 left
  Settlement s;
  ASSERT_TRUE(SettleWith(Person(kQuzhou, 2024), Community(kKecheng), near_cap,
                         SmallOutpatientBill(), &s).ok());
  // round(85 × 60%) = 51.00, capped at 1800 − 1790 = 10.00.
  ExpectSplit(s, {.base_fund = 1000, .patient = 10000});
  EXPECT_EQ(s.after.ledger(Ledger::kGeneralOutpatient).fund_paid_cents, 180000);
}

TEST(Quzhou2024, InpatientDeductibleByLevelAndAnnualCeiling1400) {
  // 500.00 bed-days (FA0003 10 × 50.00), class A.
  auto bill = [](const char* admission, const char* discharge) {
    return Stay(VisitType::kInpatient, admission, discharge, {Line(1, "FA0003", "10", 5000)});
  };
  Enrollment person = Person(kQuzhou, 2024);
  // Admission 1, level 1: deductible 400; (500 − 400) × 85% = 85.00.
  Settlement first;
  ASSERT_TRUE(SettleWith(person, Hospital(kKecheng, 1), {}, bill("2024-02-01", "2024-02-05"),
                         &first).ok());
  ExpectSplit(first, {.in_scope = 50000, .deductible = 40000, .base_fund = 8500,
                      .critical_illness = 0, .patient = 41500});
  // Admission 2, level 2: deductible 800, but 1400 − 400 = 1000 left → 500
  // (the whole in-scope); the fund pays nothing.
  Settlement second;
  ASSERT_TRUE(SettleWith(person, Hospital(kKecheng, 2), first.after,
                         bill("2024-03-01", "2024-03-05"), &second).ok());
  ExpectSplit(second, {.deductible = 50000, .base_fund = 0});
  // Admission 3, level 3: 800 per admission, ceiling leaves 1400 − 900 = 500;
  // (500 − 500) → 0.00 from the fund.
  Settlement third;
  ASSERT_TRUE(SettleWith(person, Hospital(kKecheng, 3), second.after,
                         bill("2024-04-01", "2024-04-05"), &third).ok());
  ExpectSplit(third, {.deductible = 50000, .base_fund = 0});
  // Admission 4, level 3: the ceiling is reached; (500 − 0) × 65% = 325.00.
  Settlement fourth;
  ASSERT_TRUE(SettleWith(person, Hospital(kKecheng, 3), third.after,
                         bill("2024-05-01", "2024-05-05"), &fourth).ok());
  ExpectSplit(fourth, {.deductible = 0, .base_fund = 32500});
  EXPECT_EQ(fourth.after.ledger(Ledger::kInpatient).deductible_paid_cents, 140000);
  EXPECT_EQ(fourth.after.ledger(Ledger::kInpatient).visits, 4);
}

TEST(Quzhou2024, InpatientZeroMarkupBonusAtLevelTwo) {
  Institution h = Hospital(kKecheng, 2);
  h.zero_markup = true;
  Settlement s;
  ASSERT_TRUE(SettleWith(Person(kQuzhou, 2024), h, {},
                         Stay(VisitType::kInpatient, "2024-06-01", "2024-06-08",
                              {Line(1, "FA0003", "20", 5000)}),  // 1000.00
                         &s).ok());
  // (1000 − 800) × (75% + 10%) = 170.00.
  ExpectSplit(s, {.deductible = 80000, .base_fund = 17000, .patient = 83000});
  EXPECT_EQ(s.base_fund_ratio_bp, 8500);
}

TEST(Quzhou2024, SpecialOutpatientOneAnnualDeductibleOf800) {
  Enrollment person = Person(kQuzhou, 2024);
  person.special_diseases = {"UREMIA"};
  auto dialysis = [] {  // FA0008 haemodialysis 3 × 400.00 = 1200.00 (A)
    Claim c = Outpatient(VisitType::kSpecialOutpatient, "2024-07-01",
                         {Line(1, "FA0008", "3", 40000)});
    c.visit.condition = "UREMIA";
    return c;
  };
  Settlement first;
  ASSERT_TRUE(SettleWith(person, Hospital(kKecheng, 3), {}, dialysis(), &first).ok());
  // 800 once; (1200 − 800) × 65% = 260.00.
  ExpectSplit(first, {.deductible = 80000, .base_fund = 26000});
  Settlement second;
  ASSERT_TRUE(SettleWith(person, Hospital(kKecheng, 3), first.after, dialysis(), &second).ok());
  // No deductible left: 1200 × 65% = 780.00.
  ExpectSplit(second, {.deductible = 0, .base_fund = 78000});
}

TEST(Quzhou2024, ChronicSpillsOverToGeneralOutpatientWhenItsCapRunsOut) {
  Enrollment person = Person(kQuzhou, 2024);
  person.chronic_conditions = {"TB"};
  Accumulators ytd;
  ytd.ledger(Ledger::kChronicOutpatient).fund_paid_cents = 195000;  // R = 50.00 left of 2000
  Claim c = Outpatient(VisitType::kChronicOutpatient, "2024-09-02",
                       {Line(1, "XA0004", "20", 1000)});  // 200.00 in scope
  c.visit.condition = "TB";
  Settlement s;
  ASSERT_TRUE(SettleWith(person, Community(kKecheng), ytd, c, &s).ok());
  // TB 70%: round(200 × 70%) = 140 > R = 50 → chronic pays 50.00 and covers
  // E = ceil(50.00 × 10000 / 7000) = 71.43; the other 128.57 settles as
  // general outpatient: deductible 100.00, (28.57) × 60% = 17.142 → 17.14.
  ExpectSplit(s, {.in_scope = 20000, .deductible = 10000, .base_fund = 6714});
  EXPECT_EQ(s.after.ledger(Ledger::kChronicOutpatient).fund_paid_cents, 200000);
  EXPECT_EQ(s.after.ledger(Ledger::kChronicOutpatient).in_scope_cents, 7143);
  EXPECT_EQ(s.after.ledger(Ledger::kGeneralOutpatient).in_scope_cents, 12857);
  EXPECT_EQ(s.after.ledger(Ledger::kGeneralOutpatient).fund_paid_cents, 1714);
  // Critical-illness burden: in scope less both fund payments = 132.86.
  EXPECT_EQ(s.delta.critical_illness_burden_cents, 13286);
}

TEST(Quzhou2024, CriticalIllnessAbove18000At70PercentCrossedMidBill) {
  Accumulators ytd;
  ytd.critical_illness_burden_cents = 1750000;  // 17,500.00 burden so far
  ytd.ledger(Ledger::kInpatient).deductible_paid_cents = 140000;  // ceiling reached
  // 2000.00 in scope at level 3: fund 65% = 1300.00; burden 700.00 occupies
  // [17,500, 18,200): 200.00 above 18,000 × 70% = 140.00.
  Settlement s;
  ASSERT_TRUE(SettleWith(Person(kQuzhou, 2024), Hospital(kKecheng, 3), ytd,
                         Stay(VisitType::kInpatient, "2024-08-01", "2024-08-10",
                              {Line(1, "FA0003", "40", 5000)}),
                         &s).ok());
  ExpectSplit(s, {.deductible = 0, .base_fund = 130000, .critical_illness = 14000,
                  .patient = 56000});  // 2000 − 1300 − 140
  EXPECT_EQ(s.after.critical_illness_burden_cents, 1820000);
}

TEST(Quzhou2024, CriticalIllnessForAssistanceRecipientsAbove9000At80PercentUncapped) {
  Enrollment dibao = Person(kQuzhou, 2024);
  dibao.assistance = Assistance::kDibao;
  Accumulators ytd;
  ytd.critical_illness_burden_cents = 890000;
  ytd.critical_illness_paid_cents = 30000000;  // far above the ordinary 250,000 cap
  ytd.ledger(Ledger::kInpatient).deductible_paid_cents = 140000;
  Settlement s;
  ASSERT_TRUE(SettleWith(dibao, Hospital(kKecheng, 3), ytd,
                         Stay(VisitType::kInpatient, "2024-08-01", "2024-08-10",
                              {Line(1, "FA0003", "40", 5000)}),
                         &s).ok());
  // Burden 700.00 on [8,900, 9,600): 600.00 above 9,000 × 80% = 480.00.
  ExpectSplit(s, {.base_fund = 130000, .critical_illness = 48000});
}

TEST(Quzhou2024, MidYearEnrollmentCoveredFromTheThirdNaturalMonth) {
  Enrollment late = Person(kQuzhou, 2024);
  late.concentrated = false;
  late.paid_date = D("2024-03-15");  // covered from 2024-05-01
  Claim april = SmallOutpatientBill();
  april.visit.service_date = D("2024-04-30");
  Settlement s;
  absl::Status refused = SettleWith(late, Community(kKecheng), {}, april, &s);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReasonOf(refused), "WAITING_PERIOD");
  april.visit.service_date = D("2024-05-01");
  EXPECT_TRUE(SettleWith(late, Community(kKecheng), {}, april, &s).ok());
}

TEST(Quzhou2024, ReversalInTheMiddleOfTheYearRestoresEveryAccumulator) {
  Enrollment person = Person(kQuzhou, 2024);
  auto stay = [](const char* day) {
    return Stay(VisitType::kInpatient, day, day, {Line(1, "FA0003", "30", 5000)});  // 1500.00
  };
  Settlement a, b, c;
  ASSERT_TRUE(SettleWith(person, Hospital(kKecheng, 2), {}, stay("2024-02-01"), &a).ok());
  ASSERT_TRUE(SettleWith(person, Hospital(kKecheng, 2), a.after, stay("2024-03-01"), &b).ok());
  // Reverse b: the year is as after a.
  absl::StatusOr<Accumulators> undone = Engine::Reverse(b.after, b.delta);
  ASSERT_TRUE(undone.ok());
  EXPECT_TRUE(undone->SameTotals(a.after));
  // A later settlement sees the year as if b never was: deductible 1400 −
  // 800 = 600 left, as for b.
  ASSERT_TRUE(SettleWith(person, Hospital(kKecheng, 2), *undone, stay("2024-04-01"), &c).ok());
  EXPECT_EQ(c.amounts.deductible_cents, b.amounts.deductible_cents);
  EXPECT_EQ(c.amounts.base_fund_cents, b.amounts.base_fund_cents);
  EXPECT_EQ(c.amounts.deductible_cents, 60000);
}

TEST(Quzhou2024, RemainingLimitsOfTheYear) {
  // What CheckCoverage will report: each cap or ceiling once, with its use.
  Accumulators ytd;
  ytd.ledger(Ledger::kGeneralOutpatient).fund_paid_cents = 50000;   // 500 of 1800
  ytd.ledger(Ledger::kInpatient).fund_paid_cents = 1000000;         // 10,000 of 150,000 ...
  ytd.ledger(Ledger::kSpecialOutpatient).fund_paid_cents = 200000;  // ... shared: 12,000 used
  ytd.ledger(Ledger::kInpatient).deductible_paid_cents = 80000;     // 800 of the 1400 ceiling
  ytd.critical_illness_paid_cents = 100000;
  const Policy& policy = *ShippedEngine().policies().FindById("quzhou-2024");
  auto find = [](const std::vector<RemainingLimit>& limits, std::string_view name) {
    for (const RemainingLimit& l : limits) {
      if (l.name == name) return l;
    }
    ADD_FAILURE() << "no limit " << name;
    return RemainingLimit{};
  };
  const std::vector<RemainingLimit> limits = ShippedEngine().Remaining(policy, Person(kQuzhou, 2024), ytd);
  const RemainingLimit go = find(limits, "general_outpatient fund cap");
  EXPECT_EQ(go.limit_cents, 180000);
  EXPECT_EQ(go.remaining_cents, 130000);
  const RemainingLimit inpatient = find(limits, "inpatient fund cap");
  EXPECT_EQ(inpatient.used_cents, 1200000);
  EXPECT_EQ(inpatient.remaining_cents, 13800000);
  EXPECT_EQ(find(limits, "inpatient deductible ceiling").remaining_cents, 60000);
  EXPECT_EQ(find(limits, "critical_illness cap").remaining_cents, 24900000);
  int inpatient_caps = 0;  // the shared cap is listed once, not per scheme
  for (const RemainingLimit& l : limits) inpatient_caps += l.limit_cents == 15000000;
  EXPECT_EQ(inpatient_caps, 1);
  // An assistance recipient's critical illness has no cap to list.
  Enrollment dibao = Person(kQuzhou, 2024);
  dibao.assistance = Assistance::kDibao;
  for (const RemainingLimit& l : ShippedEngine().Remaining(policy, dibao, ytd)) {
    EXPECT_NE(l.name, "critical_illness cap");
  }
}

}  // namespace
}  // namespace medsettle::testing
