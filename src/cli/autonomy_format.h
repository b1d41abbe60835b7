#pragma once

// `medic autonomy` and `medic stats` as text: pure functions from the API's JSON
// (GET /api/v1/autonomy, GET /api/v1/stats; docs/AUTONOMY.md). Missing or odd fields print as
// "-"; only a body without the expected top-level shape is an error.

#include <string>

#include "core/json.h"
#include "core/result.h"

namespace medic::cli {

// {"pairs":[...]} -> ALARM ACTION MODE VERIFIED FAILED TIMED_OUT REJECTED UNDONE MEDIAN_TTR
// LAST_CHANGE table; MODE is "automatic (pinned)" for a pin. "no alarm x action pair has a
// record yet" when empty.
Result<std::string> FormatAutonomy(const Json& body);
// GET /api/v1/stats -> the period, precision, share resolved without a human, then the MTTR by
// alarm and the grades by (alarm, provider, model) tables.
Result<std::string> FormatStats(const Json& body);

}  // namespace medic::cli
