// The one place where engine, cache and gateway refusals (absl::Status with
// a stable reason and, for bad input, a field path — engine/status.h)
// become gRPC statuses. A refusal reaches the caller as:
//
//   status code     the absl code's gRPC twin (the numbers are the same)
//   message         the human-readable text
//   trailing metadata "medsettle-reason"  the stable reason, always present
//                     "medsettle-field"   the field path, when one applies
//
// Clients branch on the code and the reason, never on the message.
#ifndef MEDSETTLE_GATEWAY_ERROR_MAPPING_H_
#define MEDSETTLE_GATEWAY_ERROR_MAPPING_H_

#include <grpcpp/grpcpp.h>

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace medsettle::gateway {

inline constexpr std::string_view kReasonTrailer = "medsettle-reason";
inline constexpr std::string_view kFieldTrailer = "medsettle-field";

struct GrpcError {
  grpc::StatusCode code = grpc::StatusCode::OK;
  std::string reason;  // never empty for a non-OK status
  std::string field;   // may be empty
  std::string message;
};

// Maps `status`. A status without a reason (a bug, or a library's own error)
// gets the code's name as its reason ("INTERNAL"), so the trailer is never
// missing. REDIS_NOSCRIPT never leaves the cache layer; if it did it would
// be INTERNAL.
GrpcError ToGrpcError(const absl::Status& status);

// Adds the trailers of `error` to `context` and returns the grpc::Status
// to finish the call with. OK statuses pass through untouched.
grpc::Status FinishStatus(const absl::Status& status, grpc::CallbackServerContext* context);

}  // namespace medsettle::gateway

#endif  // MEDSETTLE_GATEWAY_ERROR_MAPPING_H_
