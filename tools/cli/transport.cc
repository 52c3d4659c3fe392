#include "tools/cli/transport.h"

#include <chrono>

#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"

namespace medsettle::cli {

std::shared_ptr<grpc::Channel> OpenChannel(const TransportOptions& options) {
  // Mutual TLS replaces these credentials (grpc::SslCredentials with the
  // institution's certificate and key, the gateway's CA).
  // Large enough for the response to a 10,000-line bill (the gateway's own
  // limit is max_message_bytes, 64 MiB by default).
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetMaxSendMessageSize(64 << 20);
  return grpc::CreateCustomChannel(options.target, grpc::InsecureChannelCredentials(), args);
}

void IdentifyCaller(const TransportOptions& options, grpc::ClientContext* context) {
  if (options.institution_id.empty()) return;
  context->AddMetadata(std::string(kInstitutionHeader), options.institution_id);
}

void PrepareCall(const TransportOptions& options, grpc::ClientContext* context) {
  IdentifyCaller(options, context);
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::milliseconds(options.timeout_ms));
}

}  // namespace medsettle::cli
