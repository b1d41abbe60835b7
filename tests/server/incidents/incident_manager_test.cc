#include "server/incidents/incident_manager.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>

#include "core/sha256.h"
#include "protocol/interrupted.h"
#include "tests/fakes/incident_fakes.h"
#include "tests/fakes/temp_dir.h"

namespace medic::server {
namespace {

using test::FakeAlarms;
using test::RecordingSink;

protocol::CommandResult Ok(const std::string& id, std::string output = "fine") {
  return test::OkResult(id, std::move(output));
}

using test::ToAlarm;
using test::ToOk;

// The agent's answer for a command it was killed while running (protocol/interrupted.h).
protocol::CommandResult Interrupted(const std::string& id) {
  protocol::CommandResult r;
  r.id = id;
  r.host = "web-1";
  r.ran = true;
  r.exit_code = -1;
  r.error = std::string(protocol::kInterruptedError);
  return r;
}

class IncidentManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::move(OpenSqliteStore(dir_.File("medic.db")).value());
    settings_ = std::move(SettingsService::Load(*store_, Settings{}).value());
    Rebuild();
  }
  void Rebuild() {
    manager_ = std::make_unique<IncidentManager>(
        *store_, clock_, sink_, alarms_, *settings_, brain_,
        [](std::function<void()> task) { task(); }, DefaultAlarmRules(), ai::DefaultRunbooks());
  }
  Incident Only() {
    auto list = store_->ListIncidents({});
    EXPECT_TRUE(list.has_value());
    EXPECT_EQ(list->size(), 1u);
    return list->empty() ? Incident{} : list->front();
  }
  std::vector<std::string> Events(const Incident& inc) {
    std::vector<std::string> out;
    for (const auto& e : inc.timeline) {
      out.push_back(e.event);
    }
    return out;
  }
  // The alarm is still in ALARM after `closed` failed: a fresh incident is open for it, diagnosing
  // again, and its first entry names the one that failed.
  void ExpectJudgedAgain(const Incident& closed) {
    auto open = store_->FindOpenIncident("Nginx-Down-ALB", "web-1");
    ASSERT_TRUE(open.has_value() && open->has_value());
    const Incident& next = **open;
    EXPECT_NE(next.incident_id, closed.incident_id);
    EXPECT_EQ(next.status, IncidentStatus::kDiagnosing);
    ASSERT_FALSE(next.timeline.empty());
    EXPECT_EQ(next.timeline.front().event, "created");
    EXPECT_NE(next.timeline.front().detail.find("still in ALARM after " + closed.incident_id +
                                                " ended " +
                                                std::string(StatusName(closed.status))),
              std::string::npos)
        << next.timeline.front().detail;
    EXPECT_EQ(store_->ListIncidents({})->size(), 2u);
  }
  // Opens the incident and answers both diagnostics.
  Incident OpenAndDiagnose() {
    manager_->OnAlarmTransition(ToAlarm());
    EXPECT_EQ(sink_.sent.size(), 2u);
    // A copy: answering may send the fix (automatic mode), which appends to sink_.sent.
    for (const auto& [host, c] : std::vector(sink_.sent)) {
      manager_->OnCommandResult(Ok(c.id, "output of " + c.action));
    }
    return Only();
  }

  test::TempDir dir_;
  ManualClock clock_;
  RecordingSink sink_;
  FakeAlarms alarms_;
  ai::RunbookBrain brain_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<SettingsService> settings_;
  std::unique_ptr<IncidentManager> manager_;
};

TEST_F(IncidentManagerTest, AlarmOpensIncidentAndSendsRunbookDiagnostics) {
  manager_->OnAlarmTransition(ToAlarm());
  Incident inc = Only();
  EXPECT_EQ(inc.status, IncidentStatus::kDiagnosing);
  EXPECT_EQ(inc.alarm_name, "Nginx-Down-ALB");
  EXPECT_EQ(inc.instance_id, "web-1");
  ASSERT_EQ(sink_.sent.size(), 2u);
  EXPECT_EQ(sink_.sent[0].first, "web-1");
  EXPECT_EQ(sink_.sent[0].second.action, "service.status");
  EXPECT_EQ(sink_.sent[1].second.action, "service.logs");
  EXPECT_EQ(Events(inc), std::vector<std::string>{"created"});
}

TEST_F(IncidentManagerTest, DiagnosticsThenPendingApprovalWithFallbackFix) {
  Incident inc = OpenAndDiagnose();
  EXPECT_EQ(inc.status, IncidentStatus::kPendingApproval);
  EXPECT_NE(inc.diagnostics.find("output of service.status"), std::string::npos);
  EXPECT_NE(inc.diagnostics.find("output of service.logs"), std::string::npos);
  EXPECT_EQ(inc.ai_suggestion, "service.restart service=nginx");
  EXPECT_NE(inc.ai_reasoning.find("runbook"), std::string::npos);
  EXPECT_EQ(Events(inc),
            (std::vector<std::string>{"created", "diagnosed", "suggested", "awaiting_approval"}));
}

TEST_F(IncidentManagerTest, RepeatedAlarmAppendsInsteadOfOpeningAnother) {
  manager_->OnAlarmTransition(ToAlarm());
  manager_->OnAlarmTransition(ToAlarm());
  Incident inc = Only();
  EXPECT_EQ(Events(inc), (std::vector<std::string>{"created", "alarm_repeated"}));
}

TEST_F(IncidentManagerTest, ApproveExecutesAndVerifiedAlarmCompletes) {
  Incident inc = OpenAndDiagnose();
  auto approved = manager_->Approve(inc.incident_id, "alice", ActionHash(inc), "go");
  ASSERT_TRUE(approved.has_value());
  EXPECT_EQ(approved->status, IncidentStatus::kExecuting);
  ASSERT_EQ(sink_.sent.size(), 3u);
  EXPECT_EQ(sink_.sent[2].second.action, "service.restart");
  EXPECT_EQ(sink_.sent[2].second.params, (Json{{"service", "nginx"}}));
  // What the signed envelope names: the incident, and who approved (diagnostics need nobody).
  EXPECT_EQ(sink_.sent[2].second.incident, inc.incident_id);
  EXPECT_EQ(sink_.sent[2].second.approved_by, "alice");
  EXPECT_EQ(sink_.sent[0].second.incident, inc.incident_id);
  EXPECT_EQ(sink_.sent[0].second.approved_by, "diagnostics");
  manager_->OnCommandResult(Ok(sink_.sent[2].second.id, "restarted"));
  EXPECT_EQ(Only().status, IncidentStatus::kExecuting);  // verifying: alarm still ALARM
  alarms_.state = AlarmState::kOk;
  manager_->OnAlarmTransition(ToOk());
  inc = Only();
  EXPECT_EQ(inc.status, IncidentStatus::kCompleted);
  EXPECT_NE(inc.remediation_output.find("restarted"), std::string::npos);
  EXPECT_TRUE(inc.resolved_at.has_value());
  EXPECT_EQ(Events(inc), (std::vector<std::string>{"created", "diagnosed", "suggested",
                                                   "awaiting_approval", "approved", "executing",
                                                   "executed", "verifying", "verified",
                                                   "completed"}));
  EXPECT_EQ(inc.timeline[4].actor, "alice");
  EXPECT_EQ(inc.timeline[4].detail, "go");
}

// Only the host a command went to answers it: a result naming another host changes nothing,
// and the real host's answer still counts afterwards.
TEST_F(IncidentManagerTest, AResultFromAnotherHostIsIgnored) {
  manager_->OnAlarmTransition(ToAlarm());
  ASSERT_EQ(sink_.sent.size(), 2u);
  for (const auto& [host, c] : std::vector(sink_.sent)) {
    protocol::CommandResult forged = Ok(c.id, "forged by web-2");
    forged.host = "web-2";
    manager_->OnCommandResult(forged);
  }
  Incident inc = Only();
  EXPECT_EQ(inc.status, IncidentStatus::kDiagnosing);
  EXPECT_EQ(inc.diagnostics.find("forged"), std::string::npos);
  for (const auto& [host, c] : std::vector(sink_.sent)) {
    manager_->OnCommandResult(Ok(c.id, "output of " + c.action));
  }
  inc = Only();
  EXPECT_EQ(inc.status, IncidentStatus::kPendingApproval);
  EXPECT_EQ(inc.diagnostics.find("forged"), std::string::npos);
  EXPECT_NE(inc.diagnostics.find("output of service.status"), std::string::npos);
}

TEST_F(IncidentManagerTest, FixResultAfterAlarmClearedCompletesAtOnce) {
  Incident inc = OpenAndDiagnose();
  ASSERT_TRUE(manager_->Approve(inc.incident_id, "alice", ActionHash(inc), "").has_value());
  alarms_.state = AlarmState::kOk;
  manager_->OnCommandResult(Ok(sink_.sent[2].second.id));
  EXPECT_EQ(Only().status, IncidentStatus::kCompleted);
}

TEST_F(IncidentManagerTest, RejectCloses) {
  Incident inc = OpenAndDiagnose();
  auto rejected = manager_->Reject(inc.incident_id, "bob", "not now");
  ASSERT_TRUE(rejected.has_value());
  EXPECT_EQ(rejected->status, IncidentStatus::kRejected);
  EXPECT_EQ(sink_.sent.size(), 2u);  // nothing executed
  EXPECT_EQ(Events(*rejected).back(), "rejected");
}

TEST_F(IncidentManagerTest, ApproveOrRejectOutsidePendingIsRefused) {
  manager_->OnAlarmTransition(ToAlarm());
  Incident inc = Only();
  auto a = manager_->Approve(inc.incident_id, "alice", ActionHash(inc), "");
  ASSERT_FALSE(a.has_value());
  EXPECT_EQ(a.error().code, ErrorCode::kFailedPrecondition);
  auto r = manager_->Reject("inc-nope", "alice", "");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kNotFound);
}

TEST_F(IncidentManagerTest, AutomaticModeExecutesWithoutApproval) {
  ASSERT_TRUE(settings_->Update(Json{{"approval_mode", false}}).has_value());
  Incident inc = OpenAndDiagnose();
  EXPECT_EQ(inc.status, IncidentStatus::kExecuting);
  EXPECT_EQ(Events(inc), (std::vector<std::string>{"created", "diagnosed", "suggested",
                                                   "auto_approved", "executing"}));
  ASSERT_EQ(sink_.sent.size(), 3u);
  EXPECT_EQ(sink_.sent[2].second.approved_by, "auto");
  EXPECT_EQ(sink_.sent[2].second.incident, inc.incident_id);
}

// What a host prints is stored and shown redacted, with the AI prompt's patterns: the secret
// stays on the host.
TEST_F(IncidentManagerTest, DiagnosticsAndFixOutputAreStoredRedacted) {
  ASSERT_TRUE(settings_->Update(Json{{"approval_mode", false}}).has_value());
  manager_->OnAlarmTransition(ToAlarm());
  ASSERT_EQ(sink_.sent.size(), 2u);
  for (const auto& [host, c] : std::vector(sink_.sent)) {
    manager_->OnCommandResult(
        Ok(c.id, "nginx: started with --password hunter2-secret\n"
                 "upstream http://admin:s3cr3t-pw@10.0.0.5/ db_password=correct-horse-battery\n"
                 "Authorization: Bearer abcdef0123456789abcdef0123456789\n"));
  }
  ASSERT_EQ(sink_.sent.size(), 3u);
  manager_->OnCommandResult(Ok(sink_.sent[2].second.id, "restarted; token=ghp_0123456789abcdefghij"
                                                        "0123456789abcdefgh"));
  const Incident inc = Only();
  for (const std::string& text : {inc.diagnostics, inc.remediation_output}) {
    for (const char* secret : {"hunter2-secret", "s3cr3t-pw", "correct-horse-battery",
                               "abcdef0123456789abcdef0123456789", "ghp_0123456789"}) {
      EXPECT_EQ(text.find(secret), std::string::npos) << secret << " in:\n" << text;
    }
    EXPECT_NE(text.find("[REDACTED]"), std::string::npos) << text;
  }
  EXPECT_NE(inc.diagnostics.find("nginx: started with"), std::string::npos);
  EXPECT_NE(inc.remediation_output.find("restarted;"), std::string::npos);
}

TEST_F(IncidentManagerTest, PausedAutomationWaitsForAHumanEvenInAutomaticMode) {
  ASSERT_TRUE(
      settings_->Update(Json{{"approval_mode", false}, {"automation_paused", true}}).has_value());
  Incident inc = OpenAndDiagnose();
  EXPECT_EQ(inc.status, IncidentStatus::kPendingApproval);
  EXPECT_EQ(inc.timeline.back().detail, "automation is paused");
}

TEST_F(IncidentManagerTest, FailedFixFails) {
  Incident inc = OpenAndDiagnose();
  ASSERT_TRUE(manager_->Approve(inc.incident_id, "alice", ActionHash(inc), "").has_value());
  protocol::CommandResult r = Ok(sink_.sent[2].second.id, "nginx: [emerg] bind() failed");
  r.exit_code = 1;
  manager_->OnCommandResult(r);
  inc = *store_->GetIncident(inc.incident_id);
  EXPECT_EQ(inc.status, IncidentStatus::kFailed);
  EXPECT_NE(inc.reason.find("exit code 1"), std::string::npos);
  ExpectJudgedAgain(inc);
}

TEST_F(IncidentManagerTest, FailedFixWithTheAlarmAlreadyOkOpensNothingMore) {
  Incident inc = OpenAndDiagnose();
  ASSERT_TRUE(manager_->Approve(inc.incident_id, "alice", ActionHash(inc), "").has_value());
  protocol::CommandResult r = Ok(sink_.sent[2].second.id, "nginx: [emerg] bind() failed");
  r.exit_code = 1;
  alarms_.state = AlarmState::kOk;
  manager_->OnCommandResult(r);
  EXPECT_EQ(Only().status, IncidentStatus::kFailed);
  EXPECT_EQ(sink_.sent.size(), 3u);  // no new diagnostics
}

TEST_F(IncidentManagerTest, RefusedFixFailsWithTheHostsReason) {
  Incident inc = OpenAndDiagnose();
  ASSERT_TRUE(manager_->Approve(inc.incident_id, "alice", ActionHash(inc), "").has_value());
  protocol::CommandResult r;
  r.id = sink_.sent[2].second.id;
  r.host = "web-1";
  r.ran = false;
  r.error = "refused by local policy: service nginx not allowed";
  manager_->OnCommandResult(r);
  inc = *store_->GetIncident(inc.incident_id);
  EXPECT_EQ(inc.status, IncidentStatus::kFailed);
  EXPECT_NE(inc.reason.find("refused by local policy"), std::string::npos);
  ExpectJudgedAgain(inc);
}

TEST_F(IncidentManagerTest, VerificationWindowPassingFails) {
  Incident inc = OpenAndDiagnose();
  ASSERT_TRUE(manager_->Approve(inc.incident_id, "alice", ActionHash(inc), "").has_value());
  manager_->OnCommandResult(Ok(sink_.sent[2].second.id));
  clock_.Advance(std::chrono::seconds(29));
  manager_->RunOnce();
  EXPECT_EQ(Only().status, IncidentStatus::kExecuting);
  clock_.Advance(std::chrono::seconds(2));
  manager_->RunOnce();
  inc = *store_->GetIncident(inc.incident_id);
  EXPECT_EQ(inc.status, IncidentStatus::kFailed);
  EXPECT_NE(inc.reason.find("verification window"), std::string::npos);
  ExpectJudgedAgain(inc);
  EXPECT_EQ(sink_.sent.size(), 5u);  // the new incident's two diagnostics
}

TEST_F(IncidentManagerTest, NoFixResultTimesOut) {
  Incident inc = OpenAndDiagnose();
  ASSERT_TRUE(manager_->Approve(inc.incident_id, "alice", ActionHash(inc), "").has_value());
  clock_.Advance(std::chrono::seconds(70));
  manager_->RunOnce();
  inc = *store_->GetIncident(inc.incident_id);
  EXPECT_EQ(inc.status, IncidentStatus::kTimeout);
  ExpectJudgedAgain(inc);
}

TEST_F(IncidentManagerTest, UnansweredDiagnosticsAreNotJudgedAgain) {
  manager_->OnAlarmTransition(ToAlarm());
  clock_.Advance(std::chrono::seconds(11));
  manager_->RunOnce();
  EXPECT_EQ(Only().status, IncidentStatus::kTimeout);  // a silent host opens nothing more
  EXPECT_EQ(sink_.sent.size(), 2u);
}

TEST_F(IncidentManagerTest, AFixThatNeverWorksGetsThreeAutomaticTriesThenWaitsForAHuman) {
  ASSERT_TRUE(settings_->Update(Json{{"approval_mode", false}}).has_value());
  manager_->OnAlarmTransition(ToAlarm());
  int fixes = 0;
  for (size_t next = 0; next < sink_.sent.size(); ++next) {
    const protocol::Command c = sink_.sent[next].second;
    if (c.action == "service.restart") {
      ++fixes;
      manager_->OnCommandResult(Ok(c.id));  // runs, but the alarm stays in ALARM
      clock_.Advance(std::chrono::seconds(31));
      manager_->RunOnce();  // verification fails; judged again
    } else {
      manager_->OnCommandResult(Ok(c.id));
    }
    ASSERT_LT(next, 100u) << "no end to the retries";
  }
  EXPECT_EQ(fixes, 3);
  auto list = store_->ListIncidents({});
  ASSERT_TRUE(list.has_value());
  EXPECT_EQ(list->size(), 4u);
  auto open = store_->FindOpenIncident("Nginx-Down-ALB", "web-1");
  ASSERT_TRUE(open.has_value() && open->has_value());
  EXPECT_EQ((*open)->status, IncidentStatus::kPendingApproval);
  bool breaker = false;
  for (const auto& e : (*open)->timeline) {
    breaker = breaker || e.event == "breaker_open";
  }
  EXPECT_TRUE(breaker);
}

TEST_F(IncidentManagerTest, SilentHostTimesOutDiagnosis) {
  manager_->OnAlarmTransition(ToAlarm());
  clock_.Advance(std::chrono::seconds(11));
  manager_->RunOnce();
  Incident inc = Only();
  EXPECT_EQ(inc.status, IncidentStatus::kTimeout);
  EXPECT_NE(inc.reason.find("did not answer"), std::string::npos);
}

TEST_F(IncidentManagerTest, PartialDiagnosticsProceedAtDeadline) {
  manager_->OnAlarmTransition(ToAlarm());
  manager_->OnCommandResult(Ok(sink_.sent[0].second.id, "nginx: stopped"));
  clock_.Advance(std::chrono::seconds(11));
  manager_->RunOnce();
  Incident inc = Only();
  EXPECT_EQ(inc.status, IncidentStatus::kPendingApproval);
  EXPECT_NE(inc.diagnostics.find("no answer from the host in time"), std::string::npos);
}

// The fix may not have reached the host before the crash: the same command id is offered
// again (the agent runs an id once and answers a repeat with the stored result).
TEST_F(IncidentManagerTest, RestartOffersTheSameFixCommandAgainWhileUnexpired) {
  Incident inc = OpenAndDiagnose();
  ASSERT_TRUE(manager_->Approve(inc.incident_id, "alice", ActionHash(inc), "").has_value());
  const size_t sent_before = sink_.sent.size();
  const protocol::Command fix = sink_.sent.back().second;
  Rebuild();  // a new server process on the same store
  ASSERT_TRUE(manager_->Recover().has_value());
  ASSERT_EQ(sink_.sent.size(), sent_before + 1);
  EXPECT_EQ(sink_.sent.back().second.id, fix.id);
  EXPECT_EQ(sink_.sent.back().second.action, fix.action);
  EXPECT_EQ(sink_.sent.back().second.params, fix.params);
  EXPECT_EQ(ToUnixMillis(sink_.sent.back().second.expires_at), ToUnixMillis(fix.expires_at));
  // The stored result comes back for that id, and is matched to the incident.
  alarms_.state = AlarmState::kOk;
  manager_->OnCommandResult(Ok(fix.id, "restarted"));
  inc = Only();
  EXPECT_EQ(inc.status, IncidentStatus::kCompleted);
  EXPECT_NE(inc.remediation_output.find("restarted"), std::string::npos);
  EXPECT_EQ(Events(inc)[6], "resumed");
}

// The agent was killed while the fix ran (kill -9, then both restarted): its outcome is unknown.
// The incident fails saying so, and the alarm, still in ALARM, is judged again by an incident
// that waits for a human even in automatic mode: the fix is not run a second time by itself.
TEST_F(IncidentManagerTest, AnInterruptedFixIsNotRetriedAutomatically) {
  ASSERT_TRUE(settings_->Update(Json{{"approval_mode", false}}).has_value());
  Incident inc = OpenAndDiagnose();
  ASSERT_EQ(inc.status, IncidentStatus::kExecuting);
  ASSERT_EQ(sink_.sent.size(), 3u);
  const protocol::Command fix = sink_.sent[2].second;
  ASSERT_EQ(fix.action, "service.restart");
  Rebuild();  // the server restarted too: the same command is offered again
  ASSERT_TRUE(manager_->Recover().has_value());
  ASSERT_EQ(sink_.sent.back().second.id, fix.id);
  manager_->OnCommandResult(Interrupted(fix.id));

  inc = *store_->GetIncident(inc.incident_id);
  EXPECT_EQ(inc.status, IncidentStatus::kFailed);
  EXPECT_NE(inc.reason.find("interrupted"), std::string::npos) << inc.reason;
  EXPECT_NE(inc.remediation_output.find("interrupted"), std::string::npos);
  const std::vector<std::string> events = Events(inc);
  EXPECT_NE(std::find(events.begin(), events.end(), "interrupted"), events.end());
  ASSERT_NO_FATAL_FAILURE(ExpectJudgedAgain(inc));

  // The fresh incident's diagnostics run; its fix waits for a human.
  const size_t sent = sink_.sent.size();
  for (size_t i = sent - 2; i < sent; ++i) {
    manager_->OnCommandResult(Ok(sink_.sent[i].second.id));
  }
  auto open = store_->FindOpenIncident("Nginx-Down-ALB", "web-1");
  ASSERT_TRUE(open.has_value() && open->has_value());
  EXPECT_EQ((*open)->status, IncidentStatus::kPendingApproval);
  EXPECT_NE((*open)->timeline.back().detail.find("the fix of " + inc.incident_id +
                                                 " was interrupted"),
            std::string::npos)
      << (*open)->timeline.back().detail;
  EXPECT_EQ(sink_.sent.size(), sent) << "the fix was sent again";
  for (const auto& [host, c] : sink_.sent) {
    EXPECT_TRUE(c.action != "service.restart" || c.id == fix.id) << c.id;
  }
}

// The same when the alarm had cleared before the answer came and fires again later (after
// another restart): the next incident waits for a human; the one after a human's decision does
// not.
TEST_F(IncidentManagerTest, AfterAnInterruptedFixTheNextIncidentWaitsForAHuman) {
  ASSERT_TRUE(settings_->Update(Json{{"approval_mode", false}}).has_value());
  Incident first = OpenAndDiagnose();
  alarms_.state = AlarmState::kOk;
  manager_->OnCommandResult(Interrupted(sink_.sent[2].second.id));
  ASSERT_EQ(store_->GetIncident(first.incident_id)->status, IncidentStatus::kFailed);
  ASSERT_EQ(sink_.sent.size(), 3u);  // nothing judged again: the alarm is OK

  Rebuild();
  ASSERT_TRUE(manager_->Recover().has_value());
  clock_.Advance(std::chrono::minutes(5));
  alarms_.state = AlarmState::kAlarm;
  manager_->OnAlarmTransition(ToAlarm());
  ASSERT_EQ(sink_.sent.size(), 5u);
  manager_->OnCommandResult(Ok(sink_.sent[3].second.id));
  manager_->OnCommandResult(Ok(sink_.sent[4].second.id));
  auto second = store_->FindOpenIncident("Nginx-Down-ALB", "web-1");
  ASSERT_TRUE(second.has_value() && second->has_value());
  EXPECT_EQ((*second)->status, IncidentStatus::kPendingApproval);
  EXPECT_EQ(sink_.sent.size(), 5u);

  // A human approves; that fix works; the alarm fires again later: automatic again.
  ASSERT_TRUE(manager_
                  ->Approve((*second)->incident_id, "alice", ActionHash(**second), "checked it")
                  .has_value());
  ASSERT_EQ(sink_.sent.size(), 6u);
  alarms_.state = AlarmState::kOk;
  manager_->OnCommandResult(Ok(sink_.sent[5].second.id));
  ASSERT_EQ(store_->GetIncident((*second)->incident_id)->status, IncidentStatus::kCompleted);
  clock_.Advance(std::chrono::minutes(5));
  alarms_.state = AlarmState::kAlarm;
  manager_->OnAlarmTransition(ToAlarm());
  ASSERT_EQ(sink_.sent.size(), 8u);
  manager_->OnCommandResult(Ok(sink_.sent[6].second.id));
  manager_->OnCommandResult(Ok(sink_.sent[7].second.id));
  auto third = store_->FindOpenIncident("Nginx-Down-ALB", "web-1");
  ASSERT_TRUE(third.has_value() && third->has_value());
  EXPECT_EQ((*third)->status, IncidentStatus::kExecuting);
}

TEST_F(IncidentManagerTest, RestartAfterTheFixExpiredDoesNotResendAndJudgesByTheAlarm) {
  Incident inc = OpenAndDiagnose();
  ASSERT_TRUE(manager_->Approve(inc.incident_id, "alice", ActionHash(inc), "").has_value());
  const size_t sent_before = sink_.sent.size();
  clock_.Advance(Millis(120'000));  // past the fix's 60 s expiry
  Rebuild();
  ASSERT_TRUE(manager_->Recover().has_value());
  EXPECT_EQ(sink_.sent.size(), sent_before);
  alarms_.state = AlarmState::kOk;
  manager_->OnAlarmTransition(ToOk());
  inc = Only();
  EXPECT_EQ(inc.status, IncidentStatus::kCompleted);
  EXPECT_EQ(Events(inc)[6], "resumed");
}

TEST_F(IncidentManagerTest, AlarmIsHeldAsRemediatingFromTheFixUntilTheIncidentCloses) {
  Incident inc = OpenAndDiagnose();
  const std::pair<std::string, std::string> pair{"Nginx-Down-ALB", "web-1"};
  EXPECT_EQ(alarms_.remediating.count(pair), 0u);  // diagnosing and waiting: no hold
  ASSERT_TRUE(manager_->Approve(inc.incident_id, "alice", ActionHash(inc), "").has_value());
  EXPECT_TRUE(alarms_.remediating[pair]);
  manager_->OnAlarmTransition(ToAlarm());  // flapping while held: recorded, nothing new opens
  EXPECT_EQ(store_->ListIncidents({})->size(), 1u);
  alarms_.state = AlarmState::kOk;
  manager_->OnCommandResult(Ok(sink_.sent.back().second.id, "restarted"));
  EXPECT_EQ(Only().status, IncidentStatus::kCompleted);
  EXPECT_FALSE(alarms_.remediating[pair]);
}

TEST_F(IncidentManagerTest, RestartKeepsPendingApprovalApprovable) {
  Incident inc = OpenAndDiagnose();
  Rebuild();
  ASSERT_TRUE(manager_->Recover().has_value());
  auto approved = manager_->Approve(inc.incident_id, "alice", ActionHash(inc), "");
  ASSERT_TRUE(approved.has_value());
  EXPECT_EQ(approved->status, IncidentStatus::kExecuting);
}

TEST_F(IncidentManagerTest, RestartResumesMoreOpenIncidentsThanOneStorePage) {
  // The store lists at most 1000 per call: recovery must page through all of them.
  const int kOpen = 1003;
  for (int i = 0; i < kOpen; ++i) {
    Incident inc;
    inc.incident_id = "inc-" + std::to_string(10000 + i);
    inc.alarm_name = "Nginx-Down-ALB";
    inc.alarm_description = "nginx down";
    inc.instance_id = "web-" + std::to_string(i);
    inc.status = IncidentStatus::kPendingApproval;
    inc.created_at = inc.updated_at = clock_.Now();
    inc.timeline.push_back({"created", clock_.Now(), "medic", ""});
    ASSERT_TRUE(store_->CreateIncident(inc).has_value());
  }
  Rebuild();
  ASSERT_TRUE(manager_->Recover().has_value());
  EXPECT_EQ(manager_->active_count(), static_cast<size_t>(kOpen));
}

TEST_F(IncidentManagerTest, LateAndUnknownResultsAreIgnored) {
  manager_->OnCommandResult(Ok("cmd-unknown"));
  EXPECT_TRUE(store_->ListIncidents({})->empty());
  Incident inc = OpenAndDiagnose();
  manager_->OnCommandResult(Ok(sink_.sent[0].second.id, "again"));  // delivered twice
  EXPECT_EQ(Only().timeline.size(), inc.timeline.size());
}

// A service that crashes again after every restart: at most 3 automatic fixes per hour, then
// the next incident waits for a human and says why.
TEST_F(IncidentManagerTest, RestartLoopBreakerStopsAutomationAfterThreeFixes) {
  ASSERT_TRUE(settings_->Update(Json{{"approval_mode", false}}).has_value());
  for (int round = 0; round < 4; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    sink_.sent.clear();
    alarms_.state = AlarmState::kAlarm;
    manager_->OnAlarmTransition(ToAlarm());
    ASSERT_EQ(sink_.sent.size(), 2u);
    for (const auto& [host, c] : std::vector(sink_.sent)) {
      manager_->OnCommandResult(Ok(c.id));
    }
    auto open = store_->FindOpenIncident("Nginx-Down-ALB", "web-1");
    ASSERT_TRUE(open.has_value() && open->has_value());
    Incident inc = **open;
    if (round < 3) {
      ASSERT_EQ(inc.status, IncidentStatus::kExecuting);
      ASSERT_EQ(sink_.sent.size(), 3u);
      alarms_.state = AlarmState::kOk;
      manager_->OnCommandResult(Ok(sink_.sent[2].second.id));
      EXPECT_EQ(store_->GetIncident(inc.incident_id)->status, IncidentStatus::kCompleted);
      clock_.Advance(std::chrono::minutes(5));
    } else {
      EXPECT_EQ(inc.status, IncidentStatus::kPendingApproval);
      EXPECT_EQ(sink_.sent.size(), 2u);  // the fix was not sent
      EXPECT_EQ(Events(inc)[Events(inc).size() - 2], "breaker_open");
      EXPECT_NE(inc.timeline.back().detail.find("restart-loop breaker: 3 automatic fixes"),
                std::string::npos)
          << inc.timeline.back().detail;
    }
  }
}

TEST_F(IncidentManagerTest, BreakerForgetsFixesOutsideItsWindow) {
  ASSERT_TRUE(settings_->Update(Json{{"approval_mode", false}}).has_value());
  manager_->SetBreaker(1, std::chrono::minutes(10));
  for (int round = 0; round < 2; ++round) {
    sink_.sent.clear();
    alarms_.state = AlarmState::kAlarm;
    manager_->OnAlarmTransition(ToAlarm());
    for (const auto& [host, c] : std::vector(sink_.sent)) {
      manager_->OnCommandResult(Ok(c.id));
    }
    auto open = store_->FindOpenIncident("Nginx-Down-ALB", "web-1");
    ASSERT_TRUE(open.has_value() && open->has_value());
    EXPECT_EQ((*open)->status, IncidentStatus::kExecuting) << "round " << round;
    alarms_.state = AlarmState::kOk;
    manager_->OnCommandResult(Ok(sink_.sent[2].second.id));
    clock_.Advance(std::chrono::minutes(11));
  }
}

// --- approvals bound to what was seen, expiring, audited ------------------------------------

// The audit log, oldest first.
std::vector<AuditEntry> AuditLog(Store& store) {
  auto list = store.ListAudit(1000);
  EXPECT_TRUE(list.has_value());
  return list.has_value() ? std::vector<AuditEntry>(list->rbegin(), list->rend())
                          : std::vector<AuditEntry>{};
}

TEST(ActionHashTest, CoversTheActionItsParamsTheHostAndTheIncidentOnly) {
  Incident inc;
  inc.incident_id = "inc-1";
  inc.instance_id = "web-1";
  EXPECT_EQ(CanonicalProposal(inc), "");
  EXPECT_EQ(ActionHash(inc), "");
  EXPECT_FALSE(IncidentToJson(inc).contains("action_hash"));
  inc.action = Json{{"name", "service.restart"}, {"params", {{"service", "nginx"}}}};
  EXPECT_EQ(CanonicalProposal(inc),
            R"({"action":"service.restart","host":"web-1","incident_id":"inc-1",)"
            R"("params":{"service":"nginx"}})");
  const std::string hash = ActionHash(inc);
  EXPECT_EQ(hash, Sha256Hex(CanonicalProposal(inc)));
  EXPECT_EQ(IncidentToJson(inc)["action_hash"], hash);

  struct Case {
    std::string name;
    std::function<void(Incident&)> change;
    bool same;
  };
  const std::vector<Case> cases = {
      {"another service", [](Incident& i) { i.action["params"]["service"] = "healthapp"; }, false},
      {"another action", [](Incident& i) { i.action["name"] = "service.stop"; }, false},
      {"another host", [](Incident& i) { i.instance_id = "web-2"; }, false},
      {"another incident", [](Incident& i) { i.incident_id = "inc-2"; }, false},
      {"an extra param", [](Incident& i) { i.action["params"]["x"] = "1"; }, false},
      {"the command sent", [](Incident& i) { i.action["command_id"] = "cmd-1"; }, true},
      {"the approval's expiry",
       [](Incident& i) { i.action["approval_expires_at"] = "2030-01-01T00:00:00.000Z"; }, true},
      {"the reasoning", [](Incident& i) { i.ai_reasoning = "other words"; }, true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Incident other = inc;
    c.change(other);
    EXPECT_EQ(ActionHash(other) == hash, c.same);
  }
}

TEST_F(IncidentManagerTest, AnApprovalMustNameTheCurrentProposal) {
  const Incident inc = OpenAndDiagnose();
  ASSERT_EQ(inc.status, IncidentStatus::kPendingApproval);
  const std::string current = ActionHash(inc);
  ASSERT_EQ(current.size(), 64u);
  const std::string stale = Sha256Hex("what the operator saw an hour ago");
  auto refused = manager_->Approve(inc.incident_id, "alice", stale, "looks fine");
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(refused.error().message.find("changed"), std::string::npos)
      << refused.error().message;
  // Nothing changed: no fix sent, still pending, no approval on the timeline.
  EXPECT_EQ(sink_.sent.size(), 2u);
  EXPECT_EQ(Only().status, IncidentStatus::kPendingApproval);
  EXPECT_EQ(Only().timeline.size(), inc.timeline.size());

  auto approved = manager_->Approve(inc.incident_id, "alice", current, "go");
  ASSERT_TRUE(approved.has_value()) << approved.error().ToString();
  EXPECT_EQ(approved->status, IncidentStatus::kExecuting);
  ASSERT_EQ(sink_.sent.size(), 3u);

  const std::vector<AuditEntry> log = AuditLog(*store_);
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[0].actor, "alice");
  EXPECT_EQ(log[0].action, "incident.approve_refused");
  const Json refused_detail = ParseJson(log[0].detail).value();
  EXPECT_EQ(refused_detail["incident_id"], inc.incident_id);
  EXPECT_EQ(refused_detail["action_hash"], stale);
  EXPECT_EQ(refused_detail["comment"], "looks fine");
  EXPECT_NE(refused_detail["reason"].get<std::string>().find("changed"), std::string::npos);
  EXPECT_EQ(log[1].actor, "alice");
  EXPECT_EQ(log[1].action, "incident.approve");
  EXPECT_EQ(ParseJson(log[1].detail).value(),
            (Json{{"incident_id", inc.incident_id}, {"action_hash", current}, {"comment", "go"}}));
  EXPECT_TRUE(store_->VerifyAudit()->ok);
}

TEST_F(IncidentManagerTest, RejectionsAreAudited) {
  const Incident inc = OpenAndDiagnose();
  ASSERT_TRUE(manager_->Reject(inc.incident_id, "bob", "not now").has_value());
  const std::vector<AuditEntry> log = AuditLog(*store_);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].actor, "bob");
  EXPECT_EQ(log[0].action, "incident.reject");
  EXPECT_EQ(ParseJson(log[0].detail).value(),
            (Json{{"incident_id", inc.incident_id},
                  {"action_hash", ActionHash(inc)},
                  {"comment", "not now"}}));
  // An approval of a rejected incident is refused, and that is audited too.
  EXPECT_FALSE(manager_->Approve(inc.incident_id, "alice", ActionHash(inc), "").has_value());
  ASSERT_EQ(AuditLog(*store_).size(), 2u);
  EXPECT_EQ(AuditLog(*store_)[1].action, "incident.approve_refused");
}

TEST_F(IncidentManagerTest, AnExpiredApprovalJudgesTheStillFiringAlarmAgain) {
  const Incident first = OpenAndDiagnose();
  ASSERT_EQ(first.status, IncidentStatus::kPendingApproval);
  const std::string first_hash = ActionHash(first);
  clock_.Advance(std::chrono::minutes(59));
  manager_->RunOnce();
  EXPECT_EQ(Only().status, IncidentStatus::kPendingApproval);  // not yet
  clock_.Advance(std::chrono::minutes(1));
  manager_->RunOnce();

  const Incident closed = store_->GetIncident(first.incident_id).value();
  EXPECT_EQ(closed.status, IncidentStatus::kTimeout);
  EXPECT_TRUE(closed.resolved_at.has_value());
  EXPECT_NE(closed.reason.find("approval expired"), std::string::npos) << closed.reason;
  const std::vector<std::string> events = Events(closed);
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events[events.size() - 2], "approval_expired");
  EXPECT_EQ(events.back(), "timeout");
  // Still in ALARM: a fresh incident, diagnosed again (2 more diagnostics sent)...
  ExpectJudgedAgain(closed);
  ASSERT_EQ(sink_.sent.size(), 4u);
  for (size_t i = 2; i < 4; ++i) {
    manager_->OnCommandResult(Ok(sink_.sent[i].second.id, "again"));
  }
  const Incident fresh = store_->FindOpenIncident("Nginx-Down-ALB", "web-1").value().value();
  ASSERT_EQ(fresh.status, IncidentStatus::kPendingApproval);
  // ...with a proposal of its own, which the stale approval cannot approve.
  EXPECT_NE(ActionHash(fresh), first_hash);
  auto old = manager_->Approve(first.incident_id, "alice", first_hash, "");
  ASSERT_FALSE(old.has_value());
  EXPECT_EQ(old.error().code, ErrorCode::kFailedPrecondition);
  auto stale = manager_->Approve(fresh.incident_id, "alice", first_hash, "");
  ASSERT_FALSE(stale.has_value());
  EXPECT_EQ(stale.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_EQ(sink_.sent.size(), 4u);  // no fix was sent
  ASSERT_TRUE(manager_->Approve(fresh.incident_id, "alice", ActionHash(fresh), "").has_value());
  EXPECT_EQ(sink_.sent.size(), 5u);
}

TEST_F(IncidentManagerTest, AnApprovalAfterExpiryDoesNothingEvenBeforeTheTick) {
  const Incident inc = OpenAndDiagnose();
  alarms_.state = AlarmState::kOk;  // cleared meanwhile (the fix would have been moot)
  clock_.Advance(std::chrono::hours(1));
  auto late = manager_->Approve(inc.incident_id, "alice", ActionHash(inc), "sorry, was away");
  ASSERT_FALSE(late.has_value());
  EXPECT_EQ(late.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(late.error().message.find("expired"), std::string::npos) << late.error().message;
  EXPECT_EQ(sink_.sent.size(), 2u);  // diagnostics only
  // The alarm is OK: the incident ends as timeout and nothing new opens.
  const Incident closed = Only();
  EXPECT_EQ(closed.status, IncidentStatus::kTimeout);
  EXPECT_EQ(Events(closed).back(), "timeout");
  const std::vector<AuditEntry> log = AuditLog(*store_);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].action, "incident.approve_refused");
  EXPECT_EQ(log[0].actor, "alice");
  EXPECT_NE(ParseJson(log[0].detail).value()["reason"].get<std::string>().find("expired"),
            std::string::npos);
}

TEST_F(IncidentManagerTest, TheApprovalTimeoutIsConfigurableAndSurvivesARestart) {
  manager_->SetApprovalTimeout(std::chrono::minutes(10));
  const Incident inc = OpenAndDiagnose();
  EXPECT_EQ(inc.action.value("approval_expires_at", ""),
            FormatRfc3339(clock_.Now() + std::chrono::minutes(10)));
  clock_.Advance(std::chrono::minutes(5));
  // A restarted server keeps the expiry the proposal was made with.
  Rebuild();
  manager_->SetApprovalTimeout(std::chrono::minutes(10));
  ASSERT_TRUE(manager_->Recover().has_value());
  clock_.Advance(std::chrono::minutes(4));
  manager_->RunOnce();
  EXPECT_EQ(store_->GetIncident(inc.incident_id)->status, IncidentStatus::kPendingApproval);
  clock_.Advance(std::chrono::minutes(1));
  manager_->RunOnce();
  EXPECT_EQ(store_->GetIncident(inc.incident_id)->status, IncidentStatus::kTimeout);
}

TEST_F(IncidentManagerTest, AnApprovedFixNoLongerCarriesTheApprovalsExpiry) {
  const Incident inc = OpenAndDiagnose();
  ASSERT_TRUE(inc.action.contains("approval_expires_at"));
  ASSERT_TRUE(manager_->Approve(inc.incident_id, "alice", ActionHash(inc), "").has_value());
  const Incident running = Only();
  EXPECT_FALSE(running.action.contains("approval_expires_at"));
  EXPECT_EQ(ActionHash(running), ActionHash(inc));
  // An executing incident is not expired as a pending one would be (its fix times out instead).
  clock_.Advance(std::chrono::hours(2));
  manager_->RunOnce();
  const std::vector<std::string> events = Events(*store_->GetIncident(inc.incident_id));
  EXPECT_EQ(std::count(events.begin(), events.end(), "approval_expired"), 0);
  EXPECT_EQ(events.back(), "timeout");
}

}  // namespace
}  // namespace medic::server
