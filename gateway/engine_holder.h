// The engine the gateway settles with: policies from a folder and the
// catalog from a file (medsettle::engine_files), reloadable while serving
// (SIGHUP). A reload builds a complete new LoadedEngine — the engine and
// the bytes and SHA-256 of every file it came from — and swaps it in; calls
// already running keep the one they started with (they hold a shared_ptr),
// so no call mixes two catalogs, nor an engine with another's digests.
#ifndef MEDSETTLE_GATEWAY_ENGINE_HOLDER_H_
#define MEDSETTLE_GATEWAY_ENGINE_HOLDER_H_

#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "engine/engine.h"
#include "engine/files/loaded_engine.h"

namespace medsettle::gateway {

class EngineHolder {
 public:
  EngineHolder(std::string policy_dir, std::string catalog_file)
      : policy_dir_(std::move(policy_dir)), catalog_file_(std::move(catalog_file)) {}

  // Loads both files into a new engine and makes it current. On error the
  // current engine stays (POLICY_FILE_INVALID / CATALOG_FILE_INVALID with
  // file, key and line; NOT_FOUND when a file cannot be read).
  absl::Status Reload();

  // The current engine; nullptr before the first successful Reload.
  std::shared_ptr<const engine::Engine> Get() const;

  // The current engine with the files it was built from (policy id →
  // path, SHA-256, bytes; the catalog's). nullptr before the first
  // successful Reload. A call that records digests takes this once and
  // settles with its `engine`, so the digests are those of that engine.
  std::shared_ptr<const engine_files::LoadedEngine> GetLoaded() const;

 private:
  const std::string policy_dir_;
  const std::string catalog_file_;
  mutable std::mutex mutex_;
  std::shared_ptr<const engine_files::LoadedEngine> loaded_;  // guarded by mutex_
};

}  // namespace medsettle::gateway

#endif  // MEDSETTLE_GATEWAY_ENGINE_HOLDER_H_
