// Settlements per second per core (single-threaded): a 20-line outpatient
// bill and a 2,000-line inpatient bill, the Settlement reused between
// iterations as a server worker would. Targets (issue 2): ≥ 1,000,000/s and
// ≥ 20,000/s per core. Also the calculator's NDJSON throughput (JSON in,
// settle, JSON out) over the bundled examples. Run:
//   build/release/tests/benchmarks/settle_benchmark --benchmark_min_time=2
#include <benchmark/benchmark.h>

#include <sstream>

#include "tests/support/engine_fixture.h"
#include "tools/calc/calc_runner.h"

namespace medsettle::testing {
namespace {

using namespace medsettle::engine;

const char* const kOutpatientCodes[] = {"XA0001", "XA0002", "XB0001", "XB0003", "ZB0001",
                                        "FA0001", "FA0004", "XC0002", "XA0003", "FB0001"};
const char* const kInpatientCodes[] = {"XA0001", "XA0002", "XA0003", "XB0001", "XB0002",
                                       "XB0004", "XC0001", "FA0002", "FA0003", "FA0004",
                                       "FB0001", "FB0002", "FB0003", "FC0001", "ZA0001"};

Claim OutpatientBill(int lines) {
  std::vector<BillLine> bill;
  for (int n = 1; n <= lines; ++n) {
    bill.push_back(Line(n, kOutpatientCodes[n % std::size(kOutpatientCodes)], n % 3 ? "2" : "0.5",
                        1'000 + 137 * n));
  }
  return Outpatient(VisitType::kGeneralOutpatient, "2024-06-10", std::move(bill));
}

Claim InpatientBill(int lines) {
  std::vector<BillLine> bill;
  for (int n = 1; n <= lines; ++n) {
    bill.push_back(Line(n, kInpatientCodes[n % std::size(kInpatientCodes)], n % 4 ? "1" : "2.5",
                        500 + 91 * (n % 400)));
  }
  return Stay(VisitType::kInpatient, "2024-06-01", "2024-06-12", std::move(bill));
}

void Run(benchmark::State& state, const Enrollment& e, const Institution& i, const Claim& c) {
  const Engine& engine = ShippedEngine();
  Accumulators ytd;
  Settlement out;
  SettleInput input{.enrollment = &e, .institution = &i, .year_to_date = &ytd, .claim = &c};
  for (auto _ : state) {
    absl::Status status = engine.Settle(input, &out);
    if (!status.ok()) {
      state.SkipWithError(std::string(status.message()).c_str());
      break;
    }
    benchmark::DoNotOptimize(out.amounts.patient_cents);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_Settle_Outpatient20Lines(benchmark::State& state) {
  const Enrollment e = Person(330800, 2024);
  Institution i = Hospital(330802, 2);
  i.zero_markup = true;
  Run(state, e, i, OutpatientBill(20));
}
BENCHMARK(BM_Settle_Outpatient20Lines);

void BM_Settle_Inpatient2000Lines(benchmark::State& state) {
  const Enrollment e = Person(330800, 2024);
  const Institution i = Hospital(330802, 3);
  Run(state, e, i, InpatientBill(2000));
}
BENCHMARK(BM_Settle_Inpatient2000Lines);

void BM_Settle_FenghuaInpatientWithSupplementary(benchmark::State& state) {
  Enrollment e = Person(330213, 2025);
  e.supplementary = {"tianyi-yongning-2025", false, true};
  const Institution i = Hospital(330213, 3);
  Claim c = InpatientBill(200);
  c.visit.admission_date = D("2025-03-01");
  c.visit.discharge_date = D("2025-03-09");
  Run(state, e, i, c);
}
BENCHMARK(BM_Settle_FenghuaInpatientWithSupplementary);

// medsettle-calc's streaming mode over the bundled examples (every policy,
// one refusal): scenarios per second, JSON parsing and printing included.
void BM_CalcNdjson(benchmark::State& state) {
  const std::string examples = ReadSourceFile("tools/calc/examples/all.ndjson");
  int64_t per_pass = 0;
  for (char c : examples) per_pass += c == '\n';
  calc::ScenarioRunner runner(&ShippedEngine());
  for (auto _ : state) {
    std::istringstream in(examples);
    std::ostringstream sink;
    calc::StreamStats stats;
    if (!calc::RunNdjson(&runner, in, sink, &stats)) {
      state.SkipWithError("output failed");
      break;
    }
    benchmark::DoNotOptimize(sink.tellp());
  }
  state.SetItemsProcessed(state.iterations() * per_pass);
}
BENCHMARK(BM_CalcNdjson);

}  // namespace
}  // namespace medsettle::testing

BENCHMARK_MAIN();
