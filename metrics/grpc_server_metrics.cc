#include "metrics/grpc_server_metrics.h"

#include <cstdio>
#include <cstdlib>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"

namespace medsettle::metrics {
namespace {

// Indexed by grpc::StatusCode; spelled as Go's codes.Code.String(), which is
// what go-grpc-prometheus puts in grpc_code.
constexpr std::array<std::string_view, kGrpcCodeCount> kCodeNames = {
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
};
constexpr int kUnknownCode = 2;

absl::string_view Arg(std::string_view s) { return absl::string_view(s.data(), s.size()); }
constexpr std::string_view kUnary = "unary";

}  // namespace

std::string_view GrpcCodeName(int grpc_code) {
  if (grpc_code < 0 || grpc_code >= kGrpcCodeCount) return kCodeNames[kUnknownCode];
  return kCodeNames[static_cast<size_t>(grpc_code)];
}

absl::StatusOr<std::unique_ptr<GrpcServerMetrics>> GrpcServerMetrics::Create(
    Registry& registry, std::string_view service_full_name,
    absl::Span<const std::string_view> method_names) {
  if (service_full_name.empty()) {
    return absl::InvalidArgumentError("grpc server metrics: empty service name");
  }
  std::set<std::string_view> seen;
  for (std::string_view method : method_names) {
    if (method.empty() || !seen.insert(method).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "grpc server metrics for ", Arg(service_full_name), ": empty or repeated method \"", Arg(method),
          "\""));
    }
  }

  constexpr std::string_view kLabels[] = {"grpc_type", "grpc_service", "grpc_method"};
  constexpr std::string_view kHandledLabels[] = {"grpc_type", "grpc_service", "grpc_method",
                                                 "grpc_code"};
  constexpr Registration kShared = Registration::kShared;
  // Help texts as go-grpc-prometheus: kShared requires identical help, and
  // dashboards show it.
  auto started = registry.AddCounter("grpc_server_started_total",
                                     "Total number of RPCs started on the server.", kLabels,
                                     kShared);
  if (!started.ok()) return started.status();
  auto handled = registry.AddCounter(
      "grpc_server_handled_total",
      "Total number of RPCs completed on the server, regardless of success or failure.",
      kHandledLabels, kShared);
  if (!handled.ok()) return handled.status();
  auto received = registry.AddCounter(
      "grpc_server_msg_received_total",
      "Total number of RPC stream messages received on the server.", kLabels, kShared);
  if (!received.ok()) return received.status();
  auto sent = registry.AddCounter("grpc_server_msg_sent_total",
                                  "Total number of gRPC stream messages sent by the server.",
                                  kLabels, kShared);
  if (!sent.ok()) return sent.status();
  auto seconds = registry.AddHistogram(
      "grpc_server_handling_seconds",
      "Histogram of response latency (seconds) of gRPC that had been application-level "
      "handled by the server.",
      kLabels, kGrpcLatencyBucketsSeconds, kShared);
  if (!seconds.ok()) return seconds.status();

  std::vector<Method> methods;
  methods.reserve(method_names.size());
  for (std::string_view name : method_names) {
    const std::string_view labels[] = {kUnary, service_full_name, name};
    Method m;
    m.started = &(*started)->WithLabels(labels);
    m.msg_received = &(*received)->WithLabels(labels);
    m.msg_sent = &(*sent)->WithLabels(labels);
    m.handling_seconds = &(*seconds)->WithLabels(labels);
    for (int code = 0; code < kGrpcCodeCount; ++code) {
      const std::string_view handled_labels[] = {kUnary, service_full_name, name,
                                                 GrpcCodeName(code)};
      m.handled[static_cast<size_t>(code)] = &(*handled)->WithLabels(handled_labels);
    }
    methods.push_back(m);
  }
  return std::unique_ptr<GrpcServerMetrics>(
      new GrpcServerMetrics(std::string(service_full_name), std::move(methods)));
}

GrpcServerMetrics::GrpcServerMetrics(std::string service, std::vector<Method> methods)
    : service_(std::move(service)), methods_(std::move(methods)) {}

const GrpcServerMetrics::Method& GrpcServerMetrics::At(size_t method_index) const {
  if (method_index >= methods_.size()) {
    // An index the dispatch table did not come from: a bug, not a request.
    std::fprintf(stderr, "medsettle::metrics: %s method index %zu of %zu\n", service_.c_str(),
                 method_index, methods_.size());
    std::abort();
  }
  return methods_[method_index];
}

void GrpcServerMetrics::Started(size_t method_index) {
  const Method& m = At(method_index);
  m.started->Inc();
  m.msg_received->Inc();
}

void GrpcServerMetrics::Handled(size_t method_index, int grpc_code, double seconds) {
  const Method& m = At(method_index);
  const int code = grpc_code >= 0 && grpc_code < kGrpcCodeCount ? grpc_code : kUnknownCode;
  m.handled[static_cast<size_t>(code)]->Inc();
  m.handling_seconds->Observe(seconds);
  if (code == 0) m.msg_sent->Inc();
}

}  // namespace medsettle::metrics
