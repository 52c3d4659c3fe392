#include "gateway/ledger_archive.h"

#include <utility>

namespace medsettle::gateway {

absl::StatusOr<ledger::LedgerStore*> LedgerArchive::Store() {
  if (store_ == nullptr) {
    absl::StatusOr<std::unique_ptr<ledger::LedgerStore>> opened =
        ledger::LedgerStore::Open(options_);
    if (!opened.ok()) return opened.status();
    store_ = *std::move(opened);
  }
  return store_.get();
}

void LedgerArchive::DropIfUnavailable(const absl::Status& status) {
  if (status.code() == absl::StatusCode::kUnavailable) store_.reset();
}

absl::StatusOr<cache::StoredSettlement> LedgerArchive::Get(std::string_view settlement_id) {
  std::lock_guard<std::mutex> lock(mutex_);
  absl::StatusOr<ledger::LedgerStore*> store = Store();
  if (!store.ok()) return store.status();
  absl::StatusOr<ledger::LedgerSettlement> found = (*store)->GetSettlement(settlement_id);
  if (!found.ok()) {
    DropIfUnavailable(found.status());
    return found.status();
  }
  cache::StoredSettlement out;
  out.record = std::move(found->record);
  if (found->reversal.has_value()) {
    out.status = cache::SettlementStatus::kReversed;
    out.reversal = std::move(found->reversal);
  }
  out.archived = true;
  return out;
}

absl::StatusOr<cache::ReconcileResult> LedgerArchive::Reconcile(std::string_view institution_id,
                                                                engine::Date date,
                                                                bool include_detail,
                                                                int page_size,
                                                                std::string_view page_token) {
  std::lock_guard<std::mutex> lock(mutex_);
  absl::StatusOr<ledger::LedgerStore*> store = Store();
  if (!store.ok()) return store.status();
  absl::StatusOr<ledger::DayReconcile> day =
      (*store)->ReconcileDay(institution_id, date, include_detail, page_size, page_token);
  if (!day.ok()) {
    DropIfUnavailable(day.status());
    return day.status();
  }
  cache::ReconcileResult out;
  auto totals = [](const ledger::DayTotals& in, cache::ReconcileTotals* t) {
    t->count = in.count;
    t->amounts = in.amounts;
  };
  totals(day->settled, &out.settled);
  totals(day->reversed, &out.reversed);
  totals(day->net, &out.net);
  for (const ledger::DayEntry& e : day->detail) {
    out.detail.push_back(cache::ReconcileDetail{
        .settlement_id = e.settlement_id,
        .request_id = e.request_id,
        .status = e.status == v1::SETTLEMENT_STATUS_REVERSED ? cache::SettlementStatus::kReversed
                                                             : cache::SettlementStatus::kSettled,
        .visit_type = static_cast<int32_t>(e.visit_type),
        .amounts = e.amounts,
        .settled_at_unix = e.settled_at_unix_ms / 1000,
        .reversed_at_unix = e.reversed_at_unix_ms / 1000});
  }
  out.next_page_token = day->next_page_token;
  return out;
}

}  // namespace medsettle::gateway
