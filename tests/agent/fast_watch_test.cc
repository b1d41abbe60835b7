// The fast watch's pure parts: which readings cross a threshold, and the loop step that asks
// for a report (unit). The real agent on a tmpfs and in a memory cgroup:
// fast_watch_binary_test.cc.

#include "agent/fast_watch.h"

#include <gtest/gtest.h>

namespace medic::agent {
namespace {

using protocol::WatchedThreshold;

struct Case {
  std::string name;
  std::vector<WatchedThreshold> thresholds;
  std::vector<host::Metrics> readings;
  std::vector<size_t> want;  // per reading: how many thresholds it crossed
};

TEST(CrossingDetector, ReportsEachSideChangeInEitherDirectionOnly) {
  const WatchedThreshold disk{"disk_used_percent", ">", 85};
  const WatchedThreshold disk_clear{"disk_used_percent", ">", 70};
  const WatchedThreshold mem{"mem_used_percent", ">=", 90};
  const WatchedThreshold low{"free", "<", 10};
  const std::vector<Case> cases = {
      {"first reading only records, even on the breaching side",
       {disk},
       {{{"disk_used_percent", 95}}, {{"disk_used_percent", 96}}},
       {0, 0}},
      {"up then down then up",
       {disk},
       {{{"disk_used_percent", 50}},
        {{"disk_used_percent", 86}},
        {{"disk_used_percent", 84}},
        {{"disk_used_percent", 85}},  // > 85 is false: back on the same side
        {{"disk_used_percent", 85.01}}},
       {0, 1, 1, 0, 1}},
      {">= counts equality as breaching",
       {mem},
       {{{"mem_used_percent", 89.9}}, {{"mem_used_percent", 90}}, {{"mem_used_percent", 89}}},
       {0, 1, 1}},
      {"< crosses downwards", {low}, {{{"free", 20}}, {{"free", 5}}, {{"free", 15}}}, {0, 1, 1}},
      {"a clear threshold is a second line",
       {disk, disk_clear},
       {{{"disk_used_percent", 60}}, {{"disk_used_percent", 90}}, {{"disk_used_percent", 80}},
        {{"disk_used_percent", 60}}},
       {0, 2, 1, 1}},
      {"a missing series keeps its side",
       {disk, mem},
       {{{"disk_used_percent", 50}, {"mem_used_percent", 50}},
        {{"mem_used_percent", 50}},
        {{"disk_used_percent", 90}, {"mem_used_percent", 95}}},
       {0, 0, 2}},
      {"other series are ignored", {disk}, {{{"load1", 1}}, {{"load1", 99}}}, {0, 0}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    CrossingDetector d;
    d.SetThresholds(c.thresholds);
    ASSERT_EQ(c.readings.size(), c.want.size());
    for (size_t i = 0; i < c.readings.size(); ++i) {
      EXPECT_EQ(d.Observe(c.readings[i]).size(), c.want[i]) << "reading " << i;
    }
  }
}

TEST(CrossingDetector, SeriesAreDistinctAndNewThresholdsForgetTheSides) {
  CrossingDetector d;
  d.SetThresholds({{"mem_used_percent", ">", 90},
                   {"disk_used_percent", ">", 85},
                   {"disk_used_percent", ">", 70}});
  EXPECT_EQ(d.series(), (std::vector<std::string>{"disk_used_percent", "mem_used_percent"}));
  d.Observe({{"disk_used_percent", 50}});
  d.SetThresholds({{"disk_used_percent", ">", 85}});
  EXPECT_TRUE(d.Observe({{"disk_used_percent", 90}}).empty());  // first reading again
  EXPECT_EQ(d.Observe({{"disk_used_percent", 10}}).size(), 1u);
}

TEST(FastWatch, ReadsOnlyWhileSomethingIsWatchedAndAsksForAReportOnACrossing) {
  std::vector<WatchedThreshold> thresholds;
  double disk = 50;
  std::vector<std::vector<std::string>> reads;
  int reports = 0;
  FastWatch watch(
      FastWatchOptions{Millis(50)}, [&] { return thresholds; },
      [&](const std::vector<std::string>& series) {
        reads.push_back(series);
        return host::Metrics{{"disk_used_percent", disk}, {"mem_used_percent", 10}};
      },
      [&] { ++reports; });
  const SteadyTime t0{};

  // An older server sends no thresholds: nothing is read, the loop sleeps until woken.
  EXPECT_EQ(watch.RunOnce(t0), SteadyTime::max());
  EXPECT_TRUE(reads.empty());

  thresholds = {{"disk_used_percent", ">", 85}};
  EXPECT_EQ(watch.RunOnce(t0), t0 + Millis(50));
  ASSERT_EQ(reads.size(), 1u);
  EXPECT_EQ(reads[0], std::vector<std::string>{"disk_used_percent"});
  EXPECT_EQ(reports, 0);
  disk = 90;
  watch.RunOnce(t0 + Millis(50));
  EXPECT_EQ(reports, 1);
  watch.RunOnce(t0 + Millis(100));  // still above: no news
  EXPECT_EQ(reports, 1);
  disk = 40;
  watch.RunOnce(t0 + Millis(150));
  EXPECT_EQ(reports, 2);
  EXPECT_EQ(watch.crossings(), 2u);

  thresholds.clear();  // registered again with a server without thresholds
  const size_t before = reads.size();
  EXPECT_EQ(watch.RunOnce(t0 + Millis(200)), SteadyTime::max());
  EXPECT_EQ(reads.size(), before);
}

// Memory rises no faster than it can be allocated: far below its threshold it is read only when
// it could have reached it; disk, and memory on the breaching side, every period.
TEST(FastWatch, ASeriesWithABoundedRiseIsReadWhenItCouldHaveReachedItsThreshold) {
  double mem = 20;
  std::vector<std::vector<std::string>> reads;
  FastWatch watch(
      FastWatchOptions{.period = Millis(25),
                       .max_rise_per_second =
                           [](const std::string& series) {
                             return series == "mem_used_percent" ? 100.0 : 0.0;  // 1 point/10 ms
                           },
                       .max_delay = Millis(1'000)},
      [] {
        return std::vector<WatchedThreshold>{{"disk_used_percent", ">", 85},
                                             {"mem_used_percent", ">", 90},
                                             {"mem_used_percent", ">", 80}};
      },
      [&](const std::vector<std::string>& series) {
        reads.push_back(series);
        return host::Metrics{{"disk_used_percent", 10}, {"mem_used_percent", mem}};
      },
      [] {});
  const SteadyTime t0{};
  // Both at first; then disk every 25 ms, memory (60 points under 80 at 100/s) after 600 ms.
  EXPECT_EQ(watch.RunOnce(t0), t0 + Millis(25));
  EXPECT_EQ(reads.back(), (std::vector<std::string>{"disk_used_percent", "mem_used_percent"}));
  EXPECT_EQ(watch.RunOnce(t0 + Millis(25)), t0 + Millis(50));
  EXPECT_EQ(reads.back(), std::vector<std::string>{"disk_used_percent"});
  SteadyTime t = t0 + Millis(25);
  while (t < t0 + Millis(600)) {
    t = watch.RunOnce(t);
  }
  EXPECT_EQ(t, t0 + Millis(600));
  mem = 79.9;  // close: every period from now on
  watch.RunOnce(t);
  EXPECT_EQ(reads.back(), (std::vector<std::string>{"disk_used_percent", "mem_used_percent"}));
  EXPECT_EQ(watch.RunOnce(t + Millis(25)), t + Millis(50));
  EXPECT_EQ(reads.back(), (std::vector<std::string>{"disk_used_percent", "mem_used_percent"}));
  mem = 85;  // above 80: it may drop at once, read every period
  watch.RunOnce(t + Millis(50));
  watch.RunOnce(t + Millis(75));
  EXPECT_EQ(reads.back(), (std::vector<std::string>{"disk_used_percent", "mem_used_percent"}));
  EXPECT_EQ(watch.crossings(), 1u);
  // Far away again: never longer than max_delay.
  mem = 0;
  SteadyTime u = watch.RunOnce(t + Millis(100));
  size_t mem_reads = 0;
  while (u < t + Millis(1'100)) {
    u = watch.RunOnce(u);
    mem_reads += reads.back().size() == 2 ? 1 : 0;
  }
  EXPECT_EQ(mem_reads, 1u);  // 80 points at 100 a second: once, at t + 900 ms
}

}  // namespace
}  // namespace medic::agent
