// Refusals as values. Every expected failure is an absl::Status whose code
// says what kind of failure it is and whose payloads carry a stable reason
// string (for clients and tests) and, for bad input, the field path.
#ifndef MEDSETTLE_ENGINE_STATUS_H_
#define MEDSETTLE_ENGINE_STATUS_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace medsettle::engine {

// Stable reason strings. Never rename one: clients branch on them.
namespace reason {
// INVALID_ARGUMENT: the request or a record is malformed.
inline constexpr std::string_view kRequestIdInvalid = "REQUEST_ID_INVALID";
inline constexpr std::string_view kCredentialMissing = "CREDENTIAL_MISSING";
inline constexpr std::string_view kVisitTypeUnspecified = "VISIT_TYPE_UNSPECIFIED";
inline constexpr std::string_view kEnumUnspecified = "ENUM_UNSPECIFIED";
inline constexpr std::string_view kDateMissing = "DATE_MISSING";
inline constexpr std::string_view kDateInvalid = "DATE_INVALID";
inline constexpr std::string_view kDateOrder = "DATE_ORDER";
inline constexpr std::string_view kDateNotApplicable = "DATE_NOT_APPLICABLE";
inline constexpr std::string_view kConditionMissing = "CONDITION_MISSING";
inline constexpr std::string_view kItemsEmpty = "ITEMS_EMPTY";
inline constexpr std::string_view kTooManyItems = "TOO_MANY_ITEMS";
inline constexpr std::string_view kLineNoInvalid = "LINE_NO_INVALID";
inline constexpr std::string_view kLineNoDuplicate = "LINE_NO_DUPLICATE";
inline constexpr std::string_view kItemCodeMissing = "ITEM_CODE_MISSING";
inline constexpr std::string_view kQuantityInvalid = "QUANTITY_INVALID";
inline constexpr std::string_view kPriceInvalid = "PRICE_INVALID";
inline constexpr std::string_view kAmountMismatch = "AMOUNT_MISMATCH";
inline constexpr std::string_view kAmountTooLarge = "AMOUNT_TOO_LARGE";
inline constexpr std::string_view kEnrollmentInvalid = "ENROLLMENT_INVALID";
inline constexpr std::string_view kInstitutionInvalid = "INSTITUTION_INVALID";
inline constexpr std::string_view kAccumulatorsInvalid = "ACCUMULATORS_INVALID";
inline constexpr std::string_view kRegionCodeInvalid = "REGION_CODE_INVALID";
inline constexpr std::string_view kScenarioInvalid = "SCENARIO_INVALID";
// FAILED_PRECONDITION: well-formed, but the rules refuse it.
inline constexpr std::string_view kNoPolicy = "NO_POLICY";
inline constexpr std::string_view kNotEnrolledForYear = "NOT_ENROLLED_FOR_YEAR";
inline constexpr std::string_view kEnrollmentSuspended = "ENROLLMENT_SUSPENDED";
inline constexpr std::string_view kWaitingPeriod = "WAITING_PERIOD";
inline constexpr std::string_view kPaymentTooLate = "ENROLLMENT_PAYMENT_TOO_LATE";
inline constexpr std::string_view kVoucherRevoked = "VOUCHER_REVOKED";
inline constexpr std::string_view kChronicNotCertified = "CHRONIC_CONDITION_NOT_CERTIFIED";
inline constexpr std::string_view kSpecialNotCertified = "SPECIAL_DISEASE_NOT_CERTIFIED";
inline constexpr std::string_view kOutOfAreaNoFiling = "OUT_OF_AREA_NO_FILING";
inline constexpr std::string_view kTierNotInPolicy = "TIER_NOT_IN_POLICY";
inline constexpr std::string_view kPolicyGap = "POLICY_GAP";
// PERMISSION_DENIED
inline constexpr std::string_view kInstitutionSuspended = "INSTITUTION_SUSPENDED";
// INTERNAL: a bug; the settlement is refused, never recorded.
inline constexpr std::string_view kInvariantViolated = "INVARIANT_VIOLATED";
// Policy and catalog files (INVALID_ARGUMENT at load).
inline constexpr std::string_view kPolicyFileInvalid = "POLICY_FILE_INVALID";
inline constexpr std::string_view kCatalogFileInvalid = "CATALOG_FILE_INVALID";
}  // namespace reason

// A refusal: `code`, stable `reason`, the offending `field` path (may be
// empty) and a human message.
absl::Status Refusal(absl::StatusCode code, std::string_view reason,
                     std::string_view field, std::string_view message);

inline absl::Status InvalidField(std::string_view reason, std::string_view field,
                                 std::string_view message) {
  return Refusal(absl::StatusCode::kInvalidArgument, reason, field, message);
}
inline absl::Status Refused(std::string_view reason, std::string_view message) {
  return Refusal(absl::StatusCode::kFailedPrecondition, reason, "", message);
}

// The stable reason of a refusal; "" for OK, "UNKNOWN" when none attached.
std::string ReasonOf(const absl::Status& status);
// The field path of a refusal; "" when none.
std::string FieldOf(const absl::Status& status);

}  // namespace medsettle::engine

#endif  // MEDSETTLE_ENGINE_STATUS_H_
