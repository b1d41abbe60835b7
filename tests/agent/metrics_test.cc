#include "host/metrics.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>

#include "agent/prometheus.h"
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
  procfs.SetMount("/", host::FsStats{1000, 400, 300, 100, 25});
  procfs.SetMount("/data", host::FsStats{100, 10, 10, 0, 0});
  host::ProcMetricsCollector collector(procfs, {"/", "/data", "/missing"});

  procfs.SetFile("stat", Fixture("stat_2.txt"));
  const host::Metrics m = collector.Collect();
  EXPECT_NEAR(m.at("disk_used_percent"), 600.0 * 100 / 900, 1e-9);
  EXPECT_NEAR(m.at("inode_used_percent"), 75.0, 1e-9);
  EXPECT_NEAR(m.at("disk_used_percent{mount=\"/data\"}"), 90.0, 1e-9);
  EXPECT_EQ(m.count("disk_used_percent{mount=\"/\"}"), 0u);  // root is reported once
  EXPECT_EQ(m.count("disk_used_percent{mount=\"/missing\"}"),
            0u);  // unreadable mounts are left out
  EXPECT_NEAR(m.at("mem_used_percent"), 3.8043, 0.001);
  EXPECT_DOUBLE_EQ(m.at("load1"), 5.91);
  EXPECT_NEAR(m.at("cpu_percent"), 25.0, 1e-9);  // delta since construction

  // No CPU progress between two readings (both within one tick): the share of the last window
  // that had progress is repeated rather than left out.
  const host::Metrics again = collector.Collect();
  EXPECT_NEAR(again.at("cpu_percent"), 25.0, 1e-9);
  EXPECT_EQ(again.count("mem_used_percent"), 1u);
}

TEST(ProcMetricsCollector, UnreadableSourcesAreLeftOut) {
  FakeProcFs procfs;
  procfs.SetFile("meminfo", "garbage");
  host::ProcMetricsCollector collector(procfs, {});
  EXPECT_TRUE(collector.Collect().empty());
}

TEST(ProcMetricsCollector, EveryRealMountLoadsSwapProcesses) {
  FakeProcFs procfs;
  procfs.SetFile("meminfo",
                 "MemTotal: 1000 kB\nMemAvailable: 250 kB\nSwapTotal: 100 kB\n"
                 "SwapFree: 90 kB\n");
  procfs.SetFile("loadavg", Fixture("loadavg.txt"));
  procfs.SetFile("self/mounts", Fixture("mounts.txt"));
  procfs.SetMount("/", host::FsStats{1000, 500, 500, 100, 50});
  procfs.SetMount("/var/log", host::FsStats{100, 20, 20, 10, 1});
  procfs.SetMount("/boot", host::FsStats{100, 50, 50, 0, 0});
  procfs.AddProcess(1, "init");
  procfs.AddProcess(42, "nginx");
  host::ProcMetricsCollector collector(procfs, {});
  const host::Metrics m = collector.Collect();
  EXPECT_DOUBLE_EQ(m.at("disk_used_percent"), 50.0);
  EXPECT_DOUBLE_EQ(m.at("inode_used_percent"), 50.0);
  EXPECT_DOUBLE_EQ(m.at("disk_used_percent{mount=\"/var/log\"}"), 80.0);
  EXPECT_DOUBLE_EQ(m.at("inode_used_percent{mount=\"/var/log\"}"), 90.0);
  EXPECT_DOUBLE_EQ(m.at("disk_used_percent{mount=\"/boot\"}"), 50.0);
  EXPECT_EQ(m.count("inode_used_percent{mount=\"/boot\"}"), 0u);  // no inode count
  EXPECT_EQ(m.count("disk_used_percent{mount=\"/proc\"}"), 0u);
  EXPECT_EQ(m.count("disk_used_percent{mount=\"/mnt/backup\"}"), 0u);  // statvfs failed
  EXPECT_DOUBLE_EQ(m.at("mem_used_percent"), 75.0);
  EXPECT_DOUBLE_EQ(m.at("swap_used_percent"), 10.0);
  EXPECT_DOUBLE_EQ(m.at("load5"), 5.35);
  EXPECT_DOUBLE_EQ(m.at("load15"), 2.93);
  EXPECT_DOUBLE_EQ(m.at("processes"), 2.0);
}

// meminfo and a memory-limited v1 cgroup (50 % used) from the fixtures; returns the cgroup's
// directory.
std::string SetUpCgroupV1(FakeProcFs& procfs) {
  procfs.SetFile("meminfo", Fixture("meminfo.txt"));
  procfs.SetFile("self/cgroup", Fixture("proc_cgroup_v1.txt"));
  const std::string dir = "/sys/fs/cgroup/memory/process_api/4846c22942be51dab15ea0728562a2c8";
  procfs.SetFile(dir + "/memory.limit_in_bytes", "1073741824\n");
  procfs.SetFile(dir + "/memory.usage_in_bytes", "957108224\n");
  procfs.SetFile(dir + "/memory.stat", Fixture("memory_stat_v1.txt"));
  return dir;
}

TEST(ProcMetricsCollector, MemoryAgainstTheCgroupLimitV1) {
  FakeProcFs procfs;
  const std::string dir = SetUpCgroupV1(procfs);
  host::ProcMetricsCollector collector(procfs, {});
  EXPECT_EQ(collector.memory_cgroup(), "v1:" + dir);
  // (957108224 - 420237312) / 1073741824
  EXPECT_NEAR(collector.Collect().at("mem_used_percent"), 50.0, 1e-6);
}

// The fast watch's reading: only the series asked for, with the same values as Collect's.
TEST(ProcMetricsCollector, CollectSeriesReadsOnlyTheNamedSeriesAsCollectDoes) {
  FakeProcFs procfs;
  const std::string dir = SetUpCgroupV1(procfs);
  procfs.SetMount("/", {.blocks = 1000, .bfree = 500, .bavail = 500, .files = 100, .ffree = 90});
  procfs.SetMount("/data", {.blocks = 1000, .bfree = 100, .bavail = 100, .files = 10, .ffree = 5});
  procfs.SetMount("/odd\"dir", {.blocks = 100, .bfree = 75, .bavail = 75});
  host::ProcMetricsCollector collector(procfs, {"/data", "/odd\"dir"}, "/data");
  const host::Metrics all = collector.Collect();

  struct Case {
    std::vector<std::string> series;
    std::vector<std::string> want;  // the keys read; each value equals Collect's
  };
  const std::vector<Case> cases = {
      {{"disk_used_percent"}, {"disk_used_percent"}},
      {{"mem_used_percent", "inode_used_percent"}, {"inode_used_percent", "mem_used_percent"}},
      {{"disk_used_percent{mount=\"/\"}"}, {"disk_used_percent{mount=\"/\"}"}},
      {{"disk_used_percent{mount=\"/odd\\\"dir\"}"}, {"disk_used_percent{mount=\"/odd\\\"dir\"}"}},
      {{"disk_used_percent{mount=\"/nowhere\"}", "load1", "disk_used_percent{a=\"b\"}",
        "disk_used_percent{mount=\"/\",x=\"y\"}", "disk_used_percentage"},
       {}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.series.front());
    const host::Metrics got = collector.CollectSeries(c.series);
    std::vector<std::string> keys;
    for (const auto& [k, v] : got) {
      keys.push_back(k);
      ASSERT_TRUE(all.count(k)) << k;
      EXPECT_DOUBLE_EQ(v, all.at(k)) << k;
    }
    EXPECT_EQ(keys, c.want);
  }
  EXPECT_NEAR(collector.CollectSeries({"disk_used_percent"}).at("disk_used_percent"), 90.0, 1e-9);
  EXPECT_NEAR(collector.CollectSeries({"mem_used_percent"}).at("mem_used_percent"), 50.0, 1e-6);
  // The limit lifted above the host's memory: MemTotal/MemAvailable count, as in Collect.
  procfs.SetFile(dir + "/memory.limit_in_bytes", "9223372036854771712\n");
  procfs.SetFile(dir + "/memory.usage_in_bytes", "1\n");  // not read: would be 0 %
  const double host = collector.Collect().at("mem_used_percent");
  EXPECT_GT(host, 1);
  EXPECT_DOUBLE_EQ(collector.CollectSeries({"mem_used_percent"}).at("mem_used_percent"), host);
}

TEST(ProcMetricsCollector, MemoryAgainstTheCgroupLimitV2AndUnlimited) {
  FakeProcFs procfs;
  procfs.SetFile("meminfo", "MemTotal: 8000000 kB\nMemAvailable: 6000000 kB\n");
  procfs.SetFile("self/cgroup", Fixture("proc_cgroup_v2.txt"));
  const std::string dir = "/sys/fs/cgroup/system.slice/medic-agent.service";
  procfs.SetFile(dir + "/memory.max", "536870912\n");
  procfs.SetFile(dir + "/memory.current", "125829120\n");
  procfs.SetFile(dir + "/memory.stat", Fixture("memory_stat_v2.txt"));
  host::ProcMetricsCollector collector(procfs, {});
  EXPECT_EQ(collector.memory_cgroup(), "v2:" + dir);
  EXPECT_NEAR(collector.Collect().at("mem_used_percent"), 7.8125, 1e-6);
  procfs.SetFile(dir + "/memory.max", "max\n");  // limit lifted: the host's memory counts
  EXPECT_NEAR(collector.Collect().at("mem_used_percent"), 25.0, 1e-6);
}

TEST(LinuxProcFs, ReadsTheLiveSystem) {
  host::LinuxProcFs procfs;
  host::ProcMetricsCollector collector(procfs, {});
  const host::Metrics m = collector.Collect();
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

// ReadHeld keeps the file open and reads it again from offset 0: what it returns is the file as
// it is now (shorter or longer than before), and the kernel's own files read the same way.
TEST(LinuxProcFs, ReadHeldReadsTheFileAsItIsNow) {
  char tmpl[] = "/tmp/medic-readheld-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  const std::string path = dir + "/memory.usage_in_bytes";
  auto write = [&](const std::string& text) {
    // In place, as the kernel changes its files: the same inode, truncated and written.
    FILE* f = std::fopen(path.c_str(), "r+");
    if (f == nullptr) {
      f = std::fopen(path.c_str(), "w");
    }
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(::ftruncate(::fileno(f), 0), 0);
    ASSERT_EQ(std::fwrite(text.data(), 1, text.size(), f), text.size());
    ASSERT_EQ(std::fclose(f), 0);
  };
  {
    host::LinuxProcFs procfs;
    EXPECT_EQ(procfs.ReadHeld(path).error().code, ErrorCode::kNotFound);
    write(std::string(10'000, '7') + "\n");  // more than one read's buffer
    auto first = procfs.ReadHeld(path);
    ASSERT_TRUE(first.has_value()) << first.error().message;
    EXPECT_EQ(first->size(), 10'001u);
    write("12345\n");
    EXPECT_EQ(procfs.ReadHeld(path).value_or("?"), "12345\n");
    write("123456789\n");
    EXPECT_EQ(procfs.ReadHeld(path).value_or("?"), "123456789\n");
    // /proc/meminfo, held and read again, parses each time.
    for (int i = 0; i < 3; ++i) {
      auto text = procfs.ReadHeld("meminfo");
      ASSERT_TRUE(text.has_value()) << text.error().message;
      EXPECT_TRUE(host::ParseMeminfo(*text).has_value()) << *text;
    }
  }
  std::remove(path.c_str());
  ::rmdir(dir.c_str());
}

TEST(FormatPrometheus, FamiliesOnceWithTheirSamplesTogether) {
  host::Metrics m = {{"disk_used_percent", 41.5},
               {"disk_used_percent_x", 1},  // sorts between the two disk samples
               {"disk_used_percent{mount=\"/var/log\"}", 80},
               {"load1", 0.25},
               {"agent_dropped_samples", 7}};
  protocol::CheckResult web{"web", false, "connection refused", {}};
  protocol::CheckResult web_now{"web", true, "HTTP 200", {}};
  protocol::CheckResult odd{"a\"b", true, "", {}};
  const std::string text = FormatPrometheus(m, {web, odd, web_now}, 7);
  EXPECT_EQ(text,
            "# HELP medic_agent_up 1 while the agent is running.\n"
            "# TYPE medic_agent_up gauge\n"
            "medic_agent_up 1\n"
            "# HELP medic_agent_dropped_samples_total Samples dropped from the outage buffer "
            "(oldest first).\n"
            "# TYPE medic_agent_dropped_samples_total counter\n"
            "medic_agent_dropped_samples_total 7\n"
            "# HELP medic_disk_used_percent medic-agent metric disk_used_percent.\n"
            "# TYPE medic_disk_used_percent gauge\n"
            "medic_disk_used_percent 41.5\n"
            "medic_disk_used_percent{mount=\"/var/log\"} 80\n"
            "# HELP medic_disk_used_percent_x medic-agent metric disk_used_percent_x.\n"
            "# TYPE medic_disk_used_percent_x gauge\n"
            "medic_disk_used_percent_x 1\n"
            "# HELP medic_load1 medic-agent metric load1.\n"
            "# TYPE medic_load1 gauge\n"
            "medic_load1 0.25\n"
            "# HELP medic_check_healthy 1 when the health check passes, 0 when it fails.\n"
            "# TYPE medic_check_healthy gauge\n"
            "medic_check_healthy{check=\"a\\\"b\"} 1\n"
            "medic_check_healthy{check=\"web\"} 1\n");
}

TEST(ParseListenAddress, HostAndPort) {
  EXPECT_EQ(*ParseListenAddress("127.0.0.1:9100"), std::make_pair(std::string("127.0.0.1"), 9100));
  EXPECT_EQ(ParseListenAddress("127.0.0.1:0")->second, 0);
  EXPECT_FALSE(ParseListenAddress("127.0.0.1").has_value());
  EXPECT_FALSE(ParseListenAddress(":80").has_value());
  EXPECT_FALSE(ParseListenAddress("127.0.0.1:99999").has_value());
  EXPECT_FALSE(ParseListenAddress("localhost:80").has_value());
}

}  // namespace
}  // namespace medic::agent
