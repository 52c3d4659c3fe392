// medsettle-cli: try the settlement service from a shell (README.md).
#include <grpc/grpc.h>

#include <iostream>
#include <string>
#include <vector>

#include "tools/cli/cli.h"

int main(int argc, char** argv) {
  // gRPC frees a TLS channel's OpenSSL objects on its own threads after
  // the channel is gone. Holding the library over the whole run and then
  // shutting it down blocking lets those frees finish before the process
  // exits (otherwise LeakSanitizer now and then finds them in flight).
  grpc_init();
  std::vector<std::string> args(argv + 1, argv + argc);
  const int code = medsettle::cli::Run(args, std::cout, std::cerr, medsettle::cli::ProcessEnv());
  grpc_shutdown_blocking();
  return code;
}
