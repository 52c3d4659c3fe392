// When the calls of an open-loop run are due: a rate (calls/s) over time,
// and the exact send time of the n-th call (the n-th unit of the rate's
// integral), so a slow client or server never shifts the schedule: the
// latency of a call is counted from the time it was due (no coordinated
// omission).
//
//   const  R calls/s throughout
//   step   start S, +Δ every D seconds, never beyond E (Δ may be negative:
//          never below E)
//   ramp   from A to B linearly over T seconds, then B
//
// Immutable after construction; safe to share between threads.
#ifndef MEDSETTLE_TOOLS_LOADGEN_SCHEDULE_H_
#define MEDSETTLE_TOOLS_LOADGEN_SCHEDULE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace medsettle::loadgen {

struct ScheduleSpec {
  enum class Kind { kConst, kStep, kRamp };
  Kind kind = Kind::kConst;
  double rate = 0;            // const: calls/s
  double step_start = 0;      // step: S
  double step_size = 0;       // step: Δ
  double step_duration_s = 0; // step: D
  double step_end = 0;        // step: E
  double ramp_from = 0;       // ramp: A
  double ramp_to = 0;         // ramp: B
  double ramp_duration_s = 0; // ramp: T
};

class Schedule {
 public:
  // INVALID_ARGUMENT naming the flag when a rate is not > 0 (a ramp may
  // start at 0), a duration is not > 0, or a step never moves towards E.
  static absl::StatusOr<Schedule> Create(const ScheduleSpec& spec);

  // Calls/s at `t_s` seconds from the start.
  double RateAt(double t_s) const;
  // Seconds from the start at which call `n` (0-based) is due: the time t
  // with ∫₀ᵗ rate = n. Non-decreasing in n; call 0 is due at 0.
  double SendTime(uint64_t n) const;
  // "const 1000/s", "step 100→1000 +100/5s", "ramp 100→2000 over 60s".
  std::string Describe() const;
  const ScheduleSpec& spec() const { return spec_; }

 private:
  explicit Schedule(const ScheduleSpec& spec) : spec_(spec) {}
  double StepRate(int64_t step) const;

  ScheduleSpec spec_;
};

}  // namespace medsettle::loadgen

#endif  // MEDSETTLE_TOOLS_LOADGEN_SCHEDULE_H_
