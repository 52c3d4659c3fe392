// Task<T>: the C++20 coroutine type of medsettle's request path, so that a
// request waiting for Redis holds no thread. A handler written as
//
//   Task<absl::Status> Settle(...) {
//     absl::StatusOr<SettleRead> read = co_await store.ReadForSettleAsync(...);
//     ...
//     co_return absl::OkStatus();
//   }
//
// reads like the blocking code it replaced; where it waits, its frame is
// parked and the thread goes on with other requests, and it resumes on the
// thread that completes the wait (an AsyncRedis I/O thread, cache/async_redis.h).
// With a blocking RedisClient (cache/connection_pool.h) nothing ever parks:
// the same code runs straight through on the caller's thread, which is how
// tools and most tests use it.
//
// The shape is the usual lazy task (cppcoro, folly::coro): a Task does
// nothing until it is awaited, or started by StartDetached or RunSync; each
// Task is awaited once; when it finishes it resumes its awaiter directly
// (symmetric transfer, so chains of tasks do not grow the stack). Exceptions
// are not used in medsettle: one escaping a coroutine terminates.
//
// Lifetimes: a coroutine's reference and string_view parameters must
// outlive the Task; awaiting the Task in the same expression that creates it
// (`co_await f(x)`) guarantees that.
#ifndef MEDSETTLE_CACHE_TASK_H_
#define MEDSETTLE_CACHE_TASK_H_

#include <condition_variable>
#include <coroutine>
#include <exception>
#include <mutex>
#include <optional>
#include <utility>

namespace medsettle::cache {

template <typename T>
class [[nodiscard]] Task {
 public:
  struct promise_type {
    std::optional<T> value;
    std::coroutine_handle<> continuation = std::noop_coroutine();

    Task get_return_object() {
      return Task(std::coroutine_handle<promise_type>::from_promise(*this));
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    struct FinalAwaiter {
      bool await_ready() noexcept { return false; }
      std::coroutine_handle<> await_suspend(std::coroutine_handle<promise_type> h) noexcept {
        return h.promise().continuation;
      }
      void await_resume() noexcept {}
    };
    FinalAwaiter final_suspend() noexcept { return {}; }
    template <typename U>
    void return_value(U&& v) {
      value.emplace(std::forward<U>(v));
    }
    void unhandled_exception() noexcept { std::terminate(); }
  };

  Task(Task&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  Task& operator=(Task&& other) noexcept {
    if (this != &other) {
      if (handle_) handle_.destroy();
      handle_ = std::exchange(other.handle_, nullptr);
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() {
    if (handle_) handle_.destroy();
  }

  // co_await: starts the coroutine; the awaiter resumes with its value.
  bool await_ready() const noexcept { return false; }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> awaiter) noexcept {
    handle_.promise().continuation = awaiter;
    return handle_;
  }
  T await_resume() { return std::move(*handle_.promise().value); }

 private:
  explicit Task(std::coroutine_handle<promise_type> handle) : handle_(handle) {}
  std::coroutine_handle<promise_type> handle_;
};

namespace internal {
// A coroutine that starts at once and frees itself when it ends.
struct Detached {
  struct promise_type {
    Detached get_return_object() noexcept { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
  };
};
}  // namespace internal

// Runs `task` now on this thread, up to its first wait, and calls
// `on_done(value)` when it finishes, on whichever thread finishes it. The
// caller keeps nothing: the task frees itself.
template <typename T, typename OnDone>
internal::Detached StartDetached(Task<T> task, OnDone on_done) {
  on_done(co_await std::move(task));
}

// Runs `task` and blocks this thread until it finishes. Never call it on
// the thread that would have to finish the task (an AsyncRedis I/O thread):
// that thread would wait for itself.
template <typename T>
T RunSync(Task<T> task) {
  std::mutex mutex;
  std::condition_variable finished;
  std::optional<T> result;
  StartDetached(std::move(task), [&](T value) {
    std::lock_guard<std::mutex> lock(mutex);
    result.emplace(std::move(value));
    finished.notify_one();  // under the lock: the waiter may return at once
  });
  std::unique_lock<std::mutex> lock(mutex);
  finished.wait(lock, [&] { return result.has_value(); });
  return std::move(*result);
}

}  // namespace medsettle::cache

#endif  // MEDSETTLE_CACHE_TASK_H_
