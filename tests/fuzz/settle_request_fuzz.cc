// libFuzzer target: a SettleRequest as it arrives off the wire (protobuf
// bytes) through everything the gateway does before Redis — the contract
// conversion, the claim's validation, the ID number's normalisation — and,
// when the claim is valid, the engine's settlement against the shipped
// policies and catalog with a fixed enrollment (gateway
// settlement_handler.cc's order). Any crash, sanitizer report or broken
// invariant (payers not adding up to the bill) is a finding.
//
// Built and run by deploy/fuzz.sh (clang, -fsanitize=fuzzer,address,
// undefined); seeds in tests/fuzz/corpus/settle_request/.
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "cache/person_key.h"
#include "engine/engine.h"
#include "engine/policy_loader.h"
#include "medsettle/v1/settlement.pb.h"
#include "proto/contract/convert.h"

namespace {

using namespace medsettle;

std::string ReadFileOrDie(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "settle_request_fuzz: cannot read %s\n", path.c_str());
    std::abort();
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

const engine::Engine& TheEngine() {
  static const engine::Engine* engine = [] {
    const std::string dir = MEDSETTLE_SOURCE_DIR;
    engine::PolicySet policies;
    for (const char* name :
         {"dianjiang-2024.yaml", "fenghua-2025.yaml", "quzhou-2024.yaml", "quzhou-2025.yaml"}) {
      absl::StatusOr<engine::Policy> policy =
          engine::ParsePolicy(name, ReadFileOrDie(dir + "/engine/policies/" + name));
      if (!policy.ok() || !policies.Add(*std::move(policy)).ok()) std::abort();
    }
    absl::StatusOr<engine::Catalog> catalog = engine::Catalog::Parse(
        "demo-catalog.csv", ReadFileOrDie(dir + "/engine/catalog/demo-catalog.csv"));
    if (!catalog.ok()) std::abort();
    return new engine::Engine(std::move(policies), *std::move(catalog));
  }();
  return *engine;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const engine::Engine& engine = TheEngine();
  v1::SettleRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  if (request.credential().has_id_card_no()) {
    (void)cache::NormalizeIdNumber(request.credential().id_card_no());
  }
  engine::Claim claim;
  if (!contract::ClaimFromProto(request, &claim, "").ok()) return 0;
  if (!engine::ValidateClaim(claim).ok()) return 0;

  // A person and a hospital of Quzhou (330802), insured the year the visit
  // is settled in, so the policy layers run.
  const int year = engine::Engine::SettlementDate(claim.visit).year();
  engine::Enrollment enrollment;
  enrollment.person_key = std::string(64, 'a');
  enrollment.year = year;
  enrollment.region_code = 330802;
  enrollment.birth_date = engine::Date::FromYmd(1980, 6, 15);
  enrollment.category = engine::Category::kAdult;
  enrollment.assistance = engine::Assistance::kNone;
  enrollment.paid_date = engine::Date::FromYmd(year - 1, 12, 1);
  enrollment.concentrated = true;
  enrollment.status = engine::EnrollmentStatus::kActive;
  engine::Institution hospital;
  hospital.institution_id = "H3308020002";
  hospital.region_code = 330802;
  hospital.kind = engine::InstitutionKind::kHospital;
  hospital.level = 2;
  const engine::Accumulators year_to_date;
  engine::Settlement settlement;
  const engine::SettleInput input{.enrollment = &enrollment,
                                  .institution = &hospital,
                                  .year_to_date = &year_to_date,
                                  .claim = &claim};
  absl::Status status = engine.Settle(input, &settlement);
  // The engine checks its own invariants; a violation is a bug.
  if (status.code() == absl::StatusCode::kInternal) {
    std::fprintf(stderr, "engine invariant: %s\n", std::string(status.message()).c_str());
    std::abort();
  }
  return 0;
}
