#include "gateway/engine_holder.h"

#include <utility>

namespace medsettle::gateway {

absl::Status EngineHolder::Reload() {
  absl::StatusOr<engine_files::LoadedEngine> loaded =
      engine_files::LoadEngine(policy_dir_, catalog_file_);
  if (!loaded.ok()) return loaded.status();
  auto fresh = std::make_shared<const engine_files::LoadedEngine>(*std::move(loaded));
  std::lock_guard<std::mutex> lock(mutex_);
  loaded_ = std::move(fresh);
  return absl::OkStatus();
}

std::shared_ptr<const engine::Engine> EngineHolder::Get() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return loaded_ == nullptr ? nullptr : loaded_->engine;
}

std::shared_ptr<const engine_files::LoadedEngine> EngineHolder::GetLoaded() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return loaded_;
}

}  // namespace medsettle::gateway
