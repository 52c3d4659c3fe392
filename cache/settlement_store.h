// The exactly-once record of settlements: a person's year accumulators, the
// settlement records, the idempotency records and the per-tag journal.
// SettlementStore below is the interface the gateway's handler settles
// through, with the values it takes and returns; RedisSettlementStore
// (cache/redis_settlement_store.h, docs/REDIS-KEYS.md) is the one in
// production, and tests/support/fake_settlement_store.h keeps the same
// contract in memory. Transport-agnostic: a settlement is one
// medsettle.v1.LedgerRecord (proto/medsettle/v1/ledger.proto) built by the
// caller, stored and journaled as one value; ledger/ ships the journal to
// PostgreSQL and ReleaseShipped lets Redis forget what was shipped.
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
// The commit also indexes the settlement for reconciliation by
// (institution, settlement date) in the person's slot (Reconcile); the
// reversal counts itself there too. Operators trim the journal after it
// was exported (TrimJournal); the index does not depend on the journal.
//
// Thread safety: implementations are safe from any number of threads.
#ifndef MEDSETTLE_CACHE_SETTLEMENT_STORE_H_
#define MEDSETTLE_CACHE_SETTLEMENT_STORE_H_

#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cache/task.h"
#include "engine/date.h"
#include "engine/types.h"
#include "medsettle/v1/ledger.pb.h"

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
// INVALID_ARGUMENT (field "page_size"): Reconcile with detail and a page
// size outside 1..kMaxReconcilePageSize.
inline constexpr std::string_view kPageSizeInvalid = "PAGE_SIZE_INVALID";
// INVALID_ARGUMENT (field "page_token"): Reconcile with detail and a page
// token that is not one Reconcile returned.
inline constexpr std::string_view kPageTokenInvalid = "PAGE_TOKEN_INVALID";
// INVALID_ARGUMENT (field "after_id"): ReadJournalAfter with an id that is
// not a complete stream id "<ms>-<seq>".
inline constexpr std::string_view kJournalIdInvalid = "JOURNAL_ID_INVALID";
// Reversal of a delta that would make a year total negative uses the
// engine's FAILED_PRECONDITION ACCUMULATORS_INVALID (engine/status.h).
// A commit without a settlement date, or Reconcile of an unset date, uses
// the engine's INVALID_ARGUMENT DATE_MISSING; Reconcile of an empty
// institution id the engine's INVALID_ARGUMENT INSTITUTION_INVALID.
// UNAVAILABLE: the settlement (or reversal) was written on the Redis
// primary, but fewer than SettlementStoreOptions::replica_acks replicas
// confirmed it in time (WAIT). Should the primary fail now, a promoted
// replica may not have it: the outcome is unknown. Re-send the same
// request: it replays if the write survived, and is made again if not;
// either way it is never paid twice.
inline constexpr std::string_view kReplicaAckTimeout = "REPLICA_ACK_TIMEOUT";
}  // namespace reason

// Until when a settlement date's Reconcile index stays in Redis once its
// settlements were shipped: the end of the day (UTC+08:00) plus the hot
// window. Before then Reconcile of the day reads Redis; after, the ledger.
int64_t HotUntilMs(engine::Date settlement_date, int64_t hot_window_ms);

// Key names (docs/REDIS-KEYS.md). `person_key` must be valid; `tag` is the
// first 2 hex characters of a person key.
std::string AccumulatorsKey(std::string_view person_key, int32_t year);  // acc:{ab}:<pk>:<year>
std::string IdempotencyKey(std::string_view tag, std::string_view institution_id,
                           std::string_view request_id);  // idem:{ab}:<inst>:<request_id>
std::string SettlementKey(std::string_view settlement_id);  // stl:{ab}:<id>; REQUIRES: valid id
std::string ReversalKey(std::string_view settlement_id);    // rev:{ab}:<id>; REQUIRES: valid id
std::string JournalKey(std::string_view tag);               // journal:{ab}
// nonce:{ab}:<nonce>, an e-insurance code's nonce once a settlement used it
// (value: the settlement id; expires when the code can no longer verify).
// `person_key` must be valid.
std::string NonceKey(std::string_view person_key, std::string_view nonce);
// recon:{ab}:<inst>:<YYYY-MM-DD>, the hash of a day's totals in one tag.
std::string ReconcileKey(std::string_view tag, std::string_view institution_id,
                         engine::Date date);
// recon:{ab}:<inst>:<YYYY-MM-DD>:ids, the list of the day's settlement ids
// in one tag, in commit order.
std::string ReconcileIdsKey(std::string_view tag, std::string_view institution_id,
                            engine::Date date);

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
// The value of the total AccumulatorFieldNames()[i] in `a`. REQUIRES: i is
// below AccumulatorFieldNames().size().
int64_t AccumulatorTotal(const engine::Accumulators& a, size_t i);
// The amount names of the records and the journal ("total",
// "out_of_scope", "over_limit", "pre_self_pay", "in_scope", "deductible",
// "base_fund", "critical_illness", "supplementary", "patient"; stored as
// "a.<name>"), and the value of AmountFieldNames()[i] in `amounts`.
// REQUIRES: i is below AmountFieldNames().size().
const std::vector<std::string>& AmountFieldNames();
int64_t AmountValue(const engine::Amounts& amounts, size_t i);

// What an earlier commit of the same (institution, request_id) stored.
struct PriorResult {
  std::string content_hash;
  std::string settlement_id;
  bool reversed = false;  // the settlement has been reversed since
  // The settlement's record (read in a second round trip, only when there
  // is a prior result); nullopt when it has left Redis (shipped to the
  // ledger and older than the hot window): read it from the ledger.
  std::optional<v1::LedgerRecord> record;
};

// What a coverage query needs from Redis, read in one round trip.
struct CoverageRead {
  std::optional<engine::Enrollment> enrollment;  // nullopt: not in the snapshot
  engine::Accumulators accumulators;             // zero year, version 0, when absent
  // The e-insurance code's nonce was used by this settlement (only when a
  // nonce was asked about); "" = not used.
  std::string nonce_used_by;
  // The enrollment of the family member who presented the code (only when
  // a presenter was asked about); nullopt: not in the snapshot.
  std::optional<engine::Enrollment> presenter_enrollment;
};

// Everything a settlement needs from Redis, read in one round trip (two
// when the request was committed before).
struct SettleRead {
  std::optional<engine::Enrollment> enrollment;  // nullopt: not in the snapshot
  engine::Accumulators accumulators;             // zero year, version 0, when absent
  std::optional<PriorResult> prior;              // the request was committed before
  std::string nonce_used_by;                     // as CoverageRead::nonce_used_by
  std::optional<engine::Enrollment> presenter_enrollment;  // as CoverageRead's
};

// What a read also asks about an e-insurance code (each optional): whether
// its nonce was used, and the presenter's enrollment (their own lost-voucher
// report). In the same pipeline: a code costs no extra round trip.
struct CodeReads {
  std::string_view nonce;
  std::string_view presenter_key;
};

// One settlement to commit: the record, built once by the caller
// (contract::BuildLedgerRecord), from which the store takes every key and
// indexed value (person, year, institution, request id, settlement id,
// content hash, settlement date, accumulator delta, amounts).
struct SettlementCommit {
  v1::LedgerRecord record;
  int64_t expected_version = 0;  // SettleRead::accumulators.version
  // An e-insurance code's nonce (32 hex), "" for other credentials: the
  // commit refuses (kNonceUsed) when another settlement used it, and marks
  // it used until nonce_expires_unix (the code's last valid second).
  std::string token_nonce;
  int64_t nonce_expires_unix = 0;
};

// Closed set, ordered by precedence (the script checks in this order).
enum class CommitOutcome : uint8_t {
  kReplayed,      // same request committed before: nothing written; GetSettlement reads it
  kNonceUsed,     // another settlement used the e-insurance code: nothing written
  kVersionMoved,  // the accumulators changed since the read: nothing written; retry
  kCommitted,     // written: accumulators, record, idempotency, journal, index
};
std::string_view Name(CommitOutcome outcome);  // "REPLAYED", "NONCE_USED", "VERSION_MOVED", …

struct CommitResult {
  CommitOutcome outcome = CommitOutcome::kCommitted;
  std::string settlement_id;  // kCommitted: the commit's; kReplayed: the stored one;
                              // kNonceUsed: the settlement that used the code
  int64_t accumulators_version = 0;  // after the commit; kVersionMoved: the one found
  bool reversed = false;             // kReplayed: the settlement has been reversed since
};

enum class SettlementStatus : uint8_t { kSettled, kReversed };
std::string_view Name(SettlementStatus status);  // "SETTLED", "REVERSED"

// A settlement as Redis holds it while it is hot.
struct StoredSettlement {
  v1::LedgerRecord record;
  SettlementStatus status = SettlementStatus::kSettled;
  std::optional<v1::LedgerReversal> reversal;  // set when kReversed
  // Read from the ledger, not Redis (it left Redis after its hot window);
  // set by the reader that found it there.
  bool archived = false;
};

struct ReversalResult {
  bool replayed = false;  // the settlement was reversed before: the stored reversal
  v1::LedgerReversal reversal;  // this call's, or the stored one when replayed
  engine::Accumulators accumulators;  // the person's year now
};

enum class JournalKind : uint8_t { kSettle, kReverse };
std::string_view Name(JournalKind kind);  // "SETTLE", "REVERSE"

// One journal entry: the record as one value. A REVERSE entry's reversal
// repeats the settlement's delta and amounts (positive): subtract it.
struct JournalEntry {
  std::string stream_id;  // "<ms>-<seq>"
  JournalKind kind = JournalKind::kSettle;
  // The record serialized (unpacked: cache/record_codec.h) once it decodes;
  // the value as stored when it does not.
  std::string bytes;
  v1::LedgerRecord settlement;      // kSettle, when `status` is ok
  v1::LedgerReversal reversal;      // kReverse, when `status` is ok
  // Whether the entry decoded: INTERNAL LEDGER_RECORD_INVALID (or
  // SETTLEMENT_RECORD_CORRUPT for an unknown kind) naming the journal and
  // the stream id. A bad entry never fails the read of the others: a
  // reader decides (the shipper stops at it; export reports it).
  absl::Status status;
  const std::string& settlement_id() const {
    return kind == JournalKind::kSettle ? settlement.settlement_id() : reversal.settlement_id();
  }
};

// Reconcile of one institution and accounting day.
struct ReconcileTotals {
  int64_t count = 0;
  engine::Amounts amounts;
};
struct ReconcileDetail {
  std::string settlement_id;
  std::string request_id;  // the settle request's
  SettlementStatus status = SettlementStatus::kSettled;
  int32_t visit_type = 0;  // v1::VisitType number (the same as engine::VisitType's)
  engine::Amounts amounts;
  int64_t settled_at_unix = 0;
  int64_t reversed_at_unix = 0;  // 0 unless kReversed
};
struct ReconcileResult {
  ReconcileTotals settled;   // every settlement of the day, reversed or not
  ReconcileTotals reversed;  // those of them reversed since
  ReconcileTotals net;       // settled − reversed
  std::vector<ReconcileDetail> detail;  // empty unless include_detail
  std::string next_page_token;          // "" = no further page
};
inline constexpr int kMaxReconcilePageSize = 1000;

// Reconcile's page tokens, "p1-<tag>-<offset>": where the next detail page
// starts (a tag, 0..255, and an index into its day's id list). Shared with
// the stores that must hand out the same tokens (tests' fake store).
std::string ReconcilePageToken(int tag, int64_t offset);
// False for anything ReconcilePageToken would not have written (or an
// offset beyond any list's length).
bool ParseReconcilePageToken(std::string_view token, int* tag, int64_t* offset);
// The token after a full page that ended at `end_offset` of tag `end_tag`:
// the rest of that tag's list, else the first later tag with entries;
// "" when none is left. `lengths`: each tag's list length.
std::string NextReconcilePageToken(const std::array<int64_t, 256>& lengths, int end_tag,
                                   int64_t end_offset);

struct SettlementStoreOptions {
  // > 0: the commit sets this expiry on the idempotency record, after which
  // a re-sent request id settles again (docs/REDIS-KEYS.md). <= 0:
  // idempotency records are kept forever. Settlement records expire only
  // once shipped (ReleaseShipped).
  int64_t idempotency_ttl_seconds = 0;
  // > 0: a commit (settlement or reversal) is reported written only when
  // WAIT, sent right after it on the same connection, confirms that this
  // many replicas of the primary hold it within replica_ack_timeout_ms;
  // otherwise UNAVAILABLE kReplicaAckTimeout (written on the primary, not
  // known to survive its failover: re-send the same request).
  int replica_acks = 0;
  int replica_ack_timeout_ms = 200;
};

// What the request handler (gateway/settlement_handler.h) needs of a store,
// and nothing more: the two round trips of a settlement, the reads of
// coverage and of a stored settlement, the reversal and Reconcile. The
// operators' and the shipper's operations (journal, trim, years, release)
// are RedisSettlementStore's own.
//
// The *Async methods are coroutines (cache/task.h): an implementation over
// an asynchronous RedisClient parks while Redis answers and resumes on the
// client's I/O thread; one that does not wait completes inline. The
// blocking forms run them to the end (RunSync): never call those on an I/O
// thread. A string_view or reference argument must outlive the Task
// (awaiting it in the expression that creates it guarantees that).
//
// Errors common to every method: UNAVAILABLE (reason REDIS_UNAVAILABLE for
// Redis) when the store could not be reached or did not answer in time; for
// a commit or a reversal the outcome is then unknown: repeat the same call,
// it replays. INTERNAL kSettlementRecordCorrupt (or LEDGER_RECORD_INVALID)
// for stored data that does not decode.
//
// Thread safety: implementations are safe from any number of threads.
class SettlementStore {
 public:
  virtual ~SettlementStore() = default;

  // The read of a settlement: the enrollment of `person_key` in
  // `snapshot_version` (nullopt when not there), the person's accumulators
  // of `year` (all zero, version 0, when never settled), the earlier result
  // of (`institution_id`, `request_id`) with its record when the store
  // still holds it, and with `code` whether its nonce was used and the
  // presenter's enrollment. INVALID_ARGUMENT kPersonKeyInvalid (the
  // person's or the presenter's); INTERNAL kSnapshotRecordCorrupt or
  // kSettlementRecordCorrupt for undecodable records.
  virtual Task<absl::StatusOr<SettleRead>> ReadForSettleAsync(
      std::string_view snapshot_version, std::string_view person_key, int32_t year,
      std::string_view institution_id, std::string_view request_id,
      const CodeReads& code = {}) = 0;
  absl::StatusOr<SettleRead> ReadForSettle(std::string_view snapshot_version,
                                           std::string_view person_key, int32_t year,
                                           std::string_view institution_id,
                                           std::string_view request_id,
                                           const CodeReads& code = {});

  // ReadForSettle without the prior result; the same errors.
  virtual Task<absl::StatusOr<CoverageRead>> ReadForCoverageAsync(
      std::string_view snapshot_version, std::string_view person_key, int32_t year,
      const CodeReads& code = {}) = 0;
  absl::StatusOr<CoverageRead> ReadForCoverage(std::string_view snapshot_version,
                                               std::string_view person_key, int32_t year,
                                               const CodeReads& code = {});

  // Commits `commit` atomically after checking, in this order and before
  // any write: the idempotency record of (institution, request id) — the
  // same content hash → kReplayed (with the stored settlement id and
  // whether it was reversed since), another → ALREADY_EXISTS
  // kRequestIdReused; the code's nonce (used by another settlement →
  // kNonceUsed naming it); the accumulator version (≠ expected →
  // kVersionMoved with the version found). Then it adds the record's delta
  // to the year's accumulators (version + 1), stores the record, the
  // idempotency record, the nonce as used, a SETTLE journal entry and the
  // Reconcile index of (institution, settlement date) → kCommitted.
  // INVALID_ARGUMENT for a bad person key, a settlement id of another tag,
  // a negative delta or an unset settlement date (DATE_MISSING); an error
  // when the settlement id is already stored. A refusal writes nothing.
  virtual Task<absl::StatusOr<CommitResult>> CommitSettlementAsync(
      const SettlementCommit& commit) = 0;
  absl::StatusOr<CommitResult> CommitSettlement(const SettlementCommit& commit);

  // The settlement and its reversal, if any. NOT_FOUND kSettlementNotFound
  // (never committed, or it has left the store: the ledger has it);
  // INVALID_ARGUMENT kSettlementIdInvalid; INTERNAL LEDGER_RECORD_INVALID
  // for a record that does not decode.
  virtual Task<absl::StatusOr<StoredSettlement>> GetSettlementAsync(
      std::string_view settlement_id) = 0;
  absl::StatusOr<StoredSettlement> GetSettlement(std::string_view settlement_id);

  // The reversal of `settled` (as GetSettlement returned it), atomically.
  // `reversal` must name the same settlement, person, year, date and settle
  // request id (INVALID_ARGUMENT kSettlementIdInvalid otherwise); the delta
  // and amounts given back are the record's own. NOT_FOUND
  // kSettlementNotFound when the record has left the store;
  // PERMISSION_DENIED kNotYourSettlement when `reversal` is another
  // institution's; already reversed → the stored reversal, replayed, nothing
  // written; a total that would go negative → FAILED_PRECONDITION
  // ACCUMULATORS_INVALID, nothing written; else subtracts the delta
  // (version + 1), stores the reversal, marks the idempotency record
  // REVERSED, appends a REVERSE journal entry and adds the settlement to the
  // reversed totals of its (institution, settlement date). The result holds
  // the person's year accumulators after.
  virtual absl::StatusOr<ReversalResult> CommitReversal(const v1::LedgerRecord& settled,
                                                        const v1::LedgerReversal& reversal) = 0;

  // The settlements of `institution_id` whose settlement date is `date`:
  // totals (settled, reversed since, net = settled − reversed) and, with
  // `include_detail`, up to `page_size` (1..kMaxReconcilePageSize) entries
  // from `page_token` ("" = the start) in tag order, then commit order;
  // next_page_token "" after the last. Without detail, page_size and
  // page_token are ignored. INVALID_ARGUMENT kPageSizeInvalid
  // ("page_size"), kPageTokenInvalid ("page_token"), DATE_MISSING ("date")
  // for an unset date, INSTITUTION_INVALID ("institution_id") for an empty
  // id.
  virtual absl::StatusOr<ReconcileResult> Reconcile(std::string_view institution_id,
                                                    engine::Date date, bool include_detail,
                                                    int page_size,
                                                    std::string_view page_token) = 0;
};

}  // namespace medsettle::cache

#endif  // MEDSETTLE_CACHE_SETTLEMENT_STORE_H_
