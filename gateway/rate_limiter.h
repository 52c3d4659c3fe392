// Per-institution rate limits: a token bucket per calling institution,
// refilled at requests_per_second up to burst tokens; a call takes one
// token or is refused RESOURCE_EXHAUSTED RATE_LIMITED. Checked on the gRPC
// thread after authentication and before the call is queued for a worker,
// so a flooding institution costs the gateway almost nothing and cannot
// fill the worker queue that every other institution shares.
//
// Thread-safe. Buckets live in shards, each with its own mutex, chosen by
// the institution id's hash: calls of different institutions rarely
// contend, and the critical section is a hash lookup and a few flops. A
// limit of 0 requests per second is unlimited and touches no shard.
//
// Memory: one bucket per institution seen. A shard that grows past
// kMaxBucketsPerShard forgets the buckets that have refilled completely (a
// full bucket and a fresh one behave the same), so a stream of ids the
// registry does not know cannot grow it without bound: what stays is the
// buckets in use within the last burst / requests_per_second seconds.
#ifndef MEDSETTLE_GATEWAY_RATE_LIMITER_H_
#define MEDSETTLE_GATEWAY_RATE_LIMITER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gateway/config.h"

namespace medsettle::gateway {

namespace reason {
// RESOURCE_EXHAUSTED: the calling institution sent more than its rate
// limit allows (rate_limit in the configuration); nothing was done, retry
// after a pause.
inline constexpr std::string_view kRateLimited = "RATE_LIMITED";
}  // namespace reason

class RateLimiter {
 public:
  using Limit = GatewayConfig::RateLimit;
  // Monotonic nanoseconds; injectable so tests control time.
  using Clock = std::function<int64_t()>;

  static constexpr size_t kShards = 32;
  static constexpr size_t kMaxBucketsPerShard = 1024;

  // `default_limit` for every institution without an override. REQUIRES:
  // the limits passed ValidateConfig (burst ≥ 1 where requests_per_second
  // > 0). A null `now_ns` is std::chrono::steady_clock.
  RateLimiter(Limit default_limit, const std::vector<std::pair<std::string, Limit>>& overrides,
              Clock now_ns = nullptr);

  RateLimiter(const RateLimiter&) = delete;
  RateLimiter& operator=(const RateLimiter&) = delete;

  // Takes one token of `institution_id`'s bucket: OK, or RESOURCE_EXHAUSTED
  // kRateLimited (the message says the limit and when a token is due).
  // Never blocks beyond a shard's short critical section.
  absl::Status Admit(std::string_view institution_id);

  // The limit that applies to `institution_id`.
  Limit LimitOf(std::string_view institution_id) const;

  // Buckets held (tests of the memory bound).
  size_t BucketCount() const;

 private:
  struct Bucket {
    double tokens = 0;
    int64_t updated_ns = 0;
  };
  struct Shard {
    mutable std::mutex mutex;
    std::unordered_map<std::string, Bucket> buckets;  // guarded by mutex
    size_t sweep_at = kMaxBucketsPerShard;            // guarded by mutex
  };

  const Limit default_limit_;
  const std::unordered_map<std::string, Limit> overrides_;
  const Clock now_ns_;
  std::unique_ptr<Shard[]> shards_;
};

}  // namespace medsettle::gateway

#endif  // MEDSETTLE_GATEWAY_RATE_LIMITER_H_
