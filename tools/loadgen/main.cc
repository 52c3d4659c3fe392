// medsettle-loadgen: load tests of the gateway with reports (README.md).
#include <csignal>
#include <iostream>
#include <string>
#include <vector>

#include "tools/loadgen/loadgen_tool.h"

namespace {
std::atomic<bool> stop_requested{false};
void RequestStop(int) { stop_requested.store(true); }
}  // namespace

int main(int argc, char** argv) {
  struct sigaction action {};
  action.sa_handler = RequestStop;
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  std::vector<std::string> args(argv + 1, argv + argc);
  medsettle::loadgen::ToolEnv env;
  env.stop = &stop_requested;
  return medsettle::loadgen::Run(args, std::cout, std::cerr, env);
}
