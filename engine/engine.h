// The settlement engine: coverage decisions and the split of a bill among
// the base fund, critical-illness insurance, supplementary insurance and the
// patient. Pure: no I/O, clock, threads, gRPC or Redis. Everything comes in
// as arguments; results are values, refusals statuses with stable reasons
// (engine/status.h). An Engine is immutable after construction and safe to
// use from many threads at once.
#ifndef MEDSETTLE_ENGINE_ENGINE_H_
#define MEDSETTLE_ENGINE_ENGINE_H_

#include <optional>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/catalog.h"
#include "engine/policy.h"
#include "engine/policy_loader.h"
#include "engine/types.h"

namespace medsettle::engine {

struct SettleInput {
  const Enrollment* enrollment = nullptr;
  const Institution* institution = nullptr;
  const Accumulators* year_to_date = nullptr;  // the settlement year's
  const Claim* claim = nullptr;
  // Issue time of the e-insurance code when the credential is kEcToken;
  // nullopt = unknown (treated as issued before any revocation).
  std::optional<int64_t> voucher_issued_at_unix;
};

// What a coverage check found (the person is covered; refusals are errors).
struct CoverageDecision {
  const Policy* policy = nullptr;
  Date settlement_date;  // the date that chose policy and year
  Date covered_from;
  Date covered_to;
  bool out_of_area = false;
  bool filing_to_follow = false;  // out of area on the emergency flag
};

// A cap or ceiling of the person's year and what is left of it.
struct RemainingLimit {
  std::string name;
  Cents limit_cents = 0;
  Cents used_cents = 0;
  Cents remaining_cents = 0;
};

class Engine {
 public:
  Engine(PolicySet policies, Catalog catalog);

  // The date a visit is settled on: discharge for stays, service otherwise.
  static Date SettlementDate(const Visit& visit);

  // Coverage of `enrollment` at `institution` for `visit` (status, year,
  // benefit start, voucher, certification, out-of-area filing). Used by
  // Settle and by CheckCoverage. Refusals: FAILED_PRECONDITION (NO_POLICY,
  // NOT_ENROLLED_FOR_YEAR, ENROLLMENT_SUSPENDED, WAITING_PERIOD, ...),
  // PERMISSION_DENIED (INSTITUTION_SUSPENDED), INVALID_ARGUMENT.
  absl::StatusOr<CoverageDecision> CheckCoverage(
      const Enrollment& enrollment, const Institution& institution,
      const Visit& visit, CredentialKind credential,
      std::optional<int64_t> voucher_issued_at_unix) const;

  // Computes the settlement of `input` into `*out` (cleared first; its
  // vectors' capacity is reused). Validates the claim, checks coverage,
  // classifies the bill, applies every layer and checks the invariants
  // (payers add up to the bill, nothing negative, no cap exceeded) —
  // INTERNAL / INVARIANT_VIOLATED if one fails, which is a bug.
  // REQUIRES: every pointer in `input` non-null.
  absl::Status Settle(const SettleInput& input, Settlement* out) const;

  // The caps and ceilings of `policy` left for the person's year.
  std::vector<RemainingLimit> Remaining(const Policy& policy,
                                        const Enrollment& enrollment,
                                        const Accumulators& year_to_date) const;

  // Undoes a settlement: `current` minus `delta`, version + 1. Refuses
  // (FAILED_PRECONDITION, ACCUMULATORS_INVALID) if any total would go
  // negative, which means the delta was not applied to this year;
  // INVALID_ARGUMENT if either input is out of range (a negative delta).
  static absl::StatusOr<Accumulators> Reverse(const Accumulators& current,
                                              const Accumulators& delta);

  const PolicySet& policies() const { return policies_; }
  const Catalog& catalog() const { return catalog_; }

 private:
  PolicySet policies_;
  Catalog catalog_;
};

// A request id (settlements, reversals): 1-64 printable ASCII characters
// without spaces, else INVALID_ARGUMENT REQUEST_ID_INVALID at `field`.
absl::Status ValidateRequestId(std::string_view request_id, std::string_view field);

// Checks the claim's own consistency (request id, dates for the visit type,
// condition, line numbers, quantity × unit price = amount). INVALID_ARGUMENT
// with the field path of the first problem found: the visit's fields, then
// each item in order, then duplicate line numbers across items. A stay's
// service_date is not required and is ignored.
absl::Status ValidateClaim(const Claim& claim);

// Checks accumulator totals are within 0..10^15 分, visits within
// 0..10^6 and the version non-negative (INVALID_ARGUMENT,
// ACCUMULATORS_INVALID, field "year_to_date").
absl::Status ValidateAccumulators(const Accumulators& accumulators);

}  // namespace medsettle::engine

#endif  // MEDSETTLE_ENGINE_ENGINE_H_
