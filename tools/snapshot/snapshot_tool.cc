#include "tools/snapshot/snapshot_tool.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <initializer_list>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "cache/redis_factory.h"
#include "cache/enrollment_codec.h"
#include "engine/status.h"
#include "engine/text.h"

namespace medsettle::snapshot_tool {
namespace {

using engine::Cat;
using engine::Date;

// ---- CSV values ----

absl::Status Bad(std::string_view column, std::string_view why) {
  return engine::InvalidField(reason::kSnapshotInputInvalid, column,
                              Cat("column ", column, ": ", why));
}

absl::Status BadInput(std::string_view message) {
  return engine::InvalidField(reason::kSnapshotInputInvalid, "", message);
}

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (size_t at = s.find(sep); at != std::string_view::npos; at = s.find(sep, start)) {
    parts.push_back(s.substr(start, at - start));
    start = at + 1;
  }
  parts.push_back(s.substr(start));
  return parts;
}

template <typename T>
bool ParseNumber(std::string_view s, T* v) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  return ec == std::errc() && end == s.data() + s.size() && !s.empty();
}

bool ParseBool(std::string_view s, bool* v) {
  if (s != "0" && s != "1") return false;
  *v = s == "1";
  return true;
}

std::optional<Date> ParseOptionalDate(std::string_view s, bool* ok) {
  *ok = true;
  if (s.empty()) return Date();
  std::optional<Date> d = Date::Parse(s);
  *ok = d.has_value();
  return d;
}

template <typename E>
bool ParseEnum(std::string_view s, int count, E* v) {
  for (int k = 1; k < count; ++k) {
    if (engine::Name(static_cast<E>(k)) == s) {
      *v = static_cast<E>(k);
      return true;
    }
  }
  return false;
}

std::string_view StatusName(engine::EnrollmentStatus s) {
  return s == engine::EnrollmentStatus::kSuspended ? "SUSPENDED" : "ACTIVE";
}

std::string Join(const std::vector<std::string>& list, char sep = '|') {
  std::string out;
  for (const std::string& s : list) {
    if (!out.empty()) out.push_back(sep);
    out += s;
  }
  return out;
}

std::vector<std::string> SplitList(std::string_view s) {
  std::vector<std::string> list;
  if (s.empty()) return list;
  for (std::string_view part : Split(s, '|')) list.emplace_back(part);
  return list;
}

std::string Message(const absl::Status& s) {
  return Cat(absl::StatusCodeToString(s.code()), " ", engine::ReasonOf(s), ": ",
             std::string_view(s.message().data(), s.message().size()));
}

constexpr std::string_view kPresenterIdsColumn = "family_presenter_ids";

// The family_presenter_ids column (non-empty): ID numbers separated by ';',
// each valid (cache::NormalizeIdNumber), none the person's own (`own`, raw)
// nor repeated, at most cache::kMaxFamilyPresenters. Normalised, in order.
absl::StatusOr<std::vector<std::string>> ParsePresenterIds(std::string_view column,
                                                           std::string_view own) {
  std::vector<std::string_view> parts = Split(column, ';');
  if (parts.size() > cache::kMaxFamilyPresenters) {
    return Bad(kPresenterIdsColumn, Cat(parts.size(), " ID numbers, at most ",
                                        cache::kMaxFamilyPresenters));
  }
  absl::StatusOr<std::string> own_id = cache::NormalizeIdNumber(own);
  std::vector<std::string> ids;
  for (size_t k = 0; k < parts.size(); ++k) {
    absl::StatusOr<std::string> id = cache::NormalizeIdNumber(parts[k]);
    if (!id.ok()) {  // the reason, never the number
      return Bad(kPresenterIdsColumn,
                 Cat("ID number ", k + 1, " is not valid (", engine::ReasonOf(id.status()), ")"));
    }
    if (own_id.ok() ? *id == *own_id : parts[k] == own) {
      return Bad(kPresenterIdsColumn, Cat("ID number ", k + 1, " is the person's own"));
    }
    for (size_t j = 0; j < ids.size(); ++j) {
      if (ids[j] == *id) {
        return Bad(kPresenterIdsColumn, Cat("ID number ", k + 1, " repeats ID number ", j + 1));
      }
    }
    ids.push_back(*std::move(id));
  }
  return ids;
}

// ---- Synthesis ----

// A small deterministic generator (splitmix64): identical on every platform.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  int Below(int n) { return static_cast<int>(Next() % static_cast<uint64_t>(n)); }
  bool Percent(int p) { return Below(100) < p; }

 private:
  uint64_t state_;
};

struct RegionYear {
  engine::RegionCode region;
  int32_t year;
  std::string_view product;  // the supplementary product sold there, if any
};
constexpr RegionYear kRegionYears[] = {
    {330800, 2024, ""}, {330800, 2025, ""}, {500231, 2024, ""},
    {330213, 2025, "tianyi-yongning-2025"}};
constexpr int kCoverageRows = 280;  // lcm-ish of the cycles below
constexpr std::string_view kChronic[] = {"HYPERTENSION", "DIABETES", "TB", "COPD"};
constexpr std::string_view kSpecial[] = {"UREMIA", "CANCER", "HEMOPHILIA"};
constexpr engine::RegionCode kFilingRegions[] = {310000, 330100, 440300};

// GB 11643-1999: ISO 7064 MOD 11-2 over the first 17 digits.
char CheckDigit(std::string_view first17) {
  static constexpr int kWeights[] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
  int sum = 0;
  for (int k = 0; k < 17; ++k) sum += (first17[k] - '0') * kWeights[k];
  return "10X98765432"[sum % 11];
}

engine::Enrollment SynthPerson(int64_t index, Rng& rng) {
  const bool cover = index < kCoverageRows;  // cycle every value first
  const int i = static_cast<int>(index % kCoverageRows);
  const RegionYear& ry = kRegionYears[cover ? i % 4 : rng.Below(4)];
  engine::Enrollment e;
  e.year = ry.year;
  e.region_code = ry.region;
  e.tier = ry.region == 500231 ? 1 + (cover ? (i / 4) % 2 : rng.Below(2)) : 0;
  int category = cover ? 1 + i % 4 : (rng.Percent(75) ? 1 : 2 + rng.Below(3));
  e.category = static_cast<engine::Category>(category);
  // Ages that every policy's category-by-birth rule agrees with (Fenghua
  // 2025 makes those born up to 2005 adults and from 2019 infants: an
  // adult of 18 or a minor of 3 would contradict it and be refused
  // ENROLLMENT_INVALID). The draws stay as they were, so the same seed
  // gives the same persons but for these few ages.
  int age = 0;
  switch (e.category) {
    case engine::Category::kInfant: age = rng.Below(3); break;
    case engine::Category::kMinor:
      age = 3 + rng.Below(15);
      if (age < 7) age += 4;  // 3..6 → 7..10: born before 2019
      break;
    case engine::Category::kStudent: age = 6 + rng.Below(15); break;
    default: age = std::max(20, 18 + rng.Below(73)); break;  // born up to 2005
  }
  // Babies of this year are born in its first months, before the data is cut.
  e.birth_date = Date::FromYmd(e.year - age, 1, 1).AddDays(rng.Below(age == 0 ? 180 : 365));
  e.newborn = e.category == engine::Category::kInfant && (cover ? i % 2 == 0 : rng.Percent(30));
  e.assistance = static_cast<engine::Assistance>(
      cover ? 1 + i % 7 : (rng.Percent(85) ? 1 : 2 + rng.Below(6)));
  int paid = cover ? i % 5 : rng.Below(20);  // 0: government-paid, 1: mid-year, else concentrated
  if (paid == 0) {
    e.concentrated = true;
  } else if (paid == 1) {
    e.paid_date = Date::FromYmd(e.year, 1, 1).AddDays(rng.Below(300));
  } else {
    e.concentrated = true;
    e.paid_date = Date::FromYmd(e.year - 1, 9, 1).AddDays(rng.Below(122));
  }
  e.reenrolled_after_gap = cover ? i % 7 == 3 : rng.Percent(2);
  e.status = (cover ? i % 10 == 9 : rng.Percent(1)) ? engine::EnrollmentStatus::kSuspended
                                                    : engine::EnrollmentStatus::kActive;
  if (cover ? i % 3 == 0 : rng.Percent(12)) {
    int n = 1 + (cover ? (i / 3) % 2 : rng.Below(2));
    for (int k = 0; k < n; ++k) {
      e.chronic_conditions.emplace_back(kChronic[(cover ? i / 3 + k : rng.Below(4)) % 4]);
    }
  }
  if (cover ? i % 5 == 0 : rng.Percent(2)) {
    e.special_diseases.emplace_back(kSpecial[(cover ? i / 5 : rng.Below(3)) % 3]);
  }
  if (cover ? i % 6 == 0 : rng.Percent(3)) {
    engine::OutOfAreaFiling f;
    f.region_code = kFilingRegions[(cover ? i / 6 : rng.Below(3)) % 3];
    f.start_date = Date::FromYmd(e.year, 1, 1).AddDays(rng.Below(180));
    f.end_date = f.start_date.AddDays(90 + rng.Below(180));
    e.out_of_area_filings.push_back(f);
  }
  if (!ry.product.empty() && (cover ? i % 8 < 4 : rng.Percent(40))) {
    e.supplementary.product = std::string(ry.product);
    e.supplementary.pre_existing = cover ? i % 8 < 2 : rng.Percent(20);
    e.supplementary.continuous = cover ? i % 2 == 0 : rng.Percent(70);
  }
  if (cover ? i % 9 == 4 : rng.Percent(1)) {
    e.voucher_revoked_at_unix = 1'704'067'200 + (e.year - 2024) * 31'536'000 +
                                rng.Below(300) * 86'400;  // during the year
  }
  return e;
}

// A unique 18-character ID number for `e` (region + birth date + sequence).
std::string SynthIdNumber(const engine::Enrollment& e, Rng& rng,
                          std::unordered_set<uint64_t>& used) {
  Date birth = e.birth_date;
  int seq = rng.Below(1000);
  for (int tries = 0;; ++tries) {
    uint64_t packed = (static_cast<uint64_t>(e.region_code) << 32) ^
                      (static_cast<uint64_t>(static_cast<uint32_t>(birth.days())) << 10) ^
                      static_cast<uint64_t>(seq);
    if (used.insert(packed).second) break;
    seq = (seq + 1) % 1000;
    if (tries % 1000 == 999) birth = birth.AddDays(1);  // that day is full
  }
  std::string id = Cat(e.region_code, birth.ToString().substr(0, 4), birth.ToString().substr(5, 2),
                       birth.ToString().substr(8, 2));
  id += static_cast<char>('0' + seq / 100);
  id += static_cast<char>('0' + seq / 10 % 10);
  id += static_cast<char>('0' + seq % 10);
  id += CheckDigit(id);
  return id;
}

// Family presenters for about 5% of persons (亲情账户): one or two of the
// last kRecent persons synthesised in the same region-year (a parent, a
// child, a spouse), so every presenter is a person of the file and never
// the person themself. Among the first kCoverageRows rows, every 20th.
class FamilyPicker {
 public:
  // The presenters' ID numbers for person `index` (sorted), then remembers
  // `id` as a candidate for later persons.
  std::vector<std::string> Pick(int64_t index, const engine::Enrollment& e, const std::string& id,
                                Rng& rng) {
    size_t ry = 0;
    while (ry + 1 < std::size(kRegionYears) && !(kRegionYears[ry].region == e.region_code &&
                                                 kRegionYears[ry].year == e.year)) {
      ++ry;
    }
    std::vector<std::string>& recent = recent_[ry];
    std::vector<std::string> ids;
    const bool cover = index < kCoverageRows;
    if (cover ? index % 20 == 11 : rng.Percent(5)) {
      size_t want = 1 + static_cast<size_t>(cover ? (index / 20) % 2 : rng.Below(2));
      size_t start =
          recent.empty() ? 0 : static_cast<size_t>(rng.Below(static_cast<int>(recent.size())));
      for (size_t k = 0; k < std::min(want, recent.size()); ++k) {
        ids.push_back(recent[(start + k) % recent.size()]);
      }
      std::sort(ids.begin(), ids.end());
    }
    if (recent.size() < kRecent) {
      recent.push_back(id);
    } else {
      recent[next_[ry]] = id;
      next_[ry] = (next_[ry] + 1) % kRecent;
    }
    return ids;
  }

 private:
  static constexpr size_t kRecent = 16;
  std::array<std::vector<std::string>, std::size(kRegionYears)> recent_;
  std::array<size_t, std::size(kRegionYears)> next_{};
};

std::vector<engine::Institution> SynthInstitutions() {
  struct Region {
    engine::RegionCode code;
    std::string_view name;
  };
  constexpr Region kRegions[] = {{330800, "Quzhou"}, {500231, "Dianjiang"}, {330213, "Fenghua"}};
  constexpr char kPrefix[] = {'?', 'H', 'C', 'P'};
  std::vector<engine::Institution> all;
  for (const Region& r : kRegions) {
    int seq = 0;
    for (int kind = 1; kind < engine::kInstitutionKindCount; ++kind) {
      for (int level = 1; level <= 3; ++level) {
        engine::Institution i;
        i.kind = static_cast<engine::InstitutionKind>(kind);
        i.region_code = r.code;
        i.level = level;
        i.institution_id = Cat(kPrefix[kind], r.code, seq / 1000 % 10, seq / 100 % 10,
                               seq / 10 % 10, seq % 10);
        ++seq;
        i.name = Cat(r.name, " ", engine::Name(i.kind), " level ", level);
        i.zero_markup = level >= 2 || i.kind == engine::InstitutionKind::kCommunity;
        i.base_level = i.kind == engine::InstitutionKind::kCommunity || level == 1;
        all.push_back(i);
      }
    }
    // The special hospitals: TCM, children's / maternal, and a suspended one.
    for (int special = 0; special < 3; ++special) {
      engine::Institution i;
      i.kind = engine::InstitutionKind::kHospital;
      i.region_code = r.code;
      i.level = 3 - special % 2;
      i.zero_markup = true;
      i.institution_id = Cat('H', r.code, seq / 1000 % 10, seq / 100 % 10, seq / 10 % 10, seq % 10);
      ++seq;
      i.tcm = special == 0;
      i.children_or_maternal = special == 1;
      i.suspended = special == 2;
      i.name = Cat(r.name, special == 0 ? " TCM hospital" : special == 1 ? " maternal and child hospital" : " suspended hospital");
      all.push_back(i);
    }
  }
  return all;
}

// ---- Loading ----

class Progress {
 public:
  Progress(std::ostream* out, int64_t total) : out_(out), total_(std::max<int64_t>(total, 1)) {}
  void Show(int64_t done) {
    if (out_ == nullptr) return;
    constexpr int kWidth = 40;
    int filled = static_cast<int>(done * kWidth / total_);
    *out_ << "\rloading persons [" << std::string(static_cast<size_t>(filled), '#')
          << std::string(static_cast<size_t>(kWidth - filled), '.') << "] "
          << done * 100 / total_ << "% " << done << "/" << total_ << std::flush;
  }
  void Done() {
    if (out_ != nullptr) *out_ << "\n";
  }

 private:
  std::ostream* out_;
  int64_t total_;
};

// A CSV file's data lines, and which of the accepted headers it began with.
struct CsvLines {
  std::vector<std::string> lines;
  size_t header = 0;  // index into the accepted headers
};

// `headers[0]` is the current header (named in the refusal); any of them
// is accepted.
absl::StatusOr<CsvLines> ReadLines(const std::string& path,
                                   std::initializer_list<std::string_view> headers) {
  std::ifstream in(path);
  if (!in) {
    return engine::InvalidField(reason::kSnapshotInputInvalid, "", Cat("cannot open ", path));
  }
  CsvLines csv;
  std::string line;
  bool got = static_cast<bool>(std::getline(in, line));
  if (got && !line.empty() && line.back() == '\r') line.pop_back();
  auto match = std::find(headers.begin(), headers.end(), std::string_view(line));
  if (!got || match == headers.end()) {
    return engine::InvalidField(
        reason::kSnapshotInputInvalid, "",
        Cat(path, ": the first line must be the header: ", *headers.begin()));
  }
  csv.header = static_cast<size_t>(match - headers.begin());
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) csv.lines.push_back(std::move(line));
  }
  return csv;
}

// The persons CSV: either header (the older one without presenters).
absl::StatusOr<CsvLines> ReadPersonLines(const std::string& path) {
  return ReadLines(path, {kPersonsHeader, kPersonsHeaderWithoutPresenters});
}

absl::Status AtLine(const absl::Status& s, const std::string& path, size_t line_no) {
  return engine::Refusal(s.code(), engine::ReasonOf(s), engine::FieldOf(s),
                         Cat(path, ":", line_no, ": ", std::string_view(s.message().data(),
                                                                          s.message().size())));
}

// ---- Command line ----

struct Flags {
  std::map<std::string, std::string, std::less<>> named;
  std::vector<std::string> positional;
  std::string Get(std::string_view name, std::string_view fallback = "") const {
    auto it = named.find(name);
    return it == named.end() ? std::string(fallback) : it->second;
  }
  bool Has(std::string_view name) const { return named.count(name) > 0; }
};

absl::StatusOr<Flags> ParseFlags(const std::vector<std::string>& args, size_t from) {
  Flags flags;
  for (size_t k = from; k < args.size(); ++k) {
    if (args[k].rfind("--", 0) == 0) {
      if (k + 1 >= args.size()) return BadInput(Cat(args[k], " needs a value"));
      flags.named[args[k].substr(2)] = args[k + 1];
      ++k;
    } else {
      flags.positional.push_back(args[k]);
    }
  }
  return flags;
}

// --redis HOST:PORT (one server), or with --redis-mode cluster any nodes
// of a Redis Cluster, HOST:PORT,HOST:PORT,…
absl::StatusOr<std::unique_ptr<cache::RedisClients>> Connect(const Flags& flags) {
  const std::string mode = flags.Get("redis-mode", "standalone");
  if (mode != "standalone" && mode != "cluster") {
    return BadInput(Cat("--redis-mode must be standalone or cluster, got ", mode));
  }
  const std::string address = flags.Get("redis", "127.0.0.1:6379");
  absl::StatusOr<std::vector<cache::NodeAddress>> nodes = cache::ParseNodeList(address);
  if (!nodes.ok() || (mode == "standalone" && nodes->size() != 1)) {
    return BadInput(Cat("--redis must be HOST:PORT", mode == "cluster" ? "[,HOST:PORT…]" : "",
                        ", got ", address));
  }
  cache::RedisTarget target;
  target.cluster = mode == "cluster";
  target.nodes = *std::move(nodes);
  target.connect_timeout_ms = 2000;
  target.command_timeout_ms = 30000;  // bulk pipelines of a load
  target.pool_size = 1;
  target.acquire_timeout_ms = 1000;
  target.io_threads = 0;  // blocking calls only
  return cache::RedisClients::Open(std::move(target));
}

absl::StatusOr<cache::PersonKeyer> KeyerFrom(const Flags& flags) {
  std::string path = flags.Get("key-file");
  if (path.empty()) return BadInput("--key-file is required");
  std::ifstream in(path, std::ios::binary);
  if (!in) return BadInput(Cat("cannot read the key file ", path));
  std::stringstream secret;
  secret << in.rdbuf();
  return cache::PersonKeyer::Create(secret.str());
}

// The family member of a presenter delta: --presenter-key, or
// --presenter-id-number keyed with --key-file.
absl::StatusOr<std::string> PresenterKeyFrom(const Flags& flags) {
  if (flags.Has("presenter-key")) return flags.Get("presenter-key");
  if (!flags.Has("presenter-id-number")) {
    return BadInput("give --presenter-key, or --presenter-id-number with --key-file");
  }
  absl::StatusOr<cache::PersonKeyer> keyer = KeyerFrom(flags);
  if (!keyer.ok()) return keyer.status();
  absl::StatusOr<std::string> key = keyer->KeyOfIdNumber(flags.Get("presenter-id-number"));
  if (!key.ok()) {
    const absl::Status& s = key.status();
    return engine::Refusal(s.code(), engine::ReasonOf(s), "presenter-id-number",
                           Cat("--presenter-id-number: ",
                               std::string_view(s.message().data(), s.message().size())));
  }
  return key;
}

// A stored record as "column: value" lines in persons-CSV order, the
// person key for id_number and the presenter keys for family_presenter_ids.
std::string PersonDump(const engine::Enrollment& e) {
  std::vector<std::string_view> names = Split(kPersonsHeader, ',');
  std::string line = PersonLine("", e);
  std::vector<std::string_view> values = Split(line, ',');
  std::string out = Cat("person_key: ", e.person_key, "\n");
  for (size_t k = 1; k + 1 < names.size() && k < values.size(); ++k) {
    out += Cat(names[k], ": ", values[k], "\n");
  }
  out += Cat("family_presenter_keys: ",
             e.family_presenter_keys.empty() ? std::string("(none)")
                                             : Join(e.family_presenter_keys, ' '),
             "\n");
  return out;
}

absl::StatusOr<std::string> PersonKeyFrom(const Flags& flags) {
  if (flags.Has("person-key")) return flags.Get("person-key");
  if (!flags.Has("id-number")) {
    return BadInput("give --person-key, or --id-number with --key-file");
  }
  absl::StatusOr<cache::PersonKeyer> keyer = KeyerFrom(flags);
  if (!keyer.ok()) return keyer.status();
  return keyer->KeyOfIdNumber(flags.Get("id-number"));
}

constexpr std::string_view kUsage =
    "usage: medsettle-snapshot COMMAND [flags]   (tools/snapshot/README.md)\n"
    "  synth --persons N --seed S --out persons.csv --institutions-out institutions.csv\n"
    "  load --persons persons.csv --institutions institutions.csv --key-file KEYFILE"
    " [--redis HOST:PORT]\n"
    "  status [--redis HOST:PORT]\n"
    "  show (--person-key K | --id-number N --key-file F) [--version V] [--redis ...]\n"
    "  drop VERSION [--redis HOST:PORT]\n"
    "  delta suspend (--person-key K | --id-number N --key-file F) [--redis ...]\n"
    "  delta revoke-voucher (--person-key K | --id-number N --key-file F) --at UNIX_SECONDS\n"
    "  delta upsert --persons rows.csv --key-file F [--redis ...]\n"
    "  delta bind-presenter (--person-key K | --id-number N --key-file F)\n"
    "      (--presenter-key K | --presenter-id-number N --key-file F) [--redis ...]\n"
    "  delta unbind-presenter (the same flags)\n"
    "  delta suspend-institution --institution ID [--redis ...]\n"
    "  delta reinstate-institution --institution ID [--redis ...]\n"
    "  delta upsert-institutions --institutions rows.csv [--redis ...]\n"
    "A Redis Cluster: --redis-mode cluster --redis HOST:PORT,HOST:PORT,... (any of its nodes)\n";

int RunCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  const std::string& command = args[0];
  size_t flags_from = command == "delta" ? 2 : 1;
  absl::StatusOr<Flags> flags = ParseFlags(args, flags_from);
  if (!flags.ok()) {
    err << Message(flags.status()) << "\n" << kUsage;
    return 2;
  }
  auto fail = [&err](const absl::Status& s) {
    err << "medsettle-snapshot: " << Message(s) << "\n";
    return 1;
  };

  if (command == "synth") {
    int64_t persons = 0;
    uint64_t seed = 0;
    if (!ParseNumber(std::string_view(flags->Get("persons")), &persons) || persons < 0 ||
        !ParseNumber(std::string_view(flags->Get("seed", "1")), &seed) ||
        !flags->Has("out") || !flags->Has("institutions-out")) {
      err << kUsage;
      return 2;
    }
    std::ofstream p(flags->Get("out")), i(flags->Get("institutions-out"));
    if (!p || !i) return fail(BadInput("cannot write the output files"));
    if (absl::Status s = Synthesize(persons, seed, p, i); !s.ok()) return fail(s);
    p.close();
    i.close();
    if (!p || !i) return fail(absl::InternalError("writing the output files failed"));
    out << "wrote " << persons << " persons (seed " << seed << ") to " << flags->Get("out")
        << " and institutions to " << flags->Get("institutions-out") << "\n";
    return 0;
  }

  absl::StatusOr<std::unique_ptr<cache::RedisClients>> redis = Connect(*flags);
  if (!redis.ok()) return fail(redis.status());
  cache::SnapshotStore store((*redis)->blocking());

  if (command == "load") {
    if (!flags->Has("persons") || !flags->Has("institutions")) {
      err << kUsage;
      return 2;
    }
    absl::StatusOr<cache::PersonKeyer> keyer = KeyerFrom(*flags);
    if (!keyer.ok()) return fail(keyer.status());
    LoadOptions options{.persons_path = flags->Get("persons"),
                        .institutions_path = flags->Get("institutions"),
                        .progress = &err};
    auto start = std::chrono::steady_clock::now();
    absl::StatusOr<LoadResult> result = Load(store, *keyer, options);
    if (!result.ok()) return fail(result.status());
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    out << "loaded " << result->counts.persons << " persons and " << result->counts.institutions
        << " institutions as " << result->version << " (now current) in " << seconds << " s\n";
    return 0;
  }
  if (command == "status") {
    absl::StatusOr<cache::SnapshotStatus> status = store.Status();
    if (!status.ok()) return fail(status.status());
    out << "current: " << status->current.value_or("(none)") << "\n";
    for (const cache::SnapshotVersionInfo& v : status->versions) {
      out << v.version << "  " << v.state << "  persons=" << v.counts.persons
          << "  institutions=" << v.counts.institutions << "  started_at=" << v.started_at_unix
          << "  committed_at=" << v.committed_at_unix << "  source=" << v.source
          << (status->current == v.version ? "  (current)" : "") << "\n";
    }
    return 0;
  }
  if (command == "show") {
    absl::StatusOr<std::string> key = PersonKeyFrom(*flags);
    if (!key.ok()) return fail(key.status());
    std::string version = flags->Get("version");
    if (version.empty()) {
      absl::StatusOr<std::optional<std::string>> current = store.CurrentVersion();
      if (!current.ok()) return fail(current.status());
      if (!current->has_value()) {
        return fail(engine::Refusal(absl::StatusCode::kNotFound, cache::reason::kSnapshotNotFound,
                                    "", "no snapshot version is current"));
      }
      version = **current;
    }
    absl::StatusOr<std::optional<engine::Enrollment>> e = store.GetEnrollment(version, *key);
    if (!e.ok()) return fail(e.status());
    if (!e->has_value()) {
      return fail(engine::Refusal(absl::StatusCode::kNotFound,
                                  cache::reason::kSnapshotPersonNotFound, "person_key",
                                  Cat("snapshot ", version, " holds no such person")));
    }
    out << "version: " << version << "\n" << PersonDump(**e);
    return 0;
  }
  if (command == "drop") {
    if (flags->positional.size() != 1) {
      err << kUsage;
      return 2;
    }
    if (absl::Status s = store.Drop(flags->positional[0]); !s.ok()) return fail(s);
    out << "dropped " << flags->positional[0] << "\n";
    return 0;
  }
  if (command == "delta" && args.size() >= 2 &&
      (args[1] == "suspend-institution" || args[1] == "reinstate-institution" ||
       args[1] == "upsert-institutions")) {
    const std::string& kind = args[1];
    std::vector<cache::InstitutionDelta> deltas;
    if (kind == "upsert-institutions") {
      if (!flags->Has("institutions")) {
        err << "--institutions rows.csv is required\n" << kUsage;
        return 2;
      }
      const std::string path = flags->Get("institutions");
      absl::StatusOr<CsvLines> csv = ReadLines(path, {kInstitutionsHeader});
      if (!csv.ok()) return fail(csv.status());
      // Every row parsed before the first is written: a bad file changes nothing.
      for (size_t k = 0; k < csv->lines.size(); ++k) {
        absl::StatusOr<engine::Institution> i = ParseInstitutionLine(csv->lines[k]);
        if (!i.ok()) return fail(AtLine(i.status(), path, k + 2));
        deltas.push_back({.kind = cache::InstitutionDeltaKind::kUpsertInstitution,
                          .institution = *std::move(i)});
      }
    } else {
      if (flags->Get("institution").empty()) {
        err << "--institution ID is required\n" << kUsage;
        return 2;
      }
      cache::InstitutionDelta d;
      d.kind = kind == "suspend-institution" ? cache::InstitutionDeltaKind::kSuspendInstitution
                                             : cache::InstitutionDeltaKind::kReinstateInstitution;
      d.institution.institution_id = flags->Get("institution");
      deltas.push_back(std::move(d));
    }
    for (const cache::InstitutionDelta& d : deltas) {
      absl::StatusOr<cache::DeltaApplied> applied = store.ApplyInstitutionDelta(d);
      if (!applied.ok()) return fail(applied.status());
      out << cache::Name(d.kind) << " " << d.institution.institution_id << " in "
          << applied->version << " (stream entry " << applied->stream_id << ")";
      if (applied->suspension_kept) {
        out << "; still suspended (reinstate-institution lifts a suspension)";
      }
      out << "\n";
    }
    return 0;
  }
  if (command == "delta" && args.size() >= 2) {
    const std::string& kind = args[1];
    std::vector<cache::Delta> deltas;
    if (kind == "suspend" || kind == "revoke-voucher" || kind == "bind-presenter" ||
        kind == "unbind-presenter") {
      cache::Delta d;
      d.kind = kind == "suspend"          ? cache::DeltaKind::kSuspend
               : kind == "revoke-voucher" ? cache::DeltaKind::kRevokeVoucher
               : kind == "bind-presenter" ? cache::DeltaKind::kBindPresenter
                                          : cache::DeltaKind::kUnbindPresenter;
      absl::StatusOr<std::string> key = PersonKeyFrom(*flags);
      if (!key.ok()) return fail(key.status());
      d.enrollment.person_key = *key;
      if (d.kind == cache::DeltaKind::kBindPresenter ||
          d.kind == cache::DeltaKind::kUnbindPresenter) {
        absl::StatusOr<std::string> presenter = PresenterKeyFrom(*flags);
        if (!presenter.ok()) return fail(presenter.status());
        d.presenter_key = *presenter;
      }
      if (d.kind == cache::DeltaKind::kRevokeVoucher &&
          !ParseNumber(std::string_view(flags->Get("at")), &d.revoked_at_unix)) {
        err << "--at UNIX_SECONDS is required\n" << kUsage;
        return 2;
      }
      deltas.push_back(std::move(d));
    } else if (kind == "upsert" && flags->Has("persons")) {
      absl::StatusOr<cache::PersonKeyer> keyer = KeyerFrom(*flags);
      if (!keyer.ok()) return fail(keyer.status());
      std::string path = flags->Get("persons");
      absl::StatusOr<CsvLines> csv = ReadPersonLines(path);
      if (!csv.ok()) return fail(csv.status());
      for (size_t k = 0; k < csv->lines.size(); ++k) {
        absl::StatusOr<PersonRow> row = ParsePersonLine(csv->lines[k], csv->header == 0);
        if (!row.ok()) return fail(AtLine(row.status(), path, k + 2));
        if (absl::Status s = KeyPersonRow(*keyer, *row); !s.ok()) {
          return fail(AtLine(s, path, k + 2));
        }
        cache::Delta d;
        d.kind = cache::DeltaKind::kUpsertPerson;
        d.enrollment = std::move(row->enrollment);
        deltas.push_back(std::move(d));
      }
    } else {
      err << kUsage;
      return 2;
    }
    for (const cache::Delta& d : deltas) {
      absl::StatusOr<cache::DeltaApplied> applied = store.ApplyDelta(d);
      if (!applied.ok()) return fail(applied.status());
      out << cache::Name(d.kind) << " " << d.enrollment.person_key;
      if (!d.presenter_key.empty()) out << " presenter " << d.presenter_key;
      out << " in " << applied->version << " (stream entry " << applied->stream_id << ")\n";
    }
    return 0;
  }
  err << kUsage;
  return 2;
}

}  // namespace

std::string PersonLine(std::string_view id_number, const engine::Enrollment& e,
                       const std::vector<std::string>& family_presenter_ids) {
  std::string filings;
  for (const engine::OutOfAreaFiling& f : e.out_of_area_filings) {
    if (!filings.empty()) filings.push_back('|');
    filings += Cat(f.region_code, ":", f.start_date.ToString(), ":", f.end_date.ToString());
  }
  return Cat(id_number, ",", e.year, ",", e.region_code, ",", e.birth_date.ToString(), ",",
             engine::Name(e.category), ",", e.tier, ",", engine::Name(e.assistance), ",",
             e.paid_date.ToString(), ",", e.concentrated ? "1" : "0", ",",
             e.newborn ? "1" : "0", ",", e.reenrolled_after_gap ? "1" : "0", ",",
             StatusName(e.status), ",", Join(e.chronic_conditions), ",",
             Join(e.special_diseases), ",", filings, ",", e.supplementary.product, ",",
             e.supplementary.pre_existing ? "1" : "0", ",",
             e.supplementary.continuous ? "1" : "0", ",",
             e.voucher_revoked_at_unix.has_value() ? std::to_string(*e.voucher_revoked_at_unix)
                                                   : std::string(),
             ",", Join(family_presenter_ids, ';'));
}

absl::StatusOr<PersonRow> ParsePersonLine(std::string_view line, bool with_presenter_ids) {
  std::vector<std::string_view> c = Split(line, ',');
  const size_t columns = with_presenter_ids ? 20 : 19;
  if (c.size() != columns) {
    return Bad("(row)", Cat("expected ", columns, " columns, found ", c.size()));
  }
  PersonRow row;
  engine::Enrollment& e = row.enrollment;
  row.id_number = std::string(c[0]);
  if (!ParseNumber(c[1], &e.year)) return Bad("year", "not an integer");
  if (!ParseNumber(c[2], &e.region_code) || !engine::IsValidRegionCode(e.region_code)) {
    return Bad("region_code", "not a 6-digit division code");
  }
  bool ok = true;
  e.birth_date = ParseOptionalDate(c[3], &ok).value_or(Date());
  if (!ok) return Bad("birth_date", "not YYYY-MM-DD");
  if (!ParseEnum(c[4], engine::kCategoryCount, &e.category)) return Bad("category", "unknown");
  if (!ParseNumber(c[5], &e.tier) || e.tier < 0 || e.tier > 2) return Bad("tier", "not 0, 1 or 2");
  if (!ParseEnum(c[6], engine::kAssistanceCount, &e.assistance)) {
    return Bad("assistance", "unknown");
  }
  e.paid_date = ParseOptionalDate(c[7], &ok).value_or(Date());
  if (!ok) return Bad("paid_date", "not YYYY-MM-DD or empty");
  if (!ParseBool(c[8], &e.concentrated)) return Bad("concentrated", "not 0 or 1");
  if (!ParseBool(c[9], &e.newborn)) return Bad("newborn", "not 0 or 1");
  if (!ParseBool(c[10], &e.reenrolled_after_gap)) return Bad("reenrolled_after_gap", "not 0 or 1");
  if (c[11] == "ACTIVE") {
    e.status = engine::EnrollmentStatus::kActive;
  } else if (c[11] == "SUSPENDED") {
    e.status = engine::EnrollmentStatus::kSuspended;
  } else {
    return Bad("status", "not ACTIVE or SUSPENDED");
  }
  e.chronic_conditions = SplitList(c[12]);
  e.special_diseases = SplitList(c[13]);
  if (!c[14].empty()) {
    for (std::string_view f : Split(c[14], '|')) {
      std::vector<std::string_view> parts = Split(f, ':');
      engine::OutOfAreaFiling filing;
      std::optional<Date> start, end;
      if (parts.size() != 3 || !ParseNumber(parts[0], &filing.region_code) ||
          !(start = Date::Parse(parts[1])) || !(end = Date::Parse(parts[2])) || *end < *start) {
        return Bad("out_of_area_filings", "not REGION:YYYY-MM-DD:YYYY-MM-DD[|...]");
      }
      filing.start_date = *start;
      filing.end_date = *end;
      e.out_of_area_filings.push_back(filing);
    }
  }
  e.supplementary.product = std::string(c[15]);
  if (!ParseBool(c[16], &e.supplementary.pre_existing)) {
    return Bad("supplementary_pre_existing", "not 0 or 1");
  }
  if (!ParseBool(c[17], &e.supplementary.continuous)) {
    return Bad("supplementary_continuous", "not 0 or 1");
  }
  if (!c[18].empty()) {
    int64_t at = 0;
    if (!ParseNumber(c[18], &at)) return Bad("voucher_revoked_at_unix", "not an integer");
    e.voucher_revoked_at_unix = at;
  }
  if (with_presenter_ids && !c[19].empty()) {
    absl::StatusOr<std::vector<std::string>> ids = ParsePresenterIds(c[19], row.id_number);
    if (!ids.ok()) return ids.status();
    row.family_presenter_ids = *std::move(ids);
  }
  return row;
}

absl::Status KeyPersonRow(const cache::PersonKeyer& keyer, PersonRow& row) {
  absl::StatusOr<std::string> key = keyer.KeyOfIdNumber(row.id_number);
  if (!key.ok()) return key.status();
  row.enrollment.person_key = *std::move(key);
  std::vector<std::string>& keys = row.enrollment.family_presenter_keys;
  keys.clear();
  for (const std::string& id : row.family_presenter_ids) {
    absl::StatusOr<std::string> presenter = keyer.KeyOfIdNumber(id);
    if (!presenter.ok()) {
      return Bad(kPresenterIdsColumn,
                 Cat("an ID number is refused: ", Message(presenter.status())));
    }
    keys.push_back(*std::move(presenter));
  }
  std::sort(keys.begin(), keys.end());
  return absl::OkStatus();
}

std::string InstitutionLine(const engine::Institution& i) {
  return Cat(i.institution_id, ",", i.name, ",", i.region_code, ",", engine::Name(i.kind), ",",
             i.level, ",", i.zero_markup ? "1" : "0", ",", i.tcm ? "1" : "0", ",",
             i.children_or_maternal ? "1" : "0", ",", i.base_level ? "1" : "0", ",",
             i.suspended ? "1" : "0");
}

absl::StatusOr<engine::Institution> ParseInstitutionLine(std::string_view line) {
  std::vector<std::string_view> c = Split(line, ',');
  if (c.size() != 10) return Bad("(row)", Cat("expected 10 columns, found ", c.size()));
  engine::Institution i;
  i.institution_id = std::string(c[0]);
  if (i.institution_id.empty()) return Bad("institution_id", "empty");
  i.name = std::string(c[1]);
  if (!ParseNumber(c[2], &i.region_code) || !engine::IsValidRegionCode(i.region_code)) {
    return Bad("region_code", "not a 6-digit division code");
  }
  if (!ParseEnum(c[3], engine::kInstitutionKindCount, &i.kind)) return Bad("kind", "unknown");
  if (!ParseNumber(c[4], &i.level) || i.level < 1 || i.level > 3) return Bad("level", "not 1..3");
  if (!ParseBool(c[5], &i.zero_markup) || !ParseBool(c[6], &i.tcm) ||
      !ParseBool(c[7], &i.children_or_maternal) || !ParseBool(c[8], &i.base_level) ||
      !ParseBool(c[9], &i.suspended)) {
    return Bad("(flags)", "zero_markup..suspended must be 0 or 1");
  }
  return i;
}

absl::Status Synthesize(int64_t persons, uint64_t seed, std::ostream& persons_csv,
                        std::ostream& institutions_csv) {
  Rng rng(seed);
  Rng family_rng(seed ^ 0x6b696e7368697073ull);  // its own stream: other columns unchanged
  FamilyPicker family;
  std::unordered_set<uint64_t> used;
  used.reserve(static_cast<size_t>(persons));
  persons_csv << kPersonsHeader << "\n";
  std::string chunk;
  for (int64_t n = 0; n < persons; ++n) {
    engine::Enrollment e = SynthPerson(n, rng);
    std::string id = SynthIdNumber(e, rng, used);
    chunk += PersonLine(id, e, family.Pick(n, e, id, family_rng));
    chunk.push_back('\n');
    if (chunk.size() > (1 << 20)) {
      persons_csv << chunk;
      chunk.clear();
    }
  }
  persons_csv << chunk;
  institutions_csv << kInstitutionsHeader << "\n";
  for (const engine::Institution& i : SynthInstitutions()) {
    institutions_csv << InstitutionLine(i) << "\n";
  }
  if (!persons_csv || !institutions_csv) return absl::InternalError("writing the CSV failed");
  return absl::OkStatus();
}

absl::StatusOr<LoadResult> Load(cache::SnapshotStore& store, const cache::PersonKeyer& keyer,
                                const LoadOptions& options) {
  absl::StatusOr<CsvLines> institution_csv =
      ReadLines(options.institutions_path, {kInstitutionsHeader});
  if (!institution_csv.ok()) return institution_csv.status();
  const std::vector<std::string>& institution_lines = institution_csv->lines;
  std::vector<engine::Institution> institutions;
  for (size_t k = 0; k < institution_lines.size(); ++k) {
    absl::StatusOr<engine::Institution> i = ParseInstitutionLine(institution_lines[k]);
    if (!i.ok()) return AtLine(i.status(), options.institutions_path, k + 2);
    institutions.push_back(*std::move(i));
  }
  absl::StatusOr<CsvLines> persons_csv = ReadPersonLines(options.persons_path);
  if (!persons_csv.ok()) return persons_csv.status();
  std::vector<std::string>* lines = &persons_csv->lines;
  const bool with_presenter_ids = persons_csv->header == 0;

  LoadResult result;
  absl::StatusOr<std::string> version = store.BeginLoad();
  if (!version.ok()) return version.status();
  result.version = *version;

  Progress progress(options.progress, static_cast<int64_t>(lines->size()));
  const size_t batch = static_cast<size_t>(std::max<int64_t>(options.batch_persons, 1));
  std::vector<engine::Enrollment> persons;
  persons.reserve(std::min(batch, lines->size()));
  for (size_t at = 0; at < lines->size();) {
    persons.clear();
    for (; at < lines->size() && persons.size() < batch; ++at) {
      absl::StatusOr<PersonRow> row = ParsePersonLine((*lines)[at], with_presenter_ids);
      if (!row.ok()) return AtLine(row.status(), options.persons_path, at + 2);
      if (absl::Status s = KeyPersonRow(keyer, *row); !s.ok()) {
        return AtLine(s, options.persons_path, at + 2);
      }
      persons.push_back(std::move(row->enrollment));
      std::string().swap((*lines)[at]);  // free the raw line (and its ID number)
    }
    absl::StatusOr<int64_t> added = store.PutPersons(result.version, persons);
    if (!added.ok()) return added.status();
    progress.Show(static_cast<int64_t>(at));
  }
  progress.Done();
  absl::StatusOr<int64_t> added = store.PutInstitutions(result.version, institutions);
  if (!added.ok()) return added.status();
  result.counts = {.persons = static_cast<int64_t>(lines->size()),
                   .institutions = static_cast<int64_t>(institutions.size())};
  if (absl::Status s = store.Commit(result.version, result.counts,
                                    Cat(options.persons_path, " ", options.institutions_path));
      !s.ok()) {
    return s;
  }
  return result;
}

int Run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.empty()) {
    err << kUsage;
    return 2;
  }
  return RunCommand(args, out, err);
}

}  // namespace medsettle::snapshot_tool
