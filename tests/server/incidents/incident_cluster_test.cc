// IncidentManager with several servers on one store (docs/DEPLOY.md): incident leases,
// takeover when a server dies, results and alarm transitions from other servers, decisions
// forwarded to the driver. Each "server" is a manager with its own command sink, alarm view and
// store handle (MemoryStore::Share: one database), joined to the others by a MemoryBus.

#include "server/incidents/incident_manager.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "server/incidents/cluster_relay.h"
#include "tests/fakes/faulty_store.h"
#include "tests/fakes/incident_fakes.h"
#include "tests/fakes/memory_bus.h"
#include "tests/fakes/memory_store.h"

namespace medic::server {
namespace {

constexpr Millis kLease{6'000};
constexpr Millis kRenew{2'000};

// What a host was sent, from any thread (bus deliveries run on the bus's thread).
class LockedSink : public CommandSink {
 public:
  void Send(const std::string& host, protocol::Command c) override {
    std::lock_guard<std::mutex> lock(mu_);
    sent_.push_back({host, std::move(c)});
  }
  std::vector<std::pair<std::string, protocol::Command>> sent() const {
    std::lock_guard<std::mutex> lock(mu_);
    return sent_;
  }
  std::vector<protocol::Command> To(const std::string& host) const {
    std::vector<protocol::Command> out;
    for (auto& [h, c] : sent()) {
      if (h == host) {
        out.push_back(c);
      }
    }
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::pair<std::string, protocol::Command>> sent_;
};

// One medic-server's incident part: a manager on its own handle of the shared store.
struct Server {
  Server(const std::string& id, test::MemoryStore& shared, test::MemoryBusHub& hub,
         const Clock& clock, bool faulty = false)
      : handle(shared.Share()), faulty_store(*handle), bus(hub.Join(id)) {
    Store& store = faulty ? static_cast<Store&>(faulty_store) : static_cast<Store&>(*handle);
    settings = std::move(SettingsService::Load(store, Settings{}).value());
    manager = std::make_unique<IncidentManager>(
        store, clock, sink, alarms, *settings, brain, [](std::function<void()> task) { task(); },
        DefaultAlarmRules(), ai::DefaultRunbooks());
    manager->EnableCluster({bus.get(), kLease, kRenew, Millis(5'000)});
    // What SubscribeIncidentRouting subscribes, but commands: this sink is the host's queue.
    IncidentManager* m = manager.get();
    bus->Subscribe("command_result", [m](const ClusterMessage& msg) {
      m->OnRemoteCommandResult(
          protocol::CommandResultFromJson(ParseJson(msg.payload).value()).value());
    });
    bus->Subscribe("alarm_transition", [m](const ClusterMessage& msg) {
      m->OnRemoteAlarmTransition(
          AlarmTransitionFromJson(ParseJson(msg.payload).value()).value());
    });
    bus->Subscribe("decision", [m](const ClusterMessage& msg) { m->OnRemoteDecision(msg); });
    bus->Subscribe("decision_reply", [m](const ClusterMessage& msg) { m->OnDecisionReply(msg); });
    bus->Subscribe("lease", [m](const ClusterMessage& msg) { m->OnLeaseTaken(msg); });
    EXPECT_TRUE(manager->Recover().has_value());
  }
  ~Server() {
    bus.reset();  // no delivery into the manager once it is gone
  }

  std::unique_ptr<test::MemoryStore> handle;
  test::FaultyStore faulty_store;
  LockedSink sink;
  test::FakeAlarms alarms;
  ai::RunbookBrain brain;
  std::unique_ptr<SettingsService> settings;
  std::unique_ptr<test::MemoryBus> bus;
  std::unique_ptr<IncidentManager> manager;
};

std::vector<std::string> Events(const Incident& inc) {
  std::vector<std::string> out;
  for (const auto& e : inc.timeline) {
    out.push_back(e.event);
  }
  return out;
}

AlarmTransition Transition(const std::string& host, AlarmState from, AlarmState to, WallTime at) {
  return {"Nginx-Down-ALB", host, from, to, at, to == AlarmState::kOk ? "0 of 1" : "1 of 1"};
}

// An open Nginx-Down-ALB incident on `host` as a server left it in the store: its `created`
// entry, no action yet (the caller adds what its status needs).
Incident Seeded(const std::string& id, const std::string& host, IncidentStatus status,
                WallTime at) {
  Incident inc;
  inc.incident_id = id;
  inc.alarm_name = "Nginx-Down-ALB";
  inc.alarm_description = "nginx";
  inc.instance_id = host;
  inc.created_at = inc.updated_at = at;
  inc.status = status;
  inc.timeline = {{"created", at, "medic", "seeded"}};
  return inc;
}

class IncidentClusterTest : public ::testing::Test {
 protected:
  Incident Get(const std::string& id) { return store_.GetIncident(id).value(); }
  std::vector<Incident> All() {
    IncidentQuery q;
    q.limit = 1000;
    return ListAllIncidents(store_, q).value();
  }
  // Advances the clock, then one tick of each server, in order.
  void Tick(Millis by, const std::vector<Server*>& servers) {
    clock_.Advance(by);
    for (Server* s : servers) {
      s->manager->RunOnce();
    }
  }

  ManualClock clock_;
  test::MemoryStore store_;
  test::MemoryBusHub hub_;
};

TEST_F(IncidentClusterTest, TheServerThatOpensAnIncidentDrivesItAndTheOthersLeaveItAlone) {
  Server s1("s1", store_, hub_, clock_);
  Server s2("s2", store_, hub_, clock_);
  s1.manager->OnAlarmTransition(
      Transition("web-1", AlarmState::kOk, AlarmState::kAlarm, clock_.Now()));
  s1.bus->Drain();
  s2.bus->Drain();
  ASSERT_EQ(All().size(), 1u);
  const Incident inc = All().front();
  EXPECT_EQ(s1.manager->active_ids(), std::vector<std::string>{inc.incident_id});
  EXPECT_EQ(s1.sink.To("web-1").size(), 2u);  // the runbook's diagnostics
  // s2 saw the ALARM (posted) but opens nothing and writes nothing.
  s2.bus->Drain();
  EXPECT_EQ(s2.manager->active_count(), 0u);
  EXPECT_TRUE(s2.sink.sent().empty());
  // Renewals keep it s1's for as long as s1 lives: longer than a lease (and shorter than the
  // diagnostics' 10 s timeout).
  for (int i = 0; i < 4; ++i) {
    Tick(kRenew, {&s1, &s2});
  }
  EXPECT_EQ(s2.manager->active_count(), 0u);
  EXPECT_EQ(s1.manager->active_count(), 1u);
  EXPECT_EQ(Events(Get(inc.incident_id)), std::vector<std::string>{"created"});
}

// A result reaches the driver from its own agent and again over the bus (or the other way
// round): it is applied once.
TEST_F(IncidentClusterTest, AResultArrivingTwiceIsAppliedOnce) {
  Server s1("s1", store_, hub_, clock_);
  Server s2("s2", store_, hub_, clock_);
  s1.manager->OnAlarmTransition(
      Transition("web-1", AlarmState::kOk, AlarmState::kAlarm, clock_.Now()));
  const std::vector<protocol::Command> diag = s1.sink.To("web-1");
  ASSERT_EQ(diag.size(), 2u);
  // The first result reaches s2 (posted to s1), then the same at s1 directly.
  s2.manager->OnCommandResult(test::OkResult(diag[0].id, "status output"));
  s1.bus->Drain();
  s1.manager->OnCommandResult(test::OkResult(diag[0].id, "status output"));
  // The second: at s1 first, then the copy over the bus from s2.
  s1.manager->OnCommandResult(test::OkResult(diag[1].id, "logs output"));
  s2.manager->OnCommandResult(test::OkResult(diag[1].id, "logs output"));
  s1.bus->Drain();
  const Incident inc = All().front();
  EXPECT_EQ(inc.status, IncidentStatus::kPendingApproval);
  const std::vector<std::string> events = Events(inc);
  EXPECT_EQ(std::count(events.begin(), events.end(), "diagnosed"), 1);
  size_t at = inc.diagnostics.find("status output");
  ASSERT_NE(at, std::string::npos);
  EXPECT_EQ(inc.diagnostics.find("status output", at + 1), std::string::npos) << inc.diagnostics;
  EXPECT_EQ(s2.manager->active_count(), 0u);
}

// Host web-1 reports to s2 now (its agent failed over): the OK that s2 evaluates verifies the
// fix s1 drives, and the end of a verification window reads the latest state the cluster saw.
TEST_F(IncidentClusterTest, AnOkEvaluatedOnAnotherServerVerifiesTheFix) {
  Server s1("s1", store_, hub_, clock_);
  Server s2("s2", store_, hub_, clock_);
  ASSERT_TRUE(s1.settings->Update(Json{{"approval_mode", false}}).has_value());
  s1.manager->OnAlarmTransition(
      Transition("web-1", AlarmState::kOk, AlarmState::kAlarm, clock_.Now()));
  for (const protocol::Command& c : s1.sink.To("web-1")) {
    s2.manager->OnCommandResult(test::OkResult(c.id));
  }
  s1.bus->Drain();
  ASSERT_EQ(All().front().status, IncidentStatus::kExecuting);
  const std::vector<protocol::Command> sent = s1.sink.To("web-1");
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_EQ(sent[2].action, "service.restart");
  // The fix ran; s1's own view still says ALARM (its engine hears nothing from web-1 now).
  s1.alarms.state = AlarmState::kAlarm;
  s2.manager->OnCommandResult(test::OkResult(sent[2].id, "restarted"));
  s1.bus->Drain();
  ASSERT_EQ(All().front().status, IncidentStatus::kExecuting);  // verifying
  clock_.Advance(Millis(1'000));
  s2.manager->OnAlarmTransition(
      Transition("web-1", AlarmState::kAlarm, AlarmState::kOk, clock_.Now()));
  s1.bus->Drain();
  const Incident done = All().front();
  EXPECT_EQ(done.status, IncidentStatus::kCompleted);
  const std::vector<std::string> events = Events(done);
  EXPECT_NE(std::find(events.begin(), events.end(), "verified"), events.end());
  EXPECT_EQ(s1.manager->active_count(), 0u);
  EXPECT_TRUE(s2.sink.sent().empty()) << "s2 drives nothing and sends nothing";
}

// s1 stops renewing (killed): once its lease has expired, the other servers take every one of
// its open incidents over, each exactly once, and resume it as a restart does. 50 incidents in
// every open state, two servers racing for them, ten rounds.
TEST_F(IncidentClusterTest, FiftyIncidentsOfADeadServerAreTakenOverOnceEachAndResumed) {
  for (int round = 0; round < 10; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    test::MemoryStore store;
    const WallTime t0 = clock_.Now();
    constexpr int kIncidents = 50;
    // What s1 left: 50 incidents, each on its own host, in four kinds, all leased by s1.
    auto kind_of = [](int i) { return i % 4; };  // 0 diagnosing, 1 pending, 2 fix in flight,
                                                 // 3 fix expired
    for (int i = 0; i < kIncidents; ++i) {
      Incident inc =
          Seeded("inc-" + std::to_string(round) + "-" + std::to_string(i),
                 "h-" + std::to_string(i), IncidentStatus::kDiagnosing, t0);
      switch (kind_of(i)) {
        case 0:
          inc.status = IncidentStatus::kDiagnosing;
          break;
        case 1:
          inc.status = IncidentStatus::kPendingApproval;
          inc.action = Json{{"name", "service.restart"},
                            {"params", {{"service", "nginx"}}},
                            {"approval_expires_at", FormatRfc3339(t0 + Millis(3'600'000))}};
          inc.ai_suggestion = "service.restart service=nginx";
          break;
        default:
          inc.status = IncidentStatus::kExecuting;
          inc.action = Json{{"name", "service.restart"},
                            {"params", {{"service", "nginx"}}},
                            {"command_id", "cmd-fix-" + std::to_string(i)},
                            {"approved_by", "alice"},
                            {"expires_at", FormatRfc3339(kind_of(i) == 2 ? t0 + Millis(60'000)
                                                                         : t0 + Millis(1'000))}};
          inc.ai_suggestion = "service.restart service=nginx";
          break;
      }
      ASSERT_TRUE(store.CreateIncident(inc).has_value());
      ASSERT_TRUE(store.ClaimIncidentLease(inc.incident_id, "s1", t0, t0 + kLease).value());
    }
    Server s2("s2", store, hub_, clock_);
    Server s3("s3", store, hub_, clock_);
    // While s1's leases hold, nobody touches its incidents.
    Tick(kLease - Millis(1), {&s2, &s3});
    EXPECT_EQ(s2.manager->active_count() + s3.manager->active_count(), 0u);
    EXPECT_TRUE(s2.sink.sent().empty());
    EXPECT_TRUE(s3.sink.sent().empty());

    // Expired, and the next sweep of each is due: both sweep at once (takeover within
    // lease + renew).
    clock_.Advance(kRenew);
    std::thread a([&] { s2.manager->RunOnce(); });
    std::thread b([&] { s3.manager->RunOnce(); });
    a.join();
    b.join();
    s2.bus->Drain();
    s3.bus->Drain();
    std::vector<std::string> driven = s2.manager->active_ids();
    const std::vector<std::string> by_s3 = s3.manager->active_ids();
    driven.insert(driven.end(), by_s3.begin(), by_s3.end());
    std::set<std::string> unique(driven.begin(), driven.end());
    EXPECT_EQ(driven.size(), static_cast<size_t>(kIncidents)) << "none lost, none twice";
    EXPECT_EQ(unique.size(), static_cast<size_t>(kIncidents));

    for (int i = 0; i < kIncidents; ++i) {
      const Incident inc =
          store.GetIncident("inc-" + std::to_string(round) + "-" + std::to_string(i)).value();
      SCOPED_TRACE(inc.incident_id);
      const std::vector<std::string> events = Events(inc);
      EXPECT_EQ(std::count(events.begin(), events.end(), "resumed"), 1);
      EXPECT_NE(inc.timeline.back().detail.find("taken over by server s"), std::string::npos)
          << inc.timeline.back().detail;
      std::vector<protocol::Command> sent = s2.sink.To(inc.instance_id);
      for (const auto& c : s3.sink.To(inc.instance_id)) {
        sent.push_back(c);
      }
      switch (kind_of(i)) {
        case 0:  // diagnostics gathered again
          EXPECT_EQ(inc.status, IncidentStatus::kDiagnosing);
          ASSERT_EQ(sent.size(), 2u);
          EXPECT_EQ(sent[0].action, "service.status");
          break;
        case 1:  // waits again: nothing sent
          EXPECT_EQ(inc.status, IncidentStatus::kPendingApproval);
          EXPECT_TRUE(sent.empty());
          break;
        case 2:  // the same command offered again, never a new one
          EXPECT_EQ(inc.status, IncidentStatus::kExecuting);
          ASSERT_EQ(sent.size(), 1u);
          EXPECT_EQ(sent[0].id, "cmd-fix-" + std::to_string(i));
          break;
        case 3:  // expired: not sent again; the alarm decides
          EXPECT_EQ(inc.status, IncidentStatus::kExecuting);
          EXPECT_TRUE(sent.empty());
          break;
      }
    }
    // The expired fixes end by their alarm: OK on a server that does not drive them verifies
    // those it drives, and the rest the other one.
    for (int i = 3; i < kIncidents; i += 4) {
      s2.manager->OnAlarmTransition(Transition("h-" + std::to_string(i), AlarmState::kAlarm,
                                               AlarmState::kOk, clock_.Now()));
    }
    s2.bus->Drain();
    s3.bus->Drain();
    for (int i = 3; i < kIncidents; i += 4) {
      EXPECT_EQ(store.GetIncident("inc-" + std::to_string(round) + "-" + std::to_string(i))
                    ->status,
                IncidentStatus::kCompleted)
          << i;
    }
    // Nothing stays stuck: no server drives an incident twice, and no open incident is
    // claimable any more (each has a live lease).
    Tick(kRenew, {&s2, &s3});
    EXPECT_TRUE(store.ListClaimableIncidents(clock_.Now(), clock_.Now(), 1000)->empty());
    EXPECT_EQ(s2.manager->active_count() + s3.manager->active_count(),
              static_cast<size_t>(kIncidents - kIncidents / 4));
  }
}

// s1 died while its fix's result was being verified (the result is in the record: executed,
// verifying): s2 takes it over without offering the fix again, though its command has not
// expired (the outcome is known; found by cluster_kill_test, where the repeat reached the host
// and its answer was executed again), and the alarm's OK completes it.
TEST_F(IncidentClusterTest, ATakeoverDuringVerificationDoesNotSendTheFixAgain) {
  const WallTime t0 = clock_.Now();
  Incident inc = Seeded("inc-verifying", "web-1", IncidentStatus::kExecuting, t0);
  inc.action = Json{{"name", "service.restart"},
                    {"params", {{"service", "nginx"}}},
                    {"command_id", "cmd-fix"},
                    {"approved_by", "alice"},
                    {"expires_at", FormatRfc3339(t0 + Millis(60'000))}};
  inc.ai_suggestion = "service.restart service=nginx";
  inc.remediation_output = "restarted";
  inc.timeline = {inc.timeline.front(),
                  {"approved", t0, "alice", ""},
                  {"executing", t0, "medic", ""},
                  {"executed", t0, "medic", "exit 0 in 3 ms"},
                  {"verifying", t0, "medic", "waiting up to 30 s"}};
  ASSERT_TRUE(store_.CreateIncident(inc).has_value());
  ASSERT_TRUE(store_.ClaimIncidentLease(inc.incident_id, "s1", t0, t0 + kLease).value());

  Server s2("s2", store_, hub_, clock_);
  Tick(kLease, {&s2});
  Tick(kRenew, {&s2});
  ASSERT_EQ(s2.manager->active_ids(), std::vector<std::string>{"inc-verifying"});
  EXPECT_TRUE(s2.sink.sent().empty()) << "the fix was offered again: "
                                      << s2.sink.sent().front().second.id;
  Incident taken = Get("inc-verifying");
  EXPECT_EQ(taken.status, IncidentStatus::kExecuting);
  EXPECT_EQ(taken.timeline.back().event, "resumed");
  EXPECT_NE(taken.timeline.back().detail.find("not sent again"), std::string::npos)
      << taken.timeline.back().detail;

  // A late answer of the command changes nothing; the alarm's OK verifies the fix.
  s2.manager->OnCommandResult(test::OkResult("cmd-fix", "restarted"));
  const std::vector<std::string> events = Events(Get("inc-verifying"));
  EXPECT_EQ(std::count(events.begin(), events.end(), "executed"), 1);
  s2.manager->OnAlarmTransition(
      Transition("web-1", AlarmState::kAlarm, AlarmState::kOk, clock_.Now()));
  EXPECT_EQ(Get("inc-verifying").status, IncidentStatus::kCompleted);
  EXPECT_TRUE(s2.sink.sent().empty());
}

// Expired leases are looked for every claim_every (0.5 s), not only at each renewal (2 s): a
// lease that ends between two renewals of the survivor is taken up within 0.5 s of its end.
TEST_F(IncidentClusterTest, AnExpiredLeaseIsClaimedWithinHalfASecondNotAtTheNextRenewal) {
  const WallTime t0 = clock_.Now();
  const Incident inc = Seeded("inc-orphan", "web-1", IncidentStatus::kPendingApproval, t0);
  ASSERT_TRUE(store_.CreateIncident(inc).has_value());
  // The dead server's last renewal: 0.7 s after the survivor's first lease round.
  Server s2("s2", store_, hub_, clock_);  // its lease round at t0 (Recover), next at t0 + 2 s
  ASSERT_TRUE(
      store_.ClaimIncidentLease(inc.incident_id, "s1", t0, t0 + Millis(700) + kLease).value());
  for (int i = 1; i <= 66; ++i) {  // the app ticks every 100 ms: up to t0 + 6.6 s
    Tick(Millis(100), {&s2});
    EXPECT_EQ(s2.manager->active_count(), 0u) << "taken before the lease ended, at tick " << i;
  }
  // The lease ended at t0 + 6.7 s; s2's renewals are at 6 s and 8 s.
  for (int i = 0; i < 6; ++i) {
    Tick(Millis(100), {&s2});
  }
  EXPECT_EQ(s2.manager->active_ids(), std::vector<std::string>{"inc-orphan"})
      << "not taken over within 0.5 s of the lease's end (now t0 + 7.2 s)";
}

// The store is away for s1: its renewal fails, and s1 stops driving at once: a result that
// arrives then changes nothing and sends nothing. Once the lease has expired, s2 takes over.
TEST_F(IncidentClusterTest, AFailedRenewalStopsDrivingAtOnceAndAnotherServerTakesOver) {
  Server s1("s1", store_, hub_, clock_, /*faulty=*/true);
  Server s2("s2", store_, hub_, clock_);
  s1.manager->OnAlarmTransition(
      Transition("web-1", AlarmState::kOk, AlarmState::kAlarm, clock_.Now()));
  const std::vector<protocol::Command> diag = s1.sink.To("web-1");
  ASSERT_EQ(diag.size(), 2u);
  s1.faulty_store.FailAlways(test::StoreOp::kRenewIncidentLeases);
  Tick(kRenew, {&s1, &s2});
  EXPECT_EQ(s1.manager->active_count(), 0u);
  s1.manager->OnCommandResult(test::OkResult(diag[0].id));
  s1.manager->OnCommandResult(test::OkResult(diag[1].id));
  s1.bus->Drain();
  s2.bus->Drain();
  const Incident inc = All().front();
  EXPECT_EQ(inc.status, IncidentStatus::kDiagnosing);
  EXPECT_EQ(Events(inc), std::vector<std::string>{"created"});
  EXPECT_EQ(s1.sink.sent().size(), 2u) << "nothing more sent";
  EXPECT_EQ(s2.manager->active_count(), 0u) << "the lease has not expired yet";
  Tick(kLease, {&s1, &s2});
  EXPECT_EQ(s2.manager->active_ids(), std::vector<std::string>{inc.incident_id});
  EXPECT_EQ(s2.sink.To("web-1").size(), 2u) << "diagnostics gathered again";
  // s1 is back, but the incident is s2's now.
  s1.faulty_store.HealAll();
  Tick(kRenew, {&s1, &s2});
  EXPECT_EQ(s1.manager->active_count(), 0u);
  EXPECT_EQ(s2.manager->active_count(), 1u);
}

// Approve and reject sent to a server that does not drive the incident: forwarded to the driver,
// which applies them and answers; with no answer, Unavailable; with no driver, the receiving
// server takes the incident over and applies the decision itself.
TEST_F(IncidentClusterTest, DecisionsAreForwardedToTheDriver) {
  Server s1("s1", store_, hub_, clock_);
  Server s2("s2", store_, hub_, clock_);
  for (const char* host : {"web-1", "web-2"}) {
    s1.manager->OnAlarmTransition(
        Transition(host, AlarmState::kOk, AlarmState::kAlarm, clock_.Now()));
    for (const protocol::Command& c : s1.sink.To(host)) {
      s1.manager->OnCommandResult(test::OkResult(c.id, "out", host));
    }
  }
  std::vector<Incident> all = All();
  ASSERT_EQ(all.size(), 2u);
  const Incident web1 = all[0].instance_id == "web-1" ? all[0] : all[1];
  const Incident web2 = all[0].instance_id == "web-1" ? all[1] : all[0];
  ASSERT_EQ(web1.status, IncidentStatus::kPendingApproval);

  std::promise<Result<Incident>> approved;
  s2.manager->ApproveAsync(web1.incident_id, "alice", ActionHash(web1), "go",
                           [&](Result<Incident> r) { approved.set_value(std::move(r)); });
  std::future<Result<Incident>> answer = approved.get_future();
  ASSERT_EQ(answer.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  Result<Incident> r = answer.get();
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(r->status, IncidentStatus::kExecuting);
  EXPECT_EQ(s1.sink.To("web-1").back().action, "service.restart") << "s1 sent the fix";
  EXPECT_TRUE(s2.sink.sent().empty());
  auto audit = store_.ListAudit(10).value();
  ASSERT_FALSE(audit.empty());
  EXPECT_EQ(audit.front().action, "incident.approve");
  EXPECT_EQ(audit.front().actor, "alice");

  // A refusal travels back with its code: a stale hash.
  std::promise<Result<Incident>> refused;
  s2.manager->ApproveAsync(web2.incident_id, "alice", std::string(64, '0'), "",
                           [&](Result<Incident> r) { refused.set_value(std::move(r)); });
  Result<Incident> no = refused.get_future().get();
  ASSERT_FALSE(no.has_value());
  EXPECT_EQ(no.error().code, ErrorCode::kFailedPrecondition);

  // s1 dies (no answers, its lease still live): the decision waits, then Unavailable.
  s1.bus.reset();
  std::promise<Result<Incident>> late;
  std::future<Result<Incident>> late_answer = late.get_future();
  s2.manager->RejectAsync(web2.incident_id, "alice", "no",
                          [&](Result<Incident> r) { late.set_value(std::move(r)); });
  Tick(Millis(4'999), {&s2});
  EXPECT_EQ(late_answer.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout);
  Tick(Millis(1), {&s2});
  ASSERT_EQ(late_answer.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  Result<Incident> unavailable = late_answer.get();
  ASSERT_FALSE(unavailable.has_value());
  EXPECT_EQ(unavailable.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(unavailable.error().message.find("did not answer"), std::string::npos);
  EXPECT_EQ(store_.GetIncident(web2.incident_id)->status, IncidentStatus::kPendingApproval);

  // Its lease has expired (no sweep yet): s2 takes it over and rejects it itself.
  clock_.Advance(kLease);
  std::promise<Result<Incident>> own;
  s2.manager->RejectAsync(web2.incident_id, "alice", "no",
                          [&](Result<Incident> r) { own.set_value(std::move(r)); });
  Result<Incident> rejected = own.get_future().get();
  ASSERT_TRUE(rejected.has_value()) << rejected.error().ToString();
  EXPECT_EQ(rejected->status, IncidentStatus::kRejected);
  s1.manager.reset();
}

}  // namespace
}  // namespace medic::server
