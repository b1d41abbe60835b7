#pragma once

// FakeSns: Amazon SNS as an HTTP(S) subscriber sees it, on loopback, for the tests of
// POST /api/v1/ingest/sns. At construction it makes (OpenSSL, in memory and in `dir`):
//   - a TLS CA and a server certificate for "localhost" (server/app/tls_files.h), and serves
//     over https://localhost:PORT (a FakeHttpServer behind a TlsFrontend):
//       /SimpleNotificationService-test.pem   the signing certificate (RSA 2048, valid now)
//       /SimpleNotificationService-old.pem    an expired certificate of the same key
//       /SimpleNotificationService-other.pem  a valid certificate of another key
//       /confirm?…                            a SubscribeURL: recorded, answered 200
//   - the signing key, and signs messages exactly as SNS does: SignatureVersion 1
//     (SHA1withRSA) or 2 (SHA256withRSA) over the string to sign, base64.
// The string to sign is written here on its own, from the AWS documentation, not shared with
// the code under test.
//
// Thread-safe (the servers' threads record; the tests read).

#include <memory>
#include <optional>
#include <string>

#include "core/json.h"
#include "tests/fakes/http_server.h"
#include "tests/fakes/tls_frontend.h"

namespace medic::test {

class FakeSns {
 public:
  // `dir`: where the TLS files go (a TempDir of the test).
  explicit FakeSns(const std::string& dir);
  ~FakeSns();
  FakeSns(const FakeSns&) = delete;
  FakeSns& operator=(const FakeSns&) = delete;

  bool ok() const { return ok_; }  // every key, certificate and server is up
  const std::string& ca_file() const { return ca_file_; }  // the TLS CA, for ingest.sns.ca_file
  int port() const;
  // "https://localhost:PORT" followed by `path`.
  std::string url(const std::string& path) const;
  std::string cert_url() const { return url("/SimpleNotificationService-test.pem"); }

  // Unsigned deliveries, as SNS writes them (Signature* fields added by Sign).
  Json Notification(const std::string& topic_arn, const std::string& message,
                    std::optional<std::string> subject = std::nullopt) const;
  Json SubscriptionConfirmation(const std::string& topic_arn) const;
  Json UnsubscribeConfirmation(const std::string& topic_arn) const;

  // Sets SignatureVersion, SigningCertURL (cert_url() unless `cert_url` is given) and Signature
  // of `message`, signed with the signing key (or, with `other_key`, a key no certificate here
  // belongs to but "-other.pem").
  void Sign(Json& message, int version, const std::string& cert_url = "",
            bool other_key = false) const;
  // The string to sign of `message` (the fake's own rendering).
  static std::string StringToSign(const Json& message);

  // Requests for each kind of path so far.
  int confirmations() const;
  int certificate_fetches() const;

 private:
  struct Keys;

  bool ok_ = false;
  std::string ca_file_;
  std::unique_ptr<Keys> keys_;
  std::unique_ptr<FakeHttpServer> http_;
  std::unique_ptr<TlsFrontend> tls_;
};

// A CloudWatch alarm state change as an alarm action publishes it to SNS (the Message).
Json CloudWatchAlarmMessage(const std::string& alarm_name, const std::string& new_state,
                            const std::string& instance_id);

}  // namespace medic::test
