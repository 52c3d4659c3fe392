// The settlement store in Redis (docs/REDIS-KEYS.md): cache::SettlementStore
// (cache/settlement_store.h) over a RedisClient, and the operations only
// Redis has — the per-tag journal that ledger/ ships to PostgreSQL
// (ReadJournal*, ReleaseShipped, JournalLengths), the operators' trim and
// the year accumulators that medsettle-ledger verifies and rebuilds.
//
// A settlement is two round trips, both in the person's slot {ab}:
//
//   ReadForSettleAsync: one pipeline (HGET of the enrollment, HGETALL of
//     the year's accumulators, HMGET of the idempotency record, and with a
//     code the GET of its nonce key and the HGET of the presenter's
//     enrollment); a replay reads its record in a second round trip
//   → the engine computes
//   → CommitSettlementAsync: one EVALSHA (plus an EVAL on first use or
//     after NOSCRIPT) of cache/settlement_scripts.h, which checks
//     idempotency, the nonce and the accumulator version before its first
//     write.
//
// CommitReversal is one EVALSHA; GetSettlement one MGET; Reconcile one
// pipeline per tag. Implemented in settlement_store.cc, beside the key names
// and ids it shares with the interface's users.
//
// Thread safety: safe from any number of threads; as thread-safe as its
// RedisClient, which must outlive the store.
#ifndef MEDSETTLE_CACHE_REDIS_SETTLEMENT_STORE_H_
#define MEDSETTLE_CACHE_REDIS_SETTLEMENT_STORE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cache/redis_client.h"
#include "cache/settlement_store.h"
#include "cache/task.h"
#include "engine/date.h"
#include "engine/types.h"
#include "medsettle/v1/ledger.pb.h"

namespace medsettle::cache {

class RedisSettlementStore final : public SettlementStore {
 public:
  // `redis` must outlive the store.
  explicit RedisSettlementStore(RedisClient& redis, SettlementStoreOptions options = {});

  // SettlementStore. The idempotency record expires as
  // SettlementStoreOptions says; Reconcile walks tags 00..ff (one pipeline
  // per tag) and is not a snapshot: a settlement committed meanwhile in a
  // tag the walk has passed is not listed (the totals, read on every page,
  // count it); tokens stay valid (the index only grows). Reconcile also
  // refuses NOT_FOUND kSettlementNotFound ("date") when a listed
  // settlement's record has left Redis before its day's index.
  Task<absl::StatusOr<SettleRead>> ReadForSettleAsync(std::string_view snapshot_version,
                                                      std::string_view person_key, int32_t year,
                                                      std::string_view institution_id,
                                                      std::string_view request_id,
                                                      const CodeReads& code = {}) override;
  Task<absl::StatusOr<CoverageRead>> ReadForCoverageAsync(std::string_view snapshot_version,
                                                          std::string_view person_key,
                                                          int32_t year,
                                                          const CodeReads& code = {}) override;
  Task<absl::StatusOr<CommitResult>> CommitSettlementAsync(const SettlementCommit& commit) override;
  Task<absl::StatusOr<StoredSettlement>> GetSettlementAsync(
      std::string_view settlement_id) override;
  absl::StatusOr<ReversalResult> CommitReversal(const v1::LedgerRecord& settled,
                                                const v1::LedgerReversal& reversal) override;
  absl::StatusOr<ReconcileResult> Reconcile(std::string_view institution_id, engine::Date date,
                                            bool include_detail, int page_size,
                                            std::string_view page_token) override;

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
  // EVAL of its text, which runs and loads it. With options_.replica_acks,
  // WAIT follows in the same pipeline and *acked gets its answer (the
  // replicas holding every write of that connection so far).
  Task<RedisResult> RunScriptAsync(int index, std::string_view hash_tag,
                                   const RedisArgv& keys_and_args, size_t key_count,
                                   int64_t* acked);
  RedisResult RunScript(int index, std::string_view hash_tag, const RedisArgv& keys_and_args,
                        size_t key_count, int64_t* acked);
  // With replica acknowledgements asked for: rewrites the idempotency
  // record `idem` unchanged and WAITs, so that a replay is answered only
  // once the settlement it reports is on the replicas too.
  Task<absl::Status> ConfirmReplayReplicated(std::string_view hash_tag, const std::string& idem,
                                             std::string_view settlement_id);
  // OK when no replica acknowledgement is asked for or `acked` meets it;
  // else UNAVAILABLE kReplicaAckTimeout about `what` ("settlement 3f-…").
  absl::Status CheckReplicated(int64_t acked, std::string_view what) const;

  RedisClient& redis_;
  const SettlementStoreOptions options_;
  const std::string sha_[2];  // SHA-1 (hex) of each script, as EVALSHA names it
};

}  // namespace medsettle::cache

#endif  // MEDSETTLE_CACHE_REDIS_SETTLEMENT_STORE_H_
