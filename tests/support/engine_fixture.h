// Test support: the engine loaded with the shipped policies and the demo
// catalog, and builders for the records a settlement needs, with defaults
// that make a covered, in-area, ordinary visit. Tests override what their
// rule is about and nothing else.
#ifndef MEDSETTLE_TESTS_SUPPORT_ENGINE_FIXTURE_H_
#define MEDSETTLE_TESTS_SUPPORT_ENGINE_FIXTURE_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/engine.h"

namespace medsettle::testing {

// Policies from engine/policies/ and engine/catalog/demo-catalog.csv of the
// source tree; loaded once per process. Aborts the test binary on a load
// error (the loader's own tests report those properly).
const engine::Engine& ShippedEngine();
std::string ReadSourceFile(std::string_view relative_path);

// An active adult enrollment for `year` in `region`, paid in the
// concentrated period, tier `tier`, no assistance.
engine::Enrollment Person(engine::RegionCode region, int year, int tier = 0);

// A hospital of `level` in `region` (no flags).
engine::Institution Hospital(engine::RegionCode region, int level);
engine::Institution Community(engine::RegionCode region);
engine::Institution Pharmacy(engine::RegionCode region);

// A bill line: `quantity` (decimal text) × `unit_price_cents` of `code`.
engine::BillLine Line(int line_no, std::string code, std::string_view quantity,
                      engine::Cents unit_price_cents);

// An outpatient-type claim on `date` ("YYYY-MM-DD") with `lines`.
engine::Claim Outpatient(engine::VisitType type, std::string_view date,
                         std::vector<engine::BillLine> lines);
// A stay (inpatient or delivery) from `admission` to `discharge`.
engine::Claim Stay(engine::VisitType type, std::string_view admission,
                   std::string_view discharge, std::vector<engine::BillLine> lines);

engine::Date D(std::string_view ymd);  // aborts on a bad literal

// Settles with the shipped engine; returns the status and fills `out`.
absl::Status SettleWith(const engine::Enrollment& e, const engine::Institution& i,
                        const engine::Accumulators& ytd, const engine::Claim& c,
                        engine::Settlement* out);

}  // namespace medsettle::testing

#endif  // MEDSETTLE_TESTS_SUPPORT_ENGINE_FIXTURE_H_
