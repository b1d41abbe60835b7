#pragma once

// A small HTTP/1.1 client over plain sockets, for http:// URLs only. medic-agent uses it so that
// it does not have to load libcurl and its ~30 shared libraries (OpenSSL, GnuTLS, Kerberos, LDAP,
// SSH, ...) when no https:// URL is configured: see docs/BENCHMARKS.md.
//
// What it does: GET/POST/PUT/any method with headers and a body (Content-Length), responses with
// Content-Length, chunked or read-until-close bodies, interim 1xx answers skipped, keep-alive
// reuse of idle connections (a few, by host and port), IPv4 and IPv6 through getaddrinfo, one
// deadline for the whole request (HttpRequest::timeout) and one for connecting
// (connect_timeout), a per-request body cap (max_body_bytes: the body is cut there and the
// connection closed). Transport failures are errors: DeadlineExceeded for timeouts, Unavailable
// for refused, reset or closed connections and for malformed answers. Not thread-safe: one
// instance per thread, like the libcurl client.

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/result.h"
#include "transport/http_client.h"

namespace medic {

struct PlainHttpOptions {
  size_t max_header_bytes = 64 * 1024;       // status line plus header fields
  size_t max_body_bytes = 64 * 1024 * 1024;  // same cap as the libcurl client
  size_t max_idle_connections = 4;           // kept alive between calls
};

// The parts of an http:// URL the client needs.
struct HttpUrl {
  std::string host;         // without brackets for IPv6 literals
  std::string port;         // "80" when absent
  std::string target;       // path and query, at least "/"
  std::string host_header;  // the Host: field ("[::1]:8080", "example.com")
};

// Parses "http://host[:port][/path][?query]" (the fragment is dropped). Anything else (other
// schemes, user info, an empty host or a bad port) is InvalidArgument.
Result<HttpUrl> ParseHttpUrl(std::string_view url);

std::unique_ptr<HttpClient> NewPlainHttpClient(const PlainHttpOptions& options = {});

// Sends http:// requests through `plain` and every other URL through the client `make_other`
// returns, created on the first such request (so that, for example, libcurl is loaded only when
// an https:// URL is used). Not thread-safe: one instance per thread.
std::unique_ptr<HttpClient> NewSchemeRoutingHttpClient(
    std::unique_ptr<HttpClient> plain, std::function<std::unique_ptr<HttpClient>()> make_other);

}  // namespace medic
