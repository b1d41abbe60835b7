#include "agent/health_check.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/files.h"
#include "tests/agent/fakes.h"
#include "tests/fakes/subprocess.h"

namespace medic::agent {
namespace {

using testing::FakeProcFs;
using testing::FakeServer;
using testing::JsonResponse;

CheckConfig WebCheck() {
  CheckConfig c;
  c.name = "web";
  c.url = "http://127.0.0.1:1/health";
  c.timeout = Millis(1000);
  return c;
}

TEST(ClassifyHttpCheck, Table) {
  struct Case {
    std::string_view name;
    Result<HttpResponse> response;
    bool healthy;
    std::string detail;
  };
  const Case cases[] = {
      {"200", JsonResponse(200, ""), true, "HTTP 200 in 2 ms"},
      {"302 is in 200-399", JsonResponse(302, ""), true, "HTTP 302 in 2 ms"},
      {"502", JsonResponse(502, ""), false, "HTTP 502 in 2 ms (expected 200-399)"},
      {"refused", Unavailable("GET http://x: Couldn't connect to server"), false,
       "connection refused"},
      {"timeout", DeadlineExceeded("GET http://x: Timeout was reached"), false,
       "timeout after 1000 ms"},
      {"empty reply", Unavailable("GET http://x: Server returned nothing (Empty reply)"), false,
       "connection closed without a response"},
      {"other", Unavailable("GET http://x: Could not resolve host"), false,
       "error: GET http://x: Could not resolve host"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.name));
    const CheckOutcome o = ClassifyHttpCheck(c.response, Millis(2), WebCheck());
    EXPECT_EQ(o.healthy, c.healthy);
    EXPECT_EQ(o.detail, c.detail);
  }
}

TEST(CheckStates, TransitionsThenCurrentState) {
  CheckStates states(/*max_pending_transitions=*/3);
  protocol::CheckResult r{"web", true, "HTTP 200 in 1 ms", WallTime{}};
  EXPECT_TRUE(states.Update(r));  // the first result is a change
  r.detail = "HTTP 200 in 2 ms";
  r.t += Millis(1000);
  EXPECT_FALSE(states.Update(r));  // same health, new detail
  r.healthy = false;
  r.detail = "connection refused";
  r.t += Millis(1000);
  EXPECT_TRUE(states.Update(r));

  uint64_t token = 0;
  auto report = states.ForReport(&token);
  ASSERT_EQ(report.size(), 2u);  // both transitions; the second is also the current state
  EXPECT_TRUE(report[0].healthy);
  EXPECT_EQ(report[0].detail, "HTTP 200 in 1 ms");
  EXPECT_FALSE(report[1].healthy);
  EXPECT_EQ(report[1].detail, "connection refused");

  r.detail = "connection refused again";
  r.t += Millis(1000);
  EXPECT_FALSE(states.Update(r));
  report = states.ForReport(&token);
  ASSERT_EQ(report.size(), 3u);  // two transitions + the newer current state
  EXPECT_EQ(report[2].detail, "connection refused again");
  states.MarkSent(token);
  EXPECT_FALSE(states.has_pending());
  EXPECT_EQ(states.ForReport(&token).size(), 1u);

  // Bounded: only the newest transitions are kept while the server is away.
  for (int i = 0; i < 10; ++i) {
    r.healthy = !r.healthy;
    r.t += Millis(1000);
    states.Update(r);
  }
  EXPECT_EQ(states.ForReport(&token).size(), 3u);
}

TEST(HealthChecker, RunsDueChecksAndReportsChanges) {
  ManualClock clock;
  FakeServer server;
  int status = 200;
  server.SetHandler([&](const HttpRequest& req) -> Result<HttpResponse> {
    EXPECT_EQ(req.url, "http://127.0.0.1:1/health");
    EXPECT_EQ(req.timeout, Millis(1000));
    if (status == 0) {
      return Unavailable("Couldn't connect to server");
    }
    return JsonResponse(status, "");
  });
  auto http = server.NewClient();
  CheckStates states;
  int changes = 0;
  CheckConfig c = WebCheck();
  c.interval = Millis(1000);
  HealthChecker checker({c}, states, clock, [&] { ++changes; });

  SteadyTime now = clock.SteadyNow();
  EXPECT_EQ(checker.RunOnce(*http, now), now + Millis(1000));
  EXPECT_EQ(changes, 1);
  EXPECT_EQ(server.requests().size(), 1u);

  // Not due yet: nothing runs.
  checker.RunOnce(*http, now + Millis(500));
  EXPECT_EQ(server.requests().size(), 1u);

  status = 0;
  checker.RunOnce(*http, now + Millis(1000));
  EXPECT_EQ(changes, 2);
  uint64_t token;
  auto report = states.ForReport(&token);
  EXPECT_FALSE(report.back().healthy);
  EXPECT_EQ(report.back().detail, "connection refused");
  EXPECT_EQ(report.back().t, clock.Now());
}

TEST(ClassifyHttpCheck, BodySubstring) {
  CheckConfig c = WebCheck();
  c.body_contains = "\"status\":\"ok\"";
  HttpResponse ok = JsonResponse(200, R"({"status":"ok"})");
  EXPECT_TRUE(ClassifyHttpCheck(ok, Millis(1), c).healthy);
  const CheckOutcome bad =
      ClassifyHttpCheck(JsonResponse(200, R"({"status":"degraded"})"), Millis(1), c);
  EXPECT_FALSE(bad.healthy);
  EXPECT_EQ(bad.detail, "HTTP 200 in 1 ms, body lacks \"\"status\":\"ok\"\"");
}

TEST(ProbeProcess, PidfileNameAndExeAgainstFakeProc) {
  FakeProcFs procfs;
  procfs.AddProcess(42, "nginx");
  procfs.AddProcess(43, "nginx");
  procfs.AddProcess(50, "zombie", 0, 'Z');
  procfs.AddProcess(60, "systemd-journal");  // systemd-journald: the kernel keeps 15 bytes
  procfs.SetLink("42/exe", "/usr/sbin/nginx");
  procfs.SetLink("43/exe", "/usr/sbin/nginx");
  procfs.SetFile("/run/nginx.pid", "42\n");
  procfs.SetFile("/run/zombie.pid", "50\n");
  procfs.SetFile("/run/gone.pid", "77\n");
  procfs.SetFile("/run/garbage.pid", "x\n");
  CheckConfig c;
  c.name = "p";
  c.type = "process";
  struct Case {
    std::string pidfile, name, exe;
    bool healthy;
    std::string detail;
  };
  const Case cases[] = {
      {"/run/nginx.pid", "", "", true, "pid 42 (nginx) is running"},
      {"/run/zombie.pid", "", "", false, "pid 50 from /run/zombie.pid is not running"},
      {"/run/gone.pid", "", "", false, "pid 77 from /run/gone.pid is not running"},
      {"/run/garbage.pid", "", "", false, "/run/garbage.pid holds no pid"},
      {"/run/missing.pid", "", "", false, "cannot read /run/missing.pid"},
      {"", "nginx", "", true, "2 processes named nginx"},
      {"", "zombie", "", false, "no process named zombie"},
      {"", "systemd-journald", "", true, "1 process named systemd-journald"},
      {"", "", "/usr/sbin/nginx", true, "2 processes run /usr/sbin/nginx"},
      {"", "", "/usr/sbin/apache2", false, "no process runs /usr/sbin/apache2"},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.detail);
    c.pidfile = k.pidfile;
    c.process_name = k.name;
    c.exe = k.exe;
    const CheckOutcome o = ProbeProcess(procfs, c);
    EXPECT_EQ(o.healthy, k.healthy);
    EXPECT_EQ(o.detail, k.detail);
  }
}

// Counts the /proc/PID/stat reads.
class CountingProcFs : public FakeProcFs {
 public:
  Result<std::string> Read(const std::string& path) override {
    if (path.size() > 5 && path.compare(path.size() - 5, 5, "/stat") == 0) {
      ++stat_reads;
    }
    return FakeProcFs::Read(path);
  }
  int stat_reads = 0;
};

TEST(ProbeProcess, ScanCacheReadsOnlyMatchesAndNewPidsYetHealthStaysExact) {
  CountingProcFs procfs;
  for (int pid = 100; pid < 200; ++pid) {
    procfs.AddProcess(pid, "other");
  }
  procfs.AddProcess(42, "nginx");
  CheckConfig c;
  c.name = "n";
  c.type = "process";
  c.process_name = "nginx";
  ProcessScanCache cache;
  EXPECT_EQ(ProbeProcess(procfs, c, &cache).detail, "1 process named nginx");
  EXPECT_EQ(procfs.stat_reads, 101) << "the first run reads every process";
  procfs.stat_reads = 0;
  procfs.AddProcess(300, "nginx");
  EXPECT_EQ(ProbeProcess(procfs, c, &cache).detail, "2 processes named nginx");
  EXPECT_EQ(procfs.stat_reads, 2) << "then only the last match (42) and the new pid (300)";
  // Both die while a known process exec()s into nginx: the full scan before calling the check
  // unhealthy finds it.
  procfs.AddProcess(42, "nginx", 0, 'Z');
  procfs.AddProcess(300, "nginx", 0, 'Z');
  procfs.AddProcess(150, "nginx");
  CheckOutcome o = ProbeProcess(procfs, c, &cache);
  EXPECT_TRUE(o.healthy);
  EXPECT_EQ(o.detail, "1 process named nginx");
  procfs.AddProcess(150, "other");
  o = ProbeProcess(procfs, c, &cache);
  EXPECT_FALSE(o.healthy);
  EXPECT_EQ(o.detail, "no process named nginx");
}

TEST(ProbeProcess, TheLiveSystem) {
  host::LinuxProcFs procfs;
  CheckConfig c;
  c.name = "self";
  c.type = "process";
  auto exe = procfs.ReadLink("self/exe");
  ASSERT_TRUE(exe.has_value());
  c.exe = *exe;
  EXPECT_TRUE(ProbeProcess(procfs, c).healthy) << ProbeProcess(procfs, c).detail;
  c.exe.clear();
  char tmpl[] = "/tmp/medic-pidfile-XXXXXX";
  const int fd = ::mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  ::close(fd);
  ASSERT_TRUE(WriteFileAtomic(tmpl, std::to_string(::getpid()) + "\n").has_value());
  c.pidfile = tmpl;
  const CheckOutcome o = ProbeProcess(procfs, c);
  ::unlink(tmpl);
  EXPECT_TRUE(o.healthy) << o.detail;
}

TEST(ProbeTcp, ListeningAndClosedPorts) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  CheckConfig c;
  c.name = "db";
  c.type = "tcp";
  c.port = ntohs(addr.sin_port);
  const CheckOutcome up = ProbeTcp(c);
  EXPECT_TRUE(up.healthy) << up.detail;
  EXPECT_EQ(up.detail.rfind("connected in ", 0), 0u) << up.detail;
  ::close(fd);
  const medic::test::HeldPort closed;  // bound, never listening, for the rest of the test
  ASSERT_GT(closed.port(), 0);
  c.port = closed.port();
  const CheckOutcome down = ProbeTcp(c);
  EXPECT_FALSE(down.healthy);
  EXPECT_EQ(down.detail, "connection refused");
  c.host = "no-such-host.invalid";
  EXPECT_FALSE(ProbeTcp(c).healthy);
}

TEST(HealthChecker, FailingProcessCheckIsReportedAtOnce) {
  FakeProcFs procfs;
  procfs.AddProcess(42, "nginx");
  CheckStates states;
  ManualClock clock;
  int changes = 0;
  CheckConfig c;
  c.name = "nginx";
  c.type = "process";
  c.process_name = "nginx";
  c.interval = Millis(10'000);
  HealthChecker checker(
      {c}, states, clock, [&] { ++changes; }, &procfs);
  FakeServer server;
  auto http = server.NewClient();
  checker.RunOnce(*http, clock.SteadyNow());
  EXPECT_EQ(changes, 1);                   // the first result counts as a change
  procfs.AddProcess(42, "nginx", 0, 'Z');  // it died
  // Not due for 10 s, but a run requested now (as on a service exit) sees it and reports.
  checker.RequestRunNow();
  checker.RunOnce(*http, clock.SteadyNow());
  EXPECT_EQ(changes, 2);
  auto current = states.Current();
  ASSERT_EQ(current.size(), 1u);
  EXPECT_FALSE(current[0].healthy);
  EXPECT_EQ(current[0].detail, "no process named nginx");
}

}  // namespace
}  // namespace medic::agent
