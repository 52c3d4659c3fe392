// Trace rule ids and the notes that explain each step's arithmetic. Notes
// are rendered on demand (by the contract layer), not on the hot path.
#include "engine/text.h"
#include "engine/types.h"

namespace medsettle::engine {

std::string_view TraceRuleId(TraceRule rule) {
  switch (rule) {
    case TraceRule::kPolicy: return "policy";
    case TraceRule::kCoverage: return "coverage";
    case TraceRule::kOutOfAreaEmergency: return "coverage.out_of_area_emergency";
    case TraceRule::kUnknownItem: return "classify.unknown_item";
    case TraceRule::kOverLimit: return "classify.over_limit";
    case TraceRule::kPreSelfPay: return "classify.pre_self_pay";
    case TraceRule::kOutOfScope: return "classify.out_of_scope";
    case TraceRule::kInScope: return "classify.in_scope";
    case TraceRule::kClassOverride: return "base_fund.class_override";
    case TraceRule::kSchemeNotCovered: return "base_fund.not_covered";
    case TraceRule::kDeductible: return "base_fund.deductible";
    case TraceRule::kDeductibleCeiling: return "base_fund.deductible_ceiling";
    case TraceRule::kFundPiece: return "base_fund.piece";
    case TraceRule::kAboveCeiling: return "base_fund.above_ceiling";
    case TraceRule::kFundPaid: return "base_fund.paid";
    case TraceRule::kSpillOver: return "base_fund.spill_over";
    case TraceRule::kAllowance: return "base_fund.allowance";
    case TraceRule::kTopUp: return "base_fund.top_up";
    case TraceRule::kCriticalIllness: return "critical_illness";
    case TraceRule::kBonus: return "base_fund.bonus";
    case TraceRule::kSupplementary: return "supplementary";
    case TraceRule::kSupplementaryNotOffered: return "supplementary.not_offered";
    case TraceRule::kClaimLater: return "supplementary.claim_later";
    case TraceRule::kPatient: return "patient";
  }
  return "unknown";
}

std::string DescribeTraceStep(const TraceStep& s) {
  const std::string amount = FormatYuan(s.amount_cents);
  switch (s.rule) {
    case TraceRule::kPolicy:
      return Cat("settled under policy ", s.subject);
    case TraceRule::kCoverage:
      return Cat("covered; benefits from ",
                          Date::FromDays(static_cast<int32_t>(s.base_cents)).ToString());
    case TraceRule::kOutOfAreaEmergency:
      return "out of the pooling area without a filing: settled as an emergency, a filing must follow";
    case TraceRule::kUnknownItem:
      return Cat("line ", s.count, ": code not in the catalog, ", amount,
                          " out of scope (自费)");
    case TraceRule::kOverLimit:
      return Cat(amount, " above unit price caps × quantity (超限价自费)");
    case TraceRule::kPreSelfPay:
      return Cat(amount, " class-B pre-self-pay (乙类先行自付)");
    case TraceRule::kOutOfScope:
      return Cat(amount, " out of scope: class C and unknown codes (自费)");
    case TraceRule::kInScope:
      return Cat(amount, " in scope (政策范围内)");
    case TraceRule::kClassOverride:
      return Cat("settled as institution class ", s.subject);
    case TraceRule::kSchemeNotCovered:
      return Cat(s.subject, " does not pay at this institution class: ",
                          FormatYuan(s.base_cents), " in scope borne by the patient");
    case TraceRule::kDeductible:
      if (s.count == 1) {
        return Cat(s.subject, " deductible ", amount, " = min(in scope, max(0, ",
                            FormatYuan(s.base_cents), " − ", FormatYuan(s.aux_cents),
                            " paid this year))");
      }
      return Cat(s.subject, " deductible ", amount, " = min(in scope, ",
                          FormatYuan(s.base_cents), " per visit)");
    case TraceRule::kDeductibleCeiling:
      return Cat("deductible limited to ", amount, " by the annual ceiling ",
                          FormatYuan(s.base_cents));
    case TraceRule::kFundPiece:
      return Cat(s.subject, ": ", amount, " from year position ",
                          FormatYuan(s.base_cents), " at ", FormatPercent(s.ratio_bp),
                          s.ratio_bp != s.aux_cents
                              ? Cat(" (", FormatPercent(static_cast<BasisPoints>(s.aux_cents)),
                                             " + bonus)")
                              : std::string());
    case TraceRule::kAboveCeiling:
      return Cat(s.subject, ": ", amount, " above the expense ceiling ",
                          FormatYuan(s.base_cents), " is not paid");
    case TraceRule::kFundPaid:
      if (s.aux_cents < 0) {
        return Cat(s.subject, " pays ", amount, " (Σ piece × ratio rounded once; no cap)");
      }
      return Cat(s.subject, " pays ", amount, " = min(", FormatYuan(s.base_cents),
                          " rounded, ", FormatYuan(s.aux_cents), " left of the annual cap)");
    case TraceRule::kSpillOver:
      return Cat("cap reached: it pays ", FormatYuan(s.aux_cents), " covering ",
                          FormatYuan(s.base_cents), " of expense; the other ", amount,
                          " is settled under ", s.subject);
    case TraceRule::kAllowance:
      return Cat(s.subject, " fixed allowance ", amount, " = min(",
                          FormatYuan(s.base_cents), ", in scope)");
    case TraceRule::kTopUp:
      return Cat("base fund topped up by ", amount, " to min(",
                          FormatYuan(s.base_cents), ", in scope)");
    case TraceRule::kCriticalIllness:
      return Cat("burden ", FormatYuan(s.base_cents), " from year position ",
                 FormatYuan(s.aux_cents), "; the part above ", FormatYuan(s.limit_cents),
                 " at ", FormatPercent(s.ratio_bp), ", within the annual cap if any: pays ",
                 amount);
    case TraceRule::kBonus:
      return Cat(s.subject, ": +", FormatPercent(s.ratio_bp), s.count == 1 ? " on TCM items" : "",
                 " (the ratio never exceeds 100%)");
    case TraceRule::kSupplementaryNotOffered:
      return Cat("the enrollment's supplementary product is not one this policy settles (",
                 s.subject.empty() ? std::string_view("it settles none") : s.subject,
                 "): no supplementary payment; check the enrollment record");
    case TraceRule::kSupplementary:
      return Cat("responsibility ", s.count, " (", s.subject, "): base ",
                          FormatYuan(s.base_cents), " from year position ",
                          FormatYuan(s.aux_cents), ", pays ", amount);
    case TraceRule::kClaimLater:
      if (s.base_cents == 0 && s.amount_cents == 0) {
        return Cat("responsibility ", s.count, " (", s.subject,
                            ") is claimed later with the insurer, not at the counter");
      }
      return Cat("responsibility ", s.count, " (", s.subject, "): base ",
                          FormatYuan(s.base_cents), ", estimated ", amount,
                          ", to be claimed later with the insurer");
    case TraceRule::kPatient:
      return Cat("patient pays ", amount, " (deductible ", FormatYuan(s.base_cents),
                          " included)");
  }
  return "";
}

}  // namespace medsettle::engine
