#pragma once

// The `slack:` section of the server config: the Slack app whose interaction callbacks
// (POST /api/v1/ingest/slack, the Approve and Reject buttons of a notification) medic accepts,
// and which medic identity each Slack user acts as (docs/integrations/slack.md).
//
//   slack:
//     signing_secret_file: /etc/medic/slack-signing-secret   # or signing_secret: "…"
//     team_id: T0123ABCD            # optional: callbacks from other workspaces are refused
//     users:                        # Slack user id -> medic token name (its principal)
//       U0123ABC: alice
//       U0456DEF: bob
//
// A Slack user acts with the role its token has when the button is pressed (a revoked token:
// nothing); the section grants no role itself.

#include <map>
#include <string>

#include "core/result.h"

namespace YAML {
class Node;
}

namespace medic::server {

struct SlackConfig {
  // The app's signing secret (Slack: Basic Information, App Credentials). Empty: Slack
  // interactivity is off and the route answers 404.
  std::string signing_secret;
  // The workspace (team.id) callbacks must come from; empty: any the app is installed in.
  std::string team_id;
  // Slack user id ("U0123ABC") -> medic token name ("alice").
  std::map<std::string, std::string> users;

  bool enabled() const { return !signing_secret.empty(); }
};

// Applies the `slack:` mapping. Exactly one of signing_secret and signing_secret_file (a path,
// relative to the config file's folder unless absolute; surrounding whitespace is dropped) must
// be given; the secret must be 16 to 256 printable characters without spaces. User ids must look
// like Slack's ([UW] then 2..31 of [A-Z0-9]), token names like medic's (1-64 of
// [A-Za-z0-9._-]). Unknown keys and wrong types are errors naming file, line and key.
Status ParseSlackYaml(const YAML::Node& node, const std::string& file, SlackConfig& config);

// A Slack user id as Slack writes one: 'U' or 'W', then 2..31 of [A-Z0-9].
bool IsSlackUserId(std::string_view id);

}  // namespace medic::server
