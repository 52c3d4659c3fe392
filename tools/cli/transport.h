// How medsettle-cli reaches the gateway: the channel, the caller's identity
// and the per-call deadline. This file is the seam for mutual TLS: today the
// channel is plaintext and the institution travels in a request header; the
// --tls-* flags (a later issue) will fill TransportOptions' TLS fields, make
// OpenChannel build TLS credentials and turn IdentifyCaller into a no-op
// (the client certificate names the institution).
#ifndef MEDSETTLE_TOOLS_CLI_TRANSPORT_H_
#define MEDSETTLE_TOOLS_CLI_TRANSPORT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"

namespace medsettle::cli {

// The gateway's wire conventions (fixed; docs in tools/cli/README.md).
inline constexpr std::string_view kDefaultTarget = "127.0.0.1:50051";
inline constexpr int64_t kDefaultTimeoutMs = 5000;
// Request header naming the calling institution until mutual TLS arrives.
inline constexpr std::string_view kInstitutionHeader = "x-medsettle-institution";
// Trailing metadata of a refusal: the stable reason and the field path.
inline constexpr std::string_view kReasonTrailer = "medsettle-reason";
inline constexpr std::string_view kFieldTrailer = "medsettle-field";

struct TransportOptions {
  std::string target = std::string(kDefaultTarget);  // HOST:PORT
  std::string institution_id;                        // empty: not identified
  int64_t timeout_ms = kDefaultTimeoutMs;            // per call, > 0
  // Mutual TLS (--tls-cert, --tls-key, --tls-ca) goes here.
};

// A channel to options.target. Plaintext today (see the file comment).
// Never fails: an unreachable target shows as UNAVAILABLE on the first call.
std::shared_ptr<grpc::Channel> OpenChannel(const TransportOptions& options);

// Identifies the calling institution on one call: the one place the
// x-medsettle-institution header is set. Nothing when institution_id is empty.
void IdentifyCaller(const TransportOptions& options, grpc::ClientContext* context);

// Prepares a fresh context for one call: IdentifyCaller plus the deadline
// now + timeout_ms.
void PrepareCall(const TransportOptions& options, grpc::ClientContext* context);

}  // namespace medsettle::cli

#endif  // MEDSETTLE_TOOLS_CLI_TRANSPORT_H_
