#include "gateway/grpc_service.h"

#include <grpc/grpc_security_constants.h>

#include <memory>
#include <utility>

#include "gateway/error_mapping.h"

namespace medsettle::gateway {

TransportCaller CallerOf(const grpc::CallbackServerContext& context,
                         std::shared_ptr<const grpc::AuthContext>* keep_alive) {
  TransportCaller caller;
  auto view = [](const grpc::string_ref& s) { return std::string_view(s.data(), s.size()); };
  *keep_alive = context.auth_context();
  if (const grpc::AuthContext* auth = keep_alive->get(); auth != nullptr) {
    const std::vector<grpc::string_ref> security =
        auth->FindPropertyValues(GRPC_TRANSPORT_SECURITY_TYPE_PROPERTY_NAME);
    caller.tls = !security.empty();
    for (const grpc::string_ref& type : security) {
      if (type != GRPC_SSL_TRANSPORT_SECURITY_TYPE && type != GRPC_TLS_TRANSPORT_SECURITY_TYPE) {
        caller.tls = false;
      }
    }
    for (const grpc::string_ref& pem : auth->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME)) {
      caller.peer_certificates_pem.push_back(view(pem));
    }
  }
  auto [first, last] = context.client_metadata().equal_range(
      grpc::string_ref(kInstitutionHeader.data(), kInstitutionHeader.size()));
  for (auto it = first; it != last; ++it) caller.institution_header.push_back(view(it->second));
  return caller;
}

template <typename Work>
grpc::ServerUnaryReactor* SettlementGrpcService::Dispatch(Method method,
                                                          grpc::CallbackServerContext* context,
                                                          CallTags tags, Work work) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  std::shared_ptr<const grpc::AuthContext> auth;
  const TransportCaller caller = CallerOf(*context, &auth);
  gate_.Run(method, caller, context->deadline(), std::move(tags), std::move(work),
            [context, reactor](const absl::Status& status) {
              reactor->Finish(FinishStatus(status, context));
            });
  return reactor;
}

template <typename Start>
grpc::ServerUnaryReactor* SettlementGrpcService::DispatchAsync(
    Method method, grpc::CallbackServerContext* context, CallTags tags, Start start) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  std::shared_ptr<const grpc::AuthContext> auth;
  const TransportCaller caller = CallerOf(*context, &auth);
  gate_.RunAsync(method, caller, context->deadline(), std::move(tags), std::move(start),
                 [context, reactor](const absl::Status& status) {
                   reactor->Finish(FinishStatus(status, context));
                 });
  return reactor;
}

grpc::ServerUnaryReactor* SettlementGrpcService::CheckCoverage(
    grpc::CallbackServerContext* context, const v1::CheckCoverageRequest* request,
    v1::CheckCoverageResponse* response) {
  return Dispatch(Method::kCheckCoverage, context, {},
                  [this, request, response](const CallContext& c) {
                    return handler_.CheckCoverage(c, *request, response);
                  });
}

grpc::ServerUnaryReactor* SettlementGrpcService::PreSettle(grpc::CallbackServerContext* context,
                                                           const v1::SettleRequest* request,
                                                           v1::SettleResponse* response) {
  return DispatchAsync(Method::kPreSettle, context, {.request_id = request->request_id()},
                       [this, request, response](CallContext c) {
                         return handler_.PreSettleAsync(std::move(c), *request, response);
                       });
}

grpc::ServerUnaryReactor* SettlementGrpcService::Settle(grpc::CallbackServerContext* context,
                                                        const v1::SettleRequest* request,
                                                        v1::SettleResponse* response) {
  return DispatchAsync(Method::kSettle, context,
                       {.request_id = request->request_id(),
                        .replayed = [response] { return response->replayed(); }},
                       [this, request, response](CallContext c) {
                         return handler_.SettleAsync(std::move(c), *request, response);
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
  return Dispatch(Method::kReconcile, context, {},
                  [this, request, response](const CallContext& c) {
                    return handler_.Reconcile(c, *request, response);
                  });
}

}  // namespace medsettle::gateway
