#pragma once

// What a Slack interaction callback says (docs/integrations/slack.md): Slack POSTs
// `application/x-www-form-urlencoded` with one field, `payload`, a JSON object. For a button
// press it is a `block_actions` payload; medic reads the user, the team, the first action and
// the response_url, and nothing else.

#include <map>
#include <string>
#include <string_view>

#include "core/result.h"

namespace medic::server {

// The Approve and Reject buttons of a notification (server/notify/, docs/INTEGRATIONS.md): an
// `actions` block with this block_id, each button's value the incident id.
inline constexpr std::string_view kSlackBlockId = "medic_incident";
inline constexpr std::string_view kSlackApproveAction = "medic_approve";
inline constexpr std::string_view kSlackRejectAction = "medic_reject";

// Decodes an application/x-www-form-urlencoded body ("a=1&b=x%20y+z"): '+' is a space, %XX a
// byte. InvalidArgument for a malformed escape ('%' not followed by two hex digits), a field
// without '=', an empty name or a name given twice. Empty pieces ("a=1&&b=2") are skipped.
Result<std::map<std::string, std::string>> ParseFormUrlEncoded(std::string_view body);

struct SlackInteraction {
  std::string type;       // "block_actions", "view_submission", "shortcut", …
  std::string user_id;    // "U0123ABC"
  std::string user_name;  // Slack's username, informational (may be empty)
  std::string team_id;    // "T0123ABC" (may be empty, e.g. for org-wide apps)
  // The first action of a block_actions payload (empty otherwise).
  std::string action_id;
  std::string block_id;
  std::string value;
  std::string response_url;  // informational (may be empty)
};

// Parses the form body into what medic reads. InvalidArgument, naming the problem, when the body
// has no `payload` field, the payload is not a JSON object, `type` is missing, the user id is
// missing or malformed, a field has the wrong type or is longer than its limit (ids 64 bytes,
// the value 256, names and URLs 1024), or a block_actions payload has no action.
Result<SlackInteraction> ParseSlackInteraction(std::string_view body);

}  // namespace medic::server
