// Who is calling: the institution identity is a value the transport
// supplies, never a request field. The service asks an Authenticator for it
// once per call; the institution's attributes then come from the registry
// (gateway/snapshot_watcher.h), never from the caller.
//
// Today's only implementation reads a metadata header and is for loopback
// development (--insecure-dev, enforced by ValidateConfig). Mutual TLS
// (next issue) adds an authenticator that reads the verified client
// certificate from grpc::AuthContext; nothing else changes.
#ifndef MEDSETTLE_GATEWAY_AUTHENTICATOR_H_
#define MEDSETTLE_GATEWAY_AUTHENTICATOR_H_

#include <grpcpp/grpcpp.h>

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace medsettle::gateway {

namespace reason {
// UNAUTHENTICATED: the transport supplied no institution identity.
inline constexpr std::string_view kIdentityMissing = "INSTITUTION_IDENTITY_MISSING";
// UNAUTHENTICATED: the identity supplied is not a well-formed institution id
// (1–64 characters of [A-Za-z0-9_.-]).
inline constexpr std::string_view kIdentityInvalid = "INSTITUTION_IDENTITY_INVALID";
}  // namespace reason

// The development header carrying the institution id.
inline constexpr std::string_view kInstitutionHeader = "x-medsettle-institution";

class Authenticator {
 public:
  virtual ~Authenticator() = default;
  // The calling institution's id, or UNAUTHENTICATED with a reason.
  // Called on a gRPC thread: must not block.
  virtual absl::StatusOr<std::string> InstitutionOf(
      const grpc::CallbackServerContext& context) const = 0;
};

// Reads kInstitutionHeader (exactly one value). Trusts the caller: only for
// --insecure-dev on loopback.
class DevHeaderAuthenticator final : public Authenticator {
 public:
  absl::StatusOr<std::string> InstitutionOf(
      const grpc::CallbackServerContext& context) const override;
};

}  // namespace medsettle::gateway

#endif  // MEDSETTLE_GATEWAY_AUTHENTICATOR_H_
