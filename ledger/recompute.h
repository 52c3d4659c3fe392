// Recomputing a settlement from its ledger record: the engine is run again
// on what the record says the settlement used (the bill, the enrollment and
// institution as used, the year to date before, the e-insurance code's
// issue time) and its result compared with the result the record holds.
// With the engine built from the very policy file and catalog the record
// names (by digest), any difference is a defect — in the engine, in a rule
// file, or in the record — that `medsettle-ledger recompute` reports.
// Pure: no I/O.
#ifndef MEDSETTLE_LEDGER_RECOMPUTE_H_
#define MEDSETTLE_LEDGER_RECOMPUTE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/engine.h"
#include "medsettle/v1/ledger.pb.h"
#include "medsettle/v1/settlement.pb.h"

namespace medsettle::ledger {

struct Recomputed {
  v1::SettleResponse response;      // as the gateway would have returned it
  std::vector<std::string> differences;  // "modified: amounts.base_fund_cents: 12000 -> 11800"; empty = same
};

// Recomputes `record` with `engine`. The response fields the gateway sets
// beside the engine (settlement id, status, settled_at, presenter) are
// taken from the record. A refusal by the engine (the record's inputs are
// no longer settleable under these rules) is returned as the status;
// INTERNAL LEDGER_RECORD_INVALID when the record's inputs do not decode.
absl::StatusOr<Recomputed> Recompute(const engine::Engine& engine,
                                     const v1::LedgerRecord& record);

}  // namespace medsettle::ledger

#endif  // MEDSETTLE_LEDGER_RECOMPUTE_H_
