// Runs load against one target with gRPC's callback client API: a few
// channels (separate connections), calls started either by a scheduler
// thread at the times an open-loop Schedule says (latency from the time a
// call was due: no coordinated omission; beyond max_in_flight a due call is
// dropped and counted, never delayed) or, closed loop, by the completion of
// the previous call (latency from the send). Every completion is recorded
// in a histogram (measured calls only, after the warm-up), per scenario,
// per second, per status code and refusal reason (the medsettle-reason
// trailer).
//
// Requests are built ahead of their calls by a producer thread (the first
// 16,384 before the run's clock starts) and sent as bytes; a response is
// parsed only when its content is needed. What is sent is the same either
// way (request_builder.h).
//
// RunLoad blocks until every call it started has finished; it is safe to
// run several after one another (the paired floor mode). The result is
// plain data; report.h turns it into the LoadReport message.
#ifndef MEDSETTLE_TOOLS_LOADGEN_RUNNER_H_
#define MEDSETTLE_TOOLS_LOADGEN_RUNNER_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "tools/loadgen/histogram.h"
#include "tools/loadgen/request_builder.h"
#include "tools/loadgen/schedule.h"

namespace medsettle::loadgen {

enum class Method { kSettle, kPreSettle, kCheckCoverage, kReverse, kEcho };
std::string_view MethodName(Method m);  // "Settle", ..., "echo"
// Case-insensitive; INVALID_ARGUMENT naming --method.
absl::StatusOr<Method> ParseMethod(std::string_view text);

// What a call is, for the per-scenario figures.
enum class CallKind { kPharmacy, kOutpatient, kInpatient, kReverse, kSettleForReverse, kEcho };
inline constexpr int kCallKinds = 6;
std::string_view CallKindName(CallKind k);

// A client identity under mutual TLS: the institution its certificate names.
struct Identity {
  std::string institution_id;
  std::string cert_pem;
  std::string key_pem;
};

// The request header naming the institution to an --insecure-dev gateway,
// and the refusal trailer (as medsettle-cli: tools/cli/transport.h).
inline constexpr std::string_view kInstitutionHeader = "x-medsettle-institution";
inline constexpr std::string_view kReasonTrailer = "medsettle-reason";

struct RunConfig {
  Method method = Method::kSettle;
  std::string target = "127.0.0.1:50051";
  // Transport: plaintext with the header, or mutual TLS with one channel
  // set per identity.
  bool insecure_dev = false;
  std::string ca_pem;
  std::string tls_server_name;  // empty: the target's host
  std::vector<Identity> identities;
  int connections = 4;  // channels (per identity under TLS: ceil(connections / identities))

  // Load shape: open loop with a schedule, else closed loop.
  std::optional<Schedule> schedule;
  int concurrency = 50;
  double duration_s = 10;  // measured part; 0 when count is set
  uint64_t count = 0;      // measured calls; 0 when duration_s is set
  double warmup_s = 0;
  int max_in_flight = 10000;
  int timeout_ms = 20000;
  double retry_ratio = 0;
  uint64_t seed = 1;
  // The sequence number of the first call: a later round of the same run
  // (paired floor mode) continues where the previous ended, so its request
  // ids are new.
  uint64_t first_seq = 0;
  size_t echo_payload_bytes = 0;  // 0: kDefaultEchoPayloadBytes

  // A progress line on `progress` once a second (nullptr: none).
  std::ostream* progress = nullptr;
  std::string progress_label;  // e.g. "echo 2/5"
  // Set from a signal handler: stop scheduling, let calls in flight finish.
  const std::atomic<bool>* stop = nullptr;
};

// Bytes of an echo payload when none is set: the serialized size of a
// typical pharmacy Settle request paid by e-insurance code (3 lines).
inline constexpr size_t kDefaultEchoPayloadBytes = 560;

struct KindStats {
  Histogram latency;  // measured
  uint64_t count = 0;
  uint64_t ok = 0;
  uint64_t lines = 0;
};

struct SecondStats {
  uint64_t sent = 0;
  uint64_t done = 0;
  uint64_t errors = 0;
  uint64_t dropped = 0;
  bool warmup = false;
  Histogram latency;
};

struct RunResult {
  int64_t start_unix_ms = 0;
  double measured_s = 0;  // first measured start to last measured completion
  Histogram latency;      // measured calls
  uint64_t count = 0;
  uint64_t ok = 0;
  uint64_t sent = 0;
  uint64_t dropped = 0;
  uint64_t warmup_calls = 0;
  std::map<int, uint64_t> codes;  // grpc::StatusCode → measured calls
  std::map<std::pair<int, std::string>, uint64_t> reasons;  // refusals (measured)
  std::array<KindStats, kCallKinds> kinds;
  // --retry-ratio re-sends.
  Histogram retry_latency;
  uint64_t retries_sent = 0;
  uint64_t retries_replayed = 0;
  uint64_t retries_ok = 0;
  uint64_t retries_errors = 0;
  std::vector<SecondStats> series;
  uint64_t next_seq = 0;  // the first sequence number this run did not use

  // Adds `other` (a later round): counts, histograms; its series appended.
  void Merge(const RunResult& other);
  double rps() const { return measured_s > 0 ? static_cast<double>(count) / measured_s : 0; }
};

// Opens the channels, waits for them to connect (UNAVAILABLE naming the
// target when they cannot within timeout_ms: nothing is measured), runs
// the load, waits for every call. `builder` may be null only for kEcho.
absl::StatusOr<RunResult> RunLoad(const RunConfig& config, const RequestBuilder* builder);

// "1.23 ms", "456 µs", "2.05 s": how latencies are shown everywhere.
std::string FormatLatency(int64_t us);
// "12,345": how counts are shown everywhere.
std::string FormatCount(uint64_t n);

}  // namespace medsettle::loadgen

#endif  // MEDSETTLE_TOOLS_LOADGEN_RUNNER_H_
