// Golden cases for Fenghua (奉化, Ningbo) 2025 and the 天一甬宁保 product
// (seeds/fenghua-ningbo-2025-resident-and-tianyi.txt; POLICY-NOTES "Fenghua
// 2025", "Rules that hold for every region", "Computation conventions").
// Each expected figure has its arithmetic beside it, in yuan, worked by hand
// from POLICY-NOTES. Demo catalog: engine/catalog/demo-catalog.csv.
#include <optional>

#include <gtest/gtest.h>

#include "engine/status.h"
#include "tests/support/engine_fixture.h"
#include "tests/support/golden.h"

namespace medsettle::testing {
namespace {

using namespace medsettle::engine;

constexpr RegionCode kFenghua = 330213;       // insured here; inside Ningbo (330200)
constexpr RegionCode kHaishu = 330203;        // Ningbo district: inside the pooling area
constexpr RegionCode kHangzhouXihu = 330106;  // outside Ningbo, inside Zhejiang
constexpr RegionCode kShanghaiXuhui = 310104;  // outside Zhejiang
constexpr const char* kTianyi = "tianyi-yongning-2025";

Enrollment Adult() { return Person(kFenghua, 2025); }

Enrollment WithTianyi(Enrollment e, bool pre_existing = false, bool continuous = false) {
  e.supplementary.product = kTianyi;
  e.supplementary.pre_existing = pre_existing;
  e.supplementary.continuous = continuous;
  return e;
}

Enrollment OfCategory(Category category, const char* birth) {
  Enrollment e = Adult();
  e.category = category;
  e.birth_date = D(birth);
  return e;
}

// A general-outpatient bill: FA0001 consultation 10.00 (A), XA0001 2 × 15.00
// (A), XB0001 50.00 (B, 10% pre-self-pay → 5.00), XC0002 20.00 (C).
// In scope 10 + 30 + 45 = 85.00; total 110.00.
Claim SmallOutpatientBill(std::string_view date = "2025-06-10") {
  return Outpatient(VisitType::kGeneralOutpatient, date,
                    {Line(1, "FA0001", "1", 1000), Line(2, "XA0001", "2", 1500),
                     Line(3, "XB0001", "1", 5000), Line(4, "XC0002", "1", 2000)});
}

// An outpatient bill of one class-A line (FA0004, no price cap) of `cents`.
Claim GeneralOf(Cents cents, std::string_view date = "2025-06-10") {
  return Outpatient(VisitType::kGeneralOutpatient, date, {Line(1, "FA0004", "1", cents)});
}
// A chronic visit of one class-A line (XA0002, no price cap) of `cents`.
Claim ChronicOf(Cents cents, std::string_view date = "2025-06-10") {
  Claim c = Outpatient(VisitType::kChronicOutpatient, date, {Line(1, "XA0002", "1", cents)});
  c.visit.condition = "HYPERTENSION";
  return c;
}
// A stay of one class-A line (FA0004) of `cents`, plus optionally one
// class-C line (XC0001) of `out_of_scope` cents.
Claim StayOf(Cents cents, Cents out_of_scope = 0, const char* admission = "2025-06-01",
             const char* discharge = "2025-06-10") {
  std::vector<BillLine> lines = {Line(1, "FA0004", "1", cents)};
  if (out_of_scope > 0) lines.push_back(Line(2, "XC0001", "1", out_of_scope));
  return Stay(VisitType::kInpatient, admission, discharge, std::move(lines));
}
// 20 bed-days × 50.00 = 1000.00 (class A).
Claim BedStay(const char* admission, const char* discharge) {
  return Stay(VisitType::kInpatient, admission, discharge, {Line(1, "FA0003", "20", 5000)});
}
// Haemodialysis FA0008 3 × 400.00 = 1200.00 (A).
Claim Dialysis(const char* date) {
  Claim c = Outpatient(VisitType::kSpecialOutpatient, date, {Line(1, "FA0008", "3", 40000)});
  c.visit.condition = "UREMIA";
  return c;
}
// A mixed stay: FA0003 20 × 50.00 = 1000.00 (A); XC0001 10,000.00 (C);
// FB0001 CT 350.00 (B 10%, cap 300.00 → over-limit 50.00; pre-self-pay
// round(300 × 10%) = 30.00; in scope 270.00). Total 11,350.00; in scope
// 1270.00; pre-self-pay 30.00; over-limit 50.00; out of scope 10,000.00.
Claim MixedStay() {
  return Stay(VisitType::kInpatient, "2025-07-01", "2025-07-10",
              {Line(1, "FA0003", "20", 5000), Line(2, "XC0001", "1", 1000000),
               Line(3, "FB0001", "1", 35000)});
}

// Inpatient year so far: the whole 1200 deductible paid, `in_scope` of
// accumulated in-scope expenses.
Accumulators InpatientYear(Cents in_scope, Cents deductible = 120000) {
  Accumulators ytd;
  ytd.ledger(Ledger::kInpatient).deductible_paid_cents = deductible;
  ytd.ledger(Ledger::kInpatient).in_scope_cents = in_scope;
  return ytd;
}

const ClaimLaterItem* FindClaimLater(const Settlement& s, int responsibility) {
  for (const ClaimLaterItem& item : s.claim_later) {
    if (item.responsibility == responsibility) return &item;
  }
  return nullptr;
}

// Responsibilities 3 and 4 are listed, never settled, with no estimate.
void ExpectThreeAndFourClaimedLater(const Settlement& s) {
  for (int r : {3, 4}) {
    const ClaimLaterItem* item = FindClaimLater(s, r);
    if (item == nullptr) {
      ADD_FAILURE() << "responsibility " << r << " not in claim_later";
    } else {
      EXPECT_EQ(item->product, kTianyi);
      EXPECT_FALSE(item->estimated_cents.has_value()) << r;
    }
  }
}

// --------------------------------------------------------------- outpatient

TEST(Fenghua2025, OutpatientCommunity60Tertiary30Other45WithoutDeductible) {
  Settlement s;
  // Community centre: 85 × 60% = 51.00.
  ASSERT_TRUE(SettleWith(Adult(), Community(kFenghua), {}, SmallOutpatientBill(), &s).ok());
  ExpectSplit(s, {.total = 11000, .out_of_scope = 2000, .pre_self_pay = 500, .in_scope = 8500,
                  .deductible = 0, .base_fund = 5100, .critical_illness = 0,
                  .supplementary = 0, .patient = 5900});  // 110 − 51
  EXPECT_EQ(s.base_fund_ratio_bp, 6000);
  // Tertiary (level 3, Haishu): 85 × 30% = 25.50.
  ASSERT_TRUE(SettleWith(Adult(), Hospital(kHaishu, 3), {}, SmallOutpatientBill(), &s).ok());
  ExpectSplit(s, {.deductible = 0, .base_fund = 2550, .patient = 8450});
  // Other (level 2): 85 × 45% = 38.25.
  ASSERT_TRUE(SettleWith(Adult(), Hospital(kFenghua, 2), {}, SmallOutpatientBill(), &s).ok());
  ExpectSplit(s, {.deductible = 0, .base_fund = 3825, .patient = 7175});
  // A level-1 hospital that is not base-level is "other": 38.25.
  ASSERT_TRUE(SettleWith(Adult(), Hospital(kFenghua, 1), {}, SmallOutpatientBill(), &s).ok());
  ExpectSplit(s, {.base_fund = 3825});
  // A base-level hospital counts as community: 51.00.
  Institution base = Hospital(kFenghua, 1);
  base.base_level = true;
  ASSERT_TRUE(SettleWith(Adult(), base, {}, SmallOutpatientBill(), &s).ok());
  ExpectSplit(s, {.base_fund = 5100});
  // The year's outpatient running total grows by the in-scope amount.
  EXPECT_EQ(s.after.ledger(Ledger::kGeneralOutpatient).in_scope_cents, 8500);
}

TEST(Fenghua2025, ChronicOutpatientAtCommunity65PercentElsewhereAsGeneral) {
  Enrollment person = Adult();
  person.chronic_conditions = {"HYPERTENSION"};
  Settlement s;
  // 200.00 in scope at a community centre: 200 × 65% = 130.00.
  ASSERT_TRUE(SettleWith(person, Community(kFenghua), {}, ChronicOf(20000), &s).ok());
  ExpectSplit(s, {.in_scope = 20000, .deductible = 0, .base_fund = 13000, .patient = 7000});
  EXPECT_EQ(s.base_fund_ratio_bp, 6500);
  // A base-level hospital is community: 130.00.
  Institution base = Hospital(kFenghua, 2);
  base.base_level = true;
  ASSERT_TRUE(SettleWith(person, base, {}, ChronicOf(20000), &s).ok());
  ExpectSplit(s, {.base_fund = 13000});
  // Tertiary: 200 × 30% = 60.00; other: 200 × 45% = 90.00.
  ASSERT_TRUE(SettleWith(person, Hospital(kHaishu, 3), {}, ChronicOf(20000), &s).ok());
  ExpectSplit(s, {.base_fund = 6000, .patient = 14000});
  ASSERT_TRUE(SettleWith(person, Hospital(kFenghua, 2), {}, ChronicOf(20000), &s).ok());
  ExpectSplit(s, {.base_fund = 9000, .patient = 11000});
}

TEST(Fenghua2025, OutpatientNothingAbove5000AccumulatedGeneralAndChronicShareTheTotal) {
  Enrollment person = Adult();
  person.chronic_conditions = {"HYPERTENSION"};
  // v1: general, tertiary, 2400.00 on [0, 2400): × 30% = 720.00.
  Settlement v1, v2, v3, v4;
  ASSERT_TRUE(SettleWith(person, Hospital(kHaishu, 3), {}, GeneralOf(240000, "2025-02-01"),
                         &v1).ok());
  ExpectSplit(v1, {.deductible = 0, .base_fund = 72000, .patient = 168000});
  // v2: chronic, community, 2000.00 on [2400, 4400): × 65% = 1300.00.
  ASSERT_TRUE(SettleWith(person, Community(kFenghua), v1.after, ChronicOf(200000, "2025-03-01"),
                         &v2).ok());
  ExpectSplit(v2, {.deductible = 0, .base_fund = 130000, .patient = 70000});
  // v3: general, community, 1000.00 on [4400, 5400): 600.00 below 5000 ×
  // 60% = 360.00; the 400.00 above 5000 gets nothing.
  ASSERT_TRUE(SettleWith(person, Community(kFenghua), v2.after, GeneralOf(100000, "2025-04-01"),
                         &v3).ok());
  ExpectSplit(v3, {.deductible = 0, .base_fund = 36000, .patient = 64000});
  // v4: chronic, community, 100.00 on [5400, 5500): nothing.
  ASSERT_TRUE(SettleWith(person, Community(kFenghua), v3.after, ChronicOf(10000, "2025-05-01"),
                         &v4).ok());
  ExpectSplit(v4, {.base_fund = 0, .patient = 10000});
  EXPECT_EQ(v4.after.ledger(Ledger::kGeneralOutpatient).in_scope_cents, 340000);  // 2400 + 1000
  EXPECT_EQ(v4.after.ledger(Ledger::kChronicOutpatient).in_scope_cents, 210000);  // 2000 + 100
  EXPECT_EQ(v4.after.ledger(Ledger::kGeneralOutpatient).fund_paid_cents, 108000);  // 720 + 360
  EXPECT_EQ(v4.after.ledger(Ledger::kChronicOutpatient).fund_paid_cents, 130000);

  // A chronic visit crossing 5000: general total 4950.00; 200.00 on
  // [4950, 5150): 50.00 × 65% = 32.50.
  Accumulators ytd;
  ytd.ledger(Ledger::kGeneralOutpatient).in_scope_cents = 495000;
  Settlement crossing;
  ASSERT_TRUE(SettleWith(person, Community(kFenghua), ytd, ChronicOf(20000), &crossing).ok());
  ExpectSplit(crossing, {.base_fund = 3250, .patient = 16750});
}

// ---------------------------------------------------------------- inpatient

TEST(Fenghua2025, InpatientAnnualDeductibleMadeUpAtEachAdmission) {
  Enrollment person = Adult();
  // a1 community: D 300, paid 0 → 300; [300, 1000) × 80% = 560.00.
  Settlement a1, a2, a3, a4;
  ASSERT_TRUE(SettleWith(person, Community(kFenghua), {}, BedStay("2025-02-01", "2025-02-05"),
                         &a1).ok());
  ExpectSplit(a1, {.in_scope = 100000, .deductible = 30000, .base_fund = 56000,
                   .patient = 44000});
  EXPECT_EQ(a1.base_fund_ratio_bp, 8000);
  // a2 tertiary: max(0, 1200 − 300) = 900; the deductible occupies
  // [1000, 1900), [1900, 2000) × 70% = 70.00.
  ASSERT_TRUE(SettleWith(person, Hospital(kHaishu, 3), a1.after,
                         BedStay("2025-03-01", "2025-03-05"), &a2).ok());
  ExpectSplit(a2, {.deductible = 90000, .base_fund = 7000, .patient = 93000});
  // a3 other (level 2): max(0, 600 − 1200) = 0; 1000 × 70% = 700.00.
  ASSERT_TRUE(SettleWith(person, Hospital(kFenghua, 2), a2.after,
                         BedStay("2025-04-01", "2025-04-05"), &a3).ok());
  ExpectSplit(a3, {.deductible = 0, .base_fund = 70000, .patient = 30000});
  // a4 tertiary: max(0, 1200 − 1200) = 0; 1000 × 70% = 700.00.
  ASSERT_TRUE(SettleWith(person, Hospital(kHaishu, 3), a3.after,
                         BedStay("2025-05-01", "2025-05-05"), &a4).ok());
  ExpectSplit(a4, {.deductible = 0, .base_fund = 70000});
  EXPECT_EQ(a4.after.ledger(Ledger::kInpatient).deductible_paid_cents, 120000);  // 300 + 900
  EXPECT_EQ(a4.after.ledger(Ledger::kInpatient).in_scope_cents, 400000);
  EXPECT_EQ(a4.after.ledger(Ledger::kInpatient).fund_paid_cents, 203000);  // 560+70+700+700
  EXPECT_EQ(a4.after.ledger(Ledger::kInpatient).visits, 4);

  // Other hospital first (600), then tertiary makes up 600 more.
  Settlement b1, b2;
  ASSERT_TRUE(SettleWith(person, Hospital(kFenghua, 2), {}, BedStay("2025-02-01", "2025-02-05"),
                         &b1).ok());
  ExpectSplit(b1, {.deductible = 60000, .base_fund = 28000});  // 400 × 70%
  ASSERT_TRUE(SettleWith(person, Hospital(kHaishu, 3), b1.after,
                         BedStay("2025-03-01", "2025-03-05"), &b2).ok());
  ExpectSplit(b2, {.deductible = 60000, .base_fund = 28000});  // 1200 − 600; 400 × 70%
}

TEST(Fenghua2025, SpecialOutpatientSharesTheInpatientDeductibleAndRunningTotal) {
  Enrollment person = Adult();
  person.special_diseases = {"UREMIA"};
  Institution base = Hospital(kFenghua, 2);
  base.base_level = true;  // community
  // Special outpatient, community: D 300; [300, 1200) × 80% = 720.00.
  Settlement s1, s2, s3;
  ASSERT_TRUE(SettleWith(person, base, {}, Dialysis("2025-02-01"), &s1).ok());
  ExpectSplit(s1, {.in_scope = 120000, .deductible = 30000, .base_fund = 72000,
                   .patient = 48000});
  // Admission, tertiary: 1200 − 300 = 900 on [1200, 2100); [2100, 2200)
  // × 70% = 70.00.
  ASSERT_TRUE(SettleWith(person, Hospital(kHaishu, 3), s1.after,
                         BedStay("2025-03-01", "2025-03-05"), &s2).ok());
  ExpectSplit(s2, {.deductible = 90000, .base_fund = 7000});
  // Special outpatient, tertiary: nothing left; 1200 × 70% = 840.00.
  ASSERT_TRUE(SettleWith(person, Hospital(kHaishu, 3), s2.after, Dialysis("2025-04-01"), &s3).ok());
  ExpectSplit(s3, {.deductible = 0, .base_fund = 84000, .patient = 36000});
  EXPECT_EQ(s3.after.ledger(Ledger::kSpecialOutpatient).deductible_paid_cents, 30000);
  EXPECT_EQ(s3.after.ledger(Ledger::kInpatient).deductible_paid_cents, 90000);
  EXPECT_EQ(s3.after.ledger(Ledger::kSpecialOutpatient).in_scope_cents, 240000);
  EXPECT_EQ(s3.after.ledger(Ledger::kInpatient).in_scope_cents, 100000);
}

TEST(Fenghua2025, InpatientAdultSegmentBoundary40000CrossedMidBill) {
  // 39,000.00 accumulated, deductible paid; 2000.00 on [39,000, 41,000).
  const Accumulators ytd = InpatientYear(3900000);
  Settlement s;
  // Tertiary: 1000 × 70% + 1000 × 75% = 700 + 750 = 1450.00.
  ASSERT_TRUE(SettleWith(Adult(), Hospital(kHaishu, 3), ytd, StayOf(200000), &s).ok());
  ExpectSplit(s, {.in_scope = 200000, .deductible = 0, .base_fund = 145000, .patient = 55000});
  EXPECT_EQ(s.base_fund_ratio_bp, 7000);
  // Other: the same 1450.00.
  ASSERT_TRUE(SettleWith(Adult(), Hospital(kFenghua, 2), ytd, StayOf(200000), &s).ok());
  ExpectSplit(s, {.base_fund = 145000});
  // Community: 1000 × 80% + 1000 × 85% = 800 + 850 = 1650.00.
  ASSERT_TRUE(SettleWith(Adult(), Community(kFenghua), ytd, StayOf(200000), &s).ok());
  ExpectSplit(s, {.base_fund = 165000, .patient = 35000});
  EXPECT_EQ(s.base_fund_ratio_bp, 8000);
  EXPECT_EQ(s.after.ledger(Ledger::kInpatient).in_scope_cents, 4100000);
}

TEST(Fenghua2025, InpatientInfantStudentOtherMinorSegments85_90And80_85) {
  const Accumulators ytd = InpatientYear(3900000);
  struct Case {
    Category category;
    const char* birth;
  };
  for (const Case& c : {Case{Category::kInfant, "2020-05-01"},
                        Case{Category::kStudent, "2003-09-01"},
                        Case{Category::kMinor, "2010-01-01"}}) {
    SCOPED_TRACE(Name(c.category));
    const Enrollment person = OfCategory(c.category, c.birth);
    Settlement s;
    // Tertiary: 1000 × 80% + 1000 × 85% = 800 + 850 = 1650.00.
    ASSERT_TRUE(SettleWith(person, Hospital(kHaishu, 3), ytd, StayOf(200000), &s).ok());
    ExpectSplit(s, {.deductible = 0, .base_fund = 165000, .patient = 35000});
    // Other: the same 1650.00.
    ASSERT_TRUE(SettleWith(person, Hospital(kFenghua, 2), ytd, StayOf(200000), &s).ok());
    ExpectSplit(s, {.base_fund = 165000});
    // Community: 1000 × 85% + 1000 × 90% = 850 + 900 = 1750.00.
    ASSERT_TRUE(SettleWith(person, Community(kFenghua), ytd, StayOf(200000), &s).ok());
    ExpectSplit(s, {.base_fund = 175000, .patient = 25000});
  }
}

TEST(Fenghua2025, InpatientDeductibleOccupiesTheStartOfThePositionInterval) {
  // 39,500.00 accumulated, no deductible paid yet; 2000.00 on
  // [39,500, 41,500).
  const Accumulators ytd = InpatientYear(3950000, 0);
  Settlement s;
  // Tertiary: deductible 1200 on [39,500, 40,700); [40,700, 41,500) = 800
  // × 75% = 600.00.
  ASSERT_TRUE(SettleWith(Adult(), Hospital(kHaishu, 3), ytd, StayOf(200000), &s).ok());
  ExpectSplit(s, {.deductible = 120000, .base_fund = 60000, .patient = 140000});
  EXPECT_EQ(s.base_fund_ratio_bp, 7500);
  // Community: deductible 300 on [39,500, 39,800); 200 × 80% + 1500 × 85%
  // = 160 + 1275 = 1435.00.
  ASSERT_TRUE(SettleWith(Adult(), Community(kFenghua), ytd, StayOf(200000), &s).ok());
  ExpectSplit(s, {.deductible = 30000, .base_fund = 143500, .patient = 56500});
}

TEST(Fenghua2025, InpatientExpenseCeiling300000CrossedMidBillNothingAbove) {
  // 299,000.00 accumulated; 2000.00 on [299,000, 301,000).
  const Accumulators ytd = InpatientYear(29900000);
  Settlement s;
  // Adult tertiary: 1000 × 75% = 750.00; the 1000.00 above 300,000 gets
  // nothing.
  ASSERT_TRUE(SettleWith(Adult(), Hospital(kHaishu, 3), ytd, StayOf(200000), &s).ok());
  ExpectSplit(s, {.deductible = 0, .base_fund = 75000, .patient = 125000});
  // The accumulated expenses grow by the whole in-scope amount.
  EXPECT_EQ(s.after.ledger(Ledger::kInpatient).in_scope_cents, 30100000);
  Settlement next;
  ASSERT_TRUE(SettleWith(Adult(), Hospital(kHaishu, 3), s.after,
                         StayOf(200000, 0, "2025-08-01", "2025-08-05"), &next).ok());
  ExpectSplit(next, {.base_fund = 0, .patient = 200000});
  // Adult community: 1000 × 85% = 850.00.
  ASSERT_TRUE(SettleWith(Adult(), Community(kFenghua), ytd, StayOf(200000), &s).ok());
  ExpectSplit(s, {.base_fund = 85000});
  // Other minor, community: 1000 × 90% = 900.00; tertiary 1000 × 85% = 850.00.
  const Enrollment minor = OfCategory(Category::kMinor, "2010-01-01");
  ASSERT_TRUE(SettleWith(minor, Community(kFenghua), ytd, StayOf(200000), &s).ok());
  ExpectSplit(s, {.base_fund = 90000, .patient = 110000});
  ASSERT_TRUE(SettleWith(minor, Hospital(kHaishu, 3), ytd, StayOf(200000), &s).ok());
  ExpectSplit(s, {.base_fund = 85000});
}

TEST(Fenghua2025, InpatientRowIsTheEnrollmentCategoryNotTheAgeOnAdmission) {
  const Accumulators ytd = InpatientYear(1000000);  // 10,000.00: first segment
  Settlement s;
  // Other minor born 2007-06-01 (between 2006-01-01 and 2018-12-31 on the
  // base date), already 18 when admitted on 2025-07-01: still the minor
  // row, tertiary 80%: 1000 × 80% = 800.00.
  const Enrollment turned_adult = OfCategory(Category::kMinor, "2007-06-01");
  ASSERT_TRUE(SettleWith(turned_adult, Hospital(kHaishu, 3), ytd,
                         BedStay("2025-07-01", "2025-07-05"), &s).ok());
  ExpectSplit(s, {.base_fund = 80000});
  // A full-time student aged 21: student row, 800.00.
  ASSERT_TRUE(SettleWith(OfCategory(Category::kStudent, "2003-09-01"), Hospital(kHaishu, 3), ytd,
                         BedStay("2025-07-01", "2025-07-05"), &s).ok());
  ExpectSplit(s, {.base_fund = 80000});
  // An adult: 1000 × 70% = 700.00.
  ASSERT_TRUE(SettleWith(Adult(), Hospital(kHaishu, 3), ytd, BedStay("2025-07-01", "2025-07-05"),
                         &s).ok());
  ExpectSplit(s, {.base_fund = 70000});
}

TEST(Fenghua2025, MaternityDeliveryAsInpatientPrenatalAsOutpatient) {
  // Natural delivery FA0006 1 × 1000.00 (A) at a tertiary hospital, as an
  // inpatient stay: deductible 1000 of the 1200 (the whole in-scope); the
  // fund pays nothing.
  Settlement delivery;
  ASSERT_TRUE(SettleWith(Adult(), Hospital(kHaishu, 3), {},
                         Stay(VisitType::kDeliveryNatural, "2025-05-01", "2025-05-04",
                              {Line(1, "FA0006", "1", 100000)}),
                         &delivery).ok());
  ExpectSplit(delivery, {.deductible = 100000, .base_fund = 0, .patient = 100000});
  EXPECT_EQ(delivery.after.ledger(Ledger::kInpatient).in_scope_cents, 100000);
  // Prenatal check FA0005 1 × 150.00 (A) at a community centre, as
  // outpatient: 150 × 60% = 90.00.
  Settlement prenatal;
  ASSERT_TRUE(SettleWith(Adult(), Community(kFenghua), delivery.after,
                         Outpatient(VisitType::kPrenatalCheck, "2025-03-01",
                                    {Line(1, "FA0005", "1", 15000)}),
                         &prenatal).ok());
  ExpectSplit(prenatal, {.deductible = 0, .base_fund = 9000, .patient = 6000});
  EXPECT_EQ(prenatal.after.ledger(Ledger::kGeneralOutpatient).in_scope_cents, 15000);
}

TEST(Fenghua2025, NoCriticalIllnessLayer) {
  Accumulators ytd = InpatientYear(0);
  ytd.critical_illness_burden_cents = 10000000;  // 100,000.00 of burden
  // 2000.00 at tertiary, deductible paid: 2000 × 70% = 1400.00; the 600.00
  // burden gets nothing more.
  Settlement s;
  ASSERT_TRUE(SettleWith(Adult(), Hospital(kHaishu, 3), ytd, StayOf(200000), &s).ok());
  ExpectSplit(s, {.base_fund = 140000, .critical_illness = 0, .supplementary = 0,
                  .patient = 60000});
}

// ------------------------------------------------------------ 天一甬宁保

TEST(Fenghua2025, TianyiYearResponsibilities1And2ThresholdsCrossedMidBill) {
  const Enrollment person = WithTianyi(Adult());
  Settlement s1, s2, s3;
  // s1 tertiary, 30,000.00 in scope: deductible 1200; 28,800 × 70% =
  // 20,160.00. R1 base 30,000 − 20,160 = 9,840.00 on [0, 9,840): 3,840.00
  // above 6,000 × 30% = 1,152.00. R2 base 0.
  ASSERT_TRUE(SettleWith(person, Hospital(kHaishu, 3), {},
                         StayOf(3000000, 0, "2025-03-01", "2025-03-15"), &s1).ok());
  ExpectSplit(s1, {.total = 3000000, .in_scope = 3000000, .deductible = 120000,
                   .base_fund = 2016000, .critical_illness = 0, .supplementary = 115200,
                   .patient = 868800});  // 30,000 − 20,160 − 1,152
  EXPECT_EQ(s1.after.supplementary[0].base_cents, 984000);
  EXPECT_EQ(s1.after.supplementary[0].paid_cents, 115200);
  EXPECT_EQ(s1.after.supplementary[1].base_cents, 0);
  ExpectThreeAndFourClaimedLater(s1);
  EXPECT_EQ(FindClaimLater(s1, 2), nullptr);
  // s2 tertiary, 20,000.00 in scope + 8,000.00 out of scope: in scope on
  // [30,000, 50,000): 10,000 × 70% + 10,000 × 75% = 14,500.00.
  // R1 base 20,000 − 14,500 = 5,500.00 on [9,840, 15,340): × 30% = 1,650.00.
  // R2 base 8,000.00 on [0, 8,000): 2,000 above 6,000 × 20% = 400.00.
  ASSERT_TRUE(SettleWith(person, Hospital(kHaishu, 3), s1.after,
                         StayOf(2000000, 800000, "2025-06-01", "2025-06-10"), &s2).ok());
  ExpectSplit(s2, {.total = 2800000, .out_of_scope = 800000, .in_scope = 2000000,
                   .deductible = 0, .base_fund = 1450000,
                   .supplementary = 205000,  // 1,650 + 400
                   .patient = 1145000});     // 28,000 − 14,500 − 2,050
  EXPECT_EQ(s2.after.supplementary[0].base_cents, 1534000);
  EXPECT_EQ(s2.after.supplementary[0].paid_cents, 280200);  // 1,152 + 1,650
  EXPECT_EQ(s2.after.supplementary[1].base_cents, 800000);
  EXPECT_EQ(s2.after.supplementary[1].paid_cents, 40000);
  // s3 tertiary, 10,000.00 in scope + 15,000.00 out of scope: in scope on
  // [50,000, 60,000) × 75% = 7,500.00.
  // R1 base 2,500.00 on [15,340, 17,840): × 30% = 750.00.
  // R2 base 15,000.00 on [8,000, 23,000): 12,000 × 20% + 3,000 × 50% =
  // 2,400 + 1,500 = 3,900.00.
  ASSERT_TRUE(SettleWith(person, Hospital(kHaishu, 3), s2.after,
                         StayOf(1000000, 1500000, "2025-09-01", "2025-09-10"), &s3).ok());
  ExpectSplit(s3, {.total = 2500000, .base_fund = 750000,
                   .supplementary = 465000,  // 750 + 3,900
                   .patient = 1285000});     // 25,000 − 7,500 − 4,650
  EXPECT_EQ(s3.after.supplementary[1].base_cents, 2300000);
  EXPECT_EQ(s3.after.supplementary[1].paid_cents, 430000);  // 400 + 3,900
}

TEST(Fenghua2025, TianyiResponsibility1Above20000At60PercentAndCap500000) {
  Accumulators ytd = InpatientYear(500000);
  ytd.supplementary[0].base_cents = 1980000;  // 19,800.00
  // 2000.00 at tertiary: fund 2000 × 70% = 1400.00; R1 base 600.00 on
  // [19,800, 20,400): 200 × 30% + 400 × 60% = 60 + 240 = 300.00.
  Settlement s;
  ASSERT_TRUE(SettleWith(WithTianyi(Adult()), Hospital(kHaishu, 3), ytd, StayOf(200000), &s).ok());
  ExpectSplit(s, {.base_fund = 140000, .supplementary = 30000, .patient = 30000});
  // Responsibility 1 does not depend on the pre-existing flag: 300.00.
  ASSERT_TRUE(SettleWith(WithTianyi(Adult(), true), Hospital(kHaishu, 3), ytd, StayOf(200000),
                         &s).ok());
  ExpectSplit(s, {.base_fund = 140000, .supplementary = 30000});
  // Cap: 499,900.00 paid, base 100,000.00: 600 × 60% = 360.00, capped at
  // 500,000 − 499,900 = 100.00.
  ytd.supplementary[0].base_cents = 10000000;
  ytd.supplementary[0].paid_cents = 49990000;
  ASSERT_TRUE(SettleWith(WithTianyi(Adult()), Hospital(kHaishu, 3), ytd, StayOf(200000), &s).ok());
  ExpectSplit(s, {.base_fund = 140000, .supplementary = 10000, .patient = 50000});
  EXPECT_EQ(s.after.supplementary[0].paid_cents, 50000000);
  Settlement next;
  ASSERT_TRUE(SettleWith(WithTianyi(Adult()), Hospital(kHaishu, 3), s.after,
                         StayOf(200000, 0, "2025-08-01", "2025-08-05"), &next).ok());
  ExpectSplit(next, {.supplementary = 0});
}

TEST(Fenghua2025, TianyiResponsibility2RatiosPreExistingNotAndContinuous) {
  Accumulators ytd = InpatientYear(500000);
  ytd.supplementary[1].base_cents = 1500000;  // 15,000.00
  // MixedStay at tertiary: fund [5,000, 6,270) 1270 × 70% = 889.00.
  // R1 base 30 + 1270 − 889 = 411.00 on [0, 411): nothing.
  // R2 base 10,000 + 50 = 10,050.00 on [15,000, 25,050): 5,000 in 6k–20k,
  // 5,050 above 20,000.
  struct Case {
    bool pre_existing, continuous;
    Cents supplementary;
  };
  for (const Case& c : {
           Case{false, false, 352500},  // 5,000 × 20% + 5,050 × 50% = 1,000 + 2,525
           Case{false, true, 403000},   // 1,000 + 5,050 × 60% = 1,000 + 3,030
           Case{true, false, 176250},   // 5,000 × 10% + 5,050 × 25% = 500 + 1,262.50
           Case{true, true, 176250},    // the continuous bonus is the not-pre-existing column's
       }) {
    SCOPED_TRACE(::testing::Message() << "pre_existing=" << c.pre_existing
                                      << " continuous=" << c.continuous);
    Settlement s;
    ASSERT_TRUE(SettleWith(WithTianyi(Adult(), c.pre_existing, c.continuous),
                           Hospital(kHaishu, 3), ytd, MixedStay(), &s).ok());
    ExpectSplit(s, {.total = 1135000, .out_of_scope = 1000000, .over_limit = 5000,
                    .pre_self_pay = 3000, .in_scope = 127000, .deductible = 0,
                    .base_fund = 88900, .supplementary = c.supplementary,
                    .patient = 1135000 - 88900 - c.supplementary});
    EXPECT_EQ(s.after.supplementary[1].base_cents, 2505000);
    EXPECT_EQ(s.after.supplementary[0].base_cents, 41100);
  }
}

TEST(Fenghua2025, TianyiResponsibility2Cap1200000) {
  Accumulators ytd = InpatientYear(500000);
  ytd.supplementary[1].base_cents = 10000000;   // 100,000.00
  ytd.supplementary[1].paid_cents = 119950000;  // 1,199,500.00
  // R2 10,050 × 50% = 5,025.00, capped at 1,200,000 − 1,199,500 = 500.00.
  Settlement s;
  ASSERT_TRUE(SettleWith(WithTianyi(Adult()), Hospital(kHaishu, 3), ytd, MixedStay(), &s).ok());
  ExpectSplit(s, {.base_fund = 88900, .supplementary = 50000,
                  .patient = 996100});  // 11,350 − 889 − 500
  EXPECT_EQ(s.after.supplementary[1].paid_cents, 120000000);
}

TEST(Fenghua2025, TianyiPaidOnlyOnInpatientAndSpecialOutpatient) {
  Enrollment person = WithTianyi(Adult());
  person.chronic_conditions = {"HYPERTENSION"};
  person.special_diseases = {"UREMIA"};
  Accumulators ytd = InpatientYear(500000);
  ytd.supplementary[0].base_cents = 3000000;  // 30,000.00: every yuan would pay 60%
  ytd.supplementary[1].base_cents = 3000000;
  Settlement s;
  // General outpatient, community: 85 × 60% = 51.00; no supplementary, though
  // pre-self-pay 5.00, burden 34.00 and out-of-scope 20.00 are there.
  ASSERT_TRUE(SettleWith(person, Community(kFenghua), ytd, SmallOutpatientBill(), &s).ok());
  ExpectSplit(s, {.base_fund = 5100, .supplementary = 0, .patient = 5900});
  EXPECT_EQ(s.after.supplementary[0], ytd.supplementary[0]);
  EXPECT_EQ(s.after.supplementary[1], ytd.supplementary[1]);
  EXPECT_EQ(FindClaimLater(s, 1), nullptr);
  EXPECT_EQ(FindClaimLater(s, 2), nullptr);
  ExpectThreeAndFourClaimedLater(s);
  // Chronic outpatient, community: 200 × 65% = 130.00; no supplementary.
  ASSERT_TRUE(SettleWith(person, Community(kFenghua), ytd, ChronicOf(20000), &s).ok());
  ExpectSplit(s, {.base_fund = 13000, .supplementary = 0, .patient = 7000});
  EXPECT_EQ(s.after.supplementary[0], ytd.supplementary[0]);
  // Special outpatient, tertiary: 1200 × 70% = 840.00; R1 base 360.00 above
  // 20,000 × 60% = 216.00.
  ASSERT_TRUE(SettleWith(person, Hospital(kHaishu, 3), ytd, Dialysis("2025-06-10"), &s).ok());
  ExpectSplit(s, {.base_fund = 84000, .supplementary = 21600,
                  .patient = 14400});  // 1200 − 840 − 216
  EXPECT_EQ(s.after.supplementary[0].base_cents, 3036000);
  ExpectThreeAndFourClaimedLater(s);
}

TEST(Fenghua2025, TianyiInsideZhejiangResponsibilities1And2AtTheCounter) {
  Accumulators ytd = InpatientYear(500000);
  ytd.supplementary[0].base_cents = 1000000;  // 10,000.00
  ytd.supplementary[1].base_cents = 500000;   // 5,000.00
  // MixedStay at tertiary: fund 889.00 (1270 × 70%).
  // R1 base 411.00 on [10,000, 10,411): × 30% = 123.30.
  // R2 base 10,050.00 on [5,000, 15,050): 9,050 above 6,000 × 20% = 1,810.00.
  Enrollment person = WithTianyi(Adult());
  person.out_of_area_filings.push_back({330100, D("2025-01-01"), D("2025-12-31")});
  for (const Institution& where : {Hospital(kHaishu, 3), Hospital(kHangzhouXihu, 3)}) {
    SCOPED_TRACE(where.region_code);
    Settlement s;
    ASSERT_TRUE(SettleWith(person, where, ytd, MixedStay(), &s).ok());
    EXPECT_EQ(s.policy_id, "fenghua-2025");
    ExpectSplit(s, {.base_fund = 88900, .supplementary = 193330,  // 123.30 + 1,810
                    .patient = 852770});  // 11,350 − 889 − 1,933.30
    EXPECT_EQ(FindClaimLater(s, 1), nullptr);
    EXPECT_EQ(FindClaimLater(s, 2), nullptr);
    ExpectThreeAndFourClaimedLater(s);
    EXPECT_EQ(s.after.supplementary[0].base_cents, 1041100);
    EXPECT_EQ(s.after.supplementary[0].paid_cents, 12330);
    EXPECT_EQ(s.after.supplementary[1].base_cents, 1505000);
    EXPECT_EQ(s.after.supplementary[1].paid_cents, 181000);
  }
}

TEST(Fenghua2025, TianyiOutsideZhejiangResponsibility2ClaimedLaterAndNotAccumulated) {
  Accumulators ytd = InpatientYear(500000);
  ytd.supplementary[0].base_cents = 1000000;
  ytd.supplementary[1].base_cents = 500000;
  Enrollment person = WithTianyi(Adult());
  person.out_of_area_filings.push_back({310000, D("2025-01-01"), D("2025-12-31")});
  // Shanghai, tertiary, Fenghua rules: fund 889.00; only R1 at the counter:
  // 123.30 (as inside Zhejiang).
  Settlement s;
  ASSERT_TRUE(SettleWith(person, Hospital(kShanghaiXuhui, 3), ytd, MixedStay(), &s).ok());
  ExpectSplit(s, {.base_fund = 88900, .supplementary = 12330,
                  .patient = 1033770});  // 11,350 − 889 − 123.30
  // R2 is listed: base 10,050.00, estimate 9,050 × 20% = 1,810.00.
  const ClaimLaterItem* r2 = FindClaimLater(s, 2);
  ASSERT_NE(r2, nullptr);
  EXPECT_EQ(r2->product, kTianyi);
  EXPECT_EQ(r2->base_cents, std::optional<Cents>(1005000));
  EXPECT_EQ(r2->estimated_cents, std::optional<Cents>(181000));
  EXPECT_EQ(FindClaimLater(s, 1), nullptr);
  ExpectThreeAndFourClaimedLater(s);
  // R2 adds nothing to the accumulators; R1 does.
  EXPECT_EQ(s.after.supplementary[1], ytd.supplementary[1]);
  EXPECT_EQ(s.delta.supplementary[1].base_cents, 0);
  EXPECT_EQ(s.delta.supplementary[1].paid_cents, 0);
  EXPECT_EQ(s.after.supplementary[0].base_cents, 1041100);
  EXPECT_EQ(s.after.supplementary[0].paid_cents, 12330);
}

TEST(Fenghua2025, WithoutTheProductNoSupplementary) {
  Accumulators ytd = InpatientYear(500000);
  ytd.supplementary[0].base_cents = 1000000;
  ytd.supplementary[1].base_cents = 500000;
  Settlement s;
  // Fund 889.00; the patient pays 11,350 − 889 = 10,461.00.
  ASSERT_TRUE(SettleWith(Adult(), Hospital(kHaishu, 3), ytd, MixedStay(), &s).ok());
  ExpectSplit(s, {.base_fund = 88900, .supplementary = 0, .patient = 1046100});
  EXPECT_TRUE(s.claim_later.empty());
  EXPECT_EQ(s.after.supplementary[0], ytd.supplementary[0]);
  EXPECT_EQ(s.after.supplementary[1], ytd.supplementary[1]);
  // Another product is not 天一甬宁保.
  Enrollment other = Adult();
  other.supplementary.product = "tianyi-yongning-2024";  // last year's product
  ASSERT_TRUE(SettleWith(other, Hospital(kHaishu, 3), ytd, MixedStay(), &s).ok());
  ExpectSplit(s, {.base_fund = 88900, .supplementary = 0, .patient = 1046100});
  EXPECT_TRUE(s.claim_later.empty());
  // ...but never silently: the trace says the product was not settled.
  bool said = false;
  for (const TraceStep& t : s.trace) said |= t.rule == TraceRule::kSupplementaryNotOffered;
  EXPECT_TRUE(said);
}

// ------------------------------------------------------------------ coverage

TEST(Fenghua2025, ConcentratedPaymentBy20241227CoveredFrom20250101) {
  Enrollment e = Adult();
  e.concentrated = false;
  e.paid_date = D("2024-12-27");  // the last payment day of the concentrated period
  Settlement s;
  EXPECT_TRUE(SettleWith(e, Community(kFenghua), {}, SmallOutpatientBill("2025-01-01"), &s).ok());
  e.concentrated = true;
  e.paid_date = D("2024-11-05");
  EXPECT_TRUE(SettleWith(e, Community(kFenghua), {}, SmallOutpatientBill("2025-01-01"), &s).ok());
}

TEST(Fenghua2025, PaymentAfterTheConcentratedPeriodWaitsThreeMonths) {
  // Paid 2024-12-30, after the 12-27 deadline: outside the concentrated
  // period → covered from the same day three months later, 2025-03-30.
  Enrollment e = Adult();
  e.concentrated = false;
  e.paid_date = D("2024-12-30");
  Settlement s;
  EXPECT_EQ(ReasonOf(SettleWith(e, Community(kFenghua), {}, SmallOutpatientBill("2025-03-29"), &s)),
            "WAITING_PERIOD");
  absl::Status covered =
      SettleWith(e, Community(kFenghua), {}, SmallOutpatientBill("2025-03-30"), &s);
  EXPECT_TRUE(covered.ok()) << covered;
}

TEST(Fenghua2025, MidYearPaymentWaitingPeriodOfThreeMonths) {
  Enrollment e = Adult();
  e.concentrated = false;
  e.paid_date = D("2025-02-10");  // covered from 2025-05-10
  Settlement s;
  absl::Status refused =
      SettleWith(e, Community(kFenghua), {}, SmallOutpatientBill("2025-05-09"), &s);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReasonOf(refused), "WAITING_PERIOD");
  EXPECT_TRUE(SettleWith(e, Community(kFenghua), {}, SmallOutpatientBill("2025-05-10"), &s).ok());
  absl::StatusOr<CoverageDecision> decision = ShippedEngine().CheckCoverage(
      e, Community(kFenghua), SmallOutpatientBill("2025-05-10").visit, CredentialKind::kIdCard,
      std::nullopt);
  ASSERT_TRUE(decision.ok());
  EXPECT_EQ(decision->covered_from, D("2025-05-10"));
  // Inside the waiting period a stay with the 天一甬宁保 is refused too.
  EXPECT_EQ(ReasonOf(SettleWith(WithTianyi(e), Hospital(kHaishu, 3), {},
                                StayOf(200000, 0, "2025-04-01", "2025-04-10"), &s)),
            "WAITING_PERIOD");
  // End-of-month clamp: paid 2025-08-31 → 2025-11-30.
  e.paid_date = D("2025-08-31");
  EXPECT_EQ(ReasonOf(SettleWith(e, Community(kFenghua), {}, SmallOutpatientBill("2025-11-29"), &s)),
            "WAITING_PERIOD");
  EXPECT_TRUE(SettleWith(e, Community(kFenghua), {}, SmallOutpatientBill("2025-11-30"), &s).ok());
  // Paid 2025-11-30 → 2026-02-28: nothing in 2025.
  e.paid_date = D("2025-11-30");
  EXPECT_EQ(ReasonOf(SettleWith(e, Community(kFenghua), {}, SmallOutpatientBill("2025-12-31"), &s)),
            "WAITING_PERIOD");
}

TEST(Fenghua2025, NewbornEnrolledWithin90DaysCoveredFromBirth) {
  Enrollment baby = OfCategory(Category::kInfant, "2025-04-01");
  baby.newborn = true;
  baby.concentrated = false;
  baby.paid_date = D("2025-06-15");  // 29 + 31 + 15 = 75 days after birth
  Settlement s;
  EXPECT_TRUE(SettleWith(baby, Community(kFenghua), {}, SmallOutpatientBill("2025-04-01"), &s).ok());
  // 105 days (29 + 31 + 30 + 15, paid 2025-07-15): the waiting period
  // applies, covered from 2025-10-15.
  baby.paid_date = D("2025-07-15");
  EXPECT_EQ(ReasonOf(SettleWith(baby, Community(kFenghua), {}, SmallOutpatientBill("2025-09-01"), &s)),
            "WAITING_PERIOD");
  EXPECT_TRUE(SettleWith(baby, Community(kFenghua), {}, SmallOutpatientBill("2025-10-15"), &s).ok());
}

TEST(Fenghua2025, OutOfAreaNeedsAFilingOrTheEmergencyFlag) {
  Settlement s;
  const Accumulators ytd = InpatientYear(500000);
  absl::Status refused =
      SettleWith(Adult(), Hospital(kShanghaiXuhui, 3), ytd, BedStay("2025-06-01", "2025-06-05"), &s);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReasonOf(refused), "OUT_OF_AREA_NO_FILING");
  // Emergency: settled under Fenghua rules, 1000 × 70% = 700.00, filing to follow.
  Claim emergency = BedStay("2025-06-01", "2025-06-05");
  emergency.visit.emergency = true;
  ASSERT_TRUE(SettleWith(Adult(), Hospital(kShanghaiXuhui, 3), ytd, emergency, &s).ok());
  ExpectSplit(s, {.deductible = 0, .base_fund = 70000, .patient = 30000});
  EXPECT_TRUE(s.filing_to_follow);
  // Inside Ningbo (Haishu) no filing is needed.
  ASSERT_TRUE(SettleWith(Adult(), Hospital(kHaishu, 3), ytd, BedStay("2025-06-01", "2025-06-05"),
                         &s).ok());
  EXPECT_FALSE(s.filing_to_follow);
}

// ------------------------------------------------------------------ reversal

TEST(Fenghua2025, ReversalInTheMiddleOfTheYearRestoresEveryAccumulator) {
  const Enrollment person = WithTianyi(Adult());
  Settlement a, b, c;
  // a: as s1 of the year test: fund 20,160.00, supplementary 1,152.00.
  ASSERT_TRUE(SettleWith(person, Hospital(kHaishu, 3), {},
                         StayOf(3000000, 0, "2025-03-01", "2025-03-15"), &a).ok());
  ExpectSplit(a, {.base_fund = 2016000, .supplementary = 115200});
  // b: as s2: fund 14,500.00, supplementary 1,650 + 400 = 2,050.00.
  ASSERT_TRUE(SettleWith(person, Hospital(kHaishu, 3), a.after,
                         StayOf(2000000, 800000, "2025-06-01", "2025-06-10"), &b).ok());
  ExpectSplit(b, {.base_fund = 1450000, .supplementary = 205000});
  // Reverse b: the year is as after a.
  absl::StatusOr<Accumulators> undone = Engine::Reverse(b.after, b.delta);
  ASSERT_TRUE(undone.ok());
  EXPECT_TRUE(undone->SameTotals(a.after));
  EXPECT_EQ(undone->ledger(Ledger::kInpatient).in_scope_cents, 3000000);
  EXPECT_EQ(undone->ledger(Ledger::kInpatient).deductible_paid_cents, 120000);
  EXPECT_EQ(undone->ledger(Ledger::kInpatient).fund_paid_cents, 2016000);
  EXPECT_EQ(undone->ledger(Ledger::kInpatient).visits, 1);
  EXPECT_EQ(undone->supplementary[0].base_cents, 984000);
  EXPECT_EQ(undone->supplementary[0].paid_cents, 115200);
  EXPECT_EQ(undone->supplementary[1].base_cents, 0);
  EXPECT_EQ(undone->supplementary[1].paid_cents, 0);
  // c: the same bill as b again sees the year as if b never was.
  ASSERT_TRUE(SettleWith(person, Hospital(kHaishu, 3), *undone,
                         StayOf(2000000, 800000, "2025-07-01", "2025-07-10"), &c).ok());
  EXPECT_EQ(c.amounts, b.amounts);
  EXPECT_TRUE(c.after.SameTotals(b.after));
}

TEST(Fenghua2025, ReenrolmentAfterAGapWaitsThreeMonthsEvenInTheConcentratedPeriod) {
  // Paid 2024-11-15 inside the concentrated period, but after a gap in
  // contributions: covered from the same day three months later, 2025-02-15.
  Enrollment returning = Adult();
  returning.paid_date = D("2024-11-15");
  returning.reenrolled_after_gap = true;
  Settlement s;
  EXPECT_EQ(ReasonOf(SettleWith(returning, Community(kFenghua), {},
                                SmallOutpatientBill("2025-02-14"), &s)),
            "WAITING_PERIOD");
  EXPECT_TRUE(SettleWith(returning, Community(kFenghua), {}, SmallOutpatientBill("2025-02-15"), &s).ok());
  // Quzhou 2024 has no gap rule: the same record is covered from 01-01.
  Enrollment quzhou = Person(330800, 2024);
  quzhou.reenrolled_after_gap = true;
  Claim visit = SmallOutpatientBill("2024-01-02");
  EXPECT_TRUE(SettleWith(quzhou, Community(330802), {}, visit, &s).ok());
}

TEST(Fenghua2025, CategoryMustAgreeWithTheBirthDate) {
  // Base date 2024-12-31: born on or before 2005-12-31 → adult; on or after
  // 2019-01-01 → infant; between → other minor; students any age.
  Settlement s;
  const Enrollment wrong = OfCategory(Category::kAdult, "2015-03-01");  // a minor
  absl::Status refused = SettleWith(wrong, Community(kFenghua), {}, SmallOutpatientBill(), &s);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReasonOf(refused), "ENROLLMENT_INVALID");
  EXPECT_EQ(FieldOf(refused), "enrollment.category");
  EXPECT_EQ(ReasonOf(SettleWith(OfCategory(Category::kInfant, "2018-12-31"), Community(kFenghua),
                                {}, SmallOutpatientBill(), &s)),
            "ENROLLMENT_INVALID");
  for (const auto& [category, birth] : {std::pair{Category::kAdult, "2005-12-31"},
                                        std::pair{Category::kMinor, "2006-01-01"},
                                        std::pair{Category::kMinor, "2018-12-31"},
                                        std::pair{Category::kInfant, "2019-01-01"},
                                        std::pair{Category::kStudent, "1990-05-05"}}) {
    EXPECT_TRUE(SettleWith(OfCategory(category, birth), Community(kFenghua), {},
                           SmallOutpatientBill(), &s).ok())
        << Name(category) << " born " << birth;
  }
}

}  // namespace
}  // namespace medsettle::testing
