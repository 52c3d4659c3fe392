// The engine's building blocks: the one rounding function, exact decimals,
// dates, region codes and the catalog parser.
#include <gtest/gtest.h>

#include "engine/catalog.h"
#include "engine/date.h"
#include "engine/money.h"
#include "engine/status.h"
#include "engine/types.h"

namespace medsettle::engine {
namespace {

TEST(Money, RoundHalfUpRoundsHalvesUp) {
  EXPECT_EQ(RoundHalfUpDiv(5, 10), 1);   // 0.5 → 1
  EXPECT_EQ(RoundHalfUpDiv(4, 10), 0);   // 0.4 → 0
  EXPECT_EQ(RoundHalfUpDiv(15, 10), 2);  // 1.5 → 2
  EXPECT_EQ(RoundHalfUpDiv(25, 10), 3);  // 2.5 → 3 (not banker's)
  EXPECT_EQ(ApplyRatio(333, 5000), 167);  // 166.5 → 167
  EXPECT_EQ(ApplyRatio(1, 4999), 0);      // 0.4999 → 0
  EXPECT_EQ(ApplyRatio(kMaxAmountCents, kFullRatioBp), kMaxAmountCents);
}

TEST(Money, CeilDiv) {
  EXPECT_EQ(CeilDiv(10, 5), 2);
  EXPECT_EQ(CeilDiv(11, 5), 3);
  EXPECT_EQ(CeilDiv(0, 5), 0);
}

TEST(Money, QuantityParsesExactDecimals) {
  EXPECT_EQ(ParseQuantity("2"), (Quantity{2, 0}));
  EXPECT_EQ(ParseQuantity("0.5"), (Quantity{5, 1}));
  EXPECT_EQ(ParseQuantity("1.2500"), (Quantity{12500, 4}));
  for (const char* bad : {"", "-1", "1.", ".5", "1.23456", "1e3", "abc", "1,5", "2000000000"}) {
    EXPECT_FALSE(ParseQuantity(bad).has_value()) << bad;
  }
  EXPECT_EQ(FormatQuantity(Quantity{5, 1}), "0.5");
  EXPECT_EQ(FormatQuantity(Quantity{5, 3}), "0.005");
}

TEST(Money, QuantityTimesPriceRoundsHalfUp) {
  EXPECT_EQ(MultiplyQuantity(*ParseQuantity("2.5"), 333), 833);   // 832.5 → 833
  EXPECT_EQ(MultiplyQuantity(*ParseQuantity("0.333"), 100), 33);  // 33.3 → 33
  EXPECT_EQ(MultiplyQuantity(*ParseQuantity("3"), 1250), 3750);
  EXPECT_FALSE(MultiplyQuantity(*ParseQuantity("1000000000"), kMaxAmountCents).has_value());
}

TEST(Money, YuanAndPercent) {
  EXPECT_EQ(ParseYuan("8916.5"), 891650);
  EXPECT_EQ(ParseYuan("800"), 80000);
  EXPECT_EQ(ParseYuan("0.01"), 1);
  EXPECT_FALSE(ParseYuan("1.001").has_value());
  EXPECT_FALSE(ParseYuan("-1").has_value());
  EXPECT_EQ(ParsePercent("85"), 8500);
  EXPECT_EQ(ParsePercent("92.5"), 9250);
  EXPECT_FALSE(ParsePercent("100.01").has_value());
  EXPECT_EQ(FormatYuan(891650), "8916.50");
  EXPECT_EQ(FormatYuan(-5), "-0.05");
  EXPECT_EQ(FormatPercent(9250), "92.5%");
  EXPECT_EQ(FormatPercent(8500), "85%");
}

TEST(Date, ParsesStrictIsoDates) {
  EXPECT_EQ(Date::Parse("2024-02-29")->ToString(), "2024-02-29");
  for (const char* bad : {"2023-02-29", "2024-13-01", "2024-1-01", "20240101", "", "2024-04-31"}) {
    EXPECT_FALSE(Date::Parse(bad).has_value()) << bad;
  }
}

TEST(Date, MonthArithmetic) {
  EXPECT_EQ(Date::Parse("2024-11-30")->AddMonthsClamped(3).ToString(), "2025-02-28");
  EXPECT_EQ(Date::Parse("2024-03-15")->AddMonthsClamped(3).ToString(), "2024-06-15");
  EXPECT_EQ(Date::Parse("2024-03-15")->FirstOfMonthAfter(2).ToString(), "2024-05-01");
  EXPECT_EQ(Date::Parse("2024-12-15")->FirstOfMonthAfter(1).ToString(), "2025-01-01");
  EXPECT_EQ(Date::Parse("2024-03-10")->AddDays(90).ToString(), "2024-06-08");
}

TEST(Date, EighteenthBirthdayIsTheFirstAdultDay) {
  EXPECT_TRUE(IsMinorOn(*Date::Parse("2006-05-10"), *Date::Parse("2024-05-09")));
  EXPECT_FALSE(IsMinorOn(*Date::Parse("2006-05-10"), *Date::Parse("2024-05-10")));
  EXPECT_TRUE(IsMinorOn(*Date::Parse("2004-02-29"), *Date::Parse("2022-02-28")));
  EXPECT_FALSE(IsMinorOn(*Date::Parse("2004-02-29"), *Date::Parse("2022-03-01")));
}

TEST(Date, Rfc3339) {
  EXPECT_EQ(ParseRfc3339("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(FormatRfc3339(0, 0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(FormatRfc3339(0, 480), "1970-01-01T08:00:00+08:00");
  EXPECT_EQ(FormatRfc3339(-1, 0), "1969-12-31T23:59:59Z");
  EXPECT_EQ(FormatRfc3339(1732327200, -330), "2024-11-22T20:30:00-05:30");
  EXPECT_EQ(ParseRfc3339(FormatRfc3339(1732327200, 480)), 1732327200);
  EXPECT_EQ(ParseRfc3339("1970-01-01T08:00:00+08:00"), 0);
  EXPECT_EQ(ParseRfc3339("1970-01-01T00:00:01.250Z"), 1);
  EXPECT_FALSE(ParseRfc3339("1970-01-01 00:00:00Z").has_value());
  EXPECT_FALSE(ParseRfc3339("1970-01-01T00:00:00").has_value());
}

TEST(Region, TrailingZeroPairsWiden) {
  EXPECT_TRUE(RegionCovers(330000, 330213));
  EXPECT_TRUE(RegionCovers(330200, 330213));
  EXPECT_FALSE(RegionCovers(330800, 330213));
  EXPECT_TRUE(RegionCovers(330213, 330213));
  EXPECT_FALSE(RegionCovers(330213, 330200));
  EXPECT_TRUE(RegionCovers(500000, 500231));
  EXPECT_FALSE(IsValidRegionCode(12345));
}

constexpr std::string_view kHeader = "code,name,class,selfpay_ratio_bp,price_cap_cents,tcm\n";

TEST(Catalog, ParsesItems) {
  auto catalog = Catalog::Parse("c.csv", std::string(kHeader) +
                                             "# comment\nX1,\"name, with comma\",B,1000,250,1\n"
                                             "X2,plain,A,0,,0\n");
  ASSERT_TRUE(catalog.ok()) << catalog.status();
  ASSERT_EQ(catalog->size(), 2u);
  const CatalogItem* x1 = catalog->Find("X1");
  ASSERT_NE(x1, nullptr);
  EXPECT_EQ(x1->name, "name, with comma");
  EXPECT_EQ(x1->item_class, ItemClass::kB);
  EXPECT_EQ(x1->selfpay_ratio_bp, 1000);
  EXPECT_EQ(x1->price_cap_cents, 250);
  EXPECT_TRUE(x1->tcm);
  EXPECT_FALSE(catalog->Find("X2")->price_cap_cents.has_value());
  EXPECT_EQ(catalog->Find("nope"), nullptr);
}

TEST(Catalog, RefusesBadFilesNamingLineAndColumn) {
  struct Case {
    std::string text;
    std::string column;
  } cases[] = {
      {"code,name\nX,y\n", ""},
      {std::string(kHeader) + "X1,n,D,0,,0\n", "class"},
      {std::string(kHeader) + "X1,n,B,10001,,0\n", "selfpay_ratio_bp"},
      {std::string(kHeader) + "X1,n,A,500,,0\n", "selfpay_ratio_bp"},
      {std::string(kHeader) + "X1,n,A,0,-5,0\n", "price_cap_cents"},
      {std::string(kHeader) + "X1,n,A,0,,2\n", "tcm"},
      {std::string(kHeader) + "X1,n,A,0,,0\nX1,n,A,0,,0\n", "code"},
      {std::string(kHeader) + "X1,n,A,0\n", ""},
  };
  for (const Case& c : cases) {
    auto catalog = Catalog::Parse("bad.csv", c.text);
    ASSERT_FALSE(catalog.ok()) << c.text;
    EXPECT_EQ(catalog.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(ReasonOf(catalog.status()), "CATALOG_FILE_INVALID");
    EXPECT_EQ(FieldOf(catalog.status()), c.column) << c.text;
    EXPECT_NE(std::string(catalog.status().message()).find("bad.csv:"), std::string::npos);
  }
}

}  // namespace
}  // namespace medsettle::engine
