#include "tools/loadgen/echo_server.h"

#include <fstream>
#include <sstream>

#include "engine/text.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "medsettle/loadgen/v1/echo.grpc.pb.h"

namespace medsettle::loadgen {

using engine::Cat;

class EchoServer::Service final : public v1::Echo::CallbackService {
 public:
  grpc::ServerUnaryReactor* Echo(grpc::CallbackServerContext* context,
                                 const v1::EchoRequest* request,
                                 v1::EchoResponse* response) override {
    response->set_payload(request->payload());
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

namespace {

absl::StatusOr<std::string> ReadPem(std::string_view flag, const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError(Cat(flag, " is required without --insecure-dev"));
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  if (in) text << in.rdbuf();
  if (!in) return absl::InvalidArgumentError(Cat("cannot read ", flag, " ", path));
  if (text.str().find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(Cat(flag, " ", path, " holds no PEM block"));
  }
  return text.str();
}

bool IsLoopback(const std::string& listen) {
  return listen.rfind("127.", 0) == 0 || listen.rfind("localhost:", 0) == 0 ||
         listen.rfind("[::1]:", 0) == 0;
}

}  // namespace

absl::StatusOr<std::unique_ptr<EchoServer>> EchoServer::Start(const EchoServerOptions& options) {
  std::shared_ptr<grpc::ServerCredentials> credentials;
  if (options.insecure_dev) {
    if (!IsLoopback(options.listen)) {
      return absl::InvalidArgumentError(
          Cat("--insecure-dev serves plaintext on loopback only, not ", options.listen));
    }
    credentials = grpc::InsecureServerCredentials();
  } else {
    absl::StatusOr<std::string> cert = ReadPem("--tls-cert", options.tls_cert_file);
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadPem("--tls-key", options.tls_key_file);
    if (!key.ok()) return key.status();
    absl::StatusOr<std::string> ca = ReadPem("--tls-client-ca", options.tls_client_ca_file);
    if (!ca.ok()) return ca.status();
    grpc::SslServerCredentialsOptions tls(
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    tls.pem_root_certs = *ca;
    tls.pem_key_cert_pairs.push_back({*key, *cert});
    credentials = grpc::SslServerCredentials(tls);
  }
  std::unique_ptr<EchoServer> server(new EchoServer());
  server->service_ = std::make_unique<Service>();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, credentials, &server->port_);
  builder.RegisterService(server->service_.get());
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(64 << 20);
  builder.SetMaxSendMessageSize(64 << 20);
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(Cat("cannot listen on ", options.listen));
  }
  return server;
}

EchoServer::~EchoServer() { Shutdown(); }

void EchoServer::Shutdown() {
  if (server_ != nullptr && !shut_down_) {
    shut_down_ = true;
    server_->Shutdown();
  }
}

void EchoServer::Wait() {
  if (server_ != nullptr) server_->Wait();
}

}  // namespace medsettle::loadgen
