// grpc.health.v1.Health/Check without the health proto: Debian's gRPC
// ships the server side (grpcpp/health_check_service_interface.h) but no
// generated client, so the two tiny messages are encoded by hand and the
// call goes through grpc::GenericStub.
//   message HealthCheckRequest  { string service = 1; }
//   message HealthCheckResponse { ServingStatus status = 1; }
//   enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; SERVICE_UNKNOWN = 3; }
#ifndef MEDSETTLE_TOOLS_CLI_HEALTH_H_
#define MEDSETTLE_TOOLS_CLI_HEALTH_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/status.h"

namespace medsettle::cli {

inline constexpr char kHealthCheckMethod[] = "/grpc.health.v1.Health/Check";

// HealthCheckRequest{service} in the protobuf wire format ("" for "").
std::string EncodeHealthCheckRequest(std::string_view service);
// HealthCheckResponse.status (absent field = 0, UNKNOWN); nullopt when the
// bytes are not a protobuf message.
std::optional<int32_t> DecodeHealthCheckResponse(std::string_view bytes);
// "UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"; "?" otherwise.
std::string_view ServingStatusName(int32_t status);

// Calls Health/Check on `channel` with the prepared `context` and waits
// for the answer. OK: *serving_status is set.
grpc::Status CheckHealth(const std::shared_ptr<grpc::Channel>& channel,
                         grpc::ClientContext* context, std::string_view service,
                         int32_t* serving_status);

}  // namespace medsettle::cli

#endif  // MEDSETTLE_TOOLS_CLI_HEALTH_H_
