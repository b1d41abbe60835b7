#pragma once

// What a notification is and how each channel says it: pure functions from an incident (as the
// store keeps it) and the config to outbox rows, and from an outbox row to the HTTP request its
// receiver gets. No I/O here; Notifier (notifier.h) does the sending.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/json.h"
#include "server/notify/notify_config.h"
#include "server/store/incident.h"
#include "server/store/store.h"
#include "transport/http_client.h"

namespace medic::server {

// The event a timeline entry stands for: created -> incident_opened, awaiting_approval ->
// approval_needed, completed -> incident_completed, failed | timeout | rejected ->
// incident_failed, breaker_open -> breaker_open; nullopt for every other entry.
std::optional<NotifyEvent> NotifyEventOf(std::string_view timeline_event);

// "<incident_id>:<timeline index>:<event>:<channel>": the same event of the same incident on the
// same channel always gets the same key, so enqueueing it twice keeps one row.
std::string IdempotencyKey(const std::string& incident_id, size_t timeline_index,
                           NotifyEvent event, ChannelKind channel);

// One row per (timeline entry that is an event, channel that wants it) of `inc`, for the entries
// stamped at or after `since` (the outbox's start for that channel; older ones were never
// notified and are not now). The payload is the incident as it is in `inc`, so the first
// enqueue of a key (right after the change) records the incident as of its event.
std::vector<OutboxRecord> OutboxRowsFor(const Incident& inc, const NotificationsConfig& config,
                                        ChannelKind channel, WallTime since, WallTime now);

// The link to the incident on the dashboard: <dashboard_url>/#/incident/<id> ("" without a
// dashboard_url).
std::string IncidentLink(std::string_view dashboard_url, std::string_view incident_id);

// Slack's mrkdwn control characters escaped (& < >), so that text from a host or a model shows
// as text and never becomes a link, a mention or markup.
std::string SlackEscape(std::string_view text);

// X-Medic-Signature's value: "sha256=" + lowercase hex HMAC-SHA256(secret, timestamp "." body).
std::string WebhookSignature(std::string_view secret, std::string_view timestamp,
                             std::string_view body);

// The request that delivers `row` on `channel` at `now`. InvalidArgument when the row's payload
// is not what OutboxRowsFor wrote (then it is given up, never retried).
Result<HttpRequest> RenderNotification(const ChannelConfig& channel,
                                       const NotificationsConfig& config, const OutboxRecord& row,
                                       WallTime now);

}  // namespace medic::server
