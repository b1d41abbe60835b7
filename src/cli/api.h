#pragma once

// ApiClient: the operator REST API of CONTRACT.md over an injected HttpClient. Its errors are
// already worded as the one line the CLI prints after "medic: ".

#include <string>
#include <string_view>

#include "core/json.h"
#include "core/result.h"
#include "transport/http_client.h"

namespace medic::cli {

class ApiClient {
 public:
  // `server` is the base URL ("http://127.0.0.1:8080", a trailing '/' is ignored); `token` goes
  // into "Authorization: Bearer". `http` must outlive this object.
  ApiClient(HttpClient& http, std::string server, std::string token);

  // Sends METHOD server+path with an optional JSON body and returns the 2xx answer.
  // `what` names the operation in errors: "approve inc-42: 404 incident inc-42 not found".
  // A transport failure reads "cannot reach http://127.0.0.1:8080: connection refused".
  Result<HttpResponse> Send(std::string_view method, std::string_view path, const Json* body,
                            std::string_view what);
  // Like Send, and parses the answer as JSON.
  Result<Json> Call(std::string_view method, std::string_view path, const Json* body,
                    std::string_view what);

  const std::string& server() const { return server_; }

 private:
  HttpClient& http_;
  std::string server_;
  std::string token_;
};

// Maps an HTTP status to the error code the rest of medic uses.
ErrorCode ErrorCodeForHttpStatus(int status);

// "404 incident inc-42 not found": the status and the server's {"error":...} message, or the
// status's reason phrase when the body carries none.
std::string DescribeHttpError(const HttpResponse& response);

}  // namespace medic::cli
