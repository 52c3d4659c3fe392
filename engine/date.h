// Calendar dates as days since 1970-01-01 (proleptic Gregorian), and the
// date arithmetic the coverage rules need. Pure: no clock is read here.
#ifndef MEDSETTLE_ENGINE_DATE_H_
#define MEDSETTLE_ENGINE_DATE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace medsettle::engine {

class Date {
 public:
  // An unset date; valid() is false.
  constexpr Date() = default;
  static Date FromYmd(int year, int month, int day);  // REQUIRES: a real date
  static constexpr Date FromDays(int32_t days) { return Date(days); }
  // Parses strict "YYYY-MM-DD" (years 1900..2199); nullopt otherwise.
  static std::optional<Date> Parse(std::string_view text);

  constexpr bool valid() const { return days_ != kUnset; }
  constexpr int32_t days() const { return days_; }
  int year() const;
  int month() const;
  int day() const;
  std::string ToString() const;  // "YYYY-MM-DD"; "" when unset

  Date AddDays(int n) const { return Date(days_ + n); }
  // Same day n months later; the month's last day where it is shorter
  // (2024-11-30 + 3 months = 2025-02-28).
  Date AddMonthsClamped(int n) const;
  // Day 1 of the month n months after this date's month.
  Date FirstOfMonthAfter(int n) const;

  friend constexpr auto operator<=>(Date, Date) = default;

 private:
  static constexpr int32_t kUnset = INT32_MIN;
  constexpr explicit Date(int32_t days) : days_(days) {}
  int32_t days_ = kUnset;
};

bool IsLeapYear(int year);
int DaysInMonth(int year, int month);

// True when the person born on `birth` is under 18 on `on`: the 18th
// birthday is the first adult day (a 29 February birthday turns on 1 March).
bool IsMinorOn(Date birth, Date on);

// Parses an RFC 3339 timestamp ("2025-03-01T10:00:00+08:00", "...Z",
// optional fractional seconds) into Unix seconds; nullopt when malformed.
std::optional<int64_t> ParseRfc3339(std::string_view text);

// Unix seconds as RFC 3339 at a fixed UTC offset, whole seconds:
// FormatRfc3339(1732327200, 480) = "2024-11-23T10:00:00+08:00"; offset 0
// gives "...Z". REQUIRES: the date falls in years 1900..2199.
std::string FormatRfc3339(int64_t unix_seconds, int utc_offset_minutes);

}  // namespace medsettle::engine

#endif  // MEDSETTLE_ENGINE_DATE_H_
