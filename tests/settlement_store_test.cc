// The settlement store (cache/settlement_store.h) against a real
// redis-server of the test's own, with the shipped engine computing the
// settlements: read → compute → commit, exactly once under replays and
// races, version checks that write nothing, NOSCRIPT recovery, reversal,
// the journal as the sum of what was committed, two round trips per
// uncontended settlement, reconciliation by institution and day (totals
// equal to the journal's, detail pages), the coverage read, idempotency
// record expiry and journal trimming.
#include "cache/settlement_store.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "cache/connection_pool.h"
#include "cache/enrollment_codec.h"
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
using engine::FieldOf;
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
const std::string kOtherInstitution = "H3308020002";
constexpr int64_t kNowUnix = 1'718'000'000;  // 2024-06-10
constexpr std::string_view kDay = "2024-06-10";
constexpr std::string_view kNextDay = "2024-06-11";
// More persons of the snapshot, of the tags 3f (kPersonKey's), 00, a7, ff.
const std::string kSameTagPerson =
    "3f00000000000000000000000000000000000000000000000000000000000001";
const std::string kTag00Person =
    "00c1c2d3e4f5061728394a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f9";
const std::string kTagA7Person =
    "a7b1c2d3e4f5061728394a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f9";
const std::string kTagFfPerson =
    "ffb1c2d3e4f5061728394a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f9";

engine::Institution TheHospital(const std::string& institution_id = kInstitution) {
  engine::Institution h = medsettle::testing::Hospital(kKecheng, 2);
  h.institution_id = institution_id;
  return h;
}

// A general-outpatient bill large enough that 200 of them reach the
// year's fund cap.
engine::Claim Bill(const std::string& request_id, std::string_view date = kDay) {
  engine::Claim c = medsettle::testing::Outpatient(
      VisitType::kGeneralOutpatient, date,
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
    std::vector<engine::Enrollment> persons;
    for (const std::string& key :
         {kPersonKey, kSameTagPerson, kTag00Person, kTagA7Person, kTagFfPerson}) {
      engine::Enrollment e = medsettle::testing::Person(kQuzhou, kYear);
      e.person_key = key;
      persons.push_back(e);
    }
    absl::StatusOr<int64_t> added = snapshots.PutPersons(*v, persons);
    ASSERT_TRUE(added.ok()) << added.status();
    absl::Status committed = snapshots.Commit(
        *v, {.persons = static_cast<int64_t>(persons.size()), .institutions = 0}, "test");
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

  // Computes the settlement of `request_id` on `read` into a commit (of
  // `person_key` at `institution`, a bill of `date`).
  SettlementCommit Compute(const SettleRead& read, const std::string& request_id,
                           Settlement* s, const std::string& person_key = kPersonKey,
                           const std::string& institution = kInstitution,
                           std::string_view date = kDay) {
    engine::Institution h = TheHospital(institution);
    engine::Claim claim = Bill(request_id, date);
    absl::Status settled = medsettle::testing::ShippedEngine().Settle(
        {.enrollment = &*read.enrollment, .institution = &h,
         .year_to_date = &read.accumulators, .claim = &claim},
        s);
    EXPECT_TRUE(settled.ok()) << settled;
    SettlementCommit c;
    c.person_key = person_key;
    c.year = kYear;
    c.institution_id = institution;
    c.request_id = request_id;
    c.content_hash = Cat("hash-of-", request_id);
    c.settlement_id = NewSettlementId(person_key, kNowUnix * 1000);
    c.response = ResponseOf(c.settlement_id, *s);
    c.expected_version = read.accumulators.version;
    c.after = s->after;
    c.delta = s->delta;
    c.settlement_date = s->settlement_date;
    c.amounts = s->amounts;
    c.visit = static_cast<int32_t>(claim.visit.type);
    c.now_unix = kNowUnix;
    return c;
  }

  // Reads, computes and commits a settlement of `person_key` at
  // `institution` on `date`; the commit as sent.
  SettlementCommit SettleOne(const std::string& person_key, const std::string& institution,
                             std::string_view date, const std::string& request_id) {
    absl::StatusOr<SettleRead> read =
        store_->ReadForSettle(version_, person_key, kYear, institution, request_id);
    EXPECT_TRUE(read.ok()) << read.status();
    if (!read.ok()) return {};
    EXPECT_TRUE(read->enrollment.has_value()) << person_key;
    if (!read->enrollment.has_value()) return {};
    Settlement s;
    SettlementCommit c = Compute(*read, request_id, &s, person_key, institution, date);
    EXPECT_EQ(Commit(c).outcome, CommitOutcome::kCommitted) << request_id;
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

  // Every journal entry of every tag.
  std::vector<JournalEntry> AllJournals() {
    std::vector<JournalEntry> out;
    for (int t = 0; t < 256; ++t) {
      static constexpr char kHex[] = "0123456789abcdef";
      const std::string tag = {kHex[t >> 4], kHex[t & 15]};
      absl::StatusOr<std::vector<JournalEntry>> j = store_->ReadJournal(tag, 0, INT64_MAX);
      EXPECT_TRUE(j.ok()) << j.status();
      if (j.ok()) out.insert(out.end(), j->begin(), j->end());
    }
    return out;
  }

  ReconcileResult ReconcileOk(const std::string& institution, std::string_view day,
                              bool detail = false, int page_size = 0,
                              const std::string& token = "") {
    absl::StatusOr<ReconcileResult> r = store_->Reconcile(
        institution, medsettle::testing::D(day), detail, page_size, token);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *std::move(r) : ReconcileResult{};
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
  EXPECT_EQ(ReconcileKey("3f", "H1", medsettle::testing::D("2024-06-10")),
            "recon:{3f}:H1:2024-06-10");
  EXPECT_EQ(ReconcileIdsKey("3f", "H1", medsettle::testing::D("2024-06-10")),
            "recon:{3f}:H1:2024-06-10:ids");
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
  EXPECT_EQ(rec->visit, static_cast<int32_t>(VisitType::kGeneralOutpatient));

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
  // The idempotency record carries the reversal: a replay of r2 knows it
  // from its one read, and r1's does not.
  ASSERT_TRUE(Read("r2").prior.has_value());
  EXPECT_TRUE(Read("r2").prior->reversed);
  EXPECT_FALSE(Read("r1").prior->reversed);
  absl::StatusOr<CommitResult> replayed_commit = store_->CommitSettlement(c2);
  ASSERT_TRUE(replayed_commit.ok()) << replayed_commit.status();
  EXPECT_EQ(replayed_commit->outcome, CommitOutcome::kReplayed);
  EXPECT_TRUE(replayed_commit->reversed);

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

TEST_F(SettlementStoreTest, TokenNonceIsUsedOnceAtomicallyWithTheSettlement) {
  const std::string nonce(32, 'c');
  Settlement s1;
  SettlementCommit c1 = Compute(Read("n1"), "n1", &s1);
  c1.token_nonce = nonce;
  c1.nonce_expires_unix = kNowUnix + 300;
  c1.audit = {.certificate_fingerprint = std::string(64, 'f'),
              .credential_kind = "EC_TOKEN",
              .presenter_key = std::string(64, 'e')};
  ASSERT_EQ(Commit(c1).outcome, CommitOutcome::kCommitted);

  // The reads report who used it; without a nonce they do not ask.
  absl::StatusOr<SettleRead> read = store_->ReadForSettle(version_, kPersonKey, kYear,
                                                          kInstitution, "n2", {.nonce = nonce});
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->nonce_used_by, c1.settlement_id);
  absl::StatusOr<CoverageRead> coverage =
      store_->ReadForCoverage(version_, kPersonKey, kYear, {.nonce = nonce});
  ASSERT_TRUE(coverage.ok()) << coverage.status();
  EXPECT_EQ(coverage->nonce_used_by, c1.settlement_id);
  EXPECT_EQ(Read("n2").nonce_used_by, "");

  // Another request with the same nonce: refused, nothing written. The same
  // request again: replayed (idempotency comes first).
  const int64_t keys = DbSize();
  Settlement s2;
  SettlementCommit c2 = Compute(*read, "n2", &s2);
  c2.token_nonce = nonce;
  c2.nonce_expires_unix = kNowUnix + 300;
  CommitResult refused = Commit(c2);
  EXPECT_EQ(refused.outcome, CommitOutcome::kNonceUsed);
  EXPECT_EQ(refused.settlement_id, c1.settlement_id);
  EXPECT_EQ(DbSize(), keys);
  EXPECT_EQ(Commit(c1).outcome, CommitOutcome::kReplayed);

  // The nonce expires when the code can no longer verify.
  RedisResult ttl = pool_->Command({"TTL", NonceKey(kPersonKey, nonce)});
  ASSERT_TRUE(ttl.ok()) << ttl.status();
  EXPECT_GT(ttl->integer, 0);
  EXPECT_LE(ttl->integer, 300);

  // The audit fields on the record and in the journal, for the settlement
  // and its reversal.
  absl::StatusOr<SettlementRecord> rec = store_->GetSettlement(c1.settlement_id);
  ASSERT_TRUE(rec.ok()) << rec.status();
  EXPECT_EQ(rec->audit.certificate_fingerprint, std::string(64, 'f'));
  EXPECT_EQ(rec->audit.credential_kind, "EC_TOKEN");
  EXPECT_EQ(rec->audit.presenter_key, std::string(64, 'e'));
  ReversalRequest undo{.settlement_id = c1.settlement_id, .institution_id = kInstitution,
                       .reversal_request_id = "undo-n1", .response = "reversed",
                       .now_unix = kNowUnix + 60,
                       .certificate_fingerprint = std::string(64, 'd')};
  ASSERT_TRUE(store_->CommitReversal(undo).ok());
  rec = store_->GetSettlement(c1.settlement_id);
  ASSERT_TRUE(rec.ok()) << rec.status();
  EXPECT_EQ(rec->reversal_certificate_fingerprint, std::string(64, 'd'));
  std::vector<JournalEntry> journal = Journal();
  ASSERT_EQ(journal.size(), 2u);
  EXPECT_EQ(journal[0].outcome, "SETTLED");
  EXPECT_EQ(journal[0].audit.certificate_fingerprint, std::string(64, 'f'));
  EXPECT_EQ(journal[0].audit.credential_kind, "EC_TOKEN");
  EXPECT_EQ(journal[0].audit.presenter_key, std::string(64, 'e'));
  EXPECT_EQ(journal[1].outcome, "REVERSED");
  EXPECT_EQ(journal[1].audit.certificate_fingerprint, std::string(64, 'd'));
  EXPECT_EQ(journal[1].audit.credential_kind, "EC_TOKEN");
  EXPECT_EQ(journal[1].audit.presenter_key, std::string(64, 'e'));
}

TEST_F(SettlementStoreTest, ReadsBringThePresentersEnrollmentInTheSamePipeline) {
  const std::string nonce(32, 'd');
  for (bool settle : {true, false}) {
    SCOPED_TRACE(settle ? "ReadForSettle" : "ReadForCoverage");
    auto read = [&](const CodeReads& code) -> absl::StatusOr<CoverageRead> {
      if (!settle) return store_->ReadForCoverage(version_, kPersonKey, kYear, code);
      absl::StatusOr<SettleRead> r =
          store_->ReadForSettle(version_, kPersonKey, kYear, kInstitution, "p1", code);
      if (!r.ok()) return r.status();
      CoverageRead c;
      c.enrollment = r->enrollment;
      c.nonce_used_by = r->nonce_used_by;
      c.presenter_enrollment = r->presenter_enrollment;
      return c;
    };
    // A presenter in the snapshot: their enrollment, keyed; with a nonce too.
    absl::StatusOr<CoverageRead> known = read({.nonce = nonce, .presenter_key = kTagA7Person});
    ASSERT_TRUE(known.ok()) << known.status();
    ASSERT_TRUE(known->enrollment.has_value());
    ASSERT_TRUE(known->presenter_enrollment.has_value());
    EXPECT_EQ(known->presenter_enrollment->person_key, kTagA7Person);
    EXPECT_EQ(known->enrollment->person_key, kPersonKey);
    EXPECT_EQ(known->nonce_used_by, "");
    // Not in the snapshot: none. Not asked: none.
    const std::string stranger(64, 'b');
    absl::StatusOr<CoverageRead> unknown = read({.presenter_key = stranger});
    ASSERT_TRUE(unknown.ok()) << unknown.status();
    EXPECT_FALSE(unknown->presenter_enrollment.has_value());
    absl::StatusOr<CoverageRead> none = read({});
    ASSERT_TRUE(none.ok()) << none.status();
    EXPECT_FALSE(none->presenter_enrollment.has_value());
    // A malformed presenter key is refused before any command.
    EXPECT_EQ(ReasonOf(read({.presenter_key = "3F"}).status()), reason::kPersonKeyInvalid);
  }
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


// ---- Reconcile ---------------------------------------------------------

void AddAmounts(engine::Amounts& sum, const engine::Amounts& a, int sign) {
  sum.total_cents += sign * a.total_cents;
  sum.out_of_scope_cents += sign * a.out_of_scope_cents;
  sum.over_limit_cents += sign * a.over_limit_cents;
  sum.pre_self_pay_cents += sign * a.pre_self_pay_cents;
  sum.in_scope_cents += sign * a.in_scope_cents;
  sum.deductible_cents += sign * a.deductible_cents;
  sum.base_fund_cents += sign * a.base_fund_cents;
  sum.critical_illness_cents += sign * a.critical_illness_cents;
  sum.supplementary_cents += sign * a.supplementary_cents;
  sum.patient_cents += sign * a.patient_cents;
}

// Settlements of five persons in four tags at two institutions on two days,
// and reversals of one of kInstitution's and one of kOtherInstitution's
// settlements of kDay.
class ReconcileTest : public SettlementStoreTest {
 protected:
  void SetUp() override {
    SettlementStoreTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    int n = 0;
    for (const std::string& person :
         {kPersonKey, kPersonKey, kSameTagPerson, kTag00Person, kTagA7Person, kTagFfPerson,
          kTagFfPerson}) {
      day_.push_back(SettleOne(person, kInstitution, kDay, Cat("d", ++n)));
    }
    other_.push_back(SettleOne(kPersonKey, kOtherInstitution, kDay, "o1"));
    other_.push_back(SettleOne(kTag00Person, kOtherInstitution, kDay, "o2"));
    next_day_.push_back(SettleOne(kTagA7Person, kInstitution, kNextDay, "n1"));
    next_day_.push_back(SettleOne(kTagFfPerson, kInstitution, kNextDay, "n2"));
    ASSERT_FALSE(HasFailure());

    reversed_ = day_[3].settlement_id;  // kTag00Person's
    for (const auto& [id, institution] :
         {std::pair{reversed_, kInstitution}, std::pair{other_[0].settlement_id,
                                                        kOtherInstitution}}) {
      absl::StatusOr<ReversalResult> r = store_->CommitReversal(
          {.settlement_id = id, .institution_id = institution,
           .reversal_request_id = Cat("undo-", id), .response = "undone",
           .now_unix = kReversedAt});
      ASSERT_TRUE(r.ok()) << r.status();
    }
  }

  // Totals from the journal: the entries of `institution` and `day`,
  // SETTLE and REVERSE apart.
  void JournalTotals(const std::string& institution, std::string_view day,
                     ReconcileTotals* settled, ReconcileTotals* reversed) {
    for (const JournalEntry& e : AllJournals()) {
      if (e.institution_id != institution ||
          e.settlement_date != medsettle::testing::D(day)) {
        continue;
      }
      ReconcileTotals& t = e.kind == JournalKind::kSettle ? *settled : *reversed;
      ++t.count;
      AddAmounts(t.amounts, e.amounts, 1);
    }
  }

  static constexpr int64_t kReversedAt = kNowUnix + 600;
  std::vector<SettlementCommit> day_;       // kInstitution, kDay
  std::vector<SettlementCommit> other_;     // kOtherInstitution, kDay
  std::vector<SettlementCommit> next_day_;  // kInstitution, kNextDay
  std::string reversed_;                    // of day_
};

TEST_F(ReconcileTest, TotalsEqualTheJournalOfTheInstitutionAndDay) {
  struct Case {
    std::string institution;
    std::string_view day;
    int64_t settled;
    int64_t reversed;
  };
  for (const Case& c : {Case{kInstitution, kDay, 7, 1}, Case{kOtherInstitution, kDay, 2, 1},
                        Case{kInstitution, kNextDay, 2, 0},
                        Case{kOtherInstitution, kNextDay, 0, 0},
                        Case{kInstitution, "2024-06-09", 0, 0}}) {
    SCOPED_TRACE(Cat(c.institution, " ", c.day));
    ReconcileTotals settled;
    ReconcileTotals reversed;
    JournalTotals(c.institution, c.day, &settled, &reversed);
    EXPECT_EQ(settled.count, c.settled);
    EXPECT_EQ(reversed.count, c.reversed);

    ReconcileResult r = ReconcileOk(c.institution, c.day);
    EXPECT_EQ(r.settled.count, settled.count);
    EXPECT_EQ(r.settled.amounts, settled.amounts);
    EXPECT_EQ(r.reversed.count, reversed.count);
    EXPECT_EQ(r.reversed.amounts, reversed.amounts);
    engine::Amounts net = settled.amounts;
    AddAmounts(net, reversed.amounts, -1);
    EXPECT_EQ(r.net.count, settled.count - reversed.count);
    EXPECT_EQ(r.net.amounts, net);
    EXPECT_TRUE(r.detail.empty());
    EXPECT_EQ(r.next_page_token, "");
  }

  // The figures are the commits' own amounts, and not zero.
  engine::Amounts settled;
  for (const SettlementCommit& c : day_) AddAmounts(settled, c.amounts, 1);
  ReconcileResult r = ReconcileOk(kInstitution, kDay);
  EXPECT_EQ(r.settled.amounts, settled);
  EXPECT_GT(r.settled.amounts.total_cents, 0);
  EXPECT_EQ(r.reversed.amounts, day_[3].amounts);

  // A replayed commit and a replayed reversal change nothing.
  SettlementCommit again = day_[0];
  again.settlement_id = NewSettlementId(kPersonKey, kNowUnix * 1000);
  EXPECT_EQ(Commit(again).outcome, CommitOutcome::kReplayed);
  absl::StatusOr<ReversalResult> undo = store_->CommitReversal(
      {.settlement_id = reversed_, .institution_id = kInstitution,
       .reversal_request_id = "undo-again", .response = "x", .now_unix = kNowUnix});
  ASSERT_TRUE(undo.ok()) << undo.status();
  EXPECT_TRUE(undo->replayed);
  ReconcileResult after = ReconcileOk(kInstitution, kDay);
  EXPECT_EQ(after.settled.count, r.settled.count);
  EXPECT_EQ(after.settled.amounts, r.settled.amounts);
  EXPECT_EQ(after.reversed.count, r.reversed.count);
  EXPECT_EQ(after.reversed.amounts, r.reversed.amounts);
}

TEST_F(ReconcileTest, DetailPagesListEverySettlementOnce) {
  std::map<std::string, const SettlementCommit*> expected;
  for (const SettlementCommit& c : day_) expected[c.settlement_id] = &c;
  ReconcileResult whole = ReconcileOk(kInstitution, kDay);

  for (int page_size : {1, 2, 3, 7, 1000}) {
    SCOPED_TRACE(Cat("page_size ", page_size));
    std::vector<ReconcileDetail> seen;
    std::string token;
    int pages = 0;
    do {
      ReconcileResult page = ReconcileOk(kInstitution, kDay, true, page_size, token);
      ASSERT_FALSE(HasFailure());
      ++pages;
      ASSERT_LE(pages, 10) << "the pages do not end";
      EXPECT_LE(page.detail.size(), static_cast<size_t>(page_size));
      EXPECT_FALSE(page.detail.empty());
      EXPECT_EQ(page.settled.count, whole.settled.count);
      EXPECT_EQ(page.net.amounts, whole.net.amounts);
      if (!page.next_page_token.empty()) {
        EXPECT_EQ(page.detail.size(), static_cast<size_t>(page_size));
      }
      seen.insert(seen.end(), page.detail.begin(), page.detail.end());
      token = page.next_page_token;
    } while (!token.empty());
    // No empty last page: exactly ceil(7 / page_size) pages.
    EXPECT_EQ(pages, (7 + page_size - 1) / page_size);

    ASSERT_EQ(seen.size(), expected.size());
    std::set<std::string> ids;
    for (size_t i = 0; i < seen.size(); ++i) {
      const ReconcileDetail& d = seen[i];
      EXPECT_TRUE(ids.insert(d.settlement_id).second) << "twice: " << d.settlement_id;
      auto it = expected.find(d.settlement_id);
      ASSERT_NE(it, expected.end()) << "not kInstitution's of kDay: " << d.settlement_id;
      const SettlementCommit& c = *it->second;
      EXPECT_EQ(d.request_id, c.request_id);
      EXPECT_EQ(d.amounts, c.amounts);
      EXPECT_EQ(d.visit_type, static_cast<int32_t>(VisitType::kGeneralOutpatient));
      EXPECT_EQ(d.settled_at_unix, kNowUnix);
      if (d.settlement_id == reversed_) {
        EXPECT_EQ(d.status, SettlementStatus::kReversed);
        EXPECT_EQ(d.reversed_at_unix, kReversedAt);
      } else {
        EXPECT_EQ(d.status, SettlementStatus::kSettled);
        EXPECT_EQ(d.reversed_at_unix, 0);
      }
      if (i > 0) {
        EXPECT_LE(seen[i - 1].settlement_id.substr(0, 2), d.settlement_id.substr(0, 2))
            << "tags walk 00..ff";
      }
    }
  }
  // Within a tag, commit order: kPersonKey's d1, d2, then kSameTagPerson's d3.
  ReconcileResult all = ReconcileOk(kInstitution, kDay, true, 1000);
  std::vector<std::string> tag3f;
  for (const ReconcileDetail& d : all.detail) {
    if (d.settlement_id.substr(0, 2) == "3f") tag3f.push_back(d.request_id);
  }
  EXPECT_EQ(tag3f, (std::vector<std::string>{"d1", "d2", "d3"}));

  // A settlement committed after the token was issued, in a tag the walk
  // has not reached yet, is on a later page.
  ReconcileResult first = ReconcileOk(kInstitution, kDay, true, 1);
  ASSERT_EQ(first.detail.size(), 1u);
  EXPECT_EQ(first.detail[0].request_id, "d4");  // tag 00
  SettlementCommit late = SettleOne(kTagA7Person, kInstitution, kDay, "late");
  std::set<std::string> rest;
  std::string token = first.next_page_token;
  for (int pages = 0; !token.empty() && pages < 20; ++pages) {
    ReconcileResult page = ReconcileOk(kInstitution, kDay, true, 2, token);
    for (const ReconcileDetail& d : page.detail) rest.insert(d.settlement_id);
    token = page.next_page_token;
  }
  EXPECT_EQ(rest.size(), 7u);
  EXPECT_TRUE(rest.contains(late.settlement_id));
}

TEST_F(ReconcileTest, BadPageSizeAndTokenAreRefused) {
  for (int size : {0, -1, 1001}) {
    absl::StatusOr<ReconcileResult> r =
        store_->Reconcile(kInstitution, medsettle::testing::D(kDay), true, size, "");
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << size;
    EXPECT_EQ(ReasonOf(r.status()), reason::kPageSizeInvalid) << size;
    EXPECT_EQ(FieldOf(r.status()), "page_size") << size;
  }
  for (const char* token : {"x", "p1-", "p1-3f", "p1-3f-", "p1-zz-0", "p1-3F-0", "p2-3f-0",
                            "p1-3f--1", "p1-3f-+1", "p1-3f-1x", "p1-3f-0-", " p1-3f-0",
                            "p1-3f-99999999999999999999", "p1-3f-1099511627777"}) {
    absl::StatusOr<ReconcileResult> r =
        store_->Reconcile(kInstitution, medsettle::testing::D(kDay), true, 10, token);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << token;
    EXPECT_EQ(ReasonOf(r.status()), reason::kPageTokenInvalid) << token;
    EXPECT_EQ(FieldOf(r.status()), "page_token") << token;
  }
  // A token past the end of its tag's list is well-formed: the rest follows.
  ReconcileResult past = ReconcileOk(kInstitution, kDay, true, 10, "p1-3f-500");
  EXPECT_EQ(past.detail.size(), 3u);  // a7 and ff
  EXPECT_EQ(past.next_page_token, "");
  // Without detail, page size and token are not looked at.
  ReconcileResult totals = ReconcileOk(kInstitution, kDay, false, 0, "garbage");
  EXPECT_EQ(totals.settled.count, 7);
  EXPECT_TRUE(totals.detail.empty());

  EXPECT_EQ(ReasonOf(store_->Reconcile("", medsettle::testing::D(kDay), false, 0, "")
                         .status()),
            engine::reason::kInstitutionInvalid);
  absl::StatusOr<ReconcileResult> no_day =
      store_->Reconcile(kInstitution, engine::Date(), false, 0, "");
  EXPECT_EQ(ReasonOf(no_day.status()), engine::reason::kDateMissing);
  EXPECT_EQ(FieldOf(no_day.status()), "date");
}

TEST_F(SettlementStoreTest, CommitWithoutASettlementDateIsRefusedAndWritesNothing) {
  Settlement s;
  SettlementCommit c = Compute(Read("r1"), "r1", &s);
  c.settlement_date = engine::Date();
  const int64_t keys = DbSize();
  absl::StatusOr<CommitResult> r = store_->CommitSettlement(c);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReasonOf(r.status()), engine::reason::kDateMissing);
  EXPECT_EQ(FieldOf(r.status()), "settlement_date");
  EXPECT_EQ(DbSize(), keys);
}

TEST_F(SettlementStoreTest, ReadForCoverageReadsEnrollmentAndAccumulators) {
  absl::StatusOr<CoverageRead> before = store_->ReadForCoverage(version_, kPersonKey, kYear);
  ASSERT_TRUE(before.ok()) << before.status();
  ASSERT_TRUE(before->enrollment.has_value());
  EXPECT_EQ(before->enrollment->person_key, kPersonKey);
  EXPECT_EQ(before->enrollment->year, kYear);
  EXPECT_EQ(before->accumulators.version, 0);
  EXPECT_TRUE(before->accumulators.SameTotals(Accumulators{}));

  Settlement s;
  ASSERT_EQ(Commit(Compute(Read("r1"), "r1", &s)).outcome, CommitOutcome::kCommitted);
  absl::StatusOr<CoverageRead> after = store_->ReadForCoverage(version_, kPersonKey, kYear);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->accumulators.version, 1);
  EXPECT_TRUE(after->accumulators.SameTotals(s.after));
  SettleRead settle_read = Read("r1");
  EXPECT_EQ(after->enrollment->year, settle_read.enrollment->year);
  EXPECT_EQ(after->enrollment->region_code, settle_read.enrollment->region_code);
  EXPECT_TRUE(after->accumulators.SameTotals(settle_read.accumulators));

  // Another year: zero; a person not in the snapshot: no enrollment.
  absl::StatusOr<CoverageRead> next_year =
      store_->ReadForCoverage(version_, kPersonKey, kYear + 1);
  ASSERT_TRUE(next_year.ok()) << next_year.status();
  EXPECT_EQ(next_year->accumulators.version, 0);
  absl::StatusOr<CoverageRead> stranger =
      store_->ReadForCoverage(version_, std::string(64, 'b'), kYear);
  ASSERT_TRUE(stranger.ok()) << stranger.status();
  EXPECT_FALSE(stranger->enrollment.has_value());

  EXPECT_EQ(ReasonOf(store_->ReadForCoverage(version_, "3F", kYear).status()),
            reason::kPersonKeyInvalid);
  RedisResult bad = pool_->Command({"HSET", AccumulatorsKey(kPersonKey, kYear), "ci.paid", "1.5"});
  ASSERT_TRUE(bad.ok()) << bad.status();
  EXPECT_EQ(ReasonOf(store_->ReadForCoverage(version_, kPersonKey, kYear).status()),
            reason::kSettlementRecordCorrupt);
  RedisResult garbled = pool_->Command(
      {"HSET", SnapshotPersonBucketKey(version_, kTag00Person), SnapshotPersonField(kTag00Person),
       "\xff"});
  ASSERT_TRUE(garbled.ok()) << garbled.status();
  EXPECT_EQ(ReasonOf(store_->ReadForCoverage(version_, kTag00Person, kYear).status()),
            reason::kSnapshotRecordCorrupt);
}

TEST_F(SettlementStoreTest, IdempotencyRecordExpiresOnlyWhenConfigured) {
  auto ttl = [&](const std::string& key) -> int64_t {
    RedisResult r = pool_->Command({"TTL", key});
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->integer : -100;
  };
  Settlement s;
  SettlementCommit kept = Compute(Read("r1"), "r1", &s);
  ASSERT_EQ(Commit(kept).outcome, CommitOutcome::kCommitted);
  EXPECT_EQ(ttl(IdempotencyKey("3f", kInstitution, "r1")), -1) << "no expiry by default";

  constexpr int64_t kTtl = 35 * 24 * 3600;
  SettlementStore expiring(*pool_, SettlementStoreOptions{.idempotency_ttl_seconds = kTtl});
  absl::StatusOr<SettleRead> read =
      expiring.ReadForSettle(version_, kPersonKey, kYear, kInstitution, "r2");
  ASSERT_TRUE(read.ok()) << read.status();
  SettlementCommit c = Compute(*read, "r2", &s);
  absl::StatusOr<CommitResult> r = expiring.CommitSettlement(c);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->outcome, CommitOutcome::kCommitted);
  const int64_t left = ttl(IdempotencyKey("3f", kInstitution, "r2"));
  EXPECT_GT(left, 0);
  EXPECT_LE(left, kTtl);
  // The settlement record, the accumulators and the index never expire.
  EXPECT_EQ(ttl(SettlementKey(c.settlement_id)), -1);
  EXPECT_EQ(ttl(AccumulatorsKey(kPersonKey, kYear)), -1);
  EXPECT_EQ(ttl(ReconcileKey("3f", kInstitution, c.settlement_date)), -1);
  EXPECT_EQ(ttl(ReconcileIdsKey("3f", kInstitution, c.settlement_date)), -1);
  EXPECT_EQ(ttl(IdempotencyKey("3f", kInstitution, "r1")), -1) << "earlier record unchanged";

  // Expired (here: deleted as expiry would): the same request settles again.
  RedisResult gone = pool_->Command({"DEL", IdempotencyKey("3f", kInstitution, "r2")});
  ASSERT_TRUE(gone.ok()) << gone.status();
  read = expiring.ReadForSettle(version_, kPersonKey, kYear, kInstitution, "r2");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_FALSE(read->prior.has_value());
  r = expiring.CommitSettlement(Compute(*read, "r2", &s));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->outcome, CommitOutcome::kCommitted);
  EXPECT_EQ(r->accumulators_version, 3);
}

TEST_F(SettlementStoreTest, TrimJournalRemovesTheEntriesBeforeTheCut) {
  auto ms_of = [](const std::string& stream_id) {
    return std::strtoll(stream_id.c_str(), nullptr, 10);
  };
  SettleOne(kPersonKey, kInstitution, kDay, "t1");
  SettleOne(kTag00Person, kInstitution, kDay, "t2");
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  SettlementCommit third = SettleOne(kTagFfPerson, kInstitution, kDay, "t3");
  SettleOne(kPersonKey, kInstitution, kDay, "t4");
  ASSERT_FALSE(HasFailure());
  std::vector<JournalEntry> all = AllJournals();
  ASSERT_EQ(all.size(), 4u);
  int64_t cut = 0;
  for (const JournalEntry& e : all) {
    if (e.settlement_id == third.settlement_id) cut = ms_of(e.stream_id);
  }
  ASSERT_GT(cut, 0);
  int64_t older = 0;
  for (const JournalEntry& e : all) older += ms_of(e.stream_id) < cut ? 1 : 0;
  EXPECT_GE(older, 2);  // t1 and t2, 5 ms before t3

  EXPECT_EQ(*store_->TrimJournal(0), 0);
  EXPECT_EQ(*store_->TrimJournal(-1), 0);
  absl::StatusOr<int64_t> removed = store_->TrimJournal(cut);
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, older);
  std::vector<JournalEntry> left = AllJournals();
  EXPECT_EQ(left.size(), all.size() - static_cast<size_t>(older));
  for (const JournalEntry& e : left) EXPECT_GE(ms_of(e.stream_id), cut);
  EXPECT_EQ(*store_->TrimJournal(cut), 0) << "again: nothing more";

  // Everything; the reconciliation does not depend on the journal.
  removed = store_->TrimJournal(ms_of(all.back().stream_id) + 60'000);
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, static_cast<int64_t>(left.size()));
  EXPECT_TRUE(AllJournals().empty());
  EXPECT_EQ(ReconcileOk(kInstitution, kDay).settled.count, 4);
}

TEST_F(SettlementStoreTest, JournalPagesContinueAfterAnIdInsideOneMillisecond) {
  // A burst of commits puts several entries in one millisecond (<ms>-0,
  // <ms>-1, …); here with explicit ids, so page boundaries fall inside it
  // for sure.
  const std::string key = JournalKey("3f");
  const std::vector<std::string> ids = {"1718000000000-0", "1718000000000-1", "1718000000000-2",
                                        "1718000000000-3", "1718000000000-4", "1718000000001-0",
                                        "1718000000002-0"};
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string request_id = Cat("b", i);
    RedisResult r = pool_->Command({"XADD", key, ids[i], "kind", "SETTLE", "settlement_id",
                                    Cat("3f-", request_id), "person_key", kPersonKey, "year",
                                    "2024", "institution", kInstitution, "request_id", request_id,
                                    "date", kDay, "at", "1718000000", "a.total", "100"});
    ASSERT_TRUE(r.ok()) << r.status();
  }
  auto stream_ids = [](const std::vector<JournalEntry>& entries) {
    std::vector<std::string> out;
    for (const JournalEntry& e : entries) out.push_back(e.stream_id);
    return out;
  };

  absl::StatusOr<std::vector<JournalEntry>> page = store_->ReadJournal("3f", 0, INT64_MAX, 2);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(stream_ids(*page), (std::vector<std::string>{ids[0], ids[1]}));
  std::vector<std::string> read = stream_ids(*page);
  std::vector<size_t> sizes = {page->size()};
  for (int pages = 0; !page->empty() && pages < 10; ++pages) {  // bounded: 5 expected
    page = store_->ReadJournalAfter("3f", read.back(), INT64_MAX, 2);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const std::string& id : stream_ids(*page)) read.push_back(id);
    sizes.push_back(page->size());
  }
  EXPECT_EQ(read, ids) << "every entry once, in order";
  EXPECT_EQ(sizes, (std::vector<size_t>{2, 2, 2, 1, 0}));
  EXPECT_EQ((*store_->ReadJournal("3f", 0, INT64_MAX))[2].request_id, "b2");

  // to_ms is inclusive and whole: the rest of its millisecond, none after.
  page = store_->ReadJournalAfter("3f", ids[2], 1718000000000, 0);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(stream_ids(*page), (std::vector<std::string>{ids[3], ids[4]}));
  page = store_->ReadJournal("3f", 1718000000000, 1718000000000, 3);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->size(), 3u);

  for (const char* bad : {"", "1718000000000", "x-1", "1-", "-1", "1-2-3", "1-0 "}) {
    absl::StatusOr<std::vector<JournalEntry>> r = store_->ReadJournalAfter("3f", bad, INT64_MAX, 2);
    EXPECT_EQ(ReasonOf(r.status()), reason::kJournalIdInvalid) << bad;
    EXPECT_EQ(FieldOf(r.status()), "after_id") << bad;
  }
  EXPECT_EQ(ReasonOf(store_->ReadJournalAfter("3F", ids[0], INT64_MAX, 2).status()),
            reason::kSettlementIdInvalid);
}

}  // namespace
}  // namespace medsettle::cache
