// Golden cases for Quzhou 2025 (seeds/quzhou-2025-policy-article.txt, and
// what carries over from seeds/quzhou-2024-resident-policy-qa.txt;
// POLICY-NOTES "Quzhou 2025", "Rules that hold for every region",
// "Computation conventions"). Each expected figure has its arithmetic beside
// it, in yuan, worked by hand from POLICY-NOTES. Demo catalog:
// engine/catalog/demo-catalog.csv.
#include <optional>

#include <gtest/gtest.h>

#include "engine/status.h"
#include "tests/support/engine_fixture.h"
#include "tests/support/golden.h"

namespace medsettle::testing {
namespace {

using namespace medsettle::engine;

constexpr RegionCode kQuzhou = 330800;
constexpr RegionCode kKecheng = 330802;    // district inside the pooling area
constexpr RegionCode kJiangshan = 330881;  // county-level city inside the pooling area
constexpr RegionCode kHangzhouXihu = 330106;  // outside Quzhou, inside Zhejiang

// A general-outpatient bill: FA0001 consultation 10.00 (A), XA0001 2 × 15.00
// (A), XB0001 50.00 (B, 10% pre-self-pay → 5.00), XC0002 20.00 (C).
// In scope 10 + 30 + 45 = 85.00; total 110.00.
Claim SmallOutpatientBill(std::string_view date = "2025-06-10") {
  return Outpatient(VisitType::kGeneralOutpatient, date,
                    {Line(1, "FA0001", "1", 1000), Line(2, "XA0001", "2", 1500),
                     Line(3, "XB0001", "1", 5000), Line(4, "XC0002", "1", 2000)});
}

// An inpatient stay of `beds` × FA0003 ward bed 50.00 (class A, cap 50.00).
Claim BedStay(const char* admission, const char* discharge, const char* beds) {
  return Stay(VisitType::kInpatient, admission, discharge, {Line(1, "FA0003", beds, 5000)});
}

// A haemodialysis special-outpatient visit: FA0008 3 × 400.00 = 1200.00 (A).
Claim Dialysis(const char* date) {
  Claim c = Outpatient(VisitType::kSpecialOutpatient, date, {Line(1, "FA0008", "3", 40000)});
  c.visit.condition = "UREMIA";
  return c;
}

// The 1400 annual deductible ceiling already reached.
Accumulators CeilingReached() {
  Accumulators ytd;
  ytd.ledger(Ledger::kInpatient).deductible_paid_cents = 140000;
  return ytd;
}

OutOfAreaFiling HangzhouFiling(const char* from = "2025-01-01", const char* to = "2025-12-31") {
  return {330100, D(from), D(to)};
}

// ---------------------------------------------------------------- inpatient

TEST(Quzhou2025, InpatientDeductible300_500_700PerAdmissionWithAnnualCeiling1400) {
  Enrollment person = Person(kQuzhou, 2025);
  // Each admission: 20 bed-days × 50.00 = 1000.00 in scope.
  // Admission 1, level 1: deductible 300; (1000 − 300) × 85% = 595.00.
  Settlement first;
  ASSERT_TRUE(SettleWith(person, Hospital(kKecheng, 1), {},
                         BedStay("2025-02-01", "2025-02-05", "20"), &first).ok());
  ExpectSplit(first, {.total = 100000, .in_scope = 100000, .deductible = 30000,
                      .base_fund = 59500,
                      .critical_illness = 0,  // burden 405.00, far below 15,000
                      .patient = 40500});     // 1000 − 595
  EXPECT_EQ(first.base_fund_ratio_bp, 8500);
  // Admission 2, level 2: deductible 500 (300 + 500 = 800 ≤ 1400);
  // (1000 − 500) × 75% = 375.00.
  Settlement second;
  ASSERT_TRUE(SettleWith(person, Hospital(kKecheng, 2), first.after,
                         BedStay("2025-03-01", "2025-03-05", "20"), &second).ok());
  ExpectSplit(second, {.deductible = 50000, .base_fund = 37500, .patient = 62500});
  EXPECT_EQ(second.base_fund_ratio_bp, 7500);
  // Admission 3, level 3: 700 per admission, but the ceiling leaves
  // 1400 − 800 = 600 → 600; (1000 − 600) × 65% = 260.00.
  Settlement third;
  ASSERT_TRUE(SettleWith(person, Hospital(kKecheng, 3), second.after,
                         BedStay("2025-04-01", "2025-04-05", "20"), &third).ok());
  ExpectSplit(third, {.deductible = 60000, .base_fund = 26000, .patient = 74000});
  EXPECT_EQ(third.base_fund_ratio_bp, 6500);
  // Admission 4, level 3: the ceiling is reached (1400); 1000 × 65% = 650.00.
  Settlement fourth;
  ASSERT_TRUE(SettleWith(person, Hospital(kKecheng, 3), third.after,
                         BedStay("2025-05-01", "2025-05-05", "20"), &fourth).ok());
  ExpectSplit(fourth, {.deductible = 0, .base_fund = 65000, .patient = 35000});
  EXPECT_EQ(fourth.after.ledger(Ledger::kInpatient).deductible_paid_cents, 140000);  // 300+500+600
  EXPECT_EQ(fourth.after.ledger(Ledger::kInpatient).in_scope_cents, 400000);  // 4 × 1000
  EXPECT_EQ(fourth.after.ledger(Ledger::kInpatient).fund_paid_cents, 188000);  // 595+375+260+650
  EXPECT_EQ(fourth.after.ledger(Ledger::kInpatient).visits, 4);
  // Burden 405 + 625 + 740 + 350 = 2120.00.
  EXPECT_EQ(fourth.after.critical_illness_burden_cents, 212000);
}

TEST(Quzhou2025, InpatientBaseLevelPlusFiveInsideTheCityOnlyAndNoZeroMarkupBonus) {
  Enrollment person = Person(kQuzhou, 2025);
  // Level-1 base-level hospital in the city: 85% + 5 = 90%;
  // (1000 − 300) × 90% = 630.00.
  Institution base = Hospital(kKecheng, 1);
  base.base_level = true;
  Settlement s;
  ASSERT_TRUE(SettleWith(person, base, {}, BedStay("2025-06-01", "2025-06-08", "20"), &s).ok());
  ExpectSplit(s, {.deductible = 30000, .base_fund = 63000, .patient = 37000});
  EXPECT_EQ(s.base_fund_ratio_bp, 9000);
  // A base-level township centre in Jiangshan (also inside the city): same.
  Institution township = Community(kJiangshan);
  township.base_level = true;
  ASSERT_TRUE(SettleWith(person, township, {}, BedStay("2025-06-01", "2025-06-08", "20"), &s).ok());
  ExpectSplit(s, {.deductible = 30000, .base_fund = 63000});
  EXPECT_EQ(s.base_fund_ratio_bp, 9000);
  // Out of area (Hangzhou, with a filing), the in-city bonus does not
  // apply: (1000 − 300) × 85% = 595.00.
  Enrollment filed = person;
  filed.out_of_area_filings.push_back(HangzhouFiling());
  Institution hangzhou = Hospital(kHangzhouXihu, 1);
  hangzhou.base_level = true;
  ASSERT_TRUE(SettleWith(filed, hangzhou, {}, BedStay("2025-06-01", "2025-06-08", "20"), &s).ok());
  ExpectSplit(s, {.deductible = 30000, .base_fund = 59500});
  EXPECT_EQ(s.base_fund_ratio_bp, 8500);
  // The 2024 zero-mark-up bonus is gone: level 2 zero mark-up stays 75%;
  // (1000 − 500) × 75% = 375.00.
  Institution zero_markup = Hospital(kKecheng, 2);
  zero_markup.zero_markup = true;
  ASSERT_TRUE(SettleWith(person, zero_markup, {}, BedStay("2025-06-01", "2025-06-08", "20"), &s).ok());
  ExpectSplit(s, {.deductible = 50000, .base_fund = 37500});
  EXPECT_EQ(s.base_fund_ratio_bp, 7500);
  // Level 3 plain: (1000 − 700) × 65% = 195.00.
  ASSERT_TRUE(SettleWith(person, Hospital(kKecheng, 3), {},
                         BedStay("2025-06-01", "2025-06-08", "20"), &s).ok());
  ExpectSplit(s, {.deductible = 70000, .base_fund = 19500, .patient = 80500});
}

TEST(Quzhou2025, StayAcrossNewYearSettlesOnTheDischargeYear) {
  // Admitted 2024-12-28, discharged 2025-01-05: the 2025 policy and year.
  // Level 2: deductible 500 (2024 would be 800); (1000 − 500) × 75% = 375.00.
  Settlement s;
  ASSERT_TRUE(SettleWith(Person(kQuzhou, 2025), Hospital(kKecheng, 2), {},
                         BedStay("2024-12-28", "2025-01-05", "20"), &s).ok());
  EXPECT_EQ(s.policy_id, "quzhou-2025");
  ExpectSplit(s, {.deductible = 50000, .base_fund = 37500});
  // A 2024 enrollment does not cover a stay settled in 2025.
  absl::Status refused = SettleWith(Person(kQuzhou, 2024), Hospital(kKecheng, 2), {},
                                    BedStay("2024-12-28", "2025-01-05", "20"), &s);
  EXPECT_EQ(ReasonOf(refused), "NOT_ENROLLED_FOR_YEAR");
}

TEST(Quzhou2025, InpatientAndSpecialOutpatientShareTheFundCap150000) {
  Accumulators ytd = CeilingReached();
  ytd.ledger(Ledger::kInpatient).fund_paid_cents = 14990000;  // 149,900.00: 100.00 left
  ytd.critical_illness_burden_cents = 2000000;               // 20,000.00, above 15,000
  Enrollment person = Person(kQuzhou, 2025);
  person.special_diseases = {"UREMIA"};
  // Special outpatient 1200.00 at level 3; deductible ceiling reached → 0;
  // 1200 × 65% = 780.00, capped at 150,000 − 149,900 = 100.00.
  // Burden 1200 − 100 = 1100.00, all above 15,000: × 60% = 660.00.
  Settlement s;
  ASSERT_TRUE(SettleWith(person, Hospital(kKecheng, 3), ytd, Dialysis("2025-09-01"), &s).ok());
  ExpectSplit(s, {.total = 120000, .in_scope = 120000, .deductible = 0, .base_fund = 10000,
                  .critical_illness = 66000,
                  .patient = 44000});  // 1200 − 100 − 660
  EXPECT_EQ(s.after.ledger(Ledger::kSpecialOutpatient).fund_paid_cents, 10000);
  EXPECT_EQ(s.after.critical_illness_burden_cents, 2110000);  // 20,000 + 1,100
  // The cap is used up: an admission now gets nothing from the fund;
  // burden 1000.00 × 60% = 600.00.
  Settlement next;
  ASSERT_TRUE(SettleWith(person, Hospital(kKecheng, 3), s.after,
                         BedStay("2025-09-10", "2025-09-15", "20"), &next).ok());
  ExpectSplit(next, {.deductible = 0, .base_fund = 0, .critical_illness = 60000,
                     .patient = 40000});
}

TEST(Quzhou2025, MaternityAsIn2024DeliveryAsInpatientPrenatalAsGeneralOutpatient) {
  Enrollment mother = Person(kQuzhou, 2025);
  // Natural delivery FA0006 1 × 1000.00 (A) at level 2, settled as an
  // inpatient stay: deductible 500; (1000 − 500) × 75% = 375.00.
  Settlement delivery;
  ASSERT_TRUE(SettleWith(mother, Hospital(kKecheng, 2), {},
                         Stay(VisitType::kDeliveryNatural, "2025-05-01", "2025-05-04",
                              {Line(1, "FA0006", "1", 100000)}),
                         &delivery).ok());
  ExpectSplit(delivery, {.deductible = 50000, .base_fund = 37500, .patient = 62500});
  EXPECT_EQ(delivery.after.ledger(Ledger::kInpatient).deductible_paid_cents, 50000);
  EXPECT_EQ(delivery.after.critical_illness_burden_cents, 62500);  // 1000 − 375
  // Prenatal check FA0005 1 × 150.00 (A) at a community centre, settled as
  // general outpatient: deductible 100; (150 − 100) × 60% = 30.00.
  Settlement prenatal;
  ASSERT_TRUE(SettleWith(mother, Community(kKecheng), delivery.after,
                         Outpatient(VisitType::kPrenatalCheck, "2025-03-01",
                                    {Line(1, "FA0005", "1", 15000)}),
                         &prenatal).ok());
  ExpectSplit(prenatal, {.deductible = 10000, .base_fund = 3000, .patient = 12000});
  EXPECT_EQ(prenatal.after.ledger(Ledger::kGeneralOutpatient).deductible_paid_cents, 10000);
}

// -------------------------------------------------------- special outpatient

TEST(Quzhou2025, SpecialOutpatientOneAnnualDeductible800CountingTowardTheCeiling1400) {
  Enrollment person = Person(kQuzhou, 2025);
  person.special_diseases = {"UREMIA"};
  // Visit 1, level 3: 800 once; (1200 − 800) × 65% = 260.00.
  Settlement first;
  ASSERT_TRUE(SettleWith(person, Hospital(kKecheng, 3), {}, Dialysis("2025-03-01"), &first).ok());
  ExpectSplit(first, {.in_scope = 120000, .deductible = 80000, .base_fund = 26000,
                      .patient = 94000});
  // Admission, level 2: 500, ceiling leaves 1400 − 800 = 600 → 500;
  // (1000 − 500) × 75% = 375.00.
  Settlement second;
  ASSERT_TRUE(SettleWith(person, Hospital(kKecheng, 2), first.after,
                         BedStay("2025-04-01", "2025-04-05", "20"), &second).ok());
  ExpectSplit(second, {.deductible = 50000, .base_fund = 37500});
  // Admission, level 3: 700, ceiling leaves 1400 − 1300 = 100 → 100;
  // (1000 − 100) × 65% = 585.00.
  Settlement third;
  ASSERT_TRUE(SettleWith(person, Hospital(kKecheng, 3), second.after,
                         BedStay("2025-05-01", "2025-05-05", "20"), &third).ok());
  ExpectSplit(third, {.deductible = 10000, .base_fund = 58500});
  // Visit 2: the 800 was paid this year → 0; 1200 × 65% = 780.00.
  Settlement fourth;
  ASSERT_TRUE(SettleWith(person, Hospital(kKecheng, 3), third.after, Dialysis("2025-06-01"),
                         &fourth).ok());
  ExpectSplit(fourth, {.deductible = 0, .base_fund = 78000, .patient = 42000});
  EXPECT_EQ(fourth.after.ledger(Ledger::kSpecialOutpatient).deductible_paid_cents, 80000);
  EXPECT_EQ(fourth.after.ledger(Ledger::kInpatient).deductible_paid_cents, 60000);  // 500 + 100
}

// -------------------------------------------------------- general outpatient

TEST(Quzhou2025, GeneralOutpatient60_50_40AfterAnnualDeductible100WithoutBonuses) {
  Enrollment person = Person(kQuzhou, 2025);
  // Visit 1 at a community centre: deductible min(85, 100) = 85.00; nothing
  // from the fund.
  Settlement first;
  ASSERT_TRUE(SettleWith(person, Community(kKecheng), {}, SmallOutpatientBill(), &first).ok());
  ExpectSplit(first, {.total = 11000, .out_of_scope = 2000, .over_limit = 0,
                      .pre_self_pay = 500, .in_scope = 8500, .deductible = 8500,
                      .base_fund = 0, .critical_illness = 0, .patient = 11000});
  // Visit 2: 100 − 85 = 15.00 left; (85 − 15) × 60% = 42.00.
  Settlement second;
  ASSERT_TRUE(SettleWith(person, Community(kKecheng), first.after, SmallOutpatientBill(),
                         &second).ok());
  ExpectSplit(second, {.deductible = 1500, .base_fund = 4200, .patient = 6800});  // 110 − 42
  EXPECT_EQ(second.base_fund_ratio_bp, 6000);
  // General outpatient is not in the critical-illness base.
  EXPECT_EQ(second.after.critical_illness_burden_cents, 0);

  Accumulators paid;
  paid.ledger(Ledger::kGeneralOutpatient).deductible_paid_cents = 10000;
  // Level 2, zero mark-up, paediatrics: the 2024 bonuses are gone → 50%;
  // 85 × 50% = 42.50.
  Institution level2 = Hospital(kKecheng, 2);
  level2.zero_markup = true;
  Claim pediatrics = SmallOutpatientBill();
  pediatrics.visit.specialty = Specialty::kPediatrics;
  Settlement s;
  ASSERT_TRUE(SettleWith(person, level2, paid, pediatrics, &s).ok());
  ExpectSplit(s, {.deductible = 0, .base_fund = 4250, .patient = 6750});
  EXPECT_EQ(s.base_fund_ratio_bp, 5000);
  // Level 3, psychiatry: 40%; 85 × 40% = 34.00.
  Claim psychiatry = SmallOutpatientBill();
  psychiatry.visit.specialty = Specialty::kPsychiatry;
  ASSERT_TRUE(SettleWith(person, Hospital(kKecheng, 3), paid, psychiatry, &s).ok());
  ExpectSplit(s, {.deductible = 0, .base_fund = 3400});
  EXPECT_EQ(s.base_fund_ratio_bp, 4000);
  // Level 1 base-level, TCM: no outpatient bonus → 60%; 85 × 60% = 51.00.
  Institution base = Hospital(kKecheng, 1);
  base.base_level = true;
  Claim tcm = SmallOutpatientBill();
  tcm.visit.specialty = Specialty::kTcm;
  ASSERT_TRUE(SettleWith(person, base, paid, tcm, &s).ok());
  ExpectSplit(s, {.deductible = 0, .base_fund = 5100});
  EXPECT_EQ(s.base_fund_ratio_bp, 6000);
}

TEST(Quzhou2025, GeneralOutpatientCapOf4000CrossedMidBill) {
  Enrollment person = Person(kQuzhou, 2025);
  // FA0004 blood count 1 × 200.00 (A): 200.00 in scope.
  Claim bill = Outpatient(VisitType::kGeneralOutpatient, "2025-10-01",
                          {Line(1, "FA0004", "1", 20000)});
  // 1800.00 already paid (the 2024 cap): the 2025 cap leaves 2200.00;
  // 200 × 60% = 120.00 in full.
  Accumulators ytd;
  ytd.ledger(Ledger::kGeneralOutpatient).deductible_paid_cents = 10000;
  ytd.ledger(Ledger::kGeneralOutpatient).fund_paid_cents = 180000;
  Settlement s;
  ASSERT_TRUE(SettleWith(person, Community(kKecheng), ytd, bill, &s).ok());
  ExpectSplit(s, {.deductible = 0, .base_fund = 12000, .patient = 8000});
  // 3950.00 paid: 200 × 60% = 120.00, capped at 4000 − 3950 = 50.00.
  ytd.ledger(Ledger::kGeneralOutpatient).fund_paid_cents = 395000;
  ASSERT_TRUE(SettleWith(person, Community(kKecheng), ytd, bill, &s).ok());
  ExpectSplit(s, {.deductible = 0, .base_fund = 5000, .patient = 15000});
  EXPECT_EQ(s.after.ledger(Ledger::kGeneralOutpatient).fund_paid_cents, 400000);
  // Cap reached: nothing more.
  Settlement after_cap;
  ASSERT_TRUE(SettleWith(person, Community(kKecheng), s.after, bill, &after_cap).ok());
  ExpectSplit(after_cap, {.base_fund = 0, .patient = 20000});
}

// -------------------------------------------------------- chronic outpatient

TEST(Quzhou2025, ChronicOutpatientAsIn2024NoDeductibleSixtyOrSeventyPercent) {
  Enrollment person = Person(kQuzhou, 2025);
  person.chronic_conditions = {"TB", "HYPERTENSION"};
  // XA0002 20 × 10.00 = 200.00 in scope (A).
  Claim tb = Outpatient(VisitType::kChronicOutpatient, "2025-03-03",
                        {Line(1, "XA0002", "20", 1000)});
  tb.visit.condition = "TB";
  Settlement s;
  ASSERT_TRUE(SettleWith(person, Community(kKecheng), {}, tb, &s).ok());
  // No deductible; TB 70%: 200 × 70% = 140.00.
  ExpectSplit(s, {.in_scope = 20000, .deductible = 0, .base_fund = 14000, .patient = 6000});
  // Chronic burden counts toward critical illness: 200 − 140 = 60.00.
  EXPECT_EQ(s.after.critical_illness_burden_cents, 6000);
  Claim htn = tb;
  htn.visit.condition = "HYPERTENSION";
  // Other conditions 60%: 200 × 60% = 120.00.
  ASSERT_TRUE(SettleWith(person, Hospital(kKecheng, 3), {}, htn, &s).ok());
  ExpectSplit(s, {.deductible = 0, .base_fund = 12000, .patient = 8000});
}

TEST(Quzhou2025, ChronicSpillsOverToGeneralOutpatientWhenItsCap2000RunsOut) {
  Enrollment person = Person(kQuzhou, 2025);
  person.chronic_conditions = {"HYPERTENSION"};
  Accumulators ytd;
  ytd.ledger(Ledger::kChronicOutpatient).fund_paid_cents = 195000;  // R = 50.00 left of 2000
  Claim c = Outpatient(VisitType::kChronicOutpatient, "2025-09-02",
                       {Line(1, "XA0002", "20", 1000)});  // 200.00 in scope
  c.visit.condition = "HYPERTENSION";
  Settlement s;
  ASSERT_TRUE(SettleWith(person, Community(kKecheng), ytd, c, &s).ok());
  // 60%: round(200 × 60%) = 120 > R = 50 → chronic pays 50.00 and covers
  // E = ceil(50.00 × 10000 / 6000) = ceil(83.333…) = 83.34; the other
  // 200 − 83.34 = 116.66 settles as general outpatient: deductible 100.00,
  // (16.66) × 60% = 9.996 → 10.00. Fund 50 + 10 = 60.00.
  ExpectSplit(s, {.in_scope = 20000, .deductible = 10000, .base_fund = 6000,
                  .patient = 14000});  // 200 − 60
  EXPECT_EQ(s.after.ledger(Ledger::kChronicOutpatient).fund_paid_cents, 200000);
  EXPECT_EQ(s.after.ledger(Ledger::kChronicOutpatient).in_scope_cents, 8334);
  EXPECT_EQ(s.after.ledger(Ledger::kGeneralOutpatient).in_scope_cents, 11666);
  EXPECT_EQ(s.after.ledger(Ledger::kGeneralOutpatient).deductible_paid_cents, 10000);
  EXPECT_EQ(s.after.ledger(Ledger::kGeneralOutpatient).fund_paid_cents, 1000);
  // Critical-illness burden: in scope less both fund payments = 140.00.
  EXPECT_EQ(s.delta.critical_illness_burden_cents, 14000);
}

// ---------------------------------------------------------- critical illness

TEST(Quzhou2025, CriticalIllnessAbove15000At60PercentCrossedMidBill) {
  Accumulators ytd = CeilingReached();
  ytd.critical_illness_burden_cents = 1450000;  // 14,500.00 so far
  // 2000.00 in scope at level 3 (40 bed-days): fund 65% = 1300.00; burden
  // 700.00 occupies [14,500, 15,200): 200.00 above 15,000 × 60% = 120.00.
  Settlement s;
  ASSERT_TRUE(SettleWith(Person(kQuzhou, 2025), Hospital(kKecheng, 3), ytd,
                         BedStay("2025-08-01", "2025-08-10", "40"), &s).ok());
  ExpectSplit(s, {.in_scope = 200000, .deductible = 0, .base_fund = 130000,
                  .critical_illness = 12000,
                  .patient = 58000});  // 2000 − 1300 − 120
  EXPECT_EQ(s.after.critical_illness_burden_cents, 1520000);
  EXPECT_EQ(s.after.critical_illness_paid_cents, 12000);
  // A chronic visit then: TB 200.00 × 70% = 140.00; burden 60.00 all above
  // 15,000 × 60% = 36.00.
  Enrollment tb_patient = Person(kQuzhou, 2025);
  tb_patient.chronic_conditions = {"TB"};
  Claim tb = Outpatient(VisitType::kChronicOutpatient, "2025-08-20",
                        {Line(1, "XA0004", "20", 1000)});
  tb.visit.condition = "TB";
  Settlement chronic;
  ASSERT_TRUE(SettleWith(tb_patient, Community(kKecheng), s.after, tb, &chronic).ok());
  ExpectSplit(chronic, {.base_fund = 14000, .critical_illness = 3600, .patient = 2400});
  // A general-outpatient visit is not in the base: nothing, burden unchanged.
  Accumulators go = chronic.after;
  go.ledger(Ledger::kGeneralOutpatient).deductible_paid_cents = 10000;
  Settlement general;
  ASSERT_TRUE(SettleWith(tb_patient, Community(kKecheng), go, SmallOutpatientBill("2025-08-25"),
                         &general).ok());
  ExpectSplit(general, {.base_fund = 5100, .critical_illness = 0});  // 85 × 60%
  EXPECT_EQ(general.after.critical_illness_burden_cents, 1526000);    // 15,200 + 60
}

TEST(Quzhou2025, CriticalIllnessCapOf400000ReachedMidBill) {
  Accumulators ytd = CeilingReached();
  ytd.critical_illness_burden_cents = 10000000;  // 100,000.00
  ytd.critical_illness_paid_cents = 39990000;    // 399,900.00: 100.00 left
  // Burden 700.00 × 60% = 420.00, capped at 400,000 − 399,900 = 100.00.
  Settlement s;
  ASSERT_TRUE(SettleWith(Person(kQuzhou, 2025), Hospital(kKecheng, 3), ytd,
                         BedStay("2025-08-01", "2025-08-10", "40"), &s).ok());
  ExpectSplit(s, {.base_fund = 130000, .critical_illness = 10000,
                  .patient = 60000});  // 2000 − 1300 − 100
  EXPECT_EQ(s.after.critical_illness_paid_cents, 40000000);
  // The cap is reached: the next stay gets nothing from critical illness.
  Settlement next;
  ASSERT_TRUE(SettleWith(Person(kQuzhou, 2025), Hospital(kKecheng, 3), s.after,
                         BedStay("2025-09-01", "2025-09-10", "40"), &next).ok());
  ExpectSplit(next, {.base_fund = 130000, .critical_illness = 0, .patient = 70000});
}

TEST(Quzhou2025, CriticalIllnessForDibaoTekunPovertyRelapseAt70PercentUncapped) {
  for (Assistance a : {Assistance::kDibao, Assistance::kTekun, Assistance::kPovertyRelapse}) {
    Enrollment person = Person(kQuzhou, 2025);
    person.assistance = a;
    Accumulators ytd = CeilingReached();
    ytd.critical_illness_burden_cents = 1450000;  // 14,500.00
    ytd.critical_illness_paid_cents = 50000000;   // 500,000.00, above the ordinary cap
    Settlement s;
    ASSERT_TRUE(SettleWith(person, Hospital(kKecheng, 3), ytd,
                           BedStay("2025-08-01", "2025-08-10", "40"), &s).ok())
        << Name(a);
    // Burden 700.00 on [14,500, 15,200): 200.00 above 15,000 × 70% = 140.00.
    SCOPED_TRACE(Name(a));
    ExpectSplit(s, {.base_fund = 130000, .critical_illness = 14000,
                    .patient = 56000});  // 2000 − 1300 − 140
  }
}

TEST(Quzhou2025, CriticalIllnessDibaoEdgeIsOrdinaryIn2025) {
  Enrollment person = Person(kQuzhou, 2025);
  person.assistance = Assistance::kDibaoEdge;
  Accumulators ytd = CeilingReached();
  ytd.critical_illness_burden_cents = 1450000;
  // Ordinary terms: 200.00 above 15,000 × 60% = 120.00.
  Settlement s;
  ASSERT_TRUE(SettleWith(person, Hospital(kKecheng, 3), ytd,
                         BedStay("2025-08-01", "2025-08-10", "40"), &s).ok());
  ExpectSplit(s, {.base_fund = 130000, .critical_illness = 12000});
  // And the ordinary cap: 399,950.00 paid → 120.00 capped at 50.00.
  ytd.critical_illness_paid_cents = 39995000;
  ASSERT_TRUE(SettleWith(person, Hospital(kKecheng, 3), ytd,
                         BedStay("2025-08-01", "2025-08-10", "40"), &s).ok());
  ExpectSplit(s, {.base_fund = 130000, .critical_illness = 5000});
}

// ------------------------------------------------------------------ coverage

TEST(Quzhou2025, MidYearPaymentCoveredFromTheSameDayThreeMonthsLater) {
  Enrollment late = Person(kQuzhou, 2025);
  late.concentrated = false;
  late.paid_date = D("2025-04-15");  // covered from 2025-07-15
  Settlement s;
  absl::Status refused =
      SettleWith(late, Community(kKecheng), {}, SmallOutpatientBill("2025-07-14"), &s);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReasonOf(refused), "WAITING_PERIOD");
  EXPECT_TRUE(SettleWith(late, Community(kKecheng), {}, SmallOutpatientBill("2025-07-15"), &s).ok());
  absl::StatusOr<CoverageDecision> decision = ShippedEngine().CheckCoverage(
      late, Community(kKecheng), SmallOutpatientBill("2025-07-15").visit, CredentialKind::kIdCard,
      std::nullopt);
  ASSERT_TRUE(decision.ok());
  EXPECT_EQ(decision->covered_from, D("2025-07-15"));
  // A stay is checked on its discharge date: admitted in the waiting
  // period, discharged after it → settled.
  EXPECT_TRUE(SettleWith(late, Hospital(kKecheng, 2), {},
                         BedStay("2025-07-10", "2025-07-20", "20"), &s).ok());
  // End-of-month clamp: paid 2025-03-31 → 2025-06-30 (June has 30 days).
  late.paid_date = D("2025-03-31");
  EXPECT_EQ(ReasonOf(SettleWith(late, Community(kKecheng), {}, SmallOutpatientBill("2025-06-29"), &s)),
            "WAITING_PERIOD");
  EXPECT_TRUE(SettleWith(late, Community(kKecheng), {}, SmallOutpatientBill("2025-06-30"), &s).ok());
  // Paid 2025-11-30 → 2026-02-28: nothing in 2025 is covered.
  late.paid_date = D("2025-11-30");
  EXPECT_EQ(ReasonOf(SettleWith(late, Community(kKecheng), {}, SmallOutpatientBill("2025-12-31"), &s)),
            "WAITING_PERIOD");
}

TEST(Quzhou2025, NewbornEnrolledWithin90DaysCoveredFromBirth) {
  Enrollment baby = Person(kQuzhou, 2025);
  baby.birth_date = D("2025-03-10");
  baby.category = Category::kInfant;
  baby.newborn = true;
  baby.concentrated = false;
  baby.paid_date = D("2025-05-20");  // 71 days after birth: 21 + 30 + 20
  Settlement s;
  EXPECT_TRUE(SettleWith(baby, Community(kKecheng), {}, SmallOutpatientBill("2025-03-10"), &s).ok());
  // Enrolled 113 days after birth (21 + 30 + 31 + 30 + 1, paid 2025-07-01):
  // the ordinary mid-year rule, covered from 2025-10-01.
  baby.paid_date = D("2025-07-01");
  EXPECT_EQ(ReasonOf(SettleWith(baby, Community(kKecheng), {}, SmallOutpatientBill("2025-03-12"), &s)),
            "WAITING_PERIOD");
  EXPECT_EQ(ReasonOf(SettleWith(baby, Community(kKecheng), {}, SmallOutpatientBill("2025-09-30"), &s)),
            "WAITING_PERIOD");
  EXPECT_TRUE(SettleWith(baby, Community(kKecheng), {}, SmallOutpatientBill("2025-10-01"), &s).ok());
}

// --------------------------------------------------------------- out of area

TEST(Quzhou2025, OutOfAreaWithFilingSettledUnderQuzhouRules) {
  Enrollment filed = Person(kQuzhou, 2025);
  filed.out_of_area_filings.push_back(HangzhouFiling());
  // Hangzhou level 3: Quzhou's 700 / 65%; (1000 − 700) × 65% = 195.00.
  Settlement s;
  ASSERT_TRUE(SettleWith(filed, Hospital(kHangzhouXihu, 3), {},
                         BedStay("2025-06-01", "2025-06-10", "20"), &s).ok());
  EXPECT_EQ(s.policy_id, "quzhou-2025");
  ExpectSplit(s, {.deductible = 70000, .base_fund = 19500, .patient = 80500});
  EXPECT_FALSE(s.filing_to_follow);
  // Inside the city (Jiangshan) no filing is needed: the same figures.
  ASSERT_TRUE(SettleWith(Person(kQuzhou, 2025), Hospital(kJiangshan, 3), {},
                         BedStay("2025-06-01", "2025-06-10", "20"), &s).ok());
  ExpectSplit(s, {.deductible = 70000, .base_fund = 19500, .patient = 80500});
  EXPECT_FALSE(s.filing_to_follow);
}

TEST(Quzhou2025, OutOfAreaWithoutFilingRefused) {
  Settlement s;
  absl::Status refused = SettleWith(Person(kQuzhou, 2025), Hospital(kHangzhouXihu, 3), {},
                                    BedStay("2025-06-01", "2025-06-10", "20"), &s);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReasonOf(refused), "OUT_OF_AREA_NO_FILING");
  // A filing for another region (Shanghai) does not cover Hangzhou.
  Enrollment shanghai_filed = Person(kQuzhou, 2025);
  shanghai_filed.out_of_area_filings.push_back({310000, D("2025-01-01"), D("2025-12-31")});
  EXPECT_EQ(ReasonOf(SettleWith(shanghai_filed, Hospital(kHangzhouXihu, 3), {},
                                BedStay("2025-06-01", "2025-06-10", "20"), &s)),
            "OUT_OF_AREA_NO_FILING");
}

TEST(Quzhou2025, OutOfAreaEmergencySettledWithFilingToFollow) {
  Claim emergency = BedStay("2025-06-01", "2025-06-10", "20");
  emergency.visit.emergency = true;
  Settlement s;
  ASSERT_TRUE(SettleWith(Person(kQuzhou, 2025), Hospital(kHangzhouXihu, 3), {}, emergency, &s).ok());
  // Quzhou rules: (1000 − 700) × 65% = 195.00.
  ExpectSplit(s, {.deductible = 70000, .base_fund = 19500, .patient = 80500});
  EXPECT_TRUE(s.filing_to_follow);
  // With a filing, nothing is to follow.
  Enrollment filed = Person(kQuzhou, 2025);
  filed.out_of_area_filings.push_back(HangzhouFiling());
  ASSERT_TRUE(SettleWith(filed, Hospital(kHangzhouXihu, 3), {}, emergency, &s).ok());
  EXPECT_FALSE(s.filing_to_follow);
}

TEST(Quzhou2025, OutOfAreaFilingMustCoverTheSettlementDate) {
  Enrollment filed = Person(kQuzhou, 2025);
  filed.out_of_area_filings.push_back(HangzhouFiling("2025-01-01", "2025-03-31"));
  Settlement s;
  EXPECT_EQ(ReasonOf(SettleWith(filed, Hospital(kHangzhouXihu, 3), {},
                                BedStay("2025-06-01", "2025-06-10", "20"), &s)),
            "OUT_OF_AREA_NO_FILING");
  // The settlement date of a stay is its discharge: a filing ending on
  // 2025-06-05 covers the admission but not the discharge.
  filed.out_of_area_filings = {HangzhouFiling("2025-05-01", "2025-06-05")};
  EXPECT_EQ(ReasonOf(SettleWith(filed, Hospital(kHangzhouXihu, 3), {},
                                BedStay("2025-06-01", "2025-06-10", "20"), &s)),
            "OUT_OF_AREA_NO_FILING");
  // A filing that starts later does not cover either.
  filed.out_of_area_filings = {HangzhouFiling("2025-07-01", "2025-12-31")};
  EXPECT_EQ(ReasonOf(SettleWith(filed, Hospital(kHangzhouXihu, 3), {},
                                BedStay("2025-06-01", "2025-06-10", "20"), &s)),
            "OUT_OF_AREA_NO_FILING");
  // Covering the discharge date: settled.
  filed.out_of_area_filings = {HangzhouFiling("2025-06-10", "2025-06-30")};
  EXPECT_TRUE(SettleWith(filed, Hospital(kHangzhouXihu, 3), {},
                         BedStay("2025-06-01", "2025-06-10", "20"), &s).ok());
}

// ------------------------------------------------------------------ refusals

TEST(Quzhou2025, RevokedVoucherRefused) {
  Enrollment person = Person(kQuzhou, 2025);
  person.voucher_revoked_at_unix = 1750000000;  // reported lost
  Claim c = SmallOutpatientBill();
  c.credential = CredentialKind::kEcToken;
  Institution community = Community(kKecheng);
  Accumulators ytd;
  Settlement s;
  // A code issued before the revocation is refused.
  SettleInput before{.enrollment = &person, .institution = &community, .year_to_date = &ytd,
                     .claim = &c, .voucher_issued_at_unix = 1749990000};
  absl::Status refused = ShippedEngine().Settle(before, &s);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReasonOf(refused), "VOUCHER_REVOKED");
  // A code issued after it (a new voucher) settles.
  SettleInput after = before;
  after.voucher_issued_at_unix = 1750000100;
  EXPECT_TRUE(ShippedEngine().Settle(after, &s).ok());
  // An ID card is not the revoked voucher.
  c.credential = CredentialKind::kIdCard;
  EXPECT_TRUE(ShippedEngine().Settle(before, &s).ok());
}

TEST(Quzhou2025, SuspendedEnrollmentRefused) {
  Enrollment person = Person(kQuzhou, 2025);
  person.status = EnrollmentStatus::kSuspended;
  Settlement s;
  absl::Status refused = SettleWith(person, Community(kKecheng), {}, SmallOutpatientBill(), &s);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReasonOf(refused), "ENROLLMENT_SUSPENDED");
}

TEST(Quzhou2025, EnrollmentForAnotherYearRefusedNotEnrolledForYear) {
  Settlement s;
  absl::Status refused =
      SettleWith(Person(kQuzhou, 2024), Community(kKecheng), {}, SmallOutpatientBill(), &s);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReasonOf(refused), "NOT_ENROLLED_FOR_YEAR");
}

TEST(Quzhou2025, RegionOrDateWithoutPolicyRefusedNoPolicy) {
  Settlement s;
  // Insured in Beijing (110105): no policy.
  absl::Status refused =
      SettleWith(Person(110105, 2025), Hospital(110105, 3), {}, SmallOutpatientBill(), &s);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReasonOf(refused), "NO_POLICY");
  // Quzhou in 2026: no policy yet.
  EXPECT_EQ(ReasonOf(SettleWith(Person(kQuzhou, 2026), Community(kKecheng), {},
                                SmallOutpatientBill("2026-01-15"), &s)),
            "NO_POLICY");
}

TEST(Quzhou2025, ChronicVisitForUncertifiedConditionRefused) {
  Enrollment person = Person(kQuzhou, 2025);
  person.chronic_conditions = {"TB"};
  Claim c = Outpatient(VisitType::kChronicOutpatient, "2025-03-03",
                       {Line(1, "XA0002", "20", 1000)});
  c.visit.condition = "DIABETES";
  Settlement s;
  absl::Status refused = SettleWith(person, Community(kKecheng), {}, c, &s);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReasonOf(refused), "CHRONIC_CONDITION_NOT_CERTIFIED");
}

TEST(Quzhou2025, SpecialOutpatientForUncertifiedDiseaseRefused) {
  Enrollment person = Person(kQuzhou, 2025);  // no special disease
  Settlement s;
  absl::Status refused =
      SettleWith(person, Hospital(kKecheng, 3), {}, Dialysis("2025-03-01"), &s);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReasonOf(refused), "SPECIAL_DISEASE_NOT_CERTIFIED");
}

// ------------------------------------------------------------------ reversal

TEST(Quzhou2025, ReversalInTheMiddleOfTheYearRestoresEveryAccumulator) {
  Enrollment person = Person(kQuzhou, 2025);
  person.chronic_conditions = {"TB"};
  // a: level 3, 3000.00 (60 bed-days): deductible 700; 2300 × 65% =
  // 1495.00; burden 1505.00.
  Settlement a, b, c;
  ASSERT_TRUE(SettleWith(person, Hospital(kKecheng, 3), {},
                         BedStay("2025-02-01", "2025-02-20", "60"), &a).ok());
  ExpectSplit(a, {.deductible = 70000, .base_fund = 149500, .patient = 150500});
  // b: level 2, 1000.00: deductible 500 (1200 ≤ 1400); 500 × 75% = 375.00.
  ASSERT_TRUE(SettleWith(person, Hospital(kKecheng, 2), a.after,
                         BedStay("2025-03-01", "2025-03-05", "20"), &b).ok());
  ExpectSplit(b, {.deductible = 50000, .base_fund = 37500});
  // Reverse b: the year is as after a.
  absl::StatusOr<Accumulators> undone = Engine::Reverse(b.after, b.delta);
  ASSERT_TRUE(undone.ok());
  EXPECT_TRUE(undone->SameTotals(a.after));
  EXPECT_EQ(undone->ledger(Ledger::kInpatient).deductible_paid_cents, 70000);
  EXPECT_EQ(undone->ledger(Ledger::kInpatient).in_scope_cents, 300000);
  EXPECT_EQ(undone->ledger(Ledger::kInpatient).fund_paid_cents, 149500);
  EXPECT_EQ(undone->ledger(Ledger::kInpatient).visits, 1);
  EXPECT_EQ(undone->critical_illness_burden_cents, 150500);
  // c: level 3, 1000.00 after the reversal: 700 per admission, the ceiling
  // leaves 1400 − 700 = 700 → 700 (had b stood, only 200 would be left);
  // 300 × 65% = 195.00.
  ASSERT_TRUE(SettleWith(person, Hospital(kKecheng, 3), *undone,
                         BedStay("2025-04-01", "2025-04-05", "20"), &c).ok());
  ExpectSplit(c, {.deductible = 70000, .base_fund = 19500});
  EXPECT_EQ(c.after.ledger(Ledger::kInpatient).deductible_paid_cents, 140000);
  EXPECT_EQ(c.after.ledger(Ledger::kInpatient).visits, 2);
}

}  // namespace
}  // namespace medsettle::testing
