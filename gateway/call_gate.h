// The one gate every call passes, whatever the transport: who is calling
// (Authenticator), whether the institution is within its rate
// (RateLimiter), the call's deadline (the caller's, capped by
// request_timeout_ms), a place on a worker thread (WorkerPool: refused at
// once when the queue is full; the transport's thread never waits on Redis
// or for a worker), and what the call leaves behind (CallObserver:
// counters, metrics, a log line for refusals and failures). The gRPC service
// (gateway/grpc_service.h) is a thin adapter over it; the HTTP/JSON facade
// will be another.
//
//   transport thread: Run(method, caller, deadline, tags, work, done)
//     Identify → UNAUTHENTICATED …      → done(refusal)
//     Admit    → RESOURCE_EXHAUSTED RATE_LIMITED → done(refusal)
//     queue full → RESOURCE_EXHAUSTED GATEWAY_OVERLOADED → done(refusal)
//   worker thread: work(CallContext) → done(status)
//
// RunAsync is the same gate for a handler written as a coroutine
// (cache/task.h: Settle, PreSettle): instead of a place on a worker, the
// call takes one of `max_in_flight` places (GATEWAY_OVERLOADED when none is
// free) and the coroutine starts on the transport's thread; while it waits
// for Redis it holds no thread, and it finishes — `done` included — on the
// thread that completes its last wait (a Redis I/O thread), or on a worker
// where it moved itself there.
//
// `done` is called exactly once, with the status the transport maps
// (gateway/error_mapping.h for gRPC); after it returns the gate touches
// nothing of the call.
//
// Thread safety: Run may be called from any number of threads.
#ifndef MEDSETTLE_GATEWAY_CALL_GATE_H_
#define MEDSETTLE_GATEWAY_CALL_GATE_H_

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "cache/task.h"
#include "engine/status.h"
#include "gateway/authenticator.h"
#include "gateway/call_observer.h"
#include "gateway/counters.h"
#include "gateway/rate_limiter.h"
#include "gateway/settlement_handler.h"
#include "gateway/worker_pool.h"

namespace medsettle::gateway {

// What the observer is told of a call besides its status. The view and
// the function read the call's request and response, which the transport
// keeps alive until `done` returns.
struct CallTags {
  std::string_view request_id;
  std::function<bool()> replayed;  // null: never a replay
};

class CallGate {
 public:
  // Every reference must outlive the gate.
  // `max_in_flight` bounds RunAsync's calls admitted and not yet done.
  CallGate(const Authenticator& authenticator, RateLimiter& rate_limiter, WorkerPool& workers,
           GatewayCounters& counters, CallObserver& observer, int request_timeout_ms,
           size_t max_in_flight = 4096)
      : authenticator_(authenticator),
        rate_limiter_(rate_limiter),
        workers_(workers),
        counters_(counters),
        observer_(observer),
        request_timeout_ms_(request_timeout_ms),
        max_in_flight_(max_in_flight) {}

  // Runs `work` for an admitted caller on a worker, then `done(status)`;
  // a refusal at the gate goes to `done` on the calling thread.
  // `caller_deadline` is the transport's (time_point::max() for none).
  // Work: absl::Status(const CallContext&); Done: void(const absl::Status&).
  template <typename Work, typename Done>
  void Run(Method method, const TransportCaller& caller,
           std::chrono::system_clock::time_point caller_deadline, CallTags tags, Work work,
           Done done);

  // As Run, for a coroutine: Start: cache::Task<absl::Status>(CallContext).
  template <typename Start, typename Done>
  void RunAsync(Method method, const TransportCaller& caller,
                std::chrono::system_clock::time_point caller_deadline, CallTags tags,
                Start start, Done done);

  size_t in_flight() const { return in_flight_.load(std::memory_order_relaxed); }

 private:
  // Tells the observer the call started; returns the call's
  // finish(status, institution) that tells it the end and calls `done`
  // (`institution` is "" until the caller is known).
  template <typename Done>
  auto Started(Method method, std::chrono::steady_clock::time_point arrived, CallTags tags,
               Done done) {
    observer_.Started(method);
    return [this, method, arrived, tags = std::move(tags), done = std::move(done)](
               const absl::Status& status, std::string_view institution) mutable {
      observer_.Finished({.method = method,
                          .institution_id = institution,
                          .request_id = tags.request_id,
                          .status = status,
                          .replayed = tags.replayed != nullptr && tags.replayed(),
                          .duration_us = std::chrono::duration_cast<std::chrono::microseconds>(
                                             std::chrono::steady_clock::now() - arrived)
                                             .count()});
      done(status);
    };
  }
  // Identify and Admit; the call's context, or the refusal (already
  // finished through `finish`).
  template <typename Finish>
  std::optional<CallContext> Admit(const TransportCaller& caller,
                                   std::chrono::system_clock::time_point caller_deadline,
                                   Finish& finish);

  const Authenticator& authenticator_;
  RateLimiter& rate_limiter_;
  WorkerPool& workers_;
  GatewayCounters& counters_;
  CallObserver& observer_;
  const int request_timeout_ms_;
  const size_t max_in_flight_;
  std::atomic<size_t> in_flight_{0};
};

template <typename Finish>
std::optional<CallContext> CallGate::Admit(const TransportCaller& caller,
                                           std::chrono::system_clock::time_point caller_deadline,
                                           Finish& finish) {
  absl::StatusOr<CallerIdentity> identity = authenticator_.Identify(caller);
  if (!identity.ok()) {
    finish(identity.status(), "");
    return std::nullopt;
  }
  // Before the queue: a flooding institution must not fill the queue that
  // every institution shares.
  if (absl::Status admitted = rate_limiter_.Admit(identity->institution_id); !admitted.ok()) {
    counters_.rate_limited_refusals.fetch_add(1, std::memory_order_relaxed);
    finish(admitted, identity->institution_id);
    return std::nullopt;
  }
  CallContext call;
  call.institution_id = std::move(identity->institution_id);
  call.certificate_fingerprint = std::move(identity->certificate_fingerprint);
  call.deadline = std::min(caller_deadline, std::chrono::system_clock::now() +
                                                std::chrono::milliseconds(request_timeout_ms_));
  return call;
}

template <typename Work, typename Done>
void CallGate::Run(Method method, const TransportCaller& caller,
                   std::chrono::system_clock::time_point caller_deadline, CallTags tags,
                   Work work, Done done) {
  const auto arrived = std::chrono::steady_clock::now();
  auto finish = Started(method, arrived, std::move(tags), std::move(done));

  std::optional<CallContext> call = Admit(caller, caller_deadline, finish);
  if (!call) return;
  // The task owns `finish` (and with it `done`); if the queue refuses the
  // task, it is finished here unrun.
  auto task = std::make_shared<std::pair<decltype(finish), CallContext>>(std::move(finish),
                                                                          *std::move(call));
  const bool queued = workers_.TrySubmit([this, arrived, task, work = std::move(work)]() mutable {
    observer_.QueuedFor(std::chrono::duration_cast<std::chrono::microseconds>(
                            std::chrono::steady_clock::now() - arrived)
                            .count());
    const absl::Status status = work(task->second);
    task->first(status, task->second.institution_id);
  });
  if (!queued) {
    counters_.overload_refusals.fetch_add(1, std::memory_order_relaxed);
    task->first(GatewayOverloaded(), task->second.institution_id);
  }
}

template <typename Start, typename Done>
void CallGate::RunAsync(Method method, const TransportCaller& caller,
                        std::chrono::system_clock::time_point caller_deadline, CallTags tags,
                        Start start, Done done) {
  const auto arrived = std::chrono::steady_clock::now();
  auto finish = Started(method, arrived, std::move(tags), std::move(done));
  std::optional<CallContext> call = Admit(caller, caller_deadline, finish);
  if (!call) return;
  if (in_flight_.fetch_add(1, std::memory_order_acq_rel) >= max_in_flight_) {
    in_flight_.fetch_sub(1, std::memory_order_acq_rel);
    counters_.overload_refusals.fetch_add(1, std::memory_order_relaxed);
    finish(GatewayOverloaded(), call->institution_id);
    return;
  }
  std::string institution = call->institution_id;
  cache::StartDetached(start(*std::move(call)),
                       [this, finish = std::move(finish),
                        institution = std::move(institution)](absl::Status status) mutable {
                         in_flight_.fetch_sub(1, std::memory_order_acq_rel);
                         finish(status, institution);
                       });
}

}  // namespace medsettle::gateway

#endif  // MEDSETTLE_GATEWAY_CALL_GATE_H_
