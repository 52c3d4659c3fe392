#include "tools/cli/requests.h"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <optional>
#include <sstream>
#include <utility>

#include "engine/date.h"
#include "engine/money.h"
#include "engine/text.h"
#include "google/protobuf/util/json_util.h"

namespace medsettle::cli {
namespace {

using engine::Cat;

absl::Status Usage(std::string_view message) {
  return absl::InvalidArgumentError(absl::string_view(message.data(), message.size()));
}

constexpr uint32_t Bit(Command c) { return 1u << static_cast<unsigned>(c); }
constexpr uint32_t kAny = ~0u;
constexpr uint32_t kSettleLike = Bit(Command::kPreSettle) | Bit(Command::kSettle);
constexpr uint32_t kWithRequestFile = kAny & ~Bit(Command::kHealth);
constexpr uint32_t kWithCredential = kSettleLike | Bit(Command::kCoverage);

struct FlagSpec {
  std::string_view name;
  bool takes_value;
  bool repeatable;
  uint32_t commands;  // Bit(command) of every command that takes it
};

// clang-format off
constexpr FlagSpec kFlags[] = {
    // Connection and output, for every command.
    {"target",         true,  false, kAny},
    {"ca",             true,  false, kAny},
    {"cert",           true,  false, kAny},
    {"key",            true,  false, kAny},
    {"tls-server-name", true, false, kAny},
    {"insecure-dev",   false, false, kAny},
    {"institution",    true,  false, kAny},
    {"timeout-ms",     true,  false, kAny},
    {"json",           false, false, kAny},
    // The request.
    {"request",        true,  false, kWithRequestFile},
    {"id-card",        true,  false, kWithCredential},
    {"insurance-card", true,  false, kWithCredential},
    {"ec-token",       true,  false, kWithCredential},
    {"date",           true,  false, kWithCredential | Bit(Command::kReconcile)},
    {"visit-type",     true,  false, kWithCredential},
    {"request-id",     true,  false, kSettleLike | Bit(Command::kReverse)},
    {"admission",      true,  false, kSettleLike},
    {"discharge",      true,  false, kSettleLike},
    {"condition",      true,  false, kSettleLike},
    {"emergency",      false, false, kSettleLike},
    {"specialty",      true,  false, kSettleLike},
    {"item",           true,  true,  kSettleLike},
    {"trace",          false, false, kSettleLike | Bit(Command::kGet)},
    {"settlement-id",  true,  false, Bit(Command::kReverse) | Bit(Command::kGet)},
    {"reason",         true,  false, Bit(Command::kReverse)},
    {"detail",         false, false, Bit(Command::kReconcile)},
    {"page-size",      true,  false, Bit(Command::kReconcile)},
    {"page-token",     true,  false, Bit(Command::kReconcile)},
    {"all-pages",      false, false, Bit(Command::kReconcile)},
    {"service",        true,  false, Bit(Command::kHealth)},
};
// clang-format on

constexpr std::pair<std::string_view, Command> kCommands[] = {
    {"coverage", Command::kCoverage}, {"presettle", Command::kPreSettle},
    {"settle", Command::kSettle},     {"reverse", Command::kReverse},
    {"get", Command::kGet},           {"reconcile", Command::kReconcile},
    {"health", Command::kHealth},
};

const FlagSpec* FindFlag(std::string_view name) {
  for (const FlagSpec& spec : kFlags) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

std::optional<int64_t> ParsePositive(std::string_view text, int64_t max) {
  int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value <= 0 || value > max) {
    return std::nullopt;
  }
  return value;
}

std::string Upper(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](char c) {
    return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
  });
  return out;
}

// `text` as one of `short_names`, else as the enum's full name in any case
// ("VISIT_TYPE_INPATIENT", "visit_type_inpatient") through the generated
// `parse`; nullopt when unknown and for the UNSPECIFIED (0) value.
template <typename Enum, size_t N, typename Parse>
std::optional<Enum> EnumByName(std::string_view text,
                               const std::pair<std::string_view, Enum> (&short_names)[N],
                               Parse parse) {
  for (const auto& [name, value] : short_names) {
    if (text == name) return value;
  }
  Enum value{};
  if (parse(Upper(text), &value) && value != Enum{}) return value;
  return std::nullopt;
}

// Sets *out from --<flag> when given, after checking it is a date.
absl::Status DateFlag(const Args& args, std::string_view flag, std::string* out) {
  const std::string* value = args.Value(flag);
  if (value == nullptr) return absl::OkStatus();
  if (absl::Status s = CheckDate(Cat("--", flag), *value); !s.ok()) return s;
  *out = *value;
  return absl::OkStatus();
}

// Applies --id-card / --insurance-card / --ec-token (at most one) to
// `credential`. *given is whether one was.
constexpr std::string_view kCredentialRequired =
    "one of --id-card, --insurance-card, --ec-token is required (or --request FILE)";

absl::Status CredentialFlags(const Args& args, v1::Credential* credential, bool* given) {
  const std::string* id_card = args.Value("id-card");
  const std::string* insurance_card = args.Value("insurance-card");
  const std::string* ec_token = args.Value("ec-token");
  const int count = (id_card != nullptr) + (insurance_card != nullptr) + (ec_token != nullptr);
  if (count > 1) return Usage("give one of --id-card, --insurance-card, --ec-token");
  *given = count == 1;
  if (id_card != nullptr) credential->set_id_card_no(*id_card);
  if (insurance_card != nullptr) credential->set_insurance_card_no(*insurance_card);
  if (ec_token != nullptr) credential->set_ec_token(*ec_token);
  return absl::OkStatus();
}

}  // namespace

std::string_view CommandName(Command command) {
  for (const auto& [name, value] : kCommands) {
    if (value == command) return name;
  }
  return "";
}

const std::string* Args::Value(std::string_view name) const {
  auto it = values.find(name);
  return it == values.end() || it->second.empty() ? nullptr : &it->second.back();
}

const std::vector<std::string>& Args::Values(std::string_view name) const {
  static const std::vector<std::string> kNone;
  auto it = values.find(name);
  return it == values.end() ? kNone : it->second;
}

absl::StatusOr<Args> ParseArgs(const std::vector<std::string>& argv) {
  Args args;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      args.help = true;
      continue;
    }
    if (arg.size() > 2 && arg.substr(0, 2) == "--") {
      const std::string_view body = arg.substr(2);
      const size_t eq = body.find('=');
      const std::string_view name = body.substr(0, eq);
      const FlagSpec* spec = FindFlag(name);
      if (spec == nullptr) return Usage(Cat("unknown flag --", name));
      if (!spec->takes_value) {
        if (eq != std::string_view::npos) return Usage(Cat("--", name, " takes no value"));
        args.switches.emplace(name);
        continue;
      }
      std::string value;
      if (eq != std::string_view::npos) {
        value = std::string(body.substr(eq + 1));
      } else if (i + 1 < argv.size()) {
        value = argv[++i];
      } else {
        return Usage(Cat("--", name, " needs a value"));
      }
      if (value.empty()) return Usage(Cat("--", name, " needs a non-empty value"));
      std::vector<std::string>& slot = args.values[std::string(name)];
      if (!spec->repeatable && !slot.empty()) return Usage(Cat("--", name, " given twice"));
      slot.push_back(std::move(value));
      continue;
    }
    if (arg.size() > 1 && arg[0] == '-') return Usage(Cat("unknown flag ", arg));
    if (args.command != Command::kNone) return Usage(Cat("unexpected argument ", arg));
    if (arg == "help") {
      args.help = true;
      continue;
    }
    for (const auto& [name, command] : kCommands) {
      if (arg == name) args.command = command;
    }
    if (args.command == Command::kNone) return Usage(Cat("unknown command ", arg));
  }
  if (args.help) return args;
  if (args.command == Command::kNone) {
    return Usage("no command given (coverage, presettle, settle, reverse, get, reconcile, health)");
  }
  const uint32_t bit = Bit(args.command);
  auto check = [&](std::string_view name) -> absl::Status {
    if ((FindFlag(name)->commands & bit) == 0) {
      return Usage(Cat("--", name, " does not apply to ", CommandName(args.command)));
    }
    return absl::OkStatus();
  };
  for (const auto& [name, unused] : args.values) {
    if (absl::Status s = check(name); !s.ok()) return s;
  }
  for (const std::string& name : args.switches) {
    if (absl::Status s = check(name); !s.ok()) return s;
  }
  return args;
}

absl::StatusOr<v1::VisitType> ParseVisitType(std::string_view text) {
  constexpr std::pair<std::string_view, v1::VisitType> kShort[] = {
      {"inpatient", v1::VISIT_TYPE_INPATIENT},
      {"general", v1::VISIT_TYPE_GENERAL_OUTPATIENT},
      {"chronic", v1::VISIT_TYPE_CHRONIC_OUTPATIENT},
      {"special", v1::VISIT_TYPE_SPECIAL_OUTPATIENT},
      {"prenatal", v1::VISIT_TYPE_PRENATAL_CHECK},
      {"natural", v1::VISIT_TYPE_DELIVERY_NATURAL},
      {"caesarean", v1::VISIT_TYPE_DELIVERY_CAESAREAN},
  };
  if (std::optional<v1::VisitType> value = EnumByName(text, kShort, &v1::VisitType_Parse)) {
    return *value;
  }
  return Usage(Cat("--visit-type ", text,
                   ": expected inpatient, general, chronic, special, prenatal, natural or "
                   "caesarean"));
}

absl::StatusOr<v1::Specialty> ParseSpecialty(std::string_view text) {
  constexpr std::pair<std::string_view, v1::Specialty> kShort[] = {
      {"psychiatry", v1::SPECIALTY_PSYCHIATRY},
      {"pediatrics", v1::SPECIALTY_PEDIATRICS},
      {"tcm", v1::SPECIALTY_TCM},
  };
  if (std::optional<v1::Specialty> value = EnumByName(text, kShort, &v1::Specialty_Parse)) {
    return *value;
  }
  return Usage(Cat("--specialty ", text, ": expected psychiatry, pediatrics or tcm"));
}

absl::StatusOr<int64_t> ParsePositiveFlag(std::string_view flag, std::string_view text,
                                          int64_t max) {
  if (std::optional<int64_t> value = ParsePositive(text, max)) return *value;
  return Usage(Cat(flag, " ", text, ": expected a whole number from 1 to ", max));
}

absl::Status CheckDate(std::string_view flag, std::string_view text) {
  if (engine::Date::Parse(text).has_value()) return absl::OkStatus();
  return Usage(Cat(flag, " ", text, ": expected a date YYYY-MM-DD"));
}

absl::StatusOr<v1::BillItem> ParseItem(std::string_view spec, int32_t line_no) {
  const auto bad = [&](std::string_view why) {
    return Usage(Cat("--item ", spec, ": ", why,
                     " (expected CODE:QUANTITY:UNIT_PRICE_YUAN[:NAME], e.g. XA0001:2:23.50)"));
  };
  const size_t first = spec.find(':');
  const size_t second = first == std::string_view::npos ? first : spec.find(':', first + 1);
  if (second == std::string_view::npos) return bad("too few parts");
  const size_t third = spec.find(':', second + 1);
  const std::string_view parts[3] = {
      spec.substr(0, first), spec.substr(first + 1, second - first - 1),
      third == std::string_view::npos ? spec.substr(second + 1)
                                      : spec.substr(second + 1, third - second - 1)};
  // The name is the rest after the third colon: it may hold colons itself.
  const std::string_view name =
      third == std::string_view::npos ? std::string_view() : spec.substr(third + 1);
  if (parts[0].empty()) return bad("empty code");
  const std::optional<engine::Quantity> quantity = engine::ParseQuantity(parts[1]);
  if (!quantity) return bad("quantity must be an exact decimal with at most 4 places");
  const std::optional<engine::Cents> unit_price_cents = engine::ParseYuan(parts[2]);
  if (!unit_price_cents) return bad("unit price must be yuan with at most 2 decimals");
  const std::optional<engine::Cents> amount_cents =
      engine::MultiplyQuantity(*quantity, *unit_price_cents);
  if (!amount_cents) return bad("amount too large");
  v1::BillItem item;
  item.set_line_no(line_no);
  item.set_code(std::string(parts[0]));
  item.set_name(std::string(name));
  item.set_quantity(std::string(parts[1]));
  item.set_unit_price_cents(*unit_price_cents);
  item.set_amount_cents(*amount_cents);
  return item;
}

absl::Status ReadJsonFile(const std::string& path, google::protobuf::Message* message) {
  message->Clear();
  std::ifstream file(path, std::ios::binary);
  if (!file) return Usage(Cat("--request ", path, ": cannot open"));
  std::ostringstream text;
  text << file.rdbuf();
  if (file.bad()) return Usage(Cat("--request ", path, ": cannot read"));
  const std::string json = std::move(text).str();
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto parsed = google::protobuf::util::JsonStringToMessage(json, message, options);
  if (parsed.ok()) return absl::OkStatus();
  // The parser appends an excerpt of the input after a newline: keep the first line.
  std::string why = parsed.message().ToString();
  why.erase(std::min(why.find('\n'), why.size()));
  return Usage(Cat("--request ", path, ": not a ", message->GetDescriptor()->full_name(), ": ",
                   why));
}

absl::Status BuildSettleRequest(const Args& args, v1::SettleRequest* request) {
  request->Clear();
  const std::string* file = args.Value("request");
  if (file != nullptr) {
    if (absl::Status s = ReadJsonFile(*file, request); !s.ok()) return s;
    if (!args.Values("item").empty()) {
      return Usage("--item cannot be combined with --request (the file holds the bill)");
    }
  }
  if (const std::string* id = args.Value("request-id")) request->set_request_id(*id);
  bool credential_given = false;
  if (absl::Status s = CredentialFlags(args, request->mutable_credential(), &credential_given);
      !s.ok()) {
    return s;
  }
  v1::Visit* visit = request->mutable_visit();
  const std::string* visit_type = args.Value("visit-type");
  if (visit_type != nullptr) {
    absl::StatusOr<v1::VisitType> type = ParseVisitType(*visit_type);
    if (!type.ok()) return type.status();
    visit->set_type(*type);
  }
  if (absl::Status s = DateFlag(args, "date", visit->mutable_service_date()); !s.ok()) return s;
  if (absl::Status s = DateFlag(args, "admission", visit->mutable_admission_date()); !s.ok()) {
    return s;
  }
  if (absl::Status s = DateFlag(args, "discharge", visit->mutable_discharge_date()); !s.ok()) {
    return s;
  }
  if (const std::string* condition = args.Value("condition")) visit->set_condition(*condition);
  if (args.Switch("emergency")) visit->set_emergency(true);
  if (const std::string* specialty = args.Value("specialty")) {
    absl::StatusOr<v1::Specialty> parsed = ParseSpecialty(*specialty);
    if (!parsed.ok()) return parsed.status();
    visit->set_specialty(*parsed);
  }
  const std::vector<std::string>& items = args.Values("item");
  for (size_t i = 0; i < items.size(); ++i) {
    absl::StatusOr<v1::BillItem> item = ParseItem(items[i], static_cast<int32_t>(i + 1));
    if (!item.ok()) return item.status();
    *request->add_items() = *std::move(item);
  }
  if (file == nullptr) {
    if (visit_type == nullptr) return Usage("--visit-type is required (or --request FILE)");
    if (!credential_given) {
      return Usage(kCredentialRequired);
    }
    if (items.empty()) return Usage("at least one --item is required (or --request FILE)");
  }
  return absl::OkStatus();
}

absl::Status BuildCoverageRequest(const Args& args, std::string_view today,
                                  v1::CheckCoverageRequest* request) {
  request->Clear();
  if (const std::string* file = args.Value("request")) {
    if (absl::Status s = ReadJsonFile(*file, request); !s.ok()) return s;
  }
  bool credential_given = false;
  if (absl::Status s = CredentialFlags(args, request->mutable_credential(), &credential_given);
      !s.ok()) {
    return s;
  }
  if (request->credential().kind_case() == v1::Credential::KIND_NOT_SET) {
    return Usage(kCredentialRequired);
  }
  if (absl::Status s = DateFlag(args, "date", request->mutable_service_date()); !s.ok()) return s;
  if (request->service_date().empty()) request->set_service_date(std::string(today));
  if (const std::string* visit_type = args.Value("visit-type")) {
    absl::StatusOr<v1::VisitType> type = ParseVisitType(*visit_type);
    if (!type.ok()) return type.status();
    request->set_visit_type(*type);
  }
  return absl::OkStatus();
}

absl::Status BuildReverseRequest(const Args& args, v1::ReverseRequest* request) {
  request->Clear();
  if (const std::string* file = args.Value("request")) {
    if (absl::Status s = ReadJsonFile(*file, request); !s.ok()) return s;
  }
  if (const std::string* id = args.Value("settlement-id")) request->set_settlement_id(*id);
  if (const std::string* id = args.Value("request-id")) request->set_request_id(*id);
  if (const std::string* reason = args.Value("reason")) request->set_reason(*reason);
  if (request->settlement_id().empty()) return Usage("--settlement-id is required");
  return absl::OkStatus();
}

absl::Status BuildGetRequest(const Args& args, v1::GetSettlementRequest* request) {
  request->Clear();
  if (const std::string* file = args.Value("request")) {
    if (absl::Status s = ReadJsonFile(*file, request); !s.ok()) return s;
  }
  if (const std::string* id = args.Value("settlement-id")) request->set_settlement_id(*id);
  if (request->settlement_id().empty()) return Usage("--settlement-id is required");
  return absl::OkStatus();
}

absl::Status BuildReconcileRequest(const Args& args, v1::ReconcileRequest* request) {
  request->Clear();
  if (const std::string* file = args.Value("request")) {
    if (absl::Status s = ReadJsonFile(*file, request); !s.ok()) return s;
  }
  if (absl::Status s = DateFlag(args, "date", request->mutable_date()); !s.ok()) return s;
  if (request->date().empty()) return Usage("--date is required");
  // Pages are pages of the detail: fetching them all implies it.
  if (args.Switch("detail") || args.Switch("all-pages")) request->set_include_detail(true);
  if (const std::string* size = args.Value("page-size")) {
    absl::StatusOr<int64_t> parsed = ParsePositiveFlag("--page-size", *size, INT32_MAX);
    if (!parsed.ok()) return parsed.status();
    request->set_page_size(static_cast<int32_t>(*parsed));
  }
  if (const std::string* token = args.Value("page-token")) request->set_page_token(*token);
  return absl::OkStatus();
}

}  // namespace medsettle::cli
