// Engine internals shared between its .cc files; not part of the API.
#ifndef MEDSETTLE_ENGINE_INTERNAL_H_
#define MEDSETTLE_ENGINE_INTERNAL_H_

#include <vector>

#include "absl/status/status.h"
#include "engine/catalog.h"
#include "engine/policy.h"
#include "engine/types.h"

namespace medsettle::engine::internal {

// The bill after classification (POLICY-NOTES convention 1).
struct BillSplit {
  Cents total_cents = 0;
  Cents out_of_scope_cents = 0;
  Cents over_limit_cents = 0;
  Cents pre_self_pay_cents = 0;
  Cents in_scope_cents = 0;
  Cents tcm_in_scope_cents = 0;  // part of in_scope from TCM catalog items
  int32_t unknown_lines = 0;
};

// Classifies every line of `claim` against `catalog` into `lines` and the
// totals into `split`; appends a kUnknownItem trace step per unknown code.
// REQUIRES: ValidateClaim(claim) is OK.
void ClassifyBill(const Catalog& catalog, const Claim& claim,
                  std::vector<LineResult>* lines, BillSplit* split,
                  std::vector<TraceStep>* trace);

// The first day of benefits of `enrollment` under `policy`, or a refusal
// (ENROLLMENT_PAYMENT_TOO_LATE, ENROLLMENT_INVALID).
absl::StatusOr<Date> BenefitStart(const Policy& policy, const Enrollment& enrollment);

}  // namespace medsettle::engine::internal

#endif  // MEDSETTLE_ENGINE_INTERNAL_H_
