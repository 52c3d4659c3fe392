// libFuzzer target for the e-insurance code parser and verifier
// (gateway/credentials/ec_token.h): every input must come back as a value
// (no crash, no out-of-bounds read under ASan/UBSan), and the results must
// agree with the format's rules. Built with clang, e.g.
//
//   clang++-14 -std=c++20 -fsanitize=fuzzer,address,undefined -I. \
//     tests/fuzz/ec_token_fuzz.cc gateway/credentials/ec_token.cc engine/status.cc \
//     <absl status libraries> -lcrypto
//   ./a.out tests/fuzz/corpus/ec_token
//
// The seeds in tests/fuzz/corpus/ec_token/ were issued with
// `medsettle-voucher issue --issued-at 1746518400` by the private half of
// the public key below (key id "fuzz1"), which was then destroyed: two valid
// at kNowUnix (with and without a presenter), one expired, one not yet
// valid, one under an unknown key id.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "engine/status.h"
#include "gateway/credentials/ec_token.h"

namespace {

using medsettle::credentials::EcTokenClaims;
using medsettle::credentials::IssuerKeyring;
using medsettle::credentials::ParsedEcToken;

constexpr std::string_view kKeyId = "fuzz1";
constexpr std::string_view kPublicKeyPem =
    "-----BEGIN PUBLIC KEY-----\n"
    "MCowBQYDK2VwAyEAy/JzbuOgAMPuPyjwFnb+WvLAj7D/CabiFlv+wVb79f0=\n"
    "-----END PUBLIC KEY-----\n";
constexpr int64_t kNowUnix = 1746518400;  // 2025-05-06T08:00:00Z, the seeds' issue time

void Check(bool condition) {
  if (!condition) __builtin_trap();
}

const IssuerKeyring& Keyring() {
  static const IssuerKeyring* const keyring = [] {
    auto* k = new IssuerKeyring();
    if (!k->AddPublicKeyPem(kKeyId, kPublicKeyPem).ok()) std::abort();
    return k;
  }();
  return *keyring;
}

// What every accepted token's claims satisfy.
void CheckClaims(const EcTokenClaims& c) {
  namespace cred = medsettle::credentials;
  Check(cred::IsValidKeyId(c.key_id));
  Check(cred::IsLowerHex(c.person_key, 64));
  Check(c.presenter_key.empty() || cred::IsLowerHex(c.presenter_key, 64));
  Check(cred::IsLowerHex(c.nonce, 32));
  Check(c.scopes != 0 && (c.scopes & ~cred::kAllScopes) == 0);
  Check(c.issued_at_minute >= 0 && c.expires_at_minute > c.issued_at_minute);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace cred = medsettle::credentials;
  using medsettle::engine::FieldOf;
  using medsettle::engine::ReasonOf;
  const std::string_view token(reinterpret_cast<const char*>(data), size);

  absl::StatusOr<ParsedEcToken> parsed = cred::ParseEcToken(token);
  if (parsed.ok()) {
    CheckClaims(parsed->claims);
    Check(parsed->signature.size() == 64);
    Check(token.size() <= cred::kMaxTokenLength);
  } else {
    Check(parsed.status().code() == absl::StatusCode::kInvalidArgument);
    Check(ReasonOf(parsed.status()) == cred::reason::kTokenMalformed);
    Check(FieldOf(parsed.status()) == cred::kEcTokenField);
  }

  const cred::VerifyOptions options{.now_unix = kNowUnix, .clock_skew_seconds = 60};
  absl::StatusOr<EcTokenClaims> verified = cred::VerifyEcToken(token, Keyring(), options);
  if (verified.ok()) {
    Check(parsed.ok());
    CheckClaims(*verified);
    Check(verified->key_id == kKeyId);
    Check(verified->person_key == parsed->claims.person_key);
    Check(verified->nonce == parsed->claims.nonce);
  } else {
    Check(FieldOf(verified.status()) == cred::kEcTokenField);
    if (!parsed.ok()) Check(ReasonOf(verified.status()) == cred::reason::kTokenMalformed);
  }
  return 0;
}
