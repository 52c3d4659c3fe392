#include "tools/loadgen/html_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <sstream>
#include <vector>

#include "engine/text.h"
#include "tools/loadgen/runner.h"

namespace medsettle::loadgen {

using engine::Cat;

namespace {

constexpr std::string_view kStyle = R"(
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans CJK SC",sans-serif;margin:24px auto;max-width:1100px;color:#1d2330;background:#fafbfc}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d8dde6;padding-bottom:4px}
.sub{color:#5b6475;font-size:13px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin-top:16px}
.card{background:#fff;border:1px solid #d8dde6;border-radius:6px;padding:10px 14px;min-width:120px}
.card .v{font-size:22px;font-weight:600}.card .k{font-size:12px;color:#5b6475}
table{border-collapse:collapse;background:#fff;font-size:13px}td,th{border:1px solid #d8dde6;padding:4px 10px;text-align:left}
th{background:#eef1f5}td.n{text-align:right;font-variant-numeric:tabular-nums}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:16px}
svg{background:#fff;border:1px solid #d8dde6;border-radius:6px}
svg text{font-size:11px;fill:#39414f}.bad{color:#b3261e}
)";

std::string Fixed(double v, int decimals) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, v);
  return buffer;
}

std::string Num(double v) { return Fixed(v, 1); }

// An SVG line chart of `values` by second, y axis from 0 to the maximum.
std::string LineChart(const std::string& title, const std::vector<double>& values,
                      const std::vector<bool>& warmup,
                      const std::function<std::string(double)>& label, const char* color) {
  constexpr double kW = 520, kH = 220, kLeft = 70, kRight = 12, kTop = 26, kBottom = 30;
  std::ostringstream svg;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << kW << "\" height=\"" << kH
      << "\" viewBox=\"0 0 " << kW << " " << kH << "\" role=\"img\"><title>"
      << HtmlEscape(title) << "</title>";
  svg << "<text x=\"" << kLeft << "\" y=\"16\" style=\"font-weight:600;font-size:12px\">"
      << HtmlEscape(title) << "</text>";
  const double most = values.empty() ? 1 : std::max(1e-9, *std::max_element(values.begin(), values.end()));
  const double plot_w = kW - kLeft - kRight, plot_h = kH - kTop - kBottom;
  const size_t n = std::max<size_t>(values.size(), 2);
  auto x = [&](size_t i) { return kLeft + plot_w * static_cast<double>(i) / static_cast<double>(n - 1); };
  auto y = [&](double v) { return kTop + plot_h * (1 - v / most); };
  for (int g = 0; g <= 4; ++g) {
    const double v = most * g / 4;
    svg << "<line x1=\"" << kLeft << "\" x2=\"" << kW - kRight << "\" y1=\"" << Num(y(v))
        << "\" y2=\"" << Num(y(v)) << "\" stroke=\"#e3e7ee\"/>";
    svg << "<text x=\"" << kLeft - 6 << "\" y=\"" << Num(y(v) + 4)
        << "\" text-anchor=\"end\">" << HtmlEscape(label(v)) << "</text>";
  }
  for (size_t i = 0; i < warmup.size() && i < values.size(); ++i) {
    if (!warmup[i]) continue;
    svg << "<rect x=\"" << Num(x(i)) << "\" y=\"" << kTop << "\" width=\""
        << Num(plot_w / static_cast<double>(n - 1)) << "\" height=\"" << plot_h
        << "\" fill=\"#f3f0e6\"/>";
  }
  svg << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"2\" points=\"";
  for (size_t i = 0; i < values.size(); ++i) svg << Num(x(i)) << "," << Num(y(values[i])) << " ";
  svg << "\"/>";
  for (size_t i = 0; i < values.size(); i += std::max<size_t>(1, values.size() / 8)) {
    svg << "<text x=\"" << Num(x(i)) << "\" y=\"" << kH - 10 << "\" text-anchor=\"middle\">"
        << i << " s</text>";
  }
  svg << "</svg>";
  return svg.str();
}

// The latency histogram on a logarithmic latency axis: the report's
// buckets gathered into up to kBins bins of equal log width.
std::string HistogramChart(const v1::LoadReport& r) {
  constexpr double kW = 1060, kH = 260, kLeft = 60, kRight = 12, kTop = 26, kBottom = 34;
  constexpr int kBins = 60;
  std::ostringstream svg;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << kW << "\" height=\"" << kH
      << "\" viewBox=\"0 0 " << kW << " " << kH << "\" role=\"img\" id=\"histogram\">"
      << "<title>Latency histogram</title>"
      << "<text x=\"" << kLeft << "\" y=\"16\" style=\"font-weight:600;font-size:12px\">"
      << "Latency histogram (calls per latency bin, logarithmic latency axis)</text>";
  if (r.histogram_size() == 0) {
    svg << "<text x=\"" << kLeft << "\" y=\"120\">no measured calls</text></svg>";
    return svg.str();
  }
  const double lo = std::log(static_cast<double>(std::max<int64_t>(1, r.histogram(0).from_us())));
  const double hi = std::log(static_cast<double>(std::max<int64_t>(2, r.histogram(r.histogram_size() - 1).to_us() + 1)));
  const double span = std::max(1e-9, hi - lo);
  std::vector<uint64_t> bins(kBins, 0);
  for (const v1::Bucket& b : r.histogram()) {
    const double v = std::log(static_cast<double>(std::max<int64_t>(1, b.from_us())));
    const int bin = std::clamp(static_cast<int>((v - lo) / span * kBins), 0, kBins - 1);
    bins[static_cast<size_t>(bin)] += b.count();
  }
  const uint64_t most = std::max<uint64_t>(1, *std::max_element(bins.begin(), bins.end()));
  const double plot_w = kW - kLeft - kRight, plot_h = kH - kTop - kBottom;
  const double bar_w = plot_w / kBins;
  for (int g = 0; g <= 4; ++g) {
    const double yy = kTop + plot_h * (1 - g / 4.0);
    svg << "<line x1=\"" << kLeft << "\" x2=\"" << kW - kRight << "\" y1=\"" << Num(yy)
        << "\" y2=\"" << Num(yy) << "\" stroke=\"#e3e7ee\"/><text x=\"" << kLeft - 6 << "\" y=\""
        << Num(yy + 4) << "\" text-anchor=\"end\">"
        << FormatCount(static_cast<uint64_t>(static_cast<double>(most) * g / 4)) << "</text>";
  }
  for (int i = 0; i < kBins; ++i) {
    const double h = plot_h * static_cast<double>(bins[static_cast<size_t>(i)]) / static_cast<double>(most);
    const int64_t from = static_cast<int64_t>(std::exp(lo + span * i / kBins));
    const int64_t to = static_cast<int64_t>(std::exp(lo + span * (i + 1) / kBins));
    svg << "<rect x=\"" << Num(kLeft + bar_w * i + 1) << "\" y=\"" << Num(kTop + plot_h - h)
        << "\" width=\"" << Num(std::max(1.0, bar_w - 2)) << "\" height=\"" << Num(h)
        << "\" fill=\"#3b6fd8\"><title>" << HtmlEscape(FormatLatency(from)) << " – "
        << HtmlEscape(FormatLatency(to)) << ": " << bins[static_cast<size_t>(i)]
        << "</title></rect>";
    if (i % 6 == 0) {
      svg << "<text x=\"" << Num(kLeft + bar_w * i) << "\" y=\"" << kH - 12 << "\">"
          << HtmlEscape(FormatLatency(from)) << "</text>";
    }
  }
  // The p50 and p99 marks.
  for (const v1::Percentile& p : r.percentiles()) {
    if (p.percentile() != 50 && p.percentile() != 99) continue;
    const double v = std::log(static_cast<double>(std::max<int64_t>(1, p.latency_us())));
    const double xx = kLeft + plot_w * std::clamp((v - lo) / span, 0.0, 1.0);
    svg << "<line x1=\"" << Num(xx) << "\" x2=\"" << Num(xx) << "\" y1=\"" << kTop << "\" y2=\""
        << kTop + plot_h << "\" stroke=\"#d8572a\" stroke-dasharray=\"4 3\"/><text x=\""
        << Num(xx + 3) << "\" y=\"" << kTop + 10 << "\" style=\"fill:#d8572a\">p"
        << static_cast<int>(p.percentile()) << "</text>";
  }
  svg << "</svg>";
  return svg.str();
}

std::string Card(const std::string& id, const std::string& key, const std::string& value,
                 bool bad = false) {
  return Cat("<div class=\"card\"><div class=\"v", bad ? " bad" : "", "\" id=\"", id, "\">",
             HtmlEscape(value), "</div><div class=\"k\">", HtmlEscape(key), "</div></div>");
}

std::string Row(std::initializer_list<std::string> cells, bool numeric_tail = true) {
  std::string out = "<tr>";
  size_t i = 0;
  for (const std::string& c : cells) {
    out += Cat(i > 0 && numeric_tail ? "<td class=\"n\">" : "<td>", HtmlEscape(c), "</td>");
    ++i;
  }
  return out + "</tr>";
}

std::string PercentileName(double p) {
  return p == 99.9 ? std::string("p99.9") : Cat("p", static_cast<int>(p));
}

}  // namespace

std::string HtmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

std::string RenderHtml(const v1::LoadReport& r) {
  const v1::Summary& s = r.summary();
  int64_t p50 = 0, p99 = 0;
  for (const v1::Percentile& p : r.percentiles()) {
    if (p.percentile() == 50) p50 = p.latency_us();
    if (p.percentile() == 99) p99 = p.latency_us();
  }
  std::ostringstream h;
  h << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
    << "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
    << "<title>medsettle-loadgen: " << HtmlEscape(r.options().method()) << " "
    << HtmlEscape(r.options().target()) << " " << HtmlEscape(r.start_time()) << "</title><style>"
    << kStyle << "</style></head><body>\n";
  h << "<h1>Load test: " << HtmlEscape(r.options().method()) << " on "
    << HtmlEscape(r.options().target()) << "</h1><div class=\"sub\">run "
    << HtmlEscape(r.run_id()) << ", started " << HtmlEscape(r.start_time()) << ", "
    << HtmlEscape(r.options().loop()) << " loop, " << HtmlEscape(r.options().transport())
    << "; latency counted from the " << HtmlEscape(s.latency_origin()) << "</div>\n";
  h << "<div class=\"cards\">" << Card("count", "calls measured", FormatCount(s.count()))
    << Card("rps", "calls/s", Fixed(s.rps(), 1)) << Card("p50", "p50", FormatLatency(p50))
    << Card("p99", "p99", FormatLatency(p99))
    << Card("errors", "errors", FormatCount(s.errors()), s.errors() > 0)
    << Card("dropped", "dropped by the client", FormatCount(s.dropped()), s.dropped() > 0)
    << Card("total", "measured seconds", Fixed(s.total_s(), 2));
  if (r.floor().pairs_size() > 0) {
    h << Card("floor", "median throughput ÷ echo", Fixed(r.floor().median_rps_ratio(), 3));
  }
  h << "</div>\n";

  h << "<h2>Latency</h2>" << HistogramChart(r);
  h << "<div class=\"grid\" style=\"margin-top:12px\"><div><table id=\"percentiles\"><tr>"
    << "<th>percentile</th><th>latency</th></tr>";
  for (const v1::Percentile& p : r.percentiles()) {
    h << Row({PercentileName(p.percentile()), FormatLatency(p.latency_us())});
  }
  h << "</table></div><div><table><tr><th>figure</th><th>value</th></tr>"
    << Row({"fastest", FormatLatency(s.fastest_us())})
    << Row({"average", FormatLatency(s.average_us())})
    << Row({"slowest", FormatLatency(s.slowest_us())})
    << Row({"sent (all calls)", FormatCount(s.sent())})
    << Row({"warm-up calls (not counted)", FormatCount(s.warmup_calls())}) << "</table></div></div>\n";

  std::vector<double> throughput, p99s;
  std::vector<bool> warmup;
  for (const v1::Second& sec : r.series()) {
    throughput.push_back(static_cast<double>(sec.done()));
    p99s.push_back(static_cast<double>(sec.p99_us()));
    warmup.push_back(sec.warmup());
  }
  h << "<h2>Over time</h2><div class=\"grid\">"
    << LineChart("Throughput (calls completed per second)", throughput, warmup,
                 [](double v) { return Fixed(v, 0); }, "#3b6fd8")
    << LineChart("p99 latency per second", p99s, warmup,
                 [](double v) { return FormatLatency(static_cast<int64_t>(v)); }, "#d8572a")
    << "</div><div class=\"sub\">Shaded: warm-up (not in the figures).</div>\n";

  h << "<h2>Status codes and refusal reasons</h2><div class=\"grid\"><div><table id=\"codes\">"
    << "<tr><th>status</th><th>calls</th></tr>";
  for (const v1::CodeCount& c : r.codes()) h << Row({c.code(), FormatCount(c.count())});
  h << "</table></div><div><table id=\"reasons\"><tr><th>status</th><th>medsettle-reason</th>"
    << "<th>calls</th></tr>";
  if (r.reasons_size() == 0) h << "<tr><td colspan=\"3\">no refusals</td></tr>";
  for (const v1::ReasonCount& c : r.reasons()) {
    h << "<tr><td>" << HtmlEscape(c.code()) << "</td><td>"
      << HtmlEscape(c.reason().empty() ? "(no trailer)" : c.reason()) << "</td><td class=\"n\">"
      << FormatCount(c.count()) << "</td></tr>";
  }
  h << "</table></div></div>\n";

  h << "<h2>Scenarios</h2><table id=\"scenarios\"><tr><th>scenario</th><th>calls</th><th>OK</th>"
    << "<th>p50</th><th>p99</th><th>bill lines</th></tr>";
  for (const v1::ScenarioCount& c : r.scenarios()) {
    h << Row({c.name(), FormatCount(c.count()), FormatCount(c.ok()), FormatLatency(c.p50_us()),
              FormatLatency(c.p99_us()), FormatCount(c.lines())});
  }
  h << "</table>";
  if (r.replays().sent() > 0) {
    const v1::Replays& p = r.replays();
    h << "<p>Replays (--retry-ratio " << r.options().retry_ratio() << ", not in the figures): "
      << FormatCount(p.sent()) << " re-sent, " << FormatCount(p.replayed())
      << " answered replayed, " << FormatCount(p.errors()) << " errors, p50 "
      << HtmlEscape(FormatLatency(p.p50_us())) << ", p99 " << HtmlEscape(FormatLatency(p.p99_us()))
      << ".</p>";
  }
  if (r.floor().pairs_size() > 0) {
    h << "<h2>Floor: echo vs " << HtmlEscape(r.options().method()) << "</h2>"
      << "<table id=\"floor\"><tr><th>pair</th><th>echo calls/s</th><th>target calls/s</th>"
      << "<th>target ÷ echo</th><th>echo p50</th><th>target p50</th><th>p50 ratio</th></tr>";
    for (const v1::FloorPair& p : r.floor().pairs()) {
      h << Row({std::to_string(p.pair()), Fixed(p.echo_rps(), 1), Fixed(p.target_rps(), 1),
                Fixed(p.rps_ratio(), 3), FormatLatency(p.echo_p50_us()),
                FormatLatency(p.target_p50_us()), Fixed(p.p50_ratio(), 2)});
    }
    h << Row({"median", "", "", Fixed(r.floor().median_rps_ratio(), 3), "", "",
              Fixed(r.floor().median_p50_ratio(), 2)})
      << "</table>";
  }

  const v1::RunOptions& o = r.options();
  h << "<h2>Options and machine</h2><div class=\"grid\"><div><table id=\"options\">"
    << "<tr><th>option</th><th>value</th></tr>";
  auto opt = [&h](const std::string& k, const std::string& v) {
    if (!v.empty()) h << Row({k, v}, false);
  };
  opt("target", o.target());
  opt("method", o.method());
  opt("mix", o.mix());
  opt("loop", o.loop());
  if (o.loop() == "closed") opt("concurrency", std::to_string(o.concurrency()));
  if (o.loop() == "open") {
    opt("schedule", o.schedule_detail());
    opt("max in flight", std::to_string(o.max_in_flight()));
  }
  opt("duration", o.duration_s() > 0 ? Cat(Fixed(o.duration_s(), 1), " s") : "");
  opt("count", o.count() > 0 ? std::to_string(o.count()) : "");
  opt("warm-up", Cat(Fixed(o.warmup_s(), 1), " s"));
  opt("connections", std::to_string(o.connections()));
  opt("seed", std::to_string(o.seed()));
  opt("retry ratio", Fixed(o.retry_ratio(), 3));
  opt("transport", o.transport());
  opt("institution", o.institution());
  opt("timeout", Cat(o.timeout_ms(), " ms"));
  opt("persons", o.persons_file());
  opt("institutions", o.institutions_file());
  opt("catalog", o.catalog_file());
  opt("pharmacy credential", o.credential_note());
  opt("floor target", o.floor_target());
  h << "</table></div><div><table id=\"machine\"><tr><th>machine</th><th>value</th></tr>";
  const v1::Machine& m = r.machine();
  h << Row({"nproc", std::to_string(m.nproc())}, false) << Row({"CPU", m.cpu_model()}, false)
    << Row({"kernel", m.kernel()}, false) << Row({"host", m.hostname()}, false)
    << "</table></div></div>\n";
  h << "<p class=\"sub\">medsettle-loadgen; the JSON form of these figures is the same run's "
       "--json file (tools/loadgen/load_report.proto).</p></body></html>\n";
  return h.str();
}

}  // namespace medsettle::loadgen
