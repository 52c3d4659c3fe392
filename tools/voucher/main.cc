// medsettle-voucher: issue and inspect e-insurance codes (tools/voucher/README.md).
#include <iostream>
#include <string>
#include <vector>

#include "tools/voucher/voucher_tool.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return medsettle::voucher_tool::Run(args, std::cout, std::cerr);
}
