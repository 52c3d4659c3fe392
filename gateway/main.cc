// medsettle-gateway: serves medsettle.v1.SettlementService.
//   medsettle-gateway --config deploy/gateway/medsettle-gateway.yaml --insecure-dev
// Signals: SIGTERM / SIGINT drain and exit 0; SIGHUP reloads the policies
// and the catalog. Exit codes: 0 stopped cleanly, 1 could not start,
// 2 bad configuration or flags. docs/OPERATIONS.md has the details.
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <string>
#include <vector>

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

}  // namespace

int main(int argc, char** argv) {
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

  absl::StatusOr<std::unique_ptr<medsettle::gateway::GatewayServer>> server =
      medsettle::gateway::GatewayServer::Start(config);
  if (!server.ok()) {
    Print(stderr, "medsettle-gateway: cannot start: " + Describe(server.status()) + "\n");
    return 1;
  }
  const std::size_t colon = config.listen.rfind(':');
  const std::string host = config.listen.substr(0, colon);
  std::optional<std::string> version = (*server)->snapshot_version();
  Print(stderr,
        "medsettle-gateway: WARNING --insecure-dev: the calling institution is taken from the "
        "x-medsettle-institution header, unverified. Loopback development only.\n");
  Print(stdout, "medsettle-gateway: listening on " + host + ":" +
                    std::to_string((*server)->port()) + " (redis " + config.redis_host + ":" +
                    std::to_string(config.redis_port) + ", snapshot " +
                    (version ? *version : std::string("none yet")) + ")\n");

  for (;;) {
    int signal_number = 0;
    if (sigwait(&signals, &signal_number) != 0) continue;
    if (signal_number == SIGHUP) {
      absl::Status reloaded = (*server)->ReloadEngine();
      Print(stderr, reloaded.ok() ? "medsettle-gateway: policies and catalog reloaded\n"
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
