// The engine's plain input and output types. They mirror the records of
// proto/medsettle/v1 (enum numbers equal the proto's, Ledger aside) but hold
// parsed values: dates are Dates, region codes integers, quantities exact.
// The contract layer (proto/contract) converts and validates formats; the
// engine validates meaning.
#ifndef MEDSETTLE_ENGINE_TYPES_H_
#define MEDSETTLE_ENGINE_TYPES_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/date.h"
#include "engine/money.h"

namespace medsettle::engine {

enum class Category : uint8_t { kUnspecified = 0, kAdult, kInfant, kMinor, kStudent };
inline constexpr int kCategoryCount = 5;

enum class Assistance : uint8_t {
  kUnspecified = 0, kNone, kTekun, kDibao, kDibaoEdge, kPovertyRelapse,
  kSevereDisability, kKeyEntitled,
};
inline constexpr int kAssistanceCount = 8;

enum class EnrollmentStatus : uint8_t { kUnspecified = 0, kActive, kSuspended };

enum class InstitutionKind : uint8_t { kUnspecified = 0, kHospital, kCommunity, kPharmacy };
inline constexpr int kInstitutionKindCount = 4;

enum class VisitType : uint8_t {
  kUnspecified = 0,
  kGeneralOutpatient,
  kChronicOutpatient,
  kSpecialOutpatient,
  kInpatient,
  kPrenatalCheck,
  kDeliveryNatural,
  kDeliveryCaesarean,
};
inline constexpr int kVisitTypeCount = 8;
// Inpatient stays and deliveries carry admission and discharge dates.
bool IsStay(VisitType type);

// kNone: none of the bonus specialties (the proto field is unset).
enum class Specialty : uint8_t { kNone = 0, kPsychiatry, kPediatrics, kTcm };
inline constexpr int kSpecialtyCount = 4;

// Where a year's running totals are kept (proto Ledger minus one).
enum class Ledger : uint8_t {
  kGeneralOutpatient = 0, kChronicOutpatient, kSpecialOutpatient, kInpatient,
  kPrenatal, kDelivery,
};
inline constexpr int kLedgerCount = 6;
// A set of ledgers, bit i = Ledger i.
using LedgerMask = uint8_t;
inline constexpr LedgerMask LedgerBit(Ledger l) {
  return static_cast<LedgerMask>(1u << static_cast<unsigned>(l));
}

enum class ItemClass : uint8_t { kUnspecified = 0, kA, kB, kC, kUnknown };

enum class CredentialKind : uint8_t { kUnspecified = 0, kIdCard, kInsuranceCard, kEcToken };

enum class Fund : uint8_t { kUnspecified = 0, kBase, kCriticalIllness, kSupplementary };

// Text names used in policy files, traces and tables ("INPATIENT", "TIER").
std::string_view Name(Category v);
std::string_view Name(Assistance v);
std::string_view Name(InstitutionKind v);
std::string_view Name(VisitType v);
std::string_view Name(Specialty v);
std::string_view Name(Ledger v);
std::string_view Name(ItemClass v);
std::string_view Name(Fund v);

// A 6-digit administrative division code as an integer (330213). Trailing
// "00" pairs widen a code: 330000 covers every 33xxxx, 330200 every 3302xx.
using RegionCode = int32_t;
bool IsValidRegionCode(RegionCode code);
// True when `area` (with its trailing-zero widening) contains `code`.
bool RegionCovers(RegionCode area, RegionCode code);

struct OutOfAreaFiling {
  RegionCode region_code = 0;
  Date start_date;
  Date end_date;  // inclusive
};

struct Supplementary {
  std::string product;  // empty = none
  bool pre_existing = false;
  bool continuous = false;
};

struct Enrollment {
  std::string person_key;
  int32_t year = 0;
  RegionCode region_code = 0;
  Date birth_date;
  Category category = Category::kUnspecified;
  int32_t tier = 0;
  Assistance assistance = Assistance::kUnspecified;
  Date paid_date;
  bool concentrated = false;
  bool newborn = false;
  bool reenrolled_after_gap = false;
  EnrollmentStatus status = EnrollmentStatus::kUnspecified;
  std::vector<std::string> chronic_conditions;
  std::vector<std::string> special_diseases;
  std::vector<OutOfAreaFiling> out_of_area_filings;
  Supplementary supplementary;
  std::optional<int64_t> voucher_revoked_at_unix;
  // Person keys of family members who may present their own e-insurance
  // code for this person (亲情账户), sorted, without duplicates.
  std::vector<std::string> family_presenter_keys;
};

struct Institution {
  std::string institution_id;
  std::string name;
  RegionCode region_code = 0;
  InstitutionKind kind = InstitutionKind::kUnspecified;
  int32_t level = 0;  // 1..3
  bool zero_markup = false;
  bool tcm = false;
  bool children_or_maternal = false;
  bool base_level = false;
  bool suspended = false;
};

struct Visit {
  VisitType type = VisitType::kUnspecified;
  Date service_date;    // outpatient visits and purchases
  Date admission_date;  // stays
  Date discharge_date;  // stays
  Specialty specialty = Specialty::kNone;
  std::string condition;
  bool emergency = false;
};

struct BillLine {
  int32_t line_no = 0;
  std::string code;
  std::string name;
  Quantity quantity;
  Cents unit_price_cents = 0;
  Cents amount_cents = 0;
};

// A settlement request as the engine sees it.
struct Claim {
  std::string request_id;
  CredentialKind credential = CredentialKind::kUnspecified;
  Visit visit;
  std::vector<BillLine> lines;
};

inline constexpr int32_t kMaxBillLines = 20000;

struct LedgerTotals {
  Cents deductible_paid_cents = 0;
  Cents in_scope_cents = 0;
  Cents fund_paid_cents = 0;
  int32_t visits = 0;
  friend bool operator==(const LedgerTotals&, const LedgerTotals&) = default;
};

struct SupplementaryTotals {
  Cents base_cents = 0;
  Cents paid_cents = 0;
  friend bool operator==(const SupplementaryTotals&, const SupplementaryTotals&) = default;
};

inline constexpr int kResponsibilityCount = 4;  // 天一甬宁保 responsibilities 1..4

// Upper bounds of a year's totals accepted as input (ValidateAccumulators):
// far above any real year, low enough that no sum of them overflows.
inline constexpr Cents kMaxAccumulatedCents = 1'000'000'000'000'000;  // 10^15 分
inline constexpr int32_t kMaxAccumulatedVisits = 1'000'000;

// One person's year (or, as a delta, what one settlement added).
struct Accumulators {
  std::array<LedgerTotals, kLedgerCount> ledgers{};
  Cents critical_illness_burden_cents = 0;
  Cents critical_illness_paid_cents = 0;
  std::array<SupplementaryTotals, kResponsibilityCount> supplementary{};  // [0] = responsibility 1
  int64_t version = 0;

  LedgerTotals& ledger(Ledger l) { return ledgers[static_cast<size_t>(l)]; }
  const LedgerTotals& ledger(Ledger l) const { return ledgers[static_cast<size_t>(l)]; }
  // Sums over a set of ledgers.
  Cents DeductiblePaid(LedgerMask mask) const;
  Cents InScope(LedgerMask mask) const;
  Cents FundPaid(LedgerMask mask) const;
  // Equality of the money and counts; the version is not compared.
  bool SameTotals(const Accumulators& other) const;
  // Adds `sign` × every total and count of `delta` (sign +1 or -1); the
  // version is left alone. No bounds are checked: see ValidateAccumulators.
  void AddTotals(const Accumulators& delta, int sign);
};

// ---- Results ----

struct Amounts {
  Cents total_cents = 0;
  Cents out_of_scope_cents = 0;
  Cents over_limit_cents = 0;
  Cents pre_self_pay_cents = 0;
  Cents in_scope_cents = 0;
  Cents deductible_cents = 0;
  Cents base_fund_cents = 0;
  Cents critical_illness_cents = 0;
  Cents supplementary_cents = 0;
  Cents patient_cents = 0;
  friend bool operator==(const Amounts&, const Amounts&) = default;
};

struct FundDetail {
  Fund fund = Fund::kUnspecified;
  std::string_view scheme;  // policy-owned name
  Cents eligible_cents = 0;
  Cents paid_cents = 0;
  Cents cap_remaining_cents = 0;
  bool uncapped = false;
};

struct LineResult {
  int32_t line_no = 0;
  uint32_t line_index = 0;  // index into Claim::lines
  ItemClass item_class = ItemClass::kUnspecified;
  Cents amount_cents = 0;
  Cents over_limit_cents = 0;
  Cents pre_self_pay_cents = 0;
  Cents in_scope_cents = 0;
  Cents out_of_scope_cents = 0;
  bool tcm_bonus = false;
};

// Trace rules. Each has a stable id (TraceRuleId) and a note rendered from
// the step's numbers by DescribeTraceStep, so the hot path formats nothing.
enum class TraceRule : uint8_t {
  kPolicy,              // subject: policy id
  kCoverage,            // base: covered-from date (days)
  kOutOfAreaEmergency,  // settled out of area without filing
  kUnknownItem,         // count: line_no
  kOverLimit,           // amount: total over-limit
  kPreSelfPay,          // amount: total pre-self-pay
  kOutOfScope,          // amount: total class C + unknown
  kInScope,             // amount: in-scope total
  kClassOverride,       // subject: the class the visit is settled as
  kSchemeNotCovered,    // subject: scheme; the class is not paid
  kDeductible,          // amount: taken; base: rule amount; aux: paid before
  kDeductibleCeiling,   // amount: taken after the annual ceiling; base: ceiling
  kFundPiece,           // amount: piece; ratio; base: position start
  kAboveCeiling,        // amount: unpaid in-scope above the expense ceiling
  kFundPaid,            // amount: paid; base: rounded before cap; aux: cap left
  kSpillOver,           // amount: expense spilled; base: expense covered E
  kAllowance,           // amount: paid; base: allowance
  kTopUp,               // amount: top-up; base: target
  kCriticalIllness,     // amount: paid; base: burden b; aux: position B0; limit: threshold; ratio
  kBonus,               // subject: bonus name; ratio: points added
  kSupplementary,       // amount: paid; base: base amount; count: responsibility
  kSupplementaryNotOffered,  // subject: the product the policy settles (or empty)
  kClaimLater,          // count: responsibility; amount: estimate
  kPatient,             // amount: patient total
};
std::string_view TraceRuleId(TraceRule rule);

struct TraceStep {
  TraceRule rule = TraceRule::kPolicy;
  std::string_view source;   // policy-owned reference
  std::string_view subject;  // policy-owned name (scheme, segment, product)
  Cents amount_cents = 0;
  Cents base_cents = 0;
  Cents aux_cents = 0;
  Cents limit_cents = 0;  // a threshold or cap the step compared against
  BasisPoints ratio_bp = 0;
  int32_t count = 0;
};
// The arithmetic of a step in words (English, yuan with 2 decimals).
std::string DescribeTraceStep(const TraceStep& step);

struct ClaimLaterItem {
  std::string_view product;
  int32_t responsibility = 0;
  std::string_view name;
  std::optional<Cents> base_cents;
  std::optional<Cents> estimated_cents;
  std::string_view reason;
};

// The full result of one settlement computation.
struct Settlement {
  std::string_view policy_id;
  Date settlement_date;
  Amounts amounts;
  BasisPoints base_fund_ratio_bp = 0;
  bool filing_to_follow = false;
  std::vector<FundDetail> fund_details;
  std::vector<LineResult> lines;
  std::vector<TraceStep> trace;
  std::vector<ClaimLaterItem> claim_later;
  Accumulators delta;  // what this settlement adds (version 1)
  Accumulators after;  // year_to_date + delta, version + 1

  // Empties every field, keeping vector capacity for reuse.
  void Clear();
};

}  // namespace medsettle::engine

#endif  // MEDSETTLE_ENGINE_TYPES_H_
