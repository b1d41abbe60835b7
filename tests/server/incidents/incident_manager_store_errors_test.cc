// A failed store write in the incident lifecycle: the transition is not announced, nothing is
// sent, nothing is held, the error is counted and, for an operator, returned; once the store is
// back the incident carries on from where it was. MemoryStore behind a FaultyStore.

#include <gtest/gtest.h>

#include "server/incidents/incident_manager.h"
#include "tests/fakes/faulty_store.h"
#include "tests/fakes/incident_fakes.h"
#include "tests/fakes/memory_store.h"

namespace medic::server {
namespace {

using test::FakeAlarms;
using test::FaultyStore;
using test::MemoryStore;
using test::RecordingSink;
using test::StoreOp;

using test::ToAlarm;
using test::ToOk;

class IncidentManagerStoreErrorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    settings_ = std::move(SettingsService::Load(store_, Settings{}).value());
    manager_ = std::make_unique<IncidentManager>(
        store_, clock_, sink_, alarms_, *settings_, brain_,
        [](std::function<void()> task) { task(); }, DefaultAlarmRules(), ai::DefaultRunbooks());
    manager_->SetListener([this](const Incident& inc) { announced_.push_back(inc); });
  }
  // The incident as the (healthy) store behind the faults holds it.
  Incident Stored() {
    auto list = memory_.ListIncidents({});
    EXPECT_TRUE(list.has_value());
    EXPECT_EQ(list->size(), 1u);
    return list->empty() ? Incident{} : list->front();
  }
  // Opens the incident and answers its two diagnostics: pending_approval (approval mode on).
  Incident OpenPending() {
    manager_->OnAlarmTransition(ToAlarm());
    EXPECT_EQ(sink_.sent.size(), 2u);
    for (const auto& [host, c] : std::vector(sink_.sent)) {
      manager_->OnCommandResult(test::OkResult(c.id, "output of " + c.action));
    }
    Incident inc = Stored();
    EXPECT_EQ(inc.status, IncidentStatus::kPendingApproval);
    return inc;
  }
  // Whether the alarm is held as remediating (the last hold the manager set).
  bool Held() { return alarms_.remediating[{"Nginx-Down-ALB", "web-1"}]; }
  void SetApprovalMode(bool on) {
    ASSERT_TRUE(settings_->Update(Json{{"approval_mode", on}}).has_value());
  }

  MemoryStore memory_;
  FaultyStore store_{memory_};
  ManualClock clock_;
  RecordingSink sink_;
  FakeAlarms alarms_;
  ai::RunbookBrain brain_;
  std::unique_ptr<SettingsService> settings_;
  std::unique_ptr<IncidentManager> manager_;
  std::vector<Incident> announced_;
};

TEST_F(IncidentManagerStoreErrorsTest, ApprovalThatCannotBeRecordedIsNotAcknowledgedAndSendsNothing) {
  const Incident before = OpenPending();
  const size_t sent = sink_.sent.size();
  const size_t announced = announced_.size();
  store_.FailAlways(StoreOp::kUpdateIncident);

  auto approved = manager_->Approve(before.incident_id, "alice", ActionHash(before), "go");
  ASSERT_FALSE(approved.has_value());
  EXPECT_EQ(approved.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(sink_.sent.size(), sent) << "a fix was sent for an approval the store never saw";
  EXPECT_EQ(announced_.size(), announced) << "a transition that was not written was announced";
  EXPECT_FALSE(Held());
  EXPECT_EQ(manager_->store_errors(), 1u);
  EXPECT_EQ(Stored().status, IncidentStatus::kPendingApproval);
  EXPECT_EQ(Stored().timeline.size(), before.timeline.size());

  // The store is back: the same approval goes through, once, with one approved entry.
  store_.Heal(StoreOp::kUpdateIncident);
  auto again = manager_->Approve(before.incident_id, "alice", ActionHash(before), "go");
  ASSERT_TRUE(again.has_value()) << again.error().message;
  EXPECT_EQ(again->status, IncidentStatus::kExecuting);
  ASSERT_EQ(sink_.sent.size(), sent + 1);
  EXPECT_EQ(sink_.sent.back().second.action, "service.restart");
  int approvals = 0;
  for (const auto& e : Stored().timeline) {
    approvals += e.event == "approved" ? 1 : 0;
  }
  EXPECT_EQ(approvals, 1);
  EXPECT_EQ(Stored().status, IncidentStatus::kExecuting);
}

TEST_F(IncidentManagerStoreErrorsTest, RejectionThatCannotBeRecordedLeavesTheIncidentPending) {
  const Incident before = OpenPending();
  store_.FailNext(StoreOp::kUpdateIncident, 1);
  auto rejected = manager_->Reject(before.incident_id, "bob", "not now");
  ASSERT_FALSE(rejected.has_value());
  EXPECT_EQ(Stored().status, IncidentStatus::kPendingApproval);
  EXPECT_EQ(manager_->active_count(), 1u);
  auto again = manager_->Reject(before.incident_id, "bob", "not now");
  ASSERT_TRUE(again.has_value()) << again.error().message;
  EXPECT_EQ(again->status, IncidentStatus::kRejected);
  EXPECT_EQ(Stored().status, IncidentStatus::kRejected);
  EXPECT_EQ(manager_->active_count(), 0u);
}

TEST_F(IncidentManagerStoreErrorsTest, AutomaticFixThatCannotBeRecordedIsNotSent) {
  SetApprovalMode(false);
  manager_->OnAlarmTransition(ToAlarm());
  ASSERT_EQ(sink_.sent.size(), 2u);
  manager_->OnCommandResult(test::OkResult(sink_.sent[0].second.id));
  // The last diagnostic completes diagnosis; every write from here on fails.
  store_.FailAlways(StoreOp::kUpdateIncident);
  manager_->OnCommandResult(test::OkResult(sink_.sent[1].second.id));
  EXPECT_EQ(sink_.sent.size(), 2u) << "the fix went out although executing was never recorded";
  EXPECT_FALSE(Held());
  EXPECT_GE(manager_->store_errors(), 1u);
  EXPECT_EQ(Stored().status, IncidentStatus::kDiagnosing);
  for (const Incident& a : announced_) {
    EXPECT_EQ(a.status, IncidentStatus::kDiagnosing) << "announced a status the store lacks";
  }
}

// A decision whose write failed left the incident diagnosing with no deadline: not approvable
// (it is not pending_approval), never decided again until a restart. It is decided again later.
TEST_F(IncidentManagerStoreErrorsTest, AutomaticFixThatCannotBeRecordedIsDecidedAgainLater) {
  SetApprovalMode(false);
  manager_->OnAlarmTransition(ToAlarm());
  ASSERT_EQ(sink_.sent.size(), 2u);
  manager_->OnCommandResult(test::OkResult(sink_.sent[0].second.id));
  store_.FailAlways(StoreOp::kUpdateIncident);
  manager_->OnCommandResult(test::OkResult(sink_.sent[1].second.id));
  ASSERT_EQ(sink_.sent.size(), 2u);
  ASSERT_EQ(Stored().status, IncidentStatus::kDiagnosing);

  store_.Heal(StoreOp::kUpdateIncident);
  clock_.Advance(std::chrono::minutes(2));
  manager_->RunOnce();
  const Incident inc = Stored();
  EXPECT_EQ(inc.status, IncidentStatus::kExecuting) << "still diagnosing, with no deadline";
  ASSERT_EQ(sink_.sent.size(), 3u);
  EXPECT_EQ(sink_.sent.back().second.id, StringOr(inc.action, "command_id"));
  EXPECT_TRUE(Held());
}

// The same for a decision that waits for a human: once recorded it can be approved.
TEST_F(IncidentManagerStoreErrorsTest, ProposalThatCannotBeRecordedIsDecidedAgainLater) {
  manager_->OnAlarmTransition(ToAlarm());
  ASSERT_EQ(sink_.sent.size(), 2u);
  manager_->OnCommandResult(test::OkResult(sink_.sent[0].second.id));
  store_.FailAlways(StoreOp::kUpdateIncident);
  manager_->OnCommandResult(test::OkResult(sink_.sent[1].second.id));
  ASSERT_EQ(Stored().status, IncidentStatus::kDiagnosing);

  store_.Heal(StoreOp::kUpdateIncident);
  clock_.Advance(std::chrono::minutes(2));
  manager_->RunOnce();
  const Incident inc = Stored();
  ASSERT_EQ(inc.status, IncidentStatus::kPendingApproval) << "still diagnosing, with no deadline";
  EXPECT_TRUE(manager_->Approve(inc.incident_id, "alice", ActionHash(inc), "").has_value());
  EXPECT_EQ(Stored().status, IncidentStatus::kExecuting);
}

TEST_F(IncidentManagerStoreErrorsTest, VerificationThatCannotBeRecordedIsTakenAgainLater) {
  const Incident inc = OpenPending();
  ASSERT_TRUE(manager_->Approve(inc.incident_id, "alice", ActionHash(inc), "").has_value());
  const protocol::Command fix = sink_.sent.back().second;
  alarms_.state = AlarmState::kAlarm;  // the fix ran; the alarm has not cleared yet
  manager_->OnCommandResult(test::OkResult(fix.id));
  ASSERT_EQ(Stored().status, IncidentStatus::kExecuting);

  store_.FailNext(StoreOp::kUpdateIncident, 1);
  manager_->OnAlarmTransition(ToOk());
  EXPECT_EQ(Stored().status, IncidentStatus::kExecuting);
  EXPECT_EQ(manager_->active_count(), 1u) << "the incident was dropped on a failed write";
  EXPECT_TRUE(Held()) << "released without a record";

  // The store is back; the next OK completes the incident.
  alarms_.state = AlarmState::kOk;
  manager_->OnAlarmTransition(ToOk());
  const Incident done = Stored();
  EXPECT_EQ(done.status, IncidentStatus::kCompleted);
  EXPECT_FALSE(Held());
  EXPECT_EQ(manager_->active_count(), 0u);
  EXPECT_EQ(manager_->store_errors(), 1u);
}

TEST_F(IncidentManagerStoreErrorsTest, IncidentThatCannotBeCreatedSendsNoDiagnostics) {
  store_.FailNext(StoreOp::kCreateIncident, 1);
  manager_->OnAlarmTransition(ToAlarm());
  EXPECT_TRUE(sink_.sent.empty());
  EXPECT_TRUE(announced_.empty());
  EXPECT_EQ(manager_->active_count(), 0u);
  EXPECT_EQ(manager_->store_errors(), 1u);
  EXPECT_TRUE(memory_.ListIncidents({})->empty());
}

}  // namespace
}  // namespace medic::server
