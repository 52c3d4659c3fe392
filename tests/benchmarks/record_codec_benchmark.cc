// Packing and unpacking one settlement record (cache/record_codec.h), per
// kind of record: PackRecord (zstd level 1 with the compiled-in dictionary)
// and UnpackRecord, cycling over generated records of a seed the
// dictionary never saw (tools/recordgen); plain zstd level 1 beside them
// for comparison. Each iteration is one record; the counters give the
// average packed size. Run:
//   build/release/tests/benchmarks/record_codec_benchmark --benchmark_min_time=1
#include <benchmark/benchmark.h>
#include <zstd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cache/record_codec.h"
#include "tools/recordgen/record_samples.h"

namespace medsettle::cache {
namespace {

using recordgen::Sample;
using recordgen::SampleKind;

const std::vector<Sample>& Samples() {
  static const std::vector<Sample>* samples = [] {
    absl::StatusOr<recordgen::RuleSet> rules =
        recordgen::LoadRuleSet(std::string(MEDSETTLE_SOURCE_DIR) + "/engine/policies",
                               std::string(MEDSETTLE_SOURCE_DIR) +
                                   "/engine/catalog/demo-catalog.csv");
    if (!rules.ok()) std::abort();
    absl::StatusOr<std::vector<Sample>> s =
        recordgen::GenerateSamples(*rules, {.seed = 2, .settlements = 1500});
    if (!s.ok()) std::abort();
    return new std::vector<Sample>(*std::move(s));
  }();
  return *samples;
}

std::vector<std::string> OfKind(SampleKind kind) {
  std::vector<std::string> out;
  for (const Sample& s : Samples()) {
    if (s.kind == kind) out.push_back(s.bytes);
  }
  return out;
}

void Report(benchmark::State& state, int64_t serialized, int64_t packed, int64_t records) {
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * serialized / records);
  state.counters["serialized_B"] = static_cast<double>(serialized) / static_cast<double>(records);
  state.counters["packed_B"] = static_cast<double>(packed) / static_cast<double>(records);
}

void BM_PackRecord(benchmark::State& state) {
  const std::vector<std::string> records = OfKind(static_cast<SampleKind>(state.range(0)));
  int64_t serialized = 0, packed = 0;
  for (const std::string& r : records) {
    serialized += static_cast<int64_t>(r.size());
    packed += static_cast<int64_t>(PackRecord(r).size());
  }
  size_t i = 0;
  for (auto _ : state) {
    std::string out = PackRecord(records[i]);
    benchmark::DoNotOptimize(out.data());
    if (++i == records.size()) i = 0;
  }
  state.SetLabel(std::string(recordgen::Name(static_cast<SampleKind>(state.range(0)))));
  Report(state, serialized, packed, static_cast<int64_t>(records.size()));
}

void BM_UnpackRecord(benchmark::State& state) {
  const std::vector<std::string> records = OfKind(static_cast<SampleKind>(state.range(0)));
  std::vector<std::string> stored;
  int64_t serialized = 0, packed = 0;
  for (const std::string& r : records) {
    stored.push_back(PackRecord(r));
    serialized += static_cast<int64_t>(r.size());
    packed += static_cast<int64_t>(stored.back().size());
  }
  size_t i = 0;
  for (auto _ : state) {
    absl::StatusOr<std::string> out = UnpackRecord(stored[i], "bench");
    if (!out.ok()) {
      state.SkipWithError("unpack failed");
      break;
    }
    benchmark::DoNotOptimize(out->data());
    if (++i == stored.size()) i = 0;
  }
  state.SetLabel(std::string(recordgen::Name(static_cast<SampleKind>(state.range(0)))));
  Report(state, serialized, packed, static_cast<int64_t>(records.size()));
}

// Plain zstd level 1, no dictionary: what PackRecord did before record-v1.
void BM_PackPlainZstd(benchmark::State& state) {
  const std::vector<std::string> records = OfKind(static_cast<SampleKind>(state.range(0)));
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  std::string out;
  int64_t serialized = 0, packed = 0;
  for (const std::string& r : records) {
    out.resize(ZSTD_compressBound(r.size()));
    serialized += static_cast<int64_t>(r.size());
    packed += static_cast<int64_t>(ZSTD_compressCCtx(cctx, out.data(), out.size(), r.data(),
                                                     r.size(), 1));
  }
  size_t i = 0;
  for (auto _ : state) {
    const std::string& r = records[i];
    out.resize(ZSTD_compressBound(r.size()));
    benchmark::DoNotOptimize(
        ZSTD_compressCCtx(cctx, out.data(), out.size(), r.data(), r.size(), 1));
    if (++i == records.size()) i = 0;
  }
  ZSTD_freeCCtx(cctx);
  state.SetLabel(std::string(recordgen::Name(static_cast<SampleKind>(state.range(0)))));
  Report(state, serialized, packed, static_cast<int64_t>(records.size()));
}

// 0 pharmacy, 1 outpatient, 2 inpatient, 3 reversal (recordgen::SampleKind).
BENCHMARK(BM_PackRecord)->DenseRange(0, 3);
BENCHMARK(BM_UnpackRecord)->DenseRange(0, 3);
BENCHMARK(BM_PackPlainZstd)->DenseRange(0, 3);

}  // namespace
}  // namespace medsettle::cache

BENCHMARK_MAIN();
