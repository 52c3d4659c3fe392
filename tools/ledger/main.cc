// medsettle-ledger: the ledger operator tool (tools/ledger/README.md).
#include <csignal>
#include <iostream>
#include <string>
#include <vector>

#include "tools/ledger/ledger_tool.h"

namespace {
std::atomic<bool> stop_requested{false};
void RequestStop(int) { stop_requested.store(true); }
}  // namespace

int main(int argc, char** argv) {
  std::ios_base::sync_with_stdio(false);
  struct sigaction action {};
  action.sa_handler = RequestStop;
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  std::vector<std::string> args(argv + 1, argv + argc);
  medsettle::ledger_tool::RunOptions run;
  run.stop = &stop_requested;
  return medsettle::ledger_tool::Run(args, std::cout, std::cerr, run);
}
