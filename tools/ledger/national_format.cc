#include "tools/ledger/national_format.h"

#include "engine/money.h"
#include "engine/text.h"
#include "proto/contract/ledger_record.h"

namespace medsettle::ledger_tool {
namespace {

using engine::Cat;

// The platform's fields, in its order, from our amounts.
struct Field {
  std::string_view name;
  int64_t (*value)(const engine::Amounts&);
};
constexpr Field kFields[] = {
    {"medfee_sumamt", [](const engine::Amounts& a) { return a.total_cents; }},
    {"fulamt_ownpay_amt", [](const engine::Amounts& a) { return a.out_of_scope_cents; }},
    {"overlmt_selfpay", [](const engine::Amounts& a) { return a.over_limit_cents; }},
    {"preselfpay_amt", [](const engine::Amounts& a) { return a.pre_self_pay_cents; }},
    {"inscp_scp_amt", [](const engine::Amounts& a) { return a.in_scope_cents; }},
    {"act_pay_dedc", [](const engine::Amounts& a) { return a.deductible_cents; }},
    {"hifp_pay", [](const engine::Amounts& a) { return a.base_fund_cents; }},
    {"hifmi_pay", [](const engine::Amounts& a) { return a.critical_illness_cents; }},
    {"oth_pay", [](const engine::Amounts& a) { return a.supplementary_cents; }},
    {"fund_pay_sumamt",
     [](const engine::Amounts& a) {
       return a.base_fund_cents + a.critical_illness_cents + a.supplementary_cents;
     }},
    {"acct_pay", [](const engine::Amounts&) { return int64_t{0}; }},
    {"psn_part_amt", [](const engine::Amounts& a) { return a.patient_cents; }},
    {"psn_cash_pay", [](const engine::Amounts& a) { return a.patient_cents; }},
};

constexpr std::string_view kInsutype = "390";  // 城乡居民基本医疗保险

engine::Amounts Negated(const engine::Amounts& a) {
  engine::Amounts n;
  n.total_cents = -a.total_cents;
  n.out_of_scope_cents = -a.out_of_scope_cents;
  n.over_limit_cents = -a.over_limit_cents;
  n.pre_self_pay_cents = -a.pre_self_pay_cents;
  n.in_scope_cents = -a.in_scope_cents;
  n.deductible_cents = -a.deductible_cents;
  n.base_fund_cents = -a.base_fund_cents;
  n.critical_illness_cents = -a.critical_illness_cents;
  n.supplementary_cents = -a.supplementary_cents;
  n.patient_cents = -a.patient_cents;
  return n;
}

void Add(const engine::Amounts& a, engine::Amounts* to) {
  to->total_cents += a.total_cents;
  to->out_of_scope_cents += a.out_of_scope_cents;
  to->over_limit_cents += a.over_limit_cents;
  to->pre_self_pay_cents += a.pre_self_pay_cents;
  to->in_scope_cents += a.in_scope_cents;
  to->deductible_cents += a.deductible_cents;
  to->base_fund_cents += a.base_fund_cents;
  to->critical_illness_cents += a.critical_illness_cents;
  to->supplementary_cents += a.supplementary_cents;
  to->patient_cents += a.patient_cents;
}

std::string Time(int64_t unix_ms) {
  return engine::FormatRfc3339(unix_ms / 1000, 480);  // the bureau's clock, UTC+08:00
}

// CSV needs no quoting here: ids, codes and dates hold no comma or quote
// (request ids are printable ASCII and may: quote every text cell).
std::string CsvText(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

std::string JsonText(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += Cat("\\u00", "0123456789abcdef"[(c >> 4) & 15], "0123456789abcdef"[c & 15]);
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

}  // namespace

std::string Yuan(int64_t cents) { return engine::FormatYuan(cents); }

std::string_view ClearingType(v1::VisitType visit, v1::InstitutionKind kind) {
  switch (visit) {
    case v1::VISIT_TYPE_INPATIENT:
    case v1::VISIT_TYPE_DELIVERY_NATURAL:
    case v1::VISIT_TYPE_DELIVERY_CAESAREAN:
      return "21";
    default:
      break;
  }
  return kind == v1::INSTITUTION_KIND_PHARMACY ? "41" : "11";
}

void AddSettlement(const v1::LedgerRecord& record, const v1::LedgerReversal* reversal,
                   DayStatement* statement) {
  if (statement->setl_optins.empty()) statement->setl_optins = record.institution().region_code();
  if (statement->institution_id.empty()) statement->institution_id = record.institution_id();
  if (statement->date.empty()) statement->date = record.settlement_date();
  const std::string clr(
      ClearingType(record.request().visit().type(), record.institution().kind()));
  engine::Amounts amounts;
  contract::AmountsFromProto(record.response().amounts(), &amounts);
  DetailLine line{.setl_id = record.settlement_id(),
                  .mdtrt_id = record.request_id(),
                  .psn_no = record.person_key(),
                  .clr_type = clr,
                  .setl_time_unix_ms = record.settled_at_unix_ms(),
                  .refund = false,
                  .amounts = amounts};
  statement->detail.push_back(line);
  TotalsRow* row = nullptr;
  for (TotalsRow& r : statement->totals) {
    if (r.clr_type == clr) row = &r;
  }
  if (row == nullptr) {
    statement->totals.push_back(TotalsRow{.clr_type = clr, .count = 0, .amounts = {}});
    row = &statement->totals.back();
  }
  ++row->count;
  Add(amounts, &row->amounts);
  if (reversal != nullptr) {
    line.refund = true;
    line.setl_time_unix_ms = reversal->reversed_at_unix_ms();
    line.amounts = Negated(amounts);
    statement->detail.push_back(line);
    ++row->count;
    Add(line.amounts, &row->amounts);
  }
}

std::string StatementCsv(const DayStatement& s) {
  std::string out = "# 3201\ninsutype,clr_type,setl_optins,stmt_begndate,stmt_enddate";
  for (const Field& f : kFields) out += Cat(",", f.name);
  out += ",fixmedins_setl_cnt,refd_setl_flag\n";
  for (const TotalsRow& r : s.totals) {
    out += Cat(kInsutype, ",", r.clr_type, ",", s.setl_optins, ",", s.date, ",", s.date);
    for (const Field& f : kFields) out += Cat(",", Yuan(f.value(r.amounts)));
    out += Cat(",", r.count, ",1\n");
  }
  out += "# 3202\nsetl_id,mdtrt_id,psn_no,clr_type,setl_time";
  for (const Field& f : kFields) out += Cat(",", f.name);
  out += ",refd_setl_flag\n";
  for (const DetailLine& d : s.detail) {
    out += Cat(CsvText(d.setl_id), ",", CsvText(d.mdtrt_id), ",", CsvText(d.psn_no), ",",
               d.clr_type, ",", Time(d.setl_time_unix_ms));
    for (const Field& f : kFields) out += Cat(",", Yuan(f.value(d.amounts)));
    out += Cat(",", d.refund ? "1" : "0", "\n");
  }
  return out;
}

std::string StatementJson(const DayStatement& s) {
  std::string out = Cat("{\"institution_id\":", JsonText(s.institution_id), ",\"3201\":[");
  for (size_t i = 0; i < s.totals.size(); ++i) {
    const TotalsRow& r = s.totals[i];
    out += Cat(i ? "," : "", "{\"insutype\":\"", kInsutype, "\",\"clr_type\":\"", r.clr_type,
               "\",\"setl_optins\":", JsonText(s.setl_optins), ",\"stmt_begndate\":\"", s.date,
               "\",\"stmt_enddate\":\"", s.date, "\"");
    for (const Field& f : kFields) out += Cat(",\"", f.name, "\":", Yuan(f.value(r.amounts)));
    out += Cat(",\"fixmedins_setl_cnt\":", r.count, ",\"refd_setl_flag\":\"1\"}");
  }
  out += "],\"3202\":[";
  for (size_t i = 0; i < s.detail.size(); ++i) {
    const DetailLine& d = s.detail[i];
    out += Cat(i ? "," : "", "{\"setl_id\":", JsonText(d.setl_id), ",\"mdtrt_id\":",
               JsonText(d.mdtrt_id), ",\"psn_no\":", JsonText(d.psn_no), ",\"clr_type\":\"",
               d.clr_type, "\",\"setl_time\":\"", Time(d.setl_time_unix_ms), "\"");
    for (const Field& f : kFields) out += Cat(",\"", f.name, "\":", Yuan(f.value(d.amounts)));
    out += Cat(",\"refd_setl_flag\":\"", d.refund ? "1" : "0", "\"}");
  }
  out += "]}\n";
  return out;
}

}  // namespace medsettle::ledger_tool
