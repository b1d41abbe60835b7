// Issue 15: kill -9 of PostgreSQL under a running medic-server, then PostgreSQL started again.
//
// The real binaries on loopback: a PostgreSQL the test starts (tests/fakes/postgres_server.h),
// medic-server with `store: {driver: postgres}` in automatic mode, and one medic-agent enrolled
// the normal way, supervising a stand-in for nginx (healthy while its pidfile names it). With
// PostgreSQL killed: /healthz answers 503 naming the store's error, an API call that needs the
// store answers 503 with a clear error, the server and the agent keep running and the agent's
// reports keep landing (the metric history has samples from the outage). With PostgreSQL back
// on the same socket: /healthz is 200 again within seconds, and a broken nginx is recorded as
// an incident and fixed, without restarting medic-server.

#include <gtest/gtest.h>
#include <signal.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/fakes/postgres_server.h"
#include "tests/integration/demo_fixture.h"

namespace medic::test {
namespace {

using namespace std::chrono_literals;

constexpr char kAlarm[] = "Nginx-Down-ALB";
constexpr char kHost[] = "web-1";
// Bounds of the polls (a loaded 2-core machine): generous, never a performance claim.
constexpr auto kStartTimeout = 30s;
constexpr auto kNoticeTimeout = 10s;
constexpr auto kIncidentTimeout = 45s;

std::string ServiceScript(const std::string& dir) {
  return "#!/bin/sh\n"
         "echo $$ >> " + dir + "/instances\n"
         "echo $$ > " + dir + "/nginx.pid\n"
         "trap 'exit 0' TERM\n"
         "while :; do sleep 1 & wait $!; done\n";
}

class PostgresOutageTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    InitHttpClientLibrary();
    setenv("MEDIC_AI_PROVIDER", "none", 1);
    unsetenv("MEDIC_STORE_DSN");
  }

  void SetUp() override {
    ASSERT_TRUE(pg_.ok()) << pg_.error();
    dsn_ = pg_.CreateDatabase();
    ASSERT_FALSE(dsn_.empty()) << pg_.error();
    ASSERT_TRUE(MakeDirs(svc_dir(), 0755).has_value());
    ASSERT_TRUE(MakeDirs(dir_.File("log"), 0755).has_value());
    ASSERT_TRUE(WriteFileAtomic(script(), ServiceScript(svc_dir()), 0755).has_value());
    ASSERT_TRUE(WriteFileAtomic(server_config(),
                                "approval_mode: false\n"
                                "store:\n"
                                "  driver: postgres\n"
                                "  dsn: \"" + dsn_ + "\"\n"
                                "alarms:\n"
                                "  Disk-Critical-ASG: {threshold: 100}\n"
                                "  Memory-Exhaustion-ASG: {threshold: 100}\n")
                    .has_value());
    ASSERT_TRUE(WriteFileAtomic(agent_config(),
                                "name: " + std::string(kHost) + "\n" +
                                    "state_dir: " + dir_.File("state") + "\n" +
                                    "log_dir: " + dir_.File("log") + "\n" +
                                    "interval: 500ms\n"
                                    "service_manager: supervisor\n"
                                    "services:\n"
                                    "  nginx:\n"
                                    "    start: [/bin/sh, " + script() + "]\n" +
                                    "    log: " + svc_dir() + "/nginx.log\n" +
                                    "checks:\n"
                                    "  - name: web\n"
                                    "    type: process\n"
                                    "    pidfile: " + svc_dir() + "/nginx.pid\n" +
                                    "    interval: 500ms\n")
                    .has_value());
  }

  // The agent and the server go (by their process groups), then every instance of the
  // stand-in service (by recorded pid, only while it still runs the script), then PostgreSQL.
  void TearDown() override {
    agent_.reset();
    server_.reset();
    for (const std::string& line : SplitLines(ReadFile(svc_dir() + "/instances").value_or(""))) {
      const pid_t pid = static_cast<pid_t>(std::atoi(line.c_str()));
      const std::string cmdline = ReadFile("/proc/" + line + "/cmdline").value_or("");
      if (pid > 1 && cmdline.find(script()) != std::string::npos) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
      }
    }
  }

  std::string svc_dir() const { return dir_.File("svc"); }
  std::string script() const { return svc_dir() + "/nginx.sh"; }
  std::string server_config() const { return dir_.File("server.yaml"); }
  std::string agent_config() const { return dir_.File("agent.yaml"); }
  std::string data_dir() const { return dir_.File("data"); }
  std::string admin() const { return std::string(Trim(ReadFile(data_dir() + "/admin.token").value_or(""))); }

  void StartServer() {
    url_ = StartServerOnPortZero(server_,
                                 {"--config", server_config(), "--data-dir", data_dir()},
                                 data_dir(), dir_.File("server.stderr"), kStartTimeout);
    ASSERT_FALSE(url_.empty()) << "medic-server did not start" << Logs();
  }

  HttpResponse Get(const std::string& path, const std::string& token = "") {
    auto client = NewCurlHttpClient();
    HttpRequest req;
    req.url = url_ + path;
    req.timeout = 10s;
    if (!token.empty()) {
      req.headers.emplace_back("Authorization", "Bearer " + token);
    }
    auto r = client->Do(req);
    return r.value_or(HttpResponse{});
  }

  Json CliJson(std::vector<std::string> args) const {
    std::vector<std::string> argv = {Bin("medic"), "--server", url_, "--token-file",
                                     data_dir() + "/admin.token", "--json"};
    argv.insert(argv.end(), args.begin(), args.end());
    RunResult r = test::Run(argv);
    return r.exit_code == 0 ? ParseJson(r.out).value_or(Json()) : Json();
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
  // Points of `metric` of web-1 at or after `since`.
  std::vector<WallTime> SamplesSince(const std::string& metric, WallTime since) {
    std::vector<WallTime> out;
    HttpResponse r = Get("/api/v1/hosts/" + std::string(kHost) + "/metrics?metric=" + metric +
                             "&since=" + FormatRfc3339(since),
                         admin());
    Json j = ParseJson(r.body).value_or(Json());
    if (j.is_object() && j["points"].is_array()) {
      for (const Json& p : j["points"]) {
        if (auto t = ParseRfc3339(p.value("t", ""))) {
          out.push_back(*t);
        }
      }
    }
    return out;
  }

  std::string Logs() const {
    return "\n--- server.stderr:\n" + ReadFileTail(dir_.File("server.stderr"), 4000).value_or("") +
           "\n--- agent.stderr:\n" + ReadFileTail(dir_.File("agent.stderr"), 3000).value_or("");
  }

  PostgresServer pg_;
  std::string dsn_;
  TempDir dir_;
  std::string url_;
  std::unique_ptr<Subprocess> server_;
  std::unique_ptr<Subprocess> agent_;
};

TEST_F(PostgresOutageTest, KillNineOfPostgresThenRestartServerReportsUnavailableAndResumes) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  Json enrol = CliJson({"hosts", "enroll", kHost});
  ASSERT_TRUE(enrol.is_object() && enrol["code"].is_string()) << enrol << Logs();
  agent_ = std::make_unique<Subprocess>(
      std::vector<std::string>{Bin("medic-agent"), "--config", agent_config(), "--server", url_,
                               "--enroll-code", enrol["code"].get<std::string>()},
      dir_.File("agent.stderr"));
  ASSERT_TRUE(Eventually(kStartTimeout, [&] { return AlarmState() == "OK"; }))
      << AlarmState() << Logs();

  // PostgreSQL dies (every process of it, no shutdown checkpoint).
  const WallTime outage_began = std::chrono::system_clock::now();
  pg_.Kill9();
  HttpResponse health;
  ASSERT_TRUE(Eventually(kNoticeTimeout, [&] {
    health = Get("/healthz");
    return health.status == 503;
  })) << health.status << " " << health.body << Logs();
  const Json why = ParseJson(health.body).value_or(Json());
  EXPECT_EQ(why.value("status", ""), "unavailable") << health.body;
  EXPECT_NE(why.value("store", "").find("PostgreSQL at " + pg_.dir()), std::string::npos)
      << health.body;
  // An API call that needs the store: 503 and the reason, not a hang or a crash.
  HttpResponse list = Get("/api/v1/incidents", admin());
  EXPECT_EQ(list.status, 503) << list.body;
  EXPECT_NE(list.body.find("PostgreSQL at"), std::string::npos) << list.body;
  // The agent keeps reporting through the outage; both processes live on.
  std::this_thread::sleep_for(3s);
  EXPECT_TRUE(ProcessAlive(server_->pid())) << Logs();
  EXPECT_TRUE(ProcessAlive(agent_->pid())) << Logs();
  EXPECT_EQ(Get("/healthz").status, 503);

  // PostgreSQL comes back (crash recovery) on the same socket: the same server recovers.
  ASSERT_TRUE(pg_.Start()) << pg_.error();
  const WallTime outage_ended = std::chrono::system_clock::now();
  ASSERT_TRUE(Eventually(kNoticeTimeout, [&] { return Get("/healthz").status == 200; }))
      << Get("/healthz").body << Logs();
  EXPECT_EQ(Get("/api/v1/incidents", admin()).status, 200);
  // The reports sent while PostgreSQL was down were kept (the metric history is in memory).
  int during = 0;
  for (WallTime t : SamplesSince("mem_used_percent", outage_began)) {
    during += t >= outage_began && t <= outage_ended ? 1 : 0;
  }
  EXPECT_GE(during, 3) << "samples reported during the outage are missing" << Logs();

  // And incidents work again: nginx breaks, the incident is recorded and the fix runs.
  ASSERT_EQ(unlink((svc_dir() + "/nginx.pid").c_str()), 0);
  std::optional<Json> done;
  ASSERT_TRUE(Eventually(kIncidentTimeout, [&] {
    for (const Json& i : IncidentsOfAlarm()) {
      if (i.value("status", "") == "completed") {
        done = i;
        return true;
      }
    }
    return false;
  })) << CliJson({"incidents"}).dump(2) << Logs();
  EXPECT_EQ((*done)["ai_suggestion"], "service.restart service=nginx") << done->dump(2);
  EXPECT_TRUE(Eventually(kIncidentTimeout, [&] { return AlarmState() == "OK"; }))
      << AlarmState() << Logs();
  EXPECT_TRUE(ProcessAlive(server_->pid())) << Logs();
}

}  // namespace
}  // namespace medic::test
