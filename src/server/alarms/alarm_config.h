#pragma once

// The `alarms:` section of the server config (docs/ALARMS.md). The `target_groups:` section is
// fleet/target_group_config.h.
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

#include <string>
#include <vector>

#include "core/result.h"
#include "server/alarms/alarms.h"

namespace YAML {
class Node;
}

namespace medic::server {

// Applies the `alarms:` mapping (alarm name -> fields) to `rules`: a known name overrides the
// given fields, a new name adds a rule (metric and threshold required). Errors name file, line
// and problem.
Status ParseAlarmsYaml(const YAML::Node& node, const std::string& file,
                       std::vector<AlarmRule>& rules);

}  // namespace medic::server
