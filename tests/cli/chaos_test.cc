#include "cli/chaos.h"

#include <gtest/gtest.h>
#include <signal.h>

#include "fake_process_table.h"

namespace medic::cli {
namespace {

using Signals = std::vector<std::pair<int, int>>;

TEST(ParseProcStatTest, Fields) {
  struct Case {
    std::string_view text;
    int pid;
    std::string comm;
    char state;
    int ppid;
    int pgid;
  };
  const Case cases[] = {
      {"1234 (nginx) S 1 1234 1234 0 -1 4194560", 1234, "nginx", 'S', 1, 1234},
      {"77 (my (odd) prog) R 5 6 6 0", 77, "my (odd) prog", 'R', 5, 6},
      {"9 (a b) Z 1 9 9 0 -1\n", 9, "a b", 'Z', 1, 9},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    const ProcStat st = ParseProcStat(c.text).value();
    EXPECT_EQ(st.pid, c.pid);
    EXPECT_EQ(st.comm, c.comm);
    EXPECT_EQ(st.state, c.state);
    EXPECT_EQ(st.ppid, c.ppid);
    EXPECT_EQ(st.pgid, c.pgid);
  }
}

TEST(ParseProcStatTest, Malformed) {
  for (std::string_view text :
       {"", "garbage", "12 (x)", "12 (x) S", "x (y) S 1 2", "12 (x) SS 1 2"}) {
    SCOPED_TRACE(text);
    EXPECT_FALSE(ParseProcStat(text).has_value());
  }
}

class CrashNginxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    procs_.SetFile("/run/nginx.pid", "100\n");
    procs_.AddProcess(1, "init", 'S', 0, 1);
    procs_.AddProcess(100, "nginx", 'S', 1, 100);     // master, leads its group
    procs_.AddProcess(101, "nginx", 'S', 100, 100);   // worker
    procs_.AddProcess(102, "nginx", 'S', 100, 100);   // worker
    procs_.AddProcess(103, "helper", 'S', 101, 100);  // a worker's child
    procs_.AddProcess(104, "nginx", 'Z', 100, 100);   // already dead worker
    procs_.AddProcess(200, "nginx", 'S', 1, 200);     // another nginx, not ours
    procs_.AddProcess(300, "bash", 'S', 1, 300);
  }
  FakeProcessTable procs_;
};

TEST_F(CrashNginxTest, FreezesMasterThenKillsDescendantsMasterAndGroup) {
  const NginxKill k = CrashNginx(procs_, "/run/nginx.pid").value();
  EXPECT_EQ(k.master, 100);
  EXPECT_EQ(k.workers, (std::vector<int>{101, 102, 103}));
  EXPECT_TRUE(k.group_killed);
  EXPECT_EQ(procs_.signals(), (Signals{{100, SIGSTOP},
                                       {101, SIGKILL},
                                       {102, SIGKILL},
                                       {103, SIGKILL},
                                       {100, SIGKILL},
                                       {-100, SIGKILL}}));
  EXPECT_EQ(DescribeNginxKill(k),
            "killed nginx master 100 and 3 workers (101, 102, 103), and its process group with "
            "SIGKILL");
}

TEST_F(CrashNginxTest, NoGroupKillWhenMasterDoesNotLeadItsGroup) {
  procs_.AddProcess(400, "nginx", 'S', 1, 50);
  procs_.AddProcess(401, "nginx", 'S', 400, 50);
  procs_.SetFile("/x/nginx.pid", "400");
  const NginxKill k = CrashNginx(procs_, "/x/nginx.pid").value();
  EXPECT_FALSE(k.group_killed);
  EXPECT_EQ(procs_.signals(), (Signals{{400, SIGSTOP}, {401, SIGKILL}, {400, SIGKILL}}));
  EXPECT_EQ(DescribeNginxKill(k), "killed nginx master 400 and 1 worker (401) with SIGKILL");
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
    FakeProcessTable procs = procs_;
    const std::string pidfile = c.pidfile_content.empty() ? "/missing.pid" : "/run/nginx.pid";
    procs.SetFile("/run/nginx.pid", c.pidfile_content);
    Result<NginxKill> k = CrashNginx(procs, pidfile);
    ASSERT_FALSE(k.has_value());
    EXPECT_EQ(k.error().code, c.code) << k.error().message;
    EXPECT_TRUE(procs.signals().empty());
  }
}

TEST(ChaosModesTest, List) { EXPECT_EQ(ChaosModeList(), "disk-fill, oom, nginx-crash, stop"); }

}  // namespace
}  // namespace medic::cli
