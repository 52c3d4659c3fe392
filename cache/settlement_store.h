// The exactly-once record of settlements in Redis (docs/REDIS-KEYS.md):
// a person's year accumulators, the settlement records, the idempotency
// records and the per-tag journal. Transport-agnostic: a settlement is one
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
// Thread safety: safe from any number of threads; as thread-safe as its
// RedisClient, which must outlive the store.
#ifndef MEDSETTLE_CACHE_SETTLEMENT_STORE_H_
#define MEDSETTLE_CACHE_SETTLEMENT_STORE_H_

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cache/redis_client.h"
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

struct SettlementStoreOptions {
  // > 0: the commit sets this expiry on the idempotency record, after which
  // a re-sent request id settles again (docs/REDIS-KEYS.md). <= 0:
  // idempotency records are kept forever. Settlement records expire only
  // once shipped (ReleaseShipped).
  int64_t idempotency_ttl_seconds = 0;
};

class SettlementStore {
 public:
  // `redis` must outlive the store.
  explicit SettlementStore(RedisClient& redis, SettlementStoreOptions options = {});

  // One pipeline: HGET of the enrollment in `snapshot_version`, HGETALL of
  // the year's accumulators, HGETALL of the idempotency record, and with
  // `code` the GET of its nonce key and the HGET of the presenter's
  // enrollment. INVALID_ARGUMENT kPersonKeyInvalid (the person's or the
  // presenter's); INTERNAL kSnapshotRecordCorrupt or
  // kSettlementRecordCorrupt for undecodable records; Redis errors as such.
  absl::StatusOr<SettleRead> ReadForSettle(std::string_view snapshot_version,
                                           std::string_view person_key, int32_t year,
                                           std::string_view institution_id,
                                           std::string_view request_id,
                                           const CodeReads& code = {});
  // The same without blocking (cache/task.h): with an asynchronous
  // RedisClient the coroutine parks while Redis answers and resumes on the
  // client's I/O thread. So for each *Async method below; the blocking
  // form runs it to the end (RunSync), so never call that on an I/O thread.
  Task<absl::StatusOr<SettleRead>> ReadForSettleAsync(std::string_view snapshot_version,
                                                      std::string_view person_key, int32_t year,
                                                      std::string_view institution_id,
                                                      std::string_view request_id,
                                                      const CodeReads& code = {});
  Task<absl::StatusOr<CoverageRead>> ReadForCoverageAsync(std::string_view snapshot_version,
                                                          std::string_view person_key,
                                                          int32_t year,
                                                          const CodeReads& code = {});

  // ReadForSettle without the prior result: one pipeline, HGET of the
  // enrollment and HGETALL of the year's accumulators (and `code`'s reads);
  // the same errors.
  absl::StatusOr<CoverageRead> ReadForCoverage(std::string_view snapshot_version,
                                               std::string_view person_key, int32_t year,
                                               const CodeReads& code = {});

  // One EVALSHA (plus an EVAL on first use or after NOSCRIPT). Checks,
  // before any write: idempotency record (same hash → kReplayed; other
  // hash → ALREADY_EXISTS kRequestIdReused), the code's nonce, the
  // accumulator version (moved → kVersionMoved); then adds the record's
  // delta to the accumulators (version + 1), stores the record, the
  // idempotency record (with its expiry, SettlementStoreOptions), a SETTLE
  // journal entry holding the record, and the Reconcile index of
  // (institution, settlement date). INVALID_ARGUMENT for a bad person key,
  // a settlement id of another tag, a negative delta or an unset settlement
  // date (DATE_MISSING). After UNAVAILABLE the commit may or may not have
  // happened: repeat the same commit (it replays).
  absl::StatusOr<CommitResult> CommitSettlement(const SettlementCommit& commit);
  Task<absl::StatusOr<CommitResult>> CommitSettlementAsync(const SettlementCommit& commit);

  // One HMGET. NOT_FOUND kSettlementNotFound (never committed, or it has
  // left Redis: the ledger has it); kSettlementIdInvalid; INTERNAL
  // LEDGER_RECORD_INVALID for a record that does not decode.
  absl::StatusOr<StoredSettlement> GetSettlement(std::string_view settlement_id);
  Task<absl::StatusOr<StoredSettlement>> GetSettlementAsync(std::string_view settlement_id);

  // One EVALSHA: the reversal of `settled` (as GetSettlement returned it).
  // `reversal` must name the same settlement, person, year and date
  // (INVALID_ARGUMENT otherwise); the amounts and delta given back are the
  // record's. NOT_FOUND kSettlementNotFound when the record has left Redis;
  // PERMISSION_DENIED kNotYourSettlement when `reversal` is another
  // institution's; already reversed → the stored reversal (replayed); a
  // total that would go negative → FAILED_PRECONDITION
  // ACCUMULATORS_INVALID, nothing written; else subtracts the delta
  // (version + 1), marks the record REVERSED with the reversal, appends a
  // REVERSE journal entry holding it and adds the settlement to the
  // reversed totals of its (institution, settlement date).
  absl::StatusOr<ReversalResult> CommitReversal(const v1::LedgerRecord& settled,
                                                const v1::LedgerReversal& reversal);

  // The journal entries of `tag` with stream ids in [from_ms, to_ms]
  // (XRANGE), oldest first; with `count` > 0 only the first `count` of them
  // (XRANGE … COUNT), the rest to be read with ReadJournalAfter from the
  // last one's id. INVALID_ARGUMENT kSettlementIdInvalid ("tag") unless
  // `tag` is 2 lowercase hex. An entry that does not decode is returned
  // with its JournalEntry::status set.
  absl::StatusOr<std::vector<JournalEntry>> ReadJournal(std::string_view tag, int64_t from_ms,
                                                        int64_t to_ms, int64_t count = 0);

  // The next page of a paged read: the entries of `tag` with stream ids
  // after `after_id` (exclusive: XRANGE "(<after_id>", Redis 6.2) up to
  // `to_ms` (inclusive), oldest first, at most `count` when > 0. Pages must
  // continue from an id, not a millisecond: one millisecond holds any
  // number of entries ("<ms>-0", "<ms>-1", …), so a page boundary can fall
  // inside one, and restarting at <ms> would repeat its entries, at <ms>+1
  // lose them. INVALID_ARGUMENT kJournalIdInvalid ("after_id") unless
  // `after_id` is "<ms>-<seq>" (decimal); otherwise as ReadJournal.
  absl::StatusOr<std::vector<JournalEntry>> ReadJournalAfter(std::string_view tag,
                                                             std::string_view after_id,
                                                             int64_t to_ms, int64_t count);

  // The settlements of `institution_id` whose settlement_date is `date`:
  // totals summed over the 256 tags (one pipeline per tag), net = settled −
  // reversed. With `include_detail`, up to `page_size` (1..1000) entries,
  // walking tags 00..ff and each tag's settlements in commit order from
  // `page_token` ("" = the start); next_page_token is "" after the last.
  // Not a snapshot: a settlement committed meanwhile in a tag the walk has
  // passed is not listed (the totals, read on every page, count it).
  // Tokens stay valid (the index only grows). Without detail, page_size
  // and page_token are ignored. INVALID_ARGUMENT kPageSizeInvalid
  // ("page_size"), kPageTokenInvalid ("page_token"), DATE_MISSING ("date")
  // for an unset date, INSTITUTION_INVALID ("institution_id") for an
  // empty id; INTERNAL kSettlementRecordCorrupt.
  absl::StatusOr<ReconcileResult> Reconcile(std::string_view institution_id, engine::Date date,
                                            bool include_detail, int page_size,
                                            std::string_view page_token);

  // Operator action, after the journal was exported: removes from every
  // tag's journal the entries with stream ids below `before_ms` (XTRIM
  // MINID, exact), one command per tag; returns how many were removed.
  // `before_ms` <= 0 removes nothing. On an error the tags before it are
  // trimmed already: call again (trimming is idempotent). Reconcile does
  // not read the journal.
  absl::StatusOr<int64_t> TrimJournal(int64_t before_ms);

  // The year accumulators of each (person key, year), in one pipeline
  // (HGETALL each); a year never settled is all zero, version 0, and
  // `exists` false. For operators' checks (medsettle-ledger verify and
  // rebuild). INVALID_ARGUMENT kPersonKeyInvalid; INTERNAL
  // kSettlementRecordCorrupt for a total that is not an integer.
  struct StoredYear {
    engine::Accumulators accumulators;
    bool exists = false;
  };
  absl::StatusOr<std::vector<StoredYear>> ReadYears(
      const std::vector<std::pair<std::string, int32_t>>& person_years);

  // Sets a person-year's accumulators to `totals` (only the non-zero totals
  // are stored; the others removed) with version `version`, in one
  // transaction (MULTI/EXEC): what `medsettle-ledger rebuild` writes.
  // REQUIRES: no gateway is settling the person (the tool says when).
  absl::Status WriteYear(std::string_view person_key, int32_t year,
                         const engine::Accumulators& totals, int64_t version);

  // The oldest `count` (> 0) entries of each of the 256 tags' journals, in
  // one pipeline (XRANGE - + COUNT), oldest first; index = the tag's
  // number (00 → 0, ff → 255). What a shipper reads each cycle: shipped
  // entries leave the journal, so the oldest are the next to ship (or,
  // after a crash between the ledger's commit and ReleaseShipped, shipped
  // ones still to release).
  absl::StatusOr<std::vector<std::vector<JournalEntry>>> ReadJournalHeads(int64_t count);

  // Per tag (index = the tag's number): how many entries its journal holds
  // and the stream id of the oldest ("" when empty). One pipeline.
  struct JournalLength {
    int64_t entries = 0;
    std::string oldest_id;
  };
  absl::StatusOr<std::vector<JournalLength>> JournalLengths();

  // After the ledger committed `tag`'s journal entries up to and including
  // `through_id` (REQUIRES: `shipped` are those entries, decoded): one
  // pipeline that removes them from the journal (XTRIM MINID, exact: ids
  // above `through_id` stay) and lets the shipped records leave Redis at
  // the end of the hot window: each settlement record expires
  // `hot_window_ms` after it was settled (or reversed, if later), each
  // Reconcile index of a shipped settlement `hot_window_ms` after the end
  // of its accounting day (HotUntilMs). The trim comes last in the
  // pipeline, so entries leave the journal only after their expiries were
  // set. Idempotent: a repeat after a crash or a failed pipeline (the
  // entries are then still in the journal) sets the same expiries. Entries
  // whose status is not ok are skipped.
  absl::Status ReleaseShipped(std::string_view tag, std::string_view through_id,
                              const std::vector<JournalEntry>& shipped, int64_t hot_window_ms);

 private:
  // XRANGE of `tag`'s journal from `start` (a range start as Redis takes
  // it) to `to_ms`, at most `count` entries when > 0, parsed.
  absl::StatusOr<std::vector<JournalEntry>> RangeJournal(std::string_view tag,
                                                         const std::string& start, int64_t to_ms,
                                                         int64_t count);
  // Decodes an XRANGE reply of journal `key`.
  static absl::StatusOr<std::vector<JournalEntry>> DecodeJournal(const std::string& key,
                                                                 const RedisReply& reply);
  // EVALSHA of script `index` (keys under `hash_tag`); after NOSCRIPT,
  // EVAL of its text, which runs and loads it.
  Task<RedisResult> RunScriptAsync(int index, std::string_view hash_tag,
                                   const RedisArgv& keys_and_args, size_t key_count);
  RedisResult RunScript(int index, std::string_view hash_tag, const RedisArgv& keys_and_args,
                        size_t key_count);

  RedisClient& redis_;
  const SettlementStoreOptions options_;
  const std::string sha_[2];  // SHA-1 (hex) of each script, as EVALSHA names it
};

}  // namespace medsettle::cache

#endif  // MEDSETTLE_CACHE_SETTLEMENT_STORE_H_
