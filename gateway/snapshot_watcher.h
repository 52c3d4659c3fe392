// Which enrollment snapshot version the gateway reads, and the institution
// registry of that version.
//
// A background thread polls snap:current and the current version's
// registry revision every refresh interval (≤ 500 ms) and swaps in a new
// SnapshotView when either moves. Every request takes one view at its
// start and reads only that version, so no request sees half of one
// snapshot and half of another. Person records are never cached here (each
// request reads its person's record in its own Redis round trip), so a
// delta — a suspension, a lost e-voucher, a new enrollee — is visible to
// the very next request. Institutions are cached per view: an institution
// delta (SnapshotStore::ApplyInstitutionDelta — a suspension, a new
// pharmacy) raises the revision, so it reaches every gateway within one
// refresh interval.
//
// The watcher also decides health: SERVING while a version is current and
// Redis answers, NOT_SERVING otherwise (reported through on_health).
#ifndef MEDSETTLE_GATEWAY_SNAPSHOT_WATCHER_H_
#define MEDSETTLE_GATEWAY_SNAPSHOT_WATCHER_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cache/snapshot_store.h"
#include "engine/types.h"
#include "gateway/periodic_thread.h"

namespace medsettle::gateway {

namespace reason {
// UNAVAILABLE: no snapshot version is current yet (none loaded, or Redis
// has not answered since the gateway started).
inline constexpr std::string_view kSnapshotNotLoaded = "SNAPSHOT_NOT_LOADED";
// PERMISSION_DENIED: the calling institution is not in the registry of
// the current snapshot.
inline constexpr std::string_view kInstitutionUnknown = "INSTITUTION_UNKNOWN";
}  // namespace reason

// One snapshot version as requests see it. Shared by the requests that
// started under it; thread-safe.
class SnapshotView {
 public:
  // A view over Redis: institutions are read from `store` (which must
  // outlive the view) and cached.
  SnapshotView(cache::SnapshotStore& store, std::string version, int64_t registry_revision = 0)
      : store_(&store), version_(std::move(version)), registry_revision_(registry_revision) {}
  // A view whose registry is `institutions` and nothing else (no store):
  // for tests and tools that settle without Redis.
  SnapshotView(std::string version, const std::vector<engine::Institution>& institutions,
               int64_t registry_revision = 0);

  const std::string& version() const { return version_; }
  int64_t registry_revision() const { return registry_revision_; }

  // The institution's registry record (one HGET the first time, cached for
  // the view's life). PERMISSION_DENIED kInstitutionUnknown when absent;
  // Redis errors as such.
  absl::StatusOr<engine::Institution> Institution(std::string_view institution_id);

 private:
  cache::SnapshotStore* const store_;  // null: the registry is institutions_ as given
  const std::string version_;
  const int64_t registry_revision_;
  std::mutex mutex_;
  std::map<std::string, engine::Institution, std::less<>> institutions_;  // guarded by mutex_
};

// Where the request handler (gateway/settlement_handler.h) takes the view of
// each request: the SnapshotWatcher in production; tests hand it fixed views
// (tests/support/fake_snapshot_source.h).
class SnapshotSource {
 public:
  virtual ~SnapshotSource() = default;
  // The view of the current version; UNAVAILABLE kSnapshotNotLoaded when
  // none is known. Thread-safe; never blocks for long (no I/O).
  virtual absl::StatusOr<std::shared_ptr<SnapshotView>> Current() const = 0;
};

class SnapshotWatcher final : public SnapshotSource {
 public:
  // `store` must outlive the watcher. `on_health(serving)` is called from
  // the polling thread (and from RefreshNow) whenever health changes: it
  // is false while no snapshot version is known. A poll that fails (Redis,
  // or in a cluster the primary of snap:current, not answering) keeps the
  // last view and the verdict: Redis's reachability is the node monitor's
  // to judge (gateway/redis_node_monitor.h), so that one failed primary of
  // several does not take every gateway out of service.
  SnapshotWatcher(cache::SnapshotStore& store, int refresh_ms,
                  std::function<void(bool serving)> on_health = nullptr);

  // Called from the polling thread when the current version changes
  // (`from` is "" at the first one): the gateway logs it.
  void set_on_flip(std::function<void(const std::string& from, const std::string& to)> on_flip) {
    on_flip_ = std::move(on_flip);
  }
  ~SnapshotWatcher();

  SnapshotWatcher(const SnapshotWatcher&) = delete;
  SnapshotWatcher& operator=(const SnapshotWatcher&) = delete;

  // One poll now (the gateway calls it once before serving).
  absl::Status RefreshNow();
  // Starts / stops the polling thread. Stop is idempotent.
  void Start();
  void Stop();

  // The view of the current version; UNAVAILABLE kSnapshotNotLoaded when
  // none is known.
  absl::StatusOr<std::shared_ptr<SnapshotView>> Current() const override;

  // Whether Redis answered the last poll (metric medsettle_redis_up).
  bool redis_answering() const { return redis_answering_.load(std::memory_order_relaxed); }
  // When the current version was committed (its loader's meta), Unix
  // seconds; 0 when unknown (metric medsettle_snapshot_age_seconds).
  int64_t current_committed_at_unix() const {
    return committed_at_unix_.load(std::memory_order_relaxed);
  }

 private:
  void SetHealth(bool serving);
  // After a failed poll: serving while a view is known.
  void KeepLastVerdict();

  cache::SnapshotStore& store_;
  const int refresh_ms_;
  std::function<void(bool)> on_health_;
  std::function<void(const std::string&, const std::string&)> on_flip_;
  std::atomic<bool> redis_answering_{false};
  std::atomic<int64_t> committed_at_unix_{0};

  mutable std::mutex mutex_;
  std::shared_ptr<SnapshotView> current_;  // guarded by mutex_
  std::atomic<int> health_{-1};  // -1 unknown, 0 not serving, 1 serving
  PeriodicThread poller_;        // last: stopped before the rest goes
};

}  // namespace medsettle::gateway

#endif  // MEDSETTLE_GATEWAY_SNAPSHOT_WATCHER_H_
