// The medic command line against a recording fake HttpClient, a fake /proc and recorded signals:
// the right request for each command, the output, and one-line errors with non-zero exit codes.

#include "cli/cli.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include "cli/commands.h"
#include "fake_http_client.h"
#include "tests/fakes/proc_fs.h"

namespace medic::cli {
namespace {

class FakeCliEnv : public CliEnv {
 public:
  std::istream& In() override { return in; }
  std::ostream& Out() override { return out; }
  std::ostream& Err() override { return err; }
  std::optional<std::string> GetEnv(const std::string& name) override {
    auto it = env.find(name);
    if (it == env.end()) {
      return std::nullopt;
    }
    return it->second;
  }
  HttpClient& Http() override { return http; }
  void UseServerTls(const TlsOptions& tls) override { server_tls = tls; }
  const Clock& GetClock() override { return clock; }
  void Sleep(Millis d) override {
    slept.push_back(d);
    clock.Advance(d);
  }
  host::ProcFs& Procs() override { return procfs; }
  Status Signal(int pid, int) override {
    signalled.push_back(pid);
    return OkStatus();
  }
  Status RunHealthApp(const std::string& listen) override {
    healthapp_listen = listen;
    return OkStatus();
  }
  int RunDemo(const DemoOptions& options) override {
    demo_options = options;
    return 0;
  }
  Status RunLocalChaos(const LocalChaosOptions& options) override {
    local_chaos = options;
    return local_chaos_status;
  }

  std::istringstream in;
  std::ostringstream out;
  std::ostringstream err;
  std::map<std::string, std::string> env = {{"MEDIC_TOKEN", "tok-123"}};
  FakeHttpClient http;
  ManualClock clock{ParseRfc3339("2026-11-29T21:13:16Z").value()};
  host::testing::FakeProcFs procfs;  // no processes, no files
  std::vector<int> signalled;
  std::vector<Millis> slept;
  std::optional<std::string> healthapp_listen;
  std::optional<DemoOptions> demo_options;
  std::optional<LocalChaosOptions> local_chaos;
  Status local_chaos_status = OkStatus();
  std::optional<TlsOptions> server_tls;
};

class CliTest : public ::testing::Test {
 protected:
  int Run(std::vector<std::string> args) { return RunCli(args, env_); }
  FakeCliEnv env_;
};

TEST_F(CliTest, IncidentsSendsGetWithQueryAndBearerToken) {
  env_.http.Answer(200, R"j({"incidents":[{"incident_id":"inc-1","status":"completed",
      "alarm_name":"Disk-Critical-ASG","instance_id":"web-1","created_at":"2026-11-29T21:13:06Z"}]})j");
  ASSERT_EQ(Run({"incidents", "--status", "pending_approval", "--limit", "5"}), 0)
      << env_.err.str();
  ASSERT_EQ(env_.http.requests().size(), 1u);
  const HttpRequest& r = env_.http.last();
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.url, "http://127.0.0.1:8080/api/v1/incidents?status=pending_approval&limit=5");
  EXPECT_EQ(FakeHttpClient::Header(r, "Authorization"), "Bearer tok-123");
  EXPECT_EQ(env_.out.str(),
            "ID     STATUS     ALARM              HOST   CREATED  RESOLVED IN\n"
            "inc-1  completed  Disk-Critical-ASG  web-1  10s ago  -\n");
  EXPECT_EQ(env_.err.str(), "");

  env_.http.Answer(200, R"j({"incidents":[]})j");
  ASSERT_EQ(Run({"incidents", "--alarm", "Nginx-Down-ALB", "--host", "web 2", "--before",
                 "inc-9", "--limit", "2"}),
            0)
      << env_.err.str();
  EXPECT_EQ(env_.http.last().url,
            "http://127.0.0.1:8080/api/v1/incidents?alarm=Nginx-Down-ALB&host=web%202&before=inc-9"
            "&limit=2");
}

// A full page ends with the command for the next one, filters kept; a shorter page does not.
TEST_F(CliTest, IncidentsHintsAtTheNextPageWhenThePageIsFull) {
  env_.http.Answer(200, R"j({"incidents":[{"incident_id":"inc-3","status":"failed"},
      {"incident_id":"inc-2","status":"failed"}]})j");
  ASSERT_EQ(Run({"incidents", "--status", "failed", "--host", "web 1", "--limit", "2"}), 0)
      << env_.err.str();
  const std::string out = env_.out.str();
  EXPECT_NE(out.find("\nnext page: medic incidents --before inc-2 --status failed --host 'web 1' "
                     "--limit 2\n"),
            std::string::npos)
      << out;
  env_.out.str("");
  env_.http.Answer(200, R"j({"incidents":[{"incident_id":"inc-3","status":"failed"}]})j");
  ASSERT_EQ(Run({"incidents", "--limit", "2"}), 0) << env_.err.str();
  EXPECT_EQ(env_.out.str().find("next page"), std::string::npos) << env_.out.str();
}

TEST_F(CliTest, AlarmsSendsStateAndHostFiltersOnlyWhenGiven) {
  env_.http.Answer(200, R"j({"alarms":[],"rules":[]})j");
  ASSERT_EQ(Run({"alarms"}), 0) << env_.err.str();
  EXPECT_EQ(env_.http.last().url, "http://127.0.0.1:8080/api/v1/alarms");
  env_.http.Answer(200, R"j({"alarms":[],"rules":[]})j");
  ASSERT_EQ(Run({"alarms", "--state", "ALARM", "--host", "web-1"}), 0) << env_.err.str();
  EXPECT_EQ(env_.http.last().url, "http://127.0.0.1:8080/api/v1/alarms?state=ALARM&host=web-1");
  const size_t sent = env_.http.requests().size();
  EXPECT_NE(Run({"alarms", "--state", "FIRING"}), 0);
  EXPECT_EQ(env_.http.requests().size(), sent) << "a bad --state is a usage error";
}

// How an https:// server is verified: --ca-file / $MEDIC_CA_FILE, --pin / $MEDIC_PIN, checked
// before anything is sent.
TEST_F(CliTest, CaFileAndPinReachTheHttpClientAndBadOnesAreUsageErrors) {
  const std::string pin = "sha256//" + std::string(43, 'A') + "=";
  env_.http.Answer(200, R"j({"incidents":[]})j");
  ASSERT_EQ(Run({"--server", "https://medic.example:8443", "--pin", pin, "incidents"}), 0)
      << env_.err.str();
  ASSERT_TRUE(env_.server_tls.has_value());
  EXPECT_EQ(env_.server_tls->pin, pin);
  EXPECT_EQ(env_.server_tls->ca_file, "");

  env_.env["MEDIC_PIN"] = pin;
  env_.env["MEDIC_CA_FILE"] = "/proc/self/status";  // any readable file
  env_.http.Answer(200, R"j({"incidents":[]})j");
  ASSERT_EQ(Run({"incidents"}), 0) << env_.err.str();
  EXPECT_EQ(env_.server_tls->pin, pin);
  EXPECT_EQ(env_.server_tls->ca_file, "/proc/self/status");
  env_.env.erase("MEDIC_PIN");
  env_.env.erase("MEDIC_CA_FILE");

  const size_t sent = env_.http.requests().size();
  env_.err.str("");
  EXPECT_EQ(Run({"--ca-file", "/nonexistent/ca.pem", "incidents"}), 2);
  EXPECT_EQ(env_.err.str(), "medic: cannot read the CA file /nonexistent/ca.pem\n");
  for (const std::string& bad : std::vector<std::string>{
           "AAAA", "sha1//AAAA", "sha256//short=", "sha256//" + std::string(44, '*')}) {
    env_.err.str("");
    EXPECT_EQ(Run({"--pin", bad, "incidents"}), 2) << bad;
    EXPECT_NE(env_.err.str().find("--pin must be sha256//BASE64"), std::string::npos)
        << env_.err.str();
  }
  EXPECT_EQ(env_.http.requests().size(), sent) << "nothing is sent with a bad --ca-file or --pin";
}

TEST_F(CliTest, JsonFlagPrintsTheApiJsonBeforeOrAfterTheCommand) {
  const std::string body = R"j({"incidents":[{"incident_id":"inc-1"}]})j";
  for (const auto& args :
       std::vector<std::vector<std::string>>{{"--json", "incidents"}, {"incidents", "--json"}}) {
    env_.out.str("");
    env_.http.Answer(200, body);
    ASSERT_EQ(Run(args), 0) << env_.err.str();
    EXPECT_EQ(env_.out.str(), DumpJson(ParseJson(body).value(), 2) + "\n");
  }
}

TEST_F(CliTest, ServerAndTokenFromFlagsOverrideEnvironment) {
  env_.env["MEDIC_SERVER"] = "http://10.0.0.1:9000/";
  env_.http.Answer(200, R"j({"hosts":[]})j");
  ASSERT_EQ(Run({"hosts"}), 0);
  EXPECT_EQ(env_.http.last().url, "http://10.0.0.1:9000/api/v1/hosts");

  const std::string token_file = ::testing::TempDir() + "/cli_test_token";
  {
    std::ofstream f(token_file);
    f << "from-file\n";
  }
  env_.http.Answer(200, R"j({"hosts":[]})j");
  ASSERT_EQ(Run({"--server", "http://127.0.0.2:1234", "hosts", "--token-file", token_file}), 0)
      << env_.err.str();
  EXPECT_EQ(env_.http.last().url, "http://127.0.0.2:1234/api/v1/hosts");
  EXPECT_EQ(FakeHttpClient::Header(env_.http.last(), "Authorization"), "Bearer from-file");
  std::remove(token_file.c_str());
}

TEST_F(CliTest, ShowEncodesTheIdAndPrintsTheIncident) {
  env_.http.Answer(200, R"j({"incident_id":"a b/c","status":"rejected","timeline":[]})j");
  ASSERT_EQ(Run({"show", "a b/c"}), 0) << env_.err.str();
  EXPECT_EQ(env_.http.last().url, "http://127.0.0.1:8080/api/v1/incidents/a%20b%2Fc");
  EXPECT_NE(env_.out.str().find("Status:    rejected"), std::string::npos) << env_.out.str();
}

// inc-42 on web-1, pending approval of service.restart nginx with the given hash.
std::string PendingIncident(const std::string& hash) {
  return R"j({"incident_id":"inc-42","status":"pending_approval","instance_id":"web-1",)j"
         R"j("ai_suggestion":"service.restart service=nginx","action_hash":")j" +
         hash + R"j("})j";
}

TEST_F(CliTest, ApproveShowsAndApprovesTheCurrentProposalAndRejectPostsTheComment) {
  const std::string hash(64, 'a');
  const std::string pending = PendingIncident(hash);
  struct Case {
    std::vector<std::string> args;
    bool fetches;  // approve first fetches the incident
    std::string url;
    std::string body;
    std::string out;
  };
  const std::string shown = "approving inc-42 on web-1: service.restart service=nginx "
                            "(action_hash " + hash + ")\n";
  const Case cases[] = {
      {{"approve", "inc-42", "--comment", "go ahead", "--no-wait"},
       true,
       "http://127.0.0.1:8080/api/v1/incidents/inc-42/approve",
       R"j({"action_hash":")j" + hash + R"j(","comment":"go ahead"})j",
       shown + "approved inc-42: status executing\n"},
      {{"approve", "inc-42", "--no-wait"},
       true,
       "http://127.0.0.1:8080/api/v1/incidents/inc-42/approve",
       R"j({"action_hash":")j" + hash + R"j("})j",
       shown + "approved inc-42: status executing\n"},
      {{"reject", "inc-42", "--comment", "not now"},
       false,
       "http://127.0.0.1:8080/api/v1/incidents/inc-42/reject",
       R"j({"comment":"not now"})j",
       "rejected inc-42: status executing\n"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.url + " " + c.body);
    env_.out.str("");
    const size_t before = env_.http.requests().size();
    if (c.fetches) {
      env_.http.Answer(200, pending);
    }
    env_.http.Answer(200, R"j({"incident_id":"inc-42","status":"executing"})j");
    ASSERT_EQ(Run(c.args), 0) << env_.err.str();
    ASSERT_EQ(env_.http.requests().size(), before + (c.fetches ? 2 : 1));
    if (c.fetches) {
      const HttpRequest& get = env_.http.requests()[before];
      EXPECT_EQ(get.method, "GET");
      EXPECT_EQ(get.url, "http://127.0.0.1:8080/api/v1/incidents/inc-42");
    }
    const HttpRequest& r = env_.http.last();
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.url, c.url);
    EXPECT_EQ(r.body, c.body);
    EXPECT_EQ(FakeHttpClient::Header(r, "Content-Type"), "application/json");
    EXPECT_EQ(env_.out.str(), c.out);
  }
}

// Issue 19: approve waits for the fix by default (like chaos --host): the fix's output and its
// verification, exit 0 only when the incident ended completed.
TEST_F(CliTest, ApproveWaitsForTheFixAndItsVerification) {
  const std::string hash(64, 'b');
  const std::string pending = PendingIncident(hash);
  const std::string executing = R"j({"incident_id":"inc-42","status":"executing"})j";
  const std::string shown = "approving inc-42 on web-1: service.restart service=nginx "
                            "(action_hash " + hash + ")\napproved inc-42: status executing\n"
                            "waiting for the fix and its verification (--no-wait returns at "
                            "once)\n";

  env_.http.Answer(200, pending);
  env_.http.Answer(200, executing);
  env_.http.Answer(200, executing);
  env_.http.Answer(200, R"j({"incident_id":"inc-42","status":"completed",)j"
                        R"j("remediation_output":"restarted nginx (pid 77)",)j"
                        R"j("timeline":[{"event":"verified","detail":"alarm Nginx-Down-ALB is )j"
                        R"j(back to OK"},{"event":"completed","detail":""}]})j");
  ASSERT_EQ(Run({"approve", "inc-42"}), 0) << env_.err.str();
  EXPECT_EQ(env_.out.str(), shown + "restarted nginx (pid 77)\napprove inc-42: completed "
                                    "(verified: alarm Nginx-Down-ALB is back to OK)\n");
  EXPECT_EQ(env_.http.last().url, "http://127.0.0.1:8080/api/v1/incidents/inc-42");

  // The fix did not verify: exit 1 with the incident's reason.
  env_.out.str("");
  env_.http.Answer(200, pending);
  env_.http.Answer(200, executing);
  env_.http.Answer(200, R"j({"incident_id":"inc-42","status":"failed","remediation_output":"",)j"
                        R"j("reason":"the alarm is still in ALARM after the fix"})j");
  EXPECT_EQ(Run({"approve", "inc-42"}), 1);
  EXPECT_EQ(env_.out.str(), shown);
  EXPECT_EQ(env_.err.str(), "medic: approve inc-42: the incident ended failed: the alarm is "
                            "still in ALARM after the fix\n");

  // Nothing ends within --timeout: exit 1, saying where the incident is.
  env_.err.str("");
  const SteadyTime start = env_.clock.SteadyNow();
  env_.http.Answer(200, pending);
  env_.http.SetDefault(HttpResponse{200, executing, "application/json"});
  EXPECT_EQ(Run({"approve", "inc-42", "--timeout", "3s"}), 1);
  EXPECT_EQ(env_.err.str(), "medic: approve inc-42: the fix did not end within 3s (incident "
                            "inc-42 is executing; it may still end: medic show inc-42)\n");
  EXPECT_GE(env_.clock.SteadyNow() - start, Millis(3'000));
  EXPECT_LT(env_.clock.SteadyNow() - start, Millis(4'000));

  env_.err.str("");
  EXPECT_EQ(Run({"approve", "inc-42", "--timeout", "soon"}), 2);
  EXPECT_NE(env_.err.str().find("--timeout 'soon' is not a duration"), std::string::npos)
      << env_.err.str();
}

TEST_F(CliTest, ApproveRefusesAnIncidentWithNothingToApproveAndShowsAChangedProposal) {
  env_.http.Answer(200, R"j({"incident_id":"inc-7","status":"completed"})j");
  EXPECT_EQ(Run({"approve", "inc-7"}), 1);
  EXPECT_EQ(env_.err.str(),
            "medic: approve inc-7: the incident proposes no fix to approve (status completed)\n");
  EXPECT_EQ(env_.http.requests().size(), 1u);  // nothing was posted

  env_.err.str("");
  env_.http.Answer(200, R"j({"incident_id":"inc-8","status":"pending_approval",)j"
                        R"j("ai_suggestion":"x\u001b[31m","action_hash":"ab"})j");
  env_.http.Answer(409, R"j({"error":"the proposal of incident inc-8 changed"})j");
  EXPECT_EQ(Run({"approve", "inc-8"}), 1);
  EXPECT_EQ(env_.err.str(), "medic: approve inc-8: 409 the proposal of incident inc-8 changed\n");
  EXPECT_EQ(env_.out.str().find('\x1b'), std::string::npos) << env_.out.str();
}

TEST_F(CliTest, AuditListsTheNewestEntriesOneLineEach) {
  env_.http.Answer(200, R"j({"audit":[
      {"id":12,"timestamp":"2026-12-06T10:00:02.000Z","actor":"alice","action":"incident.approve",
       "detail":"{\"incident_id\":\"inc-1\"}","hash":"h2","prev_hash":"h1"},
      {"id":11,"timestamp":"2026-12-06T10:00:01.000Z","actor":"admin","action":"chaos",
       "detail":"web-1 nginx-crash\n\u001b[2Jforged line","hash":"h1","prev_hash":"h0"}]})j");
  ASSERT_EQ(Run({"audit", "--limit", "2"}), 0) << env_.err.str();
  EXPECT_EQ(env_.http.last().url, "http://127.0.0.1:8080/api/v1/audit?limit=2");
  EXPECT_EQ(env_.out.str(),
            "ID  TIME                      ACTOR  ACTION            DETAIL\n"
            "12  2026-12-06T10:00:02.000Z  alice  incident.approve  {\"incident_id\":\"inc-1\"}\n"
            "11  2026-12-06T10:00:01.000Z  admin  chaos             web-1 nginx-crash\\n\\x1b[2Jforged line\n");
  env_.out.str("");
  env_.http.Answer(200, R"j({"audit":[]})j");
  ASSERT_EQ(Run({"audit"}), 0);
  EXPECT_EQ(env_.http.last().url, "http://127.0.0.1:8080/api/v1/audit?limit=50");
  EXPECT_EQ(env_.out.str(), "the audit log is empty\n");
  EXPECT_EQ(Run({"audit", "--limit", "0"}), 2);
  EXPECT_EQ(Run({"audit", "--limit", "abc"}), 2);
}

TEST_F(CliTest, AuditVerifyExitsZeroWhenIntactAndOneNamingTheFirstBrokenEntry) {
  env_.http.Answer(200, R"j({"ok":true,"entries":12,"first_broken":null,"reason":"",)j"
                        R"j("head":"abc123"})j");
  EXPECT_EQ(Run({"audit", "verify"}), 0) << env_.err.str();
  EXPECT_EQ(env_.http.last().url, "http://127.0.0.1:8080/api/v1/audit/verify");
  EXPECT_EQ(env_.out.str(), "audit log intact: 12 entries, head abc123\n");

  env_.out.str("");
  env_.http.Answer(
      200,
      R"j({"ok":false,"entries":12,"reason":"entry 4 does not match its hash",)j"
      R"j("first_broken":{"id":4,"timestamp":"2026-12-01T10:00:00.000Z","actor":"alice",)j"
      R"j("action":"incident.approve","detail":"{}","prev_hash":"p","hash":"h"}})j");
  EXPECT_EQ(Run({"audit", "verify"}), 1);
  EXPECT_EQ(env_.out.str(), "");
  EXPECT_EQ(env_.err.str(),
            "medic: audit verify: the audit log is broken at entry 4 (2026-12-01T10:00:00.000Z "
            "alice incident.approve) of 12: entry 4 does not match its hash\n");

  env_.err.str("");
  env_.http.Answer(200, R"j({"ok":false,"entries":3,"reason":"r","first_broken":{"id":1}})j");
  EXPECT_EQ(Run({"--json", "audit", "verify"}), 1);
  EXPECT_NE(env_.out.str().find("\"ok\": false"), std::string::npos) << env_.out.str();
  EXPECT_EQ(Run({"audit", "verify", "extra"}), 2);
}

TEST_F(CliTest, ServerErrorIsOneLineWithTheServersMessage) {
  env_.http.Answer(404, R"j({"error":"incident inc-42 not found"})j");
  EXPECT_EQ(Run({"approve", "inc-42"}), 1);
  EXPECT_EQ(env_.err.str(), "medic: approve inc-42: 404 incident inc-42 not found\n");
  EXPECT_EQ(env_.out.str(), "");
}

TEST_F(CliTest, ServerErrorWithoutJsonUsesTheReasonPhrase) {
  env_.http.Answer(502, "<html>\nbad gateway\n</html>");
  EXPECT_EQ(Run({"hosts"}), 1);
  EXPECT_EQ(env_.err.str(), "medic: hosts: 502 bad gateway\n");
}

TEST_F(CliTest, UnreachableServer) {
  env_.http.AnswerError(Unavailable("connection refused"));
  EXPECT_EQ(Run({"incidents"}), 1);
  EXPECT_EQ(env_.err.str(), "medic: cannot reach http://127.0.0.1:8080: connection refused\n");

  env_.err.str("");
  env_.http.AnswerError(
      Unavailable("GET http://127.0.0.1:8080/api/v1/alarms: Couldn't connect to server"));
  EXPECT_EQ(Run({"alarms"}), 1);
  EXPECT_EQ(env_.err.str(),
            "medic: cannot reach http://127.0.0.1:8080: couldn't connect to server\n");

  // An acronym keeps its capitals, and curl's detail of a refused certificate reaches the user.
  env_.err.str("");
  env_.http.AnswerError(Unavailable(
      "GET http://127.0.0.1:8080/api/v1/hosts: SSL peer certificate or SSH remote key was not OK "
      "(SSL: no alternative certificate subject name matches target host name '10.0.0.1')"));
  EXPECT_EQ(Run({"hosts"}), 1);
  EXPECT_EQ(env_.err.str(),
            "medic: cannot reach http://127.0.0.1:8080: SSL peer certificate or SSH remote key "
            "was not OK (SSL: no alternative certificate subject name matches target host name "
            "'10.0.0.1')\n");
}

TEST_F(CliTest, NonJsonSuccessIsAnError) {
  env_.http.Answer(200, "not json");
  EXPECT_EQ(Run({"alarms"}), 1);
  EXPECT_EQ(env_.err.str().rfind("medic: alarms: the server's answer is not JSON", 0), 0u)
      << env_.err.str();
}

TEST_F(CliTest, MissingTokenIsAnErrorAndSendsNothing) {
  env_.env.clear();
  EXPECT_EQ(Run({"incidents"}), 1);
  EXPECT_EQ(env_.err.str(),
            "medic: no API token: pass --token-file FILE or set MEDIC_TOKEN (medic demo prints "
            "its token file)\n");
  EXPECT_TRUE(env_.http.requests().empty());

  env_.err.str("");
  EXPECT_EQ(Run({"incidents", "--token-file", "/nonexistent/medic/token"}), 1);
  EXPECT_EQ(env_.err.str().rfind("medic: cannot read token file: ", 0), 0u) << env_.err.str();
}

TEST_F(CliTest, BadServerUrl) {
  EXPECT_EQ(Run({"--server", "127.0.0.1:8080", "hosts"}), 2);  // a bad value: a usage error
  EXPECT_EQ(env_.err.str(), "medic: --server '127.0.0.1:8080' is not an http:// or https:// URL\n");
}

TEST_F(CliTest, UsageErrorsExitTwoWithOneLine) {
  const std::vector<std::vector<std::string>> cases = {
      {},
      {"frobnicate"},
      {"incidents", "--bogus"},
      {"incidents", "--status", "sleeping"},
      {"incidents", "--limit", "zero"},
      {"show"},
      {"approve"},
      {"report", "inc-1", "--format", "pdf"},
      {"token", "create", "ci"},
      {"chaos"},
      {"chaos", "nginx-crash", "--host", "web-1", "--pidfile", "/x"},
      {"demo", "--hosts", "0"},
      {"settings", "extra"},
      {"pause", "now"},
      {"resume", "--bogus"},
      {"pause", "--json", "resume"},
      {"token", "lsit"},
      {"hosts", "frob"},
      {"incidents", "--limit", "abc"},
      {"audit", "--limit", "5000"},
      {"chaos", "meteor", "--host", "web-1"},
      {"chaos", "oom", "--path", "/var/log"},
      {"chaos", "nginx-crash", "--host", "web-1", "--percent", "50"},
      {"chaos", "oom", "--percent", "abc"},
      {"chaos", "oom", "--no-wait"},
      {"chaos", "oom", "--host", "web-1", "--timeout", "soon"},
      {"chaos", "disk-fill", "percent=50"},
      {"--server", "ftp://x", "hosts"},
  };
  for (const auto& args : cases) {
    std::string joined;
    for (const auto& a : args) {
      joined += a + " ";
    }
    SCOPED_TRACE(joined);
    env_.err.str("");
    EXPECT_EQ(Run(args), 2);
    const std::string err = env_.err.str();
    EXPECT_EQ(err.rfind("medic: ", 0), 0u) << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  }
  EXPECT_TRUE(env_.http.requests().empty());
}

TEST_F(CliTest, HelpExitsZero) {
  EXPECT_EQ(Run({"--help"}), 0);
  EXPECT_NE(env_.out.str().find("incidents"), std::string::npos);
  env_.out.str("");
  EXPECT_EQ(Run({"approve", "--help"}), 0);
  EXPECT_NE(env_.out.str().find("--comment"), std::string::npos) << env_.out.str();
}

TEST_F(CliTest, ReportPrintsTheBodyVerbatim) {
  env_.http.Answer(200, "# Incident inc-1\n\nresolved");
  ASSERT_EQ(Run({"report", "inc-1", "--format", "html"}), 0) << env_.err.str();
  EXPECT_EQ(env_.http.last().url,
            "http://127.0.0.1:8080/api/v1/incidents/inc-1/report?format=html");
  EXPECT_EQ(env_.out.str(), "# Incident inc-1\n\nresolved\n");
}

TEST_F(CliTest, ServerTextReachesTheTerminalWithoutEscapeSequences) {
  env_.http.Answer(200, "# report\n\x1b[2J\x1b]0;pwned\x07" "done\n");
  ASSERT_EQ(Run({"report", "inc-1"}), 0) << env_.err.str();
  EXPECT_EQ(env_.out.str(), "# report\n\\x1b[2J\\x1b]0;pwned\\x07done\n");
  env_.http.Answer(404, "{\"error\":\"host 'a\\u001b[2Jb' not found\"}");
  EXPECT_EQ(Run({"hosts", "remove", "a"}), 1);
  EXPECT_EQ(env_.err.str().find('\x1b'), std::string::npos) << env_.err.str();
  EXPECT_NE(env_.err.str().find("a\\x1b[2Jb"), std::string::npos) << env_.err.str();
}

TEST_F(CliTest, TokenCreateAndRevoke) {
  env_.http.Answer(200, R"j({"token":"secret-1"})j");
  ASSERT_EQ(Run({"token", "create", "ci", "--role", "operator"}), 0) << env_.err.str();
  EXPECT_EQ(env_.http.last().method, "POST");
  EXPECT_EQ(env_.http.last().url, "http://127.0.0.1:8080/api/v1/tokens");
  EXPECT_EQ(ParseJson(env_.http.last().body).value(), Json({{"name", "ci"}, {"role", "operator"}}));
  EXPECT_EQ(env_.out.str(), "secret-1\n");
  EXPECT_EQ(env_.err.str(),
            "medic: the token of ci is shown this once (the server keeps only its hash): store "
            "it now\n");

  env_.out.str("");
  env_.http.Answer(200, "{}");
  ASSERT_EQ(Run({"token", "revoke", "ci"}), 0) << env_.err.str();
  EXPECT_EQ(env_.http.last().method, "DELETE");
  EXPECT_EQ(env_.http.last().url, "http://127.0.0.1:8080/api/v1/tokens/ci");
  EXPECT_EQ(env_.out.str(), "revoked token ci\n");
}

// Issue 19: --close-incidents asks the server to close the host's open incidents and prints
// each; without it the server's 409 is the error.
TEST_F(CliTest, HostsRemoveCloseIncidentsAsksAndPrintsWhatItClosed) {
  env_.http.Answer(409, R"j({"error":"host 'web-2' has open incidents (inc-1): close them with close_incidents=true (medic hosts remove web-2 --close-incidents), or decide them first","open_incidents":["inc-1"]})j");
  EXPECT_EQ(Run({"hosts", "remove", "web-2"}), 1);
  EXPECT_EQ(env_.http.last().url, "http://127.0.0.1:8080/api/v1/hosts/web-2");
  EXPECT_NE(env_.err.str().find("409 host 'web-2' has open incidents (inc-1)"), std::string::npos)
      << env_.err.str();

  env_.out.str("");
  env_.http.Answer(200, R"j({"removed":"web-2","closed_incidents":["inc-1","inc-7"]})j");
  ASSERT_EQ(Run({"hosts", "remove", "web-2", "--close-incidents"}), 0) << env_.err.str();
  EXPECT_EQ(env_.http.last().method, "DELETE");
  EXPECT_EQ(env_.http.last().url,
            "http://127.0.0.1:8080/api/v1/hosts/web-2?close_incidents=true");
  EXPECT_EQ(env_.out.str(),
            "removed host web-2\nclosed incident inc-1 (host removed)\n"
            "closed incident inc-7 (host removed)\n");
}

TEST_F(CliTest, HostsRemoveSendsDeleteAndHostsStillLists) {
  env_.http.Answer(200, R"j({"removed":"web-2"})j");
  ASSERT_EQ(Run({"hosts", "remove", "web-2"}), 0) << env_.err.str();
  EXPECT_EQ(env_.http.last().method, "DELETE");
  EXPECT_EQ(env_.http.last().url, "http://127.0.0.1:8080/api/v1/hosts/web-2");
  EXPECT_EQ(env_.out.str(), "removed host web-2\n");

  env_.http.Answer(404, R"j({"error":"host 'web-9' not found"})j");
  EXPECT_EQ(Run({"hosts", "remove", "web-9"}), 1);
  EXPECT_NE(env_.err.str().find("host 'web-9' not found"), std::string::npos) << env_.err.str();

  EXPECT_NE(Run({"hosts", "remove"}), 0) << "the name is required";
  env_.http.Answer(200, R"j({"hosts":[]})j");
  ASSERT_EQ(Run({"hosts"}), 0) << env_.err.str();
  EXPECT_EQ(env_.http.last().method, "GET");
}

TEST_F(CliTest, RemoteChaosPostsToTheServer) {
  env_.http.Answer(202, R"j({"command_id":"cmd-9"})j");
  ASSERT_EQ(
      Run({"chaos", "disk-fill", "--host", "web-2", "percent=90", "path=/tmp/x", "--no-wait"}), 0)
      << env_.err.str();
  const HttpRequest& r = env_.http.last();
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.url, "http://127.0.0.1:8080/api/v1/chaos");
  EXPECT_EQ(
      ParseJson(r.body).value(),
      ParseJson(R"j({"host":"web-2","mode":"disk-fill","params":{"percent":90,"path":"/tmp/x"}})j")
          .value());
  EXPECT_EQ(env_.out.str(), "chaos disk-fill sent to web-2: command cmd-9\n");
}

TEST_F(CliTest, ChaosUnknownModeListsTheValidOnes) {
  EXPECT_EQ(Run({"chaos", "meteor", "--host", "web-1"}), 2);
  EXPECT_EQ(env_.err.str(),
            "medic: chaos: unknown mode 'meteor' (valid: disk-fill, oom, nginx-crash, stop) (see "
            "medic --help)\n");
  EXPECT_TRUE(env_.http.requests().empty());
}

// What a usage error says: the unknown command and the commands of its level; a word where a
// number belongs is "not a number", not "not in range".
TEST_F(CliTest, UsageErrorsNameWhatIsWrong) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"frobnicate"},
       "medic: unknown command 'frobnicate' (commands: incidents, show, approve, reject, undo, report, "
       "hosts, alarms, audit, token, settings, pause, resume, autonomy, stats, chaos, healthapp, "
       "demo, mcp, ai) "
       "(see medic --help)\n"},
      {{"--server", "http://x", "--json", "frobnicate"},
       "medic: unknown command 'frobnicate' (commands: incidents, show, approve, reject, undo, report, "
       "hosts, alarms, audit, token, settings, pause, resume, autonomy, stats, chaos, healthapp, "
       "demo, mcp, ai) "
       "(see medic --help)\n"},
      {{"token", "lsit"},
       "medic: unknown command 'token lsit' (commands of token: create, list, revoke) (see medic "
       "--help)\n"},
      {{"token"},
       "medic: missing command (commands of token: create, list, revoke) (see medic --help)\n"},
      {{"incidents", "--limit", "abc"},
       "medic: --limit: 'abc' is not a number (see medic --help)\n"},
      {{"incidents", "--limit", "5000"},
       "medic: --limit: 5000 is not from 1 to 1000 (see medic --help)\n"},
      {{"chaos", "oom", "--path", "/var/log"},
       "medic: chaos oom: --path applies to disk-fill only (see medic --help)\n"},
  };
  for (const auto& [args, want] : cases) {
    SCOPED_TRACE(args[0]);
    env_.err.str("");
    EXPECT_EQ(Run(args), 2);
    EXPECT_EQ(env_.err.str(), want);
  }
  EXPECT_TRUE(env_.http.requests().empty());
}

// `medic chaos MODE --host H` follows the command to the host's answer: it prints the agent's
// output and exits 0 only when the command succeeded.
TEST_F(CliTest, RemoteChaosWaitsForTheHostsResult) {
  env_.http.Answer(202, R"j({"command_id":"cmd-9","host":"web-2"})j");
  env_.http.Answer(200, R"j({"command_id":"cmd-9","host":"web-2","state":"queued"})j");
  env_.http.Answer(200, R"j({"command_id":"cmd-9","host":"web-2","state":"delivered"})j");
  env_.http.Answer(200, R"j({"command_id":"cmd-9","host":"web-2","state":"succeeded",
      "result":{"ran":true,"exit_code":0,"output":"disk-fill: 95.0% used\n","error":""}})j");
  ASSERT_EQ(Run({"chaos", "disk-fill", "--host", "web-2", "--percent", "95"}), 0)
      << env_.err.str();
  ASSERT_EQ(env_.http.requests().size(), 4u);
  EXPECT_EQ(env_.http.requests()[1].method, "GET");
  EXPECT_EQ(env_.http.requests()[1].url, "http://127.0.0.1:8080/api/v1/commands/cmd-9");
  EXPECT_EQ(env_.slept.size(), 2u);
  EXPECT_EQ(env_.out.str(),
            "chaos disk-fill sent to web-2: command cmd-9, waiting for the result\n"
            "disk-fill: 95.0% used\n"
            "chaos disk-fill on web-2: succeeded\n");
  EXPECT_EQ(env_.err.str(), "");
}

TEST_F(CliTest, RemoteChaosExitsNonZeroWithTheAgentsReason) {
  struct Case {
    std::string command;  // GET /api/v1/commands/cmd-9's answer
    std::string err;
  };
  const std::vector<Case> cases = {
      {R"j({"host":"web-2","state":"refused","result":{"ran":false,"exit_code":-1,"output":"",
           "error":"refused by local policy: chaos is not allowed on this host"}})j",
       "medic: chaos oom on web-2: web-2 refused it: refused by local policy: chaos is not "
       "allowed on this host\n"},
      {R"j({"host":"web-2","state":"failed","result":{"ran":true,"exit_code":3,
           "output":"half done\n","error":""}})j",
       "medic: chaos oom on web-2: failed on web-2 (exit 3)\n"},
      {R"j({"host":"web-2","state":"failed","result":{"ran":true,"exit_code":-1,"signal":9,
           "output":"","error":""}})j",
       "medic: chaos oom on web-2: failed on web-2 (killed by signal 9)\n"},
      {R"j({"host":"web-2","state":"expired"})j",
       "medic: chaos oom on web-2: command cmd-9 expired before web-2 answered (is its agent "
       "running and polling?)\n"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.command);
    env_.err.str("");
    env_.http.Answer(202, R"j({"command_id":"cmd-9"})j");
    env_.http.Answer(200, c.command);
    EXPECT_EQ(Run({"chaos", "oom", "--host", "web-2"}), 1);
    EXPECT_EQ(env_.err.str(), c.err);
  }
  EXPECT_NE(env_.out.str().find("half done\n"), std::string::npos) << env_.out.str();
}

TEST_F(CliTest, RemoteChaosGivesUpWaitingAfterItsTimeoutOrAtOnceWithNoWait) {
  env_.http.Answer(202, R"j({"command_id":"cmd-9"})j");
  env_.http.SetDefault(HttpResponse{200, R"j({"host":"web-2","state":"delivered"})j",
                                    "application/json"});
  EXPECT_EQ(Run({"chaos", "nginx-crash", "--host", "web-2", "--timeout", "5s"}), 1);
  EXPECT_EQ(env_.err.str(),
            "medic: chaos nginx-crash on web-2: no result within 5s (command cmd-9 is "
            "delivered; it may still run: GET /api/v1/commands/cmd-9)\n");
  Millis waited{0};
  for (Millis d : env_.slept) {
    waited += d;
  }
  EXPECT_GE(waited, Millis(5'000));
  EXPECT_LT(waited, Millis(6'000));

  const size_t before = env_.http.requests().size();
  env_.out.str("");
  env_.http.Answer(202, R"j({"command_id":"cmd-10"})j");
  ASSERT_EQ(Run({"chaos", "nginx-crash", "--host", "web-2", "--no-wait"}), 0) << env_.err.str();
  EXPECT_EQ(env_.http.requests().size(), before + 1) << "--no-wait looked at the command";
  EXPECT_EQ(env_.out.str(), "chaos nginx-crash sent to web-2: command cmd-10\n");
}

TEST_F(CliTest, TokenListPrintsNamesAndRoles) {
  env_.http.Answer(200, R"j({"tokens":[{"name":"admin","role":"admin",
      "created_at":"2026-12-01T10:00:00.000Z","created_by":""},{"name":"ci","role":"operator",
      "created_at":"2026-12-02T10:00:00.000Z","created_by":"admin"}]})j");
  ASSERT_EQ(Run({"token", "list"}), 0) << env_.err.str();
  EXPECT_EQ(env_.http.last().method, "GET");
  EXPECT_EQ(env_.http.last().url, "http://127.0.0.1:8080/api/v1/tokens");
  EXPECT_EQ(env_.out.str(),
            "NAME   ROLE      CREATED                   BY\n"
            "admin  admin     2026-12-01T10:00:00.000Z\n"
            "ci     operator  2026-12-02T10:00:00.000Z  admin\n");
}

TEST_F(CliTest, LocalChaosStopUsesTheStateFile) {
  env_.env["MEDIC_CHAOS_STATE"] = "/tmp/x/chaos.json";
  ASSERT_EQ(Run({"chaos", "stop"}), 0) << env_.err.str();
  ASSERT_TRUE(env_.local_chaos.has_value());
  EXPECT_EQ(env_.local_chaos->mode, "stop");
  EXPECT_EQ(env_.local_chaos->state_file, "/tmp/x/chaos.json");
  EXPECT_TRUE(env_.http.requests().empty());
}

TEST_F(CliTest, LocalChaosPassesItsOptions) {
  ASSERT_EQ(Run({"chaos", "oom", "--percent", "80", "--duration", "2m", "--state-file", "/s"}), 0)
      << env_.err.str();
  ASSERT_TRUE(env_.local_chaos.has_value());
  EXPECT_EQ(env_.local_chaos->mode, "oom");
  EXPECT_EQ(env_.local_chaos->percent, 80);
  EXPECT_EQ(env_.local_chaos->duration, "2m");
  EXPECT_EQ(env_.local_chaos->state_file, "/s");
  EXPECT_TRUE(env_.signalled.empty());

  env_.local_chaos_status = ResourceExhausted("needs more than the cap");
  EXPECT_EQ(Run({"chaos", "disk-fill", "--path", "/mnt/x"}), 1);
  EXPECT_EQ(env_.local_chaos->path, "/mnt/x");
  EXPECT_FALSE(env_.local_chaos->percent.has_value());
  EXPECT_NE(env_.err.str().find("medic: chaos disk-fill: needs more than the cap"),
            std::string::npos)
      << env_.err.str();
  EXPECT_EQ(Run({"chaos", "oom", "--percent", "100"}), 2);  // 1..99
}

TEST_F(CliTest, RemoteChaosTakesTheFlagsAsParams) {
  env_.http.Answer(200, R"({"command_id":"cmd-9"})");
  ASSERT_EQ(Run({"chaos", "oom", "--host", "web-2", "--percent", "90", "--duration", "60s",
                 "--no-wait"}),
            0)
      << env_.err.str();
  const Json body = ParseJson(env_.http.last().body).value();
  EXPECT_EQ(body["params"]["percent"], 90);
  EXPECT_EQ(body["params"]["duration"], "60s");
  EXPECT_FALSE(env_.local_chaos.has_value());
}

TEST_F(CliTest, LocalNginxCrashWithoutPidfileFailsCleanly) {
  EXPECT_EQ(Run({"chaos", "nginx-crash", "--pidfile", "/nonexistent/nginx.pid"}), 1);
  const std::string err = env_.err.str();
  EXPECT_EQ(
      err.rfind("medic: chaos nginx-crash: cannot read nginx pidfile /nonexistent/nginx.pid", 0),
      0u)
      << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1);
  EXPECT_TRUE(env_.signalled.empty());
  EXPECT_TRUE(env_.http.requests().empty());
}

TEST_F(CliTest, HealthAppAndDemoAreDispatchedWithTheirOptions) {
  ASSERT_EQ(Run({"healthapp", "--listen", "127.0.0.1:0"}), 0);
  EXPECT_EQ(env_.healthapp_listen, "127.0.0.1:0");

  ASSERT_EQ(
      Run({"demo", "--listen", "127.0.0.1:9090", "--data-dir", "/tmp/d", "--hosts", "2", "--auto"}),
      0);
  ASSERT_TRUE(env_.demo_options.has_value());
  EXPECT_EQ(env_.demo_options->listen, "127.0.0.1:9090");
  EXPECT_EQ(env_.demo_options->data_dir, "/tmp/d");
  EXPECT_EQ(env_.demo_options->hosts, 2);
  EXPECT_TRUE(env_.demo_options->auto_approve);

  EXPECT_EQ(env_.demo_options->scenario, "");
  EXPECT_FALSE(env_.demo_options->json);

  ASSERT_EQ(Run({"demo", "--scenario", "all", "--auto", "--json"}), 0);
  EXPECT_EQ(env_.demo_options->scenario, "all");
  EXPECT_TRUE(env_.demo_options->json);
  ASSERT_EQ(Run({"--json", "demo", "--scenario", "oom"}), 0);
  EXPECT_EQ(env_.demo_options->scenario, "oom");
  EXPECT_TRUE(env_.demo_options->json);

  ASSERT_EQ(Run({"demo"}), 0);
  EXPECT_EQ(env_.demo_options->listen, "127.0.0.1:8080");
  EXPECT_EQ(env_.demo_options->data_dir, "medic-demo");
  EXPECT_EQ(env_.demo_options->hosts, 2);
  EXPECT_FALSE(env_.demo_options->auto_approve);
  EXPECT_TRUE(env_.http.requests().empty());
}

TEST_F(CliTest, DemoRefusesAnUnknownScenarioNamingTheChoices) {
  for (const std::string bad : {"bogus", "", "Nginx-Crash"}) {
    SCOPED_TRACE(bad);
    env_.err.str("");
    env_.demo_options.reset();
    EXPECT_EQ(Run({"demo", "--scenario", bad}), 2);
    EXPECT_EQ(env_.err.str(), "medic: demo --scenario: unknown scenario '" + bad +
                                  "' (valid: all, nginx-crash, disk-fill, oom)\n");
    EXPECT_FALSE(env_.demo_options.has_value()) << "nothing started";
  }
}

TEST_F(CliTest, SettingsPrintsOneSettingALineInBothStates) {
  struct Case {
    std::string body;
    std::string out;
  };
  const Case cases[] = {
      {R"j({"approval_mode":true,"automation_paused":false})j",
       "approval_mode      on\n"
       "automation_paused  off\n"},
      {R"j({"approval_mode":false,"automation_paused":true})j",
       "approval_mode      off\n"
       "automation_paused  on\n"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.body);
    env_.out.str("");
    env_.http.Answer(200, c.body);
    ASSERT_EQ(Run({"settings"}), 0) << env_.err.str();
    const HttpRequest& r = env_.http.last();
    EXPECT_EQ(r.method, "GET");
    EXPECT_EQ(r.url, "http://127.0.0.1:8080/api/v1/settings");
    EXPECT_EQ(r.body, "");
    EXPECT_EQ(FakeHttpClient::Header(r, "Authorization"), "Bearer tok-123");
    EXPECT_EQ(env_.out.str(), c.out);
    EXPECT_EQ(env_.err.str(), "");
  }
}

TEST_F(CliTest, PauseAndResumePutTheKillSwitchAndPrintTheServersState) {
  struct Case {
    std::string command;
    std::string sent;
    std::string answer;
    std::string out;
  };
  const Case cases[] = {
      {"pause", R"j({"automation_paused":true})j",
       R"j({"approval_mode":true,"automation_paused":true})j",
       "automation paused: no fix runs on its own; incidents still open and wait for approval\n"},
      {"resume", R"j({"automation_paused":false})j",
       R"j({"approval_mode":true,"automation_paused":false})j",
       "automation resumed (approval mode on: fixes still wait for approval unless their runbook "
       "says otherwise)\n"},
      {"resume", R"j({"automation_paused":false})j",
       R"j({"approval_mode":false,"automation_paused":false})j",
       "automation resumed (approval mode off: fixes run on their own unless their runbook or "
       "action needs approval)\n"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.command + " " + c.answer);
    env_.out.str("");
    const size_t sent_before = env_.http.requests().size();
    env_.http.Answer(200, c.answer);
    ASSERT_EQ(Run({c.command}), 0) << env_.err.str();
    ASSERT_EQ(env_.http.requests().size(), sent_before + 1);
    const HttpRequest& r = env_.http.last();
    EXPECT_EQ(r.method, "PUT");
    EXPECT_EQ(r.url, "http://127.0.0.1:8080/api/v1/settings");
    EXPECT_EQ(r.body, c.sent);
    EXPECT_EQ(FakeHttpClient::Header(r, "Authorization"), "Bearer tok-123");
    EXPECT_EQ(FakeHttpClient::Header(r, "Content-Type"), "application/json");
    EXPECT_EQ(env_.out.str(), c.out);
    EXPECT_EQ(env_.err.str(), "");
  }
}

TEST_F(CliTest, SettingsPauseAndResumeJsonPrintTheServersAnswer) {
  struct Case {
    std::vector<std::string> args;
    std::string answer;
  };
  const Case cases[] = {
      {{"settings", "--json"}, R"j({"approval_mode":true,"automation_paused":false})j"},
      {{"--json", "settings"}, R"j({"approval_mode":false,"automation_paused":true})j"},
      {{"pause", "--json"}, R"j({"approval_mode":true,"automation_paused":true})j"},
      {{"--json", "resume"}, R"j({"approval_mode":false,"automation_paused":false})j"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.args[0] + " " + c.args[1]);
    env_.out.str("");
    env_.http.Answer(200, c.answer);
    ASSERT_EQ(Run(c.args), 0) << env_.err.str();
    EXPECT_EQ(env_.out.str(), DumpJson(ParseJson(c.answer).value(), 2) + "\n");
  }
}

TEST_F(CliTest, PauseWithoutAdminRoleIsTheServers403OnOneLine) {
  const std::string forbidden =
      R"j({"error":"viewer 'vera' may not PUT /api/v1/settings (needs admin)"})j";
  for (const std::string command : {"pause", "resume"}) {
    SCOPED_TRACE(command);
    env_.err.str("");
    env_.http.Answer(403, forbidden);
    EXPECT_EQ(Run({command}), 1);
    EXPECT_EQ(
        env_.err.str(),
        "medic: " + command + ": 403 viewer 'vera' may not PUT /api/v1/settings (needs admin)\n");
    EXPECT_EQ(env_.out.str(), "");
  }
}

TEST_F(CliTest, SettingsPauseAndResumeWithTheServerDown) {
  for (const std::string command : {"settings", "pause", "resume"}) {
    SCOPED_TRACE(command);
    env_.err.str("");
    const std::string method = command == "settings" ? "GET" : "PUT";
    env_.http.AnswerError(
        Unavailable(method + " http://127.0.0.1:8080/api/v1/settings: Couldn't connect to server"));
    EXPECT_EQ(Run({command}), 1);
    EXPECT_EQ(env_.err.str(),
              "medic: cannot reach http://127.0.0.1:8080: couldn't connect to server\n");
    EXPECT_EQ(env_.out.str(), "");
  }
}

TEST_F(CliTest, PauseFailsWhenTheServerAnswersAnotherState) {
  struct Case {
    std::string command;
    std::string answer;
    std::string err;
  };
  const Case cases[] = {
      {"pause", R"j({"approval_mode":true,"automation_paused":false})j",
       "medic: pause: the server answered automation_paused false, not true\n"},
      {"resume", R"j({"approval_mode":true,"automation_paused":true})j",
       "medic: resume: the server answered automation_paused true, not false\n"},
      {"pause", R"j({"approval_mode":true})j",
       "medic: pause: unexpected answer from the server: no boolean \"automation_paused\"\n"},
      {"settings", R"j(["approval_mode"])j",
       "medic: settings: unexpected answer from the server: not a JSON object\n"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.command + " " + c.answer);
    env_.err.str("");
    env_.http.Answer(200, c.answer);
    EXPECT_EQ(Run({c.command}), 1);
    EXPECT_EQ(env_.err.str(), c.err);
    EXPECT_EQ(env_.out.str(), "");
  }
}

TEST(ParseChaosParamsTest, TypesAndErrors) {
  EXPECT_EQ(ParseChaosParams({"a=1", "b=2.5", "c=true", "d=x y", "e="}).value(),
            ParseJson(R"j({"a":1,"b":2.5,"c":true,"d":"x y","e":""})j").value());
  EXPECT_FALSE(ParseChaosParams({"novalue"}).has_value());
  EXPECT_FALSE(ParseChaosParams({"=1"}).has_value());
}

// `medic mcp`: messages from standard input, protocol alone on standard output (one JSON text a
// line), the log on standard error; --allow-approve asks the server for the token's role.
TEST_F(CliTest, McpSpeaksOnlyProtocolOnStandardOutput) {
  const std::string session =
      R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25",)"
      R"("capabilities":{},"clientInfo":{"name":"t","version":"1"}}})"
      "\n"
      R"({"jsonrpc":"2.0","method":"notifications/initialized"})"
      "\n"
      R"({"jsonrpc":"2.0","id":2,"method":"tools/list"})"
      "\n";
  auto tools_listed = [this]() -> size_t {
    std::istringstream lines(env_.out.str());
    std::vector<Json> answers;
    for (std::string line; std::getline(lines, line);) {
      Result<Json> j = ParseJson(line);
      EXPECT_TRUE(j.has_value()) << "not a message on stdout: " << line;
      answers.push_back(j.value_or(Json()));
    }
    EXPECT_EQ(answers.size(), 2u) << env_.out.str();
    if (answers.size() != 2 || !answers[1].contains("result")) {
      return 0;
    }
    EXPECT_EQ(answers[0]["result"]["serverInfo"]["name"], "medic");
    return answers[1]["result"]["tools"].size();
  };
  env_.in.str(session);
  ASSERT_EQ(Run({"mcp"}), 0) << env_.err.str();
  EXPECT_EQ(tools_listed(), 6u);
  EXPECT_NE(env_.err.str().find("medic mcp: serving MCP"), std::string::npos) << env_.err.str();
  EXPECT_TRUE(env_.http.requests().empty());

  env_.out.str("");
  env_.in.clear();
  env_.in.str(session);
  env_.http.Answer(200, R"({"name":"ops","role":"operator"})");
  ASSERT_EQ(Run({"mcp", "--allow-approve"}), 0) << env_.err.str();
  EXPECT_EQ(tools_listed(), 8u);
  ASSERT_EQ(env_.http.requests().size(), 1u);
  EXPECT_EQ(env_.http.last().url, "http://127.0.0.1:8080/api/v1/session");

  env_.env.erase("MEDIC_TOKEN");
  env_.out.str("");
  EXPECT_EQ(Run({"mcp"}), 1);
  EXPECT_EQ(env_.out.str(), "");
}

}  // namespace
}  // namespace medic::cli
