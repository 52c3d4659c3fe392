// medsettle-gateway: serves medsettle.v1.SettlementService over mutual TLS.
//   medsettle-gateway --config deploy/gateway/medsettle-gateway.yaml
//     --tls-cert server.pem --tls-key server.key.pem --tls-client-ca ca.pem
//   medsettle-gateway ... --insecure-dev   (loopback development only)
// Signals: SIGTERM / SIGINT drain and exit 0; SIGHUP reloads the policies,
// the catalog and the e-insurance code issuer keys. Exit codes: 0 stopped cleanly, 1 could not start,
// 2 bad configuration or flags. docs/OPERATIONS.md has the details.
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "engine/status.h"
#include "gateway/config.h"
#include "gateway/gateway_server.h"

namespace {

void Print(std::FILE* out, const std::string& text) {
  std::fputs(text.c_str(), out);
  std::fflush(out);
}

std::string Describe(const absl::Status& status) {
  return medsettle::engine::ReasonOf(status) + ": " + std::string(status.message());
}

// Printed at every start with --insecure-dev, so nobody runs it unawares.
constexpr char kInsecureWarning[] =
    "medsettle-gateway: ************************************************************\n"
    "medsettle-gateway: WARNING: --insecure-dev. NOT FOR PRODUCTION.\n"
    "medsettle-gateway:   No TLS: requests, ID numbers and settlements cross the\n"
    "medsettle-gateway:   connection in plaintext.\n"
    "medsettle-gateway:   No authentication: the calling institution is whatever the\n"
    "medsettle-gateway:   x-medsettle-institution header says, so any local process can\n"
    "medsettle-gateway:   settle, reverse and read settlements as any institution.\n"
    "medsettle-gateway:   Allowed on loopback only. Serve mutual TLS instead:\n"
    "medsettle-gateway:   --tls-cert, --tls-key, --tls-client-ca (docs/OPERATIONS.md).\n"
    "medsettle-gateway: ************************************************************\n";

}  // namespace

int main(int argc, char** argv) {
  // Debian's abseil is built with absl::Mutex's deadlock detection on
  // (a debug default): a graph of every lock, updated on each Lock by gRPC,
  // a few percent of the gateway's CPU. Off, as in a release build.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  using medsettle::gateway::GatewayConfig;
  GatewayConfig config;
  config.catalog_file = MEDSETTLE_DEFAULT_CATALOG;
  config.policy_dir = MEDSETTLE_DEFAULT_POLICY_DIR;
  bool help = false;
  absl::Status parsed =
      medsettle::gateway::ApplyFlags(std::vector<std::string>(argv + 1, argv + argc), &config, &help);
  if (help) {
    Print(stdout, medsettle::gateway::FlagsUsage());
    return 0;
  }
  if (parsed.ok()) parsed = medsettle::gateway::ValidateConfig(config);
  if (!parsed.ok()) {
    Print(stderr, "medsettle-gateway: " + Describe(parsed) + "\n");
    return 2;
  }

  // Signals are taken by this thread only (sigwait below); every thread the
  // gateway starts inherits the blocked mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  if (config.insecure_dev) {
    Print(stderr, kInsecureWarning);
    if (!config.tls_cert_file.empty() || !config.tls_key_file.empty() ||
        !config.tls_client_ca_file.empty() || !config.tls_crl_dir.empty()) {
      Print(stderr, "medsettle-gateway: --insecure-dev ignores the tls.* files and folder given\n");
    }
  }
  absl::StatusOr<std::unique_ptr<medsettle::gateway::GatewayServer>> server =
      medsettle::gateway::GatewayServer::Start(config);
  if (!server.ok()) {
    Print(stderr, "medsettle-gateway: cannot start: " + Describe(server.status()) + "\n");
    return 1;
  }
  const std::size_t colon = config.listen.rfind(':');
  const std::string host = config.listen.substr(0, colon);
  std::optional<std::string> version = (*server)->snapshot_version();
  Print(stderr, "medsettle-gateway: " + (*server)->transport_description() + "\n");
  Print(stdout, "medsettle-gateway: listening on " + host + ":" +
                    std::to_string((*server)->port()) +
                    (config.insecure_dev ? " (insecure-dev" : " (mutual TLS") + ", redis " +
                    (*server)->redis_description() + ", snapshot " +
                    (version ? *version : std::string("none yet")) + ")\n");

  for (;;) {
    int signal_number = 0;
    if (sigwait(&signals, &signal_number) != 0) continue;
    if (signal_number == SIGHUP) {
      absl::Status reloaded = (*server)->ReloadEngine();
      Print(stderr, reloaded.ok() ? "medsettle-gateway: policies, catalog and issuer keys reloaded\n"
                                  : "medsettle-gateway: reload failed, keeping the old engine: " +
                                        Describe(reloaded) + "\n");
      continue;
    }
    break;
  }
  Print(stderr, "medsettle-gateway: draining calls in flight, then stopping\n");
  (*server)->Shutdown();
  Print(stderr, "medsettle-gateway: stopped\n" + (*server)->counters().Summary());
  return 0;
}
