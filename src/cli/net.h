#pragma once

// Small network helpers shared by the CLI commands, the health app and the demo.

#include <memory>
#include <string>
#include <string_view>

#include "core/result.h"
#include "transport/http_client.h"

namespace medic::cli {

struct HostPort {
  std::string host;  // "127.0.0.1", "::1" (no brackets), "0.0.0.0"
  int port = 0;

  // "127.0.0.1:8080", "[::1]:8080".
  std::string ToString() const;
};

// Parses "HOST:PORT", "[V6]:PORT" or ":PORT" (host 0.0.0.0). Port 0..65535.
Result<HostPort> ParseHostPort(std::string_view text);

// The address a local client uses to reach a listener: 0.0.0.0 -> 127.0.0.1, :: -> ::1.
HostPort ConnectableAddress(const HostPort& listen);

// Percent-encodes everything but RFC 3986 unreserved characters (for one path segment or a
// query value).
std::string UrlEncode(std::string_view s);

// Binds an ephemeral port on 127.0.0.1, reads it back and releases it.
Result<int> FreeLoopbackPort();

// OK when a TCP listener could bind `addr` now (SO_REUSEADDR, as servers do).
Status CheckCanListen(const HostPort& addr);

// Wraps an HttpClient so that transport failures carry a short, accurate reason
// ("connection refused", "no route to host", "timed out") instead of curl's wording.
// The base must outlive the wrapper.
std::unique_ptr<HttpClient> NewExplainingHttpClient(HttpClient& base);

}  // namespace medic::cli
