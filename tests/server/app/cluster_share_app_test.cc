// Two whole medic-servers on one shared store (a MemoryStore shared by Share(), as two
// connections to one database), each with its own data directory and a StoreBus on that store:
// what one server changes, the other shows (settings and the kill switch, tokens, host
// credentials, removed hosts, server-sent events). Driven without sockets or threads: requests
// through each app's route table, the ticks and the buses' reads by hand (Sync).

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ai/brain.h"
#include "core/files.h"
#include "protocol/wire.h"
#include "server/app/server_app.h"
#include "server/cluster/store_bus.h"
#include "tests/fakes/memory_store.h"
#include "tests/fakes/temp_dir.h"
#include "tests/server/call_route.h"
#include "tests/server/enroll_host.h"

namespace medic::server {
namespace {

class ClusterAppTest : public ::testing::Test {
 protected:
  // One server of the cluster: its app, its bus (read by hand), its admin token.
  struct Node {
    std::unique_ptr<test::MemoryStore> bus_store;  // the bus's own connection
    StoreBus* bus = nullptr;                       // owned by the app
    std::unique_ptr<ServerApp> app;
    std::string admin;
  };

  void SetUp() override {
    for (int i = 0; i < 2; ++i) {
      Node& n = nodes_[i];
      ServerConfig config;
      config.data_dir = dir_.File("data" + std::to_string(i + 1));
      n.bus_store = data_.Share();
      StoreBusOptions options;
      options.start = false;  // Sync reads the log
      auto bus = OpenStoreBus(*n.bus_store, "s" + std::to_string(i + 1), clock_, options);
      ASSERT_TRUE(bus.has_value()) << bus.error().ToString();
      n.bus = bus->get();
      ServerDeps deps{&clock_, data_.Share(), std::make_unique<ai::RunbookBrain>()};
      deps.bus = std::move(*bus);
      auto app = ServerApp::Create(config, std::move(deps));
      ASSERT_TRUE(app.has_value()) << app.error().ToString();
      n.app = std::move(*app);
      n.admin = std::string(Trim(ReadFile(config.data_dir + "/admin.token").value()));
    }
  }
  void TearDown() override {
    for (Node& n : nodes_) {
      n.app.reset();
    }
  }

  ApiResponse Call(int server, const std::string& method, const std::string& path,
                   const std::string& token, const Json& body = Json::object(),
                   std::map<std::string, std::string> query = {}) {
    ApiRequest req;
    req.method = method;
    req.path = path;
    req.query = std::move(query);
    req.authorization = token.empty() ? "" : "Bearer " + token;
    req.body = DumpJson(body);
    return test::CallRoute(nodes_[server - 1].app->router(), std::move(req));
  }

  // Each server's tick (posts its events), each bus's read, each tick again (applies reloads).
  void Sync() {
    for (int round = 0; round < 2; ++round) {
      for (Node& n : nodes_) {
        n.app->RunOnce();
      }
      for (Node& n : nodes_) {
        ASSERT_TRUE(n.bus->RunOnce().has_value());
      }
    }
    for (Node& n : nodes_) {
      n.app->RunOnce();
    }
  }

  test::CallFn Caller(int server) {
    return [this, server](const std::string& method, const std::string& path,
                          const std::string& token, const std::string& body) {
      const ApiResponse r = Call(server, method, path, token,
                                 body.empty() ? Json::object() : ParseJson(body).value());
      return std::make_pair(r.status, r.body);
    };
  }

  test::TempDir dir_;
  ManualClock clock_;
  test::MemoryStore data_;
  Node nodes_[2];
};

TEST_F(ClusterAppTest, SettingsAndTheKillSwitchChangedOnOneServerHoldOnTheOther) {
  const ApiResponse put = Call(1, "PUT", "/api/v1/settings", nodes_[0].admin,
                               Json{{"approval_mode", false}, {"automation_paused", true}});
  ASSERT_EQ(put.status, 200) << put.body;
  Sync();
  const ApiResponse got = Call(2, "GET", "/api/v1/settings", nodes_[1].admin);
  ASSERT_EQ(got.status, 200);
  const Json s = ParseJson(got.body).value();
  EXPECT_EQ(s["approval_mode"], false);
  EXPECT_EQ(s["automation_paused"], true);

  // And server 2 acts on it: an incident it drives waits for a human because automation is
  // paused (not because of its own, stale, approval mode).
  const std::string web1 = test::EnrollHost(Caller(2), nodes_[1].admin, "web-1");
  protocol::RegisterRequest reg;
  reg.name = "web-1";
  ASSERT_EQ(Call(2, "POST", "/agent/v1/register", web1, protocol::ToJson(reg)).status, 200);
  protocol::Report report;
  report.host = "web-1";
  report.samples = {{clock_.Now(), {{"mem_used_percent", 97}}}};
  ASSERT_EQ(Call(2, "POST", "/agent/v1/report", web1, protocol::ToJson(report)).status, 200);
  auto commands = [&] {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (;;) {
      const ApiResponse r = Call(2, "GET", "/agent/v1/commands", web1, Json::object(),
                                 {{"host", "web-1"}, {"wait_ms", "0"}});
      auto batch = protocol::CommandBatchFromJson(ParseJson(r.body).value_or(Json()));
      if (!batch || !batch->commands.empty() || std::chrono::steady_clock::now() > deadline) {
        return batch ? batch->commands : std::vector<protocol::Command>{};
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  };
  for (const protocol::Command& c : commands()) {
    protocol::CommandResult r;
    r.id = c.id;
    r.host = "web-1";
    r.ran = true;
    r.output = "output of " + c.action;
    ASSERT_EQ(Call(2, "POST", "/agent/v1/results", web1, protocol::ToJson(r)).status, 200);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::string why;
  while (why.empty() && std::chrono::steady_clock::now() < deadline) {
    auto list = data_.ListIncidents({});
    ASSERT_TRUE(list.has_value());
    if (list->size() == 1 && list->front().status == IncidentStatus::kPendingApproval) {
      for (const TimelineEntry& e : list->front().timeline) {
        if (e.event == "awaiting_approval") {
          why = e.detail;
        }
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(why, "automation is paused");
}

TEST_F(ClusterAppTest, ATokenMadeOnOneServerWorksOnTheOtherAndStopsWhenRevoked) {
  const ApiResponse made = Call(1, "POST", "/api/v1/tokens", nodes_[0].admin,
                                Json{{"name", "vera"}, {"role", "viewer"}});
  ASSERT_EQ(made.status, 201) << made.body;
  const std::string vera = ParseJson(made.body).value()["token"].get<std::string>();
  EXPECT_EQ(Call(1, "GET", "/api/v1/settings", vera).status, 200);
  Sync();
  EXPECT_EQ(Call(2, "GET", "/api/v1/settings", vera).status, 200);

  ASSERT_EQ(Call(1, "DELETE", "/api/v1/tokens/vera", nodes_[0].admin).status, 200);
  Sync();
  EXPECT_EQ(Call(2, "GET", "/api/v1/settings", vera).status, 401);
  EXPECT_EQ(Call(1, "GET", "/api/v1/settings", vera).status, 401);
}

TEST_F(ClusterAppTest, AHostEnrolledOnOneServerPollsTheOtherAndARemovedHostIsGoneFromBoth) {
  const std::string web1 = test::EnrollHost(Caller(1), nodes_[0].admin, "web-1");
  ASSERT_FALSE(web1.empty());
  Sync();
  protocol::RegisterRequest reg;
  reg.name = "web-1";
  ASSERT_EQ(Call(2, "POST", "/agent/v1/register", web1, protocol::ToJson(reg)).status, 200);
  auto names = [&](int server) {
    std::vector<std::string> out;
    const ApiResponse r = Call(server, "GET", "/api/v1/hosts", nodes_[server - 1].admin);
    EXPECT_EQ(r.status, 200) << r.body;
    const Json body = ParseJson(r.body).value_or(Json::object());
    for (const Json& h : body.value("hosts", Json::array())) {
      out.push_back(h["name"].get<std::string>());
    }
    return out;
  };
  ASSERT_EQ(names(2), std::vector<std::string>{"web-1"});

  const ApiResponse removed = Call(1, "DELETE", "/api/v1/hosts/web-1", nodes_[0].admin);
  ASSERT_EQ(removed.status, 200) << removed.body;
  Sync();
  EXPECT_TRUE(names(2).empty());
  EXPECT_TRUE(names(1).empty());

  // A host revoked on server 1 is cut off on server 2.
  const std::string web2 = test::EnrollHost(Caller(1), nodes_[0].admin, "web-2");
  Sync();
  reg.name = "web-2";
  ASSERT_EQ(Call(2, "POST", "/agent/v1/register", web2, protocol::ToJson(reg)).status, 200);
  ASSERT_EQ(Call(1, "POST", "/api/v1/hosts/web-2/revoke", nodes_[0].admin).status, 200);
  Sync();
  EXPECT_EQ(Call(2, "POST", "/agent/v1/register", web2, protocol::ToJson(reg)).status, 401);
}

// The frames a subscriber of one server's event hub received.
class Frames {
 public:
  void Subscribe(EventHub& hub) {
    auto admission = hub.Admit("test");
    ASSERT_TRUE(admission.has_value());
    EventSubscriber s;
    s.write = [this](std::string frame) {
      std::lock_guard<std::mutex> lock(mu_);
      frames_.push_back(std::move(frame));
      return true;
    };
    hub.Subscribe(std::move(*admission), std::move(s));
  }
  int Count(const std::string& needle) const {
    std::lock_guard<std::mutex> lock(mu_);
    int n = 0;
    for (const std::string& f : frames_) {
      n += f.find(needle) != std::string::npos ? 1 : 0;
    }
    return n;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> frames_;
};

TEST_F(ClusterAppTest, EventsOfEitherServerReachTheSubscribersOfBothOnce) {
  Frames on1, on2;
  on1.Subscribe(nodes_[0].app->events());
  on2.Subscribe(nodes_[1].app->events());
  ASSERT_EQ(
      Call(1, "PUT", "/api/v1/settings", nodes_[0].admin, Json{{"automation_paused", true}}).status,
      200);
  nodes_[1].app->events().Publish("host_removed", Json{{"name", "from-two"}});
  Sync();
  Sync();  // a republished event is not posted again: still once everywhere
  EXPECT_EQ(on1.Count("event: settings\n"), 1);
  EXPECT_EQ(on2.Count("event: settings\n"), 1);
  EXPECT_EQ(on2.Count("\"automation_paused\":true"), 1);
  EXPECT_EQ(on1.Count("from-two"), 1);
  EXPECT_EQ(on2.Count("from-two"), 1);
}

// web-1 reports to server 1 only. While server 1 lives, server 2 raises nothing for it; once
// server 1 is gone (kill -9: nothing more from it), server 2 notices the silence in the store and
// raises Host-Unreachable for web-1, once.
TEST_F(ClusterAppTest, AHostSilentAfterItsServerDiedRaisesHostUnreachableOnceOnTheSurvivor) {
  const std::string web1 = test::EnrollHost(Caller(1), nodes_[0].admin, "web-1");
  protocol::RegisterRequest reg;
  reg.name = "web-1";
  ASSERT_EQ(Call(1, "POST", "/agent/v1/register", web1, protocol::ToJson(reg)).status, 200);
  auto unreachable = [&] {
    IncidentQuery q;
    q.alarm_name = "Host-Unreachable";
    auto list = data_.ListIncidents(q);
    EXPECT_TRUE(list.has_value());
    return list.has_value() ? list->size() : 0u;
  };
  // Four minutes of reports to server 1, every 5 s (its last-seen writes: once a minute).
  for (int s = 0; s < 240; ++s) {
    clock_.Advance(Millis(1'000));
    if (s % 5 == 0) {
      protocol::Report report;
      report.host = "web-1";
      report.samples = {{clock_.Now(), {{"mem_used_percent", 20}}}};
      ASSERT_EQ(Call(1, "POST", "/agent/v1/report", web1, protocol::ToJson(report)).status, 200);
    }
    Sync();
  }
  EXPECT_EQ(unreachable(), 0u);

  nodes_[0].app.reset();  // server 1 dies; web-1's agent has no other server
  for (int s = 0; s < 240; ++s) {
    clock_.Advance(Millis(1'000));
    nodes_[1].app->RunOnce();
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (unreachable() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_EQ(unreachable(), 1u);
  IncidentQuery q;
  q.alarm_name = "Host-Unreachable";
  EXPECT_EQ(data_.ListIncidents(q).value().front().instance_id, "web-1");
  // More sweeps and ticks: still the one incident.
  for (int s = 0; s < 60; ++s) {
    clock_.Advance(Millis(1'000));
    nodes_[1].app->RunOnce();
  }
  EXPECT_EQ(unreachable(), 1u);
}

// web-1's memory alarm goes off on server 1 (an incident opens there); its agent fails over to
// server 2 and reports the same: server 2 takes the states over, so no transition is published
// there (no ALARM again, no OK "recovery" of its heartbeat) and no second incident opens.
TEST_F(ClusterAppTest, AHostThatMovesKeepsItsAlarmStatesWithoutNewTransitions) {
  const std::string web1 = test::EnrollHost(Caller(1), nodes_[0].admin, "web-1");
  protocol::RegisterRequest reg;
  reg.name = "web-1";
  auto report = [&](int server) {
    protocol::Report r;
    r.host = "web-1";
    r.samples = {{clock_.Now(), {{"mem_used_percent", 97}}}};
    return Call(server, "POST", "/agent/v1/report", web1, protocol::ToJson(r)).status;
  };
  ASSERT_EQ(Call(1, "POST", "/agent/v1/register", web1, protocol::ToJson(reg)).status, 200);
  ASSERT_EQ(report(1), 200);
  Sync();  // server 1's tick writes the states
  IncidentQuery q;
  q.alarm_name = "Memory-Exhaustion-ASG";
  ASSERT_EQ(data_.ListIncidents(q).value().size(), 1u);

  Frames on2;
  on2.Subscribe(nodes_[1].app->events());
  clock_.Advance(Millis(1'000));
  ASSERT_EQ(Call(2, "POST", "/agent/v1/register", web1, protocol::ToJson(reg)).status, 200);
  ASSERT_EQ(report(2), 200);
  for (int s = 0; s < 5; ++s) {
    clock_.Advance(Millis(1'000));
    ASSERT_EQ(report(2), 200);
    nodes_[1].app->RunOnce();
  }
  EXPECT_EQ(on2.Count("event: alarm\n"), 0);
  EXPECT_EQ(data_.ListIncidents(q).value().size(), 1u);

  // Server 1, which web-1 left, lets it go: a minute of reports to server 2 only, and no
  // Host-Unreachable anywhere.
  for (int s = 0; s < 60; ++s) {
    clock_.Advance(Millis(1'000));
    if (s % 5 == 0) {
      ASSERT_EQ(report(2), 200);
    }
    Sync();
  }
  IncidentQuery unreachable;
  unreachable.alarm_name = "Host-Unreachable";
  EXPECT_EQ(data_.ListIncidents(unreachable).value().size(), 0u);
  // Server 1 still lists web-1, from the store: reporting to server 2, unhealthy (its memory
  // alarm), not stale.
  clock_.Advance(Millis(3'000));  // past the listing's refresh
  const ApiResponse hosts1 = Call(1, "GET", "/api/v1/hosts", nodes_[0].admin);
  ASSERT_EQ(hosts1.status, 200) << hosts1.body;
  const Json listed = ParseJson(hosts1.body).value()["hosts"];
  ASSERT_EQ(listed.size(), 1u) << hosts1.body;
  EXPECT_EQ(listed[0]["name"], "web-1");
  EXPECT_EQ(listed[0]["server"], "s2");
  EXPECT_EQ(listed[0]["status"], "unhealthy");
  EXPECT_TRUE(listed[0]["metrics"].empty());
}

// Every server lists every host of the store, each with the server it reports to. web-1
// reports to server 1 and web-2 to server 2: both servers list both, the same way, with their
// last_seen; one host is fetched by name on either; its metric history is on its own server
// and the other says so (409 naming it). Paging over the merged list sees each host once.
TEST_F(ClusterAppTest, EveryServerListsEveryHostWithTheServerItReportsTo) {
  const std::string web1 = test::EnrollHost(Caller(1), nodes_[0].admin, "web-1");
  const std::string web2 = test::EnrollHost(Caller(1), nodes_[0].admin, "web-2");
  Sync();
  const WallTime registered = clock_.Now();
  auto register_and_report = [&](int server, const std::string& host, const std::string& cred,
                                 double mem) {
    protocol::RegisterRequest reg;
    reg.name = host;
    reg.hostname = host + ".example";
    ASSERT_EQ(Call(server, "POST", "/agent/v1/register", cred, protocol::ToJson(reg)).status, 200);
    protocol::Report r;
    r.host = host;
    r.samples = {{clock_.Now(), {{"mem_used_percent", mem}}}};
    ASSERT_EQ(Call(server, "POST", "/agent/v1/report", cred, protocol::ToJson(r)).status, 200);
  };
  register_and_report(1, "web-1", web1, 20);
  register_and_report(2, "web-2", web2, 20);
  Sync();  // each server's tick writes its hosts' alarm states
  clock_.Advance(Millis(3'000));

  auto hosts = [&](int server, std::map<std::string, std::string> query = {}) {
    const ApiResponse r =
        Call(server, "GET", "/api/v1/hosts", nodes_[server - 1].admin, Json::object(), query);
    EXPECT_EQ(r.status, 200) << r.body;
    return ParseJson(r.body).value_or(Json::object());
  };
  for (int server : {1, 2}) {
    SCOPED_TRACE("listed by server " + std::to_string(server));
    const Json body = hosts(server);
    const Json& list = body["hosts"];
    ASSERT_EQ(list.size(), 2u) << body.dump();
    EXPECT_EQ(list[0]["name"], "web-1");
    EXPECT_EQ(list[0]["server"], "s1");
    EXPECT_EQ(list[0]["status"], "healthy");
    EXPECT_EQ(list[0]["hostname"], "web-1.example");
    EXPECT_EQ(list[0]["last_seen"], FormatRfc3339(registered));
    EXPECT_EQ(list[1]["name"], "web-2");
    EXPECT_EQ(list[1]["server"], "s2");
    EXPECT_EQ(list[1]["status"], "healthy");
    // Metrics and checks are known where the host reports.
    EXPECT_EQ(list[server == 1 ? 0 : 1]["metrics"]["mem_used_percent"], 20);
    EXPECT_TRUE(list[server == 1 ? 1 : 0]["metrics"].empty());
    EXPECT_EQ(body["counts"]["total"], 2);
    EXPECT_EQ(body["counts"]["healthy"], 2);
    EXPECT_EQ(hosts(server, {{"status", "stale"}})["hosts"].size(), 0u);
    EXPECT_EQ(hosts(server, {{"prefix", "web-2"}})["hosts"].size(), 1u);

    // Page by page, one host a page: each once, in order, and then no `next`.
    std::vector<std::string> paged;
    std::map<std::string, std::string> q = {{"limit", "1"}};
    for (int page = 0; page < 5; ++page) {
      const Json b = hosts(server, q);
      for (const Json& h : b["hosts"]) {
        paged.push_back(h["name"].get<std::string>());
      }
      if (!b.contains("next")) {
        break;
      }
      q["after"] = b["next"].get<std::string>();
    }
    EXPECT_EQ(paged, (std::vector<std::string>{"web-1", "web-2"}));

    const ApiResponse one = Call(server, "GET", "/api/v1/hosts/web-1", nodes_[server - 1].admin);
    ASSERT_EQ(one.status, 200) << one.body;
    EXPECT_EQ(ParseJson(one.body).value()["server"], "s1");
    EXPECT_EQ(Call(server, "GET", "/api/v1/hosts/web-9", nodes_[server - 1].admin).status, 404);
  }
  // GET /api/v1/hosts/pending keeps its meaning (the admin's enrolment list).
  const ApiResponse pending = Call(2, "GET", "/api/v1/hosts/pending", nodes_[1].admin);
  ASSERT_EQ(pending.status, 200) << pending.body;
  EXPECT_TRUE(ParseJson(pending.body).value().contains("pending")) << pending.body;

  const std::map<std::string, std::string> mem = {{"metric", "mem_used_percent"}};
  const ApiResponse here =
      Call(1, "GET", "/api/v1/hosts/web-1/metrics", nodes_[0].admin, Json::object(), mem);
  ASSERT_EQ(here.status, 200) << here.body;
  EXPECT_EQ(ParseJson(here.body).value()["points"].size(), 1u);
  const ApiResponse there =
      Call(2, "GET", "/api/v1/hosts/web-1/metrics", nodes_[1].admin, Json::object(), mem);
  EXPECT_EQ(there.status, 409) << there.body;
  EXPECT_NE(there.body.find("reports to server 's1'"), std::string::npos) << there.body;

  // web-1's memory alarm goes off on server 1: server 2 lists it unhealthy.
  clock_.Advance(Millis(1'000));
  protocol::Report hot;
  hot.host = "web-1";
  hot.samples = {{clock_.Now(), {{"mem_used_percent", 97}}}};
  ASSERT_EQ(Call(1, "POST", "/agent/v1/report", web1, protocol::ToJson(hot)).status, 200);
  Sync();
  clock_.Advance(Millis(3'000));
  EXPECT_EQ(hosts(2)["hosts"][0]["status"], "unhealthy");
  EXPECT_EQ(hosts(2, {{"status", "unhealthy"}})["hosts"].size(), 1u);

  // web-1's agent fails over to server 2: server 1 lists it as server 2's at once.
  register_and_report(2, "web-1", web1, 97);
  Sync();
  clock_.Advance(Millis(3'000));
  EXPECT_EQ(hosts(1)["hosts"][0]["server"], "s2");
  EXPECT_EQ(hosts(2)["hosts"][0]["server"], "s2");

  // Both go silent for two minutes: every server lists both stale.
  for (int s = 0; s < 120; ++s) {
    clock_.Advance(Millis(1'000));
    Sync();
  }
  for (int server : {1, 2}) {
    const Json body = hosts(server);
    ASSERT_EQ(body["hosts"].size(), 2u) << body.dump();
    EXPECT_EQ(body["hosts"][0]["status"], "stale") << body.dump();
    EXPECT_EQ(body["hosts"][1]["status"], "stale") << body.dump();
    EXPECT_EQ(body["counts"]["stale"], 2);
  }
}

}  // namespace
}  // namespace medic::server
