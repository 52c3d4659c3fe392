// What each RPC of medsettle.v1.SettlementService does, independent of the
// transport: the gRPC service (gateway/grpc_service.h) authenticates the
// caller, hands the call to a worker thread and calls one method here,
// then maps the returned status (gateway/error_mapping.h).
//
// The flow of Settle, the one that moves money:
//
//   credential → person key (ID numbers: GB 11643-checked, then HMAC; the
//     raw number goes no further. E-insurance codes: parsed, the person
//     key is in the code; signature and window judged, reported below)
//   the caller's kind may settle this visit (gateway/authorization.h)
//   ReadForSettle: enrollment + accumulators + prior result (+ the code's
//     nonce), one round trip
//     prior with the same content  → the stored response, replayed=true
//     prior with other content     → ALREADY_EXISTS REQUEST_ID_REUSED
//   a code: genuine and current, its scope covers the visit, its nonce
//     unused, its presenter bound
//   engine: coverage and the split (pure; a code issued before a
//     lost-voucher report is refused here)
//   CommitSettlement: one Lua script, validated before its first write
//     VERSION_MOVED → read and compute again (≤ commit_retries), then
//     ABORTED ACCUMULATORS_CONTENDED
//
// Within one gateway, settlements of the same person take turns (a striped
// lock held from read to commit); VERSION_MOVED then only happens when
// another gateway settles the same person at the same moment.
//
// Thread safety: every method may run on many threads at once.
#ifndef MEDSETTLE_GATEWAY_SETTLEMENT_HANDLER_H_
#define MEDSETTLE_GATEWAY_SETTLEMENT_HANDLER_H_

#include <chrono>
#include <coroutine>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "cache/person_key.h"
#include "cache/settlement_store.h"
#include "cache/task.h"
#include "gateway/credentials/ec_token.h"
#include "gateway/counters.h"
#include "gateway/engine_holder.h"
#include "gateway/person_turns.h"
#include "gateway/settlement_archive.h"
#include "gateway/snapshot_watcher.h"
#include "medsettle/v1/service.pb.h"
#include "medsettle/v1/settlement.pb.h"

namespace medsettle::gateway {

namespace reason {
// ABORTED: other settlements of the same person kept committing between
// this one's read and commit, commit_retries times in a row. Nothing was
// written; retrying the same request is safe.
inline constexpr std::string_view kAccumulatorsContended = "ACCUMULATORS_CONTENDED";
// FAILED_PRECONDITION: the current snapshot holds no enrollment for the
// person the credential names.
inline constexpr std::string_view kPersonNotEnrolled = "PERSON_NOT_ENROLLED";
// INVALID_ARGUMENT: an insurance card number that is not a resident ID
// number (resident social-security cards carry the ID number).
inline constexpr std::string_view kInsuranceCardInvalid = "INSURANCE_CARD_NO_INVALID";
// INVALID_ARGUMENT: settlement_id missing.
inline constexpr std::string_view kSettlementIdMissing = "SETTLEMENT_ID_MISSING";
// DEADLINE_EXCEEDED with this reason: the gateway saw the deadline (the
// caller's, or request_timeout_ms) pass before committing; this call wrote
// nothing. A DEADLINE_EXCEEDED without the reason trailer is the client's
// own timer: the outcome is unknown, so re-send the same request (it
// replays if it was committed).
inline constexpr std::string_view kDeadlineExceeded = "DEADLINE_EXCEEDED";
// FAILED_PRECONDITION: Reverse of a settlement that has left Redis (shipped
// to the ledger and older than the hot window).
inline constexpr std::string_view kReversalWindowClosed = "REVERSAL_WINDOW_CLOSED";
// UNAVAILABLE: no engine is loaded (never after a successful start).
inline constexpr std::string_view kEngineNotLoaded = "ENGINE_NOT_LOADED";
// RESOURCE_EXHAUSTED: the gateway has workers.queue_limit calls waiting
// (or in flight, for calls that wait without a worker); retry with backoff.
inline constexpr std::string_view kGatewayOverloaded = "GATEWAY_OVERLOADED";
}  // namespace reason

// What the transport knows about a call.
struct CallContext {
  std::string institution_id;  // from the Authenticator
  // SHA-256 (hex) of the verified client certificate (DER); "" under
  // --insecure-dev. Recorded in the journal's audit fields.
  std::string certificate_fingerprint;
  std::chrono::system_clock::time_point deadline = std::chrono::system_clock::time_point::max();
};

struct HandlerOptions {
  int commit_retries = 8;
  int utc_offset_minutes = 480;  // settled_at and default dates
  // The clock (Unix ms) of settled_at, reversed_at, the settlement id, a
  // code's validity window, today's date and which days Reconcile reads from
  // the archive; null: the system clock.
  // Injectable by tests. (The call's deadline is always the system clock's.)
  std::function<int64_t()> now_ms;
  // E-insurance code verification; null: tokens are refused
  // EC_TOKEN_NOT_CONFIGURED. SetIssuerKeys replaces it (SIGHUP).
  std::shared_ptr<const credentials::IssuerKeyring> issuer_keys;
  int token_clock_skew_seconds = 60;
  int token_max_lifetime_minutes = 60;  // 0 = any
  // Where settlements are read once they have left Redis (the ledger);
  // null: only Redis (a settlement past the hot window is NOT_FOUND).
  // Must outlive the handler.
  SettlementArchive* archive = nullptr;
  // Called before a commit with the engine it settled with: publishes the
  // engine's policy files and catalog in Redis (cache/rule_files.h) if that
  // was not done yet, so that no record names rules the ledger cannot get.
  // An error refuses the settlement (nothing committed). Null: nothing to do.
  std::function<absl::Status(const std::shared_ptr<const engine_files::LoadedEngine>&)>
      ensure_rules_published;
  // Runs a task on a worker thread (WorkerPool::TrySubmit); false when the
  // queue is full. Settle moves long bills, the retry pause and ledger
  // reads there, off the transport's and the Redis I/O threads. Null: all
  // runs where it is (a blocking RedisClient; tests and tools).
  std::function<bool(std::function<void()>)> offload;
  // Bills with more lines than this are parsed and settled on a worker.
  int inline_max_lines = 64;
  // How long a shipped settlement stays in Redis (ledger.hot_window_hours;
  // the shipper's --hot-window must match): Reconcile of a day whose window
  // has ended reads the archive.
  int64_t hot_window_ms = int64_t{7} * 24 * 3600 * 1000;
};

class SettlementHandler {
 public:
  // Every reference must outlive the handler. In production `snapshots` is
  // the SnapshotWatcher and `store` the RedisSettlementStore; the handler
  // needs only their interfaces, so its logic runs against fakes
  // (tests/support/fake_settlement_store.h, fake_snapshot_source.h).
  SettlementHandler(const EngineHolder& engines, const SnapshotSource& snapshots,
                    cache::SettlementStore& store, const cache::PersonKeyer& keyer,
                    GatewayCounters& counters, HandlerOptions options);

  absl::Status CheckCoverage(const CallContext& call, const v1::CheckCoverageRequest& request,
                             v1::CheckCoverageResponse* response);
  // PreSettle and Settle as coroutines (cache/task.h): they start on the
  // caller's thread and, with an asynchronous store, park while Redis
  // answers and finish on its I/O thread. `request` and `response` must
  // outlive the task. The blocking forms run them to the end.
  cache::Task<absl::Status> PreSettleAsync(CallContext call, const v1::SettleRequest& request,
                                           v1::SettleResponse* response);
  cache::Task<absl::Status> SettleAsync(CallContext call, const v1::SettleRequest& request,
                                        v1::SettleResponse* response);
  absl::Status PreSettle(const CallContext& call, const v1::SettleRequest& request,
                         v1::SettleResponse* response);
  absl::Status Settle(const CallContext& call, const v1::SettleRequest& request,
                      v1::SettleResponse* response);
  absl::Status Reverse(const CallContext& call, const v1::ReverseRequest& request,
                       v1::ReverseResponse* response);
  absl::Status GetSettlement(const CallContext& call, const v1::GetSettlementRequest& request,
                             v1::SettleResponse* response);
  absl::Status Reconcile(const CallContext& call, const v1::ReconcileRequest& request,
                         v1::ReconcileResponse* response);

  // Replaces the issuer keys e-insurance codes are verified with (SIGHUP
  // re-reads ec_token.issuer_keys_dir); null refuses every token. Calls in
  // flight finish with the keys they started with.
  void SetIssuerKeys(std::shared_ptr<const credentials::IssuerKeyring> keys);

 private:
  struct Person {
    std::string person_key;
    engine::CredentialKind kind = engine::CredentialKind::kUnspecified;
    // E-insurance codes only.
    std::optional<int64_t> voucher_issued_at_unix;
    std::string presenter_key;  // "" = the person presents it
    std::string nonce;
    uint8_t scopes = 0;
    int64_t usable_until_unix = 0;  // how long the code's nonce stays marked
    // Signature, lifetime and validity window (credentials::VerifyEcToken),
    // reported after the prior-result lookup so that re-sending a committed
    // request replays even when its code has expired since.
    absl::Status verdict = absl::OkStatus();
  };
  absl::StatusOr<Person> ResolveCredential(const v1::Credential& credential,
                                           std::string_view field) const;
  // The checks of a code that need the institution, the visit or the
  // snapshot record: scope, then (after the read) nonce, presenter's
  // binding, presenter's own lost-voucher report (when the presenter is in
  // the snapshot; the insured person's report is the engine's check).
  static absl::Status CheckTokenScope(const Person& person, const engine::Institution& institution,
                                      engine::VisitType type);
  static absl::Status CheckTokenUse(const Person& person, const engine::Enrollment& enrollment,
                                    const std::string& nonce_used_by,
                                    const std::optional<engine::Enrollment>& presenter_enrollment);
  static cache::CodeReads CodeReadsOf(const Person& person) {
    return {.nonce = person.nonce, .presenter_key = person.presenter_key};
  }
  std::shared_ptr<const credentials::IssuerKeyring> IssuerKeys() const;
  // Shared by PreSettle and Settle; `commit` false computes only.
  cache::Task<absl::Status> SettleOrTrial(CallContext call, const v1::SettleRequest& request,
                                          bool commit, v1::SettleResponse* response);
  // `co_await ToWorker()`: the coroutine goes on on a worker thread (true),
  // or stays where it is when there is no offload (true); false when the
  // worker queue is full (refuse with GatewayOverloaded()).
  struct WorkerHop {
    const std::function<bool(std::function<void()>)>& offload;
    bool moved = false;
    bool await_ready() const noexcept { return !offload; }
    bool await_suspend(std::coroutine_handle<> h) {
      // Set first: the worker may resume the coroutine (and read `moved`)
      // before offload returns, and may even finish it and free its frame,
      // this awaiter included: after a successful offload nothing here is
      // touched again.
      moved = true;
      if (offload([h] { h.resume(); })) return true;
      moved = false;  // not queued: nobody else has the coroutine
      return false;
    }
    bool await_resume() const noexcept { return !offload || moved; }
  };
  WorkerHop ToWorker() const { return WorkerHop{options_.offload}; }
  // The response of an earlier identical request, replayed=true, with the
  // status it has now (REVERSED after a reversal): from `record` when the
  // read brought it, else read from the store or the archive.
  cache::Task<absl::Status> Replay(std::string settlement_id,
                                   std::optional<v1::LedgerRecord> record, bool reversed,
                                   v1::SettleResponse* response);
  // The settlement from Redis, or from the archive once it left Redis.
  absl::StatusOr<cache::StoredSettlement> FindSettlement(std::string_view settlement_id) const;
  // The caller's registry record in the current snapshot, or
  // PERMISSION_DENIED INSTITUTION_UNKNOWN.
  absl::StatusOr<engine::Institution> RegisteredInstitution(const CallContext& call) const;
  int64_t NowMs() const;
  std::string Timestamp(int64_t unix_seconds) const;

  const EngineHolder& engines_;
  const SnapshotSource& snapshots_;
  cache::SettlementStore& store_;
  const cache::PersonKeyer& keyer_;
  GatewayCounters& counters_;
  const HandlerOptions options_;
  mutable std::mutex issuer_keys_mutex_;
  std::shared_ptr<const credentials::IssuerKeyring> issuer_keys_;
  // Settlements of one person take turns within this gateway
  // (gateway/person_turns.h).
  static constexpr size_t kPersonTurnStripes = 1024;
  PersonTurns person_turns_;
};

// RESOURCE_EXHAUSTED kGatewayOverloaded: the one refusal of a full worker
// queue or of workers.max_in_flight reached (the call gate's and the
// handler's).
absl::Status GatewayOverloaded();

// SHA-256 (hex) of the request's deterministic serialization: what "the
// same content" means for idempotency.
std::string ContentHash(const v1::SettleRequest& request);

}  // namespace medsettle::gateway

#endif  // MEDSETTLE_GATEWAY_SETTLEMENT_HANDLER_H_
