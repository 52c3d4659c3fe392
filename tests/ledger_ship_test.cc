// The record's path Redis → shipper → PostgreSQL end to end, against a real
// redis-server and a real PostgreSQL of the test's own (label postgres),
// with settlements computed by the engine built from the shipped policy
// files and catalog (their real digests: the ledger stores the files) and
// committed as the gateway commits them (cache::RedisSettlementStore, one
// medsettle.v1.LedgerRecord each):
//
//   kill -9     the real medsettle-ledger ship process killed at random
//               moments (seeded) while settlements and reversals are
//               committed, restarted each time, then ship --drain: every
//               settlement and reversal in the ledger exactly once (the
//               same bytes), the journals empty, the ledger's sums equal
//               to Redis's accumulators for every person-year; and the
//               instant between the ledger's commit and the release in
//               Redis, made on purpose: the next shipper only releases
//   restarts    PostgreSQL stopped for a while (settlements go on, the
//               shipper reports errors and catches up) and killed, Redis
//               killed and restarted from its AOF: the same checks
//   bad entry   a journal entry that does not decode stops only its tag
//               (the entries before it ship, it and those after it stay);
//               other tags ship; status names the tag and the stream id
//   memory      a short hot window: Redis used_memory per settlement once
//               shipped is only the accumulator and idempotency keys; no
//               settlement, reversal or reconcile key of a shipped,
//               expired settlement is left
//   rebuild     accumulators wiped after a year of settlements close to
//               caps and deductible ceilings; rebuild restores them and the
//               next settlements pay exactly what they would have; verify
//               finds 0 differences, then exactly a tampered person-year
//   recompute   a random year of all four region-years and visit types
//               recomputed from the ledger: 0 differences; then exactly the
//               one record whose amounts were altered in PostgreSQL
//   reconcile   a day of one institution as 3201/3202 (CSV and JSON), with
//               a refund, against the records and Redis's index
//   archive     through a real gateway (ledger.conninfo): after the window
//               GetSettlement reads the ledger, Reverse is refused
//               REVERSAL_WINDOW_CLOSED and changes nothing, a reversal made
//               inside the window and a Settle replay answer from the ledger
//
// Each test has its own Redis and its own ledger database (on a PostgreSQL
// server the tests of a process share; the restart test has its own).
// Each run prints MEDSETTLE_SEED; set it to replay one. Only 127.0.0.1 is
// used; child processes are killed if the test dies (PR_SET_PDEATHSIG).
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "cache/connection_pool.h"
#include "cache/rule_files.h"
#include "cache/redis_settlement_store.h"
#include "cache/snapshot_store.h"
#include "engine/date.h"
#include "engine/engine.h"
#include "engine/files/loaded_engine.h"
#include "engine/money.h"
#include "engine/status.h"
#include "engine/text.h"
#include "gateway/config.h"
#include "gateway/settlement_handler.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "ledger/ledger_store.h"
#include "ledger/pg_connection.h"
#include "ledger/shipper.h"
#include "medsettle/v1/ledger.pb.h"
#include "proto/contract/convert.h"
#include "proto/contract/ledger_record.h"
#include "tests/support/child_process.h"
#include "tests/support/engine_fixture.h"
#include "tests/support/gateway_harness.h"
#include "tests/support/http_client.h"
#include "tests/support/postgres_server.h"
#include "tests/support/redis_server.h"
#include "tools/ledger/ledger_tool.h"

#ifndef MEDSETTLE_LEDGER_BINARY
#error "MEDSETTLE_LEDGER_BINARY must name the medsettle-ledger executable"
#endif

namespace medsettle {
namespace {

using engine::Cat;
using google::protobuf::util::MessageDifferencer;
using Clock = std::chrono::steady_clock;
using testing::ChildProcess;
using testing::HttpGetBody;
using testing::MetricValue;

constexpr engine::RegionCode kQuzhou = 330800;
constexpr engine::RegionCode kKecheng = 330802;
constexpr int64_t kMinuteMs = 60'000;
constexpr int64_t kHourMs = 3'600'000;

int64_t WallNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t MsSince(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

void SleepMs(int64_t ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// Runs `body(0)` … `body(threads - 1)` on as many threads and waits.
void RunInThreads(int threads, const std::function<void(int)>& body) {
  std::vector<std::thread> all;
  for (int t = 0; t < threads; ++t) all.emplace_back(body, t);
  for (std::thread& t : all) t.join();
}

// The run's seed: $MEDSETTLE_SEED, else random; printed by every test that
// uses it, with the test's own stream derived from it.
uint64_t BaseSeed() {
  static const uint64_t seed = []() -> uint64_t {
    if (const char* env = std::getenv("MEDSETTLE_SEED")) return std::strtoull(env, nullptr, 10);
    return (uint64_t{std::random_device{}()} << 32) ^ std::random_device{}();
  }();
  return seed;
}
uint64_t SeedFor(std::string_view test) {
  const uint64_t seed = BaseSeed();
  std::printf("MEDSETTLE_SEED=%llu (%.*s; set MEDSETTLE_SEED to replay)\n",
              static_cast<unsigned long long>(seed), static_cast<int>(test.size()), test.data());
  uint64_t h = 1469598103934665603ULL;  // FNV-1a of the test's name
  for (char c : test) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
  return seed ^ h;
}

std::string Hex(uint64_t value, int digits) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(static_cast<size_t>(digits), '0');
  for (int i = digits - 1; i >= 0 && value != 0; --i, value >>= 4) {
    out[static_cast<size_t>(i)] = kDigits[value & 15];
  }
  return out;
}

std::string TagText(int tag) { return Hex(static_cast<uint64_t>(tag & 255), 2); }

// ---- the rules, as the gateway loads them -----------------------------------

const engine_files::LoadedEngine& Rules() {
  static const engine_files::LoadedEngine* loaded = [] {
    absl::StatusOr<engine_files::LoadedEngine> l =
        engine_files::LoadEngine(Cat(MEDSETTLE_SOURCE_DIR, "/engine/policies"),
                                 Cat(MEDSETTLE_SOURCE_DIR, "/engine/catalog/demo-catalog.csv"));
    if (!l.ok()) {
      std::fprintf(stderr, "loading the shipped rules: %s\n", l.status().ToString().c_str());
      std::abort();
    }
    return new engine_files::LoadedEngine(*std::move(l));
  }();
  return *loaded;
}

// What a gateway publishes in Redis before its first commit (cache/rule_files.h).
std::vector<cache::RuleFile> PublishedRules() {
  std::vector<cache::RuleFile> files;
  for (const auto& [id, f] : Rules().policies) {
    files.push_back(
        {.sha256 = f.sha256_hex, .kind = "policy", .name = f.file_name, .content = f.bytes});
  }
  files.push_back({.sha256 = Rules().catalog.sha256_hex,
                   .kind = "catalog",
                   .name = Rules().catalog.file_name,
                   .content = Rules().catalog.bytes});
  return files;
}

// ---- bills ------------------------------------------------------------------

// What the counter scanned (the record drops it; the content hash covers it).
void SetCard(v1::SettleRequest* r) {
  r->mutable_credential()->set_insurance_card_no(Cat("CARD-", r->request_id()));
}

void AddLine(v1::SettleRequest* r, std::string code, std::string quantity,
             int64_t unit_price_cents) {
  v1::BillItem* item = r->add_items();
  item->set_line_no(r->items_size());
  item->set_name(code);
  item->set_code(std::move(code));
  const std::optional<engine::Quantity> q = engine::ParseQuantity(quantity);
  item->set_quantity(std::move(quantity));
  item->set_unit_price_cents(unit_price_cents);
  item->set_amount_cents(q ? engine::MultiplyQuantity(*q, unit_price_cents).value_or(0) : 0);
}

// A general-outpatient bill: a consultation and `quantity` × amoxicillin
// at `unit_price_cents` (class A, no price cap).
v1::SettleRequest OutpatientBill(std::string request_id, std::string_view date, int quantity,
                                 int64_t unit_price_cents) {
  v1::SettleRequest r;
  r.set_request_id(std::move(request_id));
  SetCard(&r);
  r.mutable_visit()->set_type(v1::VISIT_TYPE_GENERAL_OUTPATIENT);
  r.mutable_visit()->set_service_date(std::string(date));
  AddLine(&r, "FA0001", "1", 1000);
  AddLine(&r, "XA0001", Cat(quantity), unit_price_cents);
  return r;
}

// An inpatient stay: a stent procedure (class B), `days` ward beds and
// inpatient consultations.
v1::SettleRequest StayBill(std::string request_id, engine::Date admission, int days) {
  v1::SettleRequest r;
  r.set_request_id(std::move(request_id));
  SetCard(&r);
  r.mutable_visit()->set_type(v1::VISIT_TYPE_INPATIENT);
  r.mutable_visit()->set_admission_date(admission.ToString());
  r.mutable_visit()->set_discharge_date(admission.AddDays(days).ToString());
  AddLine(&r, "FB0003", "1", 1'200'000);
  AddLine(&r, "FA0003", Cat(days), 4800);
  AddLine(&r, "FA0002", Cat(days), 2350);
  return r;
}

// ---- persons and the path of a settlement without a gateway ------------------

struct Person {
  std::string key;
  engine::Enrollment enrollment;  // as the snapshot holds it
};

// Person `n` of hash tag `tag`: person keys are HMAC output, so the rest
// of the key looks random too (the snapshot files persons by its digits).
Person MakePerson(int tag, uint64_t n, engine::RegionCode region, int year, int tier = 0) {
  Person p;
  p.key = Cat(TagText(tag), engine_files::Sha256Hex(Cat("person ", n)).substr(0, 62));
  p.enrollment = testing::Person(region, year, tier);
  p.enrollment.person_key = p.key;
  return p;
}

engine::Institution Hospital(int level) {
  engine::Institution h = testing::Hospital(kKecheng, level);
  return h;
}

// What a committed settlement and reversal are, by settlement id.
struct Committed {
  std::map<std::string, v1::LedgerRecord> settlements;
  std::map<std::string, v1::LedgerReversal> reversals;  // by the settlement reversed
  void Merge(const Committed& other) {
    settlements.insert(other.settlements.begin(), other.settlements.end());
    reversals.insert(other.reversals.begin(), other.reversals.end());
  }
};

// The gateway's Settle and Reverse on the store, without the gateway:
// read, compute with the engine of Rules(), build the record with the real
// digests, commit; VERSION_MOVED computes again. With `retry_errors`,
// a Redis error (the server being killed or restarting) repeats the same
// call until `give_up_ms` (a commit's outcome is then unknown: the same
// commit replays if it happened).
class Settler {
 public:
  Settler(cache::RedisSettlementStore& store, std::string snapshot_version,
          bool retry_errors = false)
      : store_(store), version_(std::move(snapshot_version)), retry_errors_(retry_errors) {}

  int64_t retries() const { return retries_.load(); }

  absl::StatusOr<v1::LedgerRecord> Settle(const Person& p, const engine::Institution& institution,
                                          const v1::SettleRequest& request, int64_t settled_at_ms,
                                          int64_t give_up_ms = 0) const {
    engine::Claim claim;
    if (absl::Status s = contract::ClaimFromProto(request, &claim, ""); !s.ok()) return s;
    const int32_t year = engine::Engine::SettlementDate(claim.visit).year();
    const std::string hash = engine_files::Sha256Hex(request.SerializeAsString());
    for (int attempt = 0; attempt < 100; ++attempt) {
      absl::StatusOr<cache::SettleRead> read = store_.ReadForSettle(
          version_, p.key, year, institution.institution_id, request.request_id());
      if (!read.ok()) {
        if (Retry(read.status(), give_up_ms)) continue;
        return read.status();
      }
      if (read->prior.has_value()) {
        if (read->prior->content_hash != hash) {
          return absl::AlreadyExistsError(Cat("request id reused: ", request.request_id()));
        }
        if (read->prior->record.has_value()) return *read->prior->record;
        absl::StatusOr<cache::StoredSettlement> stored =
            store_.GetSettlement(read->prior->settlement_id);
        if (!stored.ok()) return stored.status();
        return stored->record;
      }
      if (!read->enrollment.has_value()) {
        return absl::FailedPreconditionError(Cat("not in the snapshot: ", p.key));
      }
      engine::Settlement s;
      if (absl::Status st = Rules().engine->Settle({.enrollment = &*read->enrollment,
                                                    .institution = &institution,
                                                    .year_to_date = &read->accumulators,
                                                    .claim = &claim},
                                                   &s);
          !st.ok()) {
        return st;
      }
      v1::SettleResponse response;
      contract::SettlementToProto(s, claim, p.key, institution.institution_id, &response);
      const std::string id = cache::NewSettlementId(p.key, settled_at_ms);
      response.set_settlement_id(id);
      response.set_status(v1::SETTLEMENT_STATUS_SETTLED);
      response.set_settled_at(engine::FormatRfc3339(settled_at_ms / 1000, 480));
      const engine_files::SourceFile* policy = Rules().PolicySource(s.policy_id);
      if (policy == nullptr) return absl::InternalError(Cat("no file for ", s.policy_id));
      cache::SettlementCommit c;
      contract::BuildLedgerRecord(request, *read->enrollment, institution, read->accumulators,
                                  response,
                                  {.settlement_id = id,
                                   .institution_id = institution.institution_id,
                                   .person_key = p.key,
                                   .content_hash = hash,
                                   .credential_kind = "INSURANCE_CARD",
                                   .settled_at_unix_ms = settled_at_ms,
                                   .snapshot_version = version_,
                                   .policy_sha256 = policy->sha256_hex,
                                   .catalog_sha256 = Rules().catalog.sha256_hex},
                                  &c.record);
      c.expected_version = read->accumulators.version;
      for (;;) {
        absl::StatusOr<cache::CommitResult> r = store_.CommitSettlement(c);
        if (!r.ok()) {
          // The same commit again: it replays if it happened.
          if (Retry(r.status(), give_up_ms)) continue;
          return r.status();
        }
        if (r->outcome == cache::CommitOutcome::kCommitted) return c.record;
        if (r->outcome == cache::CommitOutcome::kReplayed) {
          if (r->settlement_id == id) return c.record;  // an attempt whose reply was lost
          absl::StatusOr<cache::StoredSettlement> stored = store_.GetSettlement(r->settlement_id);
          if (!stored.ok()) return stored.status();
          return stored->record;
        }
        if (r->outcome == cache::CommitOutcome::kVersionMoved) break;
        return absl::InternalError(Cat("unexpected outcome ", cache::Name(r->outcome)));
      }
    }
    return absl::AbortedError("VERSION_MOVED 100 times");
  }

  // The reversal as the gateway's Reverse builds it.
  static v1::LedgerReversal ReversalOf(const v1::LedgerRecord& settled,
                                       const std::string& request_id, int64_t reversed_at_ms) {
    v1::ReverseResponse response;
    response.set_reversal_id(Cat(settled.settlement_id(), "-r"));
    response.set_settlement_id(settled.settlement_id());
    response.set_status(v1::SETTLEMENT_STATUS_REVERSED);
    *response.mutable_amounts() = settled.response().amounts();
    response.set_reversed_at(engine::FormatRfc3339(reversed_at_ms / 1000, 480));
    response.set_reason("patient returned the medicine");
    v1::LedgerReversal r;
    r.set_format(contract::kLedgerRecordFormat);
    r.set_settlement_id(settled.settlement_id());
    r.set_institution_id(settled.institution_id());
    r.set_request_id(request_id);
    r.set_reason(response.reason());
    r.set_reversed_at_unix_ms(reversed_at_ms);
    r.set_person_key(settled.person_key());
    r.set_year(settled.year());
    r.set_settlement_date(settled.settlement_date());
    *r.mutable_amounts() = settled.response().amounts();
    *r.mutable_delta() = settled.response().accumulator_delta();
    *r.mutable_response() = response;
    r.set_settle_request_id(settled.request_id());
    return r;
  }

  absl::StatusOr<v1::LedgerReversal> Reverse(const v1::LedgerRecord& settled,
                                             const std::string& request_id, int64_t reversed_at_ms,
                                             int64_t give_up_ms = 0) const {
    const v1::LedgerReversal reversal = ReversalOf(settled, request_id, reversed_at_ms);
    for (;;) {
      absl::StatusOr<cache::ReversalResult> r = store_.CommitReversal(settled, reversal);
      if (!r.ok()) {
        if (Retry(r.status(), give_up_ms)) continue;
        return r.status();
      }
      return r->reversal;  // this one, or the stored one of an attempt whose reply was lost
    }
  }

 private:
  bool Retry(const absl::Status& s, int64_t give_up_ms) const {
    if (!retry_errors_ || WallNowMs() > give_up_ms) return false;
    (void)s;
    retries_.fetch_add(1);
    SleepMs(20);
    return true;
  }

  cache::RedisSettlementStore& store_;
  const std::string version_;
  const bool retry_errors_;
  mutable std::atomic<int64_t> retries_{0};
};

// The engine's answer for `request` on the year `ytd`, nothing committed:
// what a settlement must pay (the control of a rebuild).
absl::StatusOr<v1::SettleResponse> Expected(const Person& p, const engine::Institution& institution,
                                            const v1::SettleRequest& request,
                                            const engine::Accumulators& ytd) {
  engine::Claim claim;
  if (absl::Status s = contract::ClaimFromProto(request, &claim, ""); !s.ok()) return s;
  engine::Settlement s;
  if (absl::Status st = Rules().engine->Settle({.enrollment = &p.enrollment,
                                                .institution = &institution,
                                                .year_to_date = &ytd,
                                                .claim = &claim},
                                               &s);
      !st.ok()) {
    return st;
  }
  v1::SettleResponse out;
  contract::SettlementToProto(s, claim, p.key, institution.institution_id, &out);
  return out;
}

// ---- medsettle-ledger, in-process and as a process ---------------------------

struct ToolResult {
  int code = -1;
  std::string out;
  std::string err;
};

std::string Describe(const ToolResult& r) {
  return Cat("exit ", r.code, "\n--- stdout\n", r.out, "--- stderr\n", r.err);
}

ToolResult RunTool(const std::vector<std::string>& args, const ledger_tool::RunOptions& run = {}) {
  std::ostringstream out, err;
  ToolResult r;
  r.code = ledger_tool::Run(args, out, err, run);
  r.out = out.str();
  r.err = err.str();
  return r;
}

int CountLines(std::string_view text, std::string_view prefix) {
  int n = 0;
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string_view::npos) end = text.size();
    if (text.substr(at, end - at).starts_with(prefix)) ++n;
    at = end + 1;
  }
  return n;
}

// ---- Redis and PostgreSQL look-ups -------------------------------------------

int64_t UsedMemory(cache::RedisClient& redis) {
  cache::RedisResult info = redis.NodeCommand(0, {"INFO", "memory"});
  EXPECT_TRUE(info.ok()) << info.status();
  if (!info.ok()) return -1;
  const std::string& text = info->str;
  const size_t at = text.find("used_memory:");
  if (at == std::string::npos) return -1;
  return std::strtoll(text.c_str() + at + 12, nullptr, 10);
}

std::vector<std::string> Keys(cache::RedisClient& redis, std::string_view pattern) {
  std::vector<std::string> out;
  std::string cursor = "0";
  do {
    cache::RedisResult scan =
        redis.NodeCommand(0, {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"});
    EXPECT_TRUE(scan.ok()) << scan.status();
    if (!scan.ok() || scan->elements.size() != 2) return out;
    cursor = scan->elements[0].str;
    for (const cache::RedisReply& k : scan->elements[1].elements) out.push_back(k.str);
  } while (cursor != "0");
  return out;
}

int64_t JournalTotal(cache::RedisSettlementStore& store) {
  absl::StatusOr<std::vector<cache::RedisSettlementStore::JournalLength>> lengths =
      store.JournalLengths();
  if (!lengths.ok()) return -1;
  int64_t total = 0;
  for (const auto& l : *lengths) total += l.entries;
  return total;
}

std::unique_ptr<ledger::PgConnection> ConnectPg(const std::string& conninfo) {
  absl::StatusOr<std::unique_ptr<ledger::PgConnection>> c =
      ledger::PgConnection::Connect({.conninfo = conninfo, .application_name = "ledger_ship_test"});
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *std::move(c) : nullptr;
}

int64_t QueryInt(const std::string& conninfo, std::string_view sql) {
  std::unique_ptr<ledger::PgConnection> pg = ConnectPg(conninfo);
  if (pg == nullptr) return -1;
  absl::StatusOr<ledger::PgResult> r = pg->Exec(sql);
  EXPECT_TRUE(r.ok()) << r.status();
  if (!r.ok() || r->rows() != 1) return -1;
  return r->int64(0, 0);
}

// Every settlement and reversal committed is in the ledger exactly once,
// with the very bytes committed, and nothing else is.
void ExpectLedgerHoldsExactlyOnce(const std::string& conninfo, const Committed& committed) {
  std::unique_ptr<ledger::PgConnection> pg = ConnectPg(conninfo);
  ASSERT_NE(pg, nullptr);
  for (const bool reversals : {false, true}) {
    const std::string table = reversals ? "ledger.reversals" : "ledger.settlements";
    absl::StatusOr<ledger::PgResult> rows =
        pg->Exec(Cat("SELECT settlement_id, record FROM ", table));
    ASSERT_TRUE(rows.ok()) << rows.status();
    std::map<std::string, int> count;
    int differing = 0;
    for (int i = 0; i < rows->rows(); ++i) {
      const std::string id(rows->text(i, 0));
      ++count[id];
      const std::string bytes = rows->bytea(i, 1);
      bool same = false;
      if (reversals) {
        auto it = committed.reversals.find(id);
        v1::LedgerReversal stored;
        same = it != committed.reversals.end() && stored.ParseFromString(bytes) &&
               MessageDifferencer::Equals(stored, it->second);
      } else {
        auto it = committed.settlements.find(id);
        v1::LedgerRecord stored;
        same = it != committed.settlements.end() && stored.ParseFromString(bytes) &&
               MessageDifferencer::Equals(stored, it->second);
      }
      if (!same && ++differing <= 5) ADD_FAILURE() << table << " " << id << ": not as committed";
    }
    int twice = 0, missing = 0;
    for (const auto& [id, n] : count) {
      if (n != 1 && ++twice <= 5) ADD_FAILURE() << table << " holds " << id << " " << n << " times";
    }
    const size_t expected = reversals ? committed.reversals.size() : committed.settlements.size();
    auto check_missing = [&](const std::string& id) {
      if (!count.contains(id) && ++missing <= 5) ADD_FAILURE() << table << " lacks " << id;
    };
    if (reversals) {
      for (const auto& [id, r] : committed.reversals) check_missing(id);
    } else {
      for (const auto& [id, r] : committed.settlements) check_missing(id);
    }
    EXPECT_EQ(static_cast<size_t>(rows->rows()), expected) << table;
    EXPECT_EQ(count.size(), expected) << table;
    EXPECT_EQ(differing + twice + missing, 0) << table << ": " << differing << " differing, "
                                              << twice << " duplicated, " << missing << " missing";
  }
}

// For every person-year: the ledger's sums (settlements − reversals) equal
// Redis's accumulators, and the ledger counts the rows committed.
void ExpectLedgerSumsEqualRedis(const std::string& conninfo, cache::RedisSettlementStore& store,
                                const Committed& committed) {
  struct Want {
    int64_t settlements = 0;
    int64_t reversals = 0;
  };
  std::map<std::pair<std::string, int32_t>, Want> wanted;
  for (const auto& [id, r] : committed.settlements)
    ++wanted[{r.person_key(), r.year()}].settlements;
  for (const auto& [id, r] : committed.reversals) ++wanted[{r.person_key(), r.year()}].reversals;

  absl::StatusOr<std::unique_ptr<ledger::LedgerStore>> ledger =
      ledger::LedgerStore::Open({.conninfo = conninfo});
  ASSERT_TRUE(ledger.ok()) << ledger.status();
  std::map<std::pair<std::string, int32_t>, ledger::PersonYearDelta> sums;
  absl::Status walked = (*ledger)->PersonYearDeltas({}, [&](const ledger::PersonYearDelta& d) {
    sums[{d.person_key, d.year}] = d;
    return absl::OkStatus();
  });
  ASSERT_TRUE(walked.ok()) << walked;
  EXPECT_EQ(sums.size(), wanted.size()) << "person-years in the ledger vs committed";

  std::vector<std::pair<std::string, int32_t>> keys;
  for (const auto& [key, w] : wanted) keys.push_back(key);
  absl::StatusOr<std::vector<cache::RedisSettlementStore::StoredYear>> years =
      store.ReadYears(keys);
  ASSERT_TRUE(years.ok()) << years.status();
  int differing = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    const auto it = sums.find(keys[i]);
    const bool same = it != sums.end() && (*years)[i].exists &&
                      (*years)[i].accumulators.SameTotals(it->second.totals) &&
                      it->second.settlements == wanted[keys[i]].settlements &&
                      it->second.reversals == wanted[keys[i]].reversals;
    if (!same && ++differing <= 5) {
      ADD_FAILURE() << "person " << keys[i].first << " year " << keys[i].second
                    << ": the ledger's sums differ from Redis's accumulators (or its row counts "
                       "from those committed)";
    }
  }
  EXPECT_EQ(differing, 0) << "of " << keys.size() << " person-years";
}

// ---- the fixture: a PostgreSQL database and a Redis of the test's own -------

// The ledger's schema in the database of `conninfo` (medsettle-ledger
// migrate); false after reporting the failure.
bool Migrate(const std::string& conninfo) {
  const ToolResult migrated = RunTool({"migrate", "--ledger", conninfo});
  EXPECT_EQ(migrated.code, 0) << Describe(migrated);
  return migrated.code == 0;
}

// A PostgreSQL server of the test's own (initdb, a free loopback port);
// nullptr after reporting the failure.
std::unique_ptr<testing::PostgresServer> StartPostgres() {
  absl::StatusOr<std::unique_ptr<testing::PostgresServer>> pg = testing::PostgresServer::Start();
  EXPECT_TRUE(pg.ok()) << pg.status();
  return pg.ok() ? *std::move(pg) : nullptr;
}

// Each test has a ledger of its own: a fresh database on a server the
// tests share (an initdb costs seconds), or, for a test that stops and
// kills PostgreSQL (OwnServer), a server of its own. And a fresh Redis.
class LedgerShipTest : public ::testing::Test {
 protected:
  static void TearDownTestSuite() { shared_.reset(); }
  virtual bool OwnServer() const { return false; }

  void SetUp() override {
    if (testing::FindPostgresBinDir().empty()) {
      GTEST_SKIP() << "PostgreSQL is not installed (bash deploy/install-deps.sh)";
    }
    if (testing::FindRedisServer().empty()) {
      GTEST_SKIP() << "redis-server is not installed (bash deploy/install-deps.sh)";
    }
    if (OwnServer()) {
      pg_ = StartPostgres();
      ASSERT_NE(pg_, nullptr);
      conninfo_ = pg_->conninfo();
    } else {
      if (shared_ == nullptr) shared_ = StartPostgres();
      ASSERT_NE(shared_, nullptr);
      const std::string database = Cat("ledger_", ++databases_);
      std::unique_ptr<ledger::PgConnection> admin = ConnectPg(shared_->conninfo());
      ASSERT_NE(admin, nullptr);
      ASSERT_TRUE(admin->Exec(Cat("CREATE DATABASE ", database)).ok());
      conninfo_ = Cat(shared_->conninfo(), " dbname=", database);  // the last dbname counts
    }
    ASSERT_TRUE(Migrate(conninfo_));
    absl::StatusOr<std::unique_ptr<testing::RedisServer>> redis = testing::RedisServer::Start();
    ASSERT_TRUE(redis.ok()) << redis.status();
    redis_ = *std::move(redis);
    cache::PoolOptions options;
    options.redis = {.host = redis_->host(),
                     .port = redis_->port(),
                     .connect_timeout_ms = 1000,
                     .command_timeout_ms = 5000};
    options.size = 8;
    options.acquire_timeout_ms = 10000;
    pool_ = std::make_unique<cache::ConnectionPool>(options);
    store_ = std::make_unique<cache::RedisSettlementStore>(
        *pool_, cache::SettlementStoreOptions{.idempotency_ttl_seconds = 35 * 86400});
    // What every gateway does at start: the rules it settles with, in Redis.
    absl::Status published = cache::PublishRuleFiles(*pool_, PublishedRules());
    ASSERT_TRUE(published.ok()) << published;
  }

  const std::string& conninfo() const { return conninfo_; }
  std::string redis_address() const { return Cat(redis_->host(), ":", redis_->port()); }
  std::vector<std::string> Flags(std::vector<std::string> command) const {
    command.insert(command.end(), {"--ledger", conninfo()});
    if (command.front() != "recompute" && command.front() != "reconcile") {
      command.insert(command.end(), {"--redis", redis_address()});
    }
    return command;
  }

  // Loads a snapshot version of `persons` and makes it current.
  std::string LoadSnapshot(const std::vector<Person>& persons) {
    cache::SnapshotStore snapshots(*pool_);
    absl::StatusOr<std::string> v = snapshots.BeginLoad();
    EXPECT_TRUE(v.ok()) << v.status();
    if (!v.ok()) return "";
    std::vector<engine::Enrollment> enrollments;
    for (const Person& p : persons) enrollments.push_back(p.enrollment);
    absl::StatusOr<int64_t> added = snapshots.PutPersons(*v, enrollments);
    EXPECT_TRUE(added.ok()) << added.status();
    absl::Status committed = snapshots.Commit(
        *v, {.persons = static_cast<int64_t>(persons.size()), .institutions = 0}, "test");
    EXPECT_TRUE(committed.ok()) << committed;
    return *v;
  }

  // `ship --drain` in-process: until the journals hold nothing unshipped.
  ToolResult Drain(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = Flags({"ship", "--drain", "--report-seconds", "0"});
    args.insert(args.end(), extra.begin(), extra.end());
    return RunTool(args);
  }

  static inline std::unique_ptr<testing::PostgresServer> shared_;
  static inline int databases_ = 0;
  std::unique_ptr<testing::PostgresServer> pg_;  // OwnServer() only
  std::string conninfo_;
  std::unique_ptr<testing::RedisServer> redis_;
  std::unique_ptr<cache::ConnectionPool> pool_;
  std::unique_ptr<cache::RedisSettlementStore> store_;
};

// For a test that stops, kills and restarts PostgreSQL.
class LedgerShipRestartTest : public LedgerShipTest {
 protected:
  bool OwnServer() const override { return true; }
};

// Committer threads, stopped and joined at the latest when the test ends
// (an ASSERT returning early must not leave them running).
class Committers {
 public:
  explicit Committers(std::atomic<bool>& stop) : stop_(stop) {}
  ~Committers() { StopAndJoin(); }
  void Start(std::function<void()> body) { threads_.emplace_back(std::move(body)); }
  void StopAndJoin() {
    stop_.store(true);
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

 private:
  std::atomic<bool>& stop_;
  std::vector<std::thread> threads_;
};

// A workload of one committer thread: settlements of its own persons at
// the hospitals, pharmacy and community centre of Kecheng, with now and
// then the reversal of one of its earlier settlements.
struct Workload {
  const Settler& settler;
  const std::vector<Person>& persons;  // this thread's
  uint64_t seed;
  std::string prefix;            // request ids
  int64_t give_up_after_ms = 0;  // with a retrying settler: per call

  Committed committed;
  int refused = 0;
  std::string first_error;

  // One settlement (and maybe a reversal); false after an error.
  bool Step(std::mt19937_64& rng, int n) {
    auto uniform = [&rng](int lo, int hi) {
      return std::uniform_int_distribution<int>(lo, hi)(rng);
    };
    const Person& p =
        persons[static_cast<size_t>(uniform(0, static_cast<int>(persons.size()) - 1))];
    const int kind = uniform(1, 100);
    engine::Institution institution = kind <= 15   ? testing::Pharmacy(kKecheng)
                                      : kind <= 30 ? testing::Community(kKecheng)
                                                   : Hospital(uniform(1, 3));
    const engine::Date day = engine::Date::FromYmd(2025, uniform(1, 12), uniform(1, 18));
    const bool stay =
        institution.kind == engine::InstitutionKind::kHospital && uniform(1, 100) <= 15;
    v1::SettleRequest request =
        stay ? StayBill(Cat(prefix, n), day, uniform(1, 9))
             : OutpatientBill(Cat(prefix, n), day.ToString(), uniform(1, 30), uniform(300, 3000));
    const int64_t give_up = WallNowMs() + give_up_after_ms;
    absl::StatusOr<v1::LedgerRecord> r =
        settler.Settle(p, institution, request, WallNowMs(), give_up);
    if (!r.ok()) {
      if (r.status().code() == absl::StatusCode::kFailedPrecondition &&
          !engine::ReasonOf(r.status()).empty()) {
        ++refused;  // a rule refusal (none expected for these bills)
        return true;
      }
      first_error = Cat(prefix, n, ": ", r.status().ToString());
      return false;
    }
    committed.settlements[r->settlement_id()] = *r;
    if (uniform(1, 100) <= 6) {
      // Reverse one of this thread's earlier settlements not reversed yet.
      std::vector<const v1::LedgerRecord*> open;
      for (const auto& [id, s] : committed.settlements) {
        if (!committed.reversals.contains(id)) open.push_back(&s);
      }
      const v1::LedgerRecord& victim =
          *open[static_cast<size_t>(uniform(0, static_cast<int>(open.size()) - 1))];
      absl::StatusOr<v1::LedgerReversal> v = settler.Reverse(
          victim, Cat(prefix, n, "-rev"), WallNowMs(), WallNowMs() + give_up_after_ms);
      if (!v.ok()) {
        first_error = Cat(prefix, n, " reversal: ", v.status().ToString());
        return false;
      }
      committed.reversals[victim.settlement_id()] = *v;
    }
    return true;
  }
};

// ---- 1. exactly once under kill -9 of the shipper ----------------------------

TEST_F(LedgerShipTest, ExactlyOnceWhenTheShipperIsKilledAtRandomMoments) {
  const uint64_t seed = SeedFor("ship kill -9");
  constexpr int kThreads = 4;
  constexpr int kPerThread = 500;
  constexpr int kMinKills = 6;
  // Kills go on until kMinKills of them interrupted a working shipper; on a
  // loaded machine (CI runs tests in parallel) a shipper takes longer to
  // start shipping, so the bound is generous and a time bound keeps it short.
  constexpr int kMaxKills = 40;
  constexpr int64_t kKillPhaseMs = 45'000;
  std::vector<Person> persons;
  for (int i = 0; i < 512; ++i)
    persons.push_back(MakePerson(i % 256, static_cast<uint64_t>(i) + 1, kQuzhou, 2025));
  const std::string version = LoadSnapshot(persons);
  ASSERT_FALSE(version.empty());
  Settler settler(*store_, version);

  std::vector<std::vector<Person>> own(kThreads);
  for (size_t i = 0; i < persons.size(); ++i) own[i % kThreads].push_back(persons[i]);
  std::vector<std::unique_ptr<Workload>> workloads;
  for (int t = 0; t < kThreads; ++t) {
    workloads.push_back(std::make_unique<Workload>(Workload{.settler = settler,
                                                            .persons = own[t],
                                                            .seed = seed + static_cast<uint64_t>(t),
                                                            .prefix = Cat("K", t, "-")}));
  }
  // Committers settle until the kills are done (at least kPerThread each).
  const auto start = Clock::now();
  std::atomic<bool> stop{false};
  Committers committers(stop);
  for (int t = 0; t < kThreads; ++t) {
    committers.Start([&, t] {
      Workload& w = *workloads[static_cast<size_t>(t)];
      std::mt19937_64 rng(w.seed);
      for (int n = 0; (n < kPerThread || !stop.load()) && w.Step(rng, n); ++n) SleepMs(2);
    });
  }

  // The shipper, killed with SIGKILL at random moments (while it starts,
  // reads, ships, releases or idles) and started again, until enough kills
  // hit a shipper that was shipping.
  const std::vector<std::string> ship =
      Flags({"ship", "--entries-per-tag", "3", "--report-seconds", "0"});
  std::mt19937_64 rng(seed);
  int kills = 0, kills_while_shipping = 0, lock_waits = 0;
  std::vector<int64_t> shipped_at_kill;  // the ledger's count of entries shipped
  const auto kill_phase = std::chrono::steady_clock::now();
  while ((kills < kMinKills || kills_while_shipping < kMinKills) && kills < kMaxKills &&
         std::chrono::steady_clock::now() - kill_phase < std::chrono::milliseconds(kKillPhaseMs)) {
    std::unique_ptr<ChildProcess> shipper = ChildProcess::Spawn(MEDSETTLE_LEDGER_BINARY, ship);
    ASSERT_NE(shipper, nullptr);
    // From the spawn: the first few hundred ms fall in its start-up, the
    // rest in reading, shipping, releasing or idling.
    const int delay_ms = std::uniform_int_distribution<int>(50, 3000)(rng);
    if (std::optional<int> code = shipper->WaitExit(delay_ms)) {
      // The killed shipper's session may hold the ledger's shipper lock a
      // moment longer (until its backend sees the socket closed).
      ASSERT_NE(shipper->err().find("LEDGER_SHIPPER_RUNNING"), std::string::npos)
          << "the shipper exited " << *code << " by itself:\n"
          << shipper->err();
      ASSERT_LT(++lock_waits, 200);
      SleepMs(20);
      continue;
    }
    shipper->Kill9();
    ++kills;
    shipped_at_kill.push_back(
        QueryInt(conninfo(), "SELECT coalesce(sum(entries_shipped), 0) FROM ledger.ship_cursors"));
    const size_t k = shipped_at_kill.size();
    if (k > 1 ? shipped_at_kill[k - 1] > shipped_at_kill[k - 2] : shipped_at_kill[0] > 0) {
      ++kills_while_shipping;
    }
  }
  committers.StopAndJoin();
  const int64_t settle_ms = MsSince(start);
  Committed committed;
  int refused = 0;
  for (const auto& w : workloads) {
    EXPECT_EQ(w->first_error, "");
    committed.Merge(w->committed);
    refused += w->refused;
  }
  ASSERT_GE(committed.settlements.size() + static_cast<size_t>(refused),
            static_cast<size_t>(kThreads * kPerThread));

  // The last shipper drains what is left and exits.
  std::unique_ptr<ChildProcess> drain;
  for (int attempt = 0; attempt < 200; ++attempt) {
    drain = ChildProcess::Spawn(MEDSETTLE_LEDGER_BINARY,
                                Flags({"ship", "--drain", "--report-seconds", "0"}));
    ASSERT_NE(drain, nullptr);
    std::optional<int> code = drain->WaitExit(60'000);
    ASSERT_TRUE(code.has_value()) << "ship --drain did not finish within 60 s";
    if (*code == 0) break;
    ASSERT_NE(drain->err().find("LEDGER_SHIPPER_RUNNING"), std::string::npos) << drain->err();
    SleepMs(20);
  }
  EXPECT_EQ(drain->WaitExit(0), 0) << drain->err();

  std::string at_kill;
  for (int64_t n : shipped_at_kill) at_kill += Cat(at_kill.empty() ? "" : ", ", n);
  std::printf(
      "kill -9: %zu settlements and %zu reversals committed by %d threads in %lld ms (%d refused "
      "by the rules); the shipper killed %d times (%d after it had shipped), entries shipped at "
      "each kill: %s; %d starts waited for the killed session's lock; drain: %s",
      committed.settlements.size(), committed.reversals.size(), kThreads,
      static_cast<long long>(settle_ms), refused, kills, kills_while_shipping, at_kill.c_str(),
      lock_waits, drain->out().c_str());
  EXPECT_GE(kills, kMinKills);
  EXPECT_GE(kills_while_shipping, 2) << "kills that interrupted a working shipper";
  EXPECT_EQ(refused, 0);
  ExpectLedgerHoldsExactlyOnce(conninfo(), committed);
  EXPECT_EQ(JournalTotal(*store_), 0) << "the journals are empty";
  ExpectLedgerSumsEqualRedis(conninfo(), *store_, committed);
  const ToolResult verify = RunTool(Flags({"verify"}));
  EXPECT_EQ(verify.code, 0) << Describe(verify);
}

// The instant a random kill rarely hits, made on purpose: the ledger has
// committed a batch (and its cursors) but the shipper died before
// releasing it in Redis. The next shipper only releases: nothing twice.
TEST_F(LedgerShipTest, ACrashBetweenTheLedgerCommitAndTheReleaseOnlyReleases) {
  std::vector<Person> persons;
  for (int i = 0; i < 3; ++i)
    persons.push_back(MakePerson(0x11 * (i + 1), static_cast<uint64_t>(i) + 1, kQuzhou, 2025));
  const std::string version = LoadSnapshot(persons);
  Settler settler(*store_, version);
  Committed committed;
  for (int i = 0; i < 12; ++i) {
    absl::StatusOr<v1::LedgerRecord> r = settler.Settle(
        persons[static_cast<size_t>(i % 3)], Hospital(1 + i % 3),
        OutpatientBill(Cat("C-", i), Cat("2025-0", 1 + i % 9, "-15"), 1 + i, 1200), WallNowMs());
    ASSERT_TRUE(r.ok()) << r.status();
    committed.settlements[r->settlement_id()] = *r;
  }
  const v1::LedgerRecord& undone = committed.settlements.begin()->second;
  absl::StatusOr<v1::LedgerReversal> v = settler.Reverse(undone, "C-undo", WallNowMs());
  ASSERT_TRUE(v.ok()) << v.status();
  committed.reversals[undone.settlement_id()] = *v;

  // What a shipper's cycle does up to its ledger commit (ledger/shipper.h
  // steps 1-4), then nothing: the process is gone.
  absl::StatusOr<std::vector<std::vector<cache::JournalEntry>>> heads =
      store_->ReadJournalHeads(200);
  ASSERT_TRUE(heads.ok()) << heads.status();
  std::vector<ledger::ShipEntry> batch;
  for (size_t t = 0; t < heads->size(); ++t) {
    for (const cache::JournalEntry& e : (*heads)[t]) {
      ASSERT_TRUE(e.status.ok()) << e.status;
      ledger::ShipEntry entry;
      entry.tag = TagText(static_cast<int>(t));
      ASSERT_TRUE(ledger::ParseStreamId(e.stream_id, &entry.position));
      entry.bytes = e.bytes;
      entry.is_reversal = e.kind == cache::JournalKind::kReverse;
      entry.settlement = e.settlement;
      entry.reversal = e.reversal;
      batch.push_back(std::move(entry));
    }
  }
  ASSERT_EQ(batch.size(), 13u);
  {
    absl::StatusOr<std::unique_ptr<ledger::LedgerStore>> ledger =
        ledger::LedgerStore::Open({.conninfo = conninfo()});
    ASSERT_TRUE(ledger.ok()) << ledger.status();
    ASSERT_TRUE((*ledger)->LockShipper().ok());
    std::vector<ledger::RuleFile> rules;
    for (const cache::RuleFile& f : PublishedRules()) {
      rules.push_back({.sha256 = f.sha256, .kind = f.kind, .name = f.name, .content = f.content});
    }
    ASSERT_TRUE((*ledger)->PutRuleFiles(rules).ok());
    absl::Status shipped = (*ledger)->Ship(batch);
    ASSERT_TRUE(shipped.ok()) << shipped;
  }
  EXPECT_EQ(JournalTotal(*store_), 13) << "nothing released yet";

  const ToolResult next = Drain();
  ASSERT_EQ(next.code, 0) << Describe(next);
  EXPECT_NE(next.out.find("shipped 0 journal entries, released 13 from Redis"), std::string::npos)
      << next.out;
  EXPECT_EQ(JournalTotal(*store_), 0);
  for (const auto& [id, r] : committed.settlements) {
    cache::RedisResult ttl = pool_->Command({"PTTL", cache::SettlementKey(id)});
    ASSERT_TRUE(ttl.ok());
    EXPECT_GT(ttl->integer, 0) << id << ": released with the hot window's expiry";
  }
  ExpectLedgerHoldsExactlyOnce(conninfo(), committed);
  ExpectLedgerSumsEqualRedis(conninfo(), *store_, committed);
}

// ---- 2. PostgreSQL and Redis restarted under a running shipper -------------

TEST_F(LedgerShipRestartTest, RestartsOfPostgresAndRedisLoseNothingAndRepeatNothing) {
  const uint64_t seed = SeedFor("ship restarts");
  constexpr int kThreads = 2;
  std::vector<Person> persons;
  for (int i = 0; i < 256; ++i)
    persons.push_back(MakePerson(i, static_cast<uint64_t>(i) + 7, kQuzhou, 2025));
  const std::string version = LoadSnapshot(persons);
  ASSERT_FALSE(version.empty());
  Settler settler(*store_, version, /*retry_errors=*/true);

  std::unique_ptr<ChildProcess> shipper = ChildProcess::Spawn(
      MEDSETTLE_LEDGER_BINARY, Flags({"ship", "--entries-per-tag", "50", "--report-seconds", "0",
                                      "--metrics-listen", "127.0.0.1:0"}));
  ASSERT_NE(shipper, nullptr);
  // "medsettle-ledger ship: metrics on 127.0.0.1:<port>"
  int metrics_port = 0;
  for (int i = 0; i < 200 && metrics_port == 0; ++i) {
    const std::string out = shipper->out();
    const size_t at = out.find("metrics on 127.0.0.1:");
    if (at != std::string::npos && out.find('\n', at) != std::string::npos) {
      metrics_port = std::atoi(out.c_str() + at + 21);
    } else {
      SleepMs(25);
    }
  }
  ASSERT_GT(metrics_port, 0) << shipper->out() << shipper->err();

  std::vector<std::vector<Person>> own(kThreads);
  for (size_t i = 0; i < persons.size(); ++i) own[i % kThreads].push_back(persons[i]);
  std::vector<std::unique_ptr<Workload>> workloads;
  for (int t = 0; t < kThreads; ++t) {
    workloads.push_back(std::make_unique<Workload>(Workload{.settler = settler,
                                                            .persons = own[t],
                                                            .seed = seed + static_cast<uint64_t>(t),
                                                            .prefix = Cat("R", t, "-"),
                                                            .give_up_after_ms = 20'000}));
  }
  std::atomic<bool> stop{false};
  std::atomic<int64_t> settled{0};
  Committers committers(stop);
  for (int t = 0; t < kThreads; ++t) {
    committers.Start([&, t] {
      Workload& w = *workloads[static_cast<size_t>(t)];
      std::mt19937_64 rng(w.seed);
      for (int n = 0; !stop.load() && w.Step(rng, n); ++n) {
        settled.fetch_add(1);
        SleepMs(2);
      }
    });
  }
  auto wait_until = [](const std::function<bool()>& done, int64_t timeout_ms) {
    const auto start = Clock::now();
    while (!done()) {
      if (MsSince(start) > timeout_ms) return false;
      SleepMs(50);
    }
    return true;
  };

  SleepMs(700);
  // PostgreSQL stopped for a while: settlements go on, the journal grows.
  pg_->Stop();
  const int64_t settled_before = settled.load();
  const int64_t waiting_before = JournalTotal(*store_);
  SleepMs(1800);
  const int64_t waiting_during = JournalTotal(*store_);
  const int64_t settled_during = settled.load() - settled_before;
  EXPECT_GT(settled_during, 100) << "settlements go on while the ledger is down";
  EXPECT_GT(waiting_during, waiting_before) << "the journal holds what cannot ship";
  // The shipper's metrics say so: failed cycles, a backlog with its age.
  const std::string during = HttpGetBody(metrics_port, "/metrics");
  EXPECT_GT(MetricValue(during, "medsettle_ledger_ship_cycles_total{result=\"error\"}"), 0)
      << during;
  EXPECT_GT(MetricValue(during, "medsettle_ledger_shipping_backlog_entries"), 0) << during;
  EXPECT_GT(MetricValue(during, "medsettle_ledger_shipping_lag_seconds"), 0.5) << during;
  ASSERT_TRUE(pg_->Restart().ok());
  const auto restarted = Clock::now();
  EXPECT_TRUE(wait_until([&] { return JournalTotal(*store_) < 100; }, 20'000))
      << "the shipper did not catch up after PostgreSQL came back";
  const int64_t catch_up_ms = MsSince(restarted);

  // Redis killed and restarted from its AOF: the shipper reconnects.
  redis_->Kill9();
  SleepMs(300);
  ASSERT_TRUE(redis_->Restart().ok());
  SleepMs(700);
  // PostgreSQL killed (crash recovery) under the shipper.
  pg_->Kill9();
  ASSERT_TRUE(pg_->Restart().ok());
  SleepMs(700);
  committers.StopAndJoin();
  Committed committed;
  for (const auto& w : workloads) {
    EXPECT_EQ(w->first_error, "");
    EXPECT_EQ(w->refused, 0);
    committed.Merge(w->committed);
  }
  EXPECT_TRUE(wait_until([&] { return JournalTotal(*store_) == 0; }, 30'000))
      << "the shipper did not empty the journals";
  const std::string after = HttpGetBody(metrics_port, "/metrics");
  // Shipped by this process: at most every entry, never more (a COMMIT
  // whose answer PostgreSQL's kill cut off is found done on the next cycle
  // and only released, so it is not counted).
  const double entries =
      static_cast<double>(committed.settlements.size() + committed.reversals.size());
  EXPECT_GT(MetricValue(after, "medsettle_ledger_shipped_total"), entries / 2) << after;
  EXPECT_LE(MetricValue(after, "medsettle_ledger_shipped_total"), entries) << after;
  EXPECT_EQ(MetricValue(after, "medsettle_ledger_shipping_backlog_entries"), 0) << after;
  EXPECT_EQ(MetricValue(after, "medsettle_ledger_stuck_tags"), 0) << after;
  shipper->Signal(SIGTERM);
  EXPECT_EQ(shipper->WaitExit(15'000), 0) << shipper->err();
  const std::string errors = shipper->err();
  const int error_lines = CountLines(errors, "20");  // "2025-…+08:00 ship: …"
  std::printf(
      "restarts: %zu settlements and %zu reversals (%lld committer retries); %lld settled while "
      "PostgreSQL was down (journal %lld → %lld entries), caught up %lld ms after its restart; "
      "the shipper reported %d errors and exited with: %s",
      committed.settlements.size(), committed.reversals.size(),
      static_cast<long long>(settler.retries()), static_cast<long long>(settled_during),
      static_cast<long long>(waiting_before), static_cast<long long>(waiting_during),
      static_cast<long long>(catch_up_ms), error_lines, shipper->out().c_str());
  EXPECT_NE(errors.find("ship: UNAVAILABLE"), std::string::npos) << errors;
  EXPECT_GT(settler.retries(), 0) << "Redis was down for the committers too";
  ExpectLedgerHoldsExactlyOnce(conninfo(), committed);
  EXPECT_EQ(JournalTotal(*store_), 0);
  ExpectLedgerSumsEqualRedis(conninfo(), *store_, committed);
}

// ---- 3. a journal entry that does not decode ---------------------------------

TEST_F(LedgerShipTest, AnUndecodableEntryStopsOnlyItsTag) {
  const Person stuck = MakePerson(0xab, 1, kQuzhou, 2025);
  std::vector<Person> others = {MakePerson(0x01, 2, kQuzhou, 2025),
                                MakePerson(0x02, 3, kQuzhou, 2025),
                                MakePerson(0xc3, 4, kQuzhou, 2025)};
  std::vector<Person> all = others;
  all.push_back(stuck);
  const std::string version = LoadSnapshot(all);
  Settler settler(*store_, version);
  const engine::Institution hospital = Hospital(2);
  int n = 0;
  auto settle = [&](const Person& p) {
    ++n;
    absl::StatusOr<v1::LedgerRecord> r = settler.Settle(
        p, hospital, OutpatientBill(Cat("U-", n), Cat("2025-04-0", 1 + n % 9), 2, 1500),
        WallNowMs());
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->settlement_id() : std::string();
  };
  std::vector<std::string> before, after, elsewhere;
  for (int i = 0; i < 2; ++i) before.push_back(settle(stuck));
  for (int i = 0; i < 3; ++i) {
    for (const Person& p : others) elsewhere.push_back(settle(p));
  }
  cache::RedisResult bogus = pool_->Command(
      {"XADD", cache::JournalKey("ab"), "*", "kind", "SETTLE", "rec", "this is not a record"});
  ASSERT_TRUE(bogus.ok()) << bogus.status();
  const std::string bogus_id = bogus->str;
  for (int i = 0; i < 2; ++i) after.push_back(settle(stuck));
  for (int i = 0; i < 3; ++i) {
    for (const Person& p : others) elsewhere.push_back(settle(p));
  }

  // Two entries per tag and cycle: the other tags need several cycles.
  const ToolResult drained = Drain({"--entries-per-tag", "2"});
  EXPECT_EQ(drained.code, 1) << Describe(drained);
  EXPECT_NE(drained.err.find("tag ab is stuck"), std::string::npos) << Describe(drained);
  EXPECT_NE(drained.err.find(bogus_id), std::string::npos) << Describe(drained);

  auto in_ledger = [&](const std::string& id) {
    return QueryInt(
        conninfo(),
        Cat("SELECT count(*) FROM ledger.settlements WHERE settlement_id = '", id, "'"));
  };
  for (const std::string& id : before)
    EXPECT_EQ(in_ledger(id), 1) << "before the bad entry: " << id;
  for (const std::string& id : after) EXPECT_EQ(in_ledger(id), 0) << "after the bad entry: " << id;
  for (const std::string& id : elsewhere) EXPECT_EQ(in_ledger(id), 1) << "another tag: " << id;
  absl::StatusOr<std::vector<cache::RedisSettlementStore::JournalLength>> lengths =
      store_->JournalLengths();
  ASSERT_TRUE(lengths.ok()) << lengths.status();
  for (int t = 0; t < 256; ++t) {
    const auto& l = (*lengths)[static_cast<size_t>(t)];
    if (t == 0xab) {
      EXPECT_EQ(l.entries, 3) << "the bad entry and the two after it stay";
      EXPECT_EQ(l.oldest_id, bogus_id);
    } else {
      EXPECT_EQ(l.entries, 0) << "tag " << TagText(t);
    }
  }
  // Shipped records have their expiry; those after the bad entry none.
  for (const std::string& id : before) {
    cache::RedisResult ttl = pool_->Command({"PTTL", cache::SettlementKey(id)});
    ASSERT_TRUE(ttl.ok());
    EXPECT_GT(ttl->integer, 0) << id;
  }
  for (const std::string& id : after) {
    cache::RedisResult ttl = pool_->Command({"PTTL", cache::SettlementKey(id)});
    ASSERT_TRUE(ttl.ok());
    EXPECT_EQ(ttl->integer, -1) << id;
  }

  const ToolResult status = RunTool(Flags({"status"}));
  EXPECT_EQ(status.code, 0) << Describe(status);
  EXPECT_NE(status.out.find("tag ab: shipped through"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("waiting 3"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("STUCK"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find(bogus_id), std::string::npos) << status.out;
  EXPECT_EQ(CountLines(status.out, "  tag "), 1) << status.out;
  const ToolResult json = RunTool(Flags({"status", "--json"}));
  EXPECT_NE(json.out.find("{\"tag\":\"ab\""), std::string::npos) << json.out;
  EXPECT_NE(json.out.find("\"waiting\":3,"), std::string::npos) << json.out;
  EXPECT_NE(json.out.find("\"stuck\":true"), std::string::npos) << json.out;
  std::printf("status with a stuck tag:\n%s", status.out.c_str());

  // The daemon reports the stuck tag once, not every cycle, while the
  // other tags keep shipping around it.
  {
    absl::StatusOr<std::unique_ptr<ledger::LedgerStore>> ledger =
        ledger::LedgerStore::Open({.conninfo = conninfo()});
    ASSERT_TRUE(ledger.ok()) << ledger.status();
    ASSERT_TRUE((*ledger)->LockShipper().ok());
    std::vector<std::string> reports;
    ledger::Shipper shipper(*pool_, *store_, **ledger,
                            {.idle_ms = 5,
                             .backoff_ms = 5,
                             .on_error = [&](const absl::Status& s) {
                               reports.emplace_back(s.message());
                             }});
    std::atomic<bool> stop{false};
    std::thread run([&] { shipper.Run(stop); });
    const int64_t until = WallNowMs() + 1500;
    for (int i = 0; WallNowMs() < until; ++i) {
      settle(others[static_cast<size_t>(i) % others.size()]);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    // Then until the others' last entries are shipped (a cycle or two).
    const int64_t drained_by = WallNowMs() + 5000;
    while (JournalTotal(*store_) > 3 && WallNowMs() < drained_by) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    stop = true;
    run.join();
    ASSERT_EQ(reports.size(), 1u) << "a stuck tag is reported when it stops, then once a minute";
    EXPECT_NE(reports[0].find("journal:{ab} entry " + bogus_id), std::string::npos) << reports[0];
    EXPECT_EQ(JournalTotal(*store_), 3) << "the others shipped; tag ab's three entries wait";
  }

  // The operator removes the entry (after saving it): the tag ships on.
  ASSERT_TRUE(pool_->Command({"XDEL", cache::JournalKey("ab"), bogus_id}).ok());
  const ToolResult again = Drain();
  EXPECT_EQ(again.code, 0) << Describe(again);
  for (const std::string& id : after) EXPECT_EQ(in_ledger(id), 1) << id;
  EXPECT_EQ(JournalTotal(*store_), 0);
}

// A cycle's entries go to the ledger in transactions of about
// max_batch_entries, whole tags each: everything ships once, every tag's
// cursor ends at its last entry.
TEST_F(LedgerShipTest, ACycleShipsInTransactionsOfWholeTags) {
  std::vector<Person> persons;
  for (int i = 0; i < 40; ++i) {
    persons.push_back(MakePerson(i * 6, static_cast<uint64_t>(i) + 101, kQuzhou, 2025));
  }
  const std::string version = LoadSnapshot(persons);
  Settler settler(*store_, version);
  const engine::Institution hospital = Hospital(2);
  Committed committed;
  for (int round = 0; round < 3; ++round) {
    for (size_t i = 0; i < persons.size(); ++i) {
      absl::StatusOr<v1::LedgerRecord> r = settler.Settle(
          persons[i], hospital,
          OutpatientBill(Cat("T-", round, "-", i), Cat("2025-05-0", 1 + round), 2, 1200),
          WallNowMs());
      ASSERT_TRUE(r.ok()) << r.status();
      committed.settlements[r->settlement_id()] = *r;
    }
  }
  absl::StatusOr<std::unique_ptr<ledger::LedgerStore>> ledger =
      ledger::LedgerStore::Open({.conninfo = conninfo()});
  ASSERT_TRUE(ledger.ok()) << ledger.status();
  ASSERT_TRUE((*ledger)->LockShipper().ok());
  ledger::Shipper shipper(*pool_, *store_, **ledger, {.max_batch_entries = 4});
  absl::StatusOr<ledger::CycleResult> cycle = shipper.ShipOnce();
  ASSERT_TRUE(cycle.ok()) << cycle.status();
  EXPECT_EQ(cycle->shipped, 120) << "one cycle, many transactions";
  EXPECT_EQ(JournalTotal(*store_), 0);
  ExpectLedgerHoldsExactlyOnce(conninfo(), committed);
  // A second shipper (a restart) finds nothing new.
  absl::StatusOr<ledger::CycleResult> again = shipper.ShipOnce();
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->shipped, 0);
}

// ---- 4. Redis memory flat past the hot window ---------------------------------

TEST_F(LedgerShipTest, RedisMemoryStaysFlatPastTheHotWindow) {
  // The first batch warms up (a stream per tag, the scripts, the tables);
  // each batch has a settlement in every tag.
  constexpr int kBatches = 7;
  constexpr int kPerBatch = 256;
  const uint64_t seed = SeedFor("memory");
  std::mt19937_64 rng(seed);
  auto uniform = [&rng](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  std::vector<Person> persons;
  for (int i = 0; i < kBatches * kPerBatch; ++i) {
    persons.push_back(MakePerson(i % 256, static_cast<uint64_t>(i) + 100, kQuzhou, 2025));
  }
  const std::string version = LoadSnapshot(persons);
  Settler settler(*store_, version);
  // Settled three hours ago (the gateway's clock), shipped with a window of
  // one hour: the window is over when they ship.
  const int64_t settled_at = WallNowMs() - 3 * kHourMs;

  struct Figures {
    int64_t hot = 0, shipped = 0;        // used_memory
    int64_t keys = 0, keys_shipped = 0;  // DBSIZE
    int64_t journals = 0;                // MEMORY USAGE of the journals while hot
    int64_t record_bytes = 0;            // a stored record's size (STRLEN stl:…)
  };
  auto DbSize = [this] {
    cache::RedisResult n = pool_->Command({"DBSIZE"});
    EXPECT_TRUE(n.ok()) << n.status();
    return n.ok() ? n->integer : -1;
  };
  std::vector<Figures> figures;
  int64_t last = 0;
  std::atomic<int64_t> reversed{0};
  for (int b = 0; b < kBatches; ++b) {
    // The batch's bills drawn here, settled by 4 threads (as gateways
    // commit concurrently: Redis fsyncs its AOF once for all of them).
    struct Plan {
      engine::Institution where;
      v1::SettleRequest bill;
      bool reverse = false;
    };
    std::vector<Plan> plans;
    for (int i = 0; i < kPerBatch; ++i) {
      const int kind = uniform(1, 3);
      Plan plan{.where = kind == 1   ? testing::Pharmacy(kKecheng)
                         : kind == 2 ? testing::Community(kKecheng)
                                     : Hospital(uniform(1, 3)),
                .bill = OutpatientBill(Cat("M", b, "-", i), Cat("2025-03-", 10 + uniform(0, 9)),
                                       uniform(1, 20), 1500)};
      AddLine(&plan.bill, "XB0001", "1", 3580);
      AddLine(&plan.bill, "XC0002", "1", 6800);
      plan.reverse = uniform(1, 100) <= 5;
      plans.push_back(std::move(plan));
    }
    RunInThreads(4, [&](int t) {
      for (int i = t; i < kPerBatch; i += 4) {
        const Plan& plan = plans[static_cast<size_t>(i)];
        const Person& p = persons[static_cast<size_t>(b * kPerBatch + i)];
        absl::StatusOr<v1::LedgerRecord> r =
            settler.Settle(p, plan.where, plan.bill, settled_at + i);
        EXPECT_TRUE(r.ok()) << r.status();
        if (!r.ok() || !plan.reverse) continue;
        absl::StatusOr<v1::LedgerReversal> v =
            settler.Reverse(*r, Cat("M", b, "-", i, "-rev"), settled_at + 10 * kMinuteMs);
        EXPECT_TRUE(v.ok()) << v.status();
        reversed.fetch_add(1);
      }
    });
    ASSERT_FALSE(HasFailure());
    Figures f;
    f.hot = UsedMemory(*pool_);
    f.keys = DbSize();
    // The journals' share: a stream's first entry preallocates a node of
    // 4 KiB (stream-node-max-bytes), here in nearly every tag.
    for (const std::string& key : Keys(*pool_, "journal:*")) {
      cache::RedisResult usage = pool_->Command({"MEMORY", "USAGE", key, "SAMPLES", "0"});
      if (usage.ok()) f.journals += usage->integer;
    }
    int64_t record_bytes = 0, records = 0;
    for (const std::string& key : Keys(*pool_, "stl:*")) {
      cache::RedisResult len = pool_->Command({"STRLEN", key});
      if (len.ok()) record_bytes += len->integer;
      ++records;
    }
    f.record_bytes = records > 0 ? record_bytes / records : 0;
    const ToolResult shipped = Drain({"--hot-window-hours", "1"});
    ASSERT_EQ(shipped.code, 0) << Describe(shipped);
    f.shipped = UsedMemory(*pool_);
    f.keys_shipped = DbSize();
    if (b > 0) {
      std::printf(
          "memory batch %d: %d settlements (records of %lld bytes packed); while hot (not "
          "shipped) %+lld bytes = %lld per settlement, of which the journals %lld; once shipped "
          "%+lld bytes = %lld per settlement, %+lld keys\n",
          b, kPerBatch, static_cast<long long>(f.record_bytes),
          static_cast<long long>(f.hot - last), static_cast<long long>((f.hot - last) / kPerBatch),
          static_cast<long long>(f.journals / kPerBatch), static_cast<long long>(f.shipped - last),
          static_cast<long long>((f.shipped - last) / kPerBatch),
          static_cast<long long>(f.keys_shipped - figures.back().keys_shipped));
      // Only the person's year and the idempotency record of each stay.
      EXPECT_EQ(f.keys_shipped - figures.back().keys_shipped, 2 * kPerBatch) << "batch " << b;
    }
    figures.push_back(f);
    last = f.shipped;

    // Nothing of a shipped, expired settlement is left.
    EXPECT_EQ(Keys(*pool_, "stl:*").size(), 0u) << "batch " << b;
    EXPECT_EQ(Keys(*pool_, "rev:*").size(), 0u) << "batch " << b;
    EXPECT_EQ(Keys(*pool_, "recon:*").size(), 0u) << "batch " << b;
    EXPECT_EQ(JournalTotal(*store_), 0) << "batch " << b;
  }
  // What stays: a person's year and an idempotency record per settlement.
  const std::vector<std::string> acc = Keys(*pool_, "acc:*");
  const std::vector<std::string> idem = Keys(*pool_, "idem:*");
  EXPECT_EQ(acc.size(), persons.size());
  EXPECT_EQ(idem.size(), persons.size());
  int64_t acc_bytes = 0, idem_bytes = 0;
  for (size_t i = 0; i < 100; ++i) {
    cache::RedisResult a = pool_->Command({"MEMORY", "USAGE", acc[i], "SAMPLES", "0"});
    cache::RedisResult d = pool_->Command({"MEMORY", "USAGE", idem[i], "SAMPLES", "0"});
    ASSERT_TRUE(a.ok() && d.ok());
    acc_bytes += a->integer;
    idem_bytes += d->integer;
  }
  acc_bytes /= 100;
  idem_bytes /= 100;
  const int64_t per_settlement =
      (figures.back().shipped - figures.front().shipped) / ((kBatches - 1) * kPerBatch);
  const int64_t hot_per_settlement =
      (figures.back().hot - figures[kBatches - 2].shipped) / kPerBatch;
  std::printf(
      "memory: %d settlements (%lld reversed) past a 1 h window: %lld bytes per settlement once "
      "shipped (MEMORY USAGE: accumulators %lld + idempotency record %lld), %lld while hot; "
      "stl/rev/recon keys left: 0\n",
      (kBatches - 1) * kPerBatch, static_cast<long long>(reversed.load()),
      static_cast<long long>(per_settlement), static_cast<long long>(acc_bytes),
      static_cast<long long>(idem_bytes), static_cast<long long>(hot_per_settlement));
  // Flat but for the two keys each new person leaves: their MEMORY USAGE,
  // plus an entry in the expiry table and the slots of the key tables
  // (which double now and then: one batch carries a doubling).
  EXPECT_LE(per_settlement, acc_bytes + idem_bytes + 160);
  EXPECT_LT(per_settlement, 700);
  std::vector<int64_t> batches;
  for (size_t b = 1; b < figures.size(); ++b) {
    batches.push_back((figures[b].shipped - figures[b - 1].shipped) / kPerBatch);
  }
  std::sort(batches.begin(), batches.end());
  EXPECT_LT(batches[batches.size() / 2 - 1], 560) << "the lower median batch";
  EXPECT_LT(batches.back(), 1000) << "the batch with a table doubling";
}

// ---- 5. rebuild after the accumulators were lost ------------------------------

// The total named `name` ("go.fund", "ip.ded", …) of `a`.
int64_t Total(const engine::Accumulators& a, std::string_view name) {
  const std::vector<std::string>& names = cache::AccumulatorFieldNames();
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == name) return cache::AccumulatorTotal(a, i);
  }
  ADD_FAILURE() << "no accumulator total " << name;
  return -1;
}

// The response without what the gateway sets beside the engine, and
// without the accumulators' version (a counter of commits, not money:
// rebuild sets it above any a reader could hold).
v1::SettleResponse EngineAnswer(v1::SettleResponse r) {
  r.clear_settlement_id();
  r.clear_status();
  r.clear_settled_at();
  r.clear_replayed();
  r.mutable_year_to_date()->clear_version();
  return r;
}

TEST_F(LedgerShipTest, RebuildAfterLosingTheAccumulatorsKeepsCapsAndDeductiblesExact) {
  // Quzhou 2025 at a level-2 hospital: general outpatient deductible 100
  // yuan a year, then 50 %, fund cap 4,000 yuan a year; inpatient
  // deductible per stay (700 yuan at level 3) up to 1,400 a year.
  const Person near_cap = MakePerson(0x10, 1, kQuzhou, 2025);
  const Person mid_year = MakePerson(0x20, 2, kQuzhou, 2025);
  const Person in_deductible = MakePerson(0x30, 3, kQuzhou, 2025);
  const Person two_stays = MakePerson(0x40, 4, kQuzhou, 2025);
  const std::vector<Person> persons = {near_cap, mid_year, in_deductible, two_stays};
  const std::string version = LoadSnapshot(persons);
  Settler settler(*store_, version);
  const engine::Institution level2 = Hospital(2);
  const engine::Institution level3 = Hospital(3);
  int n = 0;
  auto settle = [&](const Person& p, const engine::Institution& where,
                    const v1::SettleRequest& bill) {
    absl::StatusOr<v1::LedgerRecord> r = settler.Settle(p, where, bill, WallNowMs());
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : v1::LedgerRecord();
  };
  // 1,510 yuan each: the fund pays 705 of the first (after the deductible)
  // and 755 of each further one.
  for (int i = 0; i < 5; ++i) {
    settle(near_cap, level2,
           OutpatientBill(Cat("B-", ++n), Cat("2025-0", 2 + i, "-10"), 100, 1500));
  }
  for (int i = 0; i < 3; ++i) {
    settle(mid_year, level2,
           OutpatientBill(Cat("B-", ++n), Cat("2025-0", 2 + i, "-11"), 100, 1500));
  }
  const v1::LedgerRecord undone =
      settle(mid_year, level2, OutpatientBill(Cat("B-", ++n), "2025-05-12", 40, 1500));
  ASSERT_TRUE(settler.Reverse(undone, "B-undo", WallNowMs()).ok());
  // 60 yuan: inside the year's deductible.
  settle(in_deductible, level2, OutpatientBill(Cat("B-", ++n), "2025-03-01", 2, 2500));
  settle(two_stays, level3, StayBill(Cat("B-", ++n), testing::D("2025-02-03"), 7));
  settle(two_stays, level3, StayBill(Cat("B-", ++n), testing::D("2025-04-03"), 9));
  const ToolResult shipped = Drain();
  ASSERT_EQ(shipped.code, 0) << Describe(shipped);

  std::vector<std::pair<std::string, int32_t>> years;
  for (const Person& p : persons) years.emplace_back(p.key, 2025);
  absl::StatusOr<std::vector<cache::RedisSettlementStore::StoredYear>> before =
      store_->ReadYears(years);
  ASSERT_TRUE(before.ok()) << before.status();
  // The next bill of each, and what the engine pays for it on the year as
  // Redis holds it now: the control.
  struct Next {
    const Person* person;
    engine::Institution where;
    v1::SettleRequest bill;
    v1::SettleResponse control;
  };
  std::vector<Next> next = {
      {&near_cap, level2, OutpatientBill("N-1", "2025-07-01", 100, 1500), {}},
      {&mid_year, level2, OutpatientBill("N-2", "2025-07-02", 100, 1500), {}},
      {&in_deductible, level2, OutpatientBill("N-3", "2025-07-03", 100, 1500), {}},
      {&two_stays, level3, StayBill("N-4", testing::D("2025-08-03"), 5), {}},
  };
  for (size_t i = 0; i < next.size(); ++i) {
    absl::StatusOr<v1::SettleResponse> control =
        Expected(*next[i].person, next[i].where, next[i].bill, (*before)[i].accumulators);
    ASSERT_TRUE(control.ok()) << control.status();
    next[i].control = *control;
  }

  // Redis loses every accumulator.
  int64_t wiped = 0;
  for (const std::string& key : Keys(*pool_, "acc:*")) {
    cache::RedisResult del = pool_->Command({"DEL", key});
    ASSERT_TRUE(del.ok());
    wiped += del->integer;
  }
  EXPECT_EQ(wiped, 4);
  const ToolResult lost = RunTool(Flags({"verify"}));
  EXPECT_EQ(lost.code, 1) << Describe(lost);
  EXPECT_EQ(CountLines(lost.out, "DIFFERENT person "), 4) << lost.out;
  EXPECT_NE(lost.out.find("missing in Redis"), std::string::npos) << lost.out;

  const ToolResult refused = RunTool(Flags({"rebuild"}));
  EXPECT_EQ(refused.code, 2) << "rebuild without --yes:\n" << Describe(refused);
  const ToolResult rebuilt = RunTool(Flags({"rebuild", "--yes"}));
  ASSERT_EQ(rebuilt.code, 0) << Describe(rebuilt);
  EXPECT_NE(rebuilt.out.find("rebuilt 4 person-years"), std::string::npos) << rebuilt.out;
  absl::StatusOr<std::vector<cache::RedisSettlementStore::StoredYear>> restored =
      store_->ReadYears(years);
  ASSERT_TRUE(restored.ok()) << restored.status();
  for (size_t i = 0; i < years.size(); ++i) {
    EXPECT_TRUE((*restored)[i].exists);
    EXPECT_TRUE((*restored)[i].accumulators.SameTotals((*before)[i].accumulators))
        << years[i].first;
  }
  const ToolResult clean = RunTool(Flags({"verify"}));
  EXPECT_EQ(clean.code, 0) << Describe(clean);
  EXPECT_NE(clean.out.find(": 0 differences"), std::string::npos) << clean.out;

  // The next settlements pay exactly what they would have without the loss.
  for (Next& x : next) {
    const v1::LedgerRecord r = settle(*x.person, x.where, x.bill);
    std::string diff;
    MessageDifferencer differencer;
    differencer.ReportDifferencesToString(&diff);
    EXPECT_TRUE(differencer.Compare(EngineAnswer(x.control), EngineAnswer(r.response())))
        << x.bill.request_id() << ": " << diff;
    const v1::Amounts& a = r.response().amounts();
    std::printf("after rebuild %s: total %s, deductible %s, base fund %s, patient %s\n",
                x.bill.request_id().c_str(), engine::FormatYuan(a.total_cents()).c_str(),
                engine::FormatYuan(a.deductible_cents()).c_str(),
                engine::FormatYuan(a.base_fund_cents()).c_str(),
                engine::FormatYuan(a.patient_cents()).c_str());
  }
  absl::StatusOr<std::vector<cache::RedisSettlementStore::StoredYear>> now =
      store_->ReadYears(years);
  ASSERT_TRUE(now.ok()) << now.status();
  // The cap binds to the 分: 705 + 4 × 755 = 3,725 before, 275 now.
  EXPECT_EQ(Total((*before)[0].accumulators, "go.fund"), 372'500);
  EXPECT_EQ(Total((*now)[0].accumulators, "go.fund"), 400'000);
  EXPECT_EQ(next[0].control.amounts().base_fund_cents(), 27'500);
  // Not near the cap: 755; the reversed bill left no trace.
  EXPECT_EQ(Total((*before)[1].accumulators, "go.fund"), 221'500);
  EXPECT_EQ(next[1].control.amounts().base_fund_cents(), 75'500);
  // 60 of the 100 yuan deductible paid: 40 left.
  EXPECT_EQ(Total((*before)[2].accumulators, "go.ded"), 6'000);
  EXPECT_EQ(next[2].control.amounts().deductible_cents(), 4'000);
  // Two stays paid 700 each: the 1,400 ceiling leaves none for a third.
  EXPECT_EQ(Total((*before)[3].accumulators, "ip.ded"), 140'000);
  EXPECT_EQ(next[3].control.amounts().deductible_cents(), 0);

  ASSERT_EQ(Drain().code, 0);
  const ToolResult after = RunTool(Flags({"verify"}));
  EXPECT_EQ(after.code, 0) << Describe(after);
  // One total of one person-year tampered with: verify names exactly it.
  ASSERT_TRUE(
      pool_->Command({"HINCRBY", cache::AccumulatorsKey(mid_year.key, 2025), "go.in", "1"}).ok());
  const ToolResult tampered = RunTool(Flags({"verify"}));
  EXPECT_EQ(tampered.code, 1) << Describe(tampered);
  EXPECT_EQ(CountLines(tampered.out, "DIFFERENT "), 1) << tampered.out;
  EXPECT_NE(tampered.out.find(Cat("DIFFERENT person ", mid_year.key, " year 2025: go.in Redis ")),
            std::string::npos)
      << tampered.out;
  EXPECT_NE(tampered.out.find(": 1 differences"), std::string::npos) << tampered.out;
  std::printf("verify after tampering: %s", tampered.out.c_str());
}

// ---- 6. recompute a random year from the ledger -------------------------------

struct RegionYear {
  engine::RegionCode insured;
  engine::RegionCode local_institution;
  int year;
  std::vector<int> tiers;
};
const RegionYear kRegionYears[] = {
    {330800, 330802, 2024, {0}},
    {330800, 330881, 2025, {0}},
    {500231, 500231, 2024, {1, 2}},
    {330213, 330213, 2025, {0}},
};
const char* const kCodes[] = {"XA0001", "XA0002", "XA0003", "XA0004",   "XB0001", "XB0002",
                              "XB0003", "XB0004", "XC0001", "XC0002",   "ZA0001", "ZB0001",
                              "ZB0002", "FA0001", "FA0002", "FA0003",   "FA0004", "FA0005",
                              "FA0006", "FA0007", "FA0008", "FB0001",   "FB0002", "FB0003",
                              "FB0004", "FC0001", "FC0002", "UNKNOWN-1"};

// Random people, institutions and bills of a region-year, as
// tests/settle_property_test.cc makes them, as the contract's messages.
class RandomYear {
 public:
  explicit RandomYear(uint64_t seed) : rng_(seed) {}
  int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  bool Chance(int percent) { return Uniform(1, 100) <= percent; }

  Person MakePerson(const RegionYear& r, int tag, uint64_t n) {
    Person p = medsettle::MakePerson(
        tag, n, r.insured, r.year,
        r.tiers[static_cast<size_t>(Uniform(0, static_cast<int>(r.tiers.size()) - 1))]);
    engine::Enrollment& e = p.enrollment;
    e.birth_date = engine::Date::FromYmd(r.year - Uniform(0, 90), Uniform(1, 12), Uniform(1, 28));
    e.category =
        e.birth_date <= engine::Date::FromYmd(r.year - 20, 12, 31) ? engine::Category::kAdult
        : e.birth_date >= engine::Date::FromYmd(r.year - 6, 1, 1)  ? engine::Category::kInfant
                                                                   : engine::Category::kMinor;
    if (Chance(15)) e.category = engine::Category::kStudent;
    e.assistance = static_cast<engine::Assistance>(Uniform(1, 7));
    e.chronic_conditions = {"TB", "HYPERTENSION"};
    e.special_diseases = {"UREMIA"};
    if (Chance(50)) e.supplementary = {"tianyi-yongning-2025", Chance(30), Chance(50)};
    if (Chance(10)) {
      e.concentrated = false;
      e.paid_date = engine::Date::FromYmd(r.year, Uniform(1, 11), Uniform(1, 28));
    }
    return p;
  }

  engine::Institution MakeInstitution(const RegionYear& r) {
    const int kind = Uniform(1, 3);
    engine::Institution i = kind == 1   ? testing::Hospital(r.local_institution, Uniform(1, 3))
                            : kind == 2 ? testing::Community(r.local_institution)
                                        : testing::Pharmacy(r.local_institution);
    i.zero_markup = Chance(40);
    i.tcm = Chance(25);
    i.children_or_maternal = Chance(15);
    i.base_level = i.level == 1 && Chance(50);
    if (Chance(10)) i.region_code = 110105;  // Beijing: out of area, no filing
    return i;
  }

  v1::SettleRequest MakeBill(const RegionYear& r, std::string request_id) {
    v1::SettleRequest bill;
    bill.set_request_id(std::move(request_id));
    SetCard(&bill);
    const int type = Uniform(1, 7);
    const bool stay = type == v1::VISIT_TYPE_INPATIENT || type == v1::VISIT_TYPE_DELIVERY_NATURAL ||
                      type == v1::VISIT_TYPE_DELIVERY_CAESAREAN;
    const int lines = stay ? Uniform(1, 30) : Uniform(1, 8);
    for (int n = 1; n <= lines; ++n) {
      const char* code = kCodes[Uniform(0, static_cast<int>(std::size(kCodes)) - 1)];
      const std::string quantity =
          Chance(70) ? Cat(Uniform(1, 10)) : Cat(Uniform(0, 9), ".", Uniform(1, 99));
      const int64_t price = Chance(90) ? Uniform(1, 200'000) : int64_t{Uniform(1, 2000)} * 100'000;
      AddLine(&bill, code, quantity, price);
    }
    v1::Visit* v = bill.mutable_visit();
    v->set_type(static_cast<v1::VisitType>(type));
    const engine::Date day = engine::Date::FromYmd(r.year, Uniform(1, 12), Uniform(1, 28));
    if (stay) {
      engine::Date admission = day.AddDays(-Uniform(0, 20));
      if (admission.year() != r.year) admission = day;
      v->set_admission_date(admission.ToString());
      v->set_discharge_date(day.ToString());
    } else {
      v->set_service_date(day.ToString());
    }
    if (const int specialty = Uniform(0, 3); specialty != 0) {
      v->set_specialty(static_cast<v1::Specialty>(specialty));
    }
    if (type == v1::VISIT_TYPE_CHRONIC_OUTPATIENT)
      v->set_condition(Chance(50) ? "TB" : "HYPERTENSION");
    if (type == v1::VISIT_TYPE_SPECIAL_OUTPATIENT) v->set_condition("UREMIA");
    v->set_emergency(Chance(50));
    return bill;
  }

 private:
  std::mt19937_64 rng_;
};

TEST_F(LedgerShipTest, RecomputeOfARandomYearReproducesEveryAmountAndFindsATamperedOne) {
  const uint64_t seed = SeedFor("recompute");
  RandomYear random(seed);
  constexpr int kPersonsPerRegionYear = 30;
  constexpr int kBills = 450;
  std::vector<std::pair<Person, const RegionYear*>> persons;
  for (const RegionYear& ry : kRegionYears) {
    for (int i = 0; i < kPersonsPerRegionYear; ++i) {
      const uint64_t n = persons.size() + 1;
      persons.emplace_back(random.MakePerson(ry, static_cast<int>(n * 37 % 256), n), &ry);
    }
  }
  std::vector<Person> all;
  for (const auto& [p, ry] : persons) all.push_back(p);
  const std::string version = LoadSnapshot(all);
  Settler settler(*store_, version);

  std::map<std::string, int> refusals;    // by reason
  std::map<std::string, int> settled_by;  // by policy id and visit type
  // The year drawn here; each person's bills settled in order, persons
  // spread over 4 threads.
  struct Plan {
    size_t person;
    engine::Institution where;
    v1::SettleRequest bill;
    bool reverse;
  };
  std::vector<Plan> plans;
  for (int b = 0; b < kBills; ++b) {
    const size_t who = static_cast<size_t>(random.Uniform(0, static_cast<int>(persons.size()) - 1));
    const RegionYear& ry = *persons[who].second;
    Plan plan{.person = who, .where = random.MakeInstitution(ry), .bill = {}, .reverse = false};
    plan.bill = random.MakeBill(ry, Cat("Y-", b));
    plan.reverse = random.Chance(8);
    plans.push_back(std::move(plan));
  }
  std::vector<absl::StatusOr<v1::LedgerRecord>> results(plans.size(),
                                                        absl::UnknownError("not settled"));
  std::atomic<int> reversed{0};
  RunInThreads(4, [&](int t) {
    for (size_t b = 0; b < plans.size(); ++b) {
      const Plan& plan = plans[b];
      if (plan.person % 4 != static_cast<size_t>(t)) continue;
      results[b] = settler.Settle(persons[plan.person].first, plan.where, plan.bill, WallNowMs());
      if (!results[b].ok() || !plan.reverse) continue;
      EXPECT_TRUE(settler.Reverse(*results[b], Cat("Y-", b, "-rev"), WallNowMs()).ok());
      reversed.fetch_add(1);
    }
  });
  std::vector<v1::LedgerRecord> records;
  for (const absl::StatusOr<v1::LedgerRecord>& r : results) {
    if (!r.ok()) {
      // Only the rules' refusals are expected of valid random bills.
      ASSERT_TRUE(r.status().code() == absl::StatusCode::kFailedPrecondition ||
                  r.status().code() == absl::StatusCode::kPermissionDenied)
          << r.status();
      ++refusals[engine::ReasonOf(r.status())];
      continue;
    }
    ++settled_by[Cat(r->policy_id(), " ", v1::VisitType_Name(r->request().visit().type()))];
    records.push_back(*r);
  }
  ASSERT_GE(records.size(), 200u);
  ASSERT_EQ(Drain().code, 0);
  std::string mix, refused;
  for (const auto& [k, v] : settled_by) mix += Cat("  ", k, ": ", v, "\n");
  for (const auto& [k, v] : refusals) refused += Cat(" ", k, " ", v);
  std::printf(
      "recompute: %zu settlements (%d reversed) shipped, by policy and visit:\n%s"
      "refused by the rules:%s\n",
      records.size(), reversed.load(), mix.c_str(), refused.c_str());
  EXPECT_EQ(settled_by.size() >= 20, true) << "the four region-years and their visit types";

  const ToolResult clean =
      RunTool(Flags({"recompute", "--from", "2024-01-01", "--to", "2025-12-31"}));
  EXPECT_EQ(clean.code, 0) << Describe(clean);
  EXPECT_NE(clean.out.find(Cat("recomputed ", records.size(),
                               " settlements of 2024-01-01..2025-12-31 "
                               "with the rules each was settled under: 0 differ")),
            std::string::npos)
      << clean.out;
  const size_t in_2025 = static_cast<size_t>(std::count_if(
      records.begin(), records.end(),
      [](const v1::LedgerRecord& r) { return r.settlement_date().starts_with("2025"); }));
  const ToolResult one_year =
      RunTool(Flags({"recompute", "--from", "2025-01-01", "--to", "2025-12-31"}));
  EXPECT_EQ(one_year.code, 0) << Describe(one_year);
  EXPECT_NE(one_year.out.find(Cat("recomputed ", in_2025, " settlements")), std::string::npos)
      << one_year.out;

  // Someone moves 1 yuan from the patient to the fund in one stored record.
  std::vector<const v1::LedgerRecord*> candidates;
  for (const v1::LedgerRecord& r : records) {
    if (r.response().amounts().base_fund_cents() > 0 &&
        r.response().amounts().patient_cents() >= 100) {
      candidates.push_back(&r);
    }
  }
  ASSERT_FALSE(candidates.empty());
  v1::LedgerRecord victim =
      *candidates[static_cast<size_t>(random.Uniform(0, static_cast<int>(candidates.size()) - 1))];
  v1::Amounts* a = victim.mutable_response()->mutable_amounts();
  a->set_base_fund_cents(a->base_fund_cents() + 100);
  a->set_patient_cents(a->patient_cents() - 100);
  {
    std::unique_ptr<ledger::PgConnection> pg = ConnectPg(conninfo());
    ASSERT_NE(pg, nullptr);
    absl::StatusOr<ledger::PgResult> updated =
        pg->Exec("UPDATE ledger.settlements SET record = $1 WHERE settlement_id = $2",
                 {ledger::PgParam::Bytes(victim.SerializeAsString()), victim.settlement_id()});
    ASSERT_TRUE(updated.ok()) << updated.status();
    ASSERT_EQ(updated->affected_rows(), 1);
  }
  const ToolResult tampered =
      RunTool(Flags({"recompute", "--from", "2024-01-01", "--to", "2025-12-31"}));
  EXPECT_EQ(tampered.code, 1) << Describe(tampered);
  EXPECT_EQ(CountLines(tampered.out, "DIFFERENT "), 1) << tampered.out;
  EXPECT_NE(tampered.out.find(Cat("DIFFERENT ", victim.settlement_id(), " (")), std::string::npos)
      << tampered.out;
  EXPECT_NE(tampered.out.find("base_fund_cents"), std::string::npos) << tampered.out;
  EXPECT_NE(tampered.out.find(": 1 differ"), std::string::npos) << tampered.out;
  std::printf("recompute after tampering:\n%s", tampered.out.c_str());
}

// ---- 7. reconcile: 3201 and 3202 ---------------------------------------------

// "12.30", "-0.05" → 分.
int64_t Cents(std::string_view yuan) {
  const bool negative = yuan.starts_with('-');
  if (negative) yuan.remove_prefix(1);
  const size_t dot = yuan.find('.');
  int64_t whole = std::strtoll(std::string(yuan.substr(0, dot)).c_str(), nullptr, 10);
  int64_t fraction = 0;
  if (dot != std::string_view::npos) {
    std::string f(yuan.substr(dot + 1));
    f.resize(2, '0');
    fraction = std::strtoll(f.c_str(), nullptr, 10);
  }
  const int64_t v = whole * 100 + fraction;
  return negative ? -v : v;
}

// A CSV section ("# 3201" / "# 3202") as rows of column → cell (quotes
// removed; no cell holds a comma here).
std::vector<std::map<std::string, std::string>> CsvSection(const std::string& csv,
                                                           std::string_view section) {
  std::vector<std::map<std::string, std::string>> rows;
  std::istringstream in(csv);
  std::string line;
  bool inside = false;
  std::vector<std::string> header;
  auto split = [](const std::string& l) {
    std::vector<std::string> cells;
    std::string cell;
    std::istringstream cs(l);
    while (std::getline(cs, cell, ',')) {
      if (cell.size() >= 2 && cell.front() == '"' && cell.back() == '"') {
        cell = cell.substr(1, cell.size() - 2);
      }
      cells.push_back(cell);
    }
    return cells;
  };
  while (std::getline(in, line)) {
    if (line.starts_with("# ")) {
      inside = line == Cat("# ", section);
      header.clear();
      continue;
    }
    if (!inside) continue;
    if (header.empty()) {
      header = split(line);
      continue;
    }
    const std::vector<std::string> cells = split(line);
    std::map<std::string, std::string> row;
    for (size_t i = 0; i < header.size() && i < cells.size(); ++i) row[header[i]] = cells[i];
    rows.push_back(row);
  }
  return rows;
}

TEST_F(LedgerShipTest, ReconcileOfADayGivesThe3201TotalsAnd3202LinesWithTheRefund) {
  std::vector<Person> persons;
  for (int i = 0; i < 4; ++i)
    persons.push_back(MakePerson(0x50 + i * 40, static_cast<uint64_t>(i) + 1, kQuzhou, 2025));
  const std::string version = LoadSnapshot(persons);
  Settler settler(*store_, version);
  const engine::Institution hospital = Hospital(2);  // H330802-2
  const std::string day = "2025-05-20";
  std::vector<v1::LedgerRecord> of_the_day;
  auto settle = [&](const Person& p, const engine::Institution& where,
                    const v1::SettleRequest& bill) {
    absl::StatusOr<v1::LedgerRecord> r = settler.Settle(p, where, bill, WallNowMs());
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : v1::LedgerRecord();
  };
  of_the_day.push_back(settle(persons[0], hospital, OutpatientBill("D-1", day, 12, 1500)));
  of_the_day.push_back(settle(persons[0], hospital, OutpatientBill("D-2", day, 3, 2200)));
  of_the_day.push_back(settle(persons[1], hospital, OutpatientBill("D-3", day, 30, 1800)));
  of_the_day.push_back(settle(persons[2], hospital, StayBill("D-4", testing::D("2025-05-14"), 6)));
  of_the_day.push_back(settle(persons[3], hospital, OutpatientBill("D-5", day, 7, 900)));
  // Not of the day or not of the institution.
  settle(persons[0], Hospital(3), OutpatientBill("D-6", day, 5, 1000));
  settle(persons[3], hospital, OutpatientBill("D-7", "2025-05-21", 5, 1000));
  const v1::LedgerRecord& refunded = of_the_day[2];
  absl::StatusOr<v1::LedgerReversal> refund = settler.Reverse(refunded, "D-3-refund", WallNowMs());
  ASSERT_TRUE(refund.ok()) << refund.status();

  // Redis's index of the day, read while it is hot.
  absl::StatusOr<cache::ReconcileResult> redis =
      store_->Reconcile(hospital.institution_id, *engine::Date::Parse(day), true, 1000, "");
  ASSERT_TRUE(redis.ok()) << redis.status();
  ASSERT_EQ(Drain().code, 0);

  // What the day must show, per clearing type: 11 outpatient, 21 stays.
  struct Expect {
    int64_t count = 0;
    engine::Amounts net;
  };
  std::map<std::string, Expect> want;
  for (const v1::LedgerRecord& r : of_the_day) {
    const std::string clr = r.request().visit().type() == v1::VISIT_TYPE_INPATIENT ? "21" : "11";
    engine::Amounts a;
    contract::AmountsFromProto(r.response().amounts(), &a);
    const int sign = r.settlement_id() == refunded.settlement_id() ? 0 : 1;  // net of the refund
    Expect& e = want[clr];
    e.count += sign == 0 ? 2 : 1;
    e.net.total_cents += sign * a.total_cents;
    e.net.deductible_cents += sign * a.deductible_cents;
    e.net.in_scope_cents += sign * a.in_scope_cents;
    e.net.base_fund_cents += sign * a.base_fund_cents;
    e.net.critical_illness_cents += sign * a.critical_illness_cents;
    e.net.supplementary_cents += sign * a.supplementary_cents;
    e.net.patient_cents += sign * a.patient_cents;
  }

  const ToolResult csv = RunTool(Flags(
      {"reconcile", "--institution", hospital.institution_id, "--date", day, "--format", "csv"}));
  ASSERT_EQ(csv.code, 0) << Describe(csv);
  std::printf("reconcile %s %s (CSV):\n%s", hospital.institution_id.c_str(), day.c_str(),
              csv.out.c_str());
  const auto totals = CsvSection(csv.out, "3201");
  const auto detail = CsvSection(csv.out, "3202");
  ASSERT_EQ(totals.size(), want.size()) << csv.out;
  int64_t count_sum = 0, medfee_sum = 0, fund_sum = 0, patient_sum = 0;
  for (const auto& row : totals) {
    const std::string clr = row.at("clr_type");
    ASSERT_TRUE(want.contains(clr)) << clr;
    const Expect& e = want[clr];
    EXPECT_EQ(row.at("insutype"), "390");
    EXPECT_EQ(row.at("setl_optins"), Cat(kKecheng));
    EXPECT_EQ(row.at("stmt_begndate"), day);
    EXPECT_EQ(std::stoll(row.at("fixmedins_setl_cnt")), e.count) << clr;
    EXPECT_EQ(row.at("medfee_sumamt"), engine::FormatYuan(e.net.total_cents)) << clr;
    EXPECT_EQ(row.at("hifp_pay"), engine::FormatYuan(e.net.base_fund_cents)) << clr;
    EXPECT_EQ(row.at("hifmi_pay"), engine::FormatYuan(e.net.critical_illness_cents)) << clr;
    EXPECT_EQ(row.at("oth_pay"), engine::FormatYuan(e.net.supplementary_cents)) << clr;
    EXPECT_EQ(Cents(row.at("fund_pay_sumamt")),
              Cents(row.at("hifp_pay")) + Cents(row.at("hifmi_pay")) + Cents(row.at("oth_pay")));
    EXPECT_EQ(row.at("psn_part_amt"), engine::FormatYuan(e.net.patient_cents)) << clr;
    EXPECT_EQ(row.at("psn_cash_pay"), engine::FormatYuan(e.net.patient_cents)) << clr;
    EXPECT_EQ(row.at("acct_pay"), "0.00");
    EXPECT_EQ(row.at("act_pay_dedc"), engine::FormatYuan(e.net.deductible_cents)) << clr;
    count_sum += std::stoll(row.at("fixmedins_setl_cnt"));
    medfee_sum += Cents(row.at("medfee_sumamt"));
    fund_sum += Cents(row.at("fund_pay_sumamt"));
    patient_sum += Cents(row.at("psn_part_amt"));
  }
  // One line per settlement, and the refund's with negative amounts.
  ASSERT_EQ(detail.size(), of_the_day.size() + 1) << csv.out;
  int refunds = 0;
  for (const auto& line : detail) {
    const auto it = std::find_if(
        of_the_day.begin(), of_the_day.end(),
        [&](const v1::LedgerRecord& r) { return r.settlement_id() == line.at("setl_id"); });
    ASSERT_NE(it, of_the_day.end()) << line.at("setl_id");
    const int sign = line.at("refd_setl_flag") == "1" ? -1 : 1;
    if (sign < 0) {
      ++refunds;
      EXPECT_EQ(line.at("setl_id"), refunded.settlement_id());
    }
    EXPECT_EQ(line.at("mdtrt_id"), it->request_id());
    EXPECT_EQ(line.at("psn_no"), it->person_key());
    EXPECT_EQ(Cents(line.at("medfee_sumamt")), sign * it->response().amounts().total_cents());
    EXPECT_EQ(Cents(line.at("hifp_pay")), sign * it->response().amounts().base_fund_cents());
    EXPECT_EQ(Cents(line.at("psn_part_amt")), sign * it->response().amounts().patient_cents());
  }
  EXPECT_EQ(refunds, 1);

  // The same day from Redis's index (before it was shipped).
  EXPECT_EQ(count_sum, redis->settled.count + redis->reversed.count);
  EXPECT_EQ(medfee_sum, redis->net.amounts.total_cents);
  EXPECT_EQ(fund_sum, redis->net.amounts.base_fund_cents +
                          redis->net.amounts.critical_illness_cents +
                          redis->net.amounts.supplementary_cents);
  EXPECT_EQ(patient_sum, redis->net.amounts.patient_cents);
  std::set<std::string> redis_ids, csv_ids;
  for (const cache::ReconcileDetail& d : redis->detail) redis_ids.insert(d.settlement_id);
  for (const auto& line : detail) csv_ids.insert(line.at("setl_id"));
  EXPECT_EQ(redis_ids, csv_ids);
  EXPECT_EQ(redis->settled.count, static_cast<int64_t>(of_the_day.size()));
  EXPECT_EQ(redis->reversed.count, 1);

  // JSON: the same figures.
  const ToolResult json = RunTool(Flags(
      {"reconcile", "--institution", hospital.institution_id, "--date", day, "--format", "json"}));
  ASSERT_EQ(json.code, 0) << Describe(json);
  google::protobuf::Struct doc;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json.out, &doc).ok()) << json.out;
  const auto& t3201 = doc.fields().at("3201").list_value().values();
  const auto& t3202 = doc.fields().at("3202").list_value().values();
  ASSERT_EQ(static_cast<size_t>(t3201.size()), want.size());
  EXPECT_EQ(static_cast<size_t>(t3202.size()), of_the_day.size() + 1);
  int64_t json_medfee = 0, json_count = 0;
  for (const auto& row : t3201) {
    const auto& f = row.struct_value().fields();
    json_medfee += std::llround(f.at("medfee_sumamt").number_value() * 100);
    json_count += static_cast<int64_t>(f.at("fixmedins_setl_cnt").number_value());
  }
  EXPECT_EQ(json_medfee, medfee_sum);
  EXPECT_EQ(json_count, count_sum);
}

// ---- 8. reversal and replay across the hot window, through the gateway -------

// The fixture's Redis idles here: the harness starts the gateway's own.
TEST_F(LedgerShipTest, AfterTheWindowTheGatewayReadsTheLedgerAndRefusesReversal) {
  using Stub = v1::SettlementService::Stub;
  const engine::Institution hospital = testing::Hospital(kQuzhou, 2);
  const std::string& institution = hospital.institution_id;
  absl::StatusOr<std::unique_ptr<testing::GatewayHarness>> started = testing::GatewayHarness::Start(
      {{testing::QuzhouId(1), testing::Person(kQuzhou, 2024)},
       {testing::QuzhouId(2), testing::Person(kQuzhou, 2024)}},
      {hospital}, [&](gateway::GatewayConfig& c) { c.ledger_conninfo = conninfo(); });
  ASSERT_TRUE(started.ok()) << started.status();
  testing::GatewayHarness& h = **started;

  const v1::SettleRequest bill_a = testing::InpatientBill("A-1", testing::QuzhouId(1));
  const v1::SettleRequest bill_b = testing::InpatientBill("B-1", testing::QuzhouId(2));
  v1::SettleResponse a, b;
  ASSERT_TRUE(h.Call(&Stub::Settle, institution, bill_a, &a).ok());
  ASSERT_TRUE(h.Call(&Stub::Settle, institution, bill_b, &b).ok());
  v1::ReverseRequest reverse_b;
  reverse_b.set_request_id("B-1-rev");
  reverse_b.set_settlement_id(b.settlement_id());
  reverse_b.set_reason("wrong patient");
  v1::ReverseResponse reversed_b;
  ASSERT_TRUE(h.Call(&Stub::Reverse, institution, reverse_b, &reversed_b).ok());

  // Shipped with a window that is already over (1 ms): the records leave
  // Redis at once; the idempotency records stay (their own TTL).
  {
    absl::StatusOr<std::unique_ptr<ledger::LedgerStore>> ledger =
        ledger::LedgerStore::Open({.conninfo = conninfo()});
    ASSERT_TRUE(ledger.ok()) << ledger.status();
    ASSERT_TRUE((*ledger)->LockShipper().ok());
    cache::RedisSettlementStore store(h.redis_client());
    ledger::Shipper shipper(h.redis_client(), store, **ledger, {.hot_window_ms = 1});
    int64_t shipped = 0;
    for (int cycle = 0; cycle < 10; ++cycle) {
      absl::StatusOr<ledger::CycleResult> r = shipper.ShipOnce();
      ASSERT_TRUE(r.ok()) << r.status();
      shipped += r->shipped;
      if (r->shipped == 0 && r->released == 0) break;
    }
    EXPECT_EQ(shipped, 3);
  }
  cache::RedisClient& redis = h.redis_client();
  for (const std::string& key :
       {cache::SettlementKey(a.settlement_id()), cache::SettlementKey(b.settlement_id()),
        cache::ReversalKey(b.settlement_id())}) {
    cache::RedisResult exists = redis.Command(key, {"EXISTS", key});
    ASSERT_TRUE(exists.ok());
    EXPECT_EQ(exists->integer, 0) << key << " left Redis";
  }

  // GetSettlement: from the ledger, as settled (and as reversed).
  v1::GetSettlementRequest get_a;
  get_a.set_settlement_id(a.settlement_id());
  v1::SettleResponse got_a;
  ASSERT_TRUE(h.Call(&Stub::GetSettlement, institution, get_a, &got_a).ok());
  EXPECT_TRUE(MessageDifferencer::Equals(got_a, a)) << got_a.DebugString();
  v1::GetSettlementRequest get_b;
  get_b.set_settlement_id(b.settlement_id());
  v1::SettleResponse got_b;
  ASSERT_TRUE(h.Call(&Stub::GetSettlement, institution, get_b, &got_b).ok());
  EXPECT_EQ(got_b.status(), v1::SETTLEMENT_STATUS_REVERSED);
  EXPECT_TRUE(MessageDifferencer::Equals(got_b.amounts(), b.amounts()));

  // Reverse after the window: refused, and nothing changes anywhere.
  auto redis_state = [&] {
    std::string state;
    for (const std::string& key : Keys(redis, "*")) {
      cache::RedisResult dump = redis.Command(key, {"DUMP", key});
      cache::RedisResult at = redis.Command(key, {"PEXPIRETIME", key});
      if (dump.ok() && at.ok()) state += Cat(key, "|", at->integer, "|", dump->str, "\n");
    }
    return state;
  };
  const std::string before = redis_state();
  const int64_t reversals_before = QueryInt(conninfo(), "SELECT count(*) FROM ledger.reversals");
  v1::ReverseRequest reverse_a;
  reverse_a.set_request_id("A-1-rev");
  reverse_a.set_settlement_id(a.settlement_id());
  v1::ReverseResponse refused;
  const testing::CallResult r = h.Call(&Stub::Reverse, institution, reverse_a, &refused);
  EXPECT_EQ(r.code(), grpc::StatusCode::FAILED_PRECONDITION) << testing::Describe(r);
  EXPECT_EQ(r.reason, gateway::reason::kReversalWindowClosed) << testing::Describe(r);
  EXPECT_EQ(redis_state(), before) << "a refused reversal wrote to Redis";
  EXPECT_EQ(QueryInt(conninfo(), "SELECT count(*) FROM ledger.reversals"), reversals_before);
  EXPECT_EQ(reversals_before, 1);

  // The reversal made inside the window replays from the ledger.
  v1::ReverseResponse again_b;
  ASSERT_TRUE(h.Call(&Stub::Reverse, institution, reverse_b, &again_b).ok());
  EXPECT_TRUE(again_b.replayed());
  EXPECT_EQ(again_b.reversal_id(), reversed_b.reversal_id());
  EXPECT_EQ(again_b.reversed_at(), reversed_b.reversed_at());
  EXPECT_TRUE(MessageDifferencer::Equals(again_b.amounts(), reversed_b.amounts()));

  // A Settle replay (the same request id, within the idempotency TTL)
  // answers with the stored response, from the ledger.
  v1::SettleResponse replay_a, replay_b;
  ASSERT_TRUE(h.Call(&Stub::Settle, institution, bill_a, &replay_a).ok());
  EXPECT_TRUE(replay_a.replayed());
  v1::SettleResponse expected_a = a;
  expected_a.set_replayed(true);
  EXPECT_TRUE(MessageDifferencer::Equals(replay_a, expected_a)) << replay_a.DebugString();
  ASSERT_TRUE(h.Call(&Stub::Settle, institution, bill_b, &replay_b).ok());
  EXPECT_TRUE(replay_b.replayed());
  EXPECT_EQ(replay_b.settlement_id(), b.settlement_id());
  EXPECT_EQ(replay_b.status(), v1::SETTLEMENT_STATUS_REVERSED);
  EXPECT_EQ(redis_state(), before) << "replays wrote to Redis";

  // The day's window has ended: Reconcile reads the ledger.
  v1::ReconcileRequest day;
  day.set_date(a.settlement_date());
  day.set_include_detail(true);
  v1::ReconcileResponse reconciled;
  ASSERT_TRUE(h.Call(&Stub::Reconcile, institution, day, &reconciled).ok());
  EXPECT_EQ(reconciled.settled().count(), 2);
  EXPECT_EQ(reconciled.reversed().count(), 1);
  EXPECT_TRUE(MessageDifferencer::Equals(reconciled.net().amounts(), a.amounts()));
  EXPECT_EQ(reconciled.detail_size(), 2);
}

}  // namespace
}  // namespace medsettle
