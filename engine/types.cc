#include "engine/types.h"

#include "engine/text.h"

namespace medsettle::engine {

bool IsStay(VisitType type) {
  return type == VisitType::kInpatient || type == VisitType::kDeliveryNatural ||
         type == VisitType::kDeliveryCaesarean;
}

std::string_view Name(Category v) {
  switch (v) {
    case Category::kAdult: return "ADULT";
    case Category::kInfant: return "INFANT";
    case Category::kMinor: return "MINOR";
    case Category::kStudent: return "STUDENT";
    case Category::kUnspecified: break;
  }
  return "UNSPECIFIED";
}

std::string_view Name(Assistance v) {
  switch (v) {
    case Assistance::kNone: return "NONE";
    case Assistance::kTekun: return "TEKUN";
    case Assistance::kDibao: return "DIBAO";
    case Assistance::kDibaoEdge: return "DIBAO_EDGE";
    case Assistance::kPovertyRelapse: return "POVERTY_RELAPSE";
    case Assistance::kSevereDisability: return "SEVERE_DISABILITY";
    case Assistance::kKeyEntitled: return "KEY_ENTITLED";
    case Assistance::kUnspecified: break;
  }
  return "UNSPECIFIED";
}

std::string_view Name(InstitutionKind v) {
  switch (v) {
    case InstitutionKind::kHospital: return "HOSPITAL";
    case InstitutionKind::kCommunity: return "COMMUNITY";
    case InstitutionKind::kPharmacy: return "PHARMACY";
    case InstitutionKind::kUnspecified: break;
  }
  return "UNSPECIFIED";
}

std::string_view Name(VisitType v) {
  switch (v) {
    case VisitType::kGeneralOutpatient: return "GENERAL_OUTPATIENT";
    case VisitType::kChronicOutpatient: return "CHRONIC_OUTPATIENT";
    case VisitType::kSpecialOutpatient: return "SPECIAL_OUTPATIENT";
    case VisitType::kInpatient: return "INPATIENT";
    case VisitType::kPrenatalCheck: return "PRENATAL_CHECK";
    case VisitType::kDeliveryNatural: return "DELIVERY_NATURAL";
    case VisitType::kDeliveryCaesarean: return "DELIVERY_CAESAREAN";
    case VisitType::kUnspecified: break;
  }
  return "UNSPECIFIED";
}

std::string_view Name(Specialty v) {
  switch (v) {
    case Specialty::kNone: return "NONE";
    case Specialty::kPsychiatry: return "PSYCHIATRY";
    case Specialty::kPediatrics: return "PEDIATRICS";
    case Specialty::kTcm: return "TCM";
  }
  return "UNSPECIFIED";
}

std::string_view Name(Ledger v) {
  switch (v) {
    case Ledger::kGeneralOutpatient: return "GENERAL_OUTPATIENT";
    case Ledger::kChronicOutpatient: return "CHRONIC_OUTPATIENT";
    case Ledger::kSpecialOutpatient: return "SPECIAL_OUTPATIENT";
    case Ledger::kInpatient: return "INPATIENT";
    case Ledger::kPrenatal: return "PRENATAL";
    case Ledger::kDelivery: return "DELIVERY";
  }
  return "UNSPECIFIED";
}

std::string_view Name(ItemClass v) {
  switch (v) {
    case ItemClass::kA: return "A";
    case ItemClass::kB: return "B";
    case ItemClass::kC: return "C";
    case ItemClass::kUnknown: return "UNKNOWN";
    case ItemClass::kUnspecified: break;
  }
  return "UNSPECIFIED";
}

std::string_view Name(Fund v) {
  switch (v) {
    case Fund::kBase: return "BASE";
    case Fund::kCriticalIllness: return "CRITICAL_ILLNESS";
    case Fund::kSupplementary: return "SUPPLEMENTARY";
    case Fund::kUnspecified: break;
  }
  return "UNSPECIFIED";
}

bool IsValidRegionCode(RegionCode code) { return code >= 110000 && code <= 999999; }

bool RegionCovers(RegionCode area, RegionCode code) {
  if (area % 10000 == 0) return area / 10000 == code / 10000;
  if (area % 100 == 0) return area / 100 == code / 100;
  return area == code;
}

namespace {
template <typename F>
Cents SumLedgers(const Accumulators& a, LedgerMask mask, F field) {
  Cents sum = 0;
  for (int i = 0; i < kLedgerCount; ++i) {
    if (mask & (1u << i)) sum += field(a.ledgers[static_cast<size_t>(i)]);
  }
  return sum;
}
}  // namespace

Cents Accumulators::DeductiblePaid(LedgerMask mask) const {
  return SumLedgers(*this, mask, [](const LedgerTotals& t) { return t.deductible_paid_cents; });
}
Cents Accumulators::InScope(LedgerMask mask) const {
  return SumLedgers(*this, mask, [](const LedgerTotals& t) { return t.in_scope_cents; });
}
Cents Accumulators::FundPaid(LedgerMask mask) const {
  return SumLedgers(*this, mask, [](const LedgerTotals& t) { return t.fund_paid_cents; });
}

bool Accumulators::SameTotals(const Accumulators& other) const {
  return ledgers == other.ledgers &&
         critical_illness_burden_cents == other.critical_illness_burden_cents &&
         critical_illness_paid_cents == other.critical_illness_paid_cents &&
         supplementary == other.supplementary;
}

void Accumulators::AddTotals(const Accumulators& delta, int sign) {
  for (size_t i = 0; i < ledgers.size(); ++i) {
    ledgers[i].deductible_paid_cents += sign * delta.ledgers[i].deductible_paid_cents;
    ledgers[i].in_scope_cents += sign * delta.ledgers[i].in_scope_cents;
    ledgers[i].fund_paid_cents += sign * delta.ledgers[i].fund_paid_cents;
    ledgers[i].visits += sign * delta.ledgers[i].visits;
  }
  critical_illness_burden_cents += sign * delta.critical_illness_burden_cents;
  critical_illness_paid_cents += sign * delta.critical_illness_paid_cents;
  for (size_t i = 0; i < supplementary.size(); ++i) {
    supplementary[i].base_cents += sign * delta.supplementary[i].base_cents;
    supplementary[i].paid_cents += sign * delta.supplementary[i].paid_cents;
  }
}

void Settlement::Clear() {
  policy_id = {};
  settlement_date = Date();
  amounts = Amounts();
  base_fund_ratio_bp = 0;
  filing_to_follow = false;
  fund_details.clear();
  lines.clear();
  trace.clear();
  claim_later.clear();
  delta = Accumulators();
  after = Accumulators();
}

}  // namespace medsettle::engine
