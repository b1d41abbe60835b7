// Commands an operator can watch (issue 19), over real HTTP on loopback: chaos parameters are
// checked against the catalog before anything is queued; GET /api/v1/commands/ID follows a sent
// command from queued to the host's answer; unknown query parameters and unknown metrics are
// told apart from empty answers.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "protocol/wire.h"
#include "tests/fakes/incident_fakes.h"
#include "tests/server/server_fixture.h"

namespace medic::server {
namespace {

class CommandsHttpTest : public test::ServerFixture {
 protected:
  void Configure(ServerConfig& config) override {
    config.hosts.entries.push_back({"web-1", std::nullopt, true});  // chaos allowed
  }
  void SetUp() override {
    StartServer();
    protocol::RegisterRequest reg;
    reg.name = "web-1";
    ASSERT_EQ(Call("POST", "/agent/v1/register", agent_, DumpJson(protocol::ToJson(reg))).status,
              200);
  }

  static Json JsonOf(const HttpResponse& r) { return ParseJson(r.body).value_or(Json()); }
  static std::string ErrorOf(const HttpResponse& r) {
    const Json j = JsonOf(r);
    return j.is_object() ? j.value("error", "") : "";
  }
  // Takes what is queued for web-1 now.
  std::vector<protocol::Command> Poll() {
    HttpResponse r = Call("GET", "/agent/v1/commands?wait_ms=0", agent_);
    EXPECT_EQ(r.status, 200) << r.body;
    auto b = protocol::CommandBatchFromJson(JsonOf(r));
    return b ? b->commands : std::vector<protocol::Command>{};
  }
  HttpResponse Chaos(const Json& body) {
    return Call("POST", "/api/v1/chaos", admin_, DumpJson(body));
  }
  Json Command(const std::string& id) {
    HttpResponse r = Call("GET", "/api/v1/commands/" + id, admin_);
    EXPECT_EQ(r.status, 200) << r.body;
    return JsonOf(r);
  }
  void Answer(const protocol::CommandResult& result) {
    ASSERT_EQ(
        Call("POST", "/agent/v1/results", agent_, DumpJson(protocol::ToJson(result))).status, 200);
  }
};

TEST_F(CommandsHttpTest, BadChaosParamsAre400WithTheReasonAndQueueNothing) {
  struct Case {
    Json body;
    std::string error;  // the whole message
  };
  const std::vector<Case> cases = {
      {Json{{"host", "web-1"}, {"mode", "disk-fill"}, {"params", {{"percent", 150}}}},
       "chaos mode disk-fill: parameter 'percent' must be between 1 and 99"},
      {Json{{"host", "web-1"}, {"mode", "oom"}, {"params", {{"percent", 0}}}},
       "chaos mode oom: parameter 'percent' must be between 1 and 99"},
      {Json{{"host", "web-1"}, {"mode", "disk-fill"}, {"params", {{"bogus", 1}}}},
       "chaos mode disk-fill has no parameter 'bogus' (known: path, percent)"},
      {Json{{"host", "web-1"}, {"mode", "disk-fill"}, {"params", {{"percent", "95"}}}},
       "chaos mode disk-fill: parameter 'percent' must be a number"},
      {Json{{"host", "web-1"}, {"mode", "oom"}, {"params", {{"duration", "2h"}}}},
       "chaos mode oom: parameter 'duration' must be from 1s to 3600s"},
      {Json{{"host", "web-1"}, {"mode", "nginx-crash"}, {"params", {{"percent", 50}}}},
       "chaos mode nginx-crash has no parameter 'percent' (it takes none)"},
      {Json{{"host", "web-1"}, {"mode", "meteor"}},
       "unknown chaos mode 'meteor' (valid: disk-fill, oom, nginx-crash, stop)"},
      {Json{{"host", "web-1"}, {"mode", "stop"}, {"params", {{"percent", 50}}}},
       "chaos mode stop takes no params"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.body.dump());
    HttpResponse r = Chaos(c.body);
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_EQ(ErrorOf(r), c.error);
  }
  EXPECT_TRUE(Poll().empty()) << "a refused chaos request queued a command";
  // The same host and mode with good params is taken: the 400s were the params'.
  HttpResponse ok = Chaos(Json{{"host", "web-1"}, {"mode", "disk-fill"},
                               {"params", {{"percent", 95}, {"path", "/var/log"}}}});
  EXPECT_EQ(ok.status, 202) << ok.body;
  EXPECT_EQ(Poll().size(), 1u);
}

TEST_F(CommandsHttpTest, ACommandIsFollowedFromQueuedToTheHostsAnswer) {
  HttpResponse sent = Chaos(Json{{"host", "web-1"}, {"mode", "oom"}, {"params", {{"percent", 80}}}});
  ASSERT_EQ(sent.status, 202) << sent.body;
  const std::string id = JsonOf(sent).value("command_id", "");
  ASSERT_FALSE(id.empty()) << sent.body;

  Json c = Command(id);
  EXPECT_EQ(c["state"], "queued") << c.dump();
  EXPECT_EQ(c["host"], "web-1");
  EXPECT_EQ(c["action"], "chaos.start");
  EXPECT_EQ(c["command"], "chaos.start mode=oom params='{\"percent\":80}'");
  EXPECT_FALSE(c.contains("result"));

  const std::vector<protocol::Command> polled = Poll();
  ASSERT_EQ(polled.size(), 1u);
  EXPECT_EQ(polled[0].id, id);
  EXPECT_EQ(Command(id)["state"], "delivered");

  protocol::CommandResult refused;
  refused.id = id;
  refused.host = "web-1";
  refused.ran = false;
  refused.error = "refused by local policy: chaos is not allowed on this host";
  Answer(refused);
  c = Command(id);
  EXPECT_EQ(c["state"], "refused") << c.dump();
  EXPECT_EQ(c["result"]["ran"], false);
  EXPECT_EQ(c["result"]["error"], "refused by local policy: chaos is not allowed on this host");

  // A command that ran: its output as the agent reported it, and the exit code.
  HttpResponse stop = Chaos(Json{{"host", "web-1"}, {"mode", "stop"}});
  ASSERT_EQ(stop.status, 202) << stop.body;
  const std::string stop_id = JsonOf(stop).value("command_id", "");
  ASSERT_EQ(Poll().size(), 1u);
  protocol::CommandResult failed = test::OkResult(stop_id, "stopped 1 hog\nline 2 \xe2\x9c\x93\n");
  failed.exit_code = 3;
  failed.truncated = true;
  Answer(failed);
  c = Command(stop_id);
  EXPECT_EQ(c["state"], "failed") << c.dump();
  EXPECT_EQ(c["result"]["exit_code"], 3);
  EXPECT_EQ(c["result"]["output"], "stopped 1 hog\nline 2 \xe2\x9c\x93\n");
  EXPECT_EQ(c["result"]["truncated"], true);
  // A repeated answer (a redelivery's) does not rewrite the first.
  Answer(test::OkResult(stop_id, "again"));
  EXPECT_EQ(Command(stop_id)["state"], "failed");

  HttpResponse again = Chaos(Json{{"host", "web-1"}, {"mode", "stop"}});
  const std::string ok_id = JsonOf(again).value("command_id", "");
  ASSERT_EQ(Poll().size(), 1u);
  Answer(test::OkResult(ok_id, "no chaos running\n"));
  EXPECT_EQ(Command(ok_id)["state"], "succeeded");
}

TEST_F(CommandsHttpTest, UnknownCommandsQueryParametersAndRolesAreRefused) {
  HttpResponse missing = Call("GET", "/api/v1/commands/cmd-0000000000000000", admin_);
  EXPECT_EQ(missing.status, 404) << missing.body;
  EXPECT_NE(ErrorOf(missing).find("command 'cmd-0000000000000000' not found"), std::string::npos)
      << missing.body;
  HttpResponse sent = Chaos(Json{{"host", "web-1"}, {"mode", "nginx-crash"}});
  const std::string id = JsonOf(sent).value("command_id", "");
  HttpResponse query = Call("GET", "/api/v1/commands/" + id + "?verbose=1", admin_);
  EXPECT_EQ(query.status, 400) << query.body;
  EXPECT_EQ(ErrorOf(query), "unknown query parameter 'verbose' (this route takes none)");
  // A viewer may look; no token may not.
  EXPECT_EQ(Call("GET", "/api/v1/commands/" + id, "").status, 401);
}

// Every GET route that takes query parameters refuses one it does not know, naming the valid
// ones: `?stauts=failed` is not "every incident".
TEST_F(CommandsHttpTest, UnknownQueryParametersAre400NamingTheValidOnes) {
  struct Case {
    std::string path;
    std::string error;
  };
  const std::vector<Case> cases = {
      {"/api/v1/incidents?stauts=failed",
       "unknown query parameter 'stauts' (valid: status, alarm, host, before, limit, view)"},
      {"/api/v1/incidents/inc-1/report?fmt=md", "unknown query parameter 'fmt' (valid: format)"},
      {"/api/v1/hosts?state=healthy",
       "unknown query parameter 'state' (valid: status, prefix, limit, after)"},
      {"/api/v1/hosts/web-1/metrics?metric=cpu_percent&from=x",
       "unknown query parameter 'from' (valid: metric, since, max_points, keep)"},
      {"/api/v1/alarms?status=ALARM",
       "unknown query parameter 'status' (valid: state, host, host_prefix, alarm, limit, after)"},
      {"/api/v1/archive?limt=5", "unknown query parameter 'limt' (valid: limit)"},
      {"/api/v1/audit?count=5", "unknown query parameter 'count' (valid: limit)"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.path);
    HttpResponse r = Call("GET", c.path, admin_);
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_EQ(ErrorOf(r), c.error);
  }
  HttpResponse agent = Call("GET", "/agent/v1/commands?wait_ms=0&hots=web-1", agent_);
  EXPECT_EQ(agent.status, 400) << agent.body;
  EXPECT_EQ(ErrorOf(agent), "unknown query parameter 'hots' (valid: host, wait_ms)");
  // The known ones still work.
  EXPECT_EQ(Call("GET", "/api/v1/incidents?status=failed&limit=5", admin_).status, 200);
  EXPECT_EQ(Call("GET", "/api/v1/audit?limit=5", admin_).status, 200);
}

TEST_F(CommandsHttpTest, AnUnknownMetricIs404NamingTheHostsMetrics) {
  protocol::Report rep;
  rep.host = "web-1";
  rep.samples.push_back({clock_.Now(), {{"disk_used_percent", 40}, {"mem_used_percent", 50}}});
  ASSERT_EQ(Call("POST", "/agent/v1/report", agent_, DumpJson(protocol::ToJson(rep))).status, 200);
  HttpResponse known = Call("GET", "/api/v1/hosts/web-1/metrics?metric=disk_used_percent", admin_);
  ASSERT_EQ(known.status, 200) << known.body;
  EXPECT_EQ(JsonOf(known)["points"].size(), 1u) << known.body;
  HttpResponse typo = Call("GET", "/api/v1/hosts/web-1/metrics?metric=disk_usage_percent", admin_);
  EXPECT_EQ(typo.status, 404) << typo.body;
  EXPECT_EQ(ErrorOf(typo),
            "host 'web-1' has no metric 'disk_usage_percent' (it reports: disk_used_percent, "
            "mem_used_percent)");
  // A series the server derives itself has no points until it does: not an error.
  for (const char* derived : {"unhealthy:web", "heartbeat"}) {
    SCOPED_TRACE(derived);
    HttpResponse r =
        Call("GET", std::string("/api/v1/hosts/web-1/metrics?metric=") + derived, admin_);
    EXPECT_EQ(r.status, 200) << r.body;
  }
  // A known metric with nothing in the window is still an empty list, not an error.
  HttpResponse empty = Call("GET",
                            "/api/v1/hosts/web-1/metrics?metric=disk_used_percent&since=2099-01-"
                            "01T00:00:00Z",
                            admin_);
  EXPECT_EQ(empty.status, 200) << empty.body;
  EXPECT_TRUE(JsonOf(empty)["points"].empty()) << empty.body;
}

}  // namespace
}  // namespace medic::server
