// A fixed set of threads that run the gateway's requests, so that gRPC's
// own threads never block on Redis. The queue is bounded: when it is full a
// request is refused at once (RESOURCE_EXHAUSTED) rather than queued behind
// work it would time out waiting for.
//
// Thread safety: TrySubmit from any thread. Stop (or the destructor) runs
// every task already accepted, then joins.
#ifndef MEDSETTLE_GATEWAY_WORKER_POOL_H_
#define MEDSETTLE_GATEWAY_WORKER_POOL_H_

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace medsettle::gateway {

class WorkerPool {
 public:
  // REQUIRES: threads > 0, queue_limit > 0.
  WorkerPool(int threads, size_t queue_limit);
  ~WorkerPool();

  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues `task`; false (and `task` not run) when queue_limit tasks are
  // already waiting or the pool is stopping.
  bool TrySubmit(std::function<void()> task);

  // Stops accepting, drains the queue, joins. Idempotent.
  void Stop();

  size_t queued() const;  // waiting now (a snapshot; for metrics)

 private:
  void Run();

  const size_t queue_limit_;
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> queue_;  // guarded by mutex_
  bool stopping_ = false;                    // guarded by mutex_
  std::vector<std::thread> threads_;
};

}  // namespace medsettle::gateway

#endif  // MEDSETTLE_GATEWAY_WORKER_POOL_H_
