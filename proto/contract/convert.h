// Conversion between the protobuf contract (medsettle.v1) and the engine's
// plain types (engine/types.h): the one place where wire records become
// engine values and results become wire records. Shared by medsettle-calc
// and the gRPC gateway.
//
// proto → engine checks formats only (dates parse, region codes have six
// digits, enums are set, quantities are exact decimals, prices are not
// negative); the engine checks meaning (dates for the visit type, line
// numbers, amount = quantity × unit price, coverage). Every refusal is
// INVALID_ARGUMENT with a stable reason (engine/status.h) and the full proto
// field path, e.g. "request.items[3].quantity" (indexes are 0-based, as in
// the repeated field). On a refusal the output is left partly written.
//
// engine → proto never fails. All functions are pure and thread-compatible.
#ifndef MEDSETTLE_PROTO_CONTRACT_CONVERT_H_
#define MEDSETTLE_PROTO_CONTRACT_CONVERT_H_

#include <cstdint>
#include <optional>
#include <string_view>

#include "absl/status/status.h"
#include "engine/date.h"
#include "engine/types.h"
#include "medsettle/v1/records.pb.h"
#include "medsettle/v1/settlement.pb.h"

namespace medsettle::contract {

// ---- Field formats (reusable by the gateway for its own request fields) --

// "YYYY-MM-DD" into `*out`. Empty text: DATE_MISSING when `required`, else
// `*out` is the unset Date. Malformed: DATE_INVALID. `field` names the path.
absl::Status ParseDateField(std::string_view text, bool required, std::string_view field,
                            engine::Date* out);

// An optional RFC 3339 timestamp into Unix seconds: empty = nullopt;
// malformed: DATE_INVALID.
absl::Status ParseTimestampField(std::string_view text, std::string_view field,
                                 std::optional<int64_t>* out_unix);

// Exactly six ASCII digits forming a valid division code, else
// REGION_CODE_INVALID.
absl::Status ParseRegionCodeField(std::string_view text, std::string_view field,
                                  engine::RegionCode* out);

// ---- Enums (explicit; engine numbers equal the proto's, Ledger aside) ----

// nullopt for *_UNSPECIFIED and for numbers the contract does not define.
std::optional<engine::VisitType> VisitTypeFromProto(v1::VisitType value);
v1::VisitType VisitTypeToProto(engine::VisitType value);
// Proto Ledger = engine Ledger + 1; nullopt for LEDGER_UNSPECIFIED / unknown.
std::optional<engine::Ledger> LedgerFromProto(v1::Ledger value);
v1::Ledger LedgerToProto(engine::Ledger value);

// ---- proto → engine -------------------------------------------------------

// The most family presenters one enrollment may list; the snapshot record
// stores no more (cache::kMaxFamilyPresenters, cache/enrollment_codec.h).
inline constexpr int kMaxFamilyPresenterKeys = 16;

// `root` is the path of the message itself ("enrollment", "institution",
// "request", "year_to_date"); it prefixes every field path of a refusal.
// An empty root gives paths relative to the message ("visit.type").

// Refuses: year outside 1900..2199 or tier outside 0..2 (ENROLLMENT_INVALID),
// region codes (REGION_CODE_INVALID), birth_date missing or any date
// malformed (DATE_MISSING / DATE_INVALID; paid_date may be empty), a filing
// without dates or ending before it starts (DATE_MISSING / DATE_ORDER),
// unspecified category, assistance or status (ENUM_UNSPECIFIED), a malformed
// voucher_revoked_at (DATE_INVALID), family_presenter_keys that are more
// than kMaxFamilyPresenterKeys, not 64 lowercase hex characters, repeated or
// the person_key itself (ENROLLMENT_INVALID, path
// "enrollment.family_presenter_keys[i]"). The presenter keys may come in any
// order; the engine record holds them sorted.
absl::Status EnrollmentFromProto(const v1::Enrollment& in, engine::Enrollment* out,
                                 std::string_view root = "enrollment");

// Refuses: region code (REGION_CODE_INVALID), unspecified kind
// (ENUM_UNSPECIFIED), level outside 1..3 (INSTITUTION_INVALID).
absl::Status InstitutionFromProto(const v1::Institution& in, engine::Institution* out,
                                  std::string_view root = "institution");

// Refuses: no credential or an empty one (CREDENTIAL_MISSING), unspecified
// visit type (VISIT_TYPE_UNSPECIFIED), a specialty explicitly set to
// SPECIALTY_UNSPECIFIED (ENUM_UNSPECIFIED; unset = Specialty::kNone),
// malformed visit dates (DATE_INVALID; empty = unset, the engine checks which
// the visit type needs), more than kMaxBillLines items (TOO_MANY_ITEMS),
// a malformed quantity (QUANTITY_INVALID), a negative unit price or amount
// (PRICE_INVALID). `*out` is overwritten; its vectors' capacity is reused.
absl::Status ClaimFromProto(const v1::SettleRequest& in, engine::Claim* out,
                            std::string_view root = "request");

// Refuses: a ledger entry LEDGER_UNSPECIFIED (ENUM_UNSPECIFIED), a ledger or
// responsibility listed twice, a responsibility outside 1..4, any negative
// total, count or version (ACCUMULATORS_INVALID). person_key and year are
// the caller's to check. Absent ledgers are all zero.
absl::Status AccumulatorsFromProto(const v1::Accumulators& in, engine::Accumulators* out,
                                   std::string_view root = "year_to_date");

// ---- engine → proto -------------------------------------------------------

// Overwrites `*out`. Ledgers and responsibilities that are all zero are
// omitted; the rest follow ledger / responsibility order. critical_illness
// is always present.
void AccumulatorsToProto(const engine::Accumulators& in, std::string_view person_key, int32_t year,
                         v1::Accumulators* out);

// Overwrites `*out`. Dates as "YYYY-MM-DD", voucher_revoked_at as RFC 3339
// in UTC+08:00 (China Standard Time), family_presenter_keys in the record's
// (sorted) order.
void AmountsToProto(const engine::Amounts& in, v1::Amounts* out);  // every field set
void EnrollmentToProto(const engine::Enrollment& in, v1::Enrollment* out);
void InstitutionToProto(const engine::Institution& in, v1::Institution* out);

// Overwrites `*out` with `settlement`, computed from `claim` (line codes are
// looked up by LineResult::line_index). year_to_date and accumulator_delta
// carry `person_key` and the year of the settlement date. Left for the
// caller: settlement_id, status, replayed, settled_at, presenter_key.
// REQUIRES: `settlement` was computed from `claim`, and the policy its
// string_views point into is alive.
void SettlementToProto(const engine::Settlement& settlement, const engine::Claim& claim,
                       std::string_view person_key, std::string_view institution_id,
                       v1::SettleResponse* out);

}  // namespace medsettle::contract

#endif  // MEDSETTLE_PROTO_CONTRACT_CONVERT_H_
