#pragma once

// Earned autonomy and graded outcomes (docs/AUTONOMY.md, "Earned autonomy" and "Grading").
//
// Earned autonomy: every (alarm, action) pair has a record computed from the store's incidents
// and their timelines (so it holds across restarts and on a cluster): fixes verified, failed,
// timed out, rejected, undone, and the median time to recover. Replaying that history in order
// gives the pair's earned mode:
//   default   no say: the global approval mode and the runbook decide, as without autonomy;
//   automatic promoted after `promote_after` verified fixes in a row, each approved by a human,
//             none undone: the pair's fix runs without a human even in approval mode;
//   approval  demoted (from automatic) at once after a fix that failed or timed out, an undo, or
//             a restart-loop breaker trip: the pair waits for a human even in automatic mode,
//             until it earns automatic again.
// An admin pin (kept in the store's settings, key "autonomy.pin/ALARM/ACTION") fixes the mode
// whatever the record says. Model confidence plays no part: only outcomes count.
//
// Grading: each ended incident that proposed a fix gets a verdict (right, wrong, pending until
// its return window has passed), from the same store; Stats() sums them over a period.

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/json.h"
#include "core/result.h"
#include "server/store/incident.h"
#include "server/store/store.h"

namespace YAML {
class Node;
}

namespace medic::server {

struct AutonomyConfig {
  bool enabled = true;
  int promote_after = 5;                 // verified, human-approved fixes in a row
  Millis return_window{30 * 60 * 1000};  // grading: the alarm back within it = wrong
};
// The `autonomy:` section of medic-server's config: {enabled, promote_after: 1..100,
// return_window: 1m..7d}. Unknown keys and bad values are InvalidArgument naming file and line.
Status ParseAutonomyYaml(const YAML::Node& node, const std::string& file, AutonomyConfig& config);

enum class PairMode { kDefault, kAutomatic, kApproval };
std::string_view PairModeName(PairMode m);  // "default", "automatic", "approval"

using PairKey = std::pair<std::string, std::string>;  // (alarm, action)

struct PairRecord {
  std::string alarm;
  std::string action;
  int verified = 0;
  int failed = 0;
  int timed_out = 0;
  int rejected = 0;
  int undone = 0;
  std::optional<Millis> median_recover;  // created -> resolved of the verified ones
  PairMode earned = PairMode::kDefault;  // what the record says
  std::optional<PairMode> pin;           // an admin's pin, which wins
  int streak = 0;                        // verified, human-approved fixes in a row
  // The latest promotion or demotion: "promoted" / "demoted", the incident and why.
  std::string last_change;
  std::string last_change_incident;
  std::optional<WallTime> last_change_at;
  std::string last_change_reason;

  PairMode mode() const { return pin.value_or(earned); }
};

// The records of every pair that proposed a fix in `incidents` (any order), by (alarm, action).
// Pure.
std::map<PairKey, PairRecord> ReplayAutonomy(const std::vector<Incident>& incidents,
                                             const AutonomyConfig& config);

// What earned autonomy makes of a decision. `why`: why it waits for a human without autonomy
// ("" = it runs automatically); `why_in_automatic_mode`: the same with approval mode off.
// Returns the reason it waits ("" = it runs), and sets `*note` when autonomy let it run.
std::string GateWithAutonomy(const PairRecord* record, const std::string& why,
                             const std::string& why_in_automatic_mode, std::string* note);

// ---- Grading -------------------------------------------------------------------------------

enum class Verdict { kUngraded, kRight, kWrong, kPending };
std::string_view VerdictName(Verdict v);

struct Assessment {
  Verdict verdict = Verdict::kUngraded;
  std::string why;
};
// The verdict on `inc` (ended) at `now`: ungraded without a proposed fix or while open; wrong
// when a human rejected it or undid it, when it failed or timed out after it ran, or when the
// same alarm returned on the host (another incident of `others` created) within the window
// after it was resolved; right once the window passed without that; pending until then.
Assessment Assess(const Incident& inc, const std::vector<Incident>& others, WallTime now,
                  Millis return_window);

struct StatsQuery {
  WallTime from;  // incidents created at or after
  WallTime now;
};
// GET /api/v1/stats's body over the incidents created in [from, now]; `all` is every incident
// (the returns after `from` are looked for in it). Pure.
Json ComputeStats(const std::vector<Incident>& all, const StatsQuery& q, Millis return_window);

// ---- The service ---------------------------------------------------------------------------

struct AutonomyChange {
  std::string event;   // "autonomy_promoted" / "autonomy_demoted"
  std::string detail;  // the timeline's line
  Json audit;          // the audit entry's detail
};

// Reads the store for the records and pins; writes pins (audited). Thread-safe (the store is).
class Autonomy {
 public:
  Autonomy(Store& store, const Clock& clock, AutonomyConfig config)
      : store_(store), clock_(clock), config_(config) {}

  const AutonomyConfig& config() const { return config_; }

  // Every pair's record and mode, by alarm then action (pinned pairs without history too).
  Result<std::vector<PairRecord>> List();
  // The record of one pair; nullopt when it has no history and no pin. A store error is
  // returned (the caller keeps its own decision).
  Result<std::optional<PairRecord>> Record(const std::string& alarm, const std::string& action);
  // The promotion or demotion that writing `after` over `before` (the same incident) causes:
  // nullopt unless `after` ends the incident or adds an `undone` or `breaker_open` entry, and
  // its pair's mode changes (never for a pinned pair).
  Result<std::optional<AutonomyChange>> Judge(const Incident& before, const Incident& after);
  // Pins (mode kAutomatic or kApproval) or unpins (nullopt) the pair; audited as
  // autonomy.pin / autonomy.unpin by `actor`. InvalidArgument for an empty name.
  Status Pin(const std::string& alarm, const std::string& action, std::optional<PairMode> mode,
             const std::string& actor);
  // GET /api/v1/stats over the incidents created since `since` before now.
  Result<Json> Stats(Millis since);

 private:
  Result<std::map<PairKey, PairMode>> Pins();

  Store& store_;
  const Clock& clock_;
  const AutonomyConfig config_;
};

Json PairRecordToJson(const PairRecord& r);

}  // namespace medic::server
