#include "tools/loadgen/runner.h"

#include <algorithm>
#include <chrono>
#include <cctype>
#include <cinttypes>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "engine/text.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/byte_buffer.h"
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

// A grpc::ByteBuffer that moves by swapping (ByteBuffer itself only
// copies, and a copy allocates).
struct Bytes {
  grpc::ByteBuffer buffer;
  Bytes() = default;
  Bytes(Bytes&& other) noexcept { buffer.Swap(&other.buffer); }
  Bytes& operator=(Bytes&& other) noexcept {
    buffer.Swap(&other.buffer);
    return *this;
  }
};

// `message` as the bytes of a call.
void Serialize(const google::protobuf::MessageLite& message, grpc::ByteBuffer* bytes) {
  bool own = false;
  (void)grpc::SerializationTraits<google::protobuf::MessageLite>::Serialize(message, bytes, &own);
}

// A call's request, serialized: built ahead of its turn (Prebuilder) or
// when its turn comes.
struct Prepared {
  uint64_t seq = 0;
  bool ready = false;  // holds call seq's request (Prebuilder slots)
  CallKind kind = CallKind::kPharmacy;
  size_t identity = 0;
  std::string institution_id;
  uint64_t lines = 0;
  Bytes request;
  Clock::time_point built;
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
  // The request and the response as bytes: the report needs only the
  // status and the reason trailer, so a response is parsed only when its
  // content is needed (a replay's `replayed`, a settlement id to reverse).
  // A gateway's SettleResponse carries every line and trace step; parsing
  // and freeing it was a tenth of the tool's CPU per call.
  grpc::ByteBuffer request;
  grpc::ByteBuffer response;
};

// One channel and its stub: generic, bytes in and out (see Call).
struct Connection {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<grpc::GenericStub> stub;
};

// Requests built ahead of their calls by a producer thread, so that the
// send path (a completion callback in closed loop, the scheduler thread in
// open loop) only takes one, and so that the first kCapacity calls of a
// run, e-insurance codes signed (an Ed25519 signature each, ~30 µs), are
// built before its clock starts: a round of the paired floor mode is
// usually built whole before it is measured. Slot seq % kCapacity holds
// call seq's request. A call whose request is not there (the producer is
// behind, or it was built more than kMaxLead ago) builds it itself:
// either way it is Build(seq) — the same content for the same seed and
// seq; only an e-insurance code's issue minute, the one thing taken from
// the clock, is that of its building, at most kMaxLead before its send, so
// a code still has over three of its five minutes to live when it is sent.
class Prebuilder {
 public:
  static constexpr size_t kCapacity = 16384;
  static constexpr size_t kMaxBytes = size_t{64} << 20;  // long inpatient bills
  static constexpr auto kMaxLead = std::chrono::seconds(60);
  // Once the run's claim rate is known, build no more than this far ahead.
  static constexpr double kAheadS = 20;

  // `cursor`: the next sequence number the run will claim; `end_seq`: the
  // first it will not (UINT64_MAX: unknown).
  Prebuilder(std::function<Prepared(uint64_t)> build, const std::atomic<uint64_t>* cursor,
             uint64_t end_seq)
      : build_(std::move(build)), cursor_(cursor), end_seq_(end_seq), slots_(kCapacity) {}
  ~Prebuilder() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    room_.notify_all();
    if (producer_.joinable()) producer_.join();
  }

  // Starts the producer at the cursor; returns when the ring is full.
  void Fill() {
    std::unique_lock<std::mutex> lock(mutex_);
    produce_next_ = cursor_->load();
    producer_ = std::thread([this] { Produce(); });
    full_.wait(lock, [this] { return waiting_ || stop_; });
  }

  // The run's clock has started; it claims calls until `end` (a duration;
  // max(): a count). From half a second on, the rate of its claims bounds
  // how far ahead the producer builds: kAheadS seconds of calls, and no
  // more than the rest of the run will claim, so a slow run does not build
  // requests that go stale (kMaxLead) and the end of a run does not build
  // a ring nobody sends.
  void Started(Clock::time_point end) {
    std::lock_guard<std::mutex> lock(mutex_);
    end_time_ = end;
    since_ = Clock::now();
    since_cursor_ = cursor_->load();
    started_ = true;
  }

  // Call `seq`'s request (seq is claimed: the cursor is past it).
  Prepared Take(uint64_t seq) {
    Prepared p;
    bool wake = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      Prepared& slot = slots_[seq % kCapacity];
      // Ours, or an older one nobody took (a dropped call's): out either way.
      if (slot.ready && slot.seq <= seq) {
        bytes_ -= slot.request.buffer.Length();
        if (slot.seq == seq) p = std::move(slot);
        slot.ready = false;
      }
      // Refill in batches, from half empty: a wake-up per call would cost
      // a context switch per call.
      if (waiting_) {
        const uint64_t cursor = cursor_->load();
        const uint64_t limit = Limit();
        const uint64_t from = std::max(produce_next_, cursor);
        wake = from < limit && (limit - from) * 2 >= limit - cursor && bytes_ <= kMaxBytes / 2;
      }
    }
    if (wake) room_.notify_one();
    if (p.ready && Clock::now() - p.built < kMaxLead) return p;
    return build_(seq);
  }

 private:
  // The first sequence number not to build now. REQUIRES: mutex_ held.
  uint64_t Limit() const {
    const uint64_t cursor = cursor_->load();
    uint64_t limit = std::min(end_seq_, cursor + kCapacity);
    if (!started_) return limit;
    const Clock::time_point now = Clock::now();
    if (now >= end_time_) return cursor;
    const double elapsed = std::chrono::duration<double>(now - since_).count();
    if (elapsed >= 0.5) {
      const double rate = static_cast<double>(cursor - since_cursor_) / elapsed;
      const double left =
          end_time_ == Clock::time_point::max()
              ? kAheadS
              : std::min(kAheadS, std::chrono::duration<double>(end_time_ - now).count());
      const double more = rate * left * 1.25 + 256;
      if (more < static_cast<double>(limit - cursor)) {
        limit = cursor + static_cast<uint64_t>(more);
      }
    }
    return limit;
  }
  bool Room() const {  // REQUIRES: mutex_ held
    return std::max(produce_next_, cursor_->load()) < Limit() && bytes_ < kMaxBytes;
  }

  void Produce() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stop_) {
      if (!Room()) {
        waiting_ = true;
        full_.notify_all();
        room_.wait(lock, [this] { return stop_ || Room(); });
        waiting_ = false;
        continue;
      }
      // Never a call already claimed: it builds its own.
      const uint64_t seq = std::max(produce_next_, cursor_->load());
      produce_next_ = seq + 1;
      lock.unlock();
      Prepared p = build_(seq);
      lock.lock();
      Prepared& slot = slots_[seq % kCapacity];
      if (slot.ready) bytes_ -= slot.request.buffer.Length();
      bytes_ += p.request.buffer.Length();
      slot = std::move(p);
      slot.ready = true;
    }
  }

  const std::function<Prepared(uint64_t)> build_;
  const std::atomic<uint64_t>* cursor_;
  const uint64_t end_seq_;
  std::mutex mutex_;  // guards everything below
  std::condition_variable room_;  // the producer waits for room
  std::condition_variable full_;  // Fill waits for the first fill
  std::vector<Prepared> slots_;
  uint64_t produce_next_ = 0;
  size_t bytes_ = 0;  // of the requests in slots_
  Clock::time_point end_time_ = Clock::time_point::max();
  Clock::time_point since_;
  uint64_t since_cursor_ = 0;
  bool started_ = false;
  bool waiting_ = false;
  bool stop_ = false;
  std::thread producer_;
};

// The first n with SendTime(n) >= t_s (SendTime does not decrease).
uint64_t FirstDueAt(const Schedule& schedule, double t_s) {
  uint64_t hi = 1;
  while (schedule.SendTime(hi) < t_s) {
    if (hi >= (uint64_t{1} << 40)) return UINT64_MAX;
    hi *= 2;
  }
  uint64_t lo = 0;  // invariant: the answer is in [lo, hi]
  while (lo < hi) {
    const uint64_t mid = lo + (hi - lo) / 2;
    if (schedule.SendTime(mid) < t_s) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

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
  // Call `seq`'s request (RequestBuilder::Build), serialized. Thread-safe.
  Prepared Prepare(uint64_t seq) const;
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
  std::unordered_map<std::string, size_t> identity_of_;  // institution → identity (TLS)
  std::atomic<uint64_t> round_robin_{0};
  grpc::ByteBuffer echo_request_;  // the same bytes every call
  // The method paths, "/medsettle.v1.SettlementService/Settle".
  std::string method_path_;
  std::string reverse_path_;
  std::string echo_path_;
  const std::string institution_header_{kInstitutionHeader};
  std::unique_ptr<Prebuilder> prebuilt_;  // not for Reverse and echo
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
      c.stub = std::make_unique<grpc::GenericStub>(c.channel);
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
  v1::EchoRequest echo;
  std::string& bytes = *echo.mutable_payload();
  bytes.resize(payload);
  uint64_t state = 42;
  for (char& ch : bytes) ch = static_cast<char>('A' + SplitMix64(&state) % 26);
  Serialize(echo, &echo_request_);
  const std::string service =
      Cat("/", ::medsettle::v1::SettlementService::service_full_name(), "/");
  method_path_ = Cat(service, config_.method == Method::kCheckCoverage ? "CheckCoverage"
                              : config_.method == Method::kPreSettle  ? "PreSettle"
                                                                      : "Settle");
  reverse_path_ = Cat(service, "Reverse");
  echo_path_ = Cat("/", v1::Echo::service_full_name(), "/Echo");
  if (tls) {
    for (size_t i = 0; i < config_.identities.size(); ++i) {
      identity_of_[config_.identities[i].institution_id] = i;  // the last, as before
    }
  }
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
    call->context.AddMetadata(institution_header_, call->institution_id);
  }
  auto done = [this, call](grpc::Status status) { Finish(call, status); };
  const std::string& path = call->kind == CallKind::kEcho      ? echo_path_
                            : call->kind == CallKind::kReverse ? reverse_path_
                                                               : method_path_;
  c.stub->UnaryCall(&call->context, path, grpc::StubOptions(), &call->request, &call->response,
                    std::move(done));
}

Prepared Runner::Prepare(uint64_t seq) const {
  const int64_t now_unix = std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  CallPlan plan = builder_->Build(seq, now_unix);
  Prepared p;
  p.seq = seq;
  p.kind = config_.method == Method::kReverse ? CallKind::kSettleForReverse
                                              : static_cast<CallKind>(plan.scenario);
  p.lines = static_cast<uint64_t>(plan.settle.items_size());
  if (auto it = identity_of_.find(plan.institution_id); it != identity_of_.end()) {
    p.identity = it->second;
  }
  p.institution_id = std::move(plan.institution_id);
  if (config_.method == Method::kCheckCoverage) {
    Serialize(plan.coverage, &p.request.buffer);
  } else {
    Serialize(plan.settle, &p.request.buffer);
  }
  p.built = Clock::now();
  return p;
}

void Runner::Launch(uint64_t seq, Clock::time_point origin, bool measured) {
  auto call = std::make_unique<Call>();
  call->seq = seq;
  call->origin = origin;
  call->measured = measured;
  if (config_.method == Method::kEcho) {
    call->kind = CallKind::kEcho;
    call->request = echo_request_;  // shares the bytes
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
      ::medsettle::v1::ReverseRequest reverse;
      reverse.set_request_id(Cat(s.settlement_id.substr(0, 40), "-undo"));
      reverse.set_settlement_id(s.settlement_id);
      reverse.set_reason("medsettle-loadgen reversal");
      Serialize(reverse, &call->request);
      call->institution_id = s.institution_id;
      Start(std::move(call));
      return;
    }
  }
  Prepared p = prebuilt_ != nullptr ? prebuilt_->Take(seq) : Prepare(seq);
  call->kind = p.kind;
  call->lines = p.lines;
  call->identity = p.identity;
  call->institution_id = std::move(p.institution_id);
  call->request.Swap(&p.request.buffer);
  Start(std::move(call));
}

void Runner::Finish(Call* call, const grpc::Status& status) {
  const Clock::time_point now = Clock::now();
  const int64_t latency = MicrosBetween(call->origin, now);
  std::string reason;
  if (!status.ok()) {
    const auto& trailers = call->context.GetServerTrailingMetadata();
    auto it = trailers.find(grpc::string_ref(kReasonTrailer.data(), kReasonTrailer.size()));
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
  // The response's content, only where it is needed (see Call).
  ::medsettle::v1::SettleResponse response;
  const bool to_reverse = settled_ok && config_.method == Method::kReverse && !call->retry;
  if ((call->retry && status.ok()) || to_reverse) {
    (void)grpc::SerializationTraits<::medsettle::v1::SettleResponse>::Deserialize(&call->response,
                                                                                 &response);
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
        if (response.replayed()) ++result_.retries_replayed;
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
    if (to_reverse) {
      settled_.push_back(Settled{call->identity, call->institution_id,
                                 std::move(*response.mutable_settlement_id())});
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
    again->request = call->request;  // the same request id and content (shared bytes)
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
  // Only the last call out wakes Run: a wake-up per call cost a context
  // switch of the main thread per call. The last one decrements under the
  // lock, so Run cannot see 0 and return before it has let go.
  int64_t n = in_flight_.load();
  while (n > 1 && !in_flight_.compare_exchange_weak(n, n - 1)) {
  }
  if (n > 1) return;
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
    next_seq_.store(config_.first_seq + n + 1);  // claimed (the Prebuilder's cursor)
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
  next_seq_ = config_.first_seq;
  if (config_.method != Method::kEcho && config_.method != Method::kReverse) {
    // How many calls the run makes, when that is known: no more are built.
    uint64_t calls = UINT64_MAX;
    if (config_.schedule) {
      const Schedule& schedule = *config_.schedule;
      if (config_.count == 0) {
        calls = FirstDueAt(schedule, config_.warmup_s + config_.duration_s);
      } else {
        const uint64_t warm = FirstDueAt(schedule, config_.warmup_s);
        calls = warm > UINT64_MAX - config_.count ? UINT64_MAX : warm + config_.count;
      }
    } else if (config_.count > 0 && config_.warmup_s <= 0) {
      calls = config_.count;
    }
    const uint64_t end_seq =
        calls > UINT64_MAX - config_.first_seq ? UINT64_MAX : config_.first_seq + calls;
    prebuilt_ = std::make_unique<Prebuilder>([this](uint64_t seq) { return Prepare(seq); },
                                             &next_seq_, end_seq);
    prebuilt_->Fill();  // before the clock starts
  }
  start_ = Clock::now();
  if (prebuilt_ != nullptr) {
    prebuilt_->Started(config_.count > 0
                           ? Clock::time_point::max()
                           : start_ + std::chrono::duration_cast<Clock::duration>(
                                          std::chrono::duration<double>(config_.warmup_s +
                                                                        config_.duration_s)));
  }
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
  prebuilt_.reset();  // every call has taken its request
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
