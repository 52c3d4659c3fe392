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

int DigitsAt(std::string_view s, size_t at, size_t count) {
  int value = 0;
  for (size_t i = at; i < at + count; ++i) value = value * 10 + (s[i] - '0');
  return value;
}

// Province-level codes of GB/T 2260 (the first two digits): 11–15 north,
// 21–23 north-east, 31–37 east, 41–46 south-central, 50–54 south-west,
// 61–65 north-west, 71 Taiwan, 81–82 Hong Kong and Macao (residence
// permits use 83, and are resident ID numbers in shape).
bool IsProvinceCode(int code) {
  return (code >= 11 && code <= 15) || (code >= 21 && code <= 23) ||
         (code >= 31 && code <= 37) || (code >= 41 && code <= 46) ||
         (code >= 50 && code <= 54) || (code >= 61 && code <= 65) || code == 71 ||
         (code >= 81 && code <= 83);
}

bool IsCalendarDate(int year, int month, int day) {
  if (year < 1900 || month < 1 || month > 12 || day < 1) return false;
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  const int days = kDays[month - 1] + (month == 2 && leap ? 1 : 0);
  return day <= days;
}

}  // namespace

char IdNumberCheckCharacter(std::string_view first17) {
  // ISO 7064 MOD 11-2: weights 2^(17-i) mod 11, remainder mapped to
  // 1 0 X 9 8 7 6 5 4 3 2.
  static constexpr int kWeights[] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
  static constexpr char kCheck[] = "10X98765432";
  int sum = 0;
  for (size_t i = 0; i < 17; ++i) sum += (first17[i] - '0') * kWeights[i];
  return kCheck[sum % 11];
}

std::string MaskIdNumber(std::string_view id_number) {
  if (id_number.size() <= 8) return std::string(id_number.size(), '*');
  std::string masked(id_number);
  for (size_t i = 4; i + 4 < masked.size(); ++i) masked[i] = '*';
  return masked;
}

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
  // Plausibility, then the check digit (GB 11643-1999). The messages name
  // the part that is wrong, never the number.
  if (!IsProvinceCode(DigitsAt(id, 0, 2))) {
    return engine::InvalidField(reason::kIdNumberInvalid, kIdCardNoField,
                                "the ID number's first two digits are not a province code");
  }
  if (!IsCalendarDate(DigitsAt(id, 6, 4), DigitsAt(id, 10, 2), DigitsAt(id, 12, 2))) {
    return engine::InvalidField(reason::kIdNumberInvalid, kIdCardNoField,
                                "digits 7–14 of the ID number are not a birth date");
  }
  if (IdNumberCheckCharacter(id) != id.back()) {
    return engine::InvalidField(reason::kIdNumberCheckDigit, kIdCardNoField,
                                "the ID number's check character does not match its first 17 "
                                "digits (GB 11643): mistyped?");
  }
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
  return engine::LowerHex(std::string_view(reinterpret_cast<const char*>(mac), mac_length));
}

}  // namespace medsettle::cache
