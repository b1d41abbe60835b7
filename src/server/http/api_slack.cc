// POST /api/v1/ingest/slack: Slack's interaction callbacks, the Approve and Reject buttons of a
// notification (docs/integrations/slack.md). Authenticated by Slack's signing secret, not by a
// bearer token; the Slack user acts as the medic token it is mapped to, with that token's role
// now.

#include <memory>

#include "core/display.h"
#include "core/log.h"
#include "server/http/api_util.h"
#include "server/http/routes.h"
#include "server/ingest/slack_interaction.h"
#include "server/ingest/slack_verify.h"

namespace medic::server {

namespace {

// Slack's "text" is mrkdwn: &, < and > must be escaped.
std::string SlackEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

// What Slack shows the user who pressed the button, only to them; the message stays.
ApiResponse SlackReply(const std::string& text) {
  return JsonResponse(200, Json{{"response_type", "ephemeral"},
                                {"replace_original", false},
                                {"text", SlackEscape(text)}});
}

// A refusal of the request itself (signature, timestamp, replay): no WWW-Authenticate, as no
// bearer token would help.
ApiResponse Refuse(const Error& e) {
  const int status = HttpStatusFor(e.code);
  return JsonResponse(status, Json{{"error", e.message}});
}

bool IsIncidentId(std::string_view id) {
  if (id.empty() || id.size() > 128) {
    return false;
  }
  for (const char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) {
      return false;
    }
  }
  return true;
}

struct SlackHandler {
  const Clock& clock;
  Store& store;
  IncidentManager& incidents;
  const TokenRegistry& tokens;
  SlackConfig config;
  std::unique_ptr<SlackVerifier> verifier;  // null when Slack is not configured

  // A pressed button that medic does not act on for this user: written to the audit log (the
  // request was Slack's, so only Slack users reach this) and told to the user.
  ApiResponse RefuseUser(const SlackInteraction& in, const std::string& reason) {
    Audit(store, clock, "slack:" + in.user_id, "slack.refused",
          DumpJson(Json{{"slack_user", in.user_id},
                        {"team_id", in.team_id},
                        {"action_id", in.action_id},
                        {"incident_id", in.value},
                        {"reason", reason}}));
    return SlackReply("medic did not act: " + reason);
  }

  void operator()(ApiRequest& req, Responder respond) {
    if (!verifier) {
      return respond(ErrorResponse(
          404, "Slack interactivity is not configured (the slack: section's signing_secret)"));
    }
    if (Status s = verifier->Verify(req.slack_timestamp, req.slack_signature, req.body); !s) {
      LogWarn("slack: refused a request from " + SanitizeForLogLine(req.peer) + ": " +
              s.error().message);
      return respond(Refuse(s.error()));
    }
    if (req.content_type.rfind("application/x-www-form-urlencoded", 0) != 0) {
      return respond(ErrorResponse(
          415, "Content-Type must be application/x-www-form-urlencoded (payload=<JSON>)"));
    }
    auto in = ParseSlackInteraction(req.body);
    if (!in) {
      return respond(ErrorResponse(in.error()));
    }
    const bool approve = in->action_id == kSlackApproveAction;
    if (in->type != "block_actions" || (!approve && in->action_id != kSlackRejectAction)) {
      LogInfo("slack: ignored a " + SanitizeForLogLine(in->type.substr(0, 64)) +
              " interaction (action '" + SanitizeForLogLine(in->action_id.substr(0, 64)) +
              "') of " + in->user_id);
      return respond(JsonResponse(200, Json::object()));
    }
    if (!config.team_id.empty() && in->team_id != config.team_id) {
      return respond(RefuseUser(*in, "this Slack workspace (" + in->team_id.substr(0, 64) +
                                         ") is not the one medic is configured for"));
    }
    const auto mapped = config.users.find(in->user_id);
    if (mapped == config.users.end()) {
      return respond(RefuseUser(*in, "Slack user " + in->user_id +
                                         " is not mapped to a medic identity (slack.users)"));
    }
    const std::string& actor = mapped->second;
    const std::optional<Principal> principal = tokens.FindByName(actor);
    if (!principal) {
      return respond(RefuseUser(*in, "the medic token '" + actor + "' of Slack user " +
                                         in->user_id + " does not exist or was revoked"));
    }
    if (!Allows(principal->role, Role::kOperator)) {
      return respond(RefuseUser(
          *in, std::string(RoleName(principal->role)) + " '" + actor +
                   "' may not approve or reject (needs operator)"));
    }
    if (!IsIncidentId(in->value)) {
      return respond(RefuseUser(*in, "the button carries no incident id"));
    }
    const std::string& id = in->value;
    const std::string comment = "via Slack (" + in->user_id + ")";
    if (!approve) {
      auto inc = incidents.Reject(id, actor, comment);
      if (!inc) {
        return respond(SlackReply("Not rejected: " + inc.error().message));
      }
      return respond(SlackReply("Rejected by " + actor + ": " + inc->ai_suggestion + " on " +
                                inc->instance_id + " (" + id + ", " + inc->alarm_name +
                                "). Nothing runs."));
    }
    // What the message showed: an incident's proposal never changes while it waits (a fresh
    // decision is a fresh incident, with another id: docs/INCIDENTS.md), so the incident's
    // current action_hash is the one of the proposal in the message.
    auto stored = store.GetIncident(id);
    if (!stored) {
      return respond(SlackReply("Not approved: " + stored.error().message));
    }
    auto inc = incidents.Approve(id, actor, ActionHash(*stored), comment);
    if (!inc) {
      return respond(SlackReply("Not approved: " + inc.error().message));
    }
    respond(SlackReply("Approved by " + actor + ": " + inc->ai_suggestion + " runs on " +
                       inc->instance_id + " (" + id + ", " + inc->alarm_name + ")."));
  }
};

}  // namespace

void AddSlackRoutes(Router& router, SlackRoutesDeps deps) {
  auto handler = std::make_shared<SlackHandler>(SlackHandler{
      deps.clock, deps.store, deps.incidents, deps.tokens, deps.config, nullptr});
  if (deps.config.enabled()) {
    handler->verifier =
        std::make_unique<SlackVerifier>(deps.config.signing_secret, deps.clock);
  }
  Route route{"POST", "/api/v1/ingest/slack", Role::kPublic,
              "Slack's interactivity request URL: the Approve and Reject buttons "
              "(form-encoded payload=<JSON>, signed with the Slack app's signing secret; "
              "docs/integrations/slack.md)",
              [handler](ApiRequest& req, Responder respond) { (*handler)(req, std::move(respond)); }};
  route.max_body_bytes = kDefaultMaxBodyBytes;
  router.Add(std::move(route));
}

}  // namespace medic::server
