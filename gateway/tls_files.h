// The gateway's TLS files checked before gRPC is given them: the server
// certificate and key, the client CA bundle and, when configured, the
// folder of certificate revocation lists. gRPC itself would only log a bad
// file and fail every handshake, and would accept a CA without a CRL
// unchecked; GatewayServer::Start calls CheckTlsFiles first so a bad file
// or folder stops the start with a message naming it.
#ifndef MEDSETTLE_GATEWAY_TLS_FILES_H_
#define MEDSETTLE_GATEWAY_TLS_FILES_H_

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "gateway/config.h"

namespace medsettle::gateway {

namespace reason {
// NOT_FOUND: a TLS file (tls.cert_file, tls.key_file, tls.client_ca_file)
// is missing or unreadable, or tls.crl_dir is not a readable folder.
inline constexpr std::string_view kTlsFileUnreadable = "TLS_FILE_UNREADABLE";
// INVALID_ARGUMENT: a TLS file holds no PEM certificate (or key), the key
// does not belong to the certificate, or the server certificate has
// expired; or tls.crl_dir would not protect: a client CA without a current
// CRL there (or whose newest CRL expired), a CRL naming a client CA that it
// did not sign, two CRLs of a CA with the same lastUpdate, a CRL without its
// <hash>.rN name, a hashed name that is missing, dangling or not a CRL, or
// a certificate in the folder.
inline constexpr std::string_view kTlsFileInvalid = "TLS_FILE_INVALID";
}  // namespace reason

// Reads and checks the three TLS files of `config` the way gRPC will use
// them, so a bad file stops the start with a message naming it (gRPC would
// only log and fail every handshake). With tls_crl_dir, also the CRL
// folder: every client CA must have a current CRL there, signed by it and
// under its hashed name, so the start fails closed where gRPC would accept
// a CA's certificates unchecked (tls_files.cc says what gRPC does).
// Returns a one-line description for the start banner ("server
// certificate CN=…, valid until …; 1 client CA certificate; …").
// NOT_FOUND kTlsFileUnreadable, INVALID_ARGUMENT kTlsFileInvalid; the field
// is the configuration key.
absl::StatusOr<std::string> CheckTlsFiles(const GatewayConfig& config);

// When the TLS material in use stops being good, for the metrics
// medsettle_tls_certificate_expiry_timestamp_seconds and
// medsettle_tls_crl_next_update_timestamp_seconds (alerts fire days
// ahead). Read from the files as they are now (gRPC re-reads them too).
struct TlsExpiry {
  int64_t server_not_after_unix = 0;  // 0: the certificate cannot be read
  // Per CRL issuer (RFC 2253 name): the latest nextUpdate among its CRLs
  // in tls.crl_dir.
  std::vector<std::pair<std::string, int64_t>> crl_next_update_unix;
};
TlsExpiry ReadTlsExpiry(const GatewayConfig& config);

}  // namespace medsettle::gateway

#endif  // MEDSETTLE_GATEWAY_TLS_FILES_H_
