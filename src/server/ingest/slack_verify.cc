#include "server/ingest/slack_verify.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <chrono>

namespace medic::server {

namespace {

constexpr std::string_view kVersion = "v0=";

std::string Hex(const unsigned char* p, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(2 * n, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[p[i] >> 4];
    out[2 * i + 1] = kDigits[p[i] & 0xf];
  }
  return out;
}

// The timestamp header: 1 to 12 decimal digits (Unix seconds), nothing else.
bool ParseTimestamp(std::string_view text, int64_t* out) {
  if (text.empty() || text.size() > 12) {
    return false;
  }
  int64_t v = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') {
      return false;
    }
    v = v * 10 + (c - '0');
  }
  *out = v;
  return true;
}

}  // namespace

std::string SlackSignature(std::string_view signing_secret, std::string_view timestamp,
                           std::string_view body) {
  std::string base;
  base.reserve(3 + timestamp.size() + 1 + body.size());
  base.append("v0:").append(timestamp).append(":").append(body);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), signing_secret.data(), static_cast<int>(signing_secret.size()),
       reinterpret_cast<const unsigned char*>(base.data()), base.size(), mac, &len);
  return std::string(kVersion) + Hex(mac, len);
}

SlackVerifier::SlackVerifier(std::string signing_secret, const Clock& clock,
                             SlackVerifierOptions options)
    : secret_(std::move(signing_secret)), clock_(clock), options_(options) {}

Status SlackVerifier::Verify(std::string_view timestamp, std::string_view signature,
                             std::string_view body) {
  if (timestamp.empty()) {
    return Unauthenticated("X-Slack-Request-Timestamp is missing");
  }
  if (signature.empty()) {
    return Unauthenticated("X-Slack-Signature is missing");
  }
  int64_t ts = 0;
  if (!ParseTimestamp(timestamp, &ts)) {
    return Unauthenticated("X-Slack-Request-Timestamp is not a Unix time in seconds");
  }
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          clock_.Now().time_since_epoch())
                          .count();
  if (ts < now - options_.window_seconds || ts > now + options_.window_seconds) {
    return Unauthenticated("X-Slack-Request-Timestamp " + std::string(timestamp) +
                           " is more than " + std::to_string(options_.window_seconds) +
                           " s from the server's clock (" + std::to_string(now) +
                           "): stale or replayed");
  }
  const std::string want = SlackSignature(secret_, timestamp, body);
  if (signature.size() != want.size() ||
      CRYPTO_memcmp(signature.data(), want.data(), want.size()) != 0) {
    return Unauthenticated("X-Slack-Signature does not match the request (signing secret, "
                           "timestamp and body)");
  }
  std::lock_guard<std::mutex> lock(mu_);
  std::erase_if(seen_, [&](const auto& e) { return e.second < now - options_.window_seconds; });
  if (seen_.count(want) > 0) {
    return Unauthenticated("this request was accepted before (a replay)");
  }
  if (seen_.size() >= options_.max_remembered) {
    return Unavailable("too many Slack requests within " +
                       std::to_string(options_.window_seconds) + " s; try again later");
  }
  seen_.emplace(want, ts);
  return OkStatus();
}

size_t SlackVerifier::remembered() const {
  std::lock_guard<std::mutex> lock(mu_);
  return seen_.size();
}

}  // namespace medic::server
