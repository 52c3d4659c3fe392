// The e-insurance code: the strict base64url codec, the payload reader and
// writer, and Ed25519 through OpenSSL's EVP interface (ec_token.h is the
// format's definition).
#include "gateway/credentials/ec_token.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <climits>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>
#include <utility>
#include <vector>

#include "engine/status.h"
#include "engine/text.h"
#include "gateway/credentials/openssl_ptr.h"

namespace medsettle::credentials {

using engine::Cat;

namespace {

constexpr size_t kRawKeyBytes = 32;
constexpr size_t kNonceBytes = 16;
constexpr size_t kSignatureBytes = 64;
constexpr uint8_t kVersion = 1;
constexpr uint8_t kFlagPresenter = 1;
// A PEM key file is a few hundred bytes; anything far larger is not one.
constexpr size_t kMaxPemBytes = 64 * 1024;

absl::Status Malformed(std::string_view message) {
  return engine::Refusal(absl::StatusCode::kInvalidArgument, reason::kTokenMalformed, kEcTokenField,
                         message);
}

absl::Status Unauthenticated(std::string_view why, std::string_view message) {
  return engine::Refusal(absl::StatusCode::kUnauthenticated, why, kEcTokenField, message);
}

absl::Status KeyInvalid(std::string_view message) {
  // Drop whatever OpenSSL queued so it never surfaces in an unrelated call.
  ERR_clear_error();
  return engine::Refusal(absl::StatusCode::kInvalidArgument, reason::kIssuerKeyInvalid, "",
                         message);
}

// ---- base64url (RFC 4648 §5), strict: no padding, canonical only ----

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int Sextet(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

std::string Base64UrlEncode(std::string_view in) {
  std::string out;
  out.reserve((in.size() * 4 + 2) / 3);
  size_t k = 0;
  for (; k + 3 <= in.size(); k += 3) {
    uint32_t v = static_cast<uint32_t>(static_cast<unsigned char>(in[k])) << 16 |
                 static_cast<uint32_t>(static_cast<unsigned char>(in[k + 1])) << 8 |
                 static_cast<uint32_t>(static_cast<unsigned char>(in[k + 2]));
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  size_t rest = in.size() - k;
  if (rest == 1) {
    uint32_t v = static_cast<uint32_t>(static_cast<unsigned char>(in[k])) << 16;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
  } else if (rest == 2) {
    uint32_t v = static_cast<uint32_t>(static_cast<unsigned char>(in[k])) << 16 |
                 static_cast<uint32_t>(static_cast<unsigned char>(in[k + 1])) << 8;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
  }
  return out;
}

// False for any character outside the alphabet (padding included), a
// length ≡ 1 (mod 4), or unused trailing bits that are not zero (so every
// byte string has exactly one accepted encoding).
bool Base64UrlDecode(std::string_view in, std::string* out) {
  out->clear();
  if (in.size() % 4 == 1) return false;
  out->reserve(in.size() / 4 * 3 + 2);
  uint32_t acc = 0;
  int bits = 0;
  for (char ch : in) {
    int s = Sextet(static_cast<unsigned char>(ch));
    if (s < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(s);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xFF));
      acc &= (1u << bits) - 1;
    }
  }
  // 2 or 4 bits left over: they must be zero.
  return acc == 0;
}

// Hex: engine::LowerHex and engine::BytesOfLowerHex (engine/text.h).
std::string ToHex(std::string_view raw) { return engine::LowerHex(raw); }
std::string FromHex(std::string_view hex) { return engine::BytesOfLowerHex(hex); }

// ---- payload ----

// Bounds-checked big-endian reads over the payload; every read fails
// (returns false) rather than run past the end.
class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}
  bool U8(uint8_t* v) {
    if (pos_ >= data_.size()) return false;
    *v = static_cast<uint8_t>(data_[pos_++]);
    return true;
  }
  bool U32(uint32_t* v) {
    if (data_.size() - pos_ < 4) return false;
    uint32_t r = 0;
    for (int k = 0; k < 4; ++k) r = r << 8 | static_cast<unsigned char>(data_[pos_++]);
    *v = r;
    return true;
  }
  bool Bytes(size_t n, std::string_view* v) {
    if (data_.size() - pos_ < n) return false;
    *v = data_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  bool AtEnd() const { return pos_ == data_.size(); }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

void PutU32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((v >> shift) & 0xFF));
}

// The rules a payload and claims to issue share.
absl::Status CheckScopesAndWindow(uint8_t scopes, int64_t issued_at_minute,
                                  int64_t expires_at_minute) {
  if (scopes == 0) return Malformed("the token names no scope");
  if ((scopes & ~kAllScopes) != 0) return Malformed("the token names an unknown scope bit");
  if (expires_at_minute <= issued_at_minute) {
    return Malformed("the token expires at or before its issue time");
  }
  return absl::OkStatus();
}

absl::StatusOr<EcTokenClaims> DecodePayload(std::string_view payload) {
  Reader r(payload);
  EcTokenClaims c;
  uint8_t version = 0, kid_length = 0, flags = 0, scopes = 0;
  uint32_t issued = 0, expires = 0;
  std::string_view kid, person, presenter, nonce;
  if (!r.U8(&version)) return Malformed("the payload is empty");
  if (version != kVersion) return Malformed("unsupported token version");
  if (!r.U8(&kid_length) || !r.Bytes(kid_length, &kid)) {
    return Malformed("the payload is truncated in the key id");
  }
  if (!IsValidKeyId(kid)) {
    return Malformed(Cat("the key id must be 1..", kMaxKeyIdLength, " of [A-Za-z0-9_-]"));
  }
  if (!r.Bytes(kRawKeyBytes, &person))
    return Malformed("the payload is truncated in the person key");
  if (!r.U8(&flags)) return Malformed("the payload is truncated in the flags");
  if ((flags & ~kFlagPresenter) != 0) return Malformed("the token sets an unknown flag bit");
  if ((flags & kFlagPresenter) != 0 && !r.Bytes(kRawKeyBytes, &presenter)) {
    return Malformed("the payload is truncated in the presenter key");
  }
  if (!r.U32(&issued) || !r.U32(&expires)) {
    return Malformed("the payload is truncated in the validity times");
  }
  if (!r.Bytes(kNonceBytes, &nonce)) return Malformed("the payload is truncated in the nonce");
  if (!r.U8(&scopes)) return Malformed("the payload is truncated in the scopes");
  if (!r.AtEnd()) return Malformed("the payload has bytes after the scopes");
  if (absl::Status s = CheckScopesAndWindow(scopes, issued, expires); !s.ok()) return s;
  c.key_id = std::string(kid);
  c.person_key = ToHex(person);
  if ((flags & kFlagPresenter) != 0) c.presenter_key = ToHex(presenter);
  c.issued_at_minute = issued;
  c.expires_at_minute = expires;
  c.nonce = ToHex(nonce);
  c.scopes = scopes;
  return c;
}

bool FitsU32(int64_t v) { return v >= 0 && v <= static_cast<int64_t>(UINT32_MAX); }

// The payload of `claims` with `nonce_hex` (32 lowercase hex), after every
// format check.
absl::StatusOr<std::string> EncodePayload(const EcTokenClaims& claims, std::string_view nonce_hex) {
  if (!IsValidKeyId(claims.key_id)) {
    return Malformed(Cat("the key id must be 1..", kMaxKeyIdLength, " of [A-Za-z0-9_-]"));
  }
  if (!IsLowerHex(claims.person_key, 2 * kRawKeyBytes)) {
    return Malformed("the person key must be 64 lowercase hex characters");
  }
  if (!claims.presenter_key.empty() && !IsLowerHex(claims.presenter_key, 2 * kRawKeyBytes)) {
    return Malformed("the presenter key must be empty or 64 lowercase hex characters");
  }
  if (!IsLowerHex(nonce_hex, 2 * kNonceBytes)) {
    return Malformed("the nonce must be empty or 32 lowercase hex characters");
  }
  if (!FitsU32(claims.issued_at_minute) || !FitsU32(claims.expires_at_minute)) {
    return Malformed("issue and expiry times must be Unix minutes from 0 to 2^32-1");
  }
  if (absl::Status s =
          CheckScopesAndWindow(claims.scopes, claims.issued_at_minute, claims.expires_at_minute);
      !s.ok()) {
    return s;
  }
  std::string p;
  p.push_back(static_cast<char>(kVersion));
  p.push_back(static_cast<char>(claims.key_id.size()));
  p += claims.key_id;
  p += FromHex(claims.person_key);
  p.push_back(static_cast<char>(claims.presenter_key.empty() ? 0 : kFlagPresenter));
  if (!claims.presenter_key.empty()) p += FromHex(claims.presenter_key);
  PutU32(p, static_cast<uint32_t>(claims.issued_at_minute));
  PutU32(p, static_cast<uint32_t>(claims.expires_at_minute));
  p += FromHex(nonce_hex);
  p.push_back(static_cast<char>(claims.scopes));
  return p;
}

// ---- OpenSSL key loading ----

bool IsEd25519(const EVP_PKEY* key) { return EVP_PKEY_id(key) == EVP_PKEY_ED25519; }

std::string WritePem(EVP_PKEY* key, bool private_key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || key == nullptr) return "";
  int ok = private_key
               ? PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr)
               : PEM_write_bio_PUBKEY(bio.get(), key);
  if (ok != 1) {
    ERR_clear_error();
    return "";
  }
  char* data = nullptr;
  long size = BIO_get_mem_data(bio.get(), &data);
  if (size <= 0 || data == nullptr) return "";
  return std::string(data, static_cast<size_t>(size));
}

}  // namespace

bool IsValidKeyId(std::string_view key_id) {
  if (key_id.empty() || key_id.size() > kMaxKeyIdLength) return false;
  return std::all_of(key_id.begin(), key_id.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
  });
}

bool IsLowerHex(std::string_view hex, size_t length) {
  return hex.size() == length && engine::IsLowerHex(hex);
}

// ---- scopes ----

namespace {
struct ScopeName {
  Scope bit;
  std::string_view name;
};
constexpr ScopeName kScopeNames[] = {
    {kScopeOutpatient, "outpatient"}, {kScopePharmacy, "pharmacy"}, {kScopeInpatient, "inpatient"}};
}  // namespace

std::string ScopesToString(uint8_t scopes) {
  std::string out;
  for (const ScopeName& s : kScopeNames) {
    if ((scopes & s.bit) == 0) continue;
    if (!out.empty()) out.push_back(',');
    out += s.name;
  }
  return out;
}

absl::StatusOr<uint8_t> ParseScopes(std::string_view names) {
  uint8_t scopes = 0;
  size_t start = 0;
  while (true) {
    size_t comma = names.find(',', start);
    std::string_view name = names.substr(
        start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
    while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
    if (name.empty()) return Malformed("empty scope name (outpatient, pharmacy, inpatient)");
    bool known = false;
    for (const ScopeName& s : kScopeNames) {
      if (name == s.name) {
        scopes = static_cast<uint8_t>(scopes | s.bit);
        known = true;
      }
    }
    if (!known) {
      return Malformed(Cat("unknown scope \"", name, "\" (outpatient, pharmacy, inpatient)"));
    }
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return scopes;
}

// ---- parsing ----

absl::StatusOr<ParsedEcToken> ParseEcToken(std::string_view token) {
  if (token.size() > kMaxTokenLength) {
    return Malformed(Cat("the token is longer than ", kMaxTokenLength, " characters"));
  }
  if (token.substr(0, kTokenPrefix.size()) != kTokenPrefix) {
    return Malformed("the token does not start with EC1.");
  }
  std::string_view rest = token.substr(kTokenPrefix.size());
  size_t dot = rest.find('.');
  if (dot == std::string_view::npos) return Malformed("the token has no signature part");
  std::string_view payload_text = rest.substr(0, dot);
  std::string_view signature_text = rest.substr(dot + 1);
  ParsedEcToken parsed;
  std::string payload;
  if (!Base64UrlDecode(payload_text, &payload)) {
    return Malformed("the payload is not canonical unpadded base64url");
  }
  if (!Base64UrlDecode(signature_text, &parsed.signature)) {
    return Malformed("the signature is not canonical unpadded base64url");
  }
  if (parsed.signature.size() != kSignatureBytes) {
    return Malformed(Cat("the signature must be ", kSignatureBytes, " bytes"));
  }
  absl::StatusOr<EcTokenClaims> claims = DecodePayload(payload);
  if (!claims.ok()) return claims.status();
  parsed.claims = *std::move(claims);
  parsed.signed_message.reserve(kSignatureContext.size() + payload.size());
  parsed.signed_message += kSignatureContext;
  parsed.signed_message += payload;
  return parsed;
}

// ---- IssuerKeyring ----

struct IssuerKeyring::Key {
  PkeyPtr pkey;
};

IssuerKeyring::IssuerKeyring() = default;
IssuerKeyring::~IssuerKeyring() = default;
IssuerKeyring::IssuerKeyring(IssuerKeyring&&) noexcept = default;
IssuerKeyring& IssuerKeyring::operator=(IssuerKeyring&&) noexcept = default;

absl::Status IssuerKeyring::AddPublicKeyPem(std::string_view key_id, std::string_view pem) {
  if (!IsValidKeyId(key_id)) {
    return KeyInvalid(Cat("the key id must be 1..", kMaxKeyIdLength, " of [A-Za-z0-9_-]"));
  }
  if (keys_.count(key_id) > 0) return KeyInvalid(Cat("key id ", key_id, " is already loaded"));
  if (pem.empty() || pem.size() > kMaxPemBytes) {
    return KeyInvalid(Cat("key ", key_id, ": not a PEM public key"));
  }
  BioPtr bio = MemBio(pem);
  if (bio == nullptr) return KeyInvalid("out of memory reading a key");
  PkeyPtr pkey(PEM_read_bio_PUBKEY(bio.get(), nullptr, NoPassphrase, nullptr));
  if (pkey == nullptr) return KeyInvalid(Cat("key ", key_id, ": not a PEM public key"));
  if (!IsEd25519(pkey.get())) {
    return KeyInvalid(Cat("key ", key_id, ": not an Ed25519 key"));
  }
  auto key = std::make_unique<Key>();
  key->pkey = std::move(pkey);
  keys_.emplace(std::string(key_id), std::move(key));
  return absl::OkStatus();
}

absl::StatusOr<IssuerKeyring> IssuerKeyring::LoadDirectory(const std::string& dir) {
  namespace fs = std::filesystem;
  constexpr std::string_view kSuffix = ".pub.pem";
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) {
    return engine::Refusal(absl::StatusCode::kNotFound, reason::kIssuerKeyInvalid, "",
                           Cat("cannot read the issuer key folder ", dir, ": ", ec.message()));
  }
  std::vector<fs::path> files;
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) break;
    std::string name = it->path().filename().string();
    if (name.size() < kSuffix.size() ||
        std::string_view(name).substr(name.size() - kSuffix.size()) != kSuffix) {
      continue;
    }
    files.push_back(it->path());
  }
  if (ec) {
    return engine::Refusal(absl::StatusCode::kNotFound, reason::kIssuerKeyInvalid, "",
                           Cat("cannot read the issuer key folder ", dir, ": ", ec.message()));
  }
  std::sort(files.begin(), files.end());
  IssuerKeyring keyring;
  for (const fs::path& path : files) {
    std::string name = path.filename().string();
    std::string key_id = name.substr(0, name.size() - kSuffix.size());
    if (!IsValidKeyId(key_id)) {
      return KeyInvalid(Cat(path.string(), ": the name must be KID.pub.pem with KID 1..",
                            kMaxKeyIdLength, " of [A-Za-z0-9_-]"));
    }
    std::ifstream in(path, std::ios::binary);
    std::string pem;
    if (in) {
      pem.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    if (!in) return KeyInvalid(Cat(path.string(), ": cannot read the file"));
    if (absl::Status s = keyring.AddPublicKeyPem(key_id, pem); !s.ok()) {
      return KeyInvalid(
          Cat(path.string(), ": ", std::string_view(s.message().data(), s.message().size())));
    }
  }
  return keyring;
}

size_t IssuerKeyring::size() const { return keys_.size(); }

bool IssuerKeyring::Has(std::string_view key_id) const { return keys_.count(key_id) > 0; }

absl::Status IssuerKeyring::VerifySignature(std::string_view key_id, std::string_view message,
                                            std::string_view signature) const {
  auto it = keys_.find(key_id);
  if (it == keys_.end()) {
    return Unauthenticated(reason::kTokenKeyUnknown, "the token's key id names no issuer key");
  }
  static constexpr std::string_view kBad = "the token's signature does not verify";
  if (signature.size() != kSignatureBytes) {
    return Unauthenticated(reason::kTokenSignatureInvalid, kBad);
  }
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (ctx == nullptr) return absl::ResourceExhaustedError("out of memory verifying a token");
  bool ok =
      EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, it->second->pkey.get()) == 1 &&
      EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                       signature.size(), reinterpret_cast<const unsigned char*>(message.data()),
                       message.size()) == 1;
  if (!ok) {
    ERR_clear_error();
    return Unauthenticated(reason::kTokenSignatureInvalid, kBad);
  }
  return absl::OkStatus();
}

absl::Status VerifyParsedEcToken(const ParsedEcToken& parsed, const IssuerKeyring& keys,
                                 const VerifyOptions& options) {
  if (absl::Status s =
          keys.VerifySignature(parsed.claims.key_id, parsed.signed_message, parsed.signature);
      !s.ok()) {
    return s;
  }
  const EcTokenClaims& c = parsed.claims;
  if (options.max_lifetime_minutes > 0 &&
      c.expires_at_minute - c.issued_at_minute > options.max_lifetime_minutes) {
    return Unauthenticated(reason::kTokenLifetimeTooLong,
                           Cat("the token is valid for ", c.expires_at_minute - c.issued_at_minute,
                               " minutes; at most ", options.max_lifetime_minutes,
                               " are accepted"));
  }
  // Times are u32 minutes, so ×60 and the skew stay far inside int64; the
  // clock is clamped to the same range so that no sum can overflow.
  const int64_t skew = options.clock_skew_seconds;
  const int64_t now = std::clamp<int64_t>(options.now_unix, 0, int64_t{1} << 40);
  if (now > c.expires_at_minute * 60 + skew) {
    return Unauthenticated(reason::kTokenExpired, "the token has expired");
  }
  if (c.issued_at_minute * 60 > now + skew) {
    return Unauthenticated(reason::kTokenNotYetValid,
                           "the token is not valid yet (issued in the future)");
  }
  return absl::OkStatus();
}

absl::StatusOr<EcTokenClaims> VerifyEcToken(std::string_view token, const IssuerKeyring& keys,
                                            const VerifyOptions& options) {
  absl::StatusOr<ParsedEcToken> parsed = ParseEcToken(token);
  if (!parsed.ok()) return parsed.status();
  if (absl::Status s = VerifyParsedEcToken(*parsed, keys, options); !s.ok()) return s;
  return std::move(parsed->claims);
}

// ---- IssuerSigningKey ----

struct IssuerSigningKey::Key {
  PkeyPtr pkey;
};

IssuerSigningKey::IssuerSigningKey() = default;
IssuerSigningKey::~IssuerSigningKey() = default;
IssuerSigningKey::IssuerSigningKey(IssuerSigningKey&&) noexcept = default;
IssuerSigningKey& IssuerSigningKey::operator=(IssuerSigningKey&&) noexcept = default;

absl::StatusOr<IssuerSigningKey> IssuerSigningKey::Generate() {
  PkeyPtr pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  if (pkey == nullptr) {
    ERR_clear_error();
    return absl::InternalError("generating an Ed25519 key failed");
  }
  IssuerSigningKey key;
  key.key_ = std::make_unique<Key>();
  key.key_->pkey = std::move(pkey);
  return key;
}

absl::StatusOr<IssuerSigningKey> IssuerSigningKey::FromPrivateKeyPem(std::string_view pem) {
  if (pem.empty() || pem.size() > kMaxPemBytes) return KeyInvalid("not a PEM private key");
  BioPtr bio = MemBio(pem);
  if (bio == nullptr) return KeyInvalid("out of memory reading a key");
  PkeyPtr pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  if (pkey == nullptr) return KeyInvalid("not an unencrypted PEM private key");
  if (!IsEd25519(pkey.get())) return KeyInvalid("not an Ed25519 key");
  IssuerSigningKey key;
  key.key_ = std::make_unique<Key>();
  key.key_->pkey = std::move(pkey);
  return key;
}

std::string IssuerSigningKey::PrivateKeyPem() const {
  return key_ == nullptr ? std::string() : WritePem(key_->pkey.get(), true);
}

std::string IssuerSigningKey::PublicKeyPem() const {
  return key_ == nullptr ? std::string() : WritePem(key_->pkey.get(), false);
}

absl::StatusOr<std::string> IssuerSigningKey::Issue(const EcTokenClaims& claims) const {
  if (key_ == nullptr) return absl::FailedPreconditionError("no signing key loaded");
  std::string nonce_hex = claims.nonce;
  if (nonce_hex.empty()) {
    std::array<unsigned char, kNonceBytes> nonce{};
    if (RAND_bytes(nonce.data(), static_cast<int>(nonce.size())) != 1) {
      ERR_clear_error();
      return absl::InternalError("the random generator failed");
    }
    nonce_hex = ToHex(std::string_view(reinterpret_cast<const char*>(nonce.data()), nonce.size()));
  }
  absl::StatusOr<std::string> payload = EncodePayload(claims, nonce_hex);
  if (!payload.ok()) return payload.status();
  std::string message = Cat(kSignatureContext, *payload);
  MdCtxPtr ctx(EVP_MD_CTX_new());
  std::array<unsigned char, kSignatureBytes> signature{};
  size_t signature_size = signature.size();
  if (ctx == nullptr ||
      EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key_->pkey.get()) != 1 ||
      EVP_DigestSign(ctx.get(), signature.data(), &signature_size,
                     reinterpret_cast<const unsigned char*>(message.data()), message.size()) != 1 ||
      signature_size != kSignatureBytes) {
    ERR_clear_error();
    return absl::InternalError("signing the token failed");
  }
  return Cat(kTokenPrefix, Base64UrlEncode(*payload), ".",
             Base64UrlEncode(std::string_view(reinterpret_cast<const char*>(signature.data()),
                                              signature.size())));
}

}  // namespace medsettle::credentials
