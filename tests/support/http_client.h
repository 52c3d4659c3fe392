// Test support: a plain-socket HTTP/1.1 GET against a loopback port (the
// metrics endpoints), and reading one sample out of a Prometheus text
// exposition. No HTTP library: what a scraper sees is what the test sees.
#ifndef MEDSETTLE_TESTS_SUPPORT_HTTP_CLIENT_H_
#define MEDSETTLE_TESTS_SUPPORT_HTTP_CLIENT_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdint>
#include <sstream>
#include <string>

namespace medsettle::testing {

// The whole response (status line, headers, body) to GET `path` from
// 127.0.0.1:`port`; "" when the connection fails.
inline std::string HttpGet(int port, const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // A stalled server fails the read after 5 s instead of hanging the test.
  timeval timeout{.tv_sec = 5, .tv_usec = 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  std::string response;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    const std::string request =
        "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
        static_cast<ssize_t>(request.size())) {
      char buffer[65536];
      for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;) {
        response.append(buffer, static_cast<size_t>(n));
      }
    }
  }
  ::close(fd);
  return response;
}

// The body of HttpGet's response ("" when there is none).
inline std::string HttpGetBody(int port, const std::string& path) {
  const std::string response = HttpGet(port, path);
  const size_t body = response.find("\r\n\r\n");
  return body == std::string::npos ? "" : response.substr(body + 4);
}

// The value of the sample whose series (name and labels as rendered) is
// `series`, or -1 when there is none.
inline double MetricValue(const std::string& exposition, const std::string& series) {
  std::istringstream in(exposition);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

}  // namespace medsettle::testing

#endif  // MEDSETTLE_TESTS_SUPPORT_HTTP_CLIENT_H_
