#include "gateway/gateway_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <chrono>
#include <ctime>
#include <fstream>
#include <sstream>
#include <vector>

#include "engine/status.h"
#include "engine/text.h"
#include "medsettle/v1/service.pb.h"

// service.proto defines no message, so nothing references its generated
// descriptor and the linker would drop it from the static library; server
// reflection could then list the service but not describe it. This anchor
// keeps it linked.
extern const void* const kServiceDescriptorAnchor;
const void* const kServiceDescriptorAnchor = &::descriptor_table_medsettle_2fv1_2fservice_2eproto;

namespace medsettle::gateway {

using engine::Cat;
namespace {

absl::StatusOr<cache::PersonKeyer> ReadKeyer(const std::string& key_file) {
  std::ifstream in(key_file, std::ios::binary);
  if (!in) {
    return engine::Refusal(absl::StatusCode::kNotFound, reason::kKeyFileUnreadable, "key_file",
                           Cat("cannot read the key file ", key_file));
  }
  std::stringstream secret;
  secret << in.rdbuf();
  return cache::PersonKeyer::Create(secret.str());
}

// ---- TLS files ----

// How long a connection lives before the gateway closes it (then the
// client reconnects and is checked again), and the grace for its calls.
constexpr int kMaxConnectionAgeMs = 30 * 60 * 1000;
constexpr int kConnectionGraceMs = 5 * 60 * 1000;

// An encrypted key file is refused rather than prompting on a terminal.
int NoPassphrase(char*, int, int, void*) { return 0; }

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

// One TLS file: its key, flag and what it holds, for messages.
struct TlsFile {
  std::string_view key;
  std::string_view flag;
  std::string_view what;
  const std::string& path;
};

absl::StatusOr<std::string> ReadTlsFile(const TlsFile& f) {
  std::ifstream in(f.path, std::ios::binary);
  std::stringstream text;
  if (in) text << in.rdbuf();
  if (!in || in.bad()) {
    return engine::Refusal(absl::StatusCode::kNotFound, reason::kTlsFileUnreadable, f.key,
                           Cat("cannot read ", f.what, " ", f.path, " (", f.key, ", ", f.flag,
                               ")"));
  }
  return text.str();
}

absl::Status TlsInvalid(const TlsFile& f, std::string_view problem) {
  return engine::Refusal(absl::StatusCode::kInvalidArgument, reason::kTlsFileInvalid, f.key,
                         Cat(f.path, " (", f.key, "): ", problem));
}

// Every PEM certificate in `pem`, in order.
std::vector<X509Ptr> Certificates(const std::string& pem) {
  std::vector<X509Ptr> certs;
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (bio == nullptr) return certs;
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    certs.emplace_back(cert);
  }
  ERR_clear_error();  // the end of the input is reported as an error
  return certs;
}

std::string SubjectOf(X509* cert) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(bio.get(), X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

std::string NotAfterOf(X509* cert) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1) return "?";
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M UTC", &tm);
  return text;
}

cache::PoolOptions PoolOptionsOf(const GatewayConfig& c) {
  cache::PoolOptions options;
  options.redis.host = c.redis_host;
  options.redis.port = c.redis_port;
  options.redis.connect_timeout_ms = c.redis_connect_timeout_ms;
  options.redis.command_timeout_ms = c.redis_command_timeout_ms;
  options.size = c.redis_pool_size;
  options.acquire_timeout_ms = c.redis_acquire_timeout_ms;
  return options;
}

}  // namespace

absl::StatusOr<std::string> CheckTlsFiles(const GatewayConfig& config) {
  const TlsFile cert_file{"tls.cert_file", "--tls-cert", "the server certificate file",
                          config.tls_cert_file};
  const TlsFile key_file{"tls.key_file", "--tls-key", "the server key file", config.tls_key_file};
  const TlsFile ca_file{"tls.client_ca_file", "--tls-client-ca", "the client CA file",
                        config.tls_client_ca_file};
  absl::StatusOr<std::string> cert_pem = ReadTlsFile(cert_file);
  if (!cert_pem.ok()) return cert_pem.status();
  absl::StatusOr<std::string> key_pem = ReadTlsFile(key_file);
  if (!key_pem.ok()) return key_pem.status();
  absl::StatusOr<std::string> ca_pem = ReadTlsFile(ca_file);
  if (!ca_pem.ok()) return ca_pem.status();

  const std::vector<X509Ptr> chain = Certificates(*cert_pem);
  if (chain.empty()) return TlsInvalid(cert_file, "no PEM certificate in it");
  X509* leaf = chain.front().get();
  if (X509_cmp_current_time(X509_get0_notAfter(leaf)) <= 0) {
    return TlsInvalid(cert_file, Cat("the server certificate expired on ", NotAfterOf(leaf)));
  }
  std::unique_ptr<BIO, BioFree> key_bio(
      BIO_new_mem_buf(key_pem->data(), static_cast<int>(key_pem->size())));
  std::unique_ptr<EVP_PKEY, PkeyFree> key(
      key_bio == nullptr ? nullptr
                         : PEM_read_bio_PrivateKey(key_bio.get(), nullptr, NoPassphrase, nullptr));
  ERR_clear_error();
  if (key == nullptr) {
    return TlsInvalid(key_file, "no unencrypted PEM private key in it");
  }
  const bool key_matches = X509_check_private_key(leaf, key.get()) == 1;
  ERR_clear_error();
  if (!key_matches) {
    return TlsInvalid(key_file, Cat("the key does not belong to the server certificate in ",
                                    config.tls_cert_file));
  }
  const std::vector<X509Ptr> cas = Certificates(*ca_pem);
  if (cas.empty()) return TlsInvalid(ca_file, "no PEM certificate in it");
  return Cat("server certificate ", SubjectOf(leaf), ", valid until ", NotAfterOf(leaf), "; ",
             static_cast<int64_t>(cas.size()), " client CA certificate",
             cas.size() == 1 ? "" : "s", "; files re-read every ",
             config.tls_reload_interval_s, " s");
}

GatewayServer::GatewayServer(const GatewayConfig& config, cache::PersonKeyer keyer)
    : config_(config),
      keyer_(std::move(keyer)),
      engines_(config.policy_dir, config.catalog_file),
      redis_(PoolOptionsOf(config)),
      snapshot_store_(redis_),
      settlement_store_(redis_, cache::SettlementStoreOptions{
                                    .idempotency_ttl_seconds =
                                        int64_t{config.idempotency_ttl_days} * 86400}),
      workers_(config.worker_threads, static_cast<size_t>(config.queue_limit)),
      rate_limiter_(config.rate_limit, config.rate_limit_overrides) {}

// The voucher platform's public keys, or null when none are configured
// (e-insurance codes are then refused EC_TOKEN_NOT_CONFIGURED).
absl::StatusOr<std::shared_ptr<const credentials::IssuerKeyring>> LoadIssuerKeys(
    const GatewayConfig& config) {
  if (config.ec_token_issuer_keys_dir.empty()) return nullptr;
  absl::StatusOr<credentials::IssuerKeyring> keys =
      credentials::IssuerKeyring::LoadDirectory(config.ec_token_issuer_keys_dir);
  if (!keys.ok()) return keys.status();
  return std::make_shared<const credentials::IssuerKeyring>(*std::move(keys));
}

absl::StatusOr<std::unique_ptr<GatewayServer>> GatewayServer::Start(const GatewayConfig& config) {
  absl::StatusOr<cache::PersonKeyer> keyer = ReadKeyer(config.key_file);
  if (!keyer.ok()) return keyer.status();
  absl::StatusOr<std::shared_ptr<const credentials::IssuerKeyring>> issuer_keys =
      LoadIssuerKeys(config);
  if (!issuer_keys.ok()) return issuer_keys.status();
  // The transport: mutual TLS, or the loopback development mode.
  std::shared_ptr<grpc::ServerCredentials> credentials;
  std::unique_ptr<Authenticator> authenticator;
  std::string transport;
  if (config.insecure_dev) {
    credentials = grpc::InsecureServerCredentials();
    authenticator = std::make_unique<DevHeaderAuthenticator>();
    transport = "insecure-dev: plaintext, institution from the x-medsettle-institution header";
  } else {
    absl::StatusOr<std::string> tls = CheckTlsFiles(config);
    if (!tls.ok()) return tls.status();
    // gRPC re-reads the three files every interval; new connections use
    // what it read last (a failed read keeps the previous credentials).
    auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
        config.tls_key_file, config.tls_cert_file, config.tls_client_ca_file,
        static_cast<unsigned int>(config.tls_reload_interval_s));
    grpc::experimental::TlsServerCredentialsOptions options(provider);
    options.watch_root_certs();
    options.watch_identity_key_cert_pairs();
    // No certificate, or one that does not chain to the client CA: no
    // connection. (gRPC's TLS accepts TLS 1.2 and 1.3 only.)
    options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    credentials = grpc::experimental::TlsServerCredentials(options);
    authenticator = std::make_unique<MtlsAuthenticator>();
    transport = Cat("mutual TLS: ", *tls);
  }
  std::unique_ptr<GatewayServer> g(new GatewayServer(config, *std::move(keyer)));
  g->authenticator_ = std::move(authenticator);
  g->transport_description_ = std::move(transport);
  if (absl::Status s = g->engines_.Reload(); !s.ok()) return s;

  GatewayServer* self = g.get();
  g->watcher_ = std::make_unique<SnapshotWatcher>(
      g->snapshot_store_, config.snapshot_refresh_ms,
      [self](bool serving) { self->SetServing(serving); });
  // Redis down or no snapshot yet is not fatal: the watcher keeps polling.
  (void)g->watcher_->RefreshNow();

  HandlerOptions handler_options;
  handler_options.commit_retries = config.commit_retries;
  handler_options.utc_offset_minutes = config.utc_offset_minutes;
  handler_options.issuer_keys = *std::move(issuer_keys);
  handler_options.token_clock_skew_seconds = config.ec_token_clock_skew_seconds;
  handler_options.token_max_lifetime_minutes = config.ec_token_max_lifetime_minutes;
  g->handler_ = std::make_unique<SettlementHandler>(g->engines_, *g->watcher_,
                                                    g->settlement_store_, g->keyer_,
                                                    g->counters_, handler_options);
  g->service_ = std::make_unique<SettlementGrpcService>(*g->authenticator_, g->rate_limiter_,
                                                        *g->handler_, g->workers_, g->counters_,
                                                        config.request_timeout_ms);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(config.listen, credentials, &g->port_);
  builder.RegisterService(g->service_.get());
  // No SO_REUSEPORT: a second gateway on a port already served must fail
  // to start, not silently share the port.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(config.max_message_bytes);
  builder.SetMaxSendMessageSize(config.max_message_bytes);
  // Certificates are checked at the handshake only: every connection is
  // closed (gracefully, calls in flight get kConnectionGraceMs) after
  // kMaxConnectionAgeMs, so a rotated CA bundle or an expired client
  // certificate reaches long-lived HIS connections too. Clients reconnect
  // by themselves.
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS, kMaxConnectionAgeMs);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS, kConnectionGraceMs);
  g->server_ = builder.BuildAndStart();
  if (g->server_ == nullptr || g->port_ == 0) {
    g->workers_.Stop();
    return engine::Refusal(absl::StatusCode::kUnavailable, reason::kListenFailed, "listen",
                           Cat("cannot listen on ", config.listen));
  }
  {
    std::lock_guard<std::mutex> lock(g->health_mutex_);
    const bool serving = g->serving_;
    g->server_->GetHealthCheckService()->SetServingStatus(serving);
    g->server_->GetHealthCheckService()->SetServingStatus(std::string(kServiceName), serving);
  }
  g->watcher_->Start();
  return g;
}

GatewayServer::~GatewayServer() { Shutdown(); }

std::optional<std::string> GatewayServer::snapshot_version() const {
  absl::StatusOr<std::shared_ptr<SnapshotView>> view = watcher_->Current();
  if (!view.ok()) return std::nullopt;
  return (*view)->version();
}

absl::Status GatewayServer::ReloadEngine() {
  // Both or neither: a bad key folder keeps the old engine and keys too.
  absl::StatusOr<std::shared_ptr<const credentials::IssuerKeyring>> keys =
      LoadIssuerKeys(config_);
  if (!keys.ok()) return keys.status();
  if (absl::Status s = engines_.Reload(); !s.ok()) return s;
  handler_->SetIssuerKeys(*std::move(keys));
  return absl::OkStatus();
}

void GatewayServer::SetServing(bool serving) {
  std::lock_guard<std::mutex> lock(health_mutex_);
  serving_ = serving;
  if (server_ != nullptr && !stopped_) {
    server_->GetHealthCheckService()->SetServingStatus(serving);
    server_->GetHealthCheckService()->SetServingStatus(std::string(kServiceName), serving);
  }
}

void GatewayServer::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(health_mutex_);
    if (stopped_) return;
    stopped_ = true;
    // Load balancers stop sending first; then the server stops accepting.
    if (server_ != nullptr) server_->GetHealthCheckService()->Shutdown();
  }
  if (server_ != nullptr) {
    server_->Shutdown(std::chrono::system_clock::now() +
                      std::chrono::milliseconds(config_.drain_timeout_ms));
    server_->Wait();
  }
  workers_.Stop();
  if (watcher_ != nullptr) watcher_->Stop();
}

}  // namespace medsettle::gateway
