// Realistic settlement records for training and measuring the record
// codec's zstd dictionary (cache/dictionaries/README.md): a deterministic
// stream of medsettle.v1.LedgerRecord and LedgerReversal values, settled by
// the shipped engine and built exactly as the gateway builds them
// (contract::SettlementToProto + contract::BuildLedgerRecord, the reversal
// as SettlementHandler::Reverse), serialized as the settlement store
// serializes them. Nothing here touches Redis or a clock.
//
// The population: persons of the four region-years (Quzhou 2024 and 2025,
// Dianjiang 2024, Fenghua 2025) with varied categories, assistance,
// certified conditions, supplementary insurance and family presenters;
// a registry of pharmacies, community centres and hospitals of every level
// (TCM, maternal and children's); visits in the counter's mix — pharmacy
// purchases ~60%, outpatient ~30%, stays ~10% with 20–300 lines — with
// catalog items, quantities and prices drawn at random; settlement ids,
// 64-hex person keys, content hashes (as the gateway's ContentHash),
// certificate fingerprints and rule digests (random per seed, not the
// digests of today's files: a dictionary must not learn one version of the
// rules), request ids in each institution's own style. Persons are
// revisited, so the year to date grows as it does in a real year; ~3% of
// settlements are reversed.
//
// Deterministic: the same options with the same engine (policy files,
// catalog, engine code) give the same samples, byte for byte, on every
// platform (splitmix64, no std distributions).
#ifndef MEDSETTLE_TOOLS_RECORDGEN_RECORD_SAMPLES_H_
#define MEDSETTLE_TOOLS_RECORDGEN_RECORD_SAMPLES_H_

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/engine.h"
#include "engine/types.h"

namespace medsettle::recordgen {

// What a sample is, as Redis memory is counted: a settlement at a pharmacy,
// an outpatient settlement (hospital or community centre), a stay
// (inpatient, deliveries), or a reversal.
enum class SampleKind : uint8_t { kPharmacy = 0, kOutpatient, kInpatient, kReversal };
inline constexpr int kSampleKindCount = 4;
std::string_view Name(SampleKind kind);  // "pharmacy", "outpatient", "inpatient", "reversal"

struct Sample {
  SampleKind kind = SampleKind::kPharmacy;
  engine::VisitType visit_type = engine::VisitType::kUnspecified;  // of the settlement
  int32_t lines = 0;   // bill lines of the settlement
  std::string bytes;   // the serialized LedgerRecord or LedgerReversal
};

// The engine the samples are settled with, and the catalog's codes (the
// catalog has no listing of its own).
struct RuleSet {
  std::shared_ptr<const engine::Engine> engine;
  std::vector<std::string> catalog_codes;  // in file order
};

// The policy files of `policy_dir` and the catalog `catalog_file`, loaded as
// the gateway and medsettle-calc load them (engine_files::LoadEngine).
absl::StatusOr<RuleSet> LoadRuleSet(const std::filesystem::path& policy_dir,
                                    const std::filesystem::path& catalog_file);

// The codes of a catalog CSV (first column; the header, blank lines and
// '#' comments skipped).
std::vector<std::string> CatalogCodes(std::string_view csv_text);

struct GenerateOptions {
  uint64_t seed = 1;
  int32_t settlements = 1000;   // settlement records; reversals come on top
  int32_t reversal_percent = 3;
};

// `options.settlements` records, each followed by its reversal when it is
// reversed. INTERNAL when the engine refuses every draw for a settlement
// (a generator bug, or rules that no longer cover the population).
absl::StatusOr<std::vector<Sample>> GenerateSamples(const RuleSet& rules,
                                                    const GenerateOptions& options);

// SHA-256 (lower hex) over the samples in order (kind, visit type, length,
// bytes): names a sample set in a dictionary's manifest.
std::string SamplesSha256(const std::vector<Sample>& samples);
std::string Sha256Hex(std::string_view bytes);

struct TrainOptions {
  uint32_t dict_id = 0;            // written into the dictionary; frames name it
  size_t dict_bytes = 24 * 1024;   // the dictionary's size, header included
  int compression_level = 1;       // the level the entropy tables are tuned for
};

// A zstd dictionary from `samples` through libzstd's stable ZDICT API:
// ZDICT_trainFromBuffer (fastCover with its fixed parameter grid, single
// threaded: deterministic for a given libzstd), then
// ZDICT_finalizeDictionary over the trained content to give it
// `options.dict_id` and tables for `options.compression_level`.
// INTERNAL with ZDICT's error name when training fails.
absl::StatusOr<std::string> TrainDictionary(const std::vector<Sample>& samples,
                                            const TrainOptions& options);

// libzstd's version, "1.5.4".
std::string ZstdVersion();

// Per kind: samples, average serialized bytes, average packed bytes with
// plain zstd (no dictionary) and with `dictionary` (empty: skipped), both at
// `level`.
struct KindSizes {
  int64_t count = 0;
  double serialized = 0;
  double plain = 0;
  double with_dictionary = 0;
};
struct SizeReport {
  KindSizes kinds[kSampleKindCount];
  KindSizes all;
};
SizeReport MeasureSizes(const std::vector<Sample>& samples, std::string_view dictionary,
                        int level);
// A fixed-width table of `report` (one line per kind, then "all").
std::string FormatSizeReport(const SizeReport& report);

}  // namespace medsettle::recordgen

#endif  // MEDSETTLE_TOOLS_RECORDGEN_RECORD_SAMPLES_H_
