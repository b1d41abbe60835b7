#pragma once

// The signature on an SNS delivery (OpenSSL): SignatureVersion 1 is SHA1withRSA, 2 is
// SHA256withRSA, over SnsStringToSign (sns_message.h), with the public key of the X.509
// certificate at SigningCertURL. And the two https calls SNS asks of a subscriber: fetching that
// certificate and visiting a SubscribeURL (SnsWeb, libcurl).

#include <memory>
#include <string>

#include "core/clock.h"
#include "core/result.h"

namespace medic::server {

// A parsed signing certificate, shareable between threads (immutable once made).
class SnsCertificate {
 public:
  ~SnsCertificate();
  SnsCertificate(const SnsCertificate&) = delete;
  SnsCertificate& operator=(const SnsCertificate&) = delete;

  // The first certificate of `pem`. InvalidArgument when there is none.
  static Result<std::shared_ptr<const SnsCertificate>> FromPem(const std::string& pem);

  // PermissionDenied unless `now` is within the certificate's notBefore..notAfter.
  Status CheckValidAt(WallTime now) const;
  // PermissionDenied unless `signature_base64` is the certificate's key's signature of `data`
  // with SHA-1 (`version` "1") or SHA-256 ("2"); InvalidArgument for any other version.
  Status Verify(const std::string& version, const std::string& data,
                const std::string& signature_base64) const;

 private:
  explicit SnsCertificate(void* x509) : x509_(x509) {}
  void* x509_;  // X509*, owned
};

// The outbound calls of the SNS route. Thread-safe.
class SnsWeb {
 public:
  virtual ~SnsWeb() = default;
  // The body of `url` (an https URL the caller has checked): Unavailable when it cannot be
  // fetched, is not a 200 or is larger than `max_bytes`.
  virtual Result<std::string> Get(const std::string& url, size_t max_bytes) = 0;
};

// SnsWeb over libcurl (CurlHttpClient: TLS verified against `ca_file`, or the system's CA
// bundle when empty; no redirects followed), one client per call.
std::unique_ptr<SnsWeb> NewCurlSnsWeb(const std::string& ca_file);

}  // namespace medic::server
