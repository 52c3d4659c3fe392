// Policy files: YAML text → validated Policy. The format is documented in
// docs/POLICIES.md; this file is its reference implementation. Every map is
// checked against the keys allowed at its place, so a typo is an error, and
// every figure is parsed exactly (ParseYuan, ParsePercent, Date::Parse). An
// error names the file, the key path and, where known, the line:
//   quzhou-2024.yaml: schemes.inpatient.deductible.amounts_yuan.level_2:
//   expected a yuan amount with at most 2 decimals, got "80x" (line 94)
#include "engine/policy_loader.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/status.h"
#include "yaml-cpp/yaml.h"

namespace medsettle::engine {
namespace {

// Propagates a non-OK status. Local to this file.
#define MEDSETTLE_POLICY_TRY(expr)     \
  do {                                 \
    absl::Status status_ = (expr);     \
    if (!status_.ok()) return status_; \
  } while (false)

constexpr std::string_view kAssumedMark = " [ASSUMED]";

// absl::StrCat for arguments that include std::string_view (Debian's Abseil
// has its own string_view type).
template <typename T>
const T& CatArg(const T& value) {
  return value;
}
inline absl::string_view CatArg(std::string_view value) {
  return absl::string_view(value.data(), value.size());
}
template <typename... T>
std::string Cat(const T&... parts) {
  return absl::StrCat(CatArg(parts)...);
}
template <typename Range>
std::string Join(const Range& range) {
  std::string out;
  for (const auto& item : range) {
    if (!out.empty()) out += ", ";
    out += Cat(item);
  }
  return out;
}

std::string KeyPath(std::string_view path, std::string_view key) {
  return path.empty() ? std::string(key) : Cat(path, ".", key);
}
std::string IndexPath(std::string_view path, size_t i) { return Cat(path, "[", i, "]"); }

// The enum values a policy file may name: every value whose Name() is not
// "UNSPECIFIED" (Specialty NONE and Assistance NONE are nameable).
template <typename E>
std::optional<E> EnumByName(std::string_view text, int count) {
  for (int i = 0; i < count; ++i) {
    E value = static_cast<E>(i);
    std::string_view name = Name(value);
    if (name != "UNSPECIFIED" && name == text) return value;
  }
  return std::nullopt;
}
template <typename E>
std::string EnumNames(int count) {
  std::vector<std::string_view> names;
  for (int i = 0; i < count; ++i) {
    std::string_view name = Name(static_cast<E>(i));
    if (name != "UNSPECIFIED") names.push_back(name);
  }
  return Join(names);
}

// A YAML map whose keys were checked against the allowed set.
struct Map {
  YAML::Node node;
  std::string path;
  std::vector<std::pair<std::string, YAML::Node>> entries;

  std::optional<YAML::Node> Find(std::string_view key) const {
    for (const auto& [name, value] : entries) {
      if (name == key) return value;
    }
    return std::nullopt;
  }
  bool Has(std::string_view key) const { return Find(key).has_value(); }
  std::string At(std::string_view key) const { return KeyPath(path, key); }
};

using Keys = std::initializer_list<std::string_view>;

// Parses one policy file into a Policy. Each Parse* reads one block at its
// key path and returns the first error found; class names and tiers are
// read first because later blocks refer to them. One Loader per file.
class Loader {
 public:
  explicit Loader(std::string_view file_name) : file_(file_name) {}

  absl::Status Load(const YAML::Node& root, Policy* policy);

 private:
  // ---- Errors ----
  absl::Status Fail(std::string_view path, const YAML::Node& at, std::string_view what) const {
    std::string message =
        path.empty() ? Cat(file_, ": ", what) : Cat(file_, ": ", path, ": ", what);
    YAML::Mark mark = at.Mark();
    if (mark.line >= 0) message += Cat(" (line ", mark.line + 1, ")");
    return InvalidField(reason::kPolicyFileInvalid, path, message);
  }
  absl::Status Missing(const Map& m, std::string_view key) const {
    return Fail(m.At(key), m.node, "missing required key");
  }

  // ---- Structure ----
  absl::Status AsMap(const YAML::Node& node, const std::string& path, Keys allowed, Map* out) const;
  absl::Status AsSeq(const YAML::Node& node, const std::string& path, bool allow_empty) const;
  absl::Status Need(const Map& m, std::string_view key, YAML::Node* out) const {
    std::optional<YAML::Node> node = m.Find(key);
    if (!node) return Missing(m, key);
    *out = *node;
    return absl::OkStatus();
  }

  // ---- Scalars (node + its path) ----
  absl::Status Text(const YAML::Node& n, const std::string& path, std::string* out) const;
  absl::Status NonEmptyText(const YAML::Node& n, const std::string& path, std::string* out) const;
  absl::Status Yuan(const YAML::Node& n, const std::string& path, Cents* out) const;
  absl::Status YuanOrNone(const YAML::Node& n, const std::string& path,
                          std::optional<Cents>* out) const;
  absl::Status Pct(const YAML::Node& n, const std::string& path, BasisPoints* out) const;
  absl::Status Int(const YAML::Node& n, const std::string& path, int64_t lo, int64_t hi,
                   int32_t* out) const;
  absl::Status Bool(const YAML::Node& n, const std::string& path, bool* out) const;
  absl::Status DateValue(const YAML::Node& n, const std::string& path, Date* out) const;
  absl::Status Region(const YAML::Node& n, const std::string& path, RegionCode* out) const;
  absl::Status Regions(const YAML::Node& n, const std::string& path,
                       std::vector<RegionCode>* out) const;
  absl::Status LedgerValue(const YAML::Node& n, const std::string& path, Ledger* out) const;
  absl::Status Ledgers(const YAML::Node& n, const std::string& path, LedgerMask* out) const;
  absl::Status ClassName(const YAML::Node& n, const std::string& path, int32_t* out) const;
  // A word from a closed list (`per: year`, `kind: allowance`, ...).
  template <typename T>
  absl::Status OneOf(const YAML::Node& n, const std::string& path,
                     std::initializer_list<std::pair<std::string_view, T>> choices, T* out) const;
  template <typename E>
  absl::Status EnumMask(const YAML::Node& n, const std::string& path, int count,
                        std::string_view what, uint32_t* mask) const;

  // `source` (+ optional `assumed`) of a block; " [ASSUMED]" is appended.
  absl::Status Source(const Map& m, bool required, std::string* out) const;
  // `<prefix>_source` (+ `<prefix>_assumed`) for flat scheme/route keys.
  absl::Status FlatSource(const Map& m, std::string_view prefix, std::string* out) const;

  // ---- Blocks ----
  absl::Status ParseMatcher(const YAML::Node& n, const std::string& path, bool allow_class,
                            Matcher* out) const;
  absl::Status ParseWhen(const Map& row, Matcher* out) const;
  absl::Status ParseClasses(const YAML::Node& n, const std::string& path, Policy* policy);
  absl::Status ParseCoverage(const YAML::Node& n, const std::string& path, int32_t year,
                             CoverageRules* out) const;
  absl::Status ParseScheme(const YAML::Node& n, const std::string& path, Scheme* s,
                           std::optional<YAML::Node>* spill_to, std::string* spill_path) const;
  absl::Status ParseDeductible(const YAML::Node& n, const std::string& path, const Scheme& s,
                               DeductibleRule* out) const;
  absl::Status ParseRatioRows(const YAML::Node& n, const std::string& path,
                              std::vector<Row<BasisPoints>>* out) const;
  absl::Status ParseRatios(const YAML::Node& n, const std::string& path, Scheme* s) const;
  absl::Status ParseBonuses(const YAML::Node& n, const std::string& path, Scheme* s) const;
  absl::Status ParseFundCap(const YAML::Node& n, const std::string& path, Ledger own,
                            FundCap* out) const;
  absl::Status ParseVisits(const YAML::Node& n, const std::string& path, Policy* policy) const;
  absl::Status ParseCriticalIllness(const YAML::Node& n, const std::string& path,
                                    CriticalIllness* out) const;
  absl::Status ParseSupplementary(const YAML::Node& n, const std::string& path,
                                  SupplementaryProduct* out) const;
  absl::Status ParseResponsibility(const YAML::Node& n, const std::string& path,
                                   Responsibility* out) const;

  std::string file_;
  std::vector<std::string> class_names_;  // distinct, in order of first appearance
  std::vector<int32_t> tiers_;
};

// ---------------------------------------------------------------- structure

absl::Status Loader::AsMap(const YAML::Node& node, const std::string& path, Keys allowed,
                           Map* out) const {
  if (!node.IsMap()) return Fail(path, node, "expected a map");
  out->node = node;
  out->path = path;
  out->entries.clear();
  for (auto it = node.begin(); it != node.end(); ++it) {
    if (!it->first.IsScalar()) return Fail(path, it->first, "a key must be a plain name");
    std::string key = it->first.Scalar();
    std::string key_path = KeyPath(path, key);
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      return Fail(key_path, it->first, Cat("unknown key (allowed here: ", Join(allowed), ")"));
    }
    if (out->Has(key)) return Fail(key_path, it->first, "duplicate key");
    if (it->second.IsNull()) return Fail(key_path, it->first, "empty value");
    out->entries.emplace_back(std::move(key), it->second);
  }
  return absl::OkStatus();
}

absl::Status Loader::AsSeq(const YAML::Node& node, const std::string& path,
                           bool allow_empty) const {
  if (!node.IsSequence()) return Fail(path, node, "expected a list");
  if (!allow_empty && node.size() == 0) return Fail(path, node, "the list is empty");
  return absl::OkStatus();
}

// ------------------------------------------------------------------ scalars

absl::Status Loader::Text(const YAML::Node& n, const std::string& path, std::string* out) const {
  if (!n.IsScalar()) return Fail(path, n, "expected a single value");
  *out = n.Scalar();
  return absl::OkStatus();
}

absl::Status Loader::NonEmptyText(const YAML::Node& n, const std::string& path,
                                  std::string* out) const {
  MEDSETTLE_POLICY_TRY(Text(n, path, out));
  if (out->find_first_not_of(" \t") == std::string::npos) return Fail(path, n, "must not be empty");
  return absl::OkStatus();
}

absl::Status Loader::Yuan(const YAML::Node& n, const std::string& path, Cents* out) const {
  std::string text;
  MEDSETTLE_POLICY_TRY(Text(n, path, &text));
  std::optional<Cents> cents = ParseYuan(text);
  if (!cents) {
    return Fail(path, n, Cat("expected a yuan amount with at most 2 decimals, got \"", text, "\""));
  }
  *out = *cents;
  return absl::OkStatus();
}

absl::Status Loader::YuanOrNone(const YAML::Node& n, const std::string& path,
                                std::optional<Cents>* out) const {
  if (n.IsScalar() && n.Scalar() == "none") {
    *out = std::nullopt;
    return absl::OkStatus();
  }
  Cents cents = 0;
  MEDSETTLE_POLICY_TRY(Yuan(n, path, &cents));
  *out = cents;
  return absl::OkStatus();
}

absl::Status Loader::Pct(const YAML::Node& n, const std::string& path, BasisPoints* out) const {
  std::string text;
  MEDSETTLE_POLICY_TRY(Text(n, path, &text));
  std::optional<BasisPoints> bp = ParsePercent(text);
  if (!bp) {
    return Fail(path, n,
                Cat("expected a percentage 0..100 with at most 2 decimals, got \"", text, "\""));
  }
  *out = *bp;
  return absl::OkStatus();
}

absl::Status Loader::Int(const YAML::Node& n, const std::string& path, int64_t lo, int64_t hi,
                         int32_t* out) const {
  std::string text;
  MEDSETTLE_POLICY_TRY(Text(n, path, &text));
  int64_t value = 0;
  const char* end = text.data() + text.size();
  bool digits_only =
      !text.empty() && text.size() <= 10 &&
      std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!digits_only || std::from_chars(text.data(), end, value).ptr != end || value < lo ||
      value > hi) {
    return Fail(path, n, Cat("expected a whole number ", lo, "..", hi, ", got \"", text, "\""));
  }
  *out = static_cast<int32_t>(value);
  return absl::OkStatus();
}

absl::Status Loader::Bool(const YAML::Node& n, const std::string& path, bool* out) const {
  std::string text;
  MEDSETTLE_POLICY_TRY(Text(n, path, &text));
  if (text != "true" && text != "false") {
    return Fail(path, n, Cat("expected true or false, got \"", text, "\""));
  }
  *out = text == "true";
  return absl::OkStatus();
}

absl::Status Loader::DateValue(const YAML::Node& n, const std::string& path, Date* out) const {
  std::string text;
  MEDSETTLE_POLICY_TRY(Text(n, path, &text));
  std::optional<Date> date = Date::Parse(text);
  if (!date) return Fail(path, n, Cat("expected a date YYYY-MM-DD, got \"", text, "\""));
  *out = *date;
  return absl::OkStatus();
}

absl::Status Loader::Region(const YAML::Node& n, const std::string& path, RegionCode* out) const {
  std::string text;
  MEDSETTLE_POLICY_TRY(Text(n, path, &text));
  bool six_digits = text.size() == 6 && std::all_of(text.begin(), text.end(),
                                                    [](char c) { return c >= '0' && c <= '9'; });
  RegionCode code = 0;
  if (six_digits) std::from_chars(text.data(), text.data() + text.size(), code);
  if (!six_digits || !IsValidRegionCode(code)) {
    return Fail(path, n,
                Cat("expected a 6-digit administrative division code, got \"", text, "\""));
  }
  *out = code;
  return absl::OkStatus();
}

absl::Status Loader::Regions(const YAML::Node& n, const std::string& path,
                             std::vector<RegionCode>* out) const {
  MEDSETTLE_POLICY_TRY(AsSeq(n, path, /*allow_empty=*/false));
  out->clear();
  for (size_t i = 0; i < n.size(); ++i) {
    RegionCode code = 0;
    MEDSETTLE_POLICY_TRY(Region(n[i], IndexPath(path, i), &code));
    if (std::find(out->begin(), out->end(), code) != out->end()) {
      return Fail(IndexPath(path, i), n[i], "region listed twice");
    }
    out->push_back(code);
  }
  return absl::OkStatus();
}

absl::Status Loader::LedgerValue(const YAML::Node& n, const std::string& path, Ledger* out) const {
  std::string text;
  MEDSETTLE_POLICY_TRY(Text(n, path, &text));
  std::optional<Ledger> ledger = EnumByName<Ledger>(text, kLedgerCount);
  if (!ledger) {
    return Fail(
        path, n,
        Cat("unknown ledger \"", text, "\" (one of ", EnumNames<Ledger>(kLedgerCount), ")"));
  }
  *out = *ledger;
  return absl::OkStatus();
}

absl::Status Loader::Ledgers(const YAML::Node& n, const std::string& path, LedgerMask* out) const {
  MEDSETTLE_POLICY_TRY(AsSeq(n, path, /*allow_empty=*/false));
  *out = 0;
  for (size_t i = 0; i < n.size(); ++i) {
    Ledger ledger = Ledger::kGeneralOutpatient;
    MEDSETTLE_POLICY_TRY(LedgerValue(n[i], IndexPath(path, i), &ledger));
    *out = static_cast<LedgerMask>(*out | LedgerBit(ledger));
  }
  return absl::OkStatus();
}

absl::Status Loader::ClassName(const YAML::Node& n, const std::string& path, int32_t* out) const {
  std::string text;
  MEDSETTLE_POLICY_TRY(Text(n, path, &text));
  auto it = std::find(class_names_.begin(), class_names_.end(), text);
  if (it == class_names_.end()) {
    return Fail(
        path, n,
        Cat("unknown institution class \"", text, "\" (defined: ", Join(class_names_), ")"));
  }
  *out = static_cast<int32_t>(it - class_names_.begin());
  return absl::OkStatus();
}

template <typename T>
absl::Status Loader::OneOf(const YAML::Node& n, const std::string& path,
                           std::initializer_list<std::pair<std::string_view, T>> choices,
                           T* out) const {
  std::string text;
  MEDSETTLE_POLICY_TRY(Text(n, path, &text));
  std::vector<std::string_view> names;
  for (const auto& [name, value] : choices) {
    if (name == text) {
      *out = value;
      return absl::OkStatus();
    }
    names.push_back(name);
  }
  return Fail(path, n, Cat("expected one of ", Join(names), "; got \"", text, "\""));
}

template <typename E>
absl::Status Loader::EnumMask(const YAML::Node& n, const std::string& path, int count,
                              std::string_view what, uint32_t* mask) const {
  MEDSETTLE_POLICY_TRY(AsSeq(n, path, /*allow_empty=*/false));
  *mask = 0;
  for (size_t i = 0; i < n.size(); ++i) {
    std::string text;
    MEDSETTLE_POLICY_TRY(Text(n[i], IndexPath(path, i), &text));
    std::optional<E> value = EnumByName<E>(text, count);
    if (!value) {
      return Fail(IndexPath(path, i), n[i],
                  Cat("unknown ", what, " \"", text, "\" (one of ", EnumNames<E>(count), ")"));
    }
    *mask |= 1u << static_cast<unsigned>(*value);
  }
  return absl::OkStatus();
}

absl::Status Loader::Source(const Map& m, bool required, std::string* out) const {
  out->clear();
  std::optional<YAML::Node> source = m.Find("source");
  if (!source) {
    if (required)
      return Fail(m.At("source"), m.node, "missing source reference (every figure needs one)");
  } else {
    MEDSETTLE_POLICY_TRY(NonEmptyText(*source, m.At("source"), out));
  }
  if (std::optional<YAML::Node> assumed = m.Find("assumed")) {
    if (!source) return Fail(m.At("assumed"), *assumed, "`assumed` needs a `source` beside it");
    bool is_assumed = false;
    MEDSETTLE_POLICY_TRY(Bool(*assumed, m.At("assumed"), &is_assumed));
    if (is_assumed) out->append(kAssumedMark);
  }
  return absl::OkStatus();
}

absl::Status Loader::FlatSource(const Map& m, std::string_view prefix, std::string* out) const {
  std::string source_key = Cat(prefix, "_source");
  std::string assumed_key = Cat(prefix, "_assumed");
  std::optional<YAML::Node> source = m.Find(source_key);
  if (!source) {
    return Fail(m.At(source_key), m.node, "missing source reference (every figure needs one)");
  }
  MEDSETTLE_POLICY_TRY(NonEmptyText(*source, m.At(source_key), out));
  if (std::optional<YAML::Node> assumed = m.Find(assumed_key)) {
    bool is_assumed = false;
    MEDSETTLE_POLICY_TRY(Bool(*assumed, m.At(assumed_key), &is_assumed));
    if (is_assumed) out->append(kAssumedMark);
  }
  return absl::OkStatus();
}

// ------------------------------------------------------------------ matcher

absl::Status Loader::ParseMatcher(const YAML::Node& n, const std::string& path, bool allow_class,
                                  Matcher* out) const {
  Map m;
  // The matcher keys; docs/POLICIES.md "Matchers".
  MEDSETTLE_POLICY_TRY(
      AsMap(n, path,
            {"class", "level", "kind", "tier", "category", "assistance", "specialty", "visit",
             "zero_markup", "tcm_institution", "base_level", "children_or_maternal", "in_area",
             "minor", "pre_existing", "continuous", "condition"},
            &m));
  *out = Matcher();
  for (const auto& [key, value] : m.entries) {
    const std::string at = m.At(key);
    if (key == "class") {
      if (!allow_class) {
        return Fail(at, value, "an institution class cannot be defined by another class");
      }
      MEDSETTLE_POLICY_TRY(AsSeq(value, at, /*allow_empty=*/false));
      for (size_t i = 0; i < value.size(); ++i) {
        int32_t index = -1;
        MEDSETTLE_POLICY_TRY(ClassName(value[i], IndexPath(at, i), &index));
        out->class_mask |= 1u << static_cast<unsigned>(index);
      }
    } else if (key == "level") {
      MEDSETTLE_POLICY_TRY(AsSeq(value, at, /*allow_empty=*/false));
      for (size_t i = 0; i < value.size(); ++i) {
        int32_t level = 0;
        MEDSETTLE_POLICY_TRY(Int(value[i], IndexPath(at, i), 1, 3, &level));
        out->level_mask |= 1u << static_cast<unsigned>(level);
      }
    } else if (key == "tier") {
      MEDSETTLE_POLICY_TRY(AsSeq(value, at, /*allow_empty=*/false));
      for (size_t i = 0; i < value.size(); ++i) {
        int32_t tier = 0;
        MEDSETTLE_POLICY_TRY(Int(value[i], IndexPath(at, i), 0, 31, &tier));
        if (std::find(tiers_.begin(), tiers_.end(), tier) == tiers_.end()) {
          return Fail(IndexPath(at, i), value[i],
                      Cat("tier ", tier, " is not one of the policy's tiers [", Join(tiers_), "]"));
        }
        out->tier_mask |= 1u << static_cast<unsigned>(tier);
      }
    } else if (key == "kind") {
      MEDSETTLE_POLICY_TRY(EnumMask<InstitutionKind>(value, at, kInstitutionKindCount,
                                                     "institution kind", &out->kind_mask));
    } else if (key == "category") {
      MEDSETTLE_POLICY_TRY(
          EnumMask<Category>(value, at, kCategoryCount, "category", &out->category_mask));
    } else if (key == "assistance") {
      MEDSETTLE_POLICY_TRY(
          EnumMask<Assistance>(value, at, kAssistanceCount, "assistance", &out->assistance_mask));
    } else if (key == "specialty") {
      MEDSETTLE_POLICY_TRY(
          EnumMask<Specialty>(value, at, kSpecialtyCount, "specialty", &out->specialty_mask));
    } else if (key == "visit") {
      MEDSETTLE_POLICY_TRY(
          EnumMask<VisitType>(value, at, kVisitTypeCount, "visit type", &out->visit_mask));
    } else if (key == "condition") {
      MEDSETTLE_POLICY_TRY(AsSeq(value, at, /*allow_empty=*/false));
      for (size_t i = 0; i < value.size(); ++i) {
        std::string condition;
        MEDSETTLE_POLICY_TRY(NonEmptyText(value[i], IndexPath(at, i), &condition));
        out->conditions.push_back(std::move(condition));
      }
    } else {
      // A yes/no fact: zero_markup, tcm_institution, ..., continuous.
      static constexpr std::pair<std::string_view, Tri Matcher::*> kFlags[] = {
          {"zero_markup", &Matcher::zero_markup},
          {"tcm_institution", &Matcher::tcm_institution},
          {"base_level", &Matcher::base_level},
          {"children_or_maternal", &Matcher::children_or_maternal},
          {"in_area", &Matcher::in_area},
          {"minor", &Matcher::minor},
          {"pre_existing", &Matcher::pre_existing},
          {"continuous", &Matcher::continuous},
      };
      bool flag = false;
      MEDSETTLE_POLICY_TRY(Bool(value, at, &flag));
      for (const auto& [name, member] : kFlags) {
        if (name == key) out->*member = flag ? Tri::kYes : Tri::kNo;
      }
    }
  }
  return absl::OkStatus();
}

absl::Status Loader::ParseWhen(const Map& row, Matcher* out) const {
  *out = Matcher();
  std::optional<YAML::Node> when = row.Find("when");
  if (!when) return absl::OkStatus();  // no condition: the row always matches
  return ParseMatcher(*when, row.At("when"), /*allow_class=*/true, out);
}

// ------------------------------------------------------------------ classes

absl::Status Loader::ParseClasses(const YAML::Node& n, const std::string& path, Policy* policy) {
  MEDSETTLE_POLICY_TRY(AsSeq(n, path, /*allow_empty=*/false));
  class_names_.clear();
  for (size_t i = 0; i < n.size(); ++i) {
    const std::string at = IndexPath(path, i);
    Map m;
    MEDSETTLE_POLICY_TRY(AsMap(n[i], at, {"name", "when"}, &m));
    InstitutionClass c;
    YAML::Node name;
    MEDSETTLE_POLICY_TRY(Need(m, "name", &name));
    MEDSETTLE_POLICY_TRY(NonEmptyText(name, m.At("name"), &c.name));
    if (std::optional<YAML::Node> when = m.Find("when")) {
      MEDSETTLE_POLICY_TRY(ParseMatcher(*when, m.At("when"), /*allow_class=*/false, &c.when));
    }
    // An entry repeating an earlier name is another matcher for the same
    // class (Policy::ClassIndex counts distinct names in order).
    if (std::find(class_names_.begin(), class_names_.end(), c.name) == class_names_.end()) {
      if (static_cast<int>(class_names_.size()) == kMaxInstitutionClasses) {
        return Fail(m.At("name"), name,
                    Cat("more than ", kMaxInstitutionClasses, " institution classes"));
      }
      class_names_.push_back(c.name);
    }
    policy->classes.push_back(std::move(c));
  }
  return absl::OkStatus();
}

// ----------------------------------------------------------------- coverage

absl::Status Loader::ParseCoverage(const YAML::Node& n, const std::string& path, int32_t year,
                                   CoverageRules* out) const {
  Map m;
  MEDSETTLE_POLICY_TRY(
      AsMap(n, path,
            {"source", "assumed", "concentrated_period", "mid_year", "newborn_within_days",
             "newborn_born_in_year", "after_gap", "category_by_birth_date"},
            &m));
  MEDSETTLE_POLICY_TRY(Source(m, /*required=*/true, &out->source));

  YAML::Node period_node;
  MEDSETTLE_POLICY_TRY(Need(m, "concentrated_period", &period_node));
  Map period;
  MEDSETTLE_POLICY_TRY(AsMap(period_node, m.At("concentrated_period"), {"from", "to"}, &period));
  YAML::Node from, to;
  MEDSETTLE_POLICY_TRY(Need(period, "from", &from));
  MEDSETTLE_POLICY_TRY(Need(period, "to", &to));
  MEDSETTLE_POLICY_TRY(DateValue(from, period.At("from"), &out->concentrated_from));
  MEDSETTLE_POLICY_TRY(DateValue(to, period.At("to"), &out->concentrated_to));
  if (out->concentrated_to < out->concentrated_from) {
    return Fail(period.At("to"), to, "the concentrated period ends before it starts");
  }
  const Date year_end = Date::FromYmd(year, 12, 31);
  if (out->concentrated_to > year_end) {
    return Fail(period.At("to"), to, "the concentrated period ends after the policy year");
  }

  Date previous_end = out->concentrated_to;
  std::string previous = "the concentrated period";
  if (std::optional<YAML::Node> mid = m.Find("mid_year")) {
    const std::string mid_path = m.At("mid_year");
    MEDSETTLE_POLICY_TRY(AsSeq(*mid, mid_path, /*allow_empty=*/true));
    for (size_t i = 0; i < mid->size(); ++i) {
      const std::string at = IndexPath(mid_path, i);
      Map r;
      MEDSETTLE_POLICY_TRY(
          AsMap((*mid)[i], at, {"paid_from", "paid_to", "start", "n", "source", "assumed"}, &r));
      BenefitStartRule rule;
      YAML::Node paid_from, paid_to, start;
      MEDSETTLE_POLICY_TRY(Need(r, "paid_from", &paid_from));
      MEDSETTLE_POLICY_TRY(Need(r, "paid_to", &paid_to));
      MEDSETTLE_POLICY_TRY(Need(r, "start", &start));
      MEDSETTLE_POLICY_TRY(DateValue(paid_from, r.At("paid_from"), &rule.paid_from));
      MEDSETTLE_POLICY_TRY(DateValue(paid_to, r.At("paid_to"), &rule.paid_to));
      if (rule.paid_to < rule.paid_from) {
        return Fail(r.At("paid_to"), paid_to, "the payment window ends before it starts");
      }
      // Every payment date after the concentrated period must meet exactly
      // one window, so no payment falls through to a refusal by accident.
      if (rule.paid_from <= previous_end) {
        return Fail(r.At("paid_from"), paid_from,
                    Cat("payment windows must be ordered and not overlap: starts on or "
                        "before the end of ",
                        previous, " (", previous_end.ToString(), ")"));
      }
      if (rule.paid_from != previous_end.AddDays(1)) {
        return Fail(r.At("paid_from"), paid_from,
                    Cat("payment windows must leave no gap: a payment on ",
                        previous_end.AddDays(1).ToString(), " (the day after ", previous,
                        ") would match no window"));
      }
      if (rule.paid_to > year_end) {
        return Fail(r.At("paid_to"), paid_to, "the payment window ends after the policy year");
      }
      using StartKind = BenefitStartRule::Kind;
      MEDSETTLE_POLICY_TRY(OneOf<StartKind>(start, r.At("start"),
                                            {{"month_start_after", StartKind::kMonthStartAfter},
                                             {"days_after", StartKind::kDaysAfter},
                                             {"months_after", StartKind::kMonthsAfter},
                                             {"refuse", StartKind::kRefuse}},
                                            &rule.kind));
      const bool needs_n = rule.kind != StartKind::kRefuse;
      std::optional<YAML::Node> n_node = r.Find("n");
      if (needs_n && !n_node) return Missing(r, "n");
      if (!needs_n && n_node) return Fail(r.At("n"), *n_node, "`start: refuse` takes no n");
      if (n_node) MEDSETTLE_POLICY_TRY(Int(*n_node, r.At("n"), 0, 366, &rule.n));
      MEDSETTLE_POLICY_TRY(Source(r, /*required=*/false, &rule.source));
      if (rule.source.empty()) rule.source = out->source;  // inherits the block's
      previous_end = rule.paid_to;
      previous = at;
      out->mid_year.push_back(std::move(rule));
    }
  }

  if (previous_end != year_end) {
    return Fail(m.At("mid_year"), n,
                Cat("payments from ", previous_end.AddDays(1).ToString(), " to ",
                    year_end.ToString(),
                    " meet no payment window (add one, with `start: refuse` to refuse them)"));
  }

  if (std::optional<YAML::Node> newborn = m.Find("newborn_within_days")) {
    int32_t days = 0;
    MEDSETTLE_POLICY_TRY(Int(*newborn, m.At("newborn_within_days"), 1, 366, &days));
    out->newborn_within_days = days;
  }
  if (std::optional<YAML::Node> in_year = m.Find("newborn_born_in_year")) {
    if (!out->newborn_within_days) {
      return Fail(m.At("newborn_born_in_year"), *in_year, "needs newborn_within_days");
    }
    MEDSETTLE_POLICY_TRY(Bool(*in_year, m.At("newborn_born_in_year"), &out->newborn_born_in_year));
  }

  if (std::optional<YAML::Node> gap = m.Find("after_gap")) {
    Map g;
    MEDSETTLE_POLICY_TRY(AsMap(*gap, m.At("after_gap"), {"start", "n", "source", "assumed"}, &g));
    BenefitStartRule rule;
    YAML::Node start, n_node;
    MEDSETTLE_POLICY_TRY(Need(g, "start", &start));
    using StartKind = BenefitStartRule::Kind;
    MEDSETTLE_POLICY_TRY(OneOf<StartKind>(start, g.At("start"),
                                          {{"month_start_after", StartKind::kMonthStartAfter},
                                           {"days_after", StartKind::kDaysAfter},
                                           {"months_after", StartKind::kMonthsAfter}},
                                          &rule.kind));
    MEDSETTLE_POLICY_TRY(Need(g, "n", &n_node));
    MEDSETTLE_POLICY_TRY(Int(n_node, g.At("n"), 0, 366, &rule.n));
    MEDSETTLE_POLICY_TRY(Source(g, /*required=*/true, &rule.source));
    out->after_gap = std::move(rule);
  }

  if (std::optional<YAML::Node> by_birth = m.Find("category_by_birth_date")) {
    Map c;
    MEDSETTLE_POLICY_TRY(AsMap(*by_birth, m.At("category_by_birth_date"),
                               {"adult_born_until", "infant_born_from", "source", "assumed"}, &c));
    CoverageRules::CategoryByBirth rule;
    YAML::Node adult, infant;
    MEDSETTLE_POLICY_TRY(Need(c, "adult_born_until", &adult));
    MEDSETTLE_POLICY_TRY(Need(c, "infant_born_from", &infant));
    MEDSETTLE_POLICY_TRY(DateValue(adult, c.At("adult_born_until"), &rule.adult_born_until));
    MEDSETTLE_POLICY_TRY(DateValue(infant, c.At("infant_born_from"), &rule.infant_born_from));
    if (rule.infant_born_from <= rule.adult_born_until) {
      return Fail(c.At("infant_born_from"), infant, "must be after adult_born_until");
    }
    MEDSETTLE_POLICY_TRY(Source(c, /*required=*/true, &rule.source));
    out->category_by_birth = std::move(rule);
  }
  return absl::OkStatus();
}

// ------------------------------------------------------------------ schemes

absl::Status Loader::ParseDeductible(const YAML::Node& n, const std::string& path, const Scheme& s,
                                     DeductibleRule* out) const {
  Map m;
  MEDSETTLE_POLICY_TRY(AsMap(n, path,
                             {"per", "amounts_yuan", "paid_ledgers", "tcm_lower",
                              "annual_ceiling_yuan", "ceiling_ledgers", "source", "assumed"},
                             &m));
  MEDSETTLE_POLICY_TRY(Source(m, /*required=*/true, &out->source));
  out->per = DeductibleRule::Per::kNone;
  if (std::optional<YAML::Node> per = m.Find("per")) {
    using Per = DeductibleRule::Per;
    MEDSETTLE_POLICY_TRY(OneOf<Per>(
        *per, m.At("per"), {{"none", Per::kNone}, {"visit", Per::kVisit}, {"year", Per::kYear}},
        &out->per));
  }
  const size_t class_count = class_names_.size();
  if (out->per == DeductibleRule::Per::kNone) {
    for (std::string_view key :
         {"amounts_yuan", "paid_ledgers", "tcm_lower", "annual_ceiling_yuan", "ceiling_ledgers"}) {
      if (std::optional<YAML::Node> v = m.Find(key)) {
        return Fail(m.At(key), *v, "not allowed with `per: none` (no deductible)");
      }
    }
    return absl::OkStatus();
  }

  // amounts_yuan: one figure per class; a class the scheme does not cover
  // (uncovered_classes) may be left out.
  YAML::Node amounts_node;
  MEDSETTLE_POLICY_TRY(Need(m, "amounts_yuan", &amounts_node));
  const std::string amounts_path = m.At("amounts_yuan");
  if (!amounts_node.IsMap()) return Fail(amounts_path, amounts_node, "expected a map class: yuan");
  out->amount_by_class.assign(class_count, 0);
  std::vector<bool> seen(class_count, false);
  for (auto it = amounts_node.begin(); it != amounts_node.end(); ++it) {
    std::string key = it->first.IsScalar() ? it->first.Scalar() : "";
    const std::string at = KeyPath(amounts_path, key);
    int32_t index = -1;
    MEDSETTLE_POLICY_TRY(ClassName(it->first, at, &index));
    if (seen[static_cast<size_t>(index)]) return Fail(at, it->first, "duplicate key");
    seen[static_cast<size_t>(index)] = true;
    MEDSETTLE_POLICY_TRY(Yuan(it->second, at, &out->amount_by_class[static_cast<size_t>(index)]));
  }
  for (size_t i = 0; i < class_count; ++i) {
    bool uncovered = (s.uncovered_class_mask >> i) & 1u;
    if (!seen[i] && !uncovered) {
      return Fail(KeyPath(amounts_path, class_names_[i]), amounts_node,
                  Cat("missing the amount for institution class ", class_names_[i]));
    }
  }

  std::optional<YAML::Node> paid = m.Find("paid_ledgers");
  if (out->per == DeductibleRule::Per::kYear) {
    out->paid_ledgers = LedgerBit(s.ledger);
    if (paid) MEDSETTLE_POLICY_TRY(Ledgers(*paid, m.At("paid_ledgers"), &out->paid_ledgers));
  } else if (paid) {
    return Fail(m.At("paid_ledgers"), *paid, "only `per: year` has paid_ledgers");
  }

  out->tcm_lower_class.assign(class_count, -1);
  if (std::optional<YAML::Node> lower = m.Find("tcm_lower")) {
    const std::string lower_path = m.At("tcm_lower");
    if (!lower->IsMap()) return Fail(lower_path, *lower, "expected a map class: lower class");
    for (auto it = lower->begin(); it != lower->end(); ++it) {
      std::string key = it->first.IsScalar() ? it->first.Scalar() : "";
      const std::string at = KeyPath(lower_path, key);
      int32_t from = -1, to = -1;
      MEDSETTLE_POLICY_TRY(ClassName(it->first, at, &from));
      MEDSETTLE_POLICY_TRY(ClassName(it->second, at, &to));
      if (out->tcm_lower_class[static_cast<size_t>(from)] != -1) {
        return Fail(at, it->first, "duplicate key");
      }
      if (from == to) return Fail(at, it->second, "maps a class to itself");
      out->tcm_lower_class[static_cast<size_t>(from)] = to;
    }
  }

  std::optional<YAML::Node> ceiling = m.Find("annual_ceiling_yuan");
  std::optional<YAML::Node> ceiling_ledgers = m.Find("ceiling_ledgers");
  if (ceiling) {
    Cents cents = 0;
    MEDSETTLE_POLICY_TRY(Yuan(*ceiling, m.At("annual_ceiling_yuan"), &cents));
    out->annual_ceiling_cents = cents;
    out->ceiling_ledgers = LedgerBit(s.ledger);
    if (ceiling_ledgers) {
      MEDSETTLE_POLICY_TRY(
          Ledgers(*ceiling_ledgers, m.At("ceiling_ledgers"), &out->ceiling_ledgers));
    }
  } else if (ceiling_ledgers) {
    return Fail(m.At("ceiling_ledgers"), *ceiling_ledgers, "needs annual_ceiling_yuan");
  }
  return absl::OkStatus();
}

absl::Status Loader::ParseRatioRows(const YAML::Node& n, const std::string& path,
                                    std::vector<Row<BasisPoints>>* out) const {
  MEDSETTLE_POLICY_TRY(AsSeq(n, path, /*allow_empty=*/false));
  for (size_t i = 0; i < n.size(); ++i) {
    Map row;
    MEDSETTLE_POLICY_TRY(AsMap(n[i], IndexPath(path, i), {"when", "pct"}, &row));
    Row<BasisPoints> r;
    MEDSETTLE_POLICY_TRY(ParseWhen(row, &r.when));
    YAML::Node pct;
    MEDSETTLE_POLICY_TRY(Need(row, "pct", &pct));
    MEDSETTLE_POLICY_TRY(Pct(pct, row.At("pct"), &r.value));
    out->push_back(std::move(r));
  }
  return absl::OkStatus();
}

absl::Status Loader::ParseRatios(const YAML::Node& n, const std::string& path, Scheme* s) const {
  Map m;
  MEDSETTLE_POLICY_TRY(AsMap(n, path, {"source", "assumed", "segments"}, &m));
  MEDSETTLE_POLICY_TRY(Source(m, /*required=*/true, &s->ratio_source));
  YAML::Node segments;
  MEDSETTLE_POLICY_TRY(Need(m, "segments", &segments));
  const std::string seg_path = m.At("segments");
  MEDSETTLE_POLICY_TRY(AsSeq(segments, seg_path, /*allow_empty=*/false));
  for (size_t i = 0; i < segments.size(); ++i) {
    Map sm;
    MEDSETTLE_POLICY_TRY(AsMap(segments[i], IndexPath(seg_path, i), {"upto_yuan", "rows"}, &sm));
    Segment seg;
    if (std::optional<YAML::Node> upto = sm.Find("upto_yuan")) {
      Cents cents = 0;
      MEDSETTLE_POLICY_TRY(Yuan(*upto, sm.At("upto_yuan"), &cents));
      if (cents == 0) return Fail(sm.At("upto_yuan"), *upto, "must be above 0");
      if (!s->segments.empty() && cents <= *s->segments.back().upto_cents) {
        return Fail(sm.At("upto_yuan"), *upto, "segments must have strictly increasing upto_yuan");
      }
      seg.upto_cents = cents;
    } else if (i + 1 < segments.size()) {
      return Fail(sm.At("upto_yuan"), sm.node, "only the last segment may be open (no upto_yuan)");
    }
    YAML::Node rows;
    MEDSETTLE_POLICY_TRY(Need(sm, "rows", &rows));
    MEDSETTLE_POLICY_TRY(ParseRatioRows(rows, sm.At("rows"), &seg.ratios));
    s->segments.push_back(std::move(seg));
  }
  return absl::OkStatus();
}

absl::Status Loader::ParseBonuses(const YAML::Node& n, const std::string& path, Scheme* s) const {
  MEDSETTLE_POLICY_TRY(AsSeq(n, path, /*allow_empty=*/true));
  for (size_t i = 0; i < n.size(); ++i) {
    Map m;
    MEDSETTLE_POLICY_TRY(AsMap(n[i], IndexPath(path, i),
                               {"name", "when", "pct", "tcm_items_only", "source", "assumed"}, &m));
    Bonus b;
    YAML::Node name, pct;
    MEDSETTLE_POLICY_TRY(Need(m, "name", &name));
    MEDSETTLE_POLICY_TRY(NonEmptyText(name, m.At("name"), &b.name));
    for (const Bonus& other : s->bonuses) {
      if (other.name == b.name) return Fail(m.At("name"), name, "bonus name used twice");
    }
    MEDSETTLE_POLICY_TRY(ParseWhen(m, &b.when));
    MEDSETTLE_POLICY_TRY(Need(m, "pct", &pct));
    MEDSETTLE_POLICY_TRY(Pct(pct, m.At("pct"), &b.bonus_bp));
    if (b.bonus_bp == 0) return Fail(m.At("pct"), pct, "a bonus must be above 0");
    if (std::optional<YAML::Node> tcm = m.Find("tcm_items_only")) {
      MEDSETTLE_POLICY_TRY(Bool(*tcm, m.At("tcm_items_only"), &b.tcm_items_only));
    }
    MEDSETTLE_POLICY_TRY(Source(m, /*required=*/true, &b.source));
    s->bonuses.push_back(std::move(b));
  }
  return absl::OkStatus();
}

absl::Status Loader::ParseFundCap(const YAML::Node& n, const std::string& path, Ledger own,
                                  FundCap* out) const {
  Map m;
  MEDSETTLE_POLICY_TRY(AsMap(n, path, {"ledgers", "rows", "source", "assumed"}, &m));
  MEDSETTLE_POLICY_TRY(Source(m, /*required=*/true, &out->source));
  out->ledgers = LedgerBit(own);
  if (std::optional<YAML::Node> ledgers = m.Find("ledgers")) {
    MEDSETTLE_POLICY_TRY(Ledgers(*ledgers, m.At("ledgers"), &out->ledgers));
  }
  YAML::Node rows;
  MEDSETTLE_POLICY_TRY(Need(m, "rows", &rows));
  const std::string rows_path = m.At("rows");
  MEDSETTLE_POLICY_TRY(AsSeq(rows, rows_path, /*allow_empty=*/false));
  for (size_t i = 0; i < rows.size(); ++i) {
    Map row;
    MEDSETTLE_POLICY_TRY(AsMap(rows[i], IndexPath(rows_path, i), {"when", "yuan"}, &row));
    Row<Cents> r;
    MEDSETTLE_POLICY_TRY(ParseWhen(row, &r.when));
    YAML::Node yuan;
    MEDSETTLE_POLICY_TRY(Need(row, "yuan", &yuan));
    MEDSETTLE_POLICY_TRY(Yuan(yuan, row.At("yuan"), &r.value));
    out->amounts.push_back(std::move(r));
  }
  return absl::OkStatus();
}

absl::Status Loader::ParseScheme(const YAML::Node& n, const std::string& path, Scheme* s,
                                 std::optional<YAML::Node>* spill_to,
                                 std::string* spill_path) const {
  Map m;
  MEDSETTLE_POLICY_TRY(
      AsMap(n, path,
            {"title", "kind", "ledger", "position_ledgers", "class_overrides", "uncovered_classes",
             "uncovered_source", "uncovered_assumed", "deductible", "ratios", "bonuses", "fund_cap",
             "allowance_yuan", "allowance_source", "allowance_assumed", "spill_over",
             "critical_illness", "supplementary"},
            &m));
  YAML::Node title, ledger;
  MEDSETTLE_POLICY_TRY(Need(m, "title", &title));
  MEDSETTLE_POLICY_TRY(NonEmptyText(title, m.At("title"), &s->title));
  MEDSETTLE_POLICY_TRY(Need(m, "ledger", &ledger));
  MEDSETTLE_POLICY_TRY(LedgerValue(ledger, m.At("ledger"), &s->ledger));

  s->kind = Scheme::Kind::kCoinsurance;
  if (std::optional<YAML::Node> kind = m.Find("kind")) {
    MEDSETTLE_POLICY_TRY(OneOf<Scheme::Kind>(
        *kind, m.At("kind"),
        {{"coinsurance", Scheme::Kind::kCoinsurance}, {"allowance", Scheme::Kind::kAllowance}},
        &s->kind));
  }

  s->position_ledgers = LedgerBit(s->ledger);
  if (std::optional<YAML::Node> pos = m.Find("position_ledgers")) {
    MEDSETTLE_POLICY_TRY(Ledgers(*pos, m.At("position_ledgers"), &s->position_ledgers));
  }

  if (std::optional<YAML::Node> overrides = m.Find("class_overrides")) {
    const std::string at = m.At("class_overrides");
    MEDSETTLE_POLICY_TRY(AsSeq(*overrides, at, /*allow_empty=*/false));
    for (size_t i = 0; i < overrides->size(); ++i) {
      Map row;
      MEDSETTLE_POLICY_TRY(
          AsMap((*overrides)[i], IndexPath(at, i), {"when", "class", "source", "assumed"}, &row));
      ClassOverride r;
      YAML::Node when, target;
      MEDSETTLE_POLICY_TRY(Need(row, "when", &when));  // an override must say when
      MEDSETTLE_POLICY_TRY(ParseWhen(row, &r.when));
      MEDSETTLE_POLICY_TRY(Need(row, "class", &target));
      MEDSETTLE_POLICY_TRY(ClassName(target, row.At("class"), &r.class_index));
      r.class_name = target.Scalar();
      MEDSETTLE_POLICY_TRY(Source(row, /*required=*/true, &r.source));
      s->class_overrides.push_back(std::move(r));
    }
  }

  if (std::optional<YAML::Node> uncovered = m.Find("uncovered_classes")) {
    const std::string at = m.At("uncovered_classes");
    MEDSETTLE_POLICY_TRY(AsSeq(*uncovered, at, /*allow_empty=*/false));
    for (size_t i = 0; i < uncovered->size(); ++i) {
      int32_t index = -1;
      MEDSETTLE_POLICY_TRY(ClassName((*uncovered)[i], IndexPath(at, i), &index));
      s->uncovered_class_mask |= 1u << static_cast<unsigned>(index);
    }
    MEDSETTLE_POLICY_TRY(FlatSource(m, "uncovered", &s->uncovered_source));
  } else {
    for (std::string_view key : {"uncovered_source", "uncovered_assumed"}) {
      if (std::optional<YAML::Node> v = m.Find(key)) {
        return Fail(m.At(key), *v, "needs uncovered_classes");
      }
    }
  }

  if (std::optional<YAML::Node> flag = m.Find("critical_illness")) {
    MEDSETTLE_POLICY_TRY(Bool(*flag, m.At("critical_illness"), &s->critical_illness));
  }
  if (std::optional<YAML::Node> flag = m.Find("supplementary")) {
    MEDSETTLE_POLICY_TRY(Bool(*flag, m.At("supplementary"), &s->supplementary));
  }

  if (s->kind == Scheme::Kind::kAllowance) {
    for (std::string_view key : {"deductible", "ratios", "bonuses", "fund_cap", "spill_over"}) {
      if (std::optional<YAML::Node> v = m.Find(key)) {
        return Fail(m.At(key), *v, "not allowed in a `kind: allowance` scheme");
      }
    }
    YAML::Node allowance;
    MEDSETTLE_POLICY_TRY(Need(m, "allowance_yuan", &allowance));
    MEDSETTLE_POLICY_TRY(Yuan(allowance, m.At("allowance_yuan"), &s->allowance_cents));
    MEDSETTLE_POLICY_TRY(FlatSource(m, "allowance", &s->allowance_source));
    return absl::OkStatus();
  }

  for (std::string_view key : {"allowance_yuan", "allowance_source", "allowance_assumed"}) {
    if (std::optional<YAML::Node> v = m.Find(key)) {
      return Fail(m.At(key), *v, "only a `kind: allowance` scheme has an allowance");
    }
  }
  if (std::optional<YAML::Node> deductible = m.Find("deductible")) {
    MEDSETTLE_POLICY_TRY(ParseDeductible(*deductible, m.At("deductible"), *s, &s->deductible));
  }
  YAML::Node ratios;
  MEDSETTLE_POLICY_TRY(Need(m, "ratios", &ratios));
  MEDSETTLE_POLICY_TRY(ParseRatios(ratios, m.At("ratios"), s));
  if (std::optional<YAML::Node> bonuses = m.Find("bonuses")) {
    MEDSETTLE_POLICY_TRY(ParseBonuses(*bonuses, m.At("bonuses"), s));
  }
  if (std::optional<YAML::Node> cap = m.Find("fund_cap")) {
    MEDSETTLE_POLICY_TRY(ParseFundCap(*cap, m.At("fund_cap"), s->ledger, &s->fund_cap));
  }
  if (std::optional<YAML::Node> spill = m.Find("spill_over")) {
    const std::string at = m.At("spill_over");
    Map sm;
    MEDSETTLE_POLICY_TRY(AsMap(*spill, at, {"to", "source", "assumed"}, &sm));
    YAML::Node to;
    MEDSETTLE_POLICY_TRY(Need(sm, "to", &to));
    MEDSETTLE_POLICY_TRY(Source(sm, /*required=*/true, &s->spill_over_source));
    if (s->fund_cap.amounts.empty()) {
      return Fail(at, *spill, "spill_over needs a fund_cap (it starts where the cap ends)");
    }
    // The expense a spilling scheme covers is E = ceil(paid / ratio): that
    // needs one ratio for the whole bill (one segment, no TCM-item bonus).
    const bool tcm_bonus = std::any_of(s->bonuses.begin(), s->bonuses.end(),
                                       [](const Bonus& b) { return b.tcm_items_only; });
    if (s->segments.size() != 1 || s->segments.front().upto_cents || tcm_bonus) {
      return Fail(at, *spill,
                  "a scheme that spills over must pay one ratio on the whole bill: one open "
                  "segment and no tcm_items_only bonus");
    }
    *spill_to = to;  // resolved once every scheme is known
    *spill_path = sm.At("to");
  }
  return absl::OkStatus();
}

// ------------------------------------------------------------------- visits

absl::Status Loader::ParseVisits(const YAML::Node& n, const std::string& path,
                                 Policy* policy) const {
  if (!n.IsMap()) return Fail(path, n, "expected a map VISIT_TYPE: { scheme: ... }");
  for (auto it = n.begin(); it != n.end(); ++it) {
    std::string key = it->first.IsScalar() ? it->first.Scalar() : "";
    const std::string at = KeyPath(path, key);
    std::optional<VisitType> type = EnumByName<VisitType>(key, kVisitTypeCount);
    if (!type) {
      return Fail(at, it->first,
                  Cat("unknown visit type (one of ", EnumNames<VisitType>(kVisitTypeCount), ")"));
    }
    VisitRoute& route = policy->routes[static_cast<size_t>(*type)];
    if (route.scheme != -1) return Fail(at, it->first, "duplicate key");
    Map m;
    MEDSETTLE_POLICY_TRY(
        AsMap(it->second, at,
              {"scheme", "top_up_yuan", "top_up_ledger", "top_up_source", "top_up_assumed"}, &m));
    YAML::Node scheme;
    MEDSETTLE_POLICY_TRY(Need(m, "scheme", &scheme));
    std::string name;
    MEDSETTLE_POLICY_TRY(Text(scheme, m.At("scheme"), &name));
    route.scheme = policy->SchemeIndex(name);
    if (route.scheme < 0) {
      return Fail(m.At("scheme"), scheme, Cat("unknown scheme \"", name, "\""));
    }
    const Scheme& routed = policy->schemes[static_cast<size_t>(route.scheme)];
    // The top-up is base fund of the visit: it is booked in the scheme's
    // ledger and counts against its cap like the rest (POLICY-NOTES
    // Dianjiang maternity Reading); no policy chooses another ledger.
    if (std::optional<YAML::Node> ledger = m.Find("top_up_ledger")) {
      return Fail(m.At("top_up_ledger"), *ledger,
                  Cat("a top-up is booked in its scheme's ledger (", Name(routed.ledger),
                      ") and counts against the scheme's fund cap; remove top_up_ledger"));
    }
    if (std::optional<YAML::Node> top_up = m.Find("top_up_yuan")) {
      if (routed.kind != Scheme::Kind::kCoinsurance) {
        return Fail(m.At("top_up_yuan"), *top_up, "a top-up needs a coinsurance scheme");
      }
      if (!routed.fund_cap.amounts.empty() &&
          (routed.fund_cap.ledgers & LedgerBit(routed.ledger)) == 0) {
        return Fail(m.At("top_up_yuan"), *top_up,
                    Cat("a top-up counts against its scheme's fund cap: the cap's ledgers must "
                        "include the scheme's ledger ", Name(routed.ledger)));
      }
      Cents cents = 0;
      MEDSETTLE_POLICY_TRY(Yuan(*top_up, m.At("top_up_yuan"), &cents));
      route.top_up_to_cents = cents;
      route.top_up_ledger = routed.ledger;
      MEDSETTLE_POLICY_TRY(FlatSource(m, "top_up", &route.top_up_source));
    } else {
      for (std::string_view k : {"top_up_source", "top_up_assumed"}) {
        if (std::optional<YAML::Node> v = m.Find(k)) return Fail(m.At(k), *v, "needs top_up_yuan");
      }
    }
  }
  for (int t = 1; t < kVisitTypeCount; ++t) {
    if (policy->routes[static_cast<size_t>(t)].scheme < 0) {
      VisitType type = static_cast<VisitType>(t);
      return Fail(KeyPath(path, Name(type)), n,
                  Cat("visit type ", Name(type), " is not routed to a scheme"));
    }
  }
  return absl::OkStatus();
}

// --------------------------------------------------------- critical illness

absl::Status Loader::ParseCriticalIllness(const YAML::Node& n, const std::string& path,
                                          CriticalIllness* out) const {
  Map m;
  MEDSETTLE_POLICY_TRY(AsMap(n, path, {"enabled", "source", "assumed", "terms"}, &m));
  MEDSETTLE_POLICY_TRY(Source(m, /*required=*/true, &out->source));
  out->enabled = true;
  if (std::optional<YAML::Node> enabled = m.Find("enabled")) {
    MEDSETTLE_POLICY_TRY(Bool(*enabled, m.At("enabled"), &out->enabled));
  }
  std::optional<YAML::Node> terms = m.Find("terms");
  if (!out->enabled) {
    if (terms) return Fail(m.At("terms"), *terms, "not allowed with `enabled: false`");
    return absl::OkStatus();
  }
  if (!terms) return Missing(m, "terms");
  const std::string terms_path = m.At("terms");
  MEDSETTLE_POLICY_TRY(AsSeq(*terms, terms_path, /*allow_empty=*/false));
  for (size_t i = 0; i < terms->size(); ++i) {
    Map row;
    MEDSETTLE_POLICY_TRY(AsMap((*terms)[i], IndexPath(terms_path, i),
                               {"when", "threshold_yuan", "pct", "cap_yuan"}, &row));
    Row<CriticalIllnessTerms> r;
    MEDSETTLE_POLICY_TRY(ParseWhen(row, &r.when));
    YAML::Node threshold, pct, cap;
    MEDSETTLE_POLICY_TRY(Need(row, "threshold_yuan", &threshold));
    MEDSETTLE_POLICY_TRY(Yuan(threshold, row.At("threshold_yuan"), &r.value.threshold_cents));
    MEDSETTLE_POLICY_TRY(Need(row, "pct", &pct));
    MEDSETTLE_POLICY_TRY(Pct(pct, row.At("pct"), &r.value.ratio_bp));
    MEDSETTLE_POLICY_TRY(Need(row, "cap_yuan", &cap));  // explicit: a figure or `none`
    MEDSETTLE_POLICY_TRY(YuanOrNone(cap, row.At("cap_yuan"), &r.value.cap_cents));
    out->terms.push_back(std::move(r));
  }
  return absl::OkStatus();
}

// ------------------------------------------------------------ supplementary

absl::Status Loader::ParseResponsibility(const YAML::Node& n, const std::string& path,
                                         Responsibility* out) const {
  Map m;
  MEDSETTLE_POLICY_TRY(AsMap(
      n, path, {"id", "name", "base", "settle", "cap_yuan", "source", "assumed", "segments"}, &m));
  YAML::Node id, name, base, settle, cap, segments;
  MEDSETTLE_POLICY_TRY(Need(m, "id", &id));
  MEDSETTLE_POLICY_TRY(Int(id, m.At("id"), 1, kResponsibilityCount, &out->id));
  MEDSETTLE_POLICY_TRY(Need(m, "name", &name));
  MEDSETTLE_POLICY_TRY(NonEmptyText(name, m.At("name"), &out->name));
  MEDSETTLE_POLICY_TRY(Source(m, /*required=*/true, &out->source));

  using Base = Responsibility::Base;
  using Settle = Responsibility::Settle;
  MEDSETTLE_POLICY_TRY(Need(m, "base", &base));
  MEDSETTLE_POLICY_TRY(OneOf<Base>(base, m.At("base"),
                                   {{"in_scope_burden", Base::kInScopeBurden},
                                    {"out_of_scope", Base::kOutOfScope},
                                    {"not_computable", Base::kNotComputable}},
                                   &out->base));
  MEDSETTLE_POLICY_TRY(Need(m, "settle", &settle));
  MEDSETTLE_POLICY_TRY(OneOf<Settle>(settle, m.At("settle"),
                                     {{"counter", Settle::kCounter},
                                      {"counter_in_region", Settle::kCounterInRegion},
                                      {"claim_later", Settle::kClaimLater}},
                                     &out->settle));
  if (out->base == Base::kNotComputable && out->settle != Settle::kClaimLater) {
    return Fail(m.At("settle"), settle,
                "a not_computable base cannot be settled at the counter (use claim_later)");
  }

  MEDSETTLE_POLICY_TRY(Need(m, "cap_yuan", &cap));
  MEDSETTLE_POLICY_TRY(YuanOrNone(cap, m.At("cap_yuan"), &out->cap_cents));

  MEDSETTLE_POLICY_TRY(Need(m, "segments", &segments));
  const std::string seg_path = m.At("segments");
  MEDSETTLE_POLICY_TRY(AsSeq(segments, seg_path, /*allow_empty=*/false));
  for (size_t i = 0; i < segments.size(); ++i) {
    Map sm;
    MEDSETTLE_POLICY_TRY(
        AsMap(segments[i], IndexPath(seg_path, i), {"from_yuan", "to_yuan", "rows"}, &sm));
    SupplementarySegment seg;
    YAML::Node from, rows;
    MEDSETTLE_POLICY_TRY(Need(sm, "from_yuan", &from));
    MEDSETTLE_POLICY_TRY(Yuan(from, sm.At("from_yuan"), &seg.from_cents));
    if (!out->segments.empty()) {
      const SupplementarySegment& prev = out->segments.back();
      if (!prev.to_cents) {
        return Fail(IndexPath(seg_path, i - 1), segments[i - 1],
                    "only the last segment may be open (no to_yuan)");
      }
      if (seg.from_cents < *prev.to_cents) {
        return Fail(sm.At("from_yuan"), from,
                    "segments must be ordered: starts before the previous one ends");
      }
    }
    if (std::optional<YAML::Node> to = sm.Find("to_yuan")) {
      Cents cents = 0;
      MEDSETTLE_POLICY_TRY(Yuan(*to, sm.At("to_yuan"), &cents));
      if (cents <= seg.from_cents) return Fail(sm.At("to_yuan"), *to, "must be above from_yuan");
      seg.to_cents = cents;
    }
    MEDSETTLE_POLICY_TRY(Need(sm, "rows", &rows));
    MEDSETTLE_POLICY_TRY(ParseRatioRows(rows, sm.At("rows"), &seg.ratios));
    out->segments.push_back(std::move(seg));
  }
  return absl::OkStatus();
}

absl::Status Loader::ParseSupplementary(const YAML::Node& n, const std::string& path,
                                        SupplementaryProduct* out) const {
  Map m;
  MEDSETTLE_POLICY_TRY(
      AsMap(n, path,
            {"product", "title", "counter_regions", "source", "assumed", "responsibilities"}, &m));
  YAML::Node product, title, regions, responsibilities;
  MEDSETTLE_POLICY_TRY(Need(m, "product", &product));
  MEDSETTLE_POLICY_TRY(NonEmptyText(product, m.At("product"), &out->product));
  MEDSETTLE_POLICY_TRY(Need(m, "title", &title));
  MEDSETTLE_POLICY_TRY(NonEmptyText(title, m.At("title"), &out->title));
  MEDSETTLE_POLICY_TRY(Source(m, /*required=*/true, &out->source));
  MEDSETTLE_POLICY_TRY(Need(m, "counter_regions", &regions));
  MEDSETTLE_POLICY_TRY(Regions(regions, m.At("counter_regions"), &out->counter_regions));
  MEDSETTLE_POLICY_TRY(Need(m, "responsibilities", &responsibilities));
  const std::string at = m.At("responsibilities");
  MEDSETTLE_POLICY_TRY(AsSeq(responsibilities, at, /*allow_empty=*/false));
  for (size_t i = 0; i < responsibilities.size(); ++i) {
    Responsibility r;
    MEDSETTLE_POLICY_TRY(ParseResponsibility(responsibilities[i], IndexPath(at, i), &r));
    for (const Responsibility& other : out->responsibilities) {
      if (other.id == r.id) {
        return Fail(KeyPath(IndexPath(at, i), "id"), responsibilities[i],
                    Cat("responsibility ", r.id, " listed twice"));
      }
    }
    out->responsibilities.push_back(std::move(r));
  }
  return absl::OkStatus();
}

// ------------------------------------------------------------------- policy

absl::Status Loader::Load(const YAML::Node& root, Policy* policy) {
  if (!root.IsDefined() || root.IsNull()) return Fail("", root, "the file is empty");
  Map m;
  MEDSETTLE_POLICY_TRY(AsMap(root, "",
                             {"id", "title", "source_document", "year", "valid_from", "valid_to",
                              "regions", "pooling_area", "tiers", "institution_classes", "coverage",
                              "schemes", "visits", "critical_illness", "supplementary"},
                             &m));
  YAML::Node node;
  MEDSETTLE_POLICY_TRY(Need(m, "id", &node));
  MEDSETTLE_POLICY_TRY(NonEmptyText(node, "id", &policy->id));
  if (policy->id.find_first_of(" \t") != std::string::npos) {
    return Fail("id", node, "must not contain spaces");
  }
  MEDSETTLE_POLICY_TRY(Need(m, "title", &node));
  MEDSETTLE_POLICY_TRY(NonEmptyText(node, "title", &policy->title));
  MEDSETTLE_POLICY_TRY(Need(m, "source_document", &node));
  MEDSETTLE_POLICY_TRY(NonEmptyText(node, "source_document", &policy->source_document));

  MEDSETTLE_POLICY_TRY(Need(m, "year", &node));
  MEDSETTLE_POLICY_TRY(Int(node, "year", 1900, 2199, &policy->year));
  YAML::Node from, to;
  MEDSETTLE_POLICY_TRY(Need(m, "valid_from", &from));
  MEDSETTLE_POLICY_TRY(DateValue(from, "valid_from", &policy->valid_from));
  MEDSETTLE_POLICY_TRY(Need(m, "valid_to", &to));
  MEDSETTLE_POLICY_TRY(DateValue(to, "valid_to", &policy->valid_to));
  if (policy->valid_from.year() != policy->year) {
    return Fail("valid_from", from, Cat("must lie in the policy year ", policy->year));
  }
  if (policy->valid_to.year() != policy->year) {
    return Fail("valid_to", to, Cat("must lie in the policy year ", policy->year));
  }
  if (policy->valid_to < policy->valid_from) {
    return Fail("valid_to", to, "is before valid_from");
  }

  MEDSETTLE_POLICY_TRY(Need(m, "regions", &node));
  MEDSETTLE_POLICY_TRY(Regions(node, "regions", &policy->regions));
  MEDSETTLE_POLICY_TRY(Need(m, "pooling_area", &node));
  MEDSETTLE_POLICY_TRY(Regions(node, "pooling_area", &policy->pooling_area));

  MEDSETTLE_POLICY_TRY(Need(m, "tiers", &node));
  MEDSETTLE_POLICY_TRY(AsSeq(node, "tiers", /*allow_empty=*/false));
  for (size_t i = 0; i < node.size(); ++i) {
    int32_t tier = 0;
    MEDSETTLE_POLICY_TRY(Int(node[i], IndexPath("tiers", i), 0, 31, &tier));
    if (std::find(policy->tiers.begin(), policy->tiers.end(), tier) != policy->tiers.end()) {
      return Fail(IndexPath("tiers", i), node[i], "tier listed twice");
    }
    policy->tiers.push_back(tier);
  }
  tiers_ = policy->tiers;

  MEDSETTLE_POLICY_TRY(Need(m, "institution_classes", &node));
  MEDSETTLE_POLICY_TRY(ParseClasses(node, "institution_classes", policy));

  MEDSETTLE_POLICY_TRY(Need(m, "coverage", &node));
  MEDSETTLE_POLICY_TRY(ParseCoverage(node, "coverage", policy->year, &policy->coverage));

  // Schemes, in file order; spill-over targets are resolved once all are known.
  YAML::Node schemes;
  MEDSETTLE_POLICY_TRY(Need(m, "schemes", &schemes));
  if (!schemes.IsMap() || schemes.size() == 0) {
    return Fail("schemes", schemes, "expected a non-empty map name: scheme");
  }
  std::vector<std::optional<YAML::Node>> spill_to(schemes.size());
  std::vector<std::string> spill_path(schemes.size());
  std::vector<YAML::Node> scheme_nodes;
  size_t index = 0;
  for (auto it = schemes.begin(); it != schemes.end(); ++it, ++index) {
    std::string name = it->first.IsScalar() ? it->first.Scalar() : "";
    const std::string at = KeyPath("schemes", name);
    bool identifier = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    });
    if (!identifier) return Fail(at, it->first, "a scheme name is lower_snake_case");
    if (policy->SchemeIndex(name) >= 0) return Fail(at, it->first, "duplicate key");
    scheme_nodes.push_back(it->second);
    Scheme s;
    s.name = name;
    MEDSETTLE_POLICY_TRY(ParseScheme(it->second, at, &s, &spill_to[index], &spill_path[index]));
    policy->schemes.push_back(std::move(s));
  }
  for (size_t i = 0; i < policy->schemes.size(); ++i) {
    if (!spill_to[i]) continue;
    std::string target;
    MEDSETTLE_POLICY_TRY(Text(*spill_to[i], spill_path[i], &target));
    int32_t t = policy->SchemeIndex(target);
    if (t < 0) return Fail(spill_path[i], *spill_to[i], Cat("unknown scheme \"", target, "\""));
    if (static_cast<size_t>(t) == i)
      return Fail(spill_path[i], *spill_to[i], "a scheme cannot spill over to itself");
    const Scheme& to_scheme = policy->schemes[static_cast<size_t>(t)];
    if (to_scheme.kind != Scheme::Kind::kCoinsurance) {
      return Fail(spill_path[i], *spill_to[i],
                  "the spill-over target must be a coinsurance scheme");
    }
    if (spill_to[static_cast<size_t>(t)]) {
      return Fail(spill_path[i], *spill_to[i],
                  "the spill-over target spills over itself (chains are not supported)");
    }
    policy->schemes[i].spill_over_to = t;
  }

  MEDSETTLE_POLICY_TRY(Need(m, "visits", &node));
  MEDSETTLE_POLICY_TRY(ParseVisits(node, "visits", policy));

  std::optional<YAML::Node> ci = m.Find("critical_illness");
  if (ci) {
    MEDSETTLE_POLICY_TRY(ParseCriticalIllness(*ci, "critical_illness", &policy->critical_illness));
  }
  std::optional<YAML::Node> sup = m.Find("supplementary");
  if (sup) {
    policy->supplementary.emplace();
    MEDSETTLE_POLICY_TRY(ParseSupplementary(*sup, "supplementary", &*policy->supplementary));
  }

  // Layer flags and layers must agree, or a layer would silently never pay.
  bool any_ci = false, any_sup = false;
  for (size_t i = 0; i < policy->schemes.size(); ++i) {
    const Scheme& s = policy->schemes[i];
    const std::string at = KeyPath("schemes", s.name);
    if (s.critical_illness && !policy->critical_illness.enabled) {
      return Fail(KeyPath(at, "critical_illness"), scheme_nodes[i],
                  "the scheme counts toward critical illness, but the policy has no enabled "
                  "critical_illness block");
    }
    if (s.supplementary && !policy->supplementary) {
      return Fail(KeyPath(at, "supplementary"), scheme_nodes[i],
                  "the scheme is paid on by supplementary insurance, but the policy has no "
                  "supplementary block");
    }
    any_ci = any_ci || s.critical_illness;
    any_sup = any_sup || s.supplementary;
  }
  if (policy->critical_illness.enabled && !any_ci) {
    return Fail("critical_illness", *ci, "enabled, but no scheme has `critical_illness: true`");
  }
  if (policy->supplementary && !any_sup) {
    return Fail("supplementary", *sup, "present, but no scheme has `supplementary: true`");
  }
  return absl::OkStatus();
}

#undef MEDSETTLE_POLICY_TRY

bool DatesOverlap(const Policy& a, const Policy& b) {
  return a.valid_from <= b.valid_to && b.valid_from <= a.valid_to;
}

bool RegionsOverlap(const Policy& a, const Policy& b) {
  for (RegionCode x : a.regions) {
    for (RegionCode y : b.regions) {
      if (RegionCovers(x, y) || RegionCovers(y, x)) return true;
    }
  }
  return false;
}

}  // namespace

absl::StatusOr<Policy> ParsePolicy(std::string_view file_name, std::string_view yaml_text) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    return InvalidField(reason::kPolicyFileInvalid, "",
                        Cat(file_name, ": not valid YAML: ", e.what()));
  }
  Policy policy;
  policy.file_name = std::string(file_name);
  Loader loader(file_name);
  absl::Status status;
  try {
    status = loader.Load(root, &policy);
  } catch (const YAML::Exception& e) {  // yaml-cpp reports misuse by throwing
    return InvalidField(reason::kPolicyFileInvalid, "",
                        Cat(file_name, ": cannot read: ", e.what()));
  }
  if (!status.ok()) return status;
  return policy;
}

absl::Status PolicySet::Add(Policy policy) {
  for (const Policy& other : policies_) {
    if (other.id == policy.id) {
      return InvalidField(reason::kPolicyFileInvalid, "id",
                          Cat(policy.file_name, ": id: policy id \"", policy.id,
                              "\" is already loaded from ", other.file_name));
    }
    if (RegionsOverlap(policy, other) && DatesOverlap(policy, other)) {
      return InvalidField(
          reason::kPolicyFileInvalid, "regions",
          Cat(policy.file_name, ": regions: regions and dates ", policy.valid_from.ToString(), "..",
              policy.valid_to.ToString(), " overlap policy ", other.id, " (", other.file_name, ", ",
              other.valid_from.ToString(), "..", other.valid_to.ToString(), ")"));
    }
  }
  policies_.push_back(std::move(policy));
  return absl::OkStatus();
}

const Policy* PolicySet::Select(RegionCode region, Date date) const {
  for (const Policy& policy : policies_) {
    if (policy.Insures(region) && policy.valid_from <= date && date <= policy.valid_to) {
      return &policy;
    }
  }
  return nullptr;
}

const Policy* PolicySet::FindById(std::string_view id) const {
  for (const Policy& policy : policies_) {
    if (policy.id == id) return &policy;
  }
  return nullptr;
}

}  // namespace medsettle::engine
