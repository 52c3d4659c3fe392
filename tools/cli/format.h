// What medsettle-cli prints: the readable form of each response (Chinese
// names beside English, yuan with two decimals), the protobuf JSON form
// (--json), and a refusal as the gateway sends it (status code, stable
// reason and field from the trailing metadata). Pure functions of messages.
#ifndef MEDSETTLE_TOOLS_CLI_FORMAT_H_
#define MEDSETTLE_TOOLS_CLI_FORMAT_H_

#include <string>
#include <string_view>

#include "google/protobuf/message.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/status.h"
#include "medsettle/v1/settlement.pb.h"

namespace medsettle::cli {

// A call that did not return OK, as the gateway reported it.
struct RpcError {
  grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
  std::string reason;  // medsettle-reason trailer; empty when absent
  std::string field;   // medsettle-field trailer; empty when absent
  std::string message;
};

// The error of a finished call: `status` plus the reason and field from the
// context's trailing metadata (initial metadata as a fallback).
RpcError RpcErrorFrom(const grpc::Status& status, const grpc::ClientContext& context);

// "FAILED_PRECONDITION", "UNAVAILABLE", ... ("UNKNOWN" for a code outside
// the canonical set).
std::string StatusCodeName(grpc::StatusCode code);

// "error: FAILED_PRECONDITION WAITING_PERIOD: <message>\n" plus
// "field: <path>\n" when known (the reason is left out when absent).
std::string FormatRpcError(const RpcError& error);
// {"error":{"code":"...","reason":"...","field":"...","message":"..."}} on
// one line; "reason" and "field" only when known.
std::string RpcErrorJson(const RpcError& error);

// `message` as protobuf JSON on one line: lowerCamel names, zero values
// printed, int64 as strings.
std::string MessageJson(const google::protobuf::Message& message);

// settle / presettle / get: the header, the split (总额 .. 个人负担), the
// fund details, claim-later lines and, with `trace`, the trace steps.
std::string FormatSettlement(const v1::SettleResponse& response, bool trace);
// coverage: covered or not and why, the policy and window, the enrollment
// and what is left of each cap.
std::string FormatCoverage(const v1::CheckCoverageResponse& response);
// reverse: the reversal and what each payer was given back.
std::string FormatReversal(const v1::ReverseResponse& response);
// reconcile: settled / reversed / net counts and per-payer sums, then the
// detail entries when the response holds any, then the next page token.
std::string FormatReconcile(const v1::ReconcileResponse& response);

}  // namespace medsettle::cli

#endif  // MEDSETTLE_TOOLS_CLI_FORMAT_H_
