// ServerApp driven without sockets or threads: requests through its route table, the tick by
// hand, dependencies of the test's choosing.

#include "server/app/server_app.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "ai/brain.h"
#include "core/files.h"
#include "protocol/actions.h"
#include "protocol/wire.h"
#include "tests/server/call_route.h"
#include "tests/fakes/fake_brain.h"
#include "tests/fakes/faulty_store.h"
#include "tests/fakes/memory_store.h"
#include "tests/fakes/temp_dir.h"
#include "tests/server/enroll_host.h"

namespace medic::server {
namespace {

class ServerAppTest : public ::testing::Test {
 protected:
  ServerAppTest() { config_.data_dir = dir_.File("data"); }

  std::unique_ptr<Store> SqliteStore() {
    return std::move(OpenSqliteStore(dir_.File("medic.db")).value());
  }

  void Create(std::unique_ptr<Store> store,
              std::unique_ptr<ai::Brain> brain = std::make_unique<ai::RunbookBrain>()) {
    auto app = ServerApp::Create(config_, ServerDeps{&clock_, std::move(store), std::move(brain)});
    ASSERT_TRUE(app.has_value()) << app.error().ToString();
    app_ = std::move(*app);
  }

  // One request through the app's route table, as its HTTP server would hand it over.
  ApiResponse Call(const std::string& method, const std::string& path, const std::string& token,
                   const Json& body = Json::object(),
                   std::map<std::string, std::string> query = {}) {
    ApiRequest req;
    req.method = method;
    req.path = path;
    req.query = std::move(query);
    req.authorization = token.empty() ? "" : "Bearer " + token;
    req.body = DumpJson(body);
    return test::CallRoute(app_->router(), std::move(req));
  }

  // A token the app wrote into its data directory.
  std::string Token(const std::string& file) {
    return std::string(Trim(ReadFile(dir_.File("data/" + file)).value()));
  }

  // Host web-1's own credential, enrolled (through the route table) on first use.
  std::string Web1() {
    if (web1_.empty()) {
      web1_ = test::EnrollHost(
          [this](const std::string& method, const std::string& path, const std::string& token,
                 const std::string& body) {
            const ApiResponse r = Call(method, path, token,
                                       body.empty() ? Json::object() : ParseJson(body).value());
            return std::make_pair(r.status, r.body);
          },
          Token("admin.token"), "web-1");
    }
    return web1_;
  }

  test::TempDir dir_;
  ManualClock clock_;
  ServerConfig config_;
  std::unique_ptr<ServerApp> app_;
  std::string web1_;
};

TEST_F(ServerAppTest, CreateRefusesMissingDependencies) {
  struct Case {
    std::string name;
    bool clock, store, brain;
  };
  const std::vector<Case> cases = {
      {"no clock", false, true, true},
      {"no store", true, false, true},
      {"no brain", true, true, false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    ServerDeps deps;
    deps.clock = c.clock ? &clock_ : nullptr;
    deps.store = c.store ? SqliteStore() : nullptr;
    deps.brain = c.brain ? std::make_unique<ai::RunbookBrain>() : nullptr;
    auto app = ServerApp::Create(config_, std::move(deps));
    ASSERT_FALSE(app.has_value());
    EXPECT_EQ(app.error().code, ErrorCode::kInvalidArgument);
  }
}

// A store whose reachability the test sets (PostgreSQL down, say), counting the checks.
class ReachableStore : public test::MemoryStore {
 public:
  Status Ping() override {
    ++pings;
    if (down) {
      return Unavailable("PostgreSQL at db1:5432: connection refused");
    }
    return OkStatus();
  }
  std::atomic<bool> down{false};
  std::atomic<int> pings{0};
};

TEST_F(ServerAppTest, HealthzSaysWhenTheStoreIsUnreachableCheckingAtMostOnceASecond) {
  auto owned = std::make_unique<ReachableStore>();
  ReachableStore* store = owned.get();
  Create(std::move(owned));
  EXPECT_EQ(Call("GET", "/healthz", "").status, 200);
  store->down = true;
  // Within the second the last answer stands, however many ask.
  const int pings = store->pings;
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(Call("GET", "/healthz", "").status, 200);
  }
  EXPECT_EQ(store->pings, pings);
  clock_.Advance(std::chrono::milliseconds(1001));
  ApiResponse down = Call("GET", "/healthz", "");
  EXPECT_EQ(down.status, 503);
  const Json body = ParseJson(down.body).value_or(Json());
  EXPECT_EQ(body.value("status", ""), "unavailable") << down.body;
  EXPECT_EQ(body.value("store", ""), "PostgreSQL at db1:5432: connection refused") << down.body;
  EXPECT_EQ(store->pings, pings + 1);
  store->down = false;
  clock_.Advance(std::chrono::milliseconds(1001));
  EXPECT_EQ(Call("GET", "/healthz", "").status, 200);
}

TEST_F(ServerAppTest, MetricsCountIncidentsTheStoreCouldNotKeep) {
  test::MemoryStore memory;
  auto faulty = std::make_unique<test::FaultyStore>(memory);
  faulty->FailAlways(test::StoreOp::kCreateIncident);  // a full disk, say
  test::FaultyStore* store = faulty.get();
  // FaultyStore forwards to `memory`, which this test keeps alive past the app.
  Create(std::move(faulty));
  const std::string agent = Web1();
  protocol::RegisterRequest reg;
  reg.name = "web-1";
  ASSERT_EQ(Call("POST", "/agent/v1/register", agent, protocol::ToJson(reg)).status, 200);
  protocol::Report report;
  report.host = "web-1";
  report.samples = {{clock_.Now(), {{"disk_used_percent", 97}}}};

  ASSERT_EQ(Call("POST", "/agent/v1/report", agent, protocol::ToJson(report)).status, 200);
  app_->RunOnce();

  EXPECT_EQ(store->failed(test::StoreOp::kCreateIncident), 1);
  const ApiResponse metrics = Call("GET", "/metrics", Token("admin.token"));
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("# TYPE medic_incident_store_errors_total counter\n"
                              "medic_incident_store_errors_total 1\n"),
            std::string::npos)
      << metrics.body;
  app_.reset();
}

// One incident from the first report to its verified end, with the store and the brain the test
// gave the app: the agent's side is played through the agent routes, the operator's through the
// API, the brain's answer is the fake's, and every record lands in the in-memory store.
class ServerAppIncidentTest : public ServerAppTest {
 protected:
  // The commands queued for web-1. The incident's status is written before its commands are
  // queued, so a poll right after may park and come back empty: poll until some come.
  std::vector<protocol::Command> Poll() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (true) {
      const ApiResponse r = Call("GET", "/agent/v1/commands", Web1(), Json::object(),
                                 {{"host", "web-1"}, {"wait_ms", "0"}});
      EXPECT_EQ(r.status, 200) << r.body;
      auto batch = protocol::CommandBatchFromJson(ParseJson(r.body).value_or(Json()));
      EXPECT_TRUE(batch.has_value()) << r.body;
      if (!batch || !batch->commands.empty() || std::chrono::steady_clock::now() > deadline) {
        return batch ? batch->commands : std::vector<protocol::Command>{};
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  void PostResult(const protocol::Command& c, const std::string& output) {
    protocol::CommandResult r;
    r.id = c.id;
    r.host = "web-1";
    r.ran = true;
    r.exit_code = 0;
    r.output = output;
    ASSERT_EQ(
        Call("POST", "/agent/v1/results", Web1(), protocol::ToJson(r)).status, 200);
  }
  void ReportMemory(double percent) {
    protocol::Report report;
    report.host = "web-1";
    report.samples = {{clock_.Now(), {{"mem_used_percent", percent}}}};
    ASSERT_EQ(
        Call("POST", "/agent/v1/report", Web1(), protocol::ToJson(report)).status,
        200);
  }
  // The only incident in the store, once it has `status` (decisions are applied on the app's
  // decision thread: waited for, bounded).
  Incident WaitForStatus(IncidentStatus status) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    Incident last;
    while (std::chrono::steady_clock::now() < deadline) {
      auto list = view_->ListIncidents({});
      if (list && list->size() == 1) {
        last = list->front();
        if (last.status == status) {
          return last;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ADD_FAILURE() << "no incident reached " << StatusName(status) << "; last seen "
                  << StatusName(last.status);
    return last;
  }

  test::MemoryStore memory_;
  std::unique_ptr<test::MemoryStore> view_ = memory_.Share();
};

TEST_F(ServerAppIncidentTest, FromReportToVerifiedFixWithTheInjectedStoreAndBrain) {
  auto brain = std::make_unique<test::FakeBrain>();
  test::FakeBrain* fake = brain.get();
  ai::Decision decision;
  decision.action = protocol::ValidateAction(
                        "process.kill", {{"pattern", "memhog"}, {"signal", "TERM"}})
                        .value();
  decision.reasoning = "memhog holds 6 GiB (fake brain)";
  decision.source = "fake";
  fake->AnswerAlways(decision);
  Create(memory_.Share(), std::move(brain));

  protocol::RegisterRequest reg;
  reg.name = "web-1";
  ASSERT_EQ(Call("POST", "/agent/v1/register", Web1(), protocol::ToJson(reg)).status,
            200);
  ReportMemory(97);

  // diagnosing: the runbook's diagnostics go to the host; the agent answers them.
  const Incident opened = WaitForStatus(IncidentStatus::kDiagnosing);
  EXPECT_EQ(opened.alarm_name, "Memory-Exhaustion-ASG");
  EXPECT_EQ(opened.instance_id, "web-1");
  const std::vector<protocol::Command> diagnostics = Poll();
  ASSERT_EQ(diagnostics.size(), 3u);
  EXPECT_EQ(diagnostics[0].action, "memory.usage");
  EXPECT_EQ(diagnostics[1].action, "process.top");
  EXPECT_EQ(diagnostics[2].action, "host.changes");  // what changed (docs/AUTONOMY.md)
  for (const auto& c : diagnostics) {
    PostResult(c, "output of " + c.action);
  }

  // The fake brain decided (on the app's decision thread); approval mode is on by default.
  const Incident pending = WaitForStatus(IncidentStatus::kPendingApproval);
  ASSERT_EQ(fake->calls(), 1u);
  const ai::DecisionRequest asked = fake->requests().front();
  EXPECT_EQ(asked.incident.incident_id, opened.incident_id);
  EXPECT_EQ(asked.incident.alarm_name, "Memory-Exhaustion-ASG");
  EXPECT_NE(asked.incident.diagnostics.find("output of process.top"), std::string::npos);
  EXPECT_EQ(asked.runbook.alarm, "Memory-Exhaustion-ASG");
  EXPECT_EQ(pending.ai_suggestion, "process.kill pattern=memhog signal=TERM");
  EXPECT_EQ(pending.ai_reasoning, "memhog holds 6 GiB (fake brain)");

  // An operator approves: the brain's action goes to the host.
  const ApiResponse approved = Call("POST", "/api/v1/incidents/" + opened.incident_id + "/approve",
                                    Token("admin.token"),
                                    Json{{"action_hash", ActionHash(pending)}, {"comment", "go"}});
  ASSERT_EQ(approved.status, 200) << approved.body;
  EXPECT_EQ(WaitForStatus(IncidentStatus::kExecuting).incident_id, opened.incident_id);
  const std::vector<protocol::Command> fix = Poll();
  ASSERT_EQ(fix.size(), 1u);
  EXPECT_EQ(fix[0].action, "process.kill");
  EXPECT_EQ(fix[0].params.value("pattern", ""), "memhog");
  PostResult(fix[0], "killed 1 process");

  // Memory back under the threshold: verified.
  clock_.Advance(Millis(1'000));
  ReportMemory(40);
  app_->RunOnce();
  const Incident done = WaitForStatus(IncidentStatus::kCompleted);
  EXPECT_TRUE(done.resolved_at.has_value());
  EXPECT_NE(done.remediation_output.find("killed 1 process"), std::string::npos);
  std::vector<std::string> events;
  for (const auto& e : done.timeline) {
    events.push_back(e.event);
  }
  EXPECT_EQ(events, (std::vector<std::string>{"created", "diagnosed", "suggested",
                                              "awaiting_approval", "approved", "executing",
                                              "executed", "verifying", "verified", "completed"}));
  // The host's registration went to the injected store as well.
  auto hosts = view_->ListHosts();
  ASSERT_TRUE(hosts.has_value());
  ASSERT_EQ(hosts->size(), 1u);
  EXPECT_EQ(hosts->front().name, "web-1");
  app_.reset();
}

// The report of a real incident through the real route: the chart shows the points the host
// reported, read from the app's metric history, with the alarm's threshold.
TEST_F(ServerAppIncidentTest, ReportChartsTheAlarmMetricTheHostReported) {
  Create(memory_.Share());
  protocol::RegisterRequest reg;
  reg.name = "web-1";
  ASSERT_EQ(Call("POST", "/agent/v1/register", Web1(), protocol::ToJson(reg)).status,
            200);
  for (double percent : {40.0, 55.0, 93.0, 97.0}) {  // Memory-Exhaustion-ASG: > 90
    ReportMemory(percent);
    clock_.Advance(Millis(1'000));
  }
  const Incident inc = WaitForStatus(IncidentStatus::kDiagnosing);
  const std::string path = "/api/v1/incidents/" + inc.incident_id + "/report";

  const ApiResponse html = Call("GET", path, Token("admin.token"), Json::object(),
                                {{"format", "html"}});
  ASSERT_EQ(html.status, 200) << html.body;
  const size_t svg = html.body.find("<svg");
  ASSERT_NE(svg, std::string::npos) << html.body;
  const std::string chart = html.body.substr(svg, html.body.find("</svg>") - svg);
  const size_t points_at = chart.find("<polyline class=\"metric\"");
  ASSERT_NE(points_at, std::string::npos) << chart;
  const size_t values = chart.find("points=\"", points_at) + 8;
  const std::string points = chart.substr(values, chart.find('"', values) - values);
  // Every point reported (the 97 came after the incident opened on the 93; an open incident's
  // window runs to now): one "x,y" each.
  EXPECT_EQ(std::count(points.begin(), points.end(), ','), 4) << points;
  EXPECT_NE(chart.find("&gt; 90</text>"), std::string::npos) << chart;
  EXPECT_NE(chart.find("mem_used_percent on web-1"), std::string::npos);
  EXPECT_NE(html.body.find("<td>Time to detect</td><td>0 ms</td><td>first datapoint &gt; 90 (93 at"),
            std::string::npos)
      << html.body;

  const ApiResponse md = Call("GET", path, Token("admin.token"));
  ASSERT_EQ(md.status, 200) << md.body;
  EXPECT_NE(md.body.find("## Alarm metric\n\n```\n"), std::string::npos) << md.body;
  EXPECT_NE(md.body.find("| Series | mem_used_percent |"), std::string::npos) << md.body;
  app_.reset();
}

}  // namespace
}  // namespace medic::server
