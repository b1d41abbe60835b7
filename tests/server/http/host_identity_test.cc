// Every host its own identity, over real HTTP on loopback (docs/PROTOCOL.md, "Enrolment"): the
// acceptance matrix of issue 11. Host A's credential acting as host B is refused on every agent
// route, and works as A; the bootstrap token enrols and does nothing else; a revoked host is cut
// off at once (a parked long poll too); an enrolment code works once and not after it expires;
// a host that asked with the bootstrap token waits until an admin approves it.

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <set>
#include <string>
#include <vector>

#include "core/files.h"
#include "protocol/wire.h"
#include "tests/server/server_fixture.h"
#include "transport/http_client.h"

namespace medic::server {
namespace {

class HostIdentityTest : public test::ServerFixture {
 protected:
  const Clock& ServerClock() const override { return manual_; }
  // Chaos (a stop queues a command) is the server's to allow.
  void Configure(server::ServerConfig& config) override {
    config.hosts.defaults.chaos_allowed = true;
  }
  void SetUp() override {
    StartServer();
    a_ = Enroll("host-a");
    b_ = Enroll("host-b");
    for (const auto& [name, cred] : {std::pair{"host-a", a_}, std::pair{"host-b", b_}}) {
      protocol::RegisterRequest reg;
      reg.name = name;
      reg.chaos_allowed = true;
      ASSERT_EQ(Call("POST", "/agent/v1/register", cred, DumpJson(protocol::ToJson(reg))).status,
                200);
    }
  }

  Json JsonOf(const HttpResponse& r) { return ParseJson(r.body).value_or(Json()); }
  int asked_ = 0;

  // A command queued for `host` (a chaos stop, through the operator API); its id.
  std::string QueueCommand(const std::string& host) {
    HttpResponse r = Call("POST", "/api/v1/chaos", admin_,
                          DumpJson(Json{{"host", host}, {"mode", "stop"}}));
    EXPECT_EQ(r.status, 202) << r.body;
    return JsonOf(r).value("command_id", "");
  }
  // An archive upload started by `host` (asked to archive the file first); its id.
  std::string StartUpload(const std::string& host, const std::string& cred) {
    protocol::Command ask;
    ask.id = "cmd-archive-" + host + "-" + std::to_string(++asked_);
    ask.action = "log.archive_truncate";
    ask.params = Json{{"path", "/var/log/big.log"}};
    ask.expires_at = manual_.Now() + std::chrono::minutes(1);
    app_->commands().Send(host, ask);
    // The agent takes it off its queue (delivered, not answered): later polls see the rest.
    HttpResponse polled =
        Call("GET", "/agent/v1/commands?host=" + host + "&wait_ms=0", cred);
    EXPECT_NE(polled.body.find(ask.id), std::string::npos) << polled.body;
    HttpResponse r =
        Call("POST", "/agent/v1/archive", cred,
             DumpJson(Json{{"host", host}, {"path", "/var/log/big.log"}, {"size", 5}}));
    EXPECT_EQ(r.status, 200) << r.body;
    return JsonOf(r).value("upload_id", "");
  }
  std::string Result(const std::string& id, const std::string& host) {
    protocol::CommandResult r;
    r.id = id;
    r.host = host;
    r.ran = true;
    r.exit_code = 0;
    return DumpJson(protocol::ToJson(r));
  }
  std::string Report(const std::string& host) {
    protocol::Report rep;
    rep.host = host;
    rep.samples.push_back({manual_.Now(), {{"disk_used_percent", 40}}});
    return DumpJson(protocol::ToJson(rep));
  }
  std::string Register(const std::string& host) {
    protocol::RegisterRequest reg;
    reg.name = host;
    return DumpJson(protocol::ToJson(reg));
  }
  HttpResponse Enrol(const Json& body, const std::string& token = "") {
    return Call("POST", "/agent/v1/enroll", token, DumpJson(body));
  }
  static std::string Key(char c) { return std::string(64, c); }

  ManualClock manual_;
  std::string a_, b_;
};

const char kFinishHello[] =
    R"({"sha256":"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824","bytes":5})";

TEST_F(HostIdentityTest, HostACannotActAsHostBOnAnyAgentRouteAndCanAsItself) {
  const std::string b_upload = StartUpload("host-b", b_);  // first: it polls B's queue
  const std::string b_command = QueueCommand("host-b");
  const std::string a_command = QueueCommand("host-a");
  ASSERT_FALSE(b_upload.empty());
  struct Cell {
    std::string what, method, path, body;
  };
  const std::vector<Cell> as_b = {
      {"register as B", "POST", "/agent/v1/register", Register("host-b")},
      {"report as B", "POST", "/agent/v1/report", Report("host-b")},
      {"poll B's queue", "GET", "/agent/v1/commands?host=host-b&wait_ms=0", ""},
      {"result as B", "POST", "/agent/v1/results", Result(b_command, "host-b")},
      {"result for B's command", "POST", "/agent/v1/results", Result(b_command, "host-a")},
      {"archive start as B", "POST", "/agent/v1/archive",
       DumpJson(Json{{"host", "host-b"}, {"path", "/var/log/x.log"}, {"size", 5}})},
      {"archive chunk of B's upload", "PUT", "/agent/v1/archive/" + b_upload + "?offset=0",
       "hello"},
      {"archive finish of B's upload", "POST", "/agent/v1/archive/" + b_upload + "/finish",
       kFinishHello},
  };
  for (const Cell& c : as_b) {
    SCOPED_TRACE(c.what);
    HttpResponse r = Call(c.method, c.path, a_, c.body);
    EXPECT_EQ(r.status, 403) << r.body;
    EXPECT_TRUE(JsonOf(r).contains("error")) << r.body;
  }
  // Nothing of B's was touched: its command is still queued for it, its upload still open.
  HttpResponse polled = Call("GET", "/agent/v1/commands?host=host-b&wait_ms=0", b_);
  ASSERT_EQ(polled.status, 200) << polled.body;
  ASSERT_EQ(JsonOf(polled)["commands"].size(), 1u) << polled.body;
  EXPECT_EQ(JsonOf(polled)["commands"][0]["id"], b_command);
  EXPECT_EQ(Call("PUT", "/agent/v1/archive/" + b_upload + "?offset=0", b_, "hello").status, 200);
  EXPECT_EQ(
      Call("POST", "/agent/v1/archive/" + b_upload + "/finish", b_, kFinishHello).status, 200);

  // The same calls as A itself succeed.
  const std::string a_upload = StartUpload("host-a", a_);
  const std::vector<Cell> as_a = {
      {"register", "POST", "/agent/v1/register", Register("host-a")},
      {"report", "POST", "/agent/v1/report", Report("host-a")},
      {"poll", "GET", "/agent/v1/commands?host=host-a&wait_ms=0", ""},
      {"poll without host", "GET", "/agent/v1/commands?wait_ms=0", ""},
      {"result", "POST", "/agent/v1/results", Result(a_command, "host-a")},
      {"archive chunk", "PUT", "/agent/v1/archive/" + a_upload + "?offset=0", "hello"},
      {"archive finish", "POST", "/agent/v1/archive/" + a_upload + "/finish", kFinishHello},
  };
  for (const Cell& c : as_a) {
    SCOPED_TRACE(c.what);
    HttpResponse r = Call(c.method, c.path, a_, c.body);
    EXPECT_EQ(r.status, 200) << r.body;
  }
  // Archives are filed under the authenticated host.
  Json files = JsonOf(Call("GET", "/api/v1/archive", admin_))["files"];
  ASSERT_EQ(files.size(), 2u) << files.dump();
  std::multiset<std::string> hosts;
  for (const auto& f : files) {
    hosts.insert(f["host"].get<std::string>());
  }
  EXPECT_EQ(hosts, (std::multiset<std::string>{"host-a", "host-b"}));
}

TEST_F(HostIdentityTest, TheBootstrapTokenOnlyEnrols) {
  const std::string upload = StartUpload("host-a", a_);
  struct Cell {
    std::string method, path, body;
  };
  const std::vector<Cell> cells = {
      {"POST", "/agent/v1/register", Register("host-a")},
      {"POST", "/agent/v1/report", Report("host-a")},
      {"GET", "/agent/v1/commands?host=host-a&wait_ms=0", ""},
      {"POST", "/agent/v1/results", Result("cmd-x", "host-a")},
      {"POST", "/agent/v1/archive",
       DumpJson(Json{{"host", "host-a"}, {"path", "/var/log/x.log"}, {"size", 5}})},
      {"PUT", "/agent/v1/archive/" + upload + "?offset=0", "hello"},
      {"POST", "/agent/v1/archive/" + upload + "/finish", kFinishHello},
      {"GET", "/api/v1/hosts", ""},
      {"POST", "/api/v1/hosts/host-a/enroll", ""},
  };
  for (const Cell& c : cells) {
    SCOPED_TRACE(c.method + " " + c.path);
    const int status = Call(c.method, c.path, bootstrap_, c.body).status;
    EXPECT_TRUE(status == 401 || status == 403) << status;
  }
  // Operator tokens never call agent routes; host credentials never call operator routes.
  EXPECT_EQ(Call("POST", "/agent/v1/report", admin_, Report("host-a")).status, 403);
  EXPECT_EQ(Call("GET", "/api/v1/hosts", a_).status, 403);
}

TEST_F(HostIdentityTest, ARevokedHostGets401OnEveryRouteAndItsParkedPollEndsWithinASecond) {
  const std::string command = QueueCommand("host-a");
  ASSERT_EQ(Call("GET", "/agent/v1/commands?wait_ms=0", a_).status, 200);  // delivered
  const std::string upload = StartUpload("host-a", a_);
  // A long poll parks (the server's clock stands still: it would wait forever).
  auto parked = std::async(std::launch::async, [this] {
    auto client = NewCurlHttpClient();
    HttpRequest req;
    req.url = base_ + "/agent/v1/commands?wait_ms=60000";
    req.headers.emplace_back("Authorization", "Bearer " + a_);
    req.timeout = Millis(20'000);
    auto r = client->Do(req);
    return r ? r->status : -1;
  });
  const auto parked_by = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (Call("GET", "/metrics", admin_).body.find("medic_agent_polls_parked 1") == std::string::npos &&
         std::chrono::steady_clock::now() < parked_by) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }

  const auto revoked_at = std::chrono::steady_clock::now();
  HttpResponse r = Call("POST", "/api/v1/hosts/host-a/revoke", admin_);
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_EQ(parked.wait_for(std::chrono::seconds(1)), std::future_status::ready)
      << "the parked poll is still open a second after the revocation";
  EXPECT_EQ(parked.get(), 401);
  EXPECT_LT(std::chrono::steady_clock::now() - revoked_at, std::chrono::seconds(1));

  struct Cell {
    std::string method, path, body;
  };
  const std::vector<Cell> cells = {
      {"POST", "/agent/v1/register", Register("host-a")},
      {"POST", "/agent/v1/report", Report("host-a")},
      {"GET", "/agent/v1/commands?wait_ms=0", ""},
      {"POST", "/agent/v1/results", Result(command, "host-a")},
      {"POST", "/agent/v1/archive",
       DumpJson(Json{{"host", "host-a"}, {"path", "/var/log/x.log"}, {"size", 5}})},
      {"PUT", "/agent/v1/archive/" + upload + "?offset=0", "hello"},
      {"POST", "/agent/v1/archive/" + upload + "/finish", kFinishHello},
  };
  for (const Cell& c : cells) {
    SCOPED_TRACE(c.method + " " + c.path);
    EXPECT_EQ(Call(c.method, c.path, a_, c.body).status, 401);
  }
  EXPECT_EQ(Call("POST", "/agent/v1/report", b_, Report("host-b")).status, 200);  // B is not
  EXPECT_EQ(Call("POST", "/api/v1/hosts/host-a/revoke", admin_).status, 404);
  EXPECT_EQ(Call("POST", "/api/v1/hosts/nobody/revoke", admin_).status, 404);

  // Still revoked after a restart: the credential is gone from the store too.
  app_->Stop();
  StartServer();
  EXPECT_EQ(Call("POST", "/agent/v1/report", a_, Report("host-a")).status, 401);
  EXPECT_EQ(Call("POST", "/agent/v1/report", b_, Report("host-b")).status, 200);

  // Re-enrolling the name takes an admin: a new code.
  const std::string again = Enroll("host-a");
  EXPECT_EQ(Call("POST", "/agent/v1/register", again, Register("host-a")).status, 200);
}

TEST_F(HostIdentityTest, AnEnrolmentCodeWorksOnceAndNotAfterItExpires) {
  auto code_for = [this](const std::string& host, const std::string& body = "") {
    HttpResponse r = Call("POST", "/api/v1/hosts/" + host + "/enroll", admin_, body);
    EXPECT_EQ(r.status, 201) << r.body;
    EXPECT_EQ(JsonOf(r)["name"], host);
    return JsonOf(r);
  };
  Json c = code_for("web-7");
  EXPECT_EQ(c["expires_at"], FormatRfc3339(manual_.Now() + std::chrono::hours(1)));
  HttpResponse r = Enrol({{"name", "web-7"}, {"code", c["code"]}});
  ASSERT_EQ(r.status, 201) << r.body;
  const std::string credential = JsonOf(r)["credential"];
  EXPECT_EQ(credential.size(), 64u);  // 256 bits, hex
  EXPECT_EQ(Call("POST", "/agent/v1/register", credential, Register("web-7")).status, 200);
  // Used once: never again.
  EXPECT_EQ(Enrol({{"name", "web-7"}, {"code", c["code"]}}).status, 401);

  // Expired: an hour and a second later.
  c = code_for("web-8");
  manual_.Advance(std::chrono::hours(1) + std::chrono::seconds(1));
  EXPECT_EQ(Enrol({{"name", "web-8"}, {"code", c["code"]}}).status, 401);
  // A longer ttl on request; a code only enrols the name it was made for.
  c = code_for("web-8", R"({"ttl":"2h"})");
  manual_.Advance(std::chrono::minutes(90));
  EXPECT_EQ(Enrol({{"name", "web-9"}, {"code", c["code"]}}).status, 401);
  EXPECT_EQ(Enrol({{"name", "web-8"}, {"code", c["code"]}}).status, 201);

  // The server keeps only hashes: no credential or code is in its data directory in clear.
  const std::string db = ReadFile(dir_.File("data/medic.db")).value_or("") +
                         ReadFile(dir_.File("data/medic.db-wal")).value_or("");
  EXPECT_EQ(db.find(credential), std::string::npos);
  EXPECT_EQ(db.find(c["code"].get<std::string>()), std::string::npos);
  // Audited.
  const Json audit = JsonOf(Call("GET", "/api/v1/audit", admin_));
  ASSERT_FALSE(audit["audit"].empty());
  EXPECT_EQ(audit["audit"][0]["action"], "host.enroll");
}

TEST_F(HostIdentityTest, APendingHostCannotReportUntilAnAdminApproves) {
  HttpResponse r = Enrol({{"name", "web-5"}, {"key", Key('a')}, {"hostname", "box5"}}, bootstrap_);
  ASSERT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(JsonOf(r)["status"], "pending");
  const std::string fingerprint = JsonOf(r)["fingerprint"];
  // Asking again is still pending; the bootstrap token cannot report for it meanwhile.
  EXPECT_EQ(Enrol({{"name", "web-5"}, {"key", Key('a')}}, bootstrap_).status, 202);
  EXPECT_EQ(Call("POST", "/agent/v1/report", bootstrap_, Report("web-5")).status, 401);
  // Another agent asking for the same name with another key is refused.
  EXPECT_EQ(Enrol({{"name", "web-5"}, {"key", Key('b')}}, bootstrap_).status, 409);

  Json pending = JsonOf(Call("GET", "/api/v1/hosts/pending", admin_))["pending"];
  ASSERT_EQ(pending.size(), 1u) << pending.dump();
  EXPECT_EQ(pending[0]["name"], "web-5");
  EXPECT_EQ(pending[0]["fingerprint"], fingerprint);
  EXPECT_EQ(pending[0]["hostname"], "box5");
  EXPECT_EQ(pending[0]["approved"], false);
  EXPECT_EQ(pending[0]["enrolled"], false);

  ASSERT_EQ(Call("POST", "/api/v1/hosts/web-5/approve", admin_).status, 200);
  r = Enrol({{"name", "web-5"}, {"key", Key('a')}}, bootstrap_);
  ASSERT_EQ(r.status, 201) << r.body;
  const std::string credential = JsonOf(r)["credential"];
  EXPECT_EQ(Call("POST", "/agent/v1/register", credential, Register("web-5")).status, 200);
  EXPECT_EQ(Call("POST", "/agent/v1/report", credential, Report("web-5")).status, 200);
  EXPECT_TRUE(JsonOf(Call("GET", "/api/v1/hosts/pending", admin_))["pending"].empty());

  // The bootstrap token cannot take over an enrolled name: the request waits for approval and
  // the host keeps its credential until then.
  EXPECT_EQ(Enrol({{"name", "host-a"}, {"key", Key('c')}}, bootstrap_).status, 202);
  pending = JsonOf(Call("GET", "/api/v1/hosts/pending", admin_))["pending"];
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0]["enrolled"], true);
  EXPECT_EQ(Call("POST", "/agent/v1/report", a_, Report("host-a")).status, 200);
  ASSERT_EQ(Call("POST", "/api/v1/hosts/host-a/approve", admin_).status, 200);
  EXPECT_EQ(Enrol({{"name", "host-a"}, {"key", Key('c')}}, bootstrap_).status, 201);
  EXPECT_EQ(Call("POST", "/agent/v1/report", a_, Report("host-a")).status, 401);  // replaced
}

TEST_F(HostIdentityTest, BadEnrolmentInputGetsAClearError) {
  struct Case {
    std::string what;
    Json body;
    std::string token;
    int status;
  };
  const std::string boot = bootstrap_;
  const std::vector<Case> cases = {
      {"bad code", {{"name", "web-1"}, {"code", "0123456789abcdef"}}, "", 401},
      {"code not a string", {{"name", "web-1"}, {"code", 42}}, "", 400},
      {"name not a string", {{"name", 7}, {"code", "x"}}, "", 400},
      {"no name", {{"code", "x"}}, "", 400},
      {"bad name", {{"name", "-bad;rm"}, {"code", "x"}}, "", 400},
      {"too long a name", {{"name", std::string(65, 'a')}, {"key", Key('a')}}, boot, 400},
      {"unknown field", {{"name", "web-1"}, {"code", "x"}, {"role", "admin"}}, "", 400},
      {"code and key", {{"name", "web-1"}, {"code", "x"}, {"key", Key('a')}}, boot, 400},
      {"neither code nor token", {{"name", "web-1"}}, "", 401},
      {"bootstrap without key", {{"name", "web-1"}}, boot, 400},
      {"short key", {{"name", "web-1"}, {"key", "abc"}}, boot, 400},
      {"key not hex", {{"name", "web-1"}, {"key", std::string(64, 'z')}}, boot, 400},
      {"wrong bootstrap token", {{"name", "web-1"}, {"key", Key('a')}}, "not-the-token", 401},
      {"a host credential is no bootstrap token", {{"name", "web-1"}, {"key", Key('a')}}, a_, 401},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    HttpResponse r = Enrol(c.body, c.token);
    EXPECT_EQ(r.status, c.status) << r.body;
    EXPECT_TRUE(JsonOf(r).contains("error")) << r.body;
  }
  EXPECT_EQ(Call("POST", "/agent/v1/enroll", "", "not json").status, 400);
  // Admin routes.
  EXPECT_EQ(Call("POST", "/api/v1/hosts/-bad/enroll", admin_).status, 400);
  EXPECT_EQ(Call("POST", "/api/v1/hosts/web-1/enroll", admin_, R"({"ttl":"forever"})").status,
            400);
  EXPECT_EQ(Call("POST", "/api/v1/hosts/web-1/enroll", admin_, R"({"ttl":"10s"})").status, 400);
  EXPECT_EQ(Call("POST", "/api/v1/hosts/web-1/enroll", admin_, R"({"ttl":3600})").status, 400);
  EXPECT_EQ(Call("POST", "/api/v1/hosts/web-1/enroll", admin_, R"({"x":1})").status, 400);
  EXPECT_EQ(Call("POST", "/api/v1/hosts/nobody/approve", admin_).status, 404);
  EXPECT_EQ(Call("POST", "/api/v1/hosts/nobody/revoke", admin_).status, 404);
  EXPECT_EQ(Call("POST", "/api/v1/hosts/web-1/enroll", a_).status, 403);
}

}  // namespace
}  // namespace medic::server
