#include "engine/policy.h"

#include <algorithm>

namespace medsettle::engine {
namespace {
inline bool TriHolds(Tri t, bool value) {
  return t == Tri::kAny || (t == Tri::kYes) == value;
}
inline bool MaskHolds(uint32_t mask, uint32_t bit) { return mask == 0 || (mask & bit) != 0; }
}  // namespace

bool Matcher::Matches(const Facts& f) const {
  if (!MaskHolds(class_mask, f.class_bit) || !MaskHolds(level_mask, f.level_bit) ||
      !MaskHolds(kind_mask, f.kind_bit) || !MaskHolds(tier_mask, f.tier_bit) ||
      !MaskHolds(category_mask, f.category_bit) ||
      !MaskHolds(assistance_mask, f.assistance_bit) ||
      !MaskHolds(specialty_mask, f.specialty_bit) || !MaskHolds(visit_mask, f.visit_bit)) {
    return false;
  }
  if (!TriHolds(zero_markup, f.zero_markup) || !TriHolds(tcm_institution, f.tcm_institution) ||
      !TriHolds(base_level, f.base_level) ||
      !TriHolds(children_or_maternal, f.children_or_maternal) ||
      !TriHolds(in_area, f.in_area) || !TriHolds(minor, f.minor) ||
      !TriHolds(pre_existing, f.pre_existing) || !TriHolds(continuous, f.continuous)) {
    return false;
  }
  return conditions.empty() ||
         std::find(conditions.begin(), conditions.end(), f.condition) != conditions.end();
}

int32_t Policy::ClassIndex(std::string_view name) const {
  // Several entries may share a name (alternative matchers for one class);
  // a class's index is its position among the distinct names, in order of
  // first appearance.
  int32_t distinct = 0;
  for (size_t i = 0; i < classes.size(); ++i) {
    bool first = std::none_of(classes.begin(), classes.begin() + static_cast<std::ptrdiff_t>(i),
                              [&](const InstitutionClass& c) { return c.name == classes[i].name; });
    if (classes[i].name == name) return distinct;  // necessarily its first appearance
    if (first) ++distinct;
  }
  return -1;
}

int32_t Policy::SchemeIndex(std::string_view name) const {
  for (size_t i = 0; i < schemes.size(); ++i) {
    if (schemes[i].name == name) return static_cast<int32_t>(i);
  }
  return -1;
}

bool Policy::InPoolingArea(RegionCode code) const {
  return std::any_of(pooling_area.begin(), pooling_area.end(),
                     [code](RegionCode area) { return RegionCovers(area, code); });
}

bool Policy::Insures(RegionCode code) const {
  return std::any_of(regions.begin(), regions.end(),
                     [code](RegionCode area) { return RegionCovers(area, code); });
}

}  // namespace medsettle::engine
