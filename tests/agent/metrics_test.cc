#include "agent/metrics.h"

#include <gtest/gtest.h>

#include "tests/agent/fakes.h"

namespace medic::agent {
namespace {

using testing::FakeProcFs;
using testing::Fixture;

TEST(ProcMetricsCollector, EveryMetricFromFixtures) {
  FakeProcFs procfs;
  procfs.SetFile("meminfo", Fixture("meminfo.txt"));
  procfs.SetFile("loadavg", Fixture("loadavg.txt"));
  procfs.SetFile("stat", Fixture("stat_1.txt"));
  procfs.SetMount("/", FsStats{1000, 400, 300, 100, 25});
  procfs.SetMount("/data", FsStats{100, 10, 10, 0, 0});
  ProcMetricsCollector collector(procfs, {"/", "/data", "/missing"});

  procfs.SetFile("stat", Fixture("stat_2.txt"));
  const Metrics m = collector.Collect();
  EXPECT_NEAR(m.at("disk_used_percent"), 600.0 * 100 / 900, 1e-9);
  EXPECT_NEAR(m.at("inode_used_percent"), 75.0, 1e-9);
  EXPECT_NEAR(m.at("disk_used_percent:/data"), 90.0, 1e-9);
  EXPECT_EQ(m.count("disk_used_percent:/"), 0u);         // root is reported once
  EXPECT_EQ(m.count("disk_used_percent:/missing"), 0u);  // unreadable mounts are left out
  EXPECT_NEAR(m.at("mem_used_percent"), 3.8043, 0.001);
  EXPECT_DOUBLE_EQ(m.at("load1"), 5.91);
  EXPECT_NEAR(m.at("cpu_percent"), 25.0, 1e-9);  // delta since construction

  // No CPU progress between two readings: cpu_percent is left out rather than invented.
  const Metrics again = collector.Collect();
  EXPECT_EQ(again.count("cpu_percent"), 0u);
  EXPECT_EQ(again.count("mem_used_percent"), 1u);
}

TEST(ProcMetricsCollector, UnreadableSourcesAreLeftOut) {
  FakeProcFs procfs;
  procfs.SetFile("meminfo", "garbage");
  ProcMetricsCollector collector(procfs, {});
  EXPECT_TRUE(collector.Collect().empty());
}

TEST(LinuxProcFs, ReadsTheLiveSystem) {
  LinuxProcFs procfs;
  ProcMetricsCollector collector(procfs, {});
  const Metrics m = collector.Collect();
  EXPECT_EQ(m.count("disk_used_percent"), 1u);
  EXPECT_EQ(m.count("mem_used_percent"), 1u);
  EXPECT_EQ(m.count("load1"), 1u);
  auto pids = procfs.ListPids();
  ASSERT_TRUE(pids.has_value());
  EXPECT_FALSE(pids->empty());
  bool found_self = false;
  for (const auto& p : ListProcesses(procfs)) {
    found_self = found_self || p.pid == ::getpid();
  }
  EXPECT_TRUE(found_self);
}

}  // namespace
}  // namespace medic::agent
