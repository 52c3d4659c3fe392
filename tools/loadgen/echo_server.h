// The echo floor: medsettle.loadgen.v1.Echo served with the gateway's
// callback server API (a final service class; each call finished inline
// on DefaultReactor) and the gateway's TLS choices (mutual TLS requiring a
// client certificate that chains to the client CA, or plaintext on
// loopback under insecure_dev). Calling it with the same tool, payload size
// and transport as the gateway gives the floor a gateway figure is divided
// by.
//
// Thread-safe: gRPC runs the service on its own threads.
#ifndef MEDSETTLE_TOOLS_LOADGEN_ECHO_SERVER_H_
#define MEDSETTLE_TOOLS_LOADGEN_ECHO_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/server.h"

namespace medsettle::loadgen {

struct EchoServerOptions {
  std::string listen = "127.0.0.1:0";  // port 0: any free port
  bool insecure_dev = false;           // plaintext; loopback addresses only
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
};

class EchoServer {
 public:
  // Checks the options (INVALID_ARGUMENT naming the flag: a TLS file that
  // cannot be read or holds no PEM block, a non-loopback address under
  // insecure_dev), then listens. UNAVAILABLE when it cannot listen.
  static absl::StatusOr<std::unique_ptr<EchoServer>> Start(const EchoServerOptions& options);
  ~EchoServer();

  int port() const { return port_; }
  // Stops accepting calls and waits for those in flight.
  void Shutdown();
  void Wait();

 private:
  EchoServer() = default;
  class Service;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace medsettle::loadgen

#endif  // MEDSETTLE_TOOLS_LOADGEN_ECHO_SERVER_H_
