// What each kind of institution may settle (docs/SECURITY.md): checked by
// the handler against the registry's record of the caller, never against
// anything the request says about itself.
//
//   PHARMACY   general, chronic and special-disease outpatient purchases
//              only (定点零售药店 dispense; they admit nobody and deliver no
//              babies, and prenatal checks are a clinic's).
//   COMMUNITY  everything outpatient; inpatient stays and deliveries only
//              at registry level 1 (一级及以下): a community centre
//              (社区卫生服务中心 / 乡镇卫生院) admits at primary level, so
//              a record that places one above level 1 never settles a stay
//              at a higher level's terms.
//   HOSPITAL   everything.
//   (no kind)  nothing: a registry record without a kind is refused.
//
// Reading an institution's own settlements (GetSettlement, Reverse,
// Reconcile) is enforced by the handler and the store: the settlement
// record's institution must be the caller.
#ifndef MEDSETTLE_GATEWAY_AUTHORIZATION_H_
#define MEDSETTLE_GATEWAY_AUTHORIZATION_H_

#include <cstdint>
#include <string_view>

#include "absl/status/status.h"
#include "engine/types.h"

namespace medsettle::gateway {

namespace reason {
// PERMISSION_DENIED, field visit.type: this kind (or level) of institution
// may not settle this visit type.
inline constexpr std::string_view kVisitNotAllowed = "VISIT_NOT_ALLOWED_FOR_INSTITUTION";
}  // namespace reason

// OK, or PERMISSION_DENIED kVisitNotAllowed naming the rule.
absl::Status AuthorizeVisit(const engine::Institution& institution, engine::VisitType type);

// The e-insurance code scope (credentials::Scope bit) a visit at this
// institution needs: a pharmacy purchase → pharmacy; a stay (inpatient,
// deliveries) → inpatient; any other visit → outpatient.
uint8_t RequiredTokenScope(const engine::Institution& institution, engine::VisitType type);

}  // namespace medsettle::gateway

#endif  // MEDSETTLE_GATEWAY_AUTHORIZATION_H_
