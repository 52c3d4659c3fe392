// Structured logs: one JSON object per line, for the events an operator
// acts on — refusals and failures of calls, and state changes (snapshot
// flips, Redis down and up, a shipping backlog). journald, Loki or `jq`
// read them as they are.
//
//   {"time":"2026-12-04T15:40:00.123+08:00","level":"warn","event":"call_failed",
//    "method":"Settle","request_id":"R-1","institution":"H3308000002",
//    "status":"UNAVAILABLE","reason":"REDIS_UNAVAILABLE","duration_ms":3.2}
//
// What callers must never log: an ID number, a name, anything a caller sent
// that identifies a person (the person key is a pseudonym, but logs need it
// neither). Strings are escaped as JSON requires (quotes, backslashes,
// control characters) and invalid UTF-8 is replaced, so what a caller sends
// cannot forge a field or break a line.
//
// A flood cannot fill a disk: each event name has its own token bucket
// (lines_per_second, burst). A line over the limit is counted, not
// written; the event's next written line carries "suppressed": N, and
// suppressed_total() feeds the metric medsettle_log_lines_suppressed_total.
// At the defaults one event writes at most ~20 lines/s (a refusal line is
// ~250 bytes: about 18 MB an hour per event), whatever the call rate.
//
// Thread safety: Write may be called from any thread. Each line is handed
// to the sink whole; on stderr it goes out in one write(2) unless the pipe
// takes it in parts, which happens only to lines over PIPE_BUF (4 KiB) —
// longer than any line the gateway writes.
#ifndef MEDSETTLE_LOGGING_JSON_LOG_H_
#define MEDSETTLE_LOGGING_JSON_LOG_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <variant>

namespace medsettle::logging {

enum class Level : uint8_t { kDebug, kInfo, kWarn, kError };
std::string_view LevelName(Level level);  // "debug", "info", "warn", "error"
// "debug" … "error" → the level; false when unknown.
bool ParseLevel(std::string_view text, Level* level);

// One field of a line: a string, an integer, a real or a boolean.
struct Field {
  using Value = std::variant<std::string_view, int64_t, double, bool>;
  std::string_view key;  // REQUIRES: a literal of [a-z_]; not escaped
  Value value;

  Field(std::string_view k, std::string_view v) : key(k), value(v) {}
  Field(std::string_view k, const std::string& v) : key(k), value(std::string_view(v)) {}
  Field(std::string_view k, const char* v) : key(k), value(std::string_view(v)) {}
  Field(std::string_view k, int64_t v) : key(k), value(v) {}
  Field(std::string_view k, int v) : key(k), value(int64_t{v}) {}
  Field(std::string_view k, double v) : key(k), value(v) {}
  Field(std::string_view k, bool v) : key(k), value(v) {}
};

// Appends `text` to `*out` as a JSON string literal (with the quotes).
void AppendJsonString(std::string_view text, std::string* out);

struct LogOptions {
  Level min_level = Level::kInfo;
  // Per event name: refill rate and bucket size. 0 lines_per_second =
  // no limit (tests).
  double lines_per_second = 20;
  double burst = 100;
  int utc_offset_minutes = 480;  // the "time" field's zone (the bureau's)
  // Where lines go; default: file descriptor 2 (stderr). Called with one
  // complete line, newline included, under no lock of the logger's.
  std::function<void(std::string_view line)> sink;
  // Unix microseconds now, for the "time" field; default the system clock.
  std::function<int64_t()> now_us;
  // Microseconds of a clock that never steps back, for the rate limit (a
  // wall-clock step back would otherwise silence an event for as long);
  // default steady_clock, or now_us when only that is injected (tests).
  std::function<int64_t()> monotonic_us;
};

class JsonLog {
 public:
  explicit JsonLog(LogOptions options = {});
  JsonLog(const JsonLog&) = delete;
  JsonLog& operator=(const JsonLog&) = delete;

  // Writes one line unless `level` is below min_level or `event` is over
  // its rate. Returns whether it was written.
  bool Write(Level level, std::string_view event, std::initializer_list<Field> fields);

  bool Enabled(Level level) const { return level >= options_.min_level; }
  uint64_t suppressed_total() const { return suppressed_total_.load(std::memory_order_relaxed); }

 private:
  struct Bucket {
    double tokens = 0;
    int64_t refilled_us = 0;
    uint64_t suppressed = 0;  // since the event's last written line
  };
  // Takes a token for `event`; on success *suppressed is what was dropped
  // since its last line.
  bool Admit(std::string_view event, int64_t now_us, uint64_t* suppressed);
  int64_t NowUs() const;
  int64_t MonotonicUs() const;

  const LogOptions options_;
  std::mutex mutex_;
  std::map<std::string, Bucket, std::less<>> buckets_;  // guarded by mutex_
  std::atomic<uint64_t> suppressed_total_{0};
};

}  // namespace medsettle::logging

#endif  // MEDSETTLE_LOGGING_JSON_LOG_H_
