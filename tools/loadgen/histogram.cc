#include "tools/loadgen/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace medsettle::loadgen {

Histogram::Histogram() : counts_(static_cast<size_t>(BucketCount()), 0) {}

int Histogram::BucketCount() {
  // Octaves kSubBucketBits .. kMaxBits-1, kSubBuckets each, after the first
  // kSubBuckets unit buckets.
  return static_cast<int>(kSubBuckets + (kMaxBits - kSubBucketBits) * kSubBuckets);
}

int Histogram::BucketIndex(int64_t value_us) {
  const uint64_t v = static_cast<uint64_t>(std::clamp<int64_t>(value_us, 0, kMaxValueUs));
  if (v < static_cast<uint64_t>(2 * kSubBuckets)) return static_cast<int>(v);
  const int magnitude = static_cast<int>(std::bit_width(v)) - 1;  // v in [2^m, 2^(m+1)), m ≥ 8
  const int shift = magnitude - kSubBucketBits;
  const int64_t sub = static_cast<int64_t>(v >> shift);  // in [128, 256)
  return static_cast<int>(kSubBuckets + shift * kSubBuckets + (sub - kSubBuckets));
}

int64_t Histogram::BucketLow(int index) {
  if (index < 2 * kSubBuckets) return index;
  const int64_t shift = (index - kSubBuckets) / kSubBuckets;
  const int64_t sub = kSubBuckets + (index - kSubBuckets) % kSubBuckets;
  return sub << shift;
}

int64_t Histogram::BucketHigh(int index) {
  if (index + 1 >= BucketCount()) return kMaxValueUs;
  return BucketLow(index + 1) - 1;
}

void Histogram::RecordN(int64_t value_us, uint64_t n) {
  if (n == 0) return;
  value_us = std::clamp<int64_t>(value_us, 0, kMaxValueUs);
  counts_[static_cast<size_t>(BucketIndex(value_us))] += n;
  if (count_ == 0 || value_us < min_us_) min_us_ = value_us;
  max_us_ = std::max(max_us_, value_us);
  count_ += n;
  sum_us_ += static_cast<uint64_t>(value_us) * n;
}

void Histogram::Merge(const Histogram& other) {
  if (other.count_ == 0) return;
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  if (count_ == 0 || other.min_us_ < min_us_) min_us_ = other.min_us_;
  max_us_ = std::max(max_us_, other.max_us_);
  count_ += other.count_;
  sum_us_ += other.sum_us_;
}

void Histogram::Clear() {
  std::fill(counts_.begin(), counts_.end(), 0);
  count_ = 0;
  min_us_ = 0;
  max_us_ = 0;
  sum_us_ = 0;
}

int64_t Histogram::mean_us() const {
  return count_ == 0 ? 0 : static_cast<int64_t>(sum_us_ / count_);
}

uint64_t NearestRank(double percentile, uint64_t count) {
  if (count == 0) return 0;
  // In millionths of a percent, in integers: in doubles 99.9 / 100 × 1,000
  // is 999.0000000000001, whose ceiling is the 1,000th value, not the 999th.
  const auto millionths =
      static_cast<uint64_t>(std::llround(std::clamp(percentile, 0.0, 100.0) * 1e6));
  constexpr uint64_t kWhole = 100'000'000;  // 100% in millionths
  // count = q × kWhole + r, so that nothing overflows: ceil(count × m / kWhole)
  // = q × m + ceil(r × m / kWhole), with r × m < 10^16.
  const uint64_t q = count / kWhole, r = count % kWhole;
  const uint64_t rank = q * millionths + (r * millionths + kWhole - 1) / kWhole;
  return std::clamp<uint64_t>(rank, 1, count);
}

int64_t Histogram::Percentile(double percentile) const {
  if (count_ == 0) return 0;
  uint64_t rank = NearestRank(percentile, count_);
  uint64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      return std::clamp(BucketHigh(static_cast<int>(i)), min_us_, max_us_);
    }
  }
  return max_us_;
}

}  // namespace medsettle::loadgen
