#include "tools/loadgen/schedule.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "engine/text.h"

namespace medsettle::loadgen {

using engine::Cat;

namespace {
std::string Num(double v) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%g", v);
  return buffer;
}
}  // namespace

absl::StatusOr<Schedule> Schedule::Create(const ScheduleSpec& spec) {
  switch (spec.kind) {
    case ScheduleSpec::Kind::kConst:
      if (!(spec.rate > 0)) return absl::InvalidArgumentError("--rate must be > 0");
      break;
    case ScheduleSpec::Kind::kStep:
      if (!(spec.step_start > 0)) return absl::InvalidArgumentError("--step-start must be > 0");
      if (!(spec.step_end > 0)) return absl::InvalidArgumentError("--step-end must be > 0");
      if (!(spec.step_duration_s > 0)) {
        return absl::InvalidArgumentError("--step-duration must be > 0");
      }
      if (spec.step_size == 0 && spec.step_end != spec.step_start) {
        return absl::InvalidArgumentError("--step-size must not be 0 when --step-end differs");
      }
      if ((spec.step_size > 0 && spec.step_end < spec.step_start) ||
          (spec.step_size < 0 && spec.step_end > spec.step_start)) {
        return absl::InvalidArgumentError("--step-size moves away from --step-end");
      }
      break;
    case ScheduleSpec::Kind::kRamp:
      if (!(spec.ramp_from >= 0)) return absl::InvalidArgumentError("--ramp-from must be >= 0");
      if (!(spec.ramp_to > 0)) return absl::InvalidArgumentError("--ramp-to must be > 0");
      if (!(spec.ramp_duration_s > 0)) {
        return absl::InvalidArgumentError("--ramp-duration must be > 0");
      }
      break;
  }
  return Schedule(spec);
}

double Schedule::StepRate(int64_t step) const {
  const double r = spec_.step_start + spec_.step_size * static_cast<double>(step);
  return spec_.step_size >= 0 ? std::min(r, spec_.step_end) : std::max(r, spec_.step_end);
}

double Schedule::RateAt(double t_s) const {
  t_s = std::max(0.0, t_s);
  switch (spec_.kind) {
    case ScheduleSpec::Kind::kConst:
      return spec_.rate;
    case ScheduleSpec::Kind::kStep:
      return StepRate(static_cast<int64_t>(std::floor(t_s / spec_.step_duration_s)));
    case ScheduleSpec::Kind::kRamp:
      if (t_s >= spec_.ramp_duration_s) return spec_.ramp_to;
      return spec_.ramp_from + (spec_.ramp_to - spec_.ramp_from) * t_s / spec_.ramp_duration_s;
  }
  return 0;
}

double Schedule::SendTime(uint64_t n) const {
  const double calls = static_cast<double>(n);
  switch (spec_.kind) {
    case ScheduleSpec::Kind::kConst:
      return calls / spec_.rate;
    case ScheduleSpec::Kind::kStep: {
      // Walk the steps while they change; once the rate is E, constant.
      double before = 0;  // calls due before step k
      for (int64_t k = 0;; ++k) {
        const double rate = StepRate(k);
        const double in_step = rate * spec_.step_duration_s;
        const bool last = rate == spec_.step_end;
        if (last || calls < before + in_step) {
          return static_cast<double>(k) * spec_.step_duration_s + (calls - before) / rate;
        }
        before += in_step;
      }
    }
    case ScheduleSpec::Kind::kRamp: {
      const double a = spec_.ramp_from;
      const double b = spec_.ramp_to;
      const double t_end = spec_.ramp_duration_s;
      const double in_ramp = (a + b) / 2 * t_end;
      if (calls >= in_ramp) return t_end + (calls - in_ramp) / b;
      if (a == b) return calls / a;
      // a·t + (b−a)/(2T)·t² = n
      const double q = (b - a) / (2 * t_end);
      const double disc = std::max(0.0, a * a + 4 * q * calls);
      return (-a + std::sqrt(disc)) / (2 * q);
    }
  }
  return 0;
}

std::string Schedule::Describe() const {
  switch (spec_.kind) {
    case ScheduleSpec::Kind::kConst:
      return Cat("const ", Num(spec_.rate), "/s");
    case ScheduleSpec::Kind::kStep:
      return Cat("step ", Num(spec_.step_start), "→", Num(spec_.step_end), " ",
                 spec_.step_size >= 0 ? "+" : "", Num(spec_.step_size), "/",
                 Num(spec_.step_duration_s), "s");
    case ScheduleSpec::Kind::kRamp:
      return Cat("ramp ", Num(spec_.ramp_from), "→", Num(spec_.ramp_to), " over ",
                 Num(spec_.ramp_duration_s), "s");
  }
  return "";
}

}  // namespace medsettle::loadgen
