// Moves the settlement journal of every hash tag from Redis into the ledger
// (PostgreSQL) exactly once, then lets Redis forget what was shipped.
//
// One cycle:
//   1. read the oldest entries of the 256 journals (one pipeline);
//   2. split each tag's at its cursor (ledger.ship_cursors): entries at or
//      below it were shipped before a crash and only need releasing;
//   3. store any policy file or catalog the new records name and the
//      ledger lacks (published in Redis by the gateways, cache/rule_files.h);
//   4. ship the new entries in ONE ledger transaction that also moves the
//      cursors (LedgerStore::Ship: insert keyed by settlement id, so even a
//      retry after an unknown COMMIT outcome is harmless);
//   5. only then release them in Redis (RedisSettlementStore::ReleaseShipped):
//      trim the journal, give records and Reconcile indexes the expiry of
//      the hot window.
// A kill -9 between any two steps loses nothing and repeats nothing: before
// 4 nothing was acknowledged anywhere; between 4 and 5 the cursor says
// shipped and the next cycle only releases. A journal entry that does not
// decode stops its tag at that entry (the entries before it ship; nothing
// after it is trimmed) and is reported with its tag and stream id.
//
// Thread safety: one Shipper per process, used from one thread; the ledger
// admits one shipper at a time (LedgerStore::LockShipper).
#ifndef MEDSETTLE_LEDGER_SHIPPER_H_
#define MEDSETTLE_LEDGER_SHIPPER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cache/redis_client.h"
#include "cache/redis_settlement_store.h"
#include "ledger/ledger_store.h"

namespace medsettle::ledger {

struct CycleResult;

struct ShipperOptions {
  // How long a shipped settlement stays in Redis (default 7 days); the
  // gateways' ledger.hot_window_hours must match.
  int64_t hot_window_ms = int64_t{7} * 24 * 3600 * 1000;
  // Journal entries read per tag and cycle (XRANGE COUNT).
  int64_t entries_per_tag = 200;
  // Entries per ledger transaction, about (a tag's entries are never
  // split): PostgreSQL is fastest at a few thousand.
  int64_t max_batch_entries = 5000;
  // Pause when a cycle found nothing to ship.
  int idle_ms = 50;
  // Pause after a failed cycle, doubled up to max_backoff_ms.
  int backoff_ms = 100;
  int max_backoff_ms = 5000;
  // A stuck tag (an entry that does not decode) is reported through
  // on_error when it first stops and then at most this often, not every
  // cycle: the other tags keep cycling, and a log line per cycle would be
  // thousands an hour.
  int64_t stuck_report_ms = 60'000;
  std::function<int64_t()> now_ms;  // injectable clock; default: the system's
  // Called with every failed cycle's status (logging).
  std::function<void(const absl::Status&)> on_error;
  // Called after every successful cycle (progress reports, metrics).
  std::function<void(const CycleResult&)> on_cycle;
  // Called after every failed cycle, before on_error (metrics).
  std::function<void()> on_cycle_failed;
};

struct CycleResult {
  int64_t shipped = 0;   // entries committed in the ledger by this cycle
  int64_t released = 0;  // entries trimmed from Redis (shipped now or before)
  // Tags stopped at an entry that does not decode: "3f" → the error.
  std::map<std::string, absl::Status> stuck;
  int64_t duration_us = 0;  // the cycle's wall time
};

class Shipper {
 public:
  // Every reference must outlive the shipper. `ledger` must hold the
  // shipper lock (LedgerStore::LockShipper).
  Shipper(cache::RedisClient& redis, cache::RedisSettlementStore& store, LedgerStore& ledger,
          ShipperOptions options);

  // One cycle, as above. On an error nothing more was acknowledged than the
  // ledger committed; the next cycle re-reads the cursors and goes on.
  absl::StatusOr<CycleResult> ShipOnce();

  // Cycles until `stop` is set (checked between cycles and during pauses).
  // Errors are reported through on_error and retried with backoff; stuck
  // tags as ShipperOptions::stuck_report_ms says. Run returns only when
  // stopped.
  void Run(const std::atomic<bool>& stop);

 private:
  // Stores the rule files `records` name that the ledger lacks, from Redis.
  absl::Status EnsureRuleFiles(const std::vector<ShipEntry>& entries);
  int64_t NowMs() const;

  cache::RedisClient& redis_;
  cache::RedisSettlementStore& store_;
  LedgerStore& ledger_;
  const ShipperOptions options_;
  bool cursors_loaded_ = false;
  std::map<std::string, StreamPosition> cursors_;  // as the ledger has them
  std::set<std::string> known_rule_files_;         // digests the ledger has
};

// "<ms>-<seq>" → position; false when malformed.
bool ParseStreamId(std::string_view id, StreamPosition* out);

}  // namespace medsettle::ledger

#endif  // MEDSETTLE_LEDGER_SHIPPER_H_
