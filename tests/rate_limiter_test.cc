// The per-institution token bucket (gateway/rate_limiter.h) on a fake
// clock: burst, refill, overrides, unlimited, isolation between
// institutions, the memory bound, and many threads at once.
#include "gateway/rate_limiter.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "engine/status.h"
#include "engine/text.h"

namespace medsettle::gateway {
namespace {

using engine::Cat;
constexpr int64_t kMs = 1'000'000;  // nanoseconds

// A clock the test moves by hand.
struct FakeClock {
  std::atomic<int64_t> now_ns{1'000 * kMs};
  RateLimiter::Clock Fn() {
    return [this] { return now_ns.load(); };
  }
  void Advance(int64_t ns) { now_ns.fetch_add(ns); }
};

// How many of `n` calls right now are admitted.
int Admitted(RateLimiter& limiter, const std::string& id, int n) {
  int ok = 0;
  for (int i = 0; i < n; ++i) ok += limiter.Admit(id).ok() ? 1 : 0;
  return ok;
}

TEST(RateLimiter, BurstThenRefusedWithReasonThenRefilledAtTheRate) {
  FakeClock clock;
  RateLimiter limiter({10, 5}, {}, clock.Fn());
  EXPECT_EQ(Admitted(limiter, "H1", 5), 5);  // a fresh bucket is full
  absl::Status refused = limiter.Admit("H1");
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(engine::ReasonOf(refused), "RATE_LIMITED");
  EXPECT_NE(refused.message().find("H1"), std::string_view::npos) << refused.message();
  EXPECT_NE(refused.message().find("10 requests/s, burst 5"), std::string_view::npos)
      << refused.message();
  EXPECT_NE(refused.message().find("in 100 ms"), std::string_view::npos) << refused.message();

  clock.Advance(99 * kMs);  // 0.99 tokens
  EXPECT_FALSE(limiter.Admit("H1").ok());
  clock.Advance(1 * kMs);  // 1 token
  EXPECT_TRUE(limiter.Admit("H1").ok());
  EXPECT_FALSE(limiter.Admit("H1").ok());

  // A long pause refills to the burst, never beyond.
  clock.Advance(60'000 * kMs);
  EXPECT_EQ(Admitted(limiter, "H1", 20), 5);
}

TEST(RateLimiter, SteadyRateIsSustainedExactly) {
  FakeClock clock;
  RateLimiter limiter({100, 1}, {}, clock.Fn());
  int ok = 0;
  for (int i = 0; i < 1000; ++i) {  // 10 s of one call per 10 ms: all pass
    ok += limiter.Admit("H1").ok() ? 1 : 0;
    clock.Advance(10 * kMs);
  }
  EXPECT_EQ(ok, 1000);
  for (int i = 0; i < 100; ++i) {  // one call per 5 ms: every other one
    ok += limiter.Admit("H1").ok() ? 1 : 0;
    clock.Advance(5 * kMs);
  }
  EXPECT_EQ(ok, 1000 + 50);
}

TEST(RateLimiter, InstitutionsHaveTheirOwnBuckets) {
  FakeClock clock;
  RateLimiter limiter({1, 2}, {}, clock.Fn());
  EXPECT_EQ(Admitted(limiter, "H1", 10), 2);
  EXPECT_EQ(Admitted(limiter, "H2", 10), 2);  // H1's flood costs H2 nothing
  EXPECT_EQ(Admitted(limiter, "P3", 1), 1);
}

TEST(RateLimiter, OverridesAndUnlimited) {
  FakeClock clock;
  RateLimiter limiter({1, 2}, {{"BIG", {1000, 50}}, {"FREE", {0, 0}}}, clock.Fn());
  EXPECT_EQ(limiter.LimitOf("BIG").burst, 50);
  EXPECT_EQ(limiter.LimitOf("other").burst, 2);
  EXPECT_EQ(Admitted(limiter, "BIG", 100), 50);
  EXPECT_EQ(Admitted(limiter, "FREE", 10000), 10000);
  EXPECT_EQ(Admitted(limiter, "other", 10), 2);
  EXPECT_EQ(limiter.BucketCount(), 2u);  // unlimited callers hold no bucket

  RateLimiter unlimited({0, 0}, {{"TIGHT", {1, 1}}}, clock.Fn());
  EXPECT_EQ(Admitted(unlimited, "anyone", 10000), 10000);
  EXPECT_EQ(Admitted(unlimited, "TIGHT", 3), 1);
  EXPECT_EQ(unlimited.BucketCount(), 1u);
}

TEST(RateLimiter, FractionalRatesRefillSlowly) {
  FakeClock clock;
  RateLimiter limiter({0.5, 1}, {}, clock.Fn());
  EXPECT_TRUE(limiter.Admit("H1").ok());
  absl::Status refused = limiter.Admit("H1");
  EXPECT_NE(refused.message().find("0.5 requests/s"), std::string_view::npos)
      << refused.message();
  clock.Advance(1999 * kMs);
  EXPECT_FALSE(limiter.Admit("H1").ok());
  clock.Advance(1 * kMs);
  EXPECT_TRUE(limiter.Admit("H1").ok());
}

TEST(RateLimiter, ABackwardsClockNeverAddsTokens) {
  FakeClock clock;
  RateLimiter limiter({1, 1}, {}, clock.Fn());
  EXPECT_TRUE(limiter.Admit("H1").ok());
  clock.Advance(-10'000 * kMs);
  EXPECT_FALSE(limiter.Admit("H1").ok());
  clock.Advance(10'000 * kMs);  // back where it was: still nothing
  EXPECT_FALSE(limiter.Admit("H1").ok());
  clock.Advance(1000 * kMs);
  EXPECT_TRUE(limiter.Admit("H1").ok());
}

TEST(RateLimiter, RefilledBucketsAreForgottenWhenAShardIsFull) {
  FakeClock clock;
  RateLimiter limiter({1000, 10}, {}, clock.Fn());
  const size_t many = RateLimiter::kShards * RateLimiter::kMaxBucketsPerShard * 3;
  for (size_t i = 0; i < many; ++i) {
    ASSERT_TRUE(limiter.Admit(Cat("X", static_cast<int64_t>(i))).ok());
    clock.Advance(kMs / 10);  // each bucket refills (1 token) within 1 ms
  }
  EXPECT_LE(limiter.BucketCount(),
            RateLimiter::kShards * (RateLimiter::kMaxBucketsPerShard + 1));
  // A bucket in use is not forgotten: its debt stands.
  RateLimiter busy({1, 5}, {}, clock.Fn());
  EXPECT_EQ(Admitted(busy, "H1", 5), 5);
  for (size_t i = 0; i < RateLimiter::kShards * RateLimiter::kMaxBucketsPerShard * 2; ++i) {
    (void)busy.Admit(Cat("Y", static_cast<int64_t>(i)));
  }
  EXPECT_FALSE(busy.Admit("H1").ok());
}

TEST(RateLimiter, ManyThreadsTakeExactlyTheBurst) {
  FakeClock clock;  // stopped: no refill during the test
  RateLimiter limiter({1, 1000}, {}, clock.Fn());
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) {
        if (limiter.Admit(t % 2 == 0 ? "H1" : "H2").ok()) ok.fetch_add(1);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok.load(), 2000);  // 1000 each of H1 and H2, out of 2000 calls each
}

}  // namespace
}  // namespace medsettle::gateway
