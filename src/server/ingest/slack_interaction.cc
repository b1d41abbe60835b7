#include "server/ingest/slack_interaction.h"

#include "core/json.h"
#include "server/ingest/slack_config.h"

namespace medic::server {

namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Result<std::string> Decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out.push_back(' ');
    } else if (s[i] == '%') {
      if (i + 2 >= s.size() || HexValue(s[i + 1]) < 0 || HexValue(s[i + 2]) < 0) {
        return InvalidArgument("malformed percent-escape at byte " + std::to_string(i) +
                               " of the form body");
      }
      out.push_back(static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// The string at `key` of `obj` ("" when absent or null); InvalidArgument when it is another type
// or longer than `max`.
Result<std::string> StringField(const Json& obj, const char* key, size_t max,
                                const std::string& where) {
  if (!obj.is_object()) {
    return std::string();
  }
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return std::string();
  }
  if (!it->is_string()) {
    return InvalidArgument("payload " + where + key + " must be a string");
  }
  const std::string& s = it->get_ref<const std::string&>();
  if (s.size() > max) {
    return InvalidArgument("payload " + where + key + " is longer than " + std::to_string(max) +
                           " bytes");
  }
  return s;
}

// The object at `key` of `obj` (null Json when absent); InvalidArgument when not an object.
Result<Json> ObjectField(const Json& obj, const char* key) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return Json();
  }
  if (!it->is_object()) {
    return InvalidArgument(std::string("payload ") + key + " must be an object");
  }
  return *it;
}

}  // namespace

Result<std::map<std::string, std::string>> ParseFormUrlEncoded(std::string_view body) {
  std::map<std::string, std::string> out;
  size_t pos = 0;
  while (pos <= body.size()) {
    size_t amp = body.find('&', pos);
    if (amp == std::string_view::npos) {
      amp = body.size();
    }
    const std::string_view part = body.substr(pos, amp - pos);
    pos = amp + 1;
    if (part.empty()) {
      continue;
    }
    const size_t eq = part.find('=');
    if (eq == std::string_view::npos) {
      return InvalidArgument("form field without '=' in the body");
    }
    ASSIGN_OR_RETURN(std::string name, Decode(part.substr(0, eq)));
    ASSIGN_OR_RETURN(std::string value, Decode(part.substr(eq + 1)));
    if (name.empty()) {
      return InvalidArgument("form field with an empty name in the body");
    }
    if (!out.emplace(std::move(name), std::move(value)).second) {
      return InvalidArgument("a form field appears twice in the body");
    }
  }
  return out;
}

Result<SlackInteraction> ParseSlackInteraction(std::string_view body) {
  ASSIGN_OR_RETURN(auto form, ParseFormUrlEncoded(body));
  const auto it = form.find("payload");
  if (it == form.end()) {
    return InvalidArgument("the body has no 'payload' field (Slack sends payload=<JSON>)");
  }
  auto parsed = ParseJson(it->second);
  if (!parsed) {
    return InvalidArgument("payload is not JSON: " + parsed.error().message);
  }
  const Json& p = *parsed;
  if (!p.is_object()) {
    return InvalidArgument("payload must be a JSON object");
  }
  SlackInteraction out;
  ASSIGN_OR_RETURN(out.type, StringField(p, "type", 64, ""));
  if (out.type.empty()) {
    return InvalidArgument("payload type is missing");
  }
  ASSIGN_OR_RETURN(const Json user, ObjectField(p, "user"));
  ASSIGN_OR_RETURN(out.user_id, StringField(user, "id", 64, "user."));
  if (!IsSlackUserId(out.user_id)) {
    return InvalidArgument("payload user.id is missing or not a Slack user id");
  }
  ASSIGN_OR_RETURN(out.user_name, StringField(user, "username", 1024, "user."));
  ASSIGN_OR_RETURN(const Json team, ObjectField(p, "team"));
  ASSIGN_OR_RETURN(out.team_id, StringField(team, "id", 64, "team."));
  ASSIGN_OR_RETURN(out.response_url, StringField(p, "response_url", 1024, ""));
  if (out.type != "block_actions") {
    return out;
  }
  const auto actions = p.find("actions");
  if (actions == p.end() || !actions->is_array() || actions->empty()) {
    return InvalidArgument("payload actions must be a non-empty list for block_actions");
  }
  const Json& first = (*actions)[0];
  if (!first.is_object()) {
    return InvalidArgument("payload actions[0] must be an object");
  }
  ASSIGN_OR_RETURN(out.action_id, StringField(first, "action_id", 255, "actions[0]."));
  ASSIGN_OR_RETURN(out.block_id, StringField(first, "block_id", 255, "actions[0]."));
  ASSIGN_OR_RETURN(out.value, StringField(first, "value", 256, "actions[0]."));
  return out;
}

}  // namespace medic::server
