#include "gateway/authenticator.h"

#include <algorithm>

#include "engine/status.h"

namespace medsettle::gateway {

absl::StatusOr<std::string> DevHeaderAuthenticator::InstitutionOf(
    const grpc::CallbackServerContext& context) const {
  const auto& metadata = context.client_metadata();
  auto [first, last] = metadata.equal_range(grpc::string_ref(kInstitutionHeader.data(),
                                                              kInstitutionHeader.size()));
  if (first == last) {
    return engine::Refusal(absl::StatusCode::kUnauthenticated, reason::kIdentityMissing, "",
                           "no institution identity: send the x-medsettle-institution header");
  }
  if (std::next(first) != last) {
    return engine::Refusal(absl::StatusCode::kUnauthenticated, reason::kIdentityInvalid, "",
                           "the x-medsettle-institution header is repeated");
  }
  std::string id(first->second.data(), first->second.size());
  const bool well_formed =
      !id.empty() && id.size() <= 64 && std::all_of(id.begin(), id.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '.' || c == '-';
      });
  if (!well_formed) {
    return engine::Refusal(absl::StatusCode::kUnauthenticated, reason::kIdentityInvalid, "",
                           "the institution id must be 1-64 characters of A-Z a-z 0-9 _ . -");
  }
  return id;
}

}  // namespace medsettle::gateway
