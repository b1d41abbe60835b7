#pragma once

// The `alarms:` and `target_groups:` sections of the server config (docs/ALARMS.md).
//
//   alarms:
//     Disk-Critical-ASG: {threshold: 80, clear_threshold: 75}   # overrides a default by name
//     Log-Volume-Inodes:                                          # adds a rule
//       metric: inode_used_percent
//       labels: {mount: /var/log}
//       comparison: ">="
//       threshold: 90
//       period: 10s
//       evaluation_periods: 3
//       datapoints_to_alarm: 2
//       treat_missing_data: notBreaching
//   target_groups:
//     web: {interval: 5s, timeout: 2s, healthy_threshold: 2, unhealthy_threshold: 2,
//           matcher: "200-399", path: /healthz}

#include <string>
#include <vector>

#include "core/result.h"
#include "server/alarms/alarms.h"
#include "server/fleet/target_groups.h"

namespace YAML {
class Node;
}

namespace medic::server {

// Applies the `alarms:` mapping (alarm name -> fields) to `rules`: a known name overrides the
// given fields, a new name adds a rule (metric and threshold required). Errors name file, line
// and problem.
Status ParseAlarmsYaml(const YAML::Node& node, const std::string& file,
                       std::vector<AlarmRule>& rules);

// Applies the `target_groups:` mapping (group name -> fields) to `groups` likewise.
Status ParseTargetGroupsYaml(const YAML::Node& node, const std::string& file,
                             std::vector<TargetGroupConfig>& groups);

}  // namespace medic::server
