#pragma once

// Human-readable output of the CLI: pure functions from the API's JSON (and the current time)
// to text. Missing or odd fields print as "-" rather than failing; only a body without the
// expected top-level shape is an error.

#include <string>
#include <vector>

#include "core/clock.h"
#include "core/json.h"
#include "core/result.h"

namespace medic::cli {

// Left-aligned columns separated by two spaces; the last column is not padded. `indent` spaces
// precede every line. Each line ends with '\n'.
std::string FormatTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows, int indent = 0);

// Compact age: "12s", "5m", "3h", "2d". Times in the future count as "0s".
std::string FormatAge(WallTime then, WallTime now);
// FormatAge of an RFC 3339 string with " ago", or the text itself when it does not parse.
std::string FormatAgeOf(const Json& rfc3339, WallTime now);

// A span of time to the second: "13s", "2m 5s", "1h 2m", "3d 4h".
std::string FormatSpan(Millis d);

// {"incidents":[...]} -> ID STATUS ALARM HOST CREATED (age) RESOLVED IN (created to resolved,
// "-" while open) table (or "no incidents").
Result<std::string> FormatIncidentList(const Json& body, WallTime now);
// One INCIDENT: its fields, then the timeline.
Result<std::string> FormatIncident(const Json& incident, WallTime now);
// {"hosts":[...]} -> NAME STATUS LAST SEEN DISK MEM CHECKS table.
Result<std::string> FormatHostList(const Json& body, WallTime now);
// {"alarms":[...]} -> ALARM HOST STATE SINCE table.
Result<std::string> FormatAlarmList(const Json& body, WallTime now);

// GET /api/v1/settings -> one "NAME  VALUE" line per setting, names as the API spells them,
// booleans as on/off, approval_mode and automation_paused first.
Result<std::string> FormatSettings(const Json& settings);
// The one line `medic pause` and `medic resume` print, read from the server's settings:
// "automation paused: ..." or "automation resumed (approval mode on: ...)". An error when
// automation_paused is missing or not a boolean.
Result<std::string> FormatAutomationState(const Json& settings);

}  // namespace medic::cli
