// medsettle-snapshot: synthesise a population, load it as a new snapshot
// version, inspect and drop versions, apply deltas (tools/snapshot/README.md).
// The logic lives here so tests can run every command in-process; main.cc
// only forwards argv.
//
// Raw ID numbers exist only in the persons CSV: `load` turns each (the
// person's and their family presenters') into its person key
// (cache::PersonKeyer) before anything reaches Redis, and no message names
// one.
#ifndef MEDSETTLE_TOOLS_SNAPSHOT_SNAPSHOT_TOOL_H_
#define MEDSETTLE_TOOLS_SNAPSHOT_SNAPSHOT_TOOL_H_

#include <cstdint>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cache/person_key.h"
#include "cache/snapshot_store.h"
#include "engine/types.h"

namespace medsettle::snapshot_tool {

namespace reason {
// INVALID_ARGUMENT: a CSV line, a flag or the key file is malformed; the
// message names the file, line and column, never an ID number.
inline constexpr std::string_view kSnapshotInputInvalid = "SNAPSHOT_INPUT_INVALID";
}  // namespace reason

// The header lines of the two CSV files (README.md documents each column).
inline constexpr std::string_view kPersonsHeader =
    "id_number,year,region_code,birth_date,category,tier,assistance,paid_date,concentrated,"
    "newborn,reenrolled_after_gap,status,chronic_conditions,special_diseases,"
    "out_of_area_filings,supplementary_product,supplementary_pre_existing,"
    "supplementary_continuous,voucher_revoked_at_unix,family_presenter_ids";
// The persons header before family_presenter_ids existed: files with it are
// still read (every person without family presenters).
inline constexpr std::string_view kPersonsHeaderWithoutPresenters =
    kPersonsHeader.substr(0, kPersonsHeader.rfind(','));
inline constexpr std::string_view kInstitutionsHeader =
    "institution_id,name,region_code,kind,level,zero_markup,tcm,children_or_maternal,"
    "base_level,suspended";

// Writes a deterministic population of `persons` (same seed, same bytes)
// across the four region-years (Quzhou 2024 and 2025, Dianjiang 2024 with
// tiers 1 and 2, Fenghua 2025), and institutions of every kind and level in
// each region. The first rows cycle through every category, assistance
// kind, tier, status and flag, so even a small file holds each value.
// About 5% of persons get one or two family presenters, chosen among the
// persons just before them of the same region-year (from a generator of
// their own, so every other column is what it was before presenters).
absl::Status Synthesize(int64_t persons, uint64_t seed, std::ostream& persons_csv,
                        std::ostream& institutions_csv);

// One persons-CSV data line: the raw ID number, the record (person_key and
// family_presenter_keys empty) and the family presenters' ID numbers
// (normalised, as read; the loader keys them into family_presenter_keys).
// INVALID_ARGUMENT with the column name on any malformed value: for
// family_presenter_ids, an ID number that fails cache::NormalizeIdNumber
// (the message gives its position and reason, never the number), the
// person's own, one repeated, or more than cache::kMaxFamilyPresenters.
// `with_presenter_ids` false reads a line of the older 19-column form
// (kPersonsHeaderWithoutPresenters).
struct PersonRow {
  std::string id_number;
  engine::Enrollment enrollment;
  std::vector<std::string> family_presenter_ids;
};
absl::StatusOr<PersonRow> ParsePersonLine(std::string_view line, bool with_presenter_ids = true);
absl::StatusOr<engine::Institution> ParseInstitutionLine(std::string_view line);
// The CSV line of a record (the inverse of the parsers); the last column is
// `family_presenter_ids` joined by ';' (e.family_presenter_keys, being
// keys, cannot be written back as ID numbers).
std::string PersonLine(std::string_view id_number, const engine::Enrollment& e,
                       const std::vector<std::string>& family_presenter_ids = {});
// Sets row.enrollment.person_key and its family_presenter_keys (sorted)
// from the row's ID numbers with `keyer`.
absl::Status KeyPersonRow(const cache::PersonKeyer& keyer, PersonRow& row);
std::string InstitutionLine(const engine::Institution& i);

struct LoadOptions {
  std::string persons_path;
  std::string institutions_path;
  int64_t batch_persons = 65536;  // persons per PutPersons call
  std::ostream* progress = nullptr;  // progress bar, e.g. &std::cerr
};
struct LoadResult {
  std::string version;
  cache::SnapshotCounts counts;
};
// Reads both files, keys every person, writes them under a new version,
// commits (count check) and so makes it current. On any failure the
// version is left registered as "loading" (drop it) and not made current;
// errors name the file and line, never an ID number.
absl::StatusOr<LoadResult> Load(cache::SnapshotStore& store, const cache::PersonKeyer& keyer,
                                const LoadOptions& options);

// The whole command line (args without the program name): "synth", "load",
// "status", "show", "drop", "delta". Writes results to `out`, errors and progress
// to `err`; returns the process exit code (0 ok, 1 failure, 2 usage).
int Run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace medsettle::snapshot_tool

#endif  // MEDSETTLE_TOOLS_SNAPSHOT_SNAPSHOT_TOOL_H_
