#include "gateway/authenticator.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <vector>

#include "engine/status.h"
#include "engine/text.h"
#include "gateway/credentials/openssl_ptr.h"

namespace medsettle::gateway {

using engine::Cat;
namespace {

absl::Status Missing(std::string_view message) {
  return engine::Refusal(absl::StatusCode::kUnauthenticated, reason::kIdentityMissing, "",
                         message);
}
absl::Status Invalid(std::string_view message) {
  return engine::Refusal(absl::StatusCode::kUnauthenticated, reason::kIdentityInvalid, "",
                         message);
}

using credentials::BioPtr;
using credentials::GeneralNamesPtr;
using credentials::X509Ptr;

// The institution ids of the certificate's SAN URIs with kInstitutionUriPrefix.
std::vector<std::string> InstitutionUris(X509* cert) {
  std::vector<std::string> ids;
  GeneralNamesPtr names(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  if (names == nullptr) return ids;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    if (name->type != GEN_URI) continue;
    const ASN1_STRING* uri = name->d.uniformResourceIdentifier;
    std::string_view text(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
                          static_cast<size_t>(ASN1_STRING_length(uri)));
    if (text.substr(0, kInstitutionUriPrefix.size()) != kInstitutionUriPrefix) continue;
    ids.emplace_back(text.substr(kInstitutionUriPrefix.size()));
  }
  return ids;
}

// The subject's common names, as UTF-8.
std::vector<std::string> CommonNames(X509* cert) {
  std::vector<std::string> names;
  const X509_NAME* subject = X509_get_subject_name(cert);
  if (subject == nullptr) return names;
  for (int i = X509_NAME_get_index_by_NID(subject, NID_commonName, -1); i >= 0;
       i = X509_NAME_get_index_by_NID(subject, NID_commonName, i)) {
    const ASN1_STRING* value = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i));
    unsigned char* utf8 = nullptr;
    const int n = ASN1_STRING_to_UTF8(&utf8, value);
    if (n < 0) {
      names.emplace_back();  // unconvertible: counted, and invalid
      continue;
    }
    names.emplace_back(reinterpret_cast<const char*>(utf8), static_cast<size_t>(n));
    OPENSSL_free(utf8);
  }
  return names;
}

}  // namespace

bool IsWellFormedInstitutionId(std::string_view id) {
  return !id.empty() && id.size() <= 64 && std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '-';
  });
}

absl::StatusOr<CallerIdentity> DevHeaderAuthenticator::Identify(
    const TransportCaller& caller) const {
  if (caller.institution_header.empty()) {
    return Missing("no institution identity: send the x-medsettle-institution header");
  }
  if (caller.institution_header.size() > 1) {
    return Invalid("the x-medsettle-institution header is repeated");
  }
  CallerIdentity identity;
  identity.institution_id.assign(caller.institution_header[0]);
  if (!IsWellFormedInstitutionId(identity.institution_id)) {
    return Invalid("the institution id must be 1-64 characters of A-Z a-z 0-9 _ . -");
  }
  return identity;
}

absl::StatusOr<CallerIdentity> IdentityOfCertificate(std::string_view pem) {
  // This runs on gRPC's threads, whose TLS code reads OpenSSL's per-thread
  // error queue: leave nothing on it.
  struct ClearErrors {
    ~ClearErrors() { ERR_clear_error(); }
  } clear_errors;
  BioPtr bio = credentials::MemBio(pem);
  if (bio == nullptr) return Invalid("cannot read the client certificate");
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) return Invalid("the client certificate is not a PEM X.509 certificate");

  CallerIdentity identity;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_size = 0;
  if (X509_digest(cert.get(), EVP_sha256(), digest, &digest_size) != 1) {
    return Invalid("cannot compute the client certificate's fingerprint");
  }
  identity.certificate_fingerprint =
      engine::LowerHex(std::string_view(reinterpret_cast<const char*>(digest), digest_size));

  const std::vector<std::string> uris = InstitutionUris(cert.get());
  if (uris.size() > 1) {
    return Invalid(Cat("the client certificate names ", static_cast<int64_t>(uris.size()),
                       " institutions (SAN URIs ", kInstitutionUriPrefix, "...); it must name one"));
  }
  if (uris.size() == 1) {
    identity.institution_id = uris[0];
  } else {
    const std::vector<std::string> cns = CommonNames(cert.get());
    if (cns.empty()) {
      return Missing(Cat("the client certificate names no institution: neither a SAN URI ",
                         kInstitutionUriPrefix, "<id> nor a subject CN"));
    }
    if (cns.size() > 1) return Invalid("the client certificate's subject has several CNs");
    identity.institution_id = cns[0];
  }
  if (!IsWellFormedInstitutionId(identity.institution_id)) {
    return Invalid(Cat("the client certificate's institution id \"",
                       identity.institution_id.substr(0, 80),
                       "\" is not 1-64 characters of A-Z a-z 0-9 _ . -"));
  }
  return identity;
}

absl::StatusOr<CallerIdentity> MtlsAuthenticator::Identify(const TransportCaller& caller) const {
  if (!caller.tls) return Missing("no institution identity: the call did not use TLS");
  if (caller.peer_certificates_pem.empty()) {
    return Missing("no institution identity: no verified client certificate");
  }
  if (caller.peer_certificates_pem.size() > 1) {
    return Invalid("the connection carries several peer certificates");
  }
  const std::string_view pem = caller.peer_certificates_pem[0];

  std::shared_ptr<const absl::StatusOr<CallerIdentity>> found;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (auto it = cache_.find(pem); it != cache_.end()) found = it->second;
  }
  if (found == nullptr) {
    // Parsed outside the lock; two calls racing on a new certificate both
    // parse it, with the same result.
    found = std::make_shared<const absl::StatusOr<CallerIdentity>>(IdentityOfCertificate(pem));
    std::lock_guard<std::mutex> lock(mutex_);
    if (cache_.size() >= kMaxCachedCertificates) cache_.clear();
    cache_.emplace(std::string(pem), found);
  }
  return *found;
}

size_t MtlsAuthenticator::cached() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return cache_.size();
}

}  // namespace medsettle::gateway
