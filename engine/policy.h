// A region-year's rules as data. The engine's code holds mechanisms
// (deductibles, ratio tables, bonuses, segments, caps, allowances, layers);
// a Policy holds the figures, each block with the source reference it came
// from. Policies are parsed from YAML files (policy_loader.h) and are
// immutable afterwards; a Settlement's string_views point into them, so a
// Policy must outlive the results computed with it.
#ifndef MEDSETTLE_ENGINE_POLICY_H_
#define MEDSETTLE_ENGINE_POLICY_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/date.h"
#include "engine/money.h"
#include "engine/types.h"

namespace medsettle::engine {

// Three-valued condition: any, must be true, must be false.
enum class Tri : uint8_t { kAny = 0, kYes, kNo };

// The facts of one settlement that table rows and bonuses match on,
// computed once per settlement. Bits follow the enums' numbers.
struct Facts {
  uint32_t class_bit = 0;       // 1 << institution class index
  uint32_t level_bit = 0;       // 1 << level
  uint32_t kind_bit = 0;        // 1 << InstitutionKind
  uint32_t tier_bit = 0;        // 1 << tier
  uint32_t category_bit = 0;    // 1 << Category
  uint32_t assistance_bit = 0;  // 1 << Assistance
  uint32_t specialty_bit = 0;   // 1 << Specialty (kNone included)
  uint32_t visit_bit = 0;       // 1 << VisitType
  bool zero_markup = false;
  bool tcm_institution = false;
  bool base_level = false;
  bool children_or_maternal = false;
  bool in_area = false;  // institution inside the pooling area
  bool minor = false;    // under 18 on the admission / service date
  bool pre_existing = false;
  bool continuous = false;
  std::string_view condition;
};

// A row condition. Every set field must hold; masks are "any of" (0 = any).
struct Matcher {
  uint32_t class_mask = 0;
  uint32_t level_mask = 0;
  uint32_t kind_mask = 0;
  uint32_t tier_mask = 0;
  uint32_t category_mask = 0;
  uint32_t assistance_mask = 0;
  uint32_t specialty_mask = 0;
  uint32_t visit_mask = 0;
  Tri zero_markup = Tri::kAny;
  Tri tcm_institution = Tri::kAny;
  Tri base_level = Tri::kAny;
  Tri children_or_maternal = Tri::kAny;
  Tri in_area = Tri::kAny;
  Tri minor = Tri::kAny;
  Tri pre_existing = Tri::kAny;
  Tri continuous = Tri::kAny;
  std::vector<std::string> conditions;  // any of; empty = any

  bool Matches(const Facts& facts) const;
};

// A table: the first row whose matcher holds gives the value.
template <typename T>
struct Row {
  Matcher when;
  T value{};
};
template <typename T>
const T* FirstMatch(const std::vector<Row<T>>& rows, const Facts& facts) {
  for (const Row<T>& row : rows) {
    if (row.when.Matches(facts)) return &row.value;
  }
  return nullptr;
}

// Institutions are grouped into classes that the tables are keyed by
// ("level_1", "level_2", "level_3"; or "community", "tertiary", "other").
// The first class whose matcher holds is the institution's class.
struct InstitutionClass {
  std::string name;
  Matcher when;
};
inline constexpr int kMaxInstitutionClasses = 16;

// How the benefit start date of a mid-year enrollment is derived.
struct BenefitStartRule {
  enum class Kind : uint8_t {
    kMonthStartAfter,  // day 1 of the month `n` months after the payment month
    kDaysAfter,        // payment date + n days
    kMonthsAfter,      // same day n months after payment (clamped)
    kRefuse,           // payment in this window is not a valid enrollment
  };
  Date paid_from;  // inclusive window of the payment date
  Date paid_to;
  Kind kind = Kind::kRefuse;
  int32_t n = 0;
  std::string source;
};

struct CoverageRules {
  Date concentrated_from;  // the concentrated period (集中参保期)
  Date concentrated_to;    // last day a payment counts as concentrated
  std::vector<BenefitStartRule> mid_year;  // first matching window wins
  // Newborns enrolled within this many days of birth are covered from
  // birth (never before the year starts); nullopt: no newborn rule.
  std::optional<int32_t> newborn_within_days;
  // The newborn rule holds only for children born in the policy year.
  bool newborn_born_in_year = false;
  // Re-enrolment after a gap (断保后再参保): the benefit start follows this
  // rule from the payment date even when it was paid in the concentrated
  // period (only kind and n are used); nullopt: a gap changes nothing.
  std::optional<BenefitStartRule> after_gap;
  // Categories follow from the birth date (Fenghua): born on or before
  // `adult_born_until` → ADULT, on or after `infant_born_from` → INFANT,
  // between → MINOR; STUDENT is a status, any age. An enrollment whose
  // category contradicts its birth date is refused.
  struct CategoryByBirth {
    Date adult_born_until;
    Date infant_born_from;
    std::string source;
  };
  std::optional<CategoryByBirth> category_by_birth;
  std::string source;
};

struct DeductibleRule {
  enum class Per : uint8_t {
    kNone,   // no deductible
    kVisit,  // the class's amount at every visit / admission
    kYear,   // make-up: max(0, amount(class) − deductible paid in `paid_ledgers`)
  };
  Per per = Per::kNone;
  std::vector<Cents> amount_by_class;  // index = institution class
  LedgerMask paid_ledgers = 0;         // kYear only
  // At TCM institutions the deductible is that of another class
  // (one level lower): class index → class index, -1 = unchanged.
  std::vector<int32_t> tcm_lower_class;
  // Deductibles paid in `ceiling_ledgers` add up to at most this per year.
  std::optional<Cents> annual_ceiling_cents;
  LedgerMask ceiling_ledgers = 0;
  std::string source;
};

// One stretch of the year's accumulated in-scope expenses. Segments are
// ordered; the last one's upper bound, if any, is an expense ceiling above
// which the fund pays nothing.
struct Segment {
  std::optional<Cents> upto_cents;  // exclusive upper bound; nullopt = open
  std::vector<Row<BasisPoints>> ratios;
};

struct Bonus {
  std::string name;
  Matcher when;
  BasisPoints bonus_bp = 0;
  bool tcm_items_only = false;  // only on in-scope amounts of TCM catalog items
  std::string source;
};

struct FundCap {
  std::vector<Row<Cents>> amounts;  // empty: uncapped
  LedgerMask ledgers = 0;           // fund paid in these counts against it
  std::string source;
};

// "Settle as class X when ..." — a scheme's institution-class substitution.
struct ClassOverride {
  Matcher when;
  int32_t class_index = 0;
  std::string class_name;
  std::string source;
};

struct Scheme {
  enum class Kind : uint8_t {
    kCoinsurance,  // deductible, ratio by segment plus bonuses, cap
    kAllowance,    // a fixed amount per visit, never more than the in-scope
  };
  std::string name;   // "inpatient", "general_outpatient", ...
  std::string title;  // "住院 inpatient"
  Kind kind = Kind::kCoinsurance;
  Ledger ledger = Ledger::kGeneralOutpatient;  // where its totals are recorded
  // Class substitutions before anything else (e.g. minors at level-3
  // children's hospitals are settled as level 2): first match wins.
  std::vector<ClassOverride> class_overrides;
  uint32_t uncovered_class_mask = 0;  // classes this scheme pays nothing at
  std::string uncovered_source;
  DeductibleRule deductible;
  LedgerMask position_ledgers = 0;  // running total for segments and ceiling
  std::vector<Segment> segments;    // at least one for kCoinsurance
  std::string ratio_source;
  std::vector<Bonus> bonuses;
  FundCap fund_cap;
  Cents allowance_cents = 0;  // kAllowance
  std::string allowance_source;
  // When this scheme's cap cannot pay the whole bill, the rest of the
  // in-scope expense is settled under this scheme (index), e.g. chronic →
  // general outpatient. -1: none.
  int32_t spill_over_to = -1;
  std::string spill_over_source;
  bool critical_illness = false;  // its burden counts toward 大病保险
  bool supplementary = false;     // the supplementary product pays on it
};

// How a visit type is settled: by which scheme, plus an optional maternity
// top-up of the base fund to a floor, never above the in-scope amount
// (Dianjiang caesarean: 600). The top-up is paid after the cap — the cap
// does not limit it — but it is base fund of the visit like the rest of
// it: it is booked in the scheme's own ledger, so it counts in that
// ledger's fund paid and uses room under the scheme's fund cap for later
// visits (it may take the fund paid above the cap), and it is not part of
// the critical-illness burden.
struct VisitRoute {
  int32_t scheme = -1;  // index into Policy::schemes
  std::optional<Cents> top_up_to_cents;
  // Where the top-up is booked: always the scheme's ledger, set by the
  // loader (not a policy key).
  Ledger top_up_ledger = Ledger::kInpatient;
  std::string top_up_source;
};

struct CriticalIllnessTerms {
  Cents threshold_cents = 0;
  BasisPoints ratio_bp = 0;
  std::optional<Cents> cap_cents;  // nullopt: no cap (不设封顶线)
};

struct CriticalIllness {
  bool enabled = false;
  std::vector<Row<CriticalIllnessTerms>> terms;  // matched on assistance etc.
  std::string source;
};

struct SupplementarySegment {
  Cents from_cents = 0;              // inclusive lower bound on the base
  std::optional<Cents> to_cents;     // exclusive; nullopt = open
  std::vector<Row<BasisPoints>> ratios;  // matched on pre_existing, continuous
};

struct Responsibility {
  enum class Base : uint8_t {
    kInScopeBurden,  // pre-self-pay + in-scope left after base fund and 大病
    kOutOfScope,     // out-of-scope + over-limit
    kNotComputable,  // the bill does not identify it (drugs bought outside, proton)
  };
  enum class Settle : uint8_t {
    kCounter,          // always settled at the counter
    kCounterInRegion,  // at the counter inside `counter_regions`, else claim later
    kClaimLater,       // always claimed later with the insurer
  };
  int32_t id = 0;  // 1..4
  std::string name;
  Base base = Base::kNotComputable;
  Settle settle = Settle::kClaimLater;
  std::vector<SupplementarySegment> segments;
  std::optional<Cents> cap_cents;
  std::string source;
};

struct SupplementaryProduct {
  std::string product;  // matches Enrollment::supplementary.product
  std::string title;
  std::vector<RegionCode> counter_regions;  // institutions settled one-stop
  std::vector<Responsibility> responsibilities;
  std::string source;
};

struct Policy {
  std::string id;     // "quzhou-2024"
  std::string title;  // "衢州市 2024 城乡居民医保"
  std::string file_name;
  std::string source_document;  // the seed it comes from
  int32_t year = 0;
  Date valid_from;  // the policy applies to settlement dates in
  Date valid_to;    // [valid_from, valid_to]
  std::vector<RegionCode> regions;       // insured regions it applies to
  std::vector<RegionCode> pooling_area;  // in-area institutions
  std::vector<int32_t> tiers;            // allowed enrollment tiers
  std::vector<InstitutionClass> classes;
  CoverageRules coverage;
  std::vector<Scheme> schemes;
  std::array<VisitRoute, kVisitTypeCount> routes{};  // index = VisitType
  CriticalIllness critical_illness;
  std::optional<SupplementaryProduct> supplementary;

  int32_t ClassIndex(std::string_view name) const;  // -1 when unknown
  int32_t SchemeIndex(std::string_view name) const;  // -1 when unknown
  bool InPoolingArea(RegionCode code) const;
  bool Insures(RegionCode code) const;
};

}  // namespace medsettle::engine

#endif  // MEDSETTLE_ENGINE_POLICY_H_
