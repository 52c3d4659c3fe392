// medsettle.v1.SettlementService on the gRPC callback API. Each method
// authenticates the caller (on the gRPC thread: no I/O), takes a token of
// the institution's rate limit, fixes the call's deadline, and hands the
// work to the WorkerPool; the worker runs the SettlementHandler (Redis and
// the engine) and finishes the reactor. No gRPC thread ever waits on Redis.
// An institution over its limit is refused at once with RESOURCE_EXHAUSTED
// RATE_LIMITED, a full worker queue with RESOURCE_EXHAUSTED
// GATEWAY_OVERLOADED.
#ifndef MEDSETTLE_GATEWAY_GRPC_SERVICE_H_
#define MEDSETTLE_GATEWAY_GRPC_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <string_view>

#include "gateway/authenticator.h"
#include "gateway/call_observer.h"
#include "gateway/counters.h"
#include "gateway/rate_limiter.h"
#include "gateway/settlement_handler.h"
#include "gateway/worker_pool.h"
#include "medsettle/v1/service.grpc.pb.h"

namespace medsettle::gateway {

namespace reason {
// RESOURCE_EXHAUSTED: every worker is busy and the queue is full; retry
// with backoff.
inline constexpr std::string_view kGatewayOverloaded = "GATEWAY_OVERLOADED";
}  // namespace reason

class SettlementGrpcService final : public v1::SettlementService::CallbackService {
 public:
  // Every reference must outlive the service.
  SettlementGrpcService(const Authenticator& authenticator, RateLimiter& rate_limiter,
                        SettlementHandler& handler, WorkerPool& workers,
                        GatewayCounters& counters, CallObserver& observer,
                        int request_timeout_ms);

  grpc::ServerUnaryReactor* CheckCoverage(grpc::CallbackServerContext* context,
                                          const v1::CheckCoverageRequest* request,
                                          v1::CheckCoverageResponse* response) override;
  grpc::ServerUnaryReactor* PreSettle(grpc::CallbackServerContext* context,
                                      const v1::SettleRequest* request,
                                      v1::SettleResponse* response) override;
  grpc::ServerUnaryReactor* Settle(grpc::CallbackServerContext* context,
                                   const v1::SettleRequest* request,
                                   v1::SettleResponse* response) override;
  grpc::ServerUnaryReactor* Reverse(grpc::CallbackServerContext* context,
                                    const v1::ReverseRequest* request,
                                    v1::ReverseResponse* response) override;
  grpc::ServerUnaryReactor* GetSettlement(grpc::CallbackServerContext* context,
                                          const v1::GetSettlementRequest* request,
                                          v1::SettleResponse* response) override;
  grpc::ServerUnaryReactor* Reconcile(grpc::CallbackServerContext* context,
                                      const v1::ReconcileRequest* request,
                                      v1::ReconcileResponse* response) override;

 private:
  // What the observer is told of a call besides its status. The views and
  // the function read the call's request and response: valid until Finish.
  struct CallTags {
    std::string_view request_id;
    std::function<bool()> replayed;  // null: never a replay
  };
  // Authenticates, admits by rate limit, then runs `work(call)` on a worker
  // and finishes; the observer sees the start, the queue wait and the end.
  template <typename Work>
  grpc::ServerUnaryReactor* Dispatch(Method method, grpc::CallbackServerContext* context,
                                     CallTags tags, Work work);

  const Authenticator& authenticator_;
  RateLimiter& rate_limiter_;
  SettlementHandler& handler_;
  WorkerPool& workers_;
  GatewayCounters& counters_;
  CallObserver& observer_;
  const int request_timeout_ms_;
};

}  // namespace medsettle::gateway

#endif  // MEDSETTLE_GATEWAY_GRPC_SERVICE_H_
