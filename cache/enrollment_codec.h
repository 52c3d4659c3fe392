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
//   Institution: [1] [kind:2 | zero_markup | tcm | children_or_maternal |
//     base_level | suspended] [level s] [region s] [len bytes] name
// The person key and the institution id are not encoded: they are the
// Redis hash field, and the reader fills them in. A typical adult record
// (no lists, no product) is 13 bytes.
//
// Pure functions; thread-safe.
#ifndef MEDSETTLE_CACHE_ENROLLMENT_CODEC_H_
#define MEDSETTLE_CACHE_ENROLLMENT_CODEC_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "engine/types.h"

namespace medsettle::cache {

namespace reason {
// INTERNAL: a stored snapshot record could not be decoded (truncated,
// trailing bytes, an unknown format version or an out-of-range value).
// The data in Redis is damaged or written by a newer format; reload.
inline constexpr std::string_view kSnapshotRecordCorrupt = "SNAPSHOT_RECORD_CORRUPT";
}  // namespace reason

// The format version written by the Encode functions.
inline constexpr uint8_t kSnapshotRecordFormat = 1;

// `e` without its person_key, in the current format. Any field values
// round-trip (lists of any size, strings of any bytes).
std::string EncodeEnrollment(const engine::Enrollment& e);
// The record encoded by EncodeEnrollment, with person_key empty. INTERNAL
// kSnapshotRecordCorrupt for truncated or trailing bytes, an unknown format
// version, unknown flag bits or enum values out of range.
absl::StatusOr<engine::Enrollment> DecodeEnrollment(std::string_view bytes);

// `i` without its institution_id.
std::string EncodeInstitution(const engine::Institution& i);
// As DecodeEnrollment; institution_id empty.
absl::StatusOr<engine::Institution> DecodeInstitution(std::string_view bytes);

}  // namespace medsettle::cache

#endif  // MEDSETTLE_CACHE_ENROLLMENT_CODEC_H_
