// A latency histogram in the manner of HdrHistogram: log-linear buckets of
// microseconds. Values below 256 µs have a bucket each; above, every power
// of two is split into 128 equal buckets, so a bucket is never wider than
// 1/128 of its lower bound (relative error < 0.8%). Values above
// kMaxValueUs are counted in the last bucket (and as the maximum).
//
// Not thread-safe: one writer at a time (runner.cc guards it with a mutex).
// Copyable and mergeable, so per-second and per-scenario histograms can be
// kept and combined.
#ifndef MEDSETTLE_TOOLS_LOADGEN_HISTOGRAM_H_
#define MEDSETTLE_TOOLS_LOADGEN_HISTOGRAM_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace medsettle::loadgen {

class Histogram {
 public:
  static constexpr int kSubBucketBits = 7;                     // 128 per octave
  static constexpr int64_t kSubBuckets = int64_t{1} << kSubBucketBits;
  static constexpr int kMaxBits = 36;                          // ~19 hours
  static constexpr int64_t kMaxValueUs = (int64_t{1} << kMaxBits) - 1;

  Histogram();

  // Counts one value (negative values count as 0).
  void Record(int64_t value_us) { RecordN(value_us, 1); }
  void RecordN(int64_t value_us, uint64_t n);
  // Adds every count of `other`.
  void Merge(const Histogram& other);
  void Clear();

  uint64_t count() const { return count_; }
  int64_t min_us() const { return count_ == 0 ? 0 : min_us_; }
  int64_t max_us() const { return max_us_; }
  // Mean of the recorded values (exact: the sum is kept), 0 when empty.
  int64_t mean_us() const;

  // The value at `percentile` (0..100) by nearest rank: the smallest
  // bucket whose cumulative count reaches NearestRank(p, count), reported as
  // the bucket's upper bound, clamped to [min, max]. 0 when empty.
  int64_t Percentile(double percentile) const;

  // Buckets: index ↔ value range.
  static int BucketIndex(int64_t value_us);
  static int64_t BucketLow(int index);
  static int64_t BucketHigh(int index);  // inclusive
  static int BucketCount();
  uint64_t CountAt(int index) const { return counts_[static_cast<size_t>(index)]; }

 private:
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  int64_t min_us_ = 0;
  int64_t max_us_ = 0;
  // Sum for the mean; a run of 2^64 µs does not happen (584,000 years).
  uint64_t sum_us_ = 0;
};

// ceil(percentile / 100 × count), clamped to 1..count (0 when count is 0),
// computed exactly for percentiles given to six decimals (99.9 of 1,000
// values is the 999th).
uint64_t NearestRank(double percentile, uint64_t count);

}  // namespace medsettle::loadgen

#endif  // MEDSETTLE_TOOLS_LOADGEN_HISTOGRAM_H_
