// The gateway's counters: calls per method and outcome, replays, commit
// retries and time spent. Plain atomics, cheap to bump from any thread and
// easy to export (a metrics endpoint reads them; today the gateway prints
// Summary() when it stops).
#ifndef MEDSETTLE_GATEWAY_COUNTERS_H_
#define MEDSETTLE_GATEWAY_COUNTERS_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

namespace medsettle::gateway {

enum class Method : uint8_t {
  kCheckCoverage,
  kPreSettle,
  kSettle,
  kReverse,
  kGetSettlement,
  kReconcile,
};
inline constexpr int kMethodCount = 6;
std::string_view Name(Method method);  // "CheckCoverage", …

inline constexpr int kStatusCodeCount = 17;  // gRPC canonical codes 0..16

struct GatewayCounters {
  // calls[method][code]: finished calls by status code.
  std::atomic<uint64_t> calls[kMethodCount][kStatusCodeCount] = {};
  // Microseconds from the call's arrival to its finish, summed per method.
  std::atomic<uint64_t> latency_us[kMethodCount] = {};
  std::atomic<uint64_t> replays{0};         // Settle answered from a stored result
  std::atomic<uint64_t> commit_retries{0};  // recomputations after VERSION_MOVED
  std::atomic<uint64_t> overload_refusals{0};      // GATEWAY_OVERLOADED: the worker queue was full
  std::atomic<uint64_t> rate_limited_refusals{0};  // RATE_LIMITED: an institution over its limit

  void RecordCall(Method method, int code, uint64_t micros);
  // One line per method with calls, e.g. "Settle: 120 calls (OK 118, ALREADY_EXISTS 2), mean 1.8 ms".
  std::string Summary() const;
};

}  // namespace medsettle::gateway

#endif  // MEDSETTLE_GATEWAY_COUNTERS_H_
