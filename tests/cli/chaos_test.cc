#include "cli/chaos.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>

#include "tests/fakes/proc_fs.h"

namespace medic::cli {
namespace {

using host::testing::FakeProcFs;
using Signals = std::vector<std::pair<int, int>>;

// A SignalFn that records every signal in `signals` and succeeds.
SignalFn RecordInto(Signals& signals) {
  return [&signals](int pid, int sig) {
    signals.emplace_back(pid, sig);
    return OkStatus();
  };
}

// The processes every case starts from.
void AddProcesses(FakeProcFs& procfs) {
  procfs.AddProcess({.pid = 1, .comm = "init", .state = 'S', .ppid = 0, .pgrp = 1});
  // master, leads its group
  procfs.AddProcess({.pid = 100, .comm = "nginx", .state = 'S', .ppid = 1, .pgrp = 100});
  // workers
  procfs.AddProcess({.pid = 101, .comm = "nginx", .state = 'S', .ppid = 100, .pgrp = 100});
  procfs.AddProcess({.pid = 102, .comm = "nginx", .state = 'S', .ppid = 100, .pgrp = 100});
  // a worker's child
  procfs.AddProcess({.pid = 103, .comm = "helper", .state = 'S', .ppid = 101, .pgrp = 100});
  // an already dead worker
  procfs.AddProcess({.pid = 104, .comm = "nginx", .state = 'Z', .ppid = 100, .pgrp = 100});
  // another nginx, not ours
  procfs.AddProcess({.pid = 200, .comm = "nginx", .state = 'S', .ppid = 1, .pgrp = 200});
  procfs.AddProcess({.pid = 300, .comm = "bash", .state = 'S', .ppid = 1, .pgrp = 300});
}

class CrashNginxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    procfs_.SetFile("/run/nginx.pid", "100\n");
    AddProcesses(procfs_);
  }
  FakeProcFs procfs_;
  Signals signals_;
};

TEST_F(CrashNginxTest, FreezesMasterThenKillsDescendantsMasterAndGroup) {
  const NginxKill k = CrashNginx(procfs_, RecordInto(signals_), "/run/nginx.pid").value();
  EXPECT_EQ(k.master, 100);
  EXPECT_EQ(k.workers, (std::vector<int>{101, 102, 103}));
  EXPECT_TRUE(k.group_killed);
  EXPECT_EQ(signals_, (Signals{{100, SIGSTOP},
                               {101, SIGKILL},
                               {102, SIGKILL},
                               {103, SIGKILL},
                               {100, SIGKILL},
                               {-100, SIGKILL}}));
  EXPECT_EQ(DescribeNginxKill(k),
            "killed nginx master 100 and 3 workers (101, 102, 103), and its process group with "
            "SIGKILL");
}

// The master's parent (a supervisor) may reap it between its SIGKILL and the group's: the group
// is then empty and kill(-pgid) says ESRCH. The group is dead all the same, and the message
// says so whichever came first (docs/CLI.md shows it, checked by docs.examples).
TEST_F(CrashNginxTest, AGroupAlreadyEmptyCountsAsKilled) {
  const SignalFn group_gone = [this](int pid, int sig) -> Status {
    signals_.emplace_back(pid, sig);
    if (pid < 0) {
      return NotFound("no process " + std::to_string(pid));
    }
    return OkStatus();
  };
  const NginxKill k = CrashNginx(procfs_, group_gone, "/run/nginx.pid").value();
  EXPECT_TRUE(k.group_killed);
  EXPECT_EQ(signals_.back(), (std::pair<int, int>{-100, SIGKILL}));
  EXPECT_EQ(DescribeNginxKill(k),
            "killed nginx master 100 and 3 workers (101, 102, 103), and its process group with "
            "SIGKILL");
}

TEST_F(CrashNginxTest, NoGroupKillWhenMasterDoesNotLeadItsGroup) {
  procfs_.AddProcess({.pid = 400, .comm = "nginx", .state = 'S', .ppid = 1, .pgrp = 50});
  procfs_.AddProcess({.pid = 401, .comm = "nginx", .state = 'S', .ppid = 400, .pgrp = 50});
  procfs_.SetFile("/x/nginx.pid", "400");
  const NginxKill k = CrashNginx(procfs_, RecordInto(signals_), "/x/nginx.pid").value();
  EXPECT_FALSE(k.group_killed);
  EXPECT_EQ(signals_, (Signals{{400, SIGSTOP}, {401, SIGKILL}, {400, SIGKILL}}));
  EXPECT_EQ(DescribeNginxKill(k), "killed nginx master 400 and 1 worker (401) with SIGKILL");
}

TEST_F(CrashNginxTest, ReadsARelativePidfileAgainstTheWorkingDirectory) {
  procfs_.SetFile(std::filesystem::current_path().string() + "/run/nginx.pid", "100\n");
  const NginxKill k = CrashNginx(procfs_, RecordInto(signals_), "run/nginx.pid").value();
  EXPECT_EQ(k.master, 100);
  EXPECT_EQ(k.workers, (std::vector<int>{101, 102, 103}));
}

TEST_F(CrashNginxTest, RefusesWhatIsNotARunningNginx) {
  struct Case {
    std::string pidfile_content;  // empty: no pidfile
    ErrorCode code;
  };
  const Case cases[] = {
      {"", ErrorCode::kNotFound},                 // no pidfile
      {"abc\n", ErrorCode::kInvalidArgument},     // not a pid
      {"1\n", ErrorCode::kInvalidArgument},       // never pid 1
      {"-100\n", ErrorCode::kInvalidArgument},    // never a group
      {"999\n", ErrorCode::kNotFound},            // no such process
      {"104\n", ErrorCode::kNotFound},            // a zombie
      {"300\n", ErrorCode::kFailedPrecondition},  // bash, not nginx
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.pidfile_content);
    FakeProcFs procfs;
    AddProcesses(procfs);
    const std::string pidfile = c.pidfile_content.empty() ? "/missing.pid" : "/run/nginx.pid";
    procfs.SetFile("/run/nginx.pid", c.pidfile_content);
    Signals signals;
    Result<NginxKill> k = CrashNginx(procfs, RecordInto(signals), pidfile);
    ASSERT_FALSE(k.has_value());
    EXPECT_EQ(k.error().code, c.code) << k.error().message;
    EXPECT_TRUE(signals.empty());
  }
}

TEST(ChaosModesTest, List) { EXPECT_EQ(ChaosModeList(), "disk-fill, oom, nginx-crash, stop"); }

}  // namespace
}  // namespace medic::cli
