// The settlement computation: base fund by scheme (deductible, ratios by
// segment with bonuses, caps, spill-over, allowances, top-ups), then
// critical illness on the accumulated burden, then the supplementary
// product's responsibilities, and the patient pays the rest. Conventions:
// ../shared/POLICY-NOTES.md "Computation conventions"; the numbers cited as
// (Cn) below are its items.
#include <algorithm>
#include <array>
#include <bit>
#include <limits>

#include "engine/text.h"
#include "engine/engine.h"
#include "engine/internal.h"
#include "engine/status.h"

namespace medsettle::engine {
namespace {

constexpr Cents kUnbounded = std::numeric_limits<Cents>::max() / 4;
constexpr std::string_view kTopUpName = "maternity_top_up";
constexpr std::string_view kCriticalIllnessName = "critical_illness";

// Length of [lo, hi) ∩ [seg_lo, seg_hi).
Cents Overlap(Cents lo, Cents hi, Cents seg_lo, Cents seg_hi) {
  return std::max<Cents>(0, std::min(hi, seg_hi) - std::max(lo, seg_lo));
}

absl::Status PolicyGap(const Policy& policy, std::string_view what) {
  return Refused(reason::kPolicyGap,
                 Cat(policy.file_name, ": no row of ", what, " matches this settlement"));
}

absl::Status Broken(std::string_view what) {
  return Refusal(absl::StatusCode::kInternal, reason::kInvariantViolated, "",
                 Cat("settlement refused, invariant violated: ", what));
}

// The fund caps one settlement applied, and the base fund it booked that no
// cap limits (allowances, top-ups), per ledger: what CheckInvariants needs
// to tell capped money, which never goes above a cap, from uncapped money,
// which may take a cap's ledgers above it (a top-up "after the cap").
struct CapBook {
  struct Applied {
    LedgerMask ledgers = 0;  // the cap's ledgers
    Cents cap_cents = 0;
    size_t detail = 0;  // index of the scheme's FundDetail
  };
  // A scheme and at most one spill-over target (chains are refused at load).
  std::array<Applied, 2> applied{};
  size_t applied_count = 0;
  std::array<Cents, kLedgerCount> uncapped_cents{};
};

// What one scheme paid in this settlement.
struct SchemePayment {
  Cents deductible_cents = 0;
  Cents fund_cents = 0;
  Cents covered_cents = 0;  // in-scope expense this scheme accounted for
  BasisPoints first_ratio_bp = 0;
};

// Settles one scheme of one bill: the mutable state of a settlement.
class Settler {
 public:
  Settler(const Policy& policy, const Accumulators& year_to_date, Facts facts, Settlement* out)
      : policy_(policy), current_(year_to_date), facts_(facts), out_(out) {}

  const Accumulators& current() const { return current_; }
  const CapBook& caps() const { return caps_; }
  Facts& facts() { return facts_; }

  // Applies `scheme` to `in_scope` (of which `tcm_in_scope` comes from TCM
  // items) and records its ledger totals. Spill-over recurses once.
  absl::StatusOr<SchemePayment> ApplyScheme(const Scheme& scheme, Cents in_scope,
                                            Cents tcm_in_scope, bool primary);

  // Adds to both the running totals and the settlement's delta.
  void AddLedger(Ledger ledger, Cents deductible, Cents in_scope, Cents fund, int32_t visits) {
    for (Accumulators* a : {&current_, &out_->delta}) {
      LedgerTotals& t = a->ledger(ledger);
      t.deductible_paid_cents += deductible;
      t.in_scope_cents += in_scope;
      t.fund_paid_cents += fund;
      t.visits += visits;
    }
  }
  // Base fund that no cap limits (an allowance, a top-up), booked in
  // `ledger` like any other fund paid there: it counts against every cap
  // whose ledgers include `ledger` for the visits that follow.
  void AddUncappedFund(Ledger ledger, Cents fund) {
    AddLedger(ledger, 0, 0, fund, 0);
    caps_.uncapped_cents[static_cast<size_t>(ledger)] += fund;
  }
  // After every payment: what each applied cap has left after this
  // settlement, max(0, cap − fund paid in its ledgers), which counts the
  // uncapped money booked there too.
  void RefreshCapsRemaining() {
    for (size_t i = 0; i < caps_.applied_count; ++i) {
      const CapBook::Applied& cap = caps_.applied[i];
      out_->fund_details[cap.detail].cap_remaining_cents =
          std::max<Cents>(0, cap.cap_cents - current_.FundPaid(cap.ledgers));
    }
  }
  void AddCriticalIllness(Cents burden, Cents paid) {
    for (Accumulators* a : {&current_, &out_->delta}) {
      a->critical_illness_burden_cents += burden;
      a->critical_illness_paid_cents += paid;
    }
  }
  void AddSupplementary(int32_t responsibility, Cents base, Cents paid) {
    for (Accumulators* a : {&current_, &out_->delta}) {
      SupplementaryTotals& t = a->supplementary[static_cast<size_t>(responsibility - 1)];
      t.base_cents += base;
      t.paid_cents += paid;
    }
  }
  void Trace(TraceStep step) { out_->trace.push_back(step); }

 private:
  absl::StatusOr<Cents> Deductible(const Scheme& scheme, int32_t cls, Cents in_scope);

  const Policy& policy_;
  Accumulators current_;
  Facts facts_;
  Settlement* out_;
  CapBook caps_;
};

absl::StatusOr<Cents> Settler::Deductible(const Scheme& scheme, int32_t cls, Cents in_scope) {
  const DeductibleRule& rule = scheme.deductible;
  if (rule.per == DeductibleRule::Per::kNone) return 0;
  // TCM institutions pay the deductible of the class one level lower.
  int32_t deductible_class = cls;
  if (facts_.tcm_institution && static_cast<size_t>(cls) < rule.tcm_lower_class.size() &&
      rule.tcm_lower_class[static_cast<size_t>(cls)] >= 0) {
    deductible_class = rule.tcm_lower_class[static_cast<size_t>(cls)];
  }
  if (static_cast<size_t>(deductible_class) >= rule.amount_by_class.size()) {
    return PolicyGap(policy_, Cat(scheme.name, ".deductible"));
  }
  const Cents amount = rule.amount_by_class[static_cast<size_t>(deductible_class)];
  Cents paid_before = 0;
  Cents left = amount;
  if (rule.per == DeductibleRule::Per::kYear) {  // make-up: max(0, D − paid)
    paid_before = current_.DeductiblePaid(rule.paid_ledgers);
    left = std::max<Cents>(0, amount - paid_before);
  }
  Cents taken = std::min(in_scope, left);
  Trace({.rule = TraceRule::kDeductible, .source = rule.source, .subject = scheme.name,
         .amount_cents = taken, .base_cents = amount, .aux_cents = paid_before,
         .count = rule.per == DeductibleRule::Per::kYear ? 1 : 0});
  if (rule.annual_ceiling_cents) {
    Cents ceiling_left =
        std::max<Cents>(0, *rule.annual_ceiling_cents - current_.DeductiblePaid(rule.ceiling_ledgers));
    if (taken > ceiling_left) {
      taken = ceiling_left;
      Trace({.rule = TraceRule::kDeductibleCeiling, .source = rule.source,
             .subject = scheme.name, .amount_cents = taken,
             .base_cents = *rule.annual_ceiling_cents});
    }
  }
  return taken;
}

absl::StatusOr<SchemePayment> Settler::ApplyScheme(const Scheme& scheme, Cents in_scope,
                                                   Cents tcm_in_scope, bool primary) {
  SchemePayment pay;
  const int32_t visits = primary ? 1 : 0;

  if (scheme.kind == Scheme::Kind::kAllowance) {
    pay.fund_cents = std::min(scheme.allowance_cents, in_scope);
    pay.covered_cents = in_scope;
    Trace({.rule = TraceRule::kAllowance, .source = scheme.allowance_source,
           .subject = scheme.name, .amount_cents = pay.fund_cents,
           .base_cents = scheme.allowance_cents});
    AddLedger(scheme.ledger, 0, in_scope, 0, visits);
    AddUncappedFund(scheme.ledger, pay.fund_cents);
    out_->fund_details.push_back({.fund = Fund::kBase, .scheme = scheme.name,
                                  .eligible_cents = in_scope, .paid_cents = pay.fund_cents,
                                  .uncapped = true});
    return pay;
  }

  // Institution class, after the scheme's substitutions.
  Facts facts = facts_;
  int32_t cls = std::countr_zero(facts.class_bit);
  for (const ClassOverride& substitute : scheme.class_overrides) {
    if (!substitute.when.Matches(facts)) continue;
    cls = substitute.class_index;
    facts.class_bit = 1u << cls;
    Trace({.rule = TraceRule::kClassOverride, .source = substitute.source,
           .subject = substitute.class_name});
    break;
  }
  if (scheme.uncovered_class_mask & facts.class_bit) {
    Trace({.rule = TraceRule::kSchemeNotCovered, .source = scheme.uncovered_source,
           .subject = scheme.name, .amount_cents = 0, .base_cents = in_scope});
    // The year's running total grows by the whole in-scope amount (C4),
    // even where the scheme pays nothing.
    pay.covered_cents = in_scope;
    AddLedger(scheme.ledger, 0, in_scope, 0, visits);
    return pay;
  }

  absl::StatusOr<Cents> deductible = Deductible(scheme, cls, in_scope);
  if (!deductible.ok()) return deductible.status();
  pay.deductible_cents = *deductible;

  // Bonus points (C5): on the whole visit, or on TCM items only.
  BasisPoints visit_bonus = 0, tcm_bonus = 0;
  for (const Bonus& bonus : scheme.bonuses) {
    if (!bonus.when.Matches(facts)) continue;
    (bonus.tcm_items_only ? tcm_bonus : visit_bonus) += bonus.bonus_bp;
    Trace({.rule = TraceRule::kBonus, .source = bonus.source, .subject = bonus.name,
           .ratio_bp = bonus.bonus_bp, .count = bonus.tcm_items_only ? 1 : 0});
  }
  // Without a TCM bonus here, TCM items are ordinary in-scope for this
  // scheme (a spill-over target may still have one: tcm_in_scope is kept).
  const Cents tcm_stream = tcm_bonus == 0 ? 0 : tcm_in_scope;

  // Streams on the position line (C2, C4): the deductible is taken from the
  // lines without the TCM bonus first; then the rest of those lines, then
  // the TCM lines.
  const Cents general = in_scope - tcm_stream;
  const Cents deductible_general = std::min(pay.deductible_cents, general);
  const Cents start = current_.InScope(scheme.position_ledgers);
  struct Stream {
    Cents lo, hi;
    BasisPoints bonus_bp;
  };
  const Cents paid_from = start + pay.deductible_cents;
  const Stream streams[2] = {
      {paid_from, paid_from + general - deductible_general, visit_bonus},
      {paid_from + general - deductible_general, start + in_scope, visit_bonus + tcm_bonus}};

  Int128 numerator = 0;  // Σ piece × ratio, rounded once (C3)
  Cents eligible = 0;
  bool first = true;
  for (const Stream& stream : streams) {
    Cents segment_lo = 0;
    for (const Segment& segment : scheme.segments) {
      const Cents segment_hi = segment.upto_cents.value_or(kUnbounded);
      const Cents piece = Overlap(stream.lo, stream.hi, segment_lo, segment_hi);
      if (piece > 0) {
        const BasisPoints* base = FirstMatch(segment.ratios, facts);
        if (base == nullptr) return PolicyGap(policy_, Cat(scheme.name, ".ratios"));
        const BasisPoints ratio = std::min(kFullRatioBp, *base + stream.bonus_bp);
        numerator += static_cast<Int128>(piece) * ratio;
        eligible += piece;
        if (first) {
          pay.first_ratio_bp = ratio;
          first = false;
        }
        Trace({.rule = TraceRule::kFundPiece, .source = scheme.ratio_source,
               .subject = scheme.name, .amount_cents = piece,
               .base_cents = std::max(stream.lo, segment_lo), .aux_cents = *base,
               .ratio_bp = ratio});
      }
      segment_lo = segment_hi;
    }
    // Above an expense ceiling the fund pays nothing (C4).
    const Cents above = Overlap(stream.lo, stream.hi, segment_lo, kUnbounded);
    if (above > 0) {
      Trace({.rule = TraceRule::kAboveCeiling, .source = scheme.ratio_source,
             .subject = scheme.name, .amount_cents = above, .base_cents = segment_lo});
    }
  }
  const Cents rounded = RoundHalfUpDiv(numerator, kFullRatioBp);

  // The annual cap (C3), possibly shared with other schemes' ledgers. The
  // fund paid there may already stand above the cap (a top-up is paid after
  // the cap but counts in it): then nothing is left, never less than 0.
  Cents cap_left = kUnbounded;
  const bool capped = !scheme.fund_cap.amounts.empty();
  if (capped) {
    const Cents* cap = FirstMatch(scheme.fund_cap.amounts, facts);
    if (cap == nullptr) return PolicyGap(policy_, Cat(scheme.name, ".fund_cap"));
    cap_left = std::max<Cents>(0, *cap - current_.FundPaid(scheme.fund_cap.ledgers));
    if (caps_.applied_count == caps_.applied.size()) return Broken("more caps than schemes");
    caps_.applied[caps_.applied_count++] = {.ledgers = scheme.fund_cap.ledgers,
                                            .cap_cents = *cap,
                                            .detail = out_->fund_details.size()};
  }
  pay.fund_cents = std::min(rounded, cap_left);
  pay.covered_cents = in_scope;
  Trace({.rule = TraceRule::kFundPaid, .source = scheme.fund_cap.source, .subject = scheme.name,
         .amount_cents = pay.fund_cents, .base_cents = rounded,
         .aux_cents = capped ? cap_left : -1});

  // Spill-over (C7): the cap could not pay the whole bill; the expense the
  // cap did cover is E = ceil(R × 10000 / ratio); the rest settles under
  // the target scheme in the same settlement.
  Cents spilled = 0;
  if (scheme.spill_over_to >= 0 && rounded > cap_left && pay.first_ratio_bp > 0) {
    Cents covered = pay.deductible_cents + CeilDiv(static_cast<Int128>(pay.fund_cents) * kFullRatioBp,
                                                   pay.first_ratio_bp);
    covered = std::min(covered, in_scope);
    spilled = in_scope - covered;
    pay.covered_cents = covered;
    Trace({.rule = TraceRule::kSpillOver, .source = scheme.spill_over_source,
           .subject = policy_.schemes[static_cast<size_t>(scheme.spill_over_to)].name,
           .amount_cents = spilled, .base_cents = covered, .aux_cents = pay.fund_cents});
  }
  // After a spill-over, this scheme's ratio applied to the part it covered.
  if (spilled > 0) eligible = pay.covered_cents - pay.deductible_cents;
  AddLedger(scheme.ledger, pay.deductible_cents, pay.covered_cents, pay.fund_cents, visits);
  out_->fund_details.push_back({.fund = Fund::kBase, .scheme = scheme.name,
                                .eligible_cents = eligible, .paid_cents = pay.fund_cents,
                                .cap_remaining_cents = capped ? cap_left - pay.fund_cents : 0,
                                .uncapped = !capped});
  if (spilled > 0) {
    // The covered part was taken from the lines without TCM items first.
    const Cents covered_general = std::min(pay.covered_cents, in_scope - tcm_in_scope);
    const Cents tcm_left = tcm_in_scope - (pay.covered_cents - covered_general);
    const Scheme& target = policy_.schemes[static_cast<size_t>(scheme.spill_over_to)];
    absl::StatusOr<SchemePayment> rest = ApplyScheme(target, spilled, tcm_left, false);
    if (!rest.ok()) return rest.status();
    pay.deductible_cents += rest->deductible_cents;
    pay.fund_cents += rest->fund_cents;
    pay.covered_cents += rest->covered_cents;
  }
  return pay;
}

// Critical illness (C6): this settlement's in-scope burden b occupies
// [B0, B0 + b) on the year's burden; the part above the threshold is paid
// at the ratio, then capped.
absl::StatusOr<Cents> ApplyCriticalIllness(const Policy& policy, Settler& settler, Cents burden,
                                           Settlement* out) {
  const CriticalIllnessTerms* terms = FirstMatch(policy.critical_illness.terms, settler.facts());
  if (terms == nullptr) return PolicyGap(policy, "critical_illness.terms");
  const Cents start = settler.current().critical_illness_burden_cents;
  const Cents above = Overlap(start, start + burden, terms->threshold_cents, kUnbounded);
  const Cents rounded = ApplyRatio(above, terms->ratio_bp);
  const Cents cap_left = terms->cap_cents
                             ? std::max<Cents>(0, *terms->cap_cents -
                                                      settler.current().critical_illness_paid_cents)
                             : kUnbounded;
  const Cents paid = std::min(rounded, cap_left);
  settler.Trace({.rule = TraceRule::kCriticalIllness, .source = policy.critical_illness.source,
                 .subject = kCriticalIllnessName, .amount_cents = paid, .base_cents = burden,
                 .aux_cents = start, .limit_cents = terms->threshold_cents,
                 .ratio_bp = terms->ratio_bp});
  settler.AddCriticalIllness(burden, paid);
  out->fund_details.push_back({.fund = Fund::kCriticalIllness, .scheme = kCriticalIllnessName,
                               .eligible_cents = above, .paid_cents = paid,
                               .cap_remaining_cents = terms->cap_cents ? cap_left - paid : 0,
                               .uncapped = !terms->cap_cents});
  return paid;
}

// Supplementary (C8): each responsibility by position on its own
// accumulated base, segment by segment, rounded once, then capped.
absl::StatusOr<Cents> ApplySupplementary(const Policy& policy, const Institution& institution,
                                         const Amounts& amounts, bool pays_on_visit,
                                         Settler& settler, Settlement* out) {
  const SupplementaryProduct& product = *policy.supplementary;
  const bool one_stop_region =
      std::any_of(product.counter_regions.begin(), product.counter_regions.end(),
                  [&](RegionCode area) { return RegionCovers(area, institution.region_code); });
  Cents total_paid = 0;
  for (const Responsibility& r : product.responsibilities) {
    if (r.base == Responsibility::Base::kNotComputable) {
      out->claim_later.push_back({.product = product.product, .responsibility = r.id,
                                  .name = r.name,
                                  .reason = "claimed later with the insurer when the bill qualifies"});
      settler.Trace({.rule = TraceRule::kClaimLater, .source = r.source, .subject = r.name,
                     .count = r.id});
      continue;
    }
    if (!pays_on_visit) continue;
    const Cents base = r.base == Responsibility::Base::kInScopeBurden
                           ? amounts.pre_self_pay_cents + amounts.in_scope_cents -
                                 amounts.base_fund_cents - amounts.critical_illness_cents
                           : amounts.out_of_scope_cents + amounts.over_limit_cents;
    const SupplementaryTotals& year = settler.current().supplementary[static_cast<size_t>(r.id - 1)];
    Int128 numerator = 0;
    Cents eligible = 0;
    for (const SupplementarySegment& segment : r.segments) {
      const Cents piece = Overlap(year.base_cents, year.base_cents + base, segment.from_cents,
                                  segment.to_cents.value_or(kUnbounded));
      if (piece == 0) continue;
      const BasisPoints* ratio = FirstMatch(segment.ratios, settler.facts());
      if (ratio == nullptr) return PolicyGap(policy, Cat("supplementary.", r.name));
      numerator += static_cast<Int128>(piece) * *ratio;
      eligible += piece;
    }
    const Cents rounded = RoundHalfUpDiv(numerator, kFullRatioBp);
    const Cents cap_left = r.cap_cents ? std::max<Cents>(0, *r.cap_cents - year.paid_cents) : kUnbounded;
    const Cents paid = std::min(rounded, cap_left);
    const bool at_counter = r.settle == Responsibility::Settle::kCounter ||
                            (r.settle == Responsibility::Settle::kCounterInRegion && one_stop_region);
    if (!at_counter) {
      out->claim_later.push_back({.product = product.product, .responsibility = r.id,
                                  .name = r.name, .base_cents = base, .estimated_cents = paid,
                                  .reason = "settled one-stop only inside the product's region"});
      settler.Trace({.rule = TraceRule::kClaimLater, .source = r.source, .subject = r.name,
                     .amount_cents = paid, .base_cents = base, .count = r.id});
      continue;
    }
    settler.Trace({.rule = TraceRule::kSupplementary, .source = r.source, .subject = r.name,
                   .amount_cents = paid, .base_cents = base, .aux_cents = year.base_cents,
                   .count = r.id});
    settler.AddSupplementary(r.id, base, paid);
    out->fund_details.push_back({.fund = Fund::kSupplementary, .scheme = r.name,
                                 .eligible_cents = eligible, .paid_cents = paid,
                                 .cap_remaining_cents = r.cap_cents ? cap_left - paid : 0,
                                 .uncapped = !r.cap_cents});
    total_paid += paid;
  }
  return total_paid;
}

// Always-on checks (they are cheap): a failure is a bug, and the
// settlement is refused rather than recorded.
absl::Status CheckInvariants(const Policy& policy, const Accumulators& year_to_date,
                             const CapBook& caps, const Settlement& s) {
  const Amounts& a = s.amounts;
  for (Cents v : {a.total_cents, a.out_of_scope_cents, a.over_limit_cents, a.pre_self_pay_cents,
                  a.in_scope_cents, a.deductible_cents, a.base_fund_cents,
                  a.critical_illness_cents, a.supplementary_cents, a.patient_cents}) {
    if (v < 0) return Broken("negative amount");
  }
  if (a.out_of_scope_cents + a.over_limit_cents + a.pre_self_pay_cents + a.in_scope_cents !=
      a.total_cents) {
    return Broken("classification does not add up to the bill");
  }
  if (a.base_fund_cents + a.critical_illness_cents + a.supplementary_cents + a.patient_cents !=
      a.total_cents) {
    return Broken("payers do not add up to the bill");
  }
  if (a.deductible_cents > a.in_scope_cents || a.base_fund_cents > a.in_scope_cents ||
      a.base_fund_cents + a.critical_illness_cents > a.in_scope_cents) {
    return Broken("funds paid more than the in-scope amount");
  }
  for (size_t i = 0; i < s.after.ledgers.size(); ++i) {
    const LedgerTotals& after = s.after.ledgers[i];
    const LedgerTotals& before = year_to_date.ledgers[i];
    const LedgerTotals& delta = s.delta.ledgers[i];
    if (delta.deductible_paid_cents < 0 || delta.in_scope_cents < 0 || delta.fund_paid_cents < 0 ||
        after.deductible_paid_cents != before.deductible_paid_cents + delta.deductible_paid_cents ||
        after.in_scope_cents != before.in_scope_cents + delta.in_scope_cents ||
        after.fund_paid_cents != before.fund_paid_cents + delta.fund_paid_cents) {
      return Broken("ledger totals are not year-to-date plus delta");
    }
  }
  // Every yuan of base fund is booked once, in one ledger.
  Cents booked = 0;
  for (const LedgerTotals& delta : s.delta.ledgers) booked += delta.fund_paid_cents;
  if (booked != a.base_fund_cents) return Broken("base fund not booked once in the ledgers");
  // No fund cap exceeded: the capped money of this settlement in a cap's
  // ledgers (its fund paid there less the uncapped allowances and top-ups)
  // never takes them above the cap, or further above it if the year
  // already was (an earlier top-up). Uncapped money may: a top-up "after
  // the cap" is paid in full and still counts in the ledger's fund paid.
  for (size_t i = 0; i < caps.applied_count; ++i) {
    const CapBook::Applied& cap = caps.applied[i];
    Cents uncapped = 0;
    for (int l = 0; l < kLedgerCount; ++l) {
      if (cap.ledgers & (1u << l)) uncapped += caps.uncapped_cents[static_cast<size_t>(l)];
    }
    const Cents before = year_to_date.FundPaid(cap.ledgers);
    const Cents capped = s.delta.FundPaid(cap.ledgers) - uncapped;
    if (capped < 0 || before + capped > std::max(cap.cap_cents, before) ||
        s.fund_details[cap.detail].cap_remaining_cents !=
            std::max<Cents>(0, cap.cap_cents - s.after.FundPaid(cap.ledgers))) {
      return Broken(Cat(s.fund_details[cap.detail].scheme, " fund cap exceeded"));
    }
  }
  for (const Scheme& scheme : policy.schemes) {
    // A cap or ceiling may only be exceeded if it already was before.
    if (scheme.deductible.annual_ceiling_cents &&
        s.delta.DeductiblePaid(scheme.deductible.ceiling_ledgers) > 0 &&
        s.after.DeductiblePaid(scheme.deductible.ceiling_ledgers) > *scheme.deductible.annual_ceiling_cents) {
      return Broken(Cat(scheme.name, " deductible ceiling exceeded"));
    }
  }
  for (const FundDetail& d : s.fund_details) {
    if (d.paid_cents < 0 || d.paid_cents > d.eligible_cents ||
        (!d.uncapped && d.cap_remaining_cents < 0)) {
      return Broken(Cat("fund ", d.scheme, " paid outside its eligible amount or cap"));
    }
  }
  if (s.after.critical_illness_burden_cents !=
          year_to_date.critical_illness_burden_cents + s.delta.critical_illness_burden_cents ||
      s.after.critical_illness_paid_cents !=
          year_to_date.critical_illness_paid_cents + s.delta.critical_illness_paid_cents) {
    return Broken("critical-illness totals are not year-to-date plus delta");
  }
  return absl::OkStatus();
}

Facts MakeFacts(const Policy& policy, const Enrollment& e, const Institution& institution,
                const Visit& visit) {
  Facts f;
  f.level_bit = 1u << institution.level;
  f.kind_bit = 1u << static_cast<unsigned>(institution.kind);
  f.tier_bit = 1u << e.tier;
  f.category_bit = 1u << static_cast<unsigned>(e.category);
  f.assistance_bit = 1u << static_cast<unsigned>(e.assistance);
  f.specialty_bit = 1u << static_cast<unsigned>(visit.specialty);
  f.visit_bit = 1u << static_cast<unsigned>(visit.type);
  f.zero_markup = institution.zero_markup;
  f.tcm_institution = institution.tcm;
  f.base_level = institution.base_level;
  f.children_or_maternal = institution.children_or_maternal;
  f.in_area = policy.InPoolingArea(institution.region_code);
  // Age is taken on the admission or service date (C9, C10).
  const Date age_date = IsStay(visit.type) ? visit.admission_date : visit.service_date;
  f.minor = e.birth_date.valid() && IsMinorOn(e.birth_date, age_date);
  f.pre_existing = e.supplementary.pre_existing;
  f.continuous = e.supplementary.continuous;
  f.condition = visit.condition;
  return f;
}

}  // namespace

absl::Status Engine::Settle(const SettleInput& input, Settlement* out) const {
  // A copy, taken before `out` is cleared: callers may pass the previous
  // settlement's `after` as this one's year-to-date.
  const Accumulators year_to_date = *input.year_to_date;
  out->Clear();
  const Claim& claim = *input.claim;
  const Enrollment& enrollment = *input.enrollment;
  const Institution& institution = *input.institution;
  if (absl::Status s = ValidateClaim(claim); !s.ok()) return s;
  if (absl::Status s = ValidateAccumulators(year_to_date); !s.ok()) return s;
  absl::StatusOr<CoverageDecision> coverage =
      CheckCoverage(enrollment, institution, claim.visit, claim.credential,
                    input.voucher_issued_at_unix);
  if (!coverage.ok()) return coverage.status();
  const Policy& policy = *coverage->policy;
  out->policy_id = policy.id;
  out->settlement_date = coverage->settlement_date;
  out->filing_to_follow = coverage->filing_to_follow;
  out->trace.push_back({.rule = TraceRule::kPolicy, .source = policy.source_document,
                        .subject = policy.id});
  out->trace.push_back({.rule = TraceRule::kCoverage, .source = policy.coverage.source,
                        .base_cents = coverage->covered_from.days()});
  if (coverage->filing_to_follow) {
    out->trace.push_back({.rule = TraceRule::kOutOfAreaEmergency, .source = policy.source_document});
  }

  internal::BillSplit split;
  internal::ClassifyBill(catalog_, claim, &out->lines, &split, &out->trace);
  Amounts& amounts = out->amounts;
  amounts.total_cents = split.total_cents;
  amounts.out_of_scope_cents = split.out_of_scope_cents;
  amounts.over_limit_cents = split.over_limit_cents;
  amounts.pre_self_pay_cents = split.pre_self_pay_cents;
  amounts.in_scope_cents = split.in_scope_cents;
  if (split.over_limit_cents > 0) {
    out->trace.push_back({.rule = TraceRule::kOverLimit, .amount_cents = split.over_limit_cents});
  }
  if (split.pre_self_pay_cents > 0) {
    out->trace.push_back({.rule = TraceRule::kPreSelfPay, .amount_cents = split.pre_self_pay_cents});
  }
  if (split.out_of_scope_cents > 0) {
    out->trace.push_back({.rule = TraceRule::kOutOfScope, .amount_cents = split.out_of_scope_cents});
  }
  out->trace.push_back({.rule = TraceRule::kInScope, .amount_cents = split.in_scope_cents});

  // The institution's class: the first class entry that matches.
  Facts facts = MakeFacts(policy, enrollment, institution, claim.visit);
  int32_t cls = -1;
  for (const InstitutionClass& c : policy.classes) {
    if (c.when.Matches(facts)) {
      cls = policy.ClassIndex(c.name);
      break;
    }
  }
  if (cls < 0) return PolicyGap(policy, "institution_classes");
  facts.class_bit = 1u << cls;

  const VisitRoute& route = policy.routes[static_cast<size_t>(claim.visit.type)];
  const Scheme& scheme = policy.schemes[static_cast<size_t>(route.scheme)];
  Settler settler(policy, year_to_date, facts, out);
  absl::StatusOr<SchemePayment> base =
      settler.ApplyScheme(scheme, split.in_scope_cents, split.tcm_in_scope_cents, true);
  if (!base.ok()) return base.status();
  amounts.deductible_cents = base->deductible_cents;
  amounts.base_fund_cents = base->fund_cents;
  out->base_fund_ratio_bp = base->first_ratio_bp;
  bool tcm_bonus_applied = false;
  for (const Bonus& bonus : scheme.bonuses) {
    tcm_bonus_applied |= bonus.tcm_items_only && bonus.when.Matches(settler.facts());
  }
  if (!tcm_bonus_applied) {
    for (LineResult& line : out->lines) line.tcm_bonus = false;
  }

  // Maternity top-up: the base fund is raised to a floor, never above the
  // in-scope amount. It is paid after the cap (the cap does not limit it)
  // but it is base fund of this visit like the rest: booked in the
  // scheme's ledger (route.top_up_ledger, which the loader sets to it), it
  // counts in that ledger's fund paid and so uses room under the cap of
  // later visits; it may take that fund paid above the cap.
  if (route.top_up_to_cents) {
    const Cents floor = std::min(*route.top_up_to_cents, split.in_scope_cents);
    if (amounts.base_fund_cents < floor) {
      const Cents top_up = floor - amounts.base_fund_cents;
      settler.Trace({.rule = TraceRule::kTopUp, .source = route.top_up_source,
                     .subject = kTopUpName, .amount_cents = top_up,
                     .base_cents = *route.top_up_to_cents});
      settler.AddUncappedFund(route.top_up_ledger, top_up);
      out->fund_details.push_back({.fund = Fund::kBase, .scheme = kTopUpName,
                                   .eligible_cents = floor, .paid_cents = top_up,
                                   .uncapped = true});
      amounts.base_fund_cents = floor;
    }
  }
  settler.RefreshCapsRemaining();

  // The burden is what the base fund (a top-up included) left in scope.
  if (policy.critical_illness.enabled && scheme.critical_illness) {
    absl::StatusOr<Cents> paid = ApplyCriticalIllness(
        policy, settler, split.in_scope_cents - amounts.base_fund_cents, out);
    if (!paid.ok()) return paid.status();
    amounts.critical_illness_cents = *paid;
  }

  if (!enrollment.supplementary.product.empty()) {
    if (policy.supplementary && enrollment.supplementary.product == policy.supplementary->product) {
      absl::StatusOr<Cents> paid = ApplySupplementary(policy, institution, amounts,
                                                      scheme.supplementary, settler, out);
      if (!paid.ok()) return paid.status();
      amounts.supplementary_cents = *paid;
    } else {
      // Not a refusal (the basic layers still settle), but never silent.
      // (subject: the product this policy does settle, policy-owned.)
      out->trace.push_back({.rule = TraceRule::kSupplementaryNotOffered,
                            .source = policy.source_document,
                            .subject = policy.supplementary ? std::string_view(
                                                                  policy.supplementary->product)
                                                            : std::string_view()});
    }
  }

  amounts.patient_cents = amounts.total_cents - amounts.base_fund_cents -
                          amounts.critical_illness_cents - amounts.supplementary_cents;
  out->trace.push_back({.rule = TraceRule::kPatient, .amount_cents = amounts.patient_cents,
                        .base_cents = amounts.deductible_cents});
  out->after = settler.current();
  out->after.version = year_to_date.version + 1;
  out->delta.version = 1;
  return CheckInvariants(policy, year_to_date, settler.caps(), *out);
}

}  // namespace medsettle::engine
