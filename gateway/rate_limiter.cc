#include "gateway/rate_limiter.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "engine/status.h"
#include "engine/text.h"

namespace medsettle::gateway {

using engine::Cat;
namespace {

int64_t SteadyNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The bucket's tokens at `now_ns`: refilled since its last update, capped
// at the burst.
double Refilled(double tokens, int64_t updated_ns, int64_t now_ns, const GatewayConfig::RateLimit& l) {
  const double elapsed_s = static_cast<double>(std::max<int64_t>(0, now_ns - updated_ns)) / 1e9;
  return std::min(l.burst, tokens + elapsed_s * l.requests_per_second);
}

// "500", "0.5": a limit as configured.
std::string Number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", value);
  return text;
}

}  // namespace

RateLimiter::RateLimiter(Limit default_limit,
                         const std::vector<std::pair<std::string, Limit>>& overrides,
                         Clock now_ns)
    : default_limit_(default_limit),
      overrides_(overrides.begin(), overrides.end()),
      now_ns_(now_ns ? std::move(now_ns) : Clock(SteadyNowNs)),
      shards_(new Shard[kShards]) {}

RateLimiter::Limit RateLimiter::LimitOf(std::string_view institution_id) const {
  if (overrides_.empty()) return default_limit_;
  auto it = overrides_.find(std::string(institution_id));
  return it == overrides_.end() ? default_limit_ : it->second;
}

absl::Status RateLimiter::Admit(std::string_view institution_id) {
  const Limit limit = LimitOf(institution_id);
  if (limit.requests_per_second <= 0) return absl::OkStatus();  // unlimited
  const int64_t now = now_ns_();
  Shard& shard = shards_[std::hash<std::string_view>()(institution_id) % kShards];
  double tokens = 0;
  {
    std::lock_guard<std::mutex> lock(shard.mutex);
    auto it = shard.buckets.find(std::string(institution_id));
    if (it == shard.buckets.end()) {
      if (shard.buckets.size() >= shard.sweep_at) {
        // Forget buckets that have refilled: a full bucket is a fresh one.
        std::erase_if(shard.buckets, [&](const auto& entry) {
          const Limit l = LimitOf(entry.first);
          return l.requests_per_second <= 0 ||
                 Refilled(entry.second.tokens, entry.second.updated_ns, now, l) >= l.burst;
        });
        // Many busy buckets: sweep again only when they have doubled, so
        // sweeps cost O(1) per new institution.
        shard.sweep_at = std::max(kMaxBucketsPerShard, 2 * shard.buckets.size());
      }
      it = shard.buckets.emplace(std::string(institution_id), Bucket{limit.burst, now}).first;
    }
    Bucket& b = it->second;
    b.tokens = Refilled(b.tokens, b.updated_ns, now, limit);
    b.updated_ns = std::max(b.updated_ns, now);
    // The tolerance absorbs the rounding of the refill arithmetic, so a
    // call that arrives exactly when its token is due is admitted.
    if (b.tokens >= 1 - 1e-9) {
      b.tokens = std::max(0.0, b.tokens - 1);
      return absl::OkStatus();
    }
    tokens = b.tokens;
  }
  const double wait_ms = std::ceil((1 - tokens) / limit.requests_per_second * 1000);
  return engine::Refusal(
      absl::StatusCode::kResourceExhausted, reason::kRateLimited, "",
      Cat("institution ", institution_id, " exceeded its rate limit (",
          Number(limit.requests_per_second), " requests/s, burst ", Number(limit.burst),
          "); the next request is allowed in ", static_cast<int64_t>(wait_ms), " ms"));
}

size_t RateLimiter::BucketCount() const {
  size_t n = 0;
  for (size_t i = 0; i < kShards; ++i) {
    std::lock_guard<std::mutex> lock(shards_[i].mutex);
    n += shards_[i].buckets.size();
  }
  return n;
}

}  // namespace medsettle::gateway
