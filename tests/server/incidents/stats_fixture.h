#pragma once

// A known history for GET /api/v1/stats and `medic stats` (docs/AUTONOMY.md, "Grading"), as of
// `now`. Over the last 24 h: 7 incidents; graded 2 right (inc-a, inc-d), 3 wrong (inc-b: its
// alarm returned 10 min later; inc-c: rejected; inc-e: the fix failed), 1 pending (inc-f: its
// window still open), 1 ungraded (inc-h, open); precision 40 %; 2 of the 4 completed without a
// human; MTTR Nginx-Down-ALB 260 s (60, 120, 600), Disk-Usage-High 300 s. inc-g is 30 h old.

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "server/store/store.h"

namespace medic::test {

// Writes the fixture into `store`; false (with a test failure) when a write fails.
inline bool PutStatsFixture(server::Store& store, WallTime now) {
  using namespace std::chrono_literals;
  using server::IncidentStatus;
  bool ok = true;
  auto put = [&](const std::string& id, const std::string& alarm, const std::string& host,
                 IncidentStatus status, Millis ago, std::optional<Millis> took,
                 const std::vector<std::string>& events, const std::string& provider = "",
                 const std::string& model = "") {
    server::Incident inc;
    inc.incident_id = id;
    inc.alarm_name = alarm;
    inc.instance_id = host;
    inc.status = status;
    inc.created_at = now - ago;
    inc.updated_at = took ? inc.created_at + *took : inc.created_at;
    if (took) {
      inc.resolved_at = inc.created_at + *took;
      inc.action = Json{{"name", "service.restart"}, {"params", Json{{"service", "nginx"}}}};
    }
    if (!provider.empty()) {
      inc.ai_usage = Json{{"provider", provider}, {"model", model}};
    }
    inc.timeline.push_back({"created", inc.created_at, "medic", ""});
    for (const auto& e : events) {
      inc.timeline.push_back(
          {e, inc.updated_at, e == "approved" || e == "rejected" ? "alice" : "medic", ""});
    }
    if (Status s = store.CreateIncident(inc); !s) {
      ADD_FAILURE() << id << ": " << s.error().ToString();
      ok = false;
    }
  };
  const std::string nginx = "Nginx-Down-ALB", disk = "Disk-Usage-High";
  const std::vector<std::string> auto_fix = {"auto_approved", "executing", "verified", "completed"};
  const std::vector<std::string> human_fix = {"approved", "executing", "verified", "completed"};
  // right: fixed on its own, the alarm did not return
  put("inc-a", nginx, "web-1", IncidentStatus::kCompleted, 10h, 60s, auto_fix, "gemini", "flash");
  // wrong: fixed with a human, but the alarm returned 10 min later (inc-c)
  put("inc-b", nginx, "web-1", IncidentStatus::kCompleted, 8h, 120s, human_fix, "gemini", "flash");
  // wrong: rejected
  put("inc-c", nginx, "web-1", IncidentStatus::kRejected, 8h - 120s - 10min, 5min, {"rejected"},
      "gemini", "flash");
  // right (no model asked: the runbook's fix)
  put("inc-d", disk, "web-2", IncidentStatus::kCompleted, 5h, 300s, auto_fix);
  // wrong: the fix failed
  put("inc-e", disk, "web-2", IncidentStatus::kFailed, 3h, 30s,
      {"auto_approved", "executing", "failed"});
  // pending: verified 10 min ago, its window still open
  put("inc-f", nginx, "web-1", IncidentStatus::kCompleted, 20min, 10min, human_fix, "gemini",
      "flash");
  // outside the last 24 h
  put("inc-g", nginx, "web-1", IncidentStatus::kCompleted, 30h, 60s, human_fix, "gemini", "flash");
  // open: counted, not graded
  put("inc-h", disk, "web-3", IncidentStatus::kDiagnosing, 1min, std::nullopt, {});
  return ok;
}

// What `medic stats --since 24h` prints for the fixture after its first line (the period).
inline constexpr char kStatsFixtureText[] =
    "incidents          7\n"
    "graded             2 right, 3 wrong, 1 pending, 1 ungraded\n"
    "precision          40.0%\n"
    "without a human    50.0% (2 of 4 resolved)\n"
    "\n"
    "ALARM            RESOLVED  MTTR\n"
    "Disk-Usage-High  1         5m\n"
    "Nginx-Down-ALB   3         4m 20s\n"
    "\n"
    "ALARM            PROVIDER  MODEL  RIGHT  WRONG  PENDING  PRECISION\n"
    "Disk-Usage-High  none      -      1      1      0        50.0%\n"
    "Nginx-Down-ALB   gemini    flash  1      2      1        33.3%\n";

}  // namespace medic::test
