// medsettle-cli: try the settlement service from a shell (README.md).
#include <iostream>
#include <string>
#include <vector>

#include "tools/cli/cli.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return medsettle::cli::Run(args, std::cout, std::cerr, medsettle::cli::ProcessEnv());
}
