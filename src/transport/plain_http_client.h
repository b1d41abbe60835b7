#pragma once

// A small HTTP/1.1 client over plain sockets, for http:// URLs only. medic-agent uses it so that
// it does not have to load libcurl and its ~30 shared libraries (OpenSSL, GnuTLS, Kerberos, LDAP,
// SSH, ...): see docs/BENCHMARKS.md. Its https:// sibling is the mbed TLS client
// (mbedtls_http_client.h); both are the HTTP/1.1 framing of http1_client.h over a byte stream.
//
// What it does: GET/POST/PUT/any method with headers and a body (Content-Length), responses with
// Content-Length, chunked or read-until-close bodies, interim 1xx answers skipped, keep-alive
// reuse of idle connections (a few, by host and port), IPv4 and IPv6 through getaddrinfo, one
// deadline for the whole request (HttpRequest::timeout) and one for connecting
// (connect_timeout), a per-request body cap (max_body_bytes: the body is cut there and the
// connection closed). Transport failures are errors: DeadlineExceeded for timeouts, Unavailable
// for refused, reset or closed connections and for malformed answers. Not thread-safe: one
// instance per thread, like the libcurl client.

#include <functional>
#include <memory>
#include <string_view>

#include "core/result.h"
#include "transport/http1_client.h"
#include "transport/http_client.h"

namespace medic {

using PlainHttpOptions = Http1Options;

// Parses "http://host[:port][/path][?query]": ParseUrl(url, UrlScheme::kHttp).
Result<HttpUrl> ParseHttpUrl(std::string_view url);

std::unique_ptr<HttpClient> NewPlainHttpClient(const PlainHttpOptions& options = {});

// Sends http:// requests through `plain` and every other URL through the client `make_other`
// returns, created on the first such request (so that, for example, the TLS client and its CA
// bundle are loaded only when an https:// URL is used). Not thread-safe: one instance per thread.
std::unique_ptr<HttpClient> NewSchemeRoutingHttpClient(
    std::unique_ptr<HttpClient> plain, std::function<std::unique_ptr<HttpClient>()> make_other);

}  // namespace medic
