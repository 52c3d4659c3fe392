#include "gateway/grpc_service.h"

#include <chrono>
#include <utility>

#include "engine/status.h"
#include "gateway/error_mapping.h"

namespace medsettle::gateway {

SettlementGrpcService::SettlementGrpcService(const Authenticator& authenticator,
                                             RateLimiter& rate_limiter, SettlementHandler& handler,
                                             WorkerPool& workers, GatewayCounters& counters,
                                             int request_timeout_ms)
    : authenticator_(authenticator),
      rate_limiter_(rate_limiter),
      handler_(handler),
      workers_(workers),
      counters_(counters),
      request_timeout_ms_(request_timeout_ms) {}

template <typename Work>
grpc::ServerUnaryReactor* SettlementGrpcService::Dispatch(Method method,
                                                          grpc::CallbackServerContext* context,
                                                          Work work) {
  const auto arrived = std::chrono::steady_clock::now();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto finish = [this, method, context, reactor, arrived](const absl::Status& status) {
    grpc::Status result = FinishStatus(status, context);
    const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                            std::chrono::steady_clock::now() - arrived)
                            .count();
    counters_.RecordCall(method, static_cast<int>(result.error_code()),
                         static_cast<uint64_t>(micros));
    reactor->Finish(result);
  };

  absl::StatusOr<CallerIdentity> caller = authenticator_.Identify(*context);
  if (!caller.ok()) {
    finish(caller.status());
    return reactor;
  }
  // Before the queue: a flooding institution must not fill the queue that
  // every institution shares.
  if (absl::Status admitted = rate_limiter_.Admit(caller->institution_id); !admitted.ok()) {
    counters_.rate_limited_refusals.fetch_add(1, std::memory_order_relaxed);
    finish(admitted);
    return reactor;
  }
  CallContext call;
  call.institution_id = std::move(caller->institution_id);
  call.certificate_fingerprint = std::move(caller->certificate_fingerprint);
  call.deadline = std::min(context->deadline(), std::chrono::system_clock::now() +
                                                    std::chrono::milliseconds(request_timeout_ms_));
  const bool queued = workers_.TrySubmit(
      [work = std::move(work), call = std::move(call), finish]() mutable { finish(work(call)); });
  if (!queued) {
    counters_.overload_refusals.fetch_add(1, std::memory_order_relaxed);
    finish(engine::Refusal(absl::StatusCode::kResourceExhausted, reason::kGatewayOverloaded, "",
                           "the gateway is at capacity; retry with backoff"));
  }
  return reactor;
}

grpc::ServerUnaryReactor* SettlementGrpcService::CheckCoverage(
    grpc::CallbackServerContext* context, const v1::CheckCoverageRequest* request,
    v1::CheckCoverageResponse* response) {
  return Dispatch(Method::kCheckCoverage, context, [this, request, response](const CallContext& c) {
    return handler_.CheckCoverage(c, *request, response);
  });
}

grpc::ServerUnaryReactor* SettlementGrpcService::PreSettle(grpc::CallbackServerContext* context,
                                                           const v1::SettleRequest* request,
                                                           v1::SettleResponse* response) {
  return Dispatch(Method::kPreSettle, context, [this, request, response](const CallContext& c) {
    return handler_.PreSettle(c, *request, response);
  });
}

grpc::ServerUnaryReactor* SettlementGrpcService::Settle(grpc::CallbackServerContext* context,
                                                        const v1::SettleRequest* request,
                                                        v1::SettleResponse* response) {
  return Dispatch(Method::kSettle, context, [this, request, response](const CallContext& c) {
    return handler_.Settle(c, *request, response);
  });
}

grpc::ServerUnaryReactor* SettlementGrpcService::Reverse(grpc::CallbackServerContext* context,
                                                         const v1::ReverseRequest* request,
                                                         v1::ReverseResponse* response) {
  return Dispatch(Method::kReverse, context, [this, request, response](const CallContext& c) {
    return handler_.Reverse(c, *request, response);
  });
}

grpc::ServerUnaryReactor* SettlementGrpcService::GetSettlement(
    grpc::CallbackServerContext* context, const v1::GetSettlementRequest* request,
    v1::SettleResponse* response) {
  return Dispatch(Method::kGetSettlement, context, [this, request, response](const CallContext& c) {
    return handler_.GetSettlement(c, *request, response);
  });
}

grpc::ServerUnaryReactor* SettlementGrpcService::Reconcile(grpc::CallbackServerContext* context,
                                                           const v1::ReconcileRequest* request,
                                                           v1::ReconcileResponse* response) {
  return Dispatch(Method::kReconcile, context, [this, request, response](const CallContext& c) {
    return handler_.Reconcile(c, *request, response);
  });
}

}  // namespace medsettle::gateway
