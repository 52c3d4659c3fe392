#include "cache/record_codec.h"

#include <zstd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "engine/status.h"
#include "engine/text.h"
#include "proto/contract/ledger_record.h"

namespace medsettle::cache {
namespace {

// Level 1 with the dictionary: level 3 is ~4% smaller (a pharmacy record
// 629 bytes instead of 650) but was a tenth of the gateway's CPU per Settle
// (docs/PERFORMANCE.md, "The request path"). The level is the writer's
// choice alone: frames of any level decode alike.
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

std::string IdText(uint32_t id) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%08x", id);
  return text;
}

// The compiled-in dictionaries, digested once per process and shared by
// every thread (zstd's CDict and DDict are read-only once created).
struct Dictionaries {
  struct Reader {
    uint32_t id;
    ZSTD_DDict* ddict;
  };
  std::vector<Reader> readers;  // ascending ids
  ZSTD_CDict* writer = nullptr;  // RecordDictionary::writes, at kLevel
  std::string ids;               // "0x4d530001, ..." for messages

  const ZSTD_DDict* Find(uint32_t id) const {
    for (const Reader& r : readers) {
      if (r.id == id) return r.ddict;
    }
    return nullptr;
  }
};

[[noreturn]] void Broken(const RecordDictionary& d, const char* what) {
  // A build artifact that does not load is a build defect (embed.cmake
  // checks the header; this is the rest): no record could be written.
  std::fprintf(stderr, "medsettle: compiled-in record dictionary %.*s (%s): %s\n",
               static_cast<int>(d.file.size()), d.file.data(), IdText(d.id).c_str(), what);
  std::abort();
}

const Dictionaries& TheDictionaries() {
  // Created on first use, never freed (they live as long as the process).
  static const Dictionaries* const dictionaries = [] {
    auto* all = new Dictionaries;
    for (const RecordDictionary& d : RecordDictionaries()) {
      if (ZSTD_getDictID_fromDict(d.bytes.data(), d.bytes.size()) != d.id) {
        Broken(d, "its header names another id");
      }
      ZSTD_DDict* ddict = ZSTD_createDDict(d.bytes.data(), d.bytes.size());
      if (ddict == nullptr) Broken(d, "ZSTD_createDDict failed");
      all->readers.push_back({d.id, ddict});
      if (!all->ids.empty()) all->ids += ", ";
      all->ids += IdText(d.id);
    }
    for (const RecordDictionary& d : RecordDictionaries()) {
      if (!d.writes) continue;
      all->writer = ZSTD_createCDict(d.bytes.data(), d.bytes.size(), kLevel);
      if (all->writer == nullptr) Broken(d, "ZSTD_createCDict failed");
    }
    if (all->writer == nullptr) Broken(RecordDictionaries().back(), "none is the writer");
    return all;
  }();
  return *dictionaries;
}

struct FreeCCtx {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct FreeDCtx {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

// One compression and one decompression context per thread, reused: a
// context is not thread-safe, and creating one per record would cost more
// than compressing it.
ZSTD_CCtx* ThreadCCtx() {
  thread_local std::unique_ptr<ZSTD_CCtx, FreeCCtx> cctx(ZSTD_createCCtx());
  return cctx.get();
}
ZSTD_DCtx* ThreadDCtx() {
  thread_local std::unique_ptr<ZSTD_DCtx, FreeDCtx> dctx(ZSTD_createDCtx());
  return dctx.get();
}

}  // namespace

std::string PackRecord(std::string_view serialized) {
  const Dictionaries& dictionaries = TheDictionaries();
  ZSTD_CCtx* cctx = ThreadCCtx();
  // Out of memory for a context: keep the plain serialization (readers
  // take both).
  if (cctx == nullptr) return std::string(serialized);
  std::string out(ZSTD_compressBound(serialized.size()), '\0');
  // The frame records the content size (UnpackRecord's bound) and the
  // dictionary's id; no checksum (Redis and the AOF have their own).
  const size_t n = ZSTD_compress_usingCDict(cctx, out.data(), out.size(), serialized.data(),
                                            serialized.size(), dictionaries.writer);
  // Compression into a buffer of the bound cannot fail; keep the plain
  // serialization if it ever did.
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
  // 0: a plain frame (records written before the dictionary).
  const uint32_t id = ZSTD_getDictID_fromFrame(stored.data(), stored.size());
  const ZSTD_DDict* ddict = nullptr;
  if (id != 0) {
    const Dictionaries& dictionaries = TheDictionaries();
    ddict = dictionaries.Find(id);
    if (ddict == nullptr) {
      return Invalid(where, engine::Cat("names zstd dictionary ", IdText(id),
                                        ", which this build does not have (it has ",
                                        dictionaries.ids, "): a newer build wrote it"));
    }
  }
  ZSTD_DCtx* dctx = ThreadDCtx();
  if (dctx == nullptr) {
    return absl::ResourceExhaustedError("no memory for a zstd decompression context");
  }
  std::string out(static_cast<size_t>(size), '\0');
  const size_t n =
      ddict != nullptr
          ? ZSTD_decompress_usingDDict(dctx, out.data(), out.size(), stored.data(),
                                       stored.size(), ddict)
          : ZSTD_decompressDCtx(dctx, out.data(), out.size(), stored.data(), stored.size());
  if (ZSTD_isError(n)) {
    return Invalid(where, engine::Cat("does not decompress: ", ZSTD_getErrorName(n)));
  }
  if (n != out.size()) {
    return Invalid(where, engine::Cat("decompresses to ", n, " bytes, its frame says ", size));
  }
  return out;
}

}  // namespace medsettle::cache
