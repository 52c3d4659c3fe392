// The gateway when things go wrong, end to end (real gRPC on loopback, a
// real redis-server of the test's own):
//
//   Redis stopped mid-run    refusals are UNAVAILABLE REDIS_UNAVAILABLE and
//                            fast; the same gateway recovers by itself and
//                            the year holds exactly the acknowledged
//                            settlements (responses, coverage, journal agree)
//   Redis kill -9            an acknowledged settlement survives a restart
//                            from the AOF and replays as itself
//   snapshot flip            under traffic every answer is one version's,
//                            and the new version wins within a second
//   deltas                   suspension, lost voucher, new enrollee: seen
//                            within a second
//   health and reflection    grpc.health.v1 follows Redis; the reflection
//                            service lists and describes the service
//   overload                 RESOURCE_EXHAUSTED GATEWAY_OVERLOADED, nothing
//                            else
//   deadlines                one that passes while the gateway waits for
//                            Redis is DEADLINE_EXCEEDED and writes nothing
//
// Redis is slowed deterministically where a test needs calls to wait
// (CLIENT PAUSE, shorter than the gateway's Redis command timeout).
//
// Every wait is a bounded poll; every timing bound is generous (a loaded
// 2-core machine) but far below the call deadlines it is about.
#include <gtest/gtest.h>
#include <grpcpp/generic/generic_stub.h>

#include <google/protobuf/descriptor.pb.h>

#include <fstream>
#include <sstream>
#include <algorithm>
#include <cstdlib>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "cache/redis_client.h"
#include "cache/redis_settlement_store.h"
#include "proto/contract/ledger_record.h"
#include "cache/snapshot_store.h"
#include "engine/date.h"
#include "engine/engine.h"
#include "engine/status.h"
#include "engine/text.h"
#include "proto/contract/convert.h"
#include "tests/support/engine_fixture.h"
#include "tests/support/gateway_harness.h"
#include "tests/support/http_client.h"

namespace medsettle::testing {
namespace {

using engine::Cat;
using Stub = v1::SettlementService::Stub;
using Clock = std::chrono::steady_clock;

constexpr engine::RegionCode kQuzhou = 330800;
constexpr engine::RegionCode kDianjiang = 500231;

int64_t MsSince(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

// Quzhou 2024 residents (tier 0) and Dianjiang 2024 residents (tiers 1, 2).
std::string DianjiangId(int sequence) {
  return MakeIdNumber("500231", D("1975-03-02"), sequence);
}

std::vector<engine::Institution> Institutions() {
  std::vector<engine::Institution> all;
  for (engine::RegionCode r : {kQuzhou, kDianjiang}) {
    for (int level = 1; level <= 3; ++level) all.push_back(Hospital(r, level));
    all.push_back(Community(r));
  }
  return all;
}

std::vector<SnapshotPerson> Persons() {
  std::vector<SnapshotPerson> all;
  for (int i = 1; i <= 8; ++i) all.push_back({QuzhouId(i), Person(kQuzhou, 2024)});
  for (int i = 1; i <= 4; ++i) all.push_back({DianjiangId(i), Person(kDianjiang, 2024, 1)});
  return all;
}

// An inpatient bill of June 2024 with `lines` lines (3 is an ordinary bill).
v1::SettleRequest Bill(std::string request_id, std::string id_number, int lines = 3) {
  return InpatientBill(std::move(request_id), std::move(id_number), lines);
}

engine::Accumulators FromProto(const v1::Accumulators& in) {
  engine::Accumulators out;
  absl::Status s = contract::AccumulatorsFromProto(in, &out);
  EXPECT_TRUE(s.ok()) << s;
  return out;
}

// ---- hand-encoded protobuf for the health and reflection services ---------
// (Debian's gRPC ships neither generated stub.)

void PutVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// A length-delimited field.
std::string BytesField(int number, std::string_view value) {
  std::string out;
  PutVarint(static_cast<uint64_t>(number) << 3 | 2, &out);
  PutVarint(value.size(), &out);
  out.append(value);
  return out;
}

// The top-level fields of a message: varints as their value, length-
// delimited fields as their bytes. Other wire types end the parse (false).
struct WireFields {
  std::multimap<int, uint64_t> varints;
  std::multimap<int, std::string> bytes;
};

bool GetVarint(std::string_view* in, uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift < 64 && !in->empty(); shift += 7) {
    const auto b = static_cast<unsigned char>(in->front());
    in->remove_prefix(1);
    *v |= uint64_t{b & 0x7fu} << shift;
    if ((b & 0x80) == 0) return true;
  }
  return false;
}

bool ParseWire(std::string_view in, WireFields* out) {
  while (!in.empty()) {
    uint64_t key = 0;
    if (!GetVarint(&in, &key)) return false;
    const int number = static_cast<int>(key >> 3);
    uint64_t v = 0;
    switch (key & 7) {
      case 0:
        if (!GetVarint(&in, &v)) return false;
        out->varints.emplace(number, v);
        break;
      case 2:
        if (!GetVarint(&in, &v) || v > in.size()) return false;
        out->bytes.emplace(number, std::string(in.substr(0, v)));
        in.remove_prefix(v);
        break;
      default:
        return false;
    }
  }
  return true;
}

grpc::ByteBuffer ToBuffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

std::string FromBuffer(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (!buffer.Dump(&slices).ok()) return out;
  for (const grpc::Slice& s : slices) {
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return out;
}

// grpc.health.v1.HealthCheckResponse.ServingStatus
constexpr int kServing = 1;
constexpr int kNotServing = 2;

// /grpc.health.v1.Health/Check for `service`: the serving status, or the
// call's error code as a negative number (-5 = NOT_FOUND).
int HealthCheck(const std::shared_ptr<grpc::Channel>& channel, const std::string& service) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  const grpc::ByteBuffer request = ToBuffer(service.empty() ? "" : BytesField(1, service));
  grpc::ByteBuffer response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request,
                 &response, [&done](grpc::Status s) { done.set_value(std::move(s)); });
  const grpc::Status status = done.get_future().get();
  if (!status.ok()) return -static_cast<int>(status.error_code());
  WireFields fields;
  if (!ParseWire(FromBuffer(response), &fields)) return -100;
  auto it = fields.varints.find(1);
  return it == fields.varints.end() ? 0 : static_cast<int>(it->second);  // 0 = UNKNOWN
}

// One ServerReflectionInfo stream: sends each request, reads one response
// per request. Empty on any failure (the failure is reported).
std::vector<std::string> Reflect(const std::shared_ptr<grpc::Channel>& channel,
                                 const std::vector<std::string>& requests) {
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call = stub.PrepareCall(
      &context, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  std::vector<std::string> responses;
  if (call == nullptr) {
    ADD_FAILURE() << "cannot prepare the reflection call";
    return responses;
  }
  intptr_t next_tag = 1;
  // Waits for the operation tagged `tag` (operations are issued one at a time).
  auto await = [&](intptr_t tag) {
    void* got = nullptr;
    bool ok = false;
    const grpc::CompletionQueue::NextStatus s =
        cq.AsyncNext(&got, &ok, std::chrono::system_clock::now() + std::chrono::seconds(10));
    return s == grpc::CompletionQueue::GOT_EVENT && got == reinterpret_cast<void*>(tag) && ok;
  };
  bool ok = true;
  intptr_t tag = next_tag++;
  call->StartCall(reinterpret_cast<void*>(tag));
  ok = await(tag);
  for (size_t i = 0; ok && i < requests.size(); ++i) {
    tag = next_tag++;
    call->Write(ToBuffer(requests[i]), reinterpret_cast<void*>(tag));
    ok = await(tag);
    if (!ok) break;
    grpc::ByteBuffer response;
    tag = next_tag++;
    call->Read(&response, reinterpret_cast<void*>(tag));
    ok = await(tag);
    if (ok) responses.push_back(FromBuffer(response));
  }
  if (ok) {
    tag = next_tag++;
    call->WritesDone(reinterpret_cast<void*>(tag));
    ok = await(tag);
  }
  grpc::Status status;
  tag = next_tag++;
  call->Finish(&status, reinterpret_cast<void*>(tag));
  void* got = nullptr;
  bool finished = false;
  // Finish always completes (the deadline ends the call at the latest).
  while (cq.Next(&got, &finished)) {
    if (got == reinterpret_cast<void*>(tag)) break;
  }
  cq.Shutdown();
  while (cq.Next(&got, &finished)) {
  }
  if (!ok || !status.ok()) {
    ADD_FAILURE() << "reflection stream failed: " << status.error_code() << " "
                  << status.error_message();
    responses.clear();
  }
  return responses;
}

// ---- the fixture ----------------------------------------------------------

class GatewayFailureTest : public ::testing::Test {
 protected:
  // Starts Redis, the snapshot of Persons() and Institutions(), and the
  // gateway; skips the test when redis-server is not installed.
  void StartGateway(std::function<void(gateway::GatewayConfig&)> adjust = nullptr) {
    absl::StatusOr<std::unique_ptr<GatewayHarness>> h =
        GatewayHarness::Start(Persons(), Institutions(), std::move(adjust));
    if (!h.ok() && h.status().code() == absl::StatusCode::kNotFound) {
      GTEST_SKIP() << h.status().message();
    }
    ASSERT_TRUE(h.ok()) << h.status();
    h_ = *std::move(h);
  }

  GatewayHarness& h() { return *h_; }

  // Polls `call` (≤ timeout_ms, every 20 ms) until it returns true; the
  // milliseconds it took, or -1.
  static int64_t PollUntil(int timeout_ms, const std::function<bool()>& call) {
    const auto start = Clock::now();
    while (MsSince(start) <= timeout_ms) {
      if (call()) return MsSince(start);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }

  // The person's journal entries (settle +1, reverse −1 summed into *sum).
  int JournalOf(const std::string& person_key, engine::Accumulators* sum,
                std::set<std::string>* request_ids = nullptr) {
    cache::RedisSettlementStore store(h().redis_client());
    absl::StatusOr<std::vector<cache::JournalEntry>> journal =
        store.ReadJournal(person_key.substr(0, 2), 0, INT64_MAX);
    EXPECT_TRUE(journal.ok()) << journal.status();
    if (!journal.ok()) return -1;
    int entries = 0;
    for (const cache::JournalEntry& e : *journal) {
      EXPECT_TRUE(e.status.ok()) << e.status;
      const bool settle = e.kind == cache::JournalKind::kSettle;
      if ((settle ? e.settlement.person_key() : e.reversal.person_key()) != person_key) continue;
      contract::RecordEffect effect;
      EXPECT_TRUE((settle ? contract::EffectOf(e.settlement, &effect)
                          : contract::EffectOf(e.reversal, &effect))
                      .ok());
      sum->AddTotals(effect.delta, settle ? 1 : -1);
      if (request_ids != nullptr) {
        request_ids->insert(settle ? e.settlement.request_id() : e.reversal.request_id());
      }
      ++entries;
    }
    return entries;
  }

  std::unique_ptr<GatewayHarness> h_;
};

#define START_GATEWAY(...)                                \
  do {                                                    \
    StartGateway(__VA_ARGS__);                            \
    if (IsSkipped() || HasFatalFailure()) return;         \
  } while (false)

// ---- 1. Redis stopped under a running gateway -----------------------------

TEST_F(GatewayFailureTest, RedisStoppedMidRunRefusesFastAndRecoversWithNothingPartial) {
  START_GATEWAY();
  const std::string id = QuzhouId(1);
  const std::string pk = h().PersonKey(id);
  const std::string inst = Hospital(kQuzhou, 2).institution_id;

  // Every Settle request of the person, and its final OK response.
  std::mutex mutex;
  std::map<std::string, v1::SettleRequest> sent;     // guarded by mutex
  std::map<std::string, v1::SettleResponse> acked;   // guarded by mutex
  std::vector<CallResult> failures;                  // guarded by mutex
  auto settle = [&](Stub& stub, const v1::SettleRequest& r) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      sent[r.request_id()] = r;
    }
    v1::SettleResponse out;
    CallResult c = GatewayHarness::Call(stub, &Stub::Settle, inst, r, &out, 10000);
    std::lock_guard<std::mutex> lock(mutex);
    if (c.ok()) {
      acked[r.request_id()] = out;
    } else {
      failures.push_back(c);
    }
    return c;
  };

  for (int i = 0; i < 3; ++i) {
    CallResult c = settle(h().stub(), Bill(Cat("before-", i), id));
    ASSERT_TRUE(c.ok()) << Describe(c);
  }
  const std::string first_id = acked["before-0"].settlement_id();

  // Traffic that keeps settling while Redis goes away and comes back.
  std::atomic<bool> stop{false};
  std::atomic<int> ok_after_restart{0};
  std::atomic<bool> restarted{false};
  std::thread traffic([&] {
    auto stub = v1::SettlementService::NewStub(h().NewChannel());
    for (int n = 0; !stop.load() && n < 2000; ++n) {
      CallResult c = settle(*stub, Bill(Cat("during-", n), id, 1 + n % 3));
      if (c.ok() && restarted.load()) ++ok_after_restart;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(150));

  h().redis().Stop();
  // Refusals while Redis is down: UNAVAILABLE REDIS_UNAVAILABLE, fast (the
  // command timeout is 500 ms; a refused connect is immediate).
  {
    auto start = Clock::now();
    CallResult s = settle(h().stub(), Bill("while-down", id));
    const int64_t settle_ms = MsSince(start);
    EXPECT_EQ(s.code(), grpc::StatusCode::UNAVAILABLE) << Describe(s);
    EXPECT_EQ(s.reason, "REDIS_UNAVAILABLE") << Describe(s);
    EXPECT_LT(settle_ms, 3000);

    v1::CheckCoverageResponse coverage;
    start = Clock::now();
    CallResult c = h().Call(&Stub::CheckCoverage, inst, CoverageRequest(id), &coverage, 10000);
    const int64_t coverage_ms = MsSince(start);
    EXPECT_EQ(c.code(), grpc::StatusCode::UNAVAILABLE) << Describe(c);
    EXPECT_EQ(c.reason, "REDIS_UNAVAILABLE") << Describe(c);
    EXPECT_LT(coverage_ms, 3000);

    v1::ReverseRequest reverse;
    reverse.set_request_id("undo-while-down");
    reverse.set_settlement_id(first_id);
    v1::ReverseResponse reversed;
    start = Clock::now();
    CallResult r = h().Call(&Stub::Reverse, inst, reverse, &reversed, 10000);
    const int64_t reverse_ms = MsSince(start);
    EXPECT_EQ(r.code(), grpc::StatusCode::UNAVAILABLE) << Describe(r);
    EXPECT_EQ(r.reason, "REDIS_UNAVAILABLE") << Describe(r);
    EXPECT_LT(reverse_ms, 3000);
    std::printf("refusals with Redis down: Settle %lld ms, CheckCoverage %lld ms, Reverse %lld ms\n",
                static_cast<long long>(settle_ms), static_cast<long long>(coverage_ms),
                static_cast<long long>(reverse_ms));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // more refused traffic

  ASSERT_TRUE(h().redis().Restart().ok());
  restarted = true;
  // The same gateway serves again by itself.
  const int64_t recovered_ms = PollUntil(5000, [&] {
    v1::CheckCoverageResponse out;
    return h().Call(&Stub::CheckCoverage, inst, CoverageRequest(id), &out, 2000).ok();
  });
  ASSERT_GE(recovered_ms, 0) << "the gateway did not serve again within 5 s of the restart";
  std::printf("served again %lld ms after Redis was back\n",
              static_cast<long long>(recovered_ms));
  EXPECT_GE(PollUntil(5000, [&] { return ok_after_restart.load() >= 3; }), 0);
  stop = true;
  traffic.join();

  // Every failure was the outage's, and nothing else.
  std::map<std::string, v1::SettleRequest> retry;
  {
    std::lock_guard<std::mutex> lock(mutex);
    EXPECT_GE(failures.size(), 1u);
    for (const CallResult& c : failures) {
      EXPECT_EQ(c.code(), grpc::StatusCode::UNAVAILABLE) << Describe(c);
      EXPECT_EQ(c.reason, "REDIS_UNAVAILABLE") << Describe(c);
    }
    for (const auto& [request_id, request] : sent) {
      if (acked.count(request_id) == 0) retry[request_id] = request;
    }
  }
  // A refused Settle may or may not have committed (the reply can be lost);
  // the client contract is to send the same request again: it either
  // replays the commit or settles now, never twice.
  for (const auto& [request_id, request] : retry) {
    CallResult c = settle(h().stub(), request);
    ASSERT_TRUE(c.ok()) << request_id << ": " << Describe(c);
  }

  // The year is exactly the sum of the acknowledged settlements.
  engine::Accumulators sum;
  std::set<std::string> ids;
  for (const auto& [request_id, response] : acked) {
    sum.AddTotals(FromProto(response.accumulator_delta()), 1);
    ids.insert(response.settlement_id());
  }
  EXPECT_EQ(ids.size(), acked.size()) << "two requests share a settlement";
  v1::CheckCoverageResponse now;
  ASSERT_TRUE(h().Call(&Stub::CheckCoverage, inst, CoverageRequest(id), &now).ok());
  const engine::Accumulators stored = FromProto(now.year_to_date());
  EXPECT_TRUE(stored.SameTotals(sum));
  EXPECT_EQ(stored.version, static_cast<int64_t>(acked.size()));

  engine::Accumulators journal_sum;
  std::set<std::string> journal_requests;
  EXPECT_EQ(JournalOf(pk, &journal_sum, &journal_requests), static_cast<int>(acked.size()));
  EXPECT_TRUE(journal_sum.SameTotals(sum));
  for (const auto& [request_id, response] : acked) {
    EXPECT_EQ(journal_requests.count(request_id), 1u) << request_id;
  }

  // The Reverse refused during the outage did nothing.
  v1::GetSettlementRequest get;
  get.set_settlement_id(first_id);
  v1::SettleResponse fetched;
  ASSERT_TRUE(h().Call(&Stub::GetSettlement, inst, get, &fetched).ok());
  EXPECT_EQ(fetched.status(), v1::SETTLEMENT_STATUS_SETTLED);
  std::printf("%zu settlements acknowledged, %zu refused during the outage and re-sent\n",
              acked.size(), retry.size());
}

// ---- 2. kill -9 and a restart from the AOF --------------------------------

TEST_F(GatewayFailureTest, AcknowledgedSettlementSurvivesKill9AndAofRestart) {
  START_GATEWAY();
  const std::string id = QuzhouId(2);
  const std::string inst = Hospital(kQuzhou, 3).institution_id;
  const v1::SettleRequest request = Bill("k9-1", id);
  v1::SettleResponse settled;
  CallResult s = h().Call(&Stub::Settle, inst, request, &settled);
  ASSERT_TRUE(s.ok()) << Describe(s);
  ASSERT_FALSE(settled.replayed());

  h().redis().Kill9();
  ASSERT_TRUE(h().redis().Restart().ok());

  v1::GetSettlementRequest get;
  get.set_settlement_id(settled.settlement_id());
  v1::SettleResponse fetched;
  const int64_t ms = PollUntil(5000, [&] {
    fetched.Clear();
    return h().Call(&Stub::GetSettlement, inst, get, &fetched, 2000).ok();
  });
  ASSERT_GE(ms, 0) << "GetSettlement did not succeed within 5 s of the restart";
  EXPECT_EQ(fetched.settlement_id(), settled.settlement_id());
  EXPECT_EQ(fetched.status(), v1::SETTLEMENT_STATUS_SETTLED);
  EXPECT_EQ(fetched.amounts().SerializeAsString(), settled.amounts().SerializeAsString());

  // The same request replays the stored result; nothing is charged twice.
  v1::SettleResponse again;
  CallResult r = h().Call(&Stub::Settle, inst, request, &again);
  ASSERT_TRUE(r.ok()) << Describe(r);
  EXPECT_TRUE(again.replayed());
  EXPECT_EQ(again.settlement_id(), settled.settlement_id());
  v1::SettleResponse a = again;
  a.set_replayed(false);
  EXPECT_EQ(a.SerializeAsString(), settled.SerializeAsString());

  v1::CheckCoverageResponse coverage;
  ASSERT_TRUE(h().Call(&Stub::CheckCoverage, inst, CoverageRequest(id), &coverage).ok());
  EXPECT_EQ(coverage.year_to_date().SerializeAsString(),
            settled.year_to_date().SerializeAsString());
  EXPECT_EQ(coverage.year_to_date().version(), 1);
  engine::Accumulators journal;
  EXPECT_EQ(JournalOf(h().PersonKey(id), &journal), 1);
  EXPECT_TRUE(journal.SameTotals(FromProto(settled.accumulator_delta())));

  // And the person settles on from there.
  v1::SettleResponse next;
  ASSERT_TRUE(h().Call(&Stub::Settle, inst, Bill("k9-2", id), &next).ok());
  EXPECT_EQ(next.year_to_date().version(), 2);
}

// ---- 3. a snapshot flip under traffic -------------------------------------

TEST_F(GatewayFailureTest, SnapshotFlipUnderTrafficIsOneVersionPerCall) {
  START_GATEWAY();
  // Version A: Persons() and Institutions(). Version B: person P moves to
  // tier 2, person Q is suspended, hospital H3 is suspended.
  const std::string p = DianjiangId(1);
  const std::string q = DianjiangId(2);
  const engine::Institution h2 = Hospital(kDianjiang, 2);
  const engine::Institution h3 = Hospital(kDianjiang, 3);
  std::vector<SnapshotPerson> persons_b = Persons();
  std::vector<engine::Institution> institutions_b = Institutions();
  for (SnapshotPerson& person : persons_b) {
    if (person.id_number == p) person.enrollment.tier = 2;
    if (person.id_number == q) person.enrollment.status = engine::EnrollmentStatus::kSuspended;
  }
  for (engine::Institution& i : institutions_b) {
    if (i.institution_id == h3.institution_id) i.suspended = true;
  }

  // What PreSettle of P's bill at H2 is under each version.
  const v1::SettleRequest bill_p = Bill("flip-p", p);
  const v1::SettleRequest bill_q = Bill("flip-q", q);
  std::string amounts[2];
  for (int version = 0; version < 2; ++version) {
    engine::Enrollment e = Person(kDianjiang, 2024, version == 0 ? 1 : 2);
    e.person_key = h().PersonKey(p);
    engine::Claim claim;
    ASSERT_TRUE(contract::ClaimFromProto(bill_p, &claim, "").ok());
    engine::Settlement settlement;
    ASSERT_TRUE(SettleWith(e, h2, {}, claim, &settlement).ok());
    v1::SettleResponse out;
    contract::SettlementToProto(settlement, claim, e.person_key, h2.institution_id, &out);
    amounts[version] = out.amounts().SerializeAsString();
  }
  ASSERT_NE(amounts[0], amounts[1]) << "tiers 1 and 2 must split this bill differently";

  // Each call's answer: 0 = version A, 1 = version B, -1 = neither (a mix
  // or an unexpected failure).
  struct Observation {
    Clock::time_point started;
    int version;
    std::string what;
  };
  constexpr int kThreads = 4;
  std::vector<std::vector<Observation>> seen(kThreads);
  std::atomic<bool> stop{false};
  std::atomic<int> calls_before_flip{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::shared_ptr<grpc::Channel> channel = GatewayHarness::Connected(h().NewChannel());
      if (channel == nullptr) {
        ADD_FAILURE() << "thread " << t << " could not connect";
        return;
      }
      auto stub = v1::SettlementService::NewStub(channel);
      for (int n = 0; !stop.load(); ++n) {
        Observation o{Clock::now(), -1, ""};
        if (t % 2 == 0) {
          // CheckCoverage of P at H3: A covered at tier 1; B refused for
          // the institution, enrollment at tier 2.
          v1::CheckCoverageResponse out;
          CallResult c = GatewayHarness::Call(*stub, &Stub::CheckCoverage, h3.institution_id,
                                              CoverageRequest(p), &out, 5000);
          if (!c.ok()) {
            o.what = Describe(c);
          } else if (out.covered() && out.enrollment().tier() == 1) {
            o.version = 0;
          } else if (!out.covered() && out.reason() == "INSTITUTION_SUSPENDED" &&
                     out.enrollment().tier() == 2) {
            o.version = 1;
          } else {
            o.what = Cat("covered ", out.covered(), " reason ", out.reason(), " tier ",
                         out.enrollment().tier());
          }
        } else if (n % 2 == 0) {
          // PreSettle of P at H2: the tier-1 or the tier-2 split.
          v1::SettleResponse out;
          CallResult c = GatewayHarness::Call(*stub, &Stub::PreSettle, h2.institution_id, bill_p,
                                              &out, 5000);
          const std::string got = out.amounts().SerializeAsString();
          if (!c.ok()) {
            o.what = Describe(c);
          } else if (got == amounts[0]) {
            o.version = 0;
          } else if (got == amounts[1]) {
            o.version = 1;
          } else {
            o.what = Cat("amounts of neither version: ", out.amounts().ShortDebugString());
          }
        } else {
          // PreSettle of Q at H2: settles, or is refused as suspended.
          v1::SettleResponse out;
          CallResult c = GatewayHarness::Call(*stub, &Stub::PreSettle, h2.institution_id, bill_q,
                                              &out, 5000);
          if (c.ok()) {
            o.version = 0;
          } else if (c.code() == grpc::StatusCode::FAILED_PRECONDITION &&
                     c.reason == "ENROLLMENT_SUSPENDED") {
            o.version = 1;
          } else {
            o.what = Describe(c);
          }
        }
        seen[t].push_back(o);
        ++calls_before_flip;
      }
    });
  }
  // Every thread is under way on version A before the flip.
  ASSERT_GE(PollUntil(5000, [&] { return calls_before_flip.load() >= 40; }), 0);
  absl::StatusOr<std::string> version_b = h().LoadSnapshot(persons_b, institutions_b);
  const auto flipped = Clock::now();
  ASSERT_TRUE(version_b.ok()) << version_b.status();
  // Traffic on for 1.5 s after the flip.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  stop = true;
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(h().gateway().snapshot_version(), *version_b);

  int total = 0;
  int64_t last_a_ms = -1000000;  // latest start, relative to the flip, of a version-A answer
  for (int t = 0; t < kThreads; ++t) {
    int version = 0;
    int b = 0;
    for (const Observation& o : seen[t]) {
      ++total;
      ASSERT_NE(o.version, -1) << "thread " << t << ": " << o.what;
      // Per thread, calls are sequential: once B, never A again.
      EXPECT_GE(o.version, version) << "thread " << t << " saw version A after version B";
      version = o.version;
      const int64_t at = std::chrono::duration_cast<std::chrono::milliseconds>(
                             o.started - flipped).count();
      if (o.version == 0) last_a_ms = std::max(last_a_ms, at);
      if (o.version == 1) ++b;
    }
    EXPECT_GE(b, 1) << "thread " << t << " never saw the new version";
  }
  // Calls that started a second after the flip all saw the new version.
  EXPECT_LT(last_a_ms, 1000) << "a call started " << last_a_ms
                             << " ms after the flip still saw the old version";
  std::printf("%d calls; the last old-version answer started %lld ms after the flip\n", total,
              static_cast<long long>(last_a_ms));
}

// ---- 4. deltas --------------------------------------------------------------

TEST_F(GatewayFailureTest, DeltasAreVisibleWithinOneSecond) {
  START_GATEWAY();
  const std::string inst = Hospital(kQuzhou, 2).institution_id;

  // Suspension: the next Settle is refused, CheckCoverage says why.
  const std::string suspended = QuzhouId(3);
  v1::SettleResponse out;
  ASSERT_TRUE(h().Call(&Stub::Settle, inst, Bill("delta-0", suspended), &out).ok());
  cache::Delta suspend;
  suspend.kind = cache::DeltaKind::kSuspend;
  suspend.enrollment.person_key = h().PersonKey(suspended);
  ASSERT_TRUE(h().snapshot_store().ApplyDelta(suspend).ok());
  auto start = Clock::now();
  int settles = 0;
  const int64_t refused_ms = PollUntil(1000, [&] {
    v1::SettleResponse o;
    CallResult c = h().Call(&Stub::Settle, inst, Bill(Cat("delta-", ++settles), suspended), &o);
    return c.code() == grpc::StatusCode::FAILED_PRECONDITION && c.reason == "ENROLLMENT_SUSPENDED";
  });
  EXPECT_GE(refused_ms, 0) << "Settle was not refused within 1 s of the suspension";
  EXPECT_EQ(settles, 1) << "the very next Settle should see the suspension";
  v1::CheckCoverageResponse coverage;
  ASSERT_TRUE(h().Call(&Stub::CheckCoverage, inst, CoverageRequest(suspended), &coverage).ok());
  EXPECT_FALSE(coverage.covered());
  EXPECT_EQ(coverage.reason(), "ENROLLMENT_SUSPENDED");
  EXPECT_EQ(coverage.enrollment().status(), v1::ENROLLMENT_STATUS_SUSPENDED);
  EXPECT_LT(MsSince(start), 1000);
  // The refusals wrote nothing: the year holds the one settlement before.
  EXPECT_EQ(coverage.year_to_date().version(), 1);

  // Lost voucher: an e-insurance code issued before the revocation would be
  // refused (engine/coverage.cc); an ID card is not affected, so the
  // revocation shows in the enrollment CheckCoverage returns.
  const std::string revoked = QuzhouId(4);
  const int64_t revoked_at =
      std::chrono::duration_cast<std::chrono::seconds>(
          std::chrono::system_clock::now().time_since_epoch()).count();
  cache::Delta revoke;
  revoke.kind = cache::DeltaKind::kRevokeVoucher;
  revoke.enrollment.person_key = h().PersonKey(revoked);
  revoke.revoked_at_unix = revoked_at;
  ASSERT_TRUE(h().snapshot_store().ApplyDelta(revoke).ok());
  start = Clock::now();
  const std::string expected_at = engine::FormatRfc3339(revoked_at, 480);
  v1::CheckCoverageResponse after_revoke;
  const int64_t revoke_ms = PollUntil(1000, [&] {
    after_revoke.Clear();
    return h().Call(&Stub::CheckCoverage, inst, CoverageRequest(revoked), &after_revoke).ok() &&
           !after_revoke.enrollment().voucher_revoked_at().empty();
  });
  EXPECT_GE(revoke_ms, 0) << "the revocation was not visible within 1 s";
  EXPECT_EQ(after_revoke.enrollment().voucher_revoked_at(), expected_at);
  EXPECT_TRUE(after_revoke.covered()) << after_revoke.reason();
  ASSERT_TRUE(h().Call(&Stub::Settle, inst, Bill("revoked-idcard", revoked), &out).ok());
  // Codes issued before the report are refused from now on:
  // tests/gateway_security_test.cc (this gateway has no issuer keys).

  // A new mid-year enrollee: unknown, then settleable.
  const std::string newcomer = QuzhouId(77);
  CallResult before = h().Call(&Stub::Settle, inst, Bill("new-0", newcomer), &out);
  EXPECT_EQ(before.code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(before.reason, "PERSON_NOT_ENROLLED");
  cache::Delta upsert;
  upsert.kind = cache::DeltaKind::kUpsertPerson;
  upsert.enrollment = Person(kQuzhou, 2024);
  upsert.enrollment.person_key = h().PersonKey(newcomer);
  upsert.enrollment.paid_date = D("2024-03-10");  // mid-year: benefits from 2024-05-01
  upsert.enrollment.concentrated = false;
  ASSERT_TRUE(h().snapshot_store().ApplyDelta(upsert).ok());
  start = Clock::now();
  CallResult settled;
  const int64_t upsert_ms = PollUntil(1000, [&] {
    settled = h().Call(&Stub::Settle, inst, Bill("new-1", newcomer), &out);
    return settled.ok();
  });
  EXPECT_GE(upsert_ms, 0) << "the new enrollee could not settle within 1 s: "
                          << Describe(settled);
  EXPECT_EQ(out.status(), v1::SETTLEMENT_STATUS_SETTLED);
  v1::CheckCoverageResponse waiting;
  ASSERT_TRUE(h().Call(&Stub::CheckCoverage, inst, CoverageRequest(newcomer, "2024-04-15"),
                       &waiting).ok());
  EXPECT_FALSE(waiting.covered());
  EXPECT_EQ(waiting.reason(), "WAITING_PERIOD");
  v1::CheckCoverageResponse covered;
  ASSERT_TRUE(h().Call(&Stub::CheckCoverage, inst, CoverageRequest(newcomer), &covered).ok());
  EXPECT_TRUE(covered.covered()) << covered.reason();
  EXPECT_EQ(covered.covered_from(), "2024-05-01");
  std::printf("deltas seen after: suspend %lld ms, revoke %lld ms, upsert %lld ms\n",
              static_cast<long long>(refused_ms), static_cast<long long>(revoke_ms),
              static_cast<long long>(upsert_ms));
}

TEST_F(GatewayFailureTest, InstitutionDeltasReachTheGatewayWithoutASnapshotLoad) {
  START_GATEWAY();
  const std::string inst = Hospital(kQuzhou, 2).institution_id;
  const std::string person = QuzhouId(5);
  v1::SettleResponse out;
  ASSERT_TRUE(h().Call(&Stub::Settle, inst, Bill("inst-0", person), &out).ok());

  // Suspended (暂停医保服务): refused from the gateway's next registry
  // refresh on (snapshot_refresh_ms), without a snapshot load; the
  // refusals write nothing. (The bound is generous for loaded CI machines;
  // the printed times are what it took.)
  cache::InstitutionDelta suspend{.kind = cache::InstitutionDeltaKind::kSuspendInstitution};
  suspend.institution.institution_id = inst;
  ASSERT_TRUE(h().snapshot_store().ApplyInstitutionDelta(suspend).ok());
  int attempts = 0;
  int settled = 1;  // inst-0
  CallResult refused;
  const int64_t suspend_ms = PollUntil(5000, [&] {
    refused = h().Call(&Stub::Settle, inst, Bill(Cat("inst-s", ++attempts), person), &out);
    if (refused.ok()) ++settled;  // before the gateway's next registry refresh
    return refused.reason == "INSTITUTION_SUSPENDED";
  });
  EXPECT_GE(suspend_ms, 0) << "the suspension was not seen within 5 s: " << Describe(refused);
  EXPECT_EQ(refused.code(), grpc::StatusCode::PERMISSION_DENIED) << Describe(refused);
  v1::CheckCoverageResponse coverage;
  ASSERT_TRUE(h().Call(&Stub::CheckCoverage, Hospital(kQuzhou, 3).institution_id,
                       CoverageRequest(person), &coverage).ok());
  EXPECT_EQ(coverage.year_to_date().version(), settled) << "a refused settlement wrote something";
  // Another institution is not affected.
  EXPECT_TRUE(h().Call(&Stub::Settle, Hospital(kQuzhou, 3).institution_id,
                       Bill("inst-other", person), &out).ok());

  // Reinstated: settles again.
  cache::InstitutionDelta reinstate{.kind = cache::InstitutionDeltaKind::kReinstateInstitution};
  reinstate.institution.institution_id = inst;
  ASSERT_TRUE(h().snapshot_store().ApplyInstitutionDelta(reinstate).ok());
  const int64_t reinstate_ms = PollUntil(5000, [&] {
    return h().Call(&Stub::Settle, inst, Bill(Cat("inst-r", attempts++), person), &out).ok();
  });
  EXPECT_GE(reinstate_ms, 0) << "the reinstatement was not seen within 5 s";

  // A newly contracted community health centre: unknown, then settles.
  engine::Institution centre = Community(kQuzhou);
  centre.institution_id = "C330800NEW1";
  CallResult unknown =
      h().Call(&Stub::Settle, centre.institution_id, Bill("inst-new-0", person), &out);
  EXPECT_EQ(unknown.code(), grpc::StatusCode::PERMISSION_DENIED) << Describe(unknown);
  EXPECT_EQ(unknown.reason, "INSTITUTION_UNKNOWN");
  ASSERT_TRUE(h().snapshot_store()
                  .ApplyInstitutionDelta({.kind = cache::InstitutionDeltaKind::kUpsertInstitution,
                                          .institution = centre})
                  .ok());
  CallResult added;
  const int64_t upsert_ms = PollUntil(5000, [&] {
    added = h().Call(&Stub::Settle, centre.institution_id, Bill("inst-new-1", person), &out);
    return added.ok();
  });
  EXPECT_GE(upsert_ms, 0) << "the new centre could not settle within 5 s: " << Describe(added);
  std::printf("institution deltas seen after: suspend %lld ms, reinstate %lld ms, upsert %lld ms\n",
              static_cast<long long>(suspend_ms), static_cast<long long>(reinstate_ms),
              static_cast<long long>(upsert_ms));
}

// ---- 5. health checking and reflection ------------------------------------

TEST_F(GatewayFailureTest, HealthFollowsRedis) {
  START_GATEWAY();
  std::shared_ptr<grpc::Channel> channel = h().NewChannel();
  const std::string service(gateway::kServiceName);
  // The whole server ("") first, then the service by name, which must
  // follow at once (both are set together).
  auto expect_health = [&](int want, int timeout_ms, const char* when) -> int64_t {
    const int64_t ms = PollUntil(timeout_ms, [&] { return HealthCheck(channel, "") == want; });
    EXPECT_GE(ms, 0) << when << ": health of \"\" is " << HealthCheck(channel, "")
                     << ", not " << want << " (1 SERVING, 2 NOT_SERVING)";
    EXPECT_GE(PollUntil(500, [&] { return HealthCheck(channel, service) == want; }), 0)
        << when << ": health of " << service << " is " << HealthCheck(channel, service)
        << ", not " << want << " (1 SERVING, 2 NOT_SERVING, -5 NOT_FOUND: never registered)";
    return ms;
  };
  expect_health(kServing, 2000, "at start");

  h().redis().Stop();
  const int64_t down_ms = expect_health(kNotServing, 3000, "Redis stopped");
  EXPECT_LT(down_ms, 1500) << "NOT_SERVING should show within about a second";

  ASSERT_TRUE(h().redis().Restart().ok());
  const int64_t up_ms = expect_health(kServing, 5000, "Redis back");
  std::printf("NOT_SERVING %lld ms after Redis stopped, SERVING %lld ms after it was back\n",
              static_cast<long long>(down_ms), static_cast<long long>(up_ms));

}

// The shipping backlog (gateway/shipping_monitor.h): with no shipper
// running, a settlement's journal entry waits; once it is older than
// ledger.max_shipping_lag_seconds, medsettle.ledger.Shipping turns
// NOT_SERVING while the whole server stays SERVING (settlements go on);
// when the journal is empty again (what a shipper's release does), it is
// SERVING again.
TEST_F(GatewayFailureTest, HealthReportsTheShippingBacklog) {
  START_GATEWAY([](gateway::GatewayConfig& c) {
    c.ledger_backlog_poll_ms = 100;
    c.ledger_max_shipping_lag_seconds = 1;
  });
  std::shared_ptr<grpc::Channel> channel = h().NewChannel();
  const std::string shipping(gateway::kShippingHealthService);
  EXPECT_GE(PollUntil(2000, [&] { return HealthCheck(channel, shipping) == kServing; }), 0)
      << "an empty journal is no backlog; health is " << HealthCheck(channel, shipping);

  const std::string inst = Hospital(kQuzhou, 2).institution_id;
  v1::SettleResponse settled;
  ASSERT_TRUE(h().Call(&Stub::Settle, inst, Bill("backlog-1", QuzhouId(3)), &settled).ok());
  EXPECT_GE(PollUntil(1000, [&] { return h().gateway().shipping_backlog().entries == 1; }), 0)
      << "the journal holds the settlement: " << h().gateway().shipping_backlog().entries;

  const int64_t late_ms =
      PollUntil(4000, [&] { return HealthCheck(channel, shipping) == kNotServing; });
  EXPECT_GE(late_ms, 0) << "a 1 s lag limit passed with an entry waiting";
  EXPECT_GE(h().gateway().shipping_backlog().lag_ms, 1000);
  EXPECT_EQ(HealthCheck(channel, ""), kServing) << "settlements go on during a backlog";
  EXPECT_EQ(HealthCheck(channel, std::string(gateway::kServiceName)), kServing);

  // What the shipper does after its commit: the journal empties.
  const std::string journal = cache::JournalKey(settled.settlement_id().substr(0, 2));
  ASSERT_TRUE(h().redis_client().Command({"DEL", journal}).ok());
  EXPECT_GE(PollUntil(2000, [&] { return HealthCheck(channel, shipping) == kServing; }), 0)
      << "the backlog was shipped; health is " << HealthCheck(channel, shipping);
  EXPECT_EQ(h().gateway().shipping_backlog().entries, 0);

  h().redis().Stop();
  EXPECT_GE(PollUntil(3000, [&] { return HealthCheck(channel, shipping) == kNotServing; }), 0)
      << "an unreadable journal is an unknown backlog, not an empty one";
  const gateway::ShippingBacklog down = h().gateway().shipping_backlog();
  EXPECT_FALSE(down.known) << down.entries << " entries, lag " << down.lag_ms << " ms, at "
                           << down.measured_at_ms;
}

TEST(ShippingMonitor, StreamIdAgeIsTheEntrysAge) {
  EXPECT_EQ(gateway::StreamIdAgeMs("1000-0", 3500), 2500);
  EXPECT_EQ(gateway::StreamIdAgeMs("1000-17", 1000), 0);
  EXPECT_EQ(gateway::StreamIdAgeMs("5000-0", 1000), 0) << "a clock behind Redis is no lag";
  EXPECT_EQ(gateway::StreamIdAgeMs("", 1000), 0);
  EXPECT_EQ(gateway::StreamIdAgeMs("x-1", 1000), 0);
  EXPECT_EQ(gateway::StreamIdAgeMs("12a-1", 100000), 0);
}

// ---- metrics and structured logs --------------------------------------------

// Calls through a real gateway show in its /metrics — under the
// go-grpc-prometheus names and ours — and its refusals in JSON log lines
// that name the request and reason and never the ID number; promtool
// accepts the exposition.
TEST(GatewayObservability, MetricsAndLogsFollowTheCalls) {
  std::mutex lines_mutex;
  std::vector<std::string> lines;
  absl::StatusOr<std::unique_ptr<GatewayHarness>> started = GatewayHarness::Start(
      Persons(), Institutions(), nullptr,
      {.log_sink = [&](std::string_view line) {
        std::lock_guard<std::mutex> lock(lines_mutex);
        lines.emplace_back(line);
      }});
  if (!started.ok() && started.status().code() == absl::StatusCode::kNotFound) {
    GTEST_SKIP() << started.status().message();
  }
  ASSERT_TRUE(started.ok()) << started.status();
  GatewayHarness& h = **started;
  const int port = h.gateway().metrics_port();
  ASSERT_GT(port, 0) << "metrics.listen 127.0.0.1:0 binds a free port";

  const std::string inst = Hospital(kQuzhou, 2).institution_id;
  const std::string id = QuzhouId(5);
  v1::SettleResponse out;
  ASSERT_TRUE(h.Call(&Stub::Settle, inst, Bill("obs-1", id), &out).ok());
  ASSERT_TRUE(h.Call(&Stub::Settle, inst, Bill("obs-1", id), &out).ok());
  EXPECT_TRUE(out.replayed());
  v1::SettleRequest bad = Bill("obs-2", id);
  bad.mutable_items(0)->set_quantity("-1");
  const CallResult refused = h.Call(&Stub::Settle, inst, bad, &out);
  ASSERT_FALSE(refused.ok());
  v1::CheckCoverageResponse coverage;  // on a worker (Settle waits without one)
  ASSERT_TRUE(h.Call(&Stub::CheckCoverage, inst, CoverageRequest(id), &coverage).ok());

  const std::string response = HttpGet(port, "/metrics");
  ASSERT_NE(response.find("HTTP/1.1 200"), std::string::npos) << response.substr(0, 200);
  const std::string body = response.substr(response.find("\r\n\r\n") + 4);
  const std::string settle =
      "grpc_type=\"unary\",grpc_service=\"medsettle.v1.SettlementService\",grpc_method=\"Settle\"";
  EXPECT_EQ(MetricValue(body, "grpc_server_started_total{" + settle + "}"), 3) << body;
  EXPECT_EQ(MetricValue(body, "grpc_server_handled_total{" + settle + ",grpc_code=\"OK\"}"), 2);
  EXPECT_EQ(MetricValue(body, "grpc_server_handling_seconds_count{" + settle + "}"), 3);
  EXPECT_EQ(MetricValue(body, "medsettle_settlements_total{method=\"Settle\",outcome=\"settled\"}"), 1);
  EXPECT_EQ(MetricValue(body, "medsettle_settlements_total{method=\"Settle\",outcome=\"replayed\"}"), 1);
  EXPECT_EQ(MetricValue(body, "medsettle_settlements_total{method=\"Settle\",outcome=\"refused\"}"), 1);
  EXPECT_EQ(MetricValue(body, "medsettle_refusals_total{method=\"Settle\",reason=\"" + refused.reason +
                             "\"}"),
            1)
      << body;
  EXPECT_EQ(MetricValue(body, "medsettle_redis_up"), 1);
  EXPECT_GE(MetricValue(body, "medsettle_snapshot_age_seconds"), 0);
  EXPECT_NE(body.find("medsettle_snapshot_version{version=\""), std::string::npos);
  EXPECT_GT(MetricValue(body, "medsettle_redis_roundtrip_seconds_count"), 0);
  EXPECT_GT(MetricValue(body, "medsettle_worker_queue_wait_seconds_count"), 0);
  EXPECT_EQ(body.find(id), std::string::npos) << "no ID number in the metrics";

  // promtool, as the scrape configuration's users will.
  const std::string file = ::testing::TempDir() + "gateway-metrics.txt";
  {
    std::ofstream f(file);
    f << body;
  }
  const int promtool = std::system(("promtool check metrics < " + file + " > " + file +
                                    ".out 2>&1").c_str());
  std::ifstream lint(file + ".out");
  std::stringstream lint_text;
  lint_text << lint.rdbuf();
  EXPECT_EQ(promtool, 0) << "promtool check metrics (deploy/install-deps.sh installs it): "
                         << lint_text.str();

  EXPECT_NE(HttpGet(port, "/healthz").find("HTTP/1.1 200"), std::string::npos);

  std::lock_guard<std::mutex> lock(lines_mutex);
  bool saw_refusal = false;
  for (const std::string& line : lines) {
    EXPECT_EQ(line.find(id), std::string::npos) << "an ID number in a log line: " << line;
    EXPECT_EQ(line.back(), '\n');
    if (line.find("\"event\":\"call_refused\"") != std::string::npos) {
      saw_refusal = true;
      EXPECT_NE(line.find("\"request_id\":\"obs-2\""), std::string::npos) << line;
      EXPECT_NE(line.find("\"reason\":\"" + refused.reason + "\""), std::string::npos) << line;
      EXPECT_NE(line.find("\"institution\":\"" + inst + "\""), std::string::npos) << line;
      EXPECT_NE(line.find("\"method\":\"Settle\""), std::string::npos) << line;
    }
  }
  EXPECT_TRUE(saw_refusal) << lines.size() << " lines, none a refusal";
  EXPECT_TRUE(std::any_of(lines.begin(), lines.end(), [](const std::string& l) {
    return l.find("\"event\":\"gateway_started\"") != std::string::npos;
  }));
}

TEST_F(GatewayFailureTest, ReflectionListsAndDescribesTheService) {
  START_GATEWAY();
  std::shared_ptr<grpc::Channel> channel = h().NewChannel();
  const std::string service(gateway::kServiceName);
  // grpc.reflection.v1alpha: list_services (field 7), then
  // file_containing_symbol (field 4) of the service, on one stream.
  const std::vector<std::string> responses =
      Reflect(channel, {BytesField(7, ""), BytesField(4, service)});
  ASSERT_EQ(responses.size(), 2u);
  WireFields listed;
  ASSERT_TRUE(ParseWire(responses[0], &listed));
  std::set<std::string> names;
  for (auto [it, end] = listed.bytes.equal_range(6); it != end; ++it) {  // list_services_response
    WireFields list;
    ASSERT_TRUE(ParseWire(it->second, &list));
    for (auto [s, send] = list.bytes.equal_range(1); s != send; ++s) {  // ServiceResponse
      WireFields one;
      ASSERT_TRUE(ParseWire(s->second, &one));
      if (auto n = one.bytes.find(1); n != one.bytes.end()) names.insert(n->second);
    }
  }
  EXPECT_EQ(names.count(service), 1u) << "reflection lists " << names.size() << " services";

  WireFields described;
  ASSERT_TRUE(ParseWire(responses[1], &described));
  auto files = described.bytes.find(4);  // file_descriptor_response
  if (files == described.bytes.end()) {
    WireFields error;  // error_response {int32 error_code = 1; string error_message = 2}
    if (auto e = described.bytes.find(7); e != described.bytes.end()) ParseWire(e->second, &error);
    FAIL() << "reflection cannot describe " << service << ": "
           << (error.bytes.count(2) != 0 ? error.bytes.find(2)->second : "no answer")
           << " (the generated pool lacks medsettle/v1/service.proto)";
  }
  WireFields protos;
  ASSERT_TRUE(ParseWire(files->second, &protos));
  std::set<std::string> methods;
  for (auto [f, end] = protos.bytes.equal_range(1); f != end; ++f) {
    google::protobuf::FileDescriptorProto file;
    ASSERT_TRUE(file.ParseFromString(f->second));
    for (const google::protobuf::ServiceDescriptorProto& s : file.service()) {
      if (Cat(file.package(), ".", s.name()) != service) continue;
      for (const google::protobuf::MethodDescriptorProto& m : s.method()) methods.insert(m.name());
    }
  }
  for (const char* m : {"CheckCoverage", "PreSettle", "Settle", "Reverse", "GetSettlement",
                        "Reconcile"}) {
    EXPECT_EQ(methods.count(m), 1u) << m;
  }
}

// ---- 7. overload and deadlines --------------------------------------------

TEST_F(GatewayFailureTest, OverloadIsResourceExhaustedGatewayOverloadedAndNothingElse) {
  START_GATEWAY([](gateway::GatewayConfig& c) {
    c.worker_threads = 1;
    c.queue_limit = 1;
    c.max_in_flight = 2;
  });
  const std::string inst = Hospital(kQuzhou, 1).institution_id;
  const v1::SettleRequest bill = Bill("overload", QuzhouId(5));
  // Redis paused for 300 ms: two calls are admitted and wait in their
  // first read (workers.max_in_flight), the rest are refused.
  constexpr int kThreads = 16;
  std::vector<std::unique_ptr<Stub>> stubs;
  for (int t = 0; t < kThreads; ++t) {
    stubs.push_back(v1::SettlementService::NewStub(h().NewChannel()));
    v1::CheckCoverageResponse warm;  // connected before the burst
    ASSERT_TRUE(GatewayHarness::Call(*stubs.back(), &Stub::CheckCoverage, inst,
                                     CoverageRequest(QuzhouId(5)), &warm, 10000)
                    .ok());
  }
  std::vector<CallResult> results(kThreads);
  std::vector<std::thread> threads;
  ASSERT_TRUE(h().redis_client().Command({"CLIENT", "PAUSE", "300", "ALL"}).ok());
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      v1::SettleResponse out;
      results[t] = GatewayHarness::Call(*stubs[t], &Stub::PreSettle, inst, bill, &out, 20000);
    });
  }
  for (std::thread& t : threads) t.join();
  int overloaded = 0;
  int ok = 0;
  for (const CallResult& c : results) {
    if (c.ok()) {
      ++ok;
    } else if (c.code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      EXPECT_EQ(c.reason, "GATEWAY_OVERLOADED") << Describe(c);
      ++overloaded;
    } else {
      ADD_FAILURE() << "unexpected refusal under overload: " << Describe(c);
    }
  }
  EXPECT_GT(overloaded, 0) << "16 calls at once never overflowed 2 in flight";
  EXPECT_GE(ok, 2) << "the two admitted calls are served";
  EXPECT_EQ(h().gateway().counters().overload_refusals.load(),
            static_cast<uint64_t>(overloaded));
  std::printf("%d calls served, %d refused as overloaded\n", ok, overloaded);

}

// A deadline that passes while the gateway waits for Redis (paused longer
// than the deadline): refused before the commit, nothing written. First the
// gateway's own budget (request_timeout_ms, shorter than the caller's
// deadline): the refusal is the gateway's, with its reason; then the
// caller's deadline.
TEST_F(GatewayFailureTest, DeadlinesPassingBeforeTheCommitWriteNothing) {
  START_GATEWAY([](gateway::GatewayConfig& c) {
    c.request_timeout_ms = 200;
    c.redis_command_timeout_ms = 3000;  // outlasts the pauses
  });
  const std::string inst = Hospital(kQuzhou, 1).institution_id;
  const std::string id = QuzhouId(6);
  v1::SettleResponse out;
  ASSERT_TRUE(h().Call(&Stub::Settle, inst, Bill("warm", id), &out).ok());

  ASSERT_TRUE(h().redis_client().Command({"CLIENT", "PAUSE", "500", "ALL"}).ok());
  auto start = Clock::now();
  CallResult budget = h().Call(&Stub::Settle, inst, Bill("late-budget", id), &out, 5000);
  const int64_t budget_ms = MsSince(start);
  EXPECT_EQ(budget.code(), grpc::StatusCode::DEADLINE_EXCEEDED) << Describe(budget);
  EXPECT_EQ(budget.reason, "DEADLINE_EXCEEDED") << Describe(budget);
  EXPECT_LT(budget_ms, 3000);

  // Paused far longer than the caller's deadline, so that "did not wait
  // for Redis" stays clear of a loaded machine's scheduling delays.
  ASSERT_TRUE(h().redis_client().Command({"CLIENT", "PAUSE", "1500", "ALL"}).ok());
  start = Clock::now();
  CallResult caller = h().Call(&Stub::Settle, inst, Bill("late-caller", id), &out, 100);
  const int64_t caller_ms = MsSince(start);
  EXPECT_EQ(caller.code(), grpc::StatusCode::DEADLINE_EXCEEDED) << Describe(caller);
  EXPECT_LT(caller_ms, 1000) << "the caller waited past its deadline";

  // The gateway is none the worse for it, and wrote neither late request.
  EXPECT_GE(PollUntil(5000, [&] {
              return h().Call(&Stub::Settle, inst, Bill("after-late", id), &out).ok();
            }),
            0);
  engine::Accumulators sum;
  std::set<std::string> requests;
  EXPECT_EQ(JournalOf(h().PersonKey(id), &sum, &requests), 2);
  EXPECT_EQ(requests.count("late-budget"), 0u) << "committed after the gateway's budget";
  EXPECT_EQ(requests.count("late-caller"), 0u) << "committed after the caller's deadline";
  EXPECT_EQ(requests.count("after-late"), 1u);
  std::printf("refused after %lld ms (budget 200 ms), %lld ms (deadline 100 ms)\n",
              static_cast<long long>(budget_ms), static_cast<long long>(caller_ms));
}

}  // namespace
}  // namespace medsettle::testing
