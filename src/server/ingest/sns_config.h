#pragma once

// The `ingest.sns` section of the server config: which SNS topics medic accepts deliveries from,
// where signing certificates may come from, and how a CloudWatch alarm maps to a medic alarm and
// host (docs/integrations/sns.md).
//
//   ingest:
//     sns:
//       topics: [arn:aws:sns:eu-west-1:123456789012:medic-alarms]   # required to accept anything
//       alarms: {web-1-cpu-high: Disk-Critical-ASG}   # CloudWatch AlarmName -> medic alarm name
//       instances: {i-0abc1234def567890: web-1}       # EC2 InstanceId -> medic host
//       auto_scaling_groups: {web-asg: web-1}         # AutoScalingGroupName -> medic host
//       cert_host_pattern: '^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$'   # the default
//       ca_file: /etc/ssl/certs/ca-certificates.crt   # default: the system's CA bundle
//
// ParseSnsConfig reads the `sns:` node only; the caller (app/'s config loader, through the
// `ingest:` section) hands it over.

#include <map>
#include <string>
#include <vector>

#include "core/result.h"

namespace YAML {
class Node;
}

namespace medic::server {

// Where SNS publishes its signing certificates: sns.REGION.amazonaws.com (.cn in China).
inline constexpr char kDefaultSnsCertHostPattern[] = R"(^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$)";

struct SnsConfig {
  // Topic ARNs whose deliveries are accepted (and whose subscriptions are confirmed). Empty:
  // every delivery is refused.
  std::vector<std::string> topics;
  // CloudWatch AlarmName -> medic alarm name; an alarm not listed keeps its own name.
  std::map<std::string, std::string> alarms;
  // EC2 InstanceId (a Trigger dimension) -> medic host name.
  std::map<std::string, std::string> instances;
  // AutoScalingGroupName (a Trigger dimension) -> medic host name.
  std::map<std::string, std::string> auto_scaling_groups;
  // ECMAScript regular expression the whole host name of SigningCertURL and SubscribeURL must
  // match (lower-cased, without the port). Tests set their loopback name.
  std::string cert_host_pattern = kDefaultSnsCertHostPattern;
  // CA bundle for the https fetches of certificates and confirmations; empty: the system's.
  std::string ca_file;

  bool TopicAllowed(const std::string& arn) const;
};

// Parses the `sns:` mapping. A null node is the default config (no topic: nothing accepted).
// Unknown keys, values of the wrong type, a pattern that does not compile, a topic that is not
// an SNS topic ARN and a host that is no valid medic host name are errors naming file and line.
Result<SnsConfig> ParseSnsConfig(const YAML::Node& node, const std::string& file);

}  // namespace medic::server
