// Stage gates (docs/AUTONOMY.md "Stage gates"): a runbook's diagnose, fix and verify steps each
// automatic or waiting for an operator; the incident engine with a real SQLite store and the
// recording fakes, as the other IncidentManager tests. Also the server's part of "what changed"
// (medic's own recent actions on the host) and the runbook keys of both.

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>

#include "ai/prompt.h"
#include "server/incidents/incident_manager.h"
#include "server/incidents/what_changed.h"
#include "tests/fakes/incident_fakes.h"
#include "tests/fakes/temp_dir.h"

namespace medic::server {
namespace {

using test::ToAlarm;
using test::ToOk;

// The default runbooks with Nginx-Down-ALB's gates set as given.
std::vector<ai::Runbook> Gated(bool diagnose, std::optional<bool> fix, bool verify) {
  std::vector<ai::Runbook> all = ai::DefaultRunbooks();
  for (auto& rb : all) {
    if (rb.alarm == "Nginx-Down-ALB") {
      rb.diagnose_needs_approval = diagnose;
      rb.approval_required = fix;
      rb.verify_needs_approval = verify;
    }
  }
  return all;
}

class StageGatesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::move(OpenSqliteStore(dir_.File("medic.db")).value());
    settings_ = std::move(SettingsService::Load(*store_, Settings{}).value());
  }
  void Build(std::vector<ai::Runbook> runbooks) {
    runbooks_ = runbooks;
    manager_ = std::make_unique<IncidentManager>(
        *store_, clock_, sink_, alarms_, *settings_, brain_,
        [](std::function<void()> task) { task(); }, DefaultAlarmRules(), std::move(runbooks));
  }
  // The one incident in the store.
  Incident Only() {
    std::vector<Incident> all = store_->ListIncidents({}).value_or(std::vector<Incident>{});
    EXPECT_EQ(all.size(), 1u);
    return all.empty() ? Incident{} : all.front();
  }
  static std::vector<std::string> Events(const Incident& inc) {
    std::vector<std::string> names(inc.timeline.size());
    std::transform(inc.timeline.begin(), inc.timeline.end(), names.begin(),
                   [](const TimelineEntry& e) { return e.event; });
    return names;
  }
  // Answers every command sent so far that has not been answered yet (not those the answers
  // send).
  void AnswerAll() {
    for (const size_t sent = sink_.sent.size(); answered_ < sent;) {
      const protocol::Command c = sink_.sent[answered_++].second;
      manager_->OnCommandResult(test::OkResult(c.id, "output of " + c.action));
    }
  }
  bool Held() { return alarms_.remediating[{"Nginx-Down-ALB", "web-1"}]; }
  std::vector<std::string> ActionsSent() {
    std::vector<std::string> out;
    for (const auto& [host, c] : sink_.sent) {
      out.push_back(c.action);
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
  std::vector<ai::Runbook> runbooks_;
  std::unique_ptr<IncidentManager> manager_;
  size_t answered_ = 0;
};

// Acceptance: a gated diagnose step waits for approval while the fix stays automatic.
TEST_F(StageGatesTest, GatedDiagnoseWaitsForApprovalWhileTheFixStaysAutomatic) {
  Build(Gated(/*diagnose=*/true, /*fix=*/false, /*verify=*/false));
  manager_->OnAlarmTransition(ToAlarm());
  Incident inc = Only();
  EXPECT_EQ(inc.status, IncidentStatus::kPendingApproval);
  EXPECT_EQ(AwaitingStep(inc), "diagnose");
  EXPECT_EQ(IncidentToJson(inc)["awaiting"], "diagnose");
  EXPECT_TRUE(sink_.sent.empty()) << "nothing may run on the host before the approval";
  EXPECT_EQ(Events(inc), (std::vector<std::string>{"created", "awaiting_diagnostics_approval"}));
  EXPECT_NE(inc.timeline.back().detail.find("service.status service=nginx"), std::string::npos)
      << inc.timeline.back().detail;
  // Time passes: a gated step does not expire into running anything.
  clock_.Advance(std::chrono::minutes(5));
  manager_->RunOnce();
  EXPECT_TRUE(sink_.sent.empty());

  // The fix's approval route refuses it: there is no fix to approve yet.
  auto wrong = manager_->Approve(inc.incident_id, "alice", ActionHash(inc), "");
  ASSERT_FALSE(wrong.has_value());
  EXPECT_EQ(wrong.error().code, ErrorCode::kFailedPrecondition);
  auto wrong_step = manager_->ApproveStep(inc.incident_id, "alice", "verify", "");
  ASSERT_FALSE(wrong_step.has_value());
  EXPECT_EQ(wrong_step.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(wrong_step.error().message.find("diagnose"), std::string::npos)
      << wrong_step.error().message;
  EXPECT_TRUE(sink_.sent.empty());

  auto approved = manager_->ApproveStep(inc.incident_id, "alice", "diagnose", "read the logs");
  ASSERT_TRUE(approved.has_value()) << approved.error().message;
  EXPECT_EQ(approved->status, IncidentStatus::kDiagnosing);
  EXPECT_EQ(ActionsSent(), (std::vector<std::string>{"service.status", "service.logs"}));
  AnswerAll();
  // The fix ran without a human: the runbook's fix gate is automatic.
  inc = Only();
  EXPECT_EQ(inc.status, IncidentStatus::kExecuting);
  EXPECT_EQ(ActionsSent(),
            (std::vector<std::string>{"service.status", "service.logs", "service.restart"}));
  EXPECT_EQ(sink_.sent.back().second.approved_by, "auto");
  alarms_.state = AlarmState::kOk;
  AnswerAll();
  inc = Only();
  EXPECT_EQ(inc.status, IncidentStatus::kCompleted);
  EXPECT_EQ(Events(inc),
            (std::vector<std::string>{"created", "awaiting_diagnostics_approval",
                                      "diagnostics_approved", "diagnosed", "suggested",
                                      "auto_approved", "executing", "executed", "verified",
                                      "completed"}));
  EXPECT_EQ(inc.timeline[2].actor, "alice");
  EXPECT_EQ(inc.timeline[2].detail, "read the logs");
  auto audit = store_->ListAudit(10);
  ASSERT_TRUE(audit.has_value());
  EXPECT_TRUE(std::any_of(audit->begin(), audit->end(), [](const auto& e) {
    return e.action == "incident.approve_step" && e.actor == "alice";
  }));
}

// Acceptance, the reverse: the diagnostics run at once, the fix waits for a human, even with the
// global approval mode off.
TEST_F(StageGatesTest, AutomaticDiagnoseWithAGatedFixWaitsForTheFixOnly) {
  ASSERT_TRUE(settings_->Update(Json{{"approval_mode", false}}).has_value());
  Build(Gated(/*diagnose=*/false, /*fix=*/true, /*verify=*/false));
  manager_->OnAlarmTransition(ToAlarm());
  EXPECT_EQ(ActionsSent(), (std::vector<std::string>{"service.status", "service.logs"}));
  AnswerAll();
  Incident inc = Only();
  EXPECT_EQ(inc.status, IncidentStatus::kPendingApproval);
  EXPECT_EQ(AwaitingStep(inc), "fix");
  EXPECT_EQ(sink_.sent.size(), 2u) << "the fix waits for a human";
  EXPECT_NE(inc.diagnostics.find("output of service.logs"), std::string::npos);
  auto refused = manager_->ApproveStep(inc.incident_id, "bob", "diagnose", "");
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kFailedPrecondition);
  auto approved = manager_->Approve(inc.incident_id, "bob", ActionHash(inc), "");
  ASSERT_TRUE(approved.has_value()) << approved.error().message;
  EXPECT_EQ(ActionsSent().back(), "service.restart");
  EXPECT_EQ(sink_.sent.back().second.approved_by, "bob");
}

// Without a gate, today's behaviour: the same engine with the same settings runs the fix.
TEST_F(StageGatesTest, WithoutGatesTheFixRunsInAutomaticMode) {
  ASSERT_TRUE(settings_->Update(Json{{"approval_mode", false}}).has_value());
  Build(ai::DefaultRunbooks());
  manager_->OnAlarmTransition(ToAlarm());
  AnswerAll();
  EXPECT_EQ(Only().status, IncidentStatus::kExecuting);
  EXPECT_EQ(ActionsSent().back(), "service.restart");
}

TEST_F(StageGatesTest, GatedVerifyWaitsForAHumanToConfirmTheRecovery) {
  Build(Gated(false, false, /*verify=*/true));
  manager_->OnAlarmTransition(ToAlarm());
  AnswerAll();  // diagnostics; the fix goes out
  ASSERT_EQ(ActionsSent().back(), "service.restart");
  alarms_.state = AlarmState::kOk;
  AnswerAll();  // the fix's result: the alarm is OK
  Incident inc = Only();
  EXPECT_EQ(inc.status, IncidentStatus::kExecuting);
  EXPECT_EQ(AwaitingStep(inc), "verify");
  EXPECT_EQ(Events(inc).back(), "awaiting_verification_approval");
  // No deadline ends it while it waits (the verification window is 30 s).
  clock_.Advance(std::chrono::minutes(2));
  manager_->RunOnce();
  EXPECT_EQ(Only().status, IncidentStatus::kExecuting);
  // A server restart keeps it waiting.
  Build(runbooks_);
  ASSERT_TRUE(manager_->Recover().has_value());
  inc = Only();
  EXPECT_EQ(AwaitingStep(inc), "verify");
  EXPECT_TRUE(Held());
  auto confirmed = manager_->ApproveStep(inc.incident_id, "carol", "verify", "looks good");
  ASSERT_TRUE(confirmed.has_value()) << confirmed.error().message;
  EXPECT_EQ(confirmed->status, IncidentStatus::kCompleted);
  EXPECT_FALSE(Held());
  const std::vector<std::string> events = Events(*confirmed);
  EXPECT_EQ(std::vector<std::string>(events.end() - 2, events.end()),
            (std::vector<std::string>{"verified", "completed"}));
}

TEST_F(StageGatesTest, ARejectedVerificationFailsTheIncident) {
  Build(Gated(false, false, /*verify=*/true));
  manager_->OnAlarmTransition(ToAlarm());
  AnswerAll();
  alarms_.state = AlarmState::kOk;
  AnswerAll();
  Incident inc = Only();
  ASSERT_EQ(AwaitingStep(inc), "verify");
  auto rejected = manager_->Reject(inc.incident_id, "dave", "pages still slow");
  ASSERT_TRUE(rejected.has_value()) << rejected.error().message;
  EXPECT_EQ(rejected->status, IncidentStatus::kFailed);
  EXPECT_NE(rejected->reason.find("rejected by dave: pages still slow"), std::string::npos)
      << rejected->reason;
  EXPECT_FALSE(Held());
}

TEST_F(StageGatesTest, AGatedDiagnoseSurvivesARestartAndCanBeRejected) {
  Build(Gated(true, std::nullopt, false));
  manager_->OnAlarmTransition(ToAlarm());
  const std::string id = Only().incident_id;
  Build(runbooks_);
  ASSERT_TRUE(manager_->Recover().has_value());
  EXPECT_TRUE(sink_.sent.empty());
  EXPECT_EQ(AwaitingStep(Only()), "diagnose");
  auto rejected = manager_->Reject(id, "erin", "not on a Friday");
  ASSERT_TRUE(rejected.has_value()) << rejected.error().message;
  EXPECT_EQ(rejected->status, IncidentStatus::kRejected);
  EXPECT_TRUE(sink_.sent.empty());
}

TEST_F(StageGatesTest, ABadStepIsRefused) {
  Build(Gated(true, std::nullopt, false));
  manager_->OnAlarmTransition(ToAlarm());
  auto r = manager_->ApproveStep(Only().incident_id, "alice", "fix", "");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  auto missing = manager_->ApproveStep("inc-nope", "alice", "diagnose", "");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
}

// --- the runbook keys ---------------------------------------------------------------------

Status Parse(const std::string& text, std::vector<ai::Runbook>& out) {
  return ai::ParseRunbooksYaml(YAML::Load(text), "server.yaml", out);
}

const ai::Runbook& Find(const std::vector<ai::Runbook>& all, const std::string& alarm) {
  for (const auto& rb : all) {
    if (rb.alarm == alarm) {
      return rb;
    }
  }
  static const ai::Runbook kNone;
  return kNone;
}

TEST(StageGatesConfigTest, GatesParseAndTheDefaultsKeepTodaysBehaviour) {
  std::vector<ai::Runbook> all = ai::DefaultRunbooks();
  for (const auto& rb : all) {
    EXPECT_FALSE(rb.diagnose_needs_approval) << rb.alarm;
    EXPECT_FALSE(rb.verify_needs_approval) << rb.alarm;
    EXPECT_FALSE(rb.approval_required.has_value()) << rb.alarm;
  }
  ASSERT_TRUE(Parse("Disk-Critical-ASG:\n  gates: {diagnose: approval, fix: automatic, verify: "
                    "approval}\n",
                    all)
                  .has_value());
  const ai::Runbook& disk = Find(all, "Disk-Critical-ASG");
  EXPECT_TRUE(disk.diagnose_needs_approval);
  EXPECT_EQ(disk.approval_required, std::optional<bool>(false));
  EXPECT_TRUE(disk.verify_needs_approval);
  EXPECT_FALSE(Find(all, "Nginx-Down-ALB").diagnose_needs_approval);
}

TEST(StageGatesConfigTest, BadGatesAreErrorsNamingTheRunbook) {
  struct Case {
    std::string yaml;
    std::string want;
  };
  const Case cases[] = {
      {"Nginx-Down-ALB:\n  gates: {diagnose: maybe}\n",
       "server.yaml:2: runbook 'Nginx-Down-ALB': gates.diagnose must be automatic or "
       "approval, got 'maybe'"},
      {"Nginx-Down-ALB:\n  gates: {deploy: approval}\n",
       "runbook 'Nginx-Down-ALB': unknown gate 'deploy' (diagnose, fix, verify)"},
      {"Nginx-Down-ALB:\n  gates: approval\n", "runbook 'Nginx-Down-ALB': gates must be a mapping"},
      {"Nginx-Down-ALB:\n  gates: {fix: [approval]}\n",
       "gates.fix must be automatic or approval, got ''"},
      {"Nginx-Down-ALB:\n  changes_window: soon\n",
       "runbook 'Nginx-Down-ALB': changes_window must be a duration from 1s to 7d"},
      {"Nginx-Down-ALB:\n  changes_window: 30d\n", "changes_window must be a duration"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.yaml);
    std::vector<ai::Runbook> all = ai::DefaultRunbooks();
    Status s = Parse(c.yaml, all);
    ASSERT_FALSE(s.has_value());
    EXPECT_NE(s.error().message.find(c.want), std::string::npos) << s.error().message;
  }
}

TEST(WhatChangedConfigTest, EveryRunbookThatRunsOnTheHostGetsHostChanges) {
  std::vector<ai::Runbook> all = ai::DefaultRunbooks();
  ASSERT_TRUE(Parse("Memory-Exhaustion-ASG:\n  changes_window: 2h\n"
                    "Nginx-Down-ALB:\n  changes_window: off\n"
                    "Queue-Backlog:\n  fix: {action: service.restart, params: {service: worker}}\n",
                    all)
                  .has_value());
  const std::vector<ai::Runbook> with = ai::WithWhatChanged(all);
  auto last = [&](const std::string& alarm) {
    const ai::Runbook& rb = Find(with, alarm);
    return rb.diagnostics.empty() ? std::string()
                                  : protocol::RenderCommandLine(rb.diagnostics.back());
  };
  EXPECT_EQ(last("Disk-Critical-ASG"), "host.changes window=1h");
  EXPECT_EQ(last("Memory-Exhaustion-ASG"), "host.changes window=2h");
  EXPECT_EQ(last("Queue-Backlog"), "host.changes window=1h");
  EXPECT_EQ(last("Nginx-Down-ALB"), "service.logs service=nginx lines=30");
  EXPECT_TRUE(Find(with, "Host-Unreachable").diagnostics.empty());  // its agent is away
  // Applying it twice adds nothing.
  EXPECT_EQ(ai::WithWhatChanged(with)[1].diagnostics.size(), with[1].diagnostics.size());
  EXPECT_EQ(ai::ChangesWindowOf(Find(with, "Memory-Exhaustion-ASG").diagnostics),
            std::optional<Millis>(Millis(7'200'000)));
  // Diagnostics sent 90 s after the alarm look back 90 s further.
  const protocol::Action wider =
      ai::WidenChangesWindow(Find(with, "Disk-Critical-ASG").diagnostics.back(), Millis(90'000));
  EXPECT_EQ(protocol::RenderCommandLine(wider), "host.changes window=3690s");
}

// The server's part of what changed: medic's own recent actions on the host, in the diagnostics.
TEST_F(StageGatesTest, DiagnosticsListMedicsOwnRecentActionsOnTheHost) {
  Build(ai::WithWhatChanged(Gated(false, false, false)));
  manager_->OnAlarmTransition(ToAlarm());
  AnswerAll();  // diagnostics; the fix runs at once
  alarms_.state = AlarmState::kOk;
  AnswerAll();
  const Incident first = Only();
  ASSERT_EQ(first.status, IncidentStatus::kCompleted);
  EXPECT_NE(first.diagnostics.find("$ host.changes window=1h"), std::string::npos)
      << first.diagnostics;
  EXPECT_NE(first.diagnostics.find("$ medic's actions on web-1"), std::string::npos);

  clock_.Advance(std::chrono::minutes(10));
  alarms_.state = AlarmState::kAlarm;
  manager_->OnAlarmTransition(ToAlarm());
  AnswerAll();
  auto list = store_->ListIncidents({});
  ASSERT_TRUE(list.has_value());
  ASSERT_EQ(list->size(), 2u);
  const Incident& second = list->front().incident_id == first.incident_id ? list->back()
                                                                          : list->front();
  EXPECT_NE(second.diagnostics.find(first.incident_id +
                                    " Nginx-Down-ALB: executing service.restart service=nginx "
                                    "(now completed)"),
            std::string::npos)
      << second.diagnostics;
  // An action older than the window is not listed.
  const std::string text =
      RecentActionsSection(*store_, "web-1", clock_.Now() - Millis(60'000), second.incident_id);
  EXPECT_EQ(text.find(first.incident_id), std::string::npos) << text;
  EXPECT_NE(text.find("none"), std::string::npos) << text;
}

// What changed reaches the model as facts, inside the fenced untrusted host data.
TEST(WhatChangedPromptTest, TheChangesAreFactsInsideTheHostDataFence) {
  const std::string diagnostics =
      "$ disk.usage\nFilesystem Size Used Avail Use% Mounted on\n/dev/vda1 10G 9.5G 0.5G 95% /\n"
      "[exit 0, 2 ms]\n\n"
      "$ host.changes window=1h\n"
      "changes from 2026-12-07T18:40:02Z to 2026-12-07T19:40:02Z:\n"
      "packages (/var/log/dpkg.log):\n"
      "  2026-12-07T19:28:02Z install nginx-extras:amd64 1.22.1-9\n"
      "  (1 line(s) not understood, skipped)\n"
      "services (the agent's service manager):\n  none\n"
      "config files modified under /etc (mtime, size, sha256):\n"
      "  2026-12-07T19:35:02Z /etc/nginx/nginx.conf (22 B, sha256 ab12)\n"
      "reboots:\n  none: booted 2026-12-07T08:36:12Z, before the window\n[exit 0, 3 ms]\n\n"
      "$ medic's actions on web-1 since 2026-12-07T18:40:02.114Z (from the server's incidents)\n"
      "2026-12-07T19:00:00.000Z inc-1 Disk-Critical-ASG: executing disk.cleanup (now failed)\n";
  const Json facts = ai::ExtractFacts(diagnostics);
  const Json& changes = facts["recent_changes"];
  EXPECT_EQ(changes["packages"],
            Json::array({"2026-12-07T19:28:02Z install nginx-extras:amd64 1.22.1-9"}));
  EXPECT_EQ(changes["config_files"],
            Json::array({"2026-12-07T19:35:02Z /etc/nginx/nginx.conf (22 B, sha256 ab12)"}));
  EXPECT_EQ(changes["reboots"],
            Json::array({"none: booted 2026-12-07T08:36:12Z, before the window"}));
  EXPECT_FALSE(changes.contains("services")) << changes;
  EXPECT_EQ(changes["medic_actions"].size(), 1u) << changes;
  EXPECT_EQ(facts["disk"].size(), 1u) << facts;  // the other facts are still read

  ai::DecisionRequest req;
  req.incident = {"inc-2", "Disk-Critical-ASG", "disk", "web-1", diagnostics};
  req.runbook = ai::DefaultRunbooks()[1];
  const ai::LlmRequest prompt = ai::BuildPrompt(req, ai::AiConfig{}, "n0nce");
  const size_t open = prompt.user.find("<<<");
  const size_t close = prompt.user.find("-n0nce>>>");
  const size_t fact = prompt.user.find("\"recent_changes\"");
  const size_t raw = prompt.user.find("install nginx-extras:amd64");
  ASSERT_NE(open, std::string::npos);
  ASSERT_NE(close, std::string::npos);
  EXPECT_TRUE(fact > open && fact < close) << prompt.user;
  EXPECT_TRUE(raw > open && raw < close) << prompt.user;
}

}  // namespace
}  // namespace medic::server
