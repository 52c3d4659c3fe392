// Settlements of one person take turns within this gateway, so they queue
// instead of invalidating each other's accumulator reads (across gateways
// the accumulator version and the handler's retry loop keep them correct).
// A stripe of turns by person key, awaited by coroutines (cache/task.h): a
// settlement waiting for its turn holds no thread, where a mutex would hold
// an I/O thread that every other request needs.
//
//   PersonTurns::Turn turn = co_await turns.Take(person_key);
//   ... read, settle, commit ...
//   // the next waiter of the stripe resumes when `turn` is destroyed
//
// Turns are granted in the order they were asked for. The next waiter is
// resumed on the thread that releases the turn, inside the release; it runs
// until it next waits (normally its Redis read), then the releasing thread
// goes on. Hand-offs made while resuming are run one after another, not
// nested (a trampoline). A waiter's deadline is checked once it has the
// turn (the handler's first step), not while it waits.
//
// Thread safety: Take and the release may be called from any thread.
#ifndef MEDSETTLE_GATEWAY_PERSON_TURNS_H_
#define MEDSETTLE_GATEWAY_PERSON_TURNS_H_

#include <coroutine>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <string_view>
#include <utility>
#include <vector>

namespace medsettle::gateway {

class PersonTurns {
 public:
  class Turn {
   public:
    Turn() = default;
    Turn(Turn&& other) noexcept
        : owner_(std::exchange(other.owner_, nullptr)), stripe_(other.stripe_) {}
    Turn& operator=(Turn&& other) noexcept {
      if (this != &other) {
        Release();
        owner_ = std::exchange(other.owner_, nullptr);
        stripe_ = other.stripe_;
      }
      return *this;
    }
    ~Turn() { Release(); }
    // Gives the turn to the next waiter now (idempotent).
    void Release() {
      if (owner_ != nullptr) std::exchange(owner_, nullptr)->Release(stripe_);
    }

   private:
    friend class PersonTurns;
    Turn(PersonTurns* owner, size_t stripe) : owner_(owner), stripe_(stripe) {}
    PersonTurns* owner_ = nullptr;
    size_t stripe_ = 0;
  };

  // REQUIRES: stripes > 0.
  explicit PersonTurns(size_t stripes) : stripes_(stripes), stripe_(new Stripe[stripes]) {}

  class Awaiter {
   public:
    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> waiter) {
      Stripe& s = owner_->stripe_[stripe_];
      std::lock_guard<std::mutex> lock(s.mutex);
      if (!s.taken) {
        s.taken = true;
        return false;  // free: go on without parking
      }
      s.waiters.push_back(waiter);
      return true;
    }
    Turn await_resume() { return Turn(owner_, stripe_); }

   private:
    friend class PersonTurns;
    Awaiter(PersonTurns* owner, size_t stripe) : owner_(owner), stripe_(stripe) {}
    PersonTurns* owner_;
    size_t stripe_;
  };

  // `co_await Take(key)`: the person's turn. `person_key` is HMAC output in
  // lowercase hex, so its first digits spread evenly over the stripes.
  Awaiter Take(std::string_view person_key) { return Awaiter(this, StripeOf(person_key)); }

 private:
  struct Stripe {
    std::mutex mutex;
    bool taken = false;                             // guarded by mutex
    std::deque<std::coroutine_handle<>> waiters;    // guarded by mutex
  };

  size_t StripeOf(std::string_view person_key) const {
    size_t h = 0;
    for (size_t i = 0; i < person_key.size() && i < 6; ++i) {
      const char c = person_key[i];
      h = h * 16 + static_cast<size_t>(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return h % stripes_;
  }

  void Release(size_t stripe) {
    Stripe& s = stripe_[stripe];
    std::coroutine_handle<> next;
    {
      std::lock_guard<std::mutex> lock(s.mutex);
      if (s.waiters.empty()) {
        s.taken = false;
        return;
      }
      next = s.waiters.front();  // the turn passes on, still taken
      s.waiters.pop_front();
    }
    // A trampoline: a waiter resumed here may finish without parking (a
    // refusal, Redis down) and release in turn; those hand-offs are queued
    // on this thread and resumed by this loop, not nested, so a long queue
    // of such waiters cannot overflow the stack.
    thread_local std::vector<std::coroutine_handle<>>* resuming = nullptr;
    if (resuming != nullptr) {
      resuming->push_back(next);
      return;
    }
    std::vector<std::coroutine_handle<>> queue = {next};
    resuming = &queue;
    for (size_t i = 0; i < queue.size(); ++i) {
      const std::coroutine_handle<> h = queue[i];  // resume may grow the queue
      h.resume();
    }
    resuming = nullptr;
  }

  const size_t stripes_;
  std::unique_ptr<Stripe[]> stripe_;
};

}  // namespace medsettle::gateway

#endif  // MEDSETTLE_GATEWAY_PERSON_TURNS_H_
