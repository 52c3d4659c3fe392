// medsettle-snapshot: the snapshot operator tool (tools/snapshot/README.md).
#include <iostream>
#include <string>
#include <vector>

#include "tools/snapshot/snapshot_tool.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return medsettle::snapshot_tool::Run(args, std::cout, std::cerr);
}
