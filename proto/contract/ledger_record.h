// The settlement record (medsettle.v1.LedgerRecord, proto/medsettle/v1/
// ledger.proto): built once by whoever settles (the gateway), stored and
// journaled as one value by cache/, shipped into PostgreSQL by ledger/.
// Here: building it from what the settlement used and returned, and
// reading back the engine values the store indexes (delta, amounts, date).
#ifndef MEDSETTLE_PROTO_CONTRACT_LEDGER_RECORD_H_
#define MEDSETTLE_PROTO_CONTRACT_LEDGER_RECORD_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "engine/date.h"
#include "engine/types.h"
#include "medsettle/v1/ledger.pb.h"

namespace medsettle::contract {

// The format LedgerRecord.format and LedgerReversal.format carry today.
// Readers refuse another (INTERNAL LEDGER_RECORD_FORMAT_UNKNOWN).
inline constexpr uint32_t kLedgerRecordFormat = 1;

namespace reason {
// INTERNAL: a stored LedgerRecord / LedgerReversal does not parse, has a
// format this code does not know, or lacks a field every record has.
inline constexpr std::string_view kLedgerRecordInvalid = "LEDGER_RECORD_INVALID";
}  // namespace reason

// Who settled what, and with which rules: the parts of the record that are
// neither the request, the snapshot records nor the result.
struct RecordContext {
  std::string settlement_id;
  std::string institution_id;
  std::string person_key;
  std::string content_hash;
  std::string credential_kind;  // "ID_CARD", "INSURANCE_CARD", "EC_TOKEN"
  std::string presenter_key;
  std::string certificate_fingerprint;
  int64_t settled_at_unix_ms = 0;
  std::string snapshot_version;
  std::string policy_sha256;
  std::string catalog_sha256;
  int64_t voucher_issued_at_unix = 0;  // 0: not an e-insurance code
};

// Overwrites `*out`: the request without its credential, the enrollment,
// institution and year to date as used, `response` (its settlement id,
// settlement date, policy id and accumulator delta must be set) and
// `context`. REQUIRES: response.settlement_date() is a valid date.
void BuildLedgerRecord(const v1::SettleRequest& request, const engine::Enrollment& enrollment,
                       const engine::Institution& institution,
                       const engine::Accumulators& year_to_date_before,
                       const v1::SettleResponse& response, const RecordContext& context,
                       v1::LedgerRecord* out);

// What a committed record changed, as engine values: the accumulator
// delta, the amounts per payer and the accounting day. INTERNAL
// LEDGER_RECORD_INVALID when the record lacks them or they are malformed
// (a negative total, an unparsable date).
struct RecordEffect {
  engine::Accumulators delta;
  engine::Amounts amounts;
  engine::Date settlement_date;
};
absl::Status EffectOf(const v1::LedgerRecord& record, RecordEffect* out);
absl::Status EffectOf(const v1::LedgerReversal& reversal, RecordEffect* out);

// Parses stored bytes; INTERNAL LEDGER_RECORD_INVALID naming `where` (a
// key or journal id) when they do not parse or the format is unknown.
absl::Status ParseLedgerRecord(std::string_view bytes, std::string_view where,
                               v1::LedgerRecord* out);
absl::Status ParseLedgerReversal(std::string_view bytes, std::string_view where,
                                 v1::LedgerReversal* out);

void AmountsFromProto(const v1::Amounts& in, engine::Amounts* out);

}  // namespace medsettle::contract

#endif  // MEDSETTLE_PROTO_CONTRACT_LEDGER_RECORD_H_
