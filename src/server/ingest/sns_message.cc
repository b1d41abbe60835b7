#include "server/ingest/sns_message.h"

#include <algorithm>
#include <cctype>
#include <regex>

#include "core/json.h"

namespace medic::server {

namespace {

// Longest field medic keeps from a CloudWatch message (the reason can be long; the record needs
// a line).
constexpr size_t kMaxReasonBytes = 1024;
constexpr size_t kMaxDescriptionBytes = 4096;

Result<std::string> Field(const Json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_string()) {
    return InvalidArgument(std::string("SNS message: field '") + key + "' (a string) is required");
  }
  return it->get<std::string>();
}

// A string field that CloudWatch may send as null or leave out: "" then.
Result<std::string> LooseString(const Json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return std::string();
  }
  if (!it->is_string()) {
    return InvalidArgument(std::string("CloudWatch alarm: field '") + key + "' must be a string");
  }
  return it->get<std::string>();
}

std::string Cut(std::string s, size_t max) {
  if (s.size() > max) {
    s.resize(max);
  }
  return s;
}

// One line: newlines become spaces.
std::string OneLine(std::string s) {
  std::replace_if(
      s.begin(), s.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
  return s;
}

}  // namespace

std::string_view SnsTypeName(SnsType type) {
  switch (type) {
    case SnsType::kNotification:
      return "Notification";
    case SnsType::kSubscriptionConfirmation:
      return "SubscriptionConfirmation";
    case SnsType::kUnsubscribeConfirmation:
      return "UnsubscribeConfirmation";
  }
  return "?";
}

Result<SnsMessage> ParseSnsMessage(std::string_view body) {
  auto parsed = ParseJsonObject(body);
  if (!parsed) {
    return InvalidArgument("SNS message: " + parsed.error().message);
  }
  const Json& obj = *parsed;
  SnsMessage m;
  ASSIGN_OR_RETURN(std::string type, Field(obj, "Type"));
  if (type == "Notification") {
    m.type = SnsType::kNotification;
  } else if (type == "SubscriptionConfirmation") {
    m.type = SnsType::kSubscriptionConfirmation;
  } else if (type == "UnsubscribeConfirmation") {
    m.type = SnsType::kUnsubscribeConfirmation;
  } else {
    return InvalidArgument("SNS message: unknown Type '" + Cut(type, 64) +
                           "' (Notification, SubscriptionConfirmation, UnsubscribeConfirmation)");
  }
  ASSIGN_OR_RETURN(m.message_id, Field(obj, "MessageId"));
  ASSIGN_OR_RETURN(m.topic_arn, Field(obj, "TopicArn"));
  ASSIGN_OR_RETURN(m.message, Field(obj, "Message"));
  ASSIGN_OR_RETURN(m.timestamp, Field(obj, "Timestamp"));
  ASSIGN_OR_RETURN(m.signature_version, Field(obj, "SignatureVersion"));
  ASSIGN_OR_RETURN(m.signature, Field(obj, "Signature"));
  ASSIGN_OR_RETURN(m.signing_cert_url, Field(obj, "SigningCertURL"));
  if (m.type == SnsType::kNotification) {
    if (auto it = obj.find("Subject"); it != obj.end() && !it->is_null()) {
      if (!it->is_string()) {
        return InvalidArgument("SNS message: field 'Subject' must be a string");
      }
      m.subject = it->get<std::string>();
    }
  } else {
    ASSIGN_OR_RETURN(m.subscribe_url, Field(obj, "SubscribeURL"));
    ASSIGN_OR_RETURN(m.token, Field(obj, "Token"));
  }
  return m;
}

std::string SnsStringToSign(const SnsMessage& m) {
  std::string out;
  auto add = [&out](std::string_view name, std::string_view value) {
    out.append(name).append("\n").append(value).append("\n");
  };
  add("Message", m.message);
  add("MessageId", m.message_id);
  if (m.type == SnsType::kNotification) {
    if (m.subject) {
      add("Subject", *m.subject);
    }
    add("Timestamp", m.timestamp);
    add("TopicArn", m.topic_arn);
    add("Type", SnsTypeName(m.type));
  } else {
    add("SubscribeURL", m.subscribe_url);
    add("Timestamp", m.timestamp);
    add("Token", m.token);
    add("TopicArn", m.topic_arn);
    add("Type", SnsTypeName(m.type));
  }
  return out;
}

Status CheckSnsUrl(std::string_view url, const std::string& host_pattern) {
  constexpr std::string_view kScheme = "https://";
  const std::string shown(url.substr(0, 200));
  if (url.size() > 2048 || url.size() <= kScheme.size() ||
      !std::equal(kScheme.begin(), kScheme.end(), url.begin(), [](char a, char b) {
        return a == std::tolower(static_cast<unsigned char>(b));
      })) {
    return PermissionDenied("'" + shown + "' is not an https:// URL");
  }
  std::string_view rest = url.substr(kScheme.size());
  const std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  if (authority.find('@') != std::string_view::npos ||
      authority.find('\\') != std::string_view::npos) {
    return PermissionDenied("'" + shown + "' carries user information");
  }
  std::string_view host = authority;
  if (const size_t colon = host.rfind(':'); colon != std::string_view::npos) {
    const std::string_view port = host.substr(colon + 1);
    if (port.empty() || port.size() > 5 ||
        port.find_first_not_of("0123456789") != std::string_view::npos) {
      return PermissionDenied("'" + shown + "' has a malformed port");
    }
    host = host.substr(0, colon);
  }
  std::string lower(host);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  bool match = false;
  try {
    match = !lower.empty() && std::regex_match(lower, std::regex(host_pattern));
  } catch (const std::regex_error&) {
    match = false;  // ParseSnsConfig compiled it; a pattern built by hand may not
  }
  if (!match) {
    return PermissionDenied("the host '" + lower.substr(0, 100) + "' of '" + shown +
                            "' is not an SNS host (" + host_pattern + ")");
  }
  return OkStatus();
}

Result<CloudWatchAlarm> ParseCloudWatchAlarm(std::string_view message) {
  auto parsed = ParseJsonObject(message);
  if (!parsed || !parsed->contains("AlarmName") || !parsed->contains("NewStateValue")) {
    return NotFound("the message is not a CloudWatch alarm state change");
  }
  const Json& obj = *parsed;
  CloudWatchAlarm a;
  ASSIGN_OR_RETURN(a.alarm_name, LooseString(obj, "AlarmName"));
  ASSIGN_OR_RETURN(a.new_state, LooseString(obj, "NewStateValue"));
  if (a.alarm_name.empty() || a.new_state.empty()) {
    return InvalidArgument("CloudWatch alarm: AlarmName and NewStateValue must not be empty");
  }
  ASSIGN_OR_RETURN(a.alarm_description, LooseString(obj, "AlarmDescription"));
  ASSIGN_OR_RETURN(a.account_id, LooseString(obj, "AWSAccountId"));
  ASSIGN_OR_RETURN(a.region, LooseString(obj, "Region"));
  ASSIGN_OR_RETURN(a.alarm_arn, LooseString(obj, "AlarmArn"));
  ASSIGN_OR_RETURN(a.old_state, LooseString(obj, "OldStateValue"));
  ASSIGN_OR_RETURN(a.reason, LooseString(obj, "NewStateReason"));
  ASSIGN_OR_RETURN(a.state_change_time, LooseString(obj, "StateChangeTime"));
  const Json& trigger = FieldOrNull(obj, "Trigger");
  if (!trigger.is_null() && !trigger.is_object()) {
    return InvalidArgument("CloudWatch alarm: Trigger must be an object");
  }
  if (trigger.is_object()) {
    ASSIGN_OR_RETURN(a.metric_name, LooseString(trigger, "MetricName"));
    ASSIGN_OR_RETURN(a.metric_namespace, LooseString(trigger, "Namespace"));
    const Json& dims = FieldOrNull(trigger, "Dimensions");
    if (!dims.is_null() && !dims.is_array()) {
      return InvalidArgument("CloudWatch alarm: Trigger.Dimensions must be a list");
    }
    if (dims.is_array()) {
      for (const Json& d : dims) {
        // CloudWatch writes {"value": …, "name": …} in alarm messages; the API's own spelling
        // (Name, Value) is accepted too.
        std::string name = StringOr(d, "name", StringOr(d, "Name"));
        std::string value = StringOr(d, "value", StringOr(d, "Value"));
        if (name.empty()) {
          return InvalidArgument("CloudWatch alarm: a dimension without a name");
        }
        a.dimensions[Cut(std::move(name), 255)] = Cut(std::move(value), 1024);
      }
    }
  }
  return a;
}

Result<WallTime> ParseCloudWatchTime(std::string_view text) {
  std::string s(text);
  // "+0000" -> "+00:00": RFC 3339 wants the colon.
  if (s.size() > 5) {
    const size_t sign = s.size() - 5;
    if ((s[sign] == '+' || s[sign] == '-') &&
        s.find_first_not_of("0123456789", sign + 1) == std::string::npos) {
      s.insert(s.size() - 2, ":");
    }
  }
  return ParseRfc3339(s);
}

std::variant<ExternalAlert, SnsUnmapped> MapCloudWatchAlarm(const CloudWatchAlarm& alarm,
                                                            const SnsConfig& config,
                                                            const InstanceHostLookup& lookup,
                                                            WallTime fallback_time) {
  std::string summary = "AlarmName=" + alarm.alarm_name;
  for (const auto& [name, value] : alarm.dimensions) {
    summary += " " + name + "=" + value;
  }
  summary += " state=" + alarm.new_state;
  if (alarm.new_state != "ALARM" && alarm.new_state != "OK") {
    return SnsUnmapped{summary,
                       "state " + alarm.new_state + ": only ALARM and OK change a medic alarm"};
  }
  std::string host;
  std::string why = "no InstanceId or AutoScalingGroupName dimension to find the host by";
  if (auto it = alarm.dimensions.find("InstanceId"); it != alarm.dimensions.end()) {
    if (auto m = config.instances.find(it->second); m != config.instances.end()) {
      host = m->second;
    } else if (auto found = lookup ? lookup(it->second) : std::nullopt; found) {
      host = *found;
    } else {
      why = "instance " + it->second + " is not in ingest.sns.instances";
    }
  }
  if (host.empty()) {
    if (auto it = alarm.dimensions.find("AutoScalingGroupName"); it != alarm.dimensions.end()) {
      if (auto m = config.auto_scaling_groups.find(it->second);
          m != config.auto_scaling_groups.end()) {
        host = m->second;
      } else {
        why = "auto scaling group " + it->second + " is not in ingest.sns.auto_scaling_groups";
      }
    }
  }
  if (host.empty()) {
    return SnsUnmapped{summary, why};
  }
  ExternalAlert out;
  out.source = "sns";
  auto mapped = config.alarms.find(alarm.alarm_name);
  out.alarm = mapped != config.alarms.end() ? mapped->second : alarm.alarm_name;
  out.host = host;
  out.firing = alarm.new_state == "ALARM";
  out.reason = Cut(OneLine("CloudWatch: " + alarm.reason), kMaxReasonBytes);
  out.description = Cut(alarm.alarm_description, kMaxDescriptionBytes);
  auto at = ParseCloudWatchTime(alarm.state_change_time);
  out.at = at ? *at : fallback_time;
  out.key = !alarm.alarm_arn.empty() ? alarm.alarm_arn
                                     : "cloudwatch:" + alarm.account_id + ":" + alarm.alarm_name;
  out.labels = alarm.dimensions;
  out.labels["AlarmName"] = alarm.alarm_name;
  if (!alarm.account_id.empty()) {
    out.labels["AWSAccountId"] = alarm.account_id;
  }
  if (!alarm.region.empty()) {
    out.labels["Region"] = alarm.region;
  }
  if (!alarm.metric_name.empty()) {
    out.labels["MetricName"] = alarm.metric_name;
  }
  if (!alarm.metric_namespace.empty()) {
    out.labels["Namespace"] = alarm.metric_namespace;
  }
  return out;
}

}  // namespace medic::server
