#include "cache/person_key.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdlib>
#include <utility>

#include "engine/status.h"
#include "engine/text.h"

namespace medsettle::cache {
namespace {

constexpr size_t kIdNumberLength = 18;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

absl::StatusOr<std::string> NormalizeIdNumber(std::string_view raw) {
  size_t begin = 0;
  size_t end = raw.size();
  while (begin < end && raw[begin] == ' ') ++begin;
  while (end > begin && raw[end - 1] == ' ') --end;
  std::string id(raw.substr(begin, end - begin));

  // The shape: 17 digits, then a digit or X. The message says what is wrong
  // but never repeats the number (it is personal data).
  if (id.size() != kIdNumberLength) {
    return engine::InvalidField(
        reason::kIdNumberInvalid, kIdCardNoField,
        engine::Cat("an ID number has 18 characters, not ", id.size()));
  }
  if (id.back() == 'x') id.back() = 'X';
  for (size_t i = 0; i + 1 < kIdNumberLength; ++i) {
    if (!IsDigit(id[i])) {
      return engine::InvalidField(
          reason::kIdNumberInvalid, kIdCardNoField,
          engine::Cat("character ", i + 1, " of the ID number is not a digit"));
    }
  }
  if (!IsDigit(id.back()) && id.back() != 'X') {
    return engine::InvalidField(reason::kIdNumberInvalid, kIdCardNoField,
                                "the last character of the ID number is not a digit or X");
  }
  // GB 11643-1999 check digit and region/birth-date plausibility: a later
  // issue adds them here, after the shape check (see the header).
  return id;
}

absl::StatusOr<PersonKeyer> PersonKeyer::Create(std::string_view secret) {
  if (secret.size() < kMinSecretBytes) {
    return engine::InvalidField(
        reason::kPersonKeySecretTooShort, "",
        engine::Cat("the person-key secret has ", secret.size(), " bytes; at least ",
                    kMinSecretBytes, " are required"));
  }
  return PersonKeyer(std::string(secret));
}

PersonKeyer::PersonKeyer(std::string secret) : secret_(std::move(secret)) {}

PersonKeyer::PersonKeyer(PersonKeyer&& other) noexcept : secret_(std::move(other.secret_)) {
  other.Wipe();
}

PersonKeyer& PersonKeyer::operator=(PersonKeyer&& other) noexcept {
  if (this != &other) {
    Wipe();
    secret_ = std::move(other.secret_);
    other.Wipe();
  }
  return *this;
}

PersonKeyer::~PersonKeyer() { Wipe(); }

void PersonKeyer::Wipe() {
  if (!secret_.empty()) OPENSSL_cleanse(secret_.data(), secret_.size());
  secret_.clear();
}

absl::StatusOr<std::string> PersonKeyer::KeyOfIdNumber(std::string_view raw) const {
  absl::StatusOr<std::string> normalized = NormalizeIdNumber(raw);
  if (!normalized.ok()) return normalized.status();
  return KeyOfNormalized(*normalized);
}

std::string PersonKeyer::KeyOfNormalized(std::string_view normalized) const {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_length = 0;
  const unsigned char* ok =
      HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
           reinterpret_cast<const unsigned char*>(normalized.data()), normalized.size(), mac,
           &mac_length);
  // HMAC-SHA256 fails only if OpenSSL itself is broken (no SHA-256, no
  // memory); a person key must never be computed any other way.
  if (ok == nullptr || mac_length != 32) std::abort();
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * mac_length);
  for (unsigned int i = 0; i < mac_length; ++i) {
    hex.push_back(kHex[mac[i] >> 4]);
    hex.push_back(kHex[mac[i] & 0x0f]);
  }
  return hex;
}

}  // namespace medsettle::cache
