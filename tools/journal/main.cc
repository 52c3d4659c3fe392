// medsettle-journal: the settlement journal operator tool
// (tools/journal/README.md).
#include <iostream>
#include <string>
#include <vector>

#include "tools/journal/journal_tool.h"

int main(int argc, char** argv) {
  // An export writes millions of lines to std::cout; nothing here uses stdio.
  std::ios_base::sync_with_stdio(false);
  std::vector<std::string> args(argv + 1, argv + argc);
  return medsettle::journal_tool::Run(args, std::cout, std::cerr);
}
