// A thread that runs one task every period: the gateway's watchers (the
// snapshot, the shipping backlog, the Redis nodes) each poll on one.
//
// The first run is one period after Start (their owners run the task once
// themselves before serving); Stop wakes the thread at once instead of
// waiting out the period, waits for a run in progress, and may be called
// twice; Start after Stop starts again.
//
// Thread safety: Start and Stop from the owner's thread; the task runs on
// the periodic thread only, outside any lock of this class.
#ifndef MEDSETTLE_GATEWAY_PERIODIC_THREAD_H_
#define MEDSETTLE_GATEWAY_PERIODIC_THREAD_H_

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace medsettle::gateway {

class PeriodicThread {
 public:
  PeriodicThread(std::chrono::milliseconds period, std::function<void()> task);
  ~PeriodicThread();  // Stop()
  PeriodicThread(const PeriodicThread&) = delete;
  PeriodicThread& operator=(const PeriodicThread&) = delete;

  void Start();  // no-op while running
  void Stop();   // idempotent

 private:
  void Loop();

  const std::chrono::milliseconds period_;
  const std::function<void()> task_;
  std::mutex mutex_;
  bool stopping_ = false;  // guarded by mutex_
  std::condition_variable wake_;
  std::thread thread_;
};

}  // namespace medsettle::gateway

#endif  // MEDSETTLE_GATEWAY_PERIODIC_THREAD_H_
