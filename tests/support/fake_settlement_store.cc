#include "tests/support/fake_settlement_store.h"

#include <algorithm>
#include <string>
#include <utility>

#include "cache/redis_client.h"
#include "cache/snapshot_store.h"
#include "engine/engine.h"
#include "engine/status.h"
#include "engine/text.h"
#include "proto/contract/ledger_record.h"

namespace medsettle::testing {
namespace {

using cache::CommitOutcome;
using engine::Cat;

constexpr int kTagCount = 256;

std::string TagText(int tag) {
  static constexpr char kHex[] = "0123456789abcdef";
  return std::string{kHex[(tag >> 4) & 15], kHex[tag & 15]};
}

// The amounts the Redis index keeps (cache::AmountFieldNames), added with
// `sign`.
void AddAmounts(const engine::Amounts& a, int sign, engine::Amounts* to) {
  to->total_cents += sign * a.total_cents;
  to->out_of_scope_cents += sign * a.out_of_scope_cents;
  to->over_limit_cents += sign * a.over_limit_cents;
  to->pre_self_pay_cents += sign * a.pre_self_pay_cents;
  to->in_scope_cents += sign * a.in_scope_cents;
  to->deductible_cents += sign * a.deductible_cents;
  to->base_fund_cents += sign * a.base_fund_cents;
  to->critical_illness_cents += sign * a.critical_illness_cents;
  to->supplementary_cents += sign * a.supplementary_cents;
  to->patient_cents += sign * a.patient_cents;
}

void Count(const engine::Amounts& amounts, cache::ReconcileTotals* totals) {
  ++totals->count;
  AddAmounts(amounts, 1, &totals->amounts);
}

absl::Status NotFound() {
  return engine::Refusal(absl::StatusCode::kNotFound, cache::reason::kSettlementNotFound,
                         "settlement_id", "no settlement has this id in Redis");
}

}  // namespace

absl::Status FakeSettlementStore::RedisUnavailable() {
  return engine::Refusal(absl::StatusCode::kUnavailable, cache::reason::kRedisUnavailable, "",
                         "injected: the store did not answer (outcome unknown)");
}

std::optional<FakeSettlementStore::Fault> FakeSettlementStore::Enter(Op op) {
  std::lock_guard<std::mutex> lock(mutex_);
  const size_t i = static_cast<size_t>(op);
  ++calls_[i];
  if (faults_[i].remaining <= 0) return std::nullopt;
  --faults_[i].remaining;
  return faults_[i];
}

void FakeSettlementStore::FailNext(Op op, int count, absl::Status status, bool applied) {
  std::lock_guard<std::mutex> lock(mutex_);
  faults_[static_cast<size_t>(op)] =
      Fault{.remaining = count, .status = std::move(status), .applied = applied};
}

void FakeSettlementStore::SetBeforeCommit(
    std::function<void(const cache::SettlementCommit&)> hook) {
  std::lock_guard<std::mutex> lock(mutex_);
  before_commit_ = std::move(hook);
}

void FakeSettlementStore::PutEnrollment(std::string_view version,
                                        const engine::Enrollment& enrollment) {
  std::lock_guard<std::mutex> lock(mutex_);
  enrollments_[{std::string(version), enrollment.person_key}] = enrollment;
}

void FakeSettlementStore::BumpAccumulators(std::string_view person_key, int32_t year,
                                           const engine::Accumulators& delta) {
  std::lock_guard<std::mutex> lock(mutex_);
  engine::Accumulators& a = years_[cache::AccumulatorsKey(person_key, year)];
  a.AddTotals(delta, 1);
  ++a.version;
}

void FakeSettlementStore::EvictSettlement(std::string_view settlement_id) {
  std::lock_guard<std::mutex> lock(mutex_);
  settlements_.erase(std::string(settlement_id));
}

engine::Accumulators FakeSettlementStore::Accumulators(std::string_view person_key,
                                                       int32_t year) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = years_.find(cache::AccumulatorsKey(person_key, year));
  return it == years_.end() ? engine::Accumulators{} : it->second;
}

int64_t FakeSettlementStore::writes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return writes_;
}

size_t FakeSettlementStore::settlement_count() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return settlements_.size();
}

int FakeSettlementStore::calls(Op op) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return calls_[static_cast<size_t>(op)];
}

std::vector<cache::JournalEntry> FakeSettlementStore::Journal() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return journal_;
}

void FakeSettlementStore::AppendJournal(cache::JournalKind kind,
                                        const v1::LedgerRecord* settlement,
                                        const v1::LedgerReversal* reversal) {
  cache::JournalEntry e;
  e.stream_id = Cat(journal_.size() + 1, "-0");
  e.kind = kind;
  if (settlement != nullptr) {
    e.settlement = *settlement;
    e.bytes = settlement->SerializeAsString();
  } else {
    e.reversal = *reversal;
    e.bytes = reversal->SerializeAsString();
  }
  journal_.push_back(std::move(e));
}

// ---- Reads

absl::StatusOr<cache::CoverageRead> FakeSettlementStore::Read(std::string_view snapshot_version,
                                                               std::string_view person_key,
                                                               int32_t year,
                                                               const cache::CodeReads& code) const {
  if (absl::Status s = cache::CheckPersonKey(person_key); !s.ok()) return s;
  if (!code.presenter_key.empty()) {
    if (absl::Status s = cache::CheckPersonKey(code.presenter_key); !s.ok()) return s;
  }
  auto enrollment = [&](std::string_view key) -> std::optional<engine::Enrollment> {
    auto it = enrollments_.find({std::string(snapshot_version), std::string(key)});
    if (it == enrollments_.end()) return std::nullopt;
    engine::Enrollment e = it->second;
    e.person_key = std::string(key);  // as the Redis store sets it
    return e;
  };
  cache::CoverageRead read;
  std::lock_guard<std::mutex> lock(mutex_);
  read.enrollment = enrollment(person_key);
  if (auto it = years_.find(cache::AccumulatorsKey(person_key, year)); it != years_.end()) {
    read.accumulators = it->second;
  }
  if (!code.nonce.empty()) {
    if (auto it = nonces_.find(cache::NonceKey(person_key, code.nonce)); it != nonces_.end()) {
      read.nonce_used_by = it->second;
    }
  }
  if (!code.presenter_key.empty()) read.presenter_enrollment = enrollment(code.presenter_key);
  return read;
}

absl::StatusOr<cache::SettleRead> FakeSettlementStore::ReadForSettleNow(
    std::string_view snapshot_version, std::string_view person_key, int32_t year,
    std::string_view institution_id, std::string_view request_id, const cache::CodeReads& code) {
  if (std::optional<Fault> fault = Enter(Op::kReadForSettle)) return fault->status;
  absl::StatusOr<cache::CoverageRead> coverage = Read(snapshot_version, person_key, year, code);
  if (!coverage.ok()) return coverage.status();
  cache::SettleRead read;
  read.enrollment = std::move(coverage->enrollment);
  read.accumulators = coverage->accumulators;
  read.nonce_used_by = std::move(coverage->nonce_used_by);
  read.presenter_enrollment = std::move(coverage->presenter_enrollment);
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = idempotency_.find(
      cache::IdempotencyKey(person_key.substr(0, 2), institution_id, request_id));
  if (it != idempotency_.end()) {
    read.prior = cache::PriorResult{.content_hash = it->second.content_hash,
                                    .settlement_id = it->second.settlement_id,
                                    .reversed = it->second.reversed,
                                    .record = std::nullopt};
    if (auto s = settlements_.find(it->second.settlement_id); s != settlements_.end()) {
      read.prior->record = s->second.record;
    }
  }
  return read;
}

cache::Task<absl::StatusOr<cache::SettleRead>> FakeSettlementStore::ReadForSettleAsync(
    std::string_view snapshot_version, std::string_view person_key, int32_t year,
    std::string_view institution_id, std::string_view request_id, const cache::CodeReads& code) {
  co_return ReadForSettleNow(snapshot_version, person_key, year, institution_id, request_id,
                             code);
}

cache::Task<absl::StatusOr<cache::CoverageRead>> FakeSettlementStore::ReadForCoverageAsync(
    std::string_view snapshot_version, std::string_view person_key, int32_t year,
    const cache::CodeReads& code) {
  if (std::optional<Fault> fault = Enter(Op::kReadForCoverage)) co_return fault->status;
  co_return Read(snapshot_version, person_key, year, code);
}

absl::StatusOr<cache::StoredSettlement> FakeSettlementStore::GetNow(
    std::string_view settlement_id) {
  if (std::optional<Fault> fault = Enter(Op::kGetSettlement)) return fault->status;
  absl::StatusOr<std::string> tag = cache::TagOfSettlementId(settlement_id);
  if (!tag.ok()) return tag.status();
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = settlements_.find(std::string(settlement_id));
  if (it == settlements_.end()) return NotFound();
  cache::StoredSettlement out;
  out.record = it->second.record;
  if (it->second.reversal) {
    out.status = cache::SettlementStatus::kReversed;
    out.reversal = it->second.reversal;
  }
  return out;
}

cache::Task<absl::StatusOr<cache::StoredSettlement>> FakeSettlementStore::GetSettlementAsync(
    std::string_view settlement_id) {
  co_return GetNow(settlement_id);
}

// ---- The commit (cache/settlement_scripts.h kCommitSettlement)

absl::StatusOr<cache::CommitResult> FakeSettlementStore::CommitNow(
    const cache::SettlementCommit& c) {
  std::function<void(const cache::SettlementCommit&)> hook;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    hook = before_commit_;
  }
  if (hook) hook(c);
  const std::optional<Fault> fault = Enter(Op::kCommitSettlement);
  if (fault && !fault->applied) return fault->status;

  // What RedisSettlementStore checks before it runs the script.
  const v1::LedgerRecord& rec = c.record;
  if (absl::Status s = cache::CheckPersonKey(rec.person_key()); !s.ok()) return s;
  absl::StatusOr<std::string> tag = cache::TagOfSettlementId(rec.settlement_id());
  if (!tag.ok()) return tag.status();
  if (*tag != rec.person_key().substr(0, 2)) {
    return engine::InvalidField(cache::reason::kSettlementIdInvalid, "settlement_id",
                                "the settlement id's tag is not the person's");
  }
  if (rec.settlement_date().empty()) {
    return engine::InvalidField(engine::reason::kDateMissing, "settlement_date",
                                "a settlement needs its settlement date (Reconcile's day)");
  }
  contract::RecordEffect effect;
  if (absl::Status s = contract::EffectOf(rec, &effect); !s.ok()) return s;
  if (absl::Status s = engine::ValidateAccumulators(effect.delta); !s.ok()) return s;

  // The script: idempotency, nonce, version, then the writes.
  cache::CommitResult result;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const std::string idem_key =
        cache::IdempotencyKey(*tag, rec.institution_id(), rec.request_id());
    if (auto it = idempotency_.find(idem_key); it != idempotency_.end()) {
      if (it->second.content_hash != rec.content_hash()) {
        return engine::Refusal(
            absl::StatusCode::kAlreadyExists, cache::reason::kRequestIdReused, "request_id",
            Cat("request_id was used by this institution for other content (settlement ",
                it->second.settlement_id, ")"));
      }
      result.outcome = CommitOutcome::kReplayed;
      result.settlement_id = it->second.settlement_id;
      result.reversed = it->second.reversed;
      return result;
    }
    const std::string nonce_key =
        c.token_nonce.empty() ? "" : cache::NonceKey(rec.person_key(), c.token_nonce);
    if (!nonce_key.empty()) {
      if (auto it = nonces_.find(nonce_key); it != nonces_.end()) {
        result.outcome = CommitOutcome::kNonceUsed;
        result.settlement_id = it->second;
        return result;
      }
    }
    engine::Accumulators& year = years_[cache::AccumulatorsKey(rec.person_key(), rec.year())];
    if (year.version != c.expected_version) {
      result.outcome = CommitOutcome::kVersionMoved;
      result.accumulators_version = year.version;
      return result;
    }
    if (settlements_.contains(rec.settlement_id())) {
      return cache::ErrorReplyStatus("ERR settlement id already used");
    }
    year.AddTotals(effect.delta, 1);
    ++year.version;
    settlements_[rec.settlement_id()] = Stored{.record = rec, .reversal = std::nullopt};
    idempotency_[idem_key] = Idempotency{.content_hash = rec.content_hash(),
                                         .settlement_id = rec.settlement_id(),
                                         .reversed = false};
    if (!nonce_key.empty()) nonces_[nonce_key] = rec.settlement_id();
    AppendJournal(cache::JournalKind::kSettle, &rec, nullptr);
    DayIndex& day = days_[cache::ReconcileKey(*tag, rec.institution_id(), effect.settlement_date)];
    Count(effect.amounts, &day.settled);
    day.settlement_ids.push_back(rec.settlement_id());
    ++writes_;
    result.outcome = CommitOutcome::kCommitted;
    result.settlement_id = rec.settlement_id();
    result.accumulators_version = year.version;
  }
  if (fault) return fault->status;  // applied, and the reply lost
  return result;
}

cache::Task<absl::StatusOr<cache::CommitResult>> FakeSettlementStore::CommitSettlementAsync(
    const cache::SettlementCommit& commit) {
  co_return CommitNow(commit);
}

// ---- The reversal (cache/settlement_scripts.h kCommitReversal)

absl::StatusOr<cache::ReversalResult> FakeSettlementStore::ReverseNow(
    const v1::LedgerRecord& settled, const v1::LedgerReversal& reversal) {
  const std::optional<Fault> fault = Enter(Op::kCommitReversal);
  if (fault && !fault->applied) return fault->status;

  absl::StatusOr<std::string> tag = cache::TagOfSettlementId(settled.settlement_id());
  if (!tag.ok()) return tag.status();
  if (absl::Status s = cache::CheckPersonKey(settled.person_key()); !s.ok()) return s;
  if (reversal.settlement_id() != settled.settlement_id() ||
      reversal.person_key() != settled.person_key() || reversal.year() != settled.year() ||
      reversal.settlement_date() != settled.settlement_date() ||
      reversal.settle_request_id() != settled.request_id()) {
    return engine::InvalidField(cache::reason::kSettlementIdInvalid, "settlement_id",
                                "the reversal does not name the settlement it reverses");
  }
  if (reversal.institution_id() != settled.institution_id()) {
    return engine::Refusal(absl::StatusCode::kPermissionDenied,
                           cache::reason::kNotYourSettlement, "settlement_id",
                           "the settlement belongs to another institution");
  }
  contract::RecordEffect effect;
  if (absl::Status s = contract::EffectOf(settled, &effect); !s.ok()) return s;

  cache::ReversalResult result;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto stored = settlements_.find(settled.settlement_id());
    if (stored == settlements_.end()) return NotFound();
    engine::Accumulators& year =
        years_[cache::AccumulatorsKey(settled.person_key(), settled.year())];
    if (stored->second.reversal) {
      result.replayed = true;
      result.reversal = *stored->second.reversal;
      result.accumulators = year;
      return result;
    }
    const std::vector<std::string>& names = cache::AccumulatorFieldNames();
    for (size_t i = 0; i < names.size(); ++i) {
      if (cache::AccumulatorTotal(year, i) < cache::AccumulatorTotal(effect.delta, i)) {
        return engine::Refused(engine::reason::kAccumulatorsInvalid,
                               Cat("the reversal would make the year total ", names[i],
                                   " negative; nothing written"));
      }
    }
    year.AddTotals(effect.delta, -1);
    ++year.version;
    stored->second.reversal = reversal;
    if (auto it = idempotency_.find(
            cache::IdempotencyKey(*tag, settled.institution_id(), settled.request_id()));
        it != idempotency_.end()) {
      it->second.reversed = true;
    }
    AppendJournal(cache::JournalKind::kReverse, nullptr, &reversal);
    Count(effect.amounts,
          &days_[cache::ReconcileKey(*tag, settled.institution_id(), effect.settlement_date)]
               .reversed);
    ++writes_;
    result.reversal = reversal;
    result.accumulators = year;
  }
  if (fault) return fault->status;
  return result;
}

absl::StatusOr<cache::ReversalResult> FakeSettlementStore::CommitReversal(
    const v1::LedgerRecord& settled, const v1::LedgerReversal& reversal) {
  return ReverseNow(settled, reversal);
}

// ---- Reconcile (RedisSettlementStore::Reconcile's walk, over the maps)

absl::StatusOr<cache::ReconcileResult> FakeSettlementStore::Reconcile(
    std::string_view institution_id, engine::Date date, bool include_detail, int page_size,
    std::string_view page_token) {
  if (std::optional<Fault> fault = Enter(Op::kReconcile)) return fault->status;
  return ReconcileNow(institution_id, date, include_detail, page_size, page_token);
}

absl::StatusOr<cache::ReconcileResult> FakeSettlementStore::ReconcileNow(
    std::string_view institution_id, engine::Date date, bool include_detail, int page_size,
    std::string_view page_token) const {
  if (institution_id.empty()) {
    return engine::InvalidField(engine::reason::kInstitutionInvalid, "institution_id",
                                "reconciliation needs an institution id");
  }
  if (!date.valid()) {
    return engine::InvalidField(engine::reason::kDateMissing, "date",
                                "reconciliation needs an accounting day");
  }
  int start_tag = 0;
  int64_t start_offset = 0;
  if (include_detail) {
    if (page_size < 1 || page_size > cache::kMaxReconcilePageSize) {
      return engine::InvalidField(cache::reason::kPageSizeInvalid, "page_size",
                                  Cat("page_size must be 1..", cache::kMaxReconcilePageSize));
    }
    if (!page_token.empty() &&
        !cache::ParseReconcilePageToken(page_token, &start_tag, &start_offset)) {
      return engine::InvalidField(cache::reason::kPageTokenInvalid, "page_token",
                                  "page_token is not one that Reconcile returned");
    }
  }
  const size_t wanted = include_detail ? static_cast<size_t>(page_size) : 0;

  std::lock_guard<std::mutex> lock(mutex_);
  cache::ReconcileResult result;
  std::array<int64_t, kTagCount> lengths{};
  int end_tag = -1;
  int64_t end_offset = 0;
  for (int t = 0; t < kTagCount; ++t) {
    auto it = days_.find(cache::ReconcileKey(TagText(t), institution_id, date));
    const bool page_open = include_detail && t >= start_tag && result.detail.size() < wanted;
    const int64_t from = t == start_tag ? start_offset : 0;
    if (it != days_.end()) {
      const DayIndex& day = it->second;
      result.settled.count += day.settled.count;
      AddAmounts(day.settled.amounts, 1, &result.settled.amounts);
      result.reversed.count += day.reversed.count;
      AddAmounts(day.reversed.amounts, 1, &result.reversed.amounts);
      lengths[static_cast<size_t>(t)] = static_cast<int64_t>(day.settlement_ids.size());
    }
    if (!page_open) continue;
    end_tag = t;
    end_offset = from;
    if (it == days_.end()) continue;
    const std::vector<std::string>& ids = it->second.settlement_ids;
    for (int64_t i = from; i < static_cast<int64_t>(ids.size()) && result.detail.size() < wanted;
         ++i) {
      const std::string& id = ids[static_cast<size_t>(i)];
      auto stored = settlements_.find(id);
      if (stored == settlements_.end()) {
        return engine::Refusal(absl::StatusCode::kNotFound, cache::reason::kSettlementNotFound,
                               "date",
                               Cat("settlement ", id,
                                   " of the day has left Redis; reconcile the day from the "
                                   "ledger"));
      }
      const v1::LedgerRecord& record = stored->second.record;
      cache::ReconcileDetail d;
      d.settlement_id = id;
      d.request_id = record.request_id();
      d.visit_type = static_cast<int32_t>(record.request().visit().type());
      contract::AmountsFromProto(record.response().amounts(), &d.amounts);
      d.settled_at_unix = record.settled_at_unix_ms() / 1000;
      if (stored->second.reversal) {
        d.status = cache::SettlementStatus::kReversed;
        d.reversed_at_unix = stored->second.reversal->reversed_at_unix_ms() / 1000;
      }
      result.detail.push_back(std::move(d));
      end_offset = i + 1;
    }
  }
  AddAmounts(result.settled.amounts, 1, &result.net.amounts);
  AddAmounts(result.reversed.amounts, -1, &result.net.amounts);
  result.net.count = result.settled.count - result.reversed.count;

  // A full page continues where it ended, or at the next tag with entries.
  if (include_detail && result.detail.size() == wanted) {
    result.next_page_token = cache::NextReconcilePageToken(lengths, end_tag, end_offset);
  }
  return result;
}

}  // namespace medsettle::testing
