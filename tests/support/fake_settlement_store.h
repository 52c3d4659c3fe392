// Test support: cache::SettlementStore in memory, with the contract of
// cache::RedisSettlementStore (its Lua in cache/settlement_scripts.h), so the
// request handler's logic can be tested without Redis
// (tests/settlement_handler_test.cc); tests/settlement_store_contract_test.cc
// runs the same cases against both, so the two cannot drift apart.
//
// What it keeps, as the Redis store does: enrollments per (snapshot
// version, person key), put in by the test; accumulators per (person, year)
// with their version; idempotency records per (tag, institution, request
// id) with the content hash; e-insurance nonces (single use); settlement
// and reversal records; a journal; the Reconcile index per (institution,
// settlement date, tag) in commit order. Every check runs before the first
// write, in the scripts' order, with the same statuses and reasons.
//
// What it leaves out: expiries (idempotency records, nonces and records
// never expire unless a test evicts a record: EvictSettlement), the
// journal's stream ids (here "<n>-0", n counting from 1) and the record
// packing (the journal holds the serialized record as is).
//
// For the tests that need things to go wrong: FailNext (a store failure,
// before the operation or after it was applied: the outcome unknown) and
// SetBeforeCommit (another gateway commits between a read and a commit).
//
// Thread safety: every method may be called from any thread; one mutex
// guards the state. The coroutine forms complete inline (nothing parks).
#ifndef MEDSETTLE_TESTS_SUPPORT_FAKE_SETTLEMENT_STORE_H_
#define MEDSETTLE_TESTS_SUPPORT_FAKE_SETTLEMENT_STORE_H_

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cache/settlement_store.h"
#include "cache/task.h"
#include "engine/types.h"
#include "medsettle/v1/ledger.pb.h"

namespace medsettle::testing {

class FakeSettlementStore final : public cache::SettlementStore {
 public:
  // The store's operations, for fault injection and call counts.
  enum class Op : uint8_t {
    kReadForSettle,
    kReadForCoverage,
    kCommitSettlement,
    kGetSettlement,
    kCommitReversal,
    kReconcile,
  };
  static constexpr size_t kOpCount = 6;

  FakeSettlementStore() = default;
  FakeSettlementStore(const FakeSettlementStore&) = delete;
  FakeSettlementStore& operator=(const FakeSettlementStore&) = delete;

  // cache::SettlementStore, as documented there and by RedisSettlementStore.
  cache::Task<absl::StatusOr<cache::SettleRead>> ReadForSettleAsync(
      std::string_view snapshot_version, std::string_view person_key, int32_t year,
      std::string_view institution_id, std::string_view request_id,
      const cache::CodeReads& code = {}) override;
  cache::Task<absl::StatusOr<cache::CoverageRead>> ReadForCoverageAsync(
      std::string_view snapshot_version, std::string_view person_key, int32_t year,
      const cache::CodeReads& code = {}) override;
  cache::Task<absl::StatusOr<cache::CommitResult>> CommitSettlementAsync(
      const cache::SettlementCommit& commit) override;
  cache::Task<absl::StatusOr<cache::StoredSettlement>> GetSettlementAsync(
      std::string_view settlement_id) override;
  absl::StatusOr<cache::ReversalResult> CommitReversal(
      const v1::LedgerRecord& settled, const v1::LedgerReversal& reversal) override;
  absl::StatusOr<cache::ReconcileResult> Reconcile(std::string_view institution_id,
                                                   engine::Date date, bool include_detail,
                                                   int page_size,
                                                   std::string_view page_token) override;

  // ---- What a test puts in.

  // Puts `enrollment` into snapshot `version` under enrollment.person_key
  // (REQUIRES: a valid person key), replacing any earlier one.
  void PutEnrollment(std::string_view version, const engine::Enrollment& enrollment);

  // What another gateway's commit does to the person's year: adds `delta`
  // to the totals and moves the version by one. From a SetBeforeCommit hook
  // it makes the commit find VERSION_MOVED.
  void BumpAccumulators(std::string_view person_key, int32_t year,
                        const engine::Accumulators& delta = {});

  // Removes a settlement's record and reversal, as their expiry at the end
  // of the hot window does in Redis; the idempotency record and the index
  // stay (they do in Redis too, until their own expiries).
  void EvictSettlement(std::string_view settlement_id);

  // The next `count` calls of `op` fail with `status` (for example
  // RedisUnavailable()). With `applied` false nothing is done; with
  // `applied` true a commit or reversal is carried out first and its reply
  // is lost (the outcome unknown to the caller; reads just fail). Replaces
  // a fault still pending for `op`.
  void FailNext(Op op, int count, absl::Status status, bool applied = false);

  // Called at the start of every CommitSettlementAsync, before its checks
  // and without the store's lock held (it may call the store, e.g.
  // BumpAccumulators). Null: none.
  void SetBeforeCommit(std::function<void(const cache::SettlementCommit&)> hook);

  // UNAVAILABLE REDIS_UNAVAILABLE, as the Redis clients report an I/O
  // failure or a timeout.
  static absl::Status RedisUnavailable();

  // ---- What a test reads back.

  // The person's year (all zero, version 0, when never settled).
  engine::Accumulators Accumulators(std::string_view person_key, int32_t year) const;
  // Successful writes so far: commits and reversals (not replays, not
  // refusals). Equal before and after a call: the call wrote nothing.
  int64_t writes() const;
  // Settlement records held (evicted ones not counted).
  size_t settlement_count() const;
  // Calls of `op` so far, faulted ones included.
  int calls(Op op) const;
  // The journal, oldest first: one SETTLE entry per commit, one REVERSE per
  // reversal.
  std::vector<cache::JournalEntry> Journal() const;

 private:
  struct Idempotency {
    std::string content_hash;
    std::string settlement_id;
    bool reversed = false;
  };
  struct Stored {
    v1::LedgerRecord record;
    std::optional<v1::LedgerReversal> reversal;
  };
  // One tag's part of a (institution, settlement date) index.
  struct DayIndex {
    cache::ReconcileTotals settled;
    cache::ReconcileTotals reversed;
    std::vector<std::string> settlement_ids;  // commit order
  };
  struct Fault {
    int remaining = 0;
    absl::Status status;
    bool applied = false;
  };

  // Counts the call; the fault to report, if one is pending for `op`.
  std::optional<Fault> Enter(Op op);

  absl::StatusOr<cache::CoverageRead> Read(std::string_view snapshot_version,
                                           std::string_view person_key, int32_t year,
                                           const cache::CodeReads& code) const;
  absl::StatusOr<cache::SettleRead> ReadForSettleNow(std::string_view snapshot_version,
                                                     std::string_view person_key, int32_t year,
                                                     std::string_view institution_id,
                                                     std::string_view request_id,
                                                     const cache::CodeReads& code);
  absl::StatusOr<cache::CommitResult> CommitNow(const cache::SettlementCommit& commit);
  absl::StatusOr<cache::StoredSettlement> GetNow(std::string_view settlement_id);
  absl::StatusOr<cache::ReversalResult> ReverseNow(const v1::LedgerRecord& settled,
                                                   const v1::LedgerReversal& reversal);
  absl::StatusOr<cache::ReconcileResult> ReconcileNow(std::string_view institution_id,
                                                      engine::Date date, bool include_detail,
                                                      int page_size,
                                                      std::string_view page_token) const;
  void AppendJournal(cache::JournalKind kind, const v1::LedgerRecord* settlement,
                     const v1::LedgerReversal* reversal);  // REQUIRES: mutex_ held

  mutable std::mutex mutex_;
  // All guarded by mutex_. Keyed by the Redis key names where Redis has a
  // key (cache/settlement_store.h), so the same things collide.
  std::map<std::pair<std::string, std::string>, engine::Enrollment> enrollments_;
  std::map<std::string, engine::Accumulators> years_;     // AccumulatorsKey
  std::map<std::string, Idempotency> idempotency_;        // IdempotencyKey
  std::map<std::string, std::string> nonces_;             // NonceKey → settlement id
  std::map<std::string, Stored> settlements_;             // settlement id
  std::map<std::string, DayIndex> days_;                  // ReconcileKey (per tag)
  std::vector<cache::JournalEntry> journal_;
  int64_t writes_ = 0;
  std::array<int, kOpCount> calls_{};
  std::array<Fault, kOpCount> faults_{};
  std::function<void(const cache::SettlementCommit&)> before_commit_;
};

}  // namespace medsettle::testing

#endif  // MEDSETTLE_TESTS_SUPPORT_FAKE_SETTLEMENT_STORE_H_
