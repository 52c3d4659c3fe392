// medsettle.v1.SettlementService on the gRPC callback API: a thin adapter
// over the CallGate (gateway/call_gate.h). Each method reads what the
// transport knows of the caller (TLS peer certificate, the development
// header) and the call's deadline, hands the handler's method to the gate
// — which authenticates, rate-limits, queues it on a worker and observes
// it — and finishes the reactor with the mapped status
// (gateway/error_mapping.h). No gRPC thread ever waits on Redis.
#ifndef MEDSETTLE_GATEWAY_GRPC_SERVICE_H_
#define MEDSETTLE_GATEWAY_GRPC_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <memory>

#include "gateway/authenticator.h"
#include "gateway/call_gate.h"
#include "gateway/settlement_handler.h"
#include "medsettle/v1/service.grpc.pb.h"

namespace medsettle::gateway {

// The caller as gRPC presents it. The views point into `*keep_alive` (the
// call's auth context) and the call's metadata.
TransportCaller CallerOf(const grpc::CallbackServerContext& context,
                         std::shared_ptr<const grpc::AuthContext>* keep_alive);

class SettlementGrpcService final : public v1::SettlementService::CallbackService {
 public:
  // Every reference must outlive the service.
  SettlementGrpcService(CallGate& gate, SettlementHandler& handler)
      : gate_(gate), handler_(handler) {}

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
  // Through the gate, then Finish.
  template <typename Work>
  grpc::ServerUnaryReactor* Dispatch(Method method, grpc::CallbackServerContext* context,
                                     CallTags tags, Work work);
  // Through the gate's RunAsync (coroutine handlers), then Finish.
  template <typename Start>
  grpc::ServerUnaryReactor* DispatchAsync(Method method, grpc::CallbackServerContext* context,
                                          CallTags tags, Start start);

  CallGate& gate_;
  SettlementHandler& handler_;
};

}  // namespace medsettle::gateway

#endif  // MEDSETTLE_GATEWAY_GRPC_SERVICE_H_
