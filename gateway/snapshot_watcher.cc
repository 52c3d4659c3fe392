#include "gateway/snapshot_watcher.h"

#include <chrono>
#include <utility>

#include "engine/status.h"
#include "engine/text.h"

namespace medsettle::gateway {

using engine::Cat;

SnapshotView::SnapshotView(std::string version,
                           const std::vector<engine::Institution>& institutions,
                           int64_t registry_revision)
    : store_(nullptr), version_(std::move(version)), registry_revision_(registry_revision) {
  for (const engine::Institution& i : institutions) institutions_.emplace(i.institution_id, i);
}

absl::StatusOr<engine::Institution> SnapshotView::Institution(std::string_view institution_id) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (auto it = institutions_.find(institution_id); it != institutions_.end()) {
      return it->second;
    }
  }
  absl::StatusOr<std::optional<engine::Institution>> found =
      store_ != nullptr ? store_->GetInstitution(version_, institution_id)
                        : absl::StatusOr<std::optional<engine::Institution>>(std::nullopt);
  if (!found.ok()) return found.status();
  if (!found->has_value()) {
    // Not cached: an unknown id costs one HGET per call, and a flood of
    // made-up ids cannot grow this map.
    return engine::Refusal(absl::StatusCode::kPermissionDenied, reason::kInstitutionUnknown, "",
                           Cat("institution ", institution_id,
                               " is not in the institution registry of snapshot ", version_));
  }
  std::lock_guard<std::mutex> lock(mutex_);
  institutions_.emplace(std::string(institution_id), **found);
  return **found;
}

SnapshotWatcher::SnapshotWatcher(cache::SnapshotStore& store, int refresh_ms,
                                 std::function<void(bool)> on_health)
    : store_(store),
      refresh_ms_(refresh_ms),
      on_health_(std::move(on_health)),
      // Failures show as health; the last view stays in use.
      poller_(std::chrono::milliseconds(refresh_ms_), [this] { (void)RefreshNow(); }) {}

SnapshotWatcher::~SnapshotWatcher() { Stop(); }

absl::Status SnapshotWatcher::RefreshNow() {
  absl::StatusOr<std::optional<std::string>> version = store_.CurrentVersion();
  redis_answering_.store(version.ok(), std::memory_order_relaxed);
  if (!version.ok()) {
    KeepLastVerdict();
    return version.status();
  }
  if (!version->has_value()) {
    SetHealth(false);
    return engine::Refusal(absl::StatusCode::kUnavailable, reason::kSnapshotNotLoaded, "",
                           "no enrollment snapshot is current (load one: medsettle-snapshot)");
  }
  absl::StatusOr<int64_t> revision = store_.RegistryRevision(**version);
  if (!revision.ok()) {
    KeepLastVerdict();
    return revision.status();
  }
  std::string flipped_from;
  bool flipped = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (current_ == nullptr || current_->version() != **version ||
        current_->registry_revision() != *revision) {
      flipped = current_ == nullptr || current_->version() != **version;
      if (current_ != nullptr) flipped_from = current_->version();
      current_ = std::make_shared<SnapshotView>(store_, **version, *revision);
    }
  }
  // Its commit time, for the snapshot's age: read at a flip, and again
  // after a flip whose read failed.
  if (flipped || committed_at_unix_.load(std::memory_order_relaxed) == 0) {
    int64_t committed_at = 0;
    if (absl::StatusOr<cache::SnapshotStatus> status = store_.Status(); status.ok()) {
      for (const cache::SnapshotVersionInfo& v : status->versions) {
        if (v.version == **version) committed_at = v.committed_at_unix;
      }
    }
    committed_at_unix_.store(committed_at, std::memory_order_relaxed);
  }
  if (flipped && on_flip_) on_flip_(flipped_from, **version);
  SetHealth(true);
  return absl::OkStatus();
}

void SnapshotWatcher::Start() { poller_.Start(); }

void SnapshotWatcher::Stop() { poller_.Stop(); }

absl::StatusOr<std::shared_ptr<SnapshotView>> SnapshotWatcher::Current() const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (current_ == nullptr) {
    return engine::Refusal(absl::StatusCode::kUnavailable, reason::kSnapshotNotLoaded, "",
                           "no enrollment snapshot is current yet");
  }
  return current_;
}

void SnapshotWatcher::KeepLastVerdict() {
  bool known = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    known = current_ != nullptr;
  }
  // Serving on the last view; without one (a start while Redis is down),
  // not serving, said once.
  SetHealth(known);
}

void SnapshotWatcher::SetHealth(bool serving) {
  const int now = serving ? 1 : 0;
  if (health_.exchange(now) != now && on_health_) on_health_(serving);
}

}  // namespace medsettle::gateway
