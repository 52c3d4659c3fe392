// Watches the settlement journal's backlog — what the gateway committed in
// Redis and the ledger shipper (medsettle-ledger ship) has not yet moved to
// PostgreSQL — so an operator sees Redis memory grow during a PostgreSQL
// outage (or a stopped shipper) long before it matters.
//
// Every poll_ms one pipeline reads each tag's journal length and oldest
// entry (cache::RedisSettlementStore::JournalLengths); the lag is the age of the
// oldest entry. Shipped entries leave the journal at once (ReleaseShipped
// trims it after the commit), so what remains is, to within one shipping
// cycle, what waits.
//
// Health: the gRPC health service reports kShippingHealthService SERVING
// while the lag is at most max_lag_seconds and NOT_SERVING beyond it or
// while the journal cannot be read. The whole server ("") is not affected:
// Redis is the commit point and settlements go on during an outage.
//
// Thread safety: Current() may be called from any thread; Start/Stop from
// the owner's.
#ifndef MEDSETTLE_GATEWAY_SHIPPING_MONITOR_H_
#define MEDSETTLE_GATEWAY_SHIPPING_MONITOR_H_

#include <cstdint>
#include <functional>
#include <mutex>
#include <string_view>

#include "absl/status/status.h"
#include "cache/redis_settlement_store.h"
#include "gateway/periodic_thread.h"

namespace medsettle::gateway {

// The health service name that carries the shipping backlog.
inline constexpr std::string_view kShippingHealthService = "medsettle.ledger.Shipping";

struct ShippingBacklog {
  bool known = false;         // false until a poll succeeded, or after one failed
  int64_t entries = 0;        // journal entries in Redis, all tags
  int64_t lag_ms = 0;         // age of the oldest entry (0 when the journal is empty)
  int64_t measured_at_ms = 0;  // Unix ms of the last successful poll
};

class ShippingMonitor {
 public:
  struct Options {
    int poll_ms = 5000;             // 100..3,600,000
    int64_t max_lag_seconds = 300;  // beyond it: NOT_SERVING
    // Unix ms now; tests inject a clock.
    std::function<int64_t()> now_ms;
  };

  // `store` must outlive the monitor. `on_health(serving)` is called from
  // the polling thread (and from PollNow) whenever the verdict changes.
  ShippingMonitor(cache::RedisSettlementStore& store, Options options,
                  std::function<void(bool serving)> on_health);
  ~ShippingMonitor();
  ShippingMonitor(const ShippingMonitor&) = delete;
  ShippingMonitor& operator=(const ShippingMonitor&) = delete;

  // One poll now; the Redis error when the journal could not be read.
  absl::Status PollNow();
  // Polls every period on a PeriodicThread; Stop is idempotent, and Start
  // after Stop starts again.
  void Start();
  void Stop();

  ShippingBacklog Current() const;

 private:
  void Publish(const ShippingBacklog& backlog);

  cache::RedisSettlementStore& store_;
  const Options options_;
  std::function<void(bool)> on_health_;

  mutable std::mutex mutex_;
  ShippingBacklog current_;  // guarded by mutex_
  int health_ = -1;          // guarded by mutex_: -1 unknown, 0 not serving, 1 serving
  PeriodicThread poller_;  // last: stopped before the rest goes
};

// The age in ms at `now_ms` of the entry with stream id "<ms>-<seq>"; 0 for
// "" (an empty journal) or an id that does not parse.
int64_t StreamIdAgeMs(std::string_view stream_id, int64_t now_ms);

}  // namespace medsettle::gateway

#endif  // MEDSETTLE_GATEWAY_SHIPPING_MONITOR_H_
