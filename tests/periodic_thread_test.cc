// gateway::PeriodicThread (unit): it runs its task every period, the first
// run one period after Start; Stop does not wait out the period; Start is
// a no-op while running and starts again after Stop.
#include "gateway/periodic_thread.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace medsettle::gateway {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// Waits until `runs` reaches `at_least`; false after 10 s.
bool WaitForRuns(const std::atomic<int>& runs, int at_least) {
  const Clock::time_point give_up = Clock::now() + std::chrono::seconds(10);
  while (runs.load() < at_least) {
    if (Clock::now() > give_up) return false;
    std::this_thread::sleep_for(milliseconds(1));
  }
  return true;
}

TEST(PeriodicThread, RunsEveryPeriodAfterStartUntilStop) {
  std::atomic<int> runs{0};
  PeriodicThread thread(milliseconds(5), [&] { runs.fetch_add(1); });
  std::this_thread::sleep_for(milliseconds(30));
  EXPECT_EQ(runs.load(), 0) << "no run before Start";
  thread.Start();
  thread.Start();  // a no-op while running (a second std::thread here would terminate)
  ASSERT_TRUE(WaitForRuns(runs, 3));
  thread.Stop();
  const int stopped_at = runs.load();
  std::this_thread::sleep_for(milliseconds(30));
  EXPECT_EQ(runs.load(), stopped_at) << "no run after Stop";
  thread.Stop();  // idempotent

  thread.Start();  // again after Stop
  ASSERT_TRUE(WaitForRuns(runs, stopped_at + 2));
}

TEST(PeriodicThread, FirstRunIsOnePeriodAfterStart) {
  std::atomic<int> runs{0};
  PeriodicThread thread(milliseconds(300), [&] { runs.fetch_add(1); });
  const Clock::time_point started = Clock::now();
  thread.Start();
  ASSERT_TRUE(WaitForRuns(runs, 1));
  EXPECT_GE(Clock::now() - started, milliseconds(300));
}

TEST(PeriodicThread, StopDoesNotWaitOutThePeriod) {
  std::atomic<int> runs{0};
  PeriodicThread thread(std::chrono::hours(1), [&] { runs.fetch_add(1); });
  thread.Start();
  const Clock::time_point stopping = Clock::now();
  thread.Stop();
  EXPECT_LT(Clock::now() - stopping, std::chrono::seconds(5));
  EXPECT_EQ(runs.load(), 0);
}

TEST(PeriodicThread, StopWaitsForARunInProgress) {
  std::atomic<bool> in_run{false};
  std::atomic<bool> release{false};
  PeriodicThread thread(milliseconds(1), [&] {
    in_run.store(true);
    while (!release.load()) std::this_thread::sleep_for(milliseconds(1));
  });
  thread.Start();
  const Clock::time_point give_up = Clock::now() + std::chrono::seconds(10);
  while (!in_run.load() && Clock::now() < give_up) std::this_thread::sleep_for(milliseconds(1));
  ASSERT_TRUE(in_run.load());
  std::atomic<bool> stop_returned{false};
  std::thread stopper([&] {
    thread.Stop();
    stop_returned.store(true);
  });
  std::this_thread::sleep_for(milliseconds(50));
  EXPECT_FALSE(stop_returned.load()) << "Stop returned while the task was still running";
  release.store(true);
  stopper.join();
  EXPECT_TRUE(stop_returned.load());
}

TEST(PeriodicThread, DestructorStops) {
  std::atomic<int> runs{0};
  {
    PeriodicThread thread(milliseconds(1), [&] { runs.fetch_add(1); });
    thread.Start();
    ASSERT_TRUE(WaitForRuns(runs, 1));
  }
  const int after = runs.load();
  std::this_thread::sleep_for(milliseconds(20));
  EXPECT_EQ(runs.load(), after);
}

}  // namespace
}  // namespace medsettle::gateway
