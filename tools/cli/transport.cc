#include "tools/cli/transport.h"

#include <chrono>
#include <fstream>
#include <sstream>

#include "engine/text.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"

namespace medsettle::cli {

using engine::Cat;
namespace {

absl::Status ReadPem(std::string_view flag, const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  if (in) text << in.rdbuf();
  if (!in || in.bad()) {
    const std::string message = Cat("cannot read ", flag, " ", path);
    return absl::InvalidArgumentError(message);
  }
  *out = text.str();
  if (out->find("-----BEGIN ") == std::string::npos) {
    const std::string message = Cat(flag, " ", path, " holds no PEM block");
    return absl::InvalidArgumentError(message);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status LoadTlsFiles(const std::string& ca_file, const std::string& cert_file,
                          const std::string& key_file, TransportOptions* options) {
  if (absl::Status s = ReadPem("--ca", ca_file, &options->ca_pem); !s.ok()) return s;
  if (absl::Status s = ReadPem("--cert", cert_file, &options->cert_pem); !s.ok()) return s;
  return ReadPem("--key", key_file, &options->key_pem);
}

std::shared_ptr<grpc::Channel> OpenChannel(const TransportOptions& options) {
  // Large enough for the response to a 10,000-line bill (the gateway's own
  // limit is max_message_bytes, 64 MiB by default).
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetMaxSendMessageSize(64 << 20);
  if (options.insecure_dev) {
    return grpc::CreateCustomChannel(options.target, grpc::InsecureChannelCredentials(), args);
  }
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = options.ca_pem;
  tls.pem_cert_chain = options.cert_pem;
  tls.pem_private_key = options.key_pem;
  if (!options.tls_server_name.empty()) args.SetSslTargetNameOverride(options.tls_server_name);
  return grpc::CreateCustomChannel(options.target, grpc::SslCredentials(tls), args);
}

void IdentifyCaller(const TransportOptions& options, grpc::ClientContext* context) {
  if (!options.insecure_dev || options.institution_id.empty()) return;
  context->AddMetadata(std::string(kInstitutionHeader), options.institution_id);
}

void PrepareCall(const TransportOptions& options, grpc::ClientContext* context) {
  IdentifyCaller(options, context);
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::milliseconds(options.timeout_ms));
}

}  // namespace medsettle::cli
