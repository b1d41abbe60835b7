#pragma once

// SnsIngest: what POST /api/v1/ingest/sns does with one delivery, without a socket
// (docs/integrations/sns.md). SNS sends no credential: the message's signature, made with the
// certificate at SigningCertURL (https, on a host matching ingest.sns.cert_host_pattern), and a
// TopicArn of ingest.sns.topics are the authentication. In order:
//
//   body not an SNS message (JSON, Type, fields)         -> 400, nothing else
//   SignatureVersion not 1 or 2, no topic configured at all, SigningCertURL not https on
//   an SNS host                                          -> 403, nothing fetched
//   the certificate cannot be fetched                    -> 502 (SNS retries), nothing applied
//   certificate not valid now, signature does not verify -> 403, nothing applied
//   TopicArn not configured                              -> 403, recorded (RecordUnmapped)
//   SubscriptionConfirmation -> GET SubscribeURL (https, SNS host): 200, or 502 if that fails
//   UnsubscribeConfirmation  -> logged, 200
//   Notification: a CloudWatch alarm state change        -> AlertSink::Submit, 200
//                 anything else, or no host for it      -> RecordUnmapped, 200 (SNS would only
//                                                           retry it)
//
// Refusals are logged at most once a minute with their count (a flood cannot fill the log).

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/json.h"
#include "server/ingest/alert_sink.h"
#include "server/ingest/sns_config.h"
#include "server/ingest/sns_message.h"
#include "server/ingest/sns_verify.h"

namespace medic::server {

// The largest body the route takes: an SNS message is at most 256 KiB, its envelope a few more.
inline constexpr size_t kSnsMaxBodyBytes = 320 * 1024;
// The largest signing certificate fetched, and how many are kept (by URL).
inline constexpr size_t kSnsMaxCertificateBytes = 16 * 1024;
inline constexpr size_t kSnsCertificateCacheSize = 32;

class SnsIngest {
 public:
  struct Outcome {
    int status = 200;
    Json body;  // {"result": "…"} or {"error": "…"}
  };

  // Every reference must outlive this object. `lookup` (may be null) finds the host of an
  // instance id the config does not map.
  SnsIngest(SnsConfig config, AlertSink& sink, SnsWeb& web, const Clock& clock,
            InstanceHostLookup lookup = nullptr);

  // One delivery's body. Thread-safe.
  Outcome Handle(std::string_view body);

  // Deliveries refused so far (4xx/5xx), for tests and metrics.
  uint64_t refused() const;

 private:
  // The certificate at `url` (from the cache, else fetched and kept).
  Result<std::shared_ptr<const SnsCertificate>> Certificate(const std::string& url);
  // Drops the certificate of `url` from the cache.
  void Forget(const std::string& url);
  Outcome Refuse(int status, const std::string& why);
  Outcome HandleNotification(const SnsMessage& m);

  const SnsConfig config_;
  AlertSink& sink_;
  SnsWeb& web_;
  const Clock& clock_;
  const InstanceHostLookup lookup_;

  mutable std::mutex mu_;
  // Guarded by mu_: certificates by URL, and the URLs in the order they were fetched.
  std::map<std::string, std::shared_ptr<const SnsCertificate>> certificates_;
  std::deque<std::string> certificate_order_;
  uint64_t refused_ = 0;           // Guarded by mu_.
  uint64_t refused_unlogged_ = 0;  // Guarded by mu_.
  SteadyTime last_refusal_log_{};  // Guarded by mu_.
  bool logged_a_refusal_ = false;  // Guarded by mu_.
};

}  // namespace medic::server
