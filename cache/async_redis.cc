#include "cache/async_redis.h"

#include <errno.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <future>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include "cache/redis_reply.h"
#include "engine/status.h"
#include "engine/text.h"

namespace medsettle::cache {
namespace {

using Clock = std::chrono::steady_clock;
using engine::Cat;

constexpr int kMaxBackoffMs = 1000;
// epoll_event.data of the eventfd. A socket's is its context's generation
// (>= 1), so an event of a context freed earlier in the same batch is
// recognised and dropped.
constexpr uint64_t kWakeTag = 0;
constexpr int kMaxEvents = 8;  // one socket and one eventfd per loop

// The loop running on this thread (an AsyncRedis::Loop*), or null: lets Send
// append without a wakeup and PipelineBlocking refuse to wait for itself.
thread_local const void* current_loop = nullptr;

[[noreturn]] void Broken(const std::string& what) {
  std::fprintf(stderr, "medsettle::cache::AsyncRedis: %s\n", what.c_str());
  std::abort();
}

absl::Status Unavailable(std::string_view message) {
  return engine::Refusal(absl::StatusCode::kUnavailable, reason::kRedisUnavailable, "",
                         message);
}

struct FormattedCommandDeleter {
  void operator()(char* command) const { redisFreeCommand(command); }
};
// One command in the wire format, as redisFormatCommandArgv made it.
struct FormattedCommand {
  std::unique_ptr<char, FormattedCommandDeleter> bytes;
  size_t length = 0;
};

// One Send: its commands until they are handed to hiredis, its done, and the
// results as the replies arrive.
struct Pipeline {
  std::vector<FormattedCommand> commands;
  size_t expected = 0;  // replies that complete it (commands.size() at Send)
  AsyncRedis::Done done;
  std::vector<RedisResult> results;
  Clock::time_point sent;  // when appended to the connection's output buffer
};

// True for the commands after which hiredis 0.14 no longer matches one reply
// to one callback. It strips one leading 'p' before comparing (its pattern
// variants), so we do too.
bool ChangesReplyMatching(std::string_view name) {
  if (!name.empty() && (name[0] == 'p' || name[0] == 'P')) name.remove_prefix(1);
  for (std::string_view mode : {"subscribe", "unsubscribe", "monitor"}) {
    if (name.size() == mode.size() && strncasecmp(name.data(), mode.data(), mode.size()) == 0) {
      return true;
    }
  }
  return false;
}

// Formats every command on the caller's thread, so the caller's views need
// to live for the Send call only and the I/O thread only copies bytes.
absl::Status Format(const std::vector<RedisArgv>& commands, Pipeline& pipeline) {
  pipeline.commands.reserve(commands.size());
  std::vector<const char*> data;
  std::vector<size_t> lengths;
  for (const RedisArgv& argv : commands) {
    if (argv.empty()) return absl::InvalidArgumentError("AsyncRedis: an empty command");
    if (ChangesReplyMatching(argv[0])) {
      return absl::InvalidArgumentError(Cat(
          "AsyncRedis: ", argv[0], " is not supported (it changes how replies match commands)"));
    }
    data.clear();
    lengths.clear();
    for (std::string_view arg : argv) {
      data.push_back(arg.data());
      lengths.push_back(arg.size());
    }
    char* bytes = nullptr;
    int length = redisFormatCommandArgv(&bytes, static_cast<int>(argv.size()), data.data(),
                                        lengths.data());
    FormattedCommand command{.bytes = std::unique_ptr<char, FormattedCommandDeleter>(bytes)};
    if (length < 0 || bytes == nullptr) {
      return absl::ResourceExhaustedError("AsyncRedis: cannot format a command (out of memory)");
    }
    command.length = static_cast<size_t>(length);
    pipeline.commands.push_back(std::move(command));
  }
  pipeline.expected = commands.size();
  pipeline.results.reserve(commands.size());
  return absl::OkStatus();
}

}  // namespace

// One I/O thread: an epoll instance watching an eventfd (cross-thread
// submissions) and the socket of at most one hiredis asynchronous context.
//
// hiredis drives the socket through five hooks (addRead, delRead, addWrite,
// delWrite, cleanup). Ours only record what hiredis wants; the loop applies
// it to epoll once per turn, and writes the output buffer itself at the end
// of each turn, so everything appended in a turn leaves in one write() and
// EPOLLOUT is armed only while the socket's buffer is full.
//
// Re-entrancy: hiredis calls our reply callback from inside
// redisAsyncHandleRead, and the callback runs the caller's done, which may
// Send again (appending to the same context). The context is therefore
// freed only from the loop's own code, never from a hiredis callback; when
// hiredis frees it (I/O error, EOF) or we do (timeout, Stop), it first calls
// every pending callback with a null reply, which we ignore, then the
// cleanup hook, which marks the context lost. The loop then fails the
// pipelines still in flight, once each, outside hiredis.
//
// Everything below "loop thread only" is touched by the loop's thread alone;
// the queue under mutex_ is the only shared state besides the atomics.
class AsyncRedis::Loop {
 public:
  Loop(const AsyncRedisOptions& options, int index)
      : options_(options),
        index_(index),
        where_(Cat("redis ", options.redis.host, ":", options.redis.port)),
        backoff_ms_(options.reconnect_backoff_ms) {
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) Broken(Cat("epoll_create1: ", std::strerror(errno)));
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) Broken(Cat("eventfd: ", std::strerror(errno)));
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = kWakeTag;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &event) != 0) {
      Broken(Cat("epoll_ctl(eventfd): ", std::strerror(errno)));
    }
  }

  // REQUIRES: Join() returned (or Start was never called).
  ~Loop() {
    close(wake_fd_);
    close(epoll_fd_);
  }

  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  void Start() { thread_ = std::thread([this] { Run(); }); }

  // Asks the thread to fail everything and exit; Join waits for it.
  void RequestStop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    Wake();
  }
  void Join() {
    if (thread_.joinable()) thread_.join();
  }

  bool connected() const { return connected_.load(std::memory_order_acquire); }
  bool OnThisThread() const { return current_loop == this; }

  // AsyncRedis::Send for this loop; `commands` is not empty.
  void Send(const std::vector<RedisArgv>& commands, Done done) {
    if (!connected()) {
      std::move(done)(Unavailable(NotConnectedMessage()));
      return;
    }
    if (pending_.fetch_add(1, std::memory_order_acq_rel) >= options_.max_pending_per_loop) {
      pending_.fetch_sub(1, std::memory_order_acq_rel);
      std::move(done)(engine::Refusal(
          absl::StatusCode::kResourceExhausted, reason::kRedisPoolExhausted, "",
          Cat(where_, ": ", options_.max_pending_per_loop,
              " pipelines already pending on I/O thread ", index_)));
      return;
    }
    auto pipeline = std::make_unique<Pipeline>();
    if (absl::Status status = Format(commands, *pipeline); !status.ok()) {
      pending_.fetch_sub(1, std::memory_order_acq_rel);
      std::move(done)(std::move(status));
      return;
    }
    pipeline->done = std::move(done);

    if (OnThisThread()) {
      // From a done on this loop: straight into the output buffer; the
      // loop writes it at the end of this turn.
      if (state_ == State::kConnected && !shutting_down_) {
        Append(std::move(pipeline), Clock::now());
      } else {
        Finish(std::move(pipeline), Unavailable(NotConnectedMessage()));
      }
      return;
    }
    bool wake = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!stopping_) {
        // Only the first submission of a turn needs to wake the loop.
        wake = submitted_.empty();
        submitted_.push_back(std::move(pipeline));
      }
    }
    if (pipeline != nullptr) {  // stopping: refused here, on the caller's thread
      Finish(std::move(pipeline), Unavailable(Cat(where_, ": stopped")));
      return;
    }
    if (wake) Wake();
  }

 private:
  enum class State {
    kWaiting,     // no context; the next connect is due at reconnect_at_
    kConnecting,  // a context whose non-blocking connect is under way
    kConnected,   // a context that can take commands
  };

  void Run() {
    // hiredis writes with write(): a peer that closed the socket raises
    // SIGPIPE, which must not kill the process. Only this thread writes to
    // its socket, so blocking the signal here is enough; the write then
    // fails with EPIPE, which hiredis reports as an I/O error.
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, nullptr);
    pthread_setname_np(pthread_self(), Cat("redis-io-", index_).c_str());
    current_loop = this;

    Connect(Clock::now());
    AfterHiredis();
    epoll_event events[kMaxEvents];
    while (true) {
      Flush();
      SyncInterest();
      int n = epoll_wait(epoll_fd_, events, kMaxEvents, TimeoutMs(Clock::now()));
      if (n < 0) {
        if (errno == EINTR) continue;
        Broken(Cat("epoll_wait: ", std::strerror(errno)));
      }
      // Timers are judged at the moment epoll_wait returned, not after the
      // dones that run below, so a slow done cannot make a pipeline whose
      // reply has already arrived look overdue.
      const Clock::time_point woke_at = Clock::now();
      bool woken = false;
      bool readable = false;
      for (int i = 0; i < n; ++i) {
        if (events[i].data.u64 == kWakeTag) {
          woken = true;
        } else if (context_ != nullptr && events[i].data.u64 == generation_) {
          readable = (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0;
          OnSocket(events[i].events);
        }
      }
      if (woken && Drain()) break;
      CheckTimers(woke_at, readable);
    }
    Shutdown();
    current_loop = nullptr;
  }

  void Wake() {
    uint64_t one = 1;
    while (write(wake_fd_, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
  }

  // Moves the submitted pipelines into the connection (or fails them when
  // it is down). True when Stop was requested: Shutdown takes over.
  bool Drain() {
    // Reset the eventfd before taking the queue: a submission that lands
    // after the swap writes it again and wakes the next turn.
    uint64_t count = 0;
    while (read(wake_fd_, &count, sizeof(count)) < 0 && errno == EINTR) {
    }
    bool stop = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      draining_.swap(submitted_);
      stop = stopping_;
    }
    if (stop) return true;
    const Clock::time_point now = Clock::now();
    for (std::unique_ptr<Pipeline>& pipeline : draining_) {
      if (state_ == State::kConnected) {
        Append(std::move(pipeline), now);
      } else {
        Finish(std::move(pipeline), Unavailable(NotConnectedMessage()));
      }
    }
    draining_.clear();
    AfterHiredis();
    return false;
  }

  // Hands a pipeline's commands to hiredis (one reply callback each) and
  // puts it at the back of the in-flight queue. REQUIRES: kConnected.
  void Append(std::unique_ptr<Pipeline> pipeline, Clock::time_point now) {
    pipeline->sent = now;
    for (const FormattedCommand& command : pipeline->commands) {
      if (must_reset_) break;  // the connection is going; the pipeline fails with it
      if (redisAsyncFormattedCommand(context_, &Loop::ReplyCallback, pipeline.get(),
                                     command.bytes.get(), command.length) != REDIS_OK) {
        // Only a context that is being torn down refuses a command; part of
        // the pipeline may be queued already, so the connection cannot be
        // trusted to stay in step with in_flight_.
        MarkForReset("hiredis refused a command");
      }
    }
    pipeline->commands.clear();  // hiredis copied them into its output buffer
    in_flight_.push_back(std::move(pipeline));
  }

  // The reply callback: hiredis calls it once per command, in order, with
  // the reply, or with null while it frees the context.
  static void ReplyCallback(redisAsyncContext* context, void* reply, void* privdata) {
    if (reply == nullptr) return;  // freeing: the loop fails the pipeline afterwards
    static_cast<Loop*>(context->data)->OnReply(*static_cast<redisReply*>(reply), privdata);
  }

  void OnReply(const redisReply& reply, const void* privdata) {
    if (poisoned_) return;
    if (in_flight_.empty() || in_flight_.front().get() != privdata) {
      // Replies no longer match our queue (cannot happen unless hiredis and
      // we disagree): every in-flight pipeline fails with the connection.
      poisoned_ = true;
      MarkForReset("a reply out of step with the pipelines in flight");
      return;
    }
    Pipeline& pipeline = *in_flight_.front();
    pipeline.results.push_back(internal::ToResult(internal::ConvertReply(reply)));
    if (pipeline.results.size() < pipeline.expected) return;
    std::unique_ptr<Pipeline> complete = std::move(in_flight_.front());
    in_flight_.pop_front();
    ReportRoundTrip(complete->sent);
    std::vector<RedisResult> results = std::move(complete->results);
    Finish(std::move(complete), std::move(results));
  }

  // Calls the pipeline's done exactly once (it was removed from every queue
  // by the caller), after freeing the pipeline and its pending slot so that
  // the done can Send again.
  void Finish(std::unique_ptr<Pipeline> pipeline,
              absl::StatusOr<std::vector<RedisResult>> result) {
    Done done = std::move(pipeline->done);
    pipeline.reset();
    pending_.fetch_sub(1, std::memory_order_acq_rel);
    std::move(done)(std::move(result));
  }

  void ReportRoundTrip(Clock::time_point sent) const {
    if (!options_.redis.on_round_trip) return;
    options_.redis.on_round_trip(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - sent).count());
  }

  // --- the connection ---

  // Starts a non-blocking connect. Any failure marks the (absent) context
  // lost, so AfterHiredis schedules the next attempt.
  void Connect(Clock::time_point now) {
    redisAsyncContext* context =
        redisAsyncConnect(options_.redis.host.c_str(), options_.redis.port);
    if (context == nullptr) {
      NoteLoss("connect: cannot allocate a context");
      lost_ = true;
      return;
    }
    if (context->err != 0) {
      NoteLoss(Cat("connect: ", context->errstr));
      redisAsyncFree(context);  // no hooks attached yet: nothing calls back
      lost_ = true;
      return;
    }
    context->data = this;
    context->ev.data = this;
    context->ev.addRead = [](void* loop) { static_cast<Loop*>(loop)->want_read_ = true; };
    context->ev.delRead = [](void* loop) { static_cast<Loop*>(loop)->want_read_ = false; };
    context->ev.addWrite = [](void* loop) { static_cast<Loop*>(loop)->want_write_ = true; };
    context->ev.delWrite = [](void* loop) { static_cast<Loop*>(loop)->want_write_ = false; };
    context->ev.cleanup = [](void* loop) { static_cast<Loop*>(loop)->OnContextFreed(); };
    context_ = context;
    ++generation_;
    want_read_ = want_write_ = awaiting_writable_ = poisoned_ = false;
    registered_events_ = 0;
    state_ = State::kConnecting;
    connect_deadline_ = now + std::chrono::milliseconds(options_.redis.connect_timeout_ms);

    epoll_event event{};
    event.events = 0;  // SyncInterest sets what hiredis asks for
    event.data.u64 = generation_;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, context_->c.fd, &event) != 0) {
      NoteLoss(Cat("epoll_ctl(ADD): ", std::strerror(errno)));
      redisAsyncFree(context_);  // calls OnContextFreed
      return;
    }
    // hiredis reports the connect on the first writable event (it arms
    // addWrite here); the callback says whether it succeeded.
    redisAsyncSetConnectCallback(context_, &Loop::ConnectCallback);
    redisAsyncSetDisconnectCallback(context_, &Loop::DisconnectCallback);
  }

  static void ConnectCallback(const redisAsyncContext* context, int status) {
    Loop* loop = static_cast<Loop*>(context->data);
    if (status != REDIS_OK) {
      // hiredis frees the context right after this returns.
      loop->NoteLoss(Cat("connect: ", context->errstr != nullptr ? context->errstr : "failed"));
      return;
    }
    loop->state_ = State::kConnected;
    loop->backoff_ms_ = loop->options_.reconnect_backoff_ms;
    {
      std::lock_guard<std::mutex> lock(loop->mutex_);
      loop->last_error_.clear();
    }
    loop->connected_.store(true, std::memory_order_release);
  }

  // After the cleanup hook, when a connected context is freed.
  static void DisconnectCallback(const redisAsyncContext* context, int status) {
    if (status == REDIS_OK) return;  // freed by us: the reason is noted already
    static_cast<Loop*>(context->data)
        ->NoteLoss(context->errstr != nullptr ? context->errstr : "connection lost");
  }

  // The cleanup hook: hiredis is freeing the context (after calling every
  // pending reply callback with null). The socket is still open here.
  void OnContextFreed() {
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, context_->c.fd, nullptr);  // fails if never added
    context_ = nullptr;
    state_ = State::kWaiting;
    connected_.store(false, std::memory_order_release);
    want_read_ = want_write_ = awaiting_writable_ = false;
    registered_events_ = 0;
    lost_ = true;
  }

  // The first reason wins: later ones are consequences.
  void NoteLoss(std::string reason) {
    if (lost_reason_.empty()) lost_reason_ = std::move(reason);
  }
  void MarkForReset(std::string reason) {
    NoteLoss(std::move(reason));
    must_reset_ = true;
  }

  // Frees the context now (never from inside a hiredis callback).
  void Reset(std::string reason) {
    if (context_ == nullptr) return;
    NoteLoss(std::move(reason));
    redisAsyncFree(context_);  // null reply callbacks, cleanup hook, disconnect callback
  }

  // Runs after every call into hiredis from the loop's own code: carries
  // out a reset asked for from inside a callback, and fails what was in
  // flight on a context that is gone.
  void AfterHiredis() {
    if (must_reset_ && context_ != nullptr) Reset("");
    if (lost_) OnLost();
  }

  void OnLost() {
    lost_ = false;
    must_reset_ = false;
    std::string message =
        Cat(where_, ": ", lost_reason_.empty() ? std::string("connection lost") : lost_reason_);
    lost_reason_.clear();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      last_error_ = message;
    }
    if (!shutting_down_) {
      reconnect_at_ = Clock::now() + std::chrono::milliseconds(backoff_ms_);
      backoff_ms_ = std::min(backoff_ms_ * 2, std::max(kMaxBackoffMs, backoff_ms_));
    }
    // Outcome unknown: fail, never resend. Dones may Send; this loop is no
    // longer connected, so they are refused at once.
    std::deque<std::unique_ptr<Pipeline>> failed;
    failed.swap(in_flight_);
    const absl::Status status = Unavailable(message);
    for (std::unique_ptr<Pipeline>& pipeline : failed) Finish(std::move(pipeline), status);
  }

  void OnSocket(uint32_t events) {
    if (state_ == State::kConnecting) {
      // Writable (or an error) ends the connect; hiredis checks SO_ERROR.
      if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) redisAsyncHandleWrite(context_);
    } else {
      if (events & EPOLLOUT) awaiting_writable_ = false;
      // An error or hang-up is read as one: hiredis then frees the context.
      if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) redisAsyncHandleRead(context_);
      if (context_ != nullptr && (events & EPOLLOUT) && want_write_) {
        redisAsyncHandleWrite(context_);
        if (context_ != nullptr) awaiting_writable_ = want_write_;
      }
    }
    AfterHiredis();
  }

  // Writes what this turn appended, in one write(). When the socket takes
  // only part of it, EPOLLOUT stays armed and the rest goes when writable.
  void Flush() {
    if (state_ != State::kConnected || !want_write_ || awaiting_writable_) return;
    redisAsyncHandleWrite(context_);
    if (context_ != nullptr) awaiting_writable_ = want_write_;
    AfterHiredis();
  }

  // Applies hiredis's wishes to epoll, with one epoll_ctl when they changed.
  void SyncInterest() {
    if (context_ == nullptr) return;
    const uint32_t wanted = (want_read_ ? EPOLLIN : 0u) | (want_write_ ? EPOLLOUT : 0u);
    if (wanted == registered_events_) return;
    epoll_event event{};
    event.events = wanted;
    event.data.u64 = generation_;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, context_->c.fd, &event) != 0) {
      Reset(Cat("epoll_ctl(MOD): ", std::strerror(errno)));
      AfterHiredis();
      return;
    }
    registered_events_ = wanted;
  }

  // epoll_wait's timeout: until the oldest in-flight pipeline is overdue,
  // the connect times out, or the next connect is due; -1 when idle.
  int TimeoutMs(Clock::time_point now) const {
    Clock::time_point deadline = Clock::time_point::max();
    switch (state_) {
      case State::kConnected:
        if (!in_flight_.empty()) {
          deadline = in_flight_.front()->sent +
                     std::chrono::milliseconds(options_.redis.command_timeout_ms);
        }
        break;
      case State::kConnecting:
        deadline = connect_deadline_;
        break;
      case State::kWaiting:
        deadline = reconnect_at_;
        break;
    }
    if (deadline == Clock::time_point::max()) return -1;
    if (deadline <= now) return 0;
    // Rounded up: waking a little early would only spin.
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
    return static_cast<int>(std::min<int64_t>(ms, INT_MAX));
  }

  // `readable`: the socket had bytes this turn. hiredis reads 16 KB per
  // turn, so an overdue pipeline whose replies are still arriving gets the
  // next turn; only a turn without a byte from Redis declares it lost.
  void CheckTimers(Clock::time_point now, bool readable) {
    switch (state_) {
      case State::kConnected:
        // In-flight pipelines are in send order: the front is the oldest.
        if (!readable && !in_flight_.empty() &&
            now >= in_flight_.front()->sent +
                       std::chrono::milliseconds(options_.redis.command_timeout_ms)) {
          Reset(Cat("no reply within ", options_.redis.command_timeout_ms, " ms"));
        }
        break;
      case State::kConnecting:
        if (now >= connect_deadline_) {
          Reset(Cat("connect: no answer within ", options_.redis.connect_timeout_ms, " ms"));
        }
        break;
      case State::kWaiting:
        if (now >= reconnect_at_) Connect(now);
        break;
    }
    AfterHiredis();
  }

  // Stop: fails the queued and in-flight pipelines, frees the context.
  void Shutdown() {
    shutting_down_ = true;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (std::unique_ptr<Pipeline>& pipeline : submitted_) {
        draining_.push_back(std::move(pipeline));
      }
      submitted_.clear();
    }
    Reset("stopped");
    AfterHiredis();
    const absl::Status stopped = Unavailable(Cat(where_, ": stopped"));
    for (std::unique_ptr<Pipeline>& pipeline : draining_) Finish(std::move(pipeline), stopped);
    draining_.clear();
  }

  std::string NotConnectedMessage() {
    std::lock_guard<std::mutex> lock(mutex_);
    return last_error_.empty() ? Cat(where_, ": not connected yet")
                               : Cat("not connected: ", last_error_);
  }

  const AsyncRedisOptions& options_;  // AsyncRedis's, which outlives the loop
  const int index_;
  const std::string where_;  // "redis <host>:<port>", the start of every message
  int epoll_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: "the queue went from empty to non-empty"
  std::thread thread_;
  std::atomic<bool> connected_{false};
  std::atomic<size_t> pending_{0};  // queued + in flight, for max_pending_per_loop

  std::mutex mutex_;
  std::vector<std::unique_ptr<Pipeline>> submitted_;  // guarded by mutex_
  bool stopping_ = false;                             // guarded by mutex_
  std::string last_error_;                            // guarded by mutex_

  // Loop thread only.
  State state_ = State::kWaiting;
  bool shutting_down_ = false;
  redisAsyncContext* context_ = nullptr;  // freed only by redisAsyncFree or hiredis itself
  uint64_t generation_ = 0;               // of context_, the socket's epoll data
  bool want_read_ = false;                // what hiredis's hooks asked for
  bool want_write_ = false;
  bool awaiting_writable_ = false;  // the last write was partial: wait for EPOLLOUT
  uint32_t registered_events_ = 0;  // what epoll watches on the socket
  bool lost_ = false;               // the context is gone; OnLost has not run yet
  bool must_reset_ = false;         // free the context once out of hiredis
  bool poisoned_ = false;           // ignore replies until the reset
  std::string lost_reason_;
  int backoff_ms_;
  Clock::time_point connect_deadline_;
  Clock::time_point reconnect_at_;
  std::deque<std::unique_ptr<Pipeline>> in_flight_;  // in send order
  std::vector<std::unique_ptr<Pipeline>> draining_;  // reused by Drain
};

AsyncRedis::AsyncRedis(AsyncRedisOptions options) : options_(std::move(options)) {
  assert(options_.loops >= 1);
  assert(options_.redis.connect_timeout_ms > 0 && options_.redis.command_timeout_ms > 0);
  assert(options_.reconnect_backoff_ms > 0 && options_.max_pending_per_loop >= 1);
  assert(options_.redis.port > 0 && options_.redis.port < 65536);
  loops_.reserve(static_cast<size_t>(std::max(options_.loops, 1)));
  for (int i = 0; i < std::max(options_.loops, 1); ++i) {
    loops_.push_back(std::make_unique<Loop>(options_, i));
  }
  for (std::unique_ptr<Loop>& loop : loops_) loop->Start();
}

AsyncRedis::~AsyncRedis() { Stop(); }

void AsyncRedis::Send(uint32_t shard, const std::vector<RedisArgv>& commands, Done done) {
  if (commands.empty()) {
    std::move(done)(std::vector<RedisResult>());
    return;
  }
  Loop& loop = LoopFor(shard);
  if (stopped_.load(std::memory_order_acquire)) {
    std::move(done)(Unavailable(
        Cat("redis ", options_.redis.host, ":", options_.redis.port, ": stopped")));
    return;
  }
  loop.Send(commands, std::move(done));
}

absl::StatusOr<std::vector<RedisResult>> AsyncRedis::PipelineBlocking(
    uint32_t shard, const std::vector<RedisArgv>& commands) {
  if (current_loop != nullptr) {
    return absl::FailedPreconditionError(
        "AsyncRedis::PipelineBlocking on an AsyncRedis I/O thread would wait for itself");
  }
  // The promise lives in the done, so the shared state outlives whichever
  // side finishes last.
  std::promise<absl::StatusOr<std::vector<RedisResult>>> promise;
  std::future<absl::StatusOr<std::vector<RedisResult>>> future = promise.get_future();
  Send(shard, commands,
       [promise = std::move(promise)](absl::StatusOr<std::vector<RedisResult>> result) mutable {
         promise.set_value(std::move(result));
       });
  return future.get();
}

bool AsyncRedis::connected(uint32_t shard) const { return LoopFor(shard).connected(); }

void AsyncRedis::Stop() {
  for (const std::unique_ptr<Loop>& loop : loops_) {
    if (loop->OnThisThread()) {
      Broken("Stop (or the destructor) called on its own I/O thread, which it would join");
    }
  }
  std::lock_guard<std::mutex> lock(stop_mutex_);
  stopped_.store(true, std::memory_order_release);
  for (std::unique_ptr<Loop>& loop : loops_) loop->RequestStop();
  for (std::unique_ptr<Loop>& loop : loops_) loop->Join();
}

}  // namespace medsettle::cache
