#pragma once

// The `target_groups:` section of the server config (docs/ALARMS.md, "Target groups").
//
//   target_groups:
//     web: {interval: 5s, timeout: 2s, healthy_threshold: 2, unhealthy_threshold: 2,
//           matcher: "200-399", path: /healthz}

#include <string>
#include <vector>

#include "core/result.h"
#include "server/fleet/target_groups.h"

namespace YAML {
class Node;
}

namespace medic::server {

// Applies the `target_groups:` mapping (group name -> fields) to `groups`: a known name overrides
// the given fields, a new name adds a group with the default settings for the rest. Errors name
// file, line and problem.
Status ParseTargetGroupsYaml(const YAML::Node& node, const std::string& file,
                             std::vector<TargetGroupConfig>& groups);

}  // namespace medic::server
