#include "tools/cli/cli.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <ostream>
#include <random>
#include <set>

#include "engine/text.h"
#include "medsettle/v1/service.grpc.pb.h"
#include "tools/cli/format.h"
#include "tools/cli/health.h"
#include "tools/cli/requests.h"
#include "tools/cli/transport.h"

namespace medsettle::cli {
namespace {

using engine::Cat;
using Stub = v1::SettlementService::Stub;

// clang-format off
constexpr std::string_view kUsage =
    "usage: medsettle-cli [GLOBAL FLAGS] COMMAND [FLAGS]\n"
    "\n"
    "commands:\n"
    "  coverage   (--id-card NO | --insurance-card NO | --ec-token T)\n"
    "             [--date YYYY-MM-DD] [--visit-type TYPE]   CheckCoverage (--date: today)\n"
    "  presettle  BILL              PreSettle: the split, nothing recorded\n"
    "  settle     BILL              Settle: recorded once, idempotent on the request id\n"
    "  reverse    --settlement-id ID [--request-id RID] [--reason TEXT]\n"
    "  get        --settlement-id ID [--trace]\n"
    "  reconcile  --date YYYY-MM-DD [--detail] [--page-size N] [--page-token T]\n"
    "             [--all-pages]\n"
    "  health     [--service NAME]  grpc.health.v1 Check\n"
    "Every command but health also takes --request FILE.json, the call's request\n"
    "as protobuf JSON (proto or JSON field names); flags given override its fields.\n"
    "\n"
    "BILL (presettle, settle): --request FILE.json (a SettleRequest), or\n"
    "  --visit-type TYPE            inpatient|general|chronic|special|prenatal|natural|caesarean\n"
    "  --id-card NO | --insurance-card NO | --ec-token T\n"
    "  --item CODE:QUANTITY:UNIT_PRICE_YUAN[:NAME]   one per bill line, repeatable;\n"
    "                               amount = quantity x unit price in fen, rounded half up\n"
    "  --date YYYY-MM-DD            service date (outpatient visits, purchases)\n"
    "  --admission YYYY-MM-DD --discharge YYYY-MM-DD   stays and deliveries\n"
    "  --condition CODE  --specialty psychiatry|pediatrics|tcm  --emergency\n"
    "  --request-id RID             1-64 printable ASCII; generated (and printed) when absent\n"
    "  --trace                      also print the computation's trace steps\n"
    "\n"
    "global flags:\n"
    "  --target HOST:PORT           the gateway (env MEDSETTLE_TARGET; default 127.0.0.1:50051)\n"
    "  mutual TLS (the gateway's normal mode; the certificate names the institution):\n"
    "  --ca FILE                    CA of the gateway's certificate, PEM (env MEDSETTLE_CA)\n"
    "  --cert FILE                  the institution's certificate, PEM (env MEDSETTLE_CERT)\n"
    "  --key FILE                   its private key, PEM (env MEDSETTLE_KEY)\n"
    "  --tls-server-name NAME       name to check the gateway's certificate against\n"
    "                               (default: the target's host)\n"
    "  or a development gateway (medsettle-gateway --insecure-dev, loopback only):\n"
    "  --insecure-dev               plaintext; the institution travels in a header\n"
    "  --institution ID             calling institution, sent as header x-medsettle-institution\n"
    "                               (env MEDSETTLE_INSTITUTION; --insecure-dev only)\n"
    "  --timeout-ms N               deadline of each call (default 5000)\n"
    "  --json                       print the response as protobuf JSON, one object\n"
    "\n"
    "exit codes: 0 OK; 1 refused by the service; 2 usage error or bad request file;\n"
    "            3 no answer (UNAVAILABLE, DEADLINE_EXCEEDED)\n";
// clang-format on

constexpr int64_t kMaxTimeoutMs = 3'600'000;
constexpr int kMaxPages = 100'000;

// One command line being run: its flags, where the answer goes, the stub.
class Session {
 public:
  Session(const Args& args, TransportOptions transport, std::ostream& out, std::ostream& err)
      : args_(args),
        transport_(std::move(transport)),
        out_(out),
        err_(err),
        channel_(OpenChannel(transport_)),
        stub_(v1::SettlementService::NewStub(channel_)) {}

  const Args& args() const { return args_; }
  bool json() const { return args_.Switch("json"); }
  std::ostream& out() { return out_; }
  std::ostream& err() { return err_; }

  // One unary call of the stub with identity and deadline; kExitOk when
  // it returned OK, else the error is reported and its exit code returned.
  template <typename Request, typename Response>
  int Call(grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
           const Request& request, Response* response) {
    grpc::ClientContext context;
    PrepareCall(transport_, &context);
    const grpc::Status status = ((*stub_).*method)(&context, request, response);
    if (status.ok()) return kExitOk;
    return Report(RpcErrorFrom(status, context));
  }

  // Prints `error` (stderr; also the JSON object on stdout with --json) and
  // returns its exit code.
  int Report(const RpcError& error) {
    err_ << FormatRpcError(error);
    if (json()) out_ << RpcErrorJson(error) << "\n";
    const int code = ExitCodeFor(error.code);
    // Without a reason the status comes from the transport, not the service.
    if (code == kExitNoAnswer && error.reason.empty()) {
      // Under TLS 1.3 a client certificate the gateway refuses shows as
      // the connection closing right after the handshake.
      const bool handshake = !transport_.insecure_dev &&
                             (error.message.find("andshake") != std::string::npos ||
                              error.message.find("SSL") != std::string::npos ||
                              error.message.find("ertificate") != std::string::npos ||
                              error.message.find("Socket closed") != std::string::npos);
      if (error.code == grpc::StatusCode::DEADLINE_EXCEEDED) {
        err_ << Cat("no answer from ", transport_.target, " within ", transport_.timeout_ms,
                    " ms (--timeout-ms)\n");
      } else if (handshake) {
        err_ << Cat("the TLS handshake with ", transport_.target,
                    " failed or the gateway closed the connection: --ca must be the CA of the "
                    "gateway's certificate, whose names must include the target's host (or "
                    "--tls-server-name); --cert must be an unexpired institution certificate "
                    "signed by a CA the gateway trusts, and --key its key\n");
      } else {
        err_ << Cat("could not reach ", transport_.target,
                    " (is the gateway running? --target / MEDSETTLE_TARGET)\n");
      }
    }
    return code;
  }

  int Health(std::string_view service);

 private:
  const Args& args_;
  const TransportOptions transport_;
  std::ostream& out_;
  std::ostream& err_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<Stub> stub_;
};

// Prints `response` as JSON or as `human`.
template <typename Response>
int Print(Session& s, const Response& response, const std::string& human) {
  if (s.json()) {
    s.out() << MessageJson(response) << "\n";
  } else {
    s.out() << human;
  }
  s.out().flush();
  return s.out() ? kExitOk : kExitRefused;
}

int UsageError(std::ostream& err, const absl::Status& status) {
  err << "medsettle-cli: " << std::string(status.message()) << "\n"
      << "run medsettle-cli --help for usage\n";
  return kExitUsage;
}

// Fills an absent idempotency id with a generated one and tells the user.
void FillRequestId(std::string* request_id, const Env& env, std::ostream& err) {
  if (!request_id->empty()) return;
  *request_id = env.new_request_id();
  err << "medsettle-cli: request id " << *request_id << " (generated; --request-id "
      << *request_id << " repeats this request)\n";
}

int RunSettle(Session& s, const Env& env, bool record) {
  v1::SettleRequest request;
  if (absl::Status st = BuildSettleRequest(s.args(), &request); !st.ok()) {
    return UsageError(s.err(), st);
  }
  FillRequestId(request.mutable_request_id(), env, s.err());
  v1::SettleResponse response;
  const int code = s.Call(record ? &Stub::Settle : &Stub::PreSettle, request, &response);
  if (code != kExitOk) return code;
  return Print(s, response, FormatSettlement(response, s.args().Switch("trace")));
}

int RunCoverage(Session& s, const Env& env) {
  v1::CheckCoverageRequest request;
  if (absl::Status st = BuildCoverageRequest(s.args(), env.today(), &request); !st.ok()) {
    return UsageError(s.err(), st);
  }
  v1::CheckCoverageResponse response;
  const int code = s.Call(&Stub::CheckCoverage, request, &response);
  if (code != kExitOk) return code;
  return Print(s, response, FormatCoverage(response));
}

int RunReverse(Session& s, const Env& env) {
  v1::ReverseRequest request;
  if (absl::Status st = BuildReverseRequest(s.args(), &request); !st.ok()) {
    return UsageError(s.err(), st);
  }
  FillRequestId(request.mutable_request_id(), env, s.err());
  v1::ReverseResponse response;
  const int code = s.Call(&Stub::Reverse, request, &response);
  if (code != kExitOk) return code;
  return Print(s, response, FormatReversal(response));
}

int RunGet(Session& s) {
  v1::GetSettlementRequest request;
  if (absl::Status st = BuildGetRequest(s.args(), &request); !st.ok()) {
    return UsageError(s.err(), st);
  }
  v1::SettleResponse response;
  const int code = s.Call(&Stub::GetSettlement, request, &response);
  if (code != kExitOk) return code;
  return Print(s, response, FormatSettlement(response, s.args().Switch("trace")));
}

int RunReconcile(Session& s) {
  v1::ReconcileRequest request;
  if (absl::Status st = BuildReconcileRequest(s.args(), &request); !st.ok()) {
    return UsageError(s.err(), st);
  }
  const bool all_pages = s.args().Switch("all-pages");
  v1::ReconcileResponse merged;
  std::set<std::string> tokens_seen;
  for (int page_no = 0;; ++page_no) {
    v1::ReconcileResponse page;
    const int code = s.Call(&Stub::Reconcile, request, &page);
    if (code != kExitOk) return code;
    if (page_no == 0) {
      merged = std::move(page);
    } else {
      for (v1::ReconcileEntry& entry : *page.mutable_detail()) {
        *merged.add_detail() = std::move(entry);
      }
      merged.set_next_page_token(page.next_page_token());
    }
    const std::string& token = merged.next_page_token();
    if (!all_pages || token.empty()) break;
    if (!tokens_seen.insert(token).second || page_no + 1 >= kMaxPages) {
      s.err() << "medsettle-cli: the service repeated page token " << token
              << "; stopping after " << page_no + 1 << " pages\n";
      return kExitRefused;
    }
    request.set_page_token(token);
  }
  return Print(s, merged, FormatReconcile(merged));
}

// Health/Check; where the server has no health service, a GetSettlement
// probe: any answer from SettlementService (even a refusal of the empty
// id) shows it is up.
int Session::Health(std::string_view service) {
  int32_t serving = 0;
  grpc::ClientContext context;
  PrepareCall(transport_, &context);
  const grpc::Status status = CheckHealth(channel_, &context, service, &serving);
  std::string via = "grpc.health.v1.Health/Check";
  if (status.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
    grpc::ClientContext probe_context;
    PrepareCall(transport_, &probe_context);
    v1::SettleResponse ignored;
    const grpc::Status probe =
        stub_->GetSettlement(&probe_context, v1::GetSettlementRequest(), &ignored);
    const int code = ExitCodeFor(probe.error_code());
    if (code == kExitNoAnswer || probe.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
      return Report(RpcErrorFrom(probe, probe_context));
    }
    serving = 1;
    via = Cat("no health service; SettlementService answered a GetSettlement probe with ",
              StatusCodeName(probe.error_code()));
  } else if (!status.ok()) {
    return Report(RpcErrorFrom(status, context));
  }
  const std::string_view name = ServingStatusName(serving);
  if (json()) {
    out_ << "{\"status\":\"" << name << "\"}\n";
  } else {
    out_ << name << "  " << transport_.target << "  (" << via << ")\n";
  }
  out_.flush();
  return serving == 1 ? kExitOk : kExitRefused;
}

std::string LocalTime(const char* format) {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char text[32];
  const size_t n = std::strftime(text, sizeof text, format, &local);
  return std::string(text, n);
}

}  // namespace

int ExitCodeFor(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return kExitOk;
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED: return kExitNoAnswer;
    default: return kExitRefused;
  }
}

Env ProcessEnv() {
  Env env;
  env.getenv = [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
  env.new_request_id = [] {
    std::random_device random;
    char hex[9];
    std::snprintf(hex, sizeof hex, "%08x", static_cast<unsigned>(random()));
    return Cat("cli-", LocalTime("%Y%m%dT%H%M%S"), "-", std::string_view(hex, 8));
  };
  env.today = [] { return LocalTime("%Y-%m-%d"); };
  return env;
}

std::string_view UsageText() { return kUsage; }

int Run(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err,
        const Env& env) {
  absl::StatusOr<Args> args = ParseArgs(argv);
  if (!args.ok()) return UsageError(err, args.status());
  if (args->help) {
    out << kUsage;
    return kExitOk;
  }
  // Flags win over the environment, the environment over the defaults.
  TransportOptions transport;
  auto setting = [&](std::string_view flag, const char* variable) -> std::optional<std::string> {
    if (const std::string* value = args->Value(flag)) return *value;
    std::optional<std::string> value = env.getenv(variable);
    if (value && value->empty()) value.reset();
    return value;
  };
  if (std::optional<std::string> target = setting("target", "MEDSETTLE_TARGET")) {
    transport.target = *target;
  }
  if (const std::string* timeout = args->Value("timeout-ms")) {
    absl::StatusOr<int64_t> ms = ParsePositiveFlag("--timeout-ms", *timeout, kMaxTimeoutMs);
    if (!ms.ok()) return UsageError(err, ms.status());
    transport.timeout_ms = *ms;
  }
  // The transport: mutual TLS with the institution's certificate, or the
  // development gateway's plaintext and header.
  transport.insecure_dev = args->Switch("insecure-dev");
  const std::optional<std::string> ca = setting("ca", "MEDSETTLE_CA");
  const std::optional<std::string> cert = setting("cert", "MEDSETTLE_CERT");
  const std::optional<std::string> key = setting("key", "MEDSETTLE_KEY");
  if (transport.insecure_dev) {
    for (std::string_view flag : {"ca", "cert", "key", "tls-server-name"}) {
      if (args->Value(flag) != nullptr) {
        return UsageError(err, absl::InvalidArgumentError(Cat(
                                   "--", flag, " cannot be combined with --insecure-dev")));
      }
    }
    if (std::optional<std::string> id = setting("institution", "MEDSETTLE_INSTITUTION")) {
      transport.institution_id = *id;
    }
    if (transport.institution_id.empty() && args->command != Command::kHealth) {
      return UsageError(err, absl::InvalidArgumentError(
                                 "no calling institution: give --institution ID or set "
                                 "MEDSETTLE_INSTITUTION"));
    }
  } else {
    if (args->Value("institution") != nullptr) {
      return UsageError(err, absl::InvalidArgumentError(
                                 "--institution applies to --insecure-dev gateways only; under "
                                 "mutual TLS the certificate (--cert) names the institution"));
    }
    if (!ca && !cert && !key) {
      return UsageError(err, absl::InvalidArgumentError(
                                 "no transport: give --ca, --cert and --key (mutual TLS; env "
                                 "MEDSETTLE_CA, MEDSETTLE_CERT, MEDSETTLE_KEY), or --insecure-dev "
                                 "for a development gateway"));
    }
    if (!ca || !cert || !key) {
      return UsageError(err, absl::InvalidArgumentError(
                                 Cat("mutual TLS needs all of --ca, --cert and --key; missing ",
                                     !ca ? "--ca" : !cert ? "--cert" : "--key")));
    }
    if (absl::Status s = LoadTlsFiles(*ca, *cert, *key, &transport); !s.ok()) {
      return UsageError(err, s);
    }
    if (const std::string* name = args->Value("tls-server-name")) {
      transport.tls_server_name = *name;
    }
  }

  Session session(*args, std::move(transport), out, err);
  switch (args->command) {
    case Command::kCoverage: return RunCoverage(session, env);
    case Command::kPreSettle: return RunSettle(session, env, /*record=*/false);
    case Command::kSettle: return RunSettle(session, env, /*record=*/true);
    case Command::kReverse: return RunReverse(session, env);
    case Command::kGet: return RunGet(session);
    case Command::kReconcile: return RunReconcile(session);
    case Command::kHealth: {
      const std::string* service = args->Value("service");
      return session.Health(service == nullptr ? std::string_view() : std::string_view(*service));
    }
    case Command::kNone: break;
  }
  return UsageError(err, absl::InvalidArgumentError("no command given"));
}

}  // namespace medsettle::cli
