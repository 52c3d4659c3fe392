// The self-contained HTML report of a run: one file, inline CSS and SVG,
// no script and nothing fetched, so it opens anywhere (and in a headless
// browser for the tests): the headline figures, the latency histogram, the
// percentiles, throughput and p99 over time, status codes and refusal
// reasons, scenarios, replays, the floor pairs, the options and the
// machine. Pure: the report in, the text out.
#ifndef MEDSETTLE_TOOLS_LOADGEN_HTML_REPORT_H_
#define MEDSETTLE_TOOLS_LOADGEN_HTML_REPORT_H_

#include <string>
#include <string_view>

#include "medsettle/loadgen/v1/load_report.pb.h"

namespace medsettle::loadgen {

std::string RenderHtml(const v1::LoadReport& report);

// &, <, >, " escaped.
std::string HtmlEscape(std::string_view text);

}  // namespace medsettle::loadgen

#endif  // MEDSETTLE_TOOLS_LOADGEN_HTML_REPORT_H_
