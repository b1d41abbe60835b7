// The command path with fakes: CommandProcessor (expiry, validation, policy), ActionExecutor
// (each action) and CommandPoller (long poll, at-most-once by id, result delivery).

#include <fcntl.h>
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "agent/command_ledger.h"
#include "core/files.h"
#include "tests/fakes/temp_dir.h"
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/command_poller.h"
#include "agent/command_processor.h"
#include "agent/command_verifier.h"
#include "tests/fakes/command_signing.h"
#include "protocol/interrupted.h"
#include "tests/agent/fakes.h"
#include "host/text.h"

namespace medic::agent {
namespace {

using testing::FakeCommandRunner;
using testing::FakeProcFs;
using testing::FakeServer;
using testing::FakeServiceManager;
using testing::JsonResponse;

constexpr pid_t kSelf = 5000;

// A scratch directory that the policy allows, removed afterwards.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/medic-agent-test-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    for (const char* f : {"/app.log", "/link.log", "/big.log", "/sub"}) {
      ::unlink((path_ + f).c_str());
      ::rmdir((path_ + f).c_str());
    }
    ::rmdir(path_.c_str());
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct Harness {
  explicit Harness(const std::string& allowed_dir = "/var/log") {
    PolicyRules rules = PolicyRulesFromConfig(AgentConfig{}, kSelf);
    rules.actions.insert({"process.kill", "file.truncate", "chaos.start", "chaos.stop",
                          "log.archive_truncate", "disk.cleanup"});
    rules.services = {"nginx", "healthapp"};
    rules.paths = {allowed_dir};
    rules.chaos_allowed = true;
    policy = std::make_unique<Policy>(rules);
    ExecutorOptions o;
    o.self_pid = kSelf;
    o.output_cap = 1024;
    o.service_log_files["nginx"] = {allowed_dir + "/app.log", allowed_dir + "/missing.log"};
    o.health_check_paths = {"/health", "/"};
    o.send_signal = [this](pid_t pid, int sig) {
      signals.emplace_back(pid, sig);
      return 0;
    };
    executor = std::make_unique<ActionExecutor>(o, *policy, runner, services, procfs);
    processor = std::make_unique<CommandProcessor>("web-1", *policy, *executor, clock);
  }

  protocol::Command Cmd(std::string id, std::string action, Json params = Json::object()) {
    protocol::Command c;
    c.id = std::move(id);
    c.action = std::move(action);
    c.params = std::move(params);
    c.timeout_ms = 5000;
    c.expires_at = clock.Now() + std::chrono::seconds(60);
    return c;
  }
  protocol::CommandResult Run(const std::string& action, Json params = Json::object()) {
    return processor->Process(Cmd("c-" + action, action, std::move(params)));
  }

  ManualClock clock;
  FakeCommandRunner runner;
  FakeServiceManager services;
  FakeProcFs procfs;
  std::vector<std::pair<pid_t, int>> signals;
  std::unique_ptr<Policy> policy;
  std::unique_ptr<ActionExecutor> executor;
  std::unique_ptr<CommandProcessor> processor;
};

TEST(CommandProcessor, ExpiredInvalidAndRefusedNeverRun) {
  Harness h;
  auto expired = h.Cmd("c1", "service.restart", {{"service", "nginx"}});
  expired.expires_at = h.clock.Now() - Millis(1);
  auto r = h.processor->Process(expired);
  EXPECT_FALSE(r.ran);
  EXPECT_EQ(r.error, "expired");
  EXPECT_EQ(r.id, "c1");
  EXPECT_EQ(r.host, "web-1");

  r = h.Run("service.restart", {{"service", "nginx; reboot"}});
  EXPECT_FALSE(r.ran);
  EXPECT_EQ(r.error.rfind("invalid command: ", 0), 0u) << r.error;

  r = h.Run("service.restart", {{"service", "sshd"}});
  EXPECT_FALSE(r.ran);
  EXPECT_EQ(r.error, "refused by local policy: service 'sshd' is not managed by this agent");

  r = h.Run("shell", {{"command", "touch /tmp/pwned"}});
  EXPECT_FALSE(r.ran);
  EXPECT_EQ(r.error.rfind("refused by local policy: ", 0), 0u);

  EXPECT_TRUE(h.services.calls().empty());
  EXPECT_TRUE(h.runner.commands_ran().empty());
}

TEST(ActionExecutor, ServiceActionsGoToTheServiceManager) {
  Harness h;
  auto r = h.Run("service.restart", {{"service", "nginx"}});
  EXPECT_TRUE(r.Succeeded());
  EXPECT_EQ(r.output, "restart nginx done\n");
  r = h.Run("service.status", {{"service", "healthapp"}});
  EXPECT_TRUE(r.Succeeded());
  EXPECT_EQ(r.output.rfind("healthapp: running, pid 4242 since ", 0), 0u) << r.output;
  r = h.Run("chaos.start", {{"mode", "nginx-crash"}});
  EXPECT_TRUE(r.Succeeded());
  r = h.Run("chaos.stop");
  EXPECT_EQ(r.output, "no chaos running\n");
  EXPECT_EQ(h.services.calls(),
            (std::vector<std::string>{"restart nginx", "status healthapp",
                                      "kill" + std::to_string(SIGKILL) + " nginx"}));
}

TEST(ActionExecutor, DiagnosticsRunProgramsWithoutAShell) {
  Harness h;
  CommandOutcome ps;
  ps.started = true;
  ps.exit_code = 0;
  ps.output = "USER PID\nroot 1\nroot 2\nroot 3\nroot 4\n";
  h.runner.SetOutcome(ps);
  auto r = h.Run("process.top", {{"lines", 2}});
  EXPECT_TRUE(r.Succeeded());
  EXPECT_EQ(r.output, "USER PID\nroot 1\nroot 2\n");  // header + 2 lines, cut in C++
  h.Run("disk.usage");
  h.Run("memory.usage");
  EXPECT_EQ(h.runner.commands_ran(),
            (std::vector<std::vector<std::string>>{
                {"ps", "aux", "--sort=-rss"}, {"df", "-h"}, {"free", "-m"}}));

  CommandOutcome failed;
  failed.started = true;
  failed.exit_code = 2;
  failed.output = "df: oops\n";
  h.runner.SetOutcome(failed);
  r = h.Run("disk.usage");
  EXPECT_TRUE(r.ran);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.error, "df failed with exit code 2");
}

TEST(ActionExecutor, ChaosFillOutsidePolicyOrWithoutPathNeverRuns) {
  // disk-fill and oom run for real in tests/agent/chaos_test.cc (tmpfs, memory cgroup); here
  // they must be refused before touching anything: never fill the real /var/log.
  Harness h;
  auto r = h.Run("chaos.start", {{"mode", "disk-fill"}, {"params", {{"path", "/etc"}}}});
  EXPECT_FALSE(r.ran);
  EXPECT_NE(r.error.find("outside the allowed paths"), std::string::npos) << r.error;
  r = h.Run("chaos.start", {{"mode", "disk-fill"}});  // no path, no default log_dir
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.error.find("params.path is required"), std::string::npos) << r.error;
  // Out of range: refused by the catalog (chaos params are the mode's known scalars) before
  // anything runs.
  r = h.Run("chaos.start", {{"mode", "oom"}, {"params", {{"percent", 120}}}});
  EXPECT_FALSE(r.ran);
  EXPECT_NE(r.error.find("'percent' must be between 1 and 99"), std::string::npos) << r.error;
  r = h.Run("chaos.start", {{"mode", "oom"}, {"params", {{"percent", Json::array({50})}}}});
  EXPECT_FALSE(r.ran);
  EXPECT_NE(r.error.find("'percent' must be a number"), std::string::npos) << r.error;
}

TEST(ActionExecutor, ProcessKillMatchesCommExactlyAndSparesPid1AndSelf) {
  Harness h;
  h.procfs.AddProcess(1, "nginx");      // never pid 1
  h.procfs.AddProcess(kSelf, "nginx");  // never the agent
  h.procfs.AddProcess(100, "nginx");
  h.procfs.AddProcess(101, "nginx", 100);
  h.procfs.AddProcess(102, "nginx-debug");
  h.procfs.AddProcess(103, "nginx", 0, 'Z');
  auto r = h.Run("process.kill", {{"pattern", "nginx"}, {"signal", "KILL"}});
  EXPECT_TRUE(r.Succeeded()) << r.output;
  EXPECT_EQ(h.signals, (std::vector<std::pair<pid_t, int>>{{100, SIGKILL}, {101, SIGKILL}}));

  h.signals.clear();
  r = h.Run("process.kill", {{"pid", 102}});
  EXPECT_TRUE(r.Succeeded());
  EXPECT_EQ(h.signals, (std::vector<std::pair<pid_t, int>>{{102, SIGTERM}}));

  h.signals.clear();
  r = h.Run("process.kill", {{"pattern", "sshd"}});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.error, "no process named 'sshd'");
  r = h.Run("process.kill", {{"pid", 1}});
  EXPECT_FALSE(r.ran);  // ValidateAction: pid must be > 1
  r = h.Run("process.kill", {{"pid", kSelf}});
  EXPECT_FALSE(r.ran);  // policy
  EXPECT_TRUE(h.signals.empty());
}

// The kernel keeps 15 bytes of a process name (issue 12): a name longer than that, as a unit
// or a runbook writes it, finds the process by its comm; the comparison never reaches beyond.
TEST(ActionExecutor, ProcessKillComparesTheKernelsFifteenByteComm) {
  Harness h;
  h.procfs.AddProcess(200, "systemd-journal");  // systemd-journald as /proc shows it
  h.procfs.AddProcess(201, "systemd-journa");
  auto r = h.Run("process.kill", {{"pattern", "systemd-journald"}, {"signal", "TERM"}});
  EXPECT_TRUE(r.Succeeded()) << r.output << r.error;
  EXPECT_EQ(h.signals, (std::vector<std::pair<pid_t, int>>{{200, SIGTERM}}));
}

TEST(ActionExecutor, KillNamesAllowOnlyTheirProcessesComparedAsComm) {
  Harness h;
  PolicyRules rules = h.policy->rules();
  rules.kill_names = std::vector<std::string>{"systemd-journald", "stress-ng"};
  Policy policy(rules);
  ActionExecutor executor(ExecutorOptions{.self_pid = kSelf,
                                          .send_signal =
                                              [&](pid_t pid, int sig) {
                                                h.signals.emplace_back(pid, sig);
                                                return 0;
                                              }},
                          policy, h.runner, h.services, h.procfs);
  h.procfs.AddProcess(200, "systemd-journal");
  h.procfs.AddProcess(300, "postgres");
  // Allowed by its 15-byte comm, by either spelling.
  for (const char* name : {"systemd-journal", "systemd-journald"}) {
    SCOPED_TRACE(name);
    h.signals.clear();
    auto r = executor.Execute({"process.kill", {{"pattern", name}}}, Millis(5'000));
    EXPECT_TRUE(r.Succeeded()) << r.output << r.error;
    EXPECT_EQ(h.signals, (std::vector<std::pair<pid_t, int>>{{200, SIGTERM}}));
  }
  h.signals.clear();
  // Refused by name (the policy) and by pid (the executor reads the comm).
  EXPECT_FALSE(policy.Check({"process.kill", {{"pattern", "postgres"}}}).has_value());
  auto r = executor.Execute({"process.kill", {{"pattern", "postgres"}}}, Millis(5'000));
  EXPECT_FALSE(r.Succeeded());
  EXPECT_NE(r.error.find("is not on policy.kill_names"), std::string::npos) << r.error;
  r = executor.Execute({"process.kill", {{"pid", 300}}}, Millis(5'000));
  EXPECT_FALSE(r.Succeeded());
  EXPECT_NE(r.error.find("is not on policy.kill_names"), std::string::npos) << r.error;
  EXPECT_TRUE(h.signals.empty());
}

// Issue 19: the access-log lines of health checks (medic's probes by user agent, a load
// balancer's, the agent's check paths) are left out of service.logs and counted; the lines
// asked for are the real requests.
TEST(ActionExecutor, ServiceLogsLeaveOutHealthCheckLinesAndCountThem) {
  TempDir dir;
  Harness h(dir.path());
  const std::string log = dir.path() + "/app.log";
  ASSERT_TRUE(WriteFileAtomic(log,
                              "a \"GET /a HTTP/1.1\" 200 \"-\" \"curl/8\"\n"
                              "a \"GET /health HTTP/1.1\" 200 \"-\" \"medic-agent\"\n"
                              "a \"GET / HTTP/1.1\" 200 \"-\" \"medic-target-check\"\n"
                              "a \"GET /b HTTP/1.1\" 502 \"-\" \"curl/8\"\n"
                              "a \"HEAD /health HTTP/1.0\" 200 \"-\" \"-\"\n"
                              "a \"GET /health?x HTTP/1.1\" 200 \"-\" \"ELB-HealthChecker/2.0\"\n"
                              "a \"GET / HTTP/1.1\" 200 \"-\" \"Mozilla/5.0\"\n")
                  .has_value());

  auto r = h.Run("service.logs", {{"service", "nginx"}, {"lines", 3}});
  ASSERT_TRUE(r.Succeeded()) << r.error;
  const std::string want = "==> " + log + " <==\n" +
                           "... 4 health-check lines omitted\n"
                           "a \"GET /a HTTP/1.1\" 200 \"-\" \"curl/8\"\n"
                           "a \"GET /b HTTP/1.1\" 502 \"-\" \"curl/8\"\n"
                           "a \"GET / HTTP/1.1\" 200 \"-\" \"Mozilla/5.0\"\n";
  EXPECT_EQ(r.output.substr(0, want.size()), want) << r.output;

  // Only the health checks among and after the lines shown are counted.
  r = h.Run("service.logs", {{"service", "nginx"}, {"lines", 1}});
  EXPECT_EQ(r.output.rfind("==> " + log + " <==\na \"GET / HTTP/1.1\" 200 \"-\" \"Mozilla/5.0\"\n", 0),
            0u)
      << r.output;
  r = h.Run("service.logs", {{"service", "nginx"}, {"lines", 2}});
  EXPECT_EQ(r.output.rfind("==> " + log + " <==\n... 2 health-check lines omitted\na \"GET /b", 0),
            0u)
      << r.output;
}

TEST(HealthCheckLines, AreKnownByUserAgentOrCheckPath) {
  struct Case {
    std::string_view line;
    bool want;
  };
  const std::vector<std::string> paths = {"/health", "/"};
  const std::vector<Case> cases = {
      {R"(1.2.3.4 - - [t] "GET /health HTTP/1.1" 200 2 "-" "medic-agent")", true},
      {R"(1.2.3.4 - - [t] "GET /x HTTP/1.1" 200 2 "-" "medic-target-check")", true},
      {R"(1.2.3.4 - - [t] "GET /x HTTP/1.1" 200 2 "-" "kube-probe/1.29")", true},
      {R"(1.2.3.4 - - [t] "GET /health?full=1 HTTP/1.1" 200 2 "-" "curl/8")", true},
      {R"(1.2.3.4 - - [t] "POST /health HTTP/1.1" 200 2 "-" "curl/8")", false},
      {R"(1.2.3.4 - - [t] "GET / HTTP/1.1" 200 2 "-" "curl/8")", false},  // "/" is traffic
      {R"(1.2.3.4 - - [t] "GET /healthy HTTP/1.1" 200 2 "-" "curl/8")", false},
      {R"(1.2.3.4 - - [t] "GET /x HTTP/1.1" 200 2 "-" "my medic-agent clone")", false},
      {"2026/12/07 19:00:00 [error] 12#12: connect() failed", false},
      {R"(unterminated "GET /health)", false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.line);
    EXPECT_EQ(host::IsHealthCheckLine(c.line, paths), c.want);
  }
}

TEST(ActionExecutor, FilesStayInsideAllowedPathsEvenThroughSymlinks) {
  TempDir dir;
  Harness h(dir.path());
  const std::string log = dir.path() + "/app.log";
  std::string content;
  for (int i = 1; i <= 100; ++i) {
    content += "line " + std::to_string(i) + "\n";
  }
  ASSERT_TRUE(WriteFileAtomic(log, content).has_value());

  auto r = h.Run("log.tail", {{"path", log}, {"lines", 3}});
  EXPECT_TRUE(r.Succeeded()) << r.error;
  EXPECT_EQ(r.output, "line 98\nline 99\nline 100\n");

  r = h.Run("service.logs", {{"service", "nginx"}, {"lines", 2}});
  EXPECT_TRUE(r.Succeeded());
  EXPECT_EQ(r.output.rfind("==> " + log + " <==\nline 99\nline 100\n==> ", 0), 0u) << r.output;
  EXPECT_NE(r.output.find("missing.log <==\n(cannot read: "), std::string::npos);

  // A symlink inside the allowed directory (pointing outside it or not) is refused: the agent
  // follows no symlink in any component (host::OpenBeneath).
  const std::string link = dir.path() + "/link.log";
  ASSERT_EQ(::symlink("/etc/passwd", link.c_str()), 0);
  r = h.Run("log.tail", {{"path", link}});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.error.find(link + " is a symbolic link"), std::string::npos) << r.error;
  r = h.Run("file.truncate", {{"path", link}});
  EXPECT_EQ(r.exit_code, 1);

  r = h.Run("file.truncate", {{"path", log}});
  EXPECT_TRUE(r.Succeeded()) << r.error;
  struct stat st {};
  ASSERT_EQ(::stat(log.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 0);
  struct stat passwd {};
  ASSERT_EQ(::stat("/etc/passwd", &passwd), 0);
  EXPECT_GT(passwd.st_size, 0);

  // Directories are not truncated.
  ASSERT_EQ(::mkdir((dir.path() + "/sub").c_str(), 0755), 0);
  r = h.Run("file.truncate", {{"path", dir.path() + "/sub"}});
  EXPECT_EQ(r.exit_code, 1);
}

TEST(ActionExecutor, OutputIsCapped) {
  TempDir dir;
  Harness h(dir.path());
  ASSERT_TRUE(WriteFileAtomic(dir.path() + "/big.log", std::string(5000, 'x') + "\n").has_value());
  auto r = h.Run("log.tail", {{"path", dir.path() + "/big.log"}, {"lines", 10}});
  EXPECT_TRUE(r.Succeeded());
  EXPECT_LE(r.output.size(), 2 * 1024u);  // the cap per stream, twice in all
  EXPECT_TRUE(r.truncated);
}

TEST(CommandHistory, ForgetsTheOldestBeyondCapacity) {
  CommandHistory history(3);
  for (int i = 0; i < 5; ++i) {
    protocol::CommandResult r;
    r.id = "c" + std::to_string(i);
    history.Remember(r);
  }
  EXPECT_EQ(history.size(), 3u);
  EXPECT_EQ(history.Find("c1"), nullptr);
  EXPECT_NE(history.Find("c2"), nullptr);
  EXPECT_NE(history.Find("c4"), nullptr);
}

// The poller against a fake server that delivers a scripted batch per poll.
struct PollHarness {
  explicit PollHarness(CommandLedger* ledger = nullptr)
      : api("http://server", "tok"),
        registration(api, protocol::RegisterRequest{"web-1"}, Millis(1), Millis(1)),
        poller(PollerOptions{"web-1", Millis(25000), 3, Millis(1), ledger}, api, registration,
               verifier, *h.processor,
               [this](Millis d) {
                 slept.push_back(d);
                 return true;
               },
               h.clock) {
    EXPECT_TRUE(verifier.SetKey(test::TestCommandKey()).has_value());
    server.SetHandler([this](const HttpRequest& req) -> Result<HttpResponse> {
      if (req.url.find("/register") != std::string::npos) {
        return JsonResponse(200, "{}");
      }
      if (req.url.find("/commands") != std::string::npos) {
        if (batches.empty()) {
          return JsonResponse(200, R"({"commands":[]})");
        }
        std::string b = batches.front();
        batches.erase(batches.begin());
        return JsonResponse(200, b);
      }
      if (result_failures > 0) {
        --result_failures;
        return Unavailable("connection reset");
      }
      return JsonResponse(200, "{}");
    });
    EXPECT_TRUE(registration.Attempt(*http, SteadyTime{}).has_value());
  }
  // The commands as the server sends them to web-1: signed.
  std::string Batch(const std::vector<protocol::Command>& cmds) {
    protocol::CommandBatch b;
    for (const auto& c : cmds) {
      b.commands.push_back(test::SignedFor("web-1", c));
    }
    return DumpJson(protocol::ToJson(b));
  }
  std::string RawBatch(const std::vector<protocol::Command>& cmds) {
    return DumpJson(protocol::ToJson(protocol::CommandBatch{cmds}));
  }
  std::vector<protocol::CommandResult> Results() {
    std::vector<protocol::CommandResult> out;
    for (const auto& r : server.RequestsTo("/agent/v1/results")) {
      out.push_back(*protocol::CommandResultFromJson(*ParseJsonObject(r.body)));
    }
    return out;
  }

  Harness h;
  FakeServer server;
  std::unique_ptr<HttpClient> http = server.NewClient();
  ServerApi api;
  Registration registration;
  CommandVerifier verifier;
  std::vector<std::string> batches;
  int result_failures = 0;
  std::vector<Millis> slept;
  CommandPoller poller;
};

TEST(CommandPoller, LongPollsWithHostAndWait) {
  PollHarness p;
  EXPECT_EQ(p.poller.RunOnce(*p.http), Millis(0));
  auto polls = p.server.RequestsTo("/agent/v1/commands");
  ASSERT_EQ(polls.size(), 1u);
  EXPECT_EQ(polls[0].method, "GET");
  EXPECT_EQ(polls[0].url, "http://server/agent/v1/commands?host=web-1&wait_ms=25000");
  EXPECT_EQ(polls[0].timeout, Millis(30000));  // wait + 5 s
}

TEST(CommandPoller, CommandDeliveredTwiceRunsOnce) {
  PollHarness p;
  const auto cmd = p.h.Cmd("cmd-42", "service.restart", {{"service", "nginx"}});
  p.batches = {p.Batch({cmd}), p.Batch({cmd})};
  p.poller.RunOnce(*p.http);
  p.poller.RunOnce(*p.http);
  EXPECT_EQ(p.h.services.calls(), std::vector<std::string>{"restart nginx"});
  EXPECT_EQ(p.poller.executed(), 1u);
  auto results = p.Results();
  ASSERT_EQ(results.size(), 2u);  // the stored result is posted again
  for (const auto& r : results) {
    EXPECT_EQ(r.id, "cmd-42");
    EXPECT_EQ(r.host, "web-1");
    EXPECT_TRUE(r.Succeeded());
    EXPECT_EQ(r.output, "restart nginx done\n");
  }
}

// The ledger: a command id is recorded, durably, before it runs; a fix delivered again after
// the agent restarted (a new poller over the same ledger file) is not run again.
TEST(CommandLedger, RecordsStartsAndResultsAcrossReopens) {
  test::TempDir dir;
  const std::string path = dir.File("commands.log");
  {
    auto ledger = OpenCommandLedger(path);
    ASSERT_TRUE(ledger.has_value()) << ledger.error().ToString();
    protocol::Command c;
    c.id = "cmd-1";
    c.action = "service.restart";
    c.params = Json{{"service", "nginx"}};
    ASSERT_TRUE((*ledger)->Start(c).has_value());
    protocol::CommandResult r;
    r.id = "cmd-1";
    r.host = "web-1";
    r.ran = true;
    r.output = "restarted";
    ASSERT_TRUE((*ledger)->Finish(r).has_value());
    c.id = "cmd-2";
    ASSERT_TRUE((*ledger)->Start(c).has_value());  // then the agent dies
  }
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // A torn last line (killed in the middle of a write) is ignored.
  ASSERT_TRUE(WriteFileAtomic(path, ReadFile(path).value() + R"({"start":"cmd-3","act)", 0600)
                  .has_value());
  auto ledger = OpenCommandLedger(path);
  ASSERT_TRUE(ledger.has_value()) << ledger.error().ToString();
  auto one = (*ledger)->Find("cmd-1");
  ASSERT_TRUE(one.has_value());
  ASSERT_TRUE(one->result.has_value());
  EXPECT_EQ(one->result->output, "restarted");
  auto two = (*ledger)->Find("cmd-2");
  ASSERT_TRUE(two.has_value());
  EXPECT_EQ(two->action, "service.restart");
  EXPECT_FALSE(two->result.has_value());
  EXPECT_FALSE((*ledger)->Find("cmd-3").has_value());
  EXPECT_FALSE(OpenCommandLedger(dir.File("no/such/dir/commands.log")).has_value());
}

TEST(CommandLedger, KeepsTheNewestIdsAndCompactsTheFile) {
  test::TempDir dir;
  const std::string path = dir.File("commands.log");
  {
    auto ledger = OpenCommandLedger(path, 3);
    ASSERT_TRUE(ledger.has_value());
    for (int i = 0; i < 8; ++i) {
      protocol::Command c;
      c.id = "c" + std::to_string(i);
      c.action = "disk.usage";
      ASSERT_TRUE((*ledger)->Start(c).has_value());
    }
    EXPECT_FALSE((*ledger)->Find("c4").has_value());
    EXPECT_TRUE((*ledger)->Find("c5").has_value());
  }
  auto reopened = OpenCommandLedger(path, 3);  // 8 lines > 2 x 3: rewritten to the newest 3
  ASSERT_TRUE(reopened.has_value());
  EXPECT_TRUE((*reopened)->Find("c7").has_value());
  EXPECT_FALSE((*reopened)->Find("c2").has_value());
  const std::string text = ReadFile(path).value();
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 3) << text;
}

TEST(CommandPoller, AFixDeliveredAgainAfterARestartIsNotRunAgain) {
  test::TempDir dir;
  auto ledger = OpenCommandLedger(dir.File("commands.log"));
  ASSERT_TRUE(ledger.has_value());
  {
    PollHarness p(ledger->get());
    p.batches = {p.Batch({p.h.Cmd("cmd-42", "service.restart", {{"service", "nginx"}})})};
    p.poller.RunOnce(*p.http);
    EXPECT_EQ(p.h.services.calls(), std::vector<std::string>{"restart nginx"});
  }
  // The agent restarted: a new poller, history empty, the same ledger file.
  auto after = OpenCommandLedger(dir.File("commands.log"));
  ASSERT_TRUE(after.has_value());
  PollHarness p(after->get());
  p.batches = {p.Batch({p.h.Cmd("cmd-42", "service.restart", {{"service", "nginx"}})})};
  p.poller.RunOnce(*p.http);
  EXPECT_TRUE(p.h.services.calls().empty()) << "ran twice";
  EXPECT_EQ(p.poller.executed(), 0u);
  auto results = p.Results();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].id, "cmd-42");
  EXPECT_TRUE(results[0].Succeeded());
  EXPECT_EQ(results[0].output, "restart nginx done\n");  // the result it had
}

TEST(CommandPoller, AFixInterruptedByACrashIsAnsweredAndNeverRunAgain) {
  test::TempDir dir;
  {
    auto ledger = OpenCommandLedger(dir.File("commands.log"));
    ASSERT_TRUE(ledger.has_value());
    protocol::Command c;
    c.id = "cmd-7";
    c.action = "service.restart";
    ASSERT_TRUE((*ledger)->Start(c).has_value());  // killed -9 while it ran
  }
  auto ledger = OpenCommandLedger(dir.File("commands.log"));
  ASSERT_TRUE(ledger.has_value());
  PollHarness p(ledger->get());
  const auto cmd = p.h.Cmd("cmd-7", "service.restart", {{"service", "nginx"}});
  p.batches = {p.Batch({cmd}), p.Batch({cmd})};
  p.poller.RunOnce(*p.http);
  p.poller.RunOnce(*p.http);
  EXPECT_TRUE(p.h.services.calls().empty());
  auto results = p.Results();
  ASSERT_EQ(results.size(), 2u);
  for (const auto& r : results) {
    EXPECT_EQ(r.id, "cmd-7");
    EXPECT_FALSE(r.Succeeded());
    // The answer the server recognises (and does not retry automatically).
    EXPECT_TRUE(protocol::IsInterrupted(r)) << r.error;
  }
}

// A command that cannot be recorded first does not run.
TEST(CommandPoller, ACommandTheLedgerCannotRecordDoesNotRun) {
  struct FullDisk : CommandLedger {
    std::optional<Entry> Find(const std::string&) const override { return std::nullopt; }
    std::optional<std::string> FindNonce(const std::string&) const override {
      return std::nullopt;
    }
    Status Start(const protocol::Command&) override { return Unavailable("No space left"); }
    Status Finish(const protocol::CommandResult&) override { return OkStatus(); }
    void Refuse(const protocol::Command&, const std::string&) override {}
  } ledger;
  PollHarness p(&ledger);
  p.batches = {p.Batch({p.h.Cmd("cmd-9", "service.restart", {{"service", "nginx"}})})};
  p.poller.RunOnce(*p.http);
  EXPECT_TRUE(p.h.services.calls().empty());
  auto results = p.Results();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_FALSE(results[0].ran);
  EXPECT_NE(results[0].error.find("could not be recorded first (No space left)"),
            std::string::npos)
      << results[0].error;
}

TEST(CommandPoller, ResultPostIsRetriedOnTransportFailure) {
  PollHarness p;
  p.batches = {p.Batch({p.h.Cmd("c1", "disk.usage")})};
  p.result_failures = 2;
  p.poller.RunOnce(*p.http);
  EXPECT_EQ(p.server.RequestsTo("/results").size(), 3u);
  EXPECT_EQ(p.slept.size(), 2u);
  EXPECT_EQ(p.h.runner.commands_ran().size(), 1u);  // retried posting, not running
}

TEST(CommandPoller, MalformedCommandIsAnsweredNotFatal) {
  PollHarness p;
  Json batch = *ParseJsonObject(p.Batch({p.h.Cmd("ok-1", "disk.usage")}));
  batch["commands"].insert(batch["commands"].begin(),
                           Json{{"id", "bad-1"}, {"action", "disk.usage"}});
  p.batches = {DumpJson(batch)};
  p.poller.RunOnce(*p.http);
  auto results = p.Results();
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].id, "bad-1");
  EXPECT_FALSE(results[0].ran);
  EXPECT_NE(results[0].error.find("expires_at"), std::string::npos);
  EXPECT_EQ(results[1].id, "ok-1");
  EXPECT_TRUE(results[1].ran);
}

TEST(CommandPoller, UnknownHostMeansRegisterAgain) {
  PollHarness p;
  p.server.SetHandler([](const HttpRequest&) -> Result<HttpResponse> {
    return JsonResponse(404, R"({"error":"unknown host"})");
  });
  const Millis delay = p.poller.RunOnce(*p.http);
  EXPECT_FALSE(p.registration.registered());
  EXPECT_GT(delay, Millis(0));
  // Until registered again, it does not poll.
  const size_t polls = p.server.RequestsTo("/commands").size();
  p.poller.RunOnce(*p.http);
  EXPECT_EQ(p.server.RequestsTo("/commands").size(), polls);
}

}  // namespace
}  // namespace medic::agent

namespace medic::agent {
namespace {

protocol::Command SignedCommand(const std::string& host, const std::string& id) {
  protocol::Command c;
  c.id = id;
  c.action = "disk.usage";
  c.expires_at = SystemClock().Now() + std::chrono::seconds(60);
  return test::SignedFor(host, c);
}

TEST(CommandVerifier, RunsOnlyWhatTheEnvelopeSignedByTheServerSays) {
  CommandVerifier v;
  const WallTime now = SystemClock().Now();
  protocol::Command delivered = SignedCommand("web-1", "c1");
  // No key yet (not enrolled): nothing passes.
  auto r = v.Verify(delivered, "web-1", now);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kPermissionDenied);
  EXPECT_NE(r.error().message.find("no command key"), std::string::npos) << r.error().message;

  ASSERT_TRUE(v.SetKey(test::TestCommandKey()).has_value());
  // The plain fields lie; the envelope decides what runs.
  delivered.action = "process.kill";
  delivered.params = Json{{"pid", 1}};
  r = v.Verify(delivered, "web-1", now);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->action, "disk.usage");
  EXPECT_EQ(r->params, Json::object());
  EXPECT_EQ(r->host, "web-1");
  EXPECT_EQ(r->nonce.size(), 32u);

  // Another host's, or past its not_after.
  r = v.Verify(delivered, "web-2", now);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message, "refused: the command is for host 'web-1', not 'web-2'");
  r = v.Verify(delivered, "web-1", now + std::chrono::seconds(61));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message.rfind("refused: expired at ", 0), 0u) << r.error().message;

  // Signed by another key (a server this agent did not enrol with).
  test::TempDir dir;
  auto other = server::LoadOrCreateCommandSigner(dir.File("other.key"));
  ASSERT_TRUE(other.has_value());
  protocol::Command forged = delivered;
  forged.signature = (*other)->Sign(forged.envelope).value();
  r = v.Verify(forged, "web-1", now);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message, "refused: the command's signature is not the server's");

  // A signature that is not base64, and an envelope changed by one byte.
  forged = delivered;
  forged.signature = "not base64!";
  EXPECT_FALSE(v.Verify(forged, "web-1", now).has_value());
  forged = delivered;
  forged.envelope[forged.envelope.find("disk.usage")] = 'D';
  r = v.Verify(forged, "web-1", now);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message, "refused: the command's signature is not the server's");
}

TEST(CommandVerifier, OnlyAP256PublicKeyIsAccepted) {
  CommandVerifier v;
  for (const std::string& bad :
       std::vector<std::string>{"", "garbage!", "bm90IGEga2V5", std::string(2000, 'A')}) {
    EXPECT_FALSE(v.SetKey(bad).has_value()) << bad;
  }
  EXPECT_FALSE(v.has_key());
  EXPECT_TRUE(v.SetKey(test::TestCommandKey()).has_value());
  EXPECT_TRUE(v.has_key());
}

// Two signed envelopes with one nonce can only come from a broken or replaying sender: the
// second never runs.
TEST(CommandPoller, ANonceUsedByAnotherCommandIsRefused) {
  test::TempDir dir;
  auto ledger = OpenCommandLedger(dir.File("commands.log"));
  ASSERT_TRUE(ledger.has_value());
  PollHarness p(ledger->get());
  auto sign_with_nonce = [&](const std::string& id) {
    protocol::Command c = p.h.Cmd(id, "service.restart", {{"service", "nginx"}});
    c.host = "web-1";
    c.nonce = "00112233445566778899aabbccddeeff";
    c.envelope = protocol::EnvelopeOf(c);
    c.signature = test::TestCommandSigner().Sign(c.envelope).value();
    return c;
  };
  p.batches = {p.RawBatch({sign_with_nonce("first")}), p.RawBatch({sign_with_nonce("second")})};
  p.poller.RunOnce(*p.http);
  p.poller.RunOnce(*p.http);
  EXPECT_EQ(p.h.services.calls(), std::vector<std::string>{"restart nginx"});
  auto results = p.Results();
  ASSERT_EQ(results.size(), 2u);
  EXPECT_TRUE(results[0].Succeeded());
  EXPECT_FALSE(results[1].ran);
  EXPECT_EQ(results[1].error,
            "refused: nonce 00112233445566778899aabbccddeeff was used by command first (a replay)");
  // Across a restart too: the nonce is in the ledger.
  auto reopened = OpenCommandLedger(dir.File("commands.log"));
  ASSERT_TRUE(reopened.has_value());
  EXPECT_EQ((*reopened)->FindNonce("00112233445566778899aabbccddeeff").value_or(""), "first");
}

// A refusal is written to the ledger but is not the id's outcome: the genuine command of that
// id still runs when it comes.
TEST(CommandPoller, ARefusedForgeryDoesNotBlockTheGenuineCommand) {
  test::TempDir dir;
  auto ledger = OpenCommandLedger(dir.File("commands.log"));
  ASSERT_TRUE(ledger.has_value());
  PollHarness p(ledger->get());
  protocol::Command forged = p.h.Cmd("cmd-1", "service.restart", {{"service", "nginx"}});
  p.batches = {p.RawBatch({forged}),
               p.Batch({p.h.Cmd("cmd-1", "service.restart", {{"service", "nginx"}})})};
  p.poller.RunOnce(*p.http);
  EXPECT_TRUE(p.h.services.calls().empty());
  p.poller.RunOnce(*p.http);
  EXPECT_EQ(p.h.services.calls(), std::vector<std::string>{"restart nginx"});
  auto results = p.Results();
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].error, "refused: the command is not signed");
  EXPECT_TRUE(results[1].Succeeded());
  const std::string text = ReadFile(dir.File("commands.log")).value();
  EXPECT_NE(text.find("\"refused\":\"cmd-1\""), std::string::npos) << text;
  EXPECT_NE(text.find("\"start\":\"cmd-1\""), std::string::npos) << text;
}

}  // namespace
}  // namespace medic::agent
