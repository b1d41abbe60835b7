// The real `medic` binary: the health app on a real socket, and local nginx-crash against a
// real nginx started here. Processes are tracked by pid; everything is cleaned up on failure.

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <thread>

#include "cli/chaos.h"
#include "cli/demo_config.h"
#include "cli/net.h"
#include "core/files.h"
#include "core/json.h"
#include "host/proc_fs.h"
#include "host/proc_parsers.h"
#include "server/store/store.h"
#include "tests/server/incidents/stats_fixture.h"
#include "transport/http_client.h"

namespace medic::cli {
namespace {

namespace fs = std::filesystem;
using std::chrono::steady_clock;

constexpr auto kDeadline = std::chrono::seconds(15);
constexpr char kNginx[] = "/usr/sbin/nginx";

// $MEDIC_BIN_DIR/medic, else bin/medic next to this test's directory (build/tests -> build/bin).
std::string MedicBin() {
  if (const char* dir = std::getenv("MEDIC_BIN_DIR"); dir != nullptr && *dir != '\0') {
    return std::string(dir) + "/medic";
  }
  return (fs::read_symlink("/proc/self/exe").parent_path().parent_path() / "bin" / "medic")
      .string();
}

std::string MedicServerBin() {
  return (fs::path(MedicBin()).parent_path() / "medic-server").string();
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = ::testing::TempDir() + "/medic-cli-it-XXXXXX";
    if (::mkdtemp(tmpl.data()) != nullptr) {
      path_ = tmpl;
    }
  }
  ~TempDir() {
    if (!path_.empty()) {
      std::error_code ec;
      fs::remove_all(path_, ec);
    }
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A child process that is killed (SIGKILL to its pid) and reaped if the test ends early.
class Child {
 public:
  // Starts argv; with `capture`, its stdout is readable through ReadLine/ReadAll.
  // With `own_group`, it leads a new process group. A non-empty `stderr_path` receives its
  // standard error.
  Child(const std::vector<std::string>& argv, bool capture, bool own_group,
        const std::string& stderr_path = "") {
    int fds[2] = {-1, -1};
    if (capture && ::pipe2(fds, O_CLOEXEC) != 0) {
      return;
    }
    std::vector<char*> cargv;
    for (const auto& a : argv) {
      cargv.push_back(const_cast<char*>(a.c_str()));
    }
    cargv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      if (own_group) {
        ::setpgid(0, 0);
      }
      if (capture) {
        ::dup2(fds[1], 1);
      }
      if (!stderr_path.empty()) {
        const int fd = ::open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) {
          ::dup2(fd, 2);
        }
      }
      ::execv(cargv[0], cargv.data());
      ::_exit(127);
    }
    if (capture) {
      ::close(fds[1]);
      out_fd_ = fds[0];
    }
  }
  ~Child() {
    if (pid_ > 0 && !status_.has_value()) {
      ::kill(pid_, SIGKILL);
      int st = 0;
      ::waitpid(pid_, &st, 0);
    }
    if (out_fd_ >= 0) {
      ::close(out_fd_);
    }
  }

  int pid() const { return pid_; }

  // The exit status once it ended within `timeout`.
  std::optional<int> Wait(std::chrono::milliseconds timeout = kDeadline) {
    const auto deadline = steady_clock::now() + timeout;
    while (!status_.has_value()) {
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        status_ = st;
        break;
      }
      if (steady_clock::now() >= deadline) {
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return status_;
  }

  // One line of stdout (without '\n'), or nullopt on EOF or timeout.
  std::optional<std::string> ReadLine() {
    const auto deadline = steady_clock::now() + kDeadline;
    for (;;) {
      if (const size_t nl = buf_.find('\n'); nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return line;
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady_clock::now());
      pollfd p{out_fd_, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
        return std::nullopt;
      }
      char chunk[512];
      const ssize_t n = ::read(out_fd_, chunk, sizeof(chunk));
      if (n <= 0) {
        return std::nullopt;
      }
      buf_.append(chunk, static_cast<size_t>(n));
    }
  }

  std::string ReadAll() {
    std::string all;
    while (auto line = ReadLine()) {
      all += *line + "\n";
    }
    return all + buf_;
  }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::string buf_;
  std::optional<int> status_;
};

std::string LogTailForTest(const std::string& path) {
  return ReadFileTail(path, 2000).value_or("(no log)");
}

bool AliveNotZombie(int pid) {
  host::LinuxProcFs procfs;
  return host::LiveProcess(procfs, pid).has_value();
}

std::set<int> LiveChildrenOf(int parent) {
  host::LinuxProcFs procfs;
  std::set<int> out;
  for (const host::PidStat& st : host::ListProcesses(procfs)) {
    if (st.ppid == parent && host::IsLive(st)) {
      out.insert(st.pid);
    }
  }
  return out;
}

// Kills an nginx this test started, master and workers, when the test ends (also on failure):
// SIGKILL to its process group, which the master leads in both ways the tests start it. The
// group id is the master's pid, read from the pid file at the end.
class NginxGroupGuard {
 public:
  explicit NginxGroupGuard(std::string pidfile) : pidfile_(std::move(pidfile)) {}
  ~NginxGroupGuard() {
    int pgid = 0;
    if (Result<std::string> text = ReadFile(pidfile_); text.has_value()) {
      pgid = std::atoi(std::string(Trim(*text)).c_str());
    }
    if (pgid <= 1) {
      return;
    }
    bool live_member = false;
    host::LinuxProcFs procfs;
    for (const host::PidStat& st : host::ListProcesses(procfs)) {
      live_member |= st.pgrp == pgid && st.comm == "nginx" && host::IsLive(st);
    }
    if (live_member) {
      ::kill(-pgid, SIGKILL);
    }
    // Reap whatever of it came to us; the rest is PID 1's.
    const auto deadline = steady_clock::now() + std::chrono::seconds(2);
    int st = 0;
    while (steady_clock::now() < deadline && ::waitpid(-pgid, &st, WNOHANG) >= 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

 private:
  std::string pidfile_;
};

// Reaps `pid` once it is our child (orphans come to us: we are a subreaper) and returns how it
// ended; nullopt if it is still running at the deadline. -1: gone without us reaping it.
std::optional<int> ReapOrphan(int pid) {
  const auto deadline = steady_clock::now() + kDeadline;
  while (steady_clock::now() < deadline) {
    int st = 0;
    const pid_t r = ::waitpid(pid, &st, WNOHANG);
    if (r == pid) {
      return st;
    }
    if (r < 0 && !fs::exists("/proc/" + std::to_string(pid))) {
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return std::nullopt;
}

// Waits until `pidfile` holds a pid with `workers` live children; returns that pid.
int WaitForNginx(const std::string& pidfile, size_t workers) {
  const auto deadline = steady_clock::now() + kDeadline;
  while (steady_clock::now() < deadline) {
    if (Result<std::string> text = ReadFile(pidfile); text.has_value()) {
      const std::string_view t = Trim(*text);
      if (!t.empty()) {
        const int pid = std::stoi(std::string(t));
        if (AliveNotZombie(pid) && LiveChildrenOf(pid).size() == workers) {
          return pid;
        }
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return 0;
}

std::string WriteNginxConfig(const std::string& dir, int port, int workers) {
  const std::string conf = dir + "/nginx.conf";
  std::ofstream(conf) << "worker_processes " << workers << ";\n"
                      << "pid " << dir << "/nginx.pid;\n"
                      << "error_log " << dir << "/error.log;\n"
                      << "events {}\n"
                      << "http {\n  access_log off;\n"
                      << "  client_body_temp_path " << dir << "/cb;\n"
                      << "  proxy_temp_path " << dir << "/px;\n"
                      << "  fastcgi_temp_path " << dir << "/fc;\n"
                      << "  uwsgi_temp_path " << dir << "/uw;\n"
                      << "  scgi_temp_path " << dir << "/sc;\n"
                      << "  server { listen 127.0.0.1:" << port << "; return 200 \"ok\\n\"; }\n}\n";
  return conf;
}

class CliIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // nginx workers orphaned by the crash come to this process, which reaps them.
    ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    ASSERT_FALSE(tmp_.path().empty());
    ASSERT_EQ(::access(MedicBin().c_str(), X_OK), 0) << MedicBin() << " is not built";
  }
  TempDir tmp_;
};

TEST_F(CliIntegrationTest, HealthAppServesHealthKeepsAliveAndStopsOnSigterm) {
  Child app({MedicBin(), "healthapp", "--listen", "127.0.0.1:0"}, true, false);
  const std::optional<std::string> line = app.ReadLine();
  ASSERT_TRUE(line.has_value());
  const std::string prefix = "healthapp listening on 127.0.0.1:";
  ASSERT_EQ(line->rfind(prefix, 0), 0u) << *line;
  const int port = std::stoi(line->substr(prefix.size()));
  ASSERT_GT(port, 0);

  std::unique_ptr<HttpClient> http = NewCurlHttpClient();
  HttpRequest req;
  req.url = "http://127.0.0.1:" + std::to_string(port) + "/health";
  Result<HttpResponse> ok = http->Do(req);
  ASSERT_TRUE(ok.has_value()) << ok.error().message;
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(ok->content_type, "application/json");
  char host[256] = {};
  ::gethostname(host, sizeof(host) - 1);
  EXPECT_EQ(ParseJson(ok->body).value(), Json({{"status", "ok"}, {"host", host}}));

  req.url = "http://127.0.0.1:" + std::to_string(port) + "/nope";
  Result<HttpResponse> missing = http->Do(req);
  ASSERT_TRUE(missing.has_value());
  EXPECT_EQ(missing->status, 404);
  EXPECT_TRUE(ParseJson(missing->body).value().contains("error"));

  // Two pipelined requests on one connection get two answers: keep-alive works.
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  const std::string two =
      "GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::write(fd, two.data(), two.size()), static_cast<ssize_t>(two.size()));
  std::string answers;
  const auto deadline = steady_clock::now() + kDeadline;
  while (answers.find("HTTP/1.1 404") == std::string::npos && steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 1000) > 0) {
      char buf[1024];
      const ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n <= 0) {
        break;
      }
      answers.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  EXPECT_EQ(answers.rfind("HTTP/1.1 200", 0), 0u) << answers;
  EXPECT_NE(answers.find("HTTP/1.1 404"), std::string::npos) << answers;

  ASSERT_EQ(::kill(app.pid(), SIGTERM), 0);
  const std::optional<int> status = app.Wait();
  ASSERT_TRUE(status.has_value()) << "healthapp did not exit on SIGTERM";
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 0);
}

TEST_F(CliIntegrationTest, HealthAppReportsABusyPort) {
  const int port = FreeLoopbackPort().value();
  Child first({MedicBin(), "healthapp", "--listen", "127.0.0.1:" + std::to_string(port)}, true,
              false);
  ASSERT_TRUE(first.ReadLine().has_value());
  Child second({MedicBin(), "healthapp", "--listen", "127.0.0.1:" + std::to_string(port)}, true,
               false);
  const std::optional<int> status = second.Wait();
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 1);
}

TEST_F(CliIntegrationTest, NginxCrashKillsForegroundMasterAndWorkers) {
  const int port = FreeLoopbackPort().value();
  const std::string conf = WriteNginxConfig(tmp_.path(), port, 2);
  // Declared first, so it runs last: after the Child has reaped the master.
  const NginxGroupGuard guard(tmp_.path() + "/nginx.pid");
  Child nginx({kNginx, "-p", tmp_.path() + "/", "-e", tmp_.path() + "/error.log", "-c", conf, "-g",
               "daemon off;"},
              false, true);
  const int master = WaitForNginx(tmp_.path() + "/nginx.pid", 2);
  ASSERT_EQ(master, nginx.pid()) << LogTailForTest(tmp_.path() + "/error.log");
  const std::set<int> workers = LiveChildrenOf(master);

  Child chaos({MedicBin(), "chaos", "nginx-crash", "--pidfile", tmp_.path() + "/nginx.pid"}, true,
              false);
  const std::string out = chaos.ReadAll();
  const std::optional<int> chaos_status = chaos.Wait();
  ASSERT_TRUE(chaos_status.has_value());
  EXPECT_EQ(WEXITSTATUS(*chaos_status), 0) << out;
  EXPECT_EQ(out.rfind("killed nginx master " + std::to_string(master) + " and 2 workers", 0), 0u)
      << out;

  const std::optional<int> master_status = nginx.Wait();
  ASSERT_TRUE(master_status.has_value()) << "nginx master still running";
  EXPECT_TRUE(WIFSIGNALED(*master_status));
  EXPECT_EQ(WTERMSIG(*master_status), SIGKILL);
  for (const int w : workers) {
    SCOPED_TRACE(w);
    const std::optional<int> st = ReapOrphan(w);
    ASSERT_TRUE(st.has_value()) << "worker still running";
    if (*st != -1) {
      EXPECT_TRUE(WIFSIGNALED(*st));
      EXPECT_EQ(WTERMSIG(*st), SIGKILL);
    }
    EXPECT_FALSE(AliveNotZombie(w));
  }
}

TEST_F(CliIntegrationTest, NginxCrashKillsADaemonizedNginxAndItsGroup) {
  const int port = FreeLoopbackPort().value();
  const std::string conf = WriteNginxConfig(tmp_.path(), port, 1);
  // Without "daemon off;" nginx forks a master that leads its own session and group; the master
  // is orphaned to us.
  const NginxGroupGuard guard(tmp_.path() + "/nginx.pid");
  Child launcher({kNginx, "-p", tmp_.path() + "/", "-e", tmp_.path() + "/error.log", "-c", conf},
                 false, false);
  ASSERT_TRUE(launcher.Wait().has_value());
  const int master = WaitForNginx(tmp_.path() + "/nginx.pid", 1);
  ASSERT_GT(master, 0) << LogTailForTest(tmp_.path() + "/error.log");
  const std::set<int> workers = LiveChildrenOf(master);
  host::LinuxProcFs procfs;
  const std::optional<host::PidStat> master_stat = host::LiveProcess(procfs, master);
  ASSERT_TRUE(master_stat.has_value());
  ASSERT_EQ(master_stat->pgrp, master);

  Child chaos({MedicBin(), "chaos", "nginx-crash", "--pidfile", tmp_.path() + "/nginx.pid"}, true,
              false);
  const std::string out = chaos.ReadAll();
  ASSERT_TRUE(chaos.Wait().has_value());
  EXPECT_NE(out.find("and its process group"), std::string::npos) << out;
  for (const int pid : std::set<int>{master, *workers.begin()}) {
    SCOPED_TRACE(pid);
    const std::optional<int> st = ReapOrphan(pid);
    ASSERT_TRUE(st.has_value()) << "still running";
    EXPECT_FALSE(AliveNotZombie(pid));
  }
}

TEST_F(CliIntegrationTest, NginxCrashRefusesAPidThatIsNotNginx) {
  // A canary: a harmless process whose pid sits in the pid file must survive.
  Child canary({"/bin/sleep", "30"}, false, false);
  std::ofstream(tmp_.path() + "/nginx.pid") << canary.pid() << "\n";
  Child chaos({MedicBin(), "chaos", "nginx-crash", "--pidfile", tmp_.path() + "/nginx.pid"}, true,
              false);
  chaos.ReadAll();
  const std::optional<int> st = chaos.Wait();
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(WEXITSTATUS(*st), 1);
  EXPECT_TRUE(AliveNotZombie(canary.pid()));
  EXPECT_FALSE(canary.Wait(std::chrono::milliseconds(0)).has_value());
}

TEST_F(CliIntegrationTest, DemoNginxConfigPassesNginxTest) {
  DemoHost host = MakeDemoHost(tmp_.path(), 1);
  host.nginx_port = FreeLoopbackPort().value();
  host.app_port = FreeLoopbackPort().value();
  ASSERT_TRUE(MakeDirs(host.LogDir()).has_value());
  ASSERT_TRUE(MakeDirs(host.RunDir()).has_value());
  ASSERT_TRUE(MakeDirs(host.TmpDir()).has_value());
  ASSERT_TRUE(WriteFileAtomic(host.NginxConfPath(), NginxConfig(host)).has_value());
  Child check({kNginx, "-t", "-q", "-p", host.dir + "/", "-e", host.LogDir() + "/error.log", "-c",
               host.NginxConfPath(), "-g", "daemon off;"},
              false, false);
  const std::optional<int> st = check.Wait();
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(WIFEXITED(*st));
  EXPECT_EQ(WEXITSTATUS(*st), 0) << ReadFile(host.LogDir() + "/error.log").value_or("");
}

TEST_F(CliIntegrationTest, DemoLoadBalancerConfigPassesNginxTest) {
  DemoLoadBalancer lb = MakeDemoLoadBalancer(tmp_.path());
  lb.listen = "127.0.0.1:" + std::to_string(FreeLoopbackPort().value());
  lb.upstreams = {"127.0.0.1:" + std::to_string(FreeLoopbackPort().value()),
                  "127.0.0.1:" + std::to_string(FreeLoopbackPort().value())};
  for (const std::string& d : {lb.LogDir(), lb.RunDir(), lb.TmpDir()}) {
    ASSERT_TRUE(MakeDirs(d).has_value());
  }
  ASSERT_TRUE(WriteFileAtomic(lb.ConfPath(), LoadBalancerNginxConfig(lb)).has_value());
  Child check({kNginx, "-t", "-q", "-p", lb.dir + "/", "-e", lb.LogDir() + "/error.log", "-c",
               lb.ConfPath(), "-g", "daemon off;"},
              false, false);
  const std::optional<int> st = check.Wait();
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(WIFEXITED(*st));
  EXPECT_EQ(WEXITSTATUS(*st), 0) << ReadFile(lb.LogDir() + "/error.log").value_or("");
}

// What one run of the real `medic` printed and how it ended.
struct MedicRun {
  int exit_code = -1;  // -1: did not exit normally within the deadline
  std::string out;
  std::string err;
};

MedicRun RunMedic(const std::string& dir, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {MedicBin()};
  argv.insert(argv.end(), args.begin(), args.end());
  const std::string err_path = dir + "/medic.err";
  Child medic(argv, true, false, err_path);
  MedicRun run;
  run.out = medic.ReadAll();
  if (const std::optional<int> st = medic.Wait(); st.has_value() && WIFEXITED(*st)) {
    run.exit_code = WEXITSTATUS(*st);
  }
  run.err = ReadFile(err_path).value_or("");
  return run;
}

// The port of "serving on 127.0.0.1:PORT" in medic-server's log, once it is there; 0 if the
// server exits or the deadline passes first.
int WaitForServerPort(Child& server, const std::string& log) {
  const std::string marker = "serving on 127.0.0.1:";
  const auto deadline = steady_clock::now() + kDeadline;
  while (steady_clock::now() < deadline) {
    const std::string text = ReadFile(log).value_or("");
    if (const size_t at = text.find(marker); at != std::string::npos) {
      return std::atoi(text.c_str() + at + marker.size());
    }
    if (server.Wait(std::chrono::milliseconds(0)).has_value()) {
      return 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return 0;
}

// The kill switch end to end: the real medic-server on a port of its choosing, the real `medic`
// with the server's admin token, and a viewer token that may read but not switch.
TEST_F(CliIntegrationTest, PauseAndResumeAsAdminAndAViewerCannotSwitch) {
  const std::string data = tmp_.path() + "/server";
  const std::string log = tmp_.path() + "/server.log";
  Child server({MedicServerBin(), "--listen", "127.0.0.1:0", "--data-dir", data}, false, true, log);
  const int port = WaitForServerPort(server, log);
  ASSERT_GT(port, 0) << LogTailForTest(log);
  const std::string url = "http://127.0.0.1:" + std::to_string(port);
  const std::string admin_token = data + "/admin.token";
  ASSERT_TRUE(ReadFile(admin_token).has_value()) << LogTailForTest(log);
  const std::vector<std::string> as_admin = {"--server", url, "--token-file", admin_token};
  auto admin = [&](std::vector<std::string> args) {
    args.insert(args.begin(), as_admin.begin(), as_admin.end());
    return RunMedic(tmp_.path(), args);
  };
  // automation_paused as GET /api/v1/settings answers it (through `medic settings --json`).
  auto paused = [&]() -> std::optional<bool> {
    const MedicRun run = admin({"settings", "--json"});
    EXPECT_EQ(run.exit_code, 0) << run.err;
    Result<Json> j = ParseJson(run.out);
    if (!j.has_value() || !j->is_object() || !j->contains("automation_paused") ||
        !(*j)["automation_paused"].is_boolean()) {
      ADD_FAILURE() << "not settings: " << run.out;
      return std::nullopt;
    }
    return (*j)["automation_paused"].get<bool>();
  };

  ASSERT_EQ(paused(), false);
  MedicRun run = admin({"pause"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out,
            "automation paused: no fix runs on its own; incidents still open and wait for "
            "approval\n");
  EXPECT_EQ(paused(), true);
  run = admin({"settings"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "approval_mode      on\nautomation_paused  on\n");

  run = admin({"token", "create", "vera", "--role", "viewer"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const std::string viewer_token = tmp_.path() + "/viewer.token";
  std::ofstream(viewer_token) << run.out;
  auto viewer = [&](const std::string& command) {
    return RunMedic(tmp_.path(), {"--server", url, "--token-file", viewer_token, command});
  };

  run = viewer("resume");
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(run.out, "");
  EXPECT_EQ(run.err,
            "medic: resume: 403 viewer 'vera' may not PUT /api/v1/settings (needs admin)\n");
  EXPECT_EQ(paused(), true) << "a viewer's resume changed the settings";
  run = viewer("settings");  // reading is a viewer's right
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "approval_mode      on\nautomation_paused  on\n");

  run = admin({"resume"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out,
            "automation resumed (approval mode on: fixes still wait for approval unless their "
            "runbook says otherwise)\n");
  EXPECT_EQ(paused(), false);

  run = viewer("pause");
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(run.err,
            "medic: pause: 403 viewer 'vera' may not PUT /api/v1/settings (needs admin)\n");
  EXPECT_EQ(paused(), false) << "a viewer's pause changed the settings";
}

// The real medic-server on a port of its choosing, its data in `data` (its log in `log`), and
// the real `medic` run with the server's admin token.
struct ServerForCli {
  ServerForCli(const std::string& dir, const std::string& data, const std::string& log)
      : dir(dir),
        child({MedicServerBin(), "--listen", "127.0.0.1:0", "--data-dir", data}, false, true, log),
        port(WaitForServerPort(child, log)),
        as_admin({"--server", "http://127.0.0.1:" + std::to_string(port), "--token-file",
                  data + "/admin.token"}) {}
  MedicRun Admin(std::vector<std::string> args) const {
    args.insert(args.begin(), as_admin.begin(), as_admin.end());
    return RunMedic(dir, args);
  }
  std::string dir;
  Child child;
  int port;
  std::vector<std::string> as_admin;
};

// Enrolment from the command line against the real server: a code for a host, the pending
// list, approval of an unknown request, revocation.
TEST_F(CliIntegrationTest, HostsEnrollPendingApproveRevoke) {
  const ServerForCli server(tmp_.path(), tmp_.path() + "/server", tmp_.path() + "/server.log");
  ASSERT_GT(server.port, 0) << LogTailForTest(tmp_.path() + "/server.log");
  auto admin = [&](std::vector<std::string> args) { return server.Admin(std::move(args)); };
  MedicRun run = admin({"hosts", "enroll", "web-7", "--ttl", "2h"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const std::string code = run.out.substr(0, run.out.find('\n'));
  EXPECT_EQ(code.size(), 32u) << run.out;
  EXPECT_NE(run.out.find("single use, expires "), std::string::npos) << run.out;
  run = admin({"hosts", "enroll", "web-7", "--json"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  Result<Json> j = ParseJson(run.out);
  ASSERT_TRUE(j.has_value()) << run.out;
  EXPECT_EQ((*j)["name"], "web-7");
  EXPECT_TRUE((*j)["code"].is_string());

  run = admin({"hosts", "pending"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "no enrolment requests wait for approval\n");
  run = admin({"hosts", "approve", "web-7"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(run.err, "medic: hosts approve web-7: 404 no enrolment request from host 'web-7'\n");
  run = admin({"hosts", "revoke", "web-7"});  // its unused codes
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "revoked host web-7: its agent is cut off\n");
  run = admin({"hosts", "enroll", "bad name"});
  EXPECT_EQ(run.exit_code, 1);
}

// `medic stats` and `medic autonomy` against the real medic-server, over a known history
// written into its store before it starts (tests/server/incidents/stats_fixture.h).
TEST_F(CliIntegrationTest, StatsAndAutonomyAgainstTheRealServer) {
  const std::string data = tmp_.path() + "/server";
  ASSERT_TRUE(MakeDirs(data, 0700).has_value());
  {
    auto store = server::OpenSqliteStore(data + "/medic.db");
    ASSERT_TRUE(store.has_value()) << store.error().ToString();
    ASSERT_TRUE(test::PutStatsFixture(**store, std::chrono::system_clock::now()));
  }
  const ServerForCli server(tmp_.path(), data, tmp_.path() + "/server.log");
  ASSERT_GT(server.port, 0) << LogTailForTest(tmp_.path() + "/server.log");
  auto admin = [&](std::vector<std::string> args) { return server.Admin(std::move(args)); };
  MedicRun run = admin({"stats", "--since", "24h"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const size_t first_line = run.out.find('\n');
  ASSERT_NE(first_line, std::string::npos) << run.out;
  EXPECT_EQ(run.out.rfind("period             ", 0), 0u) << run.out;
  EXPECT_EQ(run.out.substr(first_line + 1), test::kStatsFixtureText);
  run = admin({"stats", "--since", "soon"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(run.err, "medic: stats: 400 since must be a duration from 1s to 8784h (like 30m, 24h)\n");

  auto nginx_pair = [&]() -> Json {
    const MedicRun listed = admin({"autonomy", "--json"});
    EXPECT_EQ(listed.exit_code, 0) << listed.err;
    Result<Json> j = ParseJson(listed.out);
    if (!j.has_value() || !j->contains("pairs") || (*j)["pairs"].size() != 2) {
      ADD_FAILURE() << "not the fixture's two pairs: " << listed.out;
      return Json::object();
    }
    return (*j)["pairs"][1];
  };
  Json pair = nginx_pair();
  EXPECT_EQ(pair.value("alarm", ""), "Nginx-Down-ALB");
  EXPECT_EQ(pair.value("verified", -1), 4);
  EXPECT_EQ(pair.value("rejected", -1), 1);
  EXPECT_EQ(pair.value("mode", ""), "default");
  run = admin({"autonomy", "pin", "Nginx-Down-ALB", "service.restart", "--mode", "approval"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "Nginx-Down-ALB x service.restart pinned to approval\n");
  EXPECT_EQ(nginx_pair().value("mode", ""), "approval");
  run = admin({"autonomy", "unpin", "Nginx-Down-ALB", "service.restart"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(nginx_pair().value("mode", ""), "default");
  run = admin({"audit", "--limit", "2"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.out.find("autonomy.unpin"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("autonomy.pin"), std::string::npos) << run.out;
}

}  // namespace
}  // namespace medic::cli
