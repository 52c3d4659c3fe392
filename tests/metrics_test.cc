// medsettle::metrics (label unit): the text exposition format byte for byte
// (golden strings), escaping, number formatting, name validation, exact
// totals under concurrency, callback families and the go-grpc-prometheus
// names of GrpcServerMetrics.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "metrics/grpc_server_metrics.h"
#include "metrics/registry.h"

namespace medsettle::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

TEST(MetricsFormat, IntegersPrintAsIntegersFloatsRoundTrip) {
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(-0.0), "0");
  EXPECT_EQ(FormatValue(3), "3");
  EXPECT_EQ(FormatValue(-2), "-2");
  EXPECT_EQ(FormatValue(1e15), "1000000000000000");
  EXPECT_EQ(FormatValue(9007199254740993.0), "9007199254740992");  // 2^53+1 rounds
  EXPECT_EQ(FormatValue(0.25), "0.25");
  EXPECT_EQ(FormatValue(0.1), "0.1");
  EXPECT_EQ(FormatValue(0.0001), "0.0001");    // as Go: fixed down to 1e-4
  EXPECT_EQ(FormatValue(0.00025), "0.00025");
  EXPECT_EQ(FormatValue(1e-05), "1e-05");      // as Go: scientific below
  EXPECT_EQ(FormatValue(1e21), "1e+21");
  EXPECT_EQ(FormatValue(2.5), "2.5");
  EXPECT_EQ(FormatValue(-1.5), "-1.5");
  EXPECT_EQ(FormatValue(kInf), "+Inf");
  EXPECT_EQ(FormatValue(-kInf), "-Inf");
  EXPECT_EQ(FormatValue(kNaN), "NaN");
  // Round trip: the shortest digits that parse back to the same double.
  for (double v : {0.1 + 0.2, 1.0 / 3, 123456.789, 6.02214076e23, 5e-324,
                   std::numeric_limits<double>::max(), 1702345678.123}) {
    // strtod: stod throws on the subnormal 5e-324 (ERANGE).
    EXPECT_EQ(std::strtod(FormatValue(v).c_str(), nullptr), v) << FormatValue(v);
  }
  EXPECT_EQ(FormatValue(0.1 + 0.2), "0.30000000000000004");
}

TEST(MetricsFormat, EscapesHelpAndLabelValues) {
  EXPECT_EQ(EscapeHelp("a\\b\nc \"q\""), "a\\\\b\\nc \"q\"");  // quotes stay in HELP
  EXPECT_EQ(EscapeLabelValue("a\\b\nc \"q\""), "a\\\\b\\nc \\\"q\\\"");
  EXPECT_EQ(EscapeLabelValue("浙江省衢州市"), "浙江省衢州市");  // UTF-8 passes as is
  // An invalid byte would make Prometheus reject the whole scrape.
  EXPECT_EQ(EscapeLabelValue("a\xff" "b"), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(EscapeLabelValue("\xe6\xb5"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // truncated 浙
  EXPECT_EQ(EscapeLabelValue("\xed\xa0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
}

TEST(MetricsNames, ValidationFollowsTheDataModel) {
  EXPECT_TRUE(IsValidMetricName("medsettle_settlements_total"));
  EXPECT_TRUE(IsValidMetricName("job:rate:5m"));
  EXPECT_TRUE(IsValidMetricName("_x1"));
  EXPECT_FALSE(IsValidMetricName(""));
  EXPECT_FALSE(IsValidMetricName("1x"));
  EXPECT_FALSE(IsValidMetricName("a-b"));
  EXPECT_FALSE(IsValidMetricName("a b"));
  EXPECT_FALSE(IsValidMetricName("医保"));
  EXPECT_TRUE(IsValidLabelName("grpc_method"));
  EXPECT_TRUE(IsValidLabelName("_a"));
  EXPECT_FALSE(IsValidLabelName("__name__"));
  EXPECT_FALSE(IsValidLabelName("__x"));
  EXPECT_FALSE(IsValidLabelName("a:b"));
  EXPECT_FALSE(IsValidLabelName("9a"));
  EXPECT_FALSE(IsValidLabelName(""));
}

TEST(MetricsRegistry, RefusesBadNamesLabelsBucketsAndDuplicates) {
  Registry r;
  EXPECT_EQ(r.AddCounter("bad-name", "h").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.AddCounter("x_total", "").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.AddCounter("x_total", "h", {"__reserved"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.AddCounter("x_total", "h", {"a", "a"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.AddGauge("x", "h", {"bad-label"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  const absl::Status le = r.AddHistogram("h_seconds", "h", {"le"}, kDefaultBucketsSeconds).status();
  EXPECT_EQ(le.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(le.message()), HasSubstr("\"le\""));
  EXPECT_EQ(r.AddHistogram("h_seconds", "h", {}, std::vector<double>{1, 1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.AddHistogram("h_seconds", "h", {}, std::vector<double>{2, 1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.AddHistogram("h_seconds", "h", {}, std::vector<double>{1, kNaN}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.AddCallbackFamily("cb", "h", MetricType::kHistogram, {}, [] {
               return std::vector<CallbackSample>{};
             }).code(),
            absl::StatusCode::kInvalidArgument);
  // Nothing was registered by the refusals.
  EXPECT_EQ(r.Render(), "");

  ASSERT_TRUE(r.AddCounter("x_total", "h", {"a"}).ok());
  const absl::Status again = r.AddCounter("x_total", "h", {"a"}).status();
  EXPECT_EQ(again.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(std::string(again.message()), HasSubstr("x_total"));
  EXPECT_EQ(r.AddGauge("x_total", "h").status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(r.AddCallbackGauge("x_total", "h", [] { return 1.0; }).code(),
            absl::StatusCode::kAlreadyExists);
  // A histogram exposes three names; none may collide with another family.
  ASSERT_TRUE(r.AddHistogram("lat_seconds", "h", {}, kDefaultBucketsSeconds).ok());
  EXPECT_EQ(r.AddGauge("lat_seconds_count", "h").status().code(), absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(r.AddGauge("q_sum", "h").ok());
  EXPECT_EQ(r.AddHistogram("q", "h", {}, kDefaultBucketsSeconds).status().code(),
            absl::StatusCode::kAlreadyExists);
}

TEST(MetricsRegistry, SharedRegistrationReturnsTheSameFamilyOnlyWhenIdentical) {
  Registry r;
  auto a = r.AddCounter("calls_total", "Calls.", {"m"}, Registration::kShared);
  auto b = r.AddCounter("calls_total", "Calls.", {"m"}, Registration::kShared);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(r.AddCounter("calls_total", "Other help.", {"m"}, Registration::kShared).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(r.AddCounter("calls_total", "Calls.", {"n"}, Registration::kShared).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(r.AddGauge("calls_total", "Calls.", {"m"}, Registration::kShared).status().code(),
            absl::StatusCode::kAlreadyExists);
  auto h1 = r.AddHistogram("h_seconds", "H.", {}, kDefaultBucketsSeconds, Registration::kShared);
  ASSERT_TRUE(h1.ok());
  EXPECT_EQ(r.AddHistogram("h_seconds", "H.", {}, kGrpcLatencyBucketsSeconds,
                           Registration::kShared).status().code(),
            absl::StatusCode::kAlreadyExists);
}

TEST(MetricsExposition, CountersAndGaugesWithLabelsGolden) {
  Registry r;
  auto settlements = r.AddCounter("medsettle_settlements_total",
                                  "Settlements by method and result.", {"method", "result"});
  ASSERT_TRUE(settlements.ok());
  auto in_flight = r.AddGauge("medsettle_in_flight", "Calls in progress.");
  ASSERT_TRUE(in_flight.ok());
  auto empty = r.AddGauge("medsettle_unused", "Never resolved: not exported.", {"x"});
  ASSERT_TRUE(empty.ok());

  // Created out of order: the exposition sorts children by label values.
  (*settlements)->WithLabels({"Settle", "OK"}).Inc(3);
  (*settlements)->WithLabels({"Reverse", "OK"}).Inc();
  Counter& denied = (*settlements)->WithLabels({"Settle", "NOT_COVERED"});
  denied.Inc();
  denied.Inc();
  EXPECT_EQ(&denied, &(*settlements)->WithLabels({"Settle", "NOT_COVERED"}));  // stable
  Gauge& g = (*in_flight)->WithLabels({});
  g.Set(5);
  g.Dec();
  g.Add(0.5);

  EXPECT_EQ(r.Render(),
            "# HELP medsettle_settlements_total Settlements by method and result.\n"
            "# TYPE medsettle_settlements_total counter\n"
            "medsettle_settlements_total{method=\"Reverse\",result=\"OK\"} 1\n"
            "medsettle_settlements_total{method=\"Settle\",result=\"NOT_COVERED\"} 2\n"
            "medsettle_settlements_total{method=\"Settle\",result=\"OK\"} 3\n"
            "# HELP medsettle_in_flight Calls in progress.\n"
            "# TYPE medsettle_in_flight gauge\n"
            "medsettle_in_flight 4.5\n");
}

TEST(MetricsExposition, LabelFreeFamiliesAreExportedFromZero) {
  Registry r;
  ASSERT_TRUE(r.AddCounter("a_total", "A.").ok());
  ASSERT_TRUE(r.AddHistogram("b_seconds", "B.", {}, std::vector<double>{1}).ok());
  EXPECT_EQ(r.Render(),
            "# HELP a_total A.\n"
            "# TYPE a_total counter\n"
            "a_total 0\n"
            "# HELP b_seconds B.\n"
            "# TYPE b_seconds histogram\n"
            "b_seconds_bucket{le=\"1\"} 0\n"
            "b_seconds_bucket{le=\"+Inf\"} 0\n"
            "b_seconds_sum 0\n"
            "b_seconds_count 0\n");
}

TEST(MetricsExposition, HistogramBucketsAreCumulativeWithInf) {
  Registry r;
  auto h = r.AddHistogram("medsettle_redis_seconds", "Redis round trips.", {"op"},
                          std::vector<double>{0.0005, 0.001, 0.5, kInf});  // +Inf dropped
  ASSERT_TRUE(h.ok());
  Histogram& get = (*h)->WithLabels({"GET"});
  get.Observe(0.0001);  // ≤ 0.0005
  get.Observe(0.0005);  // = bound: counts in le="0.0005"
  get.Observe(0.00075); // ≤ 0.001
  get.Observe(0.25);    // ≤ 0.5
  get.Observe(7);       // +Inf only
  // sum = 0.0001 + 0.0005 + 0.00075 + 0.25 + 7 = 7.25135 (as doubles add up)
  const double sum = 0.0001 + 0.0005 + 0.00075 + 0.25 + 7.0;
  (*h)->WithLabels({"EVALSHA"});
  EXPECT_EQ(r.Render(),
            "# HELP medsettle_redis_seconds Redis round trips.\n"
            "# TYPE medsettle_redis_seconds histogram\n"
            "medsettle_redis_seconds_bucket{op=\"EVALSHA\",le=\"0.0005\"} 0\n"
            "medsettle_redis_seconds_bucket{op=\"EVALSHA\",le=\"0.001\"} 0\n"
            "medsettle_redis_seconds_bucket{op=\"EVALSHA\",le=\"0.5\"} 0\n"
            "medsettle_redis_seconds_bucket{op=\"EVALSHA\",le=\"+Inf\"} 0\n"
            "medsettle_redis_seconds_sum{op=\"EVALSHA\"} 0\n"
            "medsettle_redis_seconds_count{op=\"EVALSHA\"} 0\n"
            "medsettle_redis_seconds_bucket{op=\"GET\",le=\"0.0005\"} 2\n"
            "medsettle_redis_seconds_bucket{op=\"GET\",le=\"0.001\"} 3\n"
            "medsettle_redis_seconds_bucket{op=\"GET\",le=\"0.5\"} 4\n"
            "medsettle_redis_seconds_bucket{op=\"GET\",le=\"+Inf\"} 5\n"
            "medsettle_redis_seconds_sum{op=\"GET\"} " + FormatValue(sum) + "\n"
            "medsettle_redis_seconds_count{op=\"GET\"} 5\n");
  const Histogram::Snapshot s = get.Collect();
  EXPECT_EQ(s.cumulative, (std::vector<uint64_t>{2, 3, 4, 5}));
  EXPECT_EQ(s.count, 5u);
  EXPECT_DOUBLE_EQ(s.sum, 7.25135);
}

TEST(MetricsExposition, HistogramCountsNaNAndInfInTheInfBucket) {
  Registry r;
  auto h = r.AddHistogram("x_seconds", "X.", {}, std::vector<double>{1});
  ASSERT_TRUE(h.ok());
  Histogram& x = (*h)->WithLabels({});
  x.Observe(kNaN);
  x.Observe(kInf);
  x.Observe(-kInf);  // below every bound
  EXPECT_EQ(x.Collect().cumulative, (std::vector<uint64_t>{1, 3}));
  EXPECT_THAT(r.Render(), HasSubstr("x_seconds_sum NaN\n"));
}

TEST(MetricsExposition, EscapingInHelpAndLabelValuesGolden) {
  Registry r;
  auto f = r.AddGauge("medsettle_pool_info", "Pools.\nOne per \"region\" \\ issuer.",
                      {"region", "note"});
  ASSERT_TRUE(f.ok());
  (*f)->WithLabels({"浙江", "a \"quoted\" C:\\path\nline2"}).Set(1);
  EXPECT_EQ(r.Render(),
            "# HELP medsettle_pool_info Pools.\\nOne per \"region\" \\\\ issuer.\n"
            "# TYPE medsettle_pool_info gauge\n"
            "medsettle_pool_info{region=\"浙江\",note=\"a \\\"quoted\\\" C:\\\\path\\nline2\"} 1\n");
}

TEST(MetricsExposition, GaugeSpecialValues) {
  Registry r;
  auto f = r.AddGauge("g", "G.", {"k"});
  ASSERT_TRUE(f.ok());
  (*f)->WithLabels({"a"}).Set(kInf);
  (*f)->WithLabels({"b"}).Set(-kInf);
  (*f)->WithLabels({"c"}).Set(kNaN);
  (*f)->WithLabels({"d"}).Set(1e-9);
  (*f)->WithLabels({"e"}).Set(-3);
  EXPECT_EQ(r.Render(),
            "# HELP g G.\n# TYPE g gauge\n"
            "g{k=\"a\"} +Inf\ng{k=\"b\"} -Inf\ng{k=\"c\"} NaN\ng{k=\"d\"} 1e-09\ng{k=\"e\"} -3\n");
}

TEST(MetricsExposition, FamiliesInRegistrationOrder) {
  Registry r;
  ASSERT_TRUE(r.AddGauge("zzz", "Z.").ok());
  ASSERT_TRUE(r.AddGauge("aaa", "A.").ok());
  ASSERT_TRUE(r.AddCallbackGauge("mmm", "M.", [] { return 2.0; }).ok());
  const std::string text = r.Render();
  EXPECT_LT(text.find("zzz 0"), text.find("aaa 0"));
  EXPECT_LT(text.find("aaa 0"), text.find("mmm 2"));
}

TEST(MetricsCallbacks, GaugeAndFamilyComputedAtScrape) {
  Registry r;
  double age_seconds = 12.5;
  ASSERT_TRUE(r.AddCallbackGauge("medsettle_snapshot_age_seconds", "Age of the snapshot.",
                                 [&] { return age_seconds; })
                  .ok());
  std::vector<CallbackSample> expiry = {
      {{"CN=Zhejiang CA"}, 1735689600},
      {{"CN=Chongqing CA"}, 1767225600.5},
      {{"CN=Zhejiang CA"}, 1},            // repeat: dropped
      {{"too", "many"}, 2},               // wrong arity: dropped
  };
  ASSERT_TRUE(r.AddCallbackFamily("medsettle_crl_next_update_timestamp_seconds",
                                  "When each issuer's CRL expires.", MetricType::kGauge,
                                  {"issuer"}, [&] { return expiry; })
                  .ok());
  ASSERT_TRUE(r.AddCallbackFamily("medsettle_none", "Emits nothing.", MetricType::kCounter, {},
                                  [] { return std::vector<CallbackSample>{}; })
                  .ok());
  EXPECT_EQ(r.Render(),
            "# HELP medsettle_snapshot_age_seconds Age of the snapshot.\n"
            "# TYPE medsettle_snapshot_age_seconds gauge\n"
            "medsettle_snapshot_age_seconds 12.5\n"
            "# HELP medsettle_crl_next_update_timestamp_seconds When each issuer's CRL expires.\n"
            "# TYPE medsettle_crl_next_update_timestamp_seconds gauge\n"
            "medsettle_crl_next_update_timestamp_seconds{issuer=\"CN=Chongqing CA\"} 1767225600.5\n"
            "medsettle_crl_next_update_timestamp_seconds{issuer=\"CN=Zhejiang CA\"} 1735689600\n");
  age_seconds = 13;
  EXPECT_THAT(r.Render(), HasSubstr("medsettle_snapshot_age_seconds 13\n"));
}

TEST(MetricsCallbacks, CallbackMayReadTheRegistry) {
  // Render holds no registry lock while a callback runs.
  Registry r;
  ASSERT_TRUE(r.AddCallbackGauge("render_bytes", "Bytes.", [&r] {
                 return static_cast<double>(r.AddGauge("late", "L.").ok() ? 1 : 0);
               }).ok());
  EXPECT_THAT(r.Render(), HasSubstr("render_bytes 1\n"));
  EXPECT_THAT(r.Render(), HasSubstr("late 0\n"));
}

TEST(MetricsConcurrency, EightThreadsExactTotals) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 100'000;
  Registry r;
  auto calls = r.AddCounter("calls_total", "Calls.", {"m"});
  auto lat = r.AddHistogram("lat_seconds", "Latency.", {"m"}, kGrpcLatencyBucketsSeconds);
  auto level = r.AddGauge("level", "Level.");
  ASSERT_TRUE(calls.ok() && lat.ok() && level.ok());
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Each thread resolves its children itself, racing the others to
      // create them: all must land on the same ones.
      Counter& c = (*calls)->WithLabels({"Settle"});
      Histogram& h = (*lat)->WithLabels({"Settle"});
      Gauge& g = (*level)->WithLabels({});
      // 0.5 and 0.25 are exact in binary and every partial sum here fits
      // the mantissa, so the sum is exact whatever the order of additions.
      const double v = t % 2 == 0 ? 0.5 : 0.25;
      for (int i = 0; i < kPerThread; ++i) {
        c.Inc();
        h.Observe(v);
        g.Add(1);
      }
    });
  }
  // Scrapes while writers run: totals only grow, never torn.
  uint64_t last = 0;
  for (int i = 0; i < 20; ++i) {
    const uint64_t now = (*calls)->WithLabels({"Settle"}).Value();
    EXPECT_GE(now, last);
    last = now;
    (void)r.Render();
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ((*calls)->WithLabels({"Settle"}).Value(), uint64_t{kThreads} * kPerThread);
  const Histogram::Snapshot s = (*lat)->WithLabels({"Settle"}).Collect();
  EXPECT_EQ(s.count, uint64_t{kThreads} * kPerThread);
  EXPECT_EQ(s.sum, 4 * kPerThread * 0.5 + 4 * kPerThread * 0.25);
  // le="0.25" holds the 0.25s, le="0.5" both.
  EXPECT_EQ(s.cumulative[10], uint64_t{4} * kPerThread);  // bound 0.25
  EXPECT_EQ(s.cumulative[11], uint64_t{8} * kPerThread);  // bound 0.5
  EXPECT_EQ((*level)->WithLabels({}).Value(), double{kThreads} * kPerThread);
  EXPECT_THAT(r.Render(), HasSubstr("calls_total{m=\"Settle\"} 800000\n"));
}

TEST(MetricsDeath, WrongLabelArityAborts) {
  Registry r;
  auto f = r.AddCounter("x_total", "X.", {"a", "b"});
  ASSERT_TRUE(f.ok());
  EXPECT_DEATH((*f)->WithLabels({"only-one"}), "x_total with 1 label values; its labels are \\{a,b\\}");
}

TEST(GrpcServerMetrics, CodeNamesAreGos) {
  const std::vector<std::string> expected = {
      "OK",           "Canceled",          "Unknown",           "InvalidArgument",
      "DeadlineExceeded", "NotFound",      "AlreadyExists",     "PermissionDenied",
      "ResourceExhausted", "FailedPrecondition", "Aborted",     "OutOfRange",
      "Unimplemented", "Internal",         "Unavailable",       "DataLoss",
      "Unauthenticated"};
  ASSERT_EQ(expected.size(), static_cast<size_t>(kGrpcCodeCount));
  for (int code = 0; code < kGrpcCodeCount; ++code) {
    EXPECT_EQ(GrpcCodeName(code), expected[static_cast<size_t>(code)]);
  }
  EXPECT_EQ(GrpcCodeName(-1), "Unknown");
  EXPECT_EQ(GrpcCodeName(17), "Unknown");
}

TEST(GrpcServerMetrics, PreCreatesEveryChildWithGoNamesAndLabels) {
  Registry r;
  auto m = GrpcServerMetrics::Create(r, "medsettle.v1.SettlementService", {"Settle", "Reverse"});
  ASSERT_TRUE(m.ok()) << m.status();
  const std::string text = r.Render();
  for (const char* family :
       {"# TYPE grpc_server_started_total counter\n", "# TYPE grpc_server_handled_total counter\n",
        "# TYPE grpc_server_msg_received_total counter\n",
        "# TYPE grpc_server_msg_sent_total counter\n",
        "# TYPE grpc_server_handling_seconds histogram\n"}) {
    EXPECT_THAT(text, HasSubstr(family));
  }
  EXPECT_THAT(text, HasSubstr("grpc_server_started_total{grpc_type=\"unary\",grpc_service="
                              "\"medsettle.v1.SettlementService\",grpc_method=\"Settle\"} 0\n"));
  // 17 codes × 2 methods, all from zero.
  size_t handled_lines = 0;
  for (size_t at = text.find("\ngrpc_server_handled_total{"); at != std::string::npos;
       at = text.find("\ngrpc_server_handled_total{", at + 1)) {
    ++handled_lines;
  }
  EXPECT_EQ(handled_lines, 34u);
  EXPECT_THAT(text, HasSubstr("grpc_server_handled_total{grpc_type=\"unary\",grpc_service="
                              "\"medsettle.v1.SettlementService\",grpc_method=\"Reverse\","
                              "grpc_code=\"Unauthenticated\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("grpc_server_handling_seconds_bucket{grpc_type=\"unary\","
                              "grpc_service=\"medsettle.v1.SettlementService\","
                              "grpc_method=\"Settle\",le=\"0.0001\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("le=\"0.00025\""));
  EXPECT_THAT(text, HasSubstr("le=\"2.5\""));
  EXPECT_THAT(text, HasSubstr("le=\"10\""));
}

TEST(GrpcServerMetrics, StartedAndHandledCountAsGoGrpcPrometheus) {
  Registry r;
  auto created = GrpcServerMetrics::Create(r, "medsettle.v1.SettlementService",
                                           {"Settle", "Reverse"});
  ASSERT_TRUE(created.ok());
  GrpcServerMetrics& m = **created;
  EXPECT_EQ(m.method_count(), 2u);
  m.Started(0);
  m.Handled(0, 0, 0.0003);   // OK: a sent message
  m.Started(0);
  m.Handled(0, 5, 0.002);    // NOT_FOUND: none sent
  m.Started(1);
  m.Handled(1, 99, 0.00005); // out of range: Unknown
  const std::string text = r.Render();
  const std::string settle =
      "{grpc_type=\"unary\",grpc_service=\"medsettle.v1.SettlementService\",grpc_method=\"Settle\"";
  const std::string reverse =
      "{grpc_type=\"unary\",grpc_service=\"medsettle.v1.SettlementService\",grpc_method=\"Reverse\"";
  EXPECT_THAT(text, HasSubstr("grpc_server_started_total" + settle + "} 2\n"));
  EXPECT_THAT(text, HasSubstr("grpc_server_msg_received_total" + settle + "} 2\n"));
  EXPECT_THAT(text, HasSubstr("grpc_server_msg_sent_total" + settle + "} 1\n"));
  EXPECT_THAT(text, HasSubstr("grpc_server_handled_total" + settle + ",grpc_code=\"OK\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("grpc_server_handled_total" + settle + ",grpc_code=\"NotFound\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("grpc_server_handled_total" + reverse + ",grpc_code=\"Unknown\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("grpc_server_msg_sent_total" + reverse + "} 0\n"));
  EXPECT_THAT(text, HasSubstr("grpc_server_handling_seconds_bucket" + settle + ",le=\"0.0001\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("grpc_server_handling_seconds_bucket" + settle + ",le=\"0.0005\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("grpc_server_handling_seconds_bucket" + settle + ",le=\"0.0025\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("grpc_server_handling_seconds_count" + settle + "} 2\n"));
  EXPECT_THAT(text, HasSubstr("grpc_server_handling_seconds_bucket" + reverse + ",le=\"0.0001\"} 1\n"));
}

TEST(GrpcServerMetrics, SeveralServicesShareTheFamilies) {
  Registry r;
  auto a = GrpcServerMetrics::Create(r, "medsettle.v1.SettlementService", {"Settle"});
  auto b = GrpcServerMetrics::Create(r, "grpc.health.v1.Health", {"Check", "Watch"});
  ASSERT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
  (*b)->Started(0);
  const std::string text = r.Render();
  EXPECT_THAT(text, HasSubstr("grpc_service=\"grpc.health.v1.Health\",grpc_method=\"Check\"} 1\n"));
  size_t type_lines = 0;
  for (size_t at = text.find("# TYPE grpc_server_started_total"); at != std::string::npos;
       at = text.find("# TYPE grpc_server_started_total", at + 1)) {
    ++type_lines;
  }
  EXPECT_EQ(type_lines, 1u);
}

TEST(GrpcServerMetrics, RefusesBadInputAndClashingFamilies) {
  Registry r;
  EXPECT_EQ(GrpcServerMetrics::Create(r, "", {"A"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GrpcServerMetrics::Create(r, "s.S", {"A", "A"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GrpcServerMetrics::Create(r, "s.S", {""}).status().code(),
            absl::StatusCode::kInvalidArgument);
  Registry clash;
  ASSERT_TRUE(clash.AddCounter("grpc_server_started_total", "Mine.").ok());
  EXPECT_EQ(GrpcServerMetrics::Create(clash, "s.S", {"A"}).status().code(),
            absl::StatusCode::kAlreadyExists);
}

TEST(GrpcServerMetricsDeath, MethodIndexOutOfRangeAborts) {
  Registry r;
  auto m = GrpcServerMetrics::Create(r, "s.S", {"A"});
  ASSERT_TRUE(m.ok());
  EXPECT_DEATH((*m)->Started(1), "s.S method index 1 of 1");
}

}  // namespace
}  // namespace medsettle::metrics
