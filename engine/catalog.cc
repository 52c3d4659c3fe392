#include "engine/catalog.h"

#include <charconv>
#include <vector>

#include "engine/text.h"
#include "engine/status.h"

namespace medsettle::engine {
namespace {

constexpr std::string_view kHeader = "code,name,class,selfpay_ratio_bp,price_cap_cents,tcm";

// Splits one CSV record; fields may be double-quoted with "" as a quote.
bool SplitCsv(std::string_view line, std::vector<std::string>* fields) {
  fields->clear();
  std::string field;
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c == '"' && field.empty()) {
      quoted = true;
    } else if (c == ',') {
      fields->push_back(std::move(field));
      field.clear();
    } else {
      field += c;
    }
  }
  if (quoted) return false;
  fields->push_back(std::move(field));
  return true;
}

bool ParseInt64(std::string_view s, int64_t* out) {
  if (s.empty()) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

}  // namespace

absl::StatusOr<Catalog> Catalog::Parse(std::string_view file_name, std::string_view csv_text) {
  Catalog catalog;
  std::vector<std::string> fields;
  bool header_seen = false;
  int line_no = 0;
  auto error = [&](std::string_view column, std::string_view what) {
    return InvalidField(reason::kCatalogFileInvalid, column,
                        Cat(file_name, ":", line_no, ": ", column.empty() ? "" : column,
                                     column.empty() ? "" : ": ", what));
  };
  size_t pos = 0;
  while (pos < csv_text.size()) {
    size_t end = csv_text.find('\n', pos);
    if (end == std::string_view::npos) end = csv_text.size();
    std::string_view line = csv_text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line_no == 1 && line.substr(0, 3) == "\xEF\xBB\xBF") line.remove_prefix(3);  // BOM
    if (line.empty() || line.front() == '#') continue;
    if (!header_seen) {
      if (line != kHeader) return error("", Cat("expected header \"", kHeader, "\""));
      header_seen = true;
      continue;
    }
    if (!SplitCsv(line, &fields)) return error("", "unterminated quoted field");
    if (fields.size() != 6) {
      return error("", Cat("expected 6 columns, found ", fields.size()));
    }
    CatalogItem item;
    item.code = fields[0];
    item.name = fields[1];
    if (item.code.empty()) return error("code", "empty item code");
    if (fields[2] == "A") {
      item.item_class = ItemClass::kA;
    } else if (fields[2] == "B") {
      item.item_class = ItemClass::kB;
    } else if (fields[2] == "C") {
      item.item_class = ItemClass::kC;
    } else {
      return error("class", Cat("expected A, B or C, got \"", fields[2], "\""));
    }
    int64_t ratio = 0;
    if (!ParseInt64(fields[3], &ratio) || ratio < 0 || ratio > kFullRatioBp) {
      return error("selfpay_ratio_bp", Cat("expected 0..10000, got \"", fields[3], "\""));
    }
    if (item.item_class != ItemClass::kB && ratio != 0) {
      return error("selfpay_ratio_bp", "only class B items have a pre-self-pay ratio");
    }
    item.selfpay_ratio_bp = static_cast<BasisPoints>(ratio);
    if (!fields[4].empty()) {
      int64_t cap = 0;
      if (!ParseInt64(fields[4], &cap) || cap < 0 || cap > kMaxAmountCents) {
        return error("price_cap_cents",
                     Cat("expected empty or 0..10^12, got \"", fields[4], "\""));
      }
      item.price_cap_cents = cap;
    }
    if (fields[5] == "1") {
      item.tcm = true;
    } else if (fields[5] != "0") {
      return error("tcm", Cat("expected 0 or 1, got \"", fields[5], "\""));
    }
    std::string code = item.code;
    if (!catalog.items_.emplace(std::move(code), std::move(item)).second) {
      return error("code", Cat("duplicate item code \"", fields[0], "\""));
    }
  }
  if (!header_seen) {
    line_no = 0;
    return error("", "empty catalog: no header");
  }
  return catalog;
}

const CatalogItem* Catalog::Find(std::string_view code) const {
  auto it = items_.find(absl::string_view(code.data(), code.size()));
  return it == items_.end() ? nullptr : &it->second;
}

}  // namespace medsettle::engine
