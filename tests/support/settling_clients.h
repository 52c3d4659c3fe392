// Test support for fault tests of the gateway (gateway_cluster_test,
// cluster_fault_test): clients that settle as HIS systems are told to
// (docs/API.md) — a call without a definite answer is sent again, with the
// same request id, until it is answered — and a reference model of what
// the gateway acknowledged, checked at the end against what the gateway
// reports (nothing acknowledged lost, nothing paid twice).
//
// The model's rule: each person is settled by one client at a time, so
// the answers of a person's calls arrive in the order they were made, and
// the last answer's year to date is the person's year. Thread-safe.
#ifndef MEDSETTLE_TESTS_SUPPORT_SETTLING_CLIENTS_H_
#define MEDSETTLE_TESTS_SUPPORT_SETTLING_CLIENTS_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "medsettle/v1/service.grpc.pb.h"
#include "tests/support/gateway_harness.h"

namespace medsettle::testing {

// Whether a call's outcome is unknown, so that the client must send the
// same request again: UNAVAILABLE (Redis or the cluster mid-change, a
// replica that did not confirm, a gateway gone), DEADLINE_EXCEEDED,
// CANCELLED and UNKNOWN (a connection broken mid-call), ABORTED (the
// accumulators kept moving), RESOURCE_EXHAUSTED (the gateway is busy).
bool OutcomeUnknown(grpc::StatusCode code);

// The gateway configuration of the failover tests: a commit is
// acknowledged only once a replica confirmed it (replica_acks 1), with
// Redis and call timeouts that outlast a test cluster's failover (node
// timeout 1 s) without holding a re-sending client too long.
void UseReplicaAcksForFailover(gateway::GatewayConfig& c);

struct ResendPolicy {
  int call_timeout_ms = 5000;  // each attempt's deadline
  int give_up_ms = 30000;      // then the call stays unanswered (a test failure)
  int pause_ms = 50;           // between attempts
};

// How CallUntilAnswered ended: `last` is the answer (ok or a definite
// refusal), or the last unknown outcome when it gave up.
struct Answered {
  CallResult last;
  int resent = 0;  // attempts after the first
  bool gave_up() const { return !last.ok() && OutcomeUnknown(last.code()); }
};

// Sends `request` until it is answered (or policy.give_up_ms passed).
template <typename Request, typename Response>
Answered CallUntilAnswered(v1::SettlementService::Stub& stub,
                           GatewayHarness::Rpc<Request, Response> rpc, std::string_view institution,
                           const Request& request, Response* response,
                           const ResendPolicy& policy = {}) {
  const auto give_up =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(policy.give_up_ms);
  Answered answered;
  while (true) {
    response->Clear();
    answered.last =
        GatewayHarness::Call(stub, rpc, institution, request, response, policy.call_timeout_ms);
    if (!answered.gave_up() || std::chrono::steady_clock::now() >= give_up) return answered;
    ++answered.resent;
    std::this_thread::sleep_for(std::chrono::milliseconds(policy.pause_ms));
  }
}

// Every amount of an Accumulators or Amounts message by name
// ("ledgers[LEDGER_GENERAL_OUTPATIENT].fund_paid_cents"), zeros left out,
// so that two can be added and compared whatever fields the contract
// gains. Identity fields (person_key, year) and the version are not
// amounts and are left out too.
using Totals = std::map<std::string, int64_t>;
void AddTotals(const google::protobuf::Message& message, int64_t sign, Totals* totals);

// What the gateway acknowledged, per person (the reference model), and
// the checks of it against the gateway.
class AcknowledgedModel {
 public:
  // A settlement answered OK. The first answer for its request id is the
  // settlement; a later one (a deliberate re-send) must replay it (same
  // settlement id) and changes nothing. Failures are gtest failures that
  // name `context` (e.g. the seed).
  void Settled(int person, const v1::SettleResponse& response);
  // A reversal answered OK; a later answer for the same settlement must
  // name the same reversal and changes nothing.
  void Reversed(int person, const v1::ReverseResponse& response);

  // The acknowledged settlements (reversed or not) and reversals.
  size_t settlements() const;
  size_t reversals() const;
  // Settlement ids of `person` not reversed yet, oldest first.
  std::vector<std::string> Unreversed(int person) const;
  // The acknowledged requests: request id → settlement id.
  std::map<std::string, std::string> Requests() const;

  // The checks, as gtest expectations naming `context`:
  //  - each person's year to date (CheckCoverage, as `institution`) is the
  //    last acknowledged answer's, equals the sum of the acknowledged
  //    settlements' deltas minus the reversed ones', and its version counts
  //    exactly the acknowledged settlements and reversals (a lost
  //    settlement leaves less, a double payment more);
  //  - every acknowledged settlement's record (GetSettlement) names its
  //    request and says whether it was reversed;
  //  - `institution`'s Reconcile of `date` counts exactly the acknowledged
  //    settlements and reversals, with their amounts.
  // `id_number` gives a person's ID number. REQUIRES: every settlement was
  // made by `institution` on `date`.
  void ExpectGatewayHolds(GatewayHarness& h, const std::string& institution,
                          const std::string& date,
                          const std::function<std::string(int person)>& id_number,
                          const std::string& context) const;

  void set_context(std::string context);  // for failures while recording

 private:
  struct Person {
    std::string year_to_date;             // serialized, of the last answer
    Totals totals;                        // sum of the acknowledged deltas
    int64_t changes = 0;                  // acknowledged settlements + reversals
    std::vector<std::string> unreversed;  // settlement ids
  };
  mutable std::mutex mutex_;
  std::string context_;                              // guarded by mutex_
  std::map<int, Person> persons_;                    // guarded by mutex_
  std::map<std::string, std::string> requests_;      // request id → settlement id; guarded
  std::map<std::string, Totals> deltas_;             // settlement id → its delta; guarded
  std::map<std::string, Totals> amounts_;            // settlement id → its amounts; guarded
  std::map<std::string, std::string> reversal_ids_;  // settlement id → reversal id; guarded
};

// Client threads that settle `persons` in rounds until Stop: each person
// belongs to one client (persons[i] to client i % clients), which settles
// its persons one after another, `request(person, round)` each, re-sending
// until answered, and records every answer in `model`.
class SettlingClients {
 public:
  struct Options {
    int clients = 4;
    std::vector<int> persons;
    std::string institution;
    std::function<v1::SettleRequest(int person, int round)> request;
    ResendPolicy resend;
    // Called after each acknowledged settlement (on a client thread).
    std::function<void(int person)> on_acknowledged;
    // A client's pause after each answered call (0: none), so that a test
    // of a few seconds makes hundreds of settlements, not tens of thousands.
    int pause_between_calls_ms = 0;
  };
  SettlingClients(GatewayHarness& h, Options options, AcknowledgedModel& model);
  ~SettlingClients();  // Stop()

  // Lets each client finish its call and joins them. Idempotent.
  void Stop();

  int resent() const { return resent_.load(); }
  // Calls still without an answer after resend.give_up_ms.
  int unanswered() const { return unanswered_.load(); }
  // Calls refused (a definite answer other than OK): each is a gtest
  // failure too, since these tests send only valid bills.
  int refused() const { return refused_.load(); }

 private:
  void Run(GatewayHarness& h, int client);

  const Options options_;
  AcknowledgedModel& model_;
  std::atomic<bool> stop_{false};
  std::atomic<int> resent_{0}, unanswered_{0}, refused_{0};
  std::vector<std::thread> threads_;
};

}  // namespace medsettle::testing

#endif  // MEDSETTLE_TESTS_SUPPORT_SETTLING_CLIENTS_H_
