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

// ---- Sections of a SettleResponse ------------------------------------------
// Shared by medsettle-calc --explain and medsettle-cli. A section is a blank
// line, its title, then a table indented by two spaces.

// Appends "\n<title>\n", the start of a section.
void AppendSectionTitle(std::string_view title, std::string* out);

// `name` without a leading `prefix` ("CATEGORY_ADULT", "CATEGORY_" →
// "ADULT"); `name` itself when it does not start with `prefix`.
std::string WithoutPrefix(const std::string& name, std::string_view prefix);

// "住院 inpatient", "普通门诊 general outpatient", ...; "? unspecified" for
// VISIT_TYPE_UNSPECIFIED and values this build does not know.
std::string_view VisitName(v1::VisitType type);

// The words of the two rows of the amounts table that the tools name
// differently; the other rows are the same in both.
struct AmountsWording {
  std::string_view total_zh;       // "总费用" (medsettle-calc), "总额" (medsettle-cli)
  std::string_view total_en;       // "total", "bill total"
  std::string_view deductible_zh;  // "起付标准", "起付线"
};

// The split of a bill under `title`, one payer or share per row in the order
// of a 结算单: total, 自费 out of scope, 超限价, 先行自付, 政策范围内, 起付,
// 统筹基金, 大病保险, 惠民保, 个人负担 patient; yuan with two decimals.
void AppendAmountsSection(std::string_view title, const v1::Amounts& amounts,
                          const AmountsWording& wording, std::string* out);
// The 金额 Amounts (yuan) section of `response`, then the line "  base fund
// ratio on the first paid piece: <percent>".
void AppendSettlementAmounts(const v1::SettleResponse& response, const AmountsWording& wording,
                             std::string* out);
// 基金 Fund details<title_suffix>: per fund its scheme, what was eligible,
// what it paid and the cap left ("no cap"). Nothing when the response holds
// no fund detail.
void AppendFundsSection(const v1::SettleResponse& response, std::string_view title_suffix,
                        std::string* out);
// 事后理赔 To claim later with the insurer<title_suffix>: per item the
// product, responsibility, name, base and estimate ("-" when unknown) and
// reason. Nothing when the response holds no such item.
void AppendClaimLaterSection(const v1::SettleResponse& response, std::string_view title_suffix,
                             std::string* out);
// 计算过程 Trace: the numbered steps (rule, amount, note), each step's source
// on a line of its own under it. When the response holds no step: the line
// "  <when_empty>" instead of the table, or the table's header alone when
// `when_empty` is empty.
void AppendTraceSection(const v1::SettleResponse& response, std::string_view when_empty,
                        std::string* out);

// The explanation of `response`, computed from `scenario`.
std::string Explain(const v1::CalcScenario& scenario, const v1::SettleResponse& response);

// The explanation of a refusal of `scenario`: what was asked, the status
// code, the stable reason, the field and the message.
std::string ExplainRefusal(const v1::CalcScenario& scenario, const absl::Status& refusal);

}  // namespace medsettle::calc

#endif  // MEDSETTLE_TOOLS_CALC_EXPLAIN_H_
