// The exactly-once record of settlements in Redis (docs/REDIS-KEYS.md):
// a person's year accumulators, the settlement records, the idempotency
// records and the per-tag journal. Transport-agnostic: responses are opaque
// bytes the caller provides (a serialized SettleResponse).
//
// A settlement is two round trips, both in the person's slot {ab}:
//
//   ReadForSettle (one pipeline: enrollment, accumulators, prior result)
//   → the engine computes (Settlement::after, Settlement::delta)
//   → CommitSettlement (one EVALSHA that checks idempotency and the
//     accumulator version before its first write).
//
// VERSION_MOVED means another settlement of the same person committed in
// between: read again, compute again, commit again.
//
// Thread safety: safe from any number of threads (the loaded script hashes
// are guarded by a mutex); as thread-safe as its RedisClient, which must
// outlive the store.
#ifndef MEDSETTLE_CACHE_SETTLEMENT_STORE_H_
#define MEDSETTLE_CACHE_SETTLEMENT_STORE_H_

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cache/redis_client.h"
#include "engine/types.h"

namespace medsettle::cache {

namespace reason {
// ALREADY_EXISTS: the institution's request_id was already used for this
// person with different content (another content hash).
inline constexpr std::string_view kRequestIdReused = "REQUEST_ID_REUSED";
// NOT_FOUND: no settlement has this id.
inline constexpr std::string_view kSettlementNotFound = "SETTLEMENT_NOT_FOUND";
// PERMISSION_DENIED: the settlement belongs to another institution.
inline constexpr std::string_view kNotYourSettlement = "NOT_YOUR_SETTLEMENT";
// INVALID_ARGUMENT: a settlement id does not begin with a tag ("ab-").
inline constexpr std::string_view kSettlementIdInvalid = "SETTLEMENT_ID_INVALID";
// INTERNAL: a stored accumulator, settlement or journal record cannot be
// read (a field is not an integer, a required field is missing).
inline constexpr std::string_view kSettlementRecordCorrupt = "SETTLEMENT_RECORD_CORRUPT";
// Reversal of a delta that would make a year total negative uses the
// engine's FAILED_PRECONDITION ACCUMULATORS_INVALID (engine/status.h).
}  // namespace reason

// Key names (docs/REDIS-KEYS.md). `person_key` must be valid; `tag` is the
// first 2 hex characters of a person key.
std::string AccumulatorsKey(std::string_view person_key, int32_t year);  // acc:{ab}:<pk>:<year>
std::string IdempotencyKey(std::string_view tag, std::string_view institution_id,
                           std::string_view request_id);  // idem:{ab}:<inst>:<request_id>
std::string SettlementKey(std::string_view settlement_id);  // stl:{ab}:<id>; REQUIRES: valid id
std::string JournalKey(std::string_view tag);               // journal:{ab}

// A new settlement id for a person: "<tag>-" + 12 hex of the Unix time in
// ms + 16 random hex ("3f-0193a1b2c3d4-9e3779b97f4a7c15"). Unique in
// practice (64 random bits per millisecond); the commit script still
// refuses to overwrite an existing record.
std::string NewSettlementId(std::string_view person_key, int64_t now_ms);
// The tag of a settlement id ("3f"); INVALID_ARGUMENT kSettlementIdInvalid
// unless it begins with 2 lowercase hex characters and '-'.
absl::StatusOr<std::string> TagOfSettlementId(std::string_view settlement_id);

// The accumulator hash's field names, one per total, in a fixed order
// (ledger totals "go.ded", "go.in", "go.fund", "go.visits", …, "ci.burden",
// "ci.paid", "sup1.base", "sup1.paid", …). `version` is a field of its own.
const std::vector<std::string>& AccumulatorFieldNames();

// What an earlier commit of the same (institution, request_id) stored.
struct PriorResult {
  std::string content_hash;
  std::string settlement_id;
  std::string response;  // the bytes CommitSettlement stored
};

// Everything a settlement needs from Redis, read in one round trip.
struct SettleRead {
  std::optional<engine::Enrollment> enrollment;  // nullopt: not in the snapshot
  engine::Accumulators accumulators;             // zero year, version 0, when absent
  std::optional<PriorResult> prior;              // the request was committed before
};

struct SettlementCommit {
  std::string person_key;
  int32_t year = 0;  // the accumulators' year
  std::string institution_id;
  std::string request_id;
  std::string content_hash;   // of the request's content, computed by the caller
  std::string settlement_id;  // NewSettlementId(person_key, …)
  std::string response;       // opaque bytes returned to every replay
  int64_t expected_version = 0;  // SettleRead::accumulators.version
  engine::Accumulators after;    // Settlement::after (absolute totals)
  engine::Accumulators delta;    // Settlement::delta (kept for Reverse)
  engine::Date settlement_date;
  engine::Amounts amounts;  // for the journal and Reconcile
  int64_t now_unix = 0;
};

// Closed set, ordered by precedence (the script checks in this order).
enum class CommitOutcome : uint8_t {
  kReplayed,      // same request committed before: the stored response, nothing written
  kVersionMoved,  // the accumulators changed since the read: nothing written; retry
  kCommitted,     // written: accumulators, record, idempotency, journal
};
std::string_view Name(CommitOutcome outcome);  // "REPLAYED", "VERSION_MOVED", "COMMITTED"

struct CommitResult {
  CommitOutcome outcome = CommitOutcome::kCommitted;
  std::string settlement_id;  // kCommitted: the commit's; kReplayed: the stored one
  std::string response;       // kCommitted: the commit's; kReplayed: the stored one
  int64_t accumulators_version = 0;  // after the commit; kVersionMoved: the one found
};

enum class SettlementStatus : uint8_t { kSettled, kReversed };
std::string_view Name(SettlementStatus status);  // "SETTLED", "REVERSED"

struct SettlementRecord {
  std::string settlement_id;
  std::string person_key;
  int32_t year = 0;
  std::string institution_id;
  std::string request_id;
  std::string content_hash;
  SettlementStatus status = SettlementStatus::kSettled;
  std::string response;
  engine::Accumulators delta;  // version 0
  engine::Amounts amounts;
  engine::Date settlement_date;
  int64_t settled_at_unix = 0;
  // Set when status is kReversed.
  std::string reversal_request_id;
  std::string reversal_response;
  int64_t reversed_at_unix = 0;
};

struct ReversalRequest {
  std::string settlement_id;
  std::string institution_id;  // must be the settling institution
  std::string reversal_request_id;
  std::string response;  // opaque bytes stored and returned to every replay
  int64_t now_unix = 0;
};

struct ReversalResult {
  bool replayed = false;  // the settlement was reversed before: the stored reversal
  std::string reversal_request_id;  // the stored one when replayed
  std::string response;             // the stored one when replayed
  int64_t reversed_at_unix = 0;
  engine::Accumulators accumulators;  // the person's year now
};

enum class JournalKind : uint8_t { kSettle, kReverse };
std::string_view Name(JournalKind kind);  // "SETTLE", "REVERSE"

// One journal entry. A REVERSE entry repeats the settlement's delta and
// amounts (positive): subtract it.
struct JournalEntry {
  std::string stream_id;  // "<ms>-<seq>"
  JournalKind kind = JournalKind::kSettle;
  std::string settlement_id;
  std::string person_key;
  int32_t year = 0;
  std::string institution_id;
  std::string request_id;  // the settle or the reversal request id
  engine::Date settlement_date;
  int64_t at_unix = 0;
  engine::Accumulators delta;
  engine::Amounts amounts;
};

class SettlementStore {
 public:
  // `redis` must outlive the store.
  explicit SettlementStore(RedisClient& redis);

  // One pipeline: HGET of the enrollment in `snapshot_version`, HGETALL of
  // the year's accumulators, HGETALL of the idempotency record.
  // INVALID_ARGUMENT kPersonKeyInvalid; INTERNAL kSnapshotRecordCorrupt or
  // kSettlementRecordCorrupt for undecodable records; Redis errors as such.
  absl::StatusOr<SettleRead> ReadForSettle(std::string_view snapshot_version,
                                           std::string_view person_key, int32_t year,
                                           std::string_view institution_id,
                                           std::string_view request_id);

  // One EVALSHA (plus SCRIPT LOAD on first use or after NOSCRIPT). Checks,
  // before any write: idempotency record (same hash → kReplayed; other
  // hash → ALREADY_EXISTS kRequestIdReused), accumulator version (moved →
  // kVersionMoved); then writes the accumulators (version + 1), the record,
  // the idempotency record and a SETTLE journal entry. INVALID_ARGUMENT
  // for a bad person key, a settlement id of another tag, or a negative
  // delta. After UNAVAILABLE the commit may or may not have happened:
  // repeat the same commit (it replays).
  absl::StatusOr<CommitResult> CommitSettlement(const SettlementCommit& commit);

  // One HGETALL. NOT_FOUND kSettlementNotFound; kSettlementIdInvalid.
  absl::StatusOr<SettlementRecord> GetSettlement(std::string_view settlement_id);

  // Reads the record's person and year (one HMGET), then one EVALSHA:
  // NOT_FOUND kSettlementNotFound; PERMISSION_DENIED kNotYourSettlement;
  // already reversed → the stored reversal (replayed); a total that would
  // go negative → FAILED_PRECONDITION ACCUMULATORS_INVALID, nothing
  // written; else subtracts the delta (version + 1), marks the record
  // REVERSED and appends a REVERSE journal entry.
  absl::StatusOr<ReversalResult> CommitReversal(const ReversalRequest& request);

  // The journal entries of `tag` with stream ids in [from_ms, to_ms]
  // (XRANGE), oldest first. INTERNAL kSettlementRecordCorrupt for an
  // unreadable entry.
  absl::StatusOr<std::vector<JournalEntry>> ReadJournal(std::string_view tag, int64_t from_ms,
                                                        int64_t to_ms);

 private:
  // EVALSHA of script `index` with NOSCRIPT recovery (load, retry once).
  RedisResult RunScript(int index, const RedisArgv& keys_and_args, size_t key_count);

  RedisClient& redis_;
  std::mutex mutex_;
  std::string sha_[2];  // guarded by mutex_; empty = not loaded yet
};

}  // namespace medsettle::cache

#endif  // MEDSETTLE_CACHE_SETTLEMENT_STORE_H_
