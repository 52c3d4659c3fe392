// The gateway end to end: a real medsettle gateway (in-process, real gRPC
// on loopback) over a real redis-server, every RPC for each region and
// visit type, exactly-once under concurrency, reversal, reconciliation,
// validation refusals with their reasons, and the Redis commands a
// settlement costs.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "cache/redis_settlement_store.h"
#include "proto/contract/ledger_record.h"
#include "engine/engine.h"
#include "engine/status.h"
#include "engine/text.h"
#include "proto/contract/convert.h"
#include "tests/support/engine_fixture.h"
#include "tests/support/gateway_harness.h"

namespace medsettle::testing {
namespace {

using engine::Cat;
using Stub = v1::SettlementService::Stub;

constexpr engine::RegionCode kQuzhou = 330800;
constexpr engine::RegionCode kDianjiang = 500231;
constexpr engine::RegionCode kFenghua = 330213;

struct RegionYear {
  std::string name;
  engine::RegionCode region;
  int year;
  int tier;
};

const std::vector<RegionYear>& RegionYears() {
  static const std::vector<RegionYear> all = {{"quzhou-2024", kQuzhou, 2024, 0},
                                              {"quzhou-2025", kQuzhou, 2025, 0},
                                              {"dianjiang-2024", kDianjiang, 2024, 1},
                                              {"fenghua-2025", kFenghua, 2025, 0}};
  return all;
}

std::string Region6(engine::RegionCode r) { return Cat(r); }

// Persons: for every region-year, one adult (sequence 1..) and one woman of
// child-bearing age for deliveries; ID numbers are real-shaped.
std::string IdOf(const RegionYear& ry, int sequence) {
  return MakeIdNumber(Region6(ry.region), D("1980-06-15"), ry.year % 100 * 10 + sequence);
}

engine::Enrollment EnrollmentOf(const RegionYear& ry) {
  engine::Enrollment e = Person(ry.region, ry.year, ry.tier);
  e.chronic_conditions = {"HYPERTENSION"};
  e.special_diseases = {"UREMIA"};
  if (ry.region == kFenghua) {
    e.supplementary.product = "tianyi-yongning-2025";
    e.supplementary.continuous = true;
  }
  return e;
}

std::vector<engine::Institution> Institutions() {
  std::vector<engine::Institution> all;
  for (engine::RegionCode r : {kQuzhou, kDianjiang, kFenghua}) {
    for (int level = 1; level <= 3; ++level) all.push_back(Hospital(r, level));
    all.push_back(Community(r));
    all.push_back(Pharmacy(r));
  }
  return all;
}

std::vector<SnapshotPerson> Persons(int per_region_year) {
  std::vector<SnapshotPerson> all;
  for (const RegionYear& ry : RegionYears()) {
    for (int i = 1; i <= per_region_year; ++i) {
      all.push_back({IdOf(ry, i), EnrollmentOf(ry)});
    }
  }
  return all;
}

// A bill of the visit type dated inside `year`, from the demo catalog.
v1::SettleRequest Bill(std::string request_id, std::string id_number, v1::VisitType type,
                       int year) {
  v1::SettleRequest r;
  r.set_request_id(std::move(request_id));
  r.mutable_credential()->set_id_card_no(std::move(id_number));
  v1::Visit* v = r.mutable_visit();
  v->set_type(type);
  const std::string y = Cat(year);
  switch (type) {
    case v1::VISIT_TYPE_INPATIENT:
    case v1::VISIT_TYPE_DELIVERY_NATURAL:
    case v1::VISIT_TYPE_DELIVERY_CAESAREAN:
      v->set_admission_date(y + "-06-03");
      v->set_discharge_date(y + "-06-12");
      AddBillItem(&r, "FB0003", 1200000);
      AddBillItem(&r, "FA0003", 4800, 9);
      AddBillItem(&r, "FA0002", 2350, 4);
      break;
    default:
      v->set_service_date(y + "-06-20");
      AddBillItem(&r, "FA0002", 2350, 3);
      AddBillItem(&r, "FA0003", 4800, 1);
      break;
  }
  if (type == v1::VISIT_TYPE_CHRONIC_OUTPATIENT) v->set_condition("HYPERTENSION");
  if (type == v1::VISIT_TYPE_SPECIAL_OUTPATIENT) v->set_condition("UREMIA");
  return r;
}

// What the engine alone computes for `request` (zero year so far).
absl::StatusOr<v1::SettleResponse> Expected(const v1::SettleRequest& request,
                                            const engine::Enrollment& enrollment,
                                            const engine::Institution& institution,
                                            const engine::Accumulators& ytd = {}) {
  engine::Claim claim;
  if (absl::Status s = contract::ClaimFromProto(request, &claim, ""); !s.ok()) return s;
  engine::Settlement settlement;
  if (absl::Status s = SettleWith(enrollment, institution, ytd, claim, &settlement); !s.ok()) {
    return s;
  }
  v1::SettleResponse out;
  contract::SettlementToProto(settlement, claim, enrollment.person_key,
                              institution.institution_id, &out);
  return out;
}

bool SameAmounts(const v1::Amounts& a, const v1::Amounts& b) {
  return a.SerializeAsString() == b.SerializeAsString();
}

class GatewayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<GatewayHarness>> h =
        GatewayHarness::Start(Persons(4), Institutions());
    if (!h.ok() && h.status().code() == absl::StatusCode::kNotFound) {
      GTEST_SKIP() << h.status().message();
    }
    ASSERT_TRUE(h.ok()) << h.status();
    h_ = *std::move(h);
  }

  GatewayHarness& h() { return *h_; }

  engine::Enrollment Enrolled(const RegionYear& ry, int sequence) {
    engine::Enrollment e = EnrollmentOf(ry);
    e.person_key = h().PersonKey(IdOf(ry, sequence));
    return e;
  }

  CallResult Settle(std::string_view inst, const v1::SettleRequest& r, v1::SettleResponse* out) {
    return h().Call(&Stub::Settle, inst, r, out);
  }

  v1::CheckCoverageResponse Coverage(std::string_view inst, const std::string& id,
                                     const std::string& date) {
    v1::CheckCoverageRequest r;
    r.mutable_credential()->set_id_card_no(id);
    r.set_service_date(date);
    v1::CheckCoverageResponse out;
    CallResult c = h().Call(&Stub::CheckCoverage, inst, r, &out);
    EXPECT_TRUE(c.ok()) << c.status.error_message();
    return out;
  }

  std::unique_ptr<GatewayHarness> h_;
};

// ---- every RPC, each region and visit type --------------------------------

TEST_F(GatewayTest, PreSettleAndSettleMatchTheEngineForEveryRegionAndVisitType) {
  const v1::VisitType types[] = {
      v1::VISIT_TYPE_GENERAL_OUTPATIENT, v1::VISIT_TYPE_CHRONIC_OUTPATIENT,
      v1::VISIT_TYPE_SPECIAL_OUTPATIENT, v1::VISIT_TYPE_INPATIENT,
      v1::VISIT_TYPE_PRENATAL_CHECK,     v1::VISIT_TYPE_DELIVERY_NATURAL,
      v1::VISIT_TYPE_DELIVERY_CAESAREAN};
  int settled = 0;
  for (const RegionYear& ry : RegionYears()) {
    // Each visit type at the institution where it is usually settled, by a
    // fresh person of the region-year so that no earlier bill of the test
    // changes the year's totals.
    int sequence = 0;
    for (v1::VisitType type : types) {
      sequence = sequence % 4 + 1;
      const engine::Institution institution =
          type == v1::VISIT_TYPE_GENERAL_OUTPATIENT ? Community(ry.region) : Hospital(ry.region, 2);
      SCOPED_TRACE(Cat(ry.name, " ", v1::VisitType_Name(type), " at ",
                       institution.institution_id));
      const v1::SettleRequest request = Bill(Cat(ry.name, "-", static_cast<int>(type)),
                                             IdOf(ry, sequence), type, ry.year);
      // The person's year so far, as the gateway reports it.
      v1::CheckCoverageResponse coverage =
          Coverage(institution.institution_id, IdOf(ry, sequence), Cat(ry.year, "-06-01"));
      engine::Accumulators ytd;
      ASSERT_TRUE(contract::AccumulatorsFromProto(coverage.year_to_date(), &ytd).ok());
      absl::StatusOr<v1::SettleResponse> expected =
          Expected(request, Enrolled(ry, sequence), institution, ytd);

      v1::SettleResponse trial;
      CallResult t = h().Call(&Stub::PreSettle, institution.institution_id, request, &trial);
      v1::SettleResponse real;
      CallResult s = Settle(institution.institution_id, request, &real);
      if (!expected.ok()) {
        // The engine refuses (e.g. a delivery where the region has no such
        // scheme): the gateway refuses the same way, and records nothing.
        EXPECT_EQ(static_cast<int>(t.code()), static_cast<int>(expected.status().code()));
        EXPECT_EQ(t.reason, engine::ReasonOf(expected.status()));
        EXPECT_EQ(s.reason, engine::ReasonOf(expected.status()));
        continue;
      }
      ASSERT_TRUE(t.ok()) << t.reason << " " << t.status.error_message();
      ASSERT_TRUE(s.ok()) << s.reason << " " << s.status.error_message();
      EXPECT_EQ(trial.status(), v1::SETTLEMENT_STATUS_TRIAL);
      EXPECT_TRUE(trial.settlement_id().empty());
      EXPECT_EQ(real.status(), v1::SETTLEMENT_STATUS_SETTLED);
      EXPECT_FALSE(real.settlement_id().empty());
      EXPECT_FALSE(real.replayed());
      EXPECT_TRUE(SameAmounts(trial.amounts(), expected->amounts()));
      EXPECT_TRUE(SameAmounts(real.amounts(), expected->amounts()))
          << real.amounts().DebugString() << "vs\n" << expected->amounts().DebugString();
      EXPECT_EQ(real.policy_id(), ry.name);
      EXPECT_EQ(real.person_key(), h().PersonKey(IdOf(ry, sequence)));
      EXPECT_EQ(real.institution_id(), institution.institution_id);
      // Payers add up to the bill.
      const v1::Amounts& a = real.amounts();
      EXPECT_EQ(a.base_fund_cents() + a.critical_illness_cents() + a.supplementary_cents() +
                    a.patient_cents(),
                a.total_cents());

      // GetSettlement returns the same record.
      v1::GetSettlementRequest get;
      get.set_settlement_id(real.settlement_id());
      v1::SettleResponse fetched;
      CallResult g = h().Call(&Stub::GetSettlement, institution.institution_id, get, &fetched);
      ASSERT_TRUE(g.ok()) << g.reason;
      EXPECT_EQ(fetched.settlement_id(), real.settlement_id());
      EXPECT_TRUE(SameAmounts(fetched.amounts(), real.amounts()));
      ++settled;
    }
  }
  EXPECT_GE(settled, 16);  // most combinations settle; the rest were checked as refusals
}

TEST_F(GatewayTest, CheckCoverageAnswersCoveredAndNotCovered) {
  const RegionYear& ry = RegionYears()[0];
  v1::CheckCoverageResponse yes = Coverage(Hospital(kQuzhou, 2).institution_id, IdOf(ry, 1),
                                           "2024-05-01");
  EXPECT_TRUE(yes.covered()) << yes.reason() << " " << yes.message();
  EXPECT_EQ(yes.policy_id(), "quzhou-2024");
  EXPECT_EQ(yes.enrollment().person_key(), h().PersonKey(IdOf(ry, 1)));
  EXPECT_FALSE(yes.remaining().empty());
  EXPECT_EQ(yes.year_to_date().year(), 2024);

  // A year the enrollment does not cover: an answer, not an error.
  v1::CheckCoverageResponse other = Coverage(Hospital(kQuzhou, 2).institution_id, IdOf(ry, 1),
                                             "2023-05-01");
  EXPECT_FALSE(other.covered());
  EXPECT_FALSE(other.reason().empty());

  // Not in the snapshot at all.
  v1::CheckCoverageResponse nobody = Coverage(
      Hospital(kQuzhou, 2).institution_id, MakeIdNumber("330800", D("1990-01-01"), 999),
      "2024-05-01");
  EXPECT_FALSE(nobody.covered());
  EXPECT_EQ(nobody.reason(), "PERSON_NOT_ENROLLED");
}

// ---- exactly once ---------------------------------------------------------

TEST_F(GatewayTest, FiftyIdenticalSettlesAtOnceSettleOnce) {
  const RegionYear& ry = RegionYears()[0];
  const std::string inst = Hospital(kQuzhou, 3).institution_id;
  const v1::SettleRequest request =
      Bill("same-50", IdOf(ry, 2), v1::VISIT_TYPE_INPATIENT, ry.year);
  std::vector<v1::SettleResponse> responses(50);
  std::vector<CallResult> results(50);
  std::vector<std::thread> threads;
  std::atomic<bool> go{false};
  std::atomic<int> ready{0};
  for (int i = 0; i < 50; ++i) {
    threads.emplace_back([&, i] {
      std::shared_ptr<grpc::Channel> channel = GatewayHarness::Connected(h().NewChannel());
      ++ready;
      while (!go.load()) std::this_thread::yield();
      if (channel == nullptr) {
        ADD_FAILURE() << "thread " << i << " could not connect";
        return;
      }
      auto stub = v1::SettlementService::NewStub(channel);
      results[i] = GatewayHarness::Call(*stub, &Stub::Settle, inst, request, &responses[i]);
    });
  }
  // Every channel connected (or given up) before the 50 calls start at once.
  while (ready.load() < 50) std::this_thread::yield();
  go = true;
  for (std::thread& t : threads) t.join();

  int fresh = 0;
  std::set<std::string> ids;
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(results[i].ok()) << results[i].reason << " " << results[i].status.error_message();
    ids.insert(responses[i].settlement_id());
    if (!responses[i].replayed()) ++fresh;
    v1::SettleResponse a = responses[i];
    v1::SettleResponse b = responses[0];
    a.set_replayed(false);
    b.set_replayed(false);
    EXPECT_EQ(a.SerializeAsString(), b.SerializeAsString()) << "response " << i << " differs";
  }
  EXPECT_EQ(ids.size(), 1u);
  EXPECT_EQ(fresh, 1);

  // The year was charged once.
  v1::CheckCoverageResponse after = Coverage(inst, IdOf(ry, 2), "2024-07-01");
  EXPECT_EQ(after.year_to_date().SerializeAsString(),
            responses[0].year_to_date().SerializeAsString());
}

TEST_F(GatewayTest, SameRequestIdWithOtherContentIsAlreadyExistsAndChangesNothing) {
  const RegionYear& ry = RegionYears()[1];
  const std::string inst = Hospital(kQuzhou, 2).institution_id;
  v1::SettleRequest first = Bill("reuse-1", IdOf(ry, 3), v1::VISIT_TYPE_INPATIENT, ry.year);
  v1::SettleResponse settled;
  ASSERT_TRUE(Settle(inst, first, &settled).ok());
  const std::string before = Coverage(inst, IdOf(ry, 3), "2025-07-01").year_to_date()
                                 .SerializeAsString();

  v1::SettleRequest changed = first;
  AddBillItem(&changed, "FA0002", 2350, 1);
  v1::SettleResponse out;
  CallResult c = Settle(inst, changed, &out);
  EXPECT_EQ(c.code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(c.reason, "REQUEST_ID_REUSED");
  EXPECT_EQ(c.field, "request_id");
  EXPECT_EQ(Coverage(inst, IdOf(ry, 3), "2025-07-01").year_to_date().SerializeAsString(), before);

  // The same id at another institution is another request.
  v1::SettleResponse elsewhere;
  EXPECT_TRUE(Settle(Hospital(kQuzhou, 3).institution_id, changed, &elsewhere).ok());
}

TEST_F(GatewayTest, ConcurrentSettlementsOfOnePersonNeverUseACapTwice) {
  const RegionYear& ry = RegionYears()[3];  // Fenghua: inpatient cap, segments, supplementary
  const std::string id = IdOf(ry, 4);
  const std::string pk = h().PersonKey(id);
  constexpr int kThreads = 8;
  constexpr int kPerThread = 25;  // 200 settlements
  std::vector<std::vector<v1::SettleResponse>> got(kThreads);
  std::atomic<int> failures{0};
  std::atomic<int> contended{0};
  // Two gateways on one Redis: within a gateway a person's settlements take
  // turns; between gateways they race, and the accumulator version decides.
  absl::StatusOr<std::unique_ptr<gateway::GatewayServer>> second = h().StartAnotherGateway();
  ASSERT_TRUE(second.ok()) << second.status();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::shared_ptr<grpc::Channel> channel = GatewayHarness::Connected(
          t % 2 == 0 ? h().NewChannel() : GatewayHarness::ChannelTo((*second)->port()));
      if (channel == nullptr) {
        ADD_FAILURE() << "thread " << t << " could not connect";
        return;
      }
      auto stub = v1::SettlementService::NewStub(channel);
      for (int i = 0; i < kPerThread; ++i) {
        v1::SettleRequest r = Bill(Cat("conc-", t, "-", i), id, v1::VISIT_TYPE_INPATIENT,
                                   ry.year);
        v1::SettleResponse out;
        CallResult c = GatewayHarness::Call(*stub, &Stub::Settle,
                                            Hospital(kFenghua, 1 + (t % 3)).institution_id, r,
                                            &out);
        if (c.code() == grpc::StatusCode::ABORTED) {
          // The bounded retries lost every race against the other gateway:
          // refused, nothing written (checked against the journal below).
          EXPECT_EQ(c.reason, "ACCUMULATORS_CONTENDED");
          ++contended;
          continue;
        }
        if (!c.ok()) {
          ++failures;
          ADD_FAILURE() << c.reason << " " << c.status.error_message();
          continue;
        }
        got[t].push_back(out);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  ASSERT_EQ(failures.load(), 0);
  (*second)->Shutdown();
  const int committed = kThreads * kPerThread - contended.load();
  EXPECT_GE(committed, kThreads * kPerThread / 2);

  // The accumulators equal the sum of every settlement's delta, and the
  // journal says the same.
  engine::Accumulators sum;
  for (const auto& list : got) {
    for (const v1::SettleResponse& r : list) {
      engine::Accumulators d;
      ASSERT_TRUE(contract::AccumulatorsFromProto(r.accumulator_delta(), &d).ok());
      sum.AddTotals(d, 1);
    }
  }
  v1::CheckCoverageResponse now =
      Coverage(Hospital(kFenghua, 2).institution_id, id, "2025-12-01");
  engine::Accumulators stored;
  ASSERT_TRUE(contract::AccumulatorsFromProto(now.year_to_date(), &stored).ok());
  EXPECT_TRUE(stored.SameTotals(sum));
  EXPECT_EQ(stored.version, committed);

  cache::RedisSettlementStore store(h().redis_client());
  absl::StatusOr<std::vector<cache::JournalEntry>> journal =
      store.ReadJournal(pk.substr(0, 2), 0, INT64_MAX);
  ASSERT_TRUE(journal.ok()) << journal.status();
  engine::Accumulators replay;
  int entries = 0;
  for (const cache::JournalEntry& e : *journal) {
    ASSERT_TRUE(e.status.ok()) << e.status;
    const bool settle = e.kind == cache::JournalKind::kSettle;
    if ((settle ? e.settlement.person_key() : e.reversal.person_key()) != pk) continue;
    contract::RecordEffect effect;
    ASSERT_TRUE((settle ? contract::EffectOf(e.settlement, &effect)
                        : contract::EffectOf(e.reversal, &effect))
                    .ok());
    replay.AddTotals(effect.delta, settle ? 1 : -1);
    ++entries;
  }
  EXPECT_EQ(entries, committed);
  EXPECT_TRUE(replay.SameTotals(stored));
  std::printf("%d committed, %d ABORTED; commit retries: %llu + %llu\n", committed,
              contended.load(),
              static_cast<unsigned long long>(h().gateway().counters().commit_retries.load()),
              static_cast<unsigned long long>((*second)->counters().commit_retries.load()));

  // No cap was exceeded: every limit CheckCoverage reports is within bounds.
  for (const v1::Remaining& r : now.remaining()) {
    EXPECT_LE(r.used_cents(), r.limit_cents()) << r.name();
    EXPECT_GE(r.remaining_cents(), 0) << r.name();
  }
}

// ---- reversal and reconciliation -----------------------------------------

TEST_F(GatewayTest, ReversalRestoresTheYearOnceAndOnlyForTheSettlingInstitution) {
  const RegionYear& ry = RegionYears()[2];  // Dianjiang
  const std::string inst = Hospital(kDianjiang, 2).institution_id;
  const std::string id = IdOf(ry, 1);
  const std::string before = Coverage(inst, id, "2024-06-01").year_to_date().SerializeAsString();
  v1::SettleResponse settled;
  ASSERT_TRUE(Settle(inst, Bill("rev-1", id, v1::VISIT_TYPE_INPATIENT, ry.year), &settled).ok());
  ASSERT_NE(Coverage(inst, id, "2024-06-01").year_to_date().SerializeAsString(), before);

  v1::ReverseRequest reverse;
  reverse.set_request_id("rev-1-undo");
  reverse.set_settlement_id(settled.settlement_id());
  reverse.set_reason("wrong bill");

  v1::ReverseResponse denied;
  CallResult other = h().Call(&Stub::Reverse, Hospital(kDianjiang, 3).institution_id, reverse,
                              &denied);
  EXPECT_EQ(other.code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(other.reason, "NOT_YOUR_SETTLEMENT");

  v1::ReverseResponse first;
  CallResult r1 = h().Call(&Stub::Reverse, inst, reverse, &first);
  ASSERT_TRUE(r1.ok()) << r1.reason << " " << r1.status.error_message();
  EXPECT_EQ(first.status(), v1::SETTLEMENT_STATUS_REVERSED);
  EXPECT_FALSE(first.replayed());
  EXPECT_TRUE(SameAmounts(first.amounts(), settled.amounts()));
  EXPECT_EQ(Coverage(inst, id, "2024-06-01").year_to_date().SerializeAsString().size() > 0, true);

  // Totals are back where they were (version aside).
  engine::Accumulators was, now;
  v1::CheckCoverageResponse after = Coverage(inst, id, "2024-06-01");
  v1::Accumulators before_proto;
  ASSERT_TRUE(before_proto.ParseFromString(before));
  ASSERT_TRUE(contract::AccumulatorsFromProto(before_proto, &was).ok());
  ASSERT_TRUE(contract::AccumulatorsFromProto(after.year_to_date(), &now).ok());
  EXPECT_TRUE(now.SameTotals(was));

  v1::ReverseResponse again;
  CallResult r2 = h().Call(&Stub::Reverse, inst, reverse, &again);
  ASSERT_TRUE(r2.ok());
  EXPECT_TRUE(again.replayed());
  EXPECT_EQ(again.reversed_at(), first.reversed_at());
  v1::CheckCoverageResponse still = Coverage(inst, id, "2024-06-01");
  EXPECT_EQ(still.year_to_date().SerializeAsString(), after.year_to_date().SerializeAsString());

  v1::GetSettlementRequest get;
  get.set_settlement_id(settled.settlement_id());
  v1::SettleResponse fetched;
  ASSERT_TRUE(h().Call(&Stub::GetSettlement, inst, get, &fetched).ok());
  EXPECT_EQ(fetched.status(), v1::SETTLEMENT_STATUS_REVERSED);
  // A retried Settle of the reversed bill replays it, with its status now.
  v1::SettleResponse replay;
  ASSERT_TRUE(Settle(inst, Bill("rev-1", id, v1::VISIT_TYPE_INPATIENT, ry.year), &replay).ok());
  EXPECT_TRUE(replay.replayed());
  EXPECT_EQ(replay.settlement_id(), settled.settlement_id());
  EXPECT_EQ(replay.status(), v1::SETTLEMENT_STATUS_REVERSED);
  CallResult foreign = h().Call(&Stub::GetSettlement, Hospital(kDianjiang, 3).institution_id,
                                get, &fetched);
  EXPECT_EQ(foreign.code(), grpc::StatusCode::PERMISSION_DENIED);

  get.set_settlement_id("ab-000000000000-0000000000000000");
  CallResult missing = h().Call(&Stub::GetSettlement, inst, get, &fetched);
  EXPECT_EQ(missing.code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(missing.reason, "SETTLEMENT_NOT_FOUND");
}

TEST_F(GatewayTest, ReconcileMatchesTheDaysSettlements) {
  const RegionYear& ry = RegionYears()[0];
  const std::string inst = Hospital(kQuzhou, 1).institution_id;
  std::vector<v1::SettleResponse> settled(3);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(Settle(inst, Bill(Cat("recon-", i), IdOf(ry, i + 1), v1::VISIT_TYPE_INPATIENT,
                                  ry.year),
                       &settled[i])
                    .ok());
  }
  v1::ReverseRequest reverse;
  reverse.set_request_id("recon-undo");
  reverse.set_settlement_id(settled[1].settlement_id());
  v1::ReverseResponse reversed;
  ASSERT_TRUE(h().Call(&Stub::Reverse, inst, reverse, &reversed).ok());

  v1::ReconcileRequest request;
  request.set_date("2024-06-12");
  request.set_include_detail(true);
  request.set_page_size(2);
  std::map<std::string, v1::SettlementStatus> seen;
  int64_t base_fund = 0;
  for (int page = 0; page < 5; ++page) {
    v1::ReconcileResponse out;
    CallResult c = h().Call(&Stub::Reconcile, inst, request, &out);
    ASSERT_TRUE(c.ok()) << c.reason << " " << c.status.error_message();
    EXPECT_EQ(out.settled().count(), 3);
    EXPECT_EQ(out.reversed().count(), 1);
    EXPECT_EQ(out.net().count(), 2);
    base_fund = out.net().amounts().base_fund_cents();
    for (const v1::ReconcileEntry& e : out.detail()) seen[e.settlement_id()] = e.status();
    if (out.next_page_token().empty()) break;
    request.set_page_token(out.next_page_token());
  }
  EXPECT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[settled[1].settlement_id()], v1::SETTLEMENT_STATUS_REVERSED);
  EXPECT_EQ(base_fund,
            settled[0].amounts().base_fund_cents() + settled[2].amounts().base_fund_cents());

  // Another institution's day is its own.
  v1::ReconcileRequest theirs;
  theirs.set_date("2024-06-12");
  v1::ReconcileResponse empty;
  ASSERT_TRUE(h().Call(&Stub::Reconcile, Hospital(kQuzhou, 2).institution_id, theirs, &empty).ok());
  EXPECT_EQ(empty.settled().count(), 0);
}

// ---- refusals: status, reason, field --------------------------------------

TEST_F(GatewayTest, EveryValidationRuleHasItsStatusReasonAndField) {
  const RegionYear& ry = RegionYears()[0];
  const std::string inst = Hospital(kQuzhou, 2).institution_id;
  const v1::SettleRequest good = Bill("valid-1", IdOf(ry, 1), v1::VISIT_TYPE_INPATIENT, ry.year);
  struct Case {
    std::string name;
    std::function<void(v1::SettleRequest*)> breaks;
    grpc::StatusCode code;
    std::string reason;
    std::string field;
  };
  const std::vector<Case> cases = {
      {"request id empty", [](auto* r) { r->clear_request_id(); },
       grpc::StatusCode::INVALID_ARGUMENT, "REQUEST_ID_INVALID", "request_id"},
      {"request id with a space", [](auto* r) { r->set_request_id("a b"); },
       grpc::StatusCode::INVALID_ARGUMENT, "REQUEST_ID_INVALID", "request_id"},
      {"no credential", [](auto* r) { r->clear_credential(); },
       grpc::StatusCode::INVALID_ARGUMENT, "CREDENTIAL_MISSING", "credential"},
      {"id number malformed", [](auto* r) { r->mutable_credential()->set_id_card_no("12345"); },
       grpc::StatusCode::INVALID_ARGUMENT, "ID_NUMBER_INVALID", "credential.id_card_no"},
      {"e-insurance code on a gateway without issuer keys",
       [](auto* r) { r->mutable_credential()->set_ec_token("token"); },
       grpc::StatusCode::FAILED_PRECONDITION, "EC_TOKEN_NOT_CONFIGURED", "credential.ec_token"},
      {"visit type unset", [](auto* r) { r->mutable_visit()->clear_type(); },
       grpc::StatusCode::INVALID_ARGUMENT, "VISIT_TYPE_UNSPECIFIED", "visit.type"},
      {"discharge malformed", [](auto* r) { r->mutable_visit()->set_discharge_date("2024-6-12"); },
       grpc::StatusCode::INVALID_ARGUMENT, "DATE_INVALID", "visit.discharge_date"},
      {"discharge before admission",
       [](auto* r) { r->mutable_visit()->set_discharge_date("2024-06-01"); },
       grpc::StatusCode::INVALID_ARGUMENT, "DATE_ORDER", "visit.discharge_date"},
      {"no items", [](auto* r) { r->clear_items(); }, grpc::StatusCode::INVALID_ARGUMENT,
       "ITEMS_EMPTY", "items"},
      {"quantity malformed", [](auto* r) { r->mutable_items(1)->set_quantity("1.23456"); },
       grpc::StatusCode::INVALID_ARGUMENT, "QUANTITY_INVALID", "items[1].quantity"},
      {"negative price", [](auto* r) { r->mutable_items(0)->set_unit_price_cents(-1); },
       grpc::StatusCode::INVALID_ARGUMENT, "PRICE_INVALID", "items[0].unit_price_cents"},
      {"amount mismatch", [](auto* r) { r->mutable_items(2)->set_amount_cents(1); },
       grpc::StatusCode::INVALID_ARGUMENT, "AMOUNT_MISMATCH", "items[2].amount_cents"},
      {"duplicate line number", [](auto* r) { r->mutable_items(2)->set_line_no(1); },
       grpc::StatusCode::INVALID_ARGUMENT, "LINE_NO_DUPLICATE", "items[2].line_no"},
      {"item code missing", [](auto* r) { r->mutable_items(0)->clear_code(); },
       grpc::StatusCode::INVALID_ARGUMENT, "ITEM_CODE_MISSING", "items[0].code"},
      {"not enrolled",
       [](auto* r) {
         r->mutable_credential()->set_id_card_no(MakeIdNumber("330800", D("1990-01-01"), 998));
       },
       grpc::StatusCode::FAILED_PRECONDITION, "PERSON_NOT_ENROLLED", "credential"},
      {"outside the enrollment year",
       [](auto* r) {
         r->mutable_visit()->set_admission_date("2023-06-03");
         r->mutable_visit()->set_discharge_date("2023-06-12");
       },
       grpc::StatusCode::FAILED_PRECONDITION, "", ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    v1::SettleRequest bad = good;
    c.breaks(&bad);
    v1::SettleResponse out;
    CallResult result = Settle(inst, bad, &out);
    EXPECT_EQ(result.code(), c.code) << result.status.error_message();
    EXPECT_FALSE(result.reason.empty());
    if (!c.reason.empty()) {
      EXPECT_EQ(result.reason, c.reason);
    }
    if (!c.field.empty()) {
      EXPECT_EQ(result.field, c.field);
    }
    EXPECT_FALSE(result.status.error_message().empty());
  }
  // Nothing was written by any refusal.
  v1::CheckCoverageResponse coverage = Coverage(inst, IdOf(ry, 1), "2024-06-01");
  EXPECT_EQ(coverage.year_to_date().version(), 0);
}

TEST_F(GatewayTest, IdentityAndRegistryRefusals) {
  const RegionYear& ry = RegionYears()[0];
  const v1::SettleRequest r = Bill("who-1", IdOf(ry, 1), v1::VISIT_TYPE_INPATIENT, ry.year);
  v1::SettleResponse out;
  CallResult none = Settle("", r, &out);
  EXPECT_EQ(none.code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(none.reason, "INSTITUTION_IDENTITY_MISSING");
  CallResult bad = Settle("H 1", r, &out);
  EXPECT_EQ(bad.code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(bad.reason, "INSTITUTION_IDENTITY_INVALID");
  CallResult unknown = Settle("H999999-9", r, &out);
  EXPECT_EQ(unknown.code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(unknown.reason, "INSTITUTION_UNKNOWN");

  v1::ReverseRequest reverse;
  reverse.set_request_id("x");
  v1::ReverseResponse rr;
  reverse.set_settlement_id("ab-000000000000-0000000000000000");
  CallResult stranger = h().Call(&Stub::Reverse, "H999999-9", reverse, &rr);
  EXPECT_EQ(stranger.code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(stranger.reason, "INSTITUTION_UNKNOWN");
  v1::ReconcileRequest day;
  day.set_date("2024-06-12");
  v1::ReconcileResponse dr;
  EXPECT_EQ(h().Call(&Stub::Reconcile, "H999999-9", day, &dr).reason, "INSTITUTION_UNKNOWN");
  reverse.clear_settlement_id();
  CallResult no_id = h().Call(&Stub::Reverse, Hospital(kQuzhou, 1).institution_id, reverse, &rr);
  EXPECT_EQ(no_id.code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(no_id.reason, "SETTLEMENT_ID_MISSING");
  reverse.set_settlement_id("not-an-id");
  CallResult bad_id = h().Call(&Stub::Reverse, Hospital(kQuzhou, 1).institution_id, reverse, &rr);
  EXPECT_EQ(bad_id.code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(bad_id.reason, "SETTLEMENT_ID_INVALID");

  v1::ReconcileRequest recon;
  v1::ReconcileResponse rec;
  CallResult no_date = h().Call(&Stub::Reconcile, Hospital(kQuzhou, 1).institution_id, recon,
                                &rec);
  EXPECT_EQ(no_date.code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(no_date.reason, "DATE_MISSING");
  EXPECT_EQ(no_date.field, "date");

}

// ---- size and cost --------------------------------------------------------

TEST_F(GatewayTest, TenThousandLineInpatientBillSettles) {
  const RegionYear& ry = RegionYears()[1];
  const v1::SettleRequest r = InpatientBill("big-10000", IdOf(ry, 4), 10000, ry.year);
  v1::SettleResponse out;
  CallResult c = Settle(Hospital(kQuzhou, 3).institution_id, r, &out);
  ASSERT_TRUE(c.ok()) << c.reason << " " << c.status.error_message();
  EXPECT_EQ(out.lines_size(), 10000);
  int64_t total = 0;
  for (const v1::BillItem& item : r.items()) total += item.amount_cents();
  EXPECT_EQ(out.amounts().total_cents(), total);
  // The sizes docs/API.md quotes; well under the 64 MiB message limit, and
  // under gRPC's default 4 MiB client limit.
  std::printf("10,000-line bill: request %zu bytes, response %zu bytes\n", r.ByteSizeLong(),
              out.ByteSizeLong());
  EXPECT_LT(out.ByteSizeLong(), size_t{4} << 20);
  // And replays from Redis intact.
  v1::SettleResponse again;
  ASSERT_TRUE(Settle(Hospital(kQuzhou, 3).institution_id, r, &again).ok());
  EXPECT_TRUE(again.replayed());
  EXPECT_EQ(again.lines_size(), 10000);
}

// Round trips per settlement, from Redis's own counters: every command or
// pipeline Redis reads is one total_reads_processed; the snapshot watcher's
// polls (GET snap:current) are taken out. One pipelined read and one
// EVALSHA each.
TEST_F(GatewayTest, UncontendedSettlementCostsAtMostTwoRoundTrips) {
  const RegionYear& ry = RegionYears()[0];
  const std::string inst = Hospital(kQuzhou, 2).institution_id;
  v1::SettleResponse out;
  // Warm-up: loads the script and caches the institution.
  ASSERT_TRUE(Settle(inst, Bill("cost-0", IdOf(ry, 1), v1::VISIT_TYPE_INPATIENT, ry.year), &out)
                  .ok());
  auto stat = [](const std::string& info, std::string_view key) -> int64_t {
    size_t at = info.find(key);
    if (at == std::string::npos) return 0;
    return std::stoll(info.substr(at + key.size()));
  };
  auto snapshot = [&] {
    absl::StatusOr<cache::RedisReply> info =
        h().redis_client().Command({"INFO", "stats", "commandstats"});
    EXPECT_TRUE(info.ok());
    return info.ok() ? info->str : std::string();
  };
  constexpr int kSettlements = 10;
  const std::string before = snapshot();
  for (int i = 1; i <= kSettlements; ++i) {
    ASSERT_TRUE(Settle(inst, Bill(Cat("cost-", i), IdOf(ry, 1 + i % 4), v1::VISIT_TYPE_INPATIENT,
                                  ry.year),
                       &out)
                    .ok());
  }
  const std::string after = snapshot();
  const int64_t reads = stat(after, "total_reads_processed:") -
                        stat(before, "total_reads_processed:");
  const int64_t polls = stat(after, "cmdstat_get:calls=") - stat(before, "cmdstat_get:calls=");
  EXPECT_EQ(stat(after, "cmdstat_evalsha:calls=") - stat(before, "cmdstat_evalsha:calls="),
            kSettlements);
  EXPECT_EQ(stat(after, "cmdstat_eval:calls=") - stat(before, "cmdstat_eval:calls="), 0);
  // The shipping monitor's backlog polls, every 5 s: one pipeline of 256
  // XLEN and 256 XRANGE, which Redis may take in one read or two.
  const int64_t backlog_polls =
      (stat(after, "cmdstat_xlen:calls=") - stat(before, "cmdstat_xlen:calls=")) / 256;
  // The node monitor's PINGs (one a second, each its own read).
  const int64_t pings = stat(after, "cmdstat_ping:calls=") - stat(before, "cmdstat_ping:calls=");
  // reads − the snapshot watcher's polls (each a GET of snap:current and
  // an HGET of the version's registry_rev: two round trips) − the PINGs −
  // the observer's own INFO ≤ 2 per settlement (+ the backlog polls' reads).
  const int64_t settle_reads = reads - 2 * polls - pings - 1;
  EXPECT_LE(settle_reads, 2 * kSettlements + 2 * backlog_polls)
      << "reads " << reads << ", polls " << polls << ", backlog polls " << backlog_polls;
  EXPECT_GE(settle_reads, 2 * kSettlements - 1) << "reads " << reads << ", polls " << polls;
}

}  // namespace
}  // namespace medsettle::testing
