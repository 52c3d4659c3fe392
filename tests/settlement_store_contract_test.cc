// The contract of cache::SettlementStore (cache/settlement_store.h), run
// against both implementations: the in-memory fake the handler's unit tests
// use (tests/support/fake_settlement_store.h) and RedisSettlementStore over
// a real redis-server of the test's own (tests/support/redis_server.h).
// The same cases, the same expectations: commit, read back, replay, request
// id reuse, version moved, a code's nonce used once, reversal (exact and
// once), refusals, Reconcile's totals and pages. A case that passes on one
// and fails on the other is the fake drifting from Redis (or the reverse).
// Redis instances skip themselves when redis-server is not installed.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cache/connection_pool.h"
#include "cache/redis_settlement_store.h"
#include "cache/settlement_store.h"
#include "cache/snapshot_store.h"
#include "engine/engine.h"
#include "engine/status.h"
#include "engine/text.h"
#include "google/protobuf/util/message_differencer.h"
#include "medsettle/v1/ledger.pb.h"
#include "medsettle/v1/settlement.pb.h"
#include "proto/contract/convert.h"
#include "proto/contract/ledger_record.h"
#include "tests/support/engine_fixture.h"
#include "tests/support/fake_settlement_store.h"
#include "tests/support/redis_server.h"

namespace medsettle::testing {
namespace {

using cache::CommitOutcome;
using engine::Cat;
using engine::ReasonOf;

constexpr int32_t kYear = 2024;
const std::string kPersonKey = "3fa1c2d3e4f5061728394a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f9";
const std::string kUnknownPerson =
    "3f0000000000000000000000000000000000000000000000000000000000dead";
const std::string kInstitution = "H3308020001";
const std::string kOtherInstitution = "H3308020002";
constexpr int64_t kNowMs = int64_t{1'718'000'000} * 1000;  // 2024-06-10
constexpr std::string_view kDay = "2024-06-10";

// One implementation under test, with its way of loading a snapshot.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual cache::SettlementStore& store() = 0;
  // A snapshot version holding `persons`; its id.
  virtual absl::StatusOr<std::string> Load(const std::vector<engine::Enrollment>& persons) = 0;
};

class FakeBackend final : public Backend {
 public:
  cache::SettlementStore& store() override { return store_; }
  absl::StatusOr<std::string> Load(const std::vector<engine::Enrollment>& persons) override {
    for (const engine::Enrollment& e : persons) store_.PutEnrollment("v-fake", e);
    return std::string("v-fake");
  }

 private:
  FakeSettlementStore store_;
};

class RedisBackend final : public Backend {
 public:
  explicit RedisBackend(std::unique_ptr<RedisServer> server) : server_(std::move(server)) {
    cache::PoolOptions options;
    options.redis = {.host = server_->host(), .port = server_->port(),
                     .connect_timeout_ms = 1000, .command_timeout_ms = 5000};
    options.size = 4;
    pool_ = std::make_unique<cache::ConnectionPool>(options);
    store_ = std::make_unique<cache::RedisSettlementStore>(*pool_);
  }
  cache::SettlementStore& store() override { return *store_; }
  absl::StatusOr<std::string> Load(const std::vector<engine::Enrollment>& persons) override {
    cache::SnapshotStore snapshots(*pool_);
    absl::StatusOr<std::string> v = snapshots.BeginLoad();
    if (!v.ok()) return v.status();
    absl::StatusOr<int64_t> added = snapshots.PutPersons(*v, persons);
    if (!added.ok()) return added.status();
    if (absl::Status s = snapshots.Commit(
            *v, {.persons = static_cast<int64_t>(persons.size()), .institutions = 0}, "test");
        !s.ok()) {
      return s;
    }
    return v;
  }

 private:
  std::unique_ptr<RedisServer> server_;
  std::unique_ptr<cache::ConnectionPool> pool_;
  std::unique_ptr<cache::RedisSettlementStore> store_;
};

::testing::AssertionResult SameMessage(const google::protobuf::Message& a,
                                       const google::protobuf::Message& b) {
  google::protobuf::util::MessageDifferencer differencer;
  std::string diff;
  differencer.ReportDifferencesToString(&diff);
  if (differencer.Compare(a, b)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "messages differ: " << diff;
}

::testing::AssertionResult Refused(const absl::Status& s, absl::StatusCode code,
                                   std::string_view reason) {
  if (s.code() == code && ReasonOf(s) == reason) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "expected " << absl::StatusCodeToString(code) << " "
                                       << reason << ", got " << s << " (reason " << ReasonOf(s)
                                       << ")";
}

engine::Institution TheHospital(const std::string& id = kInstitution) {
  engine::Institution h = Hospital(330802, 2);
  h.institution_id = id;
  return h;
}

// A general-outpatient bill of `date` (two lines of the demo catalog).
v1::SettleRequest Bill(const std::string& request_id, std::string_view date = kDay) {
  v1::SettleRequest r;
  r.set_request_id(request_id);
  // What the counter scanned; BuildLedgerRecord drops it.
  r.mutable_credential()->set_insurance_card_no("TESTCARD-0001");
  r.mutable_visit()->set_type(v1::VISIT_TYPE_GENERAL_OUTPATIENT);
  r.mutable_visit()->set_service_date(std::string(date));
  auto add = [&r](std::string code, std::string quantity, int64_t unit, int64_t amount) {
    v1::BillItem* item = r.add_items();
    item->set_line_no(r.items_size());
    item->set_code(code);
    item->set_name(std::move(code));
    item->set_quantity(std::move(quantity));
    item->set_unit_price_cents(unit);
    item->set_amount_cents(amount);
  };
  add("FA0001", "1", 1000, 1000);
  add("XA0001", "20", 1500, 30000);
  return r;
}

class SettlementStoreContractTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    ShippedEngine();
    if (GetParam() == "redis") {
      absl::StatusOr<std::unique_ptr<RedisServer>> server = RedisServer::Start();
      if (!server.ok() && server.status().code() == absl::StatusCode::kNotFound) {
        GTEST_SKIP() << "redis-server is not installed";
      }
      ASSERT_TRUE(server.ok()) << server.status();
      backend_ = std::make_unique<RedisBackend>(*std::move(server));
    } else {
      backend_ = std::make_unique<FakeBackend>();
    }
    engine::Enrollment e = Person(330800, kYear);
    e.person_key = kPersonKey;
    absl::StatusOr<std::string> v = backend_->Load({e});
    ASSERT_TRUE(v.ok()) << v.status();
    version_ = *v;
  }

  cache::SettlementStore& store() { return backend_->store(); }

  cache::SettleRead Read(const std::string& request_id, const std::string& institution,
                         const cache::CodeReads& code = {}) {
    absl::StatusOr<cache::SettleRead> r =
        store().ReadForSettle(version_, kPersonKey, kYear, institution, request_id, code);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *std::move(r) : cache::SettleRead{};
  }

  // What the gateway commits for `request_id` on `read`: the shipped
  // engine's settlement, the record built as the handler builds it.
  cache::SettlementCommit Compute(const cache::SettleRead& read, const std::string& request_id,
                                  const std::string& institution = kInstitution,
                                  const std::string& content = "") {
    const v1::SettleRequest request = Bill(request_id);
    engine::Claim claim;
    EXPECT_TRUE(contract::ClaimFromProto(request, &claim).ok());
    EXPECT_TRUE(read.enrollment.has_value());
    if (!read.enrollment.has_value()) return {};
    const engine::Institution hospital = TheHospital(institution);
    engine::Settlement s;
    absl::Status settled = ShippedEngine().Settle({.enrollment = &*read.enrollment,
                                                   .institution = &hospital,
                                                   .year_to_date = &read.accumulators,
                                                   .claim = &claim},
                                                  &s);
    EXPECT_TRUE(settled.ok()) << settled;
    v1::SettleResponse response;
    contract::SettlementToProto(s, claim, kPersonKey, institution, &response);
    const std::string id = cache::NewSettlementId(kPersonKey, kNowMs);
    response.set_settlement_id(id);
    response.set_status(v1::SETTLEMENT_STATUS_SETTLED);
    cache::SettlementCommit c;
    contract::BuildLedgerRecord(request, *read.enrollment, hospital, read.accumulators, response,
                                {.settlement_id = id,
                                 .institution_id = institution,
                                 .person_key = kPersonKey,
                                 .content_hash = Cat("hash-of-", request_id, content),
                                 .credential_kind = "ID_CARD",
                                 .settled_at_unix_ms = kNowMs,
                                 .snapshot_version = version_,
                                 .policy_sha256 = std::string(64, '1'),
                                 .catalog_sha256 = std::string(64, '2')},
                                &c.record);
    c.expected_version = read.accumulators.version;
    return c;
  }

  cache::CommitResult Commit(const cache::SettlementCommit& c) {
    absl::StatusOr<cache::CommitResult> r = store().CommitSettlement(c);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : cache::CommitResult{};
  }

  // Reads, computes and commits `request_id`; the commit.
  cache::SettlementCommit SettleOne(const std::string& request_id,
                                    const std::string& institution = kInstitution) {
    cache::SettlementCommit c = Compute(Read(request_id, institution), request_id, institution);
    EXPECT_EQ(Commit(c).outcome, CommitOutcome::kCommitted) << request_id;
    return c;
  }

  engine::Accumulators Year() {
    absl::StatusOr<cache::CoverageRead> r = store().ReadForCoverage(version_, kPersonKey, kYear);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->accumulators : engine::Accumulators{};
  }

  static engine::Accumulators DeltaOf(const cache::SettlementCommit& c) {
    contract::RecordEffect effect;
    EXPECT_TRUE(contract::EffectOf(c.record, &effect).ok());
    return effect.delta;
  }

  // The reversal of `settled` as the handler's Reverse builds it.
  static v1::LedgerReversal ReversalOf(const v1::LedgerRecord& settled,
                                       const std::string& institution) {
    v1::LedgerReversal r;
    r.set_format(contract::kLedgerRecordFormat);
    r.set_settlement_id(settled.settlement_id());
    r.set_institution_id(institution);
    r.set_request_id(Cat("rev-", settled.request_id()));
    r.set_reversed_at_unix_ms(kNowMs + 60'000);
    r.set_person_key(settled.person_key());
    r.set_year(settled.year());
    r.set_settlement_date(settled.settlement_date());
    *r.mutable_amounts() = settled.response().amounts();
    *r.mutable_delta() = settled.response().accumulator_delta();
    r.mutable_response()->set_settlement_id(settled.settlement_id());
    r.set_settle_request_id(settled.request_id());
    return r;
  }

  std::unique_ptr<Backend> backend_;
  std::string version_;
};

INSTANTIATE_TEST_SUITE_P(Store, SettlementStoreContractTest, ::testing::Values("fake", "redis"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

TEST_P(SettlementStoreContractTest, CommitIsReadBackAndAnIdenticalCommitReplays) {
  const cache::SettleRead first = Read("req-1", kInstitution);
  ASSERT_TRUE(first.enrollment.has_value());
  EXPECT_EQ(first.enrollment->person_key, kPersonKey);
  EXPECT_FALSE(first.prior.has_value());
  EXPECT_EQ(first.accumulators.version, 0);

  const cache::SettlementCommit c = Compute(first, "req-1");
  const cache::CommitResult committed = Commit(c);
  EXPECT_EQ(committed.outcome, CommitOutcome::kCommitted);
  EXPECT_EQ(committed.settlement_id, c.record.settlement_id());
  EXPECT_EQ(committed.accumulators_version, 1);

  const cache::SettleRead again = Read("req-1", kInstitution);
  ASSERT_TRUE(again.prior.has_value());
  EXPECT_EQ(again.prior->content_hash, c.record.content_hash());
  EXPECT_EQ(again.prior->settlement_id, c.record.settlement_id());
  EXPECT_FALSE(again.prior->reversed);
  ASSERT_TRUE(again.prior->record.has_value());
  EXPECT_TRUE(SameMessage(*again.prior->record, c.record));
  EXPECT_EQ(again.accumulators.version, 1);
  EXPECT_TRUE(again.accumulators.SameTotals(DeltaOf(c)));

  absl::StatusOr<cache::StoredSettlement> stored = store().GetSettlement(c.record.settlement_id());
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->status, cache::SettlementStatus::kSettled);
  EXPECT_FALSE(stored->reversal.has_value());
  EXPECT_TRUE(SameMessage(stored->record, c.record));

  // The same commit again (a retry after an unknown outcome) replays.
  const cache::CommitResult replayed = Commit(c);
  EXPECT_EQ(replayed.outcome, CommitOutcome::kReplayed);
  EXPECT_EQ(replayed.settlement_id, c.record.settlement_id());
  EXPECT_FALSE(replayed.reversed);
  EXPECT_EQ(Year().version, 1);
  EXPECT_TRUE(Year().SameTotals(DeltaOf(c)));
}

TEST_P(SettlementStoreContractTest, SameRequestIdWithOtherContentIsRefusedAndWritesNothing) {
  const cache::SettlementCommit a = SettleOne("req-1");
  const cache::SettlementCommit other =
      Compute(Read("req-x", kInstitution), "req-1", kInstitution, "-other");
  absl::StatusOr<cache::CommitResult> r = store().CommitSettlement(other);
  EXPECT_TRUE(Refused(r.status(), absl::StatusCode::kAlreadyExists,
                      cache::reason::kRequestIdReused));
  EXPECT_EQ(engine::FieldOf(r.status()), "request_id");
  EXPECT_EQ(Year().version, 1);
  EXPECT_EQ(store().GetSettlement(other.record.settlement_id()).status().code(),
            absl::StatusCode::kNotFound);
  // The same request id at another institution is another request.
  EXPECT_FALSE(Read("req-1", kOtherInstitution).prior.has_value());
}

TEST_P(SettlementStoreContractTest, MovedVersionIsReportedAndWritesNothing) {
  const cache::SettleRead read = Read("req-2", kInstitution);
  SettleOne("req-1");
  const cache::SettlementCommit stale = Compute(read, "req-2");
  const cache::CommitResult r = Commit(stale);
  EXPECT_EQ(r.outcome, CommitOutcome::kVersionMoved);
  EXPECT_EQ(r.accumulators_version, 1);
  EXPECT_EQ(Year().version, 1);
  EXPECT_FALSE(Read("req-2", kInstitution).prior.has_value());
  // Read, computed and committed again, it goes through.
  EXPECT_EQ(Commit(Compute(Read("req-2", kInstitution), "req-2")).outcome,
            CommitOutcome::kCommitted);
  EXPECT_EQ(Year().version, 2);
}

TEST_P(SettlementStoreContractTest, CodeNonceIsUsedOnceAndAReplayWinsOverIt) {
  const std::string nonce(32, 'a');
  cache::SettlementCommit a = Compute(Read("req-1", kInstitution, {.nonce = nonce}), "req-1");
  a.token_nonce = nonce;
  a.nonce_expires_unix = kNowMs / 1000 + 3600;
  ASSERT_EQ(Commit(a).outcome, CommitOutcome::kCommitted);

  const cache::SettleRead read = Read("req-2", kInstitution, {.nonce = nonce});
  EXPECT_EQ(read.nonce_used_by, a.record.settlement_id());
  cache::SettlementCommit b = Compute(read, "req-2");
  b.token_nonce = nonce;
  b.nonce_expires_unix = a.nonce_expires_unix;
  const cache::CommitResult used = Commit(b);
  EXPECT_EQ(used.outcome, CommitOutcome::kNonceUsed);
  EXPECT_EQ(used.settlement_id, a.record.settlement_id());
  EXPECT_EQ(Year().version, 1);
  // Re-sending the request that used the code returns its settlement.
  EXPECT_EQ(Commit(a).outcome, CommitOutcome::kReplayed);
  // Another nonce is unused.
  EXPECT_EQ(Read("req-3", kInstitution, {.nonce = std::string(32, 'b')}).nonce_used_by, "");
}

TEST_P(SettlementStoreContractTest, ReversalRestoresTheAccumulatorsExactlyAndOnce) {
  const cache::SettlementCommit a = SettleOne("req-1");
  const cache::SettlementCommit b = SettleOne("req-2");
  const v1::LedgerReversal reversal = ReversalOf(b.record, kInstitution);

  absl::StatusOr<cache::ReversalResult> r = store().CommitReversal(b.record, reversal);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->replayed);
  EXPECT_TRUE(SameMessage(r->reversal, reversal));
  EXPECT_EQ(r->accumulators.version, 3);
  EXPECT_TRUE(r->accumulators.SameTotals(DeltaOf(a)));
  EXPECT_TRUE(Year().SameTotals(DeltaOf(a)));

  v1::LedgerReversal second = reversal;
  second.set_request_id("rev-again");
  absl::StatusOr<cache::ReversalResult> again = store().CommitReversal(b.record, second);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->replayed);
  EXPECT_TRUE(SameMessage(again->reversal, reversal));  // the stored one
  EXPECT_EQ(again->accumulators.version, 3);
  EXPECT_TRUE(again->accumulators.SameTotals(DeltaOf(a)));

  absl::StatusOr<cache::StoredSettlement> stored = store().GetSettlement(b.record.settlement_id());
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->status, cache::SettlementStatus::kReversed);
  ASSERT_TRUE(stored->reversal.has_value());
  EXPECT_TRUE(SameMessage(*stored->reversal, reversal));
  const cache::SettleRead read = Read("req-2", kInstitution);
  ASSERT_TRUE(read.prior.has_value());
  EXPECT_TRUE(read.prior->reversed);
  const cache::CommitResult replay = Commit(b);
  EXPECT_EQ(replay.outcome, CommitOutcome::kReplayed);
  EXPECT_TRUE(replay.reversed);
}

TEST_P(SettlementStoreContractTest, RefusalsWriteNothing) {
  const cache::SettlementCommit a = SettleOne("req-1");
  // Another institution's reversal; one naming another settlement.
  v1::LedgerReversal theirs = ReversalOf(a.record, kOtherInstitution);
  EXPECT_TRUE(Refused(store().CommitReversal(a.record, theirs).status(),
                      absl::StatusCode::kPermissionDenied, cache::reason::kNotYourSettlement));
  v1::LedgerReversal wrong = ReversalOf(a.record, kInstitution);
  wrong.set_year(kYear - 1);
  EXPECT_TRUE(Refused(store().CommitReversal(a.record, wrong).status(),
                      absl::StatusCode::kInvalidArgument, cache::reason::kSettlementIdInvalid));
  // A settlement the store never had.
  v1::LedgerRecord never = a.record;
  never.set_settlement_id(cache::NewSettlementId(kPersonKey, kNowMs));
  EXPECT_TRUE(Refused(store().CommitReversal(never, ReversalOf(never, kInstitution)).status(),
                      absl::StatusCode::kNotFound, cache::reason::kSettlementNotFound));
  EXPECT_TRUE(Refused(store().GetSettlement(never.settlement_id()).status(),
                      absl::StatusCode::kNotFound, cache::reason::kSettlementNotFound));
  EXPECT_TRUE(Refused(store().GetSettlement("nonsense").status(),
                      absl::StatusCode::kInvalidArgument, cache::reason::kSettlementIdInvalid));
  // A commit without its settlement date; a person key that is not one.
  cache::SettlementCommit undated = Compute(Read("req-2", kInstitution), "req-2");
  undated.record.clear_settlement_date();
  EXPECT_TRUE(Refused(store().CommitSettlement(undated).status(),
                      absl::StatusCode::kInvalidArgument, engine::reason::kDateMissing));
  EXPECT_TRUE(Refused(store().ReadForSettle(version_, "not-a-key", kYear, kInstitution, "r")
                          .status(),
                      absl::StatusCode::kInvalidArgument, cache::reason::kPersonKeyInvalid));
  EXPECT_EQ(Year().version, 1);
  EXPECT_TRUE(Year().SameTotals(DeltaOf(a)));
  // A person the snapshot does not hold.
  absl::StatusOr<cache::SettleRead> unknown =
      store().ReadForSettle(version_, kUnknownPerson, kYear, kInstitution, "r");
  ASSERT_TRUE(unknown.ok()) << unknown.status();
  EXPECT_FALSE(unknown->enrollment.has_value());
  EXPECT_EQ(unknown->accumulators.version, 0);
}

TEST_P(SettlementStoreContractTest, ReconcileTotalsAndPages) {
  const cache::SettlementCommit a = SettleOne("req-1");
  const cache::SettlementCommit b = SettleOne("req-2");
  SettleOne("req-3", kOtherInstitution);
  ASSERT_TRUE(store().CommitReversal(a.record, ReversalOf(a.record, kInstitution)).ok());

  const engine::Date day = D(kDay);
  absl::StatusOr<cache::ReconcileResult> r = store().Reconcile(kInstitution, day, false, 0, "");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->settled.count, 2);
  EXPECT_EQ(r->reversed.count, 1);
  EXPECT_EQ(r->net.count, 1);
  engine::Amounts b_amounts;
  contract::AmountsFromProto(b.record.response().amounts(), &b_amounts);
  EXPECT_EQ(r->net.amounts, b_amounts);
  EXPECT_TRUE(r->detail.empty());

  // Pages of one: a, then b, then the end.
  absl::StatusOr<cache::ReconcileResult> page = store().Reconcile(kInstitution, day, true, 1, "");
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->detail.size(), 1u);
  EXPECT_EQ(page->detail[0].settlement_id, a.record.settlement_id());
  EXPECT_EQ(page->detail[0].request_id, "req-1");
  EXPECT_EQ(page->detail[0].status, cache::SettlementStatus::kReversed);
  EXPECT_EQ(page->detail[0].settled_at_unix, kNowMs / 1000);
  EXPECT_EQ(page->detail[0].reversed_at_unix, kNowMs / 1000 + 60);
  ASSERT_FALSE(page->next_page_token.empty());
  page = store().Reconcile(kInstitution, day, true, 1, page->next_page_token);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->detail.size(), 1u);
  EXPECT_EQ(page->detail[0].settlement_id, b.record.settlement_id());
  EXPECT_EQ(page->detail[0].status, cache::SettlementStatus::kSettled);
  EXPECT_EQ(page->detail[0].amounts, b_amounts);
  EXPECT_EQ(page->next_page_token, "");

  EXPECT_TRUE(Refused(store().Reconcile(kInstitution, day, true, 0, "").status(),
                      absl::StatusCode::kInvalidArgument, cache::reason::kPageSizeInvalid));
  EXPECT_TRUE(Refused(store().Reconcile(kInstitution, day, true, 10, "p1-zz-0").status(),
                      absl::StatusCode::kInvalidArgument, cache::reason::kPageTokenInvalid));
  EXPECT_TRUE(Refused(store().Reconcile("", day, false, 0, "").status(),
                      absl::StatusCode::kInvalidArgument, engine::reason::kInstitutionInvalid));
}

}  // namespace
}  // namespace medsettle::testing
