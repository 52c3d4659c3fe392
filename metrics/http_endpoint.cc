#include "metrics/http_endpoint.h"

#include <httplib.h>
#include <pthread.h>
#include <sys/socket.h>
#include <signal.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace medsettle::metrics {

bool ParseListenAddress(std::string_view text, std::string* host, int* port) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  const std::string_view digits = text.substr(colon + 1);
  if (digits.empty() || digits.size() > 5 ||
      digits.find_first_not_of("0123456789") != std::string_view::npos) {
    return false;
  }
  int value = 0;
  for (char c : digits) value = value * 10 + (c - '0');
  if (value > 65535) return false;
  host->assign(text.substr(0, colon));
  *port = value;
  return true;
}
namespace {

// httplib's ThreadPool queues accepted connections without limit; this one
// holds at most `max_queued`, and beyond that blocks the listener in
// enqueue, so it stops accepting and the kernel's backlog pushes back.
class BoundedPool final : public httplib::TaskQueue {
 public:
  BoundedPool(int thread_count, int max_queued) : max_queued_(static_cast<size_t>(max_queued)) {
    threads_.reserve(static_cast<size_t>(thread_count));
    for (int i = 0; i < thread_count; ++i) threads_.emplace_back([this] { Work(); });
  }
  ~BoundedPool() override = default;

  void enqueue(std::function<void()> fn) override {
    std::unique_lock<std::mutex> lock(mu_);
    room_.wait(lock, [&] { return jobs_.size() < max_queued_; });
    jobs_.push_back(std::move(fn));
    work_.notify_one();
  }

  // Called by httplib once the listener stopped: the jobs left are
  // connections that will be closed at once (httplib checks the listening
  // socket before serving), then the workers exit and are joined.
  void shutdown() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      shutdown_ = true;
    }
    work_.notify_all();
    for (std::thread& t : threads_) t.join();
  }

 private:
  void Work() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> lock(mu_);
        work_.wait(lock, [&] { return shutdown_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        fn = std::move(jobs_.front());
        jobs_.pop_front();
        room_.notify_one();
      }
      fn();
    }
  }

  const size_t max_queued_;
  std::mutex mu_;
  std::condition_variable work_;
  std::condition_variable room_;
  std::deque<std::function<void()>> jobs_;
  bool shutdown_ = false;
  std::vector<std::thread> threads_;
};

// httplib 0.11 writes with send(…, 0) after checking that the peer is
// still there: a scraper that hangs up between the check and the send
// raises SIGPIPE, whose default action ends the process. Blocked in
// the listener thread, and so in the workers it creates (they inherit the
// mask), the write fails with EPIPE instead; the pending signal stays with
// the thread and is discarded when it exits. No process-wide handler change.
void BlockSigpipeInThisThread() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

std::string HostPort(const std::string& host, int port) {
  if (host.find(':') != std::string::npos) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

void SetTimeout(int timeout_ms, time_t* sec, time_t* usec) {
  *sec = timeout_ms / 1000;
  *usec = static_cast<time_t>(timeout_ms % 1000) * 1000;
}

}  // namespace

MetricsEndpoint::MetricsEndpoint(const Registry& registry, EndpointOptions options)
    : registry_(registry), options_(std::move(options)) {}

MetricsEndpoint::~MetricsEndpoint() { Stop(); }

absl::Status MetricsEndpoint::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (started_) return absl::FailedPreconditionError("metrics endpoint: already started");
  const EndpointOptions& o = options_;
  if (o.host.empty() || o.port < 0 || o.port > 65535 || o.thread_count < 1 ||
      o.max_queued_connections < 1 || o.max_request_bytes < 1 || o.read_timeout_ms < 1 ||
      o.write_timeout_ms < 1 || o.keep_alive_timeout_s < 1 || o.keep_alive_max_requests < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metrics endpoint ", HostPort(o.host, o.port),
        ": host must be set, port 0..65535, counts and timeouts positive"));
  }
  started_ = true;

  auto server = std::make_unique<httplib::Server>();
  const int thread_count = o.thread_count;
  const int max_queued = o.max_queued_connections;
  server->new_task_queue = [thread_count, max_queued]() -> httplib::TaskQueue* {
    return new BoundedPool(thread_count, max_queued);
  };
  time_t sec = 0;
  time_t usec = 0;
  SetTimeout(o.read_timeout_ms, &sec, &usec);
  server->set_read_timeout(sec, usec);
  SetTimeout(o.write_timeout_ms, &sec, &usec);
  server->set_write_timeout(sec, usec);
  server->set_keep_alive_timeout(o.keep_alive_timeout_s);
  server->set_keep_alive_max_count(static_cast<size_t>(o.keep_alive_max_requests));
  server->set_payload_max_length(o.max_request_bytes);

  // Registered for GET only; httplib answers HEAD from the GET handler and
  // leaves the body out.
  server->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    std::string body;
    registry_.RenderTo(&body);
    res.set_content(std::move(body), kMetricsContentType);
  });
  server->Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
    const absl::Status health = options_.health ? options_.health() : absl::OkStatus();
    if (health.ok()) {
      res.set_content("ok\n", "text/plain; charset=utf-8");
    } else {
      res.status = 503;
      res.set_content(absl::StrCat(health.message(), "\n"), "text/plain; charset=utf-8");
    }
  });
  // httplib answers 404 for any request no handler took, whatever the
  // method; a known path with another method is 405. Other errors (400,
  // 413, 414, and /healthz's 503) keep their status and body.
  server->set_error_handler(httplib::Server::HandlerWithResponse(
      [](const httplib::Request& req, httplib::Response& res) {
        if (res.status != 404) return httplib::Server::HandlerResponse::Unhandled;
        if (req.path == "/metrics" || req.path == "/healthz") {
          res.status = 405;
          res.set_header("Allow", "GET, HEAD");
          res.set_content("method not allowed\n", "text/plain; charset=utf-8");
        } else {
          res.set_content("not found\n", "text/plain; charset=utf-8");
        }
        return httplib::Server::HandlerResponse::Handled;
      }));

  // httplib's default options add SO_REUSEPORT, with which a second
  // process (another gateway on this host) binds the same port without an
  // error and Prometheus scrapes whichever answers. SO_REUSEADDR only: a
  // restart can still bind while old connections sit in TIME_WAIT.
  server->set_socket_options([](int sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });

  errno = 0;
  int port = o.port;
  bool bound = false;
  if (o.port == 0) {
    port = server->bind_to_any_port(o.host);
    bound = port > 0;
  } else {
    bound = server->bind_to_port(o.host, o.port);
  }
  if (!bound) {
    const int error = errno;
    return absl::UnavailableError(absl::StrCat("metrics endpoint: cannot listen on ",
                                               HostPort(o.host, o.port),
                                               error != 0 ? ": " : "",
                                               error != 0 ? std::strerror(error) : ""));
  }
  server_ = std::move(server);

  // httplib's stop() acts only once the listener runs (is_running()): wait
  // for that, or for the listener's early exit, so that Stop() cannot be
  // lost in between and leave the thread accepting forever.
  auto done = std::make_shared<std::atomic<bool>>(false);
  httplib::Server* raw = server_.get();
  listener_ = std::thread([raw, done] {
    BlockSigpipeInThisThread();
    raw->listen_after_bind();
    done->store(true, std::memory_order_release);
  });
  while (!raw->is_running() && !done->load(std::memory_order_acquire)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (!raw->is_running() && done->load(std::memory_order_acquire)) {
    listener_.join();
    server_.reset();
    return absl::UnavailableError(absl::StrCat("metrics endpoint: listener on ",
                                               HostPort(o.host, port), " exited at start"));
  }
  port_.store(port, std::memory_order_release);
  return absl::OkStatus();
}

void MetricsEndpoint::Stop() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!listener_.joinable()) return;
  server_->stop();
  listener_.join();  // returns after httplib joined the workers
  server_.reset();
  port_.store(0, std::memory_order_release);
}

}  // namespace medsettle::metrics
