// An engine's inputs as files: the policy folder (one YAML per region-year)
// and the catalog CSV, read, parsed and assembled into an engine::Engine,
// together with what it was built from — each file's bytes and their
// SHA-256 — so a caller can store those files once per digest and name them
// with every settlement (a settlement of years ago is recomputed from the
// exact bytes it was settled under). The same engine can be rebuilt from
// bytes held in memory (e.g. read back from a database) with BuildEngine.
//
// This is the engine's edge, not its core: engine/ stays free of I/O and
// parses text the caller passes (ParsePolicy, Catalog::Parse); this library
// reads the files and digests them. Errors are the engine loader's, naming
// the file and the key path ("quzhou-2024.yaml: schemes.inpatient...") or
// the line and column (catalog); NOT_FOUND when a file cannot be read.
#ifndef MEDSETTLE_ENGINE_FILES_LOADED_ENGINE_H_
#define MEDSETTLE_ENGINE_FILES_LOADED_ENGINE_H_

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/catalog.h"
#include "engine/engine.h"
#include "engine/policy_loader.h"

namespace medsettle::engine_files {

// One input file, byte for byte.
struct SourceFile {
  // The name errors and Policy::file_name cite: "quzhou-2024.yaml",
  // "demo-catalog.csv" (no folder).
  std::string file_name;
  // Where it was read from; empty when the bytes came from elsewhere.
  std::string path;
  // SHA-256 of `bytes`, 64 lowercase hex digits. On input to BuildEngine it
  // may be empty (computed) or a digest the bytes must match.
  std::string sha256_hex;
  std::string bytes;
};

// An engine and the files it was built from. Immutable once built; safe to
// share between threads (hold it by shared_ptr<const LoadedEngine>).
struct LoadedEngine {
  std::shared_ptr<const engine::Engine> engine;  // never null once built
  // By Policy::id (= Settlement::policy_id): the file of each policy in
  // engine->policies(), sha256_hex always set.
  std::map<std::string, SourceFile, std::less<>> policies;
  SourceFile catalog;  // sha256_hex always set

  // The file policy `policy_id` was parsed from; nullptr if none.
  const SourceFile* PolicySource(std::string_view policy_id) const;
};

// Reads every *.yaml in `policy_dir` and the catalog file, then BuildEngine.
// Errors: ReadPolicyDir's, ReadSourceFile's (CATALOG_FILE_INVALID), and
// BuildEngine's.
absl::StatusOr<LoadedEngine> LoadEngine(const std::filesystem::path& policy_dir,
                                        const std::filesystem::path& catalog_file);

// Builds an engine from files held in memory: each policy parsed under its
// file_name (in file-name order, whatever the order given), added to one
// PolicySet, and the catalog parsed under its file_name. Computes every
// digest. INVALID_ARGUMENT with reason POLICY_FILE_INVALID (no policy, a
// policy's parse or PolicySet::Add error, a given sha256_hex that does not
// match the bytes) or CATALOG_FILE_INVALID (the catalog's parse error or
// digest mismatch); every message starts with the file's name.
absl::StatusOr<LoadedEngine> BuildEngine(std::vector<SourceFile> policies, SourceFile catalog);

// The parse step of BuildEngine for policies alone: each file parsed, in
// file-name order, into one set. Same errors, no digests checked.
absl::StatusOr<engine::PolicySet> ParsePolicies(const std::vector<SourceFile>& policies);

// Every *.yaml regular file in `dir`, in file-name order, read with its
// digest. NOT_FOUND (POLICY_FILE_INVALID) when the folder cannot be listed
// or a file read; INVALID_ARGUMENT (POLICY_FILE_INVALID) when it holds no
// *.yaml file.
absl::StatusOr<std::vector<SourceFile>> ReadPolicyDir(const std::filesystem::path& dir);

// One file read with its digest; file_name is the path's last component.
// NOT_FOUND (reason `reason`) when it cannot be read.
absl::StatusOr<SourceFile> ReadSourceFile(const std::filesystem::path& path,
                                          std::string_view reason);

// The whole content of a file, as bytes. NOT_FOUND (reason `reason`) when it
// cannot be opened or read; the message names the path.
absl::StatusOr<std::string> ReadFile(const std::filesystem::path& path, std::string_view reason);

// SHA-256 of `bytes` as 64 lowercase hex digits.
std::string Sha256Hex(std::string_view bytes);

}  // namespace medsettle::engine_files

#endif  // MEDSETTLE_ENGINE_FILES_LOADED_ENGINE_H_
