#pragma once

// The `notifications:` section of the server config: where medic tells people about incidents
// (docs/integrations/notifications.md).
//
//   notifications:
//     dashboard_url: https://medic.example.com        # links: <dashboard_url>/#/incident/<id>
//     retry: {initial: 1s, max_delay: 5m, max_attempts: 20, give_up_after: 24h}
//     webhook:   {url: https://hooks.example.com/medic, secret_file: /etc/medic/webhook.secret,
//                 events: [incident_opened, approval_needed, incident_completed]}
//     slack:     {url_file: /etc/medic/slack.url, buttons: true}
//     pagerduty: {routing_key_file: /etc/medic/pd.key, severity: error}
//
// Each channel is optional, at most one of each kind; `events` defaults to all five. Secrets
// come from the value itself or from a `*_file` key (the file's content, trimmed), never both.
// Unknown keys, wrong types, bad URLs and unknown event names are errors naming file and line.

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/result.h"

namespace YAML {
class Node;
}

namespace medic::server {

// What medic notifies about. Each is one timeline entry of an incident (NotifyEventOf).
enum class NotifyEvent {
  kIncidentOpened,     // created
  kApprovalNeeded,     // awaiting_approval: the incident is pending_approval
  kIncidentCompleted,  // completed
  kIncidentFailed,     // failed, timeout or rejected (the payload's outcome says which)
  kBreakerOpen,        // breaker_open: the restart-loop breaker stopped automation for the pair
};
inline constexpr NotifyEvent kAllNotifyEvents[] = {
    NotifyEvent::kIncidentOpened, NotifyEvent::kApprovalNeeded, NotifyEvent::kIncidentCompleted,
    NotifyEvent::kIncidentFailed, NotifyEvent::kBreakerOpen};

std::string_view NotifyEventName(NotifyEvent e);
std::optional<NotifyEvent> ParseNotifyEvent(std::string_view name);

enum class ChannelKind { kWebhook, kSlack, kPagerDuty };
std::string_view ChannelName(ChannelKind k);  // webhook | slack | pagerduty

struct ChannelConfig {
  ChannelKind kind = ChannelKind::kWebhook;
  // Where deliveries go (http or https). PagerDuty: https://events.pagerduty.com/v2/enqueue by
  // default; Slack: the incoming webhook's URL (a secret: `url_file` keeps it out of the config).
  std::string url;
  std::string secret;       // webhook: the HMAC-SHA256 key (required)
  std::string routing_key;  // pagerduty: the integration's routing key (required)
  std::string severity = "error";  // pagerduty: critical | error | warning | info
  bool buttons = false;     // slack: Approve and Reject on approval_needed (part C's `slack:`)
  std::set<NotifyEvent> events{std::begin(kAllNotifyEvents), std::end(kAllNotifyEvents)};
  Millis timeout{10'000};   // one delivery, connection included
};

// Retries with exponential backoff: initial, 2x initial, ... capped at max_delay; a row is given
// up (dead) after max_attempts attempts or once give_up_after has passed since its event.
struct RetryPolicy {
  Millis initial{1'000};
  Millis max_delay{300'000};
  int max_attempts = 20;
  Millis give_up_after{86'400'000};
};

struct NotificationsConfig {
  std::string dashboard_url;  // no trailing slash; "" leaves links out
  RetryPolicy retry;
  std::vector<ChannelConfig> channels;  // in the order webhook, slack, pagerduty; may be empty

  const ChannelConfig* Find(ChannelKind kind) const;
};

// Applies the `notifications:` mapping to `config`.
Status ParseNotificationsYaml(const YAML::Node& node, const std::string& file,
                              NotificationsConfig& config);

}  // namespace medic::server
