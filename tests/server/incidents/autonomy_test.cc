// Earned autonomy and graded outcomes (issue 17; docs/AUTONOMY.md): a simulated history through
// the real IncidentManager, a real SQLite store and a ManualClock; the stats of a known fixture
// through the route and the CLI's formatter.

#include "server/incidents/autonomy.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>

#include "cli/autonomy_format.h"
#include "server/http/routes.h"
#include "server/incidents/incident_manager.h"
#include "tests/fakes/incident_fakes.h"
#include "tests/fakes/temp_dir.h"
#include "tests/server/call_route.h"
#include "tests/server/incidents/stats_fixture.h"

namespace medic::server {
namespace {

using namespace std::chrono_literals;
using test::ToAlarm;

constexpr char kAlarm[] = "Nginx-Down-ALB";
constexpr char kAction[] = "service.restart";

bool Has(const Incident& inc, const std::string& event) {
  return std::any_of(inc.timeline.begin(), inc.timeline.end(),
                     [&](const TimelineEntry& e) { return e.event == event; });
}

std::string DetailOf(const Incident& inc, const std::string& event) {
  for (const auto& e : inc.timeline) {
    if (e.event == event) {
      return e.detail;
    }
  }
  return "(no " + event + " entry)";
}

class AutonomyTest : public ::testing::Test {
 protected:
  enum class End { kVerified, kFailed, kRejected };

  void SetUp() override {
    store_ = std::move(OpenSqliteStore(dir_.File("medic.db")).value());
    settings_ = std::move(SettingsService::Load(*store_, Settings{}).value());
    autonomy_ = std::make_unique<Autonomy>(*store_, clock_, AutonomyConfig{});
    manager_ = std::make_unique<IncidentManager>(
        *store_, clock_, sink_, alarms_, *settings_, brain_,
        [](std::function<void()> task) { task(); }, DefaultAlarmRules(), ai::DefaultRunbooks());
    manager_->SetAutonomy(autonomy_.get());
  }

  void SetApprovalMode(bool on) {
    ASSERT_TRUE(settings_->Update(Json{{"approval_mode", on}}).has_value());
  }

  Incident Latest() {
    auto list = store_->ListIncidents({});
    EXPECT_TRUE(list.has_value() && !list->empty());
    return list.has_value() && !list->empty() ? list->front() : Incident{};
  }
  Incident Get(const std::string& id) { return store_->GetIncident(id).value(); }

  // Two hours later, Nginx-Down-ALB fires on web-1 and the diagnostics come back. Returns the
  // incident as it stands then: waiting for a human, or executing its fix on its own.
  Incident Open(Millis gap = 2h) {
    clock_.Advance(gap);  // by default past the breaker's window
    alarms_.state = AlarmState::kAlarm;
    const size_t first = sink_.sent.size();
    manager_->OnAlarmTransition(ToAlarm());
    EXPECT_EQ(sink_.sent.size(), first + 2);
    const std::vector diagnostics(sink_.sent.begin() + static_cast<long>(first), sink_.sent.end());
    for (const auto& [host, c] : diagnostics) {
      manager_->OnCommandResult(test::OkResult(c.id));
    }
    return Latest();
  }

  // The fix of the executing `inc` ends: verified (the alarm is OK) or failed (exit 1). The
  // alarm is OK either way, so that nothing is judged again.
  Incident Finish(const Incident& inc, End end) {
    EXPECT_EQ(inc.status, IncidentStatus::kExecuting) << inc.incident_id;
    clock_.Advance(40s);
    alarms_.state = AlarmState::kOk;
    protocol::CommandResult r = test::OkResult(sink_.sent.back().second.id, "done");
    if (end == End::kFailed) {
      r.exit_code = 1;
    }
    manager_->OnCommandResult(r);
    return Get(inc.incident_id);
  }

  // One incident from alarm to end: a human approves (or rejects) it when it waits for one.
  Incident Round(End end) {
    Incident inc = Open();
    if (inc.status == IncidentStatus::kPendingApproval) {
      if (end == End::kRejected) {
        EXPECT_TRUE(manager_->Reject(inc.incident_id, "alice", "no").has_value());
        return Get(inc.incident_id);
      }
      auto approved = manager_->Approve(inc.incident_id, "alice", ActionHash(inc), "");
      EXPECT_TRUE(approved.has_value()) << (approved ? "" : approved.error().ToString());
      inc = Get(inc.incident_id);
    }
    return Finish(inc, end);
  }

  PairRecord Record() {
    auto r = autonomy_->Record(kAlarm, kAction);
    EXPECT_TRUE(r.has_value() && r->has_value());
    return r.has_value() && r->has_value() ? **r : PairRecord{};
  }

  // The audit entries with `action`, oldest first.
  std::vector<AuditEntry> Audited(const std::string& action) {
    std::vector<AuditEntry> out;
    const std::vector<AuditEntry> all = store_->ListAudit(1000).value();
    for (const auto& e : all) {
      if (e.action == action) {
        out.insert(out.begin(), e);
      }
    }
    return out;
  }

  test::TempDir dir_;
  ManualClock clock_;
  test::RecordingSink sink_;
  test::FakeAlarms alarms_;
  ai::RunbookBrain brain_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<SettingsService> settings_;
  std::unique_ptr<Autonomy> autonomy_;
  std::unique_ptr<IncidentManager> manager_;
};

TEST_F(AutonomyTest, FiveHumanApprovedFixesPromoteAndOneFailedFixDemotes) {
  std::vector<std::string> ids;
  for (int i = 1; i <= 5; ++i) {
    SCOPED_TRACE("round " + std::to_string(i));
    Incident inc = Round(End::kVerified);
    ASSERT_EQ(inc.status, IncidentStatus::kCompleted);
    EXPECT_TRUE(Has(inc, "approved"));  // approval mode: a human each time
    EXPECT_EQ(Has(inc, "autonomy_promoted"), i == 5);
    EXPECT_EQ(Record().earned, i == 5 ? PairMode::kAutomatic : PairMode::kDefault);
    ids.push_back(inc.incident_id);
  }
  EXPECT_NE(DetailOf(Get(ids[4]), "autonomy_promoted").find("5 verified fixes in a row"),
            std::string::npos);
  PairRecord r = Record();
  EXPECT_EQ(r.verified, 5);
  EXPECT_EQ(r.failed, 0);
  ASSERT_TRUE(r.median_recover.has_value());
  EXPECT_EQ(*r.median_recover, 40s);  // each fix verified 40 s after its alarm

  // Promoted: still in approval mode, the next incident's fix runs without a human.
  Incident sixth = Open();
  ASSERT_EQ(sixth.status, IncidentStatus::kExecuting);
  EXPECT_FALSE(Has(sixth, "approved"));
  EXPECT_NE(DetailOf(sixth, "auto_approved").find("earned autonomy"), std::string::npos);
  sixth = Finish(sixth, End::kFailed);
  ASSERT_EQ(sixth.status, IncidentStatus::kFailed);
  EXPECT_TRUE(Has(sixth, "autonomy_demoted"));
  EXPECT_NE(DetailOf(sixth, "autonomy_demoted").find("failed"), std::string::npos);
  EXPECT_EQ(Record().earned, PairMode::kApproval);
  EXPECT_EQ(Record().failed, 1);

  // Demoted: even with approval mode off, the pair waits for a human.
  SetApprovalMode(false);
  Incident seventh = Open();
  EXPECT_EQ(seventh.status, IncidentStatus::kPendingApproval);
  EXPECT_NE(DetailOf(seventh, "awaiting_approval").find("waits for a human"), std::string::npos);

  // Both are in the audit log, naming the incident that caused them, and the chain holds.
  auto promoted = Audited("autonomy.promote");
  auto demoted = Audited("autonomy.demote");
  ASSERT_EQ(promoted.size(), 1u);
  ASSERT_EQ(demoted.size(), 1u);
  EXPECT_NE(promoted[0].detail.find(ids[4]), std::string::npos) << promoted[0].detail;
  EXPECT_NE(demoted[0].detail.find(sixth.incident_id), std::string::npos) << demoted[0].detail;
  EXPECT_TRUE(store_->VerifyAudit().value().ok);
}

// Model confidence, or fixes that ran on their own, never promote: only humans' approvals count,
// and a rejection starts the count again.
TEST_F(AutonomyTest, AutomaticSuccessesAndRejectionsDoNotPromote) {
  SetApprovalMode(false);
  for (int i = 0; i < 5; ++i) {
    Incident inc = Round(End::kVerified);
    ASSERT_EQ(inc.status, IncidentStatus::kCompleted);
    ASSERT_TRUE(Has(inc, "auto_approved"));
  }
  EXPECT_EQ(Record().verified, 5);
  EXPECT_EQ(Record().earned, PairMode::kDefault);
  SetApprovalMode(true);
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(Round(End::kVerified).status, IncidentStatus::kCompleted);
  }
  ASSERT_EQ(Round(End::kRejected).status, IncidentStatus::kRejected);
  ASSERT_FALSE(Has(Round(End::kVerified), "autonomy_promoted"));  // 1 in a row since
  EXPECT_EQ(Record().earned, PairMode::kDefault);
  EXPECT_EQ(Record().rejected, 1);
  EXPECT_EQ(Record().streak, 1);
  EXPECT_TRUE(Audited("autonomy.promote").empty());
}

TEST_F(AutonomyTest, AnUndoDemotesAtOnce) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(Round(End::kVerified).status, IncidentStatus::kCompleted);
  }
  ASSERT_EQ(Record().earned, PairMode::kAutomatic);
  Incident sixth = Round(End::kVerified);  // ran on its own, and verified
  ASSERT_EQ(sixth.status, IncidentStatus::kCompleted);
  ASSERT_TRUE(Has(sixth, "auto_approved"));
  EXPECT_EQ(Record().earned, PairMode::kAutomatic);  // a verified fix keeps it

  // An operator undoes it: the `undone` step (medic undo) on the same timeline.
  clock_.Advance(5min);
  Incident undone = sixth;
  undone.timeline.push_back({"undone", clock_.Now(), "alice", "service.start nginx"});
  auto change = autonomy_->Judge(sixth, undone);
  ASSERT_TRUE(change.has_value());
  ASSERT_TRUE(change->has_value());
  EXPECT_EQ((*change)->event, "autonomy_demoted");
  EXPECT_NE((*change)->detail.find("was undone"), std::string::npos) << (*change)->detail;
  EXPECT_EQ(StringOr((*change)->audit, "incident"), sixth.incident_id);
  ASSERT_TRUE(store_->UpdateIncident(undone).has_value());
  PairRecord r = Record();
  EXPECT_EQ(r.earned, PairMode::kApproval);
  EXPECT_EQ(r.undone, 1);
  EXPECT_EQ(r.last_change_incident, sixth.incident_id);
  // An undo of an incident already demoted changes nothing more.
  Incident twice = undone;
  twice.timeline.push_back({"undone", clock_.Now(), "alice", "again"});
  EXPECT_FALSE(autonomy_->Judge(undone, twice).value().has_value());

  SetApprovalMode(false);
  Incident next = Open();
  EXPECT_EQ(next.status, IncidentStatus::kPendingApproval);
  EXPECT_NE(DetailOf(next, "awaiting_approval").find("was undone"), std::string::npos);
}

TEST_F(AutonomyTest, ABreakerTripDemotesAtOnce) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(Round(End::kVerified).status, IncidentStatus::kCompleted);
  }
  ASSERT_EQ(Record().earned, PairMode::kAutomatic);
  // Three automatic fixes within the hour, each verified: the fourth trips the breaker.
  for (int i = 0; i < 3; ++i) {
    Incident inc = Open(10min);
    ASSERT_EQ(inc.status, IncidentStatus::kExecuting) << i;
    ASSERT_EQ(Finish(inc, End::kVerified).status, IncidentStatus::kCompleted);
  }
  Incident fourth = Open(10min);
  EXPECT_EQ(fourth.status, IncidentStatus::kPendingApproval);
  ASSERT_TRUE(Has(fourth, "breaker_open"));
  EXPECT_TRUE(Has(fourth, "autonomy_demoted"));
  EXPECT_NE(DetailOf(fourth, "autonomy_demoted").find("breaker"), std::string::npos);
  EXPECT_EQ(Record().earned, PairMode::kApproval);
  auto demoted = Audited("autonomy.demote");
  ASSERT_EQ(demoted.size(), 1u);
  EXPECT_NE(demoted[0].detail.find(fourth.incident_id), std::string::npos);
}

TEST_F(AutonomyTest, APinnedPairDoesNotMove) {
  ASSERT_TRUE(autonomy_->Pin(kAlarm, kAction, PairMode::kAutomatic, "root").has_value());
  // Pinned automatic in approval mode: runs on its own; a failed fix does not demote it.
  Incident first = Round(End::kFailed);
  ASSERT_EQ(first.status, IncidentStatus::kFailed);
  EXPECT_TRUE(Has(first, "auto_approved"));
  EXPECT_NE(DetailOf(first, "auto_approved").find("pinned"), std::string::npos);
  EXPECT_FALSE(Has(first, "autonomy_demoted"));
  EXPECT_EQ(Record().mode(), PairMode::kAutomatic);
  EXPECT_EQ(Open().status, IncidentStatus::kExecuting);  // still automatic
  ASSERT_EQ(Finish(Latest(), End::kVerified).status, IncidentStatus::kCompleted);

  // Pinned approval: five human-approved fixes do not promote it, and with approval mode off
  // it still waits.
  ASSERT_TRUE(autonomy_->Pin(kAlarm, kAction, PairMode::kApproval, "root").has_value());
  for (int i = 0; i < 5; ++i) {
    Incident inc = Round(End::kVerified);
    ASSERT_EQ(inc.status, IncidentStatus::kCompleted);
    EXPECT_FALSE(Has(inc, "autonomy_promoted"));
  }
  SetApprovalMode(false);
  Incident waiting = Open();
  EXPECT_EQ(waiting.status, IncidentStatus::kPendingApproval);
  EXPECT_NE(DetailOf(waiting, "awaiting_approval").find("pinned"), std::string::npos);
  EXPECT_EQ(Record().mode(), PairMode::kApproval);
  EXPECT_TRUE(Audited("autonomy.promote").empty());
  EXPECT_TRUE(Audited("autonomy.demote").empty());

  // Unpinned: the record decides again.
  ASSERT_TRUE(autonomy_->Pin(kAlarm, kAction, std::nullopt, "root").has_value());
  EXPECT_FALSE(Record().pin.has_value());
  auto pins = Audited("autonomy.pin");
  auto unpins = Audited("autonomy.unpin");
  ASSERT_EQ(pins.size(), 2u);
  ASSERT_EQ(unpins.size(), 1u);
  EXPECT_EQ(pins[0].actor, "root");
  EXPECT_NE(pins[0].detail.find("\"automatic\""), std::string::npos) << pins[0].detail;
  EXPECT_NE(pins[1].detail.find("\"approval\""), std::string::npos) << pins[1].detail;
  EXPECT_TRUE(store_->VerifyAudit().value().ok);
  EXPECT_EQ(autonomy_->Pin(kAlarm, "", PairMode::kApproval, "root").error().code,
            ErrorCode::kInvalidArgument);
}

TEST_F(AutonomyTest, TheAssessmentIsWrongWhenTheAlarmReturnsWithinTheWindow) {
  const Millis window = AutonomyConfig{}.return_window;
  ASSERT_EQ(window, 30min);
  Incident fixed = Round(End::kVerified);
  ASSERT_EQ(fixed.status, IncidentStatus::kCompleted);
  auto all = [&] { return store_->ListIncidents({}).value(); };
  EXPECT_EQ(Assess(fixed, all(), clock_.Now(), window).verdict, Verdict::kPending);
  EXPECT_EQ(Assess(fixed, all(), clock_.Now() + 31min, window).verdict, Verdict::kRight);

  // 10 minutes later the same alarm fires again on the same host: the diagnosis was wrong.
  clock_.Advance(10min);
  alarms_.state = AlarmState::kAlarm;
  manager_->OnAlarmTransition(ToAlarm());
  ASSERT_NE(Latest().incident_id, fixed.incident_id);
  const Assessment a = Assess(fixed, all(), clock_.Now() + 1h, window);
  EXPECT_EQ(a.verdict, Verdict::kWrong);
  EXPECT_NE(a.why.find("returned on web-1 600 s after"), std::string::npos) << a.why;

  // Returning after the window, or on another host, does not count against it.
  Incident later = fixed;
  later.incident_id = "inc-later";
  later.created_at = *fixed.resolved_at + 31min;
  Incident elsewhere = fixed;
  elsewhere.incident_id = "inc-elsewhere";
  elsewhere.instance_id = "web-2";
  elsewhere.created_at = *fixed.resolved_at + 1min;
  EXPECT_EQ(Assess(fixed, {later, elsewhere}, clock_.Now() + 1h, window).verdict, Verdict::kRight);
  // A rejected proposal is wrong; an incident without a fix is not graded.
  const std::vector diagnostics(sink_.sent.end() - 2, sink_.sent.end());
  for (const auto& [host, c] : diagnostics) {
    manager_->OnCommandResult(test::OkResult(c.id));
  }
  Incident returned = Latest();
  ASSERT_EQ(returned.status, IncidentStatus::kPendingApproval);
  ASSERT_TRUE(manager_->Reject(returned.incident_id, "alice", "no").has_value());
  const Assessment rejected = Assess(Get(returned.incident_id), all(), clock_.Now(), window);
  EXPECT_EQ(rejected.verdict, Verdict::kWrong);
  EXPECT_EQ(rejected.why, "rejected by alice");
  Incident nothing = fixed;
  nothing.action = Json::object();
  EXPECT_EQ(Assess(nothing, all(), clock_.Now(), window).verdict, Verdict::kUngraded);
}

// ---- stats of a known fixture ---------------------------------------------------------------

class StatsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::move(OpenSqliteStore(dir_.File("medic.db")).value());
    clock_.Advance(100h);
    now_ = clock_.Now();
  }

  test::TempDir dir_;
  ManualClock clock_;
  WallTime now_;
  std::unique_ptr<Store> store_;
};

TEST_F(StatsTest, TheRouteAndTheCliReportTheFixtureExactly) {
  const std::string nginx = "Nginx-Down-ALB", disk = "Disk-Usage-High";
  ASSERT_TRUE(test::PutStatsFixture(*store_, now_));

  Autonomy autonomy(*store_, clock_, AutonomyConfig{});
  TokenRegistry tokens;
  tokens.Add("tok-viewer-000000000", Principal{"vera", Role::kViewer});
  Router router(tokens);
  AddAutonomyRoutes(router, autonomy);
  auto get = [&](const std::string& path, std::map<std::string, std::string> query) {
    ApiRequest req;
    req.method = "GET";
    req.path = path;
    req.target = path;
    req.query = std::move(query);
    req.authorization = "Bearer tok-viewer-000000000";
    return test::CallRoute(router, std::move(req));
  };
  ApiResponse resp = get("/api/v1/stats", {{"since", "24h"}});
  ASSERT_EQ(resp.status, 200) << resp.body;
  const Json body = ParseJson(resp.body).value();
  EXPECT_EQ(body["incidents"], 7);
  EXPECT_EQ(body["graded"], (Json{{"right", 2}, {"wrong", 3}, {"pending", 1}, {"ungraded", 1}}));
  EXPECT_EQ(body["precision"], 0.4);
  EXPECT_EQ(body["resolved"], 4);
  EXPECT_EQ(body["resolved_without_human"], 2);
  EXPECT_EQ(body["share_without_human"], 0.5);
  EXPECT_EQ(body["mttr_by_alarm"],
            (Json::array({Json{{"alarm", disk}, {"resolved", 1}, {"mttr_s", 300.0}},
                          Json{{"alarm", nginx}, {"resolved", 3}, {"mttr_s", 260.0}}})));
  ASSERT_EQ(body["by_model"].size(), 2u);
  EXPECT_EQ(body["by_model"][0], (Json{{"alarm", disk},
                                       {"provider", "none"},
                                       {"model", ""},
                                       {"right", 1},
                                       {"wrong", 1},
                                       {"pending", 0},
                                       {"precision", 0.5}}));
  EXPECT_EQ(body["by_model"][1], (Json{{"alarm", nginx},
                                       {"provider", "gemini"},
                                       {"model", "flash"},
                                       {"right", 1},
                                       {"wrong", 2},
                                       {"pending", 1},
                                       {"precision", 0.3333}}));

  const std::string expected = "period             " + FormatRfc3339(now_ - 24h) + " to " +
                               FormatRfc3339(now_) + "\n" + test::kStatsFixtureText;
  auto text = cli::FormatStats(body);
  ASSERT_TRUE(text.has_value());
  EXPECT_EQ(*text, expected);

  // The whole history (the default period) also takes inc-g in; strict parameters.
  ApiResponse all = get("/api/v1/stats", {});
  ASSERT_EQ(all.status, 200);
  EXPECT_EQ(ParseJson(all.body).value()["incidents"], 8);
  ApiResponse typo = get("/api/v1/stats", {{"snice", "1h"}});
  EXPECT_EQ(typo.status, 400);
  EXPECT_NE(typo.body.find("valid: since"), std::string::npos) << typo.body;
  for (const char* bad : {"soon", "0s", "-1h", "9000h"}) {
    ApiResponse r = get("/api/v1/stats", {{"since", bad}});
    EXPECT_EQ(r.status, 400) << bad;
    EXPECT_NE(r.body.find("since must be a duration"), std::string::npos) << r.body;
  }
  // The autonomy listing of the same history: one pair per alarm, with its record.
  ApiResponse pairs = get("/api/v1/autonomy", {});
  ASSERT_EQ(pairs.status, 200) << pairs.body;
  const Json p = ParseJson(pairs.body).value()["pairs"];
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[1]["alarm"], nginx);
  EXPECT_EQ(p[1]["verified"], 4);  // inc-a, b, f, g
  EXPECT_EQ(p[1]["rejected"], 1);
  EXPECT_EQ(p[1]["median_recover_s"], 90.0);  // 60, 60, 120, 600
  EXPECT_EQ(p[0]["failed"], 1);
  EXPECT_EQ(p[0]["mode"], "default");
  auto table = cli::FormatAutonomy(ParseJson(pairs.body).value());
  ASSERT_TRUE(table.has_value());
  EXPECT_EQ(*table,
            "ALARM            ACTION           MODE     VERIFIED  FAILED  TIMED_OUT  REJECTED  "
            "UNDONE  MEDIAN_TTR  LAST_CHANGE\n"
            "Disk-Usage-High  service.restart  default  1         1       0          0         "
            "0       5m          -\n"
            "Nginx-Down-ALB   service.restart  default  4         0       0          1         "
            "0       1m 30s      -\n");
  EXPECT_EQ(get("/api/v1/autonomy", {{"x", "1"}}).status, 400);
}

TEST(AutonomyConfigTest, BadValuesAreClearErrors) {
  struct Case {
    std::string yaml;
    std::string error;  // "" = accepted
  };
  const Case cases[] = {
      {"promote_after: 3\nreturn_window: 1h\nenabled: false", ""},
      {"promote_after: 0", "promote_after must be 1..100"},
      {"promote_after: many", "wrong type for 'promote_after'"},
      {"return_window: 10s", "return_window must be a duration from 1m to 168h"},
      {"promote_afte: 3",
       "unknown autonomy key 'promote_afte' (enabled, promote_after, return_window)"},
      {"[1, 2]", "autonomy must be {"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.yaml);
    AutonomyConfig config;
    Status s = ParseAutonomyYaml(YAML::Load(c.yaml), "server.yaml", config);
    if (c.error.empty()) {
      ASSERT_TRUE(s.has_value()) << s.error().ToString();
      EXPECT_EQ(config.promote_after, 3);
      EXPECT_EQ(config.return_window, 1h);
      EXPECT_FALSE(config.enabled);
    } else {
      ASSERT_FALSE(s.has_value());
      EXPECT_NE(s.error().message.find(c.error), std::string::npos) << s.error().message;
      EXPECT_EQ(s.error().message.rfind("server.yaml:1: ", 0), 0u) << s.error().message;
    }
  }
}

}  // namespace
}  // namespace medic::server
