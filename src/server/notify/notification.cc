#include "server/notify/notification.h"

#include <string>

#include "core/sha256.h"

namespace medic::server {

namespace {

// The incident as a receiver sees it: the contract's fields (CONTRACT.md) that say what
// happened, without the long texts (diagnostics, remediation output, the timeline), which the
// dashboard link has.
Json IncidentPayload(const Incident& inc) {
  Json j = {{"incident_id", inc.incident_id},
            {"alarm_name", inc.alarm_name},
            {"alarm_description", inc.alarm_description},
            {"instance_id", inc.instance_id},
            {"status", std::string(StatusName(inc.status))},
            {"ai_suggestion", inc.ai_suggestion},
            {"action", inc.action},
            {"reason", inc.reason},
            {"created_at", FormatRfc3339(inc.created_at)},
            {"updated_at", FormatRfc3339(inc.updated_at)}};
  return j;
}

// At most `max` bytes of `s`, cut at a UTF-8 character boundary.
std::string Clip(std::string s, size_t max) {
  if (s.size() <= max) {
    return s;
  }
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) {
    --n;
  }
  s.resize(n);
  return s;
}

std::string Title(NotifyEvent e, const Json& inc, const std::string& outcome) {
  const std::string alarm = inc.value("alarm_name", "");
  const std::string host = inc.value("instance_id", "");
  switch (e) {
    case NotifyEvent::kIncidentOpened:
      return "Incident opened: " + alarm + " on " + host;
    case NotifyEvent::kApprovalNeeded:
      return "Approval needed: " + alarm + " on " + host;
    case NotifyEvent::kIncidentCompleted:
      return "Incident fixed: " + alarm + " on " + host;
    case NotifyEvent::kIncidentFailed:
      return "Incident " + outcome + ": " + alarm + " on " + host;
    case NotifyEvent::kBreakerOpen:
      return "Restart-loop breaker open: " + alarm + " on " + host;
  }
  return alarm + " on " + host;
}

// The suggested command as an operator reads it: "service.restart service=nginx".
std::string SuggestedCommand(const Json& inc) {
  const Json& action = inc.contains("action") ? inc["action"] : Json();
  if (!action.is_object() || !action.contains("name")) {
    return inc.value("ai_suggestion", "");
  }
  std::string out = action.value("name", "");
  if (action.contains("params") && action["params"].is_object()) {
    for (const auto& [k, v] : action["params"].items()) {
      out += " " + k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
    }
  }
  return out;
}

HttpRequest JsonPost(const ChannelConfig& channel, std::string body) {
  HttpRequest req;
  req.method = "POST";
  req.url = channel.url;
  req.headers.emplace_back("Content-Type", "application/json");
  req.body = std::move(body);
  req.timeout = channel.timeout;
  req.connect_timeout = std::min<Millis>(channel.timeout, Millis(5'000));
  req.max_body_bytes = 64 * 1024;  // a receiver's answer is read for its status only
  return req;
}

}  // namespace

std::optional<NotifyEvent> NotifyEventOf(std::string_view e) {
  if (e == "created") {
    return NotifyEvent::kIncidentOpened;
  }
  if (e == "awaiting_approval") {
    return NotifyEvent::kApprovalNeeded;
  }
  if (e == "completed") {
    return NotifyEvent::kIncidentCompleted;
  }
  if (e == "failed" || e == "timeout" || e == "rejected") {
    return NotifyEvent::kIncidentFailed;
  }
  if (e == "breaker_open") {
    return NotifyEvent::kBreakerOpen;
  }
  return std::nullopt;
}

std::string IdempotencyKey(const std::string& incident_id, size_t timeline_index,
                           NotifyEvent event, ChannelKind channel) {
  return incident_id + ":" + std::to_string(timeline_index) + ":" +
         std::string(NotifyEventName(event)) + ":" + std::string(ChannelName(channel));
}

std::vector<OutboxRecord> OutboxRowsFor(const Incident& inc, const NotificationsConfig& config,
                                        ChannelKind kind, WallTime since, WallTime now) {
  std::vector<OutboxRecord> rows;
  const ChannelConfig* channel = config.Find(kind);
  if (channel == nullptr) {
    return rows;
  }
  for (size_t i = 0; i < inc.timeline.size(); ++i) {
    const TimelineEntry& entry = inc.timeline[i];
    const std::optional<NotifyEvent> event = NotifyEventOf(entry.event);
    if (!event || channel->events.count(*event) == 0 || entry.timestamp < since) {
      continue;
    }
    OutboxRecord r;
    r.key = IdempotencyKey(inc.incident_id, i, *event, kind);
    r.channel = std::string(ChannelName(kind));
    r.event = std::string(NotifyEventName(*event));
    r.incident_id = inc.incident_id;
    r.payload = DumpJson(Json{{"event", r.event},
                              {"outcome", entry.event},
                              {"detail", entry.detail},
                              {"at", FormatRfc3339(entry.timestamp)},
                              {"incident", IncidentPayload(inc)}});
    r.state = OutboxState::kPending;
    r.created_at = entry.timestamp;
    r.next_attempt_at = now;
    rows.push_back(std::move(r));
  }
  return rows;
}

std::string IncidentLink(std::string_view dashboard_url, std::string_view incident_id) {
  if (dashboard_url.empty()) {
    return "";
  }
  return std::string(dashboard_url) + "/#/incident/" + std::string(incident_id);
}

std::string SlackEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string WebhookSignature(std::string_view secret, std::string_view timestamp,
                             std::string_view body) {
  std::string signed_text;
  signed_text.reserve(timestamp.size() + 1 + body.size());
  signed_text.append(timestamp);
  signed_text += '.';
  signed_text.append(body);
  return "sha256=" + HmacSha256Hex(secret, signed_text);
}

Result<HttpRequest> RenderNotification(const ChannelConfig& channel,
                                       const NotificationsConfig& config, const OutboxRecord& row,
                                       WallTime now) {
  auto parsed = ParseJson(row.payload);
  if (!parsed || !parsed->is_object() || !(*parsed)["incident"].is_object()) {
    return InvalidArgument("notification " + row.key + ": the stored payload is not one medic "
                           "wrote");
  }
  const Json& p = *parsed;
  const Json& inc = p["incident"];
  const auto event = ParseNotifyEvent(row.event);
  if (!event) {
    return InvalidArgument("notification " + row.key + ": unknown event '" + row.event + "'");
  }
  const std::string id = inc.value("incident_id", "");
  const std::string link = IncidentLink(config.dashboard_url, id);
  const std::string outcome = p.value("outcome", "");
  const std::string title = Title(*event, inc, outcome);
  const std::string command = SuggestedCommand(inc);

  switch (channel.kind) {
    case ChannelKind::kWebhook: {
      const std::string ts =
          std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                             now.time_since_epoch()).count());
      Json body = {{"event", row.event},
                   {"idempotency_key", row.key},
                   {"outcome", outcome},
                   {"detail", p.value("detail", "")},
                   {"at", p.value("at", "")},
                   {"incident", inc},
                   {"dashboard_url", link},
                   {"sent_at", FormatRfc3339(now)}};
      HttpRequest req = JsonPost(channel, DumpJson(body));
      req.headers.emplace_back("X-Medic-Event", row.event);
      req.headers.emplace_back("X-Medic-Timestamp", ts);
      req.headers.emplace_back("X-Medic-Signature", WebhookSignature(channel.secret, ts, req.body));
      req.headers.emplace_back("Idempotency-Key", row.key);
      return req;
    }
    case ChannelKind::kSlack: {
      std::string text = "*" + SlackEscape(title) + "*\n";
      text += "*Alarm:* " + SlackEscape(inc.value("alarm_name", "")) + "\n";
      text += "*Host:* " + SlackEscape(inc.value("instance_id", "")) + "\n";
      text += "*Status:* " + SlackEscape(inc.value("status", "")) + "\n";
      if (!command.empty()) {
        text += "*Suggested command:* `" + SlackEscape(command) + "`\n";
      }
      if (const std::string reason = inc.value("reason", "");
          *event == NotifyEvent::kIncidentFailed && !reason.empty()) {
        text += "*Reason:* " + SlackEscape(reason) + "\n";
      }
      if (*event == NotifyEvent::kBreakerOpen && !p.value("detail", "").empty()) {
        text += SlackEscape(p.value("detail", "")) + "\n";
      }
      if (!link.empty()) {
        // The link is ours (the configured dashboard and an incident id medic made): not escaped
        // as text, but its '|' and '>' would end the link early.
        text += "<" + link + "|Open " + SlackEscape(id) + " in medic>";
      }
      text = Clip(text, 2900);  // a section's text holds 3000 characters
      Json blocks = Json::array();
      blocks.push_back({{"type", "section"}, {"text", {{"type", "mrkdwn"}, {"text", text}}}});
      if (*event == NotifyEvent::kApprovalNeeded && channel.buttons) {
        blocks.push_back(
            {{"type", "actions"},
             {"block_id", "medic_incident"},
             {"elements",
              Json::array({{{"type", "button"},
                            {"action_id", "medic_approve"},
                            {"style", "primary"},
                            {"text", {{"type", "plain_text"}, {"text", "Approve"}}},
                            {"value", id}},
                           {{"type", "button"},
                            {"action_id", "medic_reject"},
                            {"style", "danger"},
                            {"text", {{"type", "plain_text"}, {"text", "Reject"}}},
                            {"value", id}}})}});
      }
      Json body = {{"text", SlackEscape(title)}, {"blocks", blocks}};
      HttpRequest req = JsonPost(channel, DumpJson(body));
      req.headers.emplace_back("Idempotency-Key", row.key);
      return req;
    }
    case ChannelKind::kPagerDuty: {
      // Resolved when the incident is fixed or an operator rejected the fix (a human decided);
      // a failure or a timeout keeps the alert triggered (updated), for a human to look.
      const bool resolve = *event == NotifyEvent::kIncidentCompleted ||
                           (*event == NotifyEvent::kIncidentFailed && outcome == "rejected");
      Json body = {{"routing_key", channel.routing_key},
                   {"event_action", resolve ? "resolve" : "trigger"},
                   {"dedup_key", Clip(id, 255)},
                   {"client", "medic"}};
      if (!link.empty()) {
        body["client_url"] = link;
        body["links"] = Json::array({{{"href", link}, {"text", "Incident " + id + " in medic"}}});
      }
      if (!resolve) {
        body["payload"] = {{"summary", Clip(title, 1024)},
                           {"source", inc.value("instance_id", "")},
                           {"severity", channel.severity},
                           {"timestamp", p.value("at", "")},
                           {"component", inc.value("alarm_name", "")},
                           {"class", row.event},
                           {"custom_details",
                            {{"event", row.event},
                             {"outcome", outcome},
                             {"status", inc.value("status", "")},
                             {"suggested_command", command},
                             {"reason", inc.value("reason", "")},
                             {"idempotency_key", row.key}}}};
      }
      HttpRequest req = JsonPost(channel, DumpJson(body));
      req.headers.emplace_back("Idempotency-Key", row.key);
      return req;
    }
  }
  return InvalidArgument("unknown channel");
}

}  // namespace medic::server
