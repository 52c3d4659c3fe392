// How medsettle-cli reaches the gateway: the channel, the caller's identity
// and the per-call deadline. Two modes, chosen by the global flags:
//
//   mutual TLS (--ca, --cert, --key)  the normal mode: the channel presents
//       the institution's client certificate (which names the institution)
//       and checks the gateway's certificate against --ca and the target's
//       host name (or --tls-server-name). No identity header is sent.
//   --insecure-dev                    a development gateway on loopback:
//       plaintext, the institution in the x-medsettle-institution header.
#ifndef MEDSETTLE_TOOLS_CLI_TRANSPORT_H_
#define MEDSETTLE_TOOLS_CLI_TRANSPORT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"

namespace medsettle::cli {

// The gateway's wire conventions (fixed; docs in tools/cli/README.md).
inline constexpr std::string_view kDefaultTarget = "127.0.0.1:50051";
inline constexpr int64_t kDefaultTimeoutMs = 5000;
// Request header naming the calling institution to an --insecure-dev gateway.
inline constexpr std::string_view kInstitutionHeader = "x-medsettle-institution";
// Trailing metadata of a refusal: the stable reason and the field path.
inline constexpr std::string_view kReasonTrailer = "medsettle-reason";
inline constexpr std::string_view kFieldTrailer = "medsettle-field";

struct TransportOptions {
  std::string target = std::string(kDefaultTarget);  // HOST:PORT
  int64_t timeout_ms = kDefaultTimeoutMs;            // per call, > 0
  // Plaintext and the identity header (--insecure-dev); else mutual TLS.
  bool insecure_dev = false;
  std::string institution_id;  // --insecure-dev only; empty: not identified
  // Mutual TLS: the PEM texts (LoadTlsFiles reads them).
  std::string ca_pem;    // --ca: the CA that signed the gateway's certificate
  std::string cert_pem;  // --cert: the institution's certificate (chain)
  std::string key_pem;   // --key: its private key
  // The name checked against the gateway's certificate instead of the
  // target's host (--tls-server-name); empty: the target's host.
  std::string tls_server_name;
};

// Reads the three PEM files into `options`. INVALID_ARGUMENT naming the
// flag and file when one cannot be read or holds no PEM block.
absl::Status LoadTlsFiles(const std::string& ca_file, const std::string& cert_file,
                          const std::string& key_file, TransportOptions* options);

// A channel to options.target: TLS with the client certificate, or
// plaintext under insecure_dev. Never fails: an unreachable target or a
// failed handshake shows as UNAVAILABLE on the first call.
std::shared_ptr<grpc::Channel> OpenChannel(const TransportOptions& options);

// Identifies the calling institution on one call: the one place the
// x-medsettle-institution header is set, and only under insecure_dev
// (under mutual TLS the certificate identifies the caller).
void IdentifyCaller(const TransportOptions& options, grpc::ClientContext* context);

// Prepares a fresh context for one call: IdentifyCaller plus the deadline
// now + timeout_ms.
void PrepareCall(const TransportOptions& options, grpc::ClientContext* context);

}  // namespace medsettle::cli

#endif  // MEDSETTLE_TOOLS_CLI_TRANSPORT_H_
