#include "server/ingest/sns_ingest.h"

#include <algorithm>

#include "core/log.h"

namespace medic::server {

namespace {

constexpr auto kRefusalLogEvery = std::chrono::minutes(1);
constexpr size_t kMaxConfirmationBytes = 16 * 1024;

SnsIngest::Outcome Ok(const std::string& result) { return {200, Json{{"result", result}}}; }

}  // namespace

SnsIngest::SnsIngest(SnsConfig config, AlertSink& sink, SnsWeb& web, const Clock& clock,
                     InstanceHostLookup lookup)
    : config_(std::move(config)),
      sink_(sink),
      web_(web),
      clock_(clock),
      lookup_(std::move(lookup)) {}

uint64_t SnsIngest::refused() const {
  std::lock_guard<std::mutex> lock(mu_);
  return refused_;
}

SnsIngest::Outcome SnsIngest::Refuse(int status, const std::string& why) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++refused_;
    ++refused_unlogged_;
    const SteadyTime now = clock_.SteadyNow();
    if (!logged_a_refusal_ || now - last_refusal_log_ >= kRefusalLogEvery) {
      LogWarn("ingest sns: refused " + std::to_string(refused_unlogged_) +
              " deliveries since the last such line; the last: HTTP " + std::to_string(status) +
              ": " + why);
      refused_unlogged_ = 0;
      last_refusal_log_ = now;
      logged_a_refusal_ = true;
    }
  }
  return {status, Json{{"error", why}}};
}

Result<std::shared_ptr<const SnsCertificate>> SnsIngest::Certificate(const std::string& url) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = certificates_.find(url); it != certificates_.end()) {
      return it->second;
    }
  }
  // Off the lock: a slow certificate host holds up only the deliveries that need it.
  auto pem = web_.Get(url, kSnsMaxCertificateBytes);
  if (!pem) {
    return Unavailable("cannot fetch the signing certificate: " + pem.error().message);
  }
  ASSIGN_OR_RETURN(auto cert, SnsCertificate::FromPem(*pem));
  std::lock_guard<std::mutex> lock(mu_);
  if (certificates_.emplace(url, cert).second) {
    certificate_order_.push_back(url);
    while (certificate_order_.size() > kSnsCertificateCacheSize) {
      certificates_.erase(certificate_order_.front());
      certificate_order_.pop_front();
    }
  }
  return cert;
}

void SnsIngest::Forget(const std::string& url) {
  std::lock_guard<std::mutex> lock(mu_);
  certificates_.erase(url);
  auto it = std::find(certificate_order_.begin(), certificate_order_.end(), url);
  if (it != certificate_order_.end()) {
    certificate_order_.erase(it);
  }
}

SnsIngest::Outcome SnsIngest::Handle(std::string_view body) {
  auto parsed = ParseSnsMessage(body);
  if (!parsed) {
    return Refuse(400, parsed.error().message);
  }
  const SnsMessage& m = *parsed;
  if (m.signature_version != "1" && m.signature_version != "2") {
    return Refuse(403, "SignatureVersion '" + m.signature_version.substr(0, 16) +
                           "' is not supported (1 or 2)");
  }
  if (config_.topics.empty()) {
    // Nothing could be accepted: no certificate is fetched for it.
    return Refuse(403, "no SNS topic is configured (ingest.sns.topics)");
  }
  if (auto ok = CheckSnsUrl(m.signing_cert_url, config_.cert_host_pattern); !ok) {
    return Refuse(403, "SigningCertURL: " + ok.error().message);
  }
  auto cert = Certificate(m.signing_cert_url);
  if (!cert) {
    return Refuse(cert.error().code == ErrorCode::kUnavailable ? 502 : 403, cert.error().message);
  }
  if (auto ok = (*cert)->CheckValidAt(clock_.Now()); !ok) {
    // Not kept: should the URL serve a renewed certificate later, it is fetched again.
    Forget(m.signing_cert_url);
    return Refuse(403, ok.error().message);
  }
  if (auto ok = (*cert)->Verify(m.signature_version, SnsStringToSign(m), m.signature); !ok) {
    return Refuse(403, ok.error().message);
  }
  // Authentic from here on: SNS sent it.
  if (!config_.TopicAllowed(m.topic_arn)) {
    sink_.RecordUnmapped("sns", std::string(SnsTypeName(m.type)) + " TopicArn=" + m.topic_arn,
                         "the topic is not in ingest.sns.topics");
    return Refuse(403, "topic " + m.topic_arn + " is not in ingest.sns.topics");
  }
  switch (m.type) {
    case SnsType::kSubscriptionConfirmation: {
      if (auto ok = CheckSnsUrl(m.subscribe_url, config_.cert_host_pattern); !ok) {
        return Refuse(403, "SubscribeURL: " + ok.error().message);
      }
      if (auto got = web_.Get(m.subscribe_url, kMaxConfirmationBytes); !got) {
        return Refuse(502, "cannot confirm the subscription: " + got.error().message);
      }
      LogInfo("ingest sns: confirmed the subscription to " + m.topic_arn);
      return Ok("confirmed");
    }
    case SnsType::kUnsubscribeConfirmation:
      LogInfo("ingest sns: unsubscribed from " + m.topic_arn +
              " (SNS sends nothing more until subscribed again)");
      return Ok("unsubscribed");
    case SnsType::kNotification:
      return HandleNotification(m);
  }
  return Refuse(400, "unknown message type");
}

SnsIngest::Outcome SnsIngest::HandleNotification(const SnsMessage& m) {
  auto alarm = ParseCloudWatchAlarm(m.message);
  if (!alarm) {
    sink_.RecordUnmapped("sns",
                         "Notification MessageId=" + m.message_id + " TopicArn=" + m.topic_arn +
                             (m.subject ? " Subject=" + m.subject->substr(0, 100) : ""),
                         alarm.error().code == ErrorCode::kNotFound
                             ? "not a CloudWatch alarm state change"
                             : alarm.error().message);
    return Ok("unmapped");
  }
  const auto timestamp = ParseRfc3339(m.timestamp);
  auto mapped = MapCloudWatchAlarm(*alarm, config_, lookup_, timestamp ? *timestamp : clock_.Now());
  if (auto* unmapped = std::get_if<SnsUnmapped>(&mapped)) {
    sink_.RecordUnmapped("sns", unmapped->summary, unmapped->why);
    return Ok("unmapped");
  }
  ExternalAlert& alert = std::get<ExternalAlert>(mapped);
  alert.labels["TopicArn"] = m.topic_arn;
  alert.labels["MessageId"] = m.message_id;
  return Ok(IngestResultName(sink_.Submit(alert)));
}

}  // namespace medic::server
