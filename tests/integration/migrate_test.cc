// medic-server migrate (issue 15) through the real binaries: a SQLite installation populated by
// a real medic-server (enrolled hosts with fake agents, an incident fixed after approval, one
// rejected, a token, a settings change, audit entries), stopped; then
// `medic-server migrate --from sqlite:... --to sqlite:...`; a medic-server started on the copy
// answers every incident with identical JSON, the same settings, the copied token, and an audit
// chain that verifies with the same head. The source file is unchanged; a second run and bad
// URIs are refused with a clear error and leave nothing behind.
//
// Built twice: migrate_integration_test copies into a new SQLite file; migrate_pg_test
// (MEDIC_MIGRATE_TO_POSTGRES, label postgres) copies into a fresh database of a real PostgreSQL
// the test starts (`--to postgres:DSN`, as docs/STORE.md says), and the second medic-server runs
// with `store: {driver: postgres}` on it.

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/files.h"
#include "core/json.h"
#include "tests/fakes/subprocess.h"
#ifdef MEDIC_MIGRATE_TO_POSTGRES
#include "tests/fakes/postgres_server.h"
#endif
#include "tests/fakes/temp_dir.h"
#include "tests/integration/crash_harness.h"
#include "tests/server/enroll_host.h"
#include "transport/http_client.h"

namespace medic {
namespace {

using namespace std::chrono_literals;
using namespace crash_test;

struct Outcome {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs `medic-server migrate ARGS...` to completion (bounded).
Outcome Migrate(const test::TempDir& dir, const std::vector<std::string>& args) {
  static int n = 0;
  const std::string err_path = dir.File("migrate-" + std::to_string(++n) + ".stderr");
  std::vector<std::string> argv = {Bin("medic-server"), "migrate"};
  argv.insert(argv.end(), args.begin(), args.end());
  test::Subprocess p(argv, err_path);
  Outcome o;
  while (auto line = p.ReadLine(60s)) {
    o.out += *line + "\n";
  }
  if (auto st = p.Wait(60s); st && WIFEXITED(*st)) {
    o.exit_code = WEXITSTATUS(*st);
  }
  o.err = ReadFile(err_path).value_or("");
  return o;
}

Json GetJson(HttpClient& client, const std::string& url, const std::string& token) {
  auto r = Call(client, "GET", url, token);
  EXPECT_TRUE(Is2xx(r)) << url << ": " << (r ? r->body : r.error().message);
  if (!Is2xx(r)) {
    return Json();
  }
  return ParseJson(r->body).value_or(Json());
}

class MigrateTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    InitHttpClientLibrary();
    setenv("MEDIC_AI_PROVIDER", "none", 1);
  }
  test::TempDir dir_;
};

TEST_F(MigrateTest, ACopiedInstallationServesTheSameIncidentsTokensSettingsAndAuditChain) {
  const std::string src = dir_.File("src");
  const std::string dst = dir_.File("dst");
  const std::string config = dir_.File("server.yaml");
  ASSERT_TRUE(WriteFileAtomic(config, "approval_mode: true\n").has_value());

  std::map<std::string, Json> incidents;  // what the first server answered, by id
  Json settings, audit_before;
  std::string viewer_token;
  {
    ServerProcess first(src, config, dir_.File("server1.stderr"));
    const std::string url = first.Start();
    ASSERT_FALSE(url.empty()) << "medic-server did not start: " << first.StderrTail();
    const std::string admin(Trim(ReadFile(src + "/admin.token").value_or("")));
    auto client = NewCurlHttpClient();
    const test::CallFn call = [&](const std::string& method, const std::string& path,
                                  const std::string& token, const std::string& body) {
      auto r = Call(*client, method, url + path, token, body);
      return r ? std::make_pair(r->status, r->body) : std::make_pair(0, std::string());
    };
    Endpoint endpoint;
    endpoint.Set(url, 1);
    std::vector<std::unique_ptr<FakeAgent>> agents;
    for (int i = 0; i < 2; ++i) {
      const std::string credential = test::EnrollHost(call, admin, HostName(i));
      ASSERT_FALSE(credential.empty());
      agents.push_back(std::make_unique<FakeAgent>(HostName(i), endpoint, credential));
    }
    StopAgents stop_agents{agents};
    for (auto& a : agents) {
      a->Start();
    }
    std::vector<Json> pending;
    ASSERT_TRUE(Eventually(60s,
                           [&] {
                             pending = ListIncidents(*client, url, admin, "pending_approval");
                             return pending.size() == 2;
                           }))
        << pending.size() << " incidents pending approval: " << first.StderrTail();

    // One rejected (a rejection opens no new incident while its alarm stays in ALARM), one
    // approved and fixed. Both agents report until then: a silent host would raise
    // Host-Unreachable 15 s later.
    const Json& fixed = pending[0]["instance_id"] == HostName(0) ? pending[0] : pending[1];
    const Json& rejected = pending[0]["instance_id"] == HostName(0) ? pending[1] : pending[0];
    auto r =
        Call(*client, "POST",
             url + "/api/v1/incidents/" + rejected["incident_id"].get<std::string>() + "/reject",
             admin, DumpJson(Json{{"comment", "not now — später"}}));
    ASSERT_TRUE(Is2xx(r)) << (r ? r->body : r.error().message);
    // An approval names the proposal it approves: read it first.
    const std::string fixed_id = fixed["incident_id"];
    const Json proposal = GetJson(*client, url + "/api/v1/incidents/" + fixed_id, admin);
    r = Call(*client, "POST", url + "/api/v1/incidents/" + fixed_id + "/approve", admin,
             DumpJson(Json{{"action_hash", proposal.value("action_hash", "")}, {"comment", "go"}}));
    ASSERT_TRUE(Is2xx(r)) << (r ? r->body : r.error().message);
    ASSERT_TRUE(Eventually(60s, [&] {
      Json inc = GetJson(*client, url + "/api/v1/incidents/" + fixed_id, admin);
      return inc.value("status", "") == "completed";
    })) << first.StderrTail();
    StopAgents::StopAll(agents);

    r = Call(*client, "POST", url + "/api/v1/tokens", admin,
             DumpJson(Json{{"name", "grafana"}, {"role", "viewer"}}));
    ASSERT_TRUE(Is2xx(r)) << (r ? r->body : r.error().message);
    viewer_token = ParseJson(r->body).value_or(Json()).value("token", "");
    ASSERT_FALSE(viewer_token.empty());
    r = Call(*client, "PUT", url + "/api/v1/settings", admin,
             DumpJson(Json{{"automation_paused", true}}));
    ASSERT_TRUE(Is2xx(r)) << (r ? r->body : r.error().message);

    for (const Json& inc : ListIncidents(*client, url, admin)) {
      const std::string id = inc["incident_id"];
      incidents[id] = GetJson(*client, url + "/api/v1/incidents/" + id, admin);
    }
    settings = GetJson(*client, url + "/api/v1/settings", admin);
    audit_before = GetJson(*client, url + "/api/v1/audit/verify", admin);
    first.Terminate();
  }
  ASSERT_EQ(incidents.size(), 2u);
  std::vector<std::string> statuses;
  for (const auto& [id, inc] : incidents) {
    statuses.push_back(inc.value("status", ""));
  }
  std::sort(statuses.begin(), statuses.end());
  EXPECT_EQ(statuses, (std::vector<std::string>{"completed", "rejected"}));
  ASSERT_TRUE(audit_before.value("ok", false)) << audit_before.dump();
  ASSERT_GT(audit_before.value("entries", 0), 3) << audit_before.dump();

  const Result<std::string> source_bytes = ReadFile(src + "/medic.db");
  ASSERT_TRUE(source_bytes.has_value());
  ASSERT_TRUE(MakeDirs(dst, 0700).has_value());
  const std::string from = "sqlite:" + src + "/medic.db";
#ifdef MEDIC_MIGRATE_TO_POSTGRES
  test::PostgresServer pg;
  ASSERT_TRUE(pg.ok()) << pg.error();
  const std::string dsn = pg.CreateDatabase();
  ASSERT_FALSE(dsn.empty()) << pg.error();
  const std::string to = "postgres:" + dsn;
  const std::string second_config = dir_.File("server-pg.yaml");
  ASSERT_TRUE(WriteFileAtomic(second_config, "approval_mode: true\n"
                                             "store:\n"
                                             "  driver: postgres\n"
                                             "  dsn: \"" + dsn + "\"\n")
                  .has_value());
#else
  const std::string to = "sqlite:" + dst + "/medic.db";
  const std::string& second_config = config;
#endif

  // Bad arguments first: each refused with a clear error, nothing created.
  Outcome bad = Migrate(dir_, {"--from", src + "/medic.db", "--to", to});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--from: store URI '" + src + "/medic.db' has no driver prefix"),
            std::string::npos)
      << bad.err;
  bad = Migrate(dir_, {"--from", from, "--to", "mysql://db/medic"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("unknown driver 'mysql'"), std::string::npos) << bad.err;
  bad = Migrate(dir_, {"--from", from, "--to", to, "--audit-key", dir_.File("none.key")});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("cannot read the audit key " + dir_.File("none.key")), std::string::npos)
      << bad.err;
  bad = Migrate(dir_, {"--from", "sqlite:" + dir_.File("missing/medic.db"), "--to", to,
                       "--audit-key", src + "/audit.key"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("the source: cannot open SQLite database"), std::string::npos) << bad.err;
  // (On PostgreSQL: the copy below needs an empty database, so a refused migrate that wrote
  // to it would fail there.)
  EXPECT_FALSE(PathExists(dst + "/medic.db")) << "a refused migrate created the target";

  // The copy. The audit key defaults to audit.key beside the source.
  Outcome copied = Migrate(dir_, {"--from", from, "--to", to});
  ASSERT_EQ(copied.exit_code, 0) << copied.out << copied.err;
  EXPECT_NE(copied.out.find("identical"), std::string::npos) << copied.out;
  EXPECT_NE(copied.out.find("incidents         2"), std::string::npos) << copied.out;
  EXPECT_NE(copied.out.find("head " + audit_before.value("head", "?")), std::string::npos)
      << copied.out;
  EXPECT_TRUE(*source_bytes == ReadFile(src + "/medic.db").value_or(""))
      << "migrate wrote to the source";

  // Again: the target holds a finished copy now.
  Outcome again = Migrate(dir_, {"--from", from, "--to", to});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("not empty"), std::string::npos) << again.err;
  EXPECT_NE(again.err.find("finished copy"), std::string::npos) << again.err;

  // A server on the copy: the data directory's files beside the database come along
  // (docs/STORE.md, "Moving to PostgreSQL").
  for (const char* f : {"audit.key", "admin.token", "agent.token", "command-signing.key"}) {
    std::error_code ec;
    std::filesystem::copy_file(src + "/" + f, dst + "/" + f, ec);
    ASSERT_FALSE(ec) << f << ": " << ec.message();
  }
  ServerProcess second(dst, second_config, dir_.File("server2.stderr"));
  const std::string url = second.Start();
  ASSERT_FALSE(url.empty()) << "medic-server did not start on the copy: " << second.StderrTail();
  const std::string admin(Trim(ReadFile(dst + "/admin.token").value_or("")));
  auto client = NewCurlHttpClient();
  const std::vector<Json> listed = ListIncidents(*client, url, admin);
  EXPECT_EQ(listed.size(), incidents.size());
  for (const auto& [id, want] : incidents) {
    SCOPED_TRACE(id);
    const Json got = GetJson(*client, url + "/api/v1/incidents/" + id, admin);
    EXPECT_EQ(got, want) << "copy:     " << got.dump() << "\noriginal: " << want.dump();
  }
  EXPECT_EQ(GetJson(*client, url + "/api/v1/settings", admin), settings);
  // The token made on the first server works on the copy (its hash was copied).
  EXPECT_TRUE(Is2xx(Call(*client, "GET", url + "/api/v1/incidents", viewer_token)));
  const Json audit_after = GetJson(*client, url + "/api/v1/audit/verify", admin);
  EXPECT_TRUE(audit_after.value("ok", false)) << audit_after.dump();
  EXPECT_EQ(audit_after.value("head", ""), audit_before.value("head", "?"));
  EXPECT_EQ(audit_after.value("entries", -1), audit_before.value("entries", -2));
  second.Terminate();
}

}  // namespace
}  // namespace medic
