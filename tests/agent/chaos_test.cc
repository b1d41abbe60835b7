// chaos.start disk-fill / oom, chaos.stop and process_scope with real processes, made safe for a
// shared machine: disk-fill only writes into a 16 MiB tmpfs mounted here; oom only runs inside a
// 128 MiB memory cgroup created below this test's own, where agent_chaos_helper (the agent's
// command path: validation, local policy, ActionExecutor) runs and starts stress-ng.

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>

#include "core/json.h"
#include "tests/agent/chaos_sandbox.h"

namespace medic::agent {
namespace {

using chaos_testing::Canary;
using chaos_testing::MemoryCgroup;
using chaos_testing::TestChild;
using chaos_testing::TmpfsDir;
using chaos_testing::UsedPercent;
using chaos_testing::WaitFor;
using namespace std::chrono_literals;

constexpr uint64_t kCgroupLimit = 128ull << 20;

std::string HelperBinary() {
  const char* dir = std::getenv("MEDIC_BIN_DIR");
  // The helper is built next to the tests (build/tests), MEDIC_BIN_DIR is build/bin.
  return dir != nullptr ? std::string(dir) + "/../tests/agent_chaos_helper"
                        : std::string(MEDIC_CHAOS_HELPER);
}

class ChaosTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) {
      GTEST_SKIP() << "needs root (mount, cgroups)";
    }
    ASSERT_TRUE(fs_.ok()) << fs_.error();
    ASSERT_TRUE(cgroup_.ok()) << cgroup_.error();
  }

  // Starts the helper inside the test cgroup with this policy block.
  void StartHelper(const std::string& policy_extra) {
    const std::string config = fs_.base() + "/agent.yaml";
    std::ofstream(config) << "chaos: {allowed: true}\n"
                          << "policy:\n"
                          << "  paths: [" << fs_.mount() << "]\n"
                          << "  actions: [process.kill, chaos.start, chaos.stop]\n"
                          << policy_extra;
    helper_ = std::make_unique<TestChild>(std::vector<std::string>{HelperBinary(), config},
                                          cgroup_.procs_fd());
    ASSERT_GT(helper_->pid(), 0);
  }

  Json Run(const std::string& name, const Json& params) {
    EXPECT_TRUE(helper_->WriteLine(DumpJson(Json{{"name", name}, {"params", params}})));
    auto line = helper_->ReadLine(45s);
    if (!line) {
      ADD_FAILURE() << "no answer from the helper to " << name;
      return Json::object();
    }
    auto j = ParseJsonObject(*line);
    EXPECT_TRUE(j.has_value()) << *line;
    return j.value_or(Json::object());
  }

  static bool Succeeded(const Json& r) {
    return r.value("ran", false) && r.value("exit_code", -1) == 0;
  }

  TmpfsDir fs_;
  MemoryCgroup cgroup_{kCgroupLimit};
  std::unique_ptr<TestChild> helper_;  // destroyed first: killed before the cgroup goes
};

TEST_F(ChaosTest, DiskFillReachesTheTargetAndStopRemovesTheFile) {
  StartHelper("");
  const double before = UsedPercent(fs_.mount());
  ASSERT_LT(before, 10);
  const Json r = Run("chaos.start",
                     {{"mode", "disk-fill"}, {"params", {{"path", fs_.mount()}, {"percent", 70}}}});
  ASSERT_TRUE(Succeeded(r)) << r.dump();
  EXPECT_GE(UsedPercent(fs_.mount()), 70);
  const std::string file = fs_.mount() + "/medic-chaos-fill.log";
  EXPECT_TRUE(PathExists(file));
  const std::string out = r.value("output", "");
  EXPECT_NE(out.find("(mount " + fs_.mount() + ")"), std::string::npos) << out;
  EXPECT_NE(out.find("wrote "), std::string::npos) << out;

  const Json stop = Run("chaos.stop", Json::object());
  ASSERT_TRUE(Succeeded(stop)) << stop.dump();
  EXPECT_NE(stop.value("output", "").find("removed " + file), std::string::npos) << stop.dump();
  EXPECT_FALSE(PathExists(file));
  EXPECT_LT(UsedPercent(fs_.mount()), 10);
  EXPECT_EQ(Run("chaos.stop", Json::object()).value("output", ""), "no chaos running\n");
}

TEST_F(ChaosTest, DiskFillOverTheCapIsRefusedUpFront) {
  StartHelper("  chaos_max_fill_bytes: 4MiB\n");
  const Json r = Run("chaos.start",
                     {{"mode", "disk-fill"}, {"params", {{"path", fs_.mount()}, {"percent", 90}}}});
  EXPECT_FALSE(Succeeded(r)) << r.dump();
  EXPECT_NE(r.value("error", "").find("chaos_max_fill_bytes"), std::string::npos) << r.dump();
  EXPECT_FALSE(PathExists(fs_.mount() + "/medic-chaos-fill.log"));
  EXPECT_LT(UsedPercent(fs_.mount()), 10);
}

TEST_F(ChaosTest, DiskFillOutsideThePolicyPathsIsRefused) {
  StartHelper("");
  // The base directory holds the tmpfs but is not under the policy's paths.
  const Json r = Run("chaos.start",
                     {{"mode", "disk-fill"}, {"params", {{"path", fs_.base()}, {"percent", 50}}}});
  EXPECT_FALSE(r.value("ran", true)) << r.dump();
  EXPECT_NE(r.value("error", "").find("outside the allowed paths"), std::string::npos) << r.dump();
  EXPECT_FALSE(PathExists(fs_.base() + "/medic-chaos-fill.log"));
  // A symlink inside the allowed path that leads out of it is refused too.
  ASSERT_EQ(::symlink(fs_.base().c_str(), (fs_.mount() + "/out").c_str()), 0);
  const Json via_link =
      Run("chaos.start", {{"mode", "disk-fill"}, {"params", {{"path", fs_.mount() + "/out"}}}});
  EXPECT_FALSE(Succeeded(via_link)) << via_link.dump();
  EXPECT_FALSE(PathExists(fs_.base() + "/medic-chaos-fill.log"));
}

TEST_F(ChaosTest, OomReachesTheTargetAndScopedProcessKillFreesIt) {
  Canary canary(fs_.base());
  ASSERT_TRUE(WaitFor([&] { return canary.Alive(); }, 5s));
  StartHelper("  process_scope: cgroup\n");
  const Json r =
      Run("chaos.start", {{"mode", "oom"}, {"params", {{"percent", 60}, {"duration", "120s"}}}});
  ASSERT_TRUE(Succeeded(r)) << r.dump();
  EXPECT_GE(cgroup_.UsedPercent(), 60) << r.dump();
  EXPECT_NE(r.value("output", "").find("cgroup v1:" + cgroup_.path()), std::string::npos)
      << r.dump();

  const Json kill = Run("process.kill", {{"pattern", "stress-ng"}, {"signal", "TERM"}});
  ASSERT_TRUE(Succeeded(kill)) << kill.dump();
  const std::string out = kill.value("output", "");
  EXPECT_NE(out.find("(stress-ng)"), std::string::npos) << out;
  EXPECT_NE(out.find("outside this agent's memory cgroup"), std::string::npos) << out;
  EXPECT_TRUE(WaitFor([&] { return cgroup_.UsedPercent() < 50; }, 15s)) << cgroup_.UsedPercent();
  // Only the helper is left in the cgroup; the canary outside it was not touched.
  EXPECT_TRUE(WaitFor([&] { return cgroup_.Pids().size() == 1; }, 10s));
  EXPECT_TRUE(canary.Alive());
  EXPECT_NE(Run("chaos.stop", Json::object()).value("output", "").find("had already stopped"),
            std::string::npos);
}

TEST_F(ChaosTest, ScopedProcessKillRefusesAPidOutsideTheCgroup) {
  Canary canary(fs_.base());
  ASSERT_TRUE(WaitFor([&] { return canary.Alive(); }, 5s));
  StartHelper("  process_scope: cgroup\n");
  const Json by_pid = Run("process.kill", {{"pid", canary.pid()}, {"signal", "KILL"}});
  EXPECT_FALSE(Succeeded(by_pid)) << by_pid.dump();
  EXPECT_NE(by_pid.value("error", "").find("process_scope"), std::string::npos) << by_pid.dump();
  const Json by_name = Run("process.kill", {{"pattern", "stress-ng"}, {"signal", "KILL"}});
  EXPECT_FALSE(Succeeded(by_name)) << by_name.dump();
  EXPECT_NE(by_name.value("error", "").find("skipped"), std::string::npos) << by_name.dump();
  EXPECT_TRUE(canary.Alive());
}

TEST_F(ChaosTest, ChaosStopEndsTheHog) {
  StartHelper("  process_scope: cgroup\n");
  const Json r =
      Run("chaos.start", {{"mode", "oom"}, {"params", {{"percent", 50}, {"duration", 120}}}});
  ASSERT_TRUE(Succeeded(r)) << r.dump();
  EXPECT_GE(cgroup_.UsedPercent(), 50);
  EXPECT_GT(cgroup_.Pids().size(), 1u);
  const Json stop = Run("chaos.stop", Json::object());
  ASSERT_TRUE(Succeeded(stop)) << stop.dump();
  EXPECT_NE(stop.value("output", "").find("stopped memory hog stress-ng"), std::string::npos)
      << stop.dump();
  EXPECT_TRUE(WaitFor([&] { return cgroup_.Pids().size() == 1; }, 5s));
  EXPECT_TRUE(WaitFor([&] { return cgroup_.UsedPercent() < 30; }, 10s)) << cgroup_.UsedPercent();
}

TEST_F(ChaosTest, OomOverTheCapIsRefused) {
  StartHelper("  chaos_max_oom_bytes: 16MiB\n");
  const Json r = Run("chaos.start", {{"mode", "oom"}, {"params", {{"percent", 60}}}});
  EXPECT_FALSE(Succeeded(r)) << r.dump();
  EXPECT_NE(r.value("error", "").find("chaos_max_oom_bytes"), std::string::npos) << r.dump();
  EXPECT_EQ(cgroup_.Pids().size(), 1u);
}

}  // namespace
}  // namespace medic::agent
