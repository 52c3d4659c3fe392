#include "gateway/grpc_service.h"

#include <chrono>
#include <utility>

#include "engine/status.h"
#include "gateway/error_mapping.h"

namespace medsettle::gateway {

SettlementGrpcService::SettlementGrpcService(const Authenticator& authenticator,
                                             RateLimiter& rate_limiter, SettlementHandler& handler,
                                             WorkerPool& workers, GatewayCounters& counters,
                                             CallObserver& observer, int request_timeout_ms)
    : authenticator_(authenticator),
      rate_limiter_(rate_limiter),
      handler_(handler),
      workers_(workers),
      counters_(counters),
      observer_(observer),
      request_timeout_ms_(request_timeout_ms) {}

template <typename Work>
grpc::ServerUnaryReactor* SettlementGrpcService::Dispatch(Method method,
                                                          grpc::CallbackServerContext* context,
                                                          CallTags tags, Work work) {
  const auto arrived = std::chrono::steady_clock::now();
  observer_.Started(method);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // `institution` is filled once the caller is known; the views in `tags`
  // point into the request and response, alive until Finish.
  auto finish = [this, method, context, reactor, arrived, tags](const absl::Status& status,
                                                                std::string_view institution) {
    grpc::Status result = FinishStatus(status, context);
    observer_.Finished({.method = method,
                        .institution_id = institution,
                        .request_id = tags.request_id,
                        .status = status,
                        .replayed = tags.replayed != nullptr && tags.replayed(),
                        .duration_us = std::chrono::duration_cast<std::chrono::microseconds>(
                                           std::chrono::steady_clock::now() - arrived)
                                           .count()});
    reactor->Finish(result);
  };

  absl::StatusOr<CallerIdentity> caller = authenticator_.Identify(*context);
  if (!caller.ok()) {
    finish(caller.status(), "");
    return reactor;
  }
  // Before the queue: a flooding institution must not fill the queue that
  // every institution shares.
  if (absl::Status admitted = rate_limiter_.Admit(caller->institution_id); !admitted.ok()) {
    counters_.rate_limited_refusals.fetch_add(1, std::memory_order_relaxed);
    finish(admitted, caller->institution_id);
    return reactor;
  }
  CallContext call;
  call.institution_id = std::move(caller->institution_id);
  call.certificate_fingerprint = std::move(caller->certificate_fingerprint);
  call.deadline = std::min(context->deadline(), std::chrono::system_clock::now() +
                                                    std::chrono::milliseconds(request_timeout_ms_));
  const bool queued = workers_.TrySubmit(
      [this, arrived, work = std::move(work), call = std::move(call), finish]() mutable {
        observer_.QueuedFor(std::chrono::duration_cast<std::chrono::microseconds>(
                                std::chrono::steady_clock::now() - arrived)
                                .count());
        finish(work(call), call.institution_id);
      });
  if (!queued) {
    counters_.overload_refusals.fetch_add(1, std::memory_order_relaxed);
    finish(engine::Refusal(absl::StatusCode::kResourceExhausted, reason::kGatewayOverloaded, "",
                           "the gateway is at capacity; retry with backoff"),
           "");
  }
  return reactor;
}

grpc::ServerUnaryReactor* SettlementGrpcService::CheckCoverage(
    grpc::CallbackServerContext* context, const v1::CheckCoverageRequest* request,
    v1::CheckCoverageResponse* response) {
  return Dispatch(Method::kCheckCoverage, context, {}, [this, request, response](const CallContext& c) {
    return handler_.CheckCoverage(c, *request, response);
  });
}

grpc::ServerUnaryReactor* SettlementGrpcService::PreSettle(grpc::CallbackServerContext* context,
                                                           const v1::SettleRequest* request,
                                                           v1::SettleResponse* response) {
  return Dispatch(Method::kPreSettle, context, {.request_id = request->request_id()},
                  [this, request, response](const CallContext& c) {
    return handler_.PreSettle(c, *request, response);
  });
}

grpc::ServerUnaryReactor* SettlementGrpcService::Settle(grpc::CallbackServerContext* context,
                                                        const v1::SettleRequest* request,
                                                        v1::SettleResponse* response) {
  return Dispatch(Method::kSettle, context,
                  {.request_id = request->request_id(),
                   .replayed = [response] { return response->replayed(); }},
                  [this, request, response](const CallContext& c) {
    return handler_.Settle(c, *request, response);
  });
}

grpc::ServerUnaryReactor* SettlementGrpcService::Reverse(grpc::CallbackServerContext* context,
                                                         const v1::ReverseRequest* request,
                                                         v1::ReverseResponse* response) {
  return Dispatch(Method::kReverse, context,
                  {.request_id = request->request_id(),
                   .replayed = [response] { return response->replayed(); }},
                  [this, request, response](const CallContext& c) {
    return handler_.Reverse(c, *request, response);
  });
}

grpc::ServerUnaryReactor* SettlementGrpcService::GetSettlement(
    grpc::CallbackServerContext* context, const v1::GetSettlementRequest* request,
    v1::SettleResponse* response) {
  return Dispatch(Method::kGetSettlement, context, {.request_id = request->settlement_id()},
                  [this, request, response](const CallContext& c) {
    return handler_.GetSettlement(c, *request, response);
  });
}

grpc::ServerUnaryReactor* SettlementGrpcService::Reconcile(grpc::CallbackServerContext* context,
                                                           const v1::ReconcileRequest* request,
                                                           v1::ReconcileResponse* response) {
  return Dispatch(Method::kReconcile, context, {}, [this, request, response](const CallContext& c) {
    return handler_.Reconcile(c, *request, response);
  });
}

}  // namespace medsettle::gateway
