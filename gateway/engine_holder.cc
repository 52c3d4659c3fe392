#include "gateway/engine_holder.h"

#include "tools/calc/calc_runner.h"

namespace medsettle::gateway {

absl::Status EngineHolder::Reload() {
  absl::StatusOr<engine::PolicySet> policies = calc::LoadPolicyDir(policy_dir_);
  if (!policies.ok()) return policies.status();
  absl::StatusOr<engine::Catalog> catalog = calc::LoadCatalogFile(catalog_file_);
  if (!catalog.ok()) return catalog.status();
  auto fresh = std::make_shared<const engine::Engine>(*std::move(policies), *std::move(catalog));
  std::lock_guard<std::mutex> lock(mutex_);
  engine_ = std::move(fresh);
  return absl::OkStatus();
}

std::shared_ptr<const engine::Engine> EngineHolder::Get() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return engine_;
}

}  // namespace medsettle::gateway
