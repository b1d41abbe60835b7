#pragma once

// Amazon SNS HTTP(S) deliveries and the CloudWatch alarm messages they carry, as pure functions
// on text: parsing the envelope, the string SNS signs, the checks on the URLs it names, and the
// mapping of a CloudWatch alarm state change to medic's alarm and host (docs/integrations/sns.md).
// No network and no crypto here: sns_verify.h checks signatures, sns_ingest.h puts it together.

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "core/clock.h"
#include "core/result.h"
#include "server/ingest/alert_sink.h"
#include "server/ingest/sns_config.h"

namespace medic::server {

enum class SnsType { kNotification, kSubscriptionConfirmation, kUnsubscribeConfirmation };

std::string_view SnsTypeName(SnsType type);

// One delivery's JSON body, the fields medic reads (all strings, as SNS sends them).
struct SnsMessage {
  SnsType type = SnsType::kNotification;
  std::string message_id;
  std::string topic_arn;
  std::optional<std::string> subject;  // Notification only, when the publisher set one
  std::string message;
  std::string timestamp;
  std::string signature_version;  // "1" (SHA1withRSA) or "2" (SHA256withRSA)
  std::string signature;          // base64
  std::string signing_cert_url;
  std::string subscribe_url;  // the confirmations only
  std::string token;          // the confirmations only
};

// Parses the body. InvalidArgument naming the problem: not a JSON object, an unknown Type, a
// field this type needs missing or not a string.
Result<SnsMessage> ParseSnsMessage(std::string_view body);

// The string SNS signs: for a Notification, Message, MessageId, Subject (only if present),
// Timestamp, TopicArn, Type; for the confirmations, Message, MessageId, SubscribeURL,
// Timestamp, Token, TopicArn, Type; each as "Name\nvalue\n".
std::string SnsStringToSign(const SnsMessage& message);

// OK when `url` is https:// and its host (lower-cased, without the port) matches `host_pattern`
// (an ECMAScript regular expression, whole match). PermissionDenied naming the problem otherwise:
// another scheme, user information in the URL, a host that does not match.
Status CheckSnsUrl(std::string_view url, const std::string& host_pattern);

// The fields of a CloudWatch alarm state change that medic uses (the JSON in a Notification's
// Message when an alarm action publishes to the topic).
struct CloudWatchAlarm {
  std::string alarm_name;
  std::string alarm_description;
  std::string account_id;
  std::string region;
  std::string alarm_arn;
  std::string new_state;  // ALARM | OK | INSUFFICIENT_DATA
  std::string old_state;
  std::string reason;
  std::string state_change_time;  // "2026-12-07T01:02:03.456+0000"
  std::string metric_name;
  std::string metric_namespace;
  std::map<std::string, std::string> dimensions;  // name -> value ("InstanceId" -> "i-0abc…")
};

// NotFound when `message` is not a CloudWatch alarm state change (not JSON, or no AlarmName and
// NewStateValue): some other publisher's text. InvalidArgument when it looks like one but a field
// has the wrong type.
Result<CloudWatchAlarm> ParseCloudWatchAlarm(std::string_view message);

// CloudWatch's "2026-12-07T01:02:03.456+0000" (or RFC 3339) as a time.
Result<WallTime> ParseCloudWatchTime(std::string_view text);

// Finds the medic host of an EC2 instance id other than through the config's `instances` (for
// example from what hosts are known to run on); nullopt when it knows none. May be null.
using InstanceHostLookup =
    std::function<std::optional<std::string>(const std::string& instance_id)>;

// Why an alarm could not become an ExternalAlert, for AlertSink::RecordUnmapped.
struct SnsUnmapped {
  std::string summary;  // "AlarmName=web-cpu InstanceId=i-0abc state=ALARM"
  std::string why;
};

// The alert for `alarm`: alarm name through config.alarms, host through the InstanceId
// dimension (config.instances, then `lookup`) or AutoScalingGroupName
// (config.auto_scaling_groups); ALARM is firing, OK resolved. INSUFFICIENT_DATA, or no host:
// SnsUnmapped. `fallback_time` (the delivery's Timestamp) when StateChangeTime is missing or bad.
std::variant<ExternalAlert, SnsUnmapped> MapCloudWatchAlarm(const CloudWatchAlarm& alarm,
                                                            const SnsConfig& config,
                                                            const InstanceHostLookup& lookup,
                                                            WallTime fallback_time);

}  // namespace medic::server
