#include "server/fleet/fleet.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/fakes/faulty_store.h"
#include "tests/fakes/memory_store.h"
#include "tests/fakes/temp_dir.h"

namespace medic::server {
namespace {

// A Fleet on its real parts (SQLite in a temp dir, the default alarm rules) with a manual clock,
// a subscriber that records every server-sent event, and an incident side that records every
// alarm transition handed to it.
class FleetTest : public ::testing::Test {
 protected:
  FleetTest() {
    EventSubscriber recorder;
    recorder.write = [this](std::string frame) {
      frames_.push_back(std::move(frame));
      return true;
    };
    events_.Subscribe(events_.Admit("test").value(), std::move(recorder));
  }

  static protocol::RegisterRequest Web1() {
    protocol::RegisterRequest r;
    r.name = "web-1";
    r.version = "1.0";
    r.log_dir = "/srv/log";
    r.targets = {{"web", "http://127.0.0.1:1/"}};
    return r;
  }

  protocol::Report DiskReport(double percent) const {
    protocol::Report r;
    r.host = "web-1";
    r.samples = {{clock_.Now(), {{"disk_used_percent", percent}}}};
    return r;
  }

  // The names of the events published so far, oldest first.
  std::vector<std::string> EventNames() const {
    std::vector<std::string> names;
    for (const auto& f : frames_) {
      names.push_back(f.substr(7, f.find('\n') - 7));  // "event: NAME\n..."
    }
    return names;
  }

  size_t Members(const std::string& group) const {
    for (const auto& g : target_groups_.Snapshot()) {
      if (g.config.name == group) {
        return g.members.size();
      }
    }
    return 0;
  }

  // One round of the target group's probes due now, every one answered `up` (HTTP 200) or
  // refused, their datapoints fed to the fleet (as TargetGroupChecker does).
  void ProbeRound(bool up) {
    for (const ProbeRequest& p : target_groups_.DueProbes(clock_.Now())) {
      const Result<int> status = up ? Result<int>(200) : Result<int>(Unavailable("refused"));
      fleet_.OnTargetFeeds(target_groups_.OnProbeResult(p, status, clock_.Now()));
    }
  }

  // `seconds` seconds of the host, a second at a time: its agent reports (or not) and its nginx
  // answers the probes (or not); the alarm engine's deadlines run.
  void Live(int seconds, bool agent_reports, bool nginx_up) {
    for (int i = 0; i < seconds; ++i) {
      clock_.Advance(std::chrono::seconds(1));
      if (agent_reports) {
        protocol::Report r = DiskReport(40);
        r.checks = {{"web", nginx_up, "", clock_.Now()}};
        ASSERT_TRUE(fleet_.Report(r).has_value());
      }
      ProbeRound(nginx_up);
      fleet_.Tick(clock_.Now());
    }
  }

  // The transitions to ALARM handed to the incidents (each opens one) since `from`.
  std::vector<std::string> AlarmsRaised(size_t from = 0) const {
    std::vector<std::string> out;
    for (size_t i = from; i < to_incidents_.size(); ++i) {
      if (to_incidents_[i].to == AlarmState::kAlarm) {
        out.push_back(to_incidents_[i].rule);
      }
    }
    return out;
  }

  test::TempDir dir_;
  ManualClock clock_;
  std::unique_ptr<Store> store_ = std::move(OpenSqliteStore(dir_.File("medic.db")).value());
  HostRegistry hosts_;
  TargetGroups target_groups_;
  AlarmEngine alarms_{DefaultAlarmRules()};
  EventHub events_{clock_};
  std::vector<std::string> frames_;
  std::vector<AlarmTransition> to_incidents_;
  Fleet fleet_{FleetDeps{clock_, *store_, hosts_, target_groups_, alarms_, events_,
                         [this](const AlarmTransition& t) { to_incidents_.push_back(t); },
                         Millis(2000)}};
};

TEST_F(FleetTest, RegisterKeepsTheHostInMemoryAndInTheStoreAndAnnouncesIt) {
  const protocol::RegisterResponse out = fleet_.Register(Web1()).value();

  EXPECT_EQ(out.interval_ms, 2000);
  auto view = hosts_.Get("web-1", clock_.Now());
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->facts.log_dir, "/srv/log");
  auto stored = store_->ListHosts();
  ASSERT_TRUE(stored.has_value());
  ASSERT_EQ(stored->size(), 1u);
  EXPECT_EQ((*stored)[0].name, "web-1");
  EXPECT_EQ(Members("web"), 1u);
  EXPECT_EQ(EventNames(), std::vector<std::string>{"host"});
}

// The agent's fast watch learns the thresholds of the rules on its own metrics.
TEST_F(FleetTest, RegisterTellsTheAgentTheThresholdsOfTheHostMetricRules) {
  const protocol::RegisterResponse out = fleet_.Register(Web1()).value();
  EXPECT_EQ(out.watch, (std::vector<protocol::WatchedThreshold>{
                           {"disk_used_percent", ">", 85}, {"mem_used_percent", ">", 90}}));
}

TEST(WatchedThresholdsTest, ThresholdsAndClearThresholdsOfHostSeriesOnceEach) {
  AlarmRule logs;
  logs.name = "Logs-Full";
  logs.metric = "disk_used_percent";
  logs.labels = {{"mount", "/var/log"}};
  logs.comparison = Comparison::kGreaterOrEqual;
  logs.threshold = 80;
  logs.clear_threshold = 70;
  AlarmRule same = logs;  // another rule on the same line adds nothing
  same.name = "Logs-Full-Too";
  same.clear_threshold.reset();
  AlarmRule low;
  low.name = "Low-Inodes";
  low.metric = "inode_free";
  low.comparison = Comparison::kLess;
  low.threshold = 5;
  std::vector<AlarmRule> rules = DefaultAlarmRules();  // heartbeat and unhealthy:web left out
  rules.insert(rules.end(), {logs, same, low});
  EXPECT_EQ(WatchedThresholds(rules),
            (std::vector<protocol::WatchedThreshold>{
                {"disk_used_percent", ">", 85},
                {"mem_used_percent", ">", 90},
                {"disk_used_percent{mount=\"/var/log\"}", ">=", 80},
                {"disk_used_percent{mount=\"/var/log\"}", ">=", 70},
                {"inode_free", "<", 5}}));
  EXPECT_TRUE(WatchedThresholds({}).empty());
}

TEST_F(FleetTest, AReportOfAHostThatNeverRegisteredIsNotFound) {
  const Status s = fleet_.Report(DiskReport(97));

  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(to_incidents_.empty());
}

TEST_F(FleetTest, EveryTransitionOfAReportIsPublishedAndHandedToTheIncidents) {
  ASSERT_TRUE(fleet_.Register(Web1()).has_value());
  frames_.clear();

  ASSERT_TRUE(fleet_.Report(DiskReport(97)).has_value());

  bool disk_alarm = false;
  for (const auto& t : to_incidents_) {
    disk_alarm |= t.rule == "Disk-Critical-ASG" && t.host == "web-1" && t.to == AlarmState::kAlarm;
  }
  EXPECT_TRUE(disk_alarm);
  EXPECT_EQ(EventNames(), std::vector<std::string>(to_incidents_.size(), "alarm"));
}

TEST_F(FleetTest, TargetGroupHealthIsKeptInTheHostsHistoryNotInItsMetrics) {
  ASSERT_TRUE(fleet_.Register(Web1()).has_value());
  // The agent's check named like the group, failing then passing; then a probe's feed.
  for (bool healthy : {false, true}) {
    protocol::Report r;
    r.host = "web-1";
    r.checks = {{"web", healthy, "", clock_.Now()}};
    ASSERT_TRUE(fleet_.Report(r).has_value());
    clock_.Advance(Millis(1000));
  }
  const WallTime start = clock_.Now() - Millis(2000);
  fleet_.OnTargetFeeds({TargetFeed{"web-1", "unhealthy:web", 1, clock_.Now()}});
  // A probe that started before the second check and answered after it: kept in time order.
  fleet_.OnTargetFeeds({TargetFeed{"web-1", "unhealthy:web", 1, start + Millis(500)}});
  fleet_.OnTargetFeeds({TargetFeed{"ghost", "unhealthy:web", 1, clock_.Now()}});  // unknown

  auto points = hosts_.History("web-1", "unhealthy:web", WallTime{});
  ASSERT_TRUE(points.has_value());
  ASSERT_EQ(points->size(), 4u);
  const std::vector<std::pair<Millis, double>> want = {
      {Millis(0), 1}, {Millis(500), 1}, {Millis(1000), 0}, {Millis(2000), 1}};
  for (size_t i = 0; i < want.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ((*points)[i].t, start + want[i].first);
    EXPECT_EQ((*points)[i].v, want[i].second);
  }
  // What the host reported is unchanged: a derived series is no metric of the host's.
  EXPECT_EQ(hosts_.Get("web-1", clock_.Now())->metrics.count("unhealthy:web"), 0u);
  EXPECT_FALSE(hosts_.History("ghost", "unhealthy:web", WallTime{}).has_value());
}

TEST_F(FleetTest, AKnownHostThatNeverReportsAfterARestartRaisesHostUnreachable) {
  ASSERT_TRUE(
      store_->PutHost({"web-1", protocol::ToJson(Web1()), clock_.Now(), clock_.Now()}).has_value());
  ASSERT_TRUE(fleet_.Restore().has_value());
  ASSERT_TRUE(hosts_.Get("web-1", clock_.Now()).has_value());
  EXPECT_EQ(Members("web"), 1u);

  for (int i = 0; i < 25; ++i) {
    clock_.Advance(std::chrono::seconds(1));
    fleet_.Tick(clock_.Now());
  }

  ASSERT_FALSE(to_incidents_.empty());
  EXPECT_EQ(to_incidents_.back().rule, "Host-Unreachable");
  EXPECT_EQ(to_incidents_.back().to, AlarmState::kAlarm);
  EXPECT_EQ(EventNames().back(), "alarm");
}

// Issue 19: a host that dies whole (agent and nginx) fails the load balancer's probes 5-10 s
// before Host-Unreachable's 15 s; the silent host's Nginx-Down-ALB is held in INSUFFICIENT_DATA,
// so one dead host opens one incident.
TEST_F(FleetTest, OneDeadHostOpensOneIncident) {
  ASSERT_TRUE(fleet_.Register(Web1()).has_value());
  Live(12, /*agent_reports=*/true, /*nginx_up=*/true);
  ASSERT_EQ(alarms_.StateOf("Nginx-Down-ALB", "web-1"), AlarmState::kOk);
  const size_t before = to_incidents_.size();

  Live(30, /*agent_reports=*/false, /*nginx_up=*/false);

  EXPECT_EQ(AlarmsRaised(before), std::vector<std::string>{"Host-Unreachable"});
  EXPECT_EQ(alarms_.StateOf("Host-Unreachable", "web-1"), AlarmState::kAlarm);
  EXPECT_EQ(alarms_.StateOf("Nginx-Down-ALB", "web-1"), AlarmState::kInsufficientData);
  EXPECT_EQ(alarms_.StateOf("Disk-Critical-ASG", "web-1"), AlarmState::kOk);
}

TEST_F(FleetTest, OneDeadHostOpensOneIncidentAfterARestart) {
  ASSERT_TRUE(
      store_->PutHost({"web-1", protocol::ToJson(Web1()), clock_.Now(), clock_.Now()}).has_value());
  ASSERT_TRUE(fleet_.Restore().has_value());

  Live(30, /*agent_reports=*/false, /*nginx_up=*/false);

  EXPECT_EQ(AlarmsRaised(), std::vector<std::string>{"Host-Unreachable"});
  EXPECT_EQ(alarms_.StateOf("Nginx-Down-ALB", "web-1"), AlarmState::kInsufficientData);
}

// An alarm already raised when the host went silent leaves ALARM when Host-Unreachable fires (its
// data is gone with the host); once the host reports again, its alarms are judged as before.
TEST_F(FleetTest, ADeadHostsOtherAlarmsLeaveAlarmAndComeBackWithIt) {
  ASSERT_TRUE(fleet_.Register(Web1()).has_value());
  Live(5, /*agent_reports=*/true, /*nginx_up=*/true);
  clock_.Advance(std::chrono::seconds(1));
  ASSERT_TRUE(fleet_.Report(DiskReport(97)).has_value());
  ASSERT_EQ(alarms_.StateOf("Disk-Critical-ASG", "web-1"), AlarmState::kAlarm);

  Live(25, /*agent_reports=*/false, /*nginx_up=*/true);
  EXPECT_EQ(alarms_.StateOf("Host-Unreachable", "web-1"), AlarmState::kAlarm);
  EXPECT_EQ(alarms_.StateOf("Disk-Critical-ASG", "web-1"), AlarmState::kInsufficientData);

  // Back, with nginx down: a live host's nginx failure is an incident of its own.
  const size_t before = to_incidents_.size();
  Live(15, /*agent_reports=*/true, /*nginx_up=*/false);
  EXPECT_EQ(alarms_.StateOf("Host-Unreachable", "web-1"), AlarmState::kOk);
  EXPECT_EQ(AlarmsRaised(before), std::vector<std::string>{"Nginx-Down-ALB"});
}

// Issue 12: facts a server without limits kept (a 0.9 MB services list) do not come back.
TEST_F(FleetTest, RestoreLeavesOutFactsOverTheLimits) {
  protocol::RegisterRequest big = Web1();
  big.services.assign(FleetLimits{}.services_per_host + 1, "svc");
  ASSERT_TRUE(store_->PutHost({"web-1", protocol::ToJson(big), clock_.Now(), clock_.Now()})
                  .has_value());
  ASSERT_TRUE(fleet_.Restore().has_value());
  auto view = hosts_.Get("web-1", clock_.Now());
  ASSERT_TRUE(view.has_value());
  EXPECT_TRUE(view->facts.services.empty());
  EXPECT_EQ(view->facts.log_dir, "/srv/log") << "the rest stays";
  EXPECT_EQ(Members("web"), 1u);
}

TEST_F(FleetTest, RestoreLeavesOutARecordThatDoesNotMatchItsName) {
  ASSERT_TRUE(
      store_->PutHost({"web-1", protocol::ToJson(Web1()), clock_.Now(), clock_.Now()}).has_value());
  ASSERT_TRUE(
      store_->PutHost({"web-2", protocol::ToJson(Web1()), clock_.Now(), clock_.Now()}).has_value());

  ASSERT_TRUE(fleet_.Restore().has_value());

  const auto hosts = hosts_.List(clock_.Now());
  ASSERT_EQ(hosts.size(), 1u);
  EXPECT_EQ(hosts[0].name, "web-1");
}

TEST_F(FleetTest, RemoveForgetsTheHostEverywhereAndAnnouncesIt) {
  ASSERT_TRUE(fleet_.Register(Web1()).has_value());
  ASSERT_TRUE(fleet_.Report(DiskReport(97)).has_value());

  ASSERT_TRUE(fleet_.Remove("web-1").has_value());

  EXPECT_FALSE(hosts_.Get("web-1", clock_.Now()).has_value());
  EXPECT_TRUE(store_->ListHosts().value().empty());
  EXPECT_TRUE(alarms_.All().empty());
  EXPECT_EQ(Members("web"), 0u);
  EXPECT_EQ(EventNames().back(), "host_removed");
  const Status again = fleet_.Remove("web-1");
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, ErrorCode::kNotFound);
}

TEST_F(FleetTest, RemoveForgetsAHostOnlyTheStoreKnows) {
  ASSERT_TRUE(
      store_->PutHost({"web-1", protocol::ToJson(Web1()), clock_.Now(), clock_.Now()}).has_value());

  ASSERT_TRUE(fleet_.Remove("web-1").has_value());

  EXPECT_TRUE(store_->ListHosts().value().empty());
}

// Issue 13: at 10,000 hosts one store write per host and minute is 167 fsyncs a second. The
// last-seen times due are written together: one transaction a second at most, none per report.
TEST(FleetLastSeenTest, LastSeenTimesReachTheStoreInBatches) {
  ManualClock clock;
  test::MemoryStore memory;
  test::FaultyStore store(memory);
  HostRegistry hosts;
  TargetGroups target_groups;
  AlarmEngine alarms{DefaultAlarmRules()};
  EventHub events{clock};
  Fleet fleet{FleetDeps{clock, store, hosts, target_groups, alarms, events,
                        [](const AlarmTransition&) {}, Millis(1000)}};
  constexpr int kHosts = 50;
  auto name = [](int i) { return "host-" + std::to_string(i); };
  for (int i = 0; i < kHosts; ++i) {
    protocol::RegisterRequest r;
    r.name = name(i);
    ASSERT_TRUE(fleet.Register(r).has_value());
  }
  const int puts = store.calls(test::StoreOp::kPutHost);
  EXPECT_EQ(puts, kHosts) << "a registration is written at once";
  auto report_all = [&] {
    for (int i = 0; i < kHosts; ++i) {
      protocol::Report r;
      r.host = name(i);
      ASSERT_TRUE(fleet.Report(r).has_value());
    }
  };
  // Within the minute: nothing is due.
  clock.Advance(Millis(1000));
  report_all();
  fleet.Tick(clock.Now());
  EXPECT_EQ(store.calls(test::StoreOp::kUpdateHostsLastSeen), 0);
  // A minute on, every host is due at once: no report writes (none waits for the store's
  // fsync); the next Tick writes them all in one transaction.
  clock.Advance(Millis(60'000));
  const WallTime due = clock.Now();
  report_all();
  EXPECT_EQ(store.calls(test::StoreOp::kUpdateHostsLastSeen), 0) << "a report never writes";
  fleet.Tick(clock.Now());
  EXPECT_EQ(store.calls(test::StoreOp::kUpdateHostsLastSeen), 1);
  clock.Advance(Millis(1000));
  report_all();
  fleet.Tick(clock.Now());
  EXPECT_EQ(store.calls(test::StoreOp::kUpdateHostsLastSeen), 1) << "nothing new was due";
  EXPECT_EQ(store.calls(test::StoreOp::kPutHost), puts) << "no whole-record write per report";
  auto stored = store.ListHosts();
  ASSERT_TRUE(stored.has_value());
  ASSERT_EQ(stored->size(), static_cast<size_t>(kHosts));
  for (const auto& h : *stored) {
    EXPECT_EQ(h.last_seen, due) << h.name;
  }
  // At most one transaction a second: a host due right after a write waits for the next second.
  clock.Advance(Millis(60'000));
  protocol::Report r;
  r.host = name(0);
  ASSERT_TRUE(fleet.Report(r).has_value());
  fleet.Tick(clock.Now());
  EXPECT_EQ(store.calls(test::StoreOp::kUpdateHostsLastSeen), 2);
  r.host = name(1);
  ASSERT_TRUE(fleet.Report(r).has_value());
  fleet.Tick(clock.Now());
  EXPECT_EQ(store.calls(test::StoreOp::kUpdateHostsLastSeen), 2) << "a second has not passed";
  clock.Advance(Millis(1000));
  fleet.Tick(clock.Now());
  EXPECT_EQ(store.calls(test::StoreOp::kUpdateHostsLastSeen), 3);
  // What is due is written on request too (a server stopping), and nothing twice.
  clock.Advance(Millis(60'000));
  r.host = name(2);
  ASSERT_TRUE(fleet.Report(r).has_value());
  fleet.WriteLastSeen();
  EXPECT_EQ(store.calls(test::StoreOp::kUpdateHostsLastSeen), 4) << "nothing was left due";
}

}  // namespace
}  // namespace medic::server
