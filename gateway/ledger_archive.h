// The gateway's SettlementArchive over the ledger (ledger/ledger_store.h):
// settlements that have left Redis, and the reconciliation of days whose
// hot window has ended. Reads only; the gateway never writes the ledger.
//
// One connection, opened at the first read (a gateway starts and settles
// without PostgreSQL) and shared behind a mutex: archive reads are rare
// (replays and look-ups past the hot window, old days' reconciliation),
// never on the path of a new settlement. A failed connection is dropped
// and opened again by the next read.
#ifndef MEDSETTLE_GATEWAY_LEDGER_ARCHIVE_H_
#define MEDSETTLE_GATEWAY_LEDGER_ARCHIVE_H_

#include <memory>
#include <mutex>

#include "gateway/settlement_archive.h"
#include "ledger/ledger_store.h"

namespace medsettle::gateway {

class LedgerArchive final : public SettlementArchive {
 public:
  explicit LedgerArchive(ledger::LedgerOptions options) : options_(std::move(options)) {}

  absl::StatusOr<cache::StoredSettlement> Get(std::string_view settlement_id) override;
  absl::StatusOr<cache::ReconcileResult> Reconcile(std::string_view institution_id,
                                                   engine::Date date, bool include_detail,
                                                   int page_size,
                                                   std::string_view page_token) override;

 private:
  // The open store; opens it first if needed. REQUIRES: mutex_ held.
  absl::StatusOr<ledger::LedgerStore*> Store();
  // Drops the store after a connection error. REQUIRES: mutex_ held.
  void DropIfUnavailable(const absl::Status& status);

  const ledger::LedgerOptions options_;
  std::mutex mutex_;
  std::unique_ptr<ledger::LedgerStore> store_;  // guarded by mutex_
};

}  // namespace medsettle::gateway

#endif  // MEDSETTLE_GATEWAY_LEDGER_ARCHIVE_H_
