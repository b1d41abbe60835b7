#include "host/proc_parsers.h"

#include <gtest/gtest.h>

#include "host/text.h"
#include "tests/fakes/proc_fs.h"

namespace medic::host {
namespace {

using testing::Fixture;

TEST(ParseMeminfo, CapturedFixture) {
  auto m = ParseMeminfo(Fixture("meminfo.txt"));
  ASSERT_TRUE(m.has_value()) << m.error().message;
  EXPECT_EQ(m->total_kb, 24683620u);
  EXPECT_EQ(m->available_kb, 23744568u);
  EXPECT_NEAR(MemUsedPercent(*m), 3.8043, 0.001);
}

TEST(ParseMeminfo, FallsBackWithoutMemAvailable) {
  auto m = ParseMeminfo(Fixture("meminfo_no_available.txt"));
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->available_kb, 300000u);  // MemFree + Buffers + Cached
  EXPECT_NEAR(MemUsedPercent(*m), 70.0, 1e-9);
}

TEST(ParseMeminfo, Malformed) {
  struct Case {
    std::string_view text;
  };
  for (const Case& c : {Case{""}, Case{"garbage"}, Case{"MemTotal: 0 kB\nMemFree: 1 kB\n"},
                        Case{"MemTotal: abc kB\n"}, Case{"MemTotal: 100 kB\n"}}) {
    SCOPED_TRACE(c.text);
    EXPECT_FALSE(ParseMeminfo(c.text).has_value());
  }
}

TEST(ParseProcStatCpu, FixturesGiveCpuPercent) {
  auto a = ParseProcStatCpu(Fixture("stat_1.txt"));
  auto b = ParseProcStatCpu(Fixture("stat_2.txt"));
  ASSERT_TRUE(a.has_value());
  ASSERT_TRUE(b.has_value());
  // stat_2 adds user +150, system +50, idle +550, iowait +50: 200 busy of 800.
  auto p = CpuPercent(*a, *b);
  ASSERT_TRUE(p.has_value());
  EXPECT_NEAR(*p, 25.0, 1e-9);
  EXPECT_FALSE(CpuPercent(*b, *b).has_value());  // no progress
  EXPECT_FALSE(CpuPercent(*b, *a).has_value());  // counters went backwards
}

TEST(ParseProcStatCpu, Malformed) {
  EXPECT_FALSE(ParseProcStatCpu("intr 1 2 3\n").has_value());
  EXPECT_FALSE(ParseProcStatCpu("cpu  1 x 3 4\n").has_value());
  EXPECT_FALSE(ParseProcStatCpu("cpu  1 2\n").has_value());
}

TEST(ParseLoadavg1, FixtureAndErrors) {
  auto l = ParseLoadavg1(Fixture("loadavg.txt"));
  ASSERT_TRUE(l.has_value());
  EXPECT_DOUBLE_EQ(*l, 5.91);
  EXPECT_FALSE(ParseLoadavg1("").has_value());
  EXPECT_FALSE(ParseLoadavg1("abc 1 2").has_value());
}

TEST(DiskUsedPercent, LikeDf) {
  struct Case {
    FsStats s;
    std::optional<double> disk, inode;
  };
  const Case cases[] = {
      // 1000 blocks, 400 free, 300 available to users (100 reserved): 600 / (600 + 300).
      {{1000, 400, 300, 100, 25}, 600.0 * 100 / 900, 75.0},
      {{1000, 1000, 1000, 0, 0}, 0.0, std::nullopt},  // empty; no inode count (btrfs)
      {{1000, 0, 0, 10, 0}, 100.0, 100.0},            // full
      {{0, 0, 0, 0, 0}, std::nullopt, std::nullopt},  // pseudo file system
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.s.blocks);
    auto d = DiskUsedPercent(c.s);
    ASSERT_EQ(d.has_value(), c.disk.has_value());
    if (d) {
      EXPECT_NEAR(*d, *c.disk, 1e-9);
    }
    auto i = InodeUsedPercent(c.s);
    ASSERT_EQ(i.has_value(), c.inode.has_value());
    if (i) {
      EXPECT_NEAR(*i, *c.inode, 1e-9);
    }
  }
}

TEST(ParsePidStat, CapturedAndOddComm) {
  auto st = ParsePidStat(Fixture("pid_stat.txt"));
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->pid, 9473);
  EXPECT_EQ(st->comm, "cat");
  EXPECT_EQ(st->state, 'R');
  EXPECT_EQ(st->ppid, 9465);
  EXPECT_EQ(st->pgrp, 9465);

  auto odd = ParsePidStat(Fixture("pid_stat_odd_comm.txt"));
  ASSERT_TRUE(odd.has_value());
  EXPECT_EQ(odd->comm, "my (odd) proc");
  EXPECT_EQ(odd->state, 'S');
  EXPECT_EQ(odd->pgrp, 4242);

  EXPECT_FALSE(ParsePidStat("").has_value());
  EXPECT_FALSE(ParsePidStat("12 cat R 1 2 3").has_value());
  EXPECT_FALSE(ParsePidStat("12 (cat) R 1").has_value());
  EXPECT_EQ(ParseComm("nginx\n"), "nginx");
}

TEST(ParsePidStat, Fields) {
  struct Case {
    std::string text;
    int pid;
    std::string comm;
    char state;
    int ppid;
    int pgrp;
  };
  const Case cases[] = {
      {"1234 (nginx) S 1 1234 1234 0 -1 4194560", 1234, "nginx", 'S', 1, 1234},
      {"77 (my (odd) prog) R 5 6 6 0", 77, "my (odd) prog", 'R', 5, 6},
      {"9 (a b) Z 1 9 9 0 -1\n", 9, "a b", 'Z', 1, 9},
      {Fixture("pid_stat.txt"), 9473, "cat", 'R', 9465, 9465},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    const PidStat st = ParsePidStat(c.text).value();
    EXPECT_EQ(st.pid, c.pid);
    EXPECT_EQ(st.comm, c.comm);
    EXPECT_EQ(st.state, c.state);
    EXPECT_EQ(st.ppid, c.ppid);
    EXPECT_EQ(st.pgrp, c.pgrp);
  }
}

TEST(ParsePidStat, Malformed) {
  for (std::string_view text : {"", "garbage", "12 (x)", "12 (x) S", "x (y) S 1 2", "12 (x) SS 1 2",
                                "12 (x) SS 1 2 3", "12 (x) S 1 y 3"}) {
    SCOPED_TRACE(text);
    EXPECT_FALSE(ParsePidStat(text).has_value());
  }
}

TEST(IsLive, ZombieAndDeadAreNot) {
  struct Case {
    char state;
    bool live;
  };
  const Case cases[] = {{'R', true}, {'S', true},  {'D', true}, {'T', true},
                        {'t', true}, {'Z', false}, {'X', false}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.state);
    PidStat st;
    st.state = c.state;
    EXPECT_EQ(IsLive(st), c.live);
  }
}

TEST(LiveProcess, ReadsAndParsesTheStatOfARunningProcess) {
  testing::FakeProcFs procfs;
  procfs.SetFile("9473/stat", Fixture("pid_stat.txt"));
  procfs.AddProcess({.pid = 100, .comm = "nginx", .state = 'S', .ppid = 1, .pgrp = 100});
  procfs.AddProcess({.pid = 101, .comm = "nginx", .state = 'Z', .ppid = 100, .pgrp = 100});
  procfs.AddProcess({.pid = 102, .comm = "nginx", .state = 'X', .ppid = 100, .pgrp = 100});
  procfs.SetFile("103/stat", "garbage");
  struct Case {
    int pid;
    std::optional<std::string> comm;  // nullopt: not a live process
  };
  const Case cases[] = {
      {9473, "cat"},       {100, "nginx"},      {101, std::nullopt},
      {102, std::nullopt}, {103, std::nullopt}, {999, std::nullopt},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.pid);
    const std::optional<PidStat> st = LiveProcess(procfs, c.pid);
    ASSERT_EQ(st.has_value(), c.comm.has_value());
    if (st.has_value()) {
      EXPECT_EQ(st->pid, c.pid);
      EXPECT_EQ(st->comm, *c.comm);
    }
  }
}

TEST(ParsePidFile, OnePositivePid) {
  struct Case {
    std::string_view text;
    std::optional<int> pid;
  };
  const Case cases[] = {
      {"100\n", 100},
      {"  4242 \n", 4242},
      {"1", 1},
      {"", std::nullopt},
      {"\n", std::nullopt},
      {"abc\n", std::nullopt},
      {"0\n", std::nullopt},
      {"-100\n", std::nullopt},
      {"12 13\n", std::nullopt},
      {"12x", std::nullopt},
      {"99999999999999999999", std::nullopt},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    EXPECT_EQ(ParsePidFile(c.text), c.pid);
  }
}

TEST(Text, TailHeadCap) {
  EXPECT_EQ(TailLines("a\nb\nc\n", 2), "b\nc\n");
  EXPECT_EQ(TailLines("a\nb\nc", 2), "b\nc");
  EXPECT_EQ(TailLines("a\nb\n", 5), "a\nb\n");
  EXPECT_EQ(TailLines("a\nb\n", 0), "");
  EXPECT_EQ(HeadLines("h\n1\n2\n3\n", 3), "h\n1\n2\n");
  EXPECT_EQ(HeadLines("h\n1", 5), "h\n1");
  std::string s = "0123456789";
  EXPECT_TRUE(CapText(&s, 4, false));
  EXPECT_EQ(s, "0123");
  s = "0123456789";
  EXPECT_TRUE(CapText(&s, 4, true));
  EXPECT_EQ(s, "6789");
  EXPECT_FALSE(CapText(&s, 4, true));
}

TEST(ParseMeminfo, Swap) {
  auto m = ParseMeminfo(
      "MemTotal: 1000 kB\nMemAvailable: 500 kB\nSwapTotal: 2000 kB\n"
      "SwapFree: 1500 kB\n");
  ASSERT_TRUE(m.has_value());
  EXPECT_DOUBLE_EQ(*SwapUsedPercent(*m), 25.0);
  auto no_swap = ParseMeminfo(Fixture("meminfo_no_available.txt"));
  ASSERT_TRUE(no_swap.has_value());
  auto fixture = ParseMeminfo(Fixture("meminfo.txt"));
  ASSERT_TRUE(fixture.has_value());
  EXPECT_FALSE(SwapUsedPercent(MemInfo{1000, 500, 0, 0}).has_value());
}

TEST(ParseLoadavg, AllThreeLoads) {
  auto l = ParseLoadavg(Fixture("loadavg.txt"));
  ASSERT_TRUE(l.has_value());
  EXPECT_DOUBLE_EQ(l->load1, 5.91);
  EXPECT_DOUBLE_EQ(l->load5, 5.35);
  EXPECT_DOUBLE_EQ(l->load15, 2.93);
  EXPECT_FALSE(ParseLoadavg("1.0 2.0").has_value());
  EXPECT_FALSE(ParseLoadavg("1.0 x 3.0 1/2 3").has_value());
}

TEST(RealMountPoints, CapturedMountsWithoutPseudoFileSystems) {
  EXPECT_EQ(RealMountPoints(Fixture("mounts.txt")),
            (std::vector<std::string>{"/", "/boot", "/mnt/backup", "/srv/my data", "/var/log"}));
  // Root is always there, even from nothing.
  EXPECT_EQ(RealMountPoints(""), std::vector<std::string>{"/"});
  auto entries = ParseMounts(Fixture("mounts.txt"));
  ASSERT_GE(entries.size(), 17u);
  EXPECT_EQ(entries[16].mount_point, "/srv/my data");
  EXPECT_EQ(entries[16].fs_type, "ext4");
}

TEST(MountMetricKey, RootPlainOthersLabelled) {
  EXPECT_EQ(MountMetricKey("disk_used_percent", "/"), "disk_used_percent");
  EXPECT_EQ(MountMetricKey("disk_used_percent", "/var/log"),
            "disk_used_percent{mount=\"/var/log\"}");
  EXPECT_EQ(MountMetricKey("inode_used_percent", "/a\"b\\c"),
            "inode_used_percent{mount=\"/a\\\"b\\\\c\"}");
}

TEST(ParseProcCgroup, V1AndV2) {
  EXPECT_EQ(ParseProcCgroup(Fixture("proc_cgroup_v1.txt"), "memory"),
            "/process_api/4846c22942be51dab15ea0728562a2c8");
  EXPECT_EQ(ParseProcCgroup(Fixture("proc_cgroup_v1.txt"), "pids"), "/");
  EXPECT_EQ(ParseProcCgroup(Fixture("proc_cgroup_v1.txt"), ""), "/");
  EXPECT_EQ(ParseProcCgroup("3:cpu,cpuacct:/a\n", "cpuacct"), "/a");
  EXPECT_EQ(ParseProcCgroup(Fixture("proc_cgroup_v2.txt"), ""),
            "/system.slice/medic-agent.service");
  EXPECT_FALSE(ParseProcCgroup(Fixture("proc_cgroup_v2.txt"), "memory").has_value());
}

TEST(CgroupDir, TheCgroupsDirectoryBelowItsHierarchy) {
  struct Case {
    std::string text;
    std::string_view controller;
    std::string_view hierarchy;
    std::optional<std::string> want;
  };
  const Case cases[] = {
      {"9:name=systemd:/\n4:memory:/process_api/8f7f\n0::/\n", "memory", "/sys/fs/cgroup/memory",
       "/sys/fs/cgroup/memory/process_api/8f7f"},
      {"5:cpu,memory:/a/b/\n", "memory", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/memory/a/b"},
      {"4:memory:/\n", "memory", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/memory"},
      {"4:memoryx:/a\n3:pids:/b\n", "memory", "/sys/fs/cgroup/memory", std::nullopt},
      {"0::/user.slice\n", "memory", "/sys/fs/cgroup/memory", std::nullopt},
      {"", "memory", "/sys/fs/cgroup/memory", std::nullopt},
      {Fixture("proc_cgroup_v1.txt"), "memory", "/sys/fs/cgroup/memory",
       "/sys/fs/cgroup/memory/process_api/4846c22942be51dab15ea0728562a2c8"},
      {Fixture("proc_cgroup_v1.txt"), "pids", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/pids"},
      {Fixture("proc_cgroup_v2.txt"), "", "/sys/fs/cgroup",
       "/sys/fs/cgroup/system.slice/medic-agent.service"},
      {Fixture("proc_cgroup_v2.txt"), "memory", "/sys/fs/cgroup/memory", std::nullopt},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    EXPECT_EQ(CgroupDir(c.text, c.controller, c.hierarchy), c.want);
  }
}

TEST(CgroupMemory, V1UsageMinusInactiveFileAgainstTheLimit) {
  const uint64_t host = 8ull << 30;
  // memory_stat_v1.txt was captured from a cgroup: total_inactive_file 420237312.
  auto m = CgroupMemoryV1("1073741824\n", "620237312\n", Fixture("memory_stat_v1.txt"), host);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->limit_bytes, 1073741824u);
  EXPECT_EQ(m->used_bytes, 200000000u);
  EXPECT_NEAR(CgroupMemUsedPercent(*m), 200000000.0 * 100 / 1073741824, 1e-9);
  // v1 says "no limit" with a huge number: the host's memory counts instead.
  EXPECT_FALSE(CgroupMemoryV1("9223372036854771712\n", "1000\n", "", host).has_value());
  EXPECT_FALSE(CgroupMemoryV1("garbage", "1000", "", host).has_value());
  // Inactive cache larger than usage (racy reads) does not underflow.
  auto small = CgroupMemoryV1("1000", "10", "inactive_file 50\n", host);
  ASSERT_TRUE(small.has_value());
  EXPECT_EQ(small->used_bytes, 0u);
}

TEST(CgroupMemory, V2MaxCurrentAndStat) {
  const uint64_t host = 8ull << 30;
  auto m = CgroupMemoryV2("536870912\n", "125829120\n", Fixture("memory_stat_v2.txt"), host);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->used_bytes, 125829120u - 83886080u);
  EXPECT_NEAR(CgroupMemUsedPercent(*m), 41943040.0 * 100 / 536870912, 1e-9);
  EXPECT_FALSE(CgroupMemoryV2("max\n", "125829120\n", "", host).has_value());
}

}  // namespace
}  // namespace medic::host
