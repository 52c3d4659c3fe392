#include "tools/cli/format.h"

#include <cstdint>
#include <utility>
#include <vector>

#include "engine/money.h"
#include "engine/text.h"
#include "google/protobuf/util/json_util.h"
#include "absl/status/status.h"
#include "tools/calc/calc_runner.h"
#include "tools/calc/explain.h"
#include "tools/cli/transport.h"

namespace medsettle::cli {
namespace {

using calc::AppendJsonMember;
using calc::AppendSectionTitle;
using calc::WithoutPrefix;
using engine::Cat;
using engine::FormatYuan;
using Table = calc::TextTable;
using Align = calc::TextTable::Align;

// The cli's names of the 总额 and 起付线 rows (medsettle-calc says 总费用, 起付标准).
constexpr calc::AmountsWording kWording{"总额", "bill total", "起付线"};
// The cli puts the unit in the titles of the fund and claim-later sections.
constexpr std::string_view kYuan = " (yuan)";

std::string_view YesNo(bool value) { return value ? "yes" : "no"; }

std::string_view StatusName(v1::SettlementStatus status) {
  switch (status) {
    case v1::SETTLEMENT_STATUS_TRIAL: return "TRIAL 预结算 (nothing recorded)";
    case v1::SETTLEMENT_STATUS_SETTLED: return "SETTLED 已结算";
    case v1::SETTLEMENT_STATUS_REVERSED: return "REVERSED 已冲正";
    default: return "UNSPECIFIED";
  }
}

// "name value" pairs joined by two spaces, skipping empty values.
std::string Pairs(std::initializer_list<std::pair<std::string_view, std::string>> pairs) {
  std::string line;
  for (const auto& [name, value] : pairs) {
    if (value.empty()) continue;
    if (!line.empty()) line += "  ";
    line += Cat(name, ": ", value);
  }
  return line;
}

std::string EnrollmentText(const v1::Enrollment& e) {
  std::string text =
      Cat(e.person_key(), ", ", e.year(), " ",
          WithoutPrefix(v1::Category_Name(e.category()), "CATEGORY_"), ", tier ", e.tier(),
          ", assistance ", WithoutPrefix(v1::Assistance_Name(e.assistance()), "ASSISTANCE_"),
          ", region ", e.region_code(), ", ",
          WithoutPrefix(v1::EnrollmentStatus_Name(e.status()), "ENROLLMENT_STATUS_"));
  auto join = [](const auto& list) {
    std::string joined;
    for (const std::string& item : list) joined += joined.empty() ? item : "," + item;
    return joined;
  };
  if (e.chronic_conditions_size() > 0) {
    text += ", 慢性病 chronic " + join(e.chronic_conditions());
  }
  if (e.special_diseases_size() > 0) {
    text += ", 特殊病种 special " + join(e.special_diseases());
  }
  if (!e.supplementary().product().empty()) text += ", 惠民保 " + e.supplementary().product();
  return text;
}

}  // namespace

RpcError RpcErrorFrom(const grpc::Status& status, const grpc::ClientContext& context) {
  RpcError error;
  error.code = status.error_code();
  error.message = status.error_message();
  // Only trailing metadata: asking a failed call for its initial metadata
  // aborts when the server never sent any (e.g. UNAVAILABLE).
  for (const auto& [key, value] : context.GetServerTrailingMetadata()) {
    const std::string_view name(key.data(), key.size());
    if (name == kReasonTrailer) error.reason.assign(value.data(), value.size());
    if (name == kFieldTrailer) error.field.assign(value.data(), value.size());
  }
  return error;
}

std::string StatusCodeName(grpc::StatusCode code) {
  // gRPC and Abseil status codes share their numbers.
  return calc::StatusCodeName(static_cast<absl::StatusCode>(code));
}

std::string FormatRpcError(const RpcError& error) {
  std::string text = Cat("error: ", StatusCodeName(error.code));
  if (!error.reason.empty()) text += Cat(" ", error.reason);
  text += Cat(": ", error.message, "\n");
  if (!error.field.empty()) text += Cat("field: ", error.field, "\n");
  return text;
}

std::string RpcErrorJson(const RpcError& error) {
  std::string json = "{\"error\":{";
  AppendJsonMember("code", StatusCodeName(error.code), &json);
  if (!error.reason.empty()) {
    json.push_back(',');
    AppendJsonMember("reason", error.reason, &json);
  }
  if (!error.field.empty()) {
    json.push_back(',');
    AppendJsonMember("field", error.field, &json);
  }
  json.push_back(',');
  AppendJsonMember("message", error.message, &json);
  json.append("}}");
  return json;
}

std::string MessageJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = false;
  options.always_print_primitive_fields = true;
  std::string json;
  // Printing a well-formed generated message cannot fail.
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  return json;
}

std::string FormatSettlement(const v1::SettleResponse& r, bool trace) {
  std::string out;
  const std::string id =
      r.settlement_id().empty() ? std::string("(none: trial)") : r.settlement_id();
  out += Cat("结算 settlement ", id, "  ", StatusName(r.status()), "  ",
             Pairs({{"replayed", std::string(YesNo(r.replayed()))},
                    {"policy", r.policy_id()},
                    {"settlement date", r.settlement_date()},
                    {"institution", r.institution_id()}}),
             "\n");
  const std::string details =
      Pairs({{"request", r.request_id()},
             {"visit", r.visit_type() == v1::VISIT_TYPE_UNSPECIFIED
                           ? std::string()
                           : std::string(calc::VisitName(r.visit_type()))},
             {"person", r.person_key()},
             {"settled at", r.settled_at()},
             {"presented by", r.presenter_key()}});
  if (!details.empty()) out += details + "\n";
  if (r.filing_to_follow()) {
    out += "备案 filing: out-of-area emergency, a filing (异地就医备案) must follow\n";
  }
  calc::AppendSettlementAmounts(r, kWording, &out);
  calc::AppendFundsSection(r, kYuan, &out);
  calc::AppendClaimLaterSection(r, kYuan, &out);
  if (trace) calc::AppendTraceSection(r, "(the response holds no trace)", &out);
  return out;
}

std::string FormatCoverage(const v1::CheckCoverageResponse& r) {
  std::string out;
  Table header({{""}, {""}});
  header.AddRow({"参保有效 covered", std::string(YesNo(r.covered()))});
  if (!r.reason().empty()) header.AddRow({"原因 reason", r.reason()});
  if (!r.message().empty()) header.AddRow({"说明 message", r.message()});
  if (!r.policy_id().empty()) header.AddRow({"政策 policy", r.policy_id()});
  if (!r.covered_from().empty() || !r.covered_to().empty()) {
    header.AddRow({"待遇期 window", Cat(r.covered_from(), " .. ", r.covered_to())});
  }
  if (r.has_enrollment()) header.AddRow({"参保人 insured", EnrollmentText(r.enrollment())});
  header.Render("", &out);
  if (r.remaining_size() > 0) {
    AppendSectionTitle("剩余额度 Remaining this year (yuan)", &out);
    Table table({{"cap or ceiling"},
                 {"limit", Align::kRight},
                 {"used", Align::kRight},
                 {"remaining", Align::kRight}});
    for (const v1::Remaining& left : r.remaining()) {
      table.AddRow({left.name(), FormatYuan(left.limit_cents()), FormatYuan(left.used_cents()),
                    FormatYuan(left.remaining_cents())});
    }
    table.Render("  ", &out);
  }
  return out;
}

std::string FormatReversal(const v1::ReverseResponse& r) {
  std::string out = Cat("冲正 reversal ", r.reversal_id(), "  ", StatusName(r.status()), "  ",
                        Pairs({{"replayed", std::string(YesNo(r.replayed()))},
                               {"settlement", r.settlement_id()},
                               {"reversed at", r.reversed_at()}}),
                        "\n");
  calc::AppendAmountsSection("退回 Given back (yuan): each fund gets back what it paid",
                             r.amounts(), kWording, &out);
  return out;
}

std::string FormatReconcile(const v1::ReconcileResponse& r) {
  std::string out = Cat("对账 reconcile ", r.date(), "  ",
                        Pairs({{"institution", r.institution_id()}}), "\n");
  AppendSectionTitle("合计 Totals (yuan)", &out);
  Table totals({{""},
                {"count", Align::kRight},
                {"总额 total", Align::kRight},
                {"统筹基金 base fund", Align::kRight},
                {"大病保险 critical illness", Align::kRight},
                {"惠民保 supplementary", Align::kRight},
                {"个人负担 patient", Align::kRight}});
  const std::pair<std::string_view, const v1::ReconcileTotals*> rows[] = {
      {"结算 settled", &r.settled()},
      {"冲正 reversed", &r.reversed()},
      {"净额 net", &r.net()},
  };
  for (const auto& [name, t] : rows) {
    const v1::Amounts& a = t->amounts();
    totals.AddRow({std::string(name), std::to_string(t->count()), FormatYuan(a.total_cents()),
                   FormatYuan(a.base_fund_cents()), FormatYuan(a.critical_illness_cents()),
                   FormatYuan(a.supplementary_cents()), FormatYuan(a.patient_cents())});
  }
  totals.Render("  ", &out);
  if (r.detail_size() > 0) {
    AppendSectionTitle("明细 Detail (yuan)", &out);
    Table detail({{"settlement"},
                  {"request"},
                  {"status"},
                  {"visit"},
                  {"total", Align::kRight},
                  {"base fund", Align::kRight},
                  {"critical illness", Align::kRight},
                  {"supplementary", Align::kRight},
                  {"patient", Align::kRight},
                  {"settled at"},
                  {"reversed at"}});
    for (const v1::ReconcileEntry& e : r.detail()) {
      const v1::Amounts& a = e.amounts();
      detail.AddRow({e.settlement_id(), e.request_id(),
                     WithoutPrefix(v1::SettlementStatus_Name(e.status()), "SETTLEMENT_STATUS_"),
                     WithoutPrefix(v1::VisitType_Name(e.visit_type()), "VISIT_TYPE_"),
                     FormatYuan(a.total_cents()), FormatYuan(a.base_fund_cents()),
                     FormatYuan(a.critical_illness_cents()), FormatYuan(a.supplementary_cents()),
                     FormatYuan(a.patient_cents()), e.settled_at(), e.reversed_at()});
    }
    detail.Render("  ", &out);
  }
  if (!r.next_page_token().empty()) {
    out += Cat("\nmore detail: --page-token ", r.next_page_token(), " (or --all-pages)\n");
  }
  return out;
}

}  // namespace medsettle::cli
