// medsettle-cli end to end, in-process: a fake SettlementService on
// 127.0.0.1:0 records what arrives (requests, the institution header, the
// client certificate's CN) and answers with canned responses or refusals
// carrying the gateway's trailing metadata; the tool runs through cli::Run
// with captured output. The fake serves plaintext (--insecure-dev) or, for
// the mutual TLS tests, TLS requiring client certificates from a PKI made
// by deploy/pki/make-dev-pki.sh.
#include "tools/cli/cli.h"

#include <arpa/inet.h>
#include <grpc/grpc.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "engine/money.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "medsettle/v1/service.grpc.pb.h"
#include "tools/cli/health.h"
#include "tools/cli/requests.h"

namespace medsettle {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kInstitution[] = "H3308000002";

// gRPC held over the whole test run and shut down blocking at its end, as
// medsettle-cli's main does: gRPC frees a TLS channel's OpenSSL objects on
// its own threads after the channel is gone, and without this the process
// could exit with one still in flight (LeakSanitizer reported it once).
class GrpcForTheRun : public ::testing::Environment {
 public:
  void SetUp() override { grpc_init(); }
  void TearDown() override { grpc_shutdown_blocking(); }
};
::testing::Environment* const kGrpcForTheRun =
    ::testing::AddGlobalTestEnvironment(new GrpcForTheRun);

// A refusal as the gateway sends it: status plus trailing metadata.
struct CannedRefusal {
  grpc::StatusCode code;
  std::string reason;
  std::string field;  // empty: no medsettle-field trailer
  std::string message;
};

class FakeSettlementService final : public v1::SettlementService::Service {
 public:
  // What arrived, in order.
  struct Call {
    std::string method;
    std::string institution;  // x-medsettle-institution; "<absent>" when not sent
    std::string peer_cn;      // the client certificate's CN; "" without TLS
  };

  // Canned answers (set before the calls).
  v1::SettleResponse settle_response;
  v1::CheckCoverageResponse coverage_response;
  v1::ReverseResponse reverse_response;
  std::map<std::string, v1::ReconcileResponse> reconcile_pages;  // by page token
  std::optional<CannedRefusal> refusal;
  std::chrono::milliseconds delay{0};

  std::vector<Call> calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }
  std::vector<v1::SettleRequest> settle_requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return settle_requests_;
  }
  std::vector<v1::ReconcileRequest> reconcile_requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return reconcile_requests_;
  }
  v1::CheckCoverageRequest coverage_request() {
    std::lock_guard<std::mutex> lock(mu_);
    return coverage_request_;
  }
  v1::ReverseRequest reverse_request() {
    std::lock_guard<std::mutex> lock(mu_);
    return reverse_request_;
  }
  v1::GetSettlementRequest get_request() {
    std::lock_guard<std::mutex> lock(mu_);
    return get_request_;
  }

  grpc::Status CheckCoverage(grpc::ServerContext* context, const v1::CheckCoverageRequest* request,
                             v1::CheckCoverageResponse* response) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      coverage_request_ = *request;
    }
    return Answer("CheckCoverage", context, [&] { *response = coverage_response; });
  }
  grpc::Status PreSettle(grpc::ServerContext* context, const v1::SettleRequest* request,
                         v1::SettleResponse* response) override {
    return SettleLike("PreSettle", context, request, response);
  }
  grpc::Status Settle(grpc::ServerContext* context, const v1::SettleRequest* request,
                      v1::SettleResponse* response) override {
    return SettleLike("Settle", context, request, response);
  }
  grpc::Status Reverse(grpc::ServerContext* context, const v1::ReverseRequest* request,
                       v1::ReverseResponse* response) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      reverse_request_ = *request;
    }
    return Answer("Reverse", context, [&] { *response = reverse_response; });
  }
  grpc::Status GetSettlement(grpc::ServerContext* context, const v1::GetSettlementRequest* request,
                             v1::SettleResponse* response) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      get_request_ = *request;
    }
    if (request->settlement_id().empty()) {  // as the gateway would
      RecordCall("GetSettlement", context);
      context->AddTrailingMetadata("medsettle-reason", "SETTLEMENT_ID_INVALID");
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "settlement_id is required");
    }
    return Answer("GetSettlement", context, [&] { *response = settle_response; });
  }
  grpc::Status Reconcile(grpc::ServerContext* context, const v1::ReconcileRequest* request,
                         v1::ReconcileResponse* response) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      reconcile_requests_.push_back(*request);
    }
    return Answer("Reconcile", context, [&] {
      auto it = reconcile_pages.find(request->page_token());
      if (it != reconcile_pages.end()) *response = it->second;
    });
  }

 private:
  void RecordCall(const std::string& method, grpc::ServerContext* context) {
    Call call{method, "<absent>", ""};
    for (const auto& [key, value] : context->client_metadata()) {
      if (std::string(key.data(), key.size()) == "x-medsettle-institution") {
        call.institution.assign(value.data(), value.size());
      }
    }
    for (const grpc::string_ref& cn :
         context->auth_context()->FindPropertyValues("x509_common_name")) {
      call.peer_cn.assign(cn.data(), cn.size());
    }
    std::lock_guard<std::mutex> lock(mu_);
    calls_.push_back(call);
  }

  template <typename Fill>
  grpc::Status Answer(const std::string& method, grpc::ServerContext* context, Fill fill) {
    RecordCall(method, context);
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    if (refusal) {
      if (!refusal->reason.empty()) {
        context->AddTrailingMetadata("medsettle-reason", refusal->reason);
      }
      if (!refusal->field.empty()) context->AddTrailingMetadata("medsettle-field", refusal->field);
      return grpc::Status(refusal->code, refusal->message);
    }
    fill();
    return grpc::Status::OK;
  }

  grpc::Status SettleLike(const std::string& method, grpc::ServerContext* context,
                          const v1::SettleRequest* request, v1::SettleResponse* response) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      settle_requests_.push_back(*request);
    }
    return Answer(method, context, [&] {
      *response = settle_response;
      response->set_request_id(request->request_id());
    });
  }

  std::mutex mu_;
  std::vector<Call> calls_;
  std::vector<v1::SettleRequest> settle_requests_;
  std::vector<v1::ReconcileRequest> reconcile_requests_;
  v1::CheckCoverageRequest coverage_request_;
  v1::ReverseRequest reverse_request_;
  v1::GetSettlementRequest get_request_;
};

// A split that adds up (the API.md chronic example): 367.00 total.
v1::SettleResponse CannedSettlement() {
  v1::SettleResponse r;
  r.set_settlement_id("S-20241021-000042");
  r.set_status(v1::SETTLEMENT_STATUS_SETTLED);
  r.set_policy_id("quzhou-2024");
  r.set_settlement_date("2024-10-21");
  r.set_institution_id(kInstitution);
  r.set_person_key("pk-demo-0002");
  r.set_visit_type(v1::VISIT_TYPE_CHRONIC_OUTPATIENT);
  r.set_settled_at("2024-10-21T09:12:00+08:00");
  r.set_base_fund_ratio_bp(6000);
  v1::Amounts* a = r.mutable_amounts();
  a->set_total_cents(36700);
  a->set_pre_self_pay_cents(990);
  a->set_in_scope_cents(35710);
  a->set_deductible_cents(10000);
  a->set_base_fund_cents(17163);
  a->set_patient_cents(19537);
  v1::FundDetail* fund = r.add_fund_details();
  fund->set_fund(v1::FUND_BASE);
  fund->set_scheme("chronic_outpatient");
  fund->set_eligible_cents(8334);
  fund->set_paid_cents(5000);
  fund->set_cap_remaining_cents(0);
  v1::ClaimLater* later = r.add_claim_later();
  later->set_product("tianyi-yongning-2025");
  later->set_responsibility(3);
  later->set_name("特定药品 special drugs");
  later->set_reason("claim with the insurer");
  v1::TraceStep* step = r.add_trace();
  step->set_rule("base_fund.deductible");
  step->set_source("十四.3 门诊");
  step->set_amount_cents(10000);
  step->set_note("general_outpatient deductible 100.00");
  return r;
}

// The line of `text` holding `needle` ("" when none).
std::string LineWith(const std::string& text, const std::string& needle) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.find(needle) != std::string::npos) return line;
  }
  return "";
}

// A loopback port nothing listens on.
int ClosedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t size = sizeof address;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), size) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) != 0) {
    close(fd);
    return 1;
  }
  close(fd);
  return ntohs(address.sin_port);
}

std::string WriteTemp(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/cli_test_" + name;
  std::ofstream(path) << text;
  return path;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A development PKI for kInstitution (make-dev-pki.sh --test-certs), made
// once per process and removed at its end; "" when it could not be made.
const std::string& Pki() {
  struct Made {
    std::string dir;
    Made() {
      char path[] = "/tmp/medsettle-cli-test-pki-XXXXXX";
      if (mkdtemp(path) == nullptr) return;
      const std::string command = std::string("bash '") + MEDSETTLE_SOURCE_DIR +
                                  "/deploy/pki/make-dev-pki.sh' --test-certs '" + path + "' " +
                                  kInstitution + " >/dev/null 2>&1";
      if (std::system(command.c_str()) == 0) dir = path;
    }
    ~Made() {
      std::error_code ignored;
      if (!dir.empty()) std::filesystem::remove_all(dir, ignored);
    }
  };
  static Made made;
  return made.dir;
}

class CliTest : public ::testing::Test {
 protected:
  struct Result {
    int code;
    std::string out;
    std::string err;
  };

  void SetUp() override {
    service_.settle_response = CannedSettlement();
    StartServer(/*health=*/true);
    env_.getenv = [this](const std::string& name) -> std::optional<std::string> {
      auto it = env_vars_.find(name);
      if (it == env_vars_.end()) return std::nullopt;
      return it->second;
    };
    env_.new_request_id = [] { return std::string("cli-test-0001"); };
    env_.today = [] { return std::string("2025-03-18"); };
  }
  void TearDown() override { StopServer(); }

  void StartServer(bool health) {
    grpc::EnableDefaultHealthCheckService(health);  // read by BuildAndStart
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
  }
  // The fake over TLS with the PKI's server certificate, requiring and
  // verifying a client certificate of the PKI's CA.
  void StartTlsServer() {
    ASSERT_FALSE(Pki().empty()) << "make-dev-pki.sh failed";
    grpc::SslServerCredentialsOptions tls(
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    tls.pem_root_certs = ReadFile(Pki() + "/ca.pem");
    tls.pem_key_cert_pairs.push_back(
        {ReadFile(Pki() + "/server.key.pem"), ReadFile(Pki() + "/server.pem")});
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::SslServerCredentials(tls), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
  }
  void StopServer() {
    if (server_ == nullptr) return;
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    server_.reset();
  }

  std::string Target() const { return "127.0.0.1:" + std::to_string(port_); }

  // Runs the tool with --target, --insecure-dev and --institution prepended.
  Result Cli(std::vector<std::string> args) {
    std::vector<std::string> full = {"--target", Target(), "--insecure-dev", "--institution",
                                     kInstitution};
    full.insert(full.end(), args.begin(), args.end());
    return CliRaw(full);
  }
  Result CliRaw(const std::vector<std::string>& args) {
    std::ostringstream out;
    std::ostringstream err;
    const int code = cli::Run(args, out, err, env_);
    return {code, out.str(), err.str()};
  }

  FakeSettlementService service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::map<std::string, std::string> env_vars_;
  cli::Env env_;
};

TEST_F(CliTest, SettleFlagsBuildTheExactRequest) {
  const Result r = Cli({"settle", "--request-id", "his-0001", "--id-card", "330800197204150003",
                        "--visit-type", "inpatient", "--admission", "2025-03-10", "--discharge",
                        "2025-03-17", "--item", "FA0003:7:45:床位费 ward bed", "--item",
                        "XA0001:2.5:23.47", "--item", "ZA0001:0.35:86.00:黄芪: decoction",
                        "--item", "XB0001:0.0001:0.01"});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::vector<v1::SettleRequest> got = service_.settle_requests();
  ASSERT_EQ(got.size(), 1u);
  const v1::SettleRequest& request = got[0];
  EXPECT_EQ(request.request_id(), "his-0001");
  EXPECT_EQ(request.credential().id_card_no(), "330800197204150003");
  EXPECT_EQ(request.visit().type(), v1::VISIT_TYPE_INPATIENT);
  EXPECT_EQ(request.visit().admission_date(), "2025-03-10");
  EXPECT_EQ(request.visit().discharge_date(), "2025-03-17");
  EXPECT_EQ(request.visit().service_date(), "");
  EXPECT_FALSE(request.visit().has_specialty());
  EXPECT_FALSE(request.visit().emergency());
  ASSERT_EQ(request.items_size(), 4);
  struct Expected {
    int32_t line_no;
    const char* code;
    const char* name;
    const char* quantity;
    int64_t unit_price_cents;
    int64_t amount_cents;
  };
  const Expected expected[] = {
      {1, "FA0003", "床位费 ward bed", "7", 4500, 31500},
      {2, "XA0001", "", "2.5", 2347, 5868},  // 5867.5 rounds half up
      {3, "ZA0001", "黄芪: decoction", "0.35", 8600, 3010},
      {4, "XB0001", "", "0.0001", 1, 0},  // 0.0001 分 rounds down to 0
  };
  for (int i = 0; i < 4; ++i) {
    const v1::BillItem& item = request.items(i);
    const Expected& e = expected[i];
    EXPECT_EQ(item.line_no(), e.line_no) << i;
    EXPECT_EQ(item.code(), e.code) << i;
    EXPECT_EQ(item.name(), e.name) << i;
    EXPECT_EQ(item.quantity(), e.quantity) << i;
    EXPECT_EQ(item.unit_price_cents(), e.unit_price_cents) << i;
    EXPECT_EQ(item.amount_cents(), e.amount_cents) << i;
  }
  EXPECT_THAT(r.err, Not(HasSubstr("generated")));
}

TEST_F(CliTest, OutpatientFlagsSetServiceDateConditionSpecialtyEmergency) {
  const Result r =
      Cli({"presettle", "--insurance-card", "A33021355555", "--visit-type", "chronic", "--date",
           "2025-11-04", "--condition", "DM", "--specialty", "tcm", "--emergency", "--item",
           "FA0001:1:10"});
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_EQ(service_.calls().size(), 1u);
  EXPECT_EQ(service_.calls()[0].method, "PreSettle");
  const v1::SettleRequest request = service_.settle_requests().at(0);
  EXPECT_EQ(request.credential().insurance_card_no(), "A33021355555");
  EXPECT_EQ(request.visit().type(), v1::VISIT_TYPE_CHRONIC_OUTPATIENT);
  EXPECT_EQ(request.visit().service_date(), "2025-11-04");
  EXPECT_EQ(request.visit().condition(), "DM");
  EXPECT_TRUE(request.visit().has_specialty());
  EXPECT_EQ(request.visit().specialty(), v1::SPECIALTY_TCM);
  EXPECT_TRUE(request.visit().emergency());
  EXPECT_EQ(request.items(0).amount_cents(), 1000);
}

TEST_F(CliTest, SettleWithoutRequestIdGeneratesAndPrintsOne) {
  const Result r = Cli({"settle", "--ec-token", "ec-demo", "--visit-type", "general", "--date",
                        "2025-03-18", "--item", "XA0001:2:23.50"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(service_.settle_requests().at(0).request_id(), "cli-test-0001");
  EXPECT_THAT(r.err, HasSubstr("request id cli-test-0001"));
  EXPECT_THAT(r.out, HasSubstr("cli-test-0001"));  // echoed by the response header
}

TEST_F(CliTest, InstitutionHeaderIsSentFromFlagOrEnvironment) {
  ASSERT_EQ(Cli({"get", "--settlement-id", "S-1"}).code, 0);
  env_vars_ = {{"MEDSETTLE_TARGET", Target()}, {"MEDSETTLE_INSTITUTION", "C3302130003"}};
  const Result from_env = CliRaw({"--insecure-dev", "get", "--settlement-id", "S-1"});
  ASSERT_EQ(from_env.code, 0) << from_env.err;
  // A flag wins over the environment.
  ASSERT_EQ(CliRaw({"--insecure-dev", "--institution", "P3308000006", "get", "--settlement-id",
                    "S-1"})
                .code,
            0);
  const std::vector<FakeSettlementService::Call> calls = service_.calls();
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls[0].institution, kInstitution);
  EXPECT_EQ(calls[1].institution, "C3302130003");
  EXPECT_EQ(calls[2].institution, "P3308000006");
  EXPECT_EQ(service_.get_request().settlement_id(), "S-1");
}

TEST_F(CliTest, RequestFileInProtoOrJsonNamesWithFlagOverrides) {
  const std::string proto_names = WriteTemp("proto_names.json", R"({
    "request_id": "file-0001",
    "credential": {"ec_token": "ec-file"},
    "visit": {"type": "VISIT_TYPE_GENERAL_OUTPATIENT", "service_date": "2025-03-18"},
    "items": [{"line_no": 1, "code": "XA0001", "quantity": "2",
               "unit_price_cents": 2350, "amount_cents": 4700}]})");
  const std::string json_names = WriteTemp("json_names.json", R"({
    "requestId": "file-0002",
    "credential": {"idCardNo": "330800199007070003"},
    "visit": {"type": "VISIT_TYPE_INPATIENT", "admissionDate": "2025-03-10",
              "dischargeDate": "2025-03-17"},
    "items": [{"lineNo": 1, "code": "FA0003", "quantity": "7",
               "unitPriceCents": "4500", "amountCents": "31500"}]})");
  ASSERT_EQ(Cli({"presettle", "--request", proto_names}).code, 0);
  ASSERT_EQ(Cli({"settle", "--request", json_names, "--request-id", "replay-0002", "--id-card",
                 "330800197204150003", "--discharge", "2025-03-18"})
                .code,
            0);
  const std::vector<v1::SettleRequest> got = service_.settle_requests();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].request_id(), "file-0001");
  EXPECT_EQ(got[0].credential().ec_token(), "ec-file");
  EXPECT_EQ(got[0].items(0).amount_cents(), 4700);
  EXPECT_EQ(got[1].request_id(), "replay-0002");
  EXPECT_EQ(got[1].credential().id_card_no(), "330800197204150003");
  EXPECT_EQ(got[1].visit().type(), v1::VISIT_TYPE_INPATIENT);
  EXPECT_EQ(got[1].visit().admission_date(), "2025-03-10");
  EXPECT_EQ(got[1].visit().discharge_date(), "2025-03-18");
  EXPECT_EQ(got[1].items(0).amount_cents(), 31500);
}

TEST_F(CliTest, ShippedExamplesAreValidBillsAndAreSentAsWritten) {
  const std::filesystem::path dir =
      std::filesystem::path(MEDSETTLE_SOURCE_DIR) / "tools" / "cli" / "examples";
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".json") continue;
    ++files;
    const std::string path = entry.path().string();
    v1::SettleRequest expected;
    ASSERT_TRUE(cli::ReadJsonFile(path, &expected).ok()) << path;
    EXPECT_FALSE(expected.request_id().empty()) << path;
    EXPECT_EQ(expected.credential().id_card_no().size(), 18u) << path;
    EXPECT_NE(expected.visit().type(), v1::VISIT_TYPE_UNSPECIFIED) << path;
    ASSERT_GT(expected.items_size(), 0) << path;
    for (const v1::BillItem& item : expected.items()) {
      const std::optional<engine::Quantity> quantity = engine::ParseQuantity(item.quantity());
      ASSERT_TRUE(quantity.has_value()) << path << " line " << item.line_no();
      EXPECT_EQ(engine::MultiplyQuantity(*quantity, item.unit_price_cents()),
                item.amount_cents())
          << path << " line " << item.line_no();
    }
    const Result r = Cli({"presettle", "--request", path});
    ASSERT_EQ(r.code, 0) << path << ": " << r.err;
    EXPECT_TRUE(MessageDifferencer::Equals(service_.settle_requests().back(), expected)) << path;
  }
  EXPECT_GE(files, 3);
}

TEST_F(CliTest, JsonOutputParsesBackToTheResponse) {
  const Result r = Cli({"--json", "get", "--settlement-id", "S-20241021-000042"});
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << "one object on one line";
  v1::SettleResponse parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &parsed).ok()) << r.out;
  EXPECT_TRUE(MessageDifferencer::Equals(parsed, CannedSettlement()));
  EXPECT_THAT(r.out, HasSubstr("\"totalCents\":\"36700\""));
}

TEST_F(CliTest, HumanSettlementShowsHeaderSplitFundsClaimLaterAndTrace) {
  const Result r = Cli({"get", "--settlement-id", "S-20241021-000042", "--trace"});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string header = LineWith(r.out, "S-20241021-000042");
  EXPECT_THAT(header, HasSubstr("SETTLED"));
  EXPECT_THAT(header, HasSubstr("replayed: no"));
  EXPECT_THAT(header, HasSubstr("policy: quzhou-2024"));
  EXPECT_THAT(header, HasSubstr("settlement date: 2024-10-21"));
  EXPECT_THAT(header, HasSubstr(std::string("institution: ") + kInstitution));
  const std::pair<const char*, const char*> split[] = {
      {"总额", "367.00"},    {"自费", "0.00"},      {"超限价", "0.00"},
      {"先行自付", "9.90"},  {"起付线", "100.00"},  {"统筹基金", "171.63"},
      {"大病保险", "0.00"},  {"惠民保", "0.00"},    {"个人负担", "195.37"},
  };
  for (const auto& [name, yuan] : split) {
    EXPECT_THAT(LineWith(r.out, name), HasSubstr(yuan)) << name << "\n" << r.out;
  }
  EXPECT_THAT(LineWith(r.out, "bill total"), HasSubstr("总额"));
  EXPECT_THAT(LineWith(r.out, "  patient "), HasSubstr("个人负担"));
  EXPECT_THAT(LineWith(r.out, "chronic_outpatient"), HasSubstr("50.00"));
  EXPECT_THAT(LineWith(r.out, "tianyi-yongning-2025"), HasSubstr("特定药品"));
  EXPECT_THAT(LineWith(r.out, "base_fund.deductible"), HasSubstr("100.00"));
  EXPECT_THAT(r.out, HasSubstr("十四.3 门诊"));
  // Without --trace no trace section.
  const Result plain = Cli({"get", "--settlement-id", "S-20241021-000042"});
  EXPECT_THAT(plain.out, Not(HasSubstr("base_fund.deductible")));
}

TEST_F(CliTest, RefusalPrintsCodeReasonFieldAndExitsOne) {
  service_.refusal = CannedRefusal{grpc::StatusCode::FAILED_PRECONDITION, "WAITING_PERIOD",
                                   "visit.service_date", "benefits start on 2024-05-01"};
  const Result r = Cli({"settle", "--request-id", "r-1", "--id-card", "330800197204150003",
                        "--visit-type", "general", "--date", "2024-04-10", "--item",
                        "FA0001:1:10"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err,
              HasSubstr("error: FAILED_PRECONDITION WAITING_PERIOD: benefits start on 2024-05-01\n"
                        "field: visit.service_date\n"));
  EXPECT_EQ(r.out, "");

  // Without a field trailer there is no field line; --json adds the object.
  service_.refusal = CannedRefusal{grpc::StatusCode::ALREADY_EXISTS, "REQUEST_ID_REUSED", "",
                                   "request_id r-1 was settled with other content"};
  const Result json = Cli({"--json", "get", "--settlement-id", "S-1"});
  EXPECT_EQ(json.code, 1);
  EXPECT_THAT(json.err, HasSubstr("error: ALREADY_EXISTS REQUEST_ID_REUSED: request_id r-1"));
  EXPECT_THAT(json.err, Not(HasSubstr("field:")));
  EXPECT_EQ(json.out,
            "{\"error\":{\"code\":\"ALREADY_EXISTS\",\"reason\":\"REQUEST_ID_REUSED\","
            "\"message\":\"request_id r-1 was settled with other content\"}}\n");
}

TEST_F(CliTest, ServiceSideUnavailableExitsThreeWithItsReason) {
  service_.refusal =
      CannedRefusal{grpc::StatusCode::UNAVAILABLE, "STORE_UNAVAILABLE", "", "redis is down"};
  const Result r = Cli({"get", "--settlement-id", "S-1"});
  EXPECT_EQ(r.code, 3);
  EXPECT_THAT(r.err, HasSubstr("error: UNAVAILABLE STORE_UNAVAILABLE: redis is down"));
  EXPECT_THAT(r.err, Not(HasSubstr("could not reach")));
}

TEST_F(CliTest, UnreachableTargetExitsThree) {
  const Result r = CliRaw({"--target", "127.0.0.1:" + std::to_string(ClosedPort()),
                           "--insecure-dev", "--institution", kInstitution, "--timeout-ms", "3000",
                           "get", "--settlement-id", "S-1"});
  EXPECT_EQ(r.code, 3);
  EXPECT_THAT(r.err, HasSubstr("error: UNAVAILABLE"));
  EXPECT_THAT(r.err, HasSubstr("could not reach 127.0.0.1:"));
}

TEST_F(CliTest, SlowAnswerExceedsTheDeadlineAndExitsThree) {
  service_.delay = std::chrono::milliseconds(1500);
  const auto start = std::chrono::steady_clock::now();
  const Result r = Cli({"--timeout-ms", "200", "get", "--settlement-id", "S-1"});
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.code, 3);
  EXPECT_THAT(r.err, HasSubstr("error: DEADLINE_EXCEEDED"));
  EXPECT_THAT(r.err, HasSubstr("within 200 ms"));
  EXPECT_LT(elapsed, std::chrono::milliseconds(1400));
}

TEST_F(CliTest, BadFlagsAndBadFilesExitTwoWithoutCalling) {
  const std::string malformed = WriteTemp("malformed.json", R"({"request_id": "x", "bogus": 1})");
  const std::string good = WriteTemp("good.json", R"({"request_id": "x"})");
  const std::vector<std::string> bill = {"--id-card", "1", "--visit-type", "general"};
  auto with_bill = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {"settle"};
    args.insert(args.end(), bill.begin(), bill.end());
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
  const std::pair<std::vector<std::string>, const char*> cases[] = {
      {{}, "no command given"},
      {{"frobnicate"}, "unknown command frobnicate"},
      {{"settle", "--bogus"}, "unknown flag --bogus"},
      {{"settle", "extra"}, "unexpected argument extra"},
      {{"get", "--settlement-id", "S", "more"}, "unexpected argument more"},
      {{"coverage", "--settlement-id", "S"}, "--settlement-id does not apply to coverage"},
      {with_bill({"--item", "XA0001:2"}), "too few parts"},
      {with_bill({"--item", "XA0001:two:1"}), "quantity"},
      {with_bill({"--item", "XA0001:1:1.234"}), "unit price"},
      {with_bill({"--item", ":1:1"}), "empty code"},
      {with_bill({"--item", "XA0001:1:1", "--date", "2025-02-30"}), "--date 2025-02-30"},
      {with_bill({"--item", "XA0001:1:1", "--specialty", "surgery"}), "--specialty surgery"},
      {with_bill({}), "at least one --item"},
      {{"settle", "--visit-type", "outpatient"}, "--visit-type outpatient"},
      {{"settle", "--visit-type", "general", "--item", "A:1:1"}, "--id-card"},
      {with_bill({"--item", "A:1:1", "--ec-token", "t"}), "give one of"},
      {with_bill({"--id-card", "2"}), "--id-card given twice"},
      {with_bill({"--emergency=yes"}), "--emergency takes no value"},
      {with_bill({"--item"}), "--item needs a value"},
      {with_bill({"--item="}), "non-empty value"},
      {{"settle", "--request", "/nonexistent/bill.json"}, "cannot open"},
      {{"settle", "--request", malformed}, "not a medsettle.v1.SettleRequest"},
      {{"settle", "--request", good, "--item", "A:1:1"}, "cannot be combined"},
      {{"--timeout-ms", "0", "get", "--settlement-id", "S"}, "--timeout-ms 0"},
      {{"--timeout-ms", "fast", "get", "--settlement-id", "S"}, "--timeout-ms fast"},
      {{"get"}, "--settlement-id is required"},
      {{"reverse", "--reason", "x"}, "--settlement-id is required"},
      {{"reconcile", "--detail"}, "--date is required"},
      {{"reconcile", "--date", "2025-03-18", "--page-size", "-1"}, "--page-size -1"},
      {{"coverage", "--date", "2025-03-18"}, "one of --id-card"},
  };
  for (const auto& [args, message] : cases) {
    const Result r = Cli(args);
    EXPECT_EQ(r.code, 2) << ::testing::PrintToString(args) << "\n" << r.err;
    EXPECT_THAT(r.err, HasSubstr(message)) << ::testing::PrintToString(args);
  }
  // No institution anywhere: a usage error too.
  const Result anonymous =
      CliRaw({"--target", Target(), "--insecure-dev", "get", "--settlement-id", "S"});
  EXPECT_EQ(anonymous.code, 2);
  EXPECT_THAT(anonymous.err, HasSubstr("MEDSETTLE_INSTITUTION"));
  // Neither mutual TLS nor --insecure-dev: no transport.
  const Result untransported = CliRaw({"--target", Target(), "health"});
  EXPECT_EQ(untransported.code, 2);
  EXPECT_THAT(untransported.err, HasSubstr("--ca, --cert and --key"));
  EXPECT_THAT(untransported.err, HasSubstr("--insecure-dev"));
  EXPECT_TRUE(service_.calls().empty());
}

TEST_F(CliTest, HelpPrintsUsageAndExitsZero) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--help"}, std::vector<std::string>{"help"},
        std::vector<std::string>{"settle", "-h"}}) {
    const Result r = CliRaw(args);
    EXPECT_EQ(r.code, 0);
    EXPECT_THAT(r.out, HasSubstr("usage: medsettle-cli"));
    EXPECT_THAT(r.out, HasSubstr("exit codes"));
  }
}

TEST_F(CliTest, CoverageFromFlagsDefaultsToTodayAndPrintsRemaining) {
  v1::CheckCoverageResponse& canned = service_.coverage_response;
  canned.set_covered(true);
  canned.set_policy_id("quzhou-2025");
  canned.set_covered_from("2025-01-01");
  canned.set_covered_to("2025-12-31");
  canned.mutable_enrollment()->set_person_key("pk-demo-0005");
  canned.mutable_enrollment()->set_category(v1::CATEGORY_ADULT);
  v1::Remaining* left = canned.add_remaining();
  left->set_name("inpatient fund cap");
  left->set_limit_cents(30000000);
  left->set_used_cents(1250000);
  left->set_remaining_cents(28750000);
  const Result r =
      Cli({"coverage", "--id-card", "330800197204150003", "--visit-type", "inpatient"});
  ASSERT_EQ(r.code, 0) << r.err;
  const v1::CheckCoverageRequest request = service_.coverage_request();
  EXPECT_EQ(request.credential().id_card_no(), "330800197204150003");
  EXPECT_EQ(request.service_date(), "2025-03-18");
  EXPECT_TRUE(request.has_visit_type());
  EXPECT_EQ(request.visit_type(), v1::VISIT_TYPE_INPATIENT);
  EXPECT_THAT(LineWith(r.out, "covered"), HasSubstr("yes"));
  EXPECT_THAT(LineWith(r.out, "window"), HasSubstr("2025-01-01 .. 2025-12-31"));
  EXPECT_THAT(LineWith(r.out, "policy"), HasSubstr("quzhou-2025"));
  const std::string cap = LineWith(r.out, "inpatient fund cap");
  EXPECT_THAT(cap, HasSubstr("300000.00"));
  EXPECT_THAT(cap, HasSubstr("12500.00"));
  EXPECT_THAT(cap, HasSubstr("287500.00"));

  // Without --visit-type the field stays unset; --date is taken as given.
  ASSERT_EQ(Cli({"coverage", "--ec-token", "t", "--date", "2025-06-01"}).code, 0);
  EXPECT_FALSE(service_.coverage_request().has_visit_type());
  EXPECT_EQ(service_.coverage_request().service_date(), "2025-06-01");
}

TEST_F(CliTest, CoverageNotCoveredIsAnAnswerNotAnError) {
  service_.coverage_response.set_covered(false);
  service_.coverage_response.set_reason("WAITING_PERIOD");
  service_.coverage_response.set_message("benefits start on 2025-05-01");
  const Result r = Cli({"coverage", "--id-card", "330800197204150003"});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(LineWith(r.out, "covered"), HasSubstr("no"));
  EXPECT_THAT(LineWith(r.out, "reason"), HasSubstr("WAITING_PERIOD"));
}

TEST_F(CliTest, ReverseSendsItsFieldsAndShowsWhatWasGivenBack) {
  v1::ReverseResponse& canned = service_.reverse_response;
  canned.set_reversal_id("R-000007");
  canned.set_settlement_id("S-20241021-000042");
  canned.set_status(v1::SETTLEMENT_STATUS_REVERSED);
  *canned.mutable_amounts() = CannedSettlement().amounts();
  const Result r = Cli({"reverse", "--settlement-id", "S-20241021-000042", "--reason",
                        "wrong patient"});
  ASSERT_EQ(r.code, 0) << r.err;
  const v1::ReverseRequest request = service_.reverse_request();
  EXPECT_EQ(request.settlement_id(), "S-20241021-000042");
  EXPECT_EQ(request.request_id(), "cli-test-0001");  // generated
  EXPECT_EQ(request.reason(), "wrong patient");
  EXPECT_THAT(r.err, HasSubstr("request id cli-test-0001"));
  EXPECT_THAT(LineWith(r.out, "R-000007"), HasSubstr("REVERSED"));
  EXPECT_THAT(LineWith(r.out, "统筹基金"), HasSubstr("171.63"));
  EXPECT_THAT(LineWith(r.out, "个人负担"), HasSubstr("195.37"));

  ASSERT_EQ(Cli({"reverse", "--settlement-id", "S-2", "--request-id", "rev-2"}).code, 0);
  EXPECT_EQ(service_.reverse_request().request_id(), "rev-2");
}

TEST_F(CliTest, ReconcileFetchesEveryPageAndMergesTheDetail) {
  auto entry = [](const std::string& id, int64_t total) {
    v1::ReconcileEntry e;
    e.set_settlement_id(id);
    e.set_request_id("req-" + id);
    e.set_status(v1::SETTLEMENT_STATUS_SETTLED);
    e.set_visit_type(v1::VISIT_TYPE_GENERAL_OUTPATIENT);
    e.mutable_amounts()->set_total_cents(total);
    e.mutable_amounts()->set_patient_cents(total);
    return e;
  };
  v1::ReconcileResponse first;
  first.set_institution_id(kInstitution);
  first.set_date("2025-03-18");
  first.mutable_settled()->set_count(3);
  first.mutable_settled()->mutable_amounts()->set_total_cents(60000);
  first.mutable_reversed()->set_count(1);
  first.mutable_reversed()->mutable_amounts()->set_total_cents(10000);
  first.mutable_net()->set_count(2);
  first.mutable_net()->mutable_amounts()->set_total_cents(50000);
  *first.add_detail() = entry("S-1", 10000);
  *first.add_detail() = entry("S-2", 20000);
  first.set_next_page_token("page-2");
  v1::ReconcileResponse second;
  second.set_institution_id(kInstitution);
  second.set_date("2025-03-18");
  *second.mutable_settled() = first.settled();
  *second.add_detail() = entry("S-3", 30000);
  service_.reconcile_pages = {{"", first}, {"page-2", second}};

  const Result one = Cli({"reconcile", "--date", "2025-03-18", "--detail", "--page-size", "2"});
  ASSERT_EQ(one.code, 0) << one.err;
  EXPECT_THAT(LineWith(one.out, "settled"), HasSubstr("600.00"));
  EXPECT_THAT(LineWith(one.out, "reversed"), HasSubstr("100.00"));
  EXPECT_THAT(LineWith(one.out, "net"), HasSubstr("500.00"));
  EXPECT_THAT(LineWith(one.out, "req-S-2"), HasSubstr("200.00"));
  EXPECT_THAT(one.out, HasSubstr("--page-token page-2"));
  EXPECT_THAT(one.out, Not(HasSubstr("S-3")));

  const Result all = Cli({"--json", "reconcile", "--date", "2025-03-18", "--all-pages"});
  ASSERT_EQ(all.code, 0) << all.err;
  v1::ReconcileResponse merged;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(all.out, &merged).ok()) << all.out;
  ASSERT_EQ(merged.detail_size(), 3);
  EXPECT_EQ(merged.detail(2).settlement_id(), "S-3");
  EXPECT_EQ(merged.net().count(), 2);
  EXPECT_EQ(merged.next_page_token(), "");

  const std::vector<v1::ReconcileRequest> requests = service_.reconcile_requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].page_size(), 2);
  EXPECT_TRUE(requests[0].include_detail());
  EXPECT_EQ(requests[1].page_token(), "");
  EXPECT_TRUE(requests[1].include_detail());  // --all-pages implies --detail
  EXPECT_EQ(requests[2].page_token(), "page-2");
}

TEST_F(CliTest, ReconcileStopsWhenTheServiceRepeatsAPageToken) {
  v1::ReconcileResponse loop;
  loop.set_next_page_token("again");
  service_.reconcile_pages = {{"", loop}, {"again", loop}};
  const Result r = Cli({"reconcile", "--date", "2025-03-18", "--all-pages"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("repeated page token again"));
}

TEST_F(CliTest, HealthUsesTheHealthServiceWithoutAnInstitution) {
  const Result r = CliRaw({"--target", Target(), "--insecure-dev", "health"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("SERVING"));
  EXPECT_THAT(r.out, HasSubstr("grpc.health.v1"));
  const Result json = CliRaw({"--target", Target(), "--insecure-dev", "--json", "health"});
  EXPECT_EQ(json.out, "{\"status\":\"SERVING\"}\n");
  // A service name the server does not know.
  const Result unknown = CliRaw(
      {"--target", Target(), "--insecure-dev", "health", "--service", "no.such.Service"});
  EXPECT_EQ(unknown.code, 1);
  EXPECT_THAT(unknown.err, HasSubstr("NOT_FOUND"));
  EXPECT_TRUE(service_.calls().empty());
}

TEST_F(CliTest, HealthFallsBackToAProbeWhenTheServerHasNoHealthService) {
  StopServer();
  StartServer(/*health=*/false);
  const Result r = Cli({"health"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("SERVING"));
  EXPECT_THAT(r.out, HasSubstr("GetSettlement probe with INVALID_ARGUMENT"));
  ASSERT_EQ(service_.calls().size(), 1u);
  EXPECT_EQ(service_.calls()[0].institution, kInstitution);
}

TEST_F(CliTest, HealthOfAnUnreachableTargetExitsThree) {
  const Result r = CliRaw(
      {"--target", "127.0.0.1:" + std::to_string(ClosedPort()), "--insecure-dev", "health"});
  EXPECT_EQ(r.code, 3);
  EXPECT_THAT(r.err, HasSubstr("could not reach"));
}

// ---- Mutual TLS -------------------------------------------------------------

class CliTlsTest : public CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    if (HasFatalFailure()) return;
    StopServer();
    StartTlsServer();
  }
  // --ca, --cert and --key of `base` (relative to the PKI), then `args`.
  Result Tls(const std::string& base, std::vector<std::string> args,
             const std::string& target = "") {
    std::vector<std::string> full = {"--target", target.empty() ? Target() : target,
                                     "--ca", Pki() + "/ca.pem",
                                     "--cert", Pki() + "/" + base + ".pem",
                                     "--key", Pki() + "/" + base + ".key.pem"};
    full.insert(full.end(), args.begin(), args.end());
    return CliRaw(full);
  }
};

TEST_F(CliTlsTest, TheCertificateIdentifiesTheCallerAndNoHeaderIsSent) {
  const Result r = Tls(kInstitution, {"get", "--settlement-id", "S-1"});
  ASSERT_EQ(r.code, 0) << r.err;
  const Result health = Tls(kInstitution, {"health"});
  EXPECT_EQ(health.code, 0) << health.err;
  // The server's name is checked against the target's host: localhost is
  // in the development certificate too.
  const Result by_name =
      Tls(kInstitution, {"get", "--settlement-id", "S-2"}, "localhost:" + std::to_string(port_));
  EXPECT_EQ(by_name.code, 0) << by_name.err;
  const std::vector<FakeSettlementService::Call> calls = service_.calls();
  ASSERT_EQ(calls.size(), 2u);
  for (const FakeSettlementService::Call& call : calls) {
    EXPECT_EQ(call.institution, "<absent>");
    EXPECT_EQ(call.peer_cn, kInstitution);
  }
}

TEST_F(CliTlsTest, TheFilesMayComeFromTheEnvironment) {
  env_vars_ = {{"MEDSETTLE_TARGET", Target()},
               {"MEDSETTLE_CA", Pki() + "/ca.pem"},
               {"MEDSETTLE_CERT", Pki() + "/" + kInstitution + ".pem"},
               {"MEDSETTLE_KEY", Pki() + "/" + kInstitution + ".key.pem"},
               {"MEDSETTLE_INSTITUTION", "IGNORED"}};  // mutual TLS ignores it
  const Result r = CliRaw({"get", "--settlement-id", "S-1"});
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_EQ(service_.calls().size(), 1u);
  EXPECT_EQ(service_.calls()[0].institution, "<absent>");
  EXPECT_EQ(service_.calls()[0].peer_cn, kInstitution);
}

TEST_F(CliTlsTest, RefusedCertificatesAndWrongNamesExitThreeWithAHint) {
  const std::string port = std::to_string(port_);
  struct Case {
    std::string name;
    std::string base;
    std::vector<std::string> extra;
  };
  const std::vector<Case> cases = {
      {"expired", std::string("expired/") + kInstitution, {}},
      {"another CA", std::string("other-ca/") + kInstitution, {}},
      {"server name", kInstitution, {"--tls-server-name", "gateway.example.org"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::vector<std::string> args = c.extra;
    args.insert(args.end(), {"--timeout-ms", "3000", "get", "--settlement-id", "S-1"});
    const Result r = Tls(c.base, args);
    EXPECT_EQ(r.code, 3) << r.err;
    EXPECT_THAT(r.err, HasSubstr("error: UNAVAILABLE"));
    EXPECT_THAT(r.err, HasSubstr("TLS handshake")) << r.err;
  }
  EXPECT_TRUE(service_.calls().empty());
}

TEST_F(CliTlsTest, TransportFlagMistakesAreUsageErrors) {
  const std::string ca = Pki() + "/ca.pem";
  const std::string cert = Pki() + "/" + kInstitution + ".pem";
  const std::string key = Pki() + "/" + kInstitution + ".key.pem";
  const std::pair<std::vector<std::string>, const char*> cases[] = {
      {{"--ca", ca, "--cert", cert, "--key", key, "--institution", kInstitution},
       "--institution applies to --insecure-dev"},
      {{"--ca", ca, "--cert", cert}, "missing --key"},
      {{"--cert", cert, "--key", key}, "missing --ca"},
      {{"--ca", ca, "--cert", "/nonexistent.pem", "--key", key}, "cannot read --cert"},
      {{"--ca", key + ".missing", "--cert", cert, "--key", key}, "cannot read --ca"},
      {{"--ca", WriteTemp("empty.pem", "nothing\n"), "--cert", cert, "--key", key},
       "holds no PEM block"},
      {{"--insecure-dev", "--institution", kInstitution, "--cert", cert},
       "--cert cannot be combined with --insecure-dev"},
  };
  for (const auto& [transport, message] : cases) {
    std::vector<std::string> args = {"--target", Target()};
    args.insert(args.end(), transport.begin(), transport.end());
    args.insert(args.end(), {"get", "--settlement-id", "S-1"});
    const Result r = CliRaw(args);
    EXPECT_EQ(r.code, 2) << ::testing::PrintToString(args) << "\n" << r.err;
    EXPECT_THAT(r.err, HasSubstr(message)) << ::testing::PrintToString(args);
  }
  EXPECT_TRUE(service_.calls().empty());
}

TEST(CliHealthCodec, EncodesTheRequestAndDecodesTheResponse) {
  EXPECT_EQ(cli::EncodeHealthCheckRequest(""), "");
  EXPECT_EQ(cli::EncodeHealthCheckRequest("a.B"), std::string("\x0a\x03" "a.B", 5));
  const std::string long_name(200, 'x');
  const std::string encoded = cli::EncodeHealthCheckRequest(long_name);
  EXPECT_EQ(encoded.substr(0, 3), std::string("\x0a\xc8\x01", 3));  // varint 200
  EXPECT_EQ(cli::DecodeHealthCheckResponse(""), 0);
  EXPECT_EQ(cli::DecodeHealthCheckResponse(std::string("\x08\x01", 2)), 1);
  EXPECT_EQ(cli::DecodeHealthCheckResponse(std::string("\x08\x02", 2)), 2);
  EXPECT_EQ(cli::DecodeHealthCheckResponse(std::string("\x08", 1)), std::nullopt);
}

TEST(CliItems, AmountIsQuantityTimesPriceRoundedHalfUpExactly) {
  struct Case {
    const char* spec;
    int64_t unit_price_cents;
    int64_t amount_cents;
  };
  const Case cases[] = {
      {"A:1:0.01", 1, 1},
      {"A:0.5:0.01", 1, 1},          // 0.5 分 rounds up
      {"A:0.4999:0.01", 1, 0},
      {"A:3:0.1", 10, 30},           // no 0.1 × 3 float error
      {"A:1.0005:100", 10000, 10005},
      {"A:2.5:23.47", 2347, 5868},
      {"A:1000000:9999.99", 999999, 999999000000},
  };
  for (const Case& c : cases) {
    absl::StatusOr<v1::BillItem> item = cli::ParseItem(c.spec, 1);
    ASSERT_TRUE(item.ok()) << c.spec << ": " << item.status();
    EXPECT_EQ(item->unit_price_cents(), c.unit_price_cents) << c.spec;
    EXPECT_EQ(item->amount_cents(), c.amount_cents) << c.spec;
  }
  EXPECT_FALSE(cli::ParseItem("A:1:-1", 1).ok());
  EXPECT_FALSE(cli::ParseItem("A:1.23456:1", 1).ok());
  EXPECT_FALSE(cli::ParseItem("A:10000000:1000000", 1).ok());  // above 10^12 分
}

TEST(CliArgs, VisitTypesAndSpecialtiesByShortOrFullName) {
  const std::pair<const char*, v1::VisitType> visits[] = {
      {"inpatient", v1::VISIT_TYPE_INPATIENT},
      {"general", v1::VISIT_TYPE_GENERAL_OUTPATIENT},
      {"chronic", v1::VISIT_TYPE_CHRONIC_OUTPATIENT},
      {"special", v1::VISIT_TYPE_SPECIAL_OUTPATIENT},
      {"prenatal", v1::VISIT_TYPE_PRENATAL_CHECK},
      {"natural", v1::VISIT_TYPE_DELIVERY_NATURAL},
      {"caesarean", v1::VISIT_TYPE_DELIVERY_CAESAREAN},
      {"VISIT_TYPE_INPATIENT", v1::VISIT_TYPE_INPATIENT},
  };
  for (const auto& [text, type] : visits) {
    absl::StatusOr<v1::VisitType> parsed = cli::ParseVisitType(text);
    ASSERT_TRUE(parsed.ok()) << text;
    EXPECT_EQ(*parsed, type) << text;
  }
  EXPECT_FALSE(cli::ParseVisitType("VISIT_TYPE_UNSPECIFIED").ok());
  EXPECT_EQ(*cli::ParseSpecialty("psychiatry"), v1::SPECIALTY_PSYCHIATRY);
  EXPECT_EQ(*cli::ParseSpecialty("pediatrics"), v1::SPECIALTY_PEDIATRICS);
  EXPECT_EQ(*cli::ParseSpecialty("tcm"), v1::SPECIALTY_TCM);
  EXPECT_FALSE(cli::ParseSpecialty("SPECIALTY_UNSPECIFIED").ok());
}

TEST(CliExitCodes, UnavailableAndDeadlineAreNoAnswerTheRestRefusals) {
  EXPECT_EQ(cli::ExitCodeFor(grpc::StatusCode::OK), 0);
  EXPECT_EQ(cli::ExitCodeFor(grpc::StatusCode::UNAVAILABLE), 3);
  EXPECT_EQ(cli::ExitCodeFor(grpc::StatusCode::DEADLINE_EXCEEDED), 3);
  for (grpc::StatusCode code :
       {grpc::StatusCode::INVALID_ARGUMENT, grpc::StatusCode::FAILED_PRECONDITION,
        grpc::StatusCode::PERMISSION_DENIED, grpc::StatusCode::UNAUTHENTICATED,
        grpc::StatusCode::ALREADY_EXISTS, grpc::StatusCode::INTERNAL,
        grpc::StatusCode::UNIMPLEMENTED}) {
    EXPECT_EQ(cli::ExitCodeFor(code), 1) << code;
  }
}

}  // namespace
}  // namespace medsettle
