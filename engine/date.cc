#include "engine/date.h"

#include <cassert>
#include <cstdio>

namespace medsettle::engine {
namespace {

// Days from civil, after H. Hinnant's public-domain algorithms.
int32_t DaysFromCivil(int y, int m, int d) {
  y -= m <= 2;
  const int era = (y >= 0 ? y : y - 399) / 400;
  const int yoe = y - era * 400;
  const int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

struct Ymd {
  int y, m, d;
};

Ymd CivilFromDays(int32_t z) {
  z += 719468;
  const int era = (z >= 0 ? z : z - 146096) / 146097;
  const int doe = z - era * 146097;
  const int yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int y = yoe + era * 400;
  const int doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int mp = (5 * doy + 2) / 153;
  const int d = doy - (153 * mp + 2) / 5 + 1;
  const int m = mp + (mp < 10 ? 3 : -9);
  return {y + (m <= 2), m, d};
}

bool ParseDigits(std::string_view s, int* out) {
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return !s.empty();
}

}  // namespace

bool IsLeapYear(int year) { return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0; }

int DaysInMonth(int year, int month) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month == 2 && IsLeapYear(year) ? 29 : kDays[month - 1];
}

Date Date::FromYmd(int year, int month, int day) {
  assert(month >= 1 && month <= 12 && day >= 1 && day <= DaysInMonth(year, month));
  return Date(DaysFromCivil(year, month, day));
}

std::optional<Date> Date::Parse(std::string_view text) {
  if (text.size() != 10 || text[4] != '-' || text[7] != '-') return std::nullopt;
  int y, m, d;
  if (!ParseDigits(text.substr(0, 4), &y) || !ParseDigits(text.substr(5, 2), &m) ||
      !ParseDigits(text.substr(8, 2), &d)) {
    return std::nullopt;
  }
  if (y < 1900 || y > 2199 || m < 1 || m > 12 || d < 1 || d > DaysInMonth(y, m)) {
    return std::nullopt;
  }
  return FromYmd(y, m, d);
}

int Date::year() const { return CivilFromDays(days_).y; }
int Date::month() const { return CivilFromDays(days_).m; }
int Date::day() const { return CivilFromDays(days_).d; }

std::string Date::ToString() const {
  if (!valid()) return "";
  Ymd c = CivilFromDays(days_);
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d", c.y, c.m, c.d);
  return buf;
}

Date Date::AddMonthsClamped(int n) const {
  Ymd c = CivilFromDays(days_);
  int months = c.y * 12 + (c.m - 1) + n;
  int y = months / 12, m = months % 12 + 1;
  int d = c.d > DaysInMonth(y, m) ? DaysInMonth(y, m) : c.d;
  return FromYmd(y, m, d);
}

Date Date::FirstOfMonthAfter(int n) const {
  Ymd c = CivilFromDays(days_);
  int months = c.y * 12 + (c.m - 1) + n;
  return FromYmd(months / 12, months % 12 + 1, 1);
}

bool IsMinorOn(Date birth, Date on) {
  Ymd b = CivilFromDays(birth.days());
  Ymd o = CivilFromDays(on.days());
  int age = o.y - b.y;
  if (o.m < b.m || (o.m == b.m && o.d < b.d)) --age;
  return age < 18;
}

std::optional<int64_t> ParseRfc3339(std::string_view text) {
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)
  if (text.size() < 20) return std::nullopt;
  std::optional<Date> date = Date::Parse(text.substr(0, 10));
  if (!date || (text[10] != 'T' && text[10] != 't') || text[13] != ':' || text[16] != ':') {
    return std::nullopt;
  }
  int hh, mm, ss;
  if (!ParseDigits(text.substr(11, 2), &hh) || !ParseDigits(text.substr(14, 2), &mm) ||
      !ParseDigits(text.substr(17, 2), &ss) || hh > 23 || mm > 59 || ss > 60) {
    return std::nullopt;
  }
  size_t pos = 19;
  if (pos < text.size() && text[pos] == '.') {
    size_t start = ++pos;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') ++pos;
    if (pos == start) return std::nullopt;
  }
  if (pos >= text.size()) return std::nullopt;
  int64_t offset_seconds = 0;
  std::string_view zone = text.substr(pos);
  if (zone == "Z" || zone == "z") {
    offset_seconds = 0;
  } else if (zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && zone[3] == ':') {
    int oh, om;
    if (!ParseDigits(zone.substr(1, 2), &oh) || !ParseDigits(zone.substr(4, 2), &om) ||
        oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset_seconds = (oh * 3600 + om * 60) * (zone[0] == '+' ? 1 : -1);
  } else {
    return std::nullopt;
  }
  return static_cast<int64_t>(date->days()) * 86400 + hh * 3600 + mm * 60 + ss - offset_seconds;
}

std::string FormatRfc3339(int64_t unix_seconds, int utc_offset_minutes) {
  const int64_t local = unix_seconds + int64_t{utc_offset_minutes} * 60;
  // Floor division: instants before 1970 belong to the previous day.
  int64_t days = local / 86400;
  int64_t second_of_day = local % 86400;
  if (second_of_day < 0) {
    second_of_day += 86400;
    --days;
  }
  const Date date = Date::FromDays(static_cast<int32_t>(days));
  char buffer[40];
  const int hh = static_cast<int>(second_of_day / 3600);
  const int mm = static_cast<int>(second_of_day / 60 % 60);
  const int ss = static_cast<int>(second_of_day % 60);
  int n = std::snprintf(buffer, sizeof buffer, "%sT%02d:%02d:%02d", date.ToString().c_str(), hh,
                        mm, ss);
  if (utc_offset_minutes == 0) {
    std::snprintf(buffer + n, sizeof buffer - static_cast<size_t>(n), "Z");
  } else {
    const int offset = utc_offset_minutes < 0 ? -utc_offset_minutes : utc_offset_minutes;
    std::snprintf(buffer + n, sizeof buffer - static_cast<size_t>(n), "%c%02d:%02d",
                  utc_offset_minutes < 0 ? '-' : '+', offset / 60, offset % 60);
  }
  return buffer;
}

}  // namespace medsettle::engine
