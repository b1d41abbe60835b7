// ForkExecCommandRunner with real processes (integration): exit codes, signals, the output
// cap, deadlines with process-group kill, and nothing left behind.

#include "agent/command_runner.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "host/proc_fs.h"
#include "core/files.h"

namespace medic::agent {
namespace {

class CommandRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(reaper_.Start().has_value()); }
  void TearDown() override { reaper_.Stop(); }

  CommandOutcome Run(std::vector<std::string> argv, Millis timeout = Millis(10'000),
                     Millis grace = Millis(2'000)) {
    CommandSpec spec;
    spec.argv = std::move(argv);
    spec.timeout = timeout;
    spec.kill_grace = grace;
    return runner_.Run(spec);
  }

  ChildReaper reaper_;
  ForkExecCommandRunner runner_{reaper_};
};

bool PidGone(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

// Processes (not zombies) still in process group `pgid`.
int GroupSize(pid_t pgid) {
  host::LinuxProcFs procfs;
  int n = 0;
  for (const auto& p : ListProcesses(procfs)) {
    if (p.pgrp == pgid) {
      ++n;
    }
  }
  return n;
}

int64_t StatusKb(const std::string& field) {
  auto text = ReadFile("/proc/self/status");
  std::istringstream in(text.value_or(""));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) {
      return std::stoll(line.substr(field.size() + 1));
    }
  }
  return -1;
}

TEST_F(CommandRunnerTest, ExitCodesAndSignals) {
  struct Case {
    std::vector<std::string> argv;
    int exit_code;
    int signal;
  };
  const Case cases[] = {
      {{"true"}, 0, 0},
      {{"false"}, 1, 0},
      {{"sh", "-c", "exit 3"}, 3, 0},
      {{"sh", "-c", "kill -9 $$"}, -1, SIGKILL},
      {{"/bin/sh", "-c", "kill -SEGV $$"}, -1, SIGSEGV},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.argv.back());
    const CommandOutcome o = Run(c.argv);
    EXPECT_TRUE(o.started) << o.error;
    EXPECT_EQ(o.exit_code, c.exit_code);
    EXPECT_EQ(o.signal, c.signal);
    EXPECT_FALSE(o.timed_out);
    EXPECT_EQ(o.Succeeded(), c.exit_code == 0 && c.signal == 0);
  }
}

TEST_F(CommandRunnerTest, MissingProgramIsNotStarted) {
  const CommandOutcome o = Run({"medic-no-such-program"});
  EXPECT_FALSE(o.started);
  EXPECT_NE(o.error.find("not found"), std::string::npos) << o.error;
  EXPECT_FALSE(Run({}).started);
}

TEST_F(CommandRunnerTest, StdoutThenStderrAndArgvIsNotAShell) {
  CommandOutcome o = Run({"sh", "-c", "echo err >&2; echo out"});
  EXPECT_EQ(o.output, "out\nerr\n");
  // Metacharacters in an argument are just bytes.
  o = Run({"echo", "a; touch /tmp/medic-agent-canary-should-not-exist $(id)"});
  EXPECT_EQ(o.output, "a; touch /tmp/medic-agent-canary-should-not-exist $(id)\n");
  EXPECT_FALSE(PathExists("/tmp/medic-agent-canary-should-not-exist"));
}

TEST_F(CommandRunnerTest, EnvironmentIsScrubbed) {
  ::setenv("MEDIC_TEST_SECRET", "hunter2", 1);
  const CommandOutcome o = Run({"env"});
  ::unsetenv("MEDIC_TEST_SECRET");
  EXPECT_EQ(o.output, "PATH=/usr/sbin:/usr/bin:/sbin:/bin\nLANG=C\n");
}

// 64 KiB each: a flood on stdout does not hide what the command said on stderr.
TEST_F(CommandRunnerTest, EachStreamKeepsItsOwnCap) {
  const CommandOutcome o =
      Run({"/bin/sh", "-c", "head -c 200000 /dev/zero | tr '\\0' o; echo the-error >&2"});
  EXPECT_TRUE(o.Succeeded()) << o.error;
  EXPECT_TRUE(o.truncated);
  EXPECT_EQ(o.output.size(), 64u * 1024 + std::string("the-error\n").size());
  EXPECT_EQ(o.output.substr(o.output.size() - 10), "the-error\n");
}

TEST_F(CommandRunnerTest, OutputIsCappedWhileTheChildIsDrained) {
  // Reset the peak-RSS counter, then push 50 MB through the pipe.
  {
    std::ofstream clear("/proc/self/clear_refs");
    clear << "5";
  }
  const int64_t hwm_before = StatusKb("VmHWM");
  const CommandOutcome o = Run({"head", "-c", "50000000", "/dev/zero"});
  const int64_t hwm_after = StatusKb("VmHWM");
  EXPECT_TRUE(o.Succeeded()) << o.error;  // head was never blocked on a full pipe
  EXPECT_TRUE(o.truncated);
  EXPECT_EQ(o.output.size(), 64u * 1024);
  EXPECT_LT(hwm_after - hwm_before, 8 * 1024)
      << "peak RSS grew by " << hwm_after - hwm_before << " KiB";
}

TEST_F(CommandRunnerTest, DeadlineKillsTheWholeGroupEvenWhenTermIsIgnored) {
  // The shell and both sleeps ignore SIGTERM; only SIGKILL to the group ends them.
  const auto start = std::chrono::steady_clock::now();
  const CommandOutcome o =
      Run({"sh", "-c", "trap '' TERM; sleep 1000 & echo $!; sleep 1000"}, Millis(300), Millis(500));
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(o.started);
  EXPECT_TRUE(o.timed_out);
  EXPECT_EQ(o.signal, SIGKILL);
  EXPECT_GE(took, Millis(800));
  EXPECT_LT(took, Millis(800 + 2000));
  const pid_t background = static_cast<pid_t>(std::stol(o.output));
  EXPECT_TRUE(PidGone(background));
  EXPECT_TRUE(PidGone(o.pid));
  EXPECT_EQ(GroupSize(o.pid), 0);
}

// Issue 3 acceptance: a command that sleeps forever, ignores SIGTERM and double-forks (children
// that call setsid, leaving the command's session and process group) is gone with all its
// descendants by deadline + grace. Every descendant writes its pid; none may survive.
TEST_F(CommandRunnerTest, SetsidAndDoubleForkedDescendantsAreGoneByDeadlinePlusGrace) {
  char tmpl[] = "/tmp/medic-runner-test-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  const std::string pids = dir + "/pids";
  const std::string script =
      "trap '' TERM\n"  // ignored signals are inherited: every descendant ignores TERM too
      // double fork: the middle shell exits at once, its sleep is orphaned (stays in the group)
      "sh -c 'sleep 1000 >/dev/null 2>&1 & echo $! >> " +
      pids +
      "' \n"
      // setsid -f: fork, setsid, exec; the forking parent exits (a classic daemon)
      "setsid -f sh -c 'echo $$ >> " +
      pids +
      "; exec sleep 1000' >/dev/null 2>&1\n"
      // double fork whose grandchild starts its own session and then forks again
      "sh -c \"setsid sh -c 'sleep 1000 & echo \\$! >> " +
      pids + "; echo \\$\\$ >> " + pids +
      "; exec sleep 1000' >/dev/null 2>&1 &\"\n"
      "echo $$ >> " +
      pids +
      "\n"
      "sleep 1000\n";
  ASSERT_TRUE(WriteFileAtomic(dir + "/forever.sh", script).has_value());

  const Millis deadline(1'000), grace(500);
  const auto start = std::chrono::steady_clock::now();
  CommandOutcome o;
  std::chrono::steady_clock::duration took{};
  std::thread run([&] {
    o = Run({"sh", dir + "/forever.sh"}, deadline, grace);
    took = std::chrono::steady_clock::now() - start;
  });
  // While it runs: which process group and session is each descendant in? The test only means
  // something if some of them really left the command's group and session.
  std::map<pid_t, host::PidStat> seen;
  host::LinuxProcFs procfs;
  while (std::chrono::steady_clock::now() - start < Millis(900) && seen.size() < 5) {
    std::istringstream in(ReadFile(pids).value_or(""));
    long pid = 0;
    while (in >> pid) {
      if (auto text = procfs.Read(std::to_string(pid) + "/stat")) {
        if (auto st = host::ParsePidStat(*text)) {
          seen[static_cast<pid_t>(pid)] = *st;
        }
      }
    }
    std::this_thread::sleep_for(Millis(20));
  }
  run.join();
  int escaped = 0;
  for (const auto& [pid, st] : seen) {
    if (st.pgrp != o.pid && st.session != o.pid) {
      ++escaped;
    }
  }
  EXPECT_GE(escaped, 2) << "the setsid descendants did not leave the command's group";

  std::vector<pid_t> descendants;
  {
    std::istringstream in(ReadFile(pids).value_or(""));
    long pid = 0;
    while (in >> pid) {
      descendants.push_back(static_cast<pid_t>(pid));
    }
  }
  ::unlink(pids.c_str());
  ::unlink((dir + "/forever.sh").c_str());
  ::rmdir(dir.c_str());

  EXPECT_TRUE(o.started) << o.error;
  EXPECT_TRUE(o.in_cgroup) << "no writable cgroup v1 hierarchy: setsid children could escape";
  EXPECT_TRUE(o.timed_out);
  EXPECT_EQ(o.signal, SIGKILL);  // TERM was ignored
  EXPECT_LT(took, deadline + grace + Millis(2000));  // not the script's 1000 s
  // The script itself, the orphaned sleep, the setsid -f shell, the setsid shell and its sleep.
  ASSERT_EQ(descendants.size(), 5u);
  for (pid_t pid : descendants) {
    EXPECT_TRUE(PidGone(pid)) << "pid " << pid << " survived";
    if (!PidGone(pid)) {
      ::kill(pid, SIGKILL);  // leave nothing behind on this shared machine
    }
  }
}

// Issue 3 acceptance: 1 GiB on stdout leaves the agent's memory flat (peak RSS of this process,
// which is the runner, grows by less than 4 MiB) and the output is cut at the cap, marked.
TEST_F(CommandRunnerTest, OneGibOfStdoutLeavesMemoryFlatAndIsTruncatedAtTheCap) {
  {
    std::ofstream clear("/proc/self/clear_refs");
    clear << "5";  // reset VmHWM to the current RSS
  }
  const int64_t hwm_before = StatusKb("VmHWM");
  CommandSpec spec;
  spec.argv = {"head", "-c", "1073741824", "/dev/zero"};
  spec.timeout = Millis(60'000);
  const CommandOutcome o = runner_.Run(spec);
  const int64_t hwm_after = StatusKb("VmHWM");
  EXPECT_TRUE(o.Succeeded()) << o.error;
  EXPECT_TRUE(o.truncated);
  EXPECT_EQ(o.output.size(), spec.output_cap);
  EXPECT_EQ(o.output, std::string(spec.output_cap, '\0'));
  EXPECT_LT(hwm_after - hwm_before, 4 * 1024)
      << "peak RSS grew by " << hwm_after - hwm_before << " KiB";
}

TEST_F(CommandRunnerTest, DeadlineSendsTermFirst) {
  const CommandOutcome o = Run({"sleep", "1000"}, Millis(200));
  EXPECT_TRUE(o.timed_out);
  EXPECT_EQ(o.signal, SIGTERM);
  EXPECT_LT(o.duration, Millis(1500));
}

TEST_F(CommandRunnerTest, NothingOfTheGroupOutlivesTheCommand) {
  const auto before = reaper_.orphans_reaped();
  const CommandOutcome o = Run({"sh", "-c", "sleep 1000 >/dev/null 2>&1 & echo $!"});
  EXPECT_TRUE(o.Succeeded());
  EXPECT_LT(o.duration, Millis(2000));
  const pid_t background = static_cast<pid_t>(std::stol(o.output));
  EXPECT_TRUE(PidGone(background));
  EXPECT_EQ(GroupSize(o.pid), 0);
  EXPECT_GT(reaper_.orphans_reaped(), before);  // the adopted sleep was reaped by the agent
}

TEST_F(CommandRunnerTest, ConcurrentRunsGetTheirOwnResults) {
  std::vector<std::thread> threads;
  std::vector<CommandOutcome> outcomes(6);
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&, i] {
      outcomes[i] = Run({"sh", "-c", "echo " + std::to_string(i) + "; exit " + std::to_string(i)});
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(outcomes[i].exit_code, i);
    EXPECT_EQ(outcomes[i].output, std::to_string(i) + "\n");
  }
}

// What a command inherits from the agent, documented in docs/AGENT.md and command_runner.h but
// until now unchecked (issue 20): only descriptors 0-2 (a descriptor the agent opened without
// O_CLOEXEC stays behind), stdin from /dev/null, no blocked and no ignored signal (the agent
// blocks and ignores some), and, when switching user, only that user's group as supplementary
// group (the caller's are dropped).
TEST_F(CommandRunnerTest, TheChildInheritsNoDescriptorSignalStateOrGroupOfTheAgent) {
  ASSERT_EQ(::getuid(), 0u) << "the test suite runs as root (see README)";
  const int leaked = ::open("/dev/zero", O_RDONLY);  // no O_CLOEXEC on purpose
  ASSERT_GE(leaked, 3);
  sigset_t block, old_mask;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR1);
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &block, &old_mask), 0);
  struct sigaction ignore {}, old_usr2 {};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(::sigaction(SIGUSR2, &ignore, &old_usr2), 0);
  const gid_t extra[] = {0, 4, 27};  // root, adm, sudo
  std::vector<gid_t> old_groups(64);
  const int old_n = ::getgroups(static_cast<int>(old_groups.size()), old_groups.data());
  ASSERT_GE(old_n, 0);
  ASSERT_EQ(::setgroups(3, extra), 0);

  // ls opens /proc/self/fd as its descriptor 3 to read it; anything else listed was inherited.
  const CommandOutcome fds = Run({"ls", "/proc/self/fd"});
  const CommandOutcome status = Run({"grep", "-E", "^(SigBlk|SigIgn):", "/proc/self/status"});
  const CommandOutcome in = Run({"readlink", "/proc/self/fd/0"});
  CommandSpec as_nobody;
  as_nobody.argv = {"grep", "^Groups:", "/proc/self/status"};
  as_nobody.run_as = "nobody";
  const CommandOutcome groups = runner_.Run(as_nobody);
  const CommandOutcome root_groups = Run({"grep", "^Groups:", "/proc/self/status"});

  ::setgroups(static_cast<size_t>(old_n), old_groups.data());
  ::sigaction(SIGUSR2, &old_usr2, nullptr);
  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  ::close(leaked);

  EXPECT_TRUE(fds.Succeeded()) << fds.error;
  EXPECT_EQ(fds.output, "0\n1\n2\n3\n");
  EXPECT_TRUE(status.Succeeded()) << status.error;
  // /proc's masks: bit N-1 is signal N. glibc refuses to touch the two real-time signals it
  // reserves (32 and 33), so whoever started the agent decides those (CI's shell ignores 32);
  // PrepareChildProcess says so. Every other signal must be unblocked and at its default.
  std::istringstream masks(status.output);
  std::string blk_name, blk, ign_name, ign;
  masks >> blk_name >> blk >> ign_name >> ign;
  EXPECT_EQ(blk_name + ign_name, "SigBlk:SigIgn:") << status.output;
  constexpr uint64_t kGlibcReserved = (1ull << 31) | (1ull << 32);
  EXPECT_EQ(std::stoull(blk, nullptr, 16), 0u) << status.output;
  EXPECT_EQ(std::stoull(ign, nullptr, 16) & ~kGlibcReserved, 0u) << status.output;
  EXPECT_TRUE(in.Succeeded()) << in.error;
  EXPECT_EQ(in.output, "/dev/null\n");
  EXPECT_TRUE(groups.Succeeded()) << groups.error << groups.output;
  EXPECT_EQ(groups.output, "Groups:\t65534 \n");
  // Without a user switch the command runs with the agent's credentials, groups included: the
  // check above is not vacuous.
  EXPECT_EQ(root_groups.output, "Groups:\t0 4 27 \n");
}

TEST_F(CommandRunnerTest, RunAsUserAndWorkingDirectory) {
  if (::getuid() != 0) {
    FAIL() << "switching users needs root: the test suite runs as root (see README)";
  }
  CommandSpec spec;
  spec.argv = {"sh", "-c", "id -u; id -g; pwd"};
  spec.run_as = "nobody";
  spec.working_dir = "/tmp";
  const CommandOutcome o = runner_.Run(spec);
  EXPECT_TRUE(o.Succeeded()) << o.error << o.output;
  EXPECT_EQ(o.output, "65534\n65534\n/tmp\n");
  spec.run_as = "medic-no-such-user";
  EXPECT_FALSE(runner_.Run(spec).started);
  spec.run_as.clear();
  spec.working_dir = "/medic-no-such-dir";
  const CommandOutcome bad_dir = runner_.Run(spec);
  EXPECT_EQ(bad_dir.exit_code, 126);
  EXPECT_NE(bad_dir.output.find("working directory"), std::string::npos);
  spec.working_dir.clear();
  EXPECT_EQ(runner_.Run(spec).output.substr(4), "/\n");  // "0\n0\n/\n": root, in /
}

TEST_F(CommandRunnerTest, ConcurrencyIsLimited) {
  ForkExecCommandRunner limited(reaper_, /*max_concurrent=*/2);
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      CommandSpec spec;
      spec.argv = {"sleep", "0.3"};
      EXPECT_TRUE(limited.Run(spec).Succeeded());
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  // Four 300 ms commands, two at a time: two rounds.
  EXPECT_GE(std::chrono::steady_clock::now() - start, Millis(600));
}

}  // namespace
}  // namespace medic::agent
