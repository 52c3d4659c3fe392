// The hot path of medsettle::metrics: Counter::Inc, Histogram::Observe and
// one unary call's GrpcServerMetrics (Started + Handled), on one thread and
// on two threads sharing the same child (the contended case), and a scrape.
#include <benchmark/benchmark.h>

#include "metrics/grpc_server_metrics.h"
#include "metrics/registry.h"

namespace medsettle::metrics {
namespace {

Registry& TheRegistry() {
  static Registry* registry = new Registry;
  return *registry;
}

Counter& TheCounter() {
  static Counter* c = &(*TheRegistry().AddCounter("bench_total", "B.", {"m"}))->WithLabels({"x"});
  return *c;
}

Histogram& TheHistogram() {
  static Histogram* h = &(*TheRegistry().AddHistogram("bench_seconds", "B.", {"m"},
                                                      kGrpcLatencyBucketsSeconds))
                             ->WithLabels({"x"});
  return *h;
}

GrpcServerMetrics& TheGrpc() {
  static GrpcServerMetrics* g =
      GrpcServerMetrics::Create(TheRegistry(), "medsettle.v1.SettlementService",
                                {"Settle", "Reverse", "GetSettlement", "Quote"})
          ->release();
  return *g;
}

void BM_CounterInc(benchmark::State& state) {
  Counter& c = TheCounter();
  for (auto _ : state) c.Inc();
}
BENCHMARK(BM_CounterInc)->Threads(1)->Threads(2);

void BM_HistogramObserve(benchmark::State& state) {
  Histogram& h = TheHistogram();
  double v = 0.0003;
  for (auto _ : state) {
    h.Observe(v);
    v = v < 5 ? v * 1.7 : 0.0003;  // walk the buckets
  }
}
BENCHMARK(BM_HistogramObserve)->Threads(1)->Threads(2);

void BM_GrpcUnaryCall(benchmark::State& state) {
  GrpcServerMetrics& g = TheGrpc();
  for (auto _ : state) {
    g.Started(0);
    g.Handled(0, 0, 0.00042);
  }
}
BENCHMARK(BM_GrpcUnaryCall)->Threads(1)->Threads(2);

void BM_RenderGrpcRegistry(benchmark::State& state) {
  Registry registry;
  auto g = GrpcServerMetrics::Create(registry, "medsettle.v1.SettlementService",
                                     {"Settle", "Reverse", "GetSettlement", "Quote"});
  std::string out;
  for (auto _ : state) {
    out.clear();
    registry.RenderTo(&out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(out.size()));
}
BENCHMARK(BM_RenderGrpcRegistry);

}  // namespace
}  // namespace medsettle::metrics

BENCHMARK_MAIN();
