#include "gateway/counters.h"

#include <cstdio>

#include "absl/status/status.h"
#include "engine/text.h"

namespace medsettle::gateway {

using engine::Cat;

std::string_view Name(Method method) {
  switch (method) {
    case Method::kCheckCoverage: return "CheckCoverage";
    case Method::kPreSettle: return "PreSettle";
    case Method::kSettle: return "Settle";
    case Method::kReverse: return "Reverse";
    case Method::kGetSettlement: return "GetSettlement";
    case Method::kReconcile: return "Reconcile";
  }
  return "?";
}

void GatewayCounters::RecordCall(Method method, int code, uint64_t micros) {
  const int m = static_cast<int>(method);
  if (code < 0 || code >= kStatusCodeCount) code = 2;  // UNKNOWN
  calls[m][code].fetch_add(1, std::memory_order_relaxed);
  latency_us[m].fetch_add(micros, std::memory_order_relaxed);
}

std::string GatewayCounters::Summary() const {
  std::string out;
  for (int m = 0; m < kMethodCount; ++m) {
    uint64_t total = 0;
    std::string by_code;
    for (int c = 0; c < kStatusCodeCount; ++c) {
      const uint64_t n = calls[m][c].load(std::memory_order_relaxed);
      if (n == 0) continue;
      total += n;
      by_code += Cat(by_code.empty() ? "" : ", ",
                     absl::StatusCodeToString(static_cast<absl::StatusCode>(c)), " ", n);
    }
    if (total == 0) continue;
    char mean[32];
    std::snprintf(mean, sizeof mean, "%.2f",
                  static_cast<double>(latency_us[m].load(std::memory_order_relaxed)) /
                      static_cast<double>(total) / 1000.0);
    out += Cat(Name(static_cast<Method>(m)), ": ", total, " calls (", by_code, "), mean ", mean,
               " ms\n");
  }
  out += Cat("replays ", replays.load(), ", commit retries ", commit_retries.load(),
             ", overload refusals ", overload_refusals.load(), ", rate-limited refusals ",
             rate_limited_refusals.load(), "\n");
  return out;
}

}  // namespace medsettle::gateway
