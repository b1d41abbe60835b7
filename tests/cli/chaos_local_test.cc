// `medic chaos disk-fill|oom|stop` on this machine, with the real binary, made safe for a shared
// machine: disk-fill only into a 16 MiB tmpfs mounted here; oom only with `medic` started inside
// a 128 MiB memory cgroup created below this test's own (the hog it leaves behind stays there).

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/json.h"
#include "tests/agent/chaos_sandbox.h"

namespace medic::cli {
namespace {

using chaos_testing::MemoryCgroup;
using chaos_testing::ProcessAlive;
using chaos_testing::TestChild;
using chaos_testing::TmpfsDir;
using chaos_testing::UsedPercent;
using chaos_testing::WaitFor;
using namespace std::chrono_literals;

std::string MedicBin() {
  if (const char* dir = std::getenv("MEDIC_BIN_DIR"); dir != nullptr && *dir != '\0') {
    return std::string(dir) + "/medic";
  }
  return (std::filesystem::read_symlink("/proc/self/exe").parent_path().parent_path() / "bin" /
          "medic")
      .string();
}

struct Outcome {
  int status = -1;
  std::string out;
  std::string err;
};

Outcome RunMedic(std::vector<std::string> args, int cgroup_procs_fd = -1) {
  args.insert(args.begin(), MedicBin());
  TestChild child(args, cgroup_procs_fd);
  Outcome o;
  o.status = child.Finish(&o.out, &o.err);
  return o;
}

class LocalChaosTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) {
      GTEST_SKIP() << "needs root (mount, cgroups)";
    }
    ASSERT_EQ(::access(MedicBin().c_str(), X_OK), 0) << MedicBin() << " is not built";
    ASSERT_TRUE(fs_.ok()) << fs_.error();
    state_ = fs_.base() + "/chaos.json";
  }

  TmpfsDir fs_;
  std::string state_;
};

TEST_F(LocalChaosTest, DiskFillShowsProgressAndStopUndoesIt) {
  ASSERT_LT(UsedPercent(fs_.mount()), 10);
  const Outcome fill = RunMedic(
      {"chaos", "disk-fill", "--path", fs_.mount(), "--percent", "75", "--state-file", state_});
  ASSERT_EQ(fill.status, 0) << fill.out << fill.err;
  EXPECT_GE(UsedPercent(fs_.mount()), 75);
  EXPECT_NE(fill.out.find("wrote "), std::string::npos) << fill.out;
  // Progress: the used percent, several times, on stderr.
  size_t lines = 0;
  for (size_t pos = 0; (pos = fill.err.find("disk-fill: ", pos)) != std::string::npos; ++pos) {
    ++lines;
  }
  EXPECT_GE(lines, 5u) << fill.err;
  const std::string file = fs_.mount() + "/medic-chaos-fill.log";
  auto state = ReadFile(state_);
  ASSERT_TRUE(state.has_value());
  EXPECT_NE(state->find(file), std::string::npos) << *state;

  const Outcome stop = RunMedic({"chaos", "stop", "--state-file", state_});
  ASSERT_EQ(stop.status, 0) << stop.err;
  EXPECT_NE(stop.out.find("removed " + file), std::string::npos) << stop.out;
  EXPECT_FALSE(PathExists(file));
  EXPECT_FALSE(PathExists(state_));
  EXPECT_LT(UsedPercent(fs_.mount()), 10);
  EXPECT_EQ(RunMedic({"chaos", "stop", "--state-file", state_}).out, "no chaos running\n");
}

TEST_F(LocalChaosTest, OomLeavesAHogInTheCgroupAndStopEndsIt) {
  MemoryCgroup cgroup(128ull << 20);
  ASSERT_TRUE(cgroup.ok()) << cgroup.error();
  const Outcome oom =
      RunMedic({"chaos", "oom", "--percent", "60", "--duration", "120s", "--state-file", state_},
               cgroup.procs_fd());
  ASSERT_EQ(oom.status, 0) << oom.out << oom.err;
  EXPECT_NE(oom.err.find("oom: memory at "), std::string::npos) << oom.err;
  // medic has exited; its hog holds the memory (less medic's own few MiB).
  EXPECT_GE(cgroup.UsedPercent(), 55) << oom.out;
  const std::vector<pid_t> pids = cgroup.Pids();
  ASSERT_FALSE(pids.empty());
  for (pid_t pid : pids) {
    auto comm = ReadFile("/proc/" + std::to_string(pid) + "/comm");
    EXPECT_EQ(std::string(Trim(comm.value_or(""))).rfind("stress-ng", 0), 0u) << pid;
  }

  const Outcome stop = RunMedic({"chaos", "stop", "--state-file", state_});
  ASSERT_EQ(stop.status, 0) << stop.err;
  EXPECT_NE(stop.out.find("stopped memory hog stress-ng"), std::string::npos) << stop.out;
  EXPECT_TRUE(WaitFor([&] { return cgroup.Pids().empty(); }, 10s));
  EXPECT_LT(cgroup.UsedPercent(), 30);
}

TEST_F(LocalChaosTest, StopLeavesARecordedPidThatIsNoLongerStressNgAlone) {
  // A process leading its own group, as a hog would, but not stress-ng (a reused pid).
  TestChild other({"/usr/bin/setsid", "/bin/sleep", "300"});
  ASSERT_TRUE(WaitFor(
      [&] {
        auto comm = ReadFile("/proc/" + std::to_string(other.pid()) + "/comm");
        return comm.has_value() && Trim(*comm) == "sleep";
      },
      5s));
  std::ofstream(state_) << DumpJson(Json{{"fill_files", Json::array()}, {"hogs", {other.pid()}}});
  const Outcome stop = RunMedic({"chaos", "stop", "--state-file", state_});
  ASSERT_EQ(stop.status, 0) << stop.err;
  EXPECT_NE(stop.out.find("left process group " + std::to_string(other.pid()) + " alone"),
            std::string::npos)
      << stop.out;
  EXPECT_TRUE(ProcessAlive(other.pid()));
}

}  // namespace
}  // namespace medic::cli
