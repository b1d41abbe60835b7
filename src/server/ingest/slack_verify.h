#pragma once

// Slack's request signing (docs/integrations/slack.md, "Security"): every request Slack sends
// carries X-Slack-Request-Timestamp (Unix seconds) and X-Slack-Signature,
// "v0=" + lowercase hex HMAC-SHA256(signing secret, "v0:" + timestamp + ":" + raw body).
// SlackVerifier checks both and refuses a request it has already accepted (a replay) while its
// timestamp is within the window.

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/result.h"

namespace medic::server {

// "v0=<hex>": the signature Slack sends for `body` at `timestamp` (the header's text).
std::string SlackSignature(std::string_view signing_secret, std::string_view timestamp,
                           std::string_view body);

struct SlackVerifierOptions {
  // How far the timestamp may be from the server's clock, either side (Slack: 5 minutes).
  int64_t window_seconds = 300;
  // Accepted signatures remembered (each until its timestamp leaves the window). When this many
  // are in the window, further requests are refused (Unavailable) rather than forgetting one
  // that could then be replayed.
  size_t max_remembered = 10'000;
};

// Thread-safe.
class SlackVerifier {
 public:
  // `clock` must outlive the verifier.
  SlackVerifier(std::string signing_secret, const Clock& clock, SlackVerifierOptions options = {});

  // OK when `signature` is Slack's for `body` at `timestamp`, the timestamp is within the window
  // of the clock's now, and this signature was not accepted before; the signature is then
  // remembered. Unauthenticated (naming the problem) for a missing or malformed header, a stale
  // or future timestamp, a wrong signature (compared in constant time) or a replay;
  // Unavailable when the replay memory is full.
  Status Verify(std::string_view timestamp, std::string_view signature, std::string_view body);

  size_t remembered() const;

 private:
  const std::string secret_;
  const Clock& clock_;
  const SlackVerifierOptions options_;
  mutable std::mutex mu_;
  std::map<std::string, int64_t> seen_;  // signature -> its timestamp. Guarded by mu_.
};

}  // namespace medic::server
