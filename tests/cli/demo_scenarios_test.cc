// `medic demo --scenario`'s runner against a fake server (a recording HttpClient with a scripted
// incident), a hand-moved wall clock and a fake load balancer probe: what it sends, in which
// order, how it reads the times off the timeline, what it prints, and the exit status rules.

#include "cli/demo_scenarios.h"

#include <gtest/gtest.h>

#include <map>
#include <sstream>

#include "fake_http_client.h"

namespace medic::cli {
namespace {

constexpr char kServer[] = "http://127.0.0.1:18080";
constexpr char kLb[] = "http://127.0.0.1:41000";

// 2026-12-07T12:00:00Z, when the fake demo starts.
WallTime T0() { return ParseRfc3339("2026-12-07T12:00:00Z").value(); }

// An RFC 3339 stamp `ms` milliseconds after T0.
std::string At(int ms) { return FormatRfc3339(T0() + Millis(ms)); }

Json Entry(const std::string& event, int ms) {
  return Json{{"event", event}, {"timestamp", At(ms)}};
}

// ---------------------------------------------------------------------------------------------
// Pure parts.

TEST(SelectScenariosTest, AllIsTheThreeInOrderAndANameIsItself) {
  Result<std::vector<ScenarioSpec>> all = SelectScenarios("all");
  ASSERT_TRUE(all.has_value());
  std::vector<std::string> names;
  for (const ScenarioSpec& s : *all) {
    names.push_back(s.name);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"nginx-crash", "disk-fill", "oom"}));
  EXPECT_EQ((*all)[0].alarm, "Nginx-Down-ALB");
  EXPECT_EQ((*all)[1].alarm, "Disk-Critical-ASG");
  EXPECT_EQ((*all)[2].alarm, "Memory-Exhaustion-ASG");

  Result<std::vector<ScenarioSpec>> oom = SelectScenarios("oom");
  ASSERT_TRUE(oom.has_value());
  ASSERT_EQ(oom->size(), 1u);
  EXPECT_EQ((*oom)[0].mode, "oom");
  EXPECT_TRUE((*oom)[0].needs_isolation);
}

TEST(SelectScenariosTest, UnknownNamesTheChoices) {
  for (const std::string_view bad : {"bogus", "", "ALL", "nginx"}) {
    SCOPED_TRACE(bad);
    Result<std::vector<ScenarioSpec>> r = SelectScenarios(bad);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().message, "unknown scenario '" + std::string(bad) +
                                     "' (valid: all, nginx-crash, disk-fill, oom)");
  }
}

TEST(ScenarioHostTest, NginxCrashOnWebOneOthersSpreadOverTheFleet) {
  struct Case {
    std::string_view scenario;
    int hosts;
    std::string want;
  };
  for (const Case& c : std::vector<Case>{{"nginx-crash", 1, "web-1"},
                                         {"disk-fill", 1, "web-1"},
                                         {"oom", 1, "web-1"},
                                         {"nginx-crash", 2, "web-1"},
                                         {"disk-fill", 2, "web-2"},
                                         {"oom", 2, "web-1"},
                                         {"nginx-crash", 3, "web-1"},
                                         {"disk-fill", 3, "web-2"},
                                         {"oom", 3, "web-3"},
                                         {"oom", 5, "web-3"}}) {
    SCOPED_TRACE(std::string(c.scenario) + " of " + std::to_string(c.hosts));
    EXPECT_EQ(ScenarioHost(c.scenario, c.hosts), c.want);
  }
}

TEST(DescribeProbesTest, AllGoodSomeFailedOrNone) {
  EXPECT_EQ(DescribeProbes({412, 0, ""}), "200 x 412");
  EXPECT_EQ(DescribeProbes({412, 5, "502"}), "5 of 412 failed");
  EXPECT_EQ(DescribeProbes({}), "-");
}

TEST(StepTimesTest, ReadsEachStepFromItsTimelineEntry) {
  const Json incident = {
      {"status", "completed"},
      {"timeline",
       Json::array({Entry("created", 1500), Entry("diagnosed", 1900), Entry("suggested", 2000),
                    Entry("auto_approved", 2250), Entry("executing", 2260), Entry("executed", 3000),
                    Entry("verified", 4510), Entry("completed", 4520)})}};
  const StepTimes t = StepTimesFromTimeline(incident, T0());
  EXPECT_DOUBLE_EQ(t.detected.value(), 1.5);
  EXPECT_DOUBLE_EQ(t.decided.value(), 2.25);
  EXPECT_DOUBLE_EQ(t.fixed.value(), 3.0);
  EXPECT_DOUBLE_EQ(t.verified.value(), 4.51);
}

TEST(StepTimesTest, ApprovalModeDecidesWhenMedicAsksAndTheHumanWaitIsInFixed) {
  const Json incident = {
      {"status", "completed"},
      {"timeline",
       Json::array({Entry("created", 1000), Entry("awaiting_approval", 1200),
                    Entry("approved", 30000), Entry("executing", 30010), Entry("executed", 30500),
                    Entry("verified", 31000), Entry("completed", 31000)})}};
  const StepTimes t = StepTimesFromTimeline(incident, T0());
  EXPECT_DOUBLE_EQ(t.decided.value(), 1.2);
  EXPECT_DOUBLE_EQ(t.fixed.value(), 30.5);
}

TEST(StepTimesTest, StepsThatNeverHappenedAreMissing) {
  // Diagnostics never answered: no decision, no fix, no verification.
  const Json timed_out = {
      {"status", "timeout"},
      {"timeline", Json::array({Entry("created", 800), Entry("timeout", 10800)})}};
  StepTimes t = StepTimesFromTimeline(timed_out, T0());
  EXPECT_DOUBLE_EQ(t.detected.value(), 0.8);
  EXPECT_FALSE(t.decided.has_value());
  EXPECT_FALSE(t.fixed.has_value());
  EXPECT_FALSE(t.verified.has_value());

  // A fix that failed: its result is recorded, nothing verified, and `failed` is no verification.
  const Json failed = {{"status", "failed"},
                       {"timeline", Json::array({Entry("created", 800), Entry("auto_approved", 900),
                                                 Entry("executed", 1000), Entry("failed", 1000)})}};
  t = StepTimesFromTimeline(failed, T0());
  EXPECT_DOUBLE_EQ(t.fixed.value(), 0.2 + 0.8);
  EXPECT_FALSE(t.verified.has_value());

  // Completed with nothing to run (the alarm cleared on its own): verified when it completed.
  const Json cleared = {
      {"status", "completed"},
      {"timeline", Json::array({Entry("created", 800), Entry("alarm_cleared", 5000),
                                Entry("completed", 5000)})}};
  t = StepTimesFromTimeline(cleared, T0());
  EXPECT_FALSE(t.fixed.has_value());
  EXPECT_DOUBLE_EQ(t.verified.value(), 5.0);

  // No timeline, a bad timestamp, not an object.
  EXPECT_FALSE(StepTimesFromTimeline(Json{{"status", "completed"}}, T0()).detected.has_value());
  EXPECT_FALSE(
      StepTimesFromTimeline(
          Json{{"timeline", Json::array({{{"event", "created"}, {"timestamp", "soon"}}})}}, T0())
          .detected.has_value());
  EXPECT_FALSE(StepTimesFromTimeline(Json("x"), T0()).detected.has_value());
}

std::vector<ScenarioResult> SampleResults() {
  ScenarioResult nginx;
  nginx.scenario = "nginx-crash";
  nginx.host = "web-1";
  nginx.incident_id = "inc-1";
  nginx.detected_s = 0.0512;
  nginx.decided_s = 0.314;
  nginx.fixed_s = 0.4;
  nginx.verified_s = 1.525;
  nginx.status = "completed";
  nginx.lb = {412, 0, ""};
  ScenarioResult disk;
  disk.scenario = "disk-fill";
  disk.host = "web-2";
  disk.incident_id = "inc-2";
  disk.detected_s = 2.0;
  disk.decided_s = 2.5;
  disk.status = "failed";
  disk.lb = {120, 5, "502"};
  ScenarioResult oom;
  oom.scenario = "oom";
  oom.host = "web-1";
  oom.status = "not run: web-1 has no tmpfs log volume";
  return {nginx, disk, oom};
}

TEST(FormatScenarioTableTest, SecondsWithTwoDecimalsDashForMissing) {
  EXPECT_EQ(FormatScenarioTable(SampleResults()),
            "SCENARIO     HOST   DETECTED  DECIDED  FIXED  VERIFIED  STATUS                        "
            "          LB\n"
            "nginx-crash  web-1  0.05      0.31     0.40   1.53      completed                     "
            "          200 x 412\n"
            "disk-fill    web-2  2.00      2.50     -      -         failed                        "
            "          5 of 120 failed\n"
            "oom          web-1  -         -        -      -         not run: web-1 has no tmpfs "
            "log volume  -\n");
}

TEST(ScenarioResultsJsonTest, TheContractFieldsNullForMissingSteps) {
  const Json j = ScenarioResultsJson(SampleResults());
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), 3u);
  EXPECT_EQ(j[0], Json::parse(R"({"scenario":"nginx-crash","host":"web-1","detected_s":0.05,
      "decided_s":0.31,"fixed_s":0.4,"verified_s":1.53,"status":"completed","lb_ok":true,
      "incident_id":"inc-1","lb_probes":412,"lb_failed":0})"));
  EXPECT_EQ(j[1]["fixed_s"], nullptr);
  EXPECT_EQ(j[1]["verified_s"], nullptr);
  EXPECT_EQ(j[1]["lb_ok"], false);
  EXPECT_EQ(j[1]["lb_failed"], 5);
  EXPECT_EQ(j[2]["detected_s"], nullptr);
  EXPECT_EQ(j[2]["incident_id"], nullptr);
  EXPECT_EQ(j[2]["lb_ok"], false) << "no probe ran: nothing shows the load balancer answered";
  EXPECT_EQ(j[2]["status"], "not run: web-1 has no tmpfs log volume");
}

TEST(ScenarioExitStatusTest, ZeroOnlyWhenEveryScenarioCompleted) {
  std::vector<ScenarioResult> rs = SampleResults();
  EXPECT_EQ(ScenarioExitStatus(rs), 1);
  for (ScenarioResult& r : rs) {
    r.status = "completed";
  }
  EXPECT_EQ(ScenarioExitStatus(rs), 0);
  // The load balancer's record does not decide the exit status; the table shows it.
  rs[0].lb = {10, 10, "connection refused"};
  EXPECT_EQ(ScenarioExitStatus(rs), 0);
  for (const std::string bad :
       {"not run: chaos refused", "failed", "timeout", "rejected", "interrupted",
        "still executing after 120 s", "completed, but web-1 did not recover within 60 s"}) {
    SCOPED_TRACE(bad);
    rs[1].status = bad;
    EXPECT_EQ(ScenarioExitStatus(rs), 1);
  }
  EXPECT_EQ(ScenarioExitStatus({}), 1);
}

// A server answering like httpbin: the probe counts 200s, other statuses and errors.
TEST(ThreadLoadProbeTest, CountsEveryAnswerThatIsNot200AsFailed) {
  auto http = std::make_unique<FakeHttpClient>();
  FakeHttpClient* fake = http.get();
  fake->Answer(200, "ok");
  fake->Answer(502, "bad gateway");
  fake->AnswerError(Unavailable("connection refused"));
  fake->Answer(200, "ok");
  ThreadLoadProbe probe(std::move(http), "http://127.0.0.1:41000/health", Millis(25));
  for (int i = 0; i < 4; ++i) {
    probe.RunOnce();
  }
  const ProbeCounts c = probe.counts();
  EXPECT_EQ(c.total, 4);
  EXPECT_EQ(c.failed, 2);
  EXPECT_EQ(c.last_failure, "connection refused");
  ASSERT_EQ(fake->requests().size(), 4u);
  EXPECT_EQ(fake->requests()[0].method, "GET");
  EXPECT_EQ(fake->requests()[0].url, "http://127.0.0.1:41000/health");
}

TEST(ThreadLoadProbeTest, ItsThreadProbesUntilFinished) {
  auto http = std::make_unique<FakeHttpClient>();  // 200 by default
  ThreadLoadProbe probe(std::move(http), "http://127.0.0.1:41000/health", Millis(1));
  probe.Start();
  while (probe.counts().total < 3) {
    std::this_thread::yield();
  }
  const ProbeCounts at_finish = probe.Finish();
  EXPECT_GE(at_finish.total, 3);
  EXPECT_EQ(at_finish.failed, 0);
  EXPECT_EQ(probe.counts().total, at_finish.total) << "nothing probes after Finish";
  EXPECT_EQ(probe.Finish().total, at_finish.total);  // idempotent
}

// ---------------------------------------------------------------------------------------------
// The runner against a scripted server.

class FakeProbe : public LoadProbe {
 public:
  FakeProbe(std::vector<std::string>& events, ProbeCounts counts)
      : events_(events), counts_(counts) {}
  ProbeCounts Finish() override {
    events_.push_back("probe finished");
    return counts_;
  }

 private:
  std::vector<std::string>& events_;
  ProbeCounts counts_;
};

class FakeScenarioEnv : public ScenarioEnv {
 public:
  HttpClient& Http() override { return http; }
  WallTime Now() override { return now; }
  bool Sleep(Millis d) override {
    now += d;
    ++sleeps;
    if (stop_after_sleeps > 0 && sleeps >= stop_after_sleeps) {
      return false;
    }
    return true;
  }
  std::unique_ptr<LoadProbe> StartProbe(const std::string& url) override {
    events.push_back("probe " + url);
    return std::make_unique<FakeProbe>(events, probe_counts);
  }

  FakeHttpClient http;
  WallTime now = T0();
  int sleeps = 0;
  int stop_after_sleeps = 0;  // > 0: the Nth sleep sees a stop signal
  ProbeCounts probe_counts{100, 0, ""};
  std::vector<std::string> events;  // probes, chaos, approvals notes: one timeline
};

// The scripted server: hosts, alarms, one incident per chaos, whose status moves along
// `statuses` at each GET of it (the last one stays).
class ScenarioRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.server_url = kServer;
    options_.admin_token = "admin-secret";
    options_.lb_url = kLb;
    options_.hosts = {{"web-1", true}, {"web-2", true}};
    env_.http.SetHandler([this](const HttpRequest& r) { return Serve(r); });
  }

  Result<HttpResponse> Serve(const HttpRequest& r) {
    EXPECT_EQ(FakeHttpClient::Header(r, "Authorization"), "Bearer admin-secret") << r.url;
    const std::string path = r.url.substr(std::string(kServer).size());
    if (r.method == "GET" && path == "/api/v1/hosts") {
      Json hosts = Json::array();
      for (const auto& [name, status] : host_status_) {
        hosts.push_back({{"name", name}, {"status", status}});
      }
      return Ok(Json{{"hosts", hosts}});
    }
    if (r.method == "GET" && path.rfind("/api/v1/alarms?host=", 0) == 0) {
      const std::string host = path.substr(std::string("/api/v1/alarms?host=").size());
      Json alarms = Json::array();
      for (const auto& [key, state] : alarm_state_) {
        if (key.first == host) {
          alarms.push_back({{"alarm_name", key.second}, {"host", host}, {"state", state}});
        }
      }
      return Ok(Json{{"alarms", alarms}});
    }
    if (r.method == "POST" && path == "/api/v1/chaos") {
      const Json body = ParseJson(r.body).value();
      env_.events.push_back("chaos " + body.value("mode", "") + " " + body.value("host", ""));
      chaos_bodies_.push_back(body);
      if (body["mode"] != "stop") {
        chaos_at_ = env_.now;
        if (chaos_status_ != 202) {
          return HttpResponse{chaos_status_, DumpJson(Json{{"error", chaos_error_}}),
                              "application/json"};
        }
        pending_incident_ = {body["host"], Alarm(body["mode"])};
      }
      return HttpResponse{202, R"({"command_id":"c1","host":"web-1","action":"chaos.start"})",
                          "application/json"};
    }
    if (r.method == "GET" && path.rfind("/api/v1/incidents?", 0) == 0) {
      ++list_polls_;
      if (pending_incident_.has_value() && list_polls_ > incident_after_polls_) {
        Json inc = {{"incident_id", "inc-" + std::to_string(next_id_++)},
                    {"alarm_name", pending_incident_->second},
                    {"instance_id", pending_incident_->first},
                    {"status", "diagnosing"}};
        incidents_.insert(incidents_.begin(), inc);
        pending_incident_.reset();
        polls_of_incident_ = 0;
      }
      Json list = Json::array();
      for (const Json& i : incidents_) {
        const std::string want_alarm = "alarm=" + UrlPart(i["alarm_name"]);
        const std::string want_host = "host=" + UrlPart(i["instance_id"]);
        if (path.find(want_alarm) != std::string::npos &&
            path.find(want_host) != std::string::npos) {
          list.push_back(i);
        }
      }
      return Ok(Json{{"incidents", list}});
    }
    if (r.method == "GET" && path.rfind("/api/v1/incidents/", 0) == 0) {
      const std::string id = path.substr(std::string("/api/v1/incidents/").size());
      const size_t step = std::min(polls_of_incident_++, statuses_.size() - 1);
      Json inc = {{"incident_id", id}, {"status", statuses_[step]}, {"timeline", timeline_}};
      if (statuses_[step] == "completed" || statuses_[step] == "failed") {
        alarm_state_[{host_of_last_chaos(), alarm_of_last_chaos()}] = "OK";
      }
      return Ok(inc);
    }
    return HttpResponse{404, R"({"error":"no route"})", "application/json"};
  }

  static Result<HttpResponse> Ok(const Json& j) {
    return HttpResponse{200, DumpJson(j), "application/json"};
  }
  static std::string UrlPart(const Json& s) { return UrlEncodeForTest(s.get<std::string>()); }
  static std::string UrlEncodeForTest(const std::string& s) {
    std::string out;
    for (const char c : s) {
      out += c;  // alarm and host names here are unreserved characters
    }
    return out;
  }
  static std::string Alarm(const std::string& mode) {
    return mode == "nginx-crash" ? "Nginx-Down-ALB"
           : mode == "disk-fill" ? "Disk-Critical-ASG"
                                 : "Memory-Exhaustion-ASG";
  }
  std::string host_of_last_chaos() const { return chaos_bodies_.back().value("host", ""); }
  std::string alarm_of_last_chaos() const { return Alarm(chaos_bodies_.back().value("mode", "")); }

  ScenarioRunner MakeRunner() { return ScenarioRunner(options_, env_, err_); }
  ScenarioSpec Spec(const std::string& name) { return SelectScenarios(name).value().front(); }

  // The automatic fix's timeline, relative to T0 (the runner sends the chaos at T0 when the host
  // is ready at once).
  static Json AutomaticTimeline() {
    return Json::array({Entry("created", 300), Entry("diagnosed", 500), Entry("suggested", 520),
                        Entry("auto_approved", 550), Entry("executing", 560),
                        Entry("executed", 900), Entry("verified", 2100), Entry("completed", 2100)});
  }

  ScenarioRunnerOptions options_;
  FakeScenarioEnv env_;
  std::ostringstream err_;
  std::map<std::string, std::string> host_status_ = {{"web-1", "healthy"}, {"web-2", "healthy"}};
  std::map<std::pair<std::string, std::string>, std::string> alarm_state_ = {
      {{"web-1", "Nginx-Down-ALB"}, "OK"},        {{"web-1", "Disk-Critical-ASG"}, "OK"},
      {{"web-1", "Memory-Exhaustion-ASG"}, "OK"}, {{"web-2", "Nginx-Down-ALB"}, "OK"},
      {{"web-2", "Disk-Critical-ASG"}, "OK"},     {{"web-2", "Memory-Exhaustion-ASG"}, "OK"}};
  int chaos_status_ = 202;
  std::string chaos_error_;
  std::vector<Json> chaos_bodies_;
  WallTime chaos_at_{};
  std::optional<std::pair<std::string, std::string>> pending_incident_;
  int incident_after_polls_ = 2;  // list polls after the chaos before the incident shows
  int list_polls_ = 0;
  int next_id_ = 7;
  std::vector<Json> incidents_ = {
      // An older incident of the same alarm and host: never taken for the new one.
      {{"incident_id", "inc-3"},
       {"alarm_name", "Nginx-Down-ALB"},
       {"instance_id", "web-1"},
       {"status", "completed"}}};
  std::vector<std::string> statuses_ = {"diagnosing", "executing", "completed"};
  size_t polls_of_incident_ = 0;
  Json timeline_ = AutomaticTimeline();
};

TEST_F(ScenarioRunnerTest, AutomaticNginxCrashProbesAroundTheChaosAndReadsTheTimes) {
  ScenarioRunner runner = MakeRunner();
  const ScenarioResult r = runner.Run(Spec("nginx-crash"));
  EXPECT_EQ(r.scenario, "nginx-crash");
  EXPECT_EQ(r.host, "web-1");
  EXPECT_EQ(r.incident_id, "inc-7");
  EXPECT_EQ(r.status, "completed");
  EXPECT_DOUBLE_EQ(r.detected_s.value(), 0.3);
  EXPECT_DOUBLE_EQ(r.decided_s.value(), 0.55);
  EXPECT_DOUBLE_EQ(r.fixed_s.value(), 0.9);
  EXPECT_DOUBLE_EQ(r.verified_s.value(), 2.1);
  EXPECT_EQ(r.lb.total, 100);
  EXPECT_TRUE(r.lb_ok());
  EXPECT_FALSE(runner.interrupted());
  // The probe runs from before the chaos until the incident ended; nothing is undone.
  EXPECT_EQ(env_.events, (std::vector<std::string>{"probe http://127.0.0.1:41000/health",
                                                   "chaos nginx-crash web-1", "probe finished"}));
  ASSERT_EQ(chaos_bodies_.size(), 1u);
  EXPECT_EQ(chaos_bodies_[0], Json::parse(R"({"host":"web-1","mode":"nginx-crash","params":{}})"));
  EXPECT_EQ(chaos_at_, T0());
  EXPECT_EQ(err_.str().find("waiting for approval"), std::string::npos) << err_.str();
}

TEST_F(ScenarioRunnerTest, OomSendsItsBoundedParamsToItsHost) {
  ScenarioRunner runner = MakeRunner();
  const ScenarioResult r = runner.Run(Spec("oom"));
  EXPECT_EQ(r.status, "completed");
  ASSERT_EQ(chaos_bodies_.size(), 1u);
  EXPECT_EQ(
      chaos_bodies_[0],
      Json::parse(R"({"host":"web-1","mode":"oom","params":{"percent":95,"duration":"120s"}})"));
  options_.hosts = {{"web-1", true}, {"web-2", true}, {"web-3", true}};
  host_status_["web-3"] = "healthy";
  alarm_state_[{"web-3", "Memory-Exhaustion-ASG"}] = "OK";
  ScenarioRunner three = MakeRunner();
  EXPECT_EQ(three.Run(Spec("oom")).host, "web-3");
  EXPECT_EQ(chaos_bodies_.back()["host"], "web-3");
}

TEST_F(ScenarioRunnerTest, ApprovalModeSaysOnceWhatToRunAndWaitsForTheHuman) {
  statuses_ = {"diagnosing",       "pending_approval", "pending_approval", "pending_approval",
               "pending_approval", "executing",        "completed"};
  timeline_ =
      Json::array({Entry("created", 300), Entry("awaiting_approval", 600), Entry("approved", 40000),
                   Entry("executed", 40400), Entry("verified", 41000), Entry("completed", 41000)});
  ScenarioRunner runner = MakeRunner();
  const ScenarioResult r = runner.Run(Spec("nginx-crash"));
  EXPECT_EQ(r.status, "completed");
  const std::string err = err_.str();
  const std::string line = "waiting for approval: medic approve inc-7\n";
  ASSERT_NE(err.find(line), std::string::npos) << err;
  EXPECT_EQ(err.find(line, err.find(line) + 1), std::string::npos) << "said once: " << err;
  EXPECT_DOUBLE_EQ(r.decided_s.value(), 0.6);
  EXPECT_DOUBLE_EQ(r.fixed_s.value(), 40.4);
}

TEST_F(ScenarioRunnerTest, AProposalNobodyApprovesIsGivenUpAfterTheApprovalTimeout) {
  statuses_ = {"pending_approval"};
  timeline_ = Json::array({Entry("created", 300), Entry("awaiting_approval", 600)});
  options_.approval_timeout = Millis(10'000);
  ScenarioRunner runner = MakeRunner();
  const ScenarioResult r = runner.Run(Spec("nginx-crash"));
  EXPECT_EQ(r.status, "still pending_approval after 10 s");
  EXPECT_FALSE(r.fixed_s.has_value());
  EXPECT_EQ(env_.events.back(), "chaos stop web-1") << "what did not complete is undone";
}

TEST_F(ScenarioRunnerTest, ChaosRefusedIsNotRunWithTheServersReason) {
  chaos_status_ = 403;
  chaos_error_ = "chaos is not allowed on host 'web-1'";
  ScenarioRunner runner = MakeRunner();
  const ScenarioResult r = runner.Run(Spec("nginx-crash"));
  EXPECT_EQ(r.status, "not run: chaos nginx-crash: 403 chaos is not allowed on host 'web-1'");
  EXPECT_EQ(r.incident_id, "");
  EXPECT_EQ(env_.events, (std::vector<std::string>{"probe http://127.0.0.1:41000/health",
                                                   "chaos nginx-crash web-1", "probe finished"}));
  EXPECT_EQ(ScenarioExitStatus({r}), 1);
}

TEST_F(ScenarioRunnerTest, DiskAndMemoryScenariosNeedAnIsolatedHost) {
  options_.hosts = {{"web-1", false}, {"web-2", false}};
  ScenarioRunner runner = MakeRunner();
  const ScenarioResult r = runner.Run(Spec("disk-fill"));
  EXPECT_EQ(r.host, "web-2");
  EXPECT_EQ(r.status,
            "not run: web-2 has no tmpfs log volume and memory cgroup (medic demo makes them as "
            "root)");
  EXPECT_TRUE(env_.events.empty()) << "no chaos, no probe";
  EXPECT_TRUE(chaos_bodies_.empty());
  EXPECT_FALSE(r.lb_ok());
  // nginx-crash needs no isolation.
  EXPECT_EQ(runner.Run(Spec("nginx-crash")).status, "completed");
}

TEST_F(ScenarioRunnerTest, WaitsForTheAlarmToBeOkBeforeTheChaos) {
  alarm_state_[{"web-2", "Disk-Critical-ASG"}] = "INSUFFICIENT_DATA";
  options_.ready_timeout = Millis(2'000);
  ScenarioRunner runner = MakeRunner();
  const ScenarioResult r = runner.Run(Spec("disk-fill"));
  EXPECT_EQ(r.status,
            "not run: web-2 did not become ready within 2 s (Disk-Critical-ASG on web-2 is "
            "INSUFFICIENT_DATA)");
  EXPECT_TRUE(chaos_bodies_.empty());
}

TEST_F(ScenarioRunnerTest, NoIncidentIsReportedAndTheChaosUndone) {
  incident_after_polls_ = 1'000'000;
  options_.incident_timeout = Millis(5'000);
  ScenarioRunner runner = MakeRunner();
  const ScenarioResult r = runner.Run(Spec("nginx-crash"));
  EXPECT_EQ(r.status, "no incident within 5 s");
  EXPECT_FALSE(r.detected_s.has_value());
  EXPECT_EQ(env_.events, (std::vector<std::string>{"probe http://127.0.0.1:41000/health",
                                                   "chaos nginx-crash web-1", "probe finished",
                                                   "chaos stop web-1"}));
}

TEST_F(ScenarioRunnerTest, AnIncidentThatNeverEndsIsGivenUpAfterTheEndTimeout) {
  statuses_ = {"executing"};
  options_.end_timeout = Millis(3'000);
  ScenarioRunner runner = MakeRunner();
  const ScenarioResult r = runner.Run(Spec("nginx-crash"));
  EXPECT_EQ(r.status, "still executing after 3 s");
  EXPECT_EQ(env_.events.back(), "chaos stop web-1");
}

TEST_F(ScenarioRunnerTest, AFailedFixIsReportedUndoneAndFailsTheRun) {
  statuses_ = {"executing", "failed"};
  timeline_ = Json::array({Entry("created", 300), Entry("auto_approved", 550),
                           Entry("executed", 900), Entry("failed", 900)});
  ScenarioRunner runner = MakeRunner();
  const ScenarioResult r = runner.Run(Spec("disk-fill"));
  EXPECT_EQ(r.status, "failed");
  EXPECT_DOUBLE_EQ(r.fixed_s.value(), 0.9);
  EXPECT_FALSE(r.verified_s.has_value());
  EXPECT_EQ(env_.events.back(), "chaos stop web-2");
  EXPECT_EQ(ScenarioExitStatus({r}), 1);
}

TEST_F(ScenarioRunnerTest, AHostThatDoesNotRecoverSpoilsTheCompletion) {
  options_.ready_timeout = Millis(2'000);
  ScenarioRunner runner = MakeRunner();
  // web-1's nginx stays down after the incident completed.
  env_.http.SetHandler([this](const HttpRequest& r) {
    if (polls_of_incident_ >= statuses_.size()) {
      host_status_["web-1"] = "unhealthy";
    }
    return Serve(r);
  });
  const ScenarioResult r = runner.Run(Spec("nginx-crash"));
  EXPECT_EQ(r.status, "completed, but web-1 did not recover within 2 s (web-1 (unhealthy))");
  EXPECT_EQ(ScenarioExitStatus({r}), 1);
}

TEST_F(ScenarioRunnerTest, AllRunsTheThreeInOrderSpreadOverTheHosts) {
  ScenarioRunner runner = MakeRunner();
  const std::vector<ScenarioResult> rs = runner.RunAll(SelectScenarios("all").value());
  ASSERT_EQ(rs.size(), 3u);
  EXPECT_EQ(rs[0].scenario + "@" + rs[0].host, "nginx-crash@web-1");
  EXPECT_EQ(rs[1].scenario + "@" + rs[1].host, "disk-fill@web-2");
  EXPECT_EQ(rs[2].scenario + "@" + rs[2].host, "oom@web-1");
  EXPECT_EQ(rs[0].incident_id, "inc-7");
  EXPECT_EQ(rs[1].incident_id, "inc-8");
  EXPECT_EQ(rs[2].incident_id, "inc-9");
  EXPECT_EQ(ScenarioExitStatus(rs), 0);
  EXPECT_EQ(std::count(env_.events.begin(), env_.events.end(), "probe finished"), 3);
}

TEST_F(ScenarioRunnerTest, AStopSignalEndsTheRunAtOnce) {
  statuses_ = {"executing"};
  env_.stop_after_sleeps = 6;
  ScenarioRunner runner = MakeRunner();
  const std::vector<ScenarioResult> rs = runner.RunAll(SelectScenarios("all").value());
  ASSERT_EQ(rs.size(), 1u) << "the scenarios after the interrupted one do not run";
  EXPECT_EQ(rs[0].status, "interrupted");
  EXPECT_TRUE(runner.interrupted());
  EXPECT_EQ(env_.events.back(), "probe finished");
  EXPECT_EQ(ScenarioExitStatus(rs), 1);
}

}  // namespace
}  // namespace medic::cli
