// Who is calling: the institution identity is a value the transport
// supplies, never a request field. The service asks an Authenticator for it
// once per call; the institution's attributes then come from the registry
// (gateway/snapshot_watcher.h), never from the caller.
//
//   MtlsAuthenticator       the normal mode: the client certificate the TLS
//                           handshake verified against tls.client_ca_file
//                           names the institution (SAN URI
//                           medsettle://institution/<id>, else the CN).
//   DevHeaderAuthenticator  --insecure-dev on loopback only (ValidateConfig):
//                           a metadata header, unverified.
#ifndef MEDSETTLE_GATEWAY_AUTHENTICATOR_H_
#define MEDSETTLE_GATEWAY_AUTHENTICATOR_H_

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <functional>
#include <map>
#include <vector>

#include "absl/status/statusor.h"

namespace medsettle::gateway {

namespace reason {
// UNAUTHENTICATED: the transport supplied no institution identity (no
// header in development mode; no verified client certificate, or one that
// names no institution, under mutual TLS).
inline constexpr std::string_view kIdentityMissing = "INSTITUTION_IDENTITY_MISSING";
// UNAUTHENTICATED: the identity supplied is not a well-formed institution id
// (1–64 characters of [A-Za-z0-9_.-]), or a certificate names several, or
// cannot be parsed.
inline constexpr std::string_view kIdentityInvalid = "INSTITUTION_IDENTITY_INVALID";
}  // namespace reason

// The development header carrying the institution id.
inline constexpr std::string_view kInstitutionHeader = "x-medsettle-institution";
// The SAN URI prefix of an institution certificate:
// "medsettle://institution/H3308000002".
inline constexpr std::string_view kInstitutionUriPrefix = "medsettle://institution/";

// True for 1–64 characters of [A-Za-z0-9_.-].
bool IsWellFormedInstitutionId(std::string_view id);

// The caller as the transport established it.
struct CallerIdentity {
  std::string institution_id;
  // SHA-256 of the client certificate's DER, lowercase hex (64 characters);
  // "" in development mode. Recorded with each settlement (audit).
  std::string certificate_fingerprint;
};

// What a transport knows of a caller before anyone trusted it: the
// transport fills it (gRPC: the call's auth context and metadata; the
// HTTP/JSON facade: its TLS session and headers), an Authenticator decides.
// The views must outlive the Identify call.
struct TransportCaller {
  // Whether the connection is TLS, and the PEM texts of the peer
  // certificates its handshake verified.
  bool tls = false;
  std::vector<std::string_view> peer_certificates_pem;
  // Every value of the kInstitutionHeader header the call carried.
  std::vector<std::string_view> institution_header;
};

class Authenticator {
 public:
  virtual ~Authenticator() = default;
  // The calling institution, or UNAUTHENTICATED with a reason above.
  // Called on a transport thread for every call: must not block.
  virtual absl::StatusOr<CallerIdentity> Identify(const TransportCaller& caller) const = 0;
};

// Reads kInstitutionHeader (exactly one value). Trusts the caller: only for
// --insecure-dev on loopback. The fingerprint is empty.
class DevHeaderAuthenticator final : public Authenticator {
 public:
  absl::StatusOr<CallerIdentity> Identify(const TransportCaller& caller) const override;
};

// The identity in one PEM certificate: the institution id from its one SAN
// URI kInstitutionUriPrefix<id> (two such URIs are invalid; other SANs are
// ignored), else from its one subject CN; and the SHA-256 fingerprint of
// its DER. UNAUTHENTICATED kIdentityMissing when it names no institution,
// kIdentityInvalid when it cannot be parsed or the id is malformed. Pure:
// does not verify the certificate (the TLS handshake did).
absl::StatusOr<CallerIdentity> IdentityOfCertificate(std::string_view pem);

// Mutual TLS: the peer certificate of the call's connection (gRPC: the
// AuthContext property "x509_pem_cert", present only when the handshake
// verified it: GatewayServer requires and verifies client certificates).
// Parsed results are cached by the PEM text (at most kMaxCachedCertificates;
// the cache is emptied when full), so a connection's calls parse its
// certificate once. Thread-safe.
class MtlsAuthenticator final : public Authenticator {
 public:
  static constexpr size_t kMaxCachedCertificates = 4096;

  absl::StatusOr<CallerIdentity> Identify(const TransportCaller& caller) const override;

  // Certificates parsed so far and still cached (tests).
  size_t cached() const;

 private:
  mutable std::mutex mutex_;
  // PEM text → its identity or refusal; guarded by mutex_. Ordered with a
  // transparent comparator so a call looks its certificate up without
  // copying it.
  mutable std::map<std::string, std::shared_ptr<const absl::StatusOr<CallerIdentity>>,
                   std::less<>>
      cache_;
};

}  // namespace medsettle::gateway

#endif  // MEDSETTLE_GATEWAY_AUTHENTICATOR_H_
