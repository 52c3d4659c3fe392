// The e-insurance code (gateway/credentials/ec_token.h): the wire format
// pinned by a payload built here by hand, every malformed class refused as
// EC_TOKEN_MALFORMED, forgeries, unknown keys, the validity window at the
// exact skew boundary, the keyring's folder rules and the scope names.
#include "gateway/credentials/ec_token.h"

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "engine/status.h"

namespace medsettle::credentials {
namespace {

using engine::FieldOf;
using engine::ReasonOf;

// Throwaway public keys of other algorithms (generated with `openssl
// genpkey … | openssl pkey -pubout`; the private halves were discarded).
constexpr std::string_view kP256PublicPem =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEPFg1eILhCLPsNaNja1GItIyi8oQQ\n"
    "d7cyhuJt1jXtxckES6s0KYQIz57+hmFTsxs4teso2OtQqwrTqo+6qBimhA==\n"
    "-----END PUBLIC KEY-----\n";
constexpr std::string_view kRsaPublicPem =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDKlWM6UF4FaFSLOpB1Mpj2Bh7O\n"
    "Bko391Xq7Rp/f73nm9AYnFNNDnN4i8Zx/8L/Lmrteg6/tcW0jQWnt47TQBvrtX7s\n"
    "0NjSpLRXA2ymu1klW+csKBbC+5Kz5qWznBm3KEyYxLVwwuLEApFEdnBDYdGsdQFZ\n"
    "2+PxKuxxrFWu7YNTHwIDAQAB\n"
    "-----END PUBLIC KEY-----\n";
constexpr std::string_view kX25519PublicPem =
    "-----BEGIN PUBLIC KEY-----\n"
    "MCowBQYDK2VuAyEAyQxBvp2q+WnNxONwlPdTMxI9YfOlbrlJl7T3QEtsgzM=\n"
    "-----END PUBLIC KEY-----\n";

constexpr std::string_view kPersonKey =
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
constexpr std::string_view kPresenterKey =
    "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
constexpr std::string_view kNonce = "00112233445566778899aabbccddeeff";
constexpr int64_t kIssuedMinute = 29'100'000;  // 2025-04-30
constexpr int64_t kExpiresMinute = kIssuedMinute + 5;

// ---- An independent encoder of the wire format (the test's own) ----

std::string B64(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    acc = (acc << 8) | static_cast<unsigned char>(c);
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kAlphabet[(acc >> bits) & 63]);
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(acc << (6 - bits)) & 63]);
  return out;
}

std::string Unhex(std::string_view hex) {
  std::string out;
  for (size_t k = 0; k + 1 < hex.size(); k += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(k, 2)), nullptr, 16)));
  }
  return out;
}

struct Payload {
  int version = 1;
  std::string key_id = "k1";
  std::string person = Unhex(kPersonKey);
  int flags = 0;
  std::string presenter;
  uint32_t issued = kIssuedMinute;
  uint32_t expires = kExpiresMinute;
  std::string nonce = Unhex(kNonce);
  int scopes = kScopeOutpatient | kScopePharmacy;

  std::string Bytes() const {
    std::string p;
    p.push_back(static_cast<char>(version));
    p.push_back(static_cast<char>(key_id.size()));
    p += key_id;
    p += person;
    p.push_back(static_cast<char>(flags));
    p += presenter;
    for (uint32_t v : {issued, expires}) {
      for (int shift = 24; shift >= 0; shift -= 8)
        p.push_back(static_cast<char>((v >> shift) & 0xFF));
    }
    p += nonce;
    p.push_back(static_cast<char>(scopes));
    return p;
  }
};

std::string TokenOf(std::string_view payload_bytes,
                    std::string_view signature = std::string(64, 'S')) {
  return std::string(kTokenPrefix) + B64(payload_bytes) + "." + B64(signature);
}

EcTokenClaims Claims() {
  EcTokenClaims c;
  c.key_id = "k1";
  c.person_key = std::string(kPersonKey);
  c.issued_at_minute = kIssuedMinute;
  c.expires_at_minute = kExpiresMinute;
  c.nonce = std::string(kNonce);
  c.scopes = kScopeOutpatient | kScopePharmacy;
  return c;
}

IssuerSigningKey NewKey() {
  absl::StatusOr<IssuerSigningKey> key = IssuerSigningKey::Generate();
  EXPECT_TRUE(key.ok()) << key.status();
  return *std::move(key);
}

std::string IssueOk(const IssuerSigningKey& key, const EcTokenClaims& claims) {
  absl::StatusOr<std::string> token = key.Issue(claims);
  EXPECT_TRUE(token.ok()) << token.status();
  return token.ok() ? *token : std::string();
}

// The payload's and signature's text parts of a token.
std::pair<std::string, std::string> Parts(const std::string& token) {
  std::string rest = token.substr(kTokenPrefix.size());
  size_t dot = rest.find('.');
  return {rest.substr(0, dot), rest.substr(dot + 1)};
}

void ExpectMalformed(std::string_view token, std::string_view label) {
  absl::StatusOr<ParsedEcToken> parsed = ParseEcToken(token);
  ASSERT_FALSE(parsed.ok()) << label;
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << label;
  EXPECT_EQ(ReasonOf(parsed.status()), reason::kTokenMalformed) << label;
  EXPECT_EQ(FieldOf(parsed.status()), kEcTokenField) << label;
  // The message never echoes the token (nor a long piece of it).
  std::string_view message(parsed.status().message().data(), parsed.status().message().size());
  if (token.size() > kTokenPrefix.size() + 8) {
    EXPECT_EQ(message.find(token.substr(kTokenPrefix.size(), 8)), std::string_view::npos)
        << label << ": " << message;
  }
}

class EcTokenTest : public ::testing::Test {
 protected:
  EcTokenTest() : key_(NewKey()) {
    absl::Status added = keyring_.AddPublicKeyPem("k1", key_.PublicKeyPem());
    EXPECT_TRUE(added.ok()) << added;
  }
  VerifyOptions At(int64_t now_unix) const {
    return {.now_unix = now_unix, .clock_skew_seconds = 60};
  }

  IssuerSigningKey key_;
  IssuerKeyring keyring_;
};

// ---- The format ----

TEST_F(EcTokenTest, IssuedPayloadIsExactlyTheDocumentedBytes) {
  std::string token = IssueOk(key_, Claims());
  EXPECT_EQ(Parts(token).first, B64(Payload().Bytes()));
  EXPECT_EQ(token.rfind("EC1.", 0), 0u);
  EXPECT_EQ(Parts(token).second.size(), 86u);  // 64 bytes, unpadded

  EcTokenClaims with = Claims();
  with.presenter_key = std::string(kPresenterKey);
  Payload p;
  p.flags = 1;
  p.presenter = Unhex(kPresenterKey);
  std::string with_presenter = IssueOk(key_, with);
  EXPECT_EQ(Parts(with_presenter).first, B64(p.Bytes()));
  EXPECT_LE(with_presenter.size(), kMaxTokenLength);
}

TEST_F(EcTokenTest, RoundTripWithoutPresenter) {
  std::string token = IssueOk(key_, Claims());
  absl::StatusOr<ParsedEcToken> parsed = ParseEcToken(token);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->signature.size(), 64u);
  EXPECT_EQ(parsed->signed_message, std::string(kSignatureContext) + Payload().Bytes());

  absl::StatusOr<EcTokenClaims> claims = VerifyEcToken(token, keyring_, At(kIssuedMinute * 60));
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->key_id, "k1");
  EXPECT_EQ(claims->person_key, kPersonKey);
  EXPECT_EQ(claims->presenter_key, "");
  EXPECT_EQ(claims->issued_at_minute, kIssuedMinute);
  EXPECT_EQ(claims->expires_at_minute, kExpiresMinute);
  EXPECT_EQ(claims->nonce, kNonce);
  EXPECT_EQ(claims->scopes, kScopeOutpatient | kScopePharmacy);
}

TEST_F(EcTokenTest, RoundTripWithPresenter) {
  EcTokenClaims c = Claims();
  c.presenter_key = std::string(kPresenterKey);
  c.scopes = kAllScopes;
  std::string token = IssueOk(key_, c);
  absl::StatusOr<EcTokenClaims> claims =
      VerifyEcToken(token, keyring_, At(kIssuedMinute * 60 + 90));
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->person_key, kPersonKey);
  EXPECT_EQ(claims->presenter_key, kPresenterKey);
  EXPECT_EQ(claims->scopes, kAllScopes);
}

TEST_F(EcTokenTest, IssueDrawsAFreshNonceWhenNoneIsGiven) {
  EcTokenClaims c = Claims();
  c.nonce.clear();
  std::set<std::string> nonces;
  for (int k = 0; k < 8; ++k) {
    absl::StatusOr<ParsedEcToken> parsed = ParseEcToken(IssueOk(key_, c));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_TRUE(IsLowerHex(parsed->claims.nonce, 32)) << parsed->claims.nonce;
    nonces.insert(parsed->claims.nonce);
  }
  EXPECT_EQ(nonces.size(), 8u);
}

TEST_F(EcTokenTest, IssueRefusesClaimsThatBreakAFormatRule) {
  struct Case {
    const char* name;
    void (*change)(EcTokenClaims&);
  };
  const Case cases[] = {
      {"empty key id", [](EcTokenClaims& c) { c.key_id = ""; }},
      {"key id too long", [](EcTokenClaims& c) { c.key_id = std::string(33, 'k'); }},
      {"key id with a dot", [](EcTokenClaims& c) { c.key_id = "k.1"; }},
      {"person key uppercase",
       [](EcTokenClaims& c) {
         c.person_key[0] = 'A';
         c.person_key[1] = 'B';
       }},
      {"person key short", [](EcTokenClaims& c) { c.person_key.pop_back(); }},
      {"person key empty", [](EcTokenClaims& c) { c.person_key.clear(); }},
      {"presenter key not hex", [](EcTokenClaims& c) { c.presenter_key = std::string(64, 'g'); }},
      {"nonce short", [](EcTokenClaims& c) { c.nonce = "0011"; }},
      {"no scope", [](EcTokenClaims& c) { c.scopes = 0; }},
      {"unknown scope bit", [](EcTokenClaims& c) { c.scopes = 8 | kScopeOutpatient; }},
      {"expires at issue", [](EcTokenClaims& c) { c.expires_at_minute = c.issued_at_minute; }},
      {"expires before issue",
       [](EcTokenClaims& c) { c.expires_at_minute = c.issued_at_minute - 1; }},
      {"negative issue", [](EcTokenClaims& c) { c.issued_at_minute = -1; }},
      {"beyond u32", [](EcTokenClaims& c) { c.expires_at_minute = int64_t{1} << 32; }},
  };
  for (const Case& k : cases) {
    EcTokenClaims c = Claims();
    k.change(c);
    absl::StatusOr<std::string> token = key_.Issue(c);
    ASSERT_FALSE(token.ok()) << k.name;
    EXPECT_EQ(token.status().code(), absl::StatusCode::kInvalidArgument) << k.name;
    EXPECT_EQ(ReasonOf(token.status()), reason::kTokenMalformed) << k.name;
    EXPECT_EQ(FieldOf(token.status()), kEcTokenField) << k.name;
  }
}

// ---- Malformed tokens ----

TEST(EcTokenParseTest, HandBuiltPayloadParses) {
  // The baseline the malformed cases below change one thing of.
  absl::StatusOr<ParsedEcToken> parsed = ParseEcToken(TokenOf(Payload().Bytes()));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->claims.key_id, "k1");
}

TEST(EcTokenParseTest, WrongPrefix) {
  std::string good = TokenOf(Payload().Bytes());
  std::string rest = good.substr(4);
  ExpectMalformed("", "empty");
  ExpectMalformed("EC1", "prefix only, no dot");
  ExpectMalformed("EC1.", "prefix only");
  ExpectMalformed("EC2." + rest, "EC2");
  ExpectMalformed("ec1." + rest, "lowercase prefix");
  ExpectMalformed(rest, "no prefix");
  ExpectMalformed(" " + good, "leading space");
}

TEST(EcTokenParseTest, BadBase64UrlCharactersAndPadding) {
  std::string good = TokenOf(Payload().Bytes());
  auto [payload, signature] = Parts(good);
  for (char bad : {'+', '/', '=', ' ', '\n', '\0', '*', '\xff', '.'}) {
    std::string p = payload;
    p[5] = bad;
    ExpectMalformed("EC1." + p + "." + signature, std::string("payload char ") + bad);
    std::string s = signature;
    s[10] = bad;
    ExpectMalformed("EC1." + payload + "." + s, std::string("signature char ") + bad);
  }
  ExpectMalformed(good + "=", "signature padded");
  ExpectMalformed(good + "==", "signature padded twice");
  ExpectMalformed("EC1." + payload + "=." + signature, "payload padded");
  ExpectMalformed(good + ".", "a third part");
  ExpectMalformed("EC1." + payload, "no signature part");
  ExpectMalformed("EC1." + payload + ".", "empty signature");
  ExpectMalformed("EC1.." + signature, "empty payload");
  // Standard base64 of the same bytes ('+' and '/' for 62 and 63).
  std::string std_b64 = signature;
  for (char& c : std_b64) c = c == '-' ? '+' : c == '_' ? '/' : c;
  if (std_b64 != signature) {
    ExpectMalformed("EC1." + payload + "." + std_b64, "standard base64 alphabet");
  }
}

TEST(EcTokenParseTest, LengthOneModFourAndNonCanonicalTrailingBits) {
  auto [payload, signature] = Parts(TokenOf(Payload().Bytes()));
  ExpectMalformed("EC1." + payload + "A." + signature + "A", "both ≡ 1 mod 4");
  {
    // A payload of whole 3-byte groups: one more 'A' adds no byte, so only
    // the length rule refuses it.
    Payload whole;
    while (whole.Bytes().size() % 3 != 0) whole.key_id += "k";
    std::string text = B64(whole.Bytes());
    ASSERT_TRUE(ParseEcToken("EC1." + text + "." + signature).ok());
    ExpectMalformed("EC1." + text + "A." + signature, "payload ≡ 1 mod 4");
  }
  // 64 signature bytes are 86 characters: the last carries 4 unused bits.
  ASSERT_EQ(signature.size() % 4, 2u);
  std::string s = signature;
  s.back() = s.back() == 'B' ? 'C' : 'B';  // sextet 1 or 2: a low bit set
  ExpectMalformed("EC1." + payload + "." + s, "signature trailing bits");
  // A payload with 2 unused bits (length ≡ 2 mod 3 bytes).
  Payload p;
  p.key_id = "k";
  std::string bytes = p.Bytes();
  while (bytes.size() % 3 != 2) {
    p.key_id += "k";
    bytes = p.Bytes();
  }
  std::string text = B64(bytes);
  ASSERT_TRUE(ParseEcToken("EC1." + text + "." + signature).ok());
  text.back() = static_cast<char>(text.back() == 'A' ? 'B' : text.back() + 1);
  ExpectMalformed("EC1." + text + "." + signature, "payload trailing bits");
}

TEST(EcTokenParseTest, EveryTruncationAndTrailingBytes) {
  for (bool presenter : {false, true}) {
    Payload p;
    if (presenter) {
      p.flags = 1;
      p.presenter = Unhex(kPresenterKey);
    }
    std::string bytes = p.Bytes();
    for (size_t n = 0; n < bytes.size(); ++n) {
      ExpectMalformed(TokenOf(bytes.substr(0, n)), "truncated payload");
    }
    ExpectMalformed(TokenOf(bytes + '\0'), "a trailing zero byte");
    ExpectMalformed(TokenOf(bytes + "xyz"), "trailing bytes");
  }
  // The presenter flag without the presenter's 32 bytes.
  Payload p;
  p.flags = 1;
  ExpectMalformed(TokenOf(p.Bytes()), "flag without presenter");
}

TEST(EcTokenParseTest, VersionKeyIdFlagsScopesExpiry) {
  auto changed = [](auto change) {
    Payload p;
    change(p);
    return TokenOf(p.Bytes());
  };
  ExpectMalformed(changed([](Payload& p) { p.version = 0; }), "version 0");
  ExpectMalformed(changed([](Payload& p) { p.version = 2; }), "version 2");
  ExpectMalformed(changed([](Payload& p) { p.key_id = ""; }), "empty key id");
  ExpectMalformed(changed([](Payload& p) { p.key_id = std::string(33, 'k'); }), "key id 33");
  ASSERT_TRUE(ParseEcToken(changed([](Payload& p) { p.key_id = std::string(32, 'k'); })).ok());
  ASSERT_TRUE(ParseEcToken(changed([](Payload& p) { p.key_id = "Az09-_"; })).ok());
  for (const std::string& bad : std::vector<std::string>{"k.1", "k 1", "k/1", "k+1", "k=1",
                                                         std::string("k\0", 2), "k\xe4"}) {
    ExpectMalformed(changed([&](Payload& p) { p.key_id = bad; }), "key id character");
  }
  ExpectMalformed(changed([](Payload& p) { p.flags = 2; }), "flag bit 1");
  ExpectMalformed(changed([](Payload& p) { p.flags = 0x80; }), "flag bit 7");
  ExpectMalformed(changed([](Payload& p) {
                    p.flags = 3;
                    p.presenter = Unhex(kPresenterKey);
                  }),
                  "flag bits 0 and 1");
  ExpectMalformed(changed([](Payload& p) { p.scopes = 0; }), "no scope");
  ExpectMalformed(changed([](Payload& p) { p.scopes = 8; }), "unknown scope");
  ExpectMalformed(changed([](Payload& p) { p.scopes = 0x81; }), "outpatient and bit 7");
  ExpectMalformed(changed([](Payload& p) { p.expires = p.issued; }), "expires at issue");
  ExpectMalformed(changed([](Payload& p) { p.expires = p.issued - 1; }), "expires before issue");
  ExpectMalformed(changed([](Payload& p) {
                    p.issued = UINT32_MAX;
                    p.expires = 0;
                  }),
                  "expiry wrapped");
}

TEST(EcTokenParseTest, SignatureLengthAndTokenLength) {
  std::string bytes = Payload().Bytes();
  ExpectMalformed(TokenOf(bytes, std::string(63, 'S')), "63-byte signature");
  ExpectMalformed(TokenOf(bytes, std::string(65, 'S')), "65-byte signature");
  ExpectMalformed(TokenOf(bytes, std::string(1, 'S')), "1-byte signature");
  ASSERT_TRUE(ParseEcToken(TokenOf(bytes, std::string(64, 'S'))).ok());
  ExpectMalformed(std::string(kTokenPrefix) + std::string(kMaxTokenLength, 'A'), "too long");
  // Refused for its length before anything else is looked at.
  absl::StatusOr<ParsedEcToken> long_token =
      ParseEcToken(TokenOf(bytes) + std::string(kMaxTokenLength, 'A'));
  ASSERT_FALSE(long_token.ok());
  EXPECT_NE(long_token.status().message().find("longer than 512"), absl::string_view::npos)
      << long_token.status();
  ExpectMalformed(std::string(100000, '.'), "huge");
}

// ---- Forgeries, unknown keys, the clock ----

TEST_F(EcTokenTest, AnyChangedPayloadByteBreaksTheSignature) {
  std::string token = IssueOk(key_, Claims());
  auto [payload_text, signature_text] = Parts(token);
  std::string bytes = Payload().Bytes();
  ASSERT_EQ(B64(bytes), payload_text);
  // Every byte that can change without breaking the shape: the key id's
  // characters, person key, times (later expiry), nonce.
  for (size_t at = 2; at < bytes.size() - 1; ++at) {
    std::string forged = bytes;
    forged[at] = static_cast<char>(forged[at] ^ 0x01);
    absl::StatusOr<ParsedEcToken> shape = ParseEcToken("EC1." + B64(forged) + "." + signature_text);
    if (!shape.ok()) continue;  // e.g. expiry now before issue: malformed, also refused
    absl::StatusOr<EcTokenClaims> claims = VerifyEcToken(
        "EC1." + B64(forged) + "." + signature_text, keyring_, At(kIssuedMinute * 60));
    ASSERT_FALSE(claims.ok()) << "byte " << at;
    if (shape->claims.key_id == "k1") {
      EXPECT_EQ(ReasonOf(claims.status()), reason::kTokenSignatureInvalid) << "byte " << at;
    } else {
      EXPECT_EQ(ReasonOf(claims.status()), reason::kTokenKeyUnknown) << "byte " << at;
    }
    EXPECT_EQ(claims.status().code(), absl::StatusCode::kUnauthenticated) << "byte " << at;
    EXPECT_EQ(FieldOf(claims.status()), kEcTokenField);
  }
  // A changed signature byte.
  absl::StatusOr<ParsedEcToken> parsed = ParseEcToken(token);
  ASSERT_TRUE(parsed.ok());
  std::string bad_signature = parsed->signature;
  bad_signature[0] = static_cast<char>(bad_signature[0] ^ 0x80);
  absl::StatusOr<EcTokenClaims> claims =
      VerifyEcToken(TokenOf(bytes, bad_signature), keyring_, At(kIssuedMinute * 60));
  EXPECT_EQ(ReasonOf(claims.status()), reason::kTokenSignatureInvalid);
}

TEST_F(EcTokenTest, SignatureOfAnotherKeyUnderTheSameKeyId) {
  IssuerSigningKey other = NewKey();
  std::string token = IssueOk(other, Claims());  // also says "k1"
  absl::StatusOr<EcTokenClaims> claims = VerifyEcToken(token, keyring_, At(kIssuedMinute * 60));
  ASSERT_FALSE(claims.ok());
  EXPECT_EQ(claims.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(ReasonOf(claims.status()), reason::kTokenSignatureInvalid);
  EXPECT_EQ(FieldOf(claims.status()), kEcTokenField);
}

TEST_F(EcTokenTest, UnknownKeyId) {
  EcTokenClaims c = Claims();
  c.key_id = "k2";
  absl::StatusOr<EcTokenClaims> claims =
      VerifyEcToken(IssueOk(key_, c), keyring_, At(kIssuedMinute * 60));
  ASSERT_FALSE(claims.ok());
  EXPECT_EQ(claims.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(ReasonOf(claims.status()), reason::kTokenKeyUnknown);
  EXPECT_EQ(FieldOf(claims.status()), kEcTokenField);

  IssuerKeyring empty;
  EXPECT_EQ(
      ReasonOf(VerifyEcToken(IssueOk(key_, Claims()), empty, At(kIssuedMinute * 60)).status()),
      reason::kTokenKeyUnknown);
  EXPECT_EQ(ReasonOf(keyring_.VerifySignature("nope", "m", std::string(64, 's'))),
            reason::kTokenKeyUnknown);
  EXPECT_EQ(ReasonOf(keyring_.VerifySignature("k1", "m", std::string(63, 's'))),
            reason::kTokenSignatureInvalid);
}

TEST_F(EcTokenTest, ExpiryAtTheSkewBoundary) {
  std::string token = IssueOk(key_, Claims());
  const int64_t expires = kExpiresMinute * 60;
  EXPECT_TRUE(VerifyEcToken(token, keyring_, At(expires)).ok());
  EXPECT_TRUE(VerifyEcToken(token, keyring_, At(expires + 59)).ok());  // one second inside
  EXPECT_TRUE(VerifyEcToken(token, keyring_, At(expires + 60)).ok());  // exactly at the skew
  absl::StatusOr<EcTokenClaims> late = VerifyEcToken(token, keyring_, At(expires + 61));
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(ReasonOf(late.status()), reason::kTokenExpired);
  EXPECT_EQ(FieldOf(late.status()), kEcTokenField);
  // No skew: the boundary is the expiry itself.
  EXPECT_TRUE(VerifyEcToken(token, keyring_, {.now_unix = expires, .clock_skew_seconds = 0}).ok());
  EXPECT_EQ(
      ReasonOf(VerifyEcToken(token, keyring_, {.now_unix = expires + 1, .clock_skew_seconds = 0})
                   .status()),
      reason::kTokenExpired);
}

TEST_F(EcTokenTest, NotYetValidAtTheSkewBoundary) {
  std::string token = IssueOk(key_, Claims());
  const int64_t issued = kIssuedMinute * 60;
  EXPECT_TRUE(VerifyEcToken(token, keyring_, At(issued - 59)).ok());  // one second inside
  EXPECT_TRUE(VerifyEcToken(token, keyring_, At(issued - 60)).ok());  // exactly at the skew
  absl::StatusOr<EcTokenClaims> early = VerifyEcToken(token, keyring_, At(issued - 61));
  ASSERT_FALSE(early.ok());
  EXPECT_EQ(early.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(ReasonOf(early.status()), reason::kTokenNotYetValid);
  EXPECT_EQ(FieldOf(early.status()), kEcTokenField);
}

TEST_F(EcTokenTest, MalformedBeforeKeysAndClock) {
  // A malformed token is malformed whatever the keyring and the time.
  ExpectMalformed("EC1.AAAA.AAAA", "short");
  absl::StatusOr<EcTokenClaims> claims = VerifyEcToken("EC1.AAAA.AAAA", keyring_, At(0));
  EXPECT_EQ(ReasonOf(claims.status()), reason::kTokenMalformed);
  EXPECT_EQ(FieldOf(claims.status()), kEcTokenField);
}

// ---- Keys ----

class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "ec_token_test.XXXXXX";
    char* made = ::mkdtemp(pattern.data());
    EXPECT_NE(made, nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  void Write(const std::string& name, std::string_view content) const {
    std::ofstream(path_ + "/" + name, std::ios::binary) << content;
  }

 private:
  std::string path_;
};

TEST(EcTokenKeyringTest, LoadsEveryPubPemAndIgnoresOtherFiles) {
  IssuerSigningKey a = NewKey(), b = NewKey();
  TempDir dir;
  dir.Write("k2024.pub.pem", a.PublicKeyPem());
  dir.Write("k2025.pub.pem", b.PublicKeyPem());
  dir.Write("k2025.key.pem", b.PrivateKeyPem());
  dir.Write("README", "not a key");
  dir.Write("k2026.pub.pem.bak", "not a key either");
  absl::StatusOr<IssuerKeyring> keys = IssuerKeyring::LoadDirectory(dir.path());
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_EQ(keys->size(), 2u);
  EXPECT_TRUE(keys->Has("k2024"));
  EXPECT_TRUE(keys->Has("k2025"));
  EXPECT_FALSE(keys->Has("k2026"));

  EcTokenClaims c = Claims();
  c.key_id = "k2024";
  EXPECT_TRUE(VerifyEcToken(IssueOk(a, c), *keys, {.now_unix = kIssuedMinute * 60}).ok());
  c.key_id = "k2025";
  EXPECT_TRUE(VerifyEcToken(IssueOk(b, c), *keys, {.now_unix = kIssuedMinute * 60}).ok());
  EXPECT_EQ(
      ReasonOf(VerifyEcToken(IssueOk(a, c), *keys, {.now_unix = kIssuedMinute * 60}).status()),
      reason::kTokenSignatureInvalid);
}

TEST(EcTokenKeyringTest, RefusesKeysOfOtherAlgorithms) {
  for (std::string_view pem : {kP256PublicPem, kRsaPublicPem, kX25519PublicPem}) {
    TempDir dir;
    dir.Write("p256.pub.pem", pem);
    absl::StatusOr<IssuerKeyring> keys = IssuerKeyring::LoadDirectory(dir.path());
    ASSERT_FALSE(keys.ok());
    EXPECT_EQ(keys.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(ReasonOf(keys.status()), reason::kIssuerKeyInvalid);
    EXPECT_NE(keys.status().message().find("p256.pub.pem"), absl::string_view::npos)
        << keys.status();

    IssuerKeyring ring;
    EXPECT_EQ(ReasonOf(ring.AddPublicKeyPem("x", pem)), reason::kIssuerKeyInvalid);
    EXPECT_EQ(ring.size(), 0u);
  }
}

TEST(EcTokenKeyringTest, RefusesBadFileNamesAndContents) {
  IssuerSigningKey a = NewKey();
  for (const std::string& name : std::vector<std::string>{
           "bad.kid.pub.pem", ".pub.pem", std::string(33, 'k') + ".pub.pem", "k 1.pub.pem"}) {
    TempDir dir;
    dir.Write("good.pub.pem", a.PublicKeyPem());
    dir.Write(name, a.PublicKeyPem());
    absl::StatusOr<IssuerKeyring> keys = IssuerKeyring::LoadDirectory(dir.path());
    ASSERT_FALSE(keys.ok()) << name;
    EXPECT_EQ(ReasonOf(keys.status()), reason::kIssuerKeyInvalid) << name;
  }
  for (const std::string& content : std::vector<std::string>{
           std::string(), "garbage", a.PrivateKeyPem(), a.PublicKeyPem().substr(0, 40)}) {
    TempDir dir;
    dir.Write("k1.pub.pem", content);
    absl::StatusOr<IssuerKeyring> keys = IssuerKeyring::LoadDirectory(dir.path());
    ASSERT_FALSE(keys.ok());
    EXPECT_EQ(ReasonOf(keys.status()), reason::kIssuerKeyInvalid);
  }
  IssuerKeyring ring;
  EXPECT_TRUE(ring.AddPublicKeyPem("k1", a.PublicKeyPem()).ok());
  EXPECT_EQ(ReasonOf(ring.AddPublicKeyPem("k1", a.PublicKeyPem())), reason::kIssuerKeyInvalid);
  EXPECT_EQ(ReasonOf(ring.AddPublicKeyPem("k.2", a.PublicKeyPem())), reason::kIssuerKeyInvalid);
}

TEST(EcTokenKeyringTest, EmptyAndMissingFolders) {
  TempDir dir;
  absl::StatusOr<IssuerKeyring> keys = IssuerKeyring::LoadDirectory(dir.path());
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_EQ(keys->size(), 0u);
  absl::StatusOr<IssuerKeyring> missing = IssuerKeyring::LoadDirectory(dir.path() + "/nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
}

TEST(EcTokenSigningKeyTest, PemRoundTripAndRefusals) {
  IssuerSigningKey a = NewKey();
  std::string pem = a.PrivateKeyPem();
  EXPECT_EQ(pem.rfind("-----BEGIN PRIVATE KEY-----", 0), 0u) << "PKCS#8";
  absl::StatusOr<IssuerSigningKey> again = IssuerSigningKey::FromPrivateKeyPem(pem);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->PublicKeyPem(), a.PublicKeyPem());
  for (std::string_view bad :
       {std::string_view(), std::string_view("garbage"), std::string_view(kP256PublicPem)}) {
    absl::StatusOr<IssuerSigningKey> key = IssuerSigningKey::FromPrivateKeyPem(bad);
    ASSERT_FALSE(key.ok());
    EXPECT_EQ(ReasonOf(key.status()), reason::kIssuerKeyInvalid);
  }
  IssuerSigningKey none;
  EXPECT_FALSE(none.Issue(Claims()).ok());
  EXPECT_EQ(none.PublicKeyPem(), "");
}

// ---- Scopes and helpers ----

TEST(EcTokenScopesTest, NamesAndBits) {
  EXPECT_EQ(ScopesToString(kScopeOutpatient), "outpatient");
  EXPECT_EQ(ScopesToString(kScopeOutpatient | kScopePharmacy), "outpatient,pharmacy");
  EXPECT_EQ(ScopesToString(kAllScopes), "outpatient,pharmacy,inpatient");
  EXPECT_EQ(ScopesToString(0), "");
  EXPECT_EQ(*ParseScopes("outpatient,pharmacy"), kScopeOutpatient | kScopePharmacy);
  EXPECT_EQ(*ParseScopes("inpatient"), kScopeInpatient);
  EXPECT_EQ(*ParseScopes("pharmacy,outpatient,pharmacy"), kScopeOutpatient | kScopePharmacy);
  EXPECT_EQ(*ParseScopes("outpatient, inpatient"), kScopeOutpatient | kScopeInpatient);
  for (uint8_t bits = 1; bits <= kAllScopes; ++bits) {
    EXPECT_EQ(*ParseScopes(ScopesToString(bits)), bits);
  }
  for (std::string_view bad : {"", ",", "outpatient,", ",pharmacy", "outpatient,,pharmacy",
                               "dental", "Outpatient", "outpatient;pharmacy"}) {
    absl::StatusOr<uint8_t> scopes = ParseScopes(bad);
    ASSERT_FALSE(scopes.ok()) << bad;
    EXPECT_EQ(scopes.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(EcTokenHelpersTest, KeyIdAndHex) {
  EXPECT_TRUE(IsValidKeyId("k"));
  EXPECT_TRUE(IsValidKeyId(std::string(32, 'Z')));
  EXPECT_FALSE(IsValidKeyId(""));
  EXPECT_FALSE(IsValidKeyId(std::string(33, 'Z')));
  EXPECT_FALSE(IsValidKeyId("a.b"));
  EXPECT_TRUE(IsLowerHex(kPersonKey, 64));
  EXPECT_FALSE(IsLowerHex(kPersonKey, 32));
  EXPECT_FALSE(IsLowerHex("ABCDEF", 6));
}

}  // namespace
}  // namespace medsettle::credentials
