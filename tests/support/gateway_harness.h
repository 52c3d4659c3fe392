// Test support: a real gateway (gateway::GatewayServer, in-process, on a
// free loopback port) over a real redis-server of the test's own
// (tests/support/redis_server.h), with an enrollment snapshot loaded from
// the persons and institutions the test names. Clients are real gRPC stubs.
//
// Two transports (HarnessOptions::tls):
//   development (default)  plaintext; Call sends the institution in the
//                          x-medsettle-institution header (--insecure-dev)
//   mutual TLS             deploy/pki/make-dev-pki.sh --test-certs makes a
//                          PKI (once per process and institution list);
//                          Call(…, institution, …) uses a channel presenting
//                          that institution's client certificate (one cached
//                          channel per institution).
#ifndef MEDSETTLE_TESTS_SUPPORT_GATEWAY_HARNESS_H_
#define MEDSETTLE_TESTS_SUPPORT_GATEWAY_HARNESS_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "cache/connection_pool.h"
#include "cache/person_key.h"
#include "cache/snapshot_store.h"
#include "engine/types.h"
#include "gateway/config.h"
#include "gateway/gateway_server.h"
#include "medsettle/v1/service.grpc.pb.h"
#include "cache/cluster_client.h"
#include "tests/support/redis_cluster.h"
#include "tests/support/redis_server.h"

namespace medsettle::testing {

// An 18-character resident ID number with a valid GB 11643 check digit:
// region (6 digits) + birth date + sequence (3 digits).
std::string MakeIdNumber(std::string_view region6, engine::Date birth, int sequence);

// Appends a bill line of `quantity` × `unit_price_cents` of catalog `code`
// (line numbers follow the order of the items).
v1::BillItem* AddBillItem(v1::SettleRequest* request, std::string code, int64_t unit_price_cents,
                          int quantity = 1);

// An inpatient stay of `year` (admitted 06-03, discharged 06-12) with
// `lines` lines cycling through a procedure, a ward bed and a consultation
// of the demo catalog (3 lines: an ordinary bill).
v1::SettleRequest InpatientBill(std::string request_id, std::string id_number, int lines = 3,
                                int year = 2024);

// A general outpatient visit on 2024-06-20: `quantity` × FA0002 (23.50)
// and one FA0003 (48.00).
v1::SettleRequest GeneralOutpatientBill(std::string request_id, std::string id_number,
                                        int quantity);

// A Quzhou (330800) resident born 1980-06-15, by sequence number (the ID
// number has three digits for it: 1..999 are distinct persons).
std::string QuzhouId(int sequence);

// A coverage query for `id_number` on `date`.
v1::CheckCoverageRequest CoverageRequest(const std::string& id_number,
                                         const std::string& date = "2024-06-20");

// One person of the snapshot: the raw ID number a client sends, and the
// enrollment (person_key is filled in by the harness).
struct SnapshotPerson {
  std::string id_number;
  engine::Enrollment enrollment;
};

// QuzhouId(1) … QuzhouId(count), enrolled in Quzhou for 2024 with a
// certified hypertension (chronic outpatient).
std::vector<SnapshotPerson> QuzhouPersons2024(int count);

// What a call returned: the status, and the reason and field trailers.
struct CallResult {
  grpc::Status status;
  std::string reason;
  std::string field;
  bool ok() const { return status.ok(); }
  grpc::StatusCode code() const { return status.error_code(); }
};

struct HarnessOptions {
  // Mutual TLS instead of the development header (see the file comment).
  bool tls = false;
  // Institutions to issue certificates for besides the snapshot's (e.g.
  // one the registry does not know).
  std::vector<std::string> extra_certificates;
  // Mutual TLS: also check client certificates against CRLs
  // (tls.crl_dir): a copy of the PKI's crl/ (the CA's CRL, nothing
  // revoked) in tls_dir()/crl, where a test may publish more.
  bool crl = false;
  // A Redis Cluster of three primaries and three replicas
  // (tests/support/redis_cluster.h) instead of one server; the gateway runs
  // with redis.mode: cluster and the seeds of every node.
  bool cluster = false;
  // Where the gateway's JSON log lines go (every gateway the harness
  // starts); default stderr.
  std::function<void(std::string_view line)> log_sink;
};

// "code reason message" of a call, for failure messages.
std::string Describe(const CallResult& c);

class GatewayHarness {
 public:
  // Starts Redis, loads a snapshot of `persons` and `institutions`, starts
  // the gateway. `adjust` may change the configuration first (timeouts,
  // workers). The harness sets no rate limit (rate_limit 0 = unlimited)
  // unless `adjust` does. Errors name what failed; NOT_FOUND when
  // redis-server is not installed (callers skip).
  static absl::StatusOr<std::unique_ptr<GatewayHarness>> Start(
      const std::vector<SnapshotPerson>& persons,
      const std::vector<engine::Institution>& institutions,
      std::function<void(gateway::GatewayConfig&)> adjust = nullptr,
      HarnessOptions options = {});
  ~GatewayHarness();

  // One server (not HarnessOptions::cluster): the server and a pool to it.
  RedisServer& redis() { return *redis_; }
  cache::ConnectionPool& redis_client() { return *pool_; }
  // HarnessOptions::cluster: the cluster and a client of it.
  RedisCluster& cluster() { return *cluster_; }
  // Either way: what the rest of medsettle sees.
  cache::RedisClient& client() {
    return cluster_client_ != nullptr ? static_cast<cache::RedisClient&>(*cluster_client_)
                                      : static_cast<cache::RedisClient&>(*pool_);
  }
  gateway::GatewayServer& gateway() { return *gateway_; }
  cache::SnapshotStore& snapshot_store() { return *snapshots_; }
  const cache::PersonKeyer& keyer() const { return *keyer_; }
  const gateway::GatewayConfig& config() const { return config_; }
  std::string PersonKey(std::string_view id_number) const;

  // Mutual TLS mode: whether it is on, and the PKI make-dev-pki.sh made
  // (ca.pem, server.pem, <id>.pem and .key.pem, other-ca/, expired/,
  // cn-only/, crl/ and the test CRLs; shared by the harnesses of the
  // process: read only). The gateway reads its own copies of the server
  // certificate, key and client CA in tls_dir() (server.pem,
  // server.key.pem, client-ca.pem, and crl/ with HarnessOptions::crl), so a
  // test may replace them (rotation) or add CRLs.
  bool tls() const { return tls_; }
  const std::string& pki_dir() const { return pki_dir_; }
  const std::string& tls_dir() const { return tls_dir_; }

  // Loads a new snapshot version of these persons and institutions and
  // makes it current; returns the version.
  absl::StatusOr<std::string> LoadSnapshot(const std::vector<SnapshotPerson>& persons,
                                           const std::vector<engine::Institution>& institutions);

  // Stops the gateway (drain) and starts a new one on the same Redis with
  // the same configuration (a new port).
  absl::Status RestartGateway();

  // Another gateway on the same Redis and configuration (a new port), for
  // tests of several gateways at once.
  absl::StatusOr<std::unique_ptr<gateway::GatewayServer>> StartAnotherGateway() const;
  static std::shared_ptr<grpc::Channel> ChannelTo(int port);
  // A TLS channel to 127.0.0.1:port trusting `ca_file`, presenting
  // `cert_file` and `key_file` (none when empty); `server_name` overrides
  // the name checked against the server certificate.
  static std::shared_ptr<grpc::Channel> TlsChannelTo(int port, const std::string& ca_file,
                                                     const std::string& cert_file,
                                                     const std::string& key_file,
                                                     const std::string& server_name = "");

  // A new channel to the gateway (one per thread for concurrency tests);
  // in TLS mode presenting `institution`'s certificate (none when empty).
  std::shared_ptr<grpc::Channel> NewChannel(std::string_view institution = "") const;
  // `channel` once connected, or nullptr after 10 s. Tests that open many
  // channels at once connect them first: a call on a channel whose first
  // connection attempt failed (rarely, with dozens opening at once on a
  // loaded machine) fails fast with UNAVAILABLE for the whole reconnect
  // backoff instead of waiting.
  static std::shared_ptr<grpc::Channel> Connected(std::shared_ptr<grpc::Channel> channel);
  // Plaintext: the one stub. TLS: a stub without a client certificate.
  v1::SettlementService::Stub& stub() { return *stub_; }
  // The stub Call uses for `institution`: stub() in development mode; in
  // TLS mode one over a cached channel with the institution's certificate.
  v1::SettlementService::Stub& StubFor(std::string_view institution);

  template <typename Request, typename Response>
  using Rpc = grpc::Status (v1::SettlementService::Stub::*)(grpc::ClientContext*, const Request&,
                                                            Response*);

  // One call as `institution` (empty: no header) with a deadline. The
  // header is sent whatever the stub's channel (a TLS gateway ignores it).
  template <typename Request, typename Response>
  static CallResult Call(v1::SettlementService::Stub& stub, Rpc<Request, Response> rpc,
                         std::string_view institution, const Request& request,
                         Response* response, int timeout_ms = 20000) {
    grpc::ClientContext context;
    if (!institution.empty()) {
      context.AddMetadata("x-medsettle-institution", std::string(institution));
    }
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::milliseconds(timeout_ms));
    CallResult result;
    result.status = (stub.*rpc)(&context, request, response);
    FillTrailers(context, &result);
    return result;
  }
  template <typename Request, typename Response>
  CallResult Call(Rpc<Request, Response> rpc, std::string_view institution,
                  const Request& request, Response* response, int timeout_ms = 20000) {
    return Call(StubFor(institution), rpc, institution, request, response, timeout_ms);
  }

 private:
  GatewayHarness() = default;
  static void FillTrailers(const grpc::ClientContext& context, CallResult* result);

  std::unique_ptr<RedisServer> redis_;
  std::unique_ptr<RedisCluster> cluster_;
  std::unique_ptr<cache::ClusterClient> cluster_client_;
  std::string key_file_;
  gateway::GatewayConfig config_;
  std::unique_ptr<cache::PersonKeyer> keyer_;
  std::unique_ptr<cache::ConnectionPool> pool_;
  std::unique_ptr<cache::SnapshotStore> snapshots_;
  std::unique_ptr<gateway::GatewayServer> gateway_;
  std::unique_ptr<v1::SettlementService::Stub> stub_;

  bool tls_ = false;
  std::function<void(std::string_view)> log_sink_;  // HarnessOptions::log_sink
  std::string pki_dir_;
  std::string tls_dir_;
  std::mutex stubs_mutex_;
  // TLS mode: one stub per institution, for the current gateway's port;
  // guarded by stubs_mutex_.
  std::map<std::string, std::unique_ptr<v1::SettlementService::Stub>, std::less<>> stubs_;
};

}  // namespace medsettle::testing

#endif  // MEDSETTLE_TESTS_SUPPORT_GATEWAY_HARNESS_H_
