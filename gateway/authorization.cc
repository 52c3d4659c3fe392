#include "gateway/authorization.h"

#include "engine/status.h"
#include "engine/text.h"
#include "gateway/credentials/ec_token.h"

namespace medsettle::gateway {

namespace {

constexpr std::string_view kVisitTypeField = "visit.type";

bool IsOutpatient(engine::VisitType type) {
  return type == engine::VisitType::kGeneralOutpatient ||
         type == engine::VisitType::kChronicOutpatient ||
         type == engine::VisitType::kSpecialOutpatient;
}

absl::Status NotAllowed(std::string_view message) {
  return engine::Refusal(absl::StatusCode::kPermissionDenied, reason::kVisitNotAllowed,
                         kVisitTypeField, message);
}

}  // namespace

absl::Status AuthorizeVisit(const engine::Institution& institution, engine::VisitType type) {
  switch (institution.kind) {
    case engine::InstitutionKind::kPharmacy:
      if (IsOutpatient(type)) return absl::OkStatus();
      return NotAllowed(engine::Cat("a pharmacy settles outpatient purchases only, not ",
                                    engine::Name(type)));
    case engine::InstitutionKind::kCommunity:
      if (engine::IsStay(type) && institution.level > 1) {
        return NotAllowed(engine::Cat("a community centre settles stays at level 1 only; ",
                                      institution.institution_id, " is registered at level ",
                                      institution.level));
      }
      return absl::OkStatus();
    case engine::InstitutionKind::kHospital:
      return absl::OkStatus();
    case engine::InstitutionKind::kUnspecified:
      break;
  }
  // A registry record without a kind is refused everything rather than
  // treated as a hospital.
  return NotAllowed(engine::Cat("the registry gives ", institution.institution_id, " no kind"));
}

uint8_t RequiredTokenScope(const engine::Institution& institution, engine::VisitType type) {
  if (institution.kind == engine::InstitutionKind::kPharmacy) return credentials::kScopePharmacy;
  if (engine::IsStay(type)) return credentials::kScopeInpatient;
  return credentials::kScopeOutpatient;
}

}  // namespace medsettle::gateway
