#include "tools/loadgen/runner.h"

#include <algorithm>
#include <chrono>
#include <cctype>
#include <cinttypes>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "engine/text.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "medsettle/loadgen/v1/echo.grpc.pb.h"
#include "medsettle/v1/service.grpc.pb.h"

namespace medsettle::loadgen {

using engine::Cat;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::array<std::string_view, kCallKinds> kKindNames = {
    "pharmacy", "outpatient", "inpatient", "reverse", "settle-for-reverse", "echo"};

int64_t MicrosBetween(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration_cast<std::chrono::microseconds>(to - from).count();
}

// A settlement this run made, for Reverse.
struct Settled {
  size_t identity;
  std::string institution_id;
  std::string settlement_id;
};

struct Call {
  grpc::ClientContext context;
  CallKind kind = CallKind::kEcho;
  uint64_t seq = 0;
  Clock::time_point origin;  // due time (open loop) or send time (closed loop)
  bool measured = false;
  bool retry = false;
  size_t identity = 0;
  std::string institution_id;  // the caller (header under --insecure-dev)
  uint64_t lines = 0;
  CallPlan plan;
  ::medsettle::v1::SettleResponse settle_response;
  ::medsettle::v1::CheckCoverageResponse coverage_response;
  ::medsettle::v1::ReverseRequest reverse_request;
  ::medsettle::v1::ReverseResponse reverse_response;
  v1::EchoRequest echo_request;
  v1::EchoResponse echo_response;
};

// One channel and its stubs.
struct Connection {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<::medsettle::v1::SettlementService::Stub> settlement;
  std::unique_ptr<v1::Echo::Stub> echo;
};

class Runner {
 public:
  Runner(const RunConfig& config, const RequestBuilder* builder)
      : config_(config), builder_(builder) {}

  absl::Status Connect();
  RunResult Run();

 private:
  void OpenLoop();
  void ClosedLoop();
  // Starts call `seq` whose latency counts from `origin`.
  void Launch(uint64_t seq, Clock::time_point origin, bool measured);
  void Start(std::unique_ptr<Call> call);
  void Finish(Call* call, const grpc::Status& status);
  size_t SecondOf(Clock::time_point t) const {
    return static_cast<size_t>(std::max<int64_t>(0, MicrosBetween(start_, t)) / 1000000);
  }
  SecondStats& SecondAt(size_t s) {  // REQUIRES: mutex_ held
    if (result_.series.size() <= s) result_.series.resize(s + 1);
    return result_.series[s];
  }
  bool Stopping() const { return config_.stop != nullptr && config_.stop->load(); }
  void Progress();

  const RunConfig& config_;
  const RequestBuilder* builder_;
  std::vector<std::vector<Connection>> connections_;  // per identity (one set when insecure)
  std::atomic<uint64_t> round_robin_{0};
  std::string echo_payload_;
  Clock::time_point start_;
  Clock::time_point measure_from_;
  int64_t start_unix_ms_ = 0;

  std::atomic<int64_t> in_flight_{0};
  std::atomic<uint64_t> next_seq_{0};
  std::atomic<uint64_t> measured_started_{0};
  std::atomic<bool> launching_done_{false};

  std::mutex mutex_;  // guards everything below
  std::condition_variable idle_;      // in_flight_ fell
  std::condition_variable finished_;  // the run is over (wakes the progress thread)
  RunResult result_;
  bool any_measured_ = false;
  Clock::time_point first_measured_;
  Clock::time_point last_measured_done_;
  std::deque<Settled> settled_;
};

absl::Status Runner::Connect() {
  const bool tls = !config_.insecure_dev;
  const size_t sets = tls ? config_.identities.size() : 1;
  if (sets == 0) return absl::InvalidArgumentError("mutual TLS needs a client certificate");
  const int per_set = std::max<int>(1, (config_.connections + static_cast<int>(sets) - 1) /
                                           static_cast<int>(sets));
  int channel_no = 0;
  for (size_t s = 0; s < sets; ++s) {
    std::vector<Connection> set;
    for (int i = 0; i < per_set; ++i) {
      grpc::ChannelArguments args;
      args.SetMaxReceiveMessageSize(64 << 20);
      args.SetMaxSendMessageSize(64 << 20);
      // Separate connections: no subchannel sharing between our channels.
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      args.SetInt("medsettle.loadgen.channel", channel_no++);
      std::shared_ptr<grpc::ChannelCredentials> credentials;
      if (tls) {
        grpc::SslCredentialsOptions options;
        options.pem_root_certs = config_.ca_pem;
        options.pem_cert_chain = config_.identities[s].cert_pem;
        options.pem_private_key = config_.identities[s].key_pem;
        if (!config_.tls_server_name.empty()) {
          args.SetSslTargetNameOverride(config_.tls_server_name);
        }
        credentials = grpc::SslCredentials(options);
      } else {
        credentials = grpc::InsecureChannelCredentials();
      }
      Connection c;
      c.channel = grpc::CreateCustomChannel(config_.target, credentials, args);
      c.settlement = ::medsettle::v1::SettlementService::NewStub(c.channel);
      c.echo = v1::Echo::NewStub(c.channel);
      set.push_back(std::move(c));
    }
    connections_.push_back(std::move(set));
  }
  const auto deadline =
      std::chrono::system_clock::now() + std::chrono::milliseconds(config_.timeout_ms);
  for (size_t s = 0; s < connections_.size(); ++s) {
    for (Connection& c : connections_[s]) {
      if (!c.channel->WaitForConnected(deadline)) {
        return absl::UnavailableError(Cat(
            "cannot connect to ", config_.target,
            tls ? Cat(" with mutual TLS as ", config_.identities[s].institution_id,
                      " (is it a TLS server trusting that CA? does --ca sign its certificate?)")
                : std::string(" (plaintext: is it an --insecure-dev server?)"),
            " within ", config_.timeout_ms, " ms"));
      }
    }
  }
  const size_t payload = config_.echo_payload_bytes > 0 ? config_.echo_payload_bytes
                                                        : kDefaultEchoPayloadBytes;
  echo_payload_.resize(payload);
  uint64_t state = 42;
  for (char& ch : echo_payload_) ch = static_cast<char>('A' + SplitMix64(&state) % 26);
  return absl::OkStatus();
}

void Runner::Start(std::unique_ptr<Call> owned) {
  Call* call = owned.release();
  in_flight_.fetch_add(1);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++result_.sent;
    if (call->retry) ++result_.retries_sent;
    ++SecondAt(SecondOf(Clock::now())).sent;
  }
  // Echo calls carry no institution: spread over every channel, so the
  // floor uses as many connections as the calls it is compared with.
  const uint64_t turn = round_robin_.fetch_add(1);
  const size_t set_index = config_.insecure_dev ? 0
                           : call->kind == CallKind::kEcho
                               ? static_cast<size_t>(turn % connections_.size())
                               : call->identity;
  const std::vector<Connection>& set = connections_[set_index];
  const Connection& c = set[(turn / (call->kind == CallKind::kEcho ? connections_.size() : 1)) %
                            set.size()];
  call->context.set_deadline(std::chrono::system_clock::now() +
                             std::chrono::milliseconds(config_.timeout_ms));
  if (config_.insecure_dev && !call->institution_id.empty()) {
    call->context.AddMetadata(std::string(kInstitutionHeader), call->institution_id);
  }
  auto done = [this, call](grpc::Status status) { Finish(call, status); };
  switch (call->kind) {
    case CallKind::kEcho:
      c.echo->async()->Echo(&call->context, &call->echo_request, &call->echo_response, done);
      return;
    case CallKind::kReverse:
      c.settlement->async()->Reverse(&call->context, &call->reverse_request,
                                     &call->reverse_response, done);
      return;
    default:
      break;
  }
  switch (config_.method) {
    case Method::kCheckCoverage:
      c.settlement->async()->CheckCoverage(&call->context, &call->plan.coverage,
                                           &call->coverage_response, done);
      return;
    case Method::kPreSettle:
      c.settlement->async()->PreSettle(&call->context, &call->plan.settle,
                                       &call->settle_response, done);
      return;
    default:
      c.settlement->async()->Settle(&call->context, &call->plan.settle, &call->settle_response,
                                    done);
      return;
  }
}

void Runner::Launch(uint64_t seq, Clock::time_point origin, bool measured) {
  auto call = std::make_unique<Call>();
  call->seq = seq;
  call->origin = origin;
  call->measured = measured;
  if (config_.method == Method::kEcho) {
    call->kind = CallKind::kEcho;
    call->echo_request.set_payload(echo_payload_);
    Start(std::move(call));
    return;
  }
  if (config_.method == Method::kReverse) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!settled_.empty()) {
      Settled s = std::move(settled_.front());
      settled_.pop_front();
      lock.unlock();
      call->kind = CallKind::kReverse;
      call->identity = s.identity;
      call->reverse_request.set_request_id(Cat(s.settlement_id.substr(0, 40), "-undo"));
      call->reverse_request.set_settlement_id(s.settlement_id);
      call->reverse_request.set_reason("medsettle-loadgen reversal");
      call->institution_id = s.institution_id;
      Start(std::move(call));
      return;
    }
  }
  const int64_t now_unix = std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  call->plan = builder_->Build(seq, now_unix);
  call->kind = config_.method == Method::kReverse ? CallKind::kSettleForReverse
                                                  : static_cast<CallKind>(call->plan.scenario);
  call->lines = static_cast<uint64_t>(call->plan.settle.items_size());
  call->institution_id = call->plan.institution_id;
  if (!config_.insecure_dev) {
    for (size_t i = 0; i < config_.identities.size(); ++i) {
      if (config_.identities[i].institution_id == call->plan.institution_id) call->identity = i;
    }
  }
  Start(std::move(call));
}

void Runner::Finish(Call* call, const grpc::Status& status) {
  const Clock::time_point now = Clock::now();
  const int64_t latency = MicrosBetween(call->origin, now);
  std::string reason;
  if (!status.ok()) {
    const auto& trailers = call->context.GetServerTrailingMetadata();
    auto it = trailers.find(std::string(kReasonTrailer));
    if (it != trailers.end()) reason.assign(it->second.data(), it->second.size());
  }
  const int code = static_cast<int>(status.error_code());
  const bool settled_ok = status.ok() && (call->kind == CallKind::kSettleForReverse ||
                                          (config_.method == Method::kSettle &&
                                           call->kind != CallKind::kReverse &&
                                           call->kind != CallKind::kEcho));
  // A re-send of the same request (same id, same content) to exercise the
  // replay: decided by seed and seq, so a run repeats exactly.
  bool retry = false;
  if (settled_ok && !call->retry && config_.retry_ratio > 0) {
    uint64_t state = config_.seed ^ (call->seq * 0x9e3779b97f4a7c15ULL) ^ 0x7265747279ULL;
    retry = static_cast<double>(SplitMix64(&state) >> 11) * 0x1.0p-53 < config_.retry_ratio;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    SecondStats& second = SecondAt(SecondOf(now));
    ++second.done;
    if (!status.ok()) ++second.errors;
    second.latency.Record(latency);
    if (call->retry) {
      result_.retry_latency.Record(latency);
      if (status.ok()) {
        ++result_.retries_ok;
        if (call->settle_response.replayed()) ++result_.retries_replayed;
      } else {
        ++result_.retries_errors;
      }
    } else if (call->measured) {
      result_.latency.Record(latency);
      ++result_.count;
      if (status.ok()) ++result_.ok;
      ++result_.codes[code];
      if (!status.ok()) ++result_.reasons[{code, reason}];
      KindStats& kind = result_.kinds[static_cast<size_t>(call->kind)];
      kind.latency.Record(latency);
      ++kind.count;
      if (status.ok()) ++kind.ok;
      kind.lines += call->lines;
      if (!any_measured_ || call->origin < first_measured_) first_measured_ = call->origin;
      any_measured_ = true;
      last_measured_done_ = std::max(last_measured_done_, now);
    } else {
      ++result_.warmup_calls;
    }
    if (settled_ok && config_.method == Method::kReverse && !call->retry) {
      settled_.push_back(Settled{call->identity, call->plan.institution_id,
                                 call->settle_response.settlement_id()});
    }
  }
  std::unique_ptr<Call> again;
  if (retry) {
    again = std::make_unique<Call>();
    again->kind = call->kind;
    again->seq = call->seq;
    again->retry = true;
    again->identity = call->identity;
    again->institution_id = call->institution_id;
    again->lines = call->lines;
    again->plan = call->plan;  // the same request id and content
    again->origin = Clock::now();
  }
  const bool closed = !config_.schedule.has_value();
  delete call;
  if (again) Start(std::move(again));
  if (closed) {
    // The next call of the loop.
    const Clock::time_point t = Clock::now();
    const bool measured = t >= measure_from_;
    bool go = !Stopping();
    if (go && config_.count > 0) {
      go = !measured || measured_started_.fetch_add(1) < config_.count;
    } else if (go) {
      go = t < measure_from_ + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>(config_.duration_s));
    }
    if (go) Launch(next_seq_.fetch_add(1), t, measured);
  }
  std::lock_guard<std::mutex> lock(mutex_);
  in_flight_.fetch_sub(1);
  idle_.notify_all();
}

void Runner::OpenLoop() {
  const Schedule& schedule = *config_.schedule;
  const double end_s = config_.count > 0 ? 1e18 : config_.warmup_s + config_.duration_s;
  uint64_t measured = 0;
  uint64_t n_scheduled = 0;
  for (uint64_t n = 0;; ++n) {
    n_scheduled = n;
    const double t = schedule.SendTime(n);
    if (t >= end_s) break;
    const bool is_measured = t >= config_.warmup_s;
    if (is_measured && config_.count > 0 && measured >= config_.count) break;
    if (is_measured) ++measured;
    const Clock::time_point due =
        start_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(t));
    if (due > Clock::now()) std::this_thread::sleep_until(due);
    if (Stopping()) break;
    if (in_flight_.load() >= config_.max_in_flight) {
      std::lock_guard<std::mutex> lock(mutex_);
      ++result_.dropped;
      ++SecondAt(SecondOf(due)).dropped;
      continue;
    }
    Launch(config_.first_seq + n, due, is_measured);
  }
  next_seq_ = config_.first_seq + n_scheduled;
}

void Runner::ClosedLoop() {
  // The first `concurrency` calls; each completion starts the next (Finish).
  for (int i = 0; i < config_.concurrency && !Stopping(); ++i) {
    const Clock::time_point t = Clock::now();
    const bool measured = t >= measure_from_;
    if (measured && config_.count > 0 && measured_started_.fetch_add(1) >= config_.count) break;
    Launch(next_seq_.fetch_add(1), t, measured);
  }
}

void Runner::Progress() {
  const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
  uint64_t sent, done, errors, dropped;
  int64_t p50, p99;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    sent = result_.sent;
    done = result_.count + result_.warmup_calls;
    errors = result_.count - result_.ok;
    dropped = result_.dropped;
    p50 = result_.latency.Percentile(50);
    p99 = result_.latency.Percentile(99);
  }
  char line[256];
  std::snprintf(line, sizeof line,
                "%s%s%5.0fs  sent %" PRIu64 "  done %" PRIu64 "  rate %.0f/s  p50 %s  p99 %s  "
                "errors %" PRIu64 "  dropped %" PRIu64,
                config_.progress_label.c_str(), config_.progress_label.empty() ? "" : "  ", elapsed,
                sent, done, elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0,
                FormatLatency(p50).c_str(), FormatLatency(p99).c_str(), errors, dropped);
  *config_.progress << line << "\n" << std::flush;
}

RunResult Runner::Run() {
  start_ = Clock::now();
  next_seq_ = config_.first_seq;
  start_unix_ms_ = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  measure_from_ = start_ + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(config_.warmup_s));
  std::atomic<bool> finished{false};
  std::thread progress;
  if (config_.progress != nullptr) {
    progress = std::thread([this, &finished] {
      std::unique_lock<std::mutex> lock(mutex_);
      while (!finished_.wait_for(lock, std::chrono::seconds(1), [&] { return finished.load(); })) {
        lock.unlock();
        Progress();
        lock.lock();
      }
    });
  }
  if (config_.schedule) {
    OpenLoop();
  } else {
    ClosedLoop();
  }
  launching_done_ = true;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    idle_.wait(lock, [this] { return in_flight_.load() == 0; });
    finished = true;
  }
  finished_.notify_all();
  if (progress.joinable()) progress.join();
  std::lock_guard<std::mutex> lock(mutex_);
  result_.start_unix_ms = start_unix_ms_;
  result_.next_seq = next_seq_.load();
  const double window_s =
      any_measured_ ? std::chrono::duration<double>(last_measured_done_ - first_measured_).count()
                    : 0;
  result_.measured_s = std::max(window_s, 1e-6);
  const size_t warm = static_cast<size_t>(config_.warmup_s);
  for (size_t s = 0; s < result_.series.size() && s < warm; ++s) result_.series[s].warmup = true;
  return result_;
}

}  // namespace

std::string_view MethodName(Method m) {
  switch (m) {
    case Method::kSettle: return "Settle";
    case Method::kPreSettle: return "PreSettle";
    case Method::kCheckCoverage: return "CheckCoverage";
    case Method::kReverse: return "Reverse";
    case Method::kEcho: return "echo";
  }
  return "";
}

absl::StatusOr<Method> ParseMethod(std::string_view text) {
  std::string lower;
  for (char c : text) lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  for (Method m : {Method::kSettle, Method::kPreSettle, Method::kCheckCoverage, Method::kReverse,
                   Method::kEcho}) {
    std::string name;
    for (char c : MethodName(m)) name.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    if (name == lower) return m;
  }
  return absl::InvalidArgumentError(Cat("--method: unknown method \"", text,
                                        "\" (Settle, PreSettle, CheckCoverage, Reverse, echo)"));
}

std::string_view CallKindName(CallKind k) { return kKindNames[static_cast<size_t>(k)]; }

void RunResult::Merge(const RunResult& other) {
  if (start_unix_ms == 0) start_unix_ms = other.start_unix_ms;
  measured_s += other.measured_s;
  latency.Merge(other.latency);
  count += other.count;
  ok += other.ok;
  sent += other.sent;
  dropped += other.dropped;
  warmup_calls += other.warmup_calls;
  for (const auto& [code, n] : other.codes) codes[code] += n;
  for (const auto& [key, n] : other.reasons) reasons[key] += n;
  for (size_t i = 0; i < kinds.size(); ++i) {
    kinds[i].latency.Merge(other.kinds[i].latency);
    kinds[i].count += other.kinds[i].count;
    kinds[i].ok += other.kinds[i].ok;
    kinds[i].lines += other.kinds[i].lines;
  }
  retry_latency.Merge(other.retry_latency);
  retries_sent += other.retries_sent;
  retries_replayed += other.retries_replayed;
  retries_ok += other.retries_ok;
  retries_errors += other.retries_errors;
  series.insert(series.end(), other.series.begin(), other.series.end());
  next_seq = std::max(next_seq, other.next_seq);
}

absl::StatusOr<RunResult> RunLoad(const RunConfig& config, const RequestBuilder* builder) {
  if (config.method != Method::kEcho && builder == nullptr) {
    return absl::InvalidArgumentError("no request builder for a SettlementService method");
  }
  Runner runner(config, builder);
  if (absl::Status s = runner.Connect(); !s.ok()) return s;
  return runner.Run();
}

std::string FormatLatency(int64_t us) {
  char buffer[32];
  if (us < 1000) {
    std::snprintf(buffer, sizeof buffer, "%" PRId64 " µs", us);
  } else if (us < 1000000) {
    std::snprintf(buffer, sizeof buffer, "%.2f ms", static_cast<double>(us) / 1000.0);
  } else {
    std::snprintf(buffer, sizeof buffer, "%.2f s", static_cast<double>(us) / 1e6);
  }
  return buffer;
}

std::string FormatCount(uint64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

}  // namespace medsettle::loadgen
