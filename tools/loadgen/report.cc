#include "tools/loadgen/report.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>
#include <thread>

#include "engine/text.h"
#include "google/protobuf/util/json_util.h"

namespace medsettle::loadgen {

using engine::Cat;

namespace {

std::string Fixed(double v, int decimals) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, v);
  return buffer;
}

std::string Rfc3339(int64_t unix_ms) {
  const std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buffer[40];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S", &tm);
  return Cat(buffer, ".", std::string(3 - std::to_string(unix_ms % 1000).size(), '0'),
             unix_ms % 1000, "Z");
}

std::string PadRight(std::string s, size_t width) {
  // Width in characters (µ is two bytes: count code points).
  size_t chars = 0;
  for (unsigned char c : s) chars += (c & 0xC0) != 0x80;
  if (chars < width) s.append(width - chars, ' ');
  return s;
}

}  // namespace

std::string CodeName(int code) {
  static constexpr const char* kNames[] = {
      "OK",           "CANCELLED",         "UNKNOWN",        "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED", "NOT_FOUND",    "ALREADY_EXISTS", "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
      "UNIMPLEMENTED", "INTERNAL",         "UNAVAILABLE",    "DATA_LOSS",
      "UNAUTHENTICATED"};
  if (code >= 0 && code <= 16) return kNames[code];
  return Cat("CODE_", code);
}

double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

v1::Machine ReadMachine() {
  v1::Machine m;
  m.set_nproc(std::max(1u, std::thread::hardware_concurrency()));
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) m.set_cpu_model(line.substr(line.find_first_not_of(' ', colon + 1)));
      break;
    }
  }
  utsname u{};
  if (uname(&u) == 0) m.set_kernel(Cat(u.sysname, " ", u.release, " ", u.machine));
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) == 0) m.set_hostname(host);
  return m;
}

v1::LoadReport BuildReport(const RunResult& result, const v1::RunOptions& options,
                           const v1::Machine& machine, const std::string& run_id,
                           const std::string& latency_origin, const v1::Floor* floor) {
  v1::LoadReport r;
  r.set_tool("medsettle-loadgen");
  r.set_run_id(run_id);
  r.set_start_time(Rfc3339(result.start_unix_ms));
  *r.mutable_options() = options;
  *r.mutable_machine() = machine;
  v1::Summary* s = r.mutable_summary();
  s->set_count(result.count);
  s->set_ok(result.ok);
  s->set_errors(result.count - result.ok);
  s->set_sent(result.sent);
  s->set_dropped(result.dropped);
  s->set_warmup_calls(result.warmup_calls);
  s->set_total_s(result.measured_s);
  s->set_rps(result.rps());
  s->set_fastest_us(result.latency.min_us());
  s->set_slowest_us(result.latency.max_us());
  s->set_average_us(result.latency.mean_us());
  s->set_latency_origin(latency_origin);
  for (double p : kPercentiles) {
    v1::Percentile* out = r.add_percentiles();
    out->set_percentile(p);
    out->set_latency_us(result.latency.Percentile(p));
  }
  for (int i = 0; i < Histogram::BucketCount(); ++i) {
    if (result.latency.CountAt(i) == 0) continue;
    v1::Bucket* b = r.add_histogram();
    b->set_from_us(Histogram::BucketLow(i));
    b->set_to_us(Histogram::BucketHigh(i));
    b->set_count(result.latency.CountAt(i));
  }
  for (const auto& [code, n] : result.codes) {
    v1::CodeCount* c = r.add_codes();
    c->set_code(CodeName(code));
    c->set_count(n);
  }
  std::vector<std::pair<std::pair<int, std::string>, uint64_t>> reasons(result.reasons.begin(),
                                                                        result.reasons.end());
  std::stable_sort(reasons.begin(), reasons.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  for (const auto& [key, n] : reasons) {
    v1::ReasonCount* c = r.add_reasons();
    c->set_code(CodeName(key.first));
    c->set_reason(key.second);
    c->set_count(n);
  }
  for (int k = 0; k < kCallKinds; ++k) {
    const KindStats& kind = result.kinds[static_cast<size_t>(k)];
    if (kind.count == 0) continue;
    v1::ScenarioCount* c = r.add_scenarios();
    c->set_name(std::string(CallKindName(static_cast<CallKind>(k))));
    c->set_count(kind.count);
    c->set_ok(kind.ok);
    c->set_p50_us(kind.latency.Percentile(50));
    c->set_p99_us(kind.latency.Percentile(99));
    c->set_lines(kind.lines);
  }
  v1::Replays* replays = r.mutable_replays();
  replays->set_sent(result.retries_sent);
  replays->set_replayed(result.retries_replayed);
  replays->set_ok(result.retries_ok);
  replays->set_errors(result.retries_errors);
  replays->set_p50_us(result.retry_latency.Percentile(50));
  replays->set_p99_us(result.retry_latency.Percentile(99));
  for (size_t i = 0; i < result.series.size(); ++i) {
    const SecondStats& second = result.series[i];
    v1::Second* out = r.add_series();
    out->set_second(static_cast<uint32_t>(i));
    out->set_sent(second.sent);
    out->set_done(second.done);
    out->set_errors(second.errors);
    out->set_dropped(second.dropped);
    out->set_p50_us(second.latency.Percentile(50));
    out->set_p99_us(second.latency.Percentile(99));
    out->set_warmup(second.warmup);
  }
  if (floor != nullptr) *r.mutable_floor() = *floor;
  return r;
}

std::string TextSummary(const v1::LoadReport& r) {
  const v1::Summary& s = r.summary();
  std::ostringstream out;
  out << "\nSummary:\n"
      << "  Target:\t" << r.options().target() << "  (" << r.options().method() << ", "
      << r.options().loop() << " loop, " << r.options().transport() << ")\n"
      << "  Count:\t" << FormatCount(s.count()) << "\n"
      << "  Total:\t" << Fixed(s.total_s(), 2) << " s\n"
      << "  Slowest:\t" << FormatLatency(s.slowest_us()) << "\n"
      << "  Fastest:\t" << FormatLatency(s.fastest_us()) << "\n"
      << "  Average:\t" << FormatLatency(s.average_us()) << "\n"
      << "  Requests/sec:\t" << Fixed(s.rps(), 2) << "\n"
      << "  Latency from:\t" << s.latency_origin() << "\n";
  if (s.warmup_calls() > 0) out << "  Warm-up calls:\t" << FormatCount(s.warmup_calls()) << " (not counted)\n";
  if (s.dropped() > 0 || r.options().loop() == "open") {
    out << "  Dropped by the client:\t" << FormatCount(s.dropped())
        << " (due while --max-in-flight " << r.options().max_in_flight()
        << " calls were in flight)\n";
  }
  // The histogram, in up to 12 equal-width display rows like ghz's.
  if (r.histogram_size() > 0) {
    out << "\nResponse time histogram:\n";
    const int64_t lo = r.histogram(0).from_us();
    const int64_t hi = r.histogram(r.histogram_size() - 1).to_us();
    constexpr int kRows = 11;
    std::vector<uint64_t> rows(kRows, 0);
    const double width = std::max(1.0, static_cast<double>(hi - lo + 1) / kRows);
    for (const v1::Bucket& b : r.histogram()) {
      const int row = std::min(kRows - 1, static_cast<int>(static_cast<double>(b.from_us() - lo) / width));
      rows[static_cast<size_t>(row)] += b.count();
    }
    const uint64_t most = *std::max_element(rows.begin(), rows.end());
    for (int i = 0; i < kRows; ++i) {
      const int64_t upper = lo + static_cast<int64_t>(width * (i + 1));
      const size_t bar = most == 0 ? 0 : static_cast<size_t>(40 * rows[static_cast<size_t>(i)] / most);
      std::string bars;
      for (size_t j = 0; j < bar; ++j) bars += "∎";
      out << "  " << PadRight(FormatLatency(upper), 10) << " [" << rows[static_cast<size_t>(i)] << "]\t|" << bars << "\n";
    }
  }
  out << "\nLatency distribution:\n";
  for (const v1::Percentile& p : r.percentiles()) {
    out << "  " << PadRight(Cat(p.percentile() == 99.9 ? std::string("99.9") : std::to_string(static_cast<int>(p.percentile())), " %"), 7)
        << " in " << FormatLatency(p.latency_us()) << "\n";
  }
  out << "\nStatus code distribution:\n";
  for (const v1::CodeCount& c : r.codes()) {
    out << "  [" << c.code() << "]\t" << FormatCount(c.count()) << " responses\n";
  }
  if (r.reasons_size() > 0) {
    out << "\nRefusal reasons (medsettle-reason):\n";
    for (const v1::ReasonCount& c : r.reasons()) {
      out << "  [" << c.code() << "] " << (c.reason().empty() ? "(no reason trailer)" : c.reason())
          << "\t" << FormatCount(c.count()) << "\n";
    }
  }
  if (r.scenarios_size() > 0) {
    out << "\nScenarios:\n";
    for (const v1::ScenarioCount& c : r.scenarios()) {
      out << "  " << PadRight(c.name(), 20) << FormatCount(c.count()) << " calls, "
          << FormatCount(c.ok()) << " OK, p50 " << FormatLatency(c.p50_us()) << ", p99 "
          << FormatLatency(c.p99_us());
      if (c.lines() > 0) out << ", " << FormatCount(c.lines()) << " bill lines";
      out << "\n";
    }
  }
  if (r.replays().sent() > 0) {
    const v1::Replays& p = r.replays();
    out << "\nReplays (--retry-ratio, not in the figures above):\n  "
        << FormatCount(p.sent()) << " re-sent, " << FormatCount(p.replayed())
        << " answered replayed, " << FormatCount(p.errors()) << " errors, p50 "
        << FormatLatency(p.p50_us()) << ", p99 " << FormatLatency(p.p99_us()) << "\n";
  }
  if (r.floor().pairs_size() > 0) {
    out << "\nFloor (echo at " << r.options().floor_target() << " vs " << r.options().method()
        << " at " << r.options().target() << "):\n";
    for (const v1::FloorPair& p : r.floor().pairs()) {
      out << "  pair " << p.pair() << ": echo " << Fixed(p.echo_rps(), 0) << "/s p50 "
          << FormatLatency(p.echo_p50_us()) << ", target " << Fixed(p.target_rps(), 0)
          << "/s p50 " << FormatLatency(p.target_p50_us()) << ", rps ratio "
          << Fixed(p.rps_ratio(), 3) << ", p50 ratio " << Fixed(p.p50_ratio(), 2) << "\n";
    }
    out << "  median rps ratio (target ÷ echo): " << Fixed(r.floor().median_rps_ratio(), 3)
        << "; median p50 ratio: " << Fixed(r.floor().median_p50_ratio(), 2) << "\n";
  }
  return out.str();
}

absl::Status WriteJson(const v1::LoadReport& report, const std::string& path) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  if (auto s = google::protobuf::util::MessageToJsonString(report, &json, options); !s.ok()) {
    return absl::InternalError(Cat("cannot print the report as JSON: ", std::string(s.message())));
  }
  return WriteTextFile(path, json);
}

absl::Status CheckWritable(std::string_view flag, const std::string& path) {
  std::ofstream probe(path, std::ios::app);
  if (!probe) return absl::InvalidArgumentError(Cat("cannot write ", flag, " ", path));
  return absl::OkStatus();
}

absl::Status WriteTextFile(const std::string& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) return absl::InvalidArgumentError(Cat("cannot write ", path));
  return absl::OkStatus();
}

absl::StatusOr<v1::LoadReport> ReadJson(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  if (in) text << in.rdbuf();
  if (!in) return absl::InvalidArgumentError(Cat("cannot read ", path));
  v1::LoadReport report;
  google::protobuf::util::JsonParseOptions options;
  if (auto s = google::protobuf::util::JsonStringToMessage(text.str(), &report, options); !s.ok()) {
    return absl::InvalidArgumentError(
        Cat(path, " is not a medsettle-loadgen JSON report: ", std::string(s.message())));
  }
  return report;
}

std::string CompareReports(const v1::LoadReport& a, const v1::LoadReport& b,
                           const std::string& a_name, const std::string& b_name) {
  auto pct = [](const v1::LoadReport& r, double p) -> int64_t {
    for (const v1::Percentile& x : r.percentiles()) {
      if (x.percentile() == p) return x.latency_us();
    }
    return 0;
  };
  auto ratio = [](double x, double y) { return x > 0 ? Fixed(y / x, 3) : std::string("-"); };
  std::ostringstream out;
  out << "A: " << a_name << "  (" << a.options().method() << " " << a.options().target() << ", "
      << a.start_time() << ")\n"
      << "B: " << b_name << "  (" << b.options().method() << " " << b.options().target() << ", "
      << b.start_time() << ")\n\n";
  out << PadRight("", 16) << PadRight("A", 16) << PadRight("B", 16) << "B ÷ A\n";
  auto row = [&](const std::string& name, const std::string& x, const std::string& y,
                 const std::string& r) {
    out << PadRight(name, 16) << PadRight(x, 16) << PadRight(y, 16) << r << "\n";
  };
  row("calls", FormatCount(a.summary().count()), FormatCount(b.summary().count()),
      ratio(static_cast<double>(a.summary().count()), static_cast<double>(b.summary().count())));
  row("throughput", Cat(Fixed(a.summary().rps(), 1), "/s"), Cat(Fixed(b.summary().rps(), 1), "/s"),
      ratio(a.summary().rps(), b.summary().rps()));
  for (double p : {50.0, 90.0, 99.0}) {
    const int64_t x = pct(a, p);
    const int64_t y = pct(b, p);
    row(Cat("p", static_cast<int>(p)), FormatLatency(x), FormatLatency(y),
        ratio(static_cast<double>(x), static_cast<double>(y)));
  }
  auto error_rate = [](const v1::LoadReport& r) {
    return r.summary().count() == 0 ? 0.0
                                    : 100.0 * static_cast<double>(r.summary().errors()) /
                                          static_cast<double>(r.summary().count());
  };
  row("errors", Cat(FormatCount(a.summary().errors()), " (", Fixed(error_rate(a), 2), "%)"),
      Cat(FormatCount(b.summary().errors()), " (", Fixed(error_rate(b), 2), "%)"),
      ratio(static_cast<double>(a.summary().errors()), static_cast<double>(b.summary().errors())));
  row("dropped", FormatCount(a.summary().dropped()), FormatCount(b.summary().dropped()),
      ratio(static_cast<double>(a.summary().dropped()), static_cast<double>(b.summary().dropped())));
  return out.str();
}

}  // namespace medsettle::loadgen
