#include "cli/api.h"

#include <cctype>
#include <utility>

namespace medic::cli {

namespace {

std::string_view ReasonPhrase(int status) {
  switch (status) {
    case 400:
      return "bad request";
    case 401:
      return "unauthorized";
    case 403:
      return "forbidden";
    case 404:
      return "not found";
    case 405:
      return "method not allowed";
    case 409:
      return "conflict";
    case 413:
      return "payload too large";
    case 429:
      return "too many requests";
    case 500:
      return "internal server error";
    case 502:
      return "bad gateway";
    case 503:
      return "service unavailable";
    case 504:
      return "gateway timeout";
    default:
      return "error";
  }
}

// The detail of a transport error without any "METHOD URL: " prefix.
std::string TransportDetail(const Error& e, const std::string& url) {
  std::string msg = e.message;
  const std::string prefix = url + ": ";
  if (const size_t at = msg.find(prefix); at != std::string::npos) {
    msg = msg.substr(at + prefix.size());
  }
  // "Couldn't connect" reads "couldn't connect" after the colon; "SSL peer …" keeps its acronym.
  const auto upper = [&](size_t i) {
    return i < msg.size() && std::isupper(static_cast<unsigned char>(msg[i])) != 0;
  };
  if (!msg.empty() && !upper(1)) {
    msg[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(msg[0])));
  }
  return msg;
}

}  // namespace

ErrorCode ErrorCodeForHttpStatus(int status) {
  switch (status) {
    case 400:
      return ErrorCode::kInvalidArgument;
    case 401:
      return ErrorCode::kUnauthenticated;
    case 403:
      return ErrorCode::kPermissionDenied;
    case 404:
      return ErrorCode::kNotFound;
    case 409:
      return ErrorCode::kFailedPrecondition;
    case 413:
    case 429:
      return ErrorCode::kResourceExhausted;
    case 503:
      return ErrorCode::kUnavailable;
    case 504:
      return ErrorCode::kDeadlineExceeded;
    default:
      return ErrorCode::kInternal;
  }
}

std::string DescribeHttpError(const HttpResponse& response) {
  std::string detail;
  if (auto j = ParseJson(response.body); j.has_value() && j->is_object()) {
    if (auto it = j->find("error"); it != j->end() && it->is_string()) {
      detail = it->get<std::string>();
    }
  }
  if (detail.empty()) {
    detail = std::string(ReasonPhrase(response.status));
  }
  // One line, whatever the server sent.
  for (char& c : detail) {
    if (c == '\n' || c == '\r') {
      c = ' ';
    }
  }
  return std::to_string(response.status) + " " + detail;
}

ApiClient::ApiClient(HttpClient& http, std::string server, std::string token)
    : http_(http), server_(std::move(server)), token_(std::move(token)) {
  while (!server_.empty() && server_.back() == '/') {
    server_.pop_back();
  }
}

Result<HttpResponse> ApiClient::Send(std::string_view method, std::string_view path,
                                     const Json* body, std::string_view what) {
  HttpRequest req;
  req.method = std::string(method);
  req.url = server_ + std::string(path);
  req.headers.emplace_back("Authorization", "Bearer " + token_);
  req.headers.emplace_back("Accept", "application/json");
  if (body != nullptr) {
    req.headers.emplace_back("Content-Type", "application/json");
    req.body = DumpJson(*body);
  }
  Result<HttpResponse> resp = http_.Do(req);
  if (!resp.has_value()) {
    return Error{resp.error().code,
                 "cannot reach " + server_ + ": " + TransportDetail(resp.error(), req.url)};
  }
  if (resp->status < 200 || resp->status > 299) {
    return Error{ErrorCodeForHttpStatus(resp->status),
                 std::string(what) + ": " + DescribeHttpError(*resp)};
  }
  return resp;
}

Result<Json> ApiClient::Call(std::string_view method, std::string_view path, const Json* body,
                             std::string_view what) {
  ASSIGN_OR_RETURN(HttpResponse resp, Send(method, path, body, what));
  if (resp.body.empty()) {
    return Json::object();
  }
  Result<Json> j = ParseJson(resp.body);
  if (!j.has_value()) {
    return Internal(std::string(what) + ": the server's answer is not JSON (" + j.error().message +
                    ")");
  }
  return j;
}

}  // namespace medic::cli
