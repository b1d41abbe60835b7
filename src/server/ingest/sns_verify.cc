#include "server/ingest/sns_verify.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <chrono>
#include <ctime>
#include <optional>
#include <vector>

#include "transport/http_client.h"

namespace medic::server {

namespace {

// A base64 signature longer than this is no RSA signature medic accepts (8192-bit: 1,368).
constexpr size_t kMaxSignatureChars = 2048;

X509* AsX509(void* p) { return static_cast<X509*>(p); }

// Strict base64 (no whitespace) to bytes; nullopt when malformed.
std::optional<std::string> DecodeBase64(const std::string& in) {
  if (in.empty() || in.size() % 4 != 0 || in.size() > kMaxSignatureChars ||
      in.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") !=
          std::string::npos) {
    return std::nullopt;
  }
  const size_t pad = in.size() - in.find_last_not_of('=') - 1;
  if (pad > 2 || in.find('=') < in.size() - pad) {
    return std::nullopt;
  }
  std::string out(in.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  if (n < 0 || static_cast<size_t>(n) < pad) {
    return std::nullopt;
  }
  out.resize(static_cast<size_t>(n) - pad);  // EVP_DecodeBlock counts the padding as zeros
  return out;
}

class CurlSnsWeb : public SnsWeb {
 public:
  explicit CurlSnsWeb(std::string ca_file) : ca_file_(std::move(ca_file)) {}

  Result<std::string> Get(const std::string& url, size_t max_bytes) override {
    TlsOptions tls;
    tls.ca_file = ca_file_;
    auto client = NewCurlHttpClient(tls);
    HttpRequest req;
    req.method = "GET";
    req.url = url;
    req.timeout = Millis(5'000);
    req.connect_timeout = Millis(3'000);
    req.max_body_bytes = max_bytes + 1;
    ASSIGN_OR_RETURN(HttpResponse resp, client->Do(req));
    if (resp.status != 200) {
      return Unavailable("GET " + url + ": HTTP " + std::to_string(resp.status));
    }
    if (resp.body_truncated || resp.body.size() > max_bytes) {
      return Unavailable("GET " + url + ": more than " + std::to_string(max_bytes) + " bytes");
    }
    return std::move(resp.body);
  }

 private:
  const std::string ca_file_;
};

}  // namespace

SnsCertificate::~SnsCertificate() { X509_free(AsX509(x509_)); }

Result<std::shared_ptr<const SnsCertificate>> SnsCertificate::FromPem(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* cert = bio != nullptr ? PEM_read_bio_X509(bio, nullptr, nullptr, nullptr) : nullptr;
  BIO_free(bio);
  ERR_clear_error();
  if (cert == nullptr) {
    return InvalidArgument("the signing certificate is not a PEM X.509 certificate");
  }
  return std::shared_ptr<const SnsCertificate>(new SnsCertificate(cert));
}

Status SnsCertificate::CheckValidAt(WallTime now) const {
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  X509* cert = AsX509(x509_);
  // X509_cmp_time: -1 when the certificate's time is before t, 1 after, 0 on error.
  if (X509_cmp_time(X509_get0_notBefore(cert), const_cast<std::time_t*>(&t)) != -1) {
    return PermissionDenied("the signing certificate is not valid yet");
  }
  if (X509_cmp_time(X509_get0_notAfter(cert), const_cast<std::time_t*>(&t)) != 1) {
    return PermissionDenied("the signing certificate has expired");
  }
  return OkStatus();
}

Status SnsCertificate::Verify(const std::string& version, const std::string& data,
                              const std::string& signature_base64) const {
  const EVP_MD* md = nullptr;
  if (version == "1") {
    md = EVP_sha1();
  } else if (version == "2") {
    md = EVP_sha256();
  } else {
    return InvalidArgument("SignatureVersion '" + version.substr(0, 16) +
                           "' is not supported (1 or 2)");
  }
  auto signature = DecodeBase64(signature_base64);
  if (!signature) {
    return PermissionDenied("the signature is not base64");
  }
  EVP_PKEY* key = X509_get0_pubkey(AsX509(x509_));
  if (key == nullptr || EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
    ERR_clear_error();
    return PermissionDenied("the signing certificate has no RSA key");
  }
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool ok =
      ctx != nullptr && EVP_DigestVerifyInit(ctx, nullptr, md, nullptr, key) == 1 &&
      EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(signature->data()),
                       signature->size(), reinterpret_cast<const unsigned char*>(data.data()),
                       data.size()) == 1;
  EVP_MD_CTX_free(ctx);
  ERR_clear_error();
  if (!ok) {
    return PermissionDenied("the signature does not verify");
  }
  return OkStatus();
}

std::unique_ptr<SnsWeb> NewCurlSnsWeb(const std::string& ca_file) {
  InitHttpClientLibrary();
  return std::make_unique<CurlSnsWeb>(ca_file);
}

}  // namespace medic::server
