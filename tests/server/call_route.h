#pragma once

// One request through a Router as the HTTP server would hand it over, waiting for the answer.
//
// Most routes answer before Handle returns, but not all: a long poll of /agent/v1/commands that
// finds nothing queued parks (even with wait_ms=0) and is answered later, from another thread,
// when a command is queued for its host or when a sweep expires it. The answer therefore goes to
// shared state, never to the caller's stack: a late answer after the caller gave up is harmless.

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>

#include "server/http/router.h"

namespace medic::test {

// The route's answer; status 0 (and a test failure) when none came within `wait`.
inline server::ApiResponse CallRoute(
    const server::Router& router, server::ApiRequest req,
    std::chrono::milliseconds wait = std::chrono::seconds(10)) {
  struct Answer {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<server::ApiResponse> response;
  };
  auto answer = std::make_shared<Answer>();
  const std::string what = req.method + " " + req.path;
  router.Handle(std::move(req), [answer](server::ApiResponse r) {
    std::lock_guard<std::mutex> lock(answer->mu);
    answer->response = std::move(r);
    answer->cv.notify_all();
  });
  std::unique_lock<std::mutex> lock(answer->mu);
  if (!answer->cv.wait_for(lock, wait, [&] { return answer->response.has_value(); })) {
    ADD_FAILURE() << "no answer to " << what << " within " << wait.count() << " ms";
    server::ApiResponse none;
    none.status = 0;
    none.body = "no answer";
    return none;
  }
  return std::move(*answer->response);
}

}  // namespace medic::test
