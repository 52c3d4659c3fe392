#include "gateway/error_mapping.h"

#include "absl/status/status.h"
#include "cache/redis_client.h"
#include "engine/status.h"

namespace medsettle::gateway {
namespace {

std::string_view CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    default: return "UNKNOWN";
  }
}

// absl and gRPC share the canonical code numbers (0..16); anything else is
// UNKNOWN.
grpc::StatusCode CodeOf(absl::StatusCode code) {
  const int n = static_cast<int>(code);
  if (n < 0 || n > 16) return grpc::StatusCode::UNKNOWN;
  return static_cast<grpc::StatusCode>(n);
}

}  // namespace

GrpcError ToGrpcError(const absl::Status& status) {
  GrpcError error;
  if (status.ok()) return error;
  error.code = CodeOf(status.code());
  // ReasonOf says "UNKNOWN" when the status carries no reason.
  error.reason = std::string(engine::ReasonOf(status));
  if (error.reason == "UNKNOWN") error.reason.clear();
  error.field = std::string(engine::FieldOf(status));
  error.message = std::string(status.message());
  if (error.reason == cache::reason::kRedisNoscript) error.code = grpc::StatusCode::INTERNAL;
  if (error.reason.empty()) error.reason = std::string(CodeName(error.code));
  return error;
}

grpc::Status FinishStatus(const absl::Status& status, grpc::CallbackServerContext* context) {
  if (status.ok()) return grpc::Status::OK;
  GrpcError error = ToGrpcError(status);
  context->AddTrailingMetadata(std::string(kReasonTrailer), error.reason);
  if (!error.field.empty()) context->AddTrailingMetadata(std::string(kFieldTrailer), error.field);
  return grpc::Status(error.code, error.message);
}

}  // namespace medsettle::gateway
