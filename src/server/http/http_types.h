#pragma once

// Socket-free request and response types: handlers and the router see only these, so that
// request handling is a function tests call without a network.

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/json.h"
#include "core/result.h"

namespace medic::server {

// Tells a handler that answers later (a long poll) that its client closed the connection before
// the answer came: the handler may stop waiting and let its Responder go (a Responder holds the
// connection). Thread-safe. The HTTP server makes one per request (ApiRequest::client_gone).
class ClientGone {
 public:
  // Runs `f` once the client is gone: later, on a network thread (it must be quick and must not
  // block), or at once on this thread if it already is. Replaces an earlier `f`.
  void OnGone(std::function<void()> f);
  // The HTTP server: the client closed. Runs the callback, once.
  void Notify();

 private:
  std::mutex mu_;
  bool gone_ = false;              // Guarded by mu_.
  std::function<void()> on_gone_;  // Guarded by mu_.
};

// Who may call a route (router.h: RoleName, ParseRole, Allows).
// kIngest (alert sources: Alertmanager, SNS) is apart, like kAgent: it calls only ingest routes,
// and only it does. Last, so the operator roles' order (viewer < operator < admin) stays.
enum class Role { kPublic, kAgent, kViewer, kOperator, kAdmin, kIngest };

struct ApiRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // as sent: "/api/v1/incidents?status=failed"
  std::string path;    // decoded path without query: "/api/v1/incidents"
  std::map<std::string, std::string> query;  // decoded query parameters
  std::string authorization;                 // the Authorization header, as sent
  std::string cookie;                        // the Cookie header, as sent
  std::string csrf_token;                    // the X-CSRF-Token header, as sent
  std::string content_type;
  std::string slack_signature;  // X-Slack-Signature, as sent (POST /api/v1/ingest/slack)
  std::string slack_timestamp;  // X-Slack-Request-Timestamp, as sent
  std::string body;
  std::string peer;  // "127.0.0.1:5555", informational
  // Set by the HTTP server while the request is being handled (null in requests built by hand).
  std::shared_ptr<ClientGone> client_gone;
  // Filled by the router:
  std::map<std::string, std::string> path_params;  // {id} -> "inc-42"
  std::string principal;                           // token name of the caller
  Role principal_role = Role::kPublic;             // the caller's role
  std::string session_id;  // when the caller came with a session cookie (not a bearer token)
  // For streams that outlive the request: true while the credential the request came with still
  // authenticates as the same principal with the route's role (false once the token is revoked
  // or the session signed out or expired). Set by the router for every non-public route; it
  // refers to the router, which must outlive its callers.
  std::function<bool()> still_authorized;
};

// The connection end of a streamed response, handed to ApiResponse::on_stream. Every member is
// thread-safe and never blocks. A chunk the peer does not take within the server's write timeout
// (HttpServerOptions::write_timeout_seconds) closes the connection.
struct StreamWriter {
  // Queues one chunk after those before it; false once the connection is closed or closing.
  std::function<bool(std::string)> write;
  // Bytes given to `write` (and `close`) that the socket has not taken yet: what the connection
  // holds in memory for this stream.
  std::function<size_t()> queued_bytes;
  // Drops the queued chunks not yet being written, sends `last` after the one being written
  // (if the peer takes it within the write timeout) and closes the connection.
  std::function<void(std::string last)> close;
  // False once the connection is closed or closing.
  std::function<bool()> open;
};

struct ApiResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // When set, the response is a stream (server-sent events): the headers and `body` are sent,
  // the connection stays open, and on_stream receives the writer for everything after.
  std::function<void(StreamWriter)> on_stream;
};

// Completes a request. May be called from any thread, exactly once.
using Responder = std::function<void(ApiResponse)>;

// What the server does with a request once its headers are in and before it reads any of the
// body (Router::Admit decides it from the route and the caller; HttpServer applies it).
struct Admission {
  // Set: the request is answered with this (401, 403, 404, 405) and its body is never read.
  std::optional<ApiResponse> refusal;
  size_t max_body_bytes = 0;  // a longer body is answered 413
  bool upload = false;        // a bulk upload: the longer body deadline applies
  // Admitted with a credential (a route that is not public): the connection's client is known.
  bool authenticated = false;
};

ApiResponse JsonResponse(int status, const Json& body);
// {"error": message} with the HTTP status that matches the error code.
ApiResponse ErrorResponse(const Error& error);
ApiResponse ErrorResponse(int status, std::string message);
// The one mapping from error codes to HTTP statuses.
int HttpStatusFor(ErrorCode code);

// Splits "a=1&b=x%20y" into decoded pairs. Malformed escapes are kept literally.
std::map<std::string, std::string> ParseQuery(std::string_view query);
std::string UrlDecode(std::string_view s);

// The value of cookie `name` in a Cookie header ("a=1; medic_session=x"), or "" when absent.
// Tolerates spaces, tabs, empty or malformed pairs and double-quoted values; the first
// occurrence wins.
std::string FindCookie(std::string_view header, std::string_view name);

// The headers every response of the server carries (nosniff, no framing, the content security
// policy, no referrer, no caching). HttpServer sets them before the route's own headers, so a
// route may override one (none does today).
const std::vector<std::pair<std::string, std::string>>& SecurityHeaders();

}  // namespace medic::server
