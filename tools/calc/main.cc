// medsettle-calc: settles CalcScenarios with the engine, without a server.
//
//   medsettle-calc --scenario FILE [--catalog FILE] [--policies DIR] [--explain]
//   medsettle-calc [--catalog FILE] [--policies DIR] < scenarios.ndjson
//
// One scenario: prints the SettleResponse as JSON (or, with --explain, as a
// readable table); exit 1 when it is refused. Without --scenario: one NDJSON
// line out per scenario line in, exit 0 once the stream is processed.
// Exit 2 on a usage error.
#include <cstdio>
#include <iostream>
#include <string>
#include <string_view>

#include "engine/engine.h"
#include "engine/files/loaded_engine.h"
#include "engine/status.h"
#include "tools/calc/calc_runner.h"
#include "tools/calc/explain.h"

namespace {

// clang-format off
constexpr std::string_view kUsage =
    "usage: medsettle-calc --scenario FILE [--catalog FILE] [--policies DIR] [--explain]\n"
    "       medsettle-calc [--catalog FILE] [--policies DIR] < scenarios.ndjson\n"
    "  --scenario FILE  one CalcScenario as JSON; prints the SettleResponse JSON\n"
    "  --explain        with --scenario: a readable table instead of JSON\n"
    "  --catalog FILE   catalog CSV (default " MEDSETTLE_DEFAULT_CATALOG ")\n"
    "  --policies DIR   folder of policy *.yaml (default " MEDSETTLE_DEFAULT_POLICY_DIR ")\n"
    "Without --scenario, reads NDJSON CalcScenarios on stdin and writes one\n"
    "NDJSON line per scenario: the SettleResponse or {\"error\":{...}}.\n";
// clang-format on

struct Flags {
  std::string scenario;
  std::string catalog = MEDSETTLE_DEFAULT_CATALOG;
  std::string policies = MEDSETTLE_DEFAULT_POLICY_DIR;
  bool explain = false;
};

// False on a usage error (already reported on stderr).
bool ParseFlags(int argc, char** argv, Flags* flags, bool* help) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string* target = nullptr;
    std::string_view name = arg.substr(0, arg.find('='));
    if (name == "--scenario") target = &flags->scenario;
    if (name == "--catalog") target = &flags->catalog;
    if (name == "--policies") target = &flags->policies;
    if (target != nullptr) {
      if (name.size() < arg.size()) {
        *target = std::string(arg.substr(name.size() + 1));
      } else if (i + 1 < argc) {
        *target = argv[++i];
      } else {
        std::cerr << "medsettle-calc: " << arg << " needs a value\n" << kUsage;
        return false;
      }
      if (target->empty()) {
        std::cerr << "medsettle-calc: " << name << " needs a non-empty value\n" << kUsage;
        return false;
      }
    } else if (arg == "--explain") {
      flags->explain = true;
    } else if (arg == "--help" || arg == "-h") {
      *help = true;
    } else {
      std::cerr << "medsettle-calc: unknown argument " << arg << "\n" << kUsage;
      return false;
    }
  }
  if (flags->explain && flags->scenario.empty()) {
    std::cerr << "medsettle-calc: --explain needs --scenario\n" << kUsage;
    return false;
  }
  return true;
}

// Reports a refusal: the error JSON on stdout, a human line on stderr.
int Fail(const absl::Status& status) {
  std::cout << medsettle::calc::ErrorJson(status) << std::endl;
  std::cerr << "medsettle-calc: " << medsettle::engine::ReasonOf(status) << ": "
            << std::string(status.message()) << "\n";
  return 1;
}

int RunOne(const medsettle::engine::Engine& engine, const Flags& flags) {
  absl::StatusOr<std::string> json =
      medsettle::calc::ReadFile(flags.scenario, medsettle::engine::reason::kScenarioInvalid);
  if (!json.ok()) return Fail(json.status());
  medsettle::v1::CalcScenario scenario;
  if (absl::Status s = medsettle::calc::ParseScenarioJson(*json, &scenario); !s.ok()) {
    return Fail(s);
  }
  medsettle::calc::ScenarioRunner runner(&engine);
  medsettle::v1::SettleResponse response;
  if (absl::Status s = runner.Run(scenario, &response); !s.ok()) {
    if (flags.explain) {
      std::cout << medsettle::calc::ExplainRefusal(scenario, s);
      std::cout.flush();
      return 1;
    }
    return Fail(s);
  }
  if (flags.explain) {
    std::cout << medsettle::calc::Explain(scenario, response);
  } else {
    std::cout << medsettle::calc::ResponseJson(response, /*pretty=*/true) << "\n";
  }
  std::cout.flush();
  return std::cout ? 0 : 1;
}

int RunStream(const medsettle::engine::Engine& engine) {
  std::ios::sync_with_stdio(false);
  std::cin.tie(nullptr);
  medsettle::calc::ScenarioRunner runner(&engine);
  medsettle::calc::StreamStats stats;
  if (!medsettle::calc::RunNdjson(&runner, std::cin, std::cout, &stats)) {
    std::cerr << "medsettle-calc: cannot write the output stream\n";
    return 1;
  }
  if (std::cin.bad()) {
    std::cerr << "medsettle-calc: cannot read the input stream\n";
    return 1;
  }
  std::cerr << "medsettle-calc: " << stats.scenarios << " scenarios, " << stats.errors
            << " refused\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  bool help = false;
  if (!ParseFlags(argc, argv, &flags, &help)) return 2;
  if (help) {
    std::cout << kUsage;
    return 0;
  }
  absl::StatusOr<medsettle::engine_files::LoadedEngine> loaded =
      medsettle::engine_files::LoadEngine(flags.policies, flags.catalog);
  if (!loaded.ok()) {
    if (!flags.scenario.empty()) return Fail(loaded.status());
    std::cerr << "medsettle-calc: " << std::string(loaded.status().message()) << "\n";
    return 1;
  }
  const medsettle::engine::Engine& engine = *loaded->engine;
  return flags.scenario.empty() ? RunStream(engine) : RunOne(engine, flags);
}
