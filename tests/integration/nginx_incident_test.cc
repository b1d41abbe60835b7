// The walking skeleton, end to end with real processes on loopback: `medic demo` (server, agent,
// Debian's nginx, the health app), nginx killed with SIGKILL (master and workers, as a real
// crash), the incident diagnosed on the host, approved through the CLI, nginx restarted by the
// agent, verified, completed; then the demo stopped and the server restarted on the same data.

#include <gtest/gtest.h>
#include <signal.h>

#include "tests/integration/demo_fixture.h"

namespace medic {
namespace {

using namespace std::chrono_literals;
using test::Bin;
using test::ChildrenOf;
using test::Eventually;
using test::HttpStatus;
using test::ReadPid;

class NginxIncidentTest : public ::testing::Test {
 protected:
  std::vector<std::string> Cli(std::vector<std::string> args) {
    std::vector<std::string> argv = {Bin("medic"), "--server", url_, "--token-file", token_file_};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }
  Json CliJson(std::vector<std::string> args) {
    args.insert(args.begin(), "--json");
    test::RunResult r = test::Run(Cli(args));
    EXPECT_EQ(r.exit_code, 0) << r.out;
    return ParseJson(r.out).value_or(Json());
  }

  test::TempDir dir_;
  test::DemoFixture demo_{dir_};  // stops the demo and removes what it left, even on failure
  std::string url_;
  std::string token_file_;
};

TEST_F(NginxIncidentTest, CrashDiagnoseApproveRestartVerifyAndSurviveRestart) {
  const std::string data = demo_.data();
  const std::string error = demo_.Start(/*auto_approve=*/false);
  ASSERT_EQ(error, "") << demo_.Logs();
  url_ = demo_.url();
  token_file_ = demo_.token_file();
  EXPECT_EQ(token_file_, data + "/server/admin.token");

  Json hosts = CliJson({"hosts"});
  ASSERT_EQ(hosts["hosts"].size(), 1u) << hosts;
  EXPECT_EQ(hosts["hosts"][0]["name"], "web-1");
  EXPECT_EQ(hosts["hosts"][0]["status"], "healthy");
  EXPECT_TRUE(hosts["hosts"][0]["metrics"].contains("disk_used_percent"));
  EXPECT_TRUE(hosts["hosts"][0]["metrics"].contains("mem_used_percent"));

  const std::string host_dir = data + "/hosts/web-1";
  const int nginx_port = demo_.nginx_port();
  ASSERT_GT(nginx_port, 0);
  const auto host_status = [&] { return demo_.HostStatus(); };
  ASSERT_EQ(host_status(), 200);

  // A real crash: SIGKILL to nginx's master and every worker. The master is stopped first: a
  // running master respawns a worker killed before it, and that new worker would keep serving
  // (a race seen on a loaded machine).
  const pid_t master = ReadPid(host_dir + "/run/nginx.pid");
  ASSERT_GT(master, 1);
  ASSERT_EQ(kill(master, SIGSTOP), 0);
  std::vector<pid_t> victims = ChildrenOf(master);
  ASSERT_FALSE(victims.empty()) << "nginx has no workers?";
  victims.push_back(master);
  for (pid_t p : victims) {
    ASSERT_EQ(kill(p, SIGKILL), 0);
  }
  ASSERT_TRUE(Eventually(5s, [&] { return host_status() != 200; }));

  // The incident appears, diagnosed, with the fallback fix proposed.
  Json incident;
  ASSERT_TRUE(Eventually(30s, [&] {
    Json list = CliJson({"incidents", "--status", "pending_approval"});
    if (!list.contains("incidents") || list["incidents"].empty()) {
      return false;
    }
    incident = list["incidents"][0];
    return true;
  })) << CliJson({"incidents"});
  const std::string id = incident["incident_id"];
  EXPECT_EQ(incident["alarm_name"], "Nginx-Down-ALB");
  EXPECT_EQ(incident["instance_id"], "web-1");
  EXPECT_FALSE(incident["alarm_description"].get<std::string>().empty());
  const std::string diagnostics = incident["diagnostics"];
  EXPECT_NE(diagnostics.find("service.status service=nginx"), std::string::npos) << diagnostics;
  EXPECT_NE(diagnostics.find("service.logs service=nginx"), std::string::npos) << diagnostics;
  EXPECT_EQ(diagnostics.find("(not run"), std::string::npos) << diagnostics;
  // nginx's access log is mostly the agent's own checks (1 a second) and the server's probes:
  // left out of the tail and counted (issue 19).
  EXPECT_NE(diagnostics.find(" health-check line"), std::string::npos) << diagnostics;
  EXPECT_EQ(diagnostics.find("\"medic-agent\""), std::string::npos) << diagnostics;
  EXPECT_EQ(diagnostics.find("\"medic-target-check\""), std::string::npos) << diagnostics;
  EXPECT_EQ(incident["ai_suggestion"], "service.restart service=nginx");
  EXPECT_FALSE(incident["ai_reasoning"].get<std::string>().empty());
  EXPECT_EQ(host_status(), 0) << "nothing may heal nginx before approval";

  // Approved through the CLI.
  // approve waits for the fix and its verification (issue 19), and says how it ended.
  test::RunResult approve = test::Run(
      Cli({"approve", id, "--comment", "approved by the test", "--timeout", "80s"}),
      std::chrono::seconds(90));
  ASSERT_EQ(approve.exit_code, 0) << approve.out;
  EXPECT_NE(approve.out.find("approve " + id + ": completed (verified: "), std::string::npos)
      << approve.out;

  Json done;
  ASSERT_TRUE(Eventually(30s, [&] {
    done = CliJson({"show", id});
    return done.value("status", "") == "completed" || done.value("status", "") == "failed";
  })) << done.dump(2);
  ASSERT_EQ(done["status"], "completed") << done.dump(2);
  EXPECT_EQ(host_status(), 200);
  const pid_t new_master = ReadPid(host_dir + "/run/nginx.pid");
  EXPECT_NE(new_master, master);
  EXPECT_TRUE(test::ProcessAlive(new_master));
  EXPECT_NE(done["remediation_output"].get<std::string>().find("[exit 0"), std::string::npos)
      << done["remediation_output"];

  // Every step is on the timeline, in order, with RFC 3339 UTC timestamps.
  std::vector<std::string> events;
  WallTime previous{};
  for (const auto& e : done["timeline"]) {
    events.push_back(e["event"]);
    auto t = ParseRfc3339(e["timestamp"].get<std::string>());
    ASSERT_TRUE(t.has_value()) << e;
    EXPECT_EQ(e["timestamp"].get<std::string>().back(), 'Z');
    EXPECT_GE(*t, previous);
    previous = *t;
  }
  const std::vector<std::string> required = {"created",           "diagnosed", "suggested",
                                             "awaiting_approval", "approved",  "executing",
                                             "executed",          "verified",  "completed"};
  size_t next = 0;
  for (const auto& e : events) {
    if (next < required.size() && e == required[next]) {
      ++next;
    }
  }
  EXPECT_EQ(next, required.size()) << done["timeline"].dump(2);
  for (const auto& e : done["timeline"]) {
    if (e["event"] == "approved") {
      EXPECT_EQ(e["actor"], "admin");
      EXPECT_EQ(e["detail"], "approved by the test");
    }
  }

  // A restart has nothing to undo: the CLI says so (exit 1) and nothing is sent.
  test::RunResult undo = test::Run(Cli({"undo", id}));
  EXPECT_EQ(undo.exit_code, 1) << undo.out;
  Json after_undo = CliJson({"show", id});
  EXPECT_EQ(after_undo["timeline"].size(), done["timeline"].size()) << after_undo.dump(2);
  done = after_undo;

  // The demo stops everything it started.
  auto status = demo_.Stop(30s);
  ASSERT_TRUE(status.has_value()) << "demo did not stop";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  EXPECT_TRUE(Eventually(5s, [&] { return !test::ProcessAlive(new_master); }));
  EXPECT_NE(host_status(), 200);
  EXPECT_TRUE(test::MountsUnder(data).empty());
  EXPECT_TRUE(test::DemoNamespaces(demo_.demo_pid()).empty());
  EXPECT_TRUE(test::DemoCgroups(demo_.demo_pid()).empty());

  // A new server on the same data directory finds the incident and its whole timeline.
  std::unique_ptr<test::Subprocess> server;
  url_ = test::StartServerOnPortZero(server, {"--data-dir", data + "/server"}, data + "/server",
                                     dir_.File("server2.stderr"), 15s);
  ASSERT_FALSE(url_.empty()) << ReadFile(dir_.File("server2.stderr")).value_or("");
  Json again = CliJson({"show", id});
  EXPECT_EQ(again, done);
  server->SignalAndWait(SIGTERM, 10s);
}

}  // namespace
}  // namespace medic
