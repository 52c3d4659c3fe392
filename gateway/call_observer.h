// What every call leaves behind, in one place for every transport: the
// counters printed at stop (gateway/counters.h), the Prometheus metrics
// (go-grpc-prometheus names plus medsettle_*; docs/OPERATIONS.md,
// Metrics) and, for refusals and failures, a structured log line
// (logging/json_log.h). The gRPC service calls it today; the HTTP/JSON
// facade will call the same.
//
// Log levels: a caller's mistake (INVALID_ARGUMENT, NOT_FOUND,
// FAILED_PRECONDITION, …) is info "call_refused"; being turned away for
// load (RESOURCE_EXHAUSTED) is warn "call_refused"; the gateway's own
// trouble (INTERNAL, UNAVAILABLE, DATA_LOSS, UNKNOWN, DEADLINE_EXCEEDED) is
// error "call_failed" with the status message. Refusal messages are never
// logged: they may quote what the caller sent (an ID number among it);
// nor is a request id the API would not accept (1-64 printable ASCII
// characters): it is logged as "".
//
// Thread safety: every method may be called from any thread.
#ifndef MEDSETTLE_GATEWAY_CALL_OBSERVER_H_
#define MEDSETTLE_GATEWAY_CALL_OBSERVER_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "gateway/counters.h"
#include "logging/json_log.h"
#include "metrics/grpc_server_metrics.h"
#include "metrics/registry.h"

namespace medsettle::gateway {

// How a settlement-moving call (Settle, PreSettle, Reverse) ended, for
// medsettle_settlements_total{outcome}.
enum class SettlementOutcome : uint8_t { kSettled, kReplayed, kRefused, kFailed };

struct FinishedCall {
  Method method = Method::kSettle;
  std::string_view institution_id;  // "" before authentication
  std::string_view request_id;      // the request's id, "" when it has none
  absl::Status status;
  bool replayed = false;            // Settle/Reverse answered from a stored result
  int64_t duration_us = 0;          // from arrival to finish
};

class CallObserver {
 public:
  // `counters` and `log` must outlive the observer. With a registry, the
  // families are registered there (INVALID_ARGUMENT/ALREADY_EXISTS as
  // metrics::Registry says); without one, only counters and logs.
  static absl::StatusOr<std::unique_ptr<CallObserver>> Create(GatewayCounters& counters,
                                                             logging::JsonLog& log,
                                                             metrics::Registry* registry);

  void Started(Method method);
  // The time a call waited for a worker.
  void QueuedFor(int64_t wait_us);
  void Finished(const FinishedCall& call);

 private:
  CallObserver(GatewayCounters& counters, logging::JsonLog& log) : counters_(counters), log_(log) {}

  GatewayCounters& counters_;
  logging::JsonLog& log_;
  // Null without a registry.
  std::unique_ptr<metrics::GrpcServerMetrics> grpc_;
  metrics::CounterFamily* refusals_ = nullptr;
  metrics::CounterFamily* ec_token_refusals_ = nullptr;
  metrics::Histogram* queue_wait_ = nullptr;
  // [method][outcome] for Settle, PreSettle, Reverse; null elsewhere.
  std::array<std::array<metrics::Counter*, 4>, kMethodCount> settlements_{};
};

// The outcome `status` and `replayed` make.
SettlementOutcome OutcomeOf(const absl::Status& status, bool replayed);
// Whether a status is the gateway's own trouble rather than the caller's:
// INTERNAL, UNAVAILABLE, DATA_LOSS, UNKNOWN, DEADLINE_EXCEEDED, and
// REDIS_POOL_EXHAUSTED.
bool IsServerFailure(absl::StatusCode code, std::string_view reason);
// The stable reason as the medsettle-reason trailer carries it: the
// status's reason, or its code's name when it has none ("" for OK).
std::string ReasonForObservers(const absl::Status& status);

}  // namespace medsettle::gateway

#endif  // MEDSETTLE_GATEWAY_CALL_OBSERVER_H_
