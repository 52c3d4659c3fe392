// Where the gateway reads settlements that have left Redis: the ledger
// (PostgreSQL, ledger/), behind an interface so the handler is testable
// without it and the gateway starts without it (then a settlement past the
// hot window is NOT_FOUND).
#ifndef MEDSETTLE_GATEWAY_SETTLEMENT_ARCHIVE_H_
#define MEDSETTLE_GATEWAY_SETTLEMENT_ARCHIVE_H_

#include <string_view>

#include "absl/status/statusor.h"
#include "cache/settlement_store.h"
#include "engine/date.h"

namespace medsettle::gateway {

class SettlementArchive {
 public:
  virtual ~SettlementArchive() = default;
  // The settlement and its reversal, if any. NOT_FOUND
  // SETTLEMENT_NOT_FOUND when the ledger does not have it; UNAVAILABLE
  // LEDGER_UNAVAILABLE when the ledger cannot be reached. Thread-safe.
  virtual absl::StatusOr<cache::StoredSettlement> Get(std::string_view settlement_id) = 0;
  // Reconcile of a day whose Redis index has expired, with the same
  // contract as cache::SettlementStore::Reconcile. Thread-safe.
  virtual absl::StatusOr<cache::ReconcileResult> Reconcile(std::string_view institution_id,
                                                           engine::Date date,
                                                           bool include_detail, int page_size,
                                                           std::string_view page_token) = 0;
};

}  // namespace medsettle::gateway

#endif  // MEDSETTLE_GATEWAY_SETTLEMENT_ARCHIVE_H_
