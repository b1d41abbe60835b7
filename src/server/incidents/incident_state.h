#pragma once

// The incident lifecycle as one table: (status, event) -> (status, timeline event, effects).
// IncidentManager is the only caller that applies it (IncidentManager::Commit), and Commit is
// the only code that sets an incident's status. docs/INCIDENTS.md draws the same table.
//
//   diagnosing ──Decided(needs a human)──────────────► pending_approval ──Rejected──► rejected
//       │  │  └─AutoApproved──► executing ◄──Approved─────┘   │  └─NothingToRun-Cleared─► completed
//       │  └─NoRunbook | ActionInvalid ─► failed               ├─ActionInvalid──► failed
//       │                                                      └─ApprovalExpired──► timeout
//       │                                                                  (then judged again)
//       ├─DiagnosticsTimedOut ─► timeout
//       └─DiagnoseNeedsApproval ─► pending_approval ─DiagnoseApproved─► diagnosing (gates)
//   executing ──Verified──► completed
//             ──FixNotRun | FixFailed | VerificationFailed──► failed     (then judged again)
//             ──FixTimedOut──► timeout                                   (then judged again)
//   diagnosing | pending_approval | executing ──HostRemoved──► rejected
//   completed, failed, timeout, rejected: terminal, every event refused.
//
// Events that change nothing but the timeline (diagnosed, suggested, verifying, alarm_repeated,
// resumed, …) are not transitions and are recorded without this table.

#include <cstdint>
#include <string_view>

#include "core/result.h"
#include "server/store/incident.h"

namespace medic::server {

enum class IncidentEvent {
  kDiagnosticsTimedOut,    // no diagnostic answered before the deadline
  kNoRunbook,              // the alarm has no runbook: nothing can be decided
  kNeedsApproval,          // the decision waits for a human (approval mode, risk, breaker, …)
  kAutoApproved,           // the decision runs at once: the fix is sent
  kApproved,               // an operator approved: the fix is sent
  kRejected,               // an operator rejected
  kActionInvalid,          // the action to run does not pass the catalog
  kNothingToRunCleared,    // the alarm cleared while a human was to decide and no fix exists
  kFixNotRun,              // the host refused or could not start the fix
  kFixFailed,              // the fix ran and failed (exit code, signal)
  kFixTimedOut,            // the fix timed out on the host, or no result came back in time
  kVerified,               // the alarm is back to OK after the fix
  kVerificationFailed,     // the alarm is still not OK at the end of the verification window
  kApprovalExpired,        // nobody decided within the approval timeout
  kHostRemoved,            // an operator removed the host (hosts remove --close-incidents)
  kDiagnoseNeedsApproval,  // the runbook gates its diagnostics: a human approves them first
  kDiagnoseApproved,       // an operator approved the gated diagnostics: they are sent
};
inline constexpr int kIncidentEventCount = 17;

std::string_view IncidentEventName(IncidentEvent e);

// What applying a transition entails besides the new status. A bit set.
enum Effect : uint32_t {
  kEffectNone = 0,
  kEffectSendFix = 1u << 0,      // queue the incident's action on its host
  kEffectHoldAlarm = 1u << 1,    // the alarm's changes open no new incident while the fix runs
  kEffectReleaseAlarm = 1u << 2,  // the alarm opens incidents again
  kEffectResolve = 1u << 3,      // the incident is over: resolved_at is set
  kEffectRejudge = 1u << 4,      // an alarm still in ALARM opens a fresh incident at once
};

struct IncidentTransition {
  IncidentStatus to;
  std::string_view timeline_event;  // appended to the timeline by the transition
  uint32_t effects = kEffectNone;
};

// The table. FailedPrecondition ("incident is executing, not pending_approval" style) for every
// (status, event) pair it does not allow.
Result<IncidentTransition> NextTransition(IncidentStatus from, IncidentEvent event);

}  // namespace medic::server
