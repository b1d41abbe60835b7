// The built-in supervisor with real processes and a real nginx (integration).

#include "agent/supervisor.h"

#include <gtest/gtest.h>

#include <fstream>
#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <future>
#include <iostream>
#include <thread>

#include "agent/health_check.h"
#include "core/files.h"
#include "tests/fakes/subprocess.h"

namespace medic::agent {
namespace {

// An exit is noticed by the reaper's event, never by polling (the supervisor has none), so any
// bound shows that; it only has to hold on a loaded 2-core machine, where the scheduler alone
// delayed the reaper thread by 77.7 ms once and a parallel build can do worse. How fast it is, is
// bench/heal_time.py's business (docs/BENCHMARKS.md).
constexpr Millis kNoticeBound{2'000};

using Steady = std::chrono::steady_clock;

template <typename Pred>
bool WaitUntil(Pred pred, Millis limit = Millis(5000)) {
  const auto deadline = Steady::now() + limit;
  while (!pred()) {
    if (Steady::now() > deadline) {
      return false;
    }
    std::this_thread::sleep_for(Millis(10));
  }
  return true;
}

bool PidGone(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

class SupervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/medic-supervisor-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ASSERT_TRUE(reaper_.Start().has_value());
  }
  void TearDown() override {
    if (supervisor_) {
      supervisor_->StopAll();  // also on failure: leave no process behind
    }
    supervisor_.reset();
    reaper_.Stop();
    const std::string rm = dir_;
    // Only files this test created, inside its own temp dir.
    for (const char* f :
         {"/nginx.conf", "/error.log", "/access.log", "/nginx.pid", "/out.log", "/svc.log"}) {
      ::unlink((rm + f).c_str());
    }
    for (const char* d : {"/client_body", "/proxy", "/fastcgi", "/uwsgi", "/scgi"}) {
      ::rmdir((rm + d).c_str());
    }
    ::rmdir(rm.c_str());
  }

  SupervisorServiceManager& Make(std::vector<ServiceConfig> services) {
    supervisor_ =
        std::make_unique<SupervisorServiceManager>(std::move(services), reaper_, procfs_, clock_);
    supervisor_->SetExitListener([this](const std::string& name, const ServiceExit& exit) {
      std::lock_guard<std::mutex> lock(mu_);
      exits_.emplace_back(name, exit);
      exit_cv_.notify_all();
    });
    return *supervisor_;
  }

  // Waits for the n-th exit event (1-based); returns how long it took from `since`.
  std::optional<Millis> WaitForExit(size_t n, Steady::time_point since) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!exit_cv_.wait_for(lock, Millis(5000), [&] { return exits_.size() >= n; })) {
      return std::nullopt;
    }
    return std::chrono::duration_cast<Millis>(Steady::now() - since);
  }

  ServiceConfig Nginx(int port) {
    const std::string conf =
        "worker_processes 1;\n"
        "daemon off;\n"
        "pid " +
        dir_ +
        "/nginx.pid;\n"
        "error_log " +
        dir_ +
        "/error.log;\n"
        "events { worker_connections 64; }\n"
        "http {\n"
        "  access_log " +
        dir_ +
        "/access.log;\n"
        "  client_body_temp_path " +
        dir_ +
        "/client_body;\n"
        "  proxy_temp_path " +
        dir_ +
        "/proxy;\n"
        "  fastcgi_temp_path " +
        dir_ +
        "/fastcgi;\n"
        "  uwsgi_temp_path " +
        dir_ +
        "/uwsgi;\n"
        "  scgi_temp_path " +
        dir_ +
        "/scgi;\n"
        "  server {\n"
        "    listen 127.0.0.1:" +
        std::to_string(port) +
        ";\n"
        "    location /health { return 200 \"ok\\n\"; }\n"
        "  }\n"
        "}\n";
    EXPECT_TRUE(WriteFileAtomic(dir_ + "/nginx.conf", conf).has_value());
    ServiceConfig s;
    s.name = "nginx";
    s.start = {"/usr/sbin/nginx",   "-p", dir_ + "/",          "-e",
               dir_ + "/error.log", "-c", dir_ + "/nginx.conf"};
    s.log = dir_ + "/out.log";
    s.log_files = {dir_ + "/error.log"};
    s.stop_timeout = Millis(3000);
    return s;
  }

  ServiceConfig Simple(std::string name, std::vector<std::string> argv) {
    ServiceConfig s;
    s.name = std::move(name);
    s.start = std::move(argv);
    s.log = dir_ + "/svc.log";
    return s;
  }

  // Why nginx may not answer on its HeldPort `port` (or "").
  std::string PortTaken(int port) const {
    return test::PortTakenMessage(dir_ + "/error.log", port);
  }

  bool Healthy(int port) {
    CheckConfig check;
    check.name = "web";
    check.url = "http://127.0.0.1:" + std::to_string(port) + "/health";
    check.timeout = Millis(500);
    auto http = NewCurlHttpClient();
    return ProbeHttp(*http, clock_, check).healthy;
  }

  // The processes of process group `pgid` other than `except`.
  std::vector<host::PidStat> Group(pid_t pgid, pid_t except = 0) {
    std::vector<host::PidStat> out;
    for (auto& p : ListProcesses(procfs_)) {
      if (p.pgrp == pgid && p.pid != except && p.state != 'Z') {
        out.push_back(p);
      }
    }
    return out;
  }

  std::string dir_;
  SystemClock clock_;
  host::LinuxProcFs procfs_;
  ChildReaper reaper_;
  std::unique_ptr<SupervisorServiceManager> supervisor_;
  std::mutex mu_;
  std::condition_variable exit_cv_;
  std::vector<std::pair<std::string, ServiceExit>> exits_;
};

TEST_F(SupervisorTest, StartStatusStopOfASimpleService) {
  auto& sup = Make({Simple("sleeper", {"sleep", "1000"})});
  EXPECT_EQ(sup.Names(), std::vector<std::string>{"sleeper"});
  auto started = sup.Start("sleeper");
  ASSERT_TRUE(started.has_value()) << started.error().message;
  auto st = sup.GetStatus("sleeper");
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(st->running);
  const pid_t pid = st->pid;
  EXPECT_GT(pid, 1);
  EXPECT_EQ(Group(pid).size(), 1u);  // its own process group
  EXPECT_EQ(*sup.Start("sleeper"), "sleeper is already running (pid " + std::to_string(pid) + ")");

  auto stopped = sup.Stop("sleeper");
  ASSERT_TRUE(stopped.has_value());
  EXPECT_NE(stopped->find("with SIGTERM"), std::string::npos) << *stopped;
  st = sup.GetStatus("sleeper");
  EXPECT_FALSE(st->running);
  ASSERT_TRUE(st->last_exit.has_value());
  EXPECT_EQ(st->last_exit->status.signal, SIGTERM);
  EXPECT_TRUE(PidGone(pid));
  EXPECT_NE(FormatServiceStatus(*st).find("sleeper: stopped; last exit: pid " +
                                          std::to_string(pid) + " killed by signal 15"),
            std::string::npos);
  EXPECT_EQ(sup.GetStatus("nope").error().code, ErrorCode::kNotFound);
}

TEST_F(SupervisorTest, ExitIsNoticedByEventAndNotRestarted) {
  auto& sup = Make({Simple("sleeper", {"sleep", "1000"})});
  ASSERT_TRUE(sup.Start("sleeper").has_value());
  const pid_t pid = sup.GetStatus("sleeper")->pid;
  const auto killed_at = Steady::now();
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  auto took = WaitForExit(1, killed_at);
  ASSERT_TRUE(took.has_value());
  EXPECT_LT(*took, kNoticeBound);
  EXPECT_EQ(exits_[0].second.status.signal, SIGKILL);
  EXPECT_FALSE(sup.GetStatus("sleeper")->running);
  std::this_thread::sleep_for(Millis(300));
  EXPECT_FALSE(sup.GetStatus("sleeper")->running);  // healing is the server's call
}

TEST_F(SupervisorTest, StartFailureReportsTheLogTail) {
  auto& sup = Make({Simple("broken", {"sh", "-c", "echo boom-from-service; exit 3"}),
                    Simple("missing", {"/nonexistent/medic-binary"})});
  auto r = sup.Start("broken");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("exited right after start (exit code 3)"), std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find("boom-from-service"), std::string::npos);
  r = sup.Start("missing");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("/nonexistent/medic-binary"), std::string::npos);
}

// Issue 12: the service's log is opened beneath its directory with no symlink in any component
// and one link, so a log path swapped for a symlink (or a hard link) to another file is refused
// instead of being appended to or created through.
TEST_F(SupervisorTest, SymlinkedOrHardLinkedLogIsRefused) {
  const std::string victim = dir_ + "/victim.txt";
  { std::ofstream(victim) << "untouched\n"; }
  ServiceConfig linked = Simple("linked", {"sh", "-c", "echo written-through-the-link"});
  linked.log = dir_ + "/linked.log";
  ASSERT_EQ(::symlink(victim.c_str(), linked.log.c_str()), 0);
  ServiceConfig dangling = Simple("dangling", {"sh", "-c", "echo created"});
  dangling.log = dir_ + "/dangling.log";
  ASSERT_EQ(::symlink((dir_ + "/created-elsewhere.txt").c_str(), dangling.log.c_str()), 0);
  ServiceConfig hard = Simple("hard", {"sh", "-c", "echo written-through-the-hard-link"});
  hard.log = dir_ + "/hard.log";
  ASSERT_EQ(::link(victim.c_str(), hard.log.c_str()), 0);
  auto& sup = Make({linked, dangling, hard});
  for (const char* name : {"linked", "dangling"}) {
    auto r = sup.Start(name);
    ASSERT_FALSE(r.has_value()) << name;
    EXPECT_NE(r.error().message.find("is a symbolic link"), std::string::npos)
        << r.error().message;
  }
  auto r = sup.Start("hard");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("hard links"), std::string::npos) << r.error().message;
  std::this_thread::sleep_for(Millis(200));
  std::ifstream in(victim);
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(content, "untouched\n");
  EXPECT_NE(::access((dir_ + "/created-elsewhere.txt").c_str(), F_OK), 0);
  ::unlink(linked.log.c_str());
  ::unlink(dangling.log.c_str());
  ::unlink(hard.log.c_str());
  ::unlink(victim.c_str());
}

// services.NAME.user: the service runs as that user (uid and primary gid), its log still
// written through the descriptor the agent opened.
TEST_F(SupervisorTest, ServiceRunsAsItsConfiguredUser) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "switching users needs root";
  }
  ServiceConfig s = Simple("asnobody", {"sh", "-c", "id -u; id -g; sleep 1000"});
  s.user = "nobody";
  ServiceConfig bad = Simple("nouser", {"sleep", "1000"});
  bad.user = "no-such-user-medic";
  auto& sup = Make({s, bad});
  auto started = sup.Start("asnobody");
  ASSERT_TRUE(started.has_value()) << started.error().message;
  passwd* pw = ::getpwnam("nobody");
  ASSERT_NE(pw, nullptr);
  std::string out;
  for (int i = 0; i < 50 && out.find('\n', out.find('\n') + 1) == std::string::npos; ++i) {
    std::this_thread::sleep_for(Millis(50));
    std::ifstream in(s.log);
    out.assign((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  EXPECT_EQ(out, std::to_string(pw->pw_uid) + "\n" + std::to_string(pw->pw_gid) + "\n");
  ASSERT_TRUE(sup.Stop("asnobody").has_value());
  auto r = sup.Start("nouser");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("unknown user 'no-such-user-medic'"), std::string::npos);
}

TEST_F(SupervisorTest, StopEscalatesToSigkillForTheWholeGroup) {
  ServiceConfig s = Simple("stubborn", {"sh", "-c", "trap '' TERM; sleep 1000 & sleep 1000"});
  s.stop_timeout = Millis(300);
  auto& sup = Make({s});
  ASSERT_TRUE(sup.Start("stubborn").has_value());
  const pid_t pgid = sup.GetStatus("stubborn")->pid;
  ASSERT_TRUE(WaitUntil([&] { return Group(pgid).size() == 3; }));
  auto r = sup.Stop("stubborn");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_NE(r->find("then SIGKILL"), std::string::npos) << *r;
  EXPECT_TRUE(Group(pgid).empty());
}

TEST_F(SupervisorTest, NginxCrashIsNoticedAndRestartBringsItBack) {
  const test::HeldPort held;  // nginx cannot report a port it got: one held for the test
  const int port = held.port();
  ASSERT_GT(port, 0);
  auto& sup = Make({Nginx(port)});
  auto started = sup.Start("nginx");
  ASSERT_TRUE(started.has_value()) << started.error().message;
  ASSERT_TRUE(WaitUntil([&] { return Healthy(port); })) << PortTaken(port);
  const pid_t master = sup.GetStatus("nginx")->pid;
  ASSERT_TRUE(WaitUntil([&] { return Group(master, master).size() == 1; }));  // the worker

  // The crash: master and worker together (what chaos nginx-crash does).
  const auto killed_at = Steady::now();
  ASSERT_TRUE(sup.Kill("nginx", SIGKILL).has_value());
  auto took = WaitForExit(1, killed_at);
  ASSERT_TRUE(took.has_value());
  EXPECT_LT(*took, kNoticeBound);
  EXPECT_EQ(exits_[0].second.status.signal, SIGKILL);
  ASSERT_TRUE(WaitUntil([&] { return Group(master).empty(); }));
  EXPECT_FALSE(Healthy(port));

  auto restarted = sup.Restart("nginx");
  ASSERT_TRUE(restarted.has_value()) << restarted.error().message;
  EXPECT_TRUE(WaitUntil([&] { return Healthy(port); })) << PortTaken(port);
  EXPECT_NE(sup.GetStatus("nginx")->pid, master);
}

// Issue 3: a supervised nginx killed with SIGKILL from outside is noticed by event (the reaper's
// waitid), not by a later poll: the exit time the supervisor records minus the time of the kill,
// five crashes, each under kNoticeBound (the test prints each figure). How fast it is, is a
// benchmark's business (bench/heal_time.py, docs/BENCHMARKS.md): on a loaded 2-core
// CI machine the scheduler alone can delay the reaper thread by tens of milliseconds, and a 50 ms
// bound here failed once at 77.7 ms.
TEST_F(SupervisorTest, NginxKilledWithSigkillIsNoticedByEvent) {
  const test::HeldPort held;  // nginx cannot report a port it got: one held for the test
  const int port = held.port();
  ASSERT_GT(port, 0);
  auto& sup = Make({Nginx(port)});
  for (size_t round = 1; round <= 5; ++round) {
    SCOPED_TRACE(round);
    auto started = sup.Start("nginx");
    ASSERT_TRUE(started.has_value()) << started.error().message;
    ASSERT_TRUE(WaitUntil([&] { return Healthy(port); })) << PortTaken(port);
    const pid_t master = sup.GetStatus("nginx")->pid;
    const WallTime killed_at = clock_.Now();
    ASSERT_EQ(::kill(master, SIGKILL), 0);
    ASSERT_TRUE(WaitForExit(round, Steady::now()).has_value());
    std::pair<std::string, ServiceExit> exit;
    {
      std::lock_guard<std::mutex> lock(mu_);
      exit = exits_.back();
    }
    EXPECT_EQ(exit.first, "nginx");
    EXPECT_EQ(exit.second.pid, master);
    EXPECT_EQ(exit.second.status.signal, SIGKILL);
    const auto noticed =
        std::chrono::duration_cast<std::chrono::microseconds>(exit.second.at - killed_at);
    EXPECT_GE(noticed.count(), 0);
    EXPECT_LT(noticed, kNoticeBound) << "noticed after " << noticed.count() << " us";
    std::cout << "nginx SIGKILL noticed after " << noticed.count() << " us\n";
    auto status = sup.GetStatus("nginx");
    ASSERT_TRUE(status.has_value());
    EXPECT_FALSE(status->running);
    ASSERT_TRUE(sup.Stop("nginx").has_value());  // the orphaned worker goes too
  }
}

TEST_F(SupervisorTest, RestartCopesWithALeftoverNginxWorker) {
  const test::HeldPort held;  // nginx cannot report a port it got: one held for the test
  const int port = held.port();
  ASSERT_GT(port, 0);
  auto& sup = Make({Nginx(port)});
  ASSERT_TRUE(sup.Start("nginx").has_value());
  ASSERT_TRUE(WaitUntil([&] { return Healthy(port); })) << PortTaken(port);
  const pid_t master = sup.GetStatus("nginx")->pid;
  ASSERT_TRUE(WaitUntil([&] { return Group(master, master).size() == 1; }));
  const pid_t worker = Group(master, master)[0].pid;

  // Only the master dies: the orphaned worker keeps the port (the trap in DESIGN.md).
  ASSERT_EQ(::kill(master, SIGKILL), 0);
  ASSERT_TRUE(WaitForExit(1, Steady::now()).has_value());
  auto st = sup.GetStatus("nginx");
  EXPECT_FALSE(st->running);
  ASSERT_EQ(st->leftovers.size(), 1u);
  EXPECT_EQ(st->leftovers[0], std::to_string(worker) + " (nginx)");
  EXPECT_NE(FormatServiceStatus(*st).find("leftover processes in its process group: " +
                                          std::to_string(worker)),
            std::string::npos);
  EXPECT_TRUE(Healthy(port));  // the worker still answers

  auto restarted = sup.Restart("nginx");
  ASSERT_TRUE(restarted.has_value()) << restarted.error().message;
  EXPECT_NE(restarted->find("leftover processes of nginx"), std::string::npos) << *restarted;
  EXPECT_TRUE(PidGone(worker));
  const pid_t new_master = sup.GetStatus("nginx")->pid;
  EXPECT_NE(new_master, master);
  EXPECT_TRUE(WaitUntil([&] { return Healthy(port); })) << PortTaken(port);
  EXPECT_TRUE(sup.GetStatus("nginx")->running);
}

TEST_F(SupervisorTest, StopAllLeavesNothingBehind) {
  const test::HeldPort held;  // nginx cannot report a port it got: one held for the test
  const int port = held.port();
  ASSERT_GT(port, 0);
  auto& sup = Make({Nginx(port), Simple("sleeper", {"sleep", "1000"})});
  sup.StartAutostart();
  ASSERT_TRUE(WaitUntil([&] { return Healthy(port); })) << PortTaken(port);
  const pid_t nginx = sup.GetStatus("nginx")->pid;
  const pid_t sleeper = sup.GetStatus("sleeper")->pid;
  sup.StopAll();
  EXPECT_TRUE(Group(nginx).empty());
  EXPECT_TRUE(Group(sleeper).empty());
  EXPECT_FALSE(Healthy(port));
}

}  // namespace
}  // namespace medic::agent
