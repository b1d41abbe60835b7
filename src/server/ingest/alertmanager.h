#pragma once

// Alertmanager's webhook (version 4): the body parsed into typed values, and each alert mapped
// to a medic alarm and host by the `ingest.alertmanager` rules (ingest_config.h). Pure: text in,
// values out; no I/O, never throws (docs/integrations/ingest.md).

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "server/ingest/alert_sink.h"
#include "server/ingest/ingest_config.h"

namespace medic::server {

using Labels = std::map<std::string, std::string>;

struct AlertmanagerAlert {
  std::string status;  // "firing" | "resolved"
  Labels labels;
  Labels annotations;
  std::optional<WallTime> starts_at;
  std::optional<WallTime> ends_at;  // Alertmanager's zero time (0001-01-01) is none
  std::string generator_url;
  std::string fingerprint;
};

struct AlertmanagerWebhook {
  std::string version;  // "4"
  std::string group_key;
  std::string status;
  std::string receiver;
  Labels group_labels;
  Labels common_labels;
  Labels common_annotations;
  std::string external_url;
  std::vector<AlertmanagerAlert> alerts;
};

// Parses a webhook body. InvalidArgument naming the problem: not JSON, version other than "4",
// a field of the wrong type, an alert whose status is neither firing nor resolved, more than
// `max_alerts` alerts, a firing alert without startsAt or a resolved one without endsAt.
Result<AlertmanagerWebhook> ParseAlertmanagerWebhook(std::string_view body, size_t max_alerts);

// One alert, mapped: `alert` when a rule (or the defaults) gave it an alarm name and a host,
// else `summary` and `why` for the unmatched record.
struct MappedAlert {
  std::optional<ExternalAlert> alert;
  std::string summary;  // "alertname=X instance=Y" (always set)
  std::string why;      // set when alert is empty
};
MappedAlert MapAlertmanagerAlert(const AlertmanagerAlert& alert, const AlertmanagerConfig& config);

// "10.0.0.5:9100" -> "10.0.0.5", "[::1]:9100" -> "::1", "web-1" -> "web-1".
std::string StripPort(std::string_view instance);

}  // namespace medic::server
