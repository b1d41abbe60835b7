// The server over real HTTP on loopback, in process: error handling, auth, and the agent
// protocol driving one incident from alarm to completed, then a restart on the same data.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <thread>

#include "core/files.h"
#include "protocol/wire.h"
#include "server/app/server_app.h"
#include "server/store/store.h"
#include "tests/fakes/incident_fakes.h"
#include "tests/fakes/temp_dir.h"
#include "tests/server/server_fixture.h"
#include "transport/http_client.h"

namespace medic::server {
namespace {

class HttpApiTest : public test::ServerFixture {
 protected:
  void SetUp() override { StartServer(); }
  Json JsonOf(const HttpResponse& r) {
    auto j = ParseJson(r.body);
    EXPECT_TRUE(j.has_value()) << r.body;
    return j.value_or(Json());
  }
  std::string ErrorOf(const HttpResponse& r) {
    const Json j = JsonOf(r);
    return j.is_object() ? j.value("error", "") : "";
  }
  void ExpectJsonError(const HttpResponse& r, int status) {
    EXPECT_EQ(r.status, status) << r.body;
    EXPECT_NE(r.content_type.find("application/json"), std::string::npos);
    Json j = JsonOf(r);
    ASSERT_TRUE(j.is_object());
    EXPECT_TRUE(j.contains("error") && j["error"].is_string() && !j["error"].get<std::string>().empty())
        << r.body;
  }
  std::vector<protocol::Command> PollCommands() {
    HttpResponse r = Call("GET", "/agent/v1/commands?host=web-1&wait_ms=2000", agent_);
    EXPECT_EQ(r.status, 200);
    auto b = protocol::CommandBatchFromJson(JsonOf(r));
    EXPECT_TRUE(b.has_value());
    return b ? b->commands : std::vector<protocol::Command>{};
  }
  void Report(bool web_healthy) {
    protocol::Report rep;
    rep.host = "web-1";
    rep.samples.push_back({clock_.Now(), {{"disk_used_percent", 40}, {"mem_used_percent", 30}}});
    rep.checks.push_back({"web", web_healthy, web_healthy ? "HTTP 200" : "refused", clock_.Now()});
    EXPECT_EQ(Call("POST", "/agent/v1/report", agent_, DumpJson(protocol::ToJson(rep))).status,
              200);
  }
  void Answer(const protocol::Command& c, std::string output) {
    const protocol::CommandResult r = test::OkResult(c.id, std::move(output));
    EXPECT_EQ(Call("POST", "/agent/v1/results", agent_, DumpJson(protocol::ToJson(r))).status,
              200);
  }

};

TEST_F(HttpApiTest, TokensAreWrittenPrivate) {
  struct stat st {};
  ASSERT_EQ(stat(dir_.File("data/admin.token").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat(dir_.File("data/agent.token").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_NE(admin_, agent_);
  // The audit chain's key, beside the database and not in it.
  ASSERT_EQ(stat(dir_.File("data/audit.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_GE(Trim(ReadFile(dir_.File("data/audit.key")).value()).size(), 48u);  // 192 bits
}

// A registration naming a target that is not on the host itself is refused: the server would
// probe it on the agent's word. The agent is on loopback here.
TEST_F(HttpApiTest, ATargetOffTheHostIsRefusedAtRegistration) {
  for (const char* url : {"http://10.9.9.9:80/health", "http://169.254.169.254/latest/",
                          "http://db.internal:5432/"}) {
    protocol::RegisterRequest reg;
    reg.name = "web-1";
    reg.targets.push_back({"web", url});
    HttpResponse r = Call("POST", "/agent/v1/register", agent_, DumpJson(protocol::ToJson(reg)));
    ExpectJsonError(r, 400);
    EXPECT_NE(r.body.find(std::string("target ") + url + " is refused"), std::string::npos)
        << r.body;
  }
  const Json groups = JsonOf(Call("GET", "/api/v1/target-groups", admin_));
  EXPECT_EQ(groups.dump().find("10.9.9.9"), std::string::npos) << groups.dump();
  protocol::RegisterRequest own;
  own.name = "web-1";
  own.targets.push_back({"web", "http://127.0.0.1:1/health"});
  EXPECT_EQ(Call("POST", "/agent/v1/register", agent_, DumpJson(protocol::ToJson(own))).status,
            200);
}

TEST_F(HttpApiTest, AuditVerifyReportsTheFirstEntryChangedInTheDatabase) {
  // The fixture's own entries (web-1's enrolment) come first.
  const int before = JsonOf(Call("GET", "/api/v1/audit/verify", admin_))["entries"].get<int>();
  for (const char* name : {"vera", "otto", "ida"}) {
    ASSERT_EQ(Call("POST", "/api/v1/tokens", admin_,
                   DumpJson(Json{{"name", name}, {"role", "viewer"}}))
                  .status,
              201);
  }
  Json v = JsonOf(Call("GET", "/api/v1/audit/verify", admin_));
  EXPECT_EQ(v["ok"], true) << v.dump();
  EXPECT_EQ(v["entries"], before + 3);
  EXPECT_EQ(v["first_broken"], Json());
  EXPECT_EQ(v["reason"], "");
  const Json audit = JsonOf(Call("GET", "/api/v1/audit", admin_));
  EXPECT_EQ(v["head"], audit["audit"][0]["hash"]);
  EXPECT_EQ(audit["audit"][0]["id"], before + 3);
  const int otto = before + 2;

  app_->Stop();
  app_.reset();
  {
    // Someone with the database but not the key rewrites what otto's entry says.
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(dir_.File("data/medic.db").c_str(), &db), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(db,
                           ("UPDATE audit SET detail = 'nobody (viewer)' WHERE id = " +
                            std::to_string(otto))
                               .c_str(),
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  StartServer();
  v = JsonOf(Call("GET", "/api/v1/audit/verify", admin_));
  EXPECT_EQ(v["ok"], false) << v.dump();
  EXPECT_EQ(v["entries"], before + 3);
  ASSERT_TRUE(v["first_broken"].is_object()) << v.dump();
  EXPECT_EQ(v["first_broken"]["id"], otto);
  EXPECT_EQ(v["first_broken"]["detail"], "nobody (viewer)");
  EXPECT_NE(v["reason"].get<std::string>().find("does not match its hash"), std::string::npos);
  EXPECT_FALSE(v.contains("head"));
}

// /metrics needs a token unless configured public (http_limits_test.cc has the cases).
TEST_F(HttpApiTest, HealthzIsPublicAndMetricsNeedAToken) {
  EXPECT_EQ(Call("GET", "/healthz", "").status, 200);
  ExpectJsonError(Call("GET", "/metrics", ""), 401);
  HttpResponse m = Call("GET", "/metrics", admin_);
  EXPECT_EQ(m.status, 200);
  EXPECT_NE(m.body.find("medic_hosts{status=\"healthy\"}"), std::string::npos);
  // The metric history against its budget (512 MiB by default).
  EXPECT_NE(m.body.find("\nmedic_history_budget_bytes 536870912\n"), std::string::npos) << m.body;
  EXPECT_NE(m.body.find("\nmedic_history_bytes "), std::string::npos) << m.body;
}

TEST_F(HttpApiTest, BadRequestsGetJsonErrorsAndTheServerKeepsServing) {
  ExpectJsonError(Call("GET", "/api/v1/incidents", ""), 401);
  ExpectJsonError(Call("GET", "/api/v1/incidents", "not-the-token"), 401);
  ExpectJsonError(Call("GET", "/api/v1/incidents/inc-doesnotexist", admin_), 404);
  ExpectJsonError(Call("POST", "/api/v1/incidents/inc-x/approve", admin_, "{not json"), 400);
  ExpectJsonError(Call("POST", "/api/v1/incidents/inc-x/approve", admin_, "[1,2]"), 400);
  ExpectJsonError(Call("POST", "/api/v1/incidents/inc-x/approve", admin_, "{\"comment\":5}"),
                  400);
  // An approval names the proposal it approves: a well-formed action_hash is required.
  const std::string zeros(64, '0');
  for (const std::string& body : std::vector<std::string>{
           "{}", R"({"comment":"go"})", "", R"({"action_hash":5})", R"({"action_hash":["x"]})",
           R"({"action_hash":""})", R"({"action_hash":null})",
        R"({"action_hash":")" + zeros.substr(1) + R"("})",
        R"({"action_hash":")" + zeros + R"(0"})",
        R"({"action_hash":")" + std::string(64, 'A') + R"("})",
        R"({"action_hash":")" + std::string(64, 'g') + R"("})",
        R"({"action_hash":")" + zeros + R"(","comment":7})",
        R"({"action_hash":")" + zeros + R"(","extra":1})"}) {
    SCOPED_TRACE(body);
    ExpectJsonError(Call("POST", "/api/v1/incidents/inc-x/approve", admin_, body), 400);
  }
  EXPECT_EQ(ErrorOf(Call("POST", "/api/v1/incidents/inc-x/approve", admin_, "{}")),
            "action_hash is required");
  EXPECT_NE(ErrorOf(Call("POST", "/api/v1/incidents/inc-x/approve", admin_,
                         R"({"action_hash":"abc"})"))
                .find("action_hash must be 64"),
            std::string::npos);
  EXPECT_NE(ErrorOf(Call("POST", "/api/v1/incidents/inc-x/approve", admin_,
                         R"({"action_hash":")" + zeros + R"(","comment":7})"))
                .find("'comment' must be a string"),
            std::string::npos);
  ExpectJsonError(Call("POST", "/api/v1/incidents/inc-x/approve", admin_,
                       R"({"action_hash":")" + zeros + R"("})"),
                  404);
  // A rejection needs no hash.
  ExpectJsonError(Call("POST", "/api/v1/incidents/inc-x/reject", admin_, "{}"), 404);
  ExpectJsonError(Call("DELETE", "/api/v1/incidents", admin_), 405);
  ExpectJsonError(Call("GET", "/api/v1/nothing-here", admin_), 404);
  ExpectJsonError(Call("GET", "/api/v1/incidents?status=bogus", admin_), 400);
  ExpectJsonError(Call("GET", "/api/v1/incidents?limit=0", admin_), 400);
  ExpectJsonError(Call("GET", "/api/v1/audit?limit=abc", admin_), 400);
  ExpectJsonError(Call("GET", "/api/v1/audit?limit=1001", admin_), 400);
  ExpectJsonError(Call("PUT", "/api/v1/settings", admin_, "{\"approval_mode\":\"yes\"}"), 400);
  ExpectJsonError(Call("PUT", "/api/v1/settings", admin_, "{\"colour\":true}"), 400);
  ExpectJsonError(Call("POST", "/agent/v1/report", agent_, "{\"host\":\"web-9\"}"), 403);
  ExpectJsonError(Call("POST", "/agent/v1/report", Enroll("web-9"), "{\"host\":\"web-9\"}"),
                  404);  // enrolled, never registered
  ExpectJsonError(Call("POST", "/agent/v1/register", agent_, "{\"name\":\"bad name;rm\"}"), 400);
  ExpectJsonError(Call("GET", "/api/v1/incidents", agent_), 403);
  ExpectJsonError(Call("POST", "/agent/v1/report", admin_, "{}"), 403);
  ExpectJsonError(Call("POST", "/api/v1/incidents/inc-x/approve", admin_,
                       std::string(2 << 20, 'x')),
                  413);
  EXPECT_EQ(Call("GET", "/healthz", "").status, 200);
  EXPECT_EQ(Call("GET", "/api/v1/incidents", admin_).status, 200);
}

TEST_F(HttpApiTest, SettingsRoundTrip) {
  Json s = JsonOf(Call("GET", "/api/v1/settings", admin_));
  EXPECT_EQ(s["approval_mode"], true);
  EXPECT_EQ(s["automation_paused"], false);
  HttpResponse r = Call("PUT", "/api/v1/settings", admin_, "{\"approval_mode\":false}");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(JsonOf(Call("GET", "/api/v1/settings", admin_))["approval_mode"], false);
}

TEST_F(HttpApiTest, AgentProtocolDrivesAnIncidentToCompletedAndItSurvivesARestart) {
  protocol::RegisterRequest reg;
  reg.name = "web-1";
  reg.services = {"nginx"};
  ASSERT_EQ(Call("POST", "/agent/v1/register", agent_, DumpJson(protocol::ToJson(reg))).status,
            200);
  Report(true);
  Json hosts = JsonOf(Call("GET", "/api/v1/hosts", admin_));
  ASSERT_EQ(hosts["hosts"].size(), 1u);
  EXPECT_EQ(hosts["hosts"][0]["status"], "healthy");
  EXPECT_EQ(hosts["hosts"][0]["metrics"]["disk_used_percent"], 40);

  Report(false);  // nginx down
  auto diag = PollCommands();
  ASSERT_EQ(diag.size(), 3u);  // the runbook's two, and what changed (docs/AUTONOMY.md)
  for (const auto& c : diag) {
    Answer(c, "diag " + c.action);
  }
  // The decision is taken off the request thread: wait for it (bounded).
  Json list;
  for (int i = 0; i < 100; ++i) {
    list = JsonOf(Call("GET", "/api/v1/incidents?status=pending_approval", admin_));
    if (!list["incidents"].empty()) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(list["incidents"].size(), 1u);
  const std::string id = list["incidents"][0]["incident_id"];
  EXPECT_EQ(list["incidents"][0]["alarm_name"], "Nginx-Down-ALB");
  EXPECT_EQ(list["incidents"][0]["ai_suggestion"], "service.restart service=nginx");

  // The approval names what was seen: a stale proposal is refused and changes nothing.
  const std::string hash = list["incidents"][0]["action_hash"];
  ASSERT_EQ(hash.size(), 64u);
  const HttpResponse stale =
      Call("POST", "/api/v1/incidents/" + id + "/approve", admin_,
           DumpJson(Json{{"action_hash", std::string(64, 'e')}, {"comment", "old tab"}}));
  ExpectJsonError(stale, 409);
  EXPECT_NE(ErrorOf(stale).find("changed"), std::string::npos) << stale.body;
  EXPECT_EQ(JsonOf(Call("GET", "/api/v1/incidents/" + id, admin_))["status"],
            "pending_approval");
  Json approved = JsonOf(Call("POST", "/api/v1/incidents/" + id + "/approve", admin_,
                              DumpJson(Json{{"action_hash", hash}, {"comment", "ok"}})));
  EXPECT_EQ(approved["status"], "executing");
  EXPECT_EQ(approved["action_hash"], hash);
  ExpectJsonError(Call("POST", "/api/v1/incidents/" + id + "/approve", admin_,
                       DumpJson(Json{{"action_hash", hash}})),
                  409);
  // All three attempts are in the audit log, with the token's name, chained and intact.
  const Json audit = JsonOf(Call("GET", "/api/v1/audit", admin_));
  ASSERT_GE(audit["audit"].size(), 3u);
  EXPECT_EQ(audit["audit"][0]["action"], "incident.approve_refused");
  EXPECT_EQ(audit["audit"][1]["action"], "incident.approve");
  EXPECT_EQ(audit["audit"][2]["action"], "incident.approve_refused");
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(audit["audit"][i]["actor"], "admin");
    EXPECT_EQ(audit["audit"][i]["hash"].get<std::string>().size(), 64u);
    EXPECT_EQ(ParseJson(audit["audit"][i]["detail"].get<std::string>())
                  .value()["incident_id"],
              id);
  }
  EXPECT_EQ(audit["audit"][0]["prev_hash"], audit["audit"][1]["hash"]);
  EXPECT_EQ(ParseJson(audit["audit"][1]["detail"].get<std::string>()).value(),
            (Json{{"incident_id", id}, {"action_hash", hash}, {"comment", "ok"}}));
  const Json verify = JsonOf(Call("GET", "/api/v1/audit/verify", admin_));
  EXPECT_EQ(verify["ok"], true);
  EXPECT_EQ(verify["first_broken"], Json());
  EXPECT_EQ(verify["entries"].get<int64_t>(), static_cast<int64_t>(audit["audit"].size()));
  auto fix = PollCommands();
  ASSERT_EQ(fix.size(), 1u);
  EXPECT_EQ(fix[0].action, "service.restart");
  Answer(fix[0], "nginx restarted");
  // The alarm returns to OK at the first healthy period (periods of one agent interval take
  // the worst value): report until then, bounded.
  Json done;
  for (int i = 0; i < 50; ++i) {
    Report(true);
    done = JsonOf(Call("GET", "/api/v1/incidents/" + id, admin_));
    if (done["status"] == "completed") {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(done["status"], "completed");
  EXPECT_NE(done["remediation_output"].get<std::string>().find("nginx restarted"),
            std::string::npos);
  std::vector<std::string> events;
  for (const auto& e : done["timeline"]) {
    events.push_back(e["event"]);
    EXPECT_TRUE(ParseRfc3339(e["timestamp"].get<std::string>()).has_value());
  }
  const std::vector<std::string> want = {"created",  "diagnosed", "suggested", "awaiting_approval",
                                         "approved", "executing", "executed",  "verifying", "verified",
                                         "completed"};
  EXPECT_EQ(events, want);

  app_->Stop();
  app_.reset();
  StartServer();
  Json again = JsonOf(Call("GET", "/api/v1/incidents/" + id, admin_));
  EXPECT_EQ(again, done);

}

TEST_F(HttpApiTest, TokensAreCreatedUsedRevokedAtOnceAndSurviveRestart) {
  HttpResponse created =
      Call("POST", "/api/v1/tokens", admin_, "{\"name\":\"vera\",\"role\":\"viewer\"}");
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string viewer = JsonOf(created)["token"];
  ASSERT_GE(viewer.size(), 32u);
  HttpResponse op =
      Call("POST", "/api/v1/tokens", admin_, "{\"name\":\"otto\",\"role\":\"operator\"}");
  ASSERT_EQ(op.status, 201);
  const std::string operator_token = JsonOf(op)["token"];

  EXPECT_EQ(Call("GET", "/api/v1/incidents", viewer).status, 200);
  ExpectJsonError(Call("POST", "/api/v1/incidents/inc-x/approve", viewer, "{}"), 403);
  ExpectJsonError(Call("PUT", "/api/v1/settings", operator_token, "{\"approval_mode\":false}"),
                  403);
  ExpectJsonError(Call("POST", "/api/v1/tokens", operator_token,
                       "{\"name\":\"x\",\"role\":\"admin\"}"),
                  403);
  ExpectJsonError(Call("POST", "/api/v1/incidents/inc-x/approve", operator_token,
                       R"({"action_hash":")" + std::string(64, '0') + R"("})"),
                  404);

  ExpectJsonError(
      Call("POST", "/api/v1/tokens", admin_, "{\"name\":\"vera\",\"role\":\"viewer\"}"), 409);
  ExpectJsonError(
      Call("POST", "/api/v1/tokens", admin_, "{\"name\":\"admin\",\"role\":\"viewer\"}"), 409);
  ExpectJsonError(
      Call("POST", "/api/v1/tokens", admin_, "{\"name\":\"x y\",\"role\":\"viewer\"}"), 400);
  ExpectJsonError(
      Call("POST", "/api/v1/tokens", admin_, "{\"name\":\"z\",\"role\":\"root\"}"), 400);
  ExpectJsonError(Call("DELETE", "/api/v1/tokens/nobody", admin_), 404);

  // Only a hash is on disk.
  auto db = ReadFile(dir_.File("data/medic.db"));
  ASSERT_TRUE(db.has_value());
  EXPECT_EQ(db->find(viewer), std::string::npos);

  // The tokens and the audit trail survive a restart.
  app_->Stop();
  app_.reset();
  StartServer();
  EXPECT_EQ(Call("GET", "/api/v1/incidents", viewer).status, 200);
  EXPECT_EQ(Call("DELETE", "/api/v1/tokens/vera", admin_).status, 200);
  ExpectJsonError(Call("GET", "/api/v1/incidents", viewer), 401);
  EXPECT_EQ(Call("GET", "/api/v1/incidents", operator_token).status, 200);

  Json audit = JsonOf(Call("GET", "/api/v1/audit", admin_));
  ASSERT_GE(audit["audit"].size(), 3u);
  EXPECT_EQ(audit["audit"][0]["action"], "token.revoke");
  EXPECT_EQ(audit["audit"][0]["actor"], "admin");
  EXPECT_EQ(audit["audit"][0]["detail"], "vera");
}

TEST_F(HttpApiTest, SettingsChangesAreAudited) {
  ASSERT_EQ(Call("PUT", "/api/v1/settings", admin_, "{\"automation_paused\":true}").status, 200);
  Json audit = JsonOf(Call("GET", "/api/v1/audit?limit=1", admin_));
  ASSERT_EQ(audit["audit"].size(), 1u);
  EXPECT_EQ(audit["audit"][0]["action"], "settings.update");
  EXPECT_NE(audit["audit"][0]["detail"].get<std::string>().find("automation_paused"),
            std::string::npos);
}

// Reads from a raw connection until `needle` shows up or the deadline passes.
bool ReadUntil(int fd, std::string& got, const std::string& needle,
               std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (got.find(needle) == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return false;
    }
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) {
      continue;
    }
    char buf[4096];
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) {
      return false;
    }
    got.append(buf, static_cast<size_t>(n));
  }
  return true;
}

TEST_F(HttpApiTest, ServerSentEventsCarryIncidentAndAlarmChanges) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(app_->port());
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  const std::string req = "GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                          admin_ + "\r\n\r\n";
  ASSERT_EQ(write(fd, req.data(), req.size()), static_cast<ssize_t>(req.size()));
  std::string got;
  ASSERT_TRUE(ReadUntil(fd, got, ": connected", std::chrono::seconds(5))) << got;
  EXPECT_NE(got.find("HTTP/1.1 200"), std::string::npos);
  EXPECT_NE(got.find("Content-Type: text/event-stream"), std::string::npos);

  protocol::RegisterRequest reg;
  reg.name = "web-1";
  ASSERT_EQ(Call("POST", "/agent/v1/register", agent_, DumpJson(protocol::ToJson(reg))).status,
            200);
  Report(false);
  ASSERT_TRUE(ReadUntil(fd, got, "event: incident", std::chrono::seconds(5))) << got;
  EXPECT_NE(got.find("event: host\ndata: {"), std::string::npos) << got;
  EXPECT_NE(got.find("event: alarm\ndata: {"), std::string::npos) << got;
  EXPECT_NE(got.find("\"alarm_name\":\"Nginx-Down-ALB\""), std::string::npos) << got;
  EXPECT_NE(got.find("\"status\":\"diagnosing\""), std::string::npos) << got;
  // A settings change reaches open dashboards (the pause banner).
  ASSERT_EQ(Call("PUT", "/api/v1/settings", admin_, R"({"automation_paused":true})").status, 200);
  ASSERT_TRUE(ReadUntil(fd, got, "event: settings", std::chrono::seconds(5))) << got;
  ASSERT_TRUE(ReadUntil(fd, got, "\"automation_paused\":true", std::chrono::seconds(5))) << got;
  close(fd);
  // The server keeps serving after the subscriber left.
  EXPECT_EQ(Call("GET", "/healthz", "").status, 200);
  ExpectJsonError(Call("GET", "/api/v1/events", ""), 401);
}

TEST_F(HttpApiTest, IncidentsFilterByAlarmAndHostAndPageWithBefore) {
  app_->Stop();
  {
    ASSERT_TRUE(MakeDirs(dir_.File("data"), 0700).has_value());
    auto store = OpenSqliteStore(dir_.File("data/medic.db"));
    ASSERT_TRUE(store.has_value()) << store.error().ToString();
    const std::pair<const char*, const char*> kMade[] = {
        {"Disk-Critical-ASG", "web-1"}, {"Nginx-Down-ALB", "web-1"}, {"Disk-Critical-ASG", "web-2"},
        {"Disk-Critical-ASG", "web-1"}, {"Nginx-Down-ALB", "web-2"}};
    for (int i = 0; i < 5; ++i) {
      Incident inc;
      inc.incident_id = "inc-" + std::to_string(i);
      inc.alarm_name = kMade[i].first;
      inc.instance_id = kMade[i].second;
      inc.status = IncidentStatus::kFailed;
      inc.created_at = inc.updated_at = WallTime(std::chrono::seconds(1'800'000'000 + i));
      inc.resolved_at = inc.created_at;
      inc.timeline.push_back({"created", inc.created_at, "medic", ""});
      ASSERT_TRUE((*store)->CreateIncident(inc).has_value());
    }
  }
  StartServer();
  auto ids = [&](const std::string& query) {
    HttpResponse r = Call("GET", "/api/v1/incidents" + query, admin_);
    EXPECT_EQ(r.status, 200) << query << ": " << r.body;
    std::vector<std::string> out;
    const Json body = JsonOf(r);
    for (const auto& inc : body["incidents"]) {
      out.push_back(inc["incident_id"]);
    }
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(ids(""), (V{"inc-4", "inc-3", "inc-2", "inc-1", "inc-0"}));
  EXPECT_EQ(ids("?alarm=Disk-Critical-ASG"), (V{"inc-3", "inc-2", "inc-0"}));
  EXPECT_EQ(ids("?host=web-1"), (V{"inc-3", "inc-1", "inc-0"}));
  EXPECT_EQ(ids("?alarm=Disk-Critical-ASG&host=web-1&status=failed"), (V{"inc-3", "inc-0"}));
  EXPECT_EQ(ids("?host=web-9"), V{});
  // Pages of two, each asked for with the last id of the one before.
  EXPECT_EQ(ids("?limit=2"), (V{"inc-4", "inc-3"}));
  EXPECT_EQ(ids("?limit=2&before=inc-3"), (V{"inc-2", "inc-1"}));
  EXPECT_EQ(ids("?limit=2&before=inc-1"), (V{"inc-0"}));
  EXPECT_EQ(ids("?limit=2&before=inc-0"), V{});
  EXPECT_EQ(ids("?host=web-1&before=inc-3"), (V{"inc-1", "inc-0"}));
  ExpectJsonError(Call("GET", "/api/v1/incidents?before=inc-nope", admin_), 400);
  // view=summary leaves out the long texts; view=full (the default) has them.
  EXPECT_EQ(ids("?view=summary&host=web-2"), (V{"inc-4", "inc-2"}));
  const Json summary = JsonOf(Call("GET", "/api/v1/incidents?view=summary&limit=1", admin_));
  const Json full = JsonOf(Call("GET", "/api/v1/incidents?view=full&limit=1", admin_));
  ASSERT_EQ(summary["incidents"].size(), 1u);
  ASSERT_EQ(full["incidents"].size(), 1u);
  for (const char* key : {"diagnostics", "ai_reasoning", "remediation_output", "timeline"}) {
    EXPECT_FALSE(summary["incidents"][0].contains(key)) << key;
    EXPECT_TRUE(full["incidents"][0].contains(key)) << key;
  }
  for (const char* key : {"incident_id", "status", "ai_suggestion", "created_at", "updated_at"}) {
    EXPECT_TRUE(summary["incidents"][0].contains(key)) << key;
  }
  HttpResponse bad = Call("GET", "/api/v1/incidents?view=brief", admin_);
  ExpectJsonError(bad, 400);
  EXPECT_NE(bad.body.find("view must be full or summary"), std::string::npos);
}

// GET /api/v1/alarms filters by state, host, host prefix and alarm, pages with `next`, and
// refuses unknown parameters and bad values by name (issue 13).
TEST_F(HttpApiTest, AlarmsFilterByStateHostAndAlarmAndPageWithNext) {
  protocol::RegisterRequest reg;
  reg.name = "web-1";
  ASSERT_EQ(Call("POST", "/agent/v1/register", agent_, DumpJson(protocol::ToJson(reg))).status,
            200);
  Report(false);  // nginx down: Nginx-Down-ALB in ALARM, the other three OK
  auto keys = [&](const std::string& query) {
    HttpResponse r = Call("GET", "/api/v1/alarms" + query, admin_);
    EXPECT_EQ(r.status, 200) << query << ": " << r.body;
    std::vector<std::string> out;
    const Json body = JsonOf(r);
    for (const auto& a : body["alarms"]) {
      out.push_back(a["host"].get<std::string>() + "/" + a["alarm_name"].get<std::string>());
    }
    if (body.contains("next")) {
      out.push_back("next=" + body["next"].get<std::string>());
    }
    return out;
  };
  using V = std::vector<std::string>;
  const V all = {"web-1/Disk-Critical-ASG", "web-1/Host-Unreachable", "web-1/Memory-Exhaustion-ASG",
                 "web-1/Nginx-Down-ALB"};
  EXPECT_EQ(keys(""), all) << "without parameters: every alarm on every host, no next";
  EXPECT_EQ(keys("?state=ALARM"), V{"web-1/Nginx-Down-ALB"});
  EXPECT_EQ(keys("?state=OK&alarm=Disk-Critical-ASG"), V{"web-1/Disk-Critical-ASG"});
  EXPECT_EQ(keys("?state=INSUFFICIENT_DATA"), V{});
  EXPECT_EQ(keys("?host=web-1&alarm=Nginx-Down-ALB"), V{"web-1/Nginx-Down-ALB"});
  EXPECT_EQ(keys("?host=web-2"), V{});
  EXPECT_EQ(keys("?host_prefix=web"), all);
  EXPECT_EQ(keys("?host_prefix=db"), V{});
  EXPECT_EQ(keys("?limit=3"), (V{all[0], all[1], all[2], "next=web-1/Memory-Exhaustion-ASG"}));
  EXPECT_EQ(keys("?limit=3&after=web-1%2FMemory-Exhaustion-ASG"), V{all[3]});
  EXPECT_EQ(keys("?limit=4"), all) << "no next when nothing remains";
  const Json body = JsonOf(Call("GET", "/api/v1/alarms?state=ALARM", admin_));
  EXPECT_EQ(body["counts"]["ALARM"], 1);
  EXPECT_EQ(body["counts"]["OK"], 3);
  EXPECT_EQ(body["rules"].size(), 4u) << "the rules are always there";
  EXPECT_NE(Call("GET", "/metrics", admin_).body.find("medic_alarms_in_alarm 1\n"),
            std::string::npos);
  const std::pair<std::string, std::string> kBad[] = {
      {"?colour=red", "unknown query parameter 'colour'"},
      {"?state=FIRING", "state must be OK, ALARM or INSUFFICIENT_DATA"},
      {"?limit=0", "limit must be an integer from 1 to 10000"},
      {"?limit=10001", "limit must be"},
      {"?alarm=Nope", "alarm 'Nope' is not a configured alarm"},
      {"?host=bad%3Bname", "host must be a host name"},
      {"?host=web-1&host_prefix=web", "host or host_prefix"},
      {"?host_prefix=", "host_prefix must be"},
      {"?after=web-1", "after must be a previous answer's 'next'"},
  };
  for (const auto& [query, want] : kBad) {
    SCOPED_TRACE(query);
    HttpResponse r = Call("GET", "/api/v1/alarms" + query, admin_);
    ExpectJsonError(r, 400);
    EXPECT_NE(ErrorOf(r).find(want), std::string::npos) << ErrorOf(r);
  }
}

// The fleet survives a restart: hosts known before it are listed at once, report without
// registering again, and one that never comes back raises Host-Unreachable.
class FleetRestartTest : public test::ServerFixture {
 protected:
  const Clock& ServerClock() const override { return manual_; }
  void Register(const std::string& name) {
    protocol::RegisterRequest reg;
    reg.name = name;
    reg.hostname = name + ".example";
    reg.version = "test";
    reg.services = {"nginx"};
    reg.log_dir = "/srv/" + name + "/logs";
    credentials_[name] = Enroll(name);
    ASSERT_EQ(Call("POST", "/agent/v1/register", credentials_[name],
                   DumpJson(protocol::ToJson(reg)))
                  .status,
              200);
  }
  // With the credential the host got before (it survives a restart of the server).
  int Report(const std::string& name, double disk_used_percent = 40) {
    protocol::Report rep;
    rep.host = name;
    rep.samples.push_back({manual_.Now(), {{"disk_used_percent", disk_used_percent}}});
    return Call("POST", "/agent/v1/report", credentials_[name], DumpJson(protocol::ToJson(rep)))
        .status;
  }
  Json Get(const std::string& path) {
    HttpResponse r = Call("GET", path, admin_);
    EXPECT_EQ(r.status, 200) << r.body;
    return ParseJson(r.body).value_or(Json());
  }
  std::string UnreachableState(const std::string& host) {
    const Json all = Get("/api/v1/alarms");  // named: a loop over a temporary's member dangles
    for (const auto& a : all["alarms"]) {
      if (a["alarm_name"] == "Host-Unreachable" && a["host"] == host) {
        return a["state"];
      }
    }
    return "none";
  }

  ManualClock manual_;
  std::map<std::string, std::string> credentials_;  // host -> its credential
};

TEST_F(FleetRestartTest, KnownHostsAreExpectedAfterARestartAndASilentOneIsUnreachable) {
  StartServer();
  Register("web-1");
  Register("web-2");
  ASSERT_EQ(Report("web-1"), 200);
  ASSERT_EQ(Report("web-2"), 200);
  app_->Stop();
  manual_.Advance(std::chrono::seconds(3));

  StartServer();
  Json hosts = Get("/api/v1/hosts")["hosts"];
  ASSERT_EQ(hosts.size(), 2u) << hosts.dump();
  for (const auto& h : hosts) {
    EXPECT_EQ(h["status"], "stale") << "no data since the restart: " << h.dump();
    EXPECT_EQ(h["services"], Json::array({"nginx"}));
    EXPECT_EQ(h["hostname"], h["name"].get<std::string>() + ".example");
  }
  EXPECT_EQ(UnreachableState("web-1"), "INSUFFICIENT_DATA");
  // web-2 reports without registering again; web-1 stays silent for 20 s.
  for (int s = 0; s < 20; ++s) {
    ASSERT_EQ(Report("web-2"), 200);
    manual_.Advance(std::chrono::seconds(1));
  }
  ASSERT_EQ(Report("web-2"), 200);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (UnreachableState("web-1") != "ALARM" && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(UnreachableState("web-1"), "ALARM");
  EXPECT_EQ(UnreachableState("web-2"), "OK");
  bool incident = false;
  const Json incidents = Get("/api/v1/incidents");
  for (const auto& inc : incidents["incidents"]) {
    incident = incident ||
               (inc["alarm_name"] == "Host-Unreachable" && inc["instance_id"] == "web-1");
    EXPECT_NE(inc["instance_id"], "web-2") << inc.dump();
  }
  EXPECT_TRUE(incident) << "no Host-Unreachable incident for web-1";
}

// Issue 19: a host with an open incident is not removed silently (its incident would stay
// pending for ever): 409 naming the incident, unless close_incidents=true, which closes it with
// the reason on its timeline.
TEST_F(FleetRestartTest, RemovingAHostWithOpenIncidentsClosesThemOnlyWhenAsked) {
  StartServer();
  Register("web-1");
  ASSERT_EQ(Report("web-1", 97), 200);
  const Json listed = Get("/api/v1/incidents?status=diagnosing");
  ASSERT_EQ(listed["incidents"].size(), 1u) << listed.dump();
  const std::string id = listed["incidents"][0]["incident_id"];

  HttpResponse r = Call("DELETE", "/api/v1/hosts/web-1", admin_);
  ASSERT_EQ(r.status, 409) << r.body;
  const Json refused = ParseJson(r.body).value();
  EXPECT_EQ(refused["open_incidents"], Json::array({id}));
  EXPECT_EQ(refused["error"], "host 'web-1' has open incidents (" + id +
                                  "): close them with close_incidents=true (medic hosts remove "
                                  "web-1 --close-incidents), or decide them first");
  EXPECT_EQ(Call("DELETE", "/api/v1/hosts/web-1?close_incidents=yes", admin_).status, 400);
  EXPECT_EQ(Call("DELETE", "/api/v1/hosts/web-1?close_incident=true", admin_).status, 400);
  EXPECT_EQ(Get("/api/v1/hosts")["hosts"].size(), 1u) << "nothing removed on a refusal";

  r = Call("DELETE", "/api/v1/hosts/web-1?close_incidents=true", admin_);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(ParseJson(r.body).value(),
            (Json{{"removed", "web-1"}, {"closed_incidents", Json::array({id})}}));
  const Json inc = Get("/api/v1/incidents/" + id);
  EXPECT_EQ(inc["status"], "rejected");
  EXPECT_EQ(inc["reason"], "host removed");
  ASSERT_FALSE(inc["timeline"].empty());
  EXPECT_EQ(inc["timeline"].back()["event"], "host_removed") << inc["timeline"].dump();
  EXPECT_TRUE(inc["resolved_at"].is_string()) << inc.dump();
  EXPECT_TRUE(Get("/api/v1/hosts")["hosts"].empty());
  // Newest first: the removal, then the incident it closed.
  const Json audit = Get("/api/v1/audit")["audit"];
  ASSERT_GE(audit.size(), 2u) << audit.dump();
  EXPECT_EQ(audit[0]["action"], "incident.close");
  EXPECT_EQ(audit[1]["action"], "host.remove");
}

TEST_F(FleetRestartTest, ARemovedHostIsForgottenAcrossRestarts) {
  StartServer();
  Register("web-1");
  Register("web-2");
  ASSERT_EQ(Report("web-1"), 200);
  HttpResponse r = Call("DELETE", "/api/v1/hosts/web-1", admin_);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(ParseJson(r.body).value(),
            (Json{{"removed", "web-1"}, {"closed_incidents", Json::array()}}));
  EXPECT_EQ(Call("DELETE", "/api/v1/hosts/web-1", admin_).status, 404);
  EXPECT_EQ(Call("DELETE", "/api/v1/hosts/nobody", admin_).status, 404);
  Json hosts = Get("/api/v1/hosts")["hosts"];
  ASSERT_EQ(hosts.size(), 1u);
  EXPECT_EQ(hosts[0]["name"], "web-2");
  EXPECT_EQ(UnreachableState("web-1"), "none");
  // Recorded with who did it.
  const Json audit = Get("/api/v1/audit");
  ASSERT_FALSE(audit["audit"].empty()) << audit.dump();
  EXPECT_EQ(audit["audit"][0]["action"], "host.remove");
  EXPECT_EQ(audit["audit"][0]["detail"], "web-1");

  app_->Stop();
  StartServer();
  hosts = Get("/api/v1/hosts")["hosts"];
  ASSERT_EQ(hosts.size(), 1u) << hosts.dump();
  EXPECT_EQ(hosts[0]["name"], "web-2");
  EXPECT_EQ(UnreachableState("web-1"), "none");
  EXPECT_EQ(UnreachableState("web-2"), "INSUFFICIENT_DATA");
  // A removed host whose agent still runs comes back: its report is refused, it registers.
  EXPECT_EQ(Report("web-1"), 404);
  Register("web-1");
  EXPECT_EQ(Report("web-1"), 200);
}

}  // namespace
}  // namespace medic::server
