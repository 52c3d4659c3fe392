// Parses and validates policy files (YAML, engine/policies/*.yaml). Pure:
// the caller reads the file and passes its text. Every key is checked (an
// unknown key is an error, so a typo cannot silently drop a rule) and every
// figure parsed exactly; an error names the file and the key path, e.g.
// "quzhou-2024.yaml: schemes.inpatient.deductible.amounts_yuan.level_2:
// expected a yuan amount". The format is documented in docs/POLICIES.md.
#ifndef MEDSETTLE_ENGINE_POLICY_LOADER_H_
#define MEDSETTLE_ENGINE_POLICY_LOADER_H_

#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/policy.h"

namespace medsettle::engine {

// INVALID_ARGUMENT (reason POLICY_FILE_INVALID) on any error.
absl::StatusOr<Policy> ParsePolicy(std::string_view file_name,
                                   std::string_view yaml_text);

// The set of loaded policies, selected by insured region and date.
// Immutable once built; safe to share between threads.
class PolicySet {
 public:
  // Refuses a policy whose id repeats or whose regions and dates overlap
  // another's (INVALID_ARGUMENT, POLICY_FILE_INVALID).
  absl::Status Add(Policy policy);

  // The policy for a person insured in `region` on `date`; nullptr if none.
  const Policy* Select(RegionCode region, Date date) const;
  const Policy* FindById(std::string_view id) const;
  const std::vector<Policy>& policies() const { return policies_; }

 private:
  std::vector<Policy> policies_;
};

}  // namespace medsettle::engine

#endif  // MEDSETTLE_ENGINE_POLICY_LOADER_H_
