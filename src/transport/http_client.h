#pragma once

// Outbound HTTP. Every outbound call medic makes (agent -> server, CLI -> server, and later AI
// providers and webhooks) goes through HttpClient; CurlHttpClient is the real one.

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/result.h"

namespace medic {

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  Millis timeout{10'000};
  Millis connect_timeout{3'000};
  // 0: the client's own limit (64 MiB), beyond which the request fails. Otherwise the most of
  // the response body this request reads (no more than the client's limit): the transfer stops
  // there and the response comes back with its status and headers, the body's first
  // max_body_bytes bytes and body_truncated set (a probe that wants only the status reads a few
  // KiB of an endless body).
  size_t max_body_bytes = 0;
};

struct HttpResponse {
  int status = 0;
  std::string body;
  std::string content_type;
  // Response header fields as received (names in their original case), e.g. Retry-After.
  std::vector<std::pair<std::string, std::string>> headers;
  // The body was longer than HttpRequest::max_body_bytes and was cut there.
  bool body_truncated = false;
};

// Transport failures (refused, DNS, timeout) are errors; any HTTP status is a response.
class HttpClient {
 public:
  virtual ~HttpClient() = default;
  virtual Result<HttpResponse> Do(const HttpRequest& request) = 0;
};

struct TlsOptions {
  std::string ca_file;    // verify the server against this CA bundle (empty: system default)
  std::string cert_file;  // client certificate, optional
  std::string key_file;
  // "sha256//BASE64" (curl's form; medic-server prints its own at start): the server's public
  // key must hash to this. Without ca_file, the pin alone identifies the server.
  std::string pin;
};

// "sha256//" and the base64 of a SHA-256 (43 characters and one '='): a TlsOptions::pin as the
// CLI's --pin, the agent's tls.pin and --pin accept it.
inline bool IsPublicKeyPin(std::string_view pin) {
  return pin.size() == 8 + 44 && pin.substr(0, 8) == "sha256//" && pin.back() == '=' &&
         pin.substr(8).find_first_not_of(
             "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") ==
             std::string_view::npos;
}

// libcurl-backed client. Keeps its connection alive between calls.
// Not thread-safe: one instance per thread.
std::unique_ptr<HttpClient> NewCurlHttpClient(const TlsOptions& tls = {});

// Must be called once before threads start (curl_global_init).
void InitHttpClientLibrary();

}  // namespace medic
