// The packed binary form of an enrollment record and of an institution as
// the snapshot stores them in Redis (docs/REDIS-KEYS.md): small enough that
// about 15 records fit a hash bucket in Redis's compact listpack encoding.
//
// Format version 1 (all integers LEB128 varints; signed ones zigzag):
//   Enrollment: [1] [category:3 | assistance:3 | status:2] [flags varint]
//     [year-2000 s] [region s] [tier s]
//     [birth: days since 2000-01-01 s]            if flags & kHasBirthDate
//     [paid: days since 1 January of year s]      if flags & kHasPaidDate
//     [n][len bytes]... chronic conditions        if flags & kHasLists
//     [n][len bytes]... special diseases          if flags & kHasLists
//     [n]([region s][start s][end-start s])...    if flags & kHasLists
//     [len bytes] supplementary product           if flags & kHasProduct
//     [voucher revoked at, unix seconds s]        if flags & kHasVoucherRevoked
//     [n 1..16]([32 raw bytes])... family presenter keys, strictly
//       ascending                                 if flags & kHasFamilyPresenters
//   Institution: [1] [kind:2 | zero_markup | tcm | children_or_maternal |
//     base_level | suspended] [level s] [region s] [len bytes] name
// The person key and the institution id are not encoded: they are the
// Redis hash field, and the reader fills them in. A typical adult record
// (no lists, no product) is 13 bytes; each family presenter adds 32.
// Optional parts are added behind a new flag bit, so records written before
// a part existed (flag clear) still decode: the family presenters
// (kHasFamilyPresenters, bit 10) were added that way within version 1.
//
// Pure functions; thread-safe.
#ifndef MEDSETTLE_CACHE_ENROLLMENT_CODEC_H_
#define MEDSETTLE_CACHE_ENROLLMENT_CODEC_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/types.h"

namespace medsettle::cache {

namespace reason {
// INTERNAL: a stored snapshot record could not be decoded (truncated,
// trailing bytes, an unknown format version or an out-of-range value).
// The data in Redis is damaged or written by a newer format; reload.
inline constexpr std::string_view kSnapshotRecordCorrupt = "SNAPSHOT_RECORD_CORRUPT";
// INVALID_ARGUMENT, field kFamilyPresenterKeysField: an enrollment's
// family_presenter_keys cannot be stored: a key is not 64 lowercase hex
// characters, the keys are not sorted or repeat one, there are more than
// kMaxFamilyPresenters, or one is the person's own key.
inline constexpr std::string_view kFamilyPresentersInvalid = "FAMILY_PRESENTERS_INVALID";
}  // namespace reason

inline constexpr std::string_view kFamilyPresenterKeysField = "family_presenter_keys";

// The most family members that may present for one person (亲情账户).
inline constexpr size_t kMaxFamilyPresenters = 16;

// The format version written by the Encode functions.
inline constexpr uint8_t kSnapshotRecordFormat = 1;

// OK when `keys` can be stored as an enrollment's family_presenter_keys of
// the person `person_key` (may be empty: not checked against): at most
// kMaxFamilyPresenters keys of 64 lowercase hex characters, strictly
// ascending (sorted, no duplicates), none equal to `person_key`. Else
// INVALID_ARGUMENT kFamilyPresentersInvalid, field
// kFamilyPresenterKeysField; the message names the position, not the key.
absl::Status CheckFamilyPresenterKeys(const std::vector<std::string>& keys,
                                      std::string_view person_key = {});

// `e` without its person_key, in the current format. Any other field values
// round-trip (lists of any size, strings of any bytes), except that
// family_presenter_keys must pass CheckFamilyPresenterKeys(keys,
// e.person_key): else that refusal and nothing encoded.
absl::StatusOr<std::string> EncodeEnrollment(const engine::Enrollment& e);
// The record encoded by EncodeEnrollment, with person_key empty. INTERNAL
// kSnapshotRecordCorrupt for truncated or trailing bytes, an unknown format
// version, unknown flag bits, enum values out of range, or family presenter
// keys out of order or more than kMaxFamilyPresenters (they decode as 64
// lowercase hex characters).
absl::StatusOr<engine::Enrollment> DecodeEnrollment(std::string_view bytes);

// `i` without its institution_id.
std::string EncodeInstitution(const engine::Institution& i);
// As DecodeEnrollment; institution_id empty.
absl::StatusOr<engine::Institution> DecodeInstitution(std::string_view bytes);

}  // namespace medsettle::cache

#endif  // MEDSETTLE_CACHE_ENROLLMENT_CODEC_H_
