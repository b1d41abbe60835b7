#include "core/clock.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>

namespace medic {
namespace {

TEST(ClockTest, FormatRfc3339) {
  struct Case {
    int64_t ms;
    std::string want;
  };
  const Case kCases[] = {
      {0, "1970-01-01T00:00:00.000Z"},
      {1, "1970-01-01T00:00:00.001Z"},
      {1'800'000'000'123, "2027-01-15T08:00:00.123Z"},
      {1'709'164'800'000, "2024-02-29T00:00:00.000Z"},
      {-1, "1969-12-31T23:59:59.999Z"},
      {-1'000, "1969-12-31T23:59:59.000Z"},
      {-1'001, "1969-12-31T23:59:58.999Z"},
      {9'223'372'036'854, "2262-04-11T23:47:16.854Z"},
      {-9'223'372'036'854, "1677-09-21T00:12:43.146Z"},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.ms);
    EXPECT_EQ(FormatRfc3339(FromUnixMillis(c.ms)), c.want);
  }
}

TEST(ClockTest, FormatTruncatesBelowMilliseconds) {
  const WallTime t = FromUnixMillis(1'000) + std::chrono::microseconds(999);
  EXPECT_EQ(FormatRfc3339(t), "1970-01-01T00:00:01.000Z");
}

TEST(ClockTest, ParseRfc3339Accepts) {
  struct Case {
    std::string text;
    int64_t want_ms;
  };
  const Case kCases[] = {
      {"1970-01-01T00:00:00Z", 0},
      {"1970-01-01T00:00:00.000Z", 0},
      {"2027-01-15T08:00:00.123Z", 1'800'000'000'123},
      {"2027-01-15t08:00:00.123z", 1'800'000'000'123},
      {"2027-01-15 08:00:00.123Z", 1'800'000'000'123},
      // Fractions of any length; beyond milliseconds they are truncated.
      {"2027-01-15T08:00:00.1Z", 1'800'000'000'100},
      {"2027-01-15T08:00:00.12Z", 1'800'000'000'120},
      {"2027-01-15T08:00:00.123456789Z", 1'800'000'000'123},
      {"2027-01-15T08:00:00.9999Z", 1'800'000'000'999},
      // Offsets: local time minus offset is UTC.
      {"2027-01-15T10:00:00+02:00", 1'800'000'000'000},
      {"2027-01-15T02:30:00-05:30", 1'800'000'000'000},
      {"2027-01-15T08:00:00+00:00", 1'800'000'000'000},
      {"2027-01-15T08:00:00-00:00", 1'800'000'000'000},
      {"2027-01-15T09:00:00.500+01:00", 1'800'000'000'500},
      {"2027-01-16T07:59:00+23:59", 1'800'000'000'000},
      // Calendar edges.
      {"2024-02-29T00:00:00Z", 1'709'164'800'000},
      {"2000-02-29T00:00:00Z", 951'782'400'000},
      {"1969-12-31T23:59:59Z", -1'000},
      {"2026-12-31T23:59:59Z", 1'798'761'599'000},
      // The range a WallTime holds.
      {"2262-04-11T23:47:16.854Z", 9'223'372'036'854},
      {"1677-09-21T00:12:43.146Z", -9'223'372'036'854},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.text);
    Result<WallTime> t = ParseRfc3339(c.text);
    ASSERT_TRUE(t.has_value()) << t.error().ToString();
    EXPECT_EQ(ToUnixMillis(*t), c.want_ms);
  }
}

TEST(ClockTest, ParseRfc3339RejectsGarbage) {
  const std::string kCases[] = {
      "",
      "garbage",
      "2027-01-15",
      "2027-01-15T08:00:00",       // no zone
      "2027-01-15T08:00Z",         // no seconds
      "2027-01-15T08:00:00.Z",     // empty fraction
      "2027-01-15T08:00:00,123Z",  // comma fraction
      "2027-01-15T08:00:00ZZ",
      "2027-01-15T08:00:00Z ",
      " 2027-01-15T08:00:00Z",
      "2027-01-15T08:00:00Zjunk",
      "2027-01-15T08:00:00+0200",
      "2027-01-15T08:00:00+02",
      "2027-01-15T08:00:00+02:00:00",
      "2027-01-15T08:00:00+2:00",
      "2027-01-15T08:00:00+ab:cd",
      "2027-01-15T08:00:00+24:00",  // offsets are at most 23:59
      "2027-01-15T08:00:00+02:60",
      "2027-01-15X08:00:00Z",
      "2027/01/15T08:00:00Z",
      "2027-1-15T08:00:00Z",
      "27-01-15T08:00:00Z",
      "+2027-01-15T08:00:00Z",
      "-027-01-15T08:00:00Z",
      "2027-00-15T08:00:00Z",
      "2027-13-15T08:00:00Z",
      "2027-01-00T08:00:00Z",
      "2027-01-32T08:00:00Z",
      "2027-02-30T08:00:00Z",  // no such day
      "2027-02-29T08:00:00Z",  // not a leap year
      "1900-02-29T08:00:00Z",  // not a leap year either
      "2027-04-31T08:00:00Z",
      "2027-01-15T24:00:00Z",
      "2027-01-15T08:60:00Z",
      "2027-01-15T08:00:61Z",
      "2027-01-15T-8:00:00Z",
      "2262-04-11T23:47:16.855Z",  // beyond what a WallTime holds
      "9999-12-31T23:59:59Z",
      "1000-01-01T00:00:00Z",
      "2027-01-15T08:00:00.-1Z",
      "\xef\xbc\x92\xef\xbc\x90\xef\xbc\x92\xef\xbc\x97-01-15T08:00:00Z",  // fullwidth digits
      std::string("2027-01-15T08:00:00Z\0", 21),
  };
  for (const std::string& text : kCases) {
    SCOPED_TRACE(text);
    Result<WallTime> t = ParseRfc3339(text);
    if (t.has_value()) {
      ADD_FAILURE() << "parsed as " << FormatRfc3339(*t);
      continue;
    }
    EXPECT_EQ(t.error().code, ErrorCode::kInvalidArgument);
  }
}

TEST(ClockTest, FormatThenParseRoundTrips) {
  for (int64_t ms :
       {int64_t{0}, int64_t{1}, int64_t{-1}, int64_t{1'800'000'000'123}, int64_t{951'782'400'999},
        int64_t{9'223'372'036'854}, int64_t{-9'223'372'036'854}}) {
    SCOPED_TRACE(ms);
    Result<WallTime> t = ParseRfc3339(FormatRfc3339(FromUnixMillis(ms)));
    ASSERT_TRUE(t.has_value()) << t.error().ToString();
    EXPECT_EQ(ToUnixMillis(*t), ms);
  }
}

TEST(ClockTest, UnixMillisConversionsAreInverse) {
  for (int64_t ms : {int64_t{0}, int64_t{-5}, int64_t{1'800'000'000'123}}) {
    SCOPED_TRACE(ms);
    EXPECT_EQ(ToUnixMillis(FromUnixMillis(ms)), ms);
  }
}

TEST(ClockTest, FromUnixMillisSaturatesInsteadOfOverflowing) {
  struct Case {
    int64_t ms;
    int64_t want;
  };
  const Case kCases[] = {
      {INT64_MAX, 9'223'372'036'854},
      {INT64_MIN, -9'223'372'036'854},
      {253'402'300'799'999, 9'223'372'036'854},
      {9'223'372'036'855, 9'223'372'036'854},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.ms);
    EXPECT_EQ(ToUnixMillis(FromUnixMillis(c.ms)), c.want);
  }
}

TEST(ClockTest, ParseDurationAccepts) {
  struct Case {
    std::string text;
    int64_t want_ms;
  };
  const Case kCases[] = {
      {"250ms", 250},
      {"0ms", 0},
      {"1s", 1'000},
      {"1.5s", 1'500},
      {"0.25s", 250},
      {".5s", 500},
      {"2m", 120'000},
      {"1h", 3'600'000},
      {"1.5h", 5'400'000},
      {"30", 30'000},
      {"0", 0},
      {"0.001", 1},
      {"007s", 7'000},
      {"1000000000ms", 1'000'000'000},
      {"277h", 997'200'000},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.text);
    Result<Millis> d = ParseDuration(c.text);
    ASSERT_TRUE(d.has_value()) << d.error().ToString();
    EXPECT_EQ(d->count(), c.want_ms);
  }
}

TEST(ClockTest, ParseDurationRejects) {
  const std::string kCases[] = {
      "",
      "s",
      "ms",
      "-1s",
      "+1s",
      " 1s",
      "1s ",
      "1 s",
      "1S",
      "1MS",
      "1d",
      "1w",
      "1sec",
      "1e3",
      "1e3s",
      "1.2.3s",
      ".",
      "..5s",
      "abc",
      "inf",
      "nan",
      "infs",
      "1h30m",
      "0x10s",
      "1,5s",
      "1_000ms",
      "\xe2\x88\x9e",
      "99999999999999h",
      std::string(400, '9') + "s",
      std::string("1s\0", 3),
  };
  for (const std::string& text : kCases) {
    SCOPED_TRACE(text);
    Result<Millis> d = ParseDuration(text);
    if (d.has_value()) {
      ADD_FAILURE() << "parsed as " << d->count() << " ms";
      continue;
    }
    EXPECT_EQ(d.error().code, ErrorCode::kInvalidArgument);
  }
}

TEST(ClockTest, ManualClockMovesOnlyWhenAdvanced) {
  ManualClock clock(FromUnixMillis(1'000));
  const SteadyTime steady0 = clock.SteadyNow();
  EXPECT_EQ(ToUnixMillis(clock.Now()), 1'000);
  EXPECT_EQ(ToUnixMillis(clock.Now()), 1'000);
  clock.Advance(std::chrono::milliseconds(1'500));
  EXPECT_EQ(ToUnixMillis(clock.Now()), 2'500);
  EXPECT_EQ(clock.SteadyNow() - steady0, std::chrono::milliseconds(1'500));
}

TEST(ClockTest, SystemClockIsNearNow) {
  SystemClock clock;
  const auto diff = clock.Now() - std::chrono::system_clock::now();
  EXPECT_LT(std::chrono::abs(diff), std::chrono::seconds(5));
}

}  // namespace
}  // namespace medic
