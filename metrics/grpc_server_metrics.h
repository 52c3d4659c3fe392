// Server-side gRPC metrics under the go-grpc-prometheus names, so the stock
// dashboards and alerts work unchanged:
//   grpc_server_started_total        {grpc_type, grpc_service, grpc_method}
//   grpc_server_handled_total        {…, grpc_code}   (all 17 codes from 0)
//   grpc_server_msg_received_total   {…}
//   grpc_server_msg_sent_total       {…}
//   grpc_server_handling_seconds     histogram, kGrpcLatencyBucketsSeconds
// grpc_type is "unary". Every child is created up front, so rates exist
// from the first scrape and the hot path only indexes arrays.
//
// Semantics follow go-grpc-prometheus for unary calls: Started counts the
// call and its one received message; Handled counts the code, observes the
// latency and, when the code is OK, the one sent message.
//
// No gRPC header is needed: codes are ints 0..16 (grpc::StatusCode values).
//
// Thread safety: Started and Handled are lock-free and safe from any
// number of threads. The registry must outlive this object.
#ifndef MEDSETTLE_METRICS_GRPC_SERVER_METRICS_H_
#define MEDSETTLE_METRICS_GRPC_SERVER_METRICS_H_

#include <array>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "metrics/registry.h"

namespace medsettle::metrics {

// Number of gRPC status codes, OK (0) through UNAUTHENTICATED (16).
inline constexpr int kGrpcCodeCount = 17;

// Go's name of a gRPC code ("OK", "Canceled", …, "Unauthenticated");
// "Unknown" for a value outside 0..16.
std::string_view GrpcCodeName(int grpc_code);

class GrpcServerMetrics {
 public:
  // Registers the families in `registry` (shared with other
  // GrpcServerMetrics there, so one per service is fine) and creates every
  // child of `service_full_name` (e.g. "medsettle.v1.SettlementService")
  // for `method_names` (e.g. "Settle"); method i is index i below.
  // INVALID_ARGUMENT for an empty service, an empty or repeated method;
  // ALREADY_EXISTS when a family of the same name but another shape is in
  // the registry.
  static absl::StatusOr<std::unique_ptr<GrpcServerMetrics>> Create(
      Registry& registry, std::string_view service_full_name,
      absl::Span<const std::string_view> method_names);

  GrpcServerMetrics(const GrpcServerMetrics&) = delete;
  GrpcServerMetrics& operator=(const GrpcServerMetrics&) = delete;

  // A call of method `method_index` arrived (and its request message).
  // REQUIRES: method_index < method_count() (else aborts).
  void Started(size_t method_index);
  // The call finished with `grpc_code` (0..16; others count as Unknown)
  // after `seconds`. REQUIRES: method_index < method_count() (else aborts).
  void Handled(size_t method_index, int grpc_code, double seconds);

  size_t method_count() const { return methods_.size(); }
  const std::string& service() const { return service_; }

 private:
  struct Method {
    Counter* started = nullptr;
    Counter* msg_received = nullptr;
    Counter* msg_sent = nullptr;
    std::array<Counter*, kGrpcCodeCount> handled{};
    Histogram* handling_seconds = nullptr;
  };

  GrpcServerMetrics(std::string service, std::vector<Method> methods);
  const Method& At(size_t method_index) const;

  std::string service_;
  std::vector<Method> methods_;
};

}  // namespace medsettle::metrics

#endif  // MEDSETTLE_METRICS_GRPC_SERVER_METRICS_H_
