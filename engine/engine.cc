#include "engine/engine.h"

#include <algorithm>

#include "engine/text.h"
#include "engine/status.h"

namespace medsettle::engine {

Engine::Engine(PolicySet policies, Catalog catalog)
    : policies_(std::move(policies)), catalog_(std::move(catalog)) {}

namespace {

std::string ItemField(size_t index, std::string_view field) {
  return Cat("items[", index, "].", field);
}

bool IsPrintableId(std::string_view id) {
  return !id.empty() && id.size() <= 64 &&
         std::all_of(id.begin(), id.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

}  // namespace

absl::Status ValidateRequestId(std::string_view request_id, std::string_view field) {
  if (IsPrintableId(request_id)) return absl::OkStatus();
  return InvalidField(reason::kRequestIdInvalid, field,
                      Cat(field, " must be 1-64 printable ASCII characters without spaces"));
}

absl::Status ValidateClaim(const Claim& claim) {
  if (absl::Status s = ValidateRequestId(claim.request_id, "request_id"); !s.ok()) return s;
  if (claim.credential == CredentialKind::kUnspecified) {
    return InvalidField(reason::kCredentialMissing, "credential",
                        "one of id_card_no, insurance_card_no or ec_token is required");
  }
  const Visit& visit = claim.visit;
  if (visit.type == VisitType::kUnspecified) {
    return InvalidField(reason::kVisitTypeUnspecified, "visit.type", "visit.type is required");
  }
  if (IsStay(visit.type)) {
    if (!visit.admission_date.valid()) {
      return InvalidField(reason::kDateMissing, "visit.admission_date",
                          "a stay needs its admission date");
    }
    if (!visit.discharge_date.valid()) {
      return InvalidField(reason::kDateMissing, "visit.discharge_date",
                          "a stay needs its discharge date");
    }
    if (visit.discharge_date < visit.admission_date) {
      return InvalidField(reason::kDateOrder, "visit.discharge_date",
                          "discharge_date is before admission_date");
    }
  } else {
    if (!visit.service_date.valid()) {
      return InvalidField(reason::kDateMissing, "visit.service_date",
                          "an outpatient visit needs its service date");
    }
    if (visit.admission_date.valid() || visit.discharge_date.valid()) {
      return InvalidField(reason::kDateNotApplicable,
                          visit.admission_date.valid() ? "visit.admission_date"
                                                       : "visit.discharge_date",
                          "admission and discharge dates are for inpatient stays and deliveries");
    }
  }
  if ((visit.type == VisitType::kChronicOutpatient ||
       visit.type == VisitType::kSpecialOutpatient) &&
      visit.condition.empty()) {
    return InvalidField(reason::kConditionMissing, "visit.condition",
                        "chronic and special-disease visits name the certified condition");
  }
  if (claim.lines.empty()) {
    return InvalidField(reason::kItemsEmpty, "items", "the bill has no items");
  }
  if (claim.lines.size() > static_cast<size_t>(kMaxBillLines)) {
    return InvalidField(reason::kTooManyItems, "items",
                        Cat("a bill has at most ", kMaxBillLines, " items"));
  }
  bool ascending = true;
  Cents total = 0;
  for (size_t i = 0; i < claim.lines.size(); ++i) {
    const BillLine& line = claim.lines[i];
    if (line.line_no <= 0) {
      return InvalidField(reason::kLineNoInvalid, ItemField(i, "line_no"),
                          "line_no must be positive");
    }
    if (i > 0 && line.line_no <= claim.lines[i - 1].line_no) ascending = false;
    if (line.code.empty()) {
      return InvalidField(reason::kItemCodeMissing, ItemField(i, "code"), "item code is empty");
    }
    if (line.unit_price_cents < 0 || line.amount_cents < 0) {
      return InvalidField(reason::kPriceInvalid,
                          ItemField(i, line.unit_price_cents < 0 ? "unit_price_cents" : "amount_cents"),
                          "prices and amounts are not negative");
    }
    if (line.unit_price_cents > kMaxAmountCents || line.amount_cents > kMaxAmountCents) {
      return InvalidField(reason::kAmountTooLarge,
                          ItemField(i, line.amount_cents > kMaxAmountCents ? "amount_cents"
                                                                           : "unit_price_cents"),
                          "amount above the largest accepted (10^12 分)");
    }
    if (line.quantity.units < 0 || line.quantity.scale < 0 ||
        line.quantity.scale > kMaxQuantityScale) {
      return InvalidField(reason::kQuantityInvalid, ItemField(i, "quantity"),
                          "quantity must be a non-negative decimal with at most 4 places");
    }
    std::optional<Cents> expected = MultiplyQuantity(line.quantity, line.unit_price_cents);
    if (!expected) {
      return InvalidField(reason::kAmountTooLarge, ItemField(i, "quantity"),
                          "quantity × unit price is above the largest accepted amount");
    }
    if (*expected != line.amount_cents) {
      return InvalidField(reason::kAmountMismatch, ItemField(i, "amount_cents"),
                          Cat("amount_cents ", line.amount_cents, " is not quantity ",
                                       FormatQuantity(line.quantity), " × unit_price_cents ",
                                       line.unit_price_cents, " = ", *expected,
                                       " (rounded half up)"));
    }
    total += line.amount_cents;
    if (total > kMaxAmountCents) {
      return InvalidField(reason::kAmountTooLarge, "items",
                          "the bill's total is above the largest accepted amount");
    }
  }
  if (!ascending) {  // the common case (ascending) needs no copy
    std::vector<std::pair<int32_t, size_t>> numbers;
    numbers.reserve(claim.lines.size());
    for (size_t i = 0; i < claim.lines.size(); ++i) numbers.emplace_back(claim.lines[i].line_no, i);
    std::sort(numbers.begin(), numbers.end());
    for (size_t i = 1; i < numbers.size(); ++i) {
      if (numbers[i].first == numbers[i - 1].first) {
        return InvalidField(reason::kLineNoDuplicate, ItemField(numbers[i].second, "line_no"),
                            Cat("line_no ", numbers[i].first, " appears twice"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateAccumulators(const Accumulators& a) {
  // Bounded so that every sum and position the engine forms stays far
  // inside int64 (a year total above 10^15 分 is corrupt data, not money).
  auto out_of_range = [](Cents v) { return v < 0 || v > kMaxAccumulatedCents; };
  auto refuse = [](std::string_view what) {
    return InvalidField(reason::kAccumulatorsInvalid, "year_to_date",
                        Cat("accumulator ", what, " is negative or above 10^15"));
  };
  for (const LedgerTotals& t : a.ledgers) {
    if (out_of_range(t.deductible_paid_cents) || out_of_range(t.in_scope_cents) ||
        out_of_range(t.fund_paid_cents) || t.visits < 0 || t.visits > kMaxAccumulatedVisits) {
      return refuse("ledger total");
    }
  }
  if (out_of_range(a.critical_illness_burden_cents) ||
      out_of_range(a.critical_illness_paid_cents)) {
    return refuse("critical-illness total");
  }
  for (const SupplementaryTotals& t : a.supplementary) {
    if (out_of_range(t.base_cents) || out_of_range(t.paid_cents)) {
      return refuse("supplementary total");
    }
  }
  if (a.version < 0) return refuse("version");
  return absl::OkStatus();
}

absl::StatusOr<Accumulators> Engine::Reverse(const Accumulators& current,
                                             const Accumulators& delta) {
  if (absl::Status s = ValidateAccumulators(current); !s.ok()) return s;
  if (absl::Status s = ValidateAccumulators(delta); !s.ok()) {
    return Refusal(absl::StatusCode::kInvalidArgument, reason::kAccumulatorsInvalid, "delta",
                   "a settlement's delta is never negative");
  }
  Accumulators after = current;
  after.AddTotals(delta, -1);
  after.version = current.version + 1;
  if (absl::Status s = ValidateAccumulators(after); !s.ok()) {
    return Refusal(absl::StatusCode::kFailedPrecondition, reason::kAccumulatorsInvalid, "",
                   "the reversal would make a year total negative: it was not applied to this year");
  }
  return after;
}

std::vector<RemainingLimit> Engine::Remaining(const Policy& policy, const Enrollment& enrollment,
                                              const Accumulators& ytd) const {
  std::vector<RemainingLimit> out;
  Facts facts;
  facts.tier_bit = 1u << enrollment.tier;
  facts.category_bit = 1u << static_cast<unsigned>(enrollment.category);
  facts.assistance_bit = 1u << static_cast<unsigned>(enrollment.assistance);
  facts.pre_existing = enrollment.supplementary.pre_existing;
  facts.continuous = enrollment.supplementary.continuous;
  auto add = [&](std::string name, Cents limit, Cents used) {
    out.push_back({std::move(name), limit, used, std::max<Cents>(0, limit - used)});
  };
  std::vector<LedgerMask> caps_seen;  // a shared cap is listed once
  for (const Scheme& scheme : policy.schemes) {
    if (scheme.fund_cap.amounts.empty()) continue;
    if (std::find(caps_seen.begin(), caps_seen.end(), scheme.fund_cap.ledgers) != caps_seen.end()) continue;
    // Caps vary by tier and person only; the first row that matches the
    // person's facts (institution conditions ignored) is the cap.
    for (const Row<Cents>& row : scheme.fund_cap.amounts) {
      Matcher person_only = row.when;
      person_only.class_mask = person_only.level_mask = person_only.kind_mask = 0;
      if (!person_only.Matches(facts)) continue;
      caps_seen.push_back(scheme.fund_cap.ledgers);
      add(Cat(scheme.name, " fund cap"), row.value, ytd.FundPaid(scheme.fund_cap.ledgers));
      break;
    }
  }
  std::vector<LedgerMask> ceilings_seen;
  for (const Scheme& scheme : policy.schemes) {
    const DeductibleRule& d = scheme.deductible;
    if (!d.annual_ceiling_cents) continue;
    if (std::find(ceilings_seen.begin(), ceilings_seen.end(), d.ceiling_ledgers) !=
        ceilings_seen.end()) {
      continue;
    }
    ceilings_seen.push_back(d.ceiling_ledgers);
    add(Cat(scheme.name, " deductible ceiling"), *d.annual_ceiling_cents,
        ytd.DeductiblePaid(d.ceiling_ledgers));
  }
  if (policy.critical_illness.enabled) {
    if (const CriticalIllnessTerms* t = FirstMatch(policy.critical_illness.terms, facts)) {
      if (t->cap_cents) add("critical_illness cap", *t->cap_cents, ytd.critical_illness_paid_cents);
    }
  }
  if (policy.supplementary && enrollment.supplementary.product == policy.supplementary->product) {
    for (const Responsibility& r : policy.supplementary->responsibilities) {
      if (r.cap_cents) {
        add(Cat(r.name, " cap"), *r.cap_cents,
            ytd.supplementary[static_cast<size_t>(r.id - 1)].paid_cents);
      }
    }
  }
  return out;
}

}  // namespace medsettle::engine
