// How a settlement record (medsettle.v1.LedgerRecord / LedgerReversal) is
// stored in Redis and its journal: the serialized protobuf, compressed with
// zstd (level 1). A record is mostly text that repeats within it (item
// names, trace sources and notes, digests, the person key in each
// accumulator block), so it halves: a 4-line pharmacy record of 2,089 bytes
// stores in about 1,150 (docs/PERFORMANCE.md). Redis memory is the bound
// of the hot window; compressing costs a few microseconds per settlement.
// Readers also take an uncompressed serialization (the first byte of one
// is never zstd's magic number), so the format can change without a flag
// day.
#ifndef MEDSETTLE_CACHE_RECORD_CODEC_H_
#define MEDSETTLE_CACHE_RECORD_CODEC_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace medsettle::cache {

// A decompressed record larger than this is refused (a 20,000-line bill's
// record is a few MB; gRPC messages are capped at 64 MiB).
inline constexpr size_t kMaxRecordBytes = size_t{256} << 20;

// `serialized` (a serialized record) as stored.
std::string PackRecord(std::string_view serialized);

// The serialized record in `stored`. INTERNAL LEDGER_RECORD_INVALID naming
// `where` (a key, a journal entry) when it does not decompress or is too
// large.
absl::StatusOr<std::string> UnpackRecord(std::string_view stored, std::string_view where);

}  // namespace medsettle::cache

#endif  // MEDSETTLE_CACHE_RECORD_CODEC_H_
