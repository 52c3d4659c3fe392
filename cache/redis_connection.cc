#include "cache/redis_connection.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#include <cassert>
#include <chrono>
#include <utility>

#include "cache/redis_reply.h"
#include "engine/status.h"
#include "engine/text.h"

namespace medsettle::cache {
namespace {

using engine::Cat;

struct ReplyDeleter {
  void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

timeval ToTimeval(int timeout_ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout_ms / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout_ms % 1000) * 1000);
  return tv;
}

absl::Status Unavailable(std::string_view message) {
  return engine::Refusal(absl::StatusCode::kUnavailable, reason::kRedisUnavailable,
                         "", message);
}

// Blocks SIGPIPE in the calling thread for the scope of a call, and consumes
// a SIGPIPE that a write to a broken socket raised meanwhile, so that hiredis
// (which uses write(), not send(MSG_NOSIGNAL)) cannot kill the process. The
// write itself then fails with EPIPE, which hiredis reports as an I/O error.
class ScopedSigpipeSuppression {
 public:
  ScopedSigpipeSuppression() {
    sigemptyset(&pipe_set_);
    sigaddset(&pipe_set_, SIGPIPE);
    sigset_t pending;
    sigemptyset(&pending);
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_set_, &old_set_);
  }
  ~ScopedSigpipeSuppression() {
    if (!was_pending_) {
      sigset_t pending;
      sigemptyset(&pending);
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        timespec no_wait{};
        while (sigtimedwait(&pipe_set_, nullptr, &no_wait) == -1 && errno == EINTR) {
        }
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_set_, nullptr);
  }
  ScopedSigpipeSuppression(const ScopedSigpipeSuppression&) = delete;
  ScopedSigpipeSuppression& operator=(const ScopedSigpipeSuppression&) = delete;

 private:
  sigset_t pipe_set_;
  sigset_t old_set_;
  bool was_pending_ = false;
};

// True when the socket can no longer be used for a request: the peer closed
// it (EOF), it has an error, or it holds bytes nobody asked for. Costs one
// non-blocking recv and no round trip.
bool SocketUnusable(int fd) {
  char byte = 0;
  ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0) return !(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
  return true;  // 0 = EOF; > 0 = unsolicited data (the stream is out of step)
}

}  // namespace

namespace internal {

RedisReply ConvertReply(const redisReply& in) {
  RedisReply out;
  switch (in.type) {
    case REDIS_REPLY_NIL:
      out.type = RedisReply::Type::kNil;
      break;
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::kInteger;
      out.integer = in.integer;
      break;
    case REDIS_REPLY_STRING:
      out.type = RedisReply::Type::kString;
      out.str.assign(in.str, in.len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = RedisReply::Type::kStatus;
      out.str.assign(in.str, in.len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = RedisReply::Type::kError;
      out.str.assign(in.str, in.len);
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::kArray;
      out.elements.reserve(in.elements);
      for (size_t i = 0; i < in.elements; ++i) {
        out.elements.push_back(ConvertReply(*in.element[i]));
      }
      break;
    default:
      // RESP3 types (hiredis >= 1.0) appear only after HELLO 3, which
      // medsettle never sends.
      out.type = RedisReply::Type::kError;
      out.str = Cat("unsupported reply type ", in.type);
      break;
  }
  return out;
}

}  // namespace internal

absl::Status ErrorReplyStatus(std::string_view text) {
  auto starts_with = [&](std::string_view prefix) {
    return text.substr(0, prefix.size()) == prefix &&
           (text.size() == prefix.size() || text[prefix.size()] == ' ');
  };
  if (starts_with("NOSCRIPT")) {
    return engine::Refusal(absl::StatusCode::kFailedPrecondition, reason::kRedisNoscript,
                           "", text);
  }
  // Redis is up but cannot serve yet (replaying its AOF, a script running
  // too long, a replica without its master): as good as unreachable.
  for (std::string_view transient : {"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN",
                                     "CLUSTERDOWN"}) {
    if (starts_with(transient)) return Unavailable(text);
  }
  return engine::Refusal(absl::StatusCode::kInternal, reason::kRedisError, "", text);
}

void RedisConnection::ContextDeleter::operator()(redisContext* context) const {
  redisFree(context);
}

RedisConnection::RedisConnection(RedisOptions options) : options_(std::move(options)) {
  assert(options_.connect_timeout_ms > 0 && options_.command_timeout_ms > 0);
  assert(options_.port > 0 && options_.port < 65536);
}

RedisConnection::~RedisConnection() = default;

absl::StatusOr<std::unique_ptr<RedisConnection>> RedisConnection::Connect(
    std::string_view host, int port, int connect_timeout_ms, int command_timeout_ms) {
  auto connection = std::make_unique<RedisConnection>(RedisOptions{
      .host = std::string(host),
      .port = port,
      .connect_timeout_ms = connect_timeout_ms,
      .command_timeout_ms = command_timeout_ms,
  });
  if (absl::Status status = connection->EnsureConnected(); !status.ok()) return status;
  return connection;
}

absl::Status RedisConnection::EnsureConnected() {
  if (context_ != nullptr && SocketUnusable(context_->fd)) context_.reset();
  if (context_ != nullptr) return absl::OkStatus();

  ContextPtr context(redisConnectWithTimeout(options_.host.c_str(), options_.port,
                                             ToTimeval(options_.connect_timeout_ms)));
  if (context == nullptr) {
    return Unavailable(Cat("redis ", options_.host, ":", options_.port,
                           ": cannot allocate a connection"));
  }
  if (context->err != 0) {
    return Unavailable(Cat("redis ", options_.host, ":", options_.port,
                           ": connect: ", context->errstr));
  }
  if (redisSetTimeout(context.get(), ToTimeval(options_.command_timeout_ms)) != REDIS_OK) {
    return Unavailable(Cat("redis ", options_.host, ":", options_.port,
                           ": set timeout: ", context->errstr));
  }
  context_ = std::move(context);
  return absl::OkStatus();
}

absl::Status RedisConnection::Discard(std::string_view what) {
  std::string detail = context_ != nullptr && context_->errstr[0] != '\0'
                           ? std::string(context_->errstr)
                           : std::string("connection lost");
  context_.reset();
  return Unavailable(Cat("redis ", options_.host, ":", options_.port, ": ", what, ": ",
                         detail));
}

absl::Status RedisConnection::Append(const RedisArgv& argv) {
  assert(!argv.empty());
  std::vector<const char*> data;
  std::vector<size_t> lengths;
  data.reserve(argv.size());
  lengths.reserve(argv.size());
  for (std::string_view arg : argv) {
    data.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  if (redisAppendCommandArgv(context_.get(), static_cast<int>(argv.size()), data.data(),
                             lengths.data()) != REDIS_OK) {
    return Discard("append command");
  }
  return absl::OkStatus();
}

absl::StatusOr<RedisReply> RedisConnection::ReadReply() {
  void* raw = nullptr;
  if (redisGetReply(context_.get(), &raw) != REDIS_OK) return Discard("read reply");
  ReplyPtr reply(static_cast<redisReply*>(raw));
  if (reply == nullptr) return Discard("read reply");
  return internal::ConvertReply(*reply);
}

RedisResult RedisConnection::Command(const RedisArgv& argv) {
  ScopedSigpipeSuppression no_sigpipe;
  if (absl::Status status = EnsureConnected(); !status.ok()) return status;
  const auto sent = std::chrono::steady_clock::now();
  if (absl::Status status = Append(argv); !status.ok()) return status;
  absl::StatusOr<RedisReply> reply = ReadReply();
  if (!reply.ok()) return reply.status();
  ReportRoundTrip(sent);
  return internal::ToResult(*std::move(reply));
}

void RedisConnection::ReportRoundTrip(std::chrono::steady_clock::time_point sent) const {
  if (!options_.on_round_trip) return;
  options_.on_round_trip(std::chrono::duration_cast<std::chrono::microseconds>(
                             std::chrono::steady_clock::now() - sent)
                             .count());
}

absl::StatusOr<std::vector<RedisResult>> RedisConnection::Pipeline(
    const std::vector<RedisArgv>& commands) {
  std::vector<RedisResult> results;
  if (commands.empty()) return results;
  ScopedSigpipeSuppression no_sigpipe;
  if (absl::Status status = EnsureConnected(); !status.ok()) return status;
  const auto sent = std::chrono::steady_clock::now();
  for (const RedisArgv& argv : commands) {
    if (absl::Status status = Append(argv); !status.ok()) return status;
  }
  // The first read flushes the whole output buffer: all commands go out in
  // one write, then the replies are read in order.
  results.reserve(commands.size());
  for (size_t i = 0; i < commands.size(); ++i) {
    absl::StatusOr<RedisReply> reply = ReadReply();
    if (!reply.ok()) return reply.status();
    results.push_back(internal::ToResult(*std::move(reply)));
  }
  ReportRoundTrip(sent);
  return results;
}

}  // namespace medsettle::cache
