#include "tools/calc/explain.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <utility>

#include "engine/money.h"
#include "engine/status.h"
#include "engine/text.h"

namespace medsettle::calc {
namespace {

using engine::Cat;
using engine::FormatYuan;

constexpr AmountsWording kCalcWording{"总费用", "total", "起付标准"};

// Decodes one UTF-8 character at text[*pos] and advances *pos past it. A
// byte that does not start a well-formed sequence decodes as U+FFFD.
uint32_t NextCodePoint(std::string_view text, size_t* pos) {
  constexpr uint32_t kReplacement = 0xFFFD;
  const auto lead = static_cast<unsigned char>(text[*pos]);
  size_t extra = 0;
  uint32_t cp = 0;
  if (lead < 0x80) {
    ++*pos;
    return lead;
  } else if ((lead & 0xE0) == 0xC0) {
    extra = 1;
    cp = lead & 0x1Fu;
  } else if ((lead & 0xF0) == 0xE0) {
    extra = 2;
    cp = lead & 0x0Fu;
  } else if ((lead & 0xF8) == 0xF0) {
    extra = 3;
    cp = lead & 0x07u;
  } else {
    ++*pos;
    return kReplacement;
  }
  if (*pos + extra >= text.size()) {
    ++*pos;
    return kReplacement;
  }
  for (size_t i = 1; i <= extra; ++i) {
    const auto c = static_cast<unsigned char>(text[*pos + i]);
    if ((c & 0xC0) != 0x80) {
      ++*pos;
      return kReplacement;
    }
    cp = (cp << 6) | (c & 0x3Fu);
  }
  *pos += extra + 1;
  return cp;
}

int CodePointWidth(uint32_t cp) {
  if (cp < 0x20 || (cp >= 0x7F && cp < 0xA0)) return 0;  // controls
  if ((cp >= 0x0300 && cp <= 0x036F) || (cp >= 0x200B && cp <= 0x200F) ||
      (cp >= 0x20D0 && cp <= 0x20FF) || (cp >= 0xFE00 && cp <= 0xFE0F)) {
    return 0;  // combining marks, zero-width spaces, variation selectors
  }
  if ((cp >= 0x1100 && cp <= 0x115F) ||    // Hangul Jamo
      (cp >= 0x2E80 && cp <= 0x303E) ||    // CJK radicals .. CJK punctuation
      (cp >= 0x3041 && cp <= 0x33FF) ||    // kana .. CJK compatibility
      (cp >= 0x3400 && cp <= 0x4DBF) ||    // CJK extension A
      (cp >= 0x4E00 && cp <= 0x9FFF) ||    // CJK unified ideographs
      (cp >= 0xA000 && cp <= 0xA4CF) ||    // Yi
      (cp >= 0xAC00 && cp <= 0xD7A3) ||    // Hangul syllables
      (cp >= 0xF900 && cp <= 0xFAFF) ||    // CJK compatibility ideographs
      (cp >= 0xFE10 && cp <= 0xFE19) ||    // vertical forms
      (cp >= 0xFE30 && cp <= 0xFE6F) ||    // CJK compatibility forms
      (cp >= 0xFF00 && cp <= 0xFF60) ||    // fullwidth forms
      (cp >= 0xFFE0 && cp <= 0xFFE6) ||    // fullwidth signs
      (cp >= 0x1F300 && cp <= 0x1F64F) ||  // pictographs, emoticons
      (cp >= 0x1F900 && cp <= 0x1F9FF) ||  // supplemental pictographs
      (cp >= 0x20000 && cp <= 0x3FFFD)) {  // CJK extensions B..
    return 2;
  }
  return 1;
}

void AppendPadded(std::string_view text, int width, TextTable::Align align, std::string* out) {
  const int pad = std::max(0, width - DisplayWidth(text));
  if (align == TextTable::Align::kRight) out->append(static_cast<size_t>(pad), ' ');
  out->append(text);
  if (align == TextTable::Align::kLeft) out->append(static_cast<size_t>(pad), ' ');
}

// ---- names ------------------------------------------------------------------

std::string_view KindName(v1::InstitutionKind v) {
  switch (v) {
    case v1::INSTITUTION_KIND_HOSPITAL: return "医院 hospital";
    case v1::INSTITUTION_KIND_COMMUNITY: return "社区/基层 community";
    case v1::INSTITUTION_KIND_PHARMACY: return "药店 pharmacy";
    default: return "? unspecified";
  }
}

std::string_view ClassName(v1::ItemClass v) {
  switch (v) {
    case v1::ITEM_CLASS_A: return "甲 A";
    case v1::ITEM_CLASS_B: return "乙 B";
    case v1::ITEM_CLASS_C: return "丙 C";
    case v1::ITEM_CLASS_UNKNOWN: return "目录外 unknown";
    default: return "?";
  }
}

std::string_view FundName(v1::Fund v) {
  switch (v) {
    case v1::FUND_BASE: return "统筹基金 base fund";
    case v1::FUND_CRITICAL_ILLNESS: return "大病保险 critical illness";
    case v1::FUND_SUPPLEMENTARY: return "惠民保 supplementary";
    default: return "? unspecified";
  }
}

std::string_view LedgerName(v1::Ledger v) {
  switch (v) {
    case v1::LEDGER_GENERAL_OUTPATIENT: return "普通门诊 general outpatient";
    case v1::LEDGER_CHRONIC_OUTPATIENT: return "慢性病门诊 chronic outpatient";
    case v1::LEDGER_SPECIAL_OUTPATIENT: return "特殊病种门诊 special outpatient";
    case v1::LEDGER_INPATIENT: return "住院 inpatient";
    case v1::LEDGER_PRENATAL: return "产前检查 prenatal";
    case v1::LEDGER_DELIVERY: return "生育 delivery";
    default: return "? unspecified";
  }
}

void AppendHeader(const v1::CalcScenario& scenario, const v1::SettleResponse& r, std::string* out) {
  const v1::SettleRequest& request = scenario.request();
  const v1::Visit& visit = request.visit();
  const v1::Institution& inst = scenario.institution();
  const v1::Enrollment& e = scenario.enrollment();

  std::string visit_text(VisitName(r.visit_type()));
  if (!visit.admission_date().empty() || !visit.discharge_date().empty()) {
    visit_text +=
        Cat(", admitted ", visit.admission_date(), ", discharged ", visit.discharge_date());
  } else if (!visit.service_date().empty()) {
    visit_text += Cat(", on ", visit.service_date());
  }
  if (!visit.condition().empty()) visit_text += Cat(", condition ", visit.condition());
  if (visit.has_specialty()) {
    visit_text +=
        ", specialty " + WithoutPrefix(v1::Specialty_Name(visit.specialty()), "SPECIALTY_");
  }
  if (visit.emergency()) visit_text += ", emergency 急诊";

  std::string inst_text =
      Cat(inst.name(), " [", inst.institution_id(), "], region ", inst.region_code(), ", ",
          KindName(inst.kind()), " level ", inst.level());
  if (inst.zero_markup()) inst_text += ", 零差率 zero mark-up";
  if (inst.tcm()) inst_text += ", 中医 TCM";
  if (inst.children_or_maternal()) inst_text += ", 儿童/妇幼 children's or maternal";
  if (inst.base_level()) inst_text += ", 基层 base level";

  std::string person_text =
      Cat(e.person_key(), ", ", e.year(), " ",
          WithoutPrefix(v1::Category_Name(e.category()), "CATEGORY_"), ", tier ", e.tier(),
          ", assistance ", WithoutPrefix(v1::Assistance_Name(e.assistance()), "ASSISTANCE_"),
          ", region ", e.region_code());
  if (!e.supplementary().product().empty()) {
    person_text += Cat(", 惠民保 ", e.supplementary().product());
    if (e.supplementary().pre_existing()) person_text += " (既往症 pre-existing)";
    if (e.supplementary().continuous()) person_text += " (连续参保 continuous)";
  }

  TextTable header({{""}, {""}});
  header.AddRow({"情景 scenario", scenario.name().empty() ? "(unnamed)" : scenario.name()});
  header.AddRow({"政策 policy", r.policy_id()});
  header.AddRow({"就诊 visit", visit_text});
  header.AddRow({"结算日 settled on", r.settlement_date() + " (试算 trial: nothing recorded)"});
  header.AddRow({"机构 institution", inst_text});
  header.AddRow({"参保人 insured", person_text});
  if (!r.request_id().empty()) header.AddRow({"请求 request", r.request_id()});
  if (r.filing_to_follow()) {
    header.AddRow({"备案 filing", "out-of-area emergency: a filing must follow"});
  }
  header.Render("", out);
}

void AppendBill(const v1::CalcScenario& scenario, const v1::SettleResponse& r, std::string* out) {
  AppendSectionTitle("明细 Bill lines", out);
  using A = TextTable::Align;
  TextTable table({{"line", A::kRight},
                   {"code"},
                   {"class"},
                   {"qty", A::kRight},
                   {"unit price", A::kRight},
                   {"amount", A::kRight},
                   {"over limit", A::kRight},
                   {"pre-self-pay", A::kRight},
                   {"in scope", A::kRight},
                   {"out of scope", A::kRight},
                   {"name"}});
  const auto& items = scenario.request().items();
  for (const v1::LineResult& line : r.lines()) {
    const v1::BillItem* item = nullptr;
    for (const v1::BillItem& candidate : items) {
      if (candidate.line_no() == line.line_no()) {
        item = &candidate;
        break;
      }
    }
    std::string name = item ? item->name() : "";
    if (line.tcm_bonus()) name += " [中药加成 TCM bonus]";
    table.AddRow({std::to_string(line.line_no()), line.code(),
                  std::string(ClassName(line.item_class())), item ? item->quantity() : "",
                  item ? FormatYuan(item->unit_price_cents()) : "", FormatYuan(line.amount_cents()),
                  FormatYuan(line.over_limit_cents()), FormatYuan(line.pre_self_pay_cents()),
                  FormatYuan(line.in_scope_cents()), FormatYuan(line.out_of_scope_cents()), name});
  }
  table.Render("  ", out);
}

void AppendYearToDate(const v1::SettleResponse& r, std::string* out) {
  const v1::Accumulators& ytd = r.year_to_date();
  AppendSectionTitle(Cat("年度累计 Year to date after this settlement (", ytd.year(),
                         ", version ", ytd.version(), ")"),
                     out);
  using A = TextTable::Align;
  TextTable ledgers({{"ledger"},
                     {"deductible paid", A::kRight},
                     {"in scope", A::kRight},
                     {"fund paid", A::kRight},
                     {"visits", A::kRight}});
  for (const v1::LedgerTotals& t : ytd.ledgers()) {
    ledgers.AddRow({std::string(LedgerName(t.ledger())), FormatYuan(t.deductible_paid_cents()),
                    FormatYuan(t.in_scope_cents()), FormatYuan(t.fund_paid_cents()),
                    std::to_string(t.visits())});
  }
  if (ytd.ledgers_size() == 0) ledgers.AddRow({"(none)", "", "", "", ""});
  ledgers.Render("  ", out);

  // The layers with something accumulated (a region without 大病保险 shows none).
  TextTable layers({{"layer"}, {"base", A::kRight}, {"paid", A::kRight}});
  const v1::CriticalIllnessTotals& ci = ytd.critical_illness();
  bool any = false;
  if (ci.burden_cents() != 0 || ci.paid_cents() != 0) {
    layers.AddRow({"大病保险 critical illness", FormatYuan(ci.burden_cents()),
                   FormatYuan(ci.paid_cents())});
    any = true;
  }
  for (const v1::SupplementaryTotals& s : ytd.supplementary()) {
    layers.AddRow({"惠民保 responsibility " + std::to_string(s.responsibility()),
                   FormatYuan(s.base_cents()), FormatYuan(s.paid_cents())});
    any = true;
  }
  if (!any) return;
  out->append("\n");
  layers.Render("  ", out);
}

}  // namespace

int DisplayWidth(std::string_view utf8) {
  int width = 0;
  size_t pos = 0;
  while (pos < utf8.size()) width += CodePointWidth(NextCodePoint(utf8, &pos));
  return width;
}

void TextTable::AddRow(std::vector<std::string> cells) {
  if (cells.size() != columns_.size()) std::abort();  // a bug in the caller
  rows_.push_back(std::move(cells));
}

void TextTable::Render(std::string_view indent, std::string* out) const {
  const size_t n = columns_.size();
  const bool has_header = std::any_of(columns_.begin(), columns_.end(),
                                      [](const Column& c) { return !c.header.empty(); });
  std::vector<int> widths(n, 0);
  for (size_t i = 0; i < n; ++i) {
    if (has_header) widths[i] = DisplayWidth(columns_[i].header);
    for (const auto& row : rows_) widths[i] = std::max(widths[i], DisplayWidth(row[i]));
  }
  auto render_row = [&](auto cell_of) {
    std::string line(indent);
    for (size_t i = 0; i < n; ++i) {
      const std::string& cell = cell_of(i);
      if (i + 1 == n) {
        // Last column: no padding on the left-aligned case (no trailing spaces).
        if (columns_[i].align == Align::kRight) {
          AppendPadded(cell, widths[i], Align::kRight, &line);
        } else {
          line.append(cell);
        }
      } else {
        AppendPadded(cell, widths[i], columns_[i].align, &line);
        line.append("  ");
      }
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out->append(line);
    out->push_back('\n');
  };
  if (has_header) render_row([&](size_t i) -> const std::string& { return columns_[i].header; });
  for (const auto& row : rows_) {
    render_row([&](size_t i) -> const std::string& { return row[i]; });
  }
}

// ---- sections of a SettleResponse -------------------------------------------

void AppendSectionTitle(std::string_view title, std::string* out) {
  out->append("\n");
  out->append(title);
  out->append("\n");
}

std::string WithoutPrefix(const std::string& name, std::string_view prefix) {
  return name.rfind(prefix, 0) == 0 ? name.substr(prefix.size()) : name;
}

std::string_view VisitName(v1::VisitType type) {
  switch (type) {
    case v1::VISIT_TYPE_GENERAL_OUTPATIENT: return "普通门诊 general outpatient";
    case v1::VISIT_TYPE_CHRONIC_OUTPATIENT: return "慢性病门诊 chronic outpatient";
    case v1::VISIT_TYPE_SPECIAL_OUTPATIENT: return "特殊病种门诊 special-disease outpatient";
    case v1::VISIT_TYPE_INPATIENT: return "住院 inpatient";
    case v1::VISIT_TYPE_PRENATAL_CHECK: return "产前检查 prenatal check";
    case v1::VISIT_TYPE_DELIVERY_NATURAL: return "顺产 natural delivery";
    case v1::VISIT_TYPE_DELIVERY_CAESAREAN: return "剖宫产 caesarean delivery";
    default: return "? unspecified";
  }
}

void AppendAmountsSection(std::string_view title, const v1::Amounts& a,
                          const AmountsWording& wording, std::string* out) {
  AppendSectionTitle(title, out);
  TextTable table({{""}, {""}, {"", TextTable::Align::kRight}});
  const std::pair<std::string_view, std::pair<std::string_view, int64_t>> rows[] = {
      {wording.total_zh, {wording.total_en, a.total_cents()}},
      {"自费", {"out of scope", a.out_of_scope_cents()}},
      {"超限价", {"over limit", a.over_limit_cents()}},
      {"先行自付", {"pre-self-pay", a.pre_self_pay_cents()}},
      {"政策范围内", {"in scope", a.in_scope_cents()}},
      {wording.deductible_zh, {"deductible", a.deductible_cents()}},
      {"统筹基金", {"base fund", a.base_fund_cents()}},
      {"大病保险", {"critical illness", a.critical_illness_cents()}},
      {"惠民保", {"supplementary", a.supplementary_cents()}},
      {"个人负担", {"patient", a.patient_cents()}},
  };
  for (const auto& [zh, rest] : rows) {
    table.AddRow({std::string(zh), std::string(rest.first), FormatYuan(rest.second)});
  }
  table.Render("  ", out);
}

void AppendSettlementAmounts(const v1::SettleResponse& r, const AmountsWording& wording,
                             std::string* out) {
  AppendAmountsSection("金额 Amounts (yuan)", r.amounts(), wording, out);
  out->append(Cat("  base fund ratio on the first paid piece: ",
                  engine::FormatPercent(r.base_fund_ratio_bp()), "\n"));
}

void AppendFundsSection(const v1::SettleResponse& r, std::string_view title_suffix,
                        std::string* out) {
  if (r.fund_details_size() == 0) return;
  AppendSectionTitle(Cat("基金 Fund details", title_suffix), out);
  using A = TextTable::Align;
  TextTable table({{"fund"},
                   {"scheme"},
                   {"eligible", A::kRight},
                   {"paid", A::kRight},
                   {"cap left", A::kRight}});
  for (const v1::FundDetail& d : r.fund_details()) {
    table.AddRow({std::string(FundName(d.fund())), d.scheme(), FormatYuan(d.eligible_cents()),
                  FormatYuan(d.paid_cents()),
                  d.uncapped() ? "no cap" : FormatYuan(d.cap_remaining_cents())});
  }
  table.Render("  ", out);
}

void AppendClaimLaterSection(const v1::SettleResponse& r, std::string_view title_suffix,
                             std::string* out) {
  if (r.claim_later_size() == 0) return;
  AppendSectionTitle(Cat("事后理赔 To claim later with the insurer", title_suffix), out);
  using A = TextTable::Align;
  TextTable table({{"product"},
                   {"responsibility", A::kRight},
                   {"name"},
                   {"base", A::kRight},
                   {"estimate", A::kRight},
                   {"reason"}});
  for (const v1::ClaimLater& c : r.claim_later()) {
    // Unset amounts are not known from this bill.
    table.AddRow({c.product(), std::to_string(c.responsibility()), c.name(),
                  c.has_base_cents() ? FormatYuan(c.base_cents()) : std::string("-"),
                  c.has_estimated_cents() ? FormatYuan(c.estimated_cents()) : std::string("-"),
                  c.reason()});
  }
  table.Render("  ", out);
}

void AppendTraceSection(const v1::SettleResponse& r, std::string_view when_empty,
                        std::string* out) {
  AppendSectionTitle("计算过程 Trace", out);
  if (r.trace_size() == 0 && !when_empty.empty()) {
    out->append(Cat("  ", when_empty, "\n"));
    return;
  }
  using A = TextTable::Align;
  TextTable table({{"#", A::kRight}, {"rule"}, {"amount", A::kRight}, {"note / source"}});
  int n = 0;
  for (const v1::TraceStep& step : r.trace()) {
    table.AddRow({std::to_string(++n), step.rule(), FormatYuan(step.amount_cents()), step.note()});
    if (!step.source().empty()) table.AddRow({"", "", "", "↳ " + step.source()});
  }
  table.Render("  ", out);
}

std::string Explain(const v1::CalcScenario& scenario, const v1::SettleResponse& response) {
  std::string out;
  AppendHeader(scenario, response, &out);
  AppendBill(scenario, response, &out);
  AppendSettlementAmounts(response, kCalcWording, &out);
  AppendFundsSection(response, "", &out);
  AppendTraceSection(response, "", &out);
  AppendClaimLaterSection(response, "", &out);
  AppendYearToDate(response, &out);
  return out;
}

std::string ExplainRefusal(const v1::CalcScenario& scenario, const absl::Status& refusal) {
  const v1::Visit& visit = scenario.request().visit();
  const std::string field = engine::FieldOf(refusal);
  TextTable table({{""}, {""}});
  table.AddRow({"情景 scenario", scenario.name().empty() ? "(unnamed)" : scenario.name()});
  table.AddRow({"请求 request", scenario.request().request_id()});
  table.AddRow({"就诊 visit",
                Cat(VisitName(visit.type()), ", ",
                    visit.discharge_date().empty() ? visit.service_date() : visit.discharge_date())});
  table.AddRow({"拒绝 refused", Cat(absl::StatusCodeToString(refusal.code()), " / ",
                                    engine::ReasonOf(refusal))});
  if (!field.empty()) table.AddRow({"字段 field", field});
  table.AddRow({"原因 message", std::string(refusal.message())});
  std::string out;
  table.Render("", &out);
  return out;
}

}  // namespace medsettle::calc
