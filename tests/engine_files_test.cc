// medsettle::engine_files (engine/files/loaded_engine.h): the shipped
// policies and catalog loaded from files with the SHA-256 of each file —
// checked against sha256sum(1) and the FIPS 180-2 vectors, not against the
// library's own call — an engine rebuilt from the same bytes held in memory
// settling exactly as the one from files, and errors that name the file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/files/loaded_engine.h"
#include "engine/status.h"
#include "proto/contract/convert.h"
#include "tests/support/engine_fixture.h"

namespace medsettle::engine_files {
namespace {

namespace fs = std::filesystem;
using engine::FieldOf;
using engine::ReasonOf;

const fs::path kSource = MEDSETTLE_SOURCE_DIR;
const fs::path kPolicyDir = kSource / "engine/policies";
const fs::path kCatalog = kSource / "engine/catalog/demo-catalog.csv";

// The file's bytes, read here (not through the library under test).
std::string Slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << path;
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

void Spit(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  ASSERT_TRUE(out.good()) << path;
}

// The digest sha256sum(1) (coreutils) prints for `path`: an independent
// implementation of SHA-256.
std::string Sha256sumOf(const fs::path& path) {
  const std::string command = "sha256sum -- '" + path.string() + "' 2>/dev/null";
  std::FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return "popen failed";
  char line[512] = {};
  const bool read = std::fgets(line, sizeof line, pipe) != nullptr;
  const int status = pclose(pipe);
  if (!read || status != 0) return "sha256sum failed";
  return std::string(line).substr(0, 64);
}

std::vector<fs::path> ShippedPolicyFiles() {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(kPolicyDir)) {
    if (entry.path().extension() == ".yaml") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// A fresh folder under the test's temporary directory.
fs::path ScratchDir(const std::string& name) {
  fs::path dir = fs::path(::testing::TempDir()) /
                 ("engine_files_test-" + std::to_string(getpid()) + "-" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

const LoadedEngine& FromFiles() {
  static const LoadedEngine* loaded = [] {
    absl::StatusOr<LoadedEngine> l = LoadEngine(kPolicyDir, kCatalog);
    if (!l.ok()) {
      ADD_FAILURE() << l.status();
      std::abort();
    }
    return new LoadedEngine(*std::move(l));
  }();
  return *loaded;
}

// ---- loading the shipped files -----------------------------------------------

TEST(LoadEngine, LoadsEveryShippedPolicyAndTheCatalogWithTheirBytes) {
  const LoadedEngine& loaded = FromFiles();
  ASSERT_NE(loaded.engine, nullptr);
  const std::vector<fs::path> files = ShippedPolicyFiles();
  ASSERT_FALSE(files.empty());
  EXPECT_EQ(loaded.policies.size(), files.size());
  EXPECT_EQ(loaded.engine->policies().policies().size(), files.size());
  for (const char* id : {"quzhou-2024", "quzhou-2025", "dianjiang-2024", "fenghua-2025"}) {
    EXPECT_NE(loaded.engine->policies().FindById(id), nullptr) << id;
    EXPECT_NE(loaded.PolicySource(id), nullptr) << id;
  }
  // Each policy maps to the file it was parsed from, byte for byte.
  for (const engine::Policy& policy : loaded.engine->policies().policies()) {
    const SourceFile* source = loaded.PolicySource(policy.id);
    ASSERT_NE(source, nullptr) << policy.id;
    EXPECT_EQ(source->file_name, policy.file_name);
    EXPECT_EQ(fs::path(source->path), kPolicyDir / policy.file_name);
    EXPECT_EQ(source->bytes, Slurp(kPolicyDir / policy.file_name)) << policy.id;
  }
  EXPECT_EQ(loaded.PolicySource("no-such-policy"), nullptr);
  EXPECT_EQ(loaded.catalog.file_name, "demo-catalog.csv");
  EXPECT_EQ(fs::path(loaded.catalog.path), kCatalog);
  EXPECT_EQ(loaded.catalog.bytes, Slurp(kCatalog));
  EXPECT_GT(loaded.engine->catalog().size(), 0u);
}

// ---- digests ------------------------------------------------------------------

TEST(Sha256Hex, MatchesTheFips180Vectors) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(LoadEngine, DigestsAreThoseSha256sumPrintsForTheFiles) {
  const LoadedEngine& loaded = FromFiles();
  for (const fs::path& file : ShippedPolicyFiles()) {
    const std::string expected = Sha256sumOf(file);
    ASSERT_EQ(expected.size(), 64u) << expected;
    bool found = false;
    for (const auto& [id, source] : loaded.policies) {
      if (source.file_name != file.filename().string()) continue;
      found = true;
      EXPECT_EQ(source.sha256_hex, expected) << id << " " << file;
    }
    EXPECT_TRUE(found) << file;
  }
  EXPECT_EQ(loaded.catalog.sha256_hex, Sha256sumOf(kCatalog));
}

// ---- from bytes ---------------------------------------------------------------

// The shipped files read by the test and handed over in reverse order,
// with no path and no digest: BuildEngine orders and digests them itself.
absl::StatusOr<LoadedEngine> FromBytes() {
  std::vector<SourceFile> policies;
  for (const fs::path& file : ShippedPolicyFiles()) {
    policies.push_back({.file_name = file.filename().string(), .bytes = Slurp(file)});
  }
  std::reverse(policies.begin(), policies.end());
  return BuildEngine(std::move(policies),
                     {.file_name = "demo-catalog.csv", .bytes = Slurp(kCatalog)});
}

struct Case {
  const char* name;
  engine::RegionCode region;
  int year;
  int tier = 0;
};

// One inpatient stay per shipped policy, large enough to reach the
// critical-illness layer, with class A, B (capped) and C lines.
std::string SettledResponse(const engine::Engine& engine, const Case& c, std::string* policy_id) {
  using testing::Line;
  const std::string y = std::to_string(c.year);
  const engine::Enrollment person = testing::Person(c.region, c.year, c.tier);
  const engine::Institution hospital = testing::Hospital(c.region, 2);
  const engine::Claim claim =
      testing::Stay(engine::VisitType::kInpatient, y + "-03-01", y + "-03-20",
                    {Line(1, "FB0001", "1", 35000), Line(2, "XB0004", "60", 45000),
                     Line(3, "XA0001", "10", 1500), Line(4, "XC0002", "2", 2000)});
  const engine::Accumulators ytd;
  engine::SettleInput input;
  input.enrollment = &person;
  input.institution = &hospital;
  input.year_to_date = &ytd;
  input.claim = &claim;
  engine::Settlement settlement;
  absl::Status status = engine.Settle(input, &settlement);
  EXPECT_TRUE(status.ok()) << c.name << ": " << status;
  if (!status.ok()) return "";
  EXPECT_GT(settlement.amounts.base_fund_cents, 0) << c.name;
  *policy_id = std::string(settlement.policy_id);
  v1::SettleResponse response;
  contract::SettlementToProto(settlement, claim, person.person_key, hospital.institution_id,
                              &response);
  std::string bytes;
  EXPECT_TRUE(response.SerializeToString(&bytes));
  return bytes;
}

TEST(BuildEngine, FromBytesSettlesExactlyAsFromFiles) {
  absl::StatusOr<LoadedEngine> in_memory = FromBytes();
  ASSERT_TRUE(in_memory.ok()) << in_memory.status();
  const LoadedEngine& files = FromFiles();
  // Same policies, same order, same digests; no path.
  ASSERT_EQ(in_memory->policies.size(), files.policies.size());
  for (const auto& [id, source] : files.policies) {
    const SourceFile* other = in_memory->PolicySource(id);
    ASSERT_NE(other, nullptr) << id;
    EXPECT_EQ(other->sha256_hex, source.sha256_hex) << id;
    EXPECT_EQ(other->file_name, source.file_name) << id;
    EXPECT_TRUE(other->path.empty()) << id;
  }
  EXPECT_EQ(in_memory->catalog.sha256_hex, files.catalog.sha256_hex);
  ASSERT_EQ(in_memory->engine->policies().policies().size(),
            files.engine->policies().policies().size());
  for (size_t i = 0; i < files.engine->policies().policies().size(); ++i) {
    EXPECT_EQ(in_memory->engine->policies().policies()[i].id,
              files.engine->policies().policies()[i].id);
  }

  for (const Case& c :
       {Case{"quzhou-2024", 330800, 2024}, Case{"quzhou-2025", 330800, 2025},
        Case{"dianjiang-2024", 500231, 2024, 1}, Case{"fenghua-2025", 330213, 2025}}) {
    std::string from_files_policy, from_bytes_policy;
    const std::string from_files = SettledResponse(*files.engine, c, &from_files_policy);
    const std::string from_bytes = SettledResponse(*in_memory->engine, c, &from_bytes_policy);
    ASSERT_FALSE(from_files.empty()) << c.name;
    EXPECT_EQ(from_files_policy, c.name);
    EXPECT_EQ(from_bytes_policy, c.name);
    EXPECT_EQ(from_bytes, from_files) << c.name << ": the settlements differ";
    // The holder of a settlement finds the digest of its policy file.
    ASSERT_NE(in_memory->PolicySource(from_bytes_policy), nullptr);
    EXPECT_EQ(in_memory->PolicySource(from_bytes_policy)->sha256_hex,
              Sha256sumOf(kPolicyDir / (std::string(c.name) + ".yaml")));
  }
}

TEST(BuildEngine, AcceptsMatchingDigestsAndRefusesOthersNamingTheFile) {
  const LoadedEngine& files = FromFiles();
  const SourceFile& quzhou = *files.PolicySource("quzhou-2024");
  // The digests a database stored with the bytes: accepted.
  absl::StatusOr<LoadedEngine> ok = BuildEngine({quzhou}, files.catalog);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->policies.size(), 1u);
  EXPECT_EQ(ok->catalog.sha256_hex, files.catalog.sha256_hex);

  SourceFile tampered = quzhou;
  tampered.bytes += "\n# one more line\n";
  absl::StatusOr<LoadedEngine> bad = BuildEngine({tampered}, files.catalog);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReasonOf(bad.status()), "POLICY_FILE_INVALID");
  EXPECT_EQ(bad.status().message().rfind("quzhou-2024.yaml: ", 0), 0u) << bad.status();

  SourceFile catalog = files.catalog;
  catalog.sha256_hex = std::string(64, '0');
  bad = BuildEngine({quzhou}, catalog);
  EXPECT_EQ(ReasonOf(bad.status()), "CATALOG_FILE_INVALID");
  EXPECT_EQ(bad.status().message().rfind("demo-catalog.csv: ", 0), 0u) << bad.status();
}

TEST(BuildEngine, RefusesNoPolicyAndOneFileNameTwice) {
  const LoadedEngine& files = FromFiles();
  absl::StatusOr<LoadedEngine> none = BuildEngine({}, files.catalog);
  EXPECT_EQ(ReasonOf(none.status()), "POLICY_FILE_INVALID");
  SourceFile quzhou = *files.PolicySource("quzhou-2024");
  SourceFile same_name = *files.PolicySource("quzhou-2025");
  same_name.file_name = quzhou.file_name;
  absl::StatusOr<LoadedEngine> twice = BuildEngine({quzhou, same_name}, files.catalog);
  EXPECT_EQ(ReasonOf(twice.status()), "POLICY_FILE_INVALID");
  EXPECT_NE(std::string(twice.status().message()).find("quzhou-2024.yaml"), std::string::npos);
}

// ---- errors name the file ------------------------------------------------------

TEST(LoadEngine, ABadPolicyFileIsNamedWithItsKey) {
  const fs::path dir = ScratchDir("bad-policy");
  for (const fs::path& file : ShippedPolicyFiles()) fs::copy_file(file, dir / file.filename());
  std::string yaml = Slurp(dir / "quzhou-2025.yaml");
  const size_t at = yaml.find("valid_to: 2025-12-31");
  ASSERT_NE(at, std::string::npos);
  yaml.replace(at, 20, "valid_to: 2025-13-45");
  Spit(dir / "quzhou-2025.yaml", yaml);

  absl::StatusOr<LoadedEngine> loaded = LoadEngine(dir, kCatalog);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReasonOf(loaded.status()), "POLICY_FILE_INVALID");
  EXPECT_EQ(FieldOf(loaded.status()), "valid_to");
  EXPECT_EQ(loaded.status().message().rfind("quzhou-2025.yaml: valid_to: ", 0), 0u)
      << loaded.status();

  // The same bytes from memory: the same error.
  absl::StatusOr<LoadedEngine> in_memory = BuildEngine(
      {{.file_name = "quzhou-2025.yaml", .bytes = yaml}}, {.file_name = "c.csv", .bytes = ""});
  EXPECT_EQ(in_memory.status(), loaded.status());
  fs::remove_all(dir);
}

TEST(LoadEngine, ABadCatalogIsNamedWithItsLine) {
  const fs::path dir = ScratchDir("bad-catalog");
  Spit(dir / "bad-catalog.csv", Slurp(kCatalog) + "ZZ0001,not a class,Q,0,,0\n");
  absl::StatusOr<LoadedEngine> loaded = LoadEngine(kPolicyDir, dir / "bad-catalog.csv");
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReasonOf(loaded.status()), "CATALOG_FILE_INVALID");
  EXPECT_EQ(loaded.status().message().rfind("bad-catalog.csv:", 0), 0u) << loaded.status();
  fs::remove_all(dir);
}

TEST(LoadEngine, MissingFilesAreNotFoundNamingThePath) {
  absl::StatusOr<LoadedEngine> no_catalog = LoadEngine(kPolicyDir, kSource / "no-such.csv");
  EXPECT_EQ(no_catalog.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ReasonOf(no_catalog.status()), "CATALOG_FILE_INVALID");
  EXPECT_NE(std::string(no_catalog.status().message()).find("no-such.csv"), std::string::npos);

  absl::StatusOr<LoadedEngine> no_dir = LoadEngine(kSource / "no-such-folder", kCatalog);
  EXPECT_EQ(no_dir.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ReasonOf(no_dir.status()), "POLICY_FILE_INVALID");

  const fs::path empty = ScratchDir("empty");
  absl::StatusOr<LoadedEngine> no_policy = LoadEngine(empty, kCatalog);
  EXPECT_EQ(no_policy.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReasonOf(no_policy.status()), "POLICY_FILE_INVALID");
  fs::remove_all(empty);
}

}  // namespace
}  // namespace medsettle::engine_files
