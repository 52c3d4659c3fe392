// The e-insurance code (医保电子凭证) a POS or HIS scans: a compact,
// URL-safe token issued and signed by the voucher platform, verified by the
// gateway against the platform's public keys. docs/SECURITY.md explains
// the threat model; this header is the format's definition.
//
// Wire format (ASCII, URL-safe, no padding):
//
//   "EC1." base64url(payload) "." base64url(signature)
//
// payload (binary, big-endian integers):
//   u8    version            = 1
//   u8    key id length      1..32
//   bytes key id             [A-Za-z0-9_-]
//   32    person key         the insured person's key, raw (its 64-hex form
//                            is cache::PersonKeyer's output)
//   u8    flags              bit 0: a presenter key follows; other bits 0
//   32    presenter key      only with flag bit 0: the family member
//                            (亲情账户) presenting the code
//   u32   issued at          Unix minutes
//   u32   expires at         Unix minutes; > issued at
//   16    nonce              random; single use (the gateway remembers it)
//   u8    scopes             bit set of Scope, non-empty, no other bits
//
// signature: Ed25519 over kSignatureContext followed by the payload bytes
// (the context keeps a signature from meaning anything in another format).
//
// With a 5-character key id a token is 178 characters (a version-9 QR
// code, 53×53 modules, at error-correction level M), 221 with a presenter
// (version 11, 61×61).
#ifndef MEDSETTLE_GATEWAY_CREDENTIALS_EC_TOKEN_H_
#define MEDSETTLE_GATEWAY_CREDENTIALS_EC_TOKEN_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace medsettle::credentials {

// Stable reasons of refused tokens. Every refusal names the field
// kEcTokenField.
namespace reason {
// INVALID_ARGUMENT: not a token of this format (prefix, base64url, length,
// version, key id characters, flags, scopes, expiry not after issue).
inline constexpr std::string_view kTokenMalformed = "EC_TOKEN_MALFORMED";
// UNAUTHENTICATED: the key id names no configured issuer key.
inline constexpr std::string_view kTokenKeyUnknown = "EC_TOKEN_KEY_UNKNOWN";
// UNAUTHENTICATED: the signature does not verify under the key id's key
// (forged or altered).
inline constexpr std::string_view kTokenSignatureInvalid = "EC_TOKEN_SIGNATURE_INVALID";
// UNAUTHENTICATED: now > expires at + clock skew.
inline constexpr std::string_view kTokenExpired = "EC_TOKEN_EXPIRED";
// UNAUTHENTICATED: issued at > now + clock skew.
inline constexpr std::string_view kTokenNotYetValid = "EC_TOKEN_NOT_YET_VALID";
// UNAUTHENTICATED: expires at − issued at is longer than the gateway
// accepts (VerifyOptions::max_lifetime_minutes): a code is meant to live
// minutes, so a long-lived one is treated as a leaked signing key's work.
inline constexpr std::string_view kTokenLifetimeTooLong = "EC_TOKEN_LIFETIME_TOO_LONG";
// PERMISSION_DENIED: the token's scopes do not include the visit's scope.
inline constexpr std::string_view kTokenScopeMismatch = "EC_TOKEN_SCOPE_MISMATCH";
// FAILED_PRECONDITION: a settlement was already recorded with this token's
// nonce (single use). Re-sending the same request still replays it.
inline constexpr std::string_view kTokenReplayed = "EC_TOKEN_REPLAYED";
// PERMISSION_DENIED: the token names a presenter the insured person's
// enrollment does not list in family_presenter_keys.
inline constexpr std::string_view kPresenterNotBound = "EC_TOKEN_PRESENTER_NOT_BOUND";
// FAILED_PRECONDITION: the gateway has no issuer keys configured, so it
// cannot accept e-insurance codes (ec_token.issuer_keys_dir).
inline constexpr std::string_view kTokenNotConfigured = "EC_TOKEN_NOT_CONFIGURED";
// INVALID_ARGUMENT (issuer key files at load): a key file is not a PEM
// Ed25519 public (or private, for the voucher tool) key, or its name is
// not a valid key id.
inline constexpr std::string_view kIssuerKeyInvalid = "ISSUER_KEY_INVALID";
}  // namespace reason

// The request field tokens arrive in (proto: credential.ec_token).
inline constexpr std::string_view kEcTokenField = "credential.ec_token";

inline constexpr std::string_view kTokenPrefix = "EC1.";
inline constexpr std::string_view kSignatureContext = "medsettle-ec-token-v1";
inline constexpr size_t kMaxTokenLength = 512;  // anything longer is malformed
inline constexpr size_t kMaxKeyIdLength = 32;

// Business scopes (bits). A visit needs: general, chronic and special-
// disease outpatient → kOutpatient, pharmacy purchases (institution kind
// PHARMACY) → kPharmacy, inpatient and maternity stays → kInpatient.
enum Scope : uint8_t {
  kScopeOutpatient = 1,
  kScopePharmacy = 2,
  kScopeInpatient = 4,
};
inline constexpr uint8_t kAllScopes = kScopeOutpatient | kScopePharmacy | kScopeInpatient;

// "outpatient,pharmacy" ↔ bits. ParseScopes: INVALID_ARGUMENT for an
// unknown or empty name.
std::string ScopesToString(uint8_t scopes);
absl::StatusOr<uint8_t> ParseScopes(std::string_view names);

// True when `key_id` is 1..kMaxKeyIdLength characters of [A-Za-z0-9_-]
// (the rule for a token's key id and an issuer key file's name).
bool IsValidKeyId(std::string_view key_id);
// True when `hex` is exactly `length` lowercase hex characters (person and
// presenter keys: 64; nonces: 32).
bool IsLowerHex(std::string_view hex, size_t length);

struct EcTokenClaims {
  std::string key_id;
  std::string person_key;     // 64 lowercase hex
  std::string presenter_key;  // 64 lowercase hex, or "" (the person presents)
  int64_t issued_at_minute = 0;   // Unix minutes
  int64_t expires_at_minute = 0;  // Unix minutes
  std::string nonce;          // 32 lowercase hex
  uint8_t scopes = 0;         // Scope bits
};

// A token split and decoded, not yet verified.
struct ParsedEcToken {
  EcTokenClaims claims;
  std::string signed_message;  // kSignatureContext + payload bytes
  std::string signature;       // raw, 64 bytes
};

// Shape only: prefix, base64url, every payload rule above. No keys, no
// clock. INVALID_ARGUMENT kTokenMalformed (field kEcTokenField); the
// message says which part is wrong and never echoes the token.
// Total over every input (a libFuzzer target runs it).
absl::StatusOr<ParsedEcToken> ParseEcToken(std::string_view token);

// The voucher platform's public keys by key id, for verification. Several
// at once, so a new key can be published before the platform signs with it
// and an old one withdrawn after its last tokens expired. Immutable after
// loading; safe to share between threads.
class IssuerKeyring {
 public:
  IssuerKeyring();
  ~IssuerKeyring();
  IssuerKeyring(IssuerKeyring&&) noexcept;
  IssuerKeyring& operator=(IssuerKeyring&&) noexcept;

  // Every "<kid>.pub.pem" file of `dir` (Ed25519 public keys, PEM). Other
  // files are ignored. INVALID_ARGUMENT kIssuerKeyInvalid naming the file
  // for a bad key or name; NOT_FOUND when the folder cannot be read. An
  // empty folder is an empty keyring (every token: EC_TOKEN_KEY_UNKNOWN).
  static absl::StatusOr<IssuerKeyring> LoadDirectory(const std::string& dir);
  // Adds one PEM public key under `key_id`. kIssuerKeyInvalid.
  absl::Status AddPublicKeyPem(std::string_view key_id, std::string_view pem);

  size_t size() const;
  bool Has(std::string_view key_id) const;
  // Verifies `signature` over `message` under `key_id`'s key:
  // UNAUTHENTICATED kTokenKeyUnknown / kTokenSignatureInvalid.
  absl::Status VerifySignature(std::string_view key_id, std::string_view message,
                               std::string_view signature) const;

 private:
  struct Key;
  std::map<std::string, std::unique_ptr<Key>, std::less<>> keys_;
};

struct VerifyOptions {
  int64_t now_unix = 0;
  int clock_skew_seconds = 60;
  int max_lifetime_minutes = 0;  // 0 = any lifetime
};

// The checks of a parsed token: the signature
// (IssuerKeyring::VerifySignature), then the lifetime cap, then the validity
// window with the skew. The checks that need the visit, the enrollment or
// Redis (scope, presenter binding, revocation mark, single use) are the
// caller's: gateway/settlement_handler.cc.
absl::Status VerifyParsedEcToken(const ParsedEcToken& parsed, const IssuerKeyring& keys,
                                 const VerifyOptions& options);

// ParseEcToken, then VerifyParsedEcToken.
absl::StatusOr<EcTokenClaims> VerifyEcToken(std::string_view token, const IssuerKeyring& keys,
                                            const VerifyOptions& options);

// The voucher platform's side (medsettle-voucher and tests): a private
// Ed25519 key and signing.
class IssuerSigningKey {
 public:
  IssuerSigningKey();
  ~IssuerSigningKey();
  IssuerSigningKey(IssuerSigningKey&&) noexcept;
  IssuerSigningKey& operator=(IssuerSigningKey&&) noexcept;

  // A fresh random key.
  static absl::StatusOr<IssuerSigningKey> Generate();
  // A PEM (PKCS#8) Ed25519 private key. kIssuerKeyInvalid.
  static absl::StatusOr<IssuerSigningKey> FromPrivateKeyPem(std::string_view pem);
  std::string PrivateKeyPem() const;
  std::string PublicKeyPem() const;

  // The token for `claims` (nonce: 32 hex; "" → a fresh random nonce).
  // INVALID_ARGUMENT kTokenMalformed when the claims break a format rule.
  absl::StatusOr<std::string> Issue(const EcTokenClaims& claims) const;

 private:
  struct Key;
  std::unique_ptr<Key> key_;
};

}  // namespace medsettle::credentials

#endif  // MEDSETTLE_GATEWAY_CREDENTIALS_EC_TOKEN_H_
