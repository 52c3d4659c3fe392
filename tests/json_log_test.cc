// logging/json_log.h: every line is one JSON object that a strict parser
// reads back (whatever a caller sent), the rate limit per event, levels.
#include "logging/json_log.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace medsettle::logging {
namespace {

struct Captured {
  std::vector<std::string> lines;
  int64_t now_us = 1'733'300'400'123'456;  // 2024-12-04T16:20:00.123456+08:00
  LogOptions Options(double per_second = 0, double burst = 0) {
    LogOptions o;
    o.lines_per_second = per_second;
    o.burst = burst;
    o.sink = [this](std::string_view line) { lines.emplace_back(line); };
    o.now_us = [this] { return now_us; };
    return o;
  }
};

// Parses a line with protobuf's strict JSON parser.
google::protobuf::Struct Parse(const std::string& line) {
  google::protobuf::Struct s;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(line, &s).ok()) << line;
  return s;
}

TEST(JsonLog, WritesOneJsonObjectPerLine) {
  Captured c;
  JsonLog log(c.Options());
  ASSERT_TRUE(log.Write(Level::kWarn, "call_refused",
                        {{"method", "Settle"},
                         {"request_id", "R-1"},
                         {"status", "INVALID_ARGUMENT"},
                         {"duration_ms", 1.25},
                         {"retries", 2},
                         {"replayed", false}}));
  ASSERT_EQ(c.lines.size(), 1u);
  EXPECT_EQ(c.lines[0],
            "{\"time\":\"2024-12-04T16:20:00.123+08:00\",\"level\":\"warn\","
            "\"event\":\"call_refused\",\"method\":\"Settle\",\"request_id\":\"R-1\","
            "\"status\":\"INVALID_ARGUMENT\",\"duration_ms\":1.25,\"retries\":2,"
            "\"replayed\":false}\n");
  const google::protobuf::Struct s = Parse(c.lines[0]);
  EXPECT_EQ(s.fields().at("event").string_value(), "call_refused");
}

TEST(JsonLog, WhatCallersSendCannotBreakALineOrForgeAField) {
  Captured c;
  JsonLog log(c.Options());
  const std::string hostile =
      std::string("R\"},\"level\":\"error\n{\"x\":1\\ \t\x01\x7f 浙江") + "\xff\xc3(" + "\xed\xa0\x80";
  ASSERT_TRUE(log.Write(Level::kInfo, "call_refused", {{"request_id", hostile}}));
  ASSERT_EQ(c.lines.size(), 1u);
  const std::string& line = c.lines[0];
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "one line: " << line;
  const google::protobuf::Struct s = Parse(line);
  EXPECT_EQ(s.fields().at("level").string_value(), "info") << "not forged";
  const std::string back = s.fields().at("request_id").string_value();
  EXPECT_EQ(back.substr(0, 21), "R\"},\"level\":\"error\n{\"");
  EXPECT_NE(back.find("浙江"), std::string::npos) << "valid UTF-8 passes through";
  EXPECT_NE(back.find("\xef\xbf\xbd"), std::string::npos) << "invalid UTF-8 is replaced";
  EXPECT_EQ(back.find('\xff'), std::string::npos);
  EXPECT_NE(line.find("\\u0001"), std::string::npos);
  EXPECT_NE(line.find("\\u007f"), std::string::npos);
}

TEST(JsonLog, NonFiniteNumbersAreNull) {
  Captured c;
  JsonLog log(c.Options());
  log.Write(Level::kInfo, "e", {{"x", 1.0 / 0.0}});
  EXPECT_NE(c.lines.at(0).find("\"x\":null"), std::string::npos) << c.lines[0];
  Parse(c.lines[0]);
}

TEST(JsonLog, LevelsBelowTheMinimumAreNotWritten) {
  Captured c;
  LogOptions o = c.Options();
  o.min_level = Level::kWarn;
  JsonLog log(o);
  EXPECT_FALSE(log.Write(Level::kInfo, "e", {}));
  EXPECT_TRUE(log.Write(Level::kError, "e", {}));
  EXPECT_EQ(c.lines.size(), 1u);
  Level l;
  EXPECT_TRUE(ParseLevel("debug", &l));
  EXPECT_EQ(l, Level::kDebug);
  EXPECT_FALSE(ParseLevel("verbose", &l));
}

TEST(JsonLog, AFloodIsCutToTheRateAndTheNextLineSaysHowManyWereDropped) {
  Captured c;
  JsonLog log(c.Options(/*per_second=*/10, /*burst=*/5));
  for (int i = 0; i < 1000; ++i) log.Write(Level::kWarn, "call_refused", {{"i", i}});
  EXPECT_EQ(c.lines.size(), 5u) << "the burst, then nothing";
  EXPECT_EQ(log.suppressed_total(), 995u);
  // Another event has its own bucket.
  EXPECT_TRUE(log.Write(Level::kError, "redis_down", {}));
  // A second later: 10 tokens; the first line reports the 995 dropped.
  c.now_us += 1'000'000;
  for (int i = 0; i < 100; ++i) log.Write(Level::kWarn, "call_refused", {{"i", i}});
  ASSERT_EQ(c.lines.size(), 6u + 5u) << "the bucket holds at most `burst`";
  EXPECT_NE(c.lines[6].find("\"suppressed\":995}"), std::string::npos) << c.lines[6];
  EXPECT_EQ(c.lines[7].find("suppressed"), std::string::npos);
  // Over an hour of a constant flood: at most rate × time + burst lines.
  Captured flood;
  JsonLog limited(flood.Options(20, 100));
  for (int s = 0; s < 3600; ++s) {
    for (int i = 0; i < 50; ++i) {
      limited.Write(Level::kWarn, "call_refused", {{"i", i}});
      flood.now_us += 20'000;  // 50 lines a second
    }
  }
  EXPECT_LE(flood.lines.size(), 20u * 3600 + 100);
  EXPECT_GE(flood.lines.size(), 20u * 3600 - 1);
}

TEST(JsonLog, ConcurrentWritersProduceWholeLines) {
  Captured c;
  std::mutex m;
  LogOptions o = c.Options();
  o.sink = [&](std::string_view line) {
    std::lock_guard<std::mutex> lock(m);
    c.lines.emplace_back(line);
  };
  JsonLog log(o);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&log, t] {
      for (int i = 0; i < 500; ++i) log.Write(Level::kInfo, "e", {{"t", t}, {"i", i}});
    });
  }
  for (std::thread& t : threads) t.join();
  ASSERT_EQ(c.lines.size(), 2000u);
  for (const std::string& line : c.lines) Parse(line);
}

}  // namespace
}  // namespace medsettle::logging
