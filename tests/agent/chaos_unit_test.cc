// The pure parts of chaos (sizes, params, state, stress-ng argv), the policy keys it reads, and
// process_scope against a fake /proc. Real disk-fill and oom runs: chaos_test.cc.

#include <gtest/gtest.h>
#include <signal.h>

#include "agent/action_executor.h"
#include "host/chaos.h"
#include "agent/config.h"
#include "agent/policy.h"
#include "tests/agent/fakes.h"

namespace medic::agent {
namespace {

TEST(FillBytesNeededTest, Table) {
  struct Case {
    const char* name;
    host::FsStats fs;
    uint64_t block;
    double percent;
    uint64_t want;
  };
  const Case cases[] = {
      // 1000 blocks, none used, no reserve: 90 % = 900 blocks.
      {"empty", {1000, 1000, 1000, 0, 0}, 4096, 90, 900 * 4096},
      {"half used", {1000, 500, 500, 0, 0}, 4096, 90, 400 * 4096},
      {"already there", {1000, 50, 50, 0, 0}, 4096, 90, 0},
      // 5 % reserved for root: capacity is used + bavail = 100 + 850 = 950 -> 855 used.
      {"reserved blocks", {1000, 900, 850, 0, 0}, 1024, 90, 755 * 1024},
      {"rounds up", {3, 3, 3, 0, 0}, 4096, 50, 2 * 4096},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(host::FillBytesNeeded(c.fs, c.block, c.percent), c.want);
  }
}

TEST(OomBytesNeededTest, AgainstTheView) {
  host::MemoryView v;
  v.limit_bytes = 128ull << 20;
  v.used_bytes = 8ull << 20;
  EXPECT_EQ(host::OomBytesNeeded(v, 50), (64ll << 20) - (8ll << 20));
  v.used_bytes = 100ull << 20;
  EXPECT_LT(host::OomBytesNeeded(v, 50), 0);
  EXPECT_EQ(host::HogBytesFor(-5), 0u);
  EXPECT_EQ(host::HogBytesFor(40ll << 20), (40ull << 20) - (3ull << 20));  // stress-ng's own ~3 MiB
  EXPECT_EQ(host::HogBytesFor(4 << 20), 3u << 20);                         // at most a quarter off
}

TEST(HogArgvTest, StressNgFlags) {
  EXPECT_EQ(host::HogArgv("/usr/bin/stress-ng", 1048576, 600),
            (std::vector<std::string>{"/usr/bin/stress-ng", "--vm", "1", "--vm-bytes", "1048576b",
                                      "--vm-keep", "--vm-hang", "0", "--oomable", "--timeout",
                                      "600s", "--quiet"}));
}

TEST(ChaosParamsTest, DiskFill) {
  auto r = host::DiskFillRequestFromParams(Json(), "/var/log");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->dir, "/var/log");
  EXPECT_EQ(r->percent, 90);
  r = host::DiskFillRequestFromParams({{"path", "/mnt/x"}, {"percent", 75.5}}, "/var/log");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->dir, "/mnt/x");
  EXPECT_EQ(r->percent, 75.5);
  for (const Json& bad : {Json{{"percent", 0}}, Json{{"percent", 100}}, Json{{"percent", "9"}},
                          Json{{"path", "rel"}}, Json{{"size", 1}}}) {
    SCOPED_TRACE(bad.dump());
    EXPECT_FALSE(host::DiskFillRequestFromParams(bad, "/var/log").has_value());
  }
}

TEST(ChaosParamsTest, Oom) {
  auto r = host::OomRequestFromParams(Json::object());
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->percent, 95);
  EXPECT_EQ(r->duration_seconds, 600);
  r = host::OomRequestFromParams({{"percent", 80}, {"duration", "2m"}});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->duration_seconds, 120);
  r = host::OomRequestFromParams({{"duration", 30}});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->duration_seconds, 30);
  for (const Json& bad : {Json{{"duration", "0s"}}, Json{{"duration", "2h"}},
                          Json{{"duration", true}}, Json{{"percent", -1}}, Json{{"path", "/x"}}}) {
    SCOPED_TRACE(bad.dump());
    EXPECT_FALSE(host::OomRequestFromParams(bad).has_value());
  }
}

TEST(ChaosStateTest, JsonRoundTrip) {
  host::ChaosState s;
  s.fill_files = {"/mnt/x/medic-chaos-fill.log"};
  s.hogs = {1234};
  auto back = host::ChaosStateFromJson(host::ChaosStateToJson(s));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->fill_files, s.fill_files);
  EXPECT_EQ(back->hogs, s.hogs);
  EXPECT_FALSE(host::ChaosStateFromJson(Json{{"hogs", "x"}}).has_value());
  EXPECT_TRUE(host::ChaosStateFromJson(Json::object())->empty());
}

TEST(ChaosKeeperTest, StopWithNothingRecorded) {
  testing::FakeProcFs procfs;
  host::ChaosKeeper keeper(procfs);
  EXPECT_EQ(keeper.Stop().value(), "no chaos running\n");
}

TEST(ReadMemoryViewTest, UsesTheCgroupLimitLikeTheMetrics) {
  testing::FakeProcFs procfs;
  procfs.SetFile("meminfo", "MemTotal: 1048576 kB\nMemAvailable: 524288 kB\n");
  host::MemoryView host = host::ReadMemoryView(procfs).value();
  EXPECT_EQ(host.scope, "host");
  EXPECT_EQ(host.limit_bytes, 1ull << 30);
  EXPECT_DOUBLE_EQ(host.percent, 50);
  procfs.SetFile("self/cgroup", "4:memory:/demo\n0::/\n");
  procfs.SetFile("/sys/fs/cgroup/memory/demo/memory.limit_in_bytes", "134217728\n");
  procfs.SetFile("/sys/fs/cgroup/memory/demo/memory.usage_in_bytes", "33554432\n");
  procfs.SetFile("/sys/fs/cgroup/memory/demo/memory.stat", "total_inactive_file 0\n");
  host::MemoryView cg = host::ReadMemoryView(procfs).value();
  EXPECT_EQ(cg.scope, "cgroup v1:/sys/fs/cgroup/memory/demo");
  EXPECT_EQ(cg.limit_bytes, 128ull << 20);
  EXPECT_DOUBLE_EQ(cg.percent, 25);
}

TEST(ParseByteSizeTest, Units) {
  EXPECT_EQ(ParseByteSize("4096").value(), 4096u);
  EXPECT_EQ(ParseByteSize("512MiB").value(), 512ull << 20);
  EXPECT_EQ(ParseByteSize("1GiB").value(), 1ull << 30);
  EXPECT_EQ(ParseByteSize("2G").value(), 2ull << 30);
  EXPECT_EQ(ParseByteSize("64KiB").value(), 64ull << 10);
  for (const char* bad : {"", "MiB", "1 GiB", "1PiB", "-1", "99999999999TiB"}) {
    SCOPED_TRACE(bad);
    EXPECT_FALSE(ParseByteSize(bad).has_value());
  }
}

TEST(PolicyConfigTest, ProcessScopeAndChaosCaps) {
  auto c = ParseAgentConfig(
      "policy:\n  process_scope: cgroup\n  chaos_max_fill_bytes: 64MiB\n"
      "  chaos_max_oom_bytes: 1GiB\n",
      "a.yaml");
  ASSERT_TRUE(c.has_value()) << c.error().message;
  const PolicyRules r = PolicyRulesFromConfig(*c, 99);
  EXPECT_EQ(r.process_scope, ProcessScope::kCgroup);
  EXPECT_EQ(r.chaos_max_fill_bytes, 64ull << 20);
  EXPECT_EQ(r.chaos_max_oom_bytes, 1ull << 30);

  const PolicyRules d = PolicyRulesFromConfig(AgentConfig{}, 99);
  EXPECT_EQ(d.process_scope, ProcessScope::kAll);
  EXPECT_EQ(d.chaos_max_fill_bytes, 1ull << 30);
  EXPECT_EQ(d.chaos_max_oom_bytes, 4ull << 30);

  for (const char* bad : {"policy: {process_scope: host}\n", "policy: {chaos_max_oom_bytes: 0}\n",
                          "policy: {chaos_max_fill_bytes: lots}\n"}) {
    SCOPED_TRACE(bad);
    EXPECT_FALSE(ParseAgentConfig(bad, "a.yaml").has_value());
  }
}

TEST(PolicyCheckTest, ChaosParamsPathIsChecked) {
  AgentConfig config;
  config.chaos_allowed = true;
  const Policy policy(PolicyRulesFromConfig(config, 99));
  EXPECT_TRUE(
      policy.Check({"chaos.start", {{"mode", "disk-fill"}, {"params", {{"path", "/var/log/app"}}}}})
          .has_value());
  auto refused =
      policy.Check({"chaos.start", {{"mode", "disk-fill"}, {"params", {{"path", "/etc"}}}}});
  ASSERT_FALSE(refused.has_value());
  EXPECT_NE(refused.error().message.find("outside the allowed paths"), std::string::npos);
}

// process_scope cgroup with a fake /proc: only processes in the agent's memory cgroup.
TEST(ProcessScopeTest, CgroupScopeSkipsProcessesElsewhere) {
  testing::FakeProcFs procfs;
  testing::FakeCommandRunner runner;
  testing::FakeServiceManager services;
  procfs.SetFile("self/cgroup", "4:memory:/demo/web-1\n0::/\n");
  procfs.AddProcess(200, "stress-ng");
  procfs.SetFile("200/cgroup", "4:memory:/demo/web-1\n0::/\n");
  procfs.AddProcess(300, "stress-ng");
  procfs.SetFile("300/cgroup", "4:memory:/other\n0::/\n");
  procfs.AddProcess(301, "stress-ng");  // no cgroup file: not provably ours
  AgentConfig config;
  config.policy.process_scope = "cgroup";
  config.policy.actions = std::vector<std::string>{"process.kill"};
  const Policy policy(PolicyRulesFromConfig(config, 99));
  std::vector<std::pair<pid_t, int>> signals;
  ExecutorOptions o;
  o.self_pid = 99;
  o.send_signal = [&](pid_t pid, int sig) {
    signals.emplace_back(pid, sig);
    return 0;
  };
  ActionExecutor executor(o, policy, runner, services, procfs);
  auto r = executor.Execute({"process.kill", {{"pattern", "stress-ng"}, {"signal", "TERM"}}},
                            Millis(5'000));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(signals, (std::vector<std::pair<pid_t, int>>{{200, SIGTERM}}));
  EXPECT_NE(r.output.find("skipped 2 process(es) named 'stress-ng' outside this agent's memory "
                          "cgroup (process_scope: cgroup)"),
            std::string::npos)
      << r.output;

  signals.clear();
  r = executor.Execute({"process.kill", {{"pid", 300}}}, Millis(5'000));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.error.find("outside this agent's memory cgroup"), std::string::npos) << r.error;
  EXPECT_TRUE(signals.empty());

  // Scope all (the default) signals every match.
  const Policy all(PolicyRulesFromConfig(AgentConfig{}, 99));
  ActionExecutor unscoped(o, all, runner, services, procfs);
  r = unscoped.Execute({"process.kill", {{"pattern", "stress-ng"}}}, Millis(5'000));
  EXPECT_EQ(signals.size(), 3u) << r.output;
}

}  // namespace
}  // namespace medic::agent
