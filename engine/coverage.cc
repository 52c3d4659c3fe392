// Coverage: is this person covered on this date, for this visit, at this
// institution? Refusals carry their own reasons; a covered visit that a
// scheme does not pay for is not a refusal (settle.cc handles it).
#include <algorithm>

#include "engine/text.h"
#include "engine/engine.h"
#include "engine/internal.h"
#include "engine/status.h"

namespace medsettle::engine {

namespace internal {

namespace {

// The start a rule gives for a payment on `paid`, or its refusal.
absl::StatusOr<Date> ApplyStartRule(const Policy& policy, const BenefitStartRule& rule, Date paid) {
  switch (rule.kind) {
    case BenefitStartRule::Kind::kMonthStartAfter:
      return paid.FirstOfMonthAfter(rule.n);
    case BenefitStartRule::Kind::kDaysAfter:
      return paid.AddDays(rule.n);
    case BenefitStartRule::Kind::kMonthsAfter:
      return paid.AddMonthsClamped(rule.n);
    case BenefitStartRule::Kind::kRefuse:
      break;
  }
  return Refused(reason::kPaymentTooLate, Cat("contribution paid on ", paid.ToString(),
                                              " is too late for ", policy.id, " (",
                                              rule.source, ")"));
}

}  // namespace

absl::StatusOr<Date> BenefitStart(const Policy& policy, const Enrollment& e) {
  const CoverageRules& rules = policy.coverage;
  const Date year_start = Date::FromYmd(policy.year, 1, 1);
  // Newborns enrolled soon enough are covered from birth (never before the
  // year starts).
  if (e.newborn && rules.newborn_within_days && e.birth_date.valid() && e.paid_date.valid() &&
      e.paid_date >= e.birth_date &&
      e.paid_date.days() - e.birth_date.days() <= *rules.newborn_within_days &&
      (!rules.newborn_born_in_year || e.birth_date.year() == policy.year)) {
    return std::max(e.birth_date, year_start);
  }
  if (!e.paid_date.valid()) {
    if (e.concentrated && !(e.reenrolled_after_gap && rules.after_gap)) return year_start;
    return InvalidField(reason::kEnrollmentInvalid, "enrollment.paid_date",
                        "the enrollment has no paid_date: only a concentrated-period "
                        "enrollment (not after a gap) may leave it empty");
  }
  // After a gap the waiting period applies whenever the contribution was paid.
  if (e.reenrolled_after_gap && rules.after_gap) {
    return ApplyStartRule(policy, *rules.after_gap, e.paid_date);
  }
  // Paid by the end of the concentrated period (or earlier): the whole year.
  if (e.paid_date <= rules.concentrated_to) return year_start;
  for (const BenefitStartRule& rule : rules.mid_year) {
    if (e.paid_date >= rule.paid_from && e.paid_date <= rule.paid_to) {
      return ApplyStartRule(policy, rule, e.paid_date);
    }
  }
  return Refused(reason::kPaymentTooLate,
                 Cat("contribution paid on ", e.paid_date.ToString(),
                              " falls in no enrollment window of ", policy.id));
}

}  // namespace internal

Date Engine::SettlementDate(const Visit& visit) {
  return IsStay(visit.type) ? visit.discharge_date : visit.service_date;
}

absl::StatusOr<CoverageDecision> Engine::CheckCoverage(
    const Enrollment& e, const Institution& institution, const Visit& visit,
    CredentialKind credential, std::optional<int64_t> voucher_issued_at_unix) const {
  if (institution.suspended) {
    return Refusal(absl::StatusCode::kPermissionDenied, reason::kInstitutionSuspended, "",
                   Cat("institution ", institution.institution_id,
                                " is suspended from settlement"));
  }
  CoverageDecision decision;
  decision.settlement_date = SettlementDate(visit);
  const Date date = decision.settlement_date;
  if (!date.valid()) {
    return InvalidField(reason::kDateMissing,
                        IsStay(visit.type) ? "visit.discharge_date" : "visit.service_date",
                        "the settlement date is missing");
  }
  const Policy* policy = policies_.Select(e.region_code, date);
  if (policy == nullptr) {
    return Refused(reason::kNoPolicy, Cat("no policy for region ", e.region_code,
                                                   " on ", date.ToString()));
  }
  decision.policy = policy;
  if (e.year != date.year()) {
    return Refused(reason::kNotEnrolledForYear,
                   Cat("enrollment covers ", e.year, ", the visit is settled on ",
                                date.ToString()));
  }
  if (e.status == EnrollmentStatus::kSuspended) {
    return Refused(reason::kEnrollmentSuspended, "the enrollment is suspended");
  }
  if (std::find(policy->tiers.begin(), policy->tiers.end(), e.tier) == policy->tiers.end()) {
    std::string tiers;
    for (int32_t t : policy->tiers) tiers += Cat(tiers.empty() ? "" : ", ", t);
    return Refused(reason::kTierNotInPolicy, Cat("tier ", e.tier, " does not exist in ",
                                                 policy->id, " (its tiers: ", tiers, ")"));
  }
  if (const auto& by_birth = policy->coverage.category_by_birth;
      by_birth && e.category != Category::kStudent && e.birth_date.valid()) {
    const Category expected = e.birth_date <= by_birth->adult_born_until  ? Category::kAdult
                              : e.birth_date >= by_birth->infant_born_from ? Category::kInfant
                                                                          : Category::kMinor;
    if (e.category != expected) {
      return InvalidField(reason::kEnrollmentInvalid, "enrollment.category",
                          Cat("category ", Name(e.category), " contradicts birth date ",
                              e.birth_date.ToString(), ": ", policy->id, " makes it ",
                              Name(expected), " (", by_birth->source, ")"));
    }
  }
  if (credential == CredentialKind::kEcToken && e.voucher_revoked_at_unix &&
      (!voucher_issued_at_unix || *voucher_issued_at_unix <= *e.voucher_revoked_at_unix)) {
    return Refused(reason::kVoucherRevoked,
                   "the e-insurance code was issued before the voucher was reported lost");
  }
  absl::StatusOr<Date> start = internal::BenefitStart(*policy, e);
  if (!start.ok()) return start.status();
  decision.covered_from = *start;
  decision.covered_to = Date::FromYmd(policy->year, 12, 31);
  if (date < decision.covered_from) {
    return Refused(reason::kWaitingPeriod,
                   Cat("benefits start on ", decision.covered_from.ToString(),
                                "; the visit is settled on ", date.ToString()));
  }
  if (date > decision.covered_to) {
    return Refused(reason::kNotEnrolledForYear,
                   Cat("coverage ended on ", decision.covered_to.ToString()));
  }
  if (visit.type == VisitType::kChronicOutpatient &&
      std::find(e.chronic_conditions.begin(), e.chronic_conditions.end(), visit.condition) ==
          e.chronic_conditions.end()) {
    return Refused(reason::kChronicNotCertified,
                   Cat("no certified chronic condition \"", visit.condition, "\""));
  }
  if (visit.type == VisitType::kSpecialOutpatient &&
      std::find(e.special_diseases.begin(), e.special_diseases.end(), visit.condition) ==
          e.special_diseases.end()) {
    return Refused(reason::kSpecialNotCertified,
                   Cat("no certified special disease \"", visit.condition, "\""));
  }
  if (!policy->InPoolingArea(institution.region_code)) {
    decision.out_of_area = true;
    bool filed = std::any_of(
        e.out_of_area_filings.begin(), e.out_of_area_filings.end(),
        [&](const OutOfAreaFiling& f) {
          return RegionCovers(f.region_code, institution.region_code) && f.start_date <= date &&
                 date <= f.end_date;
        });
    if (!filed) {
      if (!visit.emergency) {
        return Refused(reason::kOutOfAreaNoFiling,
                       Cat("institution region ", institution.region_code,
                                    " is outside the pooling area of ", policy->id,
                                    " and no filing covers it on ", date.ToString()));
      }
      decision.filing_to_follow = true;
    }
  }
  return decision;
}

}  // namespace medsettle::engine
