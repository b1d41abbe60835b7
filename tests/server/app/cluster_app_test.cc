// Two whole medic-servers on one store (issue 15, docs/DEPLOY.md), driven without sockets:
// each ServerApp has its own handle of one MemoryStore (a shared database), the same data
// directory (tokens and command-signing key, as deployed), one ManualClock and a MemoryBus of one
// hub. A host's agent talks to either server through the agent routes; operators through the API.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/files.h"
#include "protocol/actions.h"
#include "protocol/wire.h"
#include "server/app/server_app.h"
#include "tests/fakes/fake_brain.h"
#include "tests/fakes/memory_bus.h"
#include "tests/fakes/memory_store.h"
#include "tests/fakes/temp_dir.h"
#include "tests/server/call_route.h"
#include "tests/server/enroll_host.h"

namespace medic::server {
namespace {

class ClusterAppTest : public ::testing::Test {
 protected:
  ClusterAppTest() { config_.data_dir = dir_.File("data"); }
  ~ClusterAppTest() override {
    s2_.reset();
    s1_.reset();
  }

  std::unique_ptr<ServerApp> MakeServer(const std::string& id) {
    auto brain = std::make_unique<test::FakeBrain>();
    ai::Decision decision;
    decision.action =
        protocol::ValidateAction("process.kill", {{"pattern", "memhog"}, {"signal", "TERM"}})
            .value();
    decision.reasoning = "memhog holds 6 GiB (fake brain)";
    decision.source = "fake";
    brain->AnswerAlways(decision);
    ServerDeps deps{&clock_, memory_.Share(), std::move(brain)};
    std::unique_ptr<test::MemoryBus> bus = hub_.Join(id);
    buses_[id] = bus.get();  // owned by the app from here on
    deps.bus = std::move(bus);
    auto app = ServerApp::Create(config_, std::move(deps));
    EXPECT_TRUE(app.has_value()) << app.error().ToString();
    return app ? std::move(*app) : nullptr;
  }

  ApiResponse Call(ServerApp& app, const std::string& method, const std::string& path,
                   const std::string& token, const Json& body = Json::object(),
                   std::map<std::string, std::string> query = {}) {
    ApiRequest req;
    req.method = method;
    req.path = path;
    req.query = std::move(query);
    req.authorization = token.empty() ? "" : "Bearer " + token;
    req.body = DumpJson(body);
    return test::CallRoute(app.router(), std::move(req));
  }
  std::string Admin() {
    return std::string(Trim(ReadFile(dir_.File("data/admin.token")).value()));
  }
  // Enrols `host` through `app` and keeps its credential.
  void Enroll(ServerApp& app, const std::string& host) {
    credentials_[host] = test::EnrollHost(
        [&](const std::string& method, const std::string& path, const std::string& token,
            const std::string& body) {
          const ApiResponse r =
              Call(app, method, path, token, body.empty() ? Json::object() : ParseJson(body).value());
          return std::make_pair(r.status, r.body);
        },
        Admin(), host);
  }
  void Register(ServerApp& app, const std::string& host) {
    protocol::RegisterRequest reg;
    reg.name = host;
    ASSERT_EQ(Call(app, "POST", "/agent/v1/register", credentials_[host], protocol::ToJson(reg))
                  .status,
              200);
  }
  void ReportMemory(ServerApp& app, const std::string& host, double percent) {
    protocol::Report report;
    report.host = host;
    report.samples = {{clock_.Now(), {{"mem_used_percent", percent}}}};
    ASSERT_EQ(Call(app, "POST", "/agent/v1/report", credentials_[host], protocol::ToJson(report))
                  .status,
              200);
  }
  // Waits until server `id` has handled everything the others posted so far (commands queued
  // for its hosts, results, transitions).
  void Drain(const std::string& id) { buses_.at(id)->Drain(); }
  // The commands `app` has for `host` now. REQUIRES: some are due (else the poll parks until
  // one is queued, or fails the test after 10 s).
  std::vector<protocol::Command> Poll(ServerApp& app, const std::string& host) {
    const ApiResponse r = Call(app, "GET", "/agent/v1/commands", credentials_[host],
                               Json::object(), {{"host", host}, {"wait_ms", "0"}});
    EXPECT_EQ(r.status, 200) << r.body;
    auto batch = protocol::CommandBatchFromJson(ParseJson(r.body).value_or(Json()));
    EXPECT_TRUE(batch.has_value()) << r.body;
    return batch ? batch->commands : std::vector<protocol::Command>{};
  }
  void PostResult(ServerApp& app, const std::string& host, const protocol::Command& c,
                  const std::string& output) {
    protocol::CommandResult r;
    r.id = c.id;
    r.host = host;
    r.ran = true;
    r.exit_code = 0;
    r.output = output;
    ASSERT_EQ(Call(app, "POST", "/agent/v1/results", credentials_[host], protocol::ToJson(r))
                  .status,
              200);
  }
  // The incident of `host`, once `pred` holds for it (bounded: decisions run on the apps'
  // decision threads, bus messages on the buses' threads).
  Incident WaitFor(const std::string& host, const std::function<bool(const Incident&)>& pred,
                   const std::string& what) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    Incident last;
    while (std::chrono::steady_clock::now() < deadline) {
      IncidentQuery q;
      q.instance_id = host;
      auto list = view_->ListIncidents(q);
      if (list && list->size() == 1) {
        last = list->front();
        if (pred(last)) {
          return last;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ADD_FAILURE() << "the incident of " << host << " never got " << what << "; last seen "
                  << StatusName(last.status);
    return last;
  }
  Incident WaitForStatus(const std::string& host, IncidentStatus status) {
    return WaitFor(
        host, [status](const Incident& inc) { return inc.status == status; },
        std::string(StatusName(status)));
  }
  static std::vector<std::string> Events(const Incident& inc) {
    std::vector<std::string> out;
    for (const auto& e : inc.timeline) {
      out.push_back(e.event);
    }
    return out;
  }
  static int Count(const Incident& inc, const std::string& event) {
    const std::vector<std::string> events = Events(inc);
    return static_cast<int>(std::count(events.begin(), events.end(), event));
  }

  test::TempDir dir_;
  ManualClock clock_;
  ServerConfig config_;
  test::MemoryStore memory_;
  std::unique_ptr<test::MemoryStore> view_ = memory_.Share();
  test::MemoryBusHub hub_;
  std::map<std::string, std::string> credentials_;
  std::map<std::string, test::MemoryBus*> buses_;  // each owned by its app
  std::unique_ptr<ServerApp> s1_, s2_;
};

// web-1 reports to s1, so s1 evaluates its alarm and drives the incident; its agent polls s2:
// the diagnostics reach it there, its results reach s1's incident, an operator's approval sent
// to s2 is applied by s1 and answered, the fix reaches the agent through s2, and the OK that s2
// evaluates verifies it.
TEST_F(ClusterAppTest, AnIncidentDrivenByOneServerWhileItsHostTalksToTheOther) {
  s1_ = MakeServer("s1");
  ASSERT_NE(s1_, nullptr);
  Enroll(*s1_, "web-1");
  s2_ = MakeServer("s2");  // loads web-1's credential from the store
  ASSERT_NE(s2_, nullptr);
  Register(*s1_, "web-1");
  Register(*s2_, "web-1");

  ReportMemory(*s1_, "web-1", 97);
  const Incident opened = WaitForStatus("web-1", IncidentStatus::kDiagnosing);
  Drain("s2");
  const std::vector<protocol::Command> diagnostics = Poll(*s2_, "web-1");
  ASSERT_EQ(diagnostics.size(), 3u);
  EXPECT_EQ(diagnostics[0].action, "memory.usage");
  EXPECT_EQ(diagnostics[1].action, "process.top");
  EXPECT_EQ(diagnostics[2].action, "host.changes");  // what changed (docs/AUTONOMY.md)
  for (const auto& c : diagnostics) {
    PostResult(*s2_, "web-1", c, "output of " + c.action);
  }
  const Incident pending = WaitForStatus("web-1", IncidentStatus::kPendingApproval);
  EXPECT_NE(pending.diagnostics.find("output of process.top"), std::string::npos);

  const ApiResponse approved =
      Call(*s2_, "POST", "/api/v1/incidents/" + opened.incident_id + "/approve", Admin(),
           Json{{"action_hash", ActionHash(pending)}, {"comment", "go"}});
  ASSERT_EQ(approved.status, 200) << approved.body;
  EXPECT_EQ(ParseJson(approved.body).value().value("status", ""), "executing");

  Drain("s2");
  const std::vector<protocol::Command> fix = Poll(*s2_, "web-1");
  ASSERT_EQ(fix.size(), 1u);
  EXPECT_EQ(fix[0].action, "process.kill");
  PostResult(*s2_, "web-1", fix[0], "killed 1 process");
  WaitFor(
      "web-1", [](const Incident& inc) { return Count(inc, "verifying") == 1; }, "verifying");

  clock_.Advance(Millis(1'000));
  ReportMemory(*s2_, "web-1", 40);
  const Incident done = WaitForStatus("web-1", IncidentStatus::kCompleted);
  EXPECT_EQ(Events(done), (std::vector<std::string>{"created", "diagnosed", "suggested",
                                                     "awaiting_approval", "approved",
                                                     "executing", "executed", "verifying",
                                                     "verified", "completed"}));
  EXPECT_NE(done.remediation_output.find("killed 1 process"), std::string::npos);
  const std::vector<AuditEntry> audit = view_->ListAudit(10).value();
  ASSERT_FALSE(audit.empty());
  EXPECT_EQ(audit.front().action, "incident.approve");
  EXPECT_EQ(audit.front().actor, "admin");
  EXPECT_EQ(view_->ListIncidents({}).value().size(), 1u);
}

// An operator's chaos sent to the server its host does not report to: accepted (the host is
// enrolled; the `hosts:` config is the same file on every server) and delivered by the server
// that holds the host's poll. It was 404 "host 'web-1' not found" (seen with two real servers
// on PostgreSQL, tests/integration/two_server_test.cc): the route asked only this server's
// registry of the hosts that report to it.
TEST_F(ClusterAppTest, ChaosSentToTheOtherServerReachesTheHostThroughItsServer) {
  config_.hosts.entries.push_back({"web-1", std::nullopt, true, std::nullopt});
  s1_ = MakeServer("s1");
  ASSERT_NE(s1_, nullptr);
  Enroll(*s1_, "web-1");
  Enroll(*s1_, "web-2");  // chaos not allowed on it
  s2_ = MakeServer("s2");
  ASSERT_NE(s2_, nullptr);
  Register(*s1_, "web-1");  // its agent talks to s1 only
  Register(*s1_, "web-2");

  const ApiResponse sent = Call(*s2_, "POST", "/api/v1/chaos", Admin(),
                                Json{{"host", "web-1"}, {"mode", "nginx-crash"}});
  ASSERT_EQ(sent.status, 202) << sent.body;
  Drain("s1");
  const std::vector<protocol::Command> delivered = Poll(*s1_, "web-1");
  ASSERT_EQ(delivered.size(), 1u);
  EXPECT_EQ(delivered[0].action, "chaos.start");
  EXPECT_EQ(delivered[0].id, ParseJson(sent.body).value().value("command_id", ""));
  EXPECT_EQ(delivered[0].params.value("mode", ""), "nginx-crash");

  // Still refused: a host the config does not allow chaos on, and a host nobody enrolled.
  const ApiResponse not_allowed = Call(*s2_, "POST", "/api/v1/chaos", Admin(),
                                       Json{{"host", "web-2"}, {"mode", "nginx-crash"}});
  EXPECT_EQ(not_allowed.status, 403) << not_allowed.body;
  const ApiResponse unknown = Call(*s2_, "POST", "/api/v1/chaos", Admin(),
                                   Json{{"host", "web-9"}, {"mode", "nginx-crash"}});
  EXPECT_EQ(unknown.status, 404) << unknown.body;
  EXPECT_NE(unknown.body.find("host 'web-9' not found"), std::string::npos) << unknown.body;
}

// s1 drives three incidents, one in each open state, and is killed (destroyed: nothing is
// released). s2 takes every one over once their leases expire, within 10 s, and resumes each as
// a restart does: diagnostics again, the approval waiting again (and approvable on s2), the fix
// in flight offered again under its own id, never as a new command, and ended by its alarm.
TEST_F(ClusterAppTest, AKilledServersIncidentsAreTakenOverInEveryState) {
  s1_ = MakeServer("s1");
  ASSERT_NE(s1_, nullptr);
  for (const char* host : {"web-1", "web-2", "web-3"}) {
    Enroll(*s1_, host);
  }
  s2_ = MakeServer("s2");
  ASSERT_NE(s2_, nullptr);
  for (const char* host : {"web-1", "web-2", "web-3"}) {
    Register(*s1_, host);
    ReportMemory(*s1_, host, 97);
    WaitForStatus(host, IncidentStatus::kDiagnosing);
  }
  const std::vector<protocol::Command> web1_diagnostics = Poll(*s1_, "web-1");
  ASSERT_EQ(web1_diagnostics.size(), 3u);  // and left unanswered: diagnosing
  for (const char* host : {"web-2", "web-3"}) {
    for (const auto& c : Poll(*s1_, host)) {
      PostResult(*s1_, host, c, "output");
    }
  }
  const Incident web3 = WaitForStatus("web-3", IncidentStatus::kPendingApproval);
  WaitForStatus("web-2", IncidentStatus::kPendingApproval);
  ASSERT_EQ(Call(*s1_, "POST", "/api/v1/incidents/" + web3.incident_id + "/approve", Admin(),
                 Json{{"action_hash", ActionHash(web3)}})
                .status,
            200);
  const std::vector<protocol::Command> fix = Poll(*s1_, "web-3");
  ASSERT_EQ(fix.size(), 1u);  // delivered, never answered: its outcome is unknown

  // While s1 lives, it renews and s2 takes nothing (for longer than a lease; shorter than the
  // diagnostics' 10 s timeout).
  for (int i = 0; i < 4; ++i) {
    clock_.Advance(Millis(2'000));
    s1_->RunOnce();
    s2_->RunOnce();
  }
  for (const char* host : {"web-1", "web-2", "web-3"}) {
    EXPECT_EQ(Count(WaitFor(
                        host, [](const Incident&) { return true; }, "anything"),
                    "resumed"),
              0);
  }

  s1_.reset();  // kill: no lease is released
  int waited_s = 0;
  auto all_resumed = [&] {
    for (const char* host : {"web-1", "web-2", "web-3"}) {
      IncidentQuery q;
      q.instance_id = host;
      auto list = view_->ListIncidents(q);
      if (!list || list->size() != 1 || Count(list->front(), "resumed") != 1) {
        return false;
      }
    }
    return true;
  };
  while (!all_resumed() && waited_s < 10) {
    clock_.Advance(Millis(1'000));
    ++waited_s;
    s2_->RunOnce();
  }
  ASSERT_TRUE(all_resumed()) << "not taken over within 10 s";
  EXPECT_GE(waited_s, 6) << "not before the lease (6 s) expired";

  // web-1: diagnostics gathered again, by s2 (new commands besides the copies s1 had sent).
  std::set<std::string> old_ids;
  for (const auto& c : web1_diagnostics) {
    old_ids.insert(c.id);
  }
  for (const char* host : {"web-1", "web-2", "web-3"}) {
    Register(*s2_, host);  // their agents fail over to s2
  }
  Drain("s2");
  std::vector<protocol::Command> again;
  for (const auto& c : Poll(*s2_, "web-1")) {
    if (old_ids.count(c.id) == 0) {
      again.push_back(c);
    }
  }
  ASSERT_EQ(again.size(), 3u);  // the runbook's two diagnostics and host.changes
  for (const auto& c : again) {
    PostResult(*s2_, "web-1", c, "output");
  }
  EXPECT_EQ(WaitForStatus("web-1", IncidentStatus::kPendingApproval).status,
            IncidentStatus::kPendingApproval);

  // web-2: waiting for approval again; approved on s2, which drives it now.
  const Incident web2 = WaitForStatus("web-2", IncidentStatus::kPendingApproval);
  ASSERT_EQ(Call(*s2_, "POST", "/api/v1/incidents/" + web2.incident_id + "/approve", Admin(),
                 Json{{"action_hash", ActionHash(web2)}})
                .status,
            200);
  WaitForStatus("web-2", IncidentStatus::kExecuting);

  // web-3: the fix in flight is offered once, under its own id; no new fix command exists.
  Drain("s2");
  const std::vector<protocol::Command> offered = Poll(*s2_, "web-3");
  ASSERT_EQ(offered.size(), 1u);
  EXPECT_EQ(offered[0].id, fix[0].id);
  EXPECT_EQ(offered[0].action, "process.kill");
  const Incident resumed = WaitForStatus("web-3", IncidentStatus::kExecuting);
  EXPECT_EQ(resumed.action.value("command_id", ""), fix[0].id);
  EXPECT_EQ(Count(resumed, "executing"), 1);
  // The agent answers the repeat with its stored result; the alarm ends it.
  PostResult(*s2_, "web-3", offered[0], "killed 1 process");
  WaitFor(
      "web-3", [](const Incident& inc) { return Count(inc, "verifying") == 1; }, "verifying");
  clock_.Advance(Millis(1'000));
  ReportMemory(*s2_, "web-3", 40);
  const Incident done = WaitForStatus("web-3", IncidentStatus::kCompleted);
  EXPECT_EQ(Count(done, "verified"), 1);
  EXPECT_EQ(view_->ListIncidents({}).value().size(), 3u) << "none lost, none opened twice";
}

}  // namespace
}  // namespace medic::server
