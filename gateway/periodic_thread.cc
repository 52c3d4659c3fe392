#include "gateway/periodic_thread.h"

#include <utility>

namespace medsettle::gateway {

PeriodicThread::PeriodicThread(std::chrono::milliseconds period, std::function<void()> task)
    : period_(period), task_(std::move(task)) {}

PeriodicThread::~PeriodicThread() { Stop(); }

void PeriodicThread::Start() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { Loop(); });
}

void PeriodicThread::Stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void PeriodicThread::Loop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait_for(lock, period_, [this] { return stopping_; });
      if (stopping_) return;
    }
    task_();
  }
}

}  // namespace medsettle::gateway
