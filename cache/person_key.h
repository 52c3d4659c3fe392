// The pseudonymous person key: HMAC-SHA256 of the normalised resident ID
// number under a secret key, as 64 lowercase hex characters. It names a
// person in Redis (and is the hash tag of all of that person's keys), so the
// raw number never reaches Redis or the logs. Without the secret the key
// cannot be recomputed from an ID number, and the same number always gives
// the same key under the same secret: rotating the secret means reloading
// every snapshot and migrating accumulators (docs/OPERATIONS.md).
#ifndef MEDSETTLE_CACHE_PERSON_KEY_H_
#define MEDSETTLE_CACHE_PERSON_KEY_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace medsettle::cache {

namespace reason {
// INVALID_ARGUMENT, field kIdCardNoField: not 17 digits and a digit or X,
// or the first two digits are no province code, or digits 7–14 no date.
inline constexpr std::string_view kIdNumberInvalid = "ID_NUMBER_INVALID";
// INVALID_ARGUMENT, field kIdCardNoField: well-formed, but the 18th
// character is not the GB 11643 check character of the first 17 digits
// (almost always a typing error).
inline constexpr std::string_view kIdNumberCheckDigit = "ID_NUMBER_CHECK_DIGIT_MISMATCH";
// INVALID_ARGUMENT (configuration): the pseudonymisation secret is shorter
// than PersonKeyer::kMinSecretBytes.
inline constexpr std::string_view kPersonKeySecretTooShort = "PERSON_KEY_SECRET_TOO_SHORT";
}  // namespace reason

// The request field an ID number comes from (proto: credential.id_card_no).
inline constexpr std::string_view kIdCardNoField = "credential.id_card_no";

// The 18-character resident ID number (居民身份证号码, GB 11643-1999) in
// canonical form: leading and trailing ASCII spaces removed, a final
// lowercase 'x' made 'X'. Accepted when it is exactly 17 ASCII digits
// followed by a digit or 'X', the first two digits are a province code,
// digits 7–14 a calendar date from 1900 on, and the last character the
// GB 11643 check character (ISO 7064 MOD 11-2) of the first 17. Otherwise
// INVALID_ARGUMENT with field kIdCardNoField: kIdNumberCheckDigit for a
// wrong check character, kIdNumberInvalid for the rest. The message never
// contains the number. Every credential that carries an ID number (the ID
// card, the insurance card) passes through here before pseudonymisation.
absl::StatusOr<std::string> NormalizeIdNumber(std::string_view raw);

// The GB 11643 check character ('0'–'9' or 'X') of 17 ASCII digits.
// REQUIRES: first17 holds at least 17 ASCII digits.
char IdNumberCheckCharacter(std::string_view first17);

// An ID number for logs and responses: the first 4 and last 4 characters,
// '*' between ("3308**********0012"); anything of 8 characters or fewer is
// all '*'. Personal data never leaves the gateway in any other form.
std::string MaskIdNumber(std::string_view id_number);

// Computes person keys under one secret. Immutable after creation and safe
// to use from many threads at once. The secret is wiped from memory when the
// keyer is destroyed. Movable, not copyable (one copy of the secret).
class PersonKeyer {
 public:
  // RFC 2104 §3: a key shorter than the hash output (32 bytes) is
  // strongly discouraged.
  static constexpr size_t kMinSecretBytes = 32;

  // A keyer for `secret` (raw bytes, e.g. read from the key file).
  // INVALID_ARGUMENT kPersonKeySecretTooShort when secret.size() <
  // kMinSecretBytes.
  static absl::StatusOr<PersonKeyer> Create(std::string_view secret);

  PersonKeyer(PersonKeyer&& other) noexcept;
  PersonKeyer& operator=(PersonKeyer&& other) noexcept;
  PersonKeyer(const PersonKeyer&) = delete;
  PersonKeyer& operator=(const PersonKeyer&) = delete;
  ~PersonKeyer();

  // The key of a raw ID number: NormalizeIdNumber, then KeyOfNormalized.
  // Refusals are NormalizeIdNumber's.
  absl::StatusOr<std::string> KeyOfIdNumber(std::string_view raw) const;

  // HMAC-SHA256(secret, normalized) as 64 lowercase hex characters.
  // REQUIRES: `normalized` came from NormalizeIdNumber (not re-checked).
  std::string KeyOfNormalized(std::string_view normalized) const;

 private:
  explicit PersonKeyer(std::string secret);
  void Wipe();

  std::string secret_;
};

}  // namespace medsettle::cache

#endif  // MEDSETTLE_CACHE_PERSON_KEY_H_
