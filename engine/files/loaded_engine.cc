#include "engine/files/loaded_engine.h"

#include <openssl/evp.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <system_error>
#include <utility>

#include "engine/status.h"
#include "engine/text.h"

namespace medsettle::engine_files {
namespace {

namespace fs = std::filesystem;
namespace reason = engine::reason;
using engine::Cat;

absl::Status NotFound(std::string_view why, const fs::path& path, std::string_view what) {
  return engine::Refusal(absl::StatusCode::kNotFound, why, "", Cat(what, " ", path.string()));
}

// Fills in an empty digest; refuses one the bytes do not match.
absl::Status SetDigest(std::string_view why, SourceFile* file) {
  std::string actual = Sha256Hex(file->bytes);
  if (!file->sha256_hex.empty() && file->sha256_hex != actual) {
    return engine::InvalidField(why, "",
                                Cat(file->file_name, ": the bytes have SHA-256 ", actual,
                                    ", not the expected ", file->sha256_hex));
  }
  file->sha256_hex = std::move(actual);
  return absl::OkStatus();
}

// Parses `policies` in file-name order into one set; ids[i] is the id of
// the policy parsed from the i-th file of that order (*order).
absl::StatusOr<engine::PolicySet> ParseInOrder(const std::vector<SourceFile>& policies,
                                               std::vector<size_t>* order,
                                               std::vector<std::string>* ids) {
  if (policies.empty()) {
    return engine::InvalidField(reason::kPolicyFileInvalid, "", "no policy file given");
  }
  order->resize(policies.size());
  for (size_t i = 0; i < policies.size(); ++i) (*order)[i] = i;
  std::stable_sort(order->begin(), order->end(), [&](size_t a, size_t b) {
    return policies[a].file_name < policies[b].file_name;
  });
  engine::PolicySet set;
  ids->clear();
  for (size_t k = 0; k < order->size(); ++k) {
    const SourceFile& file = policies[(*order)[k]];
    // Errors cite the file name alone: two files of one name are ambiguous.
    if (k > 0 && policies[(*order)[k - 1]].file_name == file.file_name) {
      return engine::InvalidField(reason::kPolicyFileInvalid, "",
                                  Cat(file.file_name, ": policy file name given twice"));
    }
    absl::StatusOr<engine::Policy> policy = engine::ParsePolicy(file.file_name, file.bytes);
    if (!policy.ok()) return policy.status();
    ids->push_back(policy->id);
    if (absl::Status s = set.Add(*std::move(policy)); !s.ok()) return s;
  }
  return set;
}

}  // namespace

const SourceFile* LoadedEngine::PolicySource(std::string_view policy_id) const {
  auto it = policies.find(policy_id);
  return it == policies.end() ? nullptr : &it->second;
}

std::string Sha256Hex(std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr);
  return engine::LowerHex(std::string_view(reinterpret_cast<const char*>(digest), length));
}

absl::StatusOr<std::string> ReadFile(const fs::path& path, std::string_view why) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return NotFound(why, path, "cannot open");
  std::ostringstream text;
  text << file.rdbuf();
  if (file.bad()) return NotFound(why, path, "cannot read");
  return std::move(text).str();
}

absl::StatusOr<SourceFile> ReadSourceFile(const fs::path& path, std::string_view why) {
  absl::StatusOr<std::string> bytes = ReadFile(path, why);
  if (!bytes.ok()) return bytes.status();
  SourceFile file{.file_name = path.filename().string(),
                  .path = path.string(),
                  .sha256_hex = Sha256Hex(*bytes),
                  .bytes = *std::move(bytes)};
  return file;
}

absl::StatusOr<std::vector<SourceFile>> ReadPolicyDir(const fs::path& dir) {
  std::error_code error;
  fs::directory_iterator it(dir, error);
  if (error) return NotFound(reason::kPolicyFileInvalid, dir, "cannot list policy folder");
  std::vector<fs::path> paths;
  for (const fs::directory_entry& entry : it) {
    if (entry.path().extension() == ".yaml" && entry.is_regular_file(error)) {
      paths.push_back(entry.path());
    }
  }
  if (paths.empty()) {
    return engine::InvalidField(reason::kPolicyFileInvalid, "",
                                "no *.yaml policy file in " + dir.string());
  }
  std::sort(paths.begin(), paths.end(),
            [](const fs::path& a, const fs::path& b) { return a.filename() < b.filename(); });
  std::vector<SourceFile> files;
  files.reserve(paths.size());
  for (const fs::path& path : paths) {
    absl::StatusOr<SourceFile> file = ReadSourceFile(path, reason::kPolicyFileInvalid);
    if (!file.ok()) return file.status();
    files.push_back(*std::move(file));
  }
  return files;
}

absl::StatusOr<engine::PolicySet> ParsePolicies(const std::vector<SourceFile>& policies) {
  std::vector<size_t> order;
  std::vector<std::string> ids;
  return ParseInOrder(policies, &order, &ids);
}

absl::StatusOr<LoadedEngine> BuildEngine(std::vector<SourceFile> policies, SourceFile catalog) {
  for (SourceFile& file : policies) {
    if (absl::Status s = SetDigest(reason::kPolicyFileInvalid, &file); !s.ok()) return s;
  }
  if (absl::Status s = SetDigest(reason::kCatalogFileInvalid, &catalog); !s.ok()) return s;
  std::vector<size_t> order;
  std::vector<std::string> ids;
  absl::StatusOr<engine::PolicySet> set = ParseInOrder(policies, &order, &ids);
  if (!set.ok()) return set.status();
  absl::StatusOr<engine::Catalog> parsed = engine::Catalog::Parse(catalog.file_name, catalog.bytes);
  if (!parsed.ok()) return parsed.status();
  LoadedEngine loaded;
  // Held in place: settlements point into the engine's policies.
  loaded.engine = std::make_shared<const engine::Engine>(*std::move(set), *std::move(parsed));
  for (size_t k = 0; k < order.size(); ++k) {
    loaded.policies.emplace(std::move(ids[k]), std::move(policies[order[k]]));
  }
  loaded.catalog = std::move(catalog);
  return loaded;
}

absl::StatusOr<LoadedEngine> LoadEngine(const fs::path& policy_dir, const fs::path& catalog_file) {
  absl::StatusOr<std::vector<SourceFile>> policies = ReadPolicyDir(policy_dir);
  if (!policies.ok()) return policies.status();
  absl::StatusOr<SourceFile> catalog = ReadSourceFile(catalog_file, reason::kCatalogFileInvalid);
  if (!catalog.ok()) return catalog.status();
  return BuildEngine(*std::move(policies), *std::move(catalog));
}

}  // namespace medsettle::engine_files
