// The metrics HTTP endpoint (label http): a real MetricsEndpoint on
// 127.0.0.1:0, spoken to by a raw POSIX socket client (not httplib's, so
// that the bytes on the wire are what is checked): /metrics and /healthz,
// 404 and 405, oversized and silent clients, bind failures, a client that
// hangs up mid-response, and the exposition accepted by `promtool check
// metrics` (Debian's prometheus package; deploy/install-deps.sh).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "metrics/grpc_server_metrics.h"
#include "metrics/http_endpoint.h"
#include "metrics/registry.h"

namespace medsettle::metrics {
namespace {

using ::testing::HasSubstr;

struct Reply {
  int status = 0;
  std::string status_line;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

// A TCP connection to 127.0.0.1:port; -1 on failure.
int Connect(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Reads one response: the head, then Content-Length bytes of body (none
// for a HEAD request), or up to EOF when there is no Content-Length. Does
// not wait for the server to close: after a malformed request httplib 0.11
// keeps the connection until the keep-alive timeout. Empty on a timeout
// (10 s) or a close before the head.
std::optional<Reply> ReadReply(int fd, bool head_request = false) {
  std::string raw;
  char buffer[65536];
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::optional<size_t> wanted;  // total bytes, once the head is in
  for (;;) {
    if (!wanted.has_value()) {
      const size_t end_of_head = raw.find("\r\n\r\n");
      if (end_of_head != std::string::npos) {
        const std::string lower = absl::AsciiStrToLower(raw.substr(0, end_of_head));
        const size_t at = lower.find("\r\ncontent-length:");
        if (head_request) {
          wanted = end_of_head + 4;
        } else if (at != std::string::npos) {
          wanted = end_of_head + 4 + std::strtoul(lower.c_str() + at + 17, nullptr, 10);
        }
      }
    }
    if (wanted.has_value() && raw.size() >= *wanted) break;
    pollfd p{fd, POLLIN, 0};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) break;
    raw.append(buffer, static_cast<size_t>(n));
  }
  const size_t end_of_head = raw.find("\r\n\r\n");
  if (end_of_head == std::string::npos) return std::nullopt;
  Reply reply;
  const std::string head = raw.substr(0, end_of_head);
  reply.body = raw.substr(end_of_head + 4);
  size_t line_end = head.find("\r\n");
  reply.status_line = head.substr(0, line_end);
  if (reply.status_line.size() < 12) return std::nullopt;
  reply.status = std::atoi(reply.status_line.substr(9, 3).c_str());
  while (line_end != std::string::npos) {
    const size_t start = line_end + 2;
    line_end = head.find("\r\n", start);
    const std::string line = head.substr(start, line_end - start);
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string value = line.substr(colon + 1);
    absl::StripAsciiWhitespace(&value);
    reply.headers[absl::AsciiStrToLower(line.substr(0, colon))] = value;
  }
  return reply;
}

// One request on a fresh connection, one response.
std::optional<Reply> Exchange(int port, const std::string& request) {
  const int fd = Connect(port);
  if (fd < 0) return std::nullopt;
  std::optional<Reply> reply;
  if (SendAll(fd, request)) reply = ReadReply(fd, request.starts_with("HEAD "));
  ::close(fd);
  return reply;
}

std::string Request(const std::string& method, const std::string& target,
                    const std::string& extra_headers = "") {
  return method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" +
         extra_headers + "\r\n";
}

EndpointOptions Loopback() {
  EndpointOptions options;
  options.host = "127.0.0.1";
  options.port = 0;
  return options;
}

// A registry like the gateway's: gRPC server metrics with traffic, a
// labelled histogram, counters with escaped and UTF-8 label values, callback
// gauges and a callback family.
void FillRealistic(Registry& registry, std::vector<std::unique_ptr<GrpcServerMetrics>>* keep) {
  auto grpc = GrpcServerMetrics::Create(registry, "medsettle.v1.SettlementService",
                                        {"Settle", "Reverse", "GetSettlement", "Quote"});
  ASSERT_TRUE(grpc.ok()) << grpc.status();
  for (int i = 0; i < 1000; ++i) {
    (*grpc)->Started(static_cast<size_t>(i % 4));
    (*grpc)->Handled(static_cast<size_t>(i % 4), i % 17, 0.00003 * (i % 500));
  }
  keep->push_back(std::move(*grpc));
  auto health = GrpcServerMetrics::Create(registry, "grpc.health.v1.Health", {"Check"});
  ASSERT_TRUE(health.ok()) << health.status();
  keep->push_back(std::move(*health));

  auto settlements = registry.AddCounter("medsettle_settlements_total",
                                         "Settlements by region and result.\nOne \\ line.",
                                         {"region", "result"});
  ASSERT_TRUE(settlements.ok());
  (*settlements)->WithLabels({"浙江衢州", "OK"}).Inc(42);
  (*settlements)->WithLabels({"重庆垫江", "NOT_COVERED"}).Inc(3);
  (*settlements)->WithLabels({"a \"quoted\" \\ value\nwith newline", "OK"}).Inc();
  auto redis = registry.AddHistogram("medsettle_redis_round_trip_seconds",
                                     "Redis round trips by command.", {"command"},
                                     kGrpcLatencyBucketsSeconds);
  ASSERT_TRUE(redis.ok());
  for (int i = 0; i < 100; ++i) (*redis)->WithLabels({"EVALSHA"}).Observe(0.0001 * i);
  (*redis)->WithLabels({"GET"}).Observe(std::numeric_limits<double>::infinity());
  auto pool = registry.AddGauge("medsettle_redis_pool_idle_connections", "Idle connections.");
  ASSERT_TRUE(pool.ok());
  (*pool)->WithLabels({}).Set(7);
  auto bytes = registry.AddHistogram("medsettle_ledger_batch_bytes", "Ledger batch sizes.", {},
                                     kSizeBucketsBytes);
  ASSERT_TRUE(bytes.ok());
  (*bytes)->WithLabels({}).Observe(5000);
  ASSERT_TRUE(registry
                  .AddCallbackGauge("medsettle_snapshot_age_seconds",
                                    "Age of the enrollment snapshot.", [] { return 93.25; })
                  .ok());
  ASSERT_TRUE(registry
                  .AddCallbackFamily("medsettle_crl_next_update_timestamp_seconds",
                                     "When each issuer's CRL must be replaced.",
                                     MetricType::kGauge, {"issuer"},
                                     [] {
                                       return std::vector<CallbackSample>{
                                           {{"CN=浙江医保 CA,O=ZJ"}, 1767225600},
                                           {{"CN=Chongqing CA"}, 1767225600.5}};
                                     })
                  .ok());
  ASSERT_TRUE(registry
                  .AddCallbackGauge("medsettle_probe_last_value", "A value that is NaN.",
                                    [] { return std::numeric_limits<double>::quiet_NaN(); })
                  .ok());
}

// The promtool on PATH, or empty.
std::string FindPromtool() {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "";
  dirs += ":/usr/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    const size_t colon = dirs.find(':', start);
    const std::string dir = dirs.substr(start, colon == std::string::npos ? std::string::npos
                                                                          : colon - start);
    const std::string candidate = (dir.empty() ? "." : dir) + "/promtool";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  return "";
}

TEST(MetricsEndpoint, ServesTheRegistryWithTheTextFormatContentType) {
  Registry registry;
  std::vector<std::unique_ptr<GrpcServerMetrics>> keep;
  FillRealistic(registry, &keep);
  MetricsEndpoint endpoint(registry, Loopback());
  EXPECT_EQ(endpoint.port(), 0);
  ASSERT_TRUE(endpoint.Start().ok());
  ASSERT_GT(endpoint.port(), 0);

  const auto reply = Exchange(endpoint.port(), Request("GET", "/metrics"));
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(reply->headers.at("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(reply->body, registry.Render());
  EXPECT_EQ(reply->headers.at("content-length"), std::to_string(reply->body.size()));
  EXPECT_THAT(reply->body, HasSubstr("grpc_server_handled_total{grpc_type=\"unary\""));

  // A query string does not change the path.
  const auto query = Exchange(endpoint.port(), Request("GET", "/metrics?name[]=x"));
  ASSERT_TRUE(query.has_value());
  EXPECT_EQ(query->status, 200);

  const auto head = Exchange(endpoint.port(), Request("HEAD", "/metrics"));
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->body, "");
  endpoint.Stop();
  EXPECT_EQ(endpoint.port(), 0);
}

TEST(MetricsEndpoint, KeepAliveServesSeveralRequestsOnOneConnection) {
  // One request at a time, as Prometheus does (httplib 0.11 drops requests
  // pipelined behind the first: its read buffer lives for one request).
  Registry registry;
  ASSERT_TRUE(registry.AddCounter("a_total", "A.").ok());
  MetricsEndpoint endpoint(registry, Loopback());
  ASSERT_TRUE(endpoint.Start().ok());
  const int fd = Connect(endpoint.port());
  ASSERT_GE(fd, 0);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(SendAll(fd, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
    auto reply = ReadReply(fd);
    ASSERT_TRUE(reply.has_value()) << i;
    EXPECT_EQ(reply->status_line, "HTTP/1.1 200 OK");
    EXPECT_EQ(reply->body, "# HELP a_total A.\n# TYPE a_total counter\na_total 0\n");
  }
  ::close(fd);
}

TEST(MetricsEndpoint, OtherPathsAre404OtherMethods405) {
  Registry registry;
  MetricsEndpoint endpoint(registry, Loopback());
  ASSERT_TRUE(endpoint.Start().ok());
  const int port = endpoint.port();

  auto post = Exchange(port, Request("POST", "/metrics", "Content-Length: 0\r\n"));
  ASSERT_TRUE(post.has_value());
  EXPECT_EQ(post->status_line, "HTTP/1.1 405 Method Not Allowed");
  EXPECT_EQ(post->headers["allow"], "GET, HEAD");
  EXPECT_EQ(post->body, "method not allowed\n");

  auto post_body =
      Exchange(port, Request("POST", "/metrics", "Content-Length: 5\r\n") + "hello");
  ASSERT_TRUE(post_body.has_value());
  EXPECT_EQ(post_body->status, 405);

  for (const char* method : {"PUT", "DELETE", "PATCH", "OPTIONS"}) {
    auto r = Exchange(port, Request(method, "/healthz", "Content-Length: 0\r\n"));
    ASSERT_TRUE(r.has_value()) << method;
    EXPECT_EQ(r->status, 405) << method;
  }
  for (const char* target : {"/", "/other", "/metrics/", "/metricsx", "/healthz/x", "/../metrics"}) {
    auto r = Exchange(port, Request("GET", target));
    ASSERT_TRUE(r.has_value()) << target;
    EXPECT_EQ(r->status_line, "HTTP/1.1 404 Not Found") << target;
    EXPECT_EQ(r->body, "not found\n") << target;
  }
  auto other_post = Exchange(port, Request("POST", "/other", "Content-Length: 0\r\n"));
  ASSERT_TRUE(other_post.has_value());
  EXPECT_EQ(other_post->status, 404);
  // Not a method at all: a bad request.
  auto brew = Exchange(port, Request("BREW", "/metrics"));
  ASSERT_TRUE(brew.has_value());
  EXPECT_EQ(brew->status, 400);
}

TEST(MetricsEndpoint, HealthzFollowsTheCallback) {
  Registry registry;
  std::atomic<bool> healthy{true};
  EndpointOptions options = Loopback();
  options.health = [&healthy]() -> absl::Status {
    if (healthy) return absl::OkStatus();
    return absl::UnavailableError("enrollment snapshot is 3600 s old");
  };
  MetricsEndpoint endpoint(registry, options);
  ASSERT_TRUE(endpoint.Start().ok());

  auto ok = Exchange(endpoint.port(), Request("GET", "/healthz"));
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok->status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(ok->body, "ok\n");

  healthy = false;
  auto down = Exchange(endpoint.port(), Request("GET", "/healthz"));
  ASSERT_TRUE(down.has_value());
  EXPECT_EQ(down->status_line, "HTTP/1.1 503 Service Unavailable");
  EXPECT_EQ(down->body, "enrollment snapshot is 3600 s old\n");

  // Without a callback: healthy.
  MetricsEndpoint plain(registry, Loopback());
  ASSERT_TRUE(plain.Start().ok());
  auto plain_ok = Exchange(plain.port(), Request("GET", "/healthz"));
  ASSERT_TRUE(plain_ok.has_value());
  EXPECT_EQ(plain_ok->status, 200);
}

TEST(MetricsEndpoint, OversizedRequestsAreRefusedAndServingContinues) {
  Registry registry;
  ASSERT_TRUE(registry.AddCounter("a_total", "A.").ok());
  EndpointOptions options = Loopback();
  options.max_request_bytes = 8192;
  MetricsEndpoint endpoint(registry, options);
  ASSERT_TRUE(endpoint.Start().ok());
  const int port = endpoint.port();

  // A body above max_request_bytes: 413 without being handled.
  const std::string big_body(100'000, 'x');
  auto big = Exchange(port, Request("POST", "/metrics", "Content-Length: 100000\r\n") + big_body);
  ASSERT_TRUE(big.has_value());
  EXPECT_EQ(big->status_line, "HTTP/1.1 413 Payload Too Large");

  // A request line above 8 KiB. (After a malformed request httplib 0.11
  // keeps the connection open until the keep-alive timeout: bounded.)
  auto long_uri = Exchange(port, Request("GET", "/metrics?" + std::string(10'000, 'q')));
  ASSERT_TRUE(long_uri.has_value());
  EXPECT_EQ(long_uri->status, 414);

  // Headers above 8 KiB: refused (a 4xx or the connection closed).
  auto long_header =
      Exchange(port, Request("GET", "/metrics", "X-Big: " + std::string(20'000, 'h') + "\r\n"));
  if (long_header.has_value()) {
    EXPECT_GE(long_header->status, 400);
  }

  auto after = Exchange(port, Request("GET", "/metrics"));
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->status, 200);
  EXPECT_EQ(after->body, "# HELP a_total A.\n# TYPE a_total counter\na_total 0\n");
}

TEST(MetricsEndpoint, SilentClientsDoNotBlockServingOrStopBeyondTheTimeout) {
  Registry registry;
  ASSERT_TRUE(registry.AddCounter("a_total", "A.").ok());
  EndpointOptions options = Loopback();
  options.thread_count = 2;
  options.keep_alive_timeout_s = 1;
  options.read_timeout_ms = 1000;
  options.write_timeout_ms = 1000;
  auto endpoint = std::make_unique<MetricsEndpoint>(registry, options);
  ASSERT_TRUE(endpoint->Start().ok());
  const int port = endpoint->port();

  // One silent client holds a worker; the other still serves.
  const int silent = Connect(port);
  ASSERT_GE(silent, 0);
  // One that sent half a request line.
  const int half = Connect(port);
  ASSERT_GE(half, 0);
  ASSERT_TRUE(SendAll(half, "GET /metr"));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  // Both workers may be held now; the request waits at most the timeout.
  const auto before_get = std::chrono::steady_clock::now();
  auto reply = Exchange(port, Request("GET", "/metrics"));
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, 200);
  EXPECT_LT(std::chrono::steady_clock::now() - before_get, std::chrono::milliseconds(3000));

  // A fresh silent client, then Stop: bounded by the keep-alive timeout.
  const int silent2 = Connect(port);
  ASSERT_GE(silent2, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const auto before_stop = std::chrono::steady_clock::now();
  endpoint->Stop();
  const auto stop_took = std::chrono::steady_clock::now() - before_stop;
  EXPECT_LT(stop_took, std::chrono::milliseconds(1000 + 1500))
      << std::chrono::duration_cast<std::chrono::milliseconds>(stop_took).count() << " ms";
  endpoint->Stop();   // idempotent
  endpoint.reset();   // and the destructor after Stop
  ::close(silent);
  ::close(half);
  ::close(silent2);
  // Nothing listens any more.
  EXPECT_FALSE(Exchange(port, Request("GET", "/metrics")).has_value());
}

TEST(MetricsEndpoint, ClientsHangingUpMidResponseDoNotHurtTheProcess) {
  // A response of about 1 MB; each client asks and resets the connection
  // at once, so the server's writes fail or are skipped. The process (with
  // SIGPIPE at its default action here) must survive and keep serving.
  // httplib checks the peer before each send(…, 0), so SIGPIPE itself needs
  // a close in the window between check and send: the endpoint blocks it in
  // its threads for that case, which this test cannot provoke reliably.
  Registry registry;
  auto f = registry.AddCounter("wide_total", "Many children.", {"k"});
  ASSERT_TRUE(f.ok());
  for (int i = 0; i < 20'000; ++i) {
    (*f)->WithLabels({"child-with-a-long-label-value-" + std::to_string(i)}).Inc();
  }
  MetricsEndpoint endpoint(registry, Loopback());
  ASSERT_TRUE(endpoint.Start().ok());
  for (int i = 0; i < 20; ++i) {
    const int fd = Connect(endpoint.port());
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(SendAll(fd, Request("GET", "/metrics")));
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    linger hard{1, 0};  // close with RST
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    ::close(fd);
  }
  auto reply = Exchange(endpoint.port(), Request("GET", "/metrics"));
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, 200);
  EXPECT_EQ(reply->body.size(), registry.Render().size());
}

TEST(MetricsEndpoint, StartRefusesATakenPortNamingTheAddress) {
  Registry registry;
  MetricsEndpoint first(registry, Loopback());
  ASSERT_TRUE(first.Start().ok());
  EndpointOptions options = Loopback();
  options.port = first.port();
  MetricsEndpoint second(registry, options);
  const absl::Status status = second.Start();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("127.0.0.1:" + std::to_string(first.port())));
  EXPECT_EQ(second.port(), 0);
  second.Stop();  // a no-op: never started

  EXPECT_EQ(first.Start().code(), absl::StatusCode::kFailedPrecondition);

  EndpointOptions bad = Loopback();
  bad.thread_count = 0;
  EXPECT_EQ(MetricsEndpoint(registry, bad).Start().code(), absl::StatusCode::kInvalidArgument);
  EndpointOptions unknown_host = Loopback();
  unknown_host.host = "host.invalid";
  const absl::Status unresolvable = MetricsEndpoint(registry, unknown_host).Start();
  EXPECT_EQ(unresolvable.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(unresolvable.message()), HasSubstr("host.invalid:0"));
}

TEST(MetricsEndpoint, PromtoolAcceptsTheExposition) {
  const std::string promtool = FindPromtool();
  ASSERT_FALSE(promtool.empty())
      << "promtool not found: run deploy/install-deps.sh (Debian package prometheus); CI "
         "installs it";
  Registry registry;
  std::vector<std::unique_ptr<GrpcServerMetrics>> keep;
  FillRealistic(registry, &keep);
  MetricsEndpoint endpoint(registry, Loopback());
  ASSERT_TRUE(endpoint.Start().ok());
  const auto reply = Exchange(endpoint.port(), Request("GET", "/metrics"));
  ASSERT_TRUE(reply.has_value());
  ASSERT_EQ(reply->status, 200);

  const std::string file = ::testing::TempDir() + "metrics_endpoint_test_" +
                           std::to_string(::getpid()) + ".prom";
  {
    std::ofstream out(file, std::ios::binary);
    out << reply->body;
  }
  const std::string command = promtool + " check metrics < '" + file + "' 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[4096];
  while (size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
  const int status = ::pclose(pipe);
  std::remove(file.c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "promtool check metrics:\n" << output << "\ninput:\n"
                                    << reply->body;
  EXPECT_EQ(output, "") << "promtool reported lint problems";
}

}  // namespace
}  // namespace medsettle::metrics
