#include "tests/support/gateway_harness.h"

#include <cstdio>
#include <fstream>

#include "engine/status.h"
#include "engine/text.h"

namespace medsettle::testing {

using engine::Cat;

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

absl::StatusOr<std::unique_ptr<GatewayHarness>> GatewayHarness::Start(
    const std::vector<SnapshotPerson>& persons,
    const std::vector<engine::Institution>& institutions,
    std::function<void(gateway::GatewayConfig&)> adjust) {
  std::unique_ptr<GatewayHarness> h(new GatewayHarness());
  absl::StatusOr<std::unique_ptr<RedisServer>> redis = RedisServer::Start();
  if (!redis.ok()) return redis.status();
  h->redis_ = *std::move(redis);

  // A fixed test secret (tests only; production keys come from urandom).
  const std::string secret = "medsettle-test-secret-0123456789abcdef";
  h->key_file_ = h->redis_->dir() + "/person-key";
  {
    std::ofstream out(h->key_file_, std::ios::binary);
    out << secret;
  }
  absl::StatusOr<cache::PersonKeyer> keyer = cache::PersonKeyer::Create(secret);
  if (!keyer.ok()) return keyer.status();
  h->keyer_ = std::make_unique<cache::PersonKeyer>(*std::move(keyer));

  cache::PoolOptions pool;
  pool.redis.host = h->redis_->host();
  pool.redis.port = h->redis_->port();
  pool.size = 4;
  h->pool_ = std::make_unique<cache::ConnectionPool>(pool);
  h->snapshots_ = std::make_unique<cache::SnapshotStore>(*h->pool_);
  if (!persons.empty() || !institutions.empty()) {
    absl::StatusOr<std::string> version = h->LoadSnapshot(persons, institutions);
    if (!version.ok()) return version.status();
  }

  gateway::GatewayConfig& c = h->config_;
  c.listen = "127.0.0.1:0";
  c.insecure_dev = true;
  c.redis_host = h->redis_->host();
  c.redis_port = h->redis_->port();
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
  stub_.reset();
  if (gateway_ != nullptr) gateway_->Shutdown();
  gateway_.reset();
  absl::StatusOr<std::unique_ptr<gateway::GatewayServer>> g =
      gateway::GatewayServer::Start(config_);
  if (!g.ok()) return g.status();
  gateway_ = *std::move(g);
  stub_ = v1::SettlementService::NewStub(NewChannel());
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<gateway::GatewayServer>> GatewayHarness::StartAnotherGateway()
    const {
  return gateway::GatewayServer::Start(config_);
}

std::shared_ptr<grpc::Channel> GatewayHarness::NewChannel() const {
  return ChannelTo(gateway_->port());
}

std::shared_ptr<grpc::Channel> GatewayHarness::ChannelTo(int port) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetMaxSendMessageSize(64 << 20);
  // A fresh connection per channel (no subchannel sharing between channels).
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(Cat("127.0.0.1:", port),
                                   grpc::InsecureChannelCredentials(), args);
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
