#include "gateway/call_observer.h"

#include <string>

#include "engine/engine.h"
#include "engine/status.h"

namespace medsettle::gateway {

namespace {

constexpr std::string_view kService = "medsettle.v1.SettlementService";
constexpr std::array<std::string_view, 4> kOutcomeNames = {"settled", "replayed", "refused",
                                                           "failed"};

// A request id as logged: only one the API accepts
// (engine::ValidateRequestId: 1-64 printable ASCII characters), else
// nothing — a caller's free text is not written to a disk (it could be
// megabytes of anything).
std::string_view LoggableId(std::string_view id) {
  return engine::ValidateRequestId(id, "request_id").ok() ? id : std::string_view();
}

bool MovesMoney(Method m) {
  return m == Method::kSettle || m == Method::kPreSettle || m == Method::kReverse;
}

}  // namespace

bool IsServerFailure(absl::StatusCode code, std::string_view reason) {
  // Turned away because Redis is slow to hand out a connection: the
  // gateway's trouble, though its code is RESOURCE_EXHAUSTED.
  if (reason == "REDIS_POOL_EXHAUSTED") return true;
  switch (code) {
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kDeadlineExceeded:
      return true;
    default:
      return false;
  }
}

std::string ReasonForObservers(const absl::Status& status) {
  if (status.ok()) return "";
  // As the medsettle-reason trailer says it (gateway/error_mapping.h): a
  // status without a reason goes by its code's name.
  std::string reason = engine::ReasonOf(status);
  if (reason == "UNKNOWN") reason = absl::StatusCodeToString(status.code());
  return reason;
}

SettlementOutcome OutcomeOf(const absl::Status& status, bool replayed) {
  if (status.ok()) return replayed ? SettlementOutcome::kReplayed : SettlementOutcome::kSettled;
  return IsServerFailure(status.code(), ReasonForObservers(status)) ? SettlementOutcome::kFailed
                                                                    : SettlementOutcome::kRefused;
}

absl::StatusOr<std::unique_ptr<CallObserver>> CallObserver::Create(GatewayCounters& counters,
                                                                   logging::JsonLog& log,
                                                                   metrics::Registry* registry) {
  std::unique_ptr<CallObserver> o(new CallObserver(counters, log));
  if (registry == nullptr) return o;
  std::vector<std::string_view> methods;
  for (int m = 0; m < kMethodCount; ++m) methods.push_back(Name(static_cast<Method>(m)));
  absl::StatusOr<std::unique_ptr<metrics::GrpcServerMetrics>> grpc =
      metrics::GrpcServerMetrics::Create(*registry, kService, methods);
  if (!grpc.ok()) return grpc.status();
  o->grpc_ = *std::move(grpc);

  absl::StatusOr<metrics::CounterFamily*> settlements = registry->AddCounter(
      "medsettle_settlements_total",
      "Settle, PreSettle and Reverse calls by outcome: settled (a new result), replayed (a "
      "stored result returned again), refused (the caller's request or state), failed (the "
      "gateway's own trouble).",
      {"method", "outcome"});
  if (!settlements.ok()) return settlements.status();
  for (int m = 0; m < kMethodCount; ++m) {
    if (!MovesMoney(static_cast<Method>(m))) continue;
    for (size_t k = 0; k < kOutcomeNames.size(); ++k) {
      o->settlements_[static_cast<size_t>(m)][k] =
          &(*settlements)->WithLabels({Name(static_cast<Method>(m)), kOutcomeNames[k]});
    }
  }
  absl::StatusOr<metrics::CounterFamily*> refusals = registry->AddCounter(
      "medsettle_refusals_total",
      "Calls that did not succeed, by method and stable reason (the medsettle-reason trailer).",
      {"method", "reason"});
  if (!refusals.ok()) return refusals.status();
  o->refusals_ = *refusals;
  absl::StatusOr<metrics::CounterFamily*> ec_token = registry->AddCounter(
      "medsettle_ec_token_refusals_total",
      "E-insurance codes refused, by EC_TOKEN_* reason (expired, replayed, bad signature, ...).",
      {"reason"});
  if (!ec_token.ok()) return ec_token.status();
  o->ec_token_refusals_ = *ec_token;
  const std::vector<double> wait_buckets(metrics::kGrpcLatencyBucketsSeconds.begin(),
                                         metrics::kGrpcLatencyBucketsSeconds.end());
  absl::StatusOr<metrics::HistogramFamily*> queue_wait = registry->AddHistogram(
      "medsettle_worker_queue_wait_seconds",
      "Time a call waited for a worker thread after it was admitted.", {}, wait_buckets);
  if (!queue_wait.ok()) return queue_wait.status();
  o->queue_wait_ = &(*queue_wait)->WithLabels({});
  return o;
}

void CallObserver::Started(Method method) {
  if (grpc_ != nullptr) grpc_->Started(static_cast<size_t>(method));
}

void CallObserver::QueuedFor(int64_t wait_us) {
  if (queue_wait_ != nullptr) queue_wait_->Observe(static_cast<double>(wait_us) / 1e6);
}

void CallObserver::Finished(const FinishedCall& call) {
  const int code = static_cast<int>(call.status.code());
  counters_.RecordCall(call.method, code, static_cast<uint64_t>(call.duration_us));
  const auto m = static_cast<size_t>(call.method);
  if (grpc_ != nullptr) {
    grpc_->Handled(m, code, static_cast<double>(call.duration_us) / 1e6);
    if (metrics::Counter* c =
            settlements_[m][static_cast<size_t>(OutcomeOf(call.status, call.replayed))]) {
      c->Inc();
    }
  }
  if (call.status.ok()) return;

  const std::string reason = ReasonForObservers(call.status);
  if (refusals_ != nullptr) refusals_->WithLabels({Name(call.method), reason}).Inc();
  if (ec_token_refusals_ != nullptr && reason.rfind("EC_TOKEN_", 0) == 0) {
    ec_token_refusals_->WithLabels({reason}).Inc();
  }

  const bool failure = IsServerFailure(call.status.code(), reason);
  const logging::Level level =
      failure ? logging::Level::kError
              : (call.status.code() == absl::StatusCode::kResourceExhausted ? logging::Level::kWarn
                                                                            : logging::Level::kInfo);
  if (!log_.Enabled(level)) return;
  const std::string status_name = absl::StatusCodeToString(call.status.code());
  const std::string field = engine::FieldOf(call.status);
  const double duration_ms = static_cast<double>(call.duration_us) / 1000.0;
  if (failure) {
    log_.Write(level, "call_failed",
               {{"method", Name(call.method)},
                {"request_id", LoggableId(call.request_id)},
                {"institution", call.institution_id},
                {"status", status_name},
                {"reason", reason},
                {"duration_ms", duration_ms},
                {"message", std::string(call.status.message())}});
  } else {
    log_.Write(level, "call_refused",
               {{"method", Name(call.method)},
                {"request_id", LoggableId(call.request_id)},
                {"institution", call.institution_id},
                {"status", status_name},
                {"reason", reason},
                {"field", field},
                {"duration_ms", duration_ms}});
  }
}

}  // namespace medsettle::gateway
