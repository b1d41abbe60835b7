// Facts the server does not take from the agent (issue 11, "fleet trust"), over real HTTP on
// loopback: the log directory a host's diagnostics and fixes touch, and whether chaos may run
// there, come from the server's `hosts:` config. What the agent registers (log_dir,
// chaos_allowed) is only shown back, as reported_*.

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/files.h"
#include "protocol/wire.h"
#include "tests/fakes/incident_fakes.h"
#include "tests/server/server_fixture.h"
#include "transport/http_client.h"

namespace medic::server {
namespace {

class HostFactsTest : public test::ServerFixture {
 protected:
  // web-1's own entry, and a pattern for the lab-* hosts; web-2 gets the defaults.
  void Configure(ServerConfig& config) override {
    config.hosts.defaults.log_dir = "/var/log/app";
    config.hosts.entries.push_back({"web-1", "/srv/web-1/log", std::nullopt});
    config.hosts.entries.push_back({"lab-*", std::nullopt, true});
  }
  void SetUp() override { StartServer(); }

  Json JsonOf(const HttpResponse& r) { return ParseJson(r.body).value_or(Json()); }
  std::string Credential(const std::string& host) {
    if (host == "web-1") {
      return agent_;
    }
    if (credentials_.count(host) == 0) {
      credentials_[host] = Enroll(host);
    }
    return credentials_[host];
  }
  // Registers `host` with the facts an agent may lie about.
  void Register(const std::string& host, const std::string& log_dir, bool chaos_allowed) {
    protocol::RegisterRequest reg;
    reg.name = host;
    reg.log_dir = log_dir;
    reg.chaos_allowed = chaos_allowed;
    HttpResponse r =
        Call("POST", "/agent/v1/register", Credential(host), DumpJson(protocol::ToJson(reg)));
    ASSERT_EQ(r.status, 200) << r.body;
  }
  void ReportDisk(const std::string& host, double percent) {
    protocol::Report rep;
    rep.host = host;
    rep.samples.push_back({clock_.Now(), {{"disk_used_percent", percent}}});
    ASSERT_EQ(Call("POST", "/agent/v1/report", Credential(host), DumpJson(protocol::ToJson(rep)))
                  .status,
              200);
  }
  // Waits up to `wait_ms` for a command (0: takes what is queued now).
  std::vector<protocol::Command> Poll(const std::string& host, int wait_ms = 2000) {
    HttpResponse r = Call("GET",
                          "/agent/v1/commands?host=" + host + "&wait_ms=" + std::to_string(wait_ms),
                          Credential(host));
    EXPECT_EQ(r.status, 200) << r.body;
    auto b = protocol::CommandBatchFromJson(JsonOf(r));
    EXPECT_TRUE(b.has_value());
    return b ? b->commands : std::vector<protocol::Command>{};
  }
  Json Host(const std::string& name) {
    const Json all = JsonOf(Call("GET", "/api/v1/hosts", admin_));
    for (const auto& h : all["hosts"]) {
      if (h["name"] == name) {
        return h;
      }
    }
    ADD_FAILURE() << "no host " << name << " in " << all.dump();
    return Json::object();
  }

  // Drives a Disk-Critical-ASG incident on `host` to its proposal: the diagnostics the server
  // sent (rendered), then the incident pending approval.
  struct DiskIncident {
    std::vector<std::string> diagnostics;  // "action path=…"
    Json incident;
  };
  DiskIncident Disk(const std::string& host) {
    DiskIncident out;
    ReportDisk(host, 97);
    const std::vector<protocol::Command> diag = Poll(host);
    for (const auto& c : diag) {
      out.diagnostics.push_back(c.action + " path=" + c.params.value("path", ""));
      const std::string listing =
          c.action == "dir.list"
              ? "total 9\n-rw-r----- 1 root adm 9000000 Jan  1 00:00 huge.log\n"
              : "Filesystem Size Used Avail Use% Mounted on\n/dev/x 10G 9.7G 0.3G 97% /\n";
      const protocol::CommandResult r = test::OkResult(c.id, listing, host);
      EXPECT_EQ(Call("POST", "/agent/v1/results", Credential(host), DumpJson(protocol::ToJson(r)))
                    .status,
                200);
    }
    // The decision is taken off the request thread: wait for it (bounded).
    for (int i = 0; i < 200 && out.incident.is_null(); ++i) {
      const Json list = JsonOf(Call("GET", "/api/v1/incidents?status=pending_approval&host=" +
                                        host,
                                    admin_));
      if (!list["incidents"].empty()) {
        out.incident = list["incidents"][0];
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
    return out;
  }

  std::map<std::string, std::string> credentials_;
};

// The acceptance line: "a registration carrying log_dir does not change which paths fixes may
// touch". web-1 says its logs are in /etc; the server's config says /srv/web-1/log.
TEST_F(HostFactsTest, ARegisteredLogDirDoesNotMoveDiagnosticsOrFixes) {
  Register("web-1", "/etc", false);
  const DiskIncident disk = Disk("web-1");
  EXPECT_EQ(disk.diagnostics,
            (std::vector<std::string>{"disk.usage path=", "dir.list path=/srv/web-1/log",
                                      "host.changes path="}));
  ASSERT_TRUE(disk.incident.is_object()) << "no incident pending approval";
  EXPECT_EQ(disk.incident["alarm_name"], "Disk-Critical-ASG");
  EXPECT_EQ(disk.incident["ai_suggestion"], "log.archive_truncate path=/srv/web-1/log/huge.log");
  // What approval would run.
  EXPECT_EQ(disk.incident["action"]["name"], "log.archive_truncate") << disk.incident.dump();
  EXPECT_EQ(disk.incident["action"]["params"]["path"], "/srv/web-1/log/huge.log");
  EXPECT_EQ(disk.incident.dump().find("/etc"), std::string::npos) << disk.incident.dump();

  // The reported directory is shown next to the server's, for an operator to see the mismatch.
  const Json host = Host("web-1");
  EXPECT_EQ(host["log_dir"], "/srv/web-1/log");
  EXPECT_EQ(host["reported_log_dir"], "/etc");
}

// A host without an entry of its own gets the configured defaults, whatever it registers with.
TEST_F(HostFactsTest, AHostWithoutAnEntryGetsTheDefaultLogDirNotItsOwn) {
  Register("web-2", "/srv/web-2/logs", false);
  const DiskIncident disk = Disk("web-2");
  EXPECT_EQ(disk.diagnostics,
            (std::vector<std::string>{"disk.usage path=", "dir.list path=/var/log/app",
                                      "host.changes path="}));
  ASSERT_TRUE(disk.incident.is_object()) << "no incident pending approval";
  EXPECT_EQ(disk.incident["ai_suggestion"], "log.archive_truncate path=/var/log/app/huge.log");
  EXPECT_EQ(Host("web-2")["log_dir"], "/var/log/app");
  EXPECT_EQ(Host("web-2")["reported_log_dir"], "/srv/web-2/logs");
}

// Chaos runs where the server's config allows it, whatever the registration says.
TEST_F(HostFactsTest, ChaosIsRefusedUnlessTheServerConfigAllowsIt) {
  Register("web-1", "", true);   // says yes; the config says no (the default)
  Register("lab-1", "", false);  // says no; the config (lab-*) says yes
  const std::string chaos = DumpJson(Json{{"host", "web-1"}, {"mode", "nginx-crash"}});
  HttpResponse refused = Call("POST", "/api/v1/chaos", admin_, chaos);
  EXPECT_EQ(refused.status, 403) << refused.body;
  EXPECT_NE(JsonOf(refused).value("error", "").find("chaos is not allowed on host 'web-1'"),
            std::string::npos)
      << refused.body;
  // The handler queues before it answers: nothing is queued now means nothing was.
  EXPECT_TRUE(Poll("web-1", 0).empty()) << "a refused chaos request queued a command";
  const Json web1 = Host("web-1");
  EXPECT_EQ(web1["chaos_allowed"], false);
  EXPECT_EQ(web1["reported_chaos_allowed"], true);

  HttpResponse sent = Call("POST", "/api/v1/chaos", admin_,
                           DumpJson(Json{{"host", "lab-1"}, {"mode", "nginx-crash"}}));
  ASSERT_EQ(sent.status, 202) << sent.body;
  const std::vector<protocol::Command> commands = Poll("lab-1");
  ASSERT_EQ(commands.size(), 1u);
  EXPECT_EQ(commands[0].action, "chaos.start");
  EXPECT_EQ(commands[0].id, JsonOf(sent)["command_id"]);
  const Json lab1 = Host("lab-1");
  EXPECT_EQ(lab1["chaos_allowed"], true);
  EXPECT_EQ(lab1["reported_chaos_allowed"], false);
}

}  // namespace
}  // namespace medic::server
