#include "gateway/settlement_handler.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <openssl/evp.h>

#include <algorithm>
#include <random>
#include <thread>
#include <utility>

#include "engine/date.h"
#include "engine/status.h"
#include "engine/text.h"
#include "gateway/authorization.h"
#include "proto/contract/convert.h"
#include "proto/contract/ledger_record.h"

namespace medsettle::gateway {

using engine::Cat;
namespace {

using engine::Refusal;

absl::Status CheckDeadline(const CallContext& call) {
  if (std::chrono::system_clock::now() < call.deadline) return absl::OkStatus();
  return Refusal(absl::StatusCode::kDeadlineExceeded, reason::kDeadlineExceeded, "",
                 "the call's deadline passed before it could finish; nothing was committed");
}

absl::Status MissingSettlementId() {
  return engine::InvalidField(reason::kSettlementIdMissing, "settlement_id",
                              "settlement_id is required");
}

std::string_view CredentialKindName(engine::CredentialKind kind) {
  switch (kind) {
    case engine::CredentialKind::kIdCard: return "ID_CARD";
    case engine::CredentialKind::kInsuranceCard: return "INSURANCE_CARD";
    case engine::CredentialKind::kEcToken: return "EC_TOKEN";
    case engine::CredentialKind::kUnspecified: break;
  }
  return "UNSPECIFIED";
}

// FAILED_PRECONDITION EC_TOKEN_REPLAYED: settlement `used_by` used the code,
// whether the read found its nonce or the commit script did.
absl::Status TokenReplayed(std::string_view used_by) {
  return Refusal(absl::StatusCode::kFailedPrecondition, credentials::reason::kTokenReplayed,
                 credentials::kEcTokenField,
                 Cat("this e-insurance code was already used (settlement ", used_by,
                     "); each code settles once, ask for a fresh scan"));
}

absl::Status ReversalWindowClosed() {
  return Refusal(absl::StatusCode::kFailedPrecondition, reason::kReversalWindowClosed,
                 "settlement_id",
                 "the settlement is older than the hot window and only the ledger holds it; "
                 "it can no longer be reversed at the counter (ask the bureau)");
}

absl::Status NotYours() {
  return Refusal(absl::StatusCode::kPermissionDenied, cache::reason::kNotYourSettlement,
                 "settlement_id", "the settlement belongs to another institution");
}

}  // namespace

std::string ContentHash(const v1::SettleRequest& request) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    request.SerializeToCodedStream(&coded);
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr);
  return engine::LowerHex(std::string_view(reinterpret_cast<const char*>(digest), length));
}

SettlementHandler::SettlementHandler(const EngineHolder& engines,
                                     const SnapshotSource& snapshots,
                                     cache::SettlementStore& store,
                                     const cache::PersonKeyer& keyer, GatewayCounters& counters,
                                     HandlerOptions options)
    : engines_(engines),
      snapshots_(snapshots),
      store_(store),
      keyer_(keyer),
      counters_(counters),
      options_(std::move(options)),
      issuer_keys_(options_.issuer_keys),
      person_turns_(kPersonTurnStripes) {}

void SettlementHandler::SetIssuerKeys(std::shared_ptr<const credentials::IssuerKeyring> keys) {
  std::lock_guard<std::mutex> lock(issuer_keys_mutex_);
  issuer_keys_ = std::move(keys);
}

std::shared_ptr<const credentials::IssuerKeyring> SettlementHandler::IssuerKeys() const {
  std::lock_guard<std::mutex> lock(issuer_keys_mutex_);
  return issuer_keys_;
}

int64_t SettlementHandler::NowMs() const {
  if (options_.now_ms) return options_.now_ms();
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string SettlementHandler::Timestamp(int64_t unix_seconds) const {
  return engine::FormatRfc3339(unix_seconds, options_.utc_offset_minutes);
}

absl::StatusOr<SettlementHandler::Person> SettlementHandler::ResolveCredential(
    const v1::Credential& credential, std::string_view field) const {
  Person person;
  switch (credential.kind_case()) {
    case v1::Credential::kIdCardNo: {
      absl::StatusOr<std::string> key = keyer_.KeyOfIdNumber(credential.id_card_no());
      if (!key.ok()) return key.status();
      person.person_key = *std::move(key);
      person.kind = engine::CredentialKind::kIdCard;
      return person;
    }
    case v1::Credential::kInsuranceCardNo: {
      // A resident's social-security card number is their ID number
      // (社会保障号码 = 公民身份号码), so it keys the same way.
      absl::StatusOr<std::string> key = keyer_.KeyOfIdNumber(credential.insurance_card_no());
      if (!key.ok() && engine::ReasonOf(key.status()) == cache::reason::kIdNumberCheckDigit) {
        return engine::InvalidField(cache::reason::kIdNumberCheckDigit,
                                    Cat(field, ".insurance_card_no"),
                                    std::string(key.status().message()));
      }
      if (!key.ok()) {
        return engine::InvalidField(
            reason::kInsuranceCardInvalid, Cat(field, ".insurance_card_no"),
            "insurance_card_no must be the 18-character social security number");
      }
      person.person_key = *std::move(key);
      person.kind = engine::CredentialKind::kInsuranceCard;
      return person;
    }
    case v1::Credential::kEcToken: {
      const std::string token_field = Cat(field, ".ec_token");
      std::shared_ptr<const credentials::IssuerKeyring> keys = IssuerKeys();
      if (keys == nullptr) {
        return Refusal(absl::StatusCode::kFailedPrecondition,
                            credentials::reason::kTokenNotConfigured, token_field,
                            "this gateway has no e-insurance code issuer keys "
                            "(ec_token.issuer_keys_dir); send id_card_no");
      }
      // The shape now (a malformed code names no person). Whether the code
      // is genuine and current is judged now but reported after the
      // prior-result lookup (Person::verdict): the same request committed
      // before replays even when its code has expired or its issuer key has
      // been withdrawn since — its content hash covers the very code that
      // was verified when it was committed.
      absl::StatusOr<credentials::ParsedEcToken> parsed =
          credentials::ParseEcToken(credential.ec_token());
      if (!parsed.ok()) return parsed.status();
      const credentials::EcTokenClaims& claims = parsed->claims;
      const int skew = options_.token_clock_skew_seconds;
      person.verdict = credentials::VerifyParsedEcToken(
          *parsed, *keys,
          {.now_unix = NowMs() / 1000,
           .clock_skew_seconds = skew,
           .max_lifetime_minutes = options_.token_max_lifetime_minutes});
      person.person_key = claims.person_key;
      person.kind = engine::CredentialKind::kEcToken;
      person.voucher_issued_at_unix = claims.issued_at_minute * 60;
      person.presenter_key = claims.presenter_key;
      person.nonce = claims.nonce;
      person.scopes = claims.scopes;
      // The nonce stays marked past the code's last valid second by the
      // skew again and five minutes: another gateway whose clock runs
      // behind this one's still accepts the code a little longer.
      person.usable_until_unix = claims.expires_at_minute * 60 + 2 * int64_t{skew} + 300;
      return person;
    }
    case v1::Credential::KIND_NOT_SET: break;
  }
  return engine::InvalidField(engine::reason::kCredentialMissing, field,
                              Cat(field, ": one of id_card_no, insurance_card_no, ec_token"));
}

absl::Status SettlementHandler::CheckTokenScope(const Person& person,
                                               const engine::Institution& institution,
                                               engine::VisitType type) {
  if (person.kind != engine::CredentialKind::kEcToken) return absl::OkStatus();
  const uint8_t needed = RequiredTokenScope(institution, type);
  if ((person.scopes & needed) != 0) return absl::OkStatus();
  return Refusal(absl::StatusCode::kPermissionDenied, credentials::reason::kTokenScopeMismatch,
                 credentials::kEcTokenField,
                 Cat("the e-insurance code is for ", credentials::ScopesToString(person.scopes),
                     "; this visit needs ", credentials::ScopesToString(needed)));
}

absl::Status SettlementHandler::CheckTokenUse(
    const Person& person, const engine::Enrollment& enrollment, const std::string& nonce_used_by,
    const std::optional<engine::Enrollment>& presenter_enrollment) {
  if (person.kind != engine::CredentialKind::kEcToken) return absl::OkStatus();
  if (!nonce_used_by.empty()) return TokenReplayed(nonce_used_by);
  if (!person.presenter_key.empty() &&
      !std::binary_search(enrollment.family_presenter_keys.begin(),
                          enrollment.family_presenter_keys.end(), person.presenter_key)) {
    return Refusal(absl::StatusCode::kPermissionDenied, credentials::reason::kPresenterNotBound,
                   credentials::kEcTokenField,
                   "the code's presenter is not bound to this person (亲情账户) in the "
                   "enrollment");
  }
  // The presenter's phone shows the code from the presenter's own voucher:
  // once they report it lost, codes it produced before are void too, as
  // for the insured person's own (same reading: issued at or before the
  // report). A presenter insured outside this snapshot cannot be checked.
  if (presenter_enrollment && presenter_enrollment->voucher_revoked_at_unix &&
      (!person.voucher_issued_at_unix ||
       *person.voucher_issued_at_unix <= *presenter_enrollment->voucher_revoked_at_unix)) {
    return Refusal(absl::StatusCode::kFailedPrecondition, engine::reason::kVoucherRevoked,
                   credentials::kEcTokenField,
                   "the code was issued before the presenter reported their voucher lost");
  }
  return absl::OkStatus();
}

cache::Task<absl::Status> SettlementHandler::PreSettleAsync(CallContext call,
                                                            const v1::SettleRequest& request,
                                                            v1::SettleResponse* response) {
  return SettleOrTrial(std::move(call), request, /*commit=*/false, response);
}

cache::Task<absl::Status> SettlementHandler::SettleAsync(CallContext call,
                                                         const v1::SettleRequest& request,
                                                         v1::SettleResponse* response) {
  return SettleOrTrial(std::move(call), request, /*commit=*/true, response);
}

absl::Status SettlementHandler::PreSettle(const CallContext& call,
                                          const v1::SettleRequest& request,
                                          v1::SettleResponse* response) {
  return cache::RunSync(PreSettleAsync(call, request, response));
}

absl::Status SettlementHandler::Settle(const CallContext& call, const v1::SettleRequest& request,
                                       v1::SettleResponse* response) {
  return cache::RunSync(SettleAsync(call, request, response));
}

absl::Status GatewayOverloaded() {
  return Refusal(absl::StatusCode::kResourceExhausted, reason::kGatewayOverloaded, "",
                 "the gateway is at capacity; retry with backoff");
}

cache::Task<absl::Status> SettlementHandler::SettleOrTrial(CallContext call,
                                                           const v1::SettleRequest& request,
                                                           bool commit,
                                                           v1::SettleResponse* response) {
  // A long bill (an inpatient stay of thousands of lines) is parsed,
  // hashed and settled on a worker: the transport's threads and the Redis
  // I/O threads serve every other call and must not be held for
  // milliseconds. A short one runs where it is.
  const bool long_bill = request.items_size() > options_.inline_max_lines;
  if (long_bill) {
    const bool on_worker = co_await ToWorker();
    if (!on_worker) co_return GatewayOverloaded();
  }
  // Everything that needs no Redis first: bad input costs no round trip.
  // The engine and the digests of the files it was built from, taken once:
  // the record names the rules this very engine applied.
  std::shared_ptr<const engine_files::LoadedEngine> loaded = engines_.GetLoaded();
  if (loaded == nullptr) {
    co_return Refusal(absl::StatusCode::kUnavailable, reason::kEngineNotLoaded, "",
                      "the settlement engine is not loaded");
  }
  const std::shared_ptr<const engine::Engine>& engine = loaded->engine;
  engine::Claim claim;
  if (absl::Status s = contract::ClaimFromProto(request, &claim, ""); !s.ok()) co_return s;
  // Engine::Settle validates again; checking here too means a bad bill is
  // refused before it costs a Redis round trip or the person's turn.
  if (absl::Status s = engine::ValidateClaim(claim); !s.ok()) co_return s;
  absl::StatusOr<Person> person = ResolveCredential(request.credential(), "credential");
  if (!person.ok()) co_return person.status();

  absl::StatusOr<std::shared_ptr<SnapshotView>> view = snapshots_.Current();
  if (!view.ok()) co_return view.status();
  absl::StatusOr<engine::Institution> institution = (*view)->Institution(call.institution_id);
  if (!institution.ok()) co_return institution.status();
  if (absl::Status s = AuthorizeVisit(*institution, claim.visit.type); !s.ok()) co_return s;

  // The engine's rule files are in Redis before its first commit. Here,
  // before the first wait: publishing (once per engine) blocks, and an I/O
  // thread must never block.
  if (commit && options_.ensure_rules_published) {
    if (absl::Status s = options_.ensure_rules_published(loaded); !s.ok()) co_return s;
  }
  const int32_t year = engine::Engine::SettlementDate(claim.visit).year();
  const std::string hash = commit ? ContentHash(request) : std::string();
  PersonTurns::Turn person_turn;
  if (commit) {
    person_turn = co_await person_turns_.Take(person->person_key);
    if (long_bill) {
      const bool on_worker = co_await ToWorker();
      if (!on_worker) co_return GatewayOverloaded();
    }
  }
  engine::Settlement settlement;
  for (int attempt = 0;; ++attempt) {
    if (absl::Status s = CheckDeadline(call); !s.ok()) co_return s;
    cache::SettleRead read;
    if (commit) {
      absl::StatusOr<cache::SettleRead> r = co_await store_.ReadForSettleAsync(
          (*view)->version(), person->person_key, year, call.institution_id,
          request.request_id(), CodeReadsOf(*person));
      if (!r.ok()) co_return r.status();
      read = *std::move(r);
    } else {
      absl::StatusOr<cache::CoverageRead> r = co_await store_.ReadForCoverageAsync(
          (*view)->version(), person->person_key, year, CodeReadsOf(*person));
      if (!r.ok()) co_return r.status();
      read.enrollment = std::move(r->enrollment);
      read.accumulators = r->accumulators;
      read.nonce_used_by = std::move(r->nonce_used_by);
      read.presenter_enrollment = std::move(r->presenter_enrollment);
    }
    if (read.prior) {
      if (read.prior->content_hash != hash) {
        co_return Refusal(absl::StatusCode::kAlreadyExists, cache::reason::kRequestIdReused,
                          "request_id",
                          Cat("request_id ", request.request_id(),
                           " was already used by this institution for a different request "
                           "(settlement ",
                           read.prior->settlement_id, ")"));
      }
      co_return co_await Replay(read.prior->settlement_id, std::move(read.prior->record),
                                read.prior->reversed, response);
    }
    if (!person->verdict.ok()) co_return person->verdict;
    if (absl::Status s = CheckTokenScope(*person, *institution, claim.visit.type); !s.ok()) {
      co_return s;
    }
    if (!read.enrollment) {
      co_return Refusal(absl::StatusCode::kFailedPrecondition, reason::kPersonNotEnrolled,
                        "credential",
                        Cat("the person is not in enrollment snapshot ", (*view)->version()));
    }
    if (absl::Status s = CheckTokenUse(*person, *read.enrollment, read.nonce_used_by,
                                       read.presenter_enrollment);
        !s.ok()) {
      co_return s;
    }
    engine::SettleInput input{.enrollment = &*read.enrollment,
                              .institution = &*institution,
                              .year_to_date = &read.accumulators,
                              .claim = &claim,
                              .voucher_issued_at_unix = person->voucher_issued_at_unix};
    if (long_bill) {
      const bool on_worker = co_await ToWorker();
      if (!on_worker) co_return GatewayOverloaded();
    }
    if (absl::Status s = engine->Settle(input, &settlement); !s.ok()) co_return s;
    contract::SettlementToProto(settlement, claim, person->person_key, call.institution_id,
                                response);
    response->set_presenter_key(person->presenter_key);
    if (!commit) {
      response->set_status(v1::SETTLEMENT_STATUS_TRIAL);
      co_return absl::OkStatus();
    }

    const int64_t now_ms = NowMs();
    const std::string settlement_id = cache::NewSettlementId(person->person_key, now_ms);
    response->set_settlement_id(settlement_id);
    response->set_status(v1::SETTLEMENT_STATUS_SETTLED);
    response->set_settled_at(Timestamp(now_ms / 1000));
    const engine_files::SourceFile* policy_file = loaded->PolicySource(settlement.policy_id);
    cache::SettlementCommit c;
    contract::BuildLedgerRecord(
        request, *read.enrollment, *institution, read.accumulators, *response,
        {.settlement_id = settlement_id,
         .institution_id = call.institution_id,
         .person_key = person->person_key,
         .content_hash = hash,
         .credential_kind = std::string(CredentialKindName(person->kind)),
         .presenter_key = person->presenter_key,
         .certificate_fingerprint = call.certificate_fingerprint,
         .settled_at_unix_ms = now_ms,
         .snapshot_version = (*view)->version(),
         .policy_sha256 = policy_file != nullptr ? policy_file->sha256_hex : std::string(),
         .catalog_sha256 = loaded->catalog.sha256_hex,
         .voucher_issued_at_unix = person->voucher_issued_at_unix.value_or(0)},
        &c.record);
    c.expected_version = read.accumulators.version;
    c.token_nonce = person->nonce;
    c.nonce_expires_unix = person->usable_until_unix;

    if (absl::Status s = CheckDeadline(call); !s.ok()) co_return s;
    absl::StatusOr<cache::CommitResult> result = co_await store_.CommitSettlementAsync(c);
    if (!result.ok()) co_return result.status();
    switch (result->outcome) {
      case cache::CommitOutcome::kCommitted:
        co_return absl::OkStatus();
      case cache::CommitOutcome::kReplayed:
        // A concurrent identical request committed first.
        co_return co_await Replay(result->settlement_id, std::nullopt, result->reversed,
                                  response);
      case cache::CommitOutcome::kNonceUsed:
        // Another request with the same code committed first.
        co_return TokenReplayed(result->settlement_id);
      case cache::CommitOutcome::kVersionMoved:
        break;
    }
    if (attempt >= options_.commit_retries) {
      co_return Refusal(absl::StatusCode::kAborted, reason::kAccumulatorsContended, "",
                        Cat("other settlements of this person kept committing first (",
                         attempt + 1, " attempts); nothing was written, retry the request"));
    }
    counters_.commit_retries.fetch_add(1, std::memory_order_relaxed);
    // A short random pause (≤ 0.4 ms) so that two gateways retrying the
    // same person do not collide again in lockstep. Kept short on purpose:
    // a long pause would only hand the race to the other gateway's next
    // request.
    // The pause is taken on a worker, never on an I/O thread.
    const bool on_worker = co_await ToWorker();
    if (!on_worker) co_return GatewayOverloaded();
    thread_local std::minstd_rand jitter(std::random_device{}());
    const int ceiling_us = 50 << std::min(attempt, 3);
    std::this_thread::sleep_for(std::chrono::microseconds(
        std::uniform_int_distribution<int>(0, ceiling_us)(jitter)));
  }
}

cache::Task<absl::Status> SettlementHandler::Replay(std::string settlement_id,
                                                    std::optional<v1::LedgerRecord> record,
                                                    bool reversed,
                                                    v1::SettleResponse* response) {
  if (record.has_value()) {
    *response = record->response();
  } else {
    // Committed by a concurrent request (not read yet), or no longer in
    // Redis: the store, then the ledger, read on a worker (the ledger's
    // reads block).
    const bool on_worker = co_await ToWorker();
    if (!on_worker) co_return GatewayOverloaded();
    absl::StatusOr<cache::StoredSettlement> stored = FindSettlement(settlement_id);
    if (!stored.ok()) co_return stored.status();
    *response = stored->record.response();
    reversed = reversed || stored->status == cache::SettlementStatus::kReversed;
  }
  response->set_replayed(true);
  // The stored response says SETTLED; the reversal marks the idempotency
  // record, so a reversal since then is known without another read.
  if (reversed) response->set_status(v1::SETTLEMENT_STATUS_REVERSED);
  counters_.replays.fetch_add(1, std::memory_order_relaxed);
  co_return absl::OkStatus();
}

absl::StatusOr<cache::StoredSettlement> SettlementHandler::FindSettlement(
    std::string_view settlement_id) const {
  absl::StatusOr<cache::StoredSettlement> stored = store_.GetSettlement(settlement_id);
  if (stored.ok() || stored.status().code() != absl::StatusCode::kNotFound ||
      options_.archive == nullptr) {
    return stored;
  }
  absl::StatusOr<cache::StoredSettlement> archived = options_.archive->Get(settlement_id);
  if (archived.ok()) archived->archived = true;
  return archived;
}

absl::StatusOr<engine::Institution> SettlementHandler::RegisteredInstitution(
    const CallContext& call) const {
  absl::StatusOr<std::shared_ptr<SnapshotView>> view = snapshots_.Current();
  if (!view.ok()) return view.status();
  return (*view)->Institution(call.institution_id);
}

absl::Status SettlementHandler::CheckCoverage(const CallContext& call,
                                              const v1::CheckCoverageRequest& request,
                                              v1::CheckCoverageResponse* response) {
  std::shared_ptr<const engine::Engine> engine = engines_.Get();
  if (engine == nullptr) {
    return Refusal(absl::StatusCode::kUnavailable, reason::kEngineNotLoaded, "",
                   "the settlement engine is not loaded");
  }
  absl::StatusOr<Person> person = ResolveCredential(request.credential(), "credential");
  if (!person.ok()) return person.status();
  engine::Date date;
  if (absl::Status s = contract::ParseDateField(request.service_date(), false, "service_date",
                                                &date);
      !s.ok()) {
    return s;
  }
  if (!date.valid()) {  // today on the bureau's clock
    const int64_t local = NowMs() / 1000 + int64_t{options_.utc_offset_minutes} * 60;
    date = engine::Date::FromDays(static_cast<int32_t>(local / 86400));
  }
  engine::VisitType type = engine::VisitType::kGeneralOutpatient;
  if (request.has_visit_type()) {
    std::optional<engine::VisitType> t = contract::VisitTypeFromProto(request.visit_type());
    if (!t) {
      return engine::InvalidField(engine::reason::kVisitTypeUnspecified, "visit_type",
                                  "visit_type: leave unset for coverage in general, or name one");
    }
    type = *t;
  }

  absl::StatusOr<std::shared_ptr<SnapshotView>> view = snapshots_.Current();
  if (!view.ok()) return view.status();
  absl::StatusOr<engine::Institution> institution = (*view)->Institution(call.institution_id);
  if (!institution.ok()) return institution.status();
  // A code's checks are refusals (the credential is bad), not answers; a
  // coverage question in general needs only some scope.
  if (!person->verdict.ok()) return person->verdict;
  if (request.has_visit_type()) {
    if (absl::Status s = CheckTokenScope(*person, *institution, type); !s.ok()) return s;
  }
  if (absl::Status s = CheckDeadline(call); !s.ok()) return s;
  absl::StatusOr<cache::CoverageRead> read =
      store_.ReadForCoverage((*view)->version(), person->person_key, date.year(),
                             CodeReadsOf(*person));
  if (!read.ok()) return read.status();
  if (read->enrollment) {
    if (absl::Status s = CheckTokenUse(*person, *read->enrollment, read->nonce_used_by,
                                       read->presenter_enrollment);
        !s.ok()) {
      return s;
    }
  }

  response->Clear();
  if (!read->enrollment) {
    response->set_covered(false);
    response->set_reason(std::string(reason::kPersonNotEnrolled));
    response->set_message(Cat("the person is not in enrollment snapshot ", (*view)->version()));
    return absl::OkStatus();
  }
  contract::EnrollmentToProto(*read->enrollment, response->mutable_enrollment());
  contract::AccumulatorsToProto(read->accumulators, person->person_key, date.year(),
                                response->mutable_year_to_date());

  engine::Visit visit;
  visit.type = type;
  visit.service_date = date;
  visit.admission_date = date;
  visit.discharge_date = date;
  // A visit this institution may not settle is not covered here: an answer.
  const absl::Status allowed =
      request.has_visit_type() ? AuthorizeVisit(*institution, type) : absl::OkStatus();
  absl::StatusOr<engine::CoverageDecision> decision =
      allowed.ok() ? engine->CheckCoverage(*read->enrollment, *institution, visit, person->kind,
                                           person->voucher_issued_at_unix)
                   : absl::StatusOr<engine::CoverageDecision>(allowed);
  if (!decision.ok()) {
    const absl::StatusCode code = decision.status().code();
    if (code != absl::StatusCode::kFailedPrecondition &&
        code != absl::StatusCode::kPermissionDenied) {
      return decision.status();
    }
    // Not covered is an answer, not an error.
    response->set_covered(false);
    response->set_reason(engine::ReasonOf(decision.status()));
    response->set_message(std::string(decision.status().message()));
    return absl::OkStatus();
  }
  response->set_covered(true);
  response->set_policy_id(decision->policy->id);
  response->set_covered_from(decision->covered_from.ToString());
  response->set_covered_to(decision->covered_to.ToString());
  for (const engine::RemainingLimit& limit :
       engine->Remaining(*decision->policy, *read->enrollment, read->accumulators)) {
    v1::Remaining* r = response->add_remaining();
    r->set_name(limit.name);
    r->set_limit_cents(limit.limit_cents);
    r->set_used_cents(limit.used_cents);
    r->set_remaining_cents(limit.remaining_cents);
  }
  return absl::OkStatus();
}

absl::Status SettlementHandler::Reverse(const CallContext& call,
                                        const v1::ReverseRequest& request,
                                        v1::ReverseResponse* response) {
  if (absl::Status s = engine::ValidateRequestId(request.request_id(), "request_id"); !s.ok()) {
    return s;
  }
  if (request.settlement_id().empty()) return MissingSettlementId();
  absl::StatusOr<engine::Institution> institution = RegisteredInstitution(call);
  if (!institution.ok()) return institution.status();
  // A suspended institution moves no money, back or forth; it may still
  // read and reconcile its own settlements.
  if (institution->suspended) {
    return Refusal(absl::StatusCode::kPermissionDenied, engine::reason::kInstitutionSuspended, "",
                   Cat("institution ", call.institution_id, " is suspended from settlement"));
  }
  if (absl::Status s = CheckDeadline(call); !s.ok()) return s;
  absl::StatusOr<cache::StoredSettlement> stored = FindSettlement(request.settlement_id());
  if (!stored.ok()) return stored.status();
  const v1::LedgerRecord& settled = stored->record;
  if (settled.institution_id() != call.institution_id) return NotYours();
  if (stored->archived) {
    // Past the hot window only the ledger holds the record: a reversal
    // made then replays; a new one is refused (docs/API.md).
    if (!stored->reversal.has_value()) return ReversalWindowClosed();
    *response = stored->reversal->response();
    response->set_replayed(true);
    return absl::OkStatus();
  }

  const int64_t now_ms = NowMs();
  response->Clear();
  response->set_reversal_id(Cat(request.settlement_id(), "-r"));
  response->set_settlement_id(request.settlement_id());
  response->set_status(v1::SETTLEMENT_STATUS_REVERSED);
  *response->mutable_amounts() = settled.response().amounts();
  response->set_reversed_at(Timestamp(now_ms / 1000));
  response->set_reason(request.reason());

  v1::LedgerReversal reversal;
  reversal.set_format(contract::kLedgerRecordFormat);
  reversal.set_settlement_id(settled.settlement_id());
  reversal.set_institution_id(call.institution_id);
  reversal.set_request_id(request.request_id());
  reversal.set_reason(request.reason());
  reversal.set_certificate_fingerprint(call.certificate_fingerprint);
  reversal.set_reversed_at_unix_ms(now_ms);
  reversal.set_person_key(settled.person_key());
  reversal.set_year(settled.year());
  reversal.set_settlement_date(settled.settlement_date());
  *reversal.mutable_amounts() = settled.response().amounts();
  *reversal.mutable_delta() = settled.response().accumulator_delta();
  *reversal.mutable_response() = *response;
  reversal.set_settle_request_id(settled.request_id());

  if (absl::Status s = CheckDeadline(call); !s.ok()) return s;
  absl::StatusOr<cache::ReversalResult> result = store_.CommitReversal(settled, reversal);
  if (!result.ok()) {
    // The record left Redis between the read and the script (its hot
    // window ended): only the ledger has it now.
    if (result.status().code() == absl::StatusCode::kNotFound) return ReversalWindowClosed();
    return result.status();
  }
  if (result->replayed) {
    *response = result->reversal.response();
    response->set_replayed(true);
  }
  // The person's year as it is now (after this or the earlier reversal).
  contract::AccumulatorsToProto(result->accumulators, settled.person_key(), settled.year(),
                                response->mutable_year_to_date());
  return absl::OkStatus();
}

absl::Status SettlementHandler::GetSettlement(const CallContext& call,
                                              const v1::GetSettlementRequest& request,
                                              v1::SettleResponse* response) {
  if (request.settlement_id().empty()) return MissingSettlementId();
  if (absl::Status s = RegisteredInstitution(call).status(); !s.ok()) return s;
  if (absl::Status s = CheckDeadline(call); !s.ok()) return s;
  absl::StatusOr<cache::StoredSettlement> stored = FindSettlement(request.settlement_id());
  if (!stored.ok()) return stored.status();
  if (stored->record.institution_id() != call.institution_id) return NotYours();
  *response = stored->record.response();
  response->set_replayed(false);
  if (stored->status == cache::SettlementStatus::kReversed) {
    response->set_status(v1::SETTLEMENT_STATUS_REVERSED);
  }
  return absl::OkStatus();
}

absl::Status SettlementHandler::Reconcile(const CallContext& call,
                                          const v1::ReconcileRequest& request,
                                          v1::ReconcileResponse* response) {
  engine::Date date;
  if (absl::Status s = contract::ParseDateField(request.date(), true, "date", &date); !s.ok()) {
    return s;
  }
  // page_size 0 means the default; the store checks the range.
  const int page_size = request.page_size() == 0 ? 100 : request.page_size();
  if (absl::Status s = RegisteredInstitution(call).status(); !s.ok()) return s;
  if (absl::Status s = CheckDeadline(call); !s.ok()) return s;
  // A day whose hot window has ended is reconciled from the ledger (its
  // Redis index has expired, or will any moment).
  const bool from_ledger = options_.archive != nullptr &&
                           cache::HotUntilMs(date, options_.hot_window_ms) <= NowMs();
  absl::StatusOr<cache::ReconcileResult> result =
      from_ledger ? options_.archive->Reconcile(call.institution_id, date,
                                                request.include_detail(), page_size,
                                                request.page_token())
                  : store_.Reconcile(call.institution_id, date, request.include_detail(),
                                     page_size, request.page_token());
  if (!result.ok()) return result.status();

  response->Clear();
  response->set_institution_id(call.institution_id);
  response->set_date(date.ToString());
  auto totals = [](const cache::ReconcileTotals& in, v1::ReconcileTotals* out) {
    out->set_count(in.count);
    contract::AmountsToProto(in.amounts, out->mutable_amounts());
  };
  totals(result->settled, response->mutable_settled());
  totals(result->reversed, response->mutable_reversed());
  totals(result->net, response->mutable_net());
  for (const cache::ReconcileDetail& d : result->detail) {
    v1::ReconcileEntry* e = response->add_detail();
    e->set_settlement_id(d.settlement_id);
    e->set_request_id(d.request_id);
    e->set_status(d.status == cache::SettlementStatus::kReversed
                      ? v1::SETTLEMENT_STATUS_REVERSED
                      : v1::SETTLEMENT_STATUS_SETTLED);
    e->set_visit_type(static_cast<v1::VisitType>(d.visit_type));
    contract::AmountsToProto(d.amounts, e->mutable_amounts());
    e->set_settled_at(Timestamp(d.settled_at_unix));
    if (d.reversed_at_unix != 0) e->set_reversed_at(Timestamp(d.reversed_at_unix));
  }
  response->set_next_page_token(result->next_page_token);
  return absl::OkStatus();
}

}  // namespace medsettle::gateway
