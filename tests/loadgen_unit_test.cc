// medsettle-loadgen's pure parts (unit): the log-linear histogram against a
// sorted-array reference (seeded; MEDSETTLE_SEED replays a failure), the
// open-loop schedules' send times, request building (same seed → same
// requests, unique ids, mix proportions, inpatient line counts), and the
// command line's refusals (exit 2 with a message naming the culprit,
// before anything is sent: --target points at a port nobody serves), and
// the disk floor probe on a scratch directory.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tools/loadgen/disk_floor.h"
#include "tools/loadgen/histogram.h"
#include "tools/loadgen/loadgen_tool.h"
#include "tools/loadgen/population.h"
#include "tools/loadgen/report.h"
#include "tools/loadgen/request_builder.h"
#include "tools/loadgen/schedule.h"

namespace medsettle::loadgen {
namespace {

uint64_t TestSeed() {
  if (const char* env = std::getenv("MEDSETTLE_SEED")) return std::strtoull(env, nullptr, 10);
  return 20241204;
}

// Nearest-rank percentile of sorted values, for percentiles with at most
// one decimal, in integers: ceil(p/100 × n) = ceil(tenths × n / 1000).
int64_t Reference(const std::vector<int64_t>& sorted, double p) {
  const size_t n = sorted.size();
  const auto tenths = static_cast<size_t>(std::llround(p * 10));
  size_t rank = (tenths * n + 999) / 1000;
  rank = std::clamp<size_t>(rank, 1, n);
  return sorted[rank - 1];
}

TEST(LoadgenHistogram, BucketsTileTheRangeAndStayNarrow) {
  int64_t expected_low = 0;
  for (int i = 0; i < Histogram::BucketCount(); ++i) {
    ASSERT_EQ(Histogram::BucketLow(i), expected_low) << "bucket " << i;
    const int64_t high = Histogram::BucketHigh(i);
    ASSERT_GE(high, Histogram::BucketLow(i));
    // Never wider than 1/128 of its lower bound (unit buckets below 256).
    if (Histogram::BucketLow(i) >= 256) {
      ASSERT_LE(high - Histogram::BucketLow(i) + 1, Histogram::BucketLow(i) / 128);
    }
    ASSERT_EQ(Histogram::BucketIndex(Histogram::BucketLow(i)), i);
    ASSERT_EQ(Histogram::BucketIndex(high), i);
    expected_low = high + 1;
  }
  EXPECT_EQ(expected_low, Histogram::kMaxValueUs + 1);
}

TEST(LoadgenHistogram, PercentilesMatchASortedArrayWithinOneBucket) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(testing::Message() << "MEDSETTLE_SEED=" << seed);
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 20; ++round) {
    // Log-normal-ish latencies from µs to seconds, and a few outliers.
    std::lognormal_distribution<double> latency(std::log(800.0 * (round + 1)), 1.2);
    const size_t n = 1 + rng() % 20000;
    std::vector<int64_t> values;
    Histogram h;
    for (size_t i = 0; i < n; ++i) {
      int64_t v = static_cast<int64_t>(latency(rng));
      if (rng() % 1000 == 0) v = static_cast<int64_t>(rng() % 30000000);
      values.push_back(v);
      h.Record(v);
    }
    std::sort(values.begin(), values.end());
    ASSERT_EQ(h.count(), n);
    EXPECT_EQ(h.min_us(), values.front());
    EXPECT_EQ(h.max_us(), values.back());
    int64_t sum = 0;
    for (int64_t v : values) sum += v;
    EXPECT_EQ(h.mean_us(), sum / static_cast<int64_t>(n));
    for (double p : {0.0, 1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 100.0}) {
      const int64_t exact = Reference(values, p);
      const int64_t got = h.Percentile(p);
      // Reported as the bucket's upper bound: never below, at most one
      // bucket width (≤ 1/128 of the value) above.
      EXPECT_GE(got, exact) << "p" << p << " n=" << n;
      EXPECT_LE(got - exact, exact / 128 + 1) << "p" << p << " n=" << n;
    }
  }
}

// The rank is exact where doubles are not: 99.9 / 100 × 1,000 is
// 999.0000000000001 in doubles, whose ceiling would report the maximum.
TEST(LoadgenHistogram, NearestRankIsExact) {
  EXPECT_EQ(NearestRank(99.9, 1000), 999u);
  EXPECT_EQ(NearestRank(99.9, 8000), 7992u);
  EXPECT_EQ(NearestRank(99.9, 15000), 14985u);
  EXPECT_EQ(NearestRank(99.99, 10000), 9999u);
  EXPECT_EQ(NearestRank(50, 1), 1u);
  EXPECT_EQ(NearestRank(50, 3), 2u);
  EXPECT_EQ(NearestRank(0, 10), 1u);
  EXPECT_EQ(NearestRank(100, 10), 10u);
  EXPECT_EQ(NearestRank(150, 10), 10u);
  EXPECT_EQ(NearestRank(99.9, 0), 0u);
  EXPECT_EQ(NearestRank(99.9, 1'000'000'000'000), 999'000'000'000u);
  EXPECT_EQ(NearestRank(99.9, UINT64_MAX), UINT64_MAX - UINT64_MAX / 1000);

  Histogram h;  // 999 values of 10 µs and one of 200 µs: unit buckets
  h.RecordN(10, 999);
  h.Record(200);
  EXPECT_EQ(h.Percentile(99.9), 10);
  EXPECT_EQ(h.Percentile(100), 200);
}

TEST(LoadgenHistogram, MergeEqualsRecordingEverything) {
  std::mt19937_64 rng(TestSeed());
  Histogram a, b, all;
  for (int i = 0; i < 5000; ++i) {
    const int64_t v = static_cast<int64_t>(rng() % 1000000);
    (i % 3 == 0 ? a : b).Record(v);
    all.Record(v);
  }
  a.Merge(b);
  EXPECT_EQ(a.count(), all.count());
  for (double p : {50.0, 99.0, 99.9}) EXPECT_EQ(a.Percentile(p), all.Percentile(p));
  EXPECT_EQ(a.min_us(), all.min_us());
  EXPECT_EQ(a.max_us(), all.max_us());
  Histogram empty;
  EXPECT_EQ(empty.Percentile(99), 0);
  EXPECT_EQ(empty.mean_us(), 0);
}

TEST(LoadgenSchedule, ConstantRateSpacesCallsEvenly) {
  ScheduleSpec spec;
  spec.rate = 1000;
  absl::StatusOr<Schedule> s = Schedule::Create(spec);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_DOUBLE_EQ(s->SendTime(0), 0);
  EXPECT_DOUBLE_EQ(s->SendTime(1), 0.001);
  EXPECT_DOUBLE_EQ(s->SendTime(2500), 2.5);
  EXPECT_EQ(s->Describe(), "const 1000/s");
}

TEST(LoadgenSchedule, StepRaisesTheRateEveryStepUntilTheEnd) {
  // 100/s for 2 s, 200/s for 2 s, then 300/s (the end) for ever.
  ScheduleSpec spec;
  spec.kind = ScheduleSpec::Kind::kStep;
  spec.step_start = 100;
  spec.step_size = 100;
  spec.step_duration_s = 2;
  spec.step_end = 300;
  absl::StatusOr<Schedule> s = Schedule::Create(spec);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_DOUBLE_EQ(s->SendTime(0), 0);
  EXPECT_DOUBLE_EQ(s->SendTime(100), 1.0);     // 100/s
  EXPECT_DOUBLE_EQ(s->SendTime(200), 2.0);     // the second step starts
  EXPECT_DOUBLE_EQ(s->SendTime(300), 2.5);     // 200/s
  EXPECT_DOUBLE_EQ(s->SendTime(600), 4.0);     // 200 + 400 calls: the third step
  EXPECT_DOUBLE_EQ(s->SendTime(900), 5.0);     // 300/s
  EXPECT_NEAR(s->SendTime(600 + 3000), 14.0, 1e-9);  // stays at 300/s
  EXPECT_DOUBLE_EQ(s->RateAt(1.9), 100);
  EXPECT_DOUBLE_EQ(s->RateAt(3), 200);
  EXPECT_DOUBLE_EQ(s->RateAt(100), 300);
  // Every interval between calls is 1/rate of the step it falls in.
  for (uint64_t n = 0; n < 2000; ++n) {
    const double t = s->SendTime(n), next = s->SendTime(n + 1);
    ASSERT_LE(t, next);
    ASSERT_NEAR(next - t, 1.0 / s->RateAt(t), 1e-9) << n;
  }
  // Downwards too.
  spec.step_start = 300;
  spec.step_size = -100;
  spec.step_end = 100;
  s = Schedule::Create(spec);
  ASSERT_TRUE(s.ok());
  EXPECT_DOUBLE_EQ(s->SendTime(600), 2.0);
  EXPECT_DOUBLE_EQ(s->SendTime(1000), 4.0);
  EXPECT_DOUBLE_EQ(s->SendTime(1100), 5.0);
}

TEST(LoadgenSchedule, RampSendsTheIntegralOfALinearRate) {
  // 0 → 1000/s over 10 s: N(t) = 50 t², then 1000/s.
  ScheduleSpec spec;
  spec.kind = ScheduleSpec::Kind::kRamp;
  spec.ramp_from = 0;
  spec.ramp_to = 1000;
  spec.ramp_duration_s = 10;
  absl::StatusOr<Schedule> s = Schedule::Create(spec);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_NEAR(s->SendTime(50), 1.0, 1e-9);
  EXPECT_NEAR(s->SendTime(200), 2.0, 1e-9);
  EXPECT_NEAR(s->SendTime(5000), 10.0, 1e-9);
  EXPECT_NEAR(s->SendTime(6000), 11.0, 1e-9);
  // 200 → 100/s over 4 s: N(t) = 200 t − 12.5 t²; N(4) = 600.
  spec.ramp_from = 200;
  spec.ramp_to = 100;
  spec.ramp_duration_s = 4;
  s = Schedule::Create(spec);
  ASSERT_TRUE(s.ok());
  EXPECT_NEAR(s->SendTime(187), 1.0, 0.01);  // N(1) = 187.5
  EXPECT_NEAR(s->SendTime(600), 4.0, 1e-9);
  EXPECT_NEAR(s->SendTime(700), 5.0, 1e-9);
  for (uint64_t n = 0; n < 800; ++n) ASSERT_LE(s->SendTime(n), s->SendTime(n + 1));
}

TEST(LoadgenSchedule, RefusesRatesThatNeverMove) {
  ScheduleSpec spec;
  EXPECT_FALSE(Schedule::Create(spec).ok());  // rate 0
  spec.kind = ScheduleSpec::Kind::kStep;
  spec.step_start = 100;
  spec.step_size = -10;
  spec.step_end = 200;
  spec.step_duration_s = 1;
  EXPECT_FALSE(Schedule::Create(spec).ok());  // moves away from the end
  spec.kind = ScheduleSpec::Kind::kRamp;
  spec.ramp_to = 100;
  spec.ramp_duration_s = 0;
  EXPECT_FALSE(Schedule::Create(spec).ok());
}

// A small snapshot in the formats medsettle-snapshot synth writes.
class LoadgenFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("loadgen-unit-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    std::ofstream persons(Path("persons.csv"));
    persons << "id_number,year,region_code,birth_date,category,tier,assistance,paid_date,"
               "concentrated,newborn,reenrolled_after_gap,status,chronic_conditions,"
               "special_diseases,out_of_area_filings,supplementary_product,"
               "supplementary_pre_existing,supplementary_continuous,voucher_revoked_at_unix,"
               "family_presenter_ids\n";
    for (int i = 0; i < 300; ++i) {
      const char* region = i % 3 == 0 ? "330800" : (i % 3 == 1 ? "330213" : "500231");
      char id[32];
      std::snprintf(id, sizeof id, "%s19800101%04d", region, i);  // 18 characters
      const bool eligible = i % 10 != 9;
      persons << std::string(id).substr(0, 18) << "," << (i % 3 == 1 ? 2025 : 2024) << ","
              << region << ",1980-01-01,ADULT,0,NONE,," << (eligible ? 1 : 0)
              << ",0,0,ACTIVE,,,,,0,0,,\n";
    }
    std::ofstream institutions(Path("institutions.csv"));
    institutions << "institution_id,name,region_code,kind,level,zero_markup,tcm,"
                    "children_or_maternal,base_level,suspended\n"
                    "H3308000002,Quzhou HOSPITAL level 3,330800,HOSPITAL,3,1,0,0,0,0\n"
                    "C3302130003,Fenghua COMMUNITY level 1,330213,COMMUNITY,1,1,0,0,1,0\n"
                    "P3308000007,Quzhou PHARMACY level 2,330800,PHARMACY,2,1,0,0,0,0\n"
                    "P5002310006,Dianjiang PHARMACY level 1,500231,PHARMACY,1,0,0,0,1,0\n"
                    "H5002310011,Dianjiang suspended hospital,500231,HOSPITAL,3,1,0,0,0,1\n";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }
  // disk-floor leaves no medsettle-disk-floor-* file behind.
  void ExpectNoProbeFile() const {
    for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
      EXPECT_EQ(entry.path().filename().string().rfind("medsettle-disk-floor-", 0),
                std::string::npos)
          << entry.path();
    }
  }
  std::string Catalog() const { return std::string(MEDSETTLE_SOURCE_DIR) + "/engine/catalog/demo-catalog.csv"; }

  Population Load() {
    absl::StatusOr<Population> p =
        LoadPopulation(Path("persons.csv"), Path("institutions.csv"), Catalog());
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? *std::move(p) : Population{};
  }

  std::filesystem::path dir_;
};

TEST_F(LoadgenFiles, ReadsEligiblePersonsAndEveryInstitution) {
  Population p = Load();
  EXPECT_EQ(p.persons.size(), 270u);
  EXPECT_EQ(p.persons_skipped, 30u);
  EXPECT_EQ(p.institutions.size(), 5u);
  EXPECT_FALSE(p.catalog.empty());
}

TEST_F(LoadgenFiles, SameSeedSameRequestsAndIdsAreUnique) {
  Population p = Load();
  BuilderOptions options;
  options.seed = 7;
  options.run_id = "lgtest";
  auto a = RequestBuilder::Create(p, options);
  auto b = RequestBuilder::Create(p, options);
  ASSERT_TRUE(a.ok() && b.ok());
  std::set<std::string> ids;
  for (uint64_t seq = 0; seq < 300; ++seq) {
    const CallPlan x = (*a)->Build(seq, 1733300000);
    // Built in another order by another builder: the same bytes.
    const CallPlan y = (*b)->Build(seq, 1733300000);
    ASSERT_EQ(x.settle.SerializeAsString(), y.settle.SerializeAsString()) << seq;
    ASSERT_EQ(x.institution_id, y.institution_id);
    EXPECT_TRUE(ids.insert(x.settle.request_id()).second) << x.settle.request_id();
    EXPECT_EQ(x.settle.request_id(), "lgtest-" + std::to_string(seq));
  }
  options.seed = 8;
  auto c = RequestBuilder::Create(p, options);
  ASSERT_TRUE(c.ok());
  int differ = 0;
  for (uint64_t seq = 0; seq < 50; ++seq) {
    differ += (*a)->Build(seq, 0).settle.SerializeAsString() !=
              (*c)->Build(seq, 0).settle.SerializeAsString();
  }
  EXPECT_GT(differ, 40);
}

TEST_F(LoadgenFiles, MixProportionsAndBillShapes) {
  Population p = Load();
  BuilderOptions options;
  options.seed = TestSeed();
  SCOPED_TRACE(testing::Message() << "MEDSETTLE_SEED=" << options.seed);
  auto builder = RequestBuilder::Create(p, options);
  ASSERT_TRUE(builder.ok()) << builder.status();
  constexpr int kCalls = 6000;
  int counts[kScenarioCount] = {};
  for (uint64_t seq = 0; seq < kCalls; ++seq) {
    const CallPlan plan = (*builder)->Build(seq, 0);
    ++counts[static_cast<int>(plan.scenario)];
    const auto& r = plan.settle;
    int64_t total = 0;
    for (const auto& item : r.items()) {
      ASSERT_EQ(item.amount_cents(), std::stoll(item.quantity()) * item.unit_price_cents());
      total += item.amount_cents();
    }
    ASSERT_GT(total, 0);
    const std::string region = r.credential().id_card_no().substr(0, 6);
    switch (plan.scenario) {
      case Scenario::kPharmacy:
        ASSERT_EQ(plan.institution_id[0], 'P');
        ASSERT_GE(r.items_size(), 1);
        ASSERT_LE(r.items_size(), 5);
        break;
      case Scenario::kOutpatient:
        ASSERT_TRUE(plan.institution_id[0] == 'H' || plan.institution_id[0] == 'C');
        break;
      case Scenario::kInpatient:
        ASSERT_EQ(plan.institution_id[0], 'H');
        ASSERT_NE(plan.institution_id, "H5002310011");  // suspended: never called
        ASSERT_GE(r.items_size(), 50);
        ASSERT_LE(r.items_size(), 5000);
        ASSERT_LT(r.visit().admission_date(), r.visit().discharge_date());
        break;
    }
    // The person is of the institution's region.
    const InstitutionRow* row = nullptr;
    for (const InstitutionRow& i : p.institutions) {
      if (i.id == plan.institution_id) row = &i;
    }
    ASSERT_NE(row, nullptr);
    ASSERT_EQ(region, row->region_code);
  }
  // 60 / 30 / 10 within ±2.5 percentage points.
  EXPECT_NEAR(counts[0] * 100.0 / kCalls, 60, 2.5);
  EXPECT_NEAR(counts[1] * 100.0 / kCalls, 30, 2.5);
  EXPECT_NEAR(counts[2] * 100.0 / kCalls, 10, 2.5);

  absl::StatusOr<Mix> mix = ParseMix("inpatient=1,pharmacy=3");
  ASSERT_TRUE(mix.ok());
  EXPECT_EQ(mix->ToString(), "pharmacy=3,outpatient=0,inpatient=1");
  EXPECT_FALSE(ParseMix("pharmacy=60,surgery=40").ok());
  EXPECT_FALSE(ParseMix("pharmacy=0").ok());
  EXPECT_FALSE(ParseMix("pharmacy").ok());
}

TEST_F(LoadgenFiles, CallersOfOneKindLeaveTheOtherScenariosOut) {
  Population p = Load();
  BuilderOptions options;
  options.callers = {"P3308000007"};
  auto builder = RequestBuilder::Create(p, options);
  ASSERT_TRUE(builder.ok()) << builder.status();
  EXPECT_EQ((*builder)->effective_mix().ToString(), "pharmacy=60,outpatient=0,inpatient=0");
  EXPECT_EQ((*builder)->notes().size(), 2u);
  for (uint64_t seq = 0; seq < 100; ++seq) {
    EXPECT_EQ((*builder)->Build(seq, 0).institution_id, "P3308000007");
  }
  options.mix = *ParseMix("inpatient=1");
  EXPECT_FALSE(RequestBuilder::Create(p, options).ok());
}

// The command line: exit 2 and a message naming what is wrong.
struct Refusal {
  std::vector<std::string> args;
  std::string message;
};

TEST_F(LoadgenFiles, BadOptionsExitTwoNamingTheCulprit) {
  const std::string persons = Path("persons.csv");
  const std::string institutions = Path("institutions.csv");
  // Nobody listens there: a refusal must come before any call.
  const std::vector<std::string> base = {"--target", "127.0.0.1:9", "--insecure-dev",
                                         "--persons", persons, "--institutions", institutions,
                                         "--duration", "1", "--quiet"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
  const std::vector<Refusal> cases = {
      {with({"--method", "Frobnicate"}), "--method: unknown method \"Frobnicate\""},
      {with({"--bogus"}), "--bogus"},
      {with({"--mix", "pharmacy=60,surgery=40"}), "unknown scenario \"surgery\""},
      {with({"--rate", "100", "--concurrency", "5"}), "not both"},
      {with({"--rate", "-3"}), "--rate must be > 0"},
      {with({"--schedule", "step", "--rate", "10", "--step-size", "5", "--step-end", "100"}),
       "--step-duration must be > 0"},
      {with({"--schedule", "zigzag", "--rate", "10"}), "zigzag"},
      {{"--insecure-dev", "--persons", persons, "--institutions", institutions, "--count", "10",
        "--duration", "3"},
       "--duration or --count"},
      {with({"--retry-ratio", "1.5"}), "--retry-ratio"},
      {with({"--institution", "H0000000000"}), "--institution H0000000000 is not in --institutions"},
      {{"--insecure-dev", "--persons", Path("missing.csv"), "--institutions", institutions},
       "cannot read --persons " + Path("missing.csv")},
      {{"--insecure-dev", "--persons", persons, "--institutions", Path("nope.csv")},
       "cannot read --institutions"},
      {{"--insecure-dev", "--institutions", institutions}, "--persons FILE is required"},
      {with({"--voucher-key", Path("persons.csv")}), "--voucher-key needs --key-file"},
      {{"--target", "127.0.0.1:9", "--persons", persons, "--institutions", institutions},
       "--insecure-dev"},
      {{"--ca", Path("nope-ca.pem"), "--cert", persons, "--key", persons, "--persons", persons,
        "--institutions", institutions},
       "cannot read --ca"},
      {{"--ca", persons, "--cert", persons, "--key", persons, "--persons", persons,
        "--institutions", institutions},
       "--ca " + persons + " holds no PEM certificate"},
      {with({"--json", Path("no/such/dir/r.json")}), "cannot write --json"},
      {{"compare", Path("a.json")}, "files"},
      {{"serve-echo", "--insecure-dev", "--listen", "0.0.0.0:0"}, "loopback"},
      {{"serve-echo", "--tls-cert", Path("x.pem"), "--tls-key", Path("x.pem"), "--tls-client-ca",
        Path("x.pem")},
       "cannot read --tls-cert"},
      {{"disk-floor"}, "--dir is required"},
      {{"disk-floor", "--dir", Path("no-such-dir")},
       "--dir: " + Path("no-such-dir") + " is not a directory"},
      {{"disk-floor", "--dir", persons}, "--dir: " + persons + " is not a directory"},
      {{"disk-floor", "--dir", Path(""), "--bytes", "0"}, "--bytes: 1 to 1048576 per append"},
      {{"disk-floor", "--dir", Path(""), "--rate", "-1"},
       "--rate: appends per second, 1 to 1000000, or 0 for back to back"},
      {{"disk-floor", "--dir", Path(""), "--rate", "0.5"}, "--rate: appends per second"},
      {{"disk-floor", "--dir", Path(""), "--duration", "soon"},
       "--duration: \"soon\" is not a duration"},
      {{"disk-floor", "--dir", Path(""), "--duration", "3", "--count", "5"},
       "give --duration or --count, not both"},
      {{"disk-floor", "--dir", Path(""), "--count", "1000000", "--bytes", "4096"},
       "--count: 1000000 appends of 4096 bytes would write more than 1073741824 bytes"},
      {{"disk-floor", "--dir", Path(""), "--count", "700000", "--rate", "1"},
       "--count: at --rate it would run for more than 7 days"},
      {{"disk-floor", "--dir", Path(""), "-n", "3", "--json", Path("no/such/dir/f.json")},
       "cannot write --json " + Path("no/such/dir/f.json")},
  };
  // Nothing refused may touch the directory: no probe file made and removed.
  const auto untouched = std::filesystem::last_write_time(dir_);
  for (const Refusal& c : cases) {
    std::ostringstream out, err;
    std::string joined;
    for (const std::string& a : c.args) joined += a + " ";
    const int code = loadgen::Run(c.args, out, err, ToolEnv{});
    EXPECT_EQ(code, kExitUsage) << joined << "\n" << err.str();
    EXPECT_NE(err.str().find(c.message), std::string::npos)
        << joined << "\nwanted: " << c.message << "\ngot: " << err.str();
    EXPECT_EQ(out.str().find("Summary"), std::string::npos) << joined;
    EXPECT_EQ(out.str().find("Disk floor"), std::string::npos) << joined;
  }
  EXPECT_EQ(std::filesystem::last_write_time(dir_), untouched);
  // No refused disk-floor left a probe file behind (or made one).
  ExpectNoProbeFile();
}

// The disk floor probe: every append timed, its file gone afterwards, the
// text and JSON carrying the same figures; a stop before the first append
// measures nothing and still removes the file; back to back stops at the
// file limit.
TEST_F(LoadgenFiles, DiskFloorTimesEveryAppendAndLeavesNothingBehind) {
  // A quote in the directory's name: the JSON must escape it.
  const std::filesystem::path probe_dir = dir_ / "pro\"be";
  std::filesystem::create_directories(probe_dir);
  const DiskFloorOptions options{.dir = probe_dir.string(), .rate = 0, .count = 40, .bytes = 512};
  ASSERT_TRUE(ValidateDiskFloor(options).ok());
  absl::StatusOr<DiskFloorResult> r = MeasureDiskFloor(options, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->latency.count(), 40u);
  EXPECT_FALSE(r->stopped);
  EXPECT_FALSE(r->capped);
  EXPECT_LE(r->over_10ms, r->over_5ms);
  EXPECT_LE(r->over_5ms, r->over_1ms);
  EXPECT_LE(r->over_1ms, 40u);
  EXPECT_TRUE(std::filesystem::is_empty(probe_dir));

  const std::string text = FormatDiskFloor(options, *r);
  EXPECT_NE(text.find("Appends:\t40 in "), std::string::npos) << text;
  EXPECT_NE(text.find("append 512 bytes + fdatasync, back to back"), std::string::npos) << text;
  EXPECT_NE(text.find("over 1 ms:\t" + std::to_string(r->over_1ms) + "\n"), std::string::npos)
      << text;
  const std::string json = DiskFloorJson(options, *r);
  EXPECT_NE(json.find("{\"dir\":\"" + dir_.string() + "/pro\\\"be\",\"bytes\":512,"),
            std::string::npos)
      << json;
  EXPECT_NE(json.find("\"appends\":40,"), std::string::npos) << json;
  EXPECT_NE(json.find("\"max_us\":" + std::to_string(r->latency.max_us()) + ","),
            std::string::npos)
      << json;
  EXPECT_NE(json.find("\"over_5ms\":" + std::to_string(r->over_5ms) + ","), std::string::npos)
      << json;

  std::atomic<bool> stop{true};
  absl::StatusOr<DiskFloorResult> stopped = MeasureDiskFloor(options, &stop);
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_TRUE(stopped->stopped);
  EXPECT_EQ(stopped->latency.count(), 0u);
  EXPECT_TRUE(std::filesystem::is_empty(probe_dir));

  // Back to back for a long duration: the file limit ends it, and says so.
  const DiskFloorOptions capped_options{
      .dir = probe_dir.string(), .rate = 0, .duration_s = 3600, .bytes = 100,
      .max_file_bytes = 2000};
  absl::StatusOr<DiskFloorResult> capped = MeasureDiskFloor(capped_options, nullptr);
  ASSERT_TRUE(capped.ok()) << capped.status();
  EXPECT_TRUE(capped->capped);
  EXPECT_EQ(capped->latency.count(), 20u);
  EXPECT_NE(FormatDiskFloor(capped_options, *capped).find("stopped at the file limit, 2000 bytes"),
            std::string::npos);
  EXPECT_TRUE(std::filesystem::is_empty(probe_dir));
}

TEST(LoadgenDiskFloor, CountsAppendsStrictlyOverEachThreshold) {
  using std::chrono::microseconds;
  DiskFloorResult r;
  for (int64_t us : {1000, 1001, 5000, 5001, 10000, 10001, 20}) r.Record(microseconds(us));
  r.Record(std::chrono::nanoseconds(1'000'001));
  EXPECT_EQ(r.latency.count(), 8u);
  EXPECT_EQ(r.over_1ms, 6u);   // 1001, 5000, 5001, 10000, 10001 and 1000.001
  EXPECT_EQ(r.over_5ms, 3u);   // 5001, 10000, 10001
  EXPECT_EQ(r.over_10ms, 1u);  // 10001
  EXPECT_EQ(r.latency.max_us(), 10001);
}

// A stop is seen while the probe waits for its next append, not after it.
TEST_F(LoadgenFiles, DiskFloorStopsWithinTheIntervalItWaits) {
  const DiskFloorOptions options{.dir = dir_.string(), .rate = 1, .count = 5, .bytes = 64};
  std::atomic<bool> stop{false};
  std::thread stopper([&stop] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    stop.store(true);
  });
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<DiskFloorResult> r = MeasureDiskFloor(options, &stop);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  stopper.join();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->stopped);
  EXPECT_EQ(r->latency.count(), 1u);  // the first is due at once, the second after 1 s
  EXPECT_LT(elapsed, std::chrono::milliseconds(900));  // 4 s unstopped
  ExpectNoProbeFile();
}

TEST_F(LoadgenFiles, DiskFloorCommandKeepsItsRateAndWritesItsFigures) {
  std::ostringstream out, err;
  const auto start = std::chrono::steady_clock::now();
  // 5 appends at 200/s: the last is due 20 ms after the first.
  const int code = loadgen::Run({"disk-floor", "--dir", dir_.string(), "--rate", "200", "-n",
                                 "5", "--json", Path("floor.json")},
                                out, err, ToolEnv{});
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(code, kExitOk) << err.str();
  EXPECT_GE(elapsed, std::chrono::milliseconds(20));
  EXPECT_NE(out.str().find("Appends:\t5 in "), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("p99.9:"), std::string::npos) << out.str();
  std::ifstream json(Path("floor.json"));
  std::stringstream body;
  body << json.rdbuf();
  EXPECT_NE(body.str().find("\"appends\":5,\"elapsed_s\":"), std::string::npos) << body.str();
  EXPECT_NE(body.str().find("\"rate\":200,"), std::string::npos) << body.str();
  ExpectNoProbeFile();
}

TEST(LoadgenReport, CompareShowsRatios) {
  v1::LoadReport a, b;
  a.mutable_summary()->set_count(1000);
  a.mutable_summary()->set_rps(500);
  b.mutable_summary()->set_count(2000);
  b.mutable_summary()->set_rps(1000);
  for (double p : kPercentiles) {
    a.add_percentiles()->set_percentile(p);
    a.mutable_percentiles()->rbegin()->set_latency_us(1000);
    b.add_percentiles()->set_percentile(p);
    b.mutable_percentiles()->rbegin()->set_latency_us(1500);
  }
  const std::string table = CompareReports(a, b, "a.json", "b.json");
  EXPECT_NE(table.find("throughput      500.0/s         1000.0/s        2.000"), std::string::npos)
      << table;
  EXPECT_NE(table.find("p99             1.00 ms         1.50 ms         1.500"), std::string::npos)
      << table;
  EXPECT_DOUBLE_EQ(Median({3, 1, 2}), 2);
  EXPECT_DOUBLE_EQ(Median({4, 1, 2, 3}), 2.5);
}

}  // namespace
}  // namespace medsettle::loadgen
