#pragma once

// The incident record: the reference schema's fields under their reference names, plus what
// medic needs to drive the lifecycle. It lives with the store that keeps it; the lifecycle
// (the transition table, incidents/incident_state.h) lives in incidents/.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/json.h"
#include "core/result.h"

namespace medic::server {

enum class IncidentStatus {
  kDiagnosing,
  kPendingApproval,
  kExecuting,
  kCompleted,
  kFailed,
  kTimeout,
  kRejected,
};

std::string_view StatusName(IncidentStatus s);
Result<IncidentStatus> ParseStatus(std::string_view name);
// diagnosing, pending_approval, executing: the incident still needs something to happen.
bool IsOpen(IncidentStatus s);

struct TimelineEntry {
  std::string event;  // created, diagnosed, suggested, approved, ...
  WallTime timestamp;
  std::string actor;   // "medic" for the system, a token name for operators, "agent:web-1"
  std::string detail;  // one human-readable line (may be empty)
};

struct Incident {
  std::string incident_id;
  std::string alarm_name;
  std::string alarm_description;
  std::string instance_id;  // the host's name
  IncidentStatus status = IncidentStatus::kDiagnosing;
  std::string diagnostics;
  std::string ai_suggestion;  // the exact command line of the chosen action
  std::string ai_reasoning;
  std::string remediation_output;
  Json action = Json::object();  // {"name": "...", "params": {...}}: what approval will run
  std::string reason;            // why it failed, timed out or was rejected
  // What consulting the AI cost: {provider, model, input_tokens, output_tokens, tokens,
  // latency_ms, attempts}; {} when no model was asked.
  Json ai_usage = Json::object();
  WallTime created_at;
  WallTime updated_at;
  std::optional<WallTime> resolved_at;
  std::vector<TimelineEntry> timeline;  // append-only, oldest first
};

// The step an open incident waits for a human at (docs/AUTONOMY.md "Stage gates"), from its
// status and timeline: "diagnose" (pending_approval, gated diagnostics), "fix"
// (pending_approval, a proposed fix or nothing to run), "verify" (executing, the alarm is OK
// and the runbook gates verify); "" when it waits for no human.
std::string AwaitingStep(const Incident& incident);

// The API's representation (CONTRACT.md's field names; timestamps RFC 3339 UTC). Carries
// `action_hash` when the incident has an action, and `awaiting` (AwaitingStep) while it waits
// for a human.
Json IncidentToJson(const Incident& incident);

// What approving the incident would run, in the one canonical form that is hashed: compact JSON
// (no whitespace, object keys sorted at every level, UTF-8; nlohmann's dump)
//   {"action":NAME,"host":INSTANCE_ID,"incident_id":ID,"params":{...}}
// "" when the incident has no action. docs/API.md, "action_hash".
std::string CanonicalProposal(const Incident& incident);
// Lowercase hex SHA-256 of CanonicalProposal(incident); "" when it has no action. An approval
// names it, and is refused unless it is the incident's current one.
std::string ActionHash(const Incident& incident);

}  // namespace medic::server
