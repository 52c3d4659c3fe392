// Test support: gateway::SnapshotSource without Redis. The current view is
// one the test sets — a snapshot version and a fixed institution registry
// (gateway::SnapshotView's in-memory form) — or none (SNAPSHOT_NOT_LOADED).
// Person records live in the store (tests/support/fake_settlement_store.h),
// as they do in Redis. Thread-safe.
#ifndef MEDSETTLE_TESTS_SUPPORT_FAKE_SNAPSHOT_SOURCE_H_
#define MEDSETTLE_TESTS_SUPPORT_FAKE_SNAPSHOT_SOURCE_H_

#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/status.h"
#include "engine/types.h"
#include "gateway/snapshot_watcher.h"

namespace medsettle::testing {

class FakeSnapshotSource final : public gateway::SnapshotSource {
 public:
  FakeSnapshotSource() = default;
  FakeSnapshotSource(std::string version, const std::vector<engine::Institution>& institutions) {
    Set(std::move(version), institutions);
  }

  // Makes `version`, with `institutions` as its whole registry, current (a
  // flip: requests that took the previous view keep it).
  void Set(std::string version, const std::vector<engine::Institution>& institutions) {
    auto view = std::make_shared<gateway::SnapshotView>(std::move(version), institutions);
    std::lock_guard<std::mutex> lock(mutex_);
    current_ = std::move(view);
  }
  // No version is current.
  void Clear() {
    std::lock_guard<std::mutex> lock(mutex_);
    current_ = nullptr;
  }

  absl::StatusOr<std::shared_ptr<gateway::SnapshotView>> Current() const override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (current_ == nullptr) {
      return engine::Refusal(absl::StatusCode::kUnavailable, gateway::reason::kSnapshotNotLoaded,
                             "", "no enrollment snapshot is current (test)");
    }
    return current_;
  }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<gateway::SnapshotView> current_;  // guarded by mutex_
};

}  // namespace medsettle::testing

#endif  // MEDSETTLE_TESTS_SUPPORT_FAKE_SNAPSHOT_SOURCE_H_
