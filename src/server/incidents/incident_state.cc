#include "server/incidents/incident_state.h"

#include <string>

namespace medic::server {

std::string_view IncidentEventName(IncidentEvent e) {
  switch (e) {
    case IncidentEvent::kDiagnosticsTimedOut:
      return "diagnostics_timed_out";
    case IncidentEvent::kNoRunbook:
      return "no_runbook";
    case IncidentEvent::kNeedsApproval:
      return "needs_approval";
    case IncidentEvent::kAutoApproved:
      return "auto_approved";
    case IncidentEvent::kApproved:
      return "approved";
    case IncidentEvent::kRejected:
      return "rejected";
    case IncidentEvent::kActionInvalid:
      return "action_invalid";
    case IncidentEvent::kNothingToRunCleared:
      return "nothing_to_run_cleared";
    case IncidentEvent::kFixNotRun:
      return "fix_not_run";
    case IncidentEvent::kFixFailed:
      return "fix_failed";
    case IncidentEvent::kFixTimedOut:
      return "fix_timed_out";
    case IncidentEvent::kVerified:
      return "verified";
    case IncidentEvent::kVerificationFailed:
      return "verification_failed";
    case IncidentEvent::kApprovalExpired:
      return "approval_expired";
    case IncidentEvent::kHostRemoved:
      return "host_removed";
    case IncidentEvent::kDiagnoseNeedsApproval:
      return "diagnose_needs_approval";
    case IncidentEvent::kDiagnoseApproved:
      return "diagnose_approved";
  }
  return "unknown";
}

namespace {

using S = IncidentStatus;
using E = IncidentEvent;

constexpr uint32_t kClose = kEffectResolve | kEffectReleaseAlarm;
constexpr uint32_t kCloseAndRejudge = kClose | kEffectRejudge;
constexpr uint32_t kStartFix = kEffectSendFix | kEffectHoldAlarm;

struct Row {
  S from;
  E event;
  IncidentTransition transition;
};

// Every allowed transition; anything else is refused.
constexpr Row kTable[] = {
    {S::kDiagnosing, E::kDiagnosticsTimedOut, {S::kTimeout, "timeout", kClose}},
    {S::kDiagnosing, E::kNoRunbook, {S::kFailed, "failed", kClose}},
    {S::kDiagnosing, E::kNeedsApproval, {S::kPendingApproval, "awaiting_approval", kEffectNone}},
    {S::kDiagnosing, E::kAutoApproved, {S::kExecuting, "executing", kStartFix}},
    {S::kDiagnosing, E::kActionInvalid, {S::kFailed, "failed", kClose}},
    {S::kPendingApproval, E::kApproved, {S::kExecuting, "executing", kStartFix}},
    // Nothing was held while waiting for a human: a rejection has no alarm to release.
    {S::kPendingApproval, E::kRejected, {S::kRejected, "rejected", kEffectResolve}},
    {S::kPendingApproval, E::kActionInvalid, {S::kFailed, "failed", kClose}},
    {S::kPendingApproval, E::kNothingToRunCleared, {S::kCompleted, "completed", kClose}},
    // Nobody decided in time: the proposal can no longer be approved, and an alarm still in
    // ALARM opens a fresh incident with a fresh proposal (and action_hash).
    {S::kPendingApproval,
     E::kApprovalExpired,
     {S::kTimeout, "timeout", kEffectResolve | kEffectRejudge}},
    // Stage gates (docs/AUTONOMY.md): gated diagnostics wait for a human before they are sent;
    // nothing is held meanwhile.
    {S::kDiagnosing,
     E::kDiagnoseNeedsApproval,
     {S::kPendingApproval, "awaiting_diagnostics_approval", kEffectNone}},
    {S::kPendingApproval, E::kDiagnoseApproved, {S::kDiagnosing, "diagnostics_approved", kEffectNone}},
    {S::kExecuting, E::kFixNotRun, {S::kFailed, "failed", kCloseAndRejudge}},
    {S::kExecuting, E::kFixFailed, {S::kFailed, "failed", kCloseAndRejudge}},
    {S::kExecuting, E::kFixTimedOut, {S::kTimeout, "timeout", kCloseAndRejudge}},
    {S::kExecuting, E::kVerified, {S::kCompleted, "completed", kClose}},
    {S::kExecuting, E::kVerificationFailed, {S::kFailed, "failed", kCloseAndRejudge}},
    // The host is gone (its alarms with it): the incident ends as an operator's decision not
    // to fix, and nothing is judged again.
    {S::kDiagnosing, E::kHostRemoved, {S::kRejected, "host_removed", kClose}},
    {S::kPendingApproval, E::kHostRemoved, {S::kRejected, "host_removed", kClose}},
    {S::kExecuting, E::kHostRemoved, {S::kRejected, "host_removed", kClose}},
};

}  // namespace

Result<IncidentTransition> NextTransition(IncidentStatus from, IncidentEvent event) {
  for (const Row& row : kTable) {
    if (row.from == from && row.event == event) {
      return row.transition;
    }
  }
  std::string allowed;
  for (const Row& row : kTable) {
    if (row.event == event) {
      allowed += allowed.empty() ? "" : " or ";
      allowed += StatusName(row.from);
    }
  }
  return FailedPrecondition("incident is " + std::string(StatusName(from)) + ", not " +
                            (allowed.empty() ? std::string("open") : allowed) + " (" +
                            std::string(IncidentEventName(event)) + ")");
}

}  // namespace medic::server
