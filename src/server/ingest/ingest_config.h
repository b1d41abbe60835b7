#pragma once

// The `ingest:` section of the server config: how alerts from outside become medic alarms on
// hosts (docs/integrations/ingest.md); `ingest.sns:` is read by ParseSnsConfig (sns_config.h,
// docs/integrations/sns.md).
//
//   ingest:
//     unmatched_keep: 200          # the newest unmatched alerts kept in memory (1..10000)
//     alertmanager:
//       max_alerts: 1000           # alerts per webhook body (1..10000); more: 400
//       defaults: true             # no rule matched: alertname -> alarm, host|instance -> host
//       rules:                     # in order; the first whose `match` holds maps the alert
//         - match: {alertname: WebCheckFailing}   # labels, exact values; {} matches every alert
//           alarm: Prom-Web-Down                 # a literal alarm name, or
//           # alarm_label: alertname             #   the value of a label (default alertname)
//           host_label: host                     # default: host, else instance
//           # strip_port: true                   # cut ":PORT" off the host (default: true)

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "core/result.h"
#include "server/ingest/sns_config.h"

namespace YAML {
class Node;
}

namespace medic::server {

struct AlertmanagerRule {
  std::map<std::string, std::string> match;  // label -> exact value; all must hold
  std::string alarm;                         // literal alarm name; empty: from alarm_label
  std::string alarm_label = "alertname";
  std::string host_label;  // empty: the `host` label, else `instance`
  bool strip_port = true;  // "10.0.0.5:9100" -> "10.0.0.5", "[::1]:9100" -> "::1"
};

struct AlertmanagerConfig {
  std::vector<AlertmanagerRule> rules;
  // When no rule matches: the contract's defaults (alertname, host else instance without the
  // port). false: such an alert is recorded as unmapped.
  bool defaults = true;
  size_t max_alerts = 1000;
};

struct IngestConfig {
  AlertmanagerConfig alertmanager;
  // `ingest.sns:` (sns_config.h, docs/integrations/sns.md). No topic: every delivery is refused.
  SnsConfig sns;
  size_t unmatched_keep = 200;
};

// Parses the `ingest:` node into `out`. Unknown keys and wrong types are errors naming file and
// line.
Status ParseIngestYaml(const YAML::Node& node, const std::string& file, IngestConfig& out);

}  // namespace medic::server
