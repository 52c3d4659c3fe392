// The engine the gateway settles with: policies from a folder and the
// catalog from a file, reloadable while serving (SIGHUP). A reload builds a
// complete new Engine and swaps it in; calls already running keep the one
// they started with (they hold a shared_ptr), so no call mixes two catalogs.
#ifndef MEDSETTLE_GATEWAY_ENGINE_HOLDER_H_
#define MEDSETTLE_GATEWAY_ENGINE_HOLDER_H_

#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "engine/engine.h"

namespace medsettle::gateway {

class EngineHolder {
 public:
  EngineHolder(std::string policy_dir, std::string catalog_file)
      : policy_dir_(std::move(policy_dir)), catalog_file_(std::move(catalog_file)) {}

  // Loads both files into a new Engine and makes it current. On error the
  // current engine stays (POLICY_FILE_INVALID / CATALOG_FILE_INVALID with
  // file, key and line).
  absl::Status Reload();

  // The current engine; nullptr before the first successful Reload.
  std::shared_ptr<const engine::Engine> Get() const;

 private:
  const std::string policy_dir_;
  const std::string catalog_file_;
  mutable std::mutex mutex_;
  std::shared_ptr<const engine::Engine> engine_;  // guarded by mutex_
};

}  // namespace medsettle::gateway

#endif  // MEDSETTLE_GATEWAY_ENGINE_HOLDER_H_
