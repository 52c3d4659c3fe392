// gateway/call_gate.h without a transport or Redis: a fake Authenticator,
// the real rate limiter, worker pool and observer. Each refusal at the gate
// reaches `done` once, with its stable reason, before any work runs; an
// admitted call runs on a worker with the caller's identity and a deadline
// no later than request_timeout_ms; what every call leaves behind shows in
// the metrics and the log.
#include "gateway/call_gate.h"

#include <gtest/gtest.h>

#include <atomic>
#include <coroutine>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/status.h"
#include "logging/json_log.h"
#include "metrics/registry.h"

namespace medsettle::gateway {
namespace {

// Trusts the development header, like DevHeaderAuthenticator, and gives a
// fixed fingerprint so the test sees it pass through.
class FakeAuthenticator final : public Authenticator {
 public:
  absl::StatusOr<CallerIdentity> Identify(const TransportCaller& caller) const override {
    if (caller.institution_header.empty()) {
      return engine::Refusal(absl::StatusCode::kUnauthenticated, reason::kIdentityMissing, "",
                             "no identity");
    }
    return CallerIdentity{std::string(caller.institution_header[0]), "ab12"};
  }
};

struct Ended {
  absl::Status status;
  std::thread::id thread;
};

class CallGateTest : public ::testing::Test {
 protected:
  void Make(GatewayConfig::RateLimit limit, int threads, size_t queue_limit) {
    rate_limiter_ = std::make_unique<RateLimiter>(limit, std::vector<std::pair<std::string, GatewayConfig::RateLimit>>{});
    workers_ = std::make_unique<WorkerPool>(threads, queue_limit);
    logging::LogOptions o;
    o.lines_per_second = 0;
    o.sink = [this](std::string_view line) {
      std::lock_guard<std::mutex> lock(mutex_);
      lines_.emplace_back(line);
    };
    log_ = std::make_unique<logging::JsonLog>(o);
    absl::StatusOr<std::unique_ptr<CallObserver>> observer =
        CallObserver::Create(counters_, *log_, &registry_);
    ASSERT_TRUE(observer.ok()) << observer.status();
    observer_ = *std::move(observer);
    gate_ = std::make_unique<CallGate>(authenticator_, *rate_limiter_, *workers_, counters_,
                                       *observer_, /*request_timeout_ms=*/2000, max_in_flight_);
  }
  size_t max_in_flight_ = 4096;

  // Runs one Settle call as `institution` ("" = none) and waits for done.
  Ended Call(std::string institution, std::function<absl::Status(const CallContext&)> work,
             std::chrono::system_clock::time_point deadline =
                 std::chrono::system_clock::time_point::max()) {
    TransportCaller caller;
    if (!institution.empty()) caller.institution_header.push_back(institution);
    std::promise<Ended> ended;
    std::atomic<int> done_calls{0};
    gate_->Run(Method::kSettle, caller, deadline, {.request_id = "R-1"}, std::move(work),
               [&](const absl::Status& s) {
                 if (done_calls.fetch_add(1) == 0) ended.set_value({s, std::this_thread::get_id()});
               });
    Ended e = ended.get_future().get();
    EXPECT_EQ(done_calls.load(), 1);
    return e;
  }

  FakeAuthenticator authenticator_;
  GatewayCounters counters_;
  metrics::Registry registry_;
  std::mutex mutex_;
  std::vector<std::string> lines_;
  std::unique_ptr<logging::JsonLog> log_;
  std::unique_ptr<CallObserver> observer_;
  std::unique_ptr<RateLimiter> rate_limiter_;
  std::unique_ptr<WorkerPool> workers_;
  std::unique_ptr<CallGate> gate_;
};

TEST_F(CallGateTest, AnAdmittedCallRunsOnAWorkerWithItsIdentityAndDeadline) {
  Make({0, 0}, 2, 16);
  CallContext seen;
  std::thread::id worker;
  const auto before = std::chrono::system_clock::now();
  const Ended e = Call("H1", [&](const CallContext& c) {
    seen = c;
    worker = std::this_thread::get_id();
    return absl::OkStatus();
  });
  EXPECT_TRUE(e.status.ok()) << e.status;
  EXPECT_EQ(seen.institution_id, "H1");
  EXPECT_EQ(seen.certificate_fingerprint, "ab12");
  EXPECT_NE(worker, std::this_thread::get_id()) << "work runs on a worker";
  EXPECT_EQ(e.thread, worker) << "done follows the work on its thread";
  EXPECT_LE(seen.deadline, before + std::chrono::milliseconds(2100)) << "capped by the timeout";
  // A caller's earlier deadline wins.
  const auto soon = std::chrono::system_clock::now() + std::chrono::milliseconds(50);
  Call("H1", [&](const CallContext& c) {
    seen = c;
    return absl::OkStatus();
  }, soon);
  EXPECT_EQ(seen.deadline, soon);
  const std::string text = registry_.Render();
  EXPECT_NE(text.find("grpc_server_handled_total{grpc_type=\"unary\",grpc_service=\"medsettle.v1."
                      "SettlementService\",grpc_method=\"Settle\",grpc_code=\"OK\"} 2"),
            std::string::npos)
      << text;
  EXPECT_TRUE(lines_.empty()) << "successes are not logged";
}

TEST_F(CallGateTest, AnUnidentifiedCallerIsRefusedBeforeAnyWork) {
  Make({0, 0}, 1, 16);
  bool ran = false;
  const Ended e = Call("", [&](const CallContext&) {
    ran = true;
    return absl::OkStatus();
  });
  EXPECT_EQ(e.status.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(engine::ReasonOf(e.status), reason::kIdentityMissing);
  EXPECT_EQ(e.thread, std::this_thread::get_id()) << "refused on the transport's thread";
  EXPECT_FALSE(ran);
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_NE(lines_[0].find("\"reason\":\"INSTITUTION_IDENTITY_MISSING\""), std::string::npos)
      << lines_[0];
  EXPECT_NE(lines_[0].find("\"request_id\":\"R-1\""), std::string::npos) << lines_[0];
}

TEST_F(CallGateTest, ARequestIdTheApiWouldRefuseIsNotWrittenToTheLog) {
  Make({0, 0}, 1, 16);
  TransportCaller caller;  // unidentified: refused at the gate
  std::string huge(100'000, 'x');
  for (const std::string& id : {huge, std::string("R-1\n{\"forged\":1}"), std::string("身份证")}) {
    std::promise<absl::Status> done;
    gate_->Run(Method::kSettle, caller, std::chrono::system_clock::time_point::max(),
               {.request_id = id}, [](const CallContext&) { return absl::OkStatus(); },
               [&](const absl::Status& s) { done.set_value(s); });
    EXPECT_EQ(done.get_future().get().code(), absl::StatusCode::kUnauthenticated);
  }
  std::lock_guard<std::mutex> lock(mutex_);
  ASSERT_EQ(lines_.size(), 3u);
  for (const std::string& line : lines_) {
    EXPECT_LT(line.size(), 400u) << "the id is not copied into the log";
    EXPECT_NE(line.find("\"request_id\":\"\""), std::string::npos) << line;
  }
}

TEST_F(CallGateTest, AnInstitutionOverItsRateIsRefusedAndOthersAreNot) {
  Make({1, 1}, 1, 16);  // one call a second, burst 1
  EXPECT_TRUE(Call("H1", [](const CallContext&) { return absl::OkStatus(); }).status.ok());
  const Ended e = Call("H1", [](const CallContext&) { return absl::OkStatus(); });
  EXPECT_EQ(e.status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(engine::ReasonOf(e.status), "RATE_LIMITED");
  EXPECT_TRUE(Call("H2", [](const CallContext&) { return absl::OkStatus(); }).status.ok());
  EXPECT_EQ(counters_.rate_limited_refusals.load(), 1u);
  EXPECT_NE(registry_.Render().find(
                "medsettle_refusals_total{method=\"Settle\",reason=\"RATE_LIMITED\"} 1"),
            std::string::npos);
}

TEST_F(CallGateTest, AFullQueueRefusesAtOnceAndTheQueuedCallsStillRun) {
  Make({0, 0}, 1, 1);  // one worker, one place in the queue
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<void> started;
  std::vector<std::promise<absl::Status>> results(2);
  TransportCaller caller;
  caller.institution_header.push_back("H1");
  const auto never = std::chrono::system_clock::time_point::max();
  // The first occupies the worker, the second the queue.
  gate_->Run(Method::kSettle, caller, never, {}, [&](const CallContext&) {
    started.set_value();
    released.wait();
    return absl::OkStatus();
  }, [&](const absl::Status& s) { results[0].set_value(s); });
  started.get_future().wait();
  gate_->Run(Method::kSettle, caller, never, {}, [](const CallContext&) {
    return absl::OkStatus();
  }, [&](const absl::Status& s) { results[1].set_value(s); });
  const Ended third = Call("H1", [](const CallContext&) { return absl::OkStatus(); });
  EXPECT_EQ(third.status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(engine::ReasonOf(third.status), reason::kGatewayOverloaded);
  EXPECT_EQ(third.thread, std::this_thread::get_id());
  release.set_value();
  EXPECT_TRUE(results[0].get_future().get().ok());
  EXPECT_TRUE(results[1].get_future().get().ok());
  EXPECT_EQ(counters_.overload_refusals.load(), 1u);
}

TEST_F(CallGateTest, TheGatewaysOwnFailuresAreLoggedAsErrorsWithTheirMessage) {
  Make({0, 0}, 1, 16);
  const Ended e = Call("H1", [](const CallContext&) {
    return engine::Refusal(absl::StatusCode::kUnavailable, "REDIS_UNAVAILABLE", "",
                           "redis 127.0.0.1:1: connection refused");
  });
  EXPECT_EQ(e.status.code(), absl::StatusCode::kUnavailable);
  std::lock_guard<std::mutex> lock(mutex_);
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_NE(lines_[0].find("\"level\":\"error\",\"event\":\"call_failed\""), std::string::npos)
      << lines_[0];
  EXPECT_NE(lines_[0].find("connection refused"), std::string::npos) << lines_[0];
  EXPECT_NE(registry_.Render().find(
                "medsettle_settlements_total{method=\"Settle\",outcome=\"failed\"} 1"),
            std::string::npos);
}

// Completes a parked coroutine later, from another thread, as an
// asynchronous Redis client's I/O thread would.
class Resumer {
 public:
  struct Awaiter {
    Resumer* owner;
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) {
      std::lock_guard<std::mutex> lock(owner->mutex);
      owner->parked.push_back(h);
    }
    void await_resume() const noexcept {}
  };
  Awaiter Wait() { return Awaiter{this}; }
  size_t Parked() {
    std::lock_guard<std::mutex> lock(mutex);
    return parked.size();
  }
  // Resumes every parked coroutine on a new thread; returns its id.
  std::thread::id ResumeAllElsewhere() {
    std::vector<std::coroutine_handle<>> all;
    {
      std::lock_guard<std::mutex> lock(mutex);
      all.swap(parked);
    }
    std::thread::id id;
    std::thread t([&] {
      id = std::this_thread::get_id();
      for (std::coroutine_handle<> h : all) h.resume();
    });
    t.join();
    return id;
  }

 private:
  std::mutex mutex;
  std::vector<std::coroutine_handle<>> parked;
};

TEST_F(CallGateTest, ACoroutineCallHoldsNoThreadWhileItWaitsAndFinishesWhereItResumes) {
  Make({0, 0}, 1, 16);
  Resumer redis;
  TransportCaller caller;
  caller.institution_header.push_back("H1");
  std::promise<Ended> ended;
  std::atomic<int> done_calls{0};
  CallContext seen;
  gate_->RunAsync(
      Method::kSettle, caller, std::chrono::system_clock::time_point::max(), {},
      [&](CallContext c) -> cache::Task<absl::Status> {
        seen = c;
        co_await redis.Wait();
        co_return absl::OkStatus();
      },
      [&](const absl::Status& s) {
        if (done_calls.fetch_add(1) == 0) ended.set_value({s, std::this_thread::get_id()});
      });
  // RunAsync returned with the call parked: no worker, no thread holds it.
  ASSERT_EQ(redis.Parked(), 1u);
  EXPECT_EQ(gate_->in_flight(), 1u);
  EXPECT_EQ(seen.institution_id, "H1");
  EXPECT_EQ(workers_->queued(), 0u);
  const std::thread::id io = redis.ResumeAllElsewhere();
  const Ended e = ended.get_future().get();
  EXPECT_TRUE(e.status.ok()) << e.status;
  EXPECT_EQ(e.thread, io) << "done runs where the wait completed";
  EXPECT_EQ(done_calls.load(), 1);
  EXPECT_EQ(gate_->in_flight(), 0u);
}

TEST_F(CallGateTest, CoroutineCallsBeyondMaxInFlightAreRefusedAtOnce) {
  max_in_flight_ = 2;
  Make({0, 0}, 1, 16);
  Resumer redis;
  TransportCaller caller;
  caller.institution_header.push_back("H1");
  std::vector<absl::Status> finished;
  std::mutex finished_mutex;
  auto start = [&](CallContext) -> cache::Task<absl::Status> {
    co_await redis.Wait();
    co_return absl::OkStatus();
  };
  auto done = [&](const absl::Status& s) {
    std::lock_guard<std::mutex> lock(finished_mutex);
    finished.push_back(s);
  };
  for (int i = 0; i < 3; ++i) {
    gate_->RunAsync(Method::kSettle, caller, std::chrono::system_clock::time_point::max(), {},
                    start, done);
  }
  ASSERT_EQ(redis.Parked(), 2u);
  {
    std::lock_guard<std::mutex> lock(finished_mutex);
    ASSERT_EQ(finished.size(), 1u) << "the third is refused before it starts";
    EXPECT_EQ(engine::ReasonOf(finished[0]), reason::kGatewayOverloaded);
  }
  EXPECT_EQ(counters_.overload_refusals.load(), 1u);
  redis.ResumeAllElsewhere();
  EXPECT_EQ(finished.size(), 3u);
  EXPECT_EQ(gate_->in_flight(), 0u);
  // Places are given back: the next call is admitted.
  gate_->RunAsync(Method::kSettle, caller, std::chrono::system_clock::time_point::max(), {},
                  start, done);
  EXPECT_EQ(redis.Parked(), 1u);
  redis.ResumeAllElsewhere();
  EXPECT_TRUE(finished.back().ok());
}

}  // namespace
}  // namespace medsettle::gateway
