// Owning pointers for the OpenSSL objects the gateway and its credentials
// use (keys, certificates, CRLs, memory BIOs), and the one PEM passphrase
// callback: encrypted keys are refused, never prompted for on a terminal.
// Header-only; include it from .cc files only (it pulls in OpenSSL).
#ifndef MEDSETTLE_GATEWAY_CREDENTIALS_OPENSSL_PTR_H_
#define MEDSETTLE_GATEWAY_CREDENTIALS_OPENSSL_PTR_H_

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string_view>

namespace medsettle::credentials {

struct OpensslFree {
  void operator()(BIO* b) const { BIO_free(b); }
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
  void operator()(X509* x) const { X509_free(x); }
  void operator()(X509_CRL* c) const { X509_CRL_free(c); }
  void operator()(GENERAL_NAMES* n) const { GENERAL_NAMES_free(n); }
};
using BioPtr = std::unique_ptr<BIO, OpensslFree>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, OpensslFree>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, OpensslFree>;
using X509Ptr = std::unique_ptr<X509, OpensslFree>;
using CrlPtr = std::unique_ptr<X509_CRL, OpensslFree>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, OpensslFree>;

// A read-only memory BIO over `data` (which must outlive it); null on failure.
inline BioPtr MemBio(std::string_view data) {
  return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

// pem_password_cb that supplies no passphrase.
inline int NoPassphrase(char*, int, int, void*) { return 0; }

}  // namespace medsettle::credentials

#endif  // MEDSETTLE_GATEWAY_CREDENTIALS_OPENSSL_PTR_H_
