// The readable form of a settlement (medsettle-calc --explain): header, bill
// lines, amounts with their Chinese names, fund details, the ordered trace,
// claim-later items and the year-to-date accumulators, in aligned columns.
#ifndef MEDSETTLE_TOOLS_CALC_EXPLAIN_H_
#define MEDSETTLE_TOOLS_CALC_EXPLAIN_H_

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "medsettle/v1/calc.pb.h"
#include "medsettle/v1/settlement.pb.h"

namespace medsettle::calc {

// Terminal columns UTF-8 text takes: East Asian wide and fullwidth
// characters (CJK, fullwidth punctuation) 2, combining marks and controls 0,
// everything else 1. An invalid byte counts as 1.
int DisplayWidth(std::string_view utf8);

// A table of left- or right-aligned columns padded by display width. The
// last column is not padded, so lines carry no trailing spaces.
class TextTable {
 public:
  enum class Align { kLeft, kRight };
  struct Column {
    std::string header;  // empty headers everywhere: no header line
    Align align = Align::kLeft;
  };

  explicit TextTable(std::vector<Column> columns) : columns_(std::move(columns)) {}
  // REQUIRES: cells.size() == number of columns.
  void AddRow(std::vector<std::string> cells);
  // Appends the table, each line starting with `indent`.
  void Render(std::string_view indent, std::string* out) const;

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;
};

// The explanation of `response`, computed from `scenario`.
std::string Explain(const v1::CalcScenario& scenario, const v1::SettleResponse& response);

// The explanation of a refusal of `scenario`: what was asked, the status
// code, the stable reason, the field and the message.
std::string ExplainRefusal(const v1::CalcScenario& scenario, const absl::Status& refusal);

}  // namespace medsettle::calc

#endif  // MEDSETTLE_TOOLS_CALC_EXPLAIN_H_
