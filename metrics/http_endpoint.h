// The HTTP side of the metrics: a small server (Debian's cpp-httplib) that
// answers exactly two requests, for Prometheus and for probes:
//   GET /metrics  200, the registry in text format 0.0.4
//                 (Content-Type: text/plain; version=0.0.4; charset=utf-8)
//   GET /healthz  200 "ok\n", or 503 with the health callback's message
// HEAD is answered as GET without the body. Any other path is 404, another
// method on those two paths 405 (with Allow: GET, HEAD).
//
// Bounded by construction: a fixed pool of worker threads, at most
// max_queued_connections accepted connections waiting for one (beyond that
// the listener stops accepting and the kernel's backlog pushes back),
// request bodies above max_request_bytes refused with 413 (request line and
// headers are capped at 8 KiB by httplib), read, write and idle keep-alive
// timeouts, and a cap on requests per connection. A client that connects and
// sends nothing holds one worker for at most keep_alive_timeout_s.
//
// Listen on loopback (127.0.0.1, the default) unless a scraper elsewhere
// needs it: the endpoint has no authentication.
//
// Thread safety: Start, Stop and port are safe from any thread; the
// registry and the health callback are called on the worker threads. The
// registry must outlive the endpoint.
#ifndef MEDSETTLE_METRICS_HTTP_ENDPOINT_H_
#define MEDSETTLE_METRICS_HTTP_ENDPOINT_H_

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "absl/status/status.h"
#include "metrics/registry.h"

namespace httplib {
class Server;
}

namespace medsettle::metrics {

struct EndpointOptions {
  std::string host = "127.0.0.1";  // a name or address; "0.0.0.0" for all
  int port = 0;                    // 0: a free port, see MetricsEndpoint::port()
  // /healthz: OK → 200 "ok\n"; an error → 503 with its message. Empty: OK.
  // Called on a worker thread for every probe; keep it cheap.
  std::function<absl::Status()> health;
  int thread_count = 2;              // workers, fixed
  int max_queued_connections = 16;   // accepted, waiting for a worker
  size_t max_request_bytes = 8192;   // request body; larger → 413
  int read_timeout_ms = 5000;        // per read of a request
  int write_timeout_ms = 5000;       // per write of a response
  int keep_alive_timeout_s = 5;      // idle wait for the next request (whole s)
  int keep_alive_max_requests = 16;  // requests per connection
};

// Content-Type of the text exposition format.
inline constexpr char kMetricsContentType[] = "text/plain; version=0.0.4; charset=utf-8";

// "HOST:PORT" (port 0..65535; 0 picks a free one) → host and port, as
// --metrics-listen and metrics.listen take it. False when malformed.
bool ParseListenAddress(std::string_view text, std::string* host, int* port);

class MetricsEndpoint {
 public:
  // REQUIRES: `registry` outlives this endpoint; options in range
  // (positive counts and timeouts, port 0..65535), checked by Start.
  MetricsEndpoint(const Registry& registry, EndpointOptions options);
  // Stops (as Stop) if running.
  ~MetricsEndpoint();
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

  // Binds host:port and starts serving on a thread of its own; returns once
  // the listener runs. INVALID_ARGUMENT for bad options; UNAVAILABLE naming
  // host:port when it cannot bind; FAILED_PRECONDITION when called twice
  // (an endpoint is started at most once).
  absl::Status Start();
  // Stops accepting, lets requests in progress finish (bounded by the
  // timeouts: an idle connection by keep_alive_timeout_s) and joins every
  // thread. Idempotent; a no-op before Start.
  void Stop();

  // The bound port while running (the chosen one for port 0); 0 before
  // Start and after Stop.
  int port() const { return port_.load(std::memory_order_acquire); }

 private:
  const Registry& registry_;
  const EndpointOptions options_;
  std::mutex mu_;  // serialises Start and Stop
  bool started_ = false;
  std::unique_ptr<httplib::Server> server_;
  std::thread listener_;
  std::atomic<int> port_{0};
};

}  // namespace medsettle::metrics

#endif  // MEDSETTLE_METRICS_HTTP_ENDPOINT_H_
