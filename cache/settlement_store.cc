#include "cache/settlement_store.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <iterator>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <openssl/evp.h>

#include "cache/enrollment_codec.h"
#include "cache/record_codec.h"
#include "cache/redis_settlement_store.h"
#include "cache/settlement_scripts.h"
#include "cache/snapshot_store.h"
#include "engine/engine.h"
#include "engine/status.h"
#include "engine/text.h"
#include "proto/contract/ledger_record.h"

namespace medsettle::cache {
namespace {

using engine::Cat;

constexpr int kCommitScript = 0;
constexpr int kReversalScript = 1;
constexpr std::string_view kScripts[2] = {scripts::kCommitSettlement, scripts::kCommitReversal};

// Ledger order of engine::Ledger.
constexpr std::string_view kLedgerNames[engine::kLedgerCount] = {"go", "co", "so",
                                                                  "ip", "pn", "dl"};
constexpr std::string_view kLedgerParts[4] = {"ded", "in", "fund", "visits"};
constexpr size_t kLedgerFields = engine::kLedgerCount * 4;
constexpr size_t kAccumulatorFields = kLedgerFields + 2 + engine::kResponsibilityCount * 2;

constexpr std::string_view kAmountNames[] = {
    "total", "out_of_scope", "over_limit", "pre_self_pay", "in_scope",
    "deductible", "base_fund", "critical_illness", "supplementary", "patient"};
constexpr size_t kAmountFields = std::size(kAmountNames);

int64_t GetTotal(const engine::Accumulators& a, size_t i) {
  if (i < kLedgerFields) {
    const engine::LedgerTotals& l = a.ledgers[i / 4];
    switch (i % 4) {
      case 0: return l.deductible_paid_cents;
      case 1: return l.in_scope_cents;
      case 2: return l.fund_paid_cents;
      default: return l.visits;
    }
  }
  if (i == kLedgerFields) return a.critical_illness_burden_cents;
  if (i == kLedgerFields + 1) return a.critical_illness_paid_cents;
  const engine::SupplementaryTotals& s = a.supplementary[(i - kLedgerFields - 2) / 2];
  return (i - kLedgerFields) % 2 == 0 ? s.base_cents : s.paid_cents;
}

void SetTotal(engine::Accumulators& a, size_t i, int64_t v) {
  if (i < kLedgerFields) {
    engine::LedgerTotals& l = a.ledgers[i / 4];
    switch (i % 4) {
      case 0: l.deductible_paid_cents = v; return;
      case 1: l.in_scope_cents = v; return;
      case 2: l.fund_paid_cents = v; return;
      default: l.visits = static_cast<int32_t>(v); return;
    }
  }
  if (i == kLedgerFields) {
    a.critical_illness_burden_cents = v;
  } else if (i == kLedgerFields + 1) {
    a.critical_illness_paid_cents = v;
  } else {
    engine::SupplementaryTotals& s = a.supplementary[(i - kLedgerFields - 2) / 2];
    ((i - kLedgerFields) % 2 == 0 ? s.base_cents : s.paid_cents) = v;
  }
}

engine::Cents* AmountField(engine::Amounts& a, size_t i) {
  engine::Cents* fields[kAmountFields] = {
      &a.total_cents, &a.out_of_scope_cents, &a.over_limit_cents, &a.pre_self_pay_cents,
      &a.in_scope_cents, &a.deductible_cents, &a.base_fund_cents,
      &a.critical_illness_cents, &a.supplementary_cents, &a.patient_cents};
  return fields[i];
}

absl::Status Corrupt(std::string_view what) {
  return engine::Refusal(absl::StatusCode::kInternal, reason::kSettlementRecordCorrupt, "",
                         Cat("stored settlement data is unreadable: ", what));
}

absl::Status Unexpected(std::string_view what) {
  return engine::Refusal(absl::StatusCode::kInternal, reason::kRedisError, "",
                         Cat("unexpected Redis reply to ", what));
}

bool ParseInt64(std::string_view s, int64_t* out) {
  const char* end = s.data() + s.size();
  auto [p, ec] = std::from_chars(s.data(), end, *out);
  return ec == std::errc() && p == end && !s.empty();
}

bool IsTag(std::string_view tag) {
  return tag.size() == 2 && engine::IsLowerHex(tag);
}

// Accumulator totals from field/value pairs of `elements` starting at
// `from` ("version" and the names of AccumulatorFieldNames; others ignored).
absl::StatusOr<engine::Accumulators> ParseAccumulators(const std::vector<RedisReply>& elements,
                                                        size_t from) {
  const std::vector<std::string>& names = AccumulatorFieldNames();
  engine::Accumulators a;
  for (size_t k = from; k + 1 < elements.size(); k += 2) {
    const std::string& name = elements[k].str;
    int64_t v = 0;
    if (!ParseInt64(elements[k + 1].str, &v)) return Corrupt(Cat("accumulator field ", name));
    if (name == "version") {
      a.version = v;
      continue;
    }
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i] == name) SetTotal(a, i, v);
    }
  }
  return a;
}

// A stored settlement record (cache/record_codec.h): unpacked into
// `serialized` (when given) and parsed into `out`.
absl::Status DecodeStored(std::string_view stored, const std::string& where,
                          v1::LedgerRecord* out, std::string* serialized = nullptr) {
  absl::StatusOr<std::string> bytes = UnpackRecord(stored, where);
  if (!bytes.ok()) return bytes.status();
  if (absl::Status s = contract::ParseLedgerRecord(*bytes, where, out); !s.ok()) return s;
  if (serialized != nullptr) *serialized = *std::move(bytes);
  return absl::OkStatus();
}
absl::Status DecodeStored(std::string_view stored, const std::string& where,
                          v1::LedgerReversal* out, std::string* serialized = nullptr) {
  absl::StatusOr<std::string> bytes = UnpackRecord(stored, where);
  if (!bytes.ok()) return bytes.status();
  if (absl::Status s = contract::ParseLedgerReversal(*bytes, where, out); !s.ok()) return s;
  if (serialized != nullptr) *serialized = *std::move(bytes);
  return absl::OkStatus();
}

// Name/value pairs of the non-zero totals of `a` (accumulator fields) and
// of the non-zero `amounts`, as the scripts take them.
void AppendNonZeroTotals(const engine::Accumulators& a, std::vector<std::string>* out) {
  const std::vector<std::string>& names = AccumulatorFieldNames();
  for (size_t i = 0; i < names.size(); ++i) {
    const int64_t v = GetTotal(a, i);
    if (v == 0) continue;
    out->push_back(names[i]);
    out->push_back(std::to_string(v));
  }
}
void AppendNonZeroAmounts(engine::Amounts amounts, std::vector<std::string>* out) {
  for (size_t i = 0; i < kAmountFields; ++i) {
    const int64_t v = *AmountField(amounts, i);
    if (v == 0) continue;
    out->push_back(std::string(kAmountNames[i]));
    out->push_back(std::to_string(v));
  }
}

constexpr int kTagCount = 256;

std::string TagText(int tag) {
  static constexpr char kHex[] = "0123456789abcdef";
  return std::string{kHex[(tag >> 4) & 15], kHex[tag & 15]};
}

int TagNumber(std::string_view tag) {  // REQUIRES: IsTag(tag)
  auto digit = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  return digit(tag[0]) * 16 + digit(tag[1]);
}

// The keys and commands that read a person's enrollment and year
// accumulators: the first two commands of ReadForSettle's pipeline and all
// of ReadForCoverage's. The argv views point into the strings.
struct CoverageKeys {
  std::string bucket;
  std::string field;
  std::string acc;

  CoverageKeys(std::string_view snapshot_version, std::string_view person_key, int32_t year)
      : bucket(SnapshotPersonBucketKey(snapshot_version, person_key)),
        field(SnapshotPersonField(person_key)),
        acc(AccumulatorsKey(person_key, year)) {}
  CoverageKeys(const CoverageKeys&) = delete;
  CoverageKeys& operator=(const CoverageKeys&) = delete;

  std::vector<RedisArgv> Commands() const { return {{"HGET", bucket, field}, {"HGETALL", acc}}; }
};

// The reply of a nonce key's GET: the settlement that used the code, or "".
std::string NonceUser(const RedisReply& reply) { return reply.is_nil() ? "" : reply.str; }

// An enrollment HGET's reply: nullopt when the person is not in the snapshot.
absl::StatusOr<std::optional<engine::Enrollment>> DecodeEnrollmentReply(
    std::string_view person_key, const RedisReply& reply) {
  if (reply.is_nil()) return std::optional<engine::Enrollment>();
  absl::StatusOr<engine::Enrollment> e = DecodeEnrollment(reply.str);
  if (!e.ok()) return e.status();
  e->person_key = std::string(person_key);
  return std::optional<engine::Enrollment>(*std::move(e));
}

// The commands a CodeReads adds to a read pipeline, and their replies.
// A pipeline stays in one hash tag (in a cluster, one slot of one
// primary): the code's nonce lives under the person's tag and joins the
// person's read; a family member's enrollment joins it only when the
// presenter shares the tag, and is otherwise read by ReadPresenterApart in
// a pipeline of its own (one more round trip, for those codes only).
class CodeReadCommands {
 public:
  CodeReadCommands(std::string_view snapshot_version, std::string_view person_key,
                   const CodeReads& code)
      : code_(code) {
    if (!code.nonce.empty()) nonce_key_ = NonceKey(person_key, code.nonce);
    if (!code.presenter_key.empty()) {
      presenter_bucket_ = SnapshotPersonBucketKey(snapshot_version, code.presenter_key);
      presenter_field_ = SnapshotPersonField(code.presenter_key);
      presenter_tag_ = code.presenter_key.substr(0, 2);
      presenter_apart_ = presenter_tag_ != person_key.substr(0, 2);
    }
  }

  // Appends the commands of the person's tag; remembers where their
  // replies will be.
  void AppendTo(std::vector<RedisArgv>* commands) {
    if (!nonce_key_.empty()) {
      nonce_reply_ = commands->size();
      commands->push_back({"GET", nonce_key_});
    }
    if (!presenter_bucket_.empty() && !presenter_apart_) {
      presenter_reply_ = commands->size();
      commands->push_back({"HGET", presenter_bucket_, presenter_field_});
    }
  }

  absl::Status Decode(const std::vector<RedisResult>& replies, std::string* nonce_used_by,
                      std::optional<engine::Enrollment>* presenter_enrollment) const {
    if (!nonce_key_.empty()) *nonce_used_by = NonceUser(*replies[nonce_reply_]);
    if (!presenter_bucket_.empty() && !presenter_apart_) {
      return DecodePresenter(*replies[presenter_reply_], presenter_enrollment);
    }
    return absl::OkStatus();
  }

  // The presenter's enrollment when it lives under another tag.
  Task<absl::Status> ReadPresenterApart(RedisClient& redis,
                                        std::optional<engine::Enrollment>* presenter_enrollment) {
    if (presenter_bucket_.empty() || !presenter_apart_) co_return absl::OkStatus();
    const std::vector<RedisArgv> read = {{"HGET", presenter_bucket_, presenter_field_}};
    absl::StatusOr<std::vector<RedisResult>> replies =
        co_await AwaitPipeline(redis, presenter_tag_, read);
    if (!replies.ok()) co_return replies.status();
    if (replies->size() != 1) co_return Unexpected("the presenter read");
    if (!replies->front().ok()) co_return replies->front().status();
    co_return DecodePresenter(*replies->front(), presenter_enrollment);
  }

 private:
  absl::Status DecodePresenter(const RedisReply& reply,
                               std::optional<engine::Enrollment>* presenter_enrollment) const {
    absl::StatusOr<std::optional<engine::Enrollment>> e =
        DecodeEnrollmentReply(code_.presenter_key, reply);
    if (!e.ok()) return e.status();
    *presenter_enrollment = *std::move(e);
    return absl::OkStatus();
  }

  const CodeReads& code_;
  std::string nonce_key_;
  std::string presenter_bucket_;
  std::string presenter_field_;
  std::string presenter_tag_;
  bool presenter_apart_ = false;
  size_t nonce_reply_ = 0;
  size_t presenter_reply_ = 0;
};

// Decodes the replies of CoverageKeys::Commands (the first two of
// `replies`, each already checked ok).
absl::StatusOr<CoverageRead> DecodeCoverage(std::string_view person_key,
                                            const std::vector<RedisResult>& replies) {
  CoverageRead read;
  absl::StatusOr<std::optional<engine::Enrollment>> enrollment =
      DecodeEnrollmentReply(person_key, *replies[0]);
  if (!enrollment.ok()) return enrollment.status();
  read.enrollment = *std::move(enrollment);
  absl::StatusOr<engine::Accumulators> accumulators = ParseAccumulators(replies[1]->elements, 0);
  if (!accumulators.ok()) return accumulators.status();
  read.accumulators = *accumulators;
  return read;
}

// Page tokens of Reconcile: "p1-<tag>-<offset>", the position of the next
// entry (a tag and an index into its id list).
constexpr std::string_view kPageTokenPrefix = "p1-";
// Far above any list's length (Redis lists hold < 2^32 entries); keeps
// offset + page size from overflowing.
constexpr int64_t kMaxPageOffset = int64_t{1} << 40;

// Adds the "<prefix>count" and "<prefix>a.<amount>" fields of a recon
// hash's HGETALL to `totals`; false for a value that is not an integer.
bool AddReconFields(const std::vector<RedisReply>& elements, std::string_view prefix,
                    ReconcileTotals& totals) {
  for (size_t k = 0; k + 1 < elements.size(); k += 2) {
    std::string_view name = elements[k].str;
    if (name.substr(0, prefix.size()) != prefix) continue;
    name.remove_prefix(prefix.size());
    int64_t v = 0;
    if (name == "count") {
      if (!ParseInt64(elements[k + 1].str, &v)) return false;
      totals.count += v;
      continue;
    }
    if (name.substr(0, 2) != "a.") continue;
    if (!ParseInt64(elements[k + 1].str, &v)) return false;
    for (size_t i = 0; i < kAmountFields; ++i) {
      if (kAmountNames[i] == name.substr(2)) *AmountField(totals.amounts, i) += v;
    }
  }
  return true;
}

// The fields of a settlement record that a Reconcile detail entry reads
// (HMGET), the amounts last.
int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::string ReconcilePageToken(int tag, int64_t offset) {
  return Cat(kPageTokenPrefix, TagText(tag), "-", offset);
}

bool ParseReconcilePageToken(std::string_view token, int* tag, int64_t* offset) {
  if (token.size() < kPageTokenPrefix.size() + 4 ||
      token.substr(0, kPageTokenPrefix.size()) != kPageTokenPrefix) {
    return false;
  }
  token.remove_prefix(kPageTokenPrefix.size());
  if (!IsTag(token.substr(0, 2)) || token[2] != '-') return false;
  std::string_view digits = token.substr(3);
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      !ParseInt64(digits, offset) || *offset > kMaxPageOffset) {
    return false;
  }
  *tag = TagNumber(token.substr(0, 2));
  return true;
}

std::string NextReconcilePageToken(const std::array<int64_t, 256>& lengths, int end_tag,
                                   int64_t end_offset) {
  if (end_tag < 0 || end_tag >= kTagCount) return "";
  if (end_offset < lengths[static_cast<size_t>(end_tag)]) {
    return ReconcilePageToken(end_tag, end_offset);
  }
  for (int t = end_tag + 1; t < kTagCount; ++t) {
    if (lengths[static_cast<size_t>(t)] > 0) return ReconcilePageToken(t, 0);
  }
  return "";
}

const std::vector<std::string>& AccumulatorFieldNames() {
  static const std::vector<std::string>* names = [] {
    auto* out = new std::vector<std::string>;
    for (std::string_view ledger : kLedgerNames) {
      for (std::string_view part : kLedgerParts) out->push_back(Cat(ledger, ".", part));
    }
    out->push_back("ci.burden");
    out->push_back("ci.paid");
    for (int r = 1; r <= engine::kResponsibilityCount; ++r) {
      out->push_back(Cat("sup", r, ".base"));
      out->push_back(Cat("sup", r, ".paid"));
    }
    return out;
  }();
  return *names;
}

int64_t AccumulatorTotal(const engine::Accumulators& a, size_t i) { return GetTotal(a, i); }

const std::vector<std::string>& AmountFieldNames() {
  static const std::vector<std::string>* names =
      new std::vector<std::string>(std::begin(kAmountNames), std::end(kAmountNames));
  return *names;
}

int64_t AmountValue(const engine::Amounts& amounts, size_t i) {
  engine::Amounts copy = amounts;  // AmountField points into a mutable one
  return *AmountField(copy, i);
}

std::string AccumulatorsKey(std::string_view person_key, int32_t year) {
  return Cat("acc:{", person_key.substr(0, 2), "}:", person_key, ":", year);
}
std::string IdempotencyKey(std::string_view tag, std::string_view institution_id,
                           std::string_view request_id) {
  return Cat("idem:{", tag, "}:", institution_id, ":", request_id);
}
std::string SettlementKey(std::string_view settlement_id) {
  return Cat("stl:{", settlement_id.substr(0, 2), "}:", settlement_id);
}
std::string ReversalKey(std::string_view settlement_id) {
  return Cat("rev:{", settlement_id.substr(0, 2), "}:", settlement_id);
}
std::string JournalKey(std::string_view tag) { return Cat("journal:{", tag, "}"); }
std::string NonceKey(std::string_view person_key, std::string_view nonce) {
  return Cat("nonce:{", person_key.substr(0, 2), "}:", nonce);
}
std::string ReconcileKey(std::string_view tag, std::string_view institution_id,
                         engine::Date date) {
  return Cat("recon:{", tag, "}:", institution_id, ":", date.ToString());
}
std::string ReconcileIdsKey(std::string_view tag, std::string_view institution_id,
                            engine::Date date) {
  return Cat(ReconcileKey(tag, institution_id, date), ":ids");
}

std::string NewSettlementId(std::string_view person_key, int64_t now_ms) {
  static constexpr char kHex[] = "0123456789abcdef";
  thread_local std::mt19937_64 random{std::random_device{}() ^
                                      (static_cast<uint64_t>(NowMs()) << 20)};
  std::string id = Cat(person_key.substr(0, 2), "-");
  for (int shift = 44; shift >= 0; shift -= 4) {
    id.push_back(kHex[(static_cast<uint64_t>(now_ms) >> shift) & 15]);
  }
  id.push_back('-');
  uint64_t r = random();
  for (int shift = 60; shift >= 0; shift -= 4) id.push_back(kHex[(r >> shift) & 15]);
  return id;
}

absl::StatusOr<std::string> TagOfSettlementId(std::string_view settlement_id) {
  if (settlement_id.size() < 4 || !IsTag(settlement_id.substr(0, 2)) || settlement_id[2] != '-') {
    return engine::InvalidField(reason::kSettlementIdInvalid, "settlement_id",
                                "a settlement id begins with its 2-hex tag and '-'");
  }
  return std::string(settlement_id.substr(0, 2));
}

std::string_view Name(CommitOutcome outcome) {
  switch (outcome) {
    case CommitOutcome::kReplayed: return "REPLAYED";
    case CommitOutcome::kNonceUsed: return "NONCE_USED";
    case CommitOutcome::kVersionMoved: return "VERSION_MOVED";
    case CommitOutcome::kCommitted: return "COMMITTED";
  }
  return "UNKNOWN";
}

std::string_view Name(SettlementStatus status) {
  return status == SettlementStatus::kReversed ? "REVERSED" : "SETTLED";
}

std::string_view Name(JournalKind kind) {
  return kind == JournalKind::kReverse ? "REVERSE" : "SETTLE";
}

namespace {
// The name EVALSHA knows `script` by.
std::string ScriptSha1(std::string_view script) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(script.data(), script.size(), digest, &length, EVP_sha1(), nullptr);
  return engine::LowerHex(std::string_view(reinterpret_cast<const char*>(digest), length));
}
}  // namespace

RedisSettlementStore::RedisSettlementStore(RedisClient& redis, SettlementStoreOptions options)
    : redis_(redis),
      options_(options),
      sha_{ScriptSha1(kScripts[0]), ScriptSha1(kScripts[1])} {}

Task<RedisResult> RedisSettlementStore::RunScriptAsync(int index, std::string_view hash_tag,
                                                       const RedisArgv& keys_and_args,
                                                       size_t key_count, int64_t* acked) {
  const std::string count = std::to_string(key_count);
  const std::string wait_replicas = std::to_string(options_.replica_acks);
  const std::string wait_ms = std::to_string(options_.replica_ack_timeout_ms);
  // EVALSHA of the hash computed here; when Redis does not hold the script
  // (first use, a restart, SCRIPT FLUSH, a failover) it answers NOSCRIPT
  // without running anything, and EVAL of the text runs it and loads it.
  std::vector<RedisArgv> command = {{"EVALSHA", sha_[index], count}};
  command[0].insert(command[0].end(), keys_and_args.begin(), keys_and_args.end());
  // Same connection, right after: WAIT counts the replicas that have
  // everything this connection wrote, the script's writes included.
  if (options_.replica_acks > 0) command.push_back({"WAIT", wait_replicas, wait_ms});
  absl::StatusOr<std::vector<RedisResult>> replies =
      co_await AwaitPipeline(redis_, hash_tag, command);
  if (!replies.ok()) co_return replies.status();
  if (replies->size() != command.size()) co_return Unexpected("EVALSHA");
  if (!(*replies)[0].ok() && engine::ReasonOf((*replies)[0].status()) == reason::kRedisNoscript) {
    command[0][0] = "EVAL";
    command[0][1] = kScripts[index];
    replies = co_await AwaitPipeline(redis_, hash_tag, command);
    if (!replies.ok()) co_return replies.status();
    if (replies->size() != command.size()) co_return Unexpected("EVAL");
  }
  if (acked != nullptr) {
    *acked = 0;
    if (options_.replica_acks > 0 && (*replies)[1].ok()) *acked = (*replies)[1]->integer;
  }
  co_return std::move((*replies)[0]);
}

RedisResult RedisSettlementStore::RunScript(int index, std::string_view hash_tag,
                                            const RedisArgv& keys_and_args, size_t key_count,
                                            int64_t* acked) {
  return RunSync(RunScriptAsync(index, hash_tag, keys_and_args, key_count, acked));
}

Task<absl::Status> RedisSettlementStore::ConfirmReplayReplicated(std::string_view hash_tag,
                                                                  const std::string& idem,
                                                                  std::string_view settlement_id) {
  if (options_.replica_acks <= 0) co_return absl::OkStatus();
  const std::string wait_replicas = std::to_string(options_.replica_acks);
  const std::string wait_ms = std::to_string(options_.replica_ack_timeout_ms);
  const std::vector<RedisArgv> commands = {{"EVAL", scripts::kTouchIdempotency, "1", idem},
                                           {"WAIT", wait_replicas, wait_ms}};
  absl::StatusOr<std::vector<RedisResult>> replies =
      co_await AwaitPipeline(redis_, hash_tag, commands);
  if (!replies.ok()) co_return replies.status();
  if (replies->size() != 2) co_return Unexpected("the replay's WAIT");
  if (!(*replies)[0].ok()) co_return (*replies)[0].status();
  const int64_t acked = (*replies)[1].ok() ? (*replies)[1]->integer : 0;
  co_return CheckReplicated(acked, Cat("settlement ", settlement_id));
}

absl::Status RedisSettlementStore::CheckReplicated(int64_t acked, std::string_view what) const {
  if (options_.replica_acks <= 0 || acked >= options_.replica_acks) return absl::OkStatus();
  return engine::Refusal(
      absl::StatusCode::kUnavailable, reason::kReplicaAckTimeout, "",
      Cat(what, " was written on the Redis primary, but ", acked, " of the ",
          options_.replica_acks, " replicas asked for confirmed it within ",
          options_.replica_ack_timeout_ms,
          " ms: its outcome is unknown; re-send the same request (it replays if the "
          "write survived, and is made again if not)"));
}

Task<absl::StatusOr<SettleRead>> RedisSettlementStore::ReadForSettleAsync(
    std::string_view snapshot_version, std::string_view person_key, int32_t year,
    std::string_view institution_id, std::string_view request_id, const CodeReads& code) {
  if (absl::Status s = CheckPersonKey(person_key); !s.ok()) co_return s;
  if (!code.presenter_key.empty()) {
    if (absl::Status s = CheckPersonKey(code.presenter_key); !s.ok()) co_return s;
  }
  const CoverageKeys keys(snapshot_version, person_key, year);
  const std::string idem = IdempotencyKey(person_key.substr(0, 2), institution_id, request_id);
  std::vector<RedisArgv> commands = keys.Commands();
  commands.push_back({"HMGET", idem, "hash", "settlement_id", "status"});
  CodeReadCommands code_commands(snapshot_version, person_key, code);
  code_commands.AppendTo(&commands);
  absl::StatusOr<std::vector<RedisResult>> replies =
      co_await AwaitPipeline(redis_, person_key.substr(0, 2), commands);
  if (!replies.ok()) co_return replies.status();
  if (replies->size() != commands.size()) co_return Unexpected("the settle read");
  for (const RedisResult& r : *replies) {
    if (!r.ok()) co_return r.status();
  }
  absl::StatusOr<CoverageRead> coverage = DecodeCoverage(person_key, *replies);
  if (!coverage.ok()) co_return coverage.status();
  SettleRead read;
  read.enrollment = std::move(coverage->enrollment);
  read.accumulators = coverage->accumulators;
  const RedisReply& prior = *(*replies)[2];
  if (prior.elements.size() != 3) co_return Unexpected("HMGET of the idempotency record");
  if (!prior.elements[0].is_nil()) {
    read.prior = PriorResult{.content_hash = prior.elements[0].str,
                             .settlement_id = prior.elements[1].str,
                             .reversed = prior.elements[2].str == "REVERSED",
                             .record = std::nullopt};
    // A replay is answered only once the settlement it reports is as
    // durable as a commit (redis.replica_acks).
    absl::Status replicated =
        co_await ConfirmReplayReplicated(person_key.substr(0, 2), idem, read.prior->settlement_id);
    if (!replicated.ok()) co_return replicated;
    // A replay (rare) costs a second round trip for the record.
    absl::StatusOr<StoredSettlement> stored =
        co_await GetSettlementAsync(read.prior->settlement_id);
    if (stored.ok()) {
      read.prior->record = std::move(stored->record);
    } else if (stored.status().code() != absl::StatusCode::kNotFound) {
      co_return stored.status();
    }
  }
  if (absl::Status s =
          code_commands.Decode(*replies, &read.nonce_used_by, &read.presenter_enrollment);
      !s.ok()) {
    co_return s;
  }
  absl::Status presenter =
      co_await code_commands.ReadPresenterApart(redis_, &read.presenter_enrollment);
  if (!presenter.ok()) co_return presenter;
  co_return read;
}

absl::StatusOr<SettleRead> SettlementStore::ReadForSettle(std::string_view snapshot_version,
                                                          std::string_view person_key,
                                                          int32_t year,
                                                          std::string_view institution_id,
                                                          std::string_view request_id,
                                                          const CodeReads& code) {
  return RunSync(
      ReadForSettleAsync(snapshot_version, person_key, year, institution_id, request_id, code));
}

Task<absl::StatusOr<CoverageRead>> RedisSettlementStore::ReadForCoverageAsync(
    std::string_view snapshot_version, std::string_view person_key, int32_t year,
    const CodeReads& code) {
  if (absl::Status s = CheckPersonKey(person_key); !s.ok()) co_return s;
  if (!code.presenter_key.empty()) {
    if (absl::Status s = CheckPersonKey(code.presenter_key); !s.ok()) co_return s;
  }
  const CoverageKeys keys(snapshot_version, person_key, year);
  std::vector<RedisArgv> commands = keys.Commands();
  CodeReadCommands code_commands(snapshot_version, person_key, code);
  code_commands.AppendTo(&commands);
  absl::StatusOr<std::vector<RedisResult>> replies =
      co_await AwaitPipeline(redis_, person_key.substr(0, 2), commands);
  if (!replies.ok()) co_return replies.status();
  if (replies->size() != commands.size()) co_return Unexpected("the coverage read");
  for (const RedisResult& r : *replies) {
    if (!r.ok()) co_return r.status();
  }
  absl::StatusOr<CoverageRead> read = DecodeCoverage(person_key, *replies);
  if (!read.ok()) co_return read.status();
  if (absl::Status s =
          code_commands.Decode(*replies, &read->nonce_used_by, &read->presenter_enrollment);
      !s.ok()) {
    co_return s;
  }
  absl::Status presenter =
      co_await code_commands.ReadPresenterApart(redis_, &read->presenter_enrollment);
  if (!presenter.ok()) co_return presenter;
  co_return read;
}

absl::StatusOr<CoverageRead> SettlementStore::ReadForCoverage(std::string_view snapshot_version,
                                                              std::string_view person_key,
                                                              int32_t year,
                                                              const CodeReads& code) {
  return RunSync(ReadForCoverageAsync(snapshot_version, person_key, year, code));
}

Task<absl::StatusOr<CommitResult>> RedisSettlementStore::CommitSettlementAsync(
    const SettlementCommit& c) {
  const v1::LedgerRecord& rec = c.record;
  if (absl::Status s = CheckPersonKey(rec.person_key()); !s.ok()) co_return s;
  absl::StatusOr<std::string> tag = TagOfSettlementId(rec.settlement_id());
  if (!tag.ok()) co_return tag.status();
  if (*tag != rec.person_key().substr(0, 2)) {
    co_return engine::InvalidField(reason::kSettlementIdInvalid, "settlement_id",
                                   "the settlement id's tag is not the person's");
  }
  if (rec.settlement_date().empty()) {
    co_return engine::InvalidField(engine::reason::kDateMissing, "settlement_date",
                                   "a settlement needs its settlement date (Reconcile's day)");
  }
  contract::RecordEffect effect;
  if (absl::Status s = contract::EffectOf(rec, &effect); !s.ok()) co_return s;
  if (absl::Status s = engine::ValidateAccumulators(effect.delta); !s.ok()) co_return s;

  const std::string acc = AccumulatorsKey(rec.person_key(), rec.year());
  const std::string idem = IdempotencyKey(*tag, rec.institution_id(), rec.request_id());
  const std::string stl = SettlementKey(rec.settlement_id());
  const std::string journal = JournalKey(*tag);
  const std::string recon = ReconcileKey(*tag, rec.institution_id(), effect.settlement_date);
  const std::string recon_ids = ReconcileIdsKey(*tag, rec.institution_id(), effect.settlement_date);
  const std::string nonce = c.token_nonce.empty() ? "" : NonceKey(rec.person_key(), c.token_nonce);
  const int64_t now_unix = rec.settled_at_unix_ms() / 1000;
  const std::string bytes = PackRecord(rec.SerializeAsString());
  std::vector<std::string> values = {
      std::to_string(c.expected_version), rec.content_hash(), rec.settlement_id(), "",
      std::to_string(std::max<int64_t>(options_.idempotency_ttl_seconds, 0)),
      std::to_string(std::max<int64_t>(c.nonce_expires_unix - now_unix, 1)), ""};
  AppendNonZeroTotals(effect.delta, &values);
  values[6] = std::to_string((values.size() - 7) / 2);
  AppendNonZeroAmounts(effect.amounts, &values);

  RedisArgv argv = {acc, idem, stl, journal, recon, recon_ids};
  if (!nonce.empty()) argv.push_back(nonce);
  const size_t key_count = argv.size();
  for (size_t i = 0; i < values.size(); ++i) {
    argv.push_back(i == 3 ? std::string_view(bytes) : std::string_view(values[i]));
  }

  int64_t acked = 0;
  RedisResult r = co_await RunScriptAsync(kCommitScript, *tag, argv, key_count, &acked);
  if (!r.ok()) co_return r.status();
  const std::vector<RedisReply>& e = r->elements;
  if (e.empty()) co_return Unexpected("the commit script");
  const std::string& outcome = e[0].str;
  CommitResult result;
  if ((outcome == "REPLAYED" || outcome == "COMMITTED") && e.size() == 3) {
    // A replay must be as durable as the commit it reports.
    if (absl::Status s = CheckReplicated(acked, Cat("settlement ", e[1].str)); !s.ok()) {
      co_return s;
    }
  }
  if (outcome == "REPLAYED" && e.size() == 3) {
    result.outcome = CommitOutcome::kReplayed;
    result.settlement_id = e[1].str;
    result.reversed = e[2].str == "REVERSED";
    co_return result;
  }
  if (outcome == "CONFLICT" && e.size() == 2) {
    co_return engine::Refusal(
        absl::StatusCode::kAlreadyExists, reason::kRequestIdReused, "request_id",
        Cat("request_id was used by this institution for other content (settlement ", e[1].str,
            ")"));
  }
  if (outcome == "NONCE_USED" && e.size() == 2) {
    result.outcome = CommitOutcome::kNonceUsed;
    result.settlement_id = e[1].str;
    co_return result;
  }
  if (outcome == "VERSION_MOVED" && e.size() == 2) {
    result.outcome = CommitOutcome::kVersionMoved;
    if (!ParseInt64(e[1].str, &result.accumulators_version)) co_return Corrupt("accumulator version");
    co_return result;
  }
  if (outcome == "COMMITTED" && e.size() == 3) {
    result.outcome = CommitOutcome::kCommitted;
    result.settlement_id = rec.settlement_id();
    if (!ParseInt64(e[2].str, &result.accumulators_version)) co_return Unexpected("the commit script");
    co_return result;
  }
  co_return Unexpected("the commit script");
}

absl::StatusOr<CommitResult> SettlementStore::CommitSettlement(const SettlementCommit& c) {
  return RunSync(CommitSettlementAsync(c));
}

Task<absl::StatusOr<StoredSettlement>> RedisSettlementStore::GetSettlementAsync(
    std::string_view settlement_id) {
  absl::StatusOr<std::string> tag = TagOfSettlementId(settlement_id);
  if (!tag.ok()) co_return tag.status();
  const std::string key = SettlementKey(settlement_id);
  const std::string rev = ReversalKey(settlement_id);
  const std::vector<RedisArgv> mget = {{"MGET", key, rev}};
  absl::StatusOr<std::vector<RedisResult>> replies = co_await AwaitPipeline(redis_, *tag, mget);
  if (!replies.ok()) co_return replies.status();
  if (replies->size() != 1) co_return Unexpected("MGET of the settlement");
  RedisResult& r = (*replies)[0];
  if (!r.ok()) co_return r.status();
  if (r->elements.size() != 2) co_return Unexpected("MGET of the settlement");
  if (r->elements[0].is_nil()) {
    co_return engine::Refusal(absl::StatusCode::kNotFound, reason::kSettlementNotFound,
                              "settlement_id", "no settlement has this id in Redis");
  }
  StoredSettlement out;
  if (absl::Status s = DecodeStored(r->elements[0].str, key, &out.record); !s.ok()) co_return s;
  if (out.record.settlement_id() != settlement_id) co_return Corrupt(Cat(key, " holds another id"));
  if (!r->elements[1].is_nil()) {
    out.status = SettlementStatus::kReversed;
    out.reversal.emplace();
    if (absl::Status s = DecodeStored(r->elements[1].str, rev, &*out.reversal); !s.ok()) {
      co_return s;
    }
  }
  co_return out;
}

absl::StatusOr<StoredSettlement> SettlementStore::GetSettlement(std::string_view settlement_id) {
  return RunSync(GetSettlementAsync(settlement_id));
}

absl::StatusOr<ReversalResult> RedisSettlementStore::CommitReversal(
    const v1::LedgerRecord& settled, const v1::LedgerReversal& reversal) {
  absl::StatusOr<std::string> tag = TagOfSettlementId(settled.settlement_id());
  if (!tag.ok()) return tag.status();
  if (absl::Status s = CheckPersonKey(settled.person_key()); !s.ok()) return s;
  if (reversal.settlement_id() != settled.settlement_id() ||
      reversal.person_key() != settled.person_key() || reversal.year() != settled.year() ||
      reversal.settlement_date() != settled.settlement_date() ||
      reversal.settle_request_id() != settled.request_id()) {
    return engine::InvalidField(reason::kSettlementIdInvalid, "settlement_id",
                                "the reversal does not name the settlement it reverses");
  }
  if (reversal.institution_id() != settled.institution_id()) {
    return engine::Refusal(absl::StatusCode::kPermissionDenied, reason::kNotYourSettlement,
                           "settlement_id", "the settlement belongs to another institution");
  }
  // What is given back is the record's own delta and amounts (immutable:
  // what the settlement added), not what the caller computed.
  contract::RecordEffect effect;
  if (absl::Status s = contract::EffectOf(settled, &effect); !s.ok()) return s;
  const std::string stl = SettlementKey(settled.settlement_id());
  const std::string acc = AccumulatorsKey(settled.person_key(), settled.year());
  const std::string journal = JournalKey(*tag);
  const std::string recon = ReconcileKey(*tag, settled.institution_id(), effect.settlement_date);
  const std::string idem = IdempotencyKey(*tag, settled.institution_id(), settled.request_id());
  const std::string bytes = PackRecord(reversal.SerializeAsString());
  std::vector<std::string> values = {""};
  AppendNonZeroTotals(effect.delta, &values);
  values[0] = std::to_string((values.size() - 1) / 2);
  AppendNonZeroAmounts(effect.amounts, &values);
  const std::string rev = ReversalKey(settled.settlement_id());
  RedisArgv argv = {stl, acc, journal, recon, idem, rev, bytes};
  for (const std::string& v : values) argv.push_back(v);
  int64_t acked = 0;
  RedisResult r = RunScript(kReversalScript, *tag, argv, 6, &acked);
  if (!r.ok()) return r.status();
  const std::vector<RedisReply>& e = r->elements;
  if (e.empty()) return Unexpected("the reversal script");
  const std::string& outcome = e[0].str;
  if (outcome == "NOT_FOUND") {
    return engine::Refusal(absl::StatusCode::kNotFound, reason::kSettlementNotFound,
                           "settlement_id", "no settlement has this id in Redis");
  }
  if (outcome == "NEGATIVE") {
    return engine::Refused(engine::reason::kAccumulatorsInvalid,
                           Cat("the reversal would make the year total ",
                               e.size() > 1 ? e[1].str : std::string(),
                               " negative; nothing written"));
  }
  if ((outcome != "REPLAYED" && outcome != "REVERSED") || e.size() < 2) {
    return Unexpected("the reversal script");
  }
  // A replayed reversal must be as durable as the one it reports.
  if (absl::Status s = CheckReplicated(acked, Cat("the reversal of ", settled.settlement_id()));
      !s.ok()) {
    return s;
  }
  ReversalResult result;
  result.replayed = outcome == "REPLAYED";
  if (absl::Status s = DecodeStored(e[1].str, rev, &result.reversal);
      !s.ok()) {
    return s;
  }
  absl::StatusOr<engine::Accumulators> after = ParseAccumulators(e, 2);
  if (!after.ok()) return after.status();
  result.accumulators = *after;
  return result;
}

absl::StatusOr<std::vector<JournalEntry>> RedisSettlementStore::ReadJournal(
    std::string_view tag, int64_t from_ms, int64_t to_ms, int64_t count) {
  return RangeJournal(tag, std::to_string(from_ms), to_ms, count);
}

absl::StatusOr<std::vector<JournalEntry>> RedisSettlementStore::ReadJournalAfter(
    std::string_view tag, std::string_view after_id, int64_t to_ms, int64_t count) {
  // Complete ids only: an incomplete "(<ms>" would mean "after <ms>-0" and
  // skip nothing of the millisecond but its first entry.
  const size_t dash = after_id.find('-');
  uint64_t part = 0;
  auto decimal = [&part](std::string_view digits) {
    const char* end = digits.data() + digits.size();
    auto [p, ec] = std::from_chars(digits.data(), end, part);
    return ec == std::errc() && p == end && !digits.empty();
  };
  if (dash == std::string_view::npos || !decimal(after_id.substr(0, dash)) ||
      !decimal(after_id.substr(dash + 1))) {
    return engine::InvalidField(reason::kJournalIdInvalid, "after_id",
                                "after_id must be a stream id <ms>-<seq>");
  }
  return RangeJournal(tag, Cat("(", after_id), to_ms, count);
}

absl::StatusOr<std::vector<JournalEntry>> RedisSettlementStore::RangeJournal(
    std::string_view tag, const std::string& start, int64_t to_ms, int64_t count) {
  if (!IsTag(tag)) {
    return engine::InvalidField(reason::kSettlementIdInvalid, "tag",
                                "a tag is 2 lowercase hex characters");
  }
  // RedisArgv holds views: the strings live here.
  const std::string key = JournalKey(tag);
  const std::string to = std::to_string(to_ms);
  const std::string limit = std::to_string(count);
  RedisArgv argv = {"XRANGE", key, start, to};
  if (count > 0) {
    argv.push_back("COUNT");
    argv.push_back(limit);
  }
  RedisResult r = redis_.Command(key, argv);
  if (!r.ok()) return r.status();
  return DecodeJournal(key, *r);
}

absl::StatusOr<std::vector<JournalEntry>> RedisSettlementStore::DecodeJournal(
    const std::string& key, const RedisReply& reply) {
  std::vector<JournalEntry> out;
  out.reserve(reply.elements.size());
  for (const RedisReply& item : reply.elements) {
    if (item.elements.size() != 2) return Unexpected("XRANGE");
    JournalEntry entry;
    entry.stream_id = item.elements[0].str;
    const std::string where = Cat(key, " entry ", entry.stream_id);
    const std::vector<RedisReply>& f = item.elements[1].elements;
    std::string_view kind;
    std::string_view stored;
    for (size_t k = 0; k + 1 < f.size(); k += 2) {
      if (f[k].str == "kind") kind = f[k + 1].str;
      if (f[k].str == "rec") stored = f[k + 1].str;
    }
    entry.bytes = std::string(stored);  // the unpacked record once it decodes
    if (kind == "SETTLE") {
      entry.kind = JournalKind::kSettle;
      entry.status = DecodeStored(stored, where, &entry.settlement, &entry.bytes);
    } else if (kind == "REVERSE") {
      entry.kind = JournalKind::kReverse;
      entry.status = DecodeStored(stored, where, &entry.reversal, &entry.bytes);
    } else {
      entry.status = Corrupt(Cat(where, ": kind '", kind, "' is neither SETTLE nor REVERSE"));
    }
    out.push_back(std::move(entry));
  }
  return out;
}

absl::StatusOr<ReconcileResult> RedisSettlementStore::Reconcile(std::string_view institution_id,
                                                                engine::Date date,
                                                                bool include_detail, int page_size,
                                                                std::string_view page_token) {
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
    if (page_size < 1 || page_size > kMaxReconcilePageSize) {
      return engine::InvalidField(reason::kPageSizeInvalid, "page_size",
                                  Cat("page_size must be 1..", kMaxReconcilePageSize));
    }
    if (!page_token.empty() && !ParseReconcilePageToken(page_token, &start_tag, &start_offset)) {
      return engine::InvalidField(reason::kPageTokenInvalid, "page_token",
                                  "page_token is not one that Reconcile returned");
    }
  }
  const size_t wanted = include_detail ? static_cast<size_t>(page_size) : 0;

  ReconcileResult result;
  std::array<int64_t, kTagCount> lengths{};
  int end_tag = -1;        // where the page ended: a tag and
  int64_t end_offset = 0;  // the index after its last entry
  for (int t = 0; t < kTagCount; ++t) {
    const std::string tag = TagText(t);
    const std::string recon = ReconcileKey(tag, institution_id, date);
    const std::string ids = ReconcileIdsKey(tag, institution_id, date);
    const bool page_open = include_detail && t >= start_tag && result.detail.size() < wanted;
    const int64_t from = t == start_tag ? start_offset : 0;
    const std::string range_from = std::to_string(from);
    const std::string range_to =
        std::to_string(from + static_cast<int64_t>(wanted - result.detail.size()) - 1);
    std::vector<RedisArgv> commands = {{"HGETALL", recon}, {"LLEN", ids}};
    if (page_open) commands.push_back({"LRANGE", ids, range_from, range_to});
    absl::StatusOr<std::vector<RedisResult>> replies = redis_.Pipeline(tag, commands);
    if (!replies.ok()) return replies.status();
    if (replies->size() != commands.size()) return Unexpected("the reconcile read");
    for (const RedisResult& r : *replies) {
      if (!r.ok()) return r.status();
    }
    if (!AddReconFields((*replies)[0]->elements, "settled.", result.settled) ||
        !AddReconFields((*replies)[0]->elements, "reversed.", result.reversed)) {
      return Corrupt(Cat("reconcile totals ", recon));
    }
    lengths[static_cast<size_t>(t)] = (*replies)[1]->integer;
    if (!page_open) continue;
    const std::vector<RedisReply>& listed = (*replies)[2]->elements;
    end_tag = t;
    end_offset = from + static_cast<int64_t>(listed.size());
    if (listed.empty()) continue;

    // The listed settlements' records, one HMGET each, in one pipeline.
    std::vector<std::string> keys;
    keys.reserve(listed.size());
    for (const RedisReply& id : listed) {
      if (id.str.size() < 4 || id.str.compare(0, 2, tag) != 0 || id.str[2] != '-') {
        return Corrupt(Cat("settlement id listed in ", ids));
      }
      keys.push_back(SettlementKey(id.str));
    }
    std::vector<RedisArgv> reads;
    reads.reserve(keys.size());
    std::vector<std::string> revs;
    revs.reserve(keys.size());
    for (const RedisReply& id : listed) revs.push_back(ReversalKey(id.str));
    for (size_t i = 0; i < keys.size(); ++i) reads.push_back({"MGET", keys[i], revs[i]});
    absl::StatusOr<std::vector<RedisResult>> records = redis_.Pipeline(tag, reads);
    if (!records.ok()) return records.status();
    if (records->size() != reads.size()) return Unexpected("the reconcile detail read");
    for (size_t i = 0; i < records->size(); ++i) {
      const RedisResult& r = (*records)[i];
      if (!r.ok()) return r.status();
      const std::vector<RedisReply>& f = r->elements;
      if (f.size() != 2) return Unexpected("MGET of a settlement");
      ReconcileDetail d;
      d.settlement_id = listed[i].str;
      if (f[0].is_nil()) {
        // Shipped and past the hot window while its day's index was not:
        // only when the index outlived its records (see HotUntilMs).
        return engine::Refusal(absl::StatusCode::kNotFound, reason::kSettlementNotFound,
                               "date",
                               Cat("settlement ", d.settlement_id,
                                   " of the day has left Redis; reconcile the day from the "
                                   "ledger"));
      }
      v1::LedgerRecord record;
      if (absl::Status s = DecodeStored(f[0].str, keys[i], &record); !s.ok()) return s;
      d.request_id = record.request_id();
      d.visit_type = static_cast<int32_t>(record.request().visit().type());
      contract::AmountsFromProto(record.response().amounts(), &d.amounts);
      d.settled_at_unix = record.settled_at_unix_ms() / 1000;
      if (!f[1].is_nil()) {
        d.status = SettlementStatus::kReversed;
        v1::LedgerReversal reversal;
        if (absl::Status s = DecodeStored(f[1].str, revs[i], &reversal); !s.ok()) return s;
        d.reversed_at_unix = reversal.reversed_at_unix_ms() / 1000;
      }
      result.detail.push_back(std::move(d));
    }
  }

  for (size_t i = 0; i < kAmountFields; ++i) {
    *AmountField(result.net.amounts, i) =
        *AmountField(result.settled.amounts, i) - *AmountField(result.reversed.amounts, i);
  }
  result.net.count = result.settled.count - result.reversed.count;

  // A full page continues where it ended, or at the next tag with entries.
  if (include_detail && result.detail.size() == wanted) {
    result.next_page_token = NextReconcilePageToken(lengths, end_tag, end_offset);
  }
  return result;
}

absl::StatusOr<int64_t> RedisSettlementStore::TrimJournal(int64_t before_ms) {
  if (before_ms <= 0) return 0;
  const std::string min_id = std::to_string(before_ms);
  int64_t removed = 0;
  for (int t = 0; t < kTagCount; ++t) {
    const std::string journal = JournalKey(TagText(t));
    RedisResult r = redis_.Command(journal, {"XTRIM", journal, "MINID", min_id});
    if (!r.ok()) return r.status();
    if (r->type != RedisReply::Type::kInteger) return Unexpected("XTRIM");
    removed += r->integer;
  }
  return removed;
}

absl::StatusOr<std::vector<RedisSettlementStore::StoredYear>> RedisSettlementStore::ReadYears(
    const std::vector<std::pair<std::string, int32_t>>& person_years) {
  std::vector<std::string> keys;
  keys.reserve(person_years.size());
  for (const auto& [person_key, year] : person_years) {
    if (absl::Status s = CheckPersonKey(person_key); !s.ok()) return s;
    keys.push_back(AccumulatorsKey(person_key, year));
  }
  std::vector<RedisArgv> commands;
  commands.reserve(keys.size());
  for (const std::string& key : keys) commands.push_back({"HGETALL", key});
  std::vector<StoredYear> out;
  out.reserve(keys.size());
  if (commands.empty()) return out;
  const std::vector<std::string_view> routing(keys.begin(), keys.end());
  absl::StatusOr<std::vector<RedisResult>> replies = redis_.PipelineAcrossSlots(routing, commands);
  if (!replies.ok()) return replies.status();
  if (replies->size() != commands.size()) return Unexpected("the accumulators read");
  for (const RedisResult& r : *replies) {
    if (!r.ok()) return r.status();
    absl::StatusOr<engine::Accumulators> a = ParseAccumulators(r->elements, 0);
    if (!a.ok()) return a.status();
    out.push_back(StoredYear{.accumulators = *a, .exists = !r->elements.empty()});
  }
  return out;
}

absl::Status RedisSettlementStore::WriteYear(std::string_view person_key, int32_t year,
                                             const engine::Accumulators& totals,
                                             int64_t version) {
  if (absl::Status s = CheckPersonKey(person_key); !s.ok()) return s;
  if (absl::Status s = engine::ValidateAccumulators(totals); !s.ok()) return s;
  const std::string key = AccumulatorsKey(person_key, year);
  std::vector<std::string> values;
  AppendNonZeroTotals(totals, &values);
  const std::string version_text = std::to_string(version);
  RedisArgv hset = {"HSET", key, "version", version_text};
  for (const std::string& v : values) hset.push_back(v);
  absl::StatusOr<std::vector<RedisResult>> replies =
      redis_.Pipeline(key, {{"MULTI"}, {"DEL", key}, hset, {"EXEC"}});
  if (!replies.ok()) return replies.status();
  for (const RedisResult& r : *replies) {
    if (!r.ok()) return r.status();
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::vector<JournalEntry>>> RedisSettlementStore::ReadJournalHeads(
    int64_t count) {
  std::vector<std::string> keys;
  keys.reserve(kTagCount);
  for (int t = 0; t < kTagCount; ++t) keys.push_back(JournalKey(TagText(t)));
  const std::string limit = std::to_string(std::max<int64_t>(count, 1));
  std::vector<RedisArgv> commands;
  commands.reserve(kTagCount);
  for (const std::string& key : keys) commands.push_back({"XRANGE", key, "-", "+", "COUNT", limit});
  const std::vector<std::string_view> routing(keys.begin(), keys.end());
  absl::StatusOr<std::vector<RedisResult>> replies = redis_.PipelineAcrossSlots(routing, commands);
  if (!replies.ok()) return replies.status();
  if (replies->size() != commands.size()) return Unexpected("the journal heads read");
  std::vector<std::vector<JournalEntry>> out;
  out.reserve(kTagCount);
  for (size_t t = 0; t < replies->size(); ++t) {
    const RedisResult& r = (*replies)[t];
    if (!r.ok()) return r.status();
    absl::StatusOr<std::vector<JournalEntry>> entries = DecodeJournal(keys[t], *r);
    if (!entries.ok()) return entries.status();
    out.push_back(*std::move(entries));
  }
  return out;
}

absl::StatusOr<std::vector<RedisSettlementStore::JournalLength>>
RedisSettlementStore::JournalLengths() {
  std::vector<std::string> keys;
  keys.reserve(kTagCount);
  for (int t = 0; t < kTagCount; ++t) keys.push_back(JournalKey(TagText(t)));
  std::vector<RedisArgv> commands;
  commands.reserve(2 * kTagCount);
  for (const std::string& key : keys) {
    commands.push_back({"XLEN", key});
    commands.push_back({"XRANGE", key, "-", "+", "COUNT", "1"});
  }
  std::vector<std::string_view> routing;
  routing.reserve(commands.size());
  for (const std::string& key : keys) routing.insert(routing.end(), 2, key);  // XLEN, XRANGE
  absl::StatusOr<std::vector<RedisResult>> replies = redis_.PipelineAcrossSlots(routing, commands);
  if (!replies.ok()) return replies.status();
  if (replies->size() != commands.size()) return Unexpected("the journal lengths read");
  std::vector<JournalLength> out(kTagCount);
  for (size_t t = 0; t < out.size(); ++t) {
    const RedisResult& length = (*replies)[2 * t];
    const RedisResult& oldest = (*replies)[2 * t + 1];
    if (!length.ok()) return length.status();
    if (!oldest.ok()) return oldest.status();
    out[t].entries = length->integer;
    if (!oldest->elements.empty() && !oldest->elements[0].elements.empty()) {
      out[t].oldest_id = oldest->elements[0].elements[0].str;
    }
  }
  return out;
}

absl::Status RedisSettlementStore::ReleaseShipped(std::string_view tag,
                                                  std::string_view through_id,
                                                  const std::vector<JournalEntry>& shipped,
                                                  int64_t hot_window_ms) {
  if (!IsTag(tag)) {
    return engine::InvalidField(reason::kSettlementIdInvalid, "tag",
                                "a tag is 2 lowercase hex characters");
  }
  // XTRIM MINID removes ids below its argument: the id after through_id.
  // Both parts are checked here: a malformed <ms> would fail only the
  // XTRIM, and the pipeline's PEXPIREATs would still run.
  const size_t dash = through_id.find('-');
  uint64_t ms = 0;
  uint64_t seq = 0;
  auto decimal = [](std::string_view digits, uint64_t* out) {
    const char* end = digits.data() + digits.size();
    auto [p, ec] = std::from_chars(digits.data(), end, *out);
    return ec == std::errc() && p == end && !digits.empty();
  };
  if (dash == std::string_view::npos || !decimal(through_id.substr(0, dash), &ms) ||
      !decimal(through_id.substr(dash + 1), &seq)) {
    return engine::InvalidField(reason::kJournalIdInvalid, "through_id",
                                "through_id must be a stream id <ms>-<seq>");
  }
  // Keys and times as strings that outlive the argv views.
  std::vector<std::string> texts;
  texts.reserve(2 + shipped.size() * 6);
  texts.push_back(JournalKey(tag));
  texts.push_back(seq == UINT64_MAX ? Cat(ms + 1, "-0") : Cat(ms, "-", seq + 1));
  // The expiries first, the XTRIM last: after a failed pipeline any prefix
  // may have been applied, and an entry trimmed before its record's expiry
  // was set would never be released again (the record would stay for ever).
  std::vector<RedisArgv> commands;
  auto expire = [&](std::string key, int64_t at_ms, bool only_later) {
    texts.push_back(std::move(key));
    const std::string& k = texts.back();
    texts.push_back(std::to_string(at_ms));
    if (only_later) {
      commands.push_back({"PEXPIREAT", k, texts.back(), "GT"});
    } else {
      commands.push_back({"PEXPIREAT", k, texts.back()});
    }
  };
  for (const JournalEntry& e : shipped) {
    if (!e.status.ok()) continue;
    if (e.kind == JournalKind::kSettle) {
      contract::RecordEffect effect;
      if (!contract::EffectOf(e.settlement, &effect).ok()) continue;
      expire(SettlementKey(e.settlement.settlement_id()),
             e.settlement.settled_at_unix_ms() + hot_window_ms, false);
      const int64_t day_until = HotUntilMs(effect.settlement_date, hot_window_ms);
      expire(ReconcileKey(tag, e.settlement.institution_id(), effect.settlement_date), day_until,
             false);
      expire(ReconcileIdsKey(tag, e.settlement.institution_id(), effect.settlement_date),
             day_until, false);
    } else {
      // A reversal keeps its record hot for the window after the reversal
      // (GT: only ever later; a record without an expiry keeps none).
      expire(SettlementKey(e.reversal.settlement_id()),
             e.reversal.reversed_at_unix_ms() + hot_window_ms, true);
      expire(ReversalKey(e.reversal.settlement_id()),
             e.reversal.reversed_at_unix_ms() + hot_window_ms, false);
      // Its reversed totals go with their day: a reversal after the day's
      // index expired (a record settled late outlives it) writes the hash
      // again, which would otherwise never expire.
      contract::RecordEffect effect;
      if (!contract::EffectOf(e.reversal, &effect).ok()) continue;
      expire(ReconcileKey(tag, e.reversal.institution_id(), effect.settlement_date),
             HotUntilMs(effect.settlement_date, hot_window_ms), false);
    }
  }
  commands.push_back({"XTRIM", texts[0], "MINID", texts[1]});
  // texts must not reallocate under the views: reserved above. Every key
  // is the tag's.
  absl::StatusOr<std::vector<RedisResult>> replies = redis_.Pipeline(tag, commands);
  if (!replies.ok()) return replies.status();
  for (const RedisResult& r : *replies) {
    if (!r.ok()) return r.status();
  }
  return absl::OkStatus();
}

int64_t HotUntilMs(engine::Date settlement_date, int64_t hot_window_ms) {
  // The day ends at 24:00 in China Standard Time (UTC+08:00).
  const int64_t day_end_ms =
      (int64_t{settlement_date.days() + 1} * 86400 - 8 * 3600) * 1000;
  return day_end_ms + hot_window_ms;
}

}  // namespace medsettle::cache
