// Ship throughput into a real PostgreSQL on this machine (not a test; the
// figures go to docs/PERFORMANCE.md with the command that produced them):
//
//   build/<dir>/tests/benchmarks/ledger_ship_benchmark
//
// starts its own server (tests/support/postgres_server.h: fsync and
// synchronous_commit on; shared_buffers 256MB and wal_buffers 16MB, as a
// production server would be sized), migrates it, and ships 50,000
// pharmacy-sized settlement records (4 bill lines, about 2.2 KB
// serialized, as cache/record_codec.h measures the gateway's) per batch
// size, each batch one LedgerStore::Ship (binary COPY straight into the
// partitions, cursors, COMMIT). Records are spread over the 256 tags, 30
// days and 200 institutions; 3% of the entries are reversals of
// settlements of earlier batches. items_per_second is entries per second,
// wall clock, client and server together; server_cpu_us is the server
// backend's CPU per entry (the client's is the CPU column divided by the
// batch size), which does not depend on what else the machine runs.
// MEDSETTLE_LEDGER_CONNINFO=<conninfo> ships into that server instead (the
// ledger schema is migrated there; server_cpu_us is then not measured).
// BM_RecordToJson is the JSON part of Ship's client work (the reflection
// writer Ship uses, and protobuf's converter for comparison).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "engine/text.h"
#include "ledger/ledger_store.h"
#include "ledger/migrations.h"
#include "ledger/pg_connection.h"
#include "ledger/record_json.h"
#include "proto/contract/ledger_record.h"
#include "tests/support/postgres_server.h"

namespace medsettle::ledger {
namespace {

using engine::Cat;

constexpr int kRecordsPerRun = 50'000;
constexpr std::string_view kPolicy = "policy: quzhou-2025 (ledger_ship_benchmark)\n";
constexpr std::string_view kCatalog = "code,name,class\nX001,benchmark item,A\n";

std::string Hex(uint64_t value, int digits) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(static_cast<size_t>(digits), '0');
  for (int i = digits - 1; i >= 0 && value != 0; --i, value >>= 4) {
    out[static_cast<size_t>(i)] = kDigits[value & 15];
  }
  return out;
}

uint64_t Mix(uint64_t x) {  // splitmix64
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

struct Digests {
  std::string policy;
  std::string catalog;
};

// A pharmacy purchase of 4 lines as the gateway records it: the bill, the
// enrollment and institution as used, the year before, and the response
// with lines, fund detail, trace and the accumulators after.
v1::LedgerRecord PharmacyRecord(uint64_t n, const Digests& digests) {
  const uint64_t h = Mix(n);
  const std::string tag = Hex(h & 0xff, 2);
  const std::string person = Cat(tag, Hex(Mix(h), 16), Hex(Mix(h + 1), 16), Hex(Mix(h + 2), 16),
                                 Hex(Mix(h + 3), 14));
  const int64_t settled_at_ms = 1'740'787'200'000 + static_cast<int64_t>(n) * 40;  // from 2025-03-01
  const int day = 1 + static_cast<int>(n % 30);
  const std::string date = Cat("2025-04-", day < 10 ? "0" : "", day);
  const std::string institution = Cat("P33080", 2000 + static_cast<int>(Mix(h + 4) % 200));
  const std::string id = Cat(tag, "-", Hex(static_cast<uint64_t>(settled_at_ms), 12), "-", Hex(Mix(h + 5), 16));

  v1::LedgerRecord r;
  r.set_format(contract::kLedgerRecordFormat);
  r.set_settlement_id(id);
  r.set_institution_id(institution);
  r.set_request_id(Cat("YD", institution.substr(1), "-", 20250401000000 + n));
  r.set_person_key(person);
  r.set_content_hash(Cat(Hex(Mix(h + 6), 16), Hex(Mix(h + 7), 16), Hex(Mix(h + 8), 16), Hex(Mix(h + 9), 16)));
  r.set_credential_kind(n % 3 == 0 ? "EC_TOKEN" : "INSURANCE_CARD");
  r.set_certificate_fingerprint(Cat(Hex(Mix(h + 10), 16), Hex(Mix(h + 11), 16), Hex(Mix(h + 12), 16), Hex(Mix(h + 13), 16)));
  r.set_settled_at_unix_ms(settled_at_ms);
  r.set_settlement_date(date);
  r.set_year(2025);
  r.set_snapshot_version("20250401-0200");
  r.set_policy_id("quzhou-2025");
  r.set_policy_sha256(digests.policy);
  r.set_catalog_sha256(digests.catalog);

  static const char* kNames[] = {"阿莫西林胶囊", "布洛芬缓释胶囊", "复方甘草片", "氯雷他定片",
                                 "蒙脱石散", "板蓝根颗粒", "硝苯地平控释片", "二甲双胍缓释片"};
  v1::SettleRequest* request = r.mutable_request();
  request->set_request_id(r.request_id());
  request->mutable_visit()->set_type(v1::VISIT_TYPE_GENERAL_OUTPATIENT);
  request->mutable_visit()->set_service_date(date);
  v1::SettleResponse* response = r.mutable_response();
  int64_t total = 0;
  for (int line = 1; line <= 4; ++line) {
    const uint64_t k = Mix(h + 20 + static_cast<uint64_t>(line));
    const int64_t price = 300 + static_cast<int64_t>(k % 4000);
    const int64_t quantity = 1 + static_cast<int64_t>(k % 3);
    v1::BillItem* item = request->add_items();
    item->set_line_no(line);
    item->set_code(Cat("XJ01CAA", Hex(k % 0xfffff, 5), "E001010", 100000 + k % 900000));
    item->set_name(kNames[k % 8]);
    item->set_quantity(std::to_string(quantity));
    item->set_unit_price_cents(price);
    item->set_amount_cents(price * quantity);
    total += price * quantity;
    v1::LineResult* lr = response->add_lines();
    lr->set_line_no(line);
    lr->set_code(item->code());
    lr->set_item_class(line == 4 ? v1::ITEM_CLASS_B : v1::ITEM_CLASS_A);
    lr->set_amount_cents(price * quantity);
    lr->set_in_scope_cents(price * quantity);
  }
  const int64_t deductible = 0;
  const int64_t fund = total * 50 / 100;
  const int64_t patient = total - fund;

  v1::Enrollment* e = r.mutable_enrollment();
  e->set_person_key(person);
  e->set_year(2025);
  e->set_region_code("330802");
  e->set_birth_date("1961-07-14");
  e->set_category(v1::CATEGORY_ADULT);
  e->set_tier(1);
  e->set_assistance(v1::ASSISTANCE_NONE);
  e->set_paid_date("2024-12-20");
  e->set_status(v1::ENROLLMENT_STATUS_ACTIVE);
  v1::Institution* inst = r.mutable_institution();
  inst->set_institution_id(institution);
  inst->set_name("衢州市柯城区康民大药房连锁有限公司");
  inst->set_region_code("330802");
  inst->set_kind(v1::INSTITUTION_KIND_PHARMACY);
  inst->set_level(1);
  inst->set_base_level(true);

  auto accumulators = [&](v1::Accumulators* a, int64_t in_scope, int64_t paid, int32_t visits) {
    a->set_person_key(person);
    a->set_year(2025);
    v1::LedgerTotals* l = a->add_ledgers();
    l->set_ledger(v1::LEDGER_GENERAL_OUTPATIENT);
    l->set_in_scope_cents(in_scope);
    l->set_fund_paid_cents(paid);
    l->set_visits(visits);
    a->mutable_critical_illness();
  };
  const int64_t before_in_scope = static_cast<int64_t>(Mix(h + 30) % 50000);
  accumulators(r.mutable_year_to_date_before(), before_in_scope, before_in_scope / 2, 3);
  r.mutable_year_to_date_before()->set_version(7);

  response->set_settlement_id(id);
  response->set_status(v1::SETTLEMENT_STATUS_SETTLED);
  response->set_policy_id("quzhou-2025");
  v1::Amounts* a = response->mutable_amounts();
  a->set_total_cents(total);
  a->set_in_scope_cents(total);
  a->set_deductible_cents(deductible);
  a->set_base_fund_cents(fund);
  a->set_patient_cents(patient);
  response->set_base_fund_ratio_bp(5000);
  v1::FundDetail* fd = response->add_fund_details();
  fd->set_fund(v1::FUND_BASE);
  fd->set_scheme("general_outpatient");
  fd->set_eligible_cents(total);
  fd->set_paid_cents(fund);
  fd->set_cap_remaining_cents(300000 - before_in_scope / 2 - fund);
  accumulators(response->mutable_year_to_date(), before_in_scope + total, before_in_scope / 2 + fund, 4);
  response->mutable_year_to_date()->set_version(8);
  struct Step {
    const char* rule;
    const char* source;
    int64_t amount;
    std::string note;
  };
  const Step steps[] = {
      {"coverage", "衢州市城乡居民医保实施细则（2025）第十条", 0, "enrolled 2025, active, tier 1"},
      {"classify", "", total, Cat("4 lines: 3 class A, 1 class B, in scope ", total)},
      {"base_fund.route", "十四.1 普通门诊", 0, "general outpatient at a base-level pharmacy"},
      {"base_fund.deductible", "十四.1 普通门诊 起付标准", deductible, "deductible met earlier this year"},
      {"base_fund.ratio", "十四.1 普通门诊 报销比例 50%", fund, Cat(total, " × 50% = ", fund)},
      {"base_fund.cap", "十四.1 年度最高支付限额 3000元", fund, "within the annual cap"},
      {"critical_illness", "", 0, "not applicable to outpatient bills"},
      {"patient", "", patient, Cat(total, " − ", fund, " = ", patient)},
  };
  for (const Step& s : steps) {
    v1::TraceStep* t = response->add_trace();
    t->set_rule(s.rule);
    t->set_source(s.source);
    t->set_amount_cents(s.amount);
    t->set_note(s.note);
  }
  response->set_request_id(r.request_id());
  response->set_institution_id(institution);
  response->set_person_key(person);
  response->set_visit_type(v1::VISIT_TYPE_GENERAL_OUTPATIENT);
  response->set_settlement_date(date);
  response->set_settled_at("2025-04-01T09:30:00.000+08:00");
  accumulators(response->mutable_accumulator_delta(), total, fund, 1);
  response->mutable_accumulator_delta()->set_version(1);
  return r;
}

v1::LedgerReversal ReversalOf(const v1::LedgerRecord& r) {
  v1::LedgerReversal v;
  v.set_format(contract::kLedgerRecordFormat);
  v.set_settlement_id(r.settlement_id());
  v.set_institution_id(r.institution_id());
  v.set_request_id(Cat("R", r.request_id()));
  v.set_reason("退药");
  v.set_certificate_fingerprint(r.certificate_fingerprint());
  v.set_reversed_at_unix_ms(r.settled_at_unix_ms() + 600'000);
  v.set_person_key(r.person_key());
  v.set_year(r.year());
  v.set_settlement_date(r.settlement_date());
  *v.mutable_amounts() = r.response().amounts();
  *v.mutable_delta() = r.response().accumulator_delta();
  v.set_settle_request_id(r.request_id());
  v.mutable_response()->set_settlement_id(r.settlement_id());
  v.mutable_response()->set_status(v1::SETTLEMENT_STATUS_REVERSED);
  *v.mutable_response()->mutable_amounts() = r.response().amounts();
  return v;
}

// CPU seconds the process `pid` has used (user + system), from /proc; the
// server's backend runs on this machine. -1 when unreadable.
double ProcessCpuSeconds(int pid) {
  std::ifstream stat(Cat("/proc/", pid, "/stat"));
  std::string text;
  std::getline(stat, text);
  const size_t paren = text.rfind(')');
  if (paren == std::string::npos) return -1;
  std::istringstream fields(text.substr(paren + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14 || i == 15) ticks += std::stod(field);  // utime, stime
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

struct Ledger {
  std::unique_ptr<testing::PostgresServer> server;
  int backend_pid = 0;  // the store's session, when the server is local
  std::unique_ptr<LedgerStore> store;
  Digests digests;
  uint64_t next = 0;       // the next record number
  int64_t next_ms = 1;     // the next journal position (one ms each: per tag in order)
  std::vector<v1::LedgerRecord> reversible;  // shipped settlements, to reverse later
};
Ledger* g_ledger = nullptr;

void BM_Ship(benchmark::State& state) {
  Ledger& l = *g_ledger;
  const auto batch = static_cast<size_t>(state.range(0));
  int64_t entries = 0;
  int64_t bytes = 0;
  const double server_cpu_before = l.backend_pid > 0 ? ProcessCpuSeconds(l.backend_pid) : -1;
  for (auto _ : state) {
    state.PauseTiming();  // building the entries is the shipper's work, not Ship's
    std::vector<ShipEntry> ship;
    ship.reserve(batch);
    std::vector<v1::LedgerRecord> shipped_now;
    while (ship.size() < batch) {
      ShipEntry e;
      e.position = {.ms = l.next_ms++, .seq = 0};
      if (l.next % 33 == 32 && !l.reversible.empty()) {  // ~3% reversals, of earlier batches
        e.is_reversal = true;
        e.reversal = ReversalOf(l.reversible.back());
        l.reversible.pop_back();
        e.tag = e.reversal.settlement_id().substr(0, 2);
        e.bytes = e.reversal.SerializeAsString();
      } else {
        e.settlement = PharmacyRecord(l.next, l.digests);
        e.tag = e.settlement.settlement_id().substr(0, 2);
        e.bytes = e.settlement.SerializeAsString();
        if (l.next % 33 == 0) shipped_now.push_back(e.settlement);
      }
      ++l.next;
      bytes += static_cast<int64_t>(e.bytes.size());
      ship.push_back(std::move(e));
    }
    state.ResumeTiming();
    absl::Status s = l.store->Ship(ship);
    if (!s.ok()) {
      state.SkipWithError(std::string(s.message()).c_str());
      return;
    }
    entries += static_cast<int64_t>(ship.size());
    for (v1::LedgerRecord& r : shipped_now) l.reversible.push_back(std::move(r));
  }
  state.SetItemsProcessed(entries);
  if (server_cpu_before >= 0 && entries > 0) {
    // The backend's CPU per entry (the client's is the CPU column divided
    // by the batch size): what the throughput would be on idle cores.
    state.counters["server_cpu_us"] = benchmark::Counter(
        (ProcessCpuSeconds(l.backend_pid) - server_cpu_before) * 1e6 / static_cast<double>(entries));
  }
  state.counters["record_bytes"] = benchmark::Counter(static_cast<double>(bytes) / static_cast<double>(entries));
}

// record_json of one pharmacy record: the reflection writer Ship uses
// (range 0) and protobuf's MessageToJsonString (range 1).
void BM_RecordToJson(benchmark::State& state) {
  const v1::LedgerRecord r = PharmacyRecord(7, g_ledger->digests);
  std::string json;
  for (auto _ : state) {
    json.clear();
    absl::Status s = state.range(0) == 0 ? AppendRecordJson(r, &json) : ReferenceRecordJson(r, &json);
    benchmark::DoNotOptimize(s);
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["json_bytes"] = static_cast<double>(json.size());
  state.counters["record_bytes"] = static_cast<double>(r.ByteSizeLong());
}

}  // namespace
}  // namespace medsettle::ledger

int main(int argc, char** argv) {
  using namespace medsettle;
  benchmark::Initialize(&argc, argv);
  ledger::Ledger l;
  std::string conninfo;
  if (const char* env = std::getenv("MEDSETTLE_LEDGER_CONNINFO"); env != nullptr && *env != '\0') {
    conninfo = env;  // an existing server (e.g. deploy/postgres/pg-local.sh, or production-like)
  } else {
    // As a production server would be sized (Debian's default is 128MB),
    // not as small as the tests' 32MB.
    absl::StatusOr<std::unique_ptr<medsettle::testing::PostgresServer>> server =
        medsettle::testing::PostgresServer::Start({"shared_buffers=256MB", "wal_buffers=16MB"});
    if (!server.ok()) {
      std::fprintf(stderr, "ledger_ship_benchmark: %s\n",
                   std::string(server.status().message()).c_str());
      return server.status().code() == absl::StatusCode::kNotFound ? 0 : 1;
    }
    l.server = *std::move(server);
    conninfo = l.server->conninfo();
  }
  {
    absl::StatusOr<std::unique_ptr<ledger::PgConnection>> admin =
        ledger::PgConnection::Connect(ledger::PgOptions{.conninfo = conninfo});
    if (!admin.ok() || !ledger::Migrate(**admin).ok()) {
      std::fprintf(stderr, "ledger_ship_benchmark: cannot migrate\n");
      return 1;
    }
    absl::StatusOr<ledger::PgResult> digests = (*admin)->Exec(
        "SELECT encode(sha256(convert_to($1, 'UTF8')), 'hex'), encode(sha256(convert_to($2, 'UTF8')), 'hex')",
        {ledger::kPolicy, ledger::kCatalog});
    if (!digests.ok()) return 1;
    l.digests = {std::string(digests->text(0, 0)), std::string(digests->text(0, 1))};
  }
  absl::StatusOr<std::unique_ptr<ledger::LedgerStore>> store =
      ledger::LedgerStore::Open(ledger::LedgerOptions{.conninfo = conninfo,
                                                      .application_name = "ledger_ship_benchmark"});
  if (!store.ok()) return 1;
  l.store = *std::move(store);
  if (!l.store->PutRuleFiles({{l.digests.policy, "policy", "quzhou-2025", std::string(ledger::kPolicy)},
                              {l.digests.catalog, "catalog", "catalog.csv", std::string(ledger::kCatalog)}})
           .ok()) {
    return 1;
  }
  if (l.server != nullptr) {
    absl::StatusOr<std::unique_ptr<ledger::PgConnection>> admin =
        ledger::PgConnection::Connect(ledger::PgOptions{.conninfo = conninfo});
    absl::StatusOr<ledger::PgResult> pid =
        admin.ok() ? (*admin)->Exec("SELECT pid FROM pg_stat_activity "
                                    "WHERE application_name = 'ledger_ship_benchmark'")
                   : absl::StatusOr<ledger::PgResult>(admin.status());
    if (pid.ok() && pid->rows() == 1) l.backend_pid = static_cast<int>(pid->int64(0, 0));
  }
  ledger::g_ledger = &l;

  benchmark::RegisterBenchmark("BM_RecordToJson", ledger::BM_RecordToJson)->Arg(0)->Arg(1);
  for (int batch : {500, 5'000, 50'000}) {
    benchmark::RegisterBenchmark("BM_Ship", ledger::BM_Ship)
        ->Arg(batch)
        ->Iterations(ledger::kRecordsPerRun / batch)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
