// Golden cases for Dianjiang (垫江, Chongqing) 2024
// (seeds/dianjiang-2024-resident-policy.txt; POLICY-NOTES "Dianjiang
// (垫江, Chongqing) 2024", "Rules that hold for every region" and
// "Computation conventions"). One TEST per rule; each expected figure has
// its arithmetic beside it, in yuan, worked out by hand from POLICY-NOTES.
// Demo catalog: engine/catalog/demo-catalog.csv (FA0004 is a class-A item
// with no price cap, used for bills whose whole amount is in scope).
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "engine/status.h"
#include "tests/support/engine_fixture.h"
#include "tests/support/golden.h"

namespace medsettle::testing {
namespace {

using namespace medsettle::engine;

constexpr RegionCode kDianjiang = 500231;  // insured here; also a pooling-area institution
constexpr RegionCode kYuzhong = 500103;    // 渝中区: elsewhere in Chongqing, same pooling area
constexpr RegionCode kChengdu = 510104;    // Sichuan: outside the pooling area

// An ordinary adult of Dianjiang, paid in the concentrated period, `tier`.
Enrollment Insured(int tier) { return Person(kDianjiang, 2024, tier); }

// A person born on `birth` (a minor on the dates the test uses).
Enrollment BornOn(int tier, const char* birth, Category category = Category::kMinor) {
  Enrollment e = Insured(tier);
  e.birth_date = D(birth);
  e.category = category;
  return e;
}

Institution TcmHospital(RegionCode region, int level) {
  Institution h = Hospital(region, level);
  h.tcm = true;
  return h;
}

// `cents` of FA0004 (class A, no price cap): wholly in scope.
BillLine InScope(int line_no, Cents cents) { return Line(line_no, "FA0004", "1", cents); }

Claim GeneralVisit(const char* date, Cents in_scope) {
  return Outpatient(VisitType::kGeneralOutpatient, date, {InScope(1, in_scope)});
}

Claim Admission(const char* admission, const char* discharge, Cents in_scope) {
  return Stay(VisitType::kInpatient, admission, discharge, {InScope(1, in_scope)});
}

// Major-disease outpatient: FA0008 haemodialysis, `sessions` × 400.00 (A,
// price cap 400.00 per session, so all in scope).
Claim Dialysis(const char* date, const char* sessions) {
  Claim c = Outpatient(VisitType::kSpecialOutpatient, date, {Line(1, "FA0008", sessions, 40000)});
  c.visit.condition = "UREMIA";
  return c;
}

Enrollment UremiaPatient(int tier) {
  Enrollment e = Insured(tier);
  e.special_diseases = {"UREMIA"};
  return e;
}

// A general-outpatient bill: FA0001 consultation 10.00 (A), XA0001 2 × 15.00
// (A), XB0001 50.00 (B, 10% pre-self-pay), XC0002 20.00 (C).
// Total 110.00; in scope 10 + 30 + 45 = 85.00; pre-self-pay 5.00; out 20.00.
Claim SmallOutpatientBill(const char* date = "2024-06-10") {
  return Outpatient(VisitType::kGeneralOutpatient, date,
                    {Line(1, "FA0001", "1", 1000), Line(2, "XA0001", "2", 1500),
                     Line(3, "XB0001", "1", 5000), Line(4, "XC0002", "1", 2000)});
}

bool HasStep(const Settlement& s, TraceRule rule) {
  for (const TraceStep& t : s.trace) {
    if (t.rule == rule) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------
// Pooling area: Chongqing municipality, division codes 50xxxx.

TEST(Dianjiang2024, PoolingAreaIsChongqingMunicipality) {
  // Level ≤1, no deductible: 85.00 × 60% = 51.00; patient 110 − 51 = 59.00.
  for (RegionCode region : {kDianjiang, kYuzhong}) {
    Settlement s;
    ASSERT_TRUE(SettleWith(Insured(1), Community(region), {}, SmallOutpatientBill(), &s).ok())
        << region;
    ExpectSplit(s, {.total = 11000, .out_of_scope = 2000, .over_limit = 0, .pre_self_pay = 500,
                    .in_scope = 8500, .deductible = 0, .base_fund = 5100,
                    .critical_illness = 0, .patient = 5900});
  }
  // Chengdu (51xxxx) is outside Chongqing: no filing, no emergency → refused.
  Settlement s;
  absl::Status refused =
      SettleWith(Insured(1), Community(kChengdu), {}, SmallOutpatientBill(), &s);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReasonOf(refused), "OUT_OF_AREA_NO_FILING");
}

// ---------------------------------------------------------------------------
// General outpatient (普通门诊统筹).

TEST(Dianjiang2024, GeneralOutpatientLevelOneNoDeductibleSixtyPercentBothTiers) {
  for (int tier : {1, 2}) {
    for (const Institution& level1 : {Community(kDianjiang), Hospital(kDianjiang, 1)}) {
      Settlement s;
      ASSERT_TRUE(SettleWith(Insured(tier), level1, {}, SmallOutpatientBill(), &s).ok());
      // Deductible 0 at level ≤1; 85.00 × 60% = 51.00.
      ExpectSplit(s, {.in_scope = 8500, .deductible = 0, .base_fund = 5100, .patient = 5900});
      EXPECT_EQ(s.base_fund_ratio_bp, 6000);
    }
  }
  // 123.46 × 60% = 74.076 → 74.08 (one rounding, half up).
  Settlement s;
  ASSERT_TRUE(SettleWith(Insured(2), Community(kDianjiang), {},
                         GeneralVisit("2024-06-10", 12346), &s).ok());
  ExpectSplit(s, {.deductible = 0, .base_fund = 7408, .patient = 4938});  // 123.46 − 74.08
}

TEST(Dianjiang2024, GeneralOutpatientLevelTwoAnnualDeductible200WithMakeUpThenFortyPercent) {
  const Enrollment person = Insured(2);
  const Institution level1 = Community(kDianjiang);
  const Institution level2 = Hospital(kDianjiang, 2);
  // Visit 0, level 1: no deductible, 100.00 × 60% = 60.00; it pays nothing
  // toward the level-2 deductible.
  Settlement v0;
  ASSERT_TRUE(SettleWith(person, level1, {}, GeneralVisit("2024-02-01", 10000), &v0).ok());
  ExpectSplit(v0, {.deductible = 0, .base_fund = 6000, .patient = 4000});
  // Visit 1, level 2: deductible min(150, 200 − 0) = 150.00: nothing from the fund.
  Settlement v1;
  ASSERT_TRUE(SettleWith(person, level2, v0.after, GeneralVisit("2024-03-01", 15000), &v1).ok());
  ExpectSplit(v1, {.in_scope = 15000, .deductible = 15000, .base_fund = 0, .patient = 15000});
  // Visit 2, level 2: make-up min(150, 200 − 150) = 50.00; (150 − 50) × 40% = 40.00.
  Settlement v2;
  ASSERT_TRUE(SettleWith(person, level2, v1.after, GeneralVisit("2024-04-01", 15000), &v2).ok());
  ExpectSplit(v2, {.deductible = 5000, .base_fund = 4000, .patient = 11000});  // 150 − 40
  EXPECT_EQ(v2.base_fund_ratio_bp, 4000);
  // Visit 3, level 2: deductible met; 123.46 × 40% = 49.384 → 49.38.
  Settlement v3;
  ASSERT_TRUE(SettleWith(person, level2, v2.after, GeneralVisit("2024-05-01", 12346), &v3).ok());
  ExpectSplit(v3, {.deductible = 0, .base_fund = 4938, .patient = 7408});  // 123.46 − 49.38
  // Visit 4, level 1 again: 100.00 × 60% = 60.00.
  Settlement v4;
  ASSERT_TRUE(SettleWith(person, level1, v3.after, GeneralVisit("2024-06-01", 10000), &v4).ok());
  ExpectSplit(v4, {.deductible = 0, .base_fund = 6000});
  // Fund this year: 60 + 0 + 40 + 49.38 + 60 = 209.38; deductible paid 200.
  EXPECT_EQ(v4.after.ledger(Ledger::kGeneralOutpatient).fund_paid_cents, 20938);
  EXPECT_EQ(v4.after.ledger(Ledger::kGeneralOutpatient).deductible_paid_cents, 20000);
}

TEST(Dianjiang2024, GeneralOutpatientAnnualFundCap300ForTierOneAnd500ForTierTwo) {
  // Level-1 visits of 200.00 in scope: 200 × 60% = 120.00 each, until the cap.
  struct Case {
    int tier;
    std::vector<Cents> fund;
  };
  const Case cases[] = {
      // 一档 300: 120, 120 (240), min(120, 300 − 240) = 60, then 0.
      {1, {12000, 12000, 6000, 0}},
      // 二档 500: 120 × 4 = 480, then min(120, 500 − 480) = 20, then 0.
      {2, {12000, 12000, 12000, 12000, 2000, 0}},
  };
  for (const Case& c : cases) {
    Accumulators ytd;
    for (size_t i = 0; i < c.fund.size(); ++i) {
      Settlement s;
      ASSERT_TRUE(SettleWith(Insured(c.tier), Community(kDianjiang), ytd,
                             GeneralVisit("2024-07-01", 20000), &s).ok());
      ExpectSplit(s, {.deductible = 0, .base_fund = c.fund[i], .patient = 20000 - c.fund[i]});
      ytd = s.after;
    }
    EXPECT_EQ(ytd.ledger(Ledger::kGeneralOutpatient).fund_paid_cents, c.tier == 1 ? 30000 : 50000);
  }
  // The cap also bounds level-2 payments: tier 1, 290.00 paid, deductible
  // met; 100.00 × 40% = 40.00, capped at 300 − 290 = 10.00.
  Accumulators near_cap;
  near_cap.ledger(Ledger::kGeneralOutpatient).fund_paid_cents = 29000;
  near_cap.ledger(Ledger::kGeneralOutpatient).deductible_paid_cents = 20000;
  Settlement s;
  ASSERT_TRUE(SettleWith(Insured(1), Hospital(kDianjiang, 2), near_cap,
                         GeneralVisit("2024-08-01", 10000), &s).ok());
  ExpectSplit(s, {.deductible = 0, .base_fund = 1000, .patient = 9000});
}

TEST(Dianjiang2024, GeneralOutpatientAtLevelThreeNotCoveredButSettledWithNothingFromTheFund) {
  const Enrollment adult = Insured(2);
  Settlement s;
  absl::Status st = SettleWith(adult, Hospital(kDianjiang, 3), {}, SmallOutpatientBill(), &s);
  ASSERT_TRUE(st.ok()) << "a covered person at level 3 is settled, not refused: " << st;
  // Nothing from the fund; the patient pays the whole 110.00.
  ExpectSplit(s, {.total = 11000, .in_scope = 8500, .deductible = 0, .base_fund = 0,
                  .critical_illness = 0, .patient = 11000});
  EXPECT_TRUE(HasStep(s, TraceRule::kSchemeNotCovered)) << "the trace says why";
  // The level-3 visit paid nothing toward the level-2 deductible: a later
  // level-2 visit of 150.00 still pays min(150, 200 − 0) = 150.00.
  Settlement later;
  ASSERT_TRUE(SettleWith(adult, Hospital(kDianjiang, 2), s.after,
                         GeneralVisit("2024-07-01", 15000), &later).ok());
  ExpectSplit(later, {.deductible = 15000, .base_fund = 0});
  // An adult at a level-3 children's / maternal-child hospital: not covered.
  Institution childrens = Hospital(kYuzhong, 3);
  childrens.children_or_maternal = true;
  ASSERT_TRUE(SettleWith(adult, childrens, {}, SmallOutpatientBill(), &s).ok());
  ExpectSplit(s, {.base_fund = 0, .patient = 11000});
  EXPECT_TRUE(HasStep(s, TraceRule::kSchemeNotCovered));
  // A minor at an ordinary level-3 hospital: not covered either.
  ASSERT_TRUE(SettleWith(BornOn(2, "2014-03-01"), Hospital(kYuzhong, 3), {},
                         SmallOutpatientBill(), &s).ok());
  ExpectSplit(s, {.base_fund = 0, .patient = 11000});
  EXPECT_TRUE(HasStep(s, TraceRule::kSchemeNotCovered));
}

TEST(Dianjiang2024, GeneralOutpatientMinorAtLevelThreeChildrensHospitalSettledAsLevelTwo) {
  Institution childrens = Hospital(kYuzhong, 3);
  childrens.children_or_maternal = true;
  const Enrollment child = BornOn(1, "2014-03-01");
  // As level 2: deductible min(250, 200) = 200.00; (250 − 200) × 40% = 20.00.
  Settlement v1;
  ASSERT_TRUE(SettleWith(child, childrens, {}, GeneralVisit("2024-06-10", 25000), &v1).ok());
  ExpectSplit(v1, {.deductible = 20000, .base_fund = 2000, .patient = 23000});
  EXPECT_FALSE(HasStep(v1, TraceRule::kSchemeNotCovered));
  EXPECT_TRUE(HasStep(v1, TraceRule::kClassOverride)) << "the trace says it settled as level 2";
  // Second visit: deductible met; 100.00 × 40% = 40.00.
  Settlement v2;
  ASSERT_TRUE(SettleWith(child, childrens, v1.after, GeneralVisit("2024-07-10", 10000), &v2).ok());
  ExpectSplit(v2, {.deductible = 0, .base_fund = 4000});
  // Age on the service date: born 2006-06-10, the 18th birthday is 2024-06-10.
  const Enrollment turning18 = BornOn(1, "2006-06-10", Category::kStudent);
  Settlement day_before;
  ASSERT_TRUE(SettleWith(turning18, childrens, {}, GeneralVisit("2024-06-09", 25000),
                         &day_before).ok());
  ExpectSplit(day_before, {.deductible = 20000, .base_fund = 2000});  // (250 − 200) × 40%
  Settlement birthday;
  ASSERT_TRUE(SettleWith(turning18, childrens, {}, GeneralVisit("2024-06-10", 25000),
                         &birthday).ok());
  ExpectSplit(birthday, {.deductible = 0, .base_fund = 0, .patient = 25000});  // an adult: level 3
  EXPECT_TRUE(HasStep(birthday, TraceRule::kSchemeNotCovered));
  EXPECT_FALSE(HasStep(birthday, TraceRule::kClassOverride));
}

TEST(Dianjiang2024, ChronicVisitSettledAsGeneralOutpatient) {
  Enrollment person = Insured(1);
  person.chronic_conditions = {"HYPERTENSION"};
  auto chronic = [](const char* date, Cents in_scope) {
    Claim c = Outpatient(VisitType::kChronicOutpatient, date, {InScope(1, in_scope)});
    c.visit.condition = "HYPERTENSION";
    return c;
  };
  // Level 2: the general-outpatient annual deductible, min(150, 200) = 150.00.
  Settlement c1;
  ASSERT_TRUE(SettleWith(person, Hospital(kDianjiang, 2), {}, chronic("2024-03-01", 15000),
                         &c1).ok());
  ExpectSplit(c1, {.deductible = 15000, .base_fund = 0, .patient = 15000});
  // A general visit after it makes up the same deductible: 50.00, then
  // (150 − 50) × 40% = 40.00.
  Settlement g;
  ASSERT_TRUE(SettleWith(person, Hospital(kDianjiang, 2), c1.after,
                         GeneralVisit("2024-04-01", 15000), &g).ok());
  ExpectSplit(g, {.deductible = 5000, .base_fund = 4000});
  // Level 1: 100.00 × 60% = 60.00.
  Settlement c2;
  ASSERT_TRUE(SettleWith(person, Community(kDianjiang), g.after, chronic("2024-05-01", 10000),
                         &c2).ok());
  ExpectSplit(c2, {.deductible = 0, .base_fund = 6000});
  // Level 3: not covered, like a general visit.
  Settlement c3;
  ASSERT_TRUE(SettleWith(person, Hospital(kDianjiang, 3), c2.after, chronic("2024-06-01", 10000),
                         &c3).ok());
  ExpectSplit(c3, {.base_fund = 0, .patient = 10000});
  EXPECT_TRUE(HasStep(c3, TraceRule::kSchemeNotCovered));
  // The general-outpatient cap (一档 300) is shared: 280.00 paid this year;
  // 100.00 × 60% = 60.00 capped at 20.00. No critical-illness burden either.
  Accumulators ytd;
  ytd.ledger(Ledger::kGeneralOutpatient).fund_paid_cents = 28000;
  ytd.critical_illness_burden_cents = 2000000;  // 20,000.00, above the threshold
  Settlement c4;
  ASSERT_TRUE(SettleWith(person, Community(kDianjiang), ytd, chronic("2024-07-01", 10000),
                         &c4).ok());
  ExpectSplit(c4, {.base_fund = 2000, .critical_illness = 0, .patient = 8000});
  EXPECT_EQ(c4.after.critical_illness_burden_cents, 2000000);
}

// ---------------------------------------------------------------------------
// Inpatient (普通住院).

TEST(Dianjiang2024, InpatientDeductiblePerAdmissionAndRatioByLevelAndTier) {
  // 2,000.00 in scope at each level and tier.
  struct Case {
    int level, tier;
    Cents deductible, fund;
  };
  const Case cases[] = {
      {1, 1, 10000, 152000},  // (2000 − 100) × 80% = 1520.00
      {1, 2, 10000, 161500},  // (2000 − 100) × 85% = 1615.00
      {2, 1, 30000, 119000},  // (2000 − 300) × 70% = 1190.00
      {2, 2, 30000, 127500},  // (2000 − 300) × 75% = 1275.00
      {3, 1, 80000, 60000},   // (2000 − 800) × 50% =  600.00
      {3, 2, 80000, 66000},   // (2000 − 800) × 55% =  660.00
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message() << "level " << c.level << " tier " << c.tier);
    Settlement s;
    ASSERT_TRUE(SettleWith(Insured(c.tier), Hospital(kDianjiang, c.level), {},
                           Admission("2024-03-01", "2024-03-08", 200000), &s).ok());
    ExpectSplit(s, {.in_scope = 200000, .deductible = c.deductible, .base_fund = c.fund,
                    .critical_illness = 0, .patient = 200000 - c.fund});
  }
  // The deductible is per admission: a second level-1 admission pays 100.00
  // again; (2000 − 100) × 80% = 1520.00.
  Settlement first, second;
  ASSERT_TRUE(SettleWith(Insured(1), Hospital(kDianjiang, 1), {},
                         Admission("2024-03-01", "2024-03-08", 200000), &first).ok());
  ASSERT_TRUE(SettleWith(Insured(1), Hospital(kDianjiang, 1), first.after,
                         Admission("2024-04-01", "2024-04-08", 200000), &second).ok());
  ExpectSplit(second, {.deductible = 10000, .base_fund = 152000});
  // A bill below the deductible: level 3, 500.00 → deductible 500.00, fund 0.
  Settlement small;
  ASSERT_TRUE(SettleWith(Insured(2), Hospital(kDianjiang, 3), {},
                         Admission("2024-05-01", "2024-05-02", 50000), &small).ok());
  ExpectSplit(small, {.deductible = 50000, .base_fund = 0, .patient = 50000});
  // Rounding half up once: level 3, tier 2, 900.10 → (900.10 − 800) × 55%
  // = 55.055 → 55.06; patient 900.10 − 55.06 = 845.04.
  Settlement rounding;
  ASSERT_TRUE(SettleWith(Insured(2), Hospital(kDianjiang, 3), {},
                         Admission("2024-05-01", "2024-05-02", 90010), &rounding).ok());
  ExpectSplit(rounding, {.deductible = 80000, .base_fund = 5506, .patient = 84504});
  // Classification first: level 2, tier 2. FB0001 CT 350.00 (cap 300 → over
  // 50; B 10% → pre 30; in 270), FC0001 VIP ward 200.00 (C, out), FA0003 bed
  // 10 × 60.00 (cap 50.00/day → over 100; in 500). In scope 770.00;
  // (770 − 300) × 75% = 352.50; patient 1150 − 352.50 = 797.50.
  Settlement mixed;
  ASSERT_TRUE(SettleWith(Insured(2), Hospital(kDianjiang, 2), {},
                         Stay(VisitType::kInpatient, "2024-06-01", "2024-06-10",
                              {Line(1, "FB0001", "1", 35000), Line(2, "FC0001", "1", 20000),
                               Line(3, "FA0003", "10", 6000)}),
                         &mixed).ok());
  ExpectSplit(mixed, {.total = 115000, .out_of_scope = 20000, .over_limit = 15000,
                      .pre_self_pay = 3000, .in_scope = 77000, .deductible = 30000,
                      .base_fund = 35250, .patient = 79750});
}

TEST(Dianjiang2024, InpatientMinorsPlusFivePointsByAgeOnTheAdmissionDate) {
  // Born 2006-05-20: the 18th birthday (first adult day) is 2024-05-20.
  const Enrollment person = BornOn(1, "2006-05-20", Category::kStudent);
  // Admitted 2024-05-19 (17): level 2, tier 1, 70 + 5 = 75%;
  // (2000 − 300) × 75% = 1275.00.
  Settlement minor;
  ASSERT_TRUE(SettleWith(person, Hospital(kDianjiang, 2), {},
                         Admission("2024-05-19", "2024-05-25", 200000), &minor).ok());
  ExpectSplit(minor, {.deductible = 30000, .base_fund = 127500, .patient = 72500});
  EXPECT_EQ(minor.base_fund_ratio_bp, 7500);
  // Admitted on the birthday: an adult, 70%; 1700 × 70% = 1190.00.
  Settlement adult;
  ASSERT_TRUE(SettleWith(person, Hospital(kDianjiang, 2), {},
                         Admission("2024-05-20", "2024-05-25", 200000), &adult).ok());
  ExpectSplit(adult, {.deductible = 30000, .base_fund = 119000, .patient = 81000});
  EXPECT_EQ(adult.base_fund_ratio_bp, 7000);
  // Born 2006-01-01, admitted 2023-12-31 (17), discharged 2024-01-03 (18):
  // the 2024 policy (discharge date) with the age on admission → 75%:
  // 1700 × 75% = 1275.00.
  Settlement new_year;
  ASSERT_TRUE(SettleWith(BornOn(1, "2006-01-01", Category::kStudent), Hospital(kDianjiang, 2), {},
                         Admission("2023-12-31", "2024-01-03", 200000), &new_year).ok());
  ExpectSplit(new_year, {.deductible = 30000, .base_fund = 127500});
  // Tier 2, level 3: 55 + 5 = 60%; (2000 − 800) × 60% = 720.00.
  Settlement level3;
  ASSERT_TRUE(SettleWith(BornOn(2, "2015-09-01"), Hospital(kDianjiang, 3), {},
                         Admission("2024-05-01", "2024-05-05", 200000), &level3).ok());
  ExpectSplit(level3, {.deductible = 80000, .base_fund = 72000, .patient = 128000});
}

TEST(Dianjiang2024, InpatientTcmInstitutionDeductibleOneLevelLower) {
  // 2,000.00 in scope, no TCM items (so no +10), tier 1. The ratio is the
  // institution's own level; only the deductible moves down a level.
  struct Case {
    Institution institution;
    Cents deductible, fund;
  };
  const Case cases[] = {
      {TcmHospital(kDianjiang, 3), 30000, 85000},   // (2000 − 300) × 50% =  850.00
      {TcmHospital(kDianjiang, 2), 10000, 133000},  // (2000 − 100) × 70% = 1330.00
      {TcmHospital(kDianjiang, 1), 10000, 152000},  // level 1 stays 100: 1900 × 80% = 1520.00
      {Hospital(kDianjiang, 3), 80000, 60000},      // not TCM: (2000 − 800) × 50% = 600.00
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message() << "level " << c.institution.level << " tcm "
                                    << c.institution.tcm);
    Settlement s;
    ASSERT_TRUE(SettleWith(Insured(1), c.institution, {},
                           Admission("2024-04-01", "2024-04-06", 200000), &s).ok());
    ExpectSplit(s, {.deductible = c.deductible, .base_fund = c.fund,
                    .patient = 200000 - c.fund});
  }
}

TEST(Dianjiang2024, InpatientTcmItemsPlusTenPointsWithTheDeductibleFromNonTcmLinesFirst) {
  // FA0004 200.00 (not TCM); ZA0001 300.00 (TCM, A); ZB0001 100.00 (TCM, B
  // 5% → pre 5.00, in 95.00); ZB0002 2 × 20.00 (TCM, cap 2 × 15.00 → over
  // 10.00; B 10% of 30.00 → pre 3.00, in 27.00).
  // Total 640.00; over 10.00; pre 8.00; in scope 200 + 300 + 95 + 27 = 622.00,
  // of which TCM 422.00.
  auto bill = [] {
    return Stay(VisitType::kInpatient, "2024-09-01", "2024-09-09",
                {Line(1, "FA0004", "1", 20000), Line(2, "ZA0001", "1", 30000),
                 Line(3, "ZB0001", "1", 10000), Line(4, "ZB0002", "2", 2000)});
  };
  // TCM level 3, tier 2: deductible lowered to 300.00, taken from the
  // non-TCM 200.00 first, then 100.00 from the TCM lines. Non-TCM left 0;
  // TCM (422 − 100) × (55 + 10)% = 322 × 65% = 209.30; patient 640 − 209.30
  // = 430.70. Had the deductible come off the TCM lines first, the fund
  // would pay (422 − 300) × 65% + 200 × 55% = 79.30 + 110.00 = 189.30: the
  // order moves 200.00 of the deductible between lines 10 points apart, a
  // difference of 200 × 10% = 20.00 (convention 2: non-bonus lines first).
  Settlement tcm;
  ASSERT_TRUE(SettleWith(Insured(2), TcmHospital(kDianjiang, 3), {}, bill(), &tcm).ok());
  ExpectSplit(tcm, {.total = 64000, .out_of_scope = 0, .over_limit = 1000, .pre_self_pay = 800,
                    .in_scope = 62200, .deductible = 30000, .base_fund = 20930,
                    .critical_illness = 0, .patient = 43070});
  // The same bill at an ordinary level-1 hospital, tier 2: no +10 outside
  // TCM institutions; (622 − 100) × 85% = 443.70.
  Settlement plain;
  ASSERT_TRUE(SettleWith(Insured(2), Hospital(kDianjiang, 1), {}, bill(), &plain).ok());
  ExpectSplit(plain, {.in_scope = 62200, .deductible = 10000, .base_fund = 44370,
                      .patient = 19630});  // 640 − 443.70
  // TCM level 1, tier 2, a minor: non-TCM 85 + 5 = 90%, TCM 85 + 5 + 10 =
  // 100% (never above). FA0004 150.00 + ZA0001 100.00: deductible 100.00
  // from FA0004; 50 × 90% + 100 × 100% = 45 + 100 = 145.00.
  Settlement full;
  ASSERT_TRUE(SettleWith(BornOn(2, "2012-02-02"), TcmHospital(kDianjiang, 1), {},
                         Stay(VisitType::kInpatient, "2024-09-01", "2024-09-03",
                              {Line(1, "FA0004", "1", 15000), Line(2, "ZA0001", "1", 10000)}),
                         &full).ok());
  ExpectSplit(full, {.in_scope = 25000, .deductible = 10000, .base_fund = 14500,
                     .patient = 10500});  // 250 − 145
}

TEST(Dianjiang2024, TcmRulesApplyToInpatientAndSpecialOutpatientNotGeneralOutpatient) {
  // Source 七 备注3: the lowered deductible and the +10 on TCM items are for
  // 住院 and 特殊疾病（重大疾病）门诊 at TCM institutions.
  // Dialysis at a TCM level-3 hospital, tier 1, 1,200.00 plus ZA0001 100.00:
  // D(level 3) lowered to 300.00, from the non-TCM dialysis first;
  // (1200 − 300) × 50% + 100 × (50 + 10)% = 450.00 + 60.00 = 510.00.
  Claim dialysis = Dialysis("2024-03-05", "3");
  dialysis.lines.push_back(Line(2, "ZA0001", "1", 10000));
  Settlement so;
  ASSERT_TRUE(SettleWith(UremiaPatient(1), TcmHospital(kDianjiang, 3), {}, dialysis, &so).ok());
  ExpectSplit(so, {.in_scope = 130000, .deductible = 30000, .base_fund = 51000,
                   .patient = 79000});  // 1300 − 510
  // General outpatient at a TCM level-2 hospital: the ordinary annual 200.00
  // deductible and 40%, no +10 on TCM items: ZA0001 300.00 →
  // (300 − 200) × 40% = 40.00.
  Settlement go;
  ASSERT_TRUE(SettleWith(Insured(1), TcmHospital(kDianjiang, 2), {},
                         Outpatient(VisitType::kGeneralOutpatient, "2024-03-05",
                                    {Line(1, "ZA0001", "1", 30000)}),
                         &go).ok());
  ExpectSplit(go, {.deductible = 20000, .base_fund = 4000, .patient = 26000});
}

TEST(Dianjiang2024, SpecialOutpatientInpatientRatiosWithOneDeductiblePerYear) {
  const Enrollment person = UremiaPatient(1);
  // Visit 1, level 1, 400.00: deductible max(0, 100 − 0) = 100.00;
  // (400 − 100) × 80% = 240.00. Burden 400 − 240 = 160.00.
  Settlement v1;
  ASSERT_TRUE(SettleWith(person, Hospital(kDianjiang, 1), {}, Dialysis("2024-02-05", "1"),
                         &v1).ok());
  ExpectSplit(v1, {.in_scope = 40000, .deductible = 10000, .base_fund = 24000,
                   .critical_illness = 0, .patient = 16000});
  // Visit 2, level 3, 3 × 400.00 = 1200.00: deductible max(0, 800 − 100) =
  // 700.00; (1200 − 700) × 50% = 250.00. Burden 950.00.
  Settlement v2;
  ASSERT_TRUE(SettleWith(person, Hospital(kDianjiang, 3), v1.after, Dialysis("2024-03-05", "3"),
                         &v2).ok());
  ExpectSplit(v2, {.deductible = 70000, .base_fund = 25000, .patient = 95000});
  // Visit 3, level 3: max(0, 800 − 800) = 0; 1200 × 50% = 600.00. Burden 600.00.
  Settlement v3;
  ASSERT_TRUE(SettleWith(person, Hospital(kDianjiang, 3), v2.after, Dialysis("2024-04-05", "3"),
                         &v3).ok());
  ExpectSplit(v3, {.deductible = 0, .base_fund = 60000, .patient = 60000});
  // Visit 4, level 2: max(0, 300 − 800) = 0; 400 × 70% = 280.00.
  Settlement v4;
  ASSERT_TRUE(SettleWith(person, Hospital(kDianjiang, 2), v3.after, Dialysis("2024-05-05", "1"),
                         &v4).ok());
  ExpectSplit(v4, {.deductible = 0, .base_fund = 28000});
  // Critical-illness burden 160 + 950 + 600 + 120 = 1,830.00 (below 17,833).
  EXPECT_EQ(v4.after.critical_illness_burden_cents, 183000);
  // Inpatient deductibles do not count: 800.00 paid on admissions, none on
  // special outpatient → level 3 pays 800.00; (1200 − 800) × 50% = 200.00.
  Accumulators ytd;
  ytd.ledger(Ledger::kInpatient).deductible_paid_cents = 80000;
  ytd.ledger(Ledger::kInpatient).fund_paid_cents = 100000;
  Settlement after_admission;
  ASSERT_TRUE(SettleWith(person, Hospital(kDianjiang, 3), ytd, Dialysis("2024-06-05", "3"),
                         &after_admission).ok());
  ExpectSplit(after_admission, {.deductible = 80000, .base_fund = 20000});
  // Tier 2, minor (+5), level 2: deductible 300.00; (1200 − 300) × 80% = 720.00.
  Enrollment child = BornOn(2, "2010-10-10");
  child.special_diseases = {"UREMIA"};
  Settlement minor;
  ASSERT_TRUE(SettleWith(child, Hospital(kDianjiang, 2), {}, Dialysis("2024-06-05", "3"),
                         &minor).ok());
  ExpectSplit(minor, {.deductible = 30000, .base_fund = 72000, .patient = 48000});
}

TEST(Dianjiang2024, InpatientAndSpecialOutpatientShareTheAnnualFundCap) {
  // 一档 80,000: 79,000.00 already paid on admissions; the special-outpatient
  // deductible is met.
  Accumulators ytd;
  ytd.ledger(Ledger::kInpatient).fund_paid_cents = 7900000;
  ytd.ledger(Ledger::kSpecialOutpatient).deductible_paid_cents = 80000;
  const Enrollment person = UremiaPatient(1);
  // Dialysis 4 × 400.00 = 1600.00 at level 3: 1600 × 50% = 800.00 ≤ 1,000 left.
  Settlement so;
  ASSERT_TRUE(SettleWith(person, Hospital(kDianjiang, 3), ytd, Dialysis("2024-07-01", "4"),
                         &so).ok());
  ExpectSplit(so, {.deductible = 0, .base_fund = 80000, .patient = 80000});
  // Admission at level 3, 2000.00: (2000 − 800) × 50% = 600.00, capped at
  // 80,000 − 79,800 = 200.00; patient 1800.00 (burden below the threshold).
  Settlement stay;
  ASSERT_TRUE(SettleWith(person, Hospital(kDianjiang, 3), so.after,
                         Admission("2024-07-10", "2024-07-15", 200000), &stay).ok());
  ExpectSplit(stay, {.deductible = 80000, .base_fund = 20000, .critical_illness = 0,
                     .patient = 180000});
  // Cap reached: the next dialysis gets nothing from the base fund.
  Settlement none;
  ASSERT_TRUE(SettleWith(person, Hospital(kDianjiang, 3), stay.after, Dialysis("2024-08-01", "1"),
                         &none).ok());
  ExpectSplit(none, {.base_fund = 0, .patient = 40000});
  // 二档 120,000: 119,900.00 paid on major-disease outpatient; an admission at
  // level 1, 2000.00: (2000 − 100) × 85% = 1615.00, capped at 100.00.
  Accumulators ytd2;
  ytd2.ledger(Ledger::kSpecialOutpatient).fund_paid_cents = 11990000;
  ytd2.ledger(Ledger::kSpecialOutpatient).deductible_paid_cents = 10000;
  Settlement tier2;
  ASSERT_TRUE(SettleWith(UremiaPatient(2), Hospital(kDianjiang, 1), ytd2,
                         Admission("2024-08-01", "2024-08-05", 200000), &tier2).ok());
  ExpectSplit(tier2, {.deductible = 10000, .base_fund = 10000, .patient = 190000});
}

// ---------------------------------------------------------------------------
// Critical illness (大病保险).

TEST(Dianjiang2024, CriticalIllnessOrdinaryAbove17833At60PercentCrossedMidBill) {
  // Burden so far 17,500.00. Level 3, tier 1, 2000.00 in scope: base fund
  // (2000 − 800) × 50% = 600.00; burden 2000 − 600 = 1400.00 occupies
  // [17,500, 18,900): 18,900 − 17,833 = 1,067.00 above × 60% = 640.20;
  // patient 2000 − 600 − 640.20 = 759.80.
  Accumulators ytd;
  ytd.critical_illness_burden_cents = 1750000;
  for (Assistance a : {Assistance::kNone, Assistance::kDibaoEdge}) {  // 低保边缘 is ordinary
    Enrollment person = Insured(1);
    person.assistance = a;
    Settlement s;
    ASSERT_TRUE(SettleWith(person, Hospital(kDianjiang, 3), ytd,
                           Admission("2024-08-01", "2024-08-10", 200000), &s).ok());
    ExpectSplit(s, {.deductible = 80000, .base_fund = 60000, .critical_illness = 64020,
                    .patient = 75980});
    EXPECT_EQ(s.after.critical_illness_burden_cents, 1890000);
    EXPECT_EQ(s.after.critical_illness_paid_cents, 64020);
  }
  // The burden is in scope only: burden so far 18,000.00; level 1, tier 1:
  // FA0004 1000.00 + XB0001 100.00 (pre 10.00, in 90.00) + XC0002 50.00
  // (out). In scope 1090.00; (1090 − 100) × 80% = 792.00; burden
  // 1090 − 792 = 298.00 × 60% = 178.80; patient 1150 − 792 − 178.80 = 179.20.
  {
    Accumulators above;
    above.critical_illness_burden_cents = 1800000;
    Settlement s;
    ASSERT_TRUE(SettleWith(Insured(1), Hospital(kDianjiang, 1), above,
                           Stay(VisitType::kInpatient, "2024-08-01", "2024-08-03",
                                {Line(1, "FA0004", "1", 100000), Line(2, "XB0001", "1", 10000),
                                 Line(3, "XC0002", "1", 5000)}),
                           &s).ok());
    ExpectSplit(s, {.total = 115000, .out_of_scope = 5000, .pre_self_pay = 1000,
                    .in_scope = 109000, .deductible = 10000, .base_fund = 79200,
                    .critical_illness = 17880, .patient = 17920});
    EXPECT_EQ(s.after.critical_illness_burden_cents, 1829800);
  }
  // One rounding: burden so far 17,832.99; 2000.01 in scope → fund
  // 1200.01 × 50% = 600.005 → 600.01; burden 1400.00 on [17,832.99,
  // 19,232.99): 1,399.99 above × 60% = 839.994 → 839.99.
  Accumulators odd;
  odd.critical_illness_burden_cents = 1783299;
  Settlement s;
  ASSERT_TRUE(SettleWith(Insured(1), Hospital(kDianjiang, 3), odd,
                         Admission("2024-08-01", "2024-08-10", 200001), &s).ok());
  ExpectSplit(s, {.base_fund = 60001, .critical_illness = 83999,
                  .patient = 56001});  // 2000.01 − 600.01 − 839.99
  // Annual cap 200,000: 199,900.00 paid; 1400 × 60% = 840.00 → 100.00.
  Accumulators near_cap;
  near_cap.critical_illness_burden_cents = 30000000;
  near_cap.critical_illness_paid_cents = 19990000;
  ASSERT_TRUE(SettleWith(Insured(1), Hospital(kDianjiang, 3), near_cap,
                         Admission("2024-08-01", "2024-08-10", 200000), &s).ok());
  ExpectSplit(s, {.base_fund = 60000, .critical_illness = 10000, .patient = 130000});
  EXPECT_EQ(s.after.critical_illness_paid_cents, 20000000);
}

TEST(Dianjiang2024, CriticalIllnessTekunDibaoPovertyRelapseAbove8916_50At65PercentUncapped) {
  // Burden so far 8,000.00 and 300,000.00 already paid (above the ordinary
  // cap). Level 3, tier 1, 2000.00: fund 600.00, burden 1400.00 on [8,000,
  // 9,400): 9,400 − 8,916.50 = 483.50 × 65% = 314.275 → 314.28; patient
  // 2000 − 600 − 314.28 = 1085.72.
  Accumulators ytd;
  ytd.critical_illness_burden_cents = 800000;
  ytd.critical_illness_paid_cents = 30000000;
  for (Assistance a : {Assistance::kTekun, Assistance::kDibao, Assistance::kPovertyRelapse}) {
    SCOPED_TRACE(std::string(Name(a)));
    Enrollment person = Insured(1);
    person.assistance = a;
    Settlement s;
    ASSERT_TRUE(SettleWith(person, Hospital(kDianjiang, 3), ytd,
                           Admission("2024-08-01", "2024-08-10", 200000), &s).ok());
    ExpectSplit(s, {.base_fund = 60000, .critical_illness = 31428, .patient = 108572});
  }
  // 低保边缘 (DIBAO_EDGE) is ordinary here: 9,400 is below 17,833 → 0.
  Accumulators fresh;
  fresh.critical_illness_burden_cents = 800000;
  Enrollment edge = Insured(1);
  edge.assistance = Assistance::kDibaoEdge;
  Settlement s;
  ASSERT_TRUE(SettleWith(edge, Hospital(kDianjiang, 3), fresh,
                         Admission("2024-08-01", "2024-08-10", 200000), &s).ok());
  ExpectSplit(s, {.base_fund = 60000, .critical_illness = 0, .patient = 140000});
}

TEST(Dianjiang2024, CriticalIllnessCountsOnlyInpatientAndSpecialOutpatient) {
  Enrollment person = UremiaPatient(1);
  Accumulators ytd;
  ytd.critical_illness_burden_cents = 1800000;  // 18,000.00: above the threshold
  // General outpatient, level 2, 300.00: deductible 200, 100 × 40% = 40.00;
  // its 260.00 burden is not counted: no critical illness, burden unchanged.
  Settlement go;
  ASSERT_TRUE(SettleWith(person, Hospital(kDianjiang, 2), ytd, GeneralVisit("2024-05-01", 30000),
                         &go).ok());
  ExpectSplit(go, {.deductible = 20000, .base_fund = 4000, .critical_illness = 0,
                   .patient = 26000});
  EXPECT_EQ(go.after.critical_illness_burden_cents, 1800000);
  // A level-3 general visit (not covered) adds nothing either.
  Settlement l3;
  ASSERT_TRUE(SettleWith(person, Hospital(kDianjiang, 3), go.after, SmallOutpatientBill(),
                         &l3).ok());
  ExpectSplit(l3, {.base_fund = 0, .critical_illness = 0, .patient = 11000});
  EXPECT_EQ(l3.after.critical_illness_burden_cents, 1800000);
  // Special outpatient, level 1, 400.00: deductible 100; 300 × 80% = 240.00;
  // burden 160.00, all above 17,833 → × 60% = 96.00; patient 400 − 240 − 96 = 64.00.
  Settlement so;
  ASSERT_TRUE(SettleWith(person, Hospital(kDianjiang, 1), l3.after, Dialysis("2024-06-01", "1"),
                         &so).ok());
  ExpectSplit(so, {.deductible = 10000, .base_fund = 24000, .critical_illness = 9600,
                   .patient = 6400});
  EXPECT_EQ(so.after.critical_illness_burden_cents, 1816000);
  // Inpatient, level 1, 1000.00: (1000 − 100) × 80% = 720.00; burden 280.00
  // × 60% = 168.00; patient 1000 − 720 − 168 = 112.00.
  Settlement ip;
  ASSERT_TRUE(SettleWith(person, Hospital(kDianjiang, 1), so.after,
                         Admission("2024-07-01", "2024-07-03", 100000), &ip).ok());
  ExpectSplit(ip, {.deductible = 10000, .base_fund = 72000, .critical_illness = 16800,
                   .patient = 11200});
  EXPECT_EQ(ip.after.critical_illness_burden_cents, 1844000);
}

// ---------------------------------------------------------------------------
// Maternity (生育).

TEST(Dianjiang2024, PrenatalChecksFundPaysUpTo300AYear) {
  Enrollment mother = Insured(1);
  Accumulators ytd;
  ytd.critical_illness_burden_cents = 2000000;  // above the threshold: would pay if counted
  auto check = [](const char* date, std::vector<BillLine> lines) {
    return Outpatient(VisitType::kPrenatalCheck, date, std::move(lines));
  };
  // Visit 1: FA0005 180.00 + XC0002 20.00 (out of scope): min(180, 300 − 0)
  // = 180.00; patient 20.00.
  Settlement v1;
  ASSERT_TRUE(SettleWith(mother, Hospital(kDianjiang, 3), ytd,
                         check("2024-03-01", {Line(1, "FA0005", "1", 18000),
                                              Line(2, "XC0002", "1", 2000)}),
                         &v1).ok());
  ExpectSplit(v1, {.total = 20000, .in_scope = 18000, .deductible = 0, .base_fund = 18000,
                   .critical_illness = 0, .patient = 2000});
  EXPECT_EQ(v1.after.critical_illness_burden_cents, 2000000);
  // Visit 2: 200.00 → min(200, 300 − 180) = 120.00; patient 80.00.
  Settlement v2;
  ASSERT_TRUE(SettleWith(mother, Hospital(kDianjiang, 2), v1.after,
                         check("2024-04-01", {Line(1, "FA0005", "1", 20000)}), &v2).ok());
  ExpectSplit(v2, {.base_fund = 12000, .critical_illness = 0, .patient = 8000});
  // Visit 3: 50.00 → min(50, 300 − 300) = 0.
  Settlement v3;
  ASSERT_TRUE(SettleWith(mother, Community(kDianjiang), v2.after,
                         check("2024-05-01", {Line(1, "FA0005", "1", 5000)}), &v3).ok());
  ExpectSplit(v3, {.base_fund = 0, .critical_illness = 0, .patient = 5000});
  EXPECT_EQ(v3.after.critical_illness_burden_cents, 2000000);
}

TEST(Dianjiang2024, NaturalDeliveryFixed600NeverMoreThanTheBill) {
  Enrollment mother = Insured(2);
  Accumulators ytd;
  ytd.critical_illness_burden_cents = 2000000;  // above the threshold
  // FA0006 2,000.00: min(600, 2000) = 600.00; no deductible, no critical
  // illness; patient 1,400.00.
  Settlement s;
  ASSERT_TRUE(SettleWith(mother, Hospital(kDianjiang, 2), ytd,
                         Stay(VisitType::kDeliveryNatural, "2024-07-01", "2024-07-03",
                              {Line(1, "FA0006", "1", 200000)}),
                         &s).ok());
  ExpectSplit(s, {.in_scope = 200000, .deductible = 0, .base_fund = 60000,
                  .critical_illness = 0, .patient = 140000});
  EXPECT_EQ(s.after.critical_illness_burden_cents, 2000000);
  // Below 600: FA0006 450.00 + XC0002 100.00 → min(600, 450) = 450.00;
  // patient the 100.00 out of scope.
  ASSERT_TRUE(SettleWith(mother, Hospital(kDianjiang, 2), {},
                         Stay(VisitType::kDeliveryNatural, "2024-07-01", "2024-07-03",
                              {Line(1, "FA0006", "1", 45000), Line(2, "XC0002", "1", 10000)}),
                         &s).ok());
  ExpectSplit(s, {.total = 55000, .in_scope = 45000, .base_fund = 45000, .critical_illness = 0,
                  .patient = 10000});
}

TEST(Dianjiang2024, CaesareanSettledAsInpatientWithTopUpTo600) {
  const Enrollment mother = Insured(1);
  auto caesarean = [](Cents cents) {
    return Stay(VisitType::kDeliveryCaesarean, "2024-07-01", "2024-07-06",
                {Line(1, "FA0007", "1", cents)});
  };
  const Institution level2 = Hospital(kDianjiang, 2);
  // 1,000.00: deductible 300; (1000 − 300) × 70% = 490.00 < 600 → topped up
  // to 600.00; patient 400.00, which is its critical-illness burden.
  Settlement a;
  ASSERT_TRUE(SettleWith(mother, level2, {}, caesarean(100000), &a).ok());
  ExpectSplit(a, {.in_scope = 100000, .deductible = 30000, .base_fund = 60000,
                  .critical_illness = 0, .patient = 40000});
  EXPECT_TRUE(HasStep(a, TraceRule::kTopUp));
  EXPECT_EQ(a.after.critical_illness_burden_cents, 40000);  // counts as inpatient
  EXPECT_EQ(a.after.ledger(Ledger::kInpatient).visits, 1);
  EXPECT_EQ(a.after.ledger(Ledger::kInpatient).deductible_paid_cents, 30000);
  // The whole 600.00 (490.00 + the 110.00 top-up) is inpatient fund paid;
  // nothing is booked in the delivery ledger.
  EXPECT_EQ(a.delta.ledger(Ledger::kInpatient).fund_paid_cents, 60000);
  EXPECT_EQ(a.after.ledger(Ledger::kDelivery).fund_paid_cents, 0);
  // 500.00: (500 − 300) × 70% = 140.00 → top-up to min(600, 500) = 500.00,
  // never more than in scope; the patient pays nothing.
  Settlement b;
  ASSERT_TRUE(SettleWith(mother, level2, {}, caesarean(50000), &b).ok());
  ExpectSplit(b, {.deductible = 30000, .base_fund = 50000, .patient = 0});
  // 3,000.00: (3000 − 300) × 70% = 1,890.00 ≥ 600: no top-up.
  Settlement c;
  ASSERT_TRUE(SettleWith(mother, level2, {}, caesarean(300000), &c).ok());
  ExpectSplit(c, {.deductible = 30000, .base_fund = 189000, .patient = 111000});
  EXPECT_FALSE(HasStep(c, TraceRule::kTopUp));
  // After the inpatient cap (80,000 paid): the inpatient rules pay 0, the
  // top-up still brings the base fund to 600.00; patient 400.00.
  Accumulators capped;
  capped.ledger(Ledger::kInpatient).fund_paid_cents = 8000000;
  Settlement d;
  ASSERT_TRUE(SettleWith(mother, level2, capped, caesarean(100000), &d).ok());
  ExpectSplit(d, {.deductible = 30000, .base_fund = 60000, .patient = 40000});
  EXPECT_EQ(d.after.ledger(Ledger::kInpatient).fund_paid_cents, 8060000);  // 80,000 + 600
  // Critical illness counts it: burden so far exactly 17,833.00; burden
  // 1000 − 600 = 400.00, all above → 400 × 60% = 240.00; patient 1000 − 600
  // − 240 = 160.00.
  Accumulators at_threshold;
  at_threshold.critical_illness_burden_cents = 1783300;
  Settlement e;
  ASSERT_TRUE(SettleWith(mother, level2, at_threshold, caesarean(100000), &e).ok());
  ExpectSplit(e, {.base_fund = 60000, .critical_illness = 24000, .patient = 16000});
}

// The base-fund detail of `scheme` in `s` (the inpatient cap's remaining).
FundDetail BaseDetail(const Settlement& s, std::string_view scheme) {
  for (const FundDetail& d : s.fund_details) {
    if (d.fund == Fund::kBase && d.scheme == scheme) return d;
  }
  ADD_FAILURE() << "no base-fund detail " << scheme;
  return {};
}

// The inpatient fund cap as CheckCoverage reports it for `person` on `ytd`.
RemainingLimit InpatientCap(const Enrollment& person, const Accumulators& ytd) {
  const Policy& policy = *ShippedEngine().policies().FindById("dianjiang-2024");
  for (const RemainingLimit& l : ShippedEngine().Remaining(policy, person, ytd)) {
    if (l.name == "inpatient fund cap") return l;
  }
  ADD_FAILURE() << "no inpatient fund cap";
  return {};
}

// POLICY-NOTES Maternity Reading: the top-up is base fund of the stay, not
// limited by the cap, but it counts in the year's inpatient fund paid, so
// it uses room under the cap of the stays that follow.
TEST(Dianjiang2024, CaesareanTopUpCountsInTheInpatientFundPaidAndUsesLaterCapRoom) {
  const Enrollment mother = Insured(1);  // 一档: inpatient cap 80,000
  // Earlier this year, level 1, 98,850.00: deductible 100; 98,750 × 80% =
  // 79,000.00 (within the cap). Burden 98,850 − 79,000 = 19,850.00: (19,850
  // − 17,833) × 60% = 1,210.20; patient 98,850 − 79,000 − 1,210.20 = 18,639.80.
  Settlement earlier;
  ASSERT_TRUE(SettleWith(mother, Hospital(kDianjiang, 1), {},
                         Admission("2024-03-01", "2024-03-20", 9885000), &earlier).ok());
  ExpectSplit(earlier, {.deductible = 10000, .base_fund = 7900000, .critical_illness = 121020,
                        .patient = 1863980});
  // Stay 1, caesarean at level 2, FA0007 1,000.00: deductible 300; (1000 −
  // 300) × 70% = 490.00 ≤ 80,000 − 79,000 = 1,000.00 left → 490.00 < 600:
  // topped up by 110.00 to 600.00. Burden 1000 − 600 = 400.00 (the top-up is
  // base fund, not burden), all above the threshold: × 60% = 240.00;
  // patient 1000 − 600 − 240 = 160.00.
  Settlement caesarean;
  ASSERT_TRUE(SettleWith(mother, Hospital(kDianjiang, 2), earlier.after,
                         Stay(VisitType::kDeliveryCaesarean, "2024-07-01", "2024-07-06",
                              {Line(1, "FA0007", "1", 100000)}),
                         &caesarean).ok());
  ExpectSplit(caesarean, {.in_scope = 100000, .deductible = 30000, .base_fund = 60000,
                          .critical_illness = 24000, .patient = 16000});
  EXPECT_TRUE(HasStep(caesarean, TraceRule::kTopUp));
  // Inpatient fund paid 79,000 + 490 + 110 = 79,600.00 (not 79,490.00);
  // the delivery ledger holds nothing; cap left 80,000 − 79,600 = 400.00.
  EXPECT_EQ(caesarean.delta.ledger(Ledger::kInpatient).fund_paid_cents, 60000);
  EXPECT_EQ(caesarean.after.ledger(Ledger::kInpatient).fund_paid_cents, 7960000);
  EXPECT_EQ(caesarean.after.ledger(Ledger::kDelivery).fund_paid_cents, 0);
  EXPECT_EQ(BaseDetail(caesarean, "inpatient").paid_cents, 49000);
  EXPECT_EQ(BaseDetail(caesarean, "inpatient").cap_remaining_cents, 40000);
  EXPECT_EQ(BaseDetail(caesarean, "maternity_top_up").paid_cents, 11000);
  EXPECT_EQ(InpatientCap(mother, caesarean.after).remaining_cents, 40000);
  // Burden 19,850 + 400 = 20,250.00; critical illness 1,210.20 + 240 = 1,450.20.
  EXPECT_EQ(caesarean.after.critical_illness_burden_cents, 2025000);
  EXPECT_EQ(caesarean.after.critical_illness_paid_cents, 145020);

  // Stay 2, ordinary inpatient at level 2, 2,000.00: deductible 300; (2000 −
  // 300) × 70% = 1,190.00, capped at 80,000 − 79,600 = 400.00 (510.00 if the
  // top-up had not counted). Burden 2000 − 400 = 1,600.00 × 60% = 960.00;
  // patient 2000 − 400 − 960 = 640.00.
  Settlement later;
  ASSERT_TRUE(SettleWith(mother, Hospital(kDianjiang, 2), caesarean.after,
                         Admission("2024-09-01", "2024-09-05", 200000), &later).ok());
  ExpectSplit(later, {.deductible = 30000, .base_fund = 40000, .critical_illness = 96000,
                      .patient = 64000});
  EXPECT_FALSE(HasStep(later, TraceRule::kTopUp));
  // Inpatient fund paid 79,600 + 400 = 80,000.00: the cap, exactly.
  EXPECT_EQ(later.after.ledger(Ledger::kInpatient).fund_paid_cents, 8000000);
  EXPECT_EQ(BaseDetail(later, "inpatient").cap_remaining_cents, 0);
  EXPECT_EQ(later.after.critical_illness_burden_cents, 2185000);  // 20,250 + 1,600

  // Reversing the caesarean gives its 600.00 back to the cap: the same
  // stay 2 then finds 80,000 − 79,000 = 1,000.00 left → min(1,190, 1,000)
  // = 1,000.00.
  absl::StatusOr<Accumulators> undone = Engine::Reverse(caesarean.after, caesarean.delta);
  ASSERT_TRUE(undone.ok()) << undone.status();
  EXPECT_EQ(undone->ledger(Ledger::kInpatient).fund_paid_cents, 7900000);
  Settlement without;
  ASSERT_TRUE(SettleWith(mother, Hospital(kDianjiang, 2), *undone,
                         Admission("2024-09-01", "2024-09-05", 200000), &without).ok());
  ExpectSplit(without, {.deductible = 30000, .base_fund = 100000});
}

// The top-up is paid even when the cap is used up, and it takes the
// inpatient fund paid above the cap; what stands above the cap is not taken
// back from later stays (the room left is max(0, cap − fund paid) = 0, never
// negative): they, and major-disease outpatient visits sharing the cap, get
// 0 from the base fund, and their whole in-scope amount is burden.
TEST(Dianjiang2024, CaesareanTopUpAfterTheCapTakesTheFundPaidAboveItAndLaterStaysGetNothing) {
  const Enrollment mother = UremiaPatient(1);  // 一档: cap 80,000 (inpatient and dialysis)
  // Earlier this year, level 1, 100,100.00: deductible 100; 100,000 × 80% =
  // 80,000.00: the cap is used up. Burden 20,100.00: (20,100 − 17,833) × 60%
  // = 1,360.20; patient 100,100 − 80,000 − 1,360.20 = 18,739.80.
  Settlement earlier;
  ASSERT_TRUE(SettleWith(mother, Hospital(kDianjiang, 1), {},
                         Admission("2024-03-01", "2024-03-20", 10010000), &earlier).ok());
  ExpectSplit(earlier, {.deductible = 10000, .base_fund = 8000000, .critical_illness = 136020,
                        .patient = 1873980});
  EXPECT_EQ(InpatientCap(mother, earlier.after).remaining_cents, 0);
  // Caesarean at level 2, 1,000.00: deductible 300; 700 × 70% = 490.00, but
  // max(0, 80,000 − 80,000) = 0 left → 0; topped up by 600.00 to 600.00.
  // Burden 1000 − 600 = 400.00 × 60% = 240.00; patient 1000 − 600 − 240 = 160.00.
  Settlement caesarean;
  ASSERT_TRUE(SettleWith(mother, Hospital(kDianjiang, 2), earlier.after,
                         Stay(VisitType::kDeliveryCaesarean, "2024-07-01", "2024-07-06",
                              {Line(1, "FA0007", "1", 100000)}),
                         &caesarean).ok());
  ExpectSplit(caesarean, {.deductible = 30000, .base_fund = 60000, .critical_illness = 24000,
                          .patient = 16000});
  EXPECT_EQ(BaseDetail(caesarean, "inpatient").paid_cents, 0);
  EXPECT_EQ(BaseDetail(caesarean, "maternity_top_up").paid_cents, 60000);
  // Inpatient fund paid 80,000 + 600 = 80,600.00: above the cap by the
  // top-up, by design; the cap reports 80,600 used, 0 left.
  EXPECT_EQ(caesarean.after.ledger(Ledger::kInpatient).fund_paid_cents, 8060000);
  EXPECT_EQ(BaseDetail(caesarean, "inpatient").cap_remaining_cents, 0);
  const RemainingLimit cap = InpatientCap(mother, caesarean.after);
  EXPECT_EQ(cap.limit_cents, 8000000);
  EXPECT_EQ(cap.used_cents, 8060000);
  EXPECT_EQ(cap.remaining_cents, 0);

  // A later ordinary stay at level 2, 2,000.00: deductible 300; 1,700 × 70%
  // = 1,190.00, max(0, 80,000 − 80,600) = 0 left → 0. Burden 2,000.00 × 60%
  // = 1,200.00; patient 2000 − 1200 = 800.00. Fund paid stays 80,600.00.
  Settlement later;
  ASSERT_TRUE(SettleWith(mother, Hospital(kDianjiang, 2), caesarean.after,
                         Admission("2024-09-01", "2024-09-05", 200000), &later).ok());
  ExpectSplit(later, {.deductible = 30000, .base_fund = 0, .critical_illness = 120000,
                      .patient = 80000});
  EXPECT_EQ(later.after.ledger(Ledger::kInpatient).fund_paid_cents, 8060000);
  // Dialysis at level 1, 1 × 400.00 (shares the cap): deductible 100 (once a
  // year); 300 × 80% = 240.00, 0 left → 0. Burden 400.00 × 60% = 240.00;
  // patient 400 − 240 = 160.00.
  Settlement dialysis;
  ASSERT_TRUE(SettleWith(mother, Hospital(kDianjiang, 1), later.after,
                         Dialysis("2024-10-01", "1"), &dialysis).ok());
  ExpectSplit(dialysis, {.deductible = 10000, .base_fund = 0, .critical_illness = 24000,
                         .patient = 16000});
  // Burden 20,100 + 400 + 2,000 + 400 = 22,900.00.
  EXPECT_EQ(dialysis.after.critical_illness_burden_cents, 2290000);

  // Crossing the cap within the stay: 79,800.00 paid before (level 1,
  // 99,850.00: 99,750 × 80%). The caesarean's 490.00 is capped at 200.00 left,
  // the top-up adds 400.00 → 600.00; fund paid 79,800 + 200 + 400 = 80,400.00.
  // (Earlier burden 99,850 − 79,800 = 20,050.00, so the caesarean's 400.00
  // burden × 60% = 240.00; patient 160.00.)
  Settlement near;
  ASSERT_TRUE(SettleWith(mother, Hospital(kDianjiang, 1), {},
                         Admission("2024-03-01", "2024-03-20", 9985000), &near).ok());
  ExpectSplit(near, {.base_fund = 7980000});
  Settlement crossing;
  ASSERT_TRUE(SettleWith(mother, Hospital(kDianjiang, 2), near.after,
                         Stay(VisitType::kDeliveryCaesarean, "2024-07-01", "2024-07-06",
                              {Line(1, "FA0007", "1", 100000)}),
                         &crossing).ok());
  ExpectSplit(crossing, {.base_fund = 60000, .critical_illness = 24000, .patient = 16000});
  EXPECT_EQ(BaseDetail(crossing, "inpatient").paid_cents, 20000);
  EXPECT_EQ(BaseDetail(crossing, "maternity_top_up").paid_cents, 40000);
  EXPECT_EQ(crossing.after.ledger(Ledger::kInpatient).fund_paid_cents, 8040000);
  EXPECT_EQ(InpatientCap(mother, crossing.after).remaining_cents, 0);
}

// ---------------------------------------------------------------------------
// Enrollment and coverage.

TEST(Dianjiang2024, ConcentratedPaymentCoveredFromJanuaryFirst) {
  for (const char* paid : {"2023-10-11", "2023-12-31"}) {
    SCOPED_TRACE(paid);
    Enrollment e = Insured(1);
    e.concentrated = false;
    e.paid_date = D(paid);
    Settlement s;
    ASSERT_TRUE(SettleWith(e, Community(kDianjiang), {}, GeneralVisit("2024-01-01", 10000),
                           &s).ok());
    ExpectSplit(s, {.base_fund = 6000});  // 100 × 60%
    ASSERT_TRUE(SettleWith(e, Community(kDianjiang), {}, GeneralVisit("2024-12-31", 10000),
                           &s).ok());
  }
  // The fixture's concentrated enrollment (paid 2023-12-01) on 2024-01-01.
  Settlement s;
  EXPECT_TRUE(SettleWith(Insured(2), Community(kDianjiang), {}, GeneralVisit("2024-01-01", 10000),
                         &s).ok());
}

// A tier-`tier` person who paid mid-year on `paid`.
Enrollment PaidOn(int tier, const char* paid) {
  Enrollment e = Insured(tier);
  e.concentrated = false;
  e.paid_date = D(paid);
  return e;
}

// A 100.00 level-1 visit is refused (WAITING_PERIOD) on `last_refused` and
// settled (60% = 60.00, no deductible) on `first_covered`.
void ExpectCoveredFrom(const Enrollment& e, const char* last_refused, const char* first_covered) {
  Settlement s;
  absl::Status refused =
      SettleWith(e, Community(kDianjiang), {}, GeneralVisit(last_refused, 10000), &s);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReasonOf(refused), "WAITING_PERIOD");
  ASSERT_TRUE(SettleWith(e, Community(kDianjiang), {}, GeneralVisit(first_covered, 10000), &s).ok());
  ExpectSplit(s, {.base_fund = 6000});
}

TEST(Dianjiang2024, PaidInJanuaryOrFebruaryCoveredFromDayOneOfTheNextMonth) {
  struct Case {
    const char* paid;
    const char* last_refused;
    const char* first_covered;
  };
  const Case cases[] = {
      {"2024-01-01", "2024-01-31", "2024-02-01"},
      {"2024-01-15", "2024-01-31", "2024-02-01"},
      {"2024-02-29", "2024-02-29", "2024-03-01"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.paid);
    ExpectCoveredFrom(PaidOn(1, c.paid), c.last_refused, c.first_covered);
  }
}

TEST(Dianjiang2024, PaidMarchToSeptemberCoveredFrom90DaysAfterPayment) {
  struct Case {
    const char* paid;
    const char* last_refused;
    const char* first_covered;
  };
  const Case cases[] = {
      {"2024-03-10", "2024-06-07", "2024-06-08"},  // 21 + 30 + 31 + 8 = 90 days
      {"2024-03-01", "2024-05-29", "2024-05-30"},  // 30 + 30 + 30 = 90 days
      {"2024-09-30", "2024-12-28", "2024-12-29"},  // 31 + 30 + 29 = 90 days
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.paid);
    ExpectCoveredFrom(PaidOn(2, c.paid), c.last_refused, c.first_covered);
  }
  // A stay is checked on its discharge date: paid 2024-03-10, admitted
  // 06-05, discharged 06-08 → covered; discharged 06-07 → refused.
  Enrollment e = Insured(1);
  e.concentrated = false;
  e.paid_date = D("2024-03-10");
  Settlement s;
  ASSERT_TRUE(SettleWith(e, Hospital(kDianjiang, 1), {},
                         Admission("2024-06-05", "2024-06-08", 200000), &s).ok());
  ExpectSplit(s, {.deductible = 10000, .base_fund = 152000});  // (2000 − 100) × 80%
  absl::Status refused = SettleWith(e, Hospital(kDianjiang, 1), {},
                                    Admission("2024-06-05", "2024-06-07", 200000), &s);
  EXPECT_EQ(ReasonOf(refused), "WAITING_PERIOD");
}

TEST(Dianjiang2024, PaymentAfterSeptember30IsRefused) {
  for (const char* paid : {"2024-10-01", "2024-12-15"}) {
    SCOPED_TRACE(paid);
    Enrollment e = Insured(1);
    e.concentrated = false;
    e.paid_date = D(paid);
    Settlement s;
    absl::Status refused =
        SettleWith(e, Community(kDianjiang), {}, GeneralVisit("2024-12-31", 10000), &s);
    EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(ReasonOf(refused), "ENROLLMENT_PAYMENT_TOO_LATE");
  }
}

TEST(Dianjiang2024, NewbornEnrolledWithin90DaysCoveredFromBirth) {
  // Born 2024-03-01, enrolled and paid 2024-05-20 (30 + 30 + 20 = 80 days).
  Enrollment baby = BornOn(1, "2024-03-01", Category::kInfant);
  baby.newborn = true;
  baby.concentrated = false;
  baby.paid_date = D("2024-05-20");
  // The birth stay, level 2, 2000.00, a minor: 70 + 5 = 75%;
  // (2000 − 300) × 75% = 1275.00.
  Settlement s;
  ASSERT_TRUE(SettleWith(baby, Hospital(kDianjiang, 2), {},
                         Admission("2024-03-01", "2024-03-05", 200000), &s).ok())
      << "covered from birth, before the payment";
  ExpectSplit(s, {.deductible = 30000, .base_fund = 127500, .patient = 72500});
  // An outpatient visit on 2024-03-10 at level 1: 100.00 × 60% = 60.00.
  Settlement visit;
  absl::Status st =
      SettleWith(baby, Community(kDianjiang), s.after, GeneralVisit("2024-03-10", 10000), &visit);
  ASSERT_TRUE(st.ok()) << st;
  ExpectSplit(visit, {.base_fund = 6000});
}

TEST(Dianjiang2024, TierNotInPolicyIsRefused) {
  for (int tier : {0, 3}) {
    Settlement s;
    absl::Status refused = SettleWith(Person(kDianjiang, 2024, tier), Community(kDianjiang), {},
                                      GeneralVisit("2024-06-10", 10000), &s);
    EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << tier;
    EXPECT_EQ(ReasonOf(refused), "TIER_NOT_IN_POLICY") << tier;
  }
}

// ---------------------------------------------------------------------------
// A year of settlements and a reversal in the middle of it.

TEST(Dianjiang2024, SettlementsThroughAYearCrossTheCapsAndTheThresholdMidBill) {
  const Enrollment person = UremiaPatient(1);  // 一档, ordinary
  Settlement a, b, c, d, e, f, g;
  // A: level 3, 20,000.00: deductible 800; 19,200 × 50% = 9,600.00. Burden
  // 10,400.00 < 17,833: no critical illness; patient 10,400.00.
  ASSERT_TRUE(SettleWith(person, Hospital(kDianjiang, 3), {},
                         Admission("2024-02-01", "2024-02-10", 2000000), &a).ok());
  ExpectSplit(a, {.deductible = 80000, .base_fund = 960000, .critical_illness = 0,
                  .patient = 1040000});
  // B: level 2, 30,000.00: deductible 300; 29,700 × 70% = 20,790.00. Burden
  // 9,210.00 on [10,400, 19,610): 1,777.00 above 17,833 × 60% = 1,066.20;
  // patient 30,000 − 20,790 − 1,066.20 = 8,143.80.
  ASSERT_TRUE(SettleWith(person, Hospital(kYuzhong, 2), a.after,
                         Admission("2024-04-01", "2024-04-10", 3000000), &b).ok());
  ExpectSplit(b, {.deductible = 30000, .base_fund = 2079000, .critical_illness = 106620,
                  .patient = 814380});
  // C: dialysis at level 3, 1,200.00: special-outpatient deductible 800 (the
  // admissions' deductibles do not count); 400 × 50% = 200.00. Burden 1,000
  // × 60% = 600.00; patient 1200 − 200 − 600 = 400.00.
  ASSERT_TRUE(SettleWith(person, Hospital(kDianjiang, 3), b.after, Dialysis("2024-06-01", "3"),
                         &c).ok());
  ExpectSplit(c, {.deductible = 80000, .base_fund = 20000, .critical_illness = 60000,
                  .patient = 40000});
  // D: level 3, 110,000.00: deductible 800; 109,200 × 50% = 54,600.00, but
  // the shared cap leaves 80,000 − (9,600 + 20,790 + 200) = 49,410.00.
  // Burden 110,000 − 49,410 = 60,590.00, all above × 60% = 36,354.00;
  // patient 110,000 − 49,410 − 36,354 = 24,236.00.
  ASSERT_TRUE(SettleWith(person, Hospital(kDianjiang, 3), c.after,
                         Admission("2024-08-01", "2024-08-20", 11000000), &d).ok());
  ExpectSplit(d, {.deductible = 80000, .base_fund = 4941000, .critical_illness = 3635400,
                  .patient = 2423600});
  EXPECT_EQ(d.after.FundPaid(LedgerBit(Ledger::kInpatient) |
                             LedgerBit(Ledger::kSpecialOutpatient)),
            8000000);
  // E: general outpatient has its own cap: level 1, 100.00 × 60% = 60.00;
  // no critical illness.
  ASSERT_TRUE(SettleWith(person, Community(kDianjiang), d.after, GeneralVisit("2024-09-01", 10000),
                         &e).ok());
  ExpectSplit(e, {.base_fund = 6000, .critical_illness = 0, .patient = 4000});
  // F: level 3, 300,000.00: deductible 800; the base fund cap is used up → 0.
  // Burden 300,000 × 60% = 180,000.00, but the critical-illness cap leaves
  // 200,000 − (1,066.20 + 600 + 36,354) = 161,979.80; patient 300,000 −
  // 161,979.80 = 138,020.20.
  ASSERT_TRUE(SettleWith(person, Hospital(kDianjiang, 3), e.after,
                         Admission("2024-10-01", "2024-10-31", 30000000), &f).ok());
  ExpectSplit(f, {.deductible = 80000, .base_fund = 0, .critical_illness = 16197980,
                  .patient = 13802020});
  EXPECT_EQ(f.after.critical_illness_paid_cents, 20000000);
  // G: dialysis at level 3, 1,200.00: deductible already paid (0), both caps
  // used up: the patient pays 1,200.00.
  ASSERT_TRUE(SettleWith(person, Hospital(kDianjiang, 3), f.after, Dialysis("2024-11-01", "3"),
                         &g).ok());
  ExpectSplit(g, {.deductible = 0, .base_fund = 0, .critical_illness = 0, .patient = 120000});
  // Burden: 10,400 + 9,210 + 1,000 + 60,590 + 300,000 + 1,200 = 382,400.00.
  EXPECT_EQ(g.after.critical_illness_burden_cents, 38240000);
}

TEST(Dianjiang2024, ReversalInTheMiddleOfTheYearRestoresEveryAccumulator) {
  const Enrollment person = UremiaPatient(1);
  Settlement a, b, c;
  // A and B as in the year above: B crosses the critical-illness threshold.
  ASSERT_TRUE(SettleWith(person, Hospital(kDianjiang, 3), {},
                         Admission("2024-02-01", "2024-02-10", 2000000), &a).ok());
  ASSERT_TRUE(SettleWith(person, Hospital(kDianjiang, 2), a.after,
                         Admission("2024-04-01", "2024-04-10", 3000000), &b).ok());
  ASSERT_EQ(b.amounts.critical_illness_cents, 106620);  // 1,777 × 60%
  // Reverse B: the year is exactly as after A.
  absl::StatusOr<Accumulators> undone = Engine::Reverse(b.after, b.delta);
  ASSERT_TRUE(undone.ok());
  EXPECT_TRUE(undone->SameTotals(a.after));
  EXPECT_EQ(undone->critical_illness_burden_cents, 1040000);  // A's 10,400.00
  EXPECT_EQ(undone->critical_illness_paid_cents, 0);
  EXPECT_EQ(undone->ledger(Ledger::kInpatient).fund_paid_cents, 960000);
  // The same stay settled later sees the year as if B never was: the same
  // 300 deductible, 20,790.00 and 1,066.20.
  ASSERT_TRUE(SettleWith(person, Hospital(kDianjiang, 2), *undone,
                         Admission("2024-05-01", "2024-05-10", 3000000), &c).ok());
  ExpectSplit(c, {.deductible = 30000, .base_fund = 2079000, .critical_illness = 106620,
                  .patient = 814380});
  // Reversing B after a later settlement gives back exactly B's amounts:
  // C' = dialysis on top of B (burden 1,000 × 60% = 600.00 CI); undoing B
  // leaves A + C': burden 10,400 + 1,000 = 11,400.00, CI paid 600.00,
  // inpatient fund 9,600.00, special-outpatient fund 200.00.
  Settlement dialysis;
  ASSERT_TRUE(SettleWith(person, Hospital(kDianjiang, 3), b.after, Dialysis("2024-06-01", "3"),
                         &dialysis).ok());
  ExpectSplit(dialysis, {.base_fund = 20000, .critical_illness = 60000});
  absl::StatusOr<Accumulators> without_b = Engine::Reverse(dialysis.after, b.delta);
  ASSERT_TRUE(without_b.ok());
  EXPECT_EQ(without_b->critical_illness_burden_cents, 1140000);
  EXPECT_EQ(without_b->critical_illness_paid_cents, 60000);
  EXPECT_EQ(without_b->ledger(Ledger::kInpatient).fund_paid_cents, 960000);
  EXPECT_EQ(without_b->ledger(Ledger::kInpatient).deductible_paid_cents, 80000);
  EXPECT_EQ(without_b->ledger(Ledger::kInpatient).visits, 1);
  EXPECT_EQ(without_b->ledger(Ledger::kSpecialOutpatient).fund_paid_cents, 20000);
  EXPECT_EQ(without_b->ledger(Ledger::kSpecialOutpatient).deductible_paid_cents, 80000);
  // And undoing the dialysis too leaves exactly A.
  absl::StatusOr<Accumulators> only_a = Engine::Reverse(*without_b, dialysis.delta);
  ASSERT_TRUE(only_a.ok());
  EXPECT_TRUE(only_a->SameTotals(a.after));
}

TEST(Dianjiang2024, NewbornRuleOnlyForChildrenBornIn2024) {
  // Born 2023-12-20, enrolled as a newborn on 2024-01-15 (26 days later): not
  // "2024年出生", so the January–February rule applies: covered from
  // 2024-02-01.
  Enrollment baby = BornOn(1, "2023-12-20", Category::kInfant);
  baby.newborn = true;
  baby.concentrated = false;
  baby.paid_date = D("2024-01-15");
  Settlement s;
  absl::Status january = SettleWith(baby, Hospital(kDianjiang, 1), {},
                                    GeneralVisit("2024-01-20", 10000), &s);
  EXPECT_EQ(ReasonOf(january), "WAITING_PERIOD");
  ASSERT_TRUE(SettleWith(baby, Hospital(kDianjiang, 1), {}, GeneralVisit("2024-02-01", 10000), &s).ok());
  ExpectSplit(s, {.base_fund = 6000});  // level 1: no deductible, 100 × 60%
}

TEST(Dianjiang2024, ThePaymentDateDecidesOverTheConcentratedFlag) {
  // Marked concentrated, but paid 2024-10-15 — after the last valid day.
  Enrollment late = Insured(1);
  late.concentrated = true;
  late.paid_date = D("2024-10-15");
  Settlement s;
  EXPECT_EQ(ReasonOf(SettleWith(late, Hospital(kDianjiang, 1), {},
                                GeneralVisit("2024-11-01", 10000), &s)),
            "ENROLLMENT_PAYMENT_TOO_LATE");
  // Without a payment date (contribution paid by the government), the flag
  // stands: covered from 01-01.
  late.paid_date = Date();
  EXPECT_TRUE(SettleWith(late, Hospital(kDianjiang, 1), {}, GeneralVisit("2024-01-02", 10000), &s).ok());
}

TEST(Dianjiang2024, AnUncoveredVisitStillAddsToTheRunningTotal) {
  // Level 3 general outpatient pays nothing, but the year's accumulated
  // in-scope expenses grow by the whole in-scope amount (convention 4).
  Settlement s;
  ASSERT_TRUE(SettleWith(Insured(1), Hospital(kDianjiang, 3), {}, GeneralVisit("2024-06-10", 25000), &s).ok());
  ExpectSplit(s, {.base_fund = 0, .patient = 25000});
  EXPECT_EQ(s.after.ledger(Ledger::kGeneralOutpatient).in_scope_cents, 25000);
  EXPECT_EQ(s.after.ledger(Ledger::kGeneralOutpatient).fund_paid_cents, 0);
}

}  // namespace
}  // namespace medsettle::testing
