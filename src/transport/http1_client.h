#pragma once

// The HTTP/1.1 framing medic-agent's two clients share: request writing, response parsing
// (Content-Length, chunked and read-until-close bodies, interim 1xx answers skipped), keep-alive
// reuse of idle connections and the request's deadlines, over any ByteStream. The plain client
// (plain_http_client.h) runs it over TCP sockets, the mbed TLS client (mbedtls_http_client.h)
// over TLS sessions on those sockets.

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/result.h"
#include "transport/http_client.h"

namespace medic {

using Deadline = std::chrono::steady_clock::time_point;

struct Http1Options {
  size_t max_header_bytes = 64 * 1024;       // status line plus header fields
  size_t max_body_bytes = 64 * 1024 * 1024;  // same cap as the libcurl client
  size_t max_idle_connections = 4;           // kept alive between calls
};

// The parts of an http:// or https:// URL the clients need.
struct HttpUrl {
  std::string host;         // without brackets for IPv6 literals
  std::string port;         // "80" (http) or "443" (https) when absent
  std::string target;       // path and query, at least "/"
  std::string host_header;  // the Host: field ("[::1]:8080", "example.com")
};

enum class UrlScheme { kHttp, kHttps };

// Parses "SCHEME://host[:port][/path][?query]" (the fragment is dropped) for the one scheme
// given. Anything else (other schemes, user info, an empty host or a bad port) is
// InvalidArgument.
Result<HttpUrl> ParseUrl(std::string_view url, UrlScheme scheme);

// A connection the client owns: a TCP socket, or a TLS session over one. Errors carry no
// request prefix (the client adds "METHOD URL: "): DeadlineExceeded when the deadline passed,
// Unavailable for everything else. Not thread-safe.
class ByteStream {
 public:
  virtual ~ByteStream() = default;
  // Writes all of `data` before `deadline`.
  virtual Status Write(std::string_view data, Deadline deadline) = 0;
  // Reads at least one and at most `size` bytes before `deadline`; 0 at the end of the stream.
  virtual Result<size_t> Read(char* buf, size_t size, Deadline deadline) = 0;
  // For a kept-alive connection about to be reused: true when the peer has neither closed it
  // nor sent anything since the last answer.
  virtual bool IdleAndOpen() = 0;
};

// Opens a connection to url.host:url.port. `connect_deadline` bounds connecting (and a TLS
// handshake); `connect_timeout` is for messages only.
using StreamConnector = std::function<Result<std::unique_ptr<ByteStream>>(
    const HttpUrl& url, Deadline connect_deadline, Millis connect_timeout)>;

// An HTTP/1.1 client for the URLs of `scheme`, opening connections with `connect`. Transport
// failures are errors: DeadlineExceeded for timeouts, Unavailable for refused, reset or closed
// connections and malformed answers. A request that fails on a reused idle connection before
// any byte of the answer arrived is sent once more on a new one (what curl does too). Not
// thread-safe: one instance per thread.
std::unique_ptr<HttpClient> NewHttp1Client(UrlScheme scheme, StreamConnector connect,
                                           const Http1Options& options = {});

// The TCP part, for connectors: a non-blocking, close-on-exec socket with TCP_NODELAY connected
// to the first address of url.host:url.port that answers (IPv4 and IPv6 through getaddrinfo).
Result<int> ConnectTcp(const HttpUrl& url, Deadline deadline, Millis connect_timeout);

// Waits until `fd` is ready for `events` (poll(2)) or the deadline passes; `what` names the wait
// in the DeadlineExceeded message ("timed out " + what).
Status WaitForFd(int fd, short events, Deadline deadline, const char* what);

// A ByteStream over a connected non-blocking socket; owns (closes) fd.
std::unique_ptr<ByteStream> NewSocketStream(int fd);

}  // namespace medic
