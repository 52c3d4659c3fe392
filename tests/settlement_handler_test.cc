// The request handler's logic (gateway/settlement_handler.h) without Redis
// or a gRPC server: the shipped engine (engine/policies, the demo catalog)
// behind an EngineHolder, a fixed snapshot (tests/support/
// fake_snapshot_source.h), the in-memory store with the Redis store's
// contract (tests/support/fake_settlement_store.h) and an injected clock.
// What a settlement commits, replays and refuses, the retries after
// VERSION_MOVED and their limit, store failures passed through, reversal,
// and that every refusal writes nothing.
#include "gateway/settlement_handler.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cache/person_key.h"
#include "engine/engine.h"
#include "engine/status.h"
#include "engine/text.h"
#include "gateway/counters.h"
#include "gateway/engine_holder.h"
#include "gateway/snapshot_watcher.h"
#include "medsettle/v1/settlement.pb.h"
#include "proto/contract/convert.h"
#include "tests/support/engine_fixture.h"
#include "tests/support/fake_settlement_store.h"
#include "tests/support/fake_snapshot_source.h"

namespace medsettle::testing {
namespace {

using engine::Cat;
using engine::FieldOf;
using engine::ReasonOf;
using Op = FakeSettlementStore::Op;

constexpr engine::RegionCode kQuzhou = 330800;
constexpr std::string_view kVersion = "v-test-1";
// 2024-06-20T02:00:00Z = 10:00 in China Standard Time, the bureau's clock.
constexpr int64_t kNowMs = int64_t{1'718'848'800} * 1000;

// An 18-character resident ID number with a valid GB 11643 check digit
// (as tests/support/gateway_harness.h makes them; that helper needs Redis).
std::string IdNumber(int sequence) {
  char body[32];
  std::snprintf(body, sizeof body, "33080019800615%03d", sequence % 1000);
  static constexpr int kWeights[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
  int sum = 0;
  for (int i = 0; i < 17; ++i) sum += (body[i] - '0') * kWeights[i];
  const int check = (12 - sum % 11) % 11;
  return std::string(body, 17) + (check == 10 ? 'X' : static_cast<char>('0' + check));
}

void AddItem(v1::SettleRequest* r, std::string code, int64_t unit_price_cents, int quantity = 1) {
  v1::BillItem* item = r->add_items();
  item->set_line_no(r->items_size());
  item->set_code(code);
  item->set_name(std::move(code));
  item->set_quantity(Cat(quantity));
  item->set_unit_price_cents(unit_price_cents);
  item->set_amount_cents(unit_price_cents * quantity);
}

// An inpatient stay in June 2024 from the demo catalog: a procedure, nine
// bed-days, four consultations (14,143.00 元).
v1::SettleRequest Stay(std::string request_id, const std::string& id_number) {
  v1::SettleRequest r;
  r.set_request_id(std::move(request_id));
  r.mutable_credential()->set_id_card_no(id_number);
  r.mutable_visit()->set_type(v1::VISIT_TYPE_INPATIENT);
  r.mutable_visit()->set_admission_date("2024-06-03");
  r.mutable_visit()->set_discharge_date("2024-06-12");
  AddItem(&r, "FB0003", 1200000);
  AddItem(&r, "FA0003", 4800, 9);
  AddItem(&r, "FA0002", 2350, 4);
  return r;
}

engine::Accumulators FromProto(const v1::Accumulators& a) {
  engine::Accumulators out;
  absl::Status s = contract::AccumulatorsFromProto(a, &out);
  EXPECT_TRUE(s.ok()) << s;
  return out;
}

::testing::AssertionResult Refused(const absl::Status& s, absl::StatusCode code,
                                   std::string_view reason) {
  if (s.code() == code && ReasonOf(s) == reason) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "expected " << absl::StatusCodeToString(code) << " "
                                       << reason << ", got " << s << " (reason " << ReasonOf(s)
                                       << ")";
}

class SettlementHandlerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(engines_.Reload().ok());
    absl::StatusOr<cache::PersonKeyer> keyer =
        cache::PersonKeyer::Create("medsettle-test-secret-0123456789abcdef");
    ASSERT_TRUE(keyer.ok()) << keyer.status();
    keyer_ = std::make_unique<cache::PersonKeyer>(*std::move(keyer));
    id_ = IdNumber(1);
    absl::StatusOr<std::string> pk = keyer_->KeyOfIdNumber(id_);
    ASSERT_TRUE(pk.ok()) << pk.status();
    person_key_ = *pk;
    engine::Enrollment e = Person(kQuzhou, 2024);
    e.person_key = person_key_;
    store_.PutEnrollment(kVersion, e);
    snapshots_.Set(std::string(kVersion), {hospital_, Pharmacy(kQuzhou)});
    call_.institution_id = hospital_.institution_id;
    MakeHandler();
  }

  void MakeHandler(int commit_retries = 8) {
    gateway::HandlerOptions options;
    options.commit_retries = commit_retries;
    options.now_ms = [this] { return now_ms_.load(); };
    handler_ = std::make_unique<gateway::SettlementHandler>(engines_, snapshots_, store_, *keyer_,
                                                            counters_, std::move(options));
  }

  absl::Status Settle(const v1::SettleRequest& request, v1::SettleResponse* response) {
    return handler_->Settle(call_, request, response);
  }
  v1::SettleResponse SettleOk(const v1::SettleRequest& request) {
    v1::SettleResponse response;
    absl::Status s = Settle(request, &response);
    EXPECT_TRUE(s.ok()) << s;
    return response;
  }
  absl::Status Reverse(const std::string& settlement_id, v1::ReverseResponse* response,
                       const std::string& request_id = "rev-1") {
    v1::ReverseRequest r;
    r.set_request_id(request_id);
    r.set_settlement_id(settlement_id);
    r.set_reason("patient returned");
    return handler_->Reverse(call_, r, response);
  }
  engine::Accumulators Year() const { return store_.Accumulators(person_key_, 2024); }

  gateway::EngineHolder engines_{std::string(MEDSETTLE_SOURCE_DIR) + "/engine/policies",
                                 std::string(MEDSETTLE_SOURCE_DIR) +
                                     "/engine/catalog/demo-catalog.csv"};
  const engine::Institution hospital_ = Hospital(kQuzhou, 2);
  FakeSnapshotSource snapshots_;
  FakeSettlementStore store_;
  std::unique_ptr<cache::PersonKeyer> keyer_;
  gateway::GatewayCounters counters_;
  std::atomic<int64_t> now_ms_{kNowMs};
  std::unique_ptr<gateway::SettlementHandler> handler_;
  gateway::CallContext call_;
  std::string id_;
  std::string person_key_;
};

TEST_F(SettlementHandlerTest, SettleCommitsOnceAndThePayersAddUpToTheBill) {
  const v1::SettleResponse r = SettleOk(Stay("req-1", id_));
  EXPECT_EQ(r.status(), v1::SETTLEMENT_STATUS_SETTLED);
  EXPECT_FALSE(r.replayed());
  EXPECT_EQ(r.settlement_id().substr(0, 3), person_key_.substr(0, 2) + "-");
  const v1::Amounts& a = r.amounts();
  EXPECT_EQ(a.total_cents(), 1200000 + 9 * 4800 + 4 * 2350);
  EXPECT_EQ(a.base_fund_cents() + a.critical_illness_cents() + a.supplementary_cents() +
                a.patient_cents(),
            a.total_cents());
  EXPECT_GT(a.base_fund_cents(), 0);

  // One write: the accumulators moved by the response's delta, one record.
  EXPECT_EQ(store_.writes(), 1);
  EXPECT_EQ(store_.settlement_count(), 1u);
  const engine::Accumulators year = Year();
  EXPECT_EQ(year.version, 1);
  EXPECT_TRUE(year.SameTotals(FromProto(r.accumulator_delta())));
  EXPECT_TRUE(year.SameTotals(FromProto(r.year_to_date())));
  const std::vector<cache::JournalEntry> journal = store_.Journal();
  ASSERT_EQ(journal.size(), 1u);
  EXPECT_EQ(journal[0].kind, cache::JournalKind::kSettle);
  EXPECT_EQ(journal[0].settlement.settlement_id(), r.settlement_id());
  EXPECT_EQ(journal[0].settlement.content_hash(), gateway::ContentHash(Stay("req-1", id_)));
  EXPECT_EQ(journal[0].settlement.snapshot_version(), kVersion);
  EXPECT_EQ(journal[0].settlement.response().SerializeAsString(), r.SerializeAsString());
}

TEST_F(SettlementHandlerTest, ResentIdenticalRequestReplaysWithoutWriting) {
  const v1::SettleResponse first = SettleOk(Stay("req-1", id_));
  now_ms_ += 60'000;  // a minute later: the replay still says when it settled
  const v1::SettleResponse again = SettleOk(Stay("req-1", id_));
  EXPECT_TRUE(again.replayed());
  EXPECT_EQ(again.settlement_id(), first.settlement_id());
  EXPECT_EQ(again.settled_at(), first.settled_at());
  EXPECT_EQ(again.amounts().SerializeAsString(), first.amounts().SerializeAsString());
  EXPECT_EQ(store_.writes(), 1);
  EXPECT_EQ(Year().version, 1);
  EXPECT_TRUE(Year().SameTotals(FromProto(first.accumulator_delta())));
  EXPECT_EQ(counters_.replays.load(), 1u);
  EXPECT_EQ(store_.calls(Op::kCommitSettlement), 1);  // the read found it
}

TEST_F(SettlementHandlerTest, SameRequestIdWithOtherContentIsRefusedRequestIdReused) {
  SettleOk(Stay("req-1", id_));
  v1::SettleRequest other = Stay("req-1", id_);
  AddItem(&other, "FA0002", 2350);
  v1::SettleResponse response;
  const absl::Status s = Settle(other, &response);
  EXPECT_TRUE(Refused(s, absl::StatusCode::kAlreadyExists, cache::reason::kRequestIdReused));
  EXPECT_EQ(FieldOf(s), "request_id");
  EXPECT_EQ(store_.writes(), 1);
  EXPECT_EQ(Year().version, 1);
}

TEST_F(SettlementHandlerTest, VersionMovedIsReadAndComputedAgainThenCommits) {
  // Another gateway commits a general-outpatient visit of the same person
  // between this one's read and its commit, twice.
  engine::Accumulators other;
  other.ledger(engine::Ledger::kGeneralOutpatient).visits = 1;
  other.ledger(engine::Ledger::kGeneralOutpatient).in_scope_cents = 5000;
  int interfered = 0;
  store_.SetBeforeCommit([&](const cache::SettlementCommit&) {
    if (interfered < 2) {
      ++interfered;
      store_.BumpAccumulators(person_key_, 2024, other);
    }
  });
  const v1::SettleResponse r = SettleOk(Stay("req-1", id_));
  EXPECT_EQ(counters_.commit_retries.load(), 2u);
  EXPECT_EQ(store_.calls(Op::kReadForSettle), 3);
  EXPECT_EQ(store_.calls(Op::kCommitSettlement), 3);
  EXPECT_EQ(store_.writes(), 1);
  // Committed on the year as it was after the other gateway's two visits.
  engine::Accumulators expected;
  expected.AddTotals(other, 2);
  expected.AddTotals(FromProto(r.accumulator_delta()), 1);
  EXPECT_EQ(Year().version, 3);
  EXPECT_TRUE(Year().SameTotals(expected));
  EXPECT_TRUE(FromProto(r.year_to_date()).SameTotals(expected));
}

TEST_F(SettlementHandlerTest, ContentionBeyondCommitRetriesIsAbortedAndWritesNothing) {
  MakeHandler(/*commit_retries=*/2);
  store_.SetBeforeCommit(
      [&](const cache::SettlementCommit&) { store_.BumpAccumulators(person_key_, 2024); });
  v1::SettleResponse response;
  const absl::Status s = Settle(Stay("req-1", id_), &response);
  EXPECT_TRUE(Refused(s, absl::StatusCode::kAborted, gateway::reason::kAccumulatorsContended));
  EXPECT_EQ(store_.calls(Op::kCommitSettlement), 3);  // the first try and 2 retries
  EXPECT_EQ(store_.writes(), 0);
  EXPECT_EQ(store_.settlement_count(), 0u);
  EXPECT_TRUE(Year().SameTotals(engine::Accumulators{}));
  // Nothing of it stayed behind: the same request settles once it is calm.
  store_.SetBeforeCommit(nullptr);
  EXPECT_FALSE(SettleOk(Stay("req-1", id_)).replayed());
}

TEST_F(SettlementHandlerTest, StoreFailuresPassThroughAndWriteNothing) {
  store_.FailNext(Op::kReadForSettle, 1, FakeSettlementStore::RedisUnavailable());
  v1::SettleResponse response;
  absl::Status s = Settle(Stay("req-1", id_), &response);
  EXPECT_TRUE(Refused(s, absl::StatusCode::kUnavailable, cache::reason::kRedisUnavailable));
  EXPECT_EQ(store_.calls(Op::kCommitSettlement), 0);

  store_.FailNext(Op::kCommitSettlement, 1, FakeSettlementStore::RedisUnavailable());
  s = Settle(Stay("req-1", id_), &response);
  EXPECT_TRUE(Refused(s, absl::StatusCode::kUnavailable, cache::reason::kRedisUnavailable));
  EXPECT_EQ(store_.calls(Op::kCommitSettlement), 1);  // not retried: the outcome is unknown
  EXPECT_EQ(store_.writes(), 0);
  EXPECT_EQ(Year().version, 0);
}

TEST_F(SettlementHandlerTest, CommitWhoseReplyWasLostReplaysWhenResent) {
  store_.FailNext(Op::kCommitSettlement, 1, FakeSettlementStore::RedisUnavailable(),
                  /*applied=*/true);
  v1::SettleResponse lost;
  EXPECT_TRUE(Refused(Settle(Stay("req-1", id_), &lost), absl::StatusCode::kUnavailable,
                      cache::reason::kRedisUnavailable));
  ASSERT_EQ(store_.writes(), 1);
  const std::string committed = store_.Journal().at(0).settlement.settlement_id();
  const v1::SettleResponse again = SettleOk(Stay("req-1", id_));
  EXPECT_TRUE(again.replayed());
  EXPECT_EQ(again.settlement_id(), committed);
  EXPECT_EQ(store_.writes(), 1);
  EXPECT_EQ(Year().version, 1);
}

TEST_F(SettlementHandlerTest, PersonNotInTheSnapshotIsNotEnrolled) {
  v1::SettleResponse response;
  const absl::Status s = Settle(Stay("req-1", IdNumber(2)), &response);
  EXPECT_TRUE(Refused(s, absl::StatusCode::kFailedPrecondition,
                      gateway::reason::kPersonNotEnrolled));
  EXPECT_EQ(FieldOf(s), "credential");
  EXPECT_EQ(store_.writes(), 0);
  EXPECT_EQ(store_.calls(Op::kCommitSettlement), 0);
}

TEST_F(SettlementHandlerTest, InstitutionNotInTheRegistryIsRefusedBeforeAnyRead) {
  call_.institution_id = "H9999-NOBODY";
  v1::SettleResponse response;
  EXPECT_TRUE(Refused(Settle(Stay("req-1", id_), &response), absl::StatusCode::kPermissionDenied,
                      gateway::reason::kInstitutionUnknown));
  EXPECT_EQ(store_.calls(Op::kReadForSettle), 0);
  EXPECT_EQ(store_.writes(), 0);
}

TEST_F(SettlementHandlerTest, NoCurrentSnapshotIsUnavailable) {
  snapshots_.Clear();
  v1::SettleResponse response;
  EXPECT_TRUE(Refused(Settle(Stay("req-1", id_), &response), absl::StatusCode::kUnavailable,
                      gateway::reason::kSnapshotNotLoaded));
  EXPECT_EQ(store_.calls(Op::kReadForSettle), 0);
}

TEST_F(SettlementHandlerTest, PreSettleComputesTheSameSplitAndWritesNothing) {
  v1::SettleResponse trial;
  ASSERT_TRUE(handler_->PreSettle(call_, Stay("req-1", id_), &trial).ok());
  EXPECT_EQ(trial.status(), v1::SETTLEMENT_STATUS_TRIAL);
  EXPECT_TRUE(trial.settlement_id().empty());
  EXPECT_EQ(store_.calls(Op::kReadForCoverage), 1);
  EXPECT_EQ(store_.calls(Op::kReadForSettle), 0);
  EXPECT_EQ(store_.calls(Op::kCommitSettlement), 0);
  EXPECT_EQ(store_.writes(), 0);
  // The trial was not an attempt: the request id is still free.
  const v1::SettleResponse settled = SettleOk(Stay("req-1", id_));
  EXPECT_FALSE(settled.replayed());
  EXPECT_EQ(settled.amounts().SerializeAsString(), trial.amounts().SerializeAsString());
}

TEST_F(SettlementHandlerTest, ReverseRestoresTheAccumulatorsExactlyAndASecondReverseReplays) {
  SettleOk(Stay("req-0", id_));  // the year before the settlement reversed
  const engine::Accumulators before = Year();
  const v1::SettleResponse settled = SettleOk(Stay("req-1", id_));
  ASSERT_FALSE(Year().SameTotals(before));

  now_ms_ += 3'600'000;  // an hour later
  v1::ReverseResponse reversed;
  ASSERT_TRUE(Reverse(settled.settlement_id(), &reversed).ok());
  EXPECT_EQ(reversed.status(), v1::SETTLEMENT_STATUS_REVERSED);
  EXPECT_FALSE(reversed.replayed());
  EXPECT_EQ(reversed.reversed_at(), "2024-06-20T11:00:00+08:00");
  EXPECT_EQ(reversed.amounts().SerializeAsString(), settled.amounts().SerializeAsString());
  EXPECT_TRUE(Year().SameTotals(before));
  EXPECT_EQ(Year().version, 3);
  EXPECT_TRUE(FromProto(reversed.year_to_date()).SameTotals(before));
  EXPECT_EQ(store_.writes(), 3);

  now_ms_ += 60'000;
  v1::ReverseResponse again;
  ASSERT_TRUE(Reverse(settled.settlement_id(), &again, "rev-2").ok());
  EXPECT_TRUE(again.replayed());
  EXPECT_EQ(again.reversed_at(), reversed.reversed_at());
  EXPECT_EQ(store_.writes(), 3);
  EXPECT_EQ(Year().version, 3);
  EXPECT_TRUE(Year().SameTotals(before));

  // The settlement now reads as reversed, and a re-sent Settle says so.
  v1::GetSettlementRequest get;
  get.set_settlement_id(settled.settlement_id());
  v1::SettleResponse got;
  ASSERT_TRUE(handler_->GetSettlement(call_, get, &got).ok());
  EXPECT_EQ(got.status(), v1::SETTLEMENT_STATUS_REVERSED);
  const v1::SettleResponse replay = SettleOk(Stay("req-1", id_));
  EXPECT_TRUE(replay.replayed());
  EXPECT_EQ(replay.status(), v1::SETTLEMENT_STATUS_REVERSED);
}

TEST_F(SettlementHandlerTest, DeadlineAlreadyPassedIsRefusedAndWritesNothing) {
  call_.deadline = std::chrono::system_clock::now() - std::chrono::seconds(1);
  v1::SettleResponse response;
  const absl::Status s = Settle(Stay("req-1", id_), &response);
  EXPECT_TRUE(Refused(s, absl::StatusCode::kDeadlineExceeded, gateway::reason::kDeadlineExceeded));
  EXPECT_EQ(store_.calls(Op::kReadForSettle), 0);
  EXPECT_EQ(store_.calls(Op::kCommitSettlement), 0);
  EXPECT_EQ(store_.writes(), 0);
}

TEST_F(SettlementHandlerTest, InjectedClockDecidesSettledAtAndTheSettlementId) {
  const v1::SettleResponse r = SettleOk(Stay("req-1", id_));
  EXPECT_EQ(r.settled_at(), "2024-06-20T10:00:00+08:00");
  // "<tag>-" + 12 hex of the Unix ms.
  char ms_hex[16];
  std::snprintf(ms_hex, sizeof ms_hex, "%012llx", static_cast<unsigned long long>(kNowMs));
  EXPECT_EQ(r.settlement_id().substr(3, 12), ms_hex);
  const std::vector<cache::JournalEntry> journal = store_.Journal();
  ASSERT_EQ(journal.size(), 1u);
  EXPECT_EQ(journal[0].settlement.settled_at_unix_ms(), kNowMs);
}

TEST_F(SettlementHandlerTest, ReconcileCountsTheDaysSettlementsAndReversals) {
  const v1::SettleResponse a = SettleOk(Stay("req-1", id_));
  const v1::SettleResponse b = SettleOk(Stay("req-2", id_));
  v1::ReverseResponse reversed;
  ASSERT_TRUE(Reverse(a.settlement_id(), &reversed).ok());

  v1::ReconcileRequest request;
  request.set_date("2024-06-12");  // a stay's settlement date: its discharge
  request.set_include_detail(true);
  v1::ReconcileResponse day;
  ASSERT_TRUE(handler_->Reconcile(call_, request, &day).ok());
  EXPECT_EQ(day.settled().count(), 2);
  EXPECT_EQ(day.reversed().count(), 1);
  EXPECT_EQ(day.net().count(), 1);
  EXPECT_EQ(day.net().amounts().SerializeAsString(), b.amounts().SerializeAsString());
  ASSERT_EQ(day.detail_size(), 2);
  EXPECT_EQ(day.detail(0).settlement_id(), a.settlement_id());
  EXPECT_EQ(day.detail(0).status(), v1::SETTLEMENT_STATUS_REVERSED);
  EXPECT_EQ(day.detail(1).settlement_id(), b.settlement_id());
  EXPECT_TRUE(day.next_page_token().empty());
}

}  // namespace
}  // namespace medsettle::testing
