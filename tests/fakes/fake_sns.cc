#include "tests/fakes/fake_sns.h"

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <atomic>
#include <chrono>
#include <vector>

#include "core/clock.h"
#include "server/app/tls_files.h"

namespace medic::test {

namespace {

struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;

// PEM of a self-signed certificate for `key`, valid from now+`from_s` to now+`to_s`.
std::string MakeCertificatePem(EVP_PKEY* key, long from_s, long to_s) {
  X509* cert = X509_new();
  if (cert == nullptr) {
    return "";
  }
  unsigned char serial[8];
  RAND_bytes(serial, sizeof(serial));
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof(serial), nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
  BN_free(bn);
  X509_set_version(cert, 2);
  X509_gmtime_adj(X509_getm_notBefore(cert), from_s);
  X509_gmtime_adj(X509_getm_notAfter(cert), to_s);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>("sns.amazonaws.com"), -1, -1,
                             0);
  X509_set_issuer_name(cert, name);
  std::string out;
  if (X509_sign(cert, key, EVP_sha256()) != 0) {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, cert);
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio, &data);
    out.assign(data, static_cast<size_t>(len));
    BIO_free(bio);
  }
  X509_free(cert);
  return out;
}

std::string Base64(const std::string& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string SignWith(EVP_PKEY* key, const EVP_MD* md, const std::string& data) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  size_t len = 0;
  std::string sig;
  if (EVP_DigestSignInit(ctx, nullptr, md, nullptr, key) == 1 &&
      EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(data.data()),
                     data.size()) == 1) {
    sig.resize(len);
    if (EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                       reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1) {
      sig.resize(len);
    } else {
      sig.clear();
    }
  }
  EVP_MD_CTX_free(ctx);
  return sig;
}

std::atomic<int> message_counter{0};

std::string NextMessageId() {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "6b5e6f1c-0000-4000-8000-%012d", ++message_counter);
  return buf;
}

std::string NowTimestamp() { return FormatRfc3339(std::chrono::system_clock::now()); }

}  // namespace

struct FakeSns::Keys {
  Key signing;
  Key other;
  std::string cert_pem;
  std::string old_pem;
  std::string other_pem;
};

FakeSns::FakeSns(const std::string& dir) : keys_(std::make_unique<Keys>()) {
  auto tls = server::EnsureSelfSignedTls(dir + "/tls", {"localhost"});
  if (!tls) {
    return;
  }
  ca_file_ = tls->ca_file;
  keys_->signing.reset(EVP_RSA_gen(2048));
  keys_->other.reset(EVP_RSA_gen(2048));
  if (!keys_->signing || !keys_->other) {
    return;
  }
  keys_->cert_pem = MakeCertificatePem(keys_->signing.get(), -3600, 24 * 3600);
  keys_->old_pem = MakeCertificatePem(keys_->signing.get(), -3 * 24 * 3600, -24 * 3600);
  keys_->other_pem = MakeCertificatePem(keys_->other.get(), -3600, 24 * 3600);
  if (keys_->cert_pem.empty() || keys_->old_pem.empty() || keys_->other_pem.empty()) {
    return;
  }
  Keys* keys = keys_.get();
  http_ = std::make_unique<FakeHttpServer>([keys](const RecordedRequest& r) {
    CannedReply reply;
    reply.headers = {{"Content-Type", "text/plain"}};
    if (r.method != "GET") {
      reply.status = 405;
    } else if (r.target == "/SimpleNotificationService-test.pem") {
      reply.body = keys->cert_pem;
    } else if (r.target == "/SimpleNotificationService-old.pem") {
      reply.body = keys->old_pem;
    } else if (r.target == "/SimpleNotificationService-other.pem") {
      reply.body = keys->other_pem;
    } else if (r.target.rfind("/confirm?", 0) == 0) {
      reply.body =
          "<ConfirmSubscriptionResponse><ConfirmSubscriptionResult><SubscriptionArn>"
          "arn:aws:sns:eu-west-1:123456789012:medic-alarms:sub</SubscriptionArn>"
          "</ConfirmSubscriptionResult></ConfirmSubscriptionResponse>";
    } else {
      reply.status = 404;
    }
    return reply;
  });
  if (!http_->listening()) {
    return;
  }
  tls_ = std::make_unique<TlsFrontend>(http_->port(),
                                       TlsFrontendOptions{tls->cert_file, tls->key_file});
  ok_ = tls_->listening();
}

FakeSns::~FakeSns() = default;

int FakeSns::port() const { return tls_ ? tls_->port() : 0; }

std::string FakeSns::url(const std::string& path) const {
  return "https://localhost:" + std::to_string(port()) + path;
}

Json FakeSns::Notification(const std::string& topic_arn, const std::string& message,
                           std::optional<std::string> subject) const {
  const std::string id = NextMessageId();
  Json j = {{"Type", "Notification"},
            {"MessageId", id},
            {"TopicArn", topic_arn},
            {"Message", message},
            {"Timestamp", NowTimestamp()},
            {"UnsubscribeURL", url("/unsubscribe?SubscriptionArn=" + topic_arn + ":sub")}};
  if (subject) {
    j["Subject"] = *subject;
  }
  return j;
}

Json FakeSns::SubscriptionConfirmation(const std::string& topic_arn) const {
  const std::string token = "2336412f37fb687f5d51e6e2425c464de" + std::to_string(++message_counter);
  return {{"Type", "SubscriptionConfirmation"},
          {"MessageId", NextMessageId()},
          {"Token", token},
          {"TopicArn", topic_arn},
          {"Message", "You have chosen to subscribe to the topic " + topic_arn +
                          ".\nTo confirm the subscription, visit the SubscribeURL included in "
                          "this message."},
          {"SubscribeURL",
           url("/confirm?Action=ConfirmSubscription&TopicArn=" + topic_arn + "&Token=" + token)},
          {"Timestamp", NowTimestamp()}};
}

Json FakeSns::UnsubscribeConfirmation(const std::string& topic_arn) const {
  Json j = SubscriptionConfirmation(topic_arn);
  j["Type"] = "UnsubscribeConfirmation";
  j["Message"] = "You have chosen to deactivate subscription " + topic_arn +
                 ":sub.\nTo cancel this operation and restore the subscription, visit the "
                 "SubscribeURL included in this message.";
  return j;
}

std::string FakeSns::StringToSign(const Json& m) {
  const std::string type = m.value("Type", "");
  const std::vector<const char*> keys =
      type == "Notification"
          ? std::vector<const char*>{"Message",   "MessageId", "Subject",
                                     "Timestamp", "TopicArn",  "Type"}
          : std::vector<const char*>{"Message", "MessageId", "SubscribeURL", "Timestamp",
                                     "Token",   "TopicArn",  "Type"};
  std::string out;
  for (const char* k : keys) {
    if (!m.contains(k)) {
      continue;  // Subject, when the publisher gave none
    }
    out += std::string(k) + "\n" + m[k].get<std::string>() + "\n";
  }
  return out;
}

void FakeSns::Sign(Json& message, int version, const std::string& cert_url, bool other_key) const {
  message["SignatureVersion"] = std::to_string(version);
  message["SigningCertURL"] = cert_url.empty() ? this->cert_url() : cert_url;
  EVP_PKEY* key = other_key ? keys_->other.get() : keys_->signing.get();
  const EVP_MD* md = version == 1 ? EVP_sha1() : EVP_sha256();
  message["Signature"] = Base64(SignWith(key, md, StringToSign(message)));
}

int FakeSns::confirmations() const {
  int n = 0;
  for (const auto& r : http_->requests()) {
    n += r.target.rfind("/confirm?", 0) == 0 ? 1 : 0;
  }
  return n;
}

int FakeSns::certificate_fetches() const {
  int n = 0;
  for (const auto& r : http_->requests()) {
    n += r.target.size() > 4 && r.target.substr(r.target.size() - 4) == ".pem" ? 1 : 0;
  }
  return n;
}

Json CloudWatchAlarmMessage(const std::string& alarm_name, const std::string& new_state,
                            const std::string& instance_id) {
  const bool alarm = new_state == "ALARM";
  return {
      {"AlarmName", alarm_name},
      {"AlarmDescription", nullptr},
      {"AWSAccountId", "123456789012"},
      {"AlarmConfigurationUpdatedTimestamp", "2026-12-01T10:00:00.000+0000"},
      {"NewStateValue", new_state},
      {"NewStateReason",
       alarm ? "Threshold Crossed: 1 out of the last 1 datapoints [91.5 (07/12/26 01:00:00)] was "
               "greater than or equal to the threshold (85.0) (minimum 1 datapoint for OK -> "
               "ALARM transition)."
             : "Threshold Crossed: 1 out of the last 1 datapoints [12.0 (07/12/26 01:05:00)] was "
               "not greater than or equal to the threshold (85.0)."},
      {"StateChangeTime", alarm ? "2026-12-07T01:00:02.612+0000" : "2026-12-07T01:05:02.100+0000"},
      {"Region", "EU (Ireland)"},
      {"AlarmArn", "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:" + alarm_name},
      {"OldStateValue", alarm ? "OK" : "ALARM"},
      {"OKActions", Json::array()},
      {"AlarmActions", Json::array({"arn:aws:sns:eu-west-1:123456789012:medic-alarms"})},
      {"InsufficientDataActions", Json::array()},
      {"Trigger",
       {{"MetricName", "disk_used_percent"},
        {"Namespace", "CWAgent"},
        {"StatisticType", "Statistic"},
        {"Statistic", "AVERAGE"},
        {"Unit", nullptr},
        {"Dimensions", Json::array({{{"value", instance_id}, {"name", "InstanceId"}}})},
        {"Period", 60},
        {"EvaluationPeriods", 1},
        {"ComparisonOperator", "GreaterThanOrEqualToThreshold"},
        {"Threshold", 85.0},
        {"TreatMissingData", "missing"},
        {"EvaluateLowSampleCountPercentile", ""}}}};
}

}  // namespace medic::test
