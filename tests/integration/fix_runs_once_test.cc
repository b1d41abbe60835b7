// Issue 11, "fleet trust": kill -9 of the agent while a fix runs, then a restart of the agent and
// of the server: the fix has run exactly once.
//
// The real binaries on loopback: medic-server (approval mode, and automatic mode), one
// medic-agent enrolled the normal way (`medic hosts enroll`, then --enroll-code), supervising a
// stand-in for nginx — a shell script that is healthy while its pidfile names it and whose stop
// (the first half of service.restart) takes seconds and appends a line to a canary file as it
// begins. The test loses the pidfile, the web check fails, Nginx-Down-ALB opens an incident
// whose fix is `service.restart service=nginx`; as soon as the canary shows the fix has begun,
// the agent is SIGKILLed (the service, in its own session, lives on and finishes its slow stop),
// then the server is stopped (SIGTERM in approval mode, SIGKILL in automatic mode). Both are
// started again on the same data and state directories; the server offers the fix's command
// again and the agent, whose ledger shows it began and never finished, answers "interrupted"
// instead of running it. Asserted: the canary has one line, the ledger holds the command's
// start once (and no other restart), and the incident ends failed, recording the interruption.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <memory>
#include <set>

#include "tests/integration/demo_fixture.h"

namespace medic::test {
namespace {

using namespace std::chrono_literals;

constexpr char kAlarm[] = "Nginx-Down-ALB";
constexpr char kHost[] = "web-1";
// How long the stand-in's stop takes: the agent is killed within it.
constexpr int kStopSeconds = 8;
// Bounds of the polls (a loaded 2-core machine): generous, never a performance claim.
constexpr auto kStartTimeout = 30s;
constexpr auto kIncidentTimeout = 60s;
constexpr auto kEndTimeout = 120s;

// The stand-in for nginx. Each instance records its pid (the test kills leftovers by it),
// names itself in the pidfile the web check reads, and on SIGTERM appends a line to the canary
// and takes kStopSeconds to stop, as a service draining its connections would. With
// `stale_lock`, a stop leaves a lock behind that no start gets past: once stopped, the service
// stays down until a human looks.
std::string ServiceScript(const std::string& dir, bool stale_lock) {
  return "#!/bin/sh\n"
         "if [ -e " + dir + "/stale.lock ]; then echo 'stale lock' >&2; exit 1; fi\n"
         "echo $$ >> " + dir + "/instances\n"
         "echo $$ > " + dir + "/nginx.pid\n"
         "trap 'echo \"stop of $$ began\" >> " + dir + "/canary; " +
         (stale_lock ? "touch " + dir + "/stale.lock; " : std::string()) + "sleep " +
         std::to_string(kStopSeconds) + "; exit 0' TERM\n"
         "while :; do sleep 1 & wait $!; done\n";
}

std::vector<std::string> Lines(const std::string& path) {
  std::vector<std::string> out;
  for (const std::string& line : SplitLines(ReadFile(path).value_or(""))) {
    if (!line.empty()) {
      out.push_back(line);
    }
  }
  return out;
}

// The agent's ledger (STATE_DIR/commands.log): how often `id` was started, and its results.
struct LedgerView {
  int starts = 0;
  std::vector<Json> results;
  int restart_starts = 0;  // starts of any service.restart
};
LedgerView ReadLedger(const std::string& path, const std::string& id) {
  LedgerView v;
  for (const std::string& line : Lines(path)) {
    auto j = ParseJson(line);
    if (!j || !j->is_object()) {
      continue;
    }
    if (j->value("start", "") == id) {
      ++v.starts;
    }
    if (j->contains("start") && j->value("action", "") == "service.restart") {
      ++v.restart_starts;
    }
    if (j->contains("result") && (*j)["result"].is_object() &&
        (*j)["result"].value("id", "") == id) {
      v.results.push_back((*j)["result"]);
    }
  }
  return v;
}

struct Case {
  const char* name;
  bool automatic;     // approval mode off
  int server_signal;  // how the server is stopped after the agent was killed
  bool service_back;  // the agent's autostart brings the service back after its restart
};

std::string CaseName(const ::testing::TestParamInfo<Case>& info) { return info.param.name; }
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class FixRunsOnceTest : public ::testing::TestWithParam<Case> {
 protected:
  static void SetUpTestSuite() {
    InitHttpClientLibrary();
    // The built-in brain only: the runbook's fix, whatever the environment says.
    setenv("MEDIC_AI_PROVIDER", "none", 1);
  }

  void SetUp() override {
    ASSERT_TRUE(MakeDirs(svc_dir(), 0755).has_value());
    ASSERT_TRUE(MakeDirs(dir_.File("log"), 0755).has_value());
    ASSERT_TRUE(WriteFileAtomic(script(), ServiceScript(svc_dir(), !GetParam().service_back), 0755).has_value());
    // Only the web alarm can open an incident here: the machine's own disk and memory do not.
    ASSERT_TRUE(WriteFileAtomic(server_config(),
                                std::string("approval_mode: ") + (automatic() ? "false" : "true") +
                                    "\n"
                                    "alarms:\n"
                                    "  Disk-Critical-ASG: {threshold: 100}\n"
                                    "  Memory-Exhaustion-ASG: {threshold: 100}\n"
                                    "runbooks:\n"
                                    "  Nginx-Down-ALB:\n"
                                    "    diagnostics_timeout: 30s\n"
                                    "    execution_timeout: 180s\n")
                    .has_value());
    ASSERT_TRUE(WriteFileAtomic(agent_config(),
                                "name: " + std::string(kHost) +
                                    "\n"
                                    "state_dir: " + dir_.File("state") +
                                    "\n"
                                    "log_dir: " + dir_.File("log") +
                                    "\n"
                                    "interval: 500ms\n"
                                    "service_manager: supervisor\n"
                                    "services:\n"
                                    "  nginx:\n"
                                    "    start: [/bin/sh, " + script() +
                                    "]\n"
                                    "    stop_timeout: 120s\n"
                                    "    log: " + svc_dir() +
                                    "/nginx.log\n"
                                    "checks:\n"
                                    "  - name: web\n"
                                    "    type: process\n"
                                    "    pidfile: " + svc_dir() +
                                    "/nginx.pid\n"
                                    "    interval: 500ms\n")
                    .has_value());
  }

  // Everything this test started goes, also when it failed: the agent and the server (their
  // process groups, by Subprocess), then every instance of the stand-in service (each leads
  // its own session and process group, so by its recorded pid; only when it still runs the
  // script, lest the pid be someone else's by now).
  void TearDown() override {
    agent_.reset();
    server_.reset();
    for (const std::string& line : Lines(svc_dir() + "/instances")) {
      const pid_t pid = static_cast<pid_t>(std::atoi(line.c_str()));
      const std::string cmdline = ReadFile("/proc/" + line + "/cmdline").value_or("");
      if (pid > 1 && cmdline.find(script()) != std::string::npos) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
      }
    }
  }

  bool automatic() const { return GetParam().automatic; }
  std::string svc_dir() const { return dir_.File("svc"); }
  std::string script() const { return svc_dir() + "/nginx.sh"; }
  std::string canary() const { return svc_dir() + "/canary"; }
  std::string server_config() const { return dir_.File("server.yaml"); }
  std::string agent_config() const { return dir_.File("agent.yaml"); }
  std::string data_dir() const { return dir_.File("data"); }
  std::string ledger() const { return dir_.File("state") + "/commands.log"; }

  // Starts medic-server on a port of its choosing and waits until its API answers.
  void StartServer() {
    url_ = StartServerOnPortZero(server_,
                                 {"--config", server_config(), "--data-dir", data_dir()},
                                 data_dir(), dir_.File("server.stderr"), kStartTimeout);
    ASSERT_FALSE(url_.empty()) << "medic-server did not start" << Logs();
  }

  void StartAgent(const std::vector<std::string>& extra) {
    std::vector<std::string> argv = {Bin("medic-agent"), "--config", agent_config(), "--server",
                                     url_};
    argv.insert(argv.end(), extra.begin(), extra.end());
    agent_ = std::make_unique<Subprocess>(argv, dir_.File("agent.stderr"));
  }

  std::vector<std::string> Cli(std::vector<std::string> args) const {
    std::vector<std::string> argv = {Bin("medic"), "--server", url_, "--token-file",
                                     data_dir() + "/admin.token"};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }
  Json CliJson(std::vector<std::string> args) const {
    args.insert(args.begin(), "--json");
    RunResult r = test::Run(Cli(args));
    return r.exit_code == 0 ? ParseJson(r.out).value_or(Json()) : Json();
  }
  std::vector<Json> IncidentsOfAlarm() const {
    std::vector<Json> out;
    Json list = CliJson({"incidents", "--alarm", kAlarm});
    if (list.is_object() && list["incidents"].is_array()) {
      for (const Json& i : list["incidents"]) {
        out.push_back(i);
      }
    }
    return out;
  }
  std::string HostStatus() const {
    Json hosts = CliJson({"hosts"});
    if (hosts.is_object() && hosts["hosts"].is_array()) {
      for (const Json& h : hosts["hosts"]) {
        if (h.value("name", "") == kHost) {
          return h.value("status", "");
        }
      }
    }
    return "";
  }
  std::string AlarmState() const {
    Json body = CliJson({"alarms"});
    const Json list = body.is_object() && body.contains("alarms") ? body["alarms"] : body;
    if (list.is_array()) {
      for (const Json& a : list) {
        if (a.value("alarm_name", "") == kAlarm && a.value("host", "") == kHost) {
          return a.value("state", "");
        }
      }
    }
    return "";
  }

  std::string Logs() const {
    return "\n--- server.stderr:\n" + ReadFileTail(dir_.File("server.stderr"), 4000).value_or("") +
           "\n--- agent.stderr:\n" + ReadFileTail(dir_.File("agent.stderr"), 4000).value_or("") +
           "\n--- commands.log:\n" + ReadFile(ledger()).value_or("") + "\n--- canary:\n" +
           ReadFile(canary()).value_or("");
  }

  TempDir dir_;
  std::string url_;
  std::unique_ptr<Subprocess> server_;
  std::unique_ptr<Subprocess> agent_;
};

TEST_P(FixRunsOnceTest, AgentKilledDuringTheFixThenBothRestartedTheFixRanOnce) {
  // A server, and a host enrolled by an admin's single-use code.
  ASSERT_NO_FATAL_FAILURE(StartServer());
  Json enrol = CliJson({"hosts", "enroll", kHost});
  ASSERT_TRUE(enrol.is_object() && enrol["code"].is_string()) << enrol << Logs();
  StartAgent({"--enroll-code", enrol["code"].get<std::string>()});
  ASSERT_TRUE(Eventually(kStartTimeout, [&] {
    return HostStatus() == "healthy" && AlarmState() == "OK";
  })) << HostStatus() << " " << AlarmState() << Logs();
  ASSERT_EQ(Lines(svc_dir() + "/instances").size(), 1u) << "the agent starts its service";

  // The service loses its pidfile: the web check fails and the incident's fix is a restart.
  ASSERT_EQ(unlink((svc_dir() + "/nginx.pid").c_str()), 0);
  std::optional<Json> opened;
  ASSERT_TRUE(Eventually(kIncidentTimeout, [&] {
    for (const Json& i : IncidentsOfAlarm()) {
      if (i.value("status", "") == (automatic() ? "executing" : "pending_approval")) {
        opened = i;
        return true;
      }
    }
    return false;
  })) << CliJson({"incidents"}).dump(2) << Logs();
  const std::string id = (*opened)["incident_id"];
  EXPECT_EQ((*opened)["ai_suggestion"], "service.restart service=nginx") << opened->dump(2);
  if (!automatic()) {
    RunResult approve = test::Run(Cli({"approve", id, "--comment", "approved by the kill -9 test", "--no-wait"}));
    ASSERT_EQ(approve.exit_code, 0) << approve.out << Logs();
  }

  // The fix has begun (the service was asked to stop): the agent is killed in the middle of it.
  ASSERT_TRUE(Eventually(kIncidentTimeout, [&] { return Lines(canary()).size() >= 1; }, 20ms))
      << CliJson({"show", id}).dump(2) << Logs();
  ASSERT_EQ(kill(agent_->pid(), SIGKILL), 0);
  std::optional<int> agent_status = agent_->Wait(10s);
  ASSERT_TRUE(agent_status.has_value() && WIFSIGNALED(*agent_status) &&
              WTERMSIG(*agent_status) == SIGKILL);
  agent_.reset();

  const Json executing = CliJson({"show", id});
  ASSERT_EQ(executing.value("status", ""), "executing") << executing.dump(2);
  const std::string command_id = executing["action"].value("command_id", "");
  ASSERT_FALSE(command_id.empty()) << executing.dump(2);
  // The kill landed while the fix ran: its start is in the ledger, its result is not.
  const LedgerView before = ReadLedger(ledger(), command_id);
  ASSERT_EQ(before.starts, 1) << Logs();
  ASSERT_TRUE(before.results.empty()) << "the fix finished before the kill" << Logs();

  // The server goes too (a clean stop in approval mode, a crash in automatic mode), and both
  // start again on the same data and state directories.
  std::optional<int> server_status =
      server_->SignalAndWait(GetParam().server_signal, 30s);
  ASSERT_TRUE(server_status.has_value()) << "medic-server did not stop" << Logs();
  server_.reset();
  ASSERT_NO_FATAL_FAILURE(StartServer());
  StartAgent({});

  // The server offers the command again; the agent answers it without running it.
  Json done;
  ASSERT_TRUE(Eventually(kEndTimeout, [&] {
    done = CliJson({"show", id});
    const std::string s = done.is_object() ? done.value("status", "") : "";
    return s != "" && s != "executing";
  })) << done.dump(2) << Logs();
  std::optional<Json> follow_up;
  if (GetParam().service_back) {
    // The service is back (the agent's autostart) and nothing else is to run.
    ASSERT_TRUE(Eventually(kEndTimeout, [&] { return AlarmState() == "OK"; }))
        << AlarmState() << Logs();
  } else {
    // Still down: the alarm is judged again, and whatever the mode a human decides what next.
    ASSERT_TRUE(Eventually(kEndTimeout, [&] {
      for (const Json& i : IncidentsOfAlarm()) {
        if (i.value("incident_id", "") != id && i.value("status", "") == "pending_approval") {
          follow_up = i;
          return true;
        }
      }
      return false;
    })) << CliJson({"incidents"}).dump(2) << Logs();
  }

  // Exactly once: one stop began (the canary), one start of the command in the ledger and no
  // other restart, answered once, as interrupted.
  EXPECT_EQ(Lines(canary()).size(), 1u) << "the fix ran more than once" << Logs();
  const LedgerView after = ReadLedger(ledger(), command_id);
  EXPECT_EQ(after.starts, 1) << Logs();
  EXPECT_EQ(after.restart_starts, 1) << Logs();
  ASSERT_EQ(after.results.size(), 1u) << Logs();
  EXPECT_NE(after.results[0].value("error", "").find("interrupted"), std::string::npos)
      << after.results[0];

  // The incident says what happened: resumed after the restart, then ended by the interruption.
  EXPECT_EQ(done.value("status", ""), "failed") << done.dump(2);
  EXPECT_TRUE(InOrder(TimelineEvents(done), {"executing", "resumed", "interrupted", "failed"}))
      << done["timeline"].dump(2);
  EXPECT_NE(done.value("remediation_output", "").find("interrupted"), std::string::npos)
      << done.dump(2);
  EXPECT_NE(done.value("reason", "").find("interrupted"), std::string::npos) << done.dump(2);
  if (follow_up && automatic()) {
    std::string why;
    for (const Json& e : (*follow_up)["timeline"]) {
      if (e.value("event", "") == "awaiting_approval") {
        why = e.value("detail", "");
      }
    }
    EXPECT_NE(why.find("interrupted"), std::string::npos) << follow_up->dump(2);
  }
  // No other incident of the alarm ran a fix.
  for (const Json& i : IncidentsOfAlarm()) {
    if (i.value("incident_id", "") != id) {
      const std::vector<std::string> events = TimelineEvents(i);
      EXPECT_EQ(std::count(events.begin(), events.end(), "executing"), 0) << i.dump(2);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, FixRunsOnceTest,
    ::testing::Values(Case{"ApprovalServerSigtermServiceBack", false, SIGTERM, true},
                      Case{"AutomaticServerSigkillServiceBack", true, SIGKILL, true},
                      Case{"ApprovalServerSigkillServiceStillDown", false, SIGKILL, false},
                      Case{"AutomaticServerSigtermServiceStillDown", true, SIGTERM, false}),
    CaseName);

}  // namespace
}  // namespace medic::test
