// Fix options and undo through the incident manager (docs/AUTONOMY.md, "Options" and "Undo"):
// approving option N sends option N; automatic mode runs the first option policy allows; undo
// sends the recorded undo of the option that ran, once, and only after it ran to success.

#include <gtest/gtest.h>

#include "server/incidents/incident_manager.h"
#include "tests/fakes/incident_fakes.h"
#include "tests/fakes/temp_dir.h"

namespace medic::server {
namespace {

using test::FakeAlarms;
using test::RecordingSink;
using test::ToAlarm;
using test::ToOk;

class IncidentOptionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::move(OpenSqliteStore(dir_.File("medic.db")).value());
    settings_ = std::move(SettingsService::Load(*store_, Settings{}).value());
  }
  // The default runbooks, with the Nginx-Down-ALB fix replaced by `fix` when given.
  void Build(std::optional<protocol::Action> fix = std::nullopt) {
    std::vector<ai::Runbook> runbooks = ai::DefaultRunbooks();
    for (auto& rb : runbooks) {
      if (rb.alarm == "Nginx-Down-ALB" && fix) {
        rb.fix = *fix;
        rb.alternatives.clear();
      }
    }
    manager_ = std::make_unique<IncidentManager>(
        *store_, clock_, sink_, alarms_, *settings_, brain_,
        [](std::function<void()> task) { task(); }, DefaultAlarmRules(), runbooks);
    manager_->SetArchiveLookup([this](const std::string& host, const std::string& location)
                                   -> Result<IncidentManager::ArchivedCopy> {
      lookups_.push_back(host + " " + location);
      if (location != "/srv/archive/web-1/20261207T193500Z-access.log") {
        return NotFound("no such archived file");
      }
      return IncidentManager::ArchivedCopy{"20261207T193500Z-access.log", std::string(64, 'c'),
                                           5};
    });
  }
  Incident Get(const std::string& id) { return store_->GetIncident(id).value(); }
  Incident OpenAndDiagnose() {
    manager_->OnAlarmTransition(ToAlarm());
    for (const auto& [host, c] : std::vector(sink_.sent)) {
      manager_->OnCommandResult(test::OkResult(c.id, "output of " + c.action));
    }
    auto list = store_->ListIncidents({});
    EXPECT_EQ(list->size(), 1u);
    return list->front();
  }
  // Runs the fix that was sent last to success, and verifies it.
  Incident RunFixAndVerify(const std::string& id, std::string output = "done") {
    manager_->OnCommandResult(test::OkResult(sink_.sent.back().second.id, std::move(output)));
    manager_->OnAlarmTransition(ToOk());
    return Get(id);
  }
  bool Has(const Incident& inc, const std::string& event) {
    for (const auto& e : inc.timeline) {
      if (e.event == event) {
        return true;
      }
    }
    return false;
  }
  std::string Detail(const Incident& inc, const std::string& event) {
    for (const auto& e : inc.timeline) {
      if (e.event == event) {
        return e.detail;
      }
    }
    return "";
  }

  test::TempDir dir_;
  ManualClock clock_;
  RecordingSink sink_;
  FakeAlarms alarms_;
  ai::RunbookBrain brain_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<SettingsService> settings_;
  std::unique_ptr<IncidentManager> manager_;
  std::vector<std::string> lookups_;
};

TEST_F(IncidentOptionsTest, ApprovingOptionTwoRunsOptionTwoAndNotOptionOne) {
  Build();
  const Incident inc = OpenAndDiagnose();
  ASSERT_EQ(inc.status, IncidentStatus::kPendingApproval);
  const Json options = IncidentToJson(inc)["options"];
  ASSERT_EQ(options.size(), 3u) << options.dump(2);
  EXPECT_EQ(options[0]["line"], "service.restart service=nginx");
  EXPECT_EQ(options[1]["line"], "service.start service=nginx");
  const size_t before = sink_.sent.size();
  auto approved = manager_->Approve(inc.incident_id, "alice", ActionHash(inc), "try a start", 2);
  ASSERT_TRUE(approved.has_value()) << approved.error().ToString();
  ASSERT_EQ(sink_.sent.size(), before + 1);
  EXPECT_EQ(sink_.sent.back().second.action, "service.start");
  EXPECT_EQ(sink_.sent.back().second.params, (Json{{"service", "nginx"}}));
  EXPECT_EQ(approved->ai_suggestion, "service.start service=nginx");
  EXPECT_EQ(Detail(*approved, "option_approved"), "option 2 of 3: service.start service=nginx");
  EXPECT_EQ(Detail(*approved, "approved"), "try a start");
  auto audit = store_->ListAudit(10);
  ASSERT_TRUE(audit.has_value());
  bool found = false;
  for (const auto& a : *audit) {
    if (a.action == "incident.approve") {
      const Json d = ParseJson(a.detail).value();
      EXPECT_EQ(d["option"], 2);
      EXPECT_EQ(d["action"], "service.start service=nginx");
      found = true;
    }
  }
  EXPECT_TRUE(found);
}

TEST_F(IncidentOptionsTest, AnOptionOutOfRangeIsRefusedNamingTheRangeAndChangesNothing) {
  Build();
  const Incident inc = OpenAndDiagnose();
  const size_t before = sink_.sent.size();
  for (size_t option : {size_t{0}, size_t{4}}) {
    auto r = manager_->Approve(inc.incident_id, "alice", ActionHash(inc), "", option);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message.find("options 1 to 3"), std::string::npos) << r.error().message;
  }
  EXPECT_EQ(sink_.sent.size(), before);
  EXPECT_EQ(Get(inc.incident_id).status, IncidentStatus::kPendingApproval);
}

TEST_F(IncidentOptionsTest, AutomaticModeRunsTheFirstOptionPolicyAllows) {
  // The runbook's fix needs a human (approval_required), its alternatives are automatic:
  // with approval mode off, the first automatic one runs, and only it.
  std::vector<ai::Runbook> runbooks = ai::DefaultRunbooks();
  for (auto& rb : runbooks) {
    if (rb.alarm == "Nginx-Down-ALB") {
      rb.approval_required = std::nullopt;
    }
  }
  ASSERT_TRUE(settings_->Update(Json{{"approval_mode", false}}).has_value());
  // A brain whose choice waits for a human: the runbook's fix, flagged high-risk.
  struct Brain : ai::Brain {
    ai::Decision Decide(const ai::DecisionRequest& req) override {
      ai::Decision d = ai::RunbookBrain().Decide(req);
      d.requires_approval = true;
      d.approval_reason = "the model rates its own action high-risk";
      return d;
    }
  } brain;
  manager_ = std::make_unique<IncidentManager>(
      *store_, clock_, sink_, alarms_, *settings_, brain,
      [](std::function<void()> task) { task(); }, DefaultAlarmRules(), runbooks);
  const Incident inc = OpenAndDiagnose();
  EXPECT_EQ(inc.status, IncidentStatus::kExecuting);
  ASSERT_EQ(sink_.sent.size(), 3u);  // two diagnostics, one fix
  EXPECT_EQ(sink_.sent.back().second.action, "service.start");
  EXPECT_NE(Detail(inc, "option_chosen").find("option 2 (service.start service=nginx)"),
            std::string::npos)
      << Detail(inc, "option_chosen");
  EXPECT_NE(Detail(inc, "auto_approved").find("(option 2)"), std::string::npos);
  manager_.reset();  // before `brain` goes
}

TEST_F(IncidentOptionsTest, UndoOfAStopStartsTheServiceOnceAndIsRecorded) {
  Build(protocol::Action{"service.stop", Json{{"service", "healthapp"}}});
  const Incident inc = OpenAndDiagnose();
  ASSERT_TRUE(manager_->Approve(inc.incident_id, "alice", ActionHash(inc), "").has_value());
  // Not finished yet: nothing to undo.
  auto early = manager_->Undo(inc.incident_id, "bob");
  ASSERT_FALSE(early.has_value());
  EXPECT_EQ(early.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(early.error().message.find("executing"), std::string::npos) << early.error().message;

  ASSERT_EQ(RunFixAndVerify(inc.incident_id).status, IncidentStatus::kCompleted);
  const size_t before = sink_.sent.size();
  auto undo = manager_->Undo(inc.incident_id, "bob");
  ASSERT_TRUE(undo.has_value()) << undo.error().ToString();
  ASSERT_EQ(sink_.sent.size(), before + 1);
  const protocol::Command sent = sink_.sent.back().second;
  EXPECT_EQ(sink_.sent.back().first, "web-1");
  EXPECT_EQ(sent.action, "service.start");
  EXPECT_EQ(sent.params, (Json{{"service", "healthapp"}}));
  EXPECT_EQ(sent.approved_by, "bob");
  EXPECT_EQ(sent.incident, inc.incident_id);
  EXPECT_TRUE(Has(*undo, "undo_requested"));
  EXPECT_EQ(undo->status, IncidentStatus::kCompleted);

  // Asked twice while it runs: refused.
  auto twice = manager_->Undo(inc.incident_id, "bob");
  ASSERT_FALSE(twice.has_value());
  EXPECT_NE(twice.error().message.find("already running"), std::string::npos);

  // An answer from another host is ignored; the host's own is recorded.
  manager_->OnCommandResult(test::OkResult(sent.id, "started healthapp", "web-2"));
  EXPECT_FALSE(Has(Get(inc.incident_id), "undone"));
  manager_->OnCommandResult(test::OkResult(sent.id, "started healthapp"));
  const Incident done = Get(inc.incident_id);
  EXPECT_TRUE(Has(done, "undone")) << IncidentToJson(done).dump(2);
  EXPECT_NE(done.remediation_output.find("started healthapp"), std::string::npos);

  auto again = manager_->Undo(inc.incident_id, "bob");
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(again.error().message.find("already undone"), std::string::npos)
      << again.error().message;
}

TEST_F(IncidentOptionsTest, UndoOfARestartIsRefusedWithNothingToUndo) {
  Build();
  const Incident inc = OpenAndDiagnose();
  ASSERT_TRUE(manager_->Approve(inc.incident_id, "alice", ActionHash(inc), "").has_value());
  ASSERT_EQ(RunFixAndVerify(inc.incident_id).status, IncidentStatus::kCompleted);
  const size_t before = sink_.sent.size();
  auto undo = manager_->Undo(inc.incident_id, "bob");
  ASSERT_FALSE(undo.has_value());
  EXPECT_EQ(undo.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(undo.error().message.find("nothing to undo"), std::string::npos)
      << undo.error().message;
  EXPECT_EQ(sink_.sent.size(), before);
}

TEST_F(IncidentOptionsTest, UndoOfAFailedFixIsRefused) {
  Build(protocol::Action{"service.stop", Json{{"service", "healthapp"}}});
  const Incident inc = OpenAndDiagnose();
  ASSERT_TRUE(manager_->Approve(inc.incident_id, "alice", ActionHash(inc), "").has_value());
  protocol::CommandResult failed = test::OkResult(sink_.sent.back().second.id, "no");
  failed.exit_code = 1;
  manager_->OnCommandResult(failed);
  ASSERT_EQ(Get(inc.incident_id).status, IncidentStatus::kFailed);
  auto undo = manager_->Undo(inc.incident_id, "bob");
  ASSERT_FALSE(undo.has_value());
  EXPECT_NE(undo.error().message.find("no fix that ran to success"), std::string::npos)
      << undo.error().message;
}

TEST_F(IncidentOptionsTest, UndoOfAnArchiveRestoresTheArchivesOwnCopy) {
  Build(protocol::Action{"log.archive_truncate", Json{{"path", "/var/log/nginx/access.log"}}});
  const Incident inc = OpenAndDiagnose();
  ASSERT_TRUE(manager_->Approve(inc.incident_id, "alice", ActionHash(inc), "").has_value());
  ASSERT_EQ(RunFixAndVerify(inc.incident_id,
                            "archived /var/log/nginx/access.log (5 bytes) to "
                            "/srv/archive/web-1/20261207T193500Z-access.log\n"
                            "sha256 " + std::string(64, 'f') + "\n"
                            "truncated /var/log/nginx/access.log\n")
                .status,
            IncidentStatus::kCompleted);
  auto undo = manager_->Undo(inc.incident_id, "bob");
  ASSERT_TRUE(undo.has_value()) << undo.error().ToString();
  EXPECT_EQ(lookups_, (std::vector<std::string>{
                          "web-1 /srv/archive/web-1/20261207T193500Z-access.log"}));
  const protocol::Command sent = sink_.sent.back().second;
  EXPECT_EQ(sent.action, "log.restore");
  // The checksum is the archive's (c...), not what the host's output said (f...).
  EXPECT_EQ(sent.params, (Json{{"path", "/var/log/nginx/access.log"},
                               {"archive", "20261207T193500Z-access.log"},
                               {"sha256", std::string(64, 'c')},
                               {"bytes", 5}}));
  protocol::CommandResult failed = test::OkResult(sent.id, "checksum mismatch");
  failed.exit_code = 1;
  manager_->OnCommandResult(failed);
  const Incident after = Get(inc.incident_id);
  EXPECT_TRUE(Has(after, "undo_failed"));
  EXPECT_FALSE(Has(after, "undone"));
  // A failed undo may be asked again.
  EXPECT_TRUE(manager_->Undo(inc.incident_id, "bob").has_value());
}

TEST_F(IncidentOptionsTest, UndoOfAnArchiveTheArchiveDoesNotKnowIsRefused) {
  Build(protocol::Action{"log.archive_truncate", Json{{"path", "/var/log/nginx/access.log"}}});
  const Incident inc = OpenAndDiagnose();
  ASSERT_TRUE(manager_->Approve(inc.incident_id, "alice", ActionHash(inc), "").has_value());
  // The host names another host's file as its copy.
  RunFixAndVerify(inc.incident_id,
                  "archived /var/log/nginx/access.log (5 bytes) to "
                  "/srv/archive/web-2/20261207T193500Z-access.log\n");
  const size_t before = sink_.sent.size();
  auto undo = manager_->Undo(inc.incident_id, "bob");
  ASSERT_FALSE(undo.has_value());
  EXPECT_EQ(undo.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(undo.error().message.find("cannot be used"), std::string::npos)
      << undo.error().message;
  EXPECT_EQ(sink_.sent.size(), before);
}

TEST_F(IncidentOptionsTest, AnUndoWithoutAnswerFailsAtItsDeadline) {
  Build(protocol::Action{"service.stop", Json{{"service", "healthapp"}}});
  const Incident inc = OpenAndDiagnose();
  ASSERT_TRUE(manager_->Approve(inc.incident_id, "alice", ActionHash(inc), "").has_value());
  RunFixAndVerify(inc.incident_id);
  ASSERT_TRUE(manager_->Undo(inc.incident_id, "bob").has_value());
  clock_.Advance(Millis(70'000));
  manager_->RunOnce();
  const Incident after = Get(inc.incident_id);
  EXPECT_NE(Detail(after, "undo_failed").find("no result"), std::string::npos)
      << IncidentToJson(after).dump(2);
}

}  // namespace
}  // namespace medic::server
