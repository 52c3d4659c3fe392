// The settlement store (cache/settlement_store.h) against a real
// redis-server of the test's own, with the shipped engine computing the
// settlements: read → compute → commit, exactly once under replays and
// races, version checks that write nothing, NOSCRIPT recovery, reversal,
// the journal as the sum of what was committed, and two round trips per
// uncontended settlement.
#include "cache/settlement_store.h"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "cache/connection_pool.h"
#include "cache/redis_client.h"
#include "cache/snapshot_store.h"
#include "engine/engine.h"
#include "engine/status.h"
#include "engine/text.h"
#include "engine/types.h"
#include "tests/support/engine_fixture.h"
#include "tests/support/redis_server.h"

namespace medsettle::cache {
namespace {

using engine::Accumulators;
using engine::Cat;
using engine::ReasonOf;
using engine::Settlement;
using engine::VisitType;
using medsettle::testing::RedisServerTest;

constexpr engine::RegionCode kQuzhou = 330800;
constexpr engine::RegionCode kKecheng = 330802;
constexpr int32_t kYear = 2024;
const std::string kPersonKey =
    "3fa1c2d3e4f5061728394a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f9";
const std::string kInstitution = "H3308020001";
constexpr int64_t kNowUnix = 1'718'000'000;  // 2024-06-10

engine::Institution TheHospital() {
  engine::Institution h = medsettle::testing::Hospital(kKecheng, 2);
  h.institution_id = kInstitution;
  return h;
}

// A general-outpatient bill large enough that 200 of them reach the
// year's fund cap.
engine::Claim Bill(const std::string& request_id) {
  engine::Claim c = medsettle::testing::Outpatient(
      VisitType::kGeneralOutpatient, "2024-06-10",
      {medsettle::testing::Line(1, "FA0001", "1", 1000),
       medsettle::testing::Line(2, "XA0001", "20", 1500)});
  c.request_id = request_id;
  return c;
}

// What the gateway would send back: depends on the settlement and its id.
std::string ResponseOf(const std::string& settlement_id, const Settlement& s) {
  return Cat(settlement_id, "|total=", s.amounts.total_cents, "|fund=", s.amounts.base_fund_cents,
             "|patient=", s.amounts.patient_cents);
}

class SettlementStoreTest : public RedisServerTest {
 protected:
  void SetUp() override {
    RedisServerTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    medsettle::testing::ShippedEngine();  // loaded before any thread needs it
    pool_ = MakePool(16);
    store_ = std::make_unique<SettlementStore>(*pool_);
    SnapshotStore snapshots(*pool_);
    absl::StatusOr<std::string> v = snapshots.BeginLoad();
    ASSERT_TRUE(v.ok()) << v.status();
    engine::Enrollment e = medsettle::testing::Person(kQuzhou, kYear);
    e.person_key = kPersonKey;
    std::vector<engine::Enrollment> persons = {e};
    absl::StatusOr<int64_t> added = snapshots.PutPersons(*v, persons);
    ASSERT_TRUE(added.ok()) << added.status();
    absl::Status committed = snapshots.Commit(*v, {.persons = 1, .institutions = 0}, "test");
    ASSERT_TRUE(committed.ok()) << committed;
    version_ = *v;
  }

  std::unique_ptr<ConnectionPool> MakePool(int size) {
    PoolOptions options;
    options.redis = {.host = redis().host(), .port = redis().port(),
                     .connect_timeout_ms = 1000, .command_timeout_ms = 5000};
    options.size = size;
    options.acquire_timeout_ms = 10000;
    return std::make_unique<ConnectionPool>(options);
  }

  SettleRead Read(const std::string& request_id, SettlementStore* store = nullptr) {
    absl::StatusOr<SettleRead> read = (store ? store : store_.get())
                                          ->ReadForSettle(version_, kPersonKey, kYear,
                                                          kInstitution, request_id);
    EXPECT_TRUE(read.ok()) << read.status();
    return read.ok() ? *std::move(read) : SettleRead{};
  }

  // Computes the settlement of `request_id` on `read` into a commit.
  SettlementCommit Compute(const SettleRead& read, const std::string& request_id,
                           Settlement* s) {
    engine::Institution h = TheHospital();
    engine::Claim claim = Bill(request_id);
    absl::Status settled = medsettle::testing::ShippedEngine().Settle(
        {.enrollment = &*read.enrollment, .institution = &h,
         .year_to_date = &read.accumulators, .claim = &claim},
        s);
    EXPECT_TRUE(settled.ok()) << settled;
    SettlementCommit c;
    c.person_key = kPersonKey;
    c.year = kYear;
    c.institution_id = kInstitution;
    c.request_id = request_id;
    c.content_hash = Cat("hash-of-", request_id);
    c.settlement_id = NewSettlementId(kPersonKey, kNowUnix * 1000);
    c.response = ResponseOf(c.settlement_id, *s);
    c.expected_version = read.accumulators.version;
    c.after = s->after;
    c.delta = s->delta;
    c.settlement_date = s->settlement_date;
    c.amounts = s->amounts;
    c.now_unix = kNowUnix;
    return c;
  }

  // Read, compute, commit; again on VERSION_MOVED, at most `attempts`
  // times. A prior result found by the read is a replay.
  absl::StatusOr<CommitResult> SettleLoop(const std::string& request_id, int attempts,
                                          int* tries = nullptr) {
    for (int attempt = 1; attempt <= attempts; ++attempt) {
      if (tries != nullptr) *tries = attempt;
      absl::StatusOr<SettleRead> read =
          store_->ReadForSettle(version_, kPersonKey, kYear, kInstitution, request_id);
      if (!read.ok()) return read.status();
      if (read->prior.has_value()) {
        return CommitResult{.outcome = CommitOutcome::kReplayed,
                            .settlement_id = read->prior->settlement_id,
                            .response = read->prior->response};
      }
      Settlement s;
      SettlementCommit c = Compute(*read, request_id, &s);
      absl::StatusOr<CommitResult> r = store_->CommitSettlement(c);
      if (!r.ok() || r->outcome != CommitOutcome::kVersionMoved) return r;
    }
    return absl::AbortedError("too many VERSION_MOVED");
  }

  CommitResult Commit(const SettlementCommit& c) {
    absl::StatusOr<CommitResult> r = store_->CommitSettlement(c);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : CommitResult{};
  }

  int64_t DbSize() {
    RedisResult r = pool_->Command({"DBSIZE"});
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->integer : -1;
  }

  std::vector<JournalEntry> Journal() {
    absl::StatusOr<std::vector<JournalEntry>> j = store_->ReadJournal("3f", 0, INT64_MAX);
    EXPECT_TRUE(j.ok()) << j.status();
    return j.ok() ? *j : std::vector<JournalEntry>{};
  }

  std::string version_;
  std::unique_ptr<ConnectionPool> pool_;
  std::unique_ptr<SettlementStore> store_;
};

TEST(SettlementIds, BeginWithTheTagAndAreUnique) {
  std::string a = NewSettlementId(kPersonKey, 1);
  std::string b = NewSettlementId(kPersonKey, 1);
  EXPECT_NE(a, b);
  EXPECT_EQ(a.substr(0, 3), "3f-");
  absl::StatusOr<std::string> tag = TagOfSettlementId(a);
  ASSERT_TRUE(tag.ok()) << tag.status();
  EXPECT_EQ(*tag, "3f");
  EXPECT_EQ(SettlementKey(a), Cat("stl:{3f}:", a));
  for (const char* bad : {"", "3f", "3F-x", "zz-1", "3f_1"}) {
    EXPECT_EQ(ReasonOf(TagOfSettlementId(bad).status()), reason::kSettlementIdInvalid) << bad;
  }
  EXPECT_EQ(AccumulatorsKey(kPersonKey, 2024), Cat("acc:{3f}:", kPersonKey, ":2024"));
  EXPECT_EQ(IdempotencyKey("3f", "H1", "r1"), "idem:{3f}:H1:r1");
  EXPECT_EQ(JournalKey("3f"), "journal:{3f}");
}

TEST_F(SettlementStoreTest, ReadComputeCommitReadRoundTrip) {
  SettleRead first = Read("r1");
  ASSERT_TRUE(first.enrollment.has_value());
  EXPECT_EQ(first.enrollment->person_key, kPersonKey);
  EXPECT_EQ(first.accumulators.version, 0);
  EXPECT_TRUE(first.accumulators.SameTotals(Accumulators{}));
  EXPECT_FALSE(first.prior.has_value());

  Settlement s;
  SettlementCommit c = Compute(first, "r1", &s);
  CommitResult r = Commit(c);
  EXPECT_EQ(r.outcome, CommitOutcome::kCommitted);
  EXPECT_EQ(r.accumulators_version, 1);

  SettleRead second = Read("r1");
  EXPECT_EQ(second.accumulators.version, 1);
  EXPECT_TRUE(second.accumulators.SameTotals(s.after));
  ASSERT_TRUE(second.prior.has_value());
  EXPECT_EQ(second.prior->content_hash, "hash-of-r1");
  EXPECT_EQ(second.prior->settlement_id, c.settlement_id);
  EXPECT_EQ(second.prior->response, c.response);

  absl::StatusOr<SettlementRecord> rec = store_->GetSettlement(c.settlement_id);
  ASSERT_TRUE(rec.ok()) << rec.status();
  EXPECT_EQ(rec->status, SettlementStatus::kSettled);
  EXPECT_EQ(rec->institution_id, kInstitution);
  EXPECT_EQ(rec->person_key, kPersonKey);
  EXPECT_EQ(rec->year, kYear);
  EXPECT_EQ(rec->request_id, "r1");
  EXPECT_EQ(rec->response, c.response);
  EXPECT_TRUE(rec->delta.SameTotals(s.delta));
  EXPECT_EQ(rec->amounts, s.amounts);
  EXPECT_EQ(rec->settlement_date, s.settlement_date);

  std::vector<JournalEntry> journal = Journal();
  ASSERT_EQ(journal.size(), 1u);
  EXPECT_EQ(journal[0].kind, JournalKind::kSettle);
  EXPECT_EQ(journal[0].settlement_id, c.settlement_id);
  EXPECT_EQ(journal[0].institution_id, kInstitution);
  EXPECT_TRUE(journal[0].delta.SameTotals(s.delta));
  EXPECT_EQ(journal[0].amounts, s.amounts);
}

TEST_F(SettlementStoreTest, ReplayWithTheSameHashReturnsTheStoredResponseAndWritesNothing) {
  Settlement s;
  SettlementCommit c = Compute(Read("r1"), "r1", &s);
  ASSERT_EQ(Commit(c).outcome, CommitOutcome::kCommitted);
  const int64_t keys = DbSize();

  // A retry that computed again (new id, new response bytes) on stale data.
  SettlementCommit again = c;
  again.settlement_id = NewSettlementId(kPersonKey, kNowUnix * 1000);
  again.response = "different bytes";
  CommitResult r = Commit(again);
  EXPECT_EQ(r.outcome, CommitOutcome::kReplayed);
  EXPECT_EQ(r.settlement_id, c.settlement_id);
  EXPECT_EQ(r.response, c.response);
  EXPECT_EQ(DbSize(), keys);
  EXPECT_EQ(Read("r1").accumulators.version, 1);
  EXPECT_EQ(Journal().size(), 1u);
  EXPECT_EQ(ReasonOf(store_->GetSettlement(again.settlement_id).status()),
            reason::kSettlementNotFound);
}

TEST_F(SettlementStoreTest, SameRequestIdWithOtherContentIsAlreadyExistsAndWritesNothing) {
  Settlement s;
  SettlementCommit c = Compute(Read("r1"), "r1", &s);
  ASSERT_EQ(Commit(c).outcome, CommitOutcome::kCommitted);
  const int64_t keys = DbSize();

  SettlementCommit other = c;
  other.content_hash = "another bill";
  other.settlement_id = NewSettlementId(kPersonKey, kNowUnix * 1000);
  other.expected_version = 1;
  absl::StatusOr<CommitResult> r = store_->CommitSettlement(other);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ReasonOf(r.status()), reason::kRequestIdReused);
  EXPECT_EQ(DbSize(), keys);
  SettleRead after = Read("r1");
  EXPECT_EQ(after.accumulators.version, 1);
  EXPECT_TRUE(after.accumulators.SameTotals(s.after));
  EXPECT_EQ(Journal().size(), 1u);
}

TEST_F(SettlementStoreTest, MovedVersionIsReportedAndWritesNothing) {
  SettleRead stale = Read("r2");  // read before r1 commits
  Settlement s1;
  ASSERT_EQ(Commit(Compute(Read("r1"), "r1", &s1)).outcome, CommitOutcome::kCommitted);
  const int64_t keys = DbSize();

  Settlement s2;
  SettlementCommit late = Compute(stale, "r2", &s2);
  CommitResult r = Commit(late);
  EXPECT_EQ(r.outcome, CommitOutcome::kVersionMoved);
  EXPECT_EQ(r.accumulators_version, 1);
  EXPECT_EQ(DbSize(), keys);
  EXPECT_FALSE(Read("r2").prior.has_value());
  EXPECT_TRUE(Read("r2").accumulators.SameTotals(s1.after));
  EXPECT_EQ(ReasonOf(store_->GetSettlement(late.settlement_id).status()),
            reason::kSettlementNotFound);

  // Read again, compute again: it commits.
  Settlement s3;
  EXPECT_EQ(Commit(Compute(Read("r2"), "r2", &s3)).outcome, CommitOutcome::kCommitted);
}

TEST_F(SettlementStoreTest, ScriptFlushedBetweenTwoCommitsIsReloaded) {
  Settlement s;
  ASSERT_EQ(Commit(Compute(Read("r1"), "r1", &s)).outcome, CommitOutcome::kCommitted);
  RedisResult flush = pool_->Command({"SCRIPT", "FLUSH"});
  ASSERT_TRUE(flush.ok()) << flush.status();
  CommitResult r = Commit(Compute(Read("r2"), "r2", &s));
  EXPECT_EQ(r.outcome, CommitOutcome::kCommitted);
  EXPECT_EQ(r.accumulators_version, 2);
}

TEST_F(SettlementStoreTest, FiftyThreadsOnOneRequestCommitExactlyOnce) {
  constexpr int kThreads = 50;
  std::vector<absl::StatusOr<CommitResult>> results(kThreads, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  std::atomic<bool> go{false};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      results[static_cast<size_t>(t)] = SettleLoop("same-request", 100);
    });
  }
  go = true;
  for (std::thread& t : threads) t.join();

  int committed = 0;
  std::string response;
  for (const absl::StatusOr<CommitResult>& r : results) {
    ASSERT_TRUE(r.ok()) << r.status();
    if (r->outcome == CommitOutcome::kCommitted) {
      ++committed;
      response = r->response;
    } else {
      EXPECT_EQ(r->outcome, CommitOutcome::kReplayed);
    }
  }
  EXPECT_EQ(committed, 1);
  for (const absl::StatusOr<CommitResult>& r : results) {
    EXPECT_EQ(r->response, response);
  }
  EXPECT_EQ(Read("x").accumulators.version, 1);
  EXPECT_EQ(Journal().size(), 1u);
}

TEST_F(SettlementStoreTest, ConcurrentSettlementsOfOnePersonSumToTheJournal) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 25;
  std::vector<int> failures(kThreads, 0);
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int k = 0; k < kPerThread; ++k) {
        absl::StatusOr<CommitResult> r = SettleLoop(Cat("t", t, "-", k), 1000);
        if (!r.ok() || r->outcome != CommitOutcome::kCommitted) {
          ++failures[static_cast<size_t>(t)];
          errors[static_cast<size_t>(t)] = r.ok() ? std::string(Name(r->outcome))
                                                  : std::string(r.status().message());
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(failures[static_cast<size_t>(t)], 0) << errors[static_cast<size_t>(t)];
  }

  SettleRead final_read = Read("none");
  EXPECT_EQ(final_read.accumulators.version, kThreads * kPerThread);
  std::vector<JournalEntry> journal = Journal();
  ASSERT_EQ(journal.size(), static_cast<size_t>(kThreads * kPerThread));
  Accumulators sum;
  for (const JournalEntry& e : journal) sum.AddTotals(e.delta, 1);
  EXPECT_TRUE(sum.SameTotals(final_read.accumulators));
  EXPECT_EQ(final_read.accumulators.ledger(engine::Ledger::kGeneralOutpatient).visits,
            kThreads * kPerThread);

  const engine::Engine& engine = medsettle::testing::ShippedEngine();
  const engine::Policy* policy = engine.policies().FindById("quzhou-2024");
  ASSERT_NE(policy, nullptr);
  bool cap_reached = false;
  for (const engine::RemainingLimit& l :
       engine.Remaining(*policy, *final_read.enrollment, final_read.accumulators)) {
    EXPECT_GE(l.remaining_cents, 0) << l.name;
    EXPECT_LE(l.used_cents, l.limit_cents) << l.name;
    if (l.name == "general_outpatient fund cap" && l.remaining_cents == 0) cap_reached = true;
  }
  EXPECT_TRUE(cap_reached) << "the bills were meant to reach the cap";
}

TEST_F(SettlementStoreTest, ReversalRestoresTheAccumulatorsExactlyAndOnce) {
  Settlement s1;
  SettlementCommit c1 = Compute(Read("r1"), "r1", &s1);
  ASSERT_EQ(Commit(c1).outcome, CommitOutcome::kCommitted);
  Settlement s2;
  SettlementCommit c2 = Compute(Read("r2"), "r2", &s2);
  ASSERT_EQ(Commit(c2).outcome, CommitOutcome::kCommitted);

  ReversalRequest undo{.settlement_id = c2.settlement_id, .institution_id = kInstitution,
                       .reversal_request_id = "undo-r2", .response = "reversed r2",
                       .now_unix = kNowUnix + 60};
  absl::StatusOr<ReversalResult> r = store_->CommitReversal(undo);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->replayed);
  EXPECT_TRUE(r->accumulators.SameTotals(s1.after));
  EXPECT_EQ(r->accumulators.version, 3);
  absl::StatusOr<Accumulators> engine_says = engine::Engine::Reverse(s2.after, s2.delta);
  ASSERT_TRUE(engine_says.ok()) << engine_says.status();
  EXPECT_TRUE(r->accumulators.SameTotals(*engine_says));
  EXPECT_TRUE(Read("x").accumulators.SameTotals(s1.after));

  absl::StatusOr<SettlementRecord> rec = store_->GetSettlement(c2.settlement_id);
  ASSERT_TRUE(rec.ok()) << rec.status();
  EXPECT_EQ(rec->status, SettlementStatus::kReversed);
  EXPECT_EQ(rec->reversal_request_id, "undo-r2");
  EXPECT_EQ(rec->reversal_response, "reversed r2");
  EXPECT_EQ(rec->reversed_at_unix, kNowUnix + 60);

  // Again (even under another reversal id): the stored reversal, nothing written.
  const int64_t keys = DbSize();
  ReversalRequest again = undo;
  again.reversal_request_id = "undo-r2-retry";
  again.response = "other";
  absl::StatusOr<ReversalResult> replay = store_->CommitReversal(again);
  ASSERT_TRUE(replay.ok()) << replay.status();
  EXPECT_TRUE(replay->replayed);
  EXPECT_EQ(replay->reversal_request_id, "undo-r2");
  EXPECT_EQ(replay->response, "reversed r2");
  EXPECT_EQ(replay->reversed_at_unix, kNowUnix + 60);
  EXPECT_EQ(replay->accumulators.version, 3);
  EXPECT_TRUE(replay->accumulators.SameTotals(s1.after));
  EXPECT_EQ(DbSize(), keys);

  std::vector<JournalEntry> journal = Journal();
  ASSERT_EQ(journal.size(), 3u);
  EXPECT_EQ(journal[2].kind, JournalKind::kReverse);
  EXPECT_EQ(journal[2].settlement_id, c2.settlement_id);
  EXPECT_EQ(journal[2].request_id, "undo-r2");
  Accumulators sum;
  for (const JournalEntry& e : journal) {
    sum.AddTotals(e.delta, e.kind == JournalKind::kSettle ? 1 : -1);
  }
  EXPECT_TRUE(sum.SameTotals(s1.after));
}

TEST_F(SettlementStoreTest, ReversalRefusals) {
  Settlement s;
  SettlementCommit c = Compute(Read("r1"), "r1", &s);
  ASSERT_EQ(Commit(c).outcome, CommitOutcome::kCommitted);
  const int64_t keys = DbSize();

  ReversalRequest foreign{.settlement_id = c.settlement_id, .institution_id = "H9999",
                          .reversal_request_id = "u1", .response = "x", .now_unix = kNowUnix};
  absl::StatusOr<ReversalResult> r = store_->CommitReversal(foreign);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(ReasonOf(r.status()), reason::kNotYourSettlement);

  ReversalRequest unknown = foreign;
  unknown.institution_id = kInstitution;
  unknown.settlement_id = "3f-000000000000-0000000000000000";
  r = store_->CommitReversal(unknown);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ReasonOf(r.status()), reason::kSettlementNotFound);

  // Accumulators below the delta (not this year's settlement): refused, nothing written.
  const std::string acc = AccumulatorsKey(kPersonKey, kYear);
  RedisResult lowered = pool_->Command({"HSET", acc, "go.visits", "0"});
  ASSERT_TRUE(lowered.ok()) << lowered.status();
  ReversalRequest mine = unknown;
  mine.settlement_id = c.settlement_id;
  r = store_->CommitReversal(mine);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReasonOf(r.status()), engine::reason::kAccumulatorsInvalid);
  absl::StatusOr<SettlementRecord> rec = store_->GetSettlement(c.settlement_id);
  ASSERT_TRUE(rec.ok()) << rec.status();
  EXPECT_EQ(rec->status, SettlementStatus::kSettled);
  EXPECT_EQ(Read("x").accumulators.version, 1);
  EXPECT_EQ(DbSize(), keys);
  EXPECT_EQ(Journal().size(), 1u);
}

TEST_F(SettlementStoreTest, ReadOfAnUnknownPersonAndBadInputs) {
  const std::string stranger(64, 'a');
  absl::StatusOr<SettleRead> read =
      store_->ReadForSettle(version_, stranger, kYear, kInstitution, "r1");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_FALSE(read->enrollment.has_value());
  EXPECT_EQ(read->accumulators.version, 0);
  EXPECT_FALSE(read->prior.has_value());
  EXPECT_EQ(ReasonOf(store_->ReadForSettle(version_, "3F", kYear, kInstitution, "r1").status()),
            reason::kPersonKeyInvalid);

  Settlement s;
  SettlementCommit c = Compute(Read("r1"), "r1", &s);
  c.settlement_id = NewSettlementId(stranger, kNowUnix * 1000);  // another tag
  EXPECT_EQ(ReasonOf(store_->CommitSettlement(c).status()), reason::kSettlementIdInvalid);
  EXPECT_EQ(ReasonOf(store_->GetSettlement("nonsense").status()), reason::kSettlementIdInvalid);

  // A total that is not an integer is corruption, not zero.
  RedisResult bad = pool_->Command({"HSET", AccumulatorsKey(kPersonKey, kYear), "go.fund", "x"});
  ASSERT_TRUE(bad.ok()) << bad.status();
  EXPECT_EQ(ReasonOf(store_->ReadForSettle(version_, kPersonKey, kYear, kInstitution, "r1")
                         .status()),
            reason::kSettlementRecordCorrupt);
}

// Redis counts each read of a client socket (INFO stats
// total_reads_processed): an uncontended settlement is two, the read
// pipeline and the EVALSHA. An observer pool reads the counters; each of
// its INFOs adds one read to the difference.
TEST_F(SettlementStoreTest, UncontendedSettlementIsTwoRoundTrips) {
  std::unique_ptr<ConnectionPool> client = MakePool(1);
  std::unique_ptr<ConnectionPool> observer = MakePool(1);
  SettlementStore store(*client);
  auto info = [&](std::string_view section, std::string_view field) -> int64_t {
    RedisResult r = observer->Command({"INFO", section});
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return -1;
    std::string text = "\n" + r->str;
    std::string needle = Cat("\n", field, ":");
    size_t at = text.find(needle);
    if (at == std::string::npos) return 0;
    at += needle.size();
    if (text.compare(at, 6, "calls=") == 0) at += 6;
    return std::strtoll(text.c_str() + at, nullptr, 10);
  };
  auto settle = [&](const std::string& request_id) {
    Settlement s;
    SettlementCommit c = Compute(Read(request_id, &store), request_id, &s);
    absl::StatusOr<CommitResult> r = store.CommitSettlement(c);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->outcome, CommitOutcome::kCommitted);
  };
  settle("warm-up");  // connects and loads the script

  int64_t reads_before = info("stats", "total_reads_processed");
  int64_t evalsha_before = info("commandstats", "cmdstat_evalsha");
  int64_t load_before = info("commandstats", "cmdstat_script|load");
  int64_t reads_mid = info("stats", "total_reads_processed");
  settle("measured");
  int64_t reads_after = info("stats", "total_reads_processed");
  EXPECT_EQ(info("commandstats", "cmdstat_evalsha") - evalsha_before, 1);
  EXPECT_EQ(info("commandstats", "cmdstat_script|load") - load_before, 0);
  const int64_t observer_reads = reads_mid - reads_before;  // what the observer's INFOs cost
  EXPECT_EQ(observer_reads, 3);
  EXPECT_EQ(reads_after - reads_mid, 2 + 1) << "read pipeline + EVALSHA + the observer's INFO";
}

}  // namespace
}  // namespace medsettle::cache
