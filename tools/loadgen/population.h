// What the load is made of, read from the files medsettle-snapshot synth
// writes (persons.csv, institutions.csv: tools/snapshot/README.md, the
// plaintext before pseudonymisation) and the engine's catalog CSV
// (engine/catalog/demo-catalog.csv). Pure parsing: every error is
// INVALID_ARGUMENT naming the file (and line), for exit code 2.
#ifndef MEDSETTLE_TOOLS_LOADGEN_POPULATION_H_
#define MEDSETTLE_TOOLS_LOADGEN_POPULATION_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace medsettle::loadgen {

// A person who can be settled for on any day of their year: an adult
// born at least 19 years before the year
// (a child's category depends on the day: the engine refuses a record
// whose category contradicts the age, ENROLLMENT_INVALID), status ACTIVE,
// paid in the concentrated period, not a newborn, not re-enrolled after a
// gap, e-voucher never reported lost. Others are skipped (they would be
// refused for reasons a load test does not mean to measure).
struct Person {
  std::string id_number;
  int year = 0;
  std::string region_code;
};

struct InstitutionRow {
  std::string id;
  std::string region_code;
  std::string kind;  // HOSPITAL, COMMUNITY, PHARMACY
  int level = 0;
  bool suspended = false;
};

struct CatalogItem {
  std::string code;
  std::string name;
  char item_class = 'A';          // A, B, C
  int64_t price_cap_cents = 0;    // 0: no cap
};

struct Population {
  std::vector<Person> persons;          // eligible only
  size_t persons_skipped = 0;           // rows not eligible (see Person)
  std::vector<InstitutionRow> institutions;  // every row, suspended too
  std::vector<CatalogItem> catalog;
};

// The persons CSV of medsettle-snapshot synth (header checked by name;
// the form without family_presenter_ids is read too). Eligible rows only.
absl::StatusOr<std::vector<Person>> ReadPersons(const std::string& path, size_t* skipped);
absl::StatusOr<std::vector<InstitutionRow>> ReadInstitutions(const std::string& path);
// Comment lines (#) are skipped.
absl::StatusOr<std::vector<CatalogItem>> ReadCatalog(const std::string& path);

// All three; INVALID_ARGUMENT naming the flag and file when one cannot be
// read, is malformed, or (persons, institutions) has no usable row.
absl::StatusOr<Population> LoadPopulation(const std::string& persons_path,
                                          const std::string& institutions_path,
                                          const std::string& catalog_path);

// Splits one CSV line on commas (no quoting, as the snapshot files).
std::vector<std::string_view> SplitCsv(std::string_view line);

}  // namespace medsettle::loadgen

#endif  // MEDSETTLE_TOOLS_LOADGEN_POPULATION_H_
