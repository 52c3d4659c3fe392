#include "cache/record_codec.h"

#include <zstd.h>

#include "engine/status.h"
#include "engine/text.h"
#include "proto/contract/ledger_record.h"

namespace medsettle::cache {
namespace {

constexpr int kLevel = 1;

bool IsZstdFrame(std::string_view bytes) {
  return bytes.size() >= 4 && static_cast<unsigned char>(bytes[0]) == 0x28 &&
         static_cast<unsigned char>(bytes[1]) == 0xb5 &&
         static_cast<unsigned char>(bytes[2]) == 0x2f &&
         static_cast<unsigned char>(bytes[3]) == 0xfd;
}

absl::Status Invalid(std::string_view where, std::string_view why) {
  return engine::Refusal(absl::StatusCode::kInternal, contract::reason::kLedgerRecordInvalid, "",
                         engine::Cat(where, ": the stored record ", why));
}

}  // namespace

std::string PackRecord(std::string_view serialized) {
  std::string out(ZSTD_compressBound(serialized.size()), '\0');
  const size_t n =
      ZSTD_compress(out.data(), out.size(), serialized.data(), serialized.size(), kLevel);
  // Compression into a buffer of the bound cannot fail; keep the plain
  // serialization if it ever did (readers take both).
  if (ZSTD_isError(n)) return std::string(serialized);
  out.resize(n);
  return out;
}

absl::StatusOr<std::string> UnpackRecord(std::string_view stored, std::string_view where) {
  if (!IsZstdFrame(stored)) return std::string(stored);
  const unsigned long long size = ZSTD_getFrameContentSize(stored.data(), stored.size());
  if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN) {
    return Invalid(where, "is not a complete zstd frame");
  }
  if (size > kMaxRecordBytes) return Invalid(where, "would decompress beyond 256 MiB");
  std::string out(static_cast<size_t>(size), '\0');
  const size_t n = ZSTD_decompress(out.data(), out.size(), stored.data(), stored.size());
  if (ZSTD_isError(n) || n != out.size()) {
    return Invalid(where, engine::Cat("does not decompress: ", ZSTD_getErrorName(n)));
  }
  return out;
}

}  // namespace medsettle::cache
