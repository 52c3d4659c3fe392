#include "tools/cli/format.h"

#include <cstdint>
#include <utility>
#include <vector>

#include "engine/money.h"
#include "engine/text.h"
#include "google/protobuf/util/json_util.h"
#include "tools/calc/explain.h"
#include "tools/cli/transport.h"

namespace medsettle::cli {
namespace {

using engine::Cat;
using engine::FormatYuan;
using Table = calc::TextTable;
using Align = calc::TextTable::Align;

std::string_view YesNo(bool value) { return value ? "yes" : "no"; }

// "CATEGORY_ADULT" → "ADULT".
std::string WithoutPrefix(const std::string& name, std::string_view prefix) {
  return name.rfind(prefix, 0) == 0 ? name.substr(prefix.size()) : name;
}

void Section(std::string_view title, std::string* out) {
  out->append("\n");
  out->append(title);
  out->append("\n");
}

// Appends `text` as the body of a JSON string (quotes not included).
void AppendJsonEscaped(std::string_view text, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default:
        if (u < 0x20) {
          out->append("\\u00");
          out->push_back(kHex[u >> 4]);
          out->push_back(kHex[u & 0xF]);
        } else {
          out->push_back(c);  // UTF-8 passes through
        }
    }
  }
}

void AppendJsonMember(std::string_view name, std::string_view value, std::string* out) {
  out->push_back('"');
  out->append(name);
  out->append("\":\"");
  AppendJsonEscaped(value, out);
  out->push_back('"');
}

std::string_view StatusName(v1::SettlementStatus status) {
  switch (status) {
    case v1::SETTLEMENT_STATUS_TRIAL: return "TRIAL 预结算 (nothing recorded)";
    case v1::SETTLEMENT_STATUS_SETTLED: return "SETTLED 已结算";
    case v1::SETTLEMENT_STATUS_REVERSED: return "REVERSED 已冲正";
    default: return "UNSPECIFIED";
  }
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

std::string_view FundName(v1::Fund fund) {
  switch (fund) {
    case v1::FUND_BASE: return "统筹基金 base fund";
    case v1::FUND_CRITICAL_ILLNESS: return "大病保险 critical illness";
    case v1::FUND_SUPPLEMENTARY: return "惠民保 supplementary";
    default: return "? unspecified";
  }
}

// The split of a bill, one payer or share per row (the order of a 结算单).
void AppendAmounts(std::string_view title, const v1::Amounts& a, std::string* out) {
  Section(title, out);
  Table table({{""}, {""}, {"", Align::kRight}});
  const std::pair<std::string_view, std::pair<std::string_view, int64_t>> rows[] = {
      {"总额", {"bill total", a.total_cents()}},
      {"自费", {"out of scope", a.out_of_scope_cents()}},
      {"超限价", {"over limit", a.over_limit_cents()}},
      {"先行自付", {"pre-self-pay", a.pre_self_pay_cents()}},
      {"政策范围内", {"in scope", a.in_scope_cents()}},
      {"起付线", {"deductible", a.deductible_cents()}},
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

void AppendFunds(const v1::SettleResponse& r, std::string* out) {
  if (r.fund_details_size() == 0) return;
  Section("基金 Fund details (yuan)", out);
  Table table({{"fund"},
               {"scheme"},
               {"eligible", Align::kRight},
               {"paid", Align::kRight},
               {"cap left", Align::kRight}});
  for (const v1::FundDetail& d : r.fund_details()) {
    table.AddRow({std::string(FundName(d.fund())), d.scheme(), FormatYuan(d.eligible_cents()),
                  FormatYuan(d.paid_cents()),
                  d.uncapped() ? "no cap" : FormatYuan(d.cap_remaining_cents())});
  }
  table.Render("  ", out);
}

void AppendClaimLater(const v1::SettleResponse& r, std::string* out) {
  if (r.claim_later_size() == 0) return;
  Section("事后理赔 To claim later with the insurer (yuan)", out);
  Table table({{"product"},
               {"responsibility", Align::kRight},
               {"name"},
               {"base", Align::kRight},
               {"estimate", Align::kRight},
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

void AppendTrace(const v1::SettleResponse& r, std::string* out) {
  Section("计算过程 Trace", out);
  if (r.trace_size() == 0) {
    out->append("  (the response holds no trace)\n");
    return;
  }
  Table table({{"#", Align::kRight}, {"rule"}, {"amount", Align::kRight}, {"note / source"}});
  int n = 0;
  for (const v1::TraceStep& step : r.trace()) {
    table.AddRow({std::to_string(++n), step.rule(), FormatYuan(step.amount_cents()), step.note()});
    if (!step.source().empty()) table.AddRow({"", "", "", "↳ " + step.source()});
  }
  table.Render("  ", out);
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

std::string_view StatusCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: break;
  }
  return "UNKNOWN";
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
                           : std::string(VisitName(r.visit_type()))},
             {"person", r.person_key()},
             {"settled at", r.settled_at()},
             {"presented by", r.presenter_key()}});
  if (!details.empty()) out += details + "\n";
  if (r.filing_to_follow()) {
    out += "备案 filing: out-of-area emergency, a filing (异地就医备案) must follow\n";
  }
  AppendAmounts("金额 Amounts (yuan)", r.amounts(), &out);
  out += Cat("  base fund ratio on the first paid piece: ",
             engine::FormatPercent(r.base_fund_ratio_bp()), "\n");
  AppendFunds(r, &out);
  AppendClaimLater(r, &out);
  if (trace) AppendTrace(r, &out);
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
    Section("剩余额度 Remaining this year (yuan)", &out);
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
  AppendAmounts("退回 Given back (yuan): each fund gets back what it paid", r.amounts(), &out);
  return out;
}

std::string FormatReconcile(const v1::ReconcileResponse& r) {
  std::string out = Cat("对账 reconcile ", r.date(), "  ",
                        Pairs({{"institution", r.institution_id()}}), "\n");
  Section("合计 Totals (yuan)", &out);
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
    Section("明细 Detail (yuan)", &out);
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
