// How a settlement record (medsettle.v1.LedgerRecord / LedgerReversal) is
// stored in Redis and its journal: the serialized protobuf, compressed with
// zstd (level 3) and a dictionary trained on realistic records
// (cache/dictionaries/README.md). A record is mostly text that repeats
// within it and between records (field tags, enum values, item names,
// trace rules, sources and notes, dates), so the dictionary takes a
// pharmacy purchase of ~2,500 serialized bytes to ~640, where plain zstd
// stops at ~1,530 (docs/PERFORMANCE.md, "Settlement record size"). Redis
// memory is the bound of the hot window; compressing costs a few
// microseconds per settlement.
//
// The dictionaries are compiled in (no file is read at run time). Each
// frame names its dictionary by id (the zstd frame header); readers keep
// every dictionary ever shipped, so a record decodes whichever one wrote
// it. Readers also take plain zstd frames (no dictionary: records written
// before the dictionary) and uncompressed serializations (the first byte
// of one is never zstd's magic number), so the format can change without a
// flag day.
#ifndef MEDSETTLE_CACHE_RECORD_CODEC_H_
#define MEDSETTLE_CACHE_RECORD_CODEC_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace medsettle::cache {

// A decompressed record larger than this is refused (a 20,000-line bill's
// record is a few MB; gRPC messages are capped at 64 MiB).
inline constexpr size_t kMaxRecordBytes = size_t{256} << 20;

// `serialized` (a serialized record) as stored: a zstd frame compressed
// with the writing dictionary (today record-v1), naming its id.
// Thread-safe.
std::string PackRecord(std::string_view serialized);

// The serialized record in `stored`: a frame of any compiled-in dictionary,
// a plain zstd frame, or an uncompressed serialization. Thread-safe.
// INTERNAL LEDGER_RECORD_INVALID naming `where` (a key, a journal entry)
// when it does not decompress, is too large, or names a dictionary this
// build does not have (written by a newer build: the message names the id).
absl::StatusOr<std::string> UnpackRecord(std::string_view stored, std::string_view where);

// A trained dictionary compiled into this build (cache/dictionaries/).
struct RecordDictionary {
  uint32_t id;            // as in the dictionary's header and the frames it writes
  std::string_view file;  // "record-v1.zdict"
  std::string_view bytes;
  bool writes;            // PackRecord's (exactly one); the others are read only
};
// Every compiled-in dictionary, oldest first (ascending ids). Never empty.
// The writer is the newest except while a newer one ships for reading
// only, ahead of being written with (cache/dictionaries/README.md).
std::span<const RecordDictionary> RecordDictionaries();

}  // namespace medsettle::cache

#endif  // MEDSETTLE_CACHE_RECORD_CODEC_H_
