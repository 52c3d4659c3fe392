#include "tests/support/gateway_harness.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

#include "engine/status.h"
#include "engine/text.h"
#include "tests/support/engine_fixture.h"

namespace medsettle::testing {

using engine::Cat;

std::string QuzhouId(int sequence) { return MakeIdNumber("330800", D("1980-06-15"), sequence); }

v1::CheckCoverageRequest CoverageRequest(const std::string& id_number, const std::string& date) {
  v1::CheckCoverageRequest r;
  r.mutable_credential()->set_id_card_no(id_number);
  r.set_service_date(date);
  return r;
}

std::string Describe(const CallResult& c) {
  return Cat(static_cast<int>(c.code()), " ", c.reason, " ", c.status.error_message());
}

std::string MakeIdNumber(std::string_view region6, engine::Date birth, int sequence) {
  char body[64];
  std::snprintf(body, sizeof body, "%.6s%04d%02d%02d%03d", region6.data(), birth.year(),
                birth.month(), birth.day(), sequence % 1000);
  // GB 11643: weights 2^(17-i) mod 11; check = (12 - sum mod 11) mod 11, 10 = 'X'.
  static constexpr int kWeights[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
  int sum = 0;
  for (int i = 0; i < 17; ++i) sum += (body[i] - '0') * kWeights[i];
  const int check = (12 - sum % 11) % 11;
  std::string id(body, 17);
  id += check == 10 ? 'X' : static_cast<char>('0' + check);
  return id;
}

v1::BillItem* AddBillItem(v1::SettleRequest* request, std::string code, int64_t unit_price_cents,
                          int quantity) {
  v1::BillItem* item = request->add_items();
  item->set_line_no(request->items_size());
  item->set_code(std::move(code));
  item->set_name(item->code());
  item->set_quantity(Cat(quantity));
  item->set_unit_price_cents(unit_price_cents);
  item->set_amount_cents(unit_price_cents * quantity);
  return item;
}

v1::SettleRequest InpatientBill(std::string request_id, std::string id_number, int lines,
                                int year) {
  v1::SettleRequest r;
  r.set_request_id(std::move(request_id));
  r.mutable_credential()->set_id_card_no(std::move(id_number));
  v1::Visit* v = r.mutable_visit();
  v->set_type(v1::VISIT_TYPE_INPATIENT);
  v->set_admission_date(Cat(year, "-06-03"));
  v->set_discharge_date(Cat(year, "-06-12"));
  static constexpr const char* kCodes[] = {"FB0003", "FA0003", "FA0002"};
  static constexpr int64_t kPrices[] = {120000, 4800, 2350};
  for (int i = 0; i < lines; ++i) AddBillItem(&r, kCodes[i % 3], kPrices[i % 3]);
  return r;
}

v1::SettleRequest GeneralOutpatientBill(std::string request_id, std::string id_number,
                                        int quantity) {
  v1::SettleRequest r;
  r.set_request_id(std::move(request_id));
  r.mutable_credential()->set_id_card_no(std::move(id_number));
  r.mutable_visit()->set_type(v1::VISIT_TYPE_GENERAL_OUTPATIENT);
  r.mutable_visit()->set_service_date("2024-06-20");
  AddBillItem(&r, "FA0002", 2350, quantity);
  AddBillItem(&r, "FA0003", 4800, 1);
  return r;
}

std::vector<SnapshotPerson> QuzhouPersons2024(int count) {
  std::vector<SnapshotPerson> all;
  for (int i = 1; i <= count; ++i) {
    engine::Enrollment e = Person(330800, 2024, 0);
    e.chronic_conditions = {"HYPERTENSION"};
    all.push_back({QuzhouId(i), e});
  }
  return all;
}

namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The PKIs made in this process, by their institution list: making one
// takes about a second of openssl, so the tests of a suite share it (they
// only read it; the gateway reads copies). Removed when the process exits.
class PkiCache {
 public:
  ~PkiCache() {
    std::error_code ignored;
    if (!root_.empty()) std::filesystem::remove_all(root_, ignored);
  }

  // deploy/pki/make-dev-pki.sh --test-certs for `ids`, once; its folder.
  absl::StatusOr<std::string> For(const std::set<std::string>& ids) {
    std::lock_guard<std::mutex> lock(mutex_);
    std::string key;
    for (const std::string& id : ids) key += id + " ";
    if (auto it = dirs_.find(key); it != dirs_.end()) return it->second;
    if (root_.empty()) {
      char path[] = "/tmp/medsettle-test-pki-XXXXXX";
      if (mkdtemp(path) == nullptr) return absl::InternalError("mkdtemp failed");
      root_ = path;
    }
    const std::string dir = Cat(root_, "/", static_cast<int64_t>(dirs_.size()));
    std::string command = Cat("bash '", MEDSETTLE_SOURCE_DIR, "/deploy/pki/make-dev-pki.sh' ",
                              "--test-certs '", dir, "'");
    for (const std::string& id : ids) command += Cat(" '", id, "'");
    const std::string log = dir + ".log";
    command += Cat(" >'", log, "' 2>&1");
    if (std::system(command.c_str()) != 0) {
      return absl::InternalError(Cat("make-dev-pki.sh failed: ", ReadFile(log)));
    }
    dirs_.emplace(key, dir);
    return dir;
  }

 private:
  std::mutex mutex_;
  std::string root_;                          // guarded by mutex_
  std::map<std::string, std::string> dirs_;  // guarded by mutex_
};

PkiCache& Pkis() {
  static PkiCache cache;  // destroyed at exit: removes the folders
  return cache;
}

}  // namespace

absl::StatusOr<std::unique_ptr<GatewayHarness>> GatewayHarness::Start(
    const std::vector<SnapshotPerson>& persons,
    const std::vector<engine::Institution>& institutions,
    std::function<void(gateway::GatewayConfig&)> adjust, HarnessOptions options) {
  std::unique_ptr<GatewayHarness> h(new GatewayHarness());
  if (options.cluster) {
    absl::StatusOr<std::unique_ptr<RedisCluster>> cluster = RedisCluster::Start();
    if (!cluster.ok()) return cluster.status();
    h->cluster_ = *std::move(cluster);
  } else {
    absl::StatusOr<std::unique_ptr<RedisServer>> redis = RedisServer::Start();
    if (!redis.ok()) return redis.status();
    h->redis_ = *std::move(redis);
  }
  const std::string dir = options.cluster ? h->cluster_->node(0).dir() : h->redis_->dir();

  // A fixed test secret (tests only; production keys come from urandom).
  const std::string secret = "medsettle-test-secret-0123456789abcdef";
  h->key_file_ = dir + "/person-key";
  {
    std::ofstream out(h->key_file_, std::ios::binary);
    out << secret;
  }
  absl::StatusOr<cache::PersonKeyer> keyer = cache::PersonKeyer::Create(secret);
  if (!keyer.ok()) return keyer.status();
  h->keyer_ = std::make_unique<cache::PersonKeyer>(*std::move(keyer));

  if (options.cluster) {
    cache::ClusterOptions cluster;
    absl::StatusOr<std::vector<cache::NodeAddress>> seeds =
        cache::ParseNodeList(h->cluster_->Seeds());
    if (!seeds.ok()) return seeds.status();
    cluster.seeds = *std::move(seeds);
    cluster.command_timeout_ms = 2000;
    absl::StatusOr<std::unique_ptr<cache::ClusterClient>> client =
        cache::ClusterClient::Connect(cluster);
    if (!client.ok()) return client.status();
    h->cluster_client_ = *std::move(client);
  } else {
    cache::PoolOptions pool;
    pool.redis.host = h->redis_->host();
    pool.redis.port = h->redis_->port();
    pool.size = 4;
    h->pool_ = std::make_unique<cache::ConnectionPool>(pool);
  }
  h->snapshots_ = std::make_unique<cache::SnapshotStore>(h->client());
  if (!persons.empty() || !institutions.empty()) {
    absl::StatusOr<std::string> version = h->LoadSnapshot(persons, institutions);
    if (!version.ok()) return version.status();
  }

  gateway::GatewayConfig& c = h->config_;
  c.listen = "127.0.0.1:0";
  c.metrics_listen = "127.0.0.1:0";  // never a fixed port: tests run side by side
  // Health follows Redis within about a second (the node monitor's probe).
  c.redis_node_probe_ms = 250;
  c.insecure_dev = !options.tls;
  h->log_sink_ = options.log_sink;
  c.rate_limit = {0, 0};  // unlimited: the suites make many calls quickly
  if (options.tls) {
    h->tls_ = true;
    h->tls_dir_ = dir + "/tls";
    std::set<std::string> ids(options.extra_certificates.begin(),
                              options.extra_certificates.end());
    for (const engine::Institution& i : institutions) ids.insert(i.institution_id);
    absl::StatusOr<std::string> pki = Pkis().For(ids);
    if (!pki.ok()) return pki.status();
    h->pki_dir_ = *pki;
    std::error_code error;
    std::filesystem::create_directories(h->tls_dir_, error);
    const std::pair<const char*, const char*> copies[] = {
        {"server.pem", "server.pem"}, {"server.key.pem", "server.key.pem"},
        {"ca.pem", "client-ca.pem"}};
    for (const auto& [from, to] : copies) {
      std::filesystem::copy_file(h->pki_dir_ + "/" + from, h->tls_dir_ + "/" + to,
                                 std::filesystem::copy_options::overwrite_existing, error);
      if (error) return absl::InternalError(Cat("cannot copy ", from, ": ", error.message()));
    }
    c.tls_cert_file = h->tls_dir_ + "/server.pem";
    c.tls_key_file = h->tls_dir_ + "/server.key.pem";
    c.tls_client_ca_file = h->tls_dir_ + "/client-ca.pem";
    if (options.crl) {
      // The links openssl rehash made are relative: they hold in the copy.
      std::filesystem::copy(h->pki_dir_ + "/crl", h->tls_dir_ + "/crl",
                            std::filesystem::copy_options::recursive |
                                std::filesystem::copy_options::copy_symlinks,
                            error);
      if (error) return absl::InternalError(Cat("cannot copy crl/: ", error.message()));
      c.tls_crl_dir = h->tls_dir_ + "/crl";
    }
  }
  if (options.cluster) {
    c.redis_mode = "cluster";
    c.redis_address = h->cluster_->Seeds();
  } else {
    c.redis_address = Cat(h->redis_->host(), ":", h->redis_->port());
  }
  c.redis_pool_size = 8;
  c.worker_threads = 8;
  c.snapshot_refresh_ms = 50;
  c.drain_timeout_ms = 5000;
  c.key_file = h->key_file_;
  c.catalog_file = std::string(MEDSETTLE_SOURCE_DIR) + "/engine/catalog/demo-catalog.csv";
  c.policy_dir = std::string(MEDSETTLE_SOURCE_DIR) + "/engine/policies";
  if (adjust) adjust(c);
  if (absl::Status s = gateway::ValidateConfig(c); !s.ok()) return s;
  if (absl::Status s = h->RestartGateway(); !s.ok()) return s;
  return h;
}

GatewayHarness::~GatewayHarness() {
  {
    std::lock_guard<std::mutex> lock(stubs_mutex_);
    stubs_.clear();
  }
  stub_.reset();
  if (gateway_ != nullptr) gateway_->Shutdown();
  gateway_.reset();
}

std::string GatewayHarness::PersonKey(std::string_view id_number) const {
  absl::StatusOr<std::string> key = keyer_->KeyOfIdNumber(id_number);
  return key.ok() ? *key : std::string();
}

absl::StatusOr<std::string> GatewayHarness::LoadSnapshot(
    const std::vector<SnapshotPerson>& persons,
    const std::vector<engine::Institution>& institutions) {
  std::vector<engine::Enrollment> records;
  records.reserve(persons.size());
  for (const SnapshotPerson& p : persons) {
    records.push_back(p.enrollment);
    absl::StatusOr<std::string> key = keyer_->KeyOfIdNumber(p.id_number);
    if (!key.ok()) return key.status();
    records.back().person_key = *key;
  }
  absl::StatusOr<std::string> version = snapshots_->BeginLoad();
  if (!version.ok()) return version.status();
  absl::StatusOr<int64_t> written = snapshots_->PutPersons(*version, records);
  if (!written.ok()) return written.status();
  absl::StatusOr<int64_t> inst = snapshots_->PutInstitutions(*version, institutions);
  if (!inst.ok()) return inst.status();
  if (absl::Status s = snapshots_->Commit(*version, {*written, *inst}, "test"); !s.ok()) {
    return s;
  }
  return version;
}

absl::Status GatewayHarness::RestartGateway() {
  {
    std::lock_guard<std::mutex> lock(stubs_mutex_);
    stubs_.clear();  // they name the old port
  }
  stub_.reset();
  if (gateway_ != nullptr) gateway_->Shutdown();
  gateway_.reset();
  absl::StatusOr<std::unique_ptr<gateway::GatewayServer>> g =
      gateway::GatewayServer::Start(config_, {.log_sink = log_sink_});
  if (!g.ok()) return g.status();
  gateway_ = *std::move(g);
  stub_ = v1::SettlementService::NewStub(NewChannel());  // TLS: no client certificate
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<gateway::GatewayServer>> GatewayHarness::StartAnotherGateway()
    const {
  return gateway::GatewayServer::Start(config_, {.log_sink = log_sink_});
}

std::shared_ptr<grpc::Channel> GatewayHarness::NewChannel(std::string_view institution) const {
  if (!tls_) return ChannelTo(gateway_->port());
  if (institution.empty()) return TlsChannelTo(gateway_->port(), pki_dir_ + "/ca.pem", "", "");
  const std::string base = Cat(pki_dir_, "/", institution);
  return TlsChannelTo(gateway_->port(), pki_dir_ + "/ca.pem", base + ".pem", base + ".key.pem");
}

std::shared_ptr<grpc::Channel> GatewayHarness::Connected(std::shared_ptr<grpc::Channel> channel) {
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
    return nullptr;
  }
  return channel;
}

v1::SettlementService::Stub& GatewayHarness::StubFor(std::string_view institution) {
  if (!tls_) return *stub_;
  std::lock_guard<std::mutex> lock(stubs_mutex_);
  auto it = stubs_.find(institution);
  if (it == stubs_.end()) {
    it = stubs_
             .emplace(std::string(institution),
                      v1::SettlementService::NewStub(NewChannel(institution)))
             .first;
  }
  return *it->second;
}

namespace {

grpc::ChannelArguments HarnessChannelArgs() {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetMaxSendMessageSize(64 << 20);
  // A fresh connection per channel (no subchannel sharing between channels).
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return args;
}

}  // namespace

std::shared_ptr<grpc::Channel> GatewayHarness::ChannelTo(int port) {
  return grpc::CreateCustomChannel(Cat("127.0.0.1:", port),
                                   grpc::InsecureChannelCredentials(), HarnessChannelArgs());
}

std::shared_ptr<grpc::Channel> GatewayHarness::TlsChannelTo(int port, const std::string& ca_file,
                                                            const std::string& cert_file,
                                                            const std::string& key_file,
                                                            const std::string& server_name) {
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = ReadFile(ca_file);
  if (!cert_file.empty()) tls.pem_cert_chain = ReadFile(cert_file);
  if (!key_file.empty()) tls.pem_private_key = ReadFile(key_file);
  grpc::ChannelArguments args = HarnessChannelArgs();
  if (!server_name.empty()) args.SetSslTargetNameOverride(server_name);
  return grpc::CreateCustomChannel(Cat("127.0.0.1:", port), grpc::SslCredentials(tls), args);
}

void GatewayHarness::FillTrailers(const grpc::ClientContext& context, CallResult* result) {
  const auto& trailers = context.GetServerTrailingMetadata();
  if (auto it = trailers.find("medsettle-reason"); it != trailers.end()) {
    result->reason.assign(it->second.data(), it->second.size());
  }
  if (auto it = trailers.find("medsettle-field"); it != trailers.end()) {
    result->field.assign(it->second.data(), it->second.size());
  }
}

}  // namespace medsettle::testing
