// Issue 14 (A), the acceptance test: a real Prometheus and Alertmanager (Debian's packages) on
// loopback, with their own temp dirs and ports, in front of the real medic-server and a
// medic-agent. Prometheus scrapes the agent (--metrics-listen) every second; its rule
// WebCheckFailing fires when the agent's health check `svc` fails; Alertmanager posts to
// medic's ingest route with basic auth (an ingest token as password). The configs are the files
// docs/integrations/ingest.md quotes (tests/fixtures/ingest/), with the ports and the token file
// of this run put in.
//
// The host is broken through medic's API (chaos nginx-crash: SIGKILL to the supervised stand-in
// service). Asserted: an incident opens on web-1 under the external alarm's name (Prom-Web-Down:
// medic's own alarms cannot open it — disk and memory are raised out of reach and the host is in
// no target group), its runbook's fix restarts the service, and the resolve that Alertmanager
// sends verifies it: the incident completes and the alarm is OK with source alertmanager.
// Duplicates (the same alert twice in one body, and again), an out-of-order resolve and the
// firing delivered after its resolve change nothing: one incident in all.

#include <gtest/gtest.h>
#include <signal.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/integration/demo_fixture.h"

namespace medic::test {
namespace {

using namespace std::chrono_literals;

constexpr char kHost[] = "web-1";
constexpr char kAlarm[] = "Prom-Web-Down";
constexpr auto kStartTimeout = 30s;
constexpr auto kIncidentTimeout = 45s;

std::string Replace(std::string text, const std::string& from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

std::string Fixture(const std::string& name) {
  const char* src = std::getenv("MEDIC_SOURCE_DIR");
  const std::string path =
      std::string(src != nullptr ? src : ".") + "/tests/fixtures/ingest/" + name;
  auto text = ReadFile(path);
  EXPECT_TRUE(text.has_value()) << path;
  return text.value_or("");
}

struct Reply {
  int status = 0;
  Json body;
  std::string text;
};

class AlertmanagerIngestTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    InitHttpClientLibrary();
    setenv("MEDIC_AI_PROVIDER", "none", 1);
  }

  // Every process goes, by its process group (Subprocess), also when the test failed; then the
  // stand-in service's instances by their recorded pids.
  void TearDown() override {
    prometheus_.reset();
    alertmanager_.reset();
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
  std::string data_dir() const { return dir_.File("data"); }
  std::string admin() const { return std::string(Trim(ReadFile(data_dir() + "/admin.token").value_or(""))); }

  Reply Http(const std::string& method, const std::string& url, const std::string& bearer,
             const std::string& body = "") const {
    HttpRequest req;
    req.method = method;
    req.url = url;
    req.body = body;
    req.timeout = 5s;
    if (!bearer.empty()) {
      req.headers.emplace_back("Authorization", "Bearer " + bearer);
    }
    if (!body.empty()) {
      req.headers.emplace_back("Content-Type", "application/json");
    }
    Reply out;
    auto r = NewCurlHttpClient()->Do(req);
    if (r) {
      out.status = r->status;
      out.text = r->body;
      out.body = ParseJson(r->body).value_or(Json());
    }
    return out;
  }
  Reply Api(const std::string& method, const std::string& path, const std::string& body = "") {
    return Http(method, url_ + path, admin(), body);
  }

  // Writes the fixtures with this run's ports and files, starts everything but the chaos.
  void StartAll() {
    ASSERT_TRUE(MakeDirs(svc_dir(), 0755).has_value());
    ASSERT_TRUE(MakeDirs(dir_.File("log"), 0755).has_value());
    ASSERT_TRUE(WriteFileAtomic(script(),
                                "#!/bin/sh\n"
                                "echo $$ >> " + svc_dir() + "/instances\n"
                                "echo $$ > " + svc_dir() + "/nginx.pid\n"
                                "while :; do sleep 1 & wait $!; done\n",
                                0755)
                    .has_value());
    // medic-server and medic-agent bind port 0 and say which port they got; Alertmanager and
    // Prometheus cannot, so they get ports the test holds (HeldPort; PortTakenMessage names a
    // clash).
    ASSERT_GT(am_held_.port(), 0);
    ASSERT_GT(prom_held_.port(), 0);
    am_port_ = am_held_.port();
    prom_port_ = prom_held_.port();
    am_url_ = "http://127.0.0.1:" + std::to_string(am_port_);
    prom_url_ = "http://127.0.0.1:" + std::to_string(prom_port_);

    // The documented server config, and what only this test needs: medic's own disk and memory
    // alarms out of reach (the machine's disk must not open incidents here).
    ASSERT_TRUE(WriteFileAtomic(dir_.File("medic-server.yaml"),
                                Fixture("medic-server.yaml") +
                                    "alarms:\n"
                                    "  Disk-Critical-ASG: {threshold: 100}\n"
                                    "  Memory-Exhaustion-ASG: {threshold: 100}\n",
                                0600)
                    .has_value());
    server_ = std::make_unique<Subprocess>(
        std::vector<std::string>{Bin("medic-server"), "--config", dir_.File("medic-server.yaml"),
                                 "--data-dir", data_dir(), "--listen", "127.0.0.1:0"},
        dir_.File("server.stderr"));
    const int medic_port = WaitForReportedPort(server_->pid(), dir_.File("server.stderr"),
                                               kServerServingOn, kStartTimeout);
    ASSERT_GT(medic_port, 0) << "medic-server did not say where it serves" << Logs();
    url_ = "http://127.0.0.1:" + std::to_string(medic_port);
    ASSERT_TRUE(Eventually(kStartTimeout, [&] {
      return HttpStatus(url_ + "/healthz") == 200 && !admin().empty();
    })) << Logs();

    // The ingest token, as an operator makes it (medic token create alertmanager --role ingest).
    const RunResult token = test::Run({Bin("medic"), "--server", url_, "--token-file",
                                 data_dir() + "/admin.token", "token", "create", "alertmanager",
                                 "--role", "ingest"});
    ASSERT_EQ(token.exit_code, 0) << token.out;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(token.out, m, std::regex("([0-9a-f]{48})"))) << token.out;
    ingest_token_ = m[1];
    ASSERT_TRUE(WriteFileAtomic(dir_.File("ingest.token"), ingest_token_ + "\n", 0600).has_value());

    // The agent: the stand-in service `nginx`, its health check `svc`, chaos allowed.
    ASSERT_TRUE(WriteFileAtomic(dir_.File("agent.yaml"),
                                std::string("name: ") + kHost + "\n" +
                                    "state_dir: " + dir_.File("state") + "\n" +
                                    "log_dir: " + dir_.File("log") + "\n" +
                                    "interval: 500ms\n"
                                    "service_manager: supervisor\n"
                                    "chaos: {allowed: true}\n"
                                    "services:\n"
                                    "  nginx:\n"
                                    "    start: [/bin/sh, " + script() + "]\n"
                                    "    log: " + svc_dir() + "/nginx.log\n"
                                    "checks:\n"
                                    "  - name: svc\n"
                                    "    type: process\n"
                                    "    pidfile: " + svc_dir() + "/nginx.pid\n"
                                    "    interval: 500ms\n",
                                0600)
                    .has_value());
    const RunResult enrol = test::Run({Bin("medic"), "--server", url_, "--token-file",
                                 data_dir() + "/admin.token", "--json", "hosts", "enroll", kHost});
    auto code = ParseJson(enrol.out);
    ASSERT_TRUE(code && code->is_object() && (*code)["code"].is_string()) << enrol.out;
    agent_ = std::make_unique<Subprocess>(
        std::vector<std::string>{Bin("medic-agent"), "--config", dir_.File("agent.yaml"),
                                 "--server", url_, "--enroll-code",
                                 (*code)["code"].get<std::string>(), "--metrics-listen",
                                 "127.0.0.1:0"},
        dir_.File("agent.stderr"));
    const int metrics_port = WaitForReportedPort(agent_->pid(), dir_.File("agent.stderr"),
                                                 kAgentMetricsOn, kStartTimeout);
    ASSERT_GT(metrics_port, 0) << "medic-agent did not say where it serves /metrics" << Logs();

    // Alertmanager and Prometheus, on the documented configs.
    const auto ports = [&](std::string text) {
      text = Replace(text, "127.0.0.1:8080", "127.0.0.1:" + std::to_string(medic_port));
      text = Replace(text, "127.0.0.1:9101", "127.0.0.1:" + std::to_string(metrics_port));
      text = Replace(text, "127.0.0.1:9093", "127.0.0.1:" + std::to_string(am_port_));
      return Replace(text, "/etc/medic/ingest.token", dir_.File("ingest.token"));
    };
    ASSERT_TRUE(WriteFileAtomic(dir_.File("alertmanager.yml"), ports(Fixture("alertmanager.yml")),
                                0600)
                    .has_value());
    ASSERT_TRUE(WriteFileAtomic(dir_.File("prometheus.yml"), ports(Fixture("prometheus.yml")), 0600)
                    .has_value());
    ASSERT_TRUE(
        WriteFileAtomic(dir_.File("medic-rules.yml"), Fixture("medic-rules.yml"), 0600).has_value());
    alertmanager_ = std::make_unique<Subprocess>(
        std::vector<std::string>{"/usr/bin/prometheus-alertmanager",
                                 "--config.file=" + dir_.File("alertmanager.yml"),
                                 "--storage.path=" + dir_.File("am-data"),
                                 "--web.listen-address=127.0.0.1:" + std::to_string(am_port_),
                                 "--cluster.listen-address=", "--log.level=warn"},
        dir_.File("alertmanager.stderr"));
    prometheus_ = std::make_unique<Subprocess>(
        std::vector<std::string>{"/usr/bin/prometheus",
                                 "--config.file=" + dir_.File("prometheus.yml"),
                                 "--storage.tsdb.path=" + dir_.File("prom-data"),
                                 "--web.listen-address=127.0.0.1:" + std::to_string(prom_port_),
                                 "--rules.alert.resend-delay=1s", "--log.level=warn"},
        dir_.File("prometheus.stderr"));

    // Ready: Prometheus has scraped the agent's healthy check.
    ASSERT_TRUE(Eventually(kStartTimeout, [&] { return CheckValueInPrometheus() == "1"; }))
        << "Prometheus never saw medic_check_healthy{check=\"svc\"} 1" << Logs();
    ASSERT_EQ(HttpStatus(am_url_ + "/-/ready"), 200) << Logs();
  }

  std::string CheckValueInPrometheus() const {
    const Reply r = Http("GET",
                         prom_url_ + "/api/v1/query?query=medic_check_healthy%7Bcheck%3D%22svc%22%7D",
                         "");
    const Json& result = FieldOrNull(FieldOrNull(r.body, "data"), "result");
    if (!result.is_array() || result.empty() || !result[0]["value"].is_array()) {
      return "";
    }
    return result[0]["value"][1].get<std::string>();
  }

  // The WebCheckFailing alert as Alertmanager holds it, as a webhook alert; null when it has
  // none.
  Json FiringFromAlertmanager() const {
    const Reply r = Http("GET", am_url_ + "/api/v2/alerts", "");
    for (const Json& a : r.body.is_array() ? r.body : Json::array()) {
      if (FieldOrNull(a, "labels").value("alertname", "") == "WebCheckFailing") {
        return Json{{"status", "firing"},
                    {"labels", a["labels"]},
                    {"annotations", a["annotations"]},
                    {"startsAt", a["startsAt"]},
                    {"endsAt", "0001-01-01T00:00:00Z"},
                    {"generatorURL", a.value("generatorURL", "")},
                    {"fingerprint", a["fingerprint"]}};
      }
    }
    return Json();
  }
  std::vector<Json> IncidentsOfAlarm() {
    std::vector<Json> out;
    const Reply r = Api("GET", "/api/v1/incidents");
    for (const Json& i : FieldOrNull(r.body, "incidents")) {
      if (i.value("alarm_name", "") == kAlarm) {
        out.push_back(i);
      }
    }
    return out;
  }
  Json ExternalAlarm() {
    const Reply r = Api("GET", "/api/v1/alarms");
    for (const Json& a : FieldOrNull(r.body, "alarms")) {
      if (a.value("alarm_name", "") == kAlarm && a.value("host", "") == kHost) {
        return a;
      }
    }
    return Json::object();
  }
  Reply PostAlerts(const Json& alerts) {
    const Json body{{"version", "4"},
                    {"groupKey", "{}:{alertname=\"WebCheckFailing\"}"},
                    {"status", "firing"},
                    {"receiver", "medic"},
                    {"groupLabels", {{"alertname", "WebCheckFailing"}}},
                    {"commonLabels", Json::object()},
                    {"commonAnnotations", Json::object()},
                    {"externalURL", am_url_},
                    {"alerts", alerts}};
    return Http("POST", url_ + "/api/v1/ingest/alertmanager", ingest_token_, DumpJson(body));
  }

  std::string Logs() const {
    std::string out = PortTakenMessage(dir_.File("alertmanager.stderr"), am_port_) + "\n" +
                      PortTakenMessage(dir_.File("prometheus.stderr"), prom_port_);
    for (const char* f : {"server.stderr", "agent.stderr", "alertmanager.stderr",
                          "prometheus.stderr"}) {
      out += std::string("\n--- ") + f + ":\n" + ReadFileTail(dir_.File(f), 3000).value_or("");
    }
    return out;
  }

  TempDir dir_;
  std::string url_, am_url_, prom_url_, ingest_token_;
  const HeldPort am_held_, prom_held_;
  int am_port_ = 0, prom_port_ = 0;
  std::unique_ptr<Subprocess> server_, agent_, alertmanager_, prometheus_;
};

TEST_F(AlertmanagerIngestTest, ABrokenHostOpensOneIncidentFixedAndResolvedThroughAlertmanager) {
  ASSERT_NO_FATAL_FAILURE(StartAll());
  ASSERT_TRUE(IncidentsOfAlarm().empty());

  // Break the host through medic's API.
  const Reply chaos = Api("POST", "/api/v1/chaos",
                          DumpJson(Json{{"host", kHost}, {"mode", "nginx-crash"}}));
  ASSERT_LT(chaos.status, 300) << chaos.text;

  // Prometheus fires, Alertmanager posts, medic opens the incident on web-1. Meanwhile the
  // alert is read from Alertmanager as it holds it (from Prometheus's first notice on: it
  // holds it for group_wait before posting, and no longer once resolved).
  std::vector<Json> incidents;
  Json firing;
  ASSERT_TRUE(Eventually(kIncidentTimeout, [&] {
    if (firing.is_null()) {
      firing = FiringFromAlertmanager();
    }
    incidents = IncidentsOfAlarm();
    return !incidents.empty() && !firing.is_null();
  }, 100ms)) << "incidents: " << incidents.size() << ", alert seen: " << !firing.is_null() << Logs();
  const std::string id = incidents.front().value("incident_id", "");
  EXPECT_EQ(incidents.front().value("alarm_name", ""), kAlarm);
  EXPECT_EQ(incidents.front().value("instance_id", ""), kHost);

  // That alert posted again directly, twice in one body (a group repeating it) changes
  // nothing; so does a resolve older than its firing.
  Reply r = PostAlerts(Json::array({firing, firing}));
  ASSERT_EQ(r.status, 200) << r.text;
  // Unchanged, or stale when the resolve from Alertmanager already came (the fix is quick).
  EXPECT_EQ(r.body["results"]["applied"], 0) << r.text;
  Json old_resolve = firing;
  old_resolve["status"] = "resolved";
  old_resolve["endsAt"] = "2000-01-01T00:00:00Z";  // before the firing began: out of order
  r = PostAlerts(Json::array({old_resolve}));
  EXPECT_EQ(r.body["results"]["stale"], 1) << r.text;

  // The runbook's fix runs (approval mode off); the resolve from Alertmanager verifies it.
  Json done;
  ASSERT_TRUE(Eventually(kIncidentTimeout, [&] {
    done = Api("GET", "/api/v1/incidents/" + id).body;
    const std::string s = done.value("status", "");
    return s == "completed" || s == "failed" || s == "timeout";
  })) << done.dump() << Logs();
  EXPECT_EQ(done.value("status", ""), "completed") << done.dump() << Logs();
  const std::vector<std::string> events = TimelineEvents(done);
  EXPECT_TRUE(InOrder(events, {"created", "diagnosed", "auto_approved", "executing", "executed",
                               "verified", "completed"}))
      << done.dump();
  bool verified_by_alertmanager = false;
  for (const Json& e : done["timeline"]) {
    verified_by_alertmanager =
        verified_by_alertmanager || (e.value("event", "") == "verified" &&
                                     e.value("detail", "").find("Alertmanager") != std::string::npos);
  }
  EXPECT_TRUE(verified_by_alertmanager) << done.dump();
  const Json alarm = ExternalAlarm();
  EXPECT_EQ(alarm.value("state", ""), "OK") << alarm.dump();
  EXPECT_EQ(alarm.value("source", ""), "alertmanager") << alarm.dump();
  EXPECT_EQ(CheckValueInPrometheus(), "1");

  // The firing delivered late, after its resolve: stale. One incident in all.
  r = PostAlerts(Json::array({firing}));
  EXPECT_EQ(r.body["results"]["stale"], 1) << r.text;
  EXPECT_EQ(IncidentsOfAlarm().size(), 1u);
  const Reply metrics = Api("GET", "/metrics");
  EXPECT_NE(metrics.text.find("medic_ingest_alerts_total{source=\"alertmanager\",result=\"applied\"} 2\n"),
            std::string::npos)
      << metrics.text;
}

}  // namespace
}  // namespace medic::test
