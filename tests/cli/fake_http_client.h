#pragma once

// A recording HttpClient for CLI tests: answers requests from a queue (or a default answer) and
// keeps every request it was asked to send.

#include <deque>
#include <functional>
#include <vector>

#include "transport/http_client.h"

namespace medic::cli {

class FakeHttpClient : public HttpClient {
 public:
  Result<HttpResponse> Do(const HttpRequest& request) override {
    requests_.push_back(request);
    if (handler_) {
      return handler_(request);
    }
    if (!answers_.empty()) {
      Result<HttpResponse> r = answers_.front();
      answers_.pop_front();
      return r;
    }
    return default_answer_;
  }

  void Answer(int status, std::string body) {
    answers_.push_back(HttpResponse{status, std::move(body), "application/json"});
  }
  void AnswerError(Error e) { answers_.push_back(std::move(e)); }
  void SetDefault(Result<HttpResponse> r) { default_answer_ = std::move(r); }
  // Answers every request with `handler` instead (a tiny fake server).
  void SetHandler(std::function<Result<HttpResponse>(const HttpRequest&)> handler) {
    handler_ = std::move(handler);
  }

  const std::vector<HttpRequest>& requests() const { return requests_; }
  const HttpRequest& last() const { return requests_.back(); }

  // The value of header `name` in request `r`, or "" if absent.
  static std::string Header(const HttpRequest& r, const std::string& name) {
    for (const auto& [k, v] : r.headers) {
      if (k == name) {
        return v;
      }
    }
    return "";
  }

 private:
  std::deque<Result<HttpResponse>> answers_;
  Result<HttpResponse> default_answer_ = HttpResponse{200, "{}", "application/json"};
  std::vector<HttpRequest> requests_;
  std::function<Result<HttpResponse>(const HttpRequest&)> handler_;
};

}  // namespace medic::cli
