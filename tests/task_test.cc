// The coroutine pieces of the settle path without Redis: cache::Task
// (values through chains of tasks, RunSync whether or not the task parks,
// StartDetached finishing on the thread that resumes it), AwaitPipeline
// with a client that answers inline and one that answers from another
// thread, and gateway::PersonTurns (one holder per person at a time, turns
// granted in order, other persons not held up) (unit).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <coroutine>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cache/redis_client.h"
#include "cache/task.h"
#include "gateway/person_turns.h"

namespace medsettle {
namespace {

using cache::Task;

// Parks coroutines until the test resumes them, on a thread of its choice.
class Parking {
 public:
  struct Awaiter {
    Parking* owner;
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) {
      std::lock_guard<std::mutex> lock(owner->mutex_);
      owner->parked_.push_back(h);
    }
    void await_resume() const noexcept {}
  };
  Awaiter Park() { return Awaiter{this}; }
  size_t size() {
    std::lock_guard<std::mutex> lock(mutex_);
    return parked_.size();
  }
  // Resumes the oldest parked coroutine on this thread.
  void ResumeOne() {
    std::coroutine_handle<> h;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ASSERT_FALSE(parked_.empty());
      h = parked_.front();
      parked_.erase(parked_.begin());
    }
    h.resume();
  }

 private:
  std::mutex mutex_;
  std::vector<std::coroutine_handle<>> parked_;
};

Task<int64_t> Twice(int64_t x) { co_return 2 * x; }

Task<int64_t> SumOfTwice(int n) {
  int64_t sum = 0;
  for (int i = 1; i <= n; ++i) sum += co_await Twice(i);
  co_return sum;
}

TEST(TaskTest, ValuesFlowThroughChainsOfTasks) {
  // 1,000 awaits in a row. (Optimized builds keep the stack flat by
  // symmetric transfer; a Debug build nests a frame or two per await.)
  EXPECT_EQ(cache::RunSync(SumOfTwice(1000)), 1000LL * 1001);
}

Task<std::string> ParkThenAnswer(Parking& parking, std::string answer) {
  co_await parking.Park();
  co_return answer;
}

TEST(TaskTest, RunSyncWaitsForATaskFinishedOnAnotherThread) {
  Parking parking;
  std::thread resumer([&] {
    while (parking.size() == 0) std::this_thread::yield();
    parking.ResumeOne();
  });
  EXPECT_EQ(cache::RunSync(ParkThenAnswer(parking, "done")), "done");
  resumer.join();
}

TEST(TaskTest, StartDetachedRunsToTheFirstWaitThenFinishesWhereResumed) {
  Parking parking;
  std::atomic<int> calls{0};
  std::thread::id finished_on;
  cache::StartDetached(ParkThenAnswer(parking, "x"), [&](std::string value) {
    EXPECT_EQ(value, "x");
    finished_on = std::this_thread::get_id();
    calls.fetch_add(1);
  });
  EXPECT_EQ(calls.load(), 0) << "parked, not finished";
  ASSERT_EQ(parking.size(), 1u);
  std::thread::id resumer_id;
  std::thread resumer([&] {
    resumer_id = std::this_thread::get_id();
    parking.ResumeOne();
  });
  resumer.join();
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(finished_on, resumer_id);
}

// A RedisClient whose SendPipeline answers inline (as the blocking
// default does) or from a thread of its own (as AsyncRedis does).
class FakeRedis final : public cache::RedisClient {
 public:
  explicit FakeRedis(bool answer_elsewhere) : answer_elsewhere_(answer_elsewhere) {}
  ~FakeRedis() override {
    for (std::thread& t : threads_) t.join();
  }
  cache::RedisResult Command(std::string_view /*routing_key*/,
                             const cache::RedisArgv& argv) override {
    return NodeCommand(0, argv);
  }
  std::string NodeName(int /*node*/) override { return "fake:0"; }
  absl::StatusOr<std::vector<cache::RedisResult>> Pipeline(
      std::string_view /*routing_key*/, const std::vector<cache::RedisArgv>& commands) override {
    std::vector<cache::RedisResult> out;
    for (const cache::RedisArgv& c : commands) out.push_back(NodeCommand(0, c));
    return out;
  }
  absl::StatusOr<std::vector<cache::RedisResult>> PipelineAcrossSlots(
      const std::vector<std::string_view>& /*routing_keys*/,
      const std::vector<cache::RedisArgv>& commands) override {
    return Pipeline("", commands);
  }
  cache::RedisResult NodeCommand(int /*node*/, const cache::RedisArgv& argv) override {
    cache::RedisReply reply;
    reply.type = cache::RedisReply::Type::kString;
    for (std::string_view a : argv) reply.str += std::string(a) + " ";
    return reply;
  }
  void SendPipeline(std::string_view hash_tag, const std::vector<cache::RedisArgv>& commands,
                    PipelineDone done) override {
    tags_.emplace_back(hash_tag);
    absl::StatusOr<std::vector<cache::RedisResult>> result = Pipeline(hash_tag, commands);
    if (!answer_elsewhere_) {
      std::move(done)(std::move(result));
      return;
    }
    threads_.emplace_back([done = std::move(done), result = std::move(result)]() mutable {
      std::move(done)(std::move(result));
    });
  }
  std::vector<std::string> tags_;

 private:
  const bool answer_elsewhere_;
  std::vector<std::thread> threads_;
};

Task<std::string> EchoTwice(cache::RedisClient& redis) {
  std::string out;
  for (const char* word : {"a", "b"}) {
    const std::vector<cache::RedisArgv> commands = {{"ECHO", word}};
    absl::StatusOr<std::vector<cache::RedisResult>> r =
        co_await cache::AwaitPipeline(redis, "3f", commands);
    if (!r.ok()) co_return std::string(r.status().message());
    out += (*r)[0]->str;
  }
  co_return out;
}

TEST(TaskTest, AwaitPipelineWorksWhetherTheClientAnswersInlineOrFromAnotherThread) {
  for (bool elsewhere : {false, true}) {
    FakeRedis redis(elsewhere);
    EXPECT_EQ(cache::RunSync(EchoTwice(redis)), "ECHO a ECHO b ") << elsewhere;
    EXPECT_EQ(redis.tags_, (std::vector<std::string>{"3f", "3f"})) << "the tag goes along";
  }
}

// Holds `key`'s turn across one parked wait, recording who held it.
Task<int> TakeTurn(gateway::PersonTurns& turns, std::string key, Parking& parking,
                   std::vector<int>& order, std::atomic<int>& holders, int me) {
  gateway::PersonTurns::Turn turn = co_await turns.Take(key);
  EXPECT_EQ(holders.fetch_add(1), 0) << "two holders of one person's turn";
  order.push_back(me);
  co_await parking.Park();
  holders.fetch_sub(1);
  co_return me;
}

TEST(PersonTurnsTest, OnePersonsSettlementsTakeTurnsInOrderOthersDoNotWait) {
  gateway::PersonTurns turns(1024);
  Parking parking;
  std::vector<int> order;
  std::atomic<int> holders{0};
  std::atomic<int> finished{0};
  const std::string alice = "3fa9c0";
  for (int i = 0; i < 5; ++i) {
    cache::StartDetached(TakeTurn(turns, alice, parking, order, holders, i),
                         [&](int) { finished.fetch_add(1); });
  }
  ASSERT_EQ(parking.size(), 1u) << "the first holds the turn, four wait without parking here";
  // Another person is not held up by alice's queue.
  std::vector<int> other_order;
  std::atomic<int> other_holders{0};
  cache::StartDetached(TakeTurn(turns, "b7110e", parking, other_order, other_holders, 99),
                       [&](int) { finished.fetch_add(1); });
  EXPECT_EQ(parking.size(), 2u);
  // Releasing each turn resumes the next waiter, in the order they came.
  while (parking.size() > 0) parking.ResumeOne();
  EXPECT_EQ(finished.load(), 6);
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_EQ(other_order, (std::vector<int>{99}));
  // Free again: taken at once.
  cache::StartDetached(TakeTurn(turns, alice, parking, order, holders, 5),
                       [&](int) { finished.fetch_add(1); });
  ASSERT_EQ(parking.size(), 1u);
  parking.ResumeOne();
  EXPECT_EQ(finished.load(), 7);
}

Task<int> TakeAndGo(gateway::PersonTurns& turns, std::string key) {
  gateway::PersonTurns::Turn turn = co_await turns.Take(key);
  co_return 1;  // finishes without parking (a refusal, Redis down): releases at once
}

TEST(PersonTurnsTest, ALongQueueOfWaitersThatFinishAtOnceIsResumedInALoopNotNested) {
  gateway::PersonTurns turns(1);
  Parking parking;
  std::vector<int> order;
  std::atomic<int> holders{0};
  std::atomic<int> finished{0};
  cache::StartDetached(TakeTurn(turns, "3f", parking, order, holders, 0),
                       [&](int) { finished.fetch_add(1); });
  // Nested, 200,000 hand-offs would overflow the stack.
  constexpr int kWaiters = 200000;
  for (int i = 0; i < kWaiters; ++i) {
    cache::StartDetached(TakeAndGo(turns, "3f"), [&](int) { finished.fetch_add(1); });
  }
  EXPECT_EQ(finished.load(), 0);
  parking.ResumeOne();
  EXPECT_EQ(finished.load(), kWaiters + 1);
  // And the turn is free again.
  cache::StartDetached(TakeAndGo(turns, "3f"), [&](int) { finished.fetch_add(1); });
  EXPECT_EQ(finished.load(), kWaiters + 2);
}

}  // namespace
}  // namespace medsettle
