#include "gateway/error_mapping.h"

#include "absl/status/status.h"
#include "cache/redis_client.h"
#include "engine/status.h"

namespace medsettle::gateway {
namespace {

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
  // gRPC and absl codes share their numbers and names ("INTERNAL").
  if (error.reason.empty()) {
    error.reason = absl::StatusCodeToString(static_cast<absl::StatusCode>(error.code));
  }
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
