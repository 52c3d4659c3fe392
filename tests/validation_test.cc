// Bad input gets a clear error and changes nothing. One case per validation
// rule of ValidateClaim and ValidateAccumulators and per refusal of coverage
// and Engine::Reverse: each names the absl code, the stable reason
// (engine/status.h) and, for INVALID_ARGUMENT, the exact field path. Every
// refusal is also pushed through Engine::Settle, which must return the same
// status, leave the caller's year untouched and leave nothing in its output
// that could pass for a settlement. Most cases use Quzhou 2024 (insured
// 330800, institutions in 330802); the late-payment cases Dianjiang 2024.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "engine/status.h"
#include "tests/support/engine_fixture.h"

namespace medsettle::testing {
namespace {

using namespace medsettle::engine;

constexpr RegionCode kQuzhou = 330800;
constexpr RegionCode kKecheng = 330802;    // inside the Quzhou pooling area
constexpr RegionCode kHangzhou = 330106;   // outside it
constexpr RegionCode kDianjiang = 500231;  // Dianjiang 2024: tiers 1 and 2

constexpr absl::StatusCode kOk = absl::StatusCode::kOk;
constexpr absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;
constexpr absl::StatusCode kRefused = absl::StatusCode::kFailedPrecondition;
constexpr absl::StatusCode kDenied = absl::StatusCode::kPermissionDenied;

// A valid general-outpatient bill. Line index 2 is 2.5 × 3.33 = 8.325 →
// 8.33 (half up), so the amount rounding rule is exercised by the valid
// claim itself.
Claim ValidClaim() {
  return Outpatient(VisitType::kGeneralOutpatient, "2024-06-10",
                    {Line(1, "FA0001", "1", 1000), Line(2, "XA0001", "2", 1500),
                     Line(3, "XB0001", "2.5", 333), Line(4, "XC0002", "1", 2000)});
}

Claim ValidStay(VisitType type = VisitType::kInpatient) {
  return Stay(type, "2024-03-01", "2024-03-05",
              {Line(1, "FA0003", "4", 5000), Line(2, "FA0004", "1", 3000)});
}

// A year with something in every kind of total, so "unchanged" means more
// than "still zero".
Accumulators SomeYear() {
  Accumulators a;
  a.ledger(Ledger::kGeneralOutpatient).deductible_paid_cents = 5000;
  a.ledger(Ledger::kGeneralOutpatient).in_scope_cents = 5000;
  a.ledger(Ledger::kGeneralOutpatient).visits = 2;
  a.ledger(Ledger::kInpatient).deductible_paid_cents = 40000;
  a.ledger(Ledger::kInpatient).in_scope_cents = 90000;
  a.ledger(Ledger::kInpatient).fund_paid_cents = 42500;
  a.ledger(Ledger::kInpatient).visits = 1;
  a.critical_illness_burden_cents = 47500;
  a.supplementary[0].base_cents = 1200;
  a.version = 7;
  return a;
}

// `n` bill lines, line_no 1..n, 0.01 each.
std::vector<BillLine> ManyLines(int n) {
  std::vector<BillLine> lines;
  lines.reserve(static_cast<size_t>(n));
  const BillLine one = Line(1, "XA0001", "1", 1);
  for (int i = 0; i < n; ++i) {
    lines.push_back(one);
    lines.back().line_no = i + 1;
  }
  return lines;
}

// Everything Settle reads, valid and covered by default.
struct Scenario {
  Enrollment enrollment = Person(kQuzhou, 2024);
  Institution institution = Hospital(kKecheng, 2);
  Accumulators year_to_date = SomeYear();
  Claim claim = ValidClaim();
  std::optional<int64_t> voucher_issued_at_unix;
};

// Dianjiang 2024, tier 1, paid mid-year (not in the concentrated period).
Scenario DianjiangPaidOn(const char* paid, const char* visit_date) {
  Scenario s;
  s.enrollment = Person(kDianjiang, 2024, 1);
  s.enrollment.concentrated = false;
  s.enrollment.paid_date = D(paid);
  s.institution = Hospital(kDianjiang, 2);
  s.year_to_date = {};
  s.claim = ValidClaim();
  s.claim.visit.service_date = D(visit_date);
  return s;
}

bool SameAccumulators(const Accumulators& a, const Accumulators& b) {
  return a.ledgers == b.ledgers &&
         a.critical_illness_burden_cents == b.critical_illness_burden_cents &&
         a.critical_illness_paid_cents == b.critical_illness_paid_cents &&
         a.supplementary == b.supplementary && a.version == b.version;
}

void ExpectStatus(const absl::Status& status, absl::StatusCode code, const std::string& reason,
                  const std::string& field) {
  EXPECT_EQ(status.code(), code) << status;
  EXPECT_EQ(ReasonOf(status), reason) << status;
  EXPECT_EQ(FieldOf(status), field) << status;
}

// A refused Settle: the caller's year equals its copy from before the call,
// and `out` holds nothing that could be taken for a settlement.
void ExpectNothingChanged(const absl::Status& status, const Accumulators& before,
                          const Accumulators& year_to_date, const Settlement& out) {
  EXPECT_FALSE(status.ok());
  EXPECT_TRUE(SameAccumulators(year_to_date, before)) << "year_to_date changed by a refusal";
  EXPECT_TRUE(out.policy_id.empty()) << out.policy_id;
  EXPECT_FALSE(out.settlement_date.valid()) << out.settlement_date.ToString();
  EXPECT_EQ(out.amounts, Amounts{});
  EXPECT_EQ(out.base_fund_ratio_bp, 0);
  EXPECT_TRUE(out.fund_details.empty());
  EXPECT_TRUE(out.lines.empty());
  EXPECT_TRUE(out.trace.empty());
  EXPECT_TRUE(out.claim_later.empty());
  EXPECT_TRUE(SameAccumulators(out.delta, Accumulators{})) << "a delta survives the refusal";
  EXPECT_TRUE(SameAccumulators(out.after, Accumulators{})) << "an after survives the refusal";
}

// Settles `s` into a Settlement that first holds a real result (so a refusal
// that leaves stale output behind is caught), then checks the status and,
// for a refusal, that nothing changed.
void SettleAndExpect(const Scenario& s, absl::StatusCode code, const std::string& reason,
                     const std::string& field) {
  Settlement out;
  {
    Scenario ok;
    ASSERT_TRUE(SettleWith(ok.enrollment, ok.institution, ok.year_to_date, ok.claim, &out).ok());
    ASSERT_GT(out.amounts.total_cents, 0);
  }
  const Accumulators before = s.year_to_date;
  SettleInput input{.enrollment = &s.enrollment,
                    .institution = &s.institution,
                    .year_to_date = &s.year_to_date,
                    .claim = &s.claim,
                    .voucher_issued_at_unix = s.voucher_issued_at_unix};
  absl::Status status = ShippedEngine().Settle(input, &out);
  {
    SCOPED_TRACE("Engine::Settle");
    ExpectStatus(status, code, reason, field);
  }
  if (code != kOk) {
    ExpectNothingChanged(status, before, s.year_to_date, out);
  } else if (status.ok()) {
    EXPECT_EQ(out.amounts.base_fund_cents + out.amounts.critical_illness_cents +
                  out.amounts.supplementary_cents + out.amounts.patient_cents,
              out.amounts.total_cents);
  }
}

// ---------------------------------------------------------------- the claim

struct ClaimCase {
  std::string name;
  std::function<void(Claim&)> mutate;  // applied to ValidClaim()
  absl::StatusCode code;
  std::string reason;
  std::string field;
};

std::vector<ClaimCase> ClaimCases() {
  const std::string k64(64, 'a');
  return {
      // request_id: 1-64 printable ASCII characters, no spaces.
      {"request_id 64 printable characters is accepted",
       [k64](Claim& c) { c.request_id = k64; }, kOk, "", ""},
      {"request_id of all printable punctuation is accepted",
       [](Claim& c) { c.request_id = "!~{}[]#$%&'()*+,-./:;<=>?@^_`|\\\""; }, kOk, "", ""},
      {"request_id empty", [](Claim& c) { c.request_id.clear(); }, kInvalid,
       "REQUEST_ID_INVALID", "request_id"},
      {"request_id 65 characters", [k64](Claim& c) { c.request_id = k64 + "a"; }, kInvalid,
       "REQUEST_ID_INVALID", "request_id"},
      {"request_id with a space", [](Claim& c) { c.request_id = "req 1"; }, kInvalid,
       "REQUEST_ID_INVALID", "request_id"},
      {"request_id with a tab", [](Claim& c) { c.request_id = "req\t1"; }, kInvalid,
       "REQUEST_ID_INVALID", "request_id"},
      {"request_id with DEL", [](Claim& c) { c.request_id = "req\x7f"; }, kInvalid,
       "REQUEST_ID_INVALID", "request_id"},
      {"request_id with a non-ASCII byte (UTF-8 e acute)",
       [](Claim& c) { c.request_id = "req-\xc3\xa9"; }, kInvalid, "REQUEST_ID_INVALID",
       "request_id"},
      {"request_id with a lone byte 0x80", [](Claim& c) { c.request_id = "req-\x80"; }, kInvalid,
       "REQUEST_ID_INVALID", "request_id"},
      {"request_id with a NUL byte", [](Claim& c) { c.request_id = std::string("req\0x", 5); },
       kInvalid, "REQUEST_ID_INVALID", "request_id"},

      // Credential and visit type.
      {"credential unspecified", [](Claim& c) { c.credential = CredentialKind::kUnspecified; },
       kInvalid, "CREDENTIAL_MISSING", "credential"},
      {"visit type unspecified", [](Claim& c) { c.visit.type = VisitType::kUnspecified; },
       kInvalid, "VISIT_TYPE_UNSPECIFIED", "visit.type"},

      // Dates for stays.
      {"stay with admission and discharge on the same day is accepted",
       [](Claim& c) {
         c = ValidStay();
         c.visit.discharge_date = c.visit.admission_date;
       },
       kOk, "", ""},
      {"stay without admission date",
       [](Claim& c) {
         c = ValidStay();
         c.visit.admission_date = Date();
       },
       kInvalid, "DATE_MISSING", "visit.admission_date"},
      {"stay without discharge date",
       [](Claim& c) {
         c = ValidStay();
         c.visit.discharge_date = Date();
       },
       kInvalid, "DATE_MISSING", "visit.discharge_date"},
      {"stay without either date names the admission first",
       [](Claim& c) {
         c = ValidStay();
         c.visit.admission_date = Date();
         c.visit.discharge_date = Date();
       },
       kInvalid, "DATE_MISSING", "visit.admission_date"},
      {"natural delivery without discharge date",
       [](Claim& c) {
         c = ValidStay(VisitType::kDeliveryNatural);
         c.visit.discharge_date = Date();
       },
       kInvalid, "DATE_MISSING", "visit.discharge_date"},
      {"caesarean delivery without admission date",
       [](Claim& c) {
         c = ValidStay(VisitType::kDeliveryCaesarean);
         c.visit.admission_date = Date();
       },
       kInvalid, "DATE_MISSING", "visit.admission_date"},
      {"stay discharged before admission",
       [](Claim& c) {
         c = ValidStay();
         c.visit.admission_date = D("2024-03-05");
         c.visit.discharge_date = D("2024-03-04");
       },
       kInvalid, "DATE_ORDER", "visit.discharge_date"},

      // Dates for outpatient-type visits.
      {"outpatient without service date", [](Claim& c) { c.visit.service_date = Date(); },
       kInvalid, "DATE_MISSING", "visit.service_date"},
      {"prenatal check without service date",
       [](Claim& c) {
         c.visit.type = VisitType::kPrenatalCheck;
         c.visit.service_date = Date();
       },
       kInvalid, "DATE_MISSING", "visit.service_date"},
      {"outpatient carrying an admission date",
       [](Claim& c) { c.visit.admission_date = D("2024-06-09"); }, kInvalid,
       "DATE_NOT_APPLICABLE", "visit.admission_date"},
      {"outpatient carrying a discharge date",
       [](Claim& c) { c.visit.discharge_date = D("2024-06-10"); }, kInvalid,
       "DATE_NOT_APPLICABLE", "visit.discharge_date"},
      {"outpatient carrying both stay dates names the admission",
       [](Claim& c) {
         c.visit.admission_date = D("2024-06-09");
         c.visit.discharge_date = D("2024-06-10");
       },
       kInvalid, "DATE_NOT_APPLICABLE", "visit.admission_date"},
      {"outpatient without service date but with stay dates: the missing date first",
       [](Claim& c) {
         c.visit.service_date = Date();
         c.visit.discharge_date = D("2024-06-10");
       },
       kInvalid, "DATE_MISSING", "visit.service_date"},

      // Condition.
      {"chronic visit without condition",
       [](Claim& c) { c.visit.type = VisitType::kChronicOutpatient; }, kInvalid,
       "CONDITION_MISSING", "visit.condition"},
      {"special-disease visit without condition",
       [](Claim& c) { c.visit.type = VisitType::kSpecialOutpatient; }, kInvalid,
       "CONDITION_MISSING", "visit.condition"},

      // Items.
      {"no items", [](Claim& c) { c.lines.clear(); }, kInvalid, "ITEMS_EMPTY", "items"},
      {"20,000 items is accepted", [](Claim& c) { c.lines = ManyLines(kMaxBillLines); }, kOk,
       "", ""},
      {"20,001 items", [](Claim& c) { c.lines = ManyLines(kMaxBillLines + 1); }, kInvalid,
       "TOO_MANY_ITEMS", "items"},
      {"line_no 0", [](Claim& c) { c.lines[1].line_no = 0; }, kInvalid, "LINE_NO_INVALID",
       "items[1].line_no"},
      {"line_no negative", [](Claim& c) { c.lines[3].line_no = -4; }, kInvalid,
       "LINE_NO_INVALID", "items[3].line_no"},
      {"line numbers out of order but unique are accepted",
       [](Claim& c) {
         c.lines[0].line_no = 40;
         c.lines[1].line_no = 7;
         c.lines[2].line_no = 300;
         c.lines[3].line_no = 1;
       },
       kOk, "", ""},
      {"duplicate line_no in ascending lines",
       [](Claim& c) { c.lines[2].line_no = 2; },  // 1, 2, 2, 4
       kInvalid, "LINE_NO_DUPLICATE", "items[2].line_no"},
      {"duplicate line_no in unordered lines points at the later one",
       [](Claim& c) {  // 9, 3, 9, 1: the second 9 is items[2]
         c.lines[0].line_no = 9;
         c.lines[1].line_no = 3;
         c.lines[2].line_no = 9;
         c.lines[3].line_no = 1;
       },
       kInvalid, "LINE_NO_DUPLICATE", "items[2].line_no"},
      {"duplicate line_no first and last",
       [](Claim& c) { c.lines[3].line_no = 1; },  // 1, 2, 3, 1
       kInvalid, "LINE_NO_DUPLICATE", "items[3].line_no"},
      {"empty item code", [](Claim& c) { c.lines[2].code.clear(); }, kInvalid,
       "ITEM_CODE_MISSING", "items[2].code"},
      {"negative unit price",
       [](Claim& c) {
         c.lines[1].unit_price_cents = -1500;
         c.lines[1].amount_cents = 3000;
       },
       kInvalid, "PRICE_INVALID", "items[1].unit_price_cents"},
      {"negative amount", [](Claim& c) { c.lines[3].amount_cents = -2000; }, kInvalid,
       "PRICE_INVALID", "items[3].amount_cents"},
      {"negative unit price and amount names the unit price",
       [](Claim& c) {
         c.lines[0].unit_price_cents = -1000;
         c.lines[0].amount_cents = -1000;
       },
       kInvalid, "PRICE_INVALID", "items[0].unit_price_cents"},
      {"amount of exactly 10^12 is accepted",
       [](Claim& c) { c.lines = {Line(1, "FA0004", "1", kMaxAmountCents)}; }, kOk, "", ""},
      {"amount above 10^12",
       [](Claim& c) {
         c.lines[3].unit_price_cents = kMaxAmountCents + 1;
         c.lines[3].amount_cents = kMaxAmountCents + 1;
       },
       kInvalid, "AMOUNT_TOO_LARGE", "items[3].amount_cents"},
      {"amount above 10^12 on a small unit price",
       [](Claim& c) { c.lines[3].amount_cents = kMaxAmountCents + 1; }, kInvalid,
       "AMOUNT_TOO_LARGE", "items[3].amount_cents"},
      {"unit price above 10^12 with an amount within it names the unit price",
       [](Claim& c) {  // 0.5 × (10^12 + 2) = 5 × 10^11 + 1: the amount is fine
         c.lines[2].quantity = Quantity{5, 1};
         c.lines[2].unit_price_cents = kMaxAmountCents + 2;
         c.lines[2].amount_cents = kMaxAmountCents / 2 + 1;
       },
       kInvalid, "AMOUNT_TOO_LARGE", "items[2].unit_price_cents"},
      {"quantity × unit price above 10^12",
       [](Claim& c) {  // 2 × 6 × 10^11
         c.lines[1].quantity = Quantity{2, 0};
         c.lines[1].unit_price_cents = 600'000'000'000;
         c.lines[1].amount_cents = kMaxAmountCents;
       },
       kInvalid, "AMOUNT_TOO_LARGE", "items[1].quantity"},
      {"amount off by one cent", [](Claim& c) { c.lines[1].amount_cents = 3001; }, kInvalid,
       "AMOUNT_MISMATCH", "items[1].amount_cents"},
      {"amount 2.5 × 333 = 832.5 rounded down to 832 is refused",
       [](Claim& c) { c.lines[2].amount_cents = 832; }, kInvalid, "AMOUNT_MISMATCH",
       "items[2].amount_cents"},
      {"amount 2.5 × 333 = 832.5 rounded up to 834 is refused",
       [](Claim& c) { c.lines[2].amount_cents = 834; }, kInvalid, "AMOUNT_MISMATCH",
       "items[2].amount_cents"},
      {"amount 0.0005 × 1000 = 0.5 rounds half up to 1",
       [](Claim& c) {
         c.lines[0].quantity = Quantity{5, 4};
         c.lines[0].unit_price_cents = 1000;
         c.lines[0].amount_cents = 1;
       },
       kOk, "", ""},
      {"amount 0.0004 × 1000 = 0.4 rounds to 0, so 1 is refused",
       [](Claim& c) {
         c.lines[0].quantity = Quantity{4, 4};
         c.lines[0].unit_price_cents = 1000;
         c.lines[0].amount_cents = 1;
       },
       kInvalid, "AMOUNT_MISMATCH", "items[0].amount_cents"},
      {"bill total of exactly 10^12 is accepted",
       [](Claim& c) {
         c.lines = {Line(1, "FA0004", "1", kMaxAmountCents - 1), Line(2, "FA0004", "1", 1)};
       },
       kOk, "", ""},
      {"bill total above 10^12",
       [](Claim& c) {
         c.lines = {Line(1, "FA0004", "1", 600'000'000'000),
                    Line(2, "FA0004", "1", 400'000'000'000), Line(3, "FA0004", "1", 1)};
       },
       kInvalid, "AMOUNT_TOO_LARGE", "items"},
  };
}

TEST(ValidateClaim, TheValidClaimsAreValid) {
  EXPECT_TRUE(ValidateClaim(ValidClaim()).ok()) << ValidateClaim(ValidClaim());
  EXPECT_TRUE(ValidateClaim(ValidStay()).ok()) << ValidateClaim(ValidStay());
  EXPECT_EQ(ValidClaim().lines[2].amount_cents, 833);  // 2.5 × 333 = 832.5 → 833
}

TEST(ValidateClaim, EachRuleRefusesWithItsReasonAndField) {
  for (const ClaimCase& c : ClaimCases()) {
    SCOPED_TRACE(c.name);
    Claim claim = ValidClaim();
    c.mutate(claim);
    ExpectStatus(ValidateClaim(claim), c.code, c.reason, c.field);
  }
}

TEST(ValidateClaim, SettleRefusesTheSameWayAndChangesNothing) {
  for (const ClaimCase& c : ClaimCases()) {
    SCOPED_TRACE(c.name);
    Scenario s;
    c.mutate(s.claim);
    SettleAndExpect(s, c.code, c.reason, c.field);
  }
}

// A quantity the contract layer would never produce (negative, or a scale
// outside 0..kMaxQuantityScale) must still be refused by the engine's own
// validation rather than reach MultiplyQuantity, whose rounding REQUIRES a
// non-negative product. Each case runs in a child process so that an
// assertion failure (Debug) fails this test instead of the whole binary.
[[noreturn]] void ExitZeroIfQuantityInvalid(const Claim& claim, const std::string& field) {
  absl::Status status = ValidateClaim(claim);
  const bool as_expected = status.code() == kInvalid && ReasonOf(status) == "QUANTITY_INVALID" &&
                           FieldOf(status) == field;
  if (!as_expected) std::fprintf(stderr, "got: %s\n", status.ToString().c_str());
  std::fflush(stderr);
  std::_Exit(as_expected ? 0 : 1);
}

TEST(ValidateClaimDeathTest, MalformedQuantityIsRefusedNotComputed) {
  struct QuantityCase {
    std::string name;
    Quantity quantity;
    Cents unit_price_cents;
    Cents amount_cents;
  };
  const std::vector<QuantityCase> cases = {
      {"negative quantity -2", Quantity{-2, 0}, 1500, 0},
      {"negative quantity -0.0001 (rounds to an amount of 0)", Quantity{-1, 4}, 1, 0},
      {"scale 5, above kMaxQuantityScale", Quantity{1, 5}, 100000, 1},
      {"negative scale", Quantity{3, -1}, 100, 300},
  };
  for (const QuantityCase& c : cases) {
    SCOPED_TRACE(c.name);
    Claim claim = ValidClaim();
    claim.lines[1].quantity = c.quantity;
    claim.lines[1].unit_price_cents = c.unit_price_cents;
    claim.lines[1].amount_cents = c.amount_cents;
    EXPECT_EXIT(ExitZeroIfQuantityInvalid(claim, "items[1].quantity"),
                ::testing::ExitedWithCode(0), "");
  }
}

// --------------------------------------------------------- the accumulators

struct AccumulatorCase {
  std::string name;
  std::function<void(Accumulators&)> mutate;  // applied to SomeYear()
};

std::vector<AccumulatorCase> NegativeAccumulatorCases() {
  return {
      {"ledger deductible paid",
       [](Accumulators& a) { a.ledger(Ledger::kGeneralOutpatient).deductible_paid_cents = -1; }},
      {"ledger in scope", [](Accumulators& a) { a.ledger(Ledger::kInpatient).in_scope_cents = -1; }},
      {"ledger fund paid",
       [](Accumulators& a) { a.ledger(Ledger::kDelivery).fund_paid_cents = -100; }},
      {"ledger visits", [](Accumulators& a) { a.ledger(Ledger::kChronicOutpatient).visits = -1; }},
      {"critical-illness burden", [](Accumulators& a) { a.critical_illness_burden_cents = -1; }},
      {"critical-illness paid", [](Accumulators& a) { a.critical_illness_paid_cents = -1; }},
      {"supplementary base", [](Accumulators& a) { a.supplementary[0].base_cents = -1; }},
      {"supplementary paid", [](Accumulators& a) { a.supplementary[3].paid_cents = -1; }},
      // Above the bound: such totals would overflow the sums over ledgers.
      {"ledger fund paid above 10^15",
       [](Accumulators& a) { a.ledger(Ledger::kInpatient).fund_paid_cents = kMaxAccumulatedCents + 1; }},
      {"ledger in scope at INT64_MAX",
       [](Accumulators& a) { a.ledger(Ledger::kSpecialOutpatient).in_scope_cents = INT64_MAX; }},
      {"visits above 10^6",
       [](Accumulators& a) { a.ledger(Ledger::kInpatient).visits = kMaxAccumulatedVisits + 1; }},
      {"critical-illness burden above 10^15",
       [](Accumulators& a) { a.critical_illness_burden_cents = kMaxAccumulatedCents + 1; }},
      {"supplementary base above 10^15",
       [](Accumulators& a) { a.supplementary[1].base_cents = kMaxAccumulatedCents + 1; }},
  };
}

TEST(ValidateAccumulators, TheBoundsThemselvesAreAccepted) {
  Accumulators a;
  a.ledger(Ledger::kInpatient).fund_paid_cents = kMaxAccumulatedCents;
  a.ledger(Ledger::kInpatient).visits = kMaxAccumulatedVisits;
  EXPECT_TRUE(ValidateAccumulators(a).ok());
}

TEST(Reverse, ANegativeDeltaIsRefused) {
  Accumulators year = SomeYear();
  Accumulators delta;
  delta.ledger(Ledger::kInpatient).fund_paid_cents = -100;  // would add to the year
  absl::StatusOr<Accumulators> undone = Engine::Reverse(year, delta);
  ExpectStatus(undone.status(), kInvalid, "ACCUMULATORS_INVALID", "delta");
}

TEST(ValidateAccumulators, ZeroAndPositiveTotalsAreValid) {
  EXPECT_TRUE(ValidateAccumulators(Accumulators{}).ok());
  EXPECT_TRUE(ValidateAccumulators(SomeYear()).ok());
}

TEST(ValidateAccumulators, NegativeTotalsAreRefused) {
  for (const AccumulatorCase& c : NegativeAccumulatorCases()) {
    SCOPED_TRACE(c.name);
    Accumulators a = SomeYear();
    c.mutate(a);
    ExpectStatus(ValidateAccumulators(a), kInvalid, "ACCUMULATORS_INVALID", "year_to_date");
  }
}

TEST(ValidateAccumulators, SettleRefusesANegativeYearAndLeavesItAsItWas) {
  for (const AccumulatorCase& c : NegativeAccumulatorCases()) {
    SCOPED_TRACE(c.name);
    Scenario s;
    c.mutate(s.year_to_date);
    SettleAndExpect(s, kInvalid, "ACCUMULATORS_INVALID", "year_to_date");
  }
}

// ----------------------------------------------------------------- coverage

struct CoverageCase {
  std::string name;
  std::function<void(Scenario&)> mutate;  // applied to a default Scenario
  absl::StatusCode code;
  std::string reason;
  std::string field;
};

constexpr int64_t kRevokedAt = 1'717'200'000;  // 2024-06-01T00:00:00Z

std::vector<CoverageCase> CoverageCases() {
  auto ec_token = [](Scenario& s, std::optional<int64_t> issued) {
    s.enrollment.voucher_revoked_at_unix = kRevokedAt;
    s.claim.credential = CredentialKind::kEcToken;
    s.voucher_issued_at_unix = issued;
  };
  auto chronic_tb = [](Scenario& s) {
    s.claim = Outpatient(VisitType::kChronicOutpatient, "2024-09-02",
                         {Line(1, "XA0004", "20", 1000)});
    s.claim.visit.condition = "TB";
  };
  auto special_uremia = [](Scenario& s) {
    s.claim = Outpatient(VisitType::kSpecialOutpatient, "2024-07-01",
                         {Line(1, "FA0008", "3", 40000)});
    s.claim.visit.condition = "UREMIA";
  };
  auto in_hangzhou = [](Scenario& s) { s.institution = Hospital(kHangzhou, 3); };
  return {
      {"the default scenario is covered", [](Scenario&) {}, kOk, "", ""},

      {"suspended institution",
       [](Scenario& s) { s.institution.suspended = true; }, kDenied, "INSTITUTION_SUSPENDED", ""},

      {"no policy for the insured region", [](Scenario& s) { s.enrollment.region_code = 110101; },
       kRefused, "NO_POLICY", ""},
      {"no policy for the year (Quzhou 2023)",
       [](Scenario& s) {
         s.enrollment = Person(kQuzhou, 2023);
         s.claim.visit.service_date = D("2023-06-10");
       },
       kRefused, "NO_POLICY", ""},

      {"enrolled for another year",
       [](Scenario& s) { s.enrollment = Person(kQuzhou, 2023); }, kRefused,
       "NOT_ENROLLED_FOR_YEAR", ""},
      {"stay discharged in the next year settles in a year not enrolled",
       [](Scenario& s) {
         s.claim = Stay(VisitType::kInpatient, "2024-12-28", "2025-01-03",
                        {Line(1, "FA0003", "6", 5000)});
       },
       kRefused, "NOT_ENROLLED_FOR_YEAR", ""},

      {"suspended enrollment",
       [](Scenario& s) { s.enrollment.status = EnrollmentStatus::kSuspended; }, kRefused,
       "ENROLLMENT_SUSPENDED", ""},

      {"tier not in the policy (Quzhou has tier 0 only)",
       [](Scenario& s) { s.enrollment.tier = 1; }, kRefused, "TIER_NOT_IN_POLICY", ""},
      {"tier not in the policy (Dianjiang has tiers 1 and 2)",
       [](Scenario& s) {
         s = DianjiangPaidOn("2024-01-15", "2024-06-10");
         s.enrollment.tier = 0;
       },
       kRefused, "TIER_NOT_IN_POLICY", ""},

      {"e-code issued before the revocation",
       [ec_token](Scenario& s) { ec_token(s, kRevokedAt - 1); }, kRefused, "VOUCHER_REVOKED", ""},
      {"e-code issued at the second of the revocation",
       [ec_token](Scenario& s) { ec_token(s, kRevokedAt); }, kRefused, "VOUCHER_REVOKED", ""},
      {"e-code of unknown issue time on a revoked voucher",
       [ec_token](Scenario& s) { ec_token(s, std::nullopt); }, kRefused, "VOUCHER_REVOKED", ""},
      {"e-code issued after the revocation is accepted",
       [ec_token](Scenario& s) { ec_token(s, kRevokedAt + 1); }, kOk, "", ""},
      {"id card on a revoked voucher is accepted",
       [ec_token](Scenario& s) {
         ec_token(s, std::nullopt);
         s.claim.credential = CredentialKind::kIdCard;
       },
       kOk, "", ""},
      {"insurance card on a revoked voucher is accepted",
       [ec_token](Scenario& s) {
         ec_token(s, kRevokedAt - 1);
         s.claim.credential = CredentialKind::kInsuranceCard;
       },
       kOk, "", ""},
      {"e-code of unknown issue time, voucher never revoked, is accepted",
       [](Scenario& s) { s.claim.credential = CredentialKind::kEcToken; }, kOk, "", ""},

      {"waiting period: paid 2024-03-15, covered from 2024-05-01, visit 04-30",
       [](Scenario& s) {
         s.enrollment.concentrated = false;
         s.enrollment.paid_date = D("2024-03-15");
         s.claim.visit.service_date = D("2024-04-30");
       },
       kRefused, "WAITING_PERIOD", ""},
      {"waiting period over: paid 2024-03-15, visit 2024-05-01 is accepted",
       [](Scenario& s) {
         s.enrollment.concentrated = false;
         s.enrollment.paid_date = D("2024-03-15");
         s.claim.visit.service_date = D("2024-05-01");
       },
       kOk, "", ""},

      {"Dianjiang: paid 2024-10-01, after the 09-30 deadline",
       [](Scenario& s) { s = DianjiangPaidOn("2024-10-01", "2024-11-10"); }, kRefused,
       "ENROLLMENT_PAYMENT_TOO_LATE", ""},
      {"Dianjiang: paid 2024-12-31",
       [](Scenario& s) { s = DianjiangPaidOn("2024-12-31", "2024-12-31"); }, kRefused,
       "ENROLLMENT_PAYMENT_TOO_LATE", ""},
      {"Dianjiang: paid 2024-09-30, the last day, is not too late",
       [](Scenario& s) { s = DianjiangPaidOn("2024-09-30", "2024-12-31"); }, kOk, "", ""},

      {"not concentrated and no paid_date",
       [](Scenario& s) {
         s.enrollment.concentrated = false;
         s.enrollment.paid_date = Date();
       },
       kInvalid, "ENROLLMENT_INVALID", "enrollment.paid_date"},

      {"chronic condition certified is accepted",
       [chronic_tb](Scenario& s) {
         chronic_tb(s);
         s.enrollment.chronic_conditions = {"HYPERTENSION", "TB"};
       },
       kOk, "", ""},
      {"chronic condition not certified",
       [chronic_tb](Scenario& s) {
         chronic_tb(s);
         s.enrollment.chronic_conditions = {"HYPERTENSION"};
       },
       kRefused, "CHRONIC_CONDITION_NOT_CERTIFIED", ""},
      {"chronic condition certified only as a special disease",
       [chronic_tb](Scenario& s) {
         chronic_tb(s);
         s.enrollment.special_diseases = {"TB"};
       },
       kRefused, "CHRONIC_CONDITION_NOT_CERTIFIED", ""},
      {"special disease certified is accepted",
       [special_uremia](Scenario& s) {
         special_uremia(s);
         s.enrollment.special_diseases = {"UREMIA"};
       },
       kOk, "", ""},
      {"special disease not certified",
       [special_uremia](Scenario& s) { special_uremia(s); }, kRefused,
       "SPECIAL_DISEASE_NOT_CERTIFIED", ""},
      {"special disease certified only as a chronic condition",
       [special_uremia](Scenario& s) {
         special_uremia(s);
         s.enrollment.chronic_conditions = {"UREMIA"};
       },
       kRefused, "SPECIAL_DISEASE_NOT_CERTIFIED", ""},

      {"out of area without filing", in_hangzhou, kRefused, "OUT_OF_AREA_NO_FILING", ""},
      {"out of area with a filing for another region",
       [in_hangzhou](Scenario& s) {
         in_hangzhou(s);
         s.enrollment.out_of_area_filings.push_back({330200, D("2024-01-01"), D("2024-12-31")});
       },
       kRefused, "OUT_OF_AREA_NO_FILING", ""},
      {"out of area with a filing that ended the day before",
       [in_hangzhou](Scenario& s) {
         in_hangzhou(s);
         s.enrollment.out_of_area_filings.push_back({330100, D("2024-01-01"), D("2024-06-09")});
       },
       kRefused, "OUT_OF_AREA_NO_FILING", ""},
      {"out of area with a filing that starts the day after",
       [in_hangzhou](Scenario& s) {
         in_hangzhou(s);
         s.enrollment.out_of_area_filings.push_back({330100, D("2024-06-11"), D("2024-12-31")});
       },
       kRefused, "OUT_OF_AREA_NO_FILING", ""},
      {"out of area with a filing covering the day is accepted",
       [in_hangzhou](Scenario& s) {
         in_hangzhou(s);
         s.enrollment.out_of_area_filings.push_back({330100, D("2024-06-10"), D("2024-06-10")});
       },
       kOk, "", ""},
      {"out of area without filing on an emergency is accepted",
       [in_hangzhou](Scenario& s) {
         in_hangzhou(s);
         s.claim.visit.emergency = true;
       },
       kOk, "", ""},
  };
}

TEST(CheckCoverage, EachRefusalHasItsReason) {
  for (const CoverageCase& c : CoverageCases()) {
    SCOPED_TRACE(c.name);
    Scenario s;
    c.mutate(s);
    ASSERT_TRUE(ValidateClaim(s.claim).ok()) << "the case's claim must be valid";
    absl::StatusOr<CoverageDecision> decision = ShippedEngine().CheckCoverage(
        s.enrollment, s.institution, s.claim.visit, s.claim.credential, s.voucher_issued_at_unix);
    ExpectStatus(decision.status(), c.code, c.reason, c.field);
  }
}

TEST(CheckCoverage, SettleRefusesTheSameWayAndChangesNothing) {
  for (const CoverageCase& c : CoverageCases()) {
    SCOPED_TRACE(c.name);
    Scenario s;
    c.mutate(s);
    SettleAndExpect(s, c.code, c.reason, c.field);
  }
}

TEST(CheckCoverage, EmergencyOutOfAreaIsFlaggedForAFilingToFollow) {
  Scenario s;
  s.institution = Hospital(kHangzhou, 3);
  s.claim.visit.emergency = true;
  absl::StatusOr<CoverageDecision> decision = ShippedEngine().CheckCoverage(
      s.enrollment, s.institution, s.claim.visit, s.claim.credential, std::nullopt);
  ASSERT_TRUE(decision.ok()) << decision.status();
  EXPECT_TRUE(decision->out_of_area);
  EXPECT_TRUE(decision->filing_to_follow);
}

TEST(CheckCoverage, DianjiangLastDayPaymentWaitsNinetyDays) {
  // Paid 2024-09-30: covered from 2024-12-29 (90 days on); earlier visits
  // are in the waiting period, not "too late".
  Scenario s = DianjiangPaidOn("2024-09-30", "2024-12-28");
  absl::StatusOr<CoverageDecision> decision = ShippedEngine().CheckCoverage(
      s.enrollment, s.institution, s.claim.visit, s.claim.credential, std::nullopt);
  ExpectStatus(decision.status(), kRefused, "WAITING_PERIOD", "");
  s.claim.visit.service_date = D("2024-12-29");
  decision = ShippedEngine().CheckCoverage(s.enrollment, s.institution, s.claim.visit,
                                           s.claim.credential, std::nullopt);
  ASSERT_TRUE(decision.ok()) << decision.status();
  EXPECT_EQ(decision->covered_from, D("2024-12-29"));
}

// ------------------------------------------------------------------ Reverse

struct ReverseCase {
  std::string name;
  std::function<void(Accumulators&)> mutate_delta;  // applied to a copy of SomeYear()
};

TEST(Reverse, ADeltaLargerThanTheYearIsRefused) {
  const std::vector<ReverseCase> cases = {
      {"ledger deductible paid",
       [](Accumulators& d) { d.ledger(Ledger::kGeneralOutpatient).deductible_paid_cents += 1; }},
      {"ledger in scope", [](Accumulators& d) { d.ledger(Ledger::kInpatient).in_scope_cents += 1; }},
      {"ledger fund paid on an empty ledger",
       [](Accumulators& d) { d.ledger(Ledger::kDelivery).fund_paid_cents = 1; }},
      {"ledger visits", [](Accumulators& d) { d.ledger(Ledger::kInpatient).visits += 1; }},
      {"critical-illness burden", [](Accumulators& d) { d.critical_illness_burden_cents += 1; }},
      {"critical-illness paid", [](Accumulators& d) { d.critical_illness_paid_cents = 1; }},
      {"supplementary base", [](Accumulators& d) { d.supplementary[0].base_cents += 1; }},
      {"supplementary paid", [](Accumulators& d) { d.supplementary[2].paid_cents = 1; }},
  };
  const Accumulators year = SomeYear();
  for (const ReverseCase& c : cases) {
    SCOPED_TRACE(c.name);
    Accumulators delta = year;
    delta.version = 1;
    c.mutate_delta(delta);
    const Accumulators year_before = year;
    const Accumulators delta_before = delta;
    absl::StatusOr<Accumulators> undone = Engine::Reverse(year, delta);
    ExpectStatus(undone.status(), kRefused, "ACCUMULATORS_INVALID", "");
    EXPECT_TRUE(SameAccumulators(year, year_before));
    EXPECT_TRUE(SameAccumulators(delta, delta_before));
  }
}

TEST(Reverse, ADeltaEqualToTheYearLeavesZero) {
  const Accumulators year = SomeYear();
  Accumulators delta = year;
  delta.version = 1;
  absl::StatusOr<Accumulators> undone = Engine::Reverse(year, delta);
  ASSERT_TRUE(undone.ok()) << undone.status();
  EXPECT_TRUE(undone->SameTotals(Accumulators{}));
  EXPECT_EQ(undone->version, year.version + 1);
}

TEST(Reverse, ADeltaNotAppliedToThisYearIsRefused) {
  Scenario s;
  Settlement settled;
  ASSERT_TRUE(
      SettleWith(s.enrollment, s.institution, s.year_to_date, s.claim, &settled).ok());
  absl::StatusOr<Accumulators> undone = Engine::Reverse(settled.after, settled.delta);
  ASSERT_TRUE(undone.ok()) << undone.status();
  EXPECT_TRUE(undone->SameTotals(s.year_to_date));
  // The same delta taken from an empty year (one it was never applied to)
  // would leave a visit count of -1.
  absl::StatusOr<Accumulators> wrong_year = Engine::Reverse(Accumulators{}, settled.delta);
  ExpectStatus(wrong_year.status(), kRefused, "ACCUMULATORS_INVALID", "");
}

}  // namespace
}  // namespace medsettle::testing
