// The incident transition table, cell by cell: every (status, event) pair, allowed or refused.
// The expectations are written out here independently of incident_state.cc's table, so that a
// changed cell fails a test.

#include "server/incidents/incident_state.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <utility>

namespace medic::server {
namespace {

using S = IncidentStatus;
using E = IncidentEvent;

constexpr S kAllStatuses[] = {S::kDiagnosing, S::kPendingApproval, S::kExecuting, S::kCompleted,
                              S::kFailed,     S::kTimeout,         S::kRejected};
constexpr E kAllEvents[] = {
    E::kDiagnosticsTimedOut, E::kNoRunbook,     E::kNeedsApproval,       E::kAutoApproved,
    E::kApproved,            E::kRejected,      E::kActionInvalid,       E::kNothingToRunCleared,
    E::kFixNotRun,           E::kFixFailed,     E::kFixTimedOut,         E::kVerified,
    E::kVerificationFailed,  E::kApprovalExpired, E::kHostRemoved, E::kDiagnoseNeedsApproval,
    E::kDiagnoseApproved};
static_assert(std::size(kAllEvents) == kIncidentEventCount);

struct Want {
  S to;
  std::string timeline_event;
  uint32_t effects;
};

constexpr uint32_t kClose = kEffectResolve | kEffectReleaseAlarm;
constexpr uint32_t kRetry = kClose | kEffectRejudge;
constexpr uint32_t kFix = kEffectSendFix | kEffectHoldAlarm;

// Every allowed cell. Everything not listed must be refused.
const std::map<std::pair<S, E>, Want>& Allowed() {
  static const auto* table = new std::map<std::pair<S, E>, Want>{
      {{S::kDiagnosing, E::kDiagnosticsTimedOut}, {S::kTimeout, "timeout", kClose}},
      {{S::kDiagnosing, E::kNoRunbook}, {S::kFailed, "failed", kClose}},
      {{S::kDiagnosing, E::kNeedsApproval}, {S::kPendingApproval, "awaiting_approval", 0}},
      {{S::kDiagnosing, E::kAutoApproved}, {S::kExecuting, "executing", kFix}},
      {{S::kDiagnosing, E::kActionInvalid}, {S::kFailed, "failed", kClose}},
      {{S::kPendingApproval, E::kApproved}, {S::kExecuting, "executing", kFix}},
      {{S::kPendingApproval, E::kRejected}, {S::kRejected, "rejected", kEffectResolve}},
      {{S::kPendingApproval, E::kActionInvalid}, {S::kFailed, "failed", kClose}},
      {{S::kPendingApproval, E::kNothingToRunCleared}, {S::kCompleted, "completed", kClose}},
      // Nothing is held while a human decides; a still-firing alarm is judged again.
      {{S::kPendingApproval, E::kApprovalExpired},
       {S::kTimeout, "timeout", kEffectResolve | kEffectRejudge}},
      // Stage gates: gated diagnostics wait for a human, holding nothing.
      {{S::kDiagnosing, E::kDiagnoseNeedsApproval},
       {S::kPendingApproval, "awaiting_diagnostics_approval", 0}},
      {{S::kPendingApproval, E::kDiagnoseApproved}, {S::kDiagnosing, "diagnostics_approved", 0}},
      {{S::kExecuting, E::kFixNotRun}, {S::kFailed, "failed", kRetry}},
      {{S::kExecuting, E::kFixFailed}, {S::kFailed, "failed", kRetry}},
      {{S::kExecuting, E::kFixTimedOut}, {S::kTimeout, "timeout", kRetry}},
      {{S::kExecuting, E::kVerified}, {S::kCompleted, "completed", kClose}},
      {{S::kExecuting, E::kVerificationFailed}, {S::kFailed, "failed", kRetry}},
      // A removed host's open incidents close (hosts remove --close-incidents).
      {{S::kDiagnosing, E::kHostRemoved}, {S::kRejected, "host_removed", kClose}},
      {{S::kPendingApproval, E::kHostRemoved}, {S::kRejected, "host_removed", kClose}},
      {{S::kExecuting, E::kHostRemoved}, {S::kRejected, "host_removed", kClose}},
  };
  return *table;
}

TEST(IncidentStateTest, EveryCellIsAllowedOrRefusedAsWritten) {
  int allowed = 0;
  int refused = 0;
  for (S from : kAllStatuses) {
    for (E event : kAllEvents) {
      SCOPED_TRACE(std::string(StatusName(from)) + " x " + std::string(IncidentEventName(event)));
      auto got = NextTransition(from, event);
      auto want = Allowed().find({from, event});
      if (want == Allowed().end()) {
        ++refused;
        ASSERT_FALSE(got.has_value()) << "allowed, to " << StatusName(got->to);
        EXPECT_EQ(got.error().code, ErrorCode::kFailedPrecondition);
        // The refusal names where the incident is and the event that was refused.
        EXPECT_NE(got.error().message.find(std::string(StatusName(from))), std::string::npos)
            << got.error().message;
        EXPECT_NE(got.error().message.find(std::string(IncidentEventName(event))),
                  std::string::npos)
            << got.error().message;
        continue;
      }
      ++allowed;
      ASSERT_TRUE(got.has_value()) << got.error().message;
      EXPECT_EQ(got->to, want->second.to);
      EXPECT_EQ(got->timeline_event, want->second.timeline_event);
      EXPECT_EQ(got->effects, want->second.effects);
    }
  }
  EXPECT_EQ(allowed, 20);
  EXPECT_EQ(refused, 7 * kIncidentEventCount - 20);
}

TEST(IncidentStateTest, TerminalStatusesRefuseEveryEvent) {
  for (S from : {S::kCompleted, S::kFailed, S::kTimeout, S::kRejected}) {
    ASSERT_FALSE(IsOpen(from));
    for (E event : kAllEvents) {
      EXPECT_FALSE(NextTransition(from, event).has_value())
          << StatusName(from) << " x " << IncidentEventName(event);
    }
  }
}

TEST(IncidentStateTest, EveryTransitionToATerminalStatusResolvesAndOnlyThose) {
  for (const auto& [cell, want] : Allowed()) {
    SCOPED_TRACE(std::string(StatusName(cell.first)) + " x " +
                 std::string(IncidentEventName(cell.second)));
    EXPECT_EQ((want.effects & kEffectResolve) != 0, !IsOpen(want.to));
    // A fix is sent exactly when the incident starts executing, and its alarm is then held.
    EXPECT_EQ((want.effects & kEffectSendFix) != 0, want.to == S::kExecuting);
    EXPECT_EQ((want.effects & kEffectHoldAlarm) != 0, want.to == S::kExecuting);
  }
}

TEST(IncidentStateTest, EventNamesAreDistinct) {
  std::map<std::string, int> seen;
  for (E event : kAllEvents) {
    EXPECT_EQ(++seen[std::string(IncidentEventName(event))], 1) << IncidentEventName(event);
  }
}

}  // namespace
}  // namespace medic::server
