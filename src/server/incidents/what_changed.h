#pragma once

// The server's part of "what changed" (docs/AUTONOMY.md): medic's own recent actions on a host,
// from the store's incidents, as a section of an incident's diagnostics. The host's part is the
// host.changes diagnostic (agent/host_changes.h).

#include <string>

#include "core/clock.h"
#include "server/store/store.h"

namespace medic::server {

// "$ medic's actions on HOST since T (from the server's incidents)" and one line per incident of
// `host` other than `except_id`, updated since `since`, that had a fix sent or an approval
// decided: when, which incident and alarm, the command line, its status now. At most 20 lines
// (the newest). A store error is said in the text.
std::string RecentActionsSection(Store& store, const std::string& host, WallTime since,
                                 const std::string& except_id);

}  // namespace medic::server
