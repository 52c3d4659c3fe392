#include "logging/json_log.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <utility>

#include "engine/date.h"

namespace medsettle::logging {

namespace {

// Events a process can name are few (a fixed set in code); should a bug
// make them many, the bucket map must still not grow without bound.
constexpr size_t kMaxEvents = 1024;

void WriteToStderr(std::string_view line) {
  // One write(2): lines from different threads do not interleave (pipes
  // and files opened O_APPEND write up to PIPE_BUF/whole buffers at once).
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    const ssize_t n = ::write(2, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // nowhere to report a failing log
    p += n;
    left -= static_cast<size_t>(n);
  }
}

// Length of the valid UTF-8 sequence at text[i], or 0 when it is not one.
size_t Utf8Length(std::string_view text, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char c = byte(i);
  size_t n = 0;
  uint32_t min = 0;
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
    min = 0x80;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    min = 0x800;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    min = 0x10000;
  } else {
    return 0;
  }
  if (i + n > text.size()) return 0;
  uint32_t code = c & (0xff >> (n + 1));
  for (size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xc0) != 0x80) return 0;
    code = (code << 6) | (byte(i + k) & 0x3f);
  }
  if (code < min || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return 0;
  return n;
}

void AppendNumber(double value, std::string* out) {
  if (!std::isfinite(value)) {
    out->append("null");  // JSON has no NaN or infinity
    return;
  }
  char buffer[32];
  const int n = std::snprintf(buffer, sizeof buffer, "%.6g", value);
  out->append(buffer, static_cast<size_t>(n));
}

}  // namespace

std::string_view LevelName(Level level) {
  switch (level) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warn";
    case Level::kError: return "error";
  }
  return "?";
}

bool ParseLevel(std::string_view text, Level* level) {
  for (Level l : {Level::kDebug, Level::kInfo, Level::kWarn, Level::kError}) {
    if (text == LevelName(l)) {
      *level = l;
      return true;
    }
  }
  return false;
}

void AppendJsonString(std::string_view text, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  for (size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      switch (c) {
        case '"': out->append("\\\""); break;
        case '\\': out->append("\\\\"); break;
        case '\n': out->append("\\n"); break;
        case '\r': out->append("\\r"); break;
        case '\t': out->append("\\t"); break;
        default:
          if (c < 0x20 || c == 0x7f) {
            out->append("\\u00");
            out->push_back(kHex[c >> 4]);
            out->push_back(kHex[c & 0xf]);
          } else {
            out->push_back(static_cast<char>(c));
          }
      }
      ++i;
      continue;
    }
    const size_t n = Utf8Length(text, i);
    if (n == 0) {
      out->append("\\ufffd");  // not UTF-8: replaced, never passed through
      ++i;
      continue;
    }
    out->append(text.substr(i, n));
    i += n;
  }
  out->push_back('"');
}

JsonLog::JsonLog(LogOptions options) : options_(std::move(options)) {}

int64_t JsonLog::NowUs() const {
  if (options_.now_us) return options_.now_us();
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool JsonLog::Admit(std::string_view event, int64_t now_us, uint64_t* suppressed) {
  *suppressed = 0;
  if (options_.lines_per_second <= 0) return true;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = buckets_.find(event);
  if (it == buckets_.end()) {
    if (buckets_.size() >= kMaxEvents) {
      suppressed_total_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    it = buckets_.emplace(std::string(event), Bucket{options_.burst, now_us, 0}).first;
  }
  Bucket& b = it->second;
  if (now_us > b.refilled_us) {
    b.tokens = std::min(options_.burst, b.tokens + static_cast<double>(now_us - b.refilled_us) *
                                                       options_.lines_per_second / 1e6);
    b.refilled_us = now_us;
  }
  if (b.tokens < 1) {
    ++b.suppressed;
    suppressed_total_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  b.tokens -= 1;
  *suppressed = std::exchange(b.suppressed, 0);
  return true;
}

int64_t JsonLog::MonotonicUs() const {
  if (options_.monotonic_us) return options_.monotonic_us();
  if (options_.now_us) return options_.now_us();
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool JsonLog::Write(Level level, std::string_view event, std::initializer_list<Field> fields) {
  if (!Enabled(level)) return false;
  uint64_t suppressed = 0;
  if (!Admit(event, MonotonicUs(), &suppressed)) return false;
  const int64_t now_us = NowUs();

  std::string line;
  line.reserve(256);
  // 2026-12-04T15:40:00+08:00 with milliseconds spliced in before the zone.
  const int64_t seconds = now_us >= 0 ? now_us / 1'000'000 : (now_us - 999'999) / 1'000'000;
  std::string time = engine::FormatRfc3339(seconds, options_.utc_offset_minutes);
  char millis[8];
  std::snprintf(millis, sizeof millis, ".%03d", static_cast<int>((now_us - seconds * 1'000'000) / 1000));
  const size_t zone = time.find_first_of("+-Z", 19);
  time.insert(zone == std::string::npos ? time.size() : zone, millis);
  line.append("{\"time\":");
  AppendJsonString(time, &line);
  line.append(",\"level\":");
  AppendJsonString(LevelName(level), &line);
  line.append(",\"event\":");
  AppendJsonString(event, &line);
  for (const Field& f : fields) {
    line.push_back(',');
    AppendJsonString(f.key, &line);
    line.push_back(':');
    std::visit(
        [&line](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::string_view>) {
            AppendJsonString(v, &line);
          } else if constexpr (std::is_same_v<T, bool>) {
            line.append(v ? "true" : "false");
          } else if constexpr (std::is_same_v<T, int64_t>) {
            line.append(std::to_string(v));
          } else {
            AppendNumber(v, &line);
          }
        },
        f.value);
  }
  if (suppressed > 0) {
    line.append(",\"suppressed\":");
    line.append(std::to_string(suppressed));
  }
  line.append("}\n");
  if (options_.sink) {
    options_.sink(line);
  } else {
    WriteToStderr(line);
  }
  return true;
}

}  // namespace medsettle::logging
