#include "tools/loadgen/population.h"

#include <charconv>
#include <fstream>
#include <map>
#include <optional>

#include "engine/text.h"

namespace medsettle::loadgen {

using engine::Cat;

namespace {

absl::Status Bad(std::string_view what, const std::string& path, size_t line,
                 std::string_view why) {
  return absl::InvalidArgumentError(Cat(what, " ", path, ":", line, ": ", why));
}

// Reads `path` line by line; the header's column names → index.
class CsvFile {
 public:
  absl::Status Open(std::string_view what, const std::string& path) {
    what_ = std::string(what);
    path_ = path;
    in_.open(path);
    if (!in_) return absl::InvalidArgumentError(Cat("cannot read ", what, " ", path));
    std::string header;
    if (!Next(&header)) return absl::InvalidArgumentError(Cat(what, " ", path, " is empty"));
    const std::vector<std::string_view> names = SplitCsv(header);
    for (size_t i = 0; i < names.size(); ++i) columns_[std::string(names[i])] = i;
    return absl::OkStatus();
  }
  absl::StatusOr<size_t> Column(std::string_view name) const {
    auto it = columns_.find(std::string(name));
    if (it == columns_.end()) return Bad(what_, path_, 1, Cat("no column ", name, " in the header"));
    return it->second;
  }
  size_t width() const { return columns_.size(); }
  // The next non-empty, non-comment line.
  bool Next(std::string* line) {
    while (std::getline(in_, *line)) {
      ++line_no_;
      if (!line->empty() && line->back() == '\r') line->pop_back();
      if (line->empty() || (*line)[0] == '#') continue;
      return true;
    }
    return false;
  }
  size_t line_no() const { return line_no_; }
  absl::Status Error(std::string_view why) const { return Bad(what_, path_, line_no_, why); }

 private:
  std::string what_;
  std::string path_;
  std::ifstream in_;
  std::map<std::string, size_t> columns_;
  size_t line_no_ = 0;
};

bool ParseInt(std::string_view text, int64_t* out) {
  if (text.empty()) return false;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && ptr == text.data() + text.size();
}

}  // namespace

std::vector<std::string_view> SplitCsv(std::string_view line) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    const size_t comma = line.find(',', start);
    if (comma == std::string_view::npos) {
      out.push_back(line.substr(start));
      return out;
    }
    out.push_back(line.substr(start, comma - start));
    start = comma + 1;
  }
}

absl::StatusOr<std::vector<Person>> ReadPersons(const std::string& path, size_t* skipped) {
  CsvFile csv;
  if (absl::Status s = csv.Open("--persons", path); !s.ok()) return s;
  size_t col[8];
  const char* names[8] = {"id_number",    "year",   "region_code",          "concentrated",
                          "newborn",      "status", "reenrolled_after_gap", "voucher_revoked_at_unix"};
  for (int i = 0; i < 8; ++i) {
    absl::StatusOr<size_t> c = csv.Column(names[i]);
    if (!c.ok()) return c.status();
    col[i] = *c;
  }
  // category is optional (the tests' minimal files): adults only when given.
  std::optional<size_t> category, birth_date;
  if (absl::StatusOr<size_t> c = csv.Column("category"); c.ok()) category = *c;
  if (absl::StatusOr<size_t> c = csv.Column("birth_date"); c.ok()) birth_date = *c;
  std::vector<Person> persons;
  *skipped = 0;
  std::string line;
  while (csv.Next(&line)) {
    const std::vector<std::string_view> f = SplitCsv(line);
    if (f.size() != csv.width()) {
      return csv.Error(Cat(f.size(), " columns, the header has ", csv.width()));
    }
    int64_t year = 0;
    if (!ParseInt(f[col[1]], &year) || year < 2000 || year > 2100) return csv.Error("bad year");
    if (f[col[0]].size() != 18) return csv.Error("id_number is not 18 characters");
    if (f[col[2]].size() != 6) return csv.Error("region_code is not 6 digits");
    // An adult on every day of the year: 19 or older at its start.
    int64_t born = 0;
    const bool grown = !birth_date || f[*birth_date].size() < 4 ||
                       (ParseInt(f[*birth_date].substr(0, 4), &born) && born <= year - 19);
    const bool eligible = grown && f[col[3]] == "1" && f[col[4]] == "0" && f[col[5]] == "ACTIVE" &&
                          f[col[6]] == "0" && f[col[7]].empty() &&
                          (!category || f[*category] == "ADULT");
    if (!eligible) {
      ++*skipped;
      continue;
    }
    persons.push_back(Person{std::string(f[col[0]]), static_cast<int>(year), std::string(f[col[2]])});
  }
  return persons;
}

absl::StatusOr<std::vector<InstitutionRow>> ReadInstitutions(const std::string& path) {
  CsvFile csv;
  if (absl::Status s = csv.Open("--institutions", path); !s.ok()) return s;
  size_t col[5];
  const char* names[5] = {"institution_id", "region_code", "kind", "level", "suspended"};
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<size_t> c = csv.Column(names[i]);
    if (!c.ok()) return c.status();
    col[i] = *c;
  }
  std::vector<InstitutionRow> rows;
  std::string line;
  while (csv.Next(&line)) {
    const std::vector<std::string_view> f = SplitCsv(line);
    if (f.size() != csv.width()) {
      return csv.Error(Cat(f.size(), " columns, the header has ", csv.width()));
    }
    InstitutionRow row;
    row.id = std::string(f[col[0]]);
    row.region_code = std::string(f[col[1]]);
    row.kind = std::string(f[col[2]]);
    int64_t level = 0;
    if (row.id.empty()) return csv.Error("empty institution_id");
    if (row.kind != "HOSPITAL" && row.kind != "COMMUNITY" && row.kind != "PHARMACY") {
      return csv.Error(Cat("unknown kind ", row.kind));
    }
    if (!ParseInt(f[col[3]], &level) || level < 1 || level > 3) return csv.Error("bad level");
    row.level = static_cast<int>(level);
    row.suspended = f[col[4]] == "1";
    rows.push_back(std::move(row));
  }
  return rows;
}

absl::StatusOr<std::vector<CatalogItem>> ReadCatalog(const std::string& path) {
  CsvFile csv;
  if (absl::Status s = csv.Open("--catalog", path); !s.ok()) return s;
  size_t col[4];
  const char* names[4] = {"code", "name", "class", "price_cap_cents"};
  for (int i = 0; i < 4; ++i) {
    absl::StatusOr<size_t> c = csv.Column(names[i]);
    if (!c.ok()) return c.status();
    col[i] = *c;
  }
  std::vector<CatalogItem> items;
  std::string line;
  while (csv.Next(&line)) {
    const std::vector<std::string_view> f = SplitCsv(line);
    if (f.size() != csv.width()) {
      return csv.Error(Cat(f.size(), " columns, the header has ", csv.width()));
    }
    CatalogItem item;
    item.code = std::string(f[col[0]]);
    item.name = std::string(f[col[1]]);
    if (f[col[2]].size() != 1) return csv.Error("bad class");
    item.item_class = f[col[2]][0];
    if (!f[col[3]].empty() && !ParseInt(f[col[3]], &item.price_cap_cents)) {
      return csv.Error("bad price_cap_cents");
    }
    items.push_back(std::move(item));
  }
  return items;
}

absl::StatusOr<Population> LoadPopulation(const std::string& persons_path,
                                          const std::string& institutions_path,
                                          const std::string& catalog_path) {
  Population p;
  absl::StatusOr<std::vector<Person>> persons = ReadPersons(persons_path, &p.persons_skipped);
  if (!persons.ok()) return persons.status();
  if (persons->empty()) {
    return absl::InvalidArgumentError(
        Cat("--persons ", persons_path, " has no eligible person (ACTIVE, concentrated, ...)"));
  }
  p.persons = *std::move(persons);
  absl::StatusOr<std::vector<InstitutionRow>> institutions = ReadInstitutions(institutions_path);
  if (!institutions.ok()) return institutions.status();
  if (institutions->empty()) {
    return absl::InvalidArgumentError(Cat("--institutions ", institutions_path, " has no row"));
  }
  p.institutions = *std::move(institutions);
  absl::StatusOr<std::vector<CatalogItem>> catalog = ReadCatalog(catalog_path);
  if (!catalog.ok()) return catalog.status();
  if (catalog->empty()) return absl::InvalidArgumentError(Cat("--catalog ", catalog_path, " is empty"));
  p.catalog = *std::move(catalog);
  return p;
}

}  // namespace medsettle::loadgen
