#pragma once

// The one test helper that enrols a host the way an admin and its agent would: a code from
// POST /api/v1/hosts/{host}/enroll (admin token), then POST /agent/v1/enroll with it. Works
// over any transport: `call` sends one request and returns {status, body}.

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <utility>

#include "core/json.h"

namespace medic::test {

// (method, path, bearer token or "", body) -> {HTTP status, body}
using CallFn =
    std::function<std::pair<int, std::string>(const std::string&, const std::string&,
                                               const std::string&, const std::string&)>;

// The enrolment code an admin gets for `host`; "" (with a test failure) on error.
inline std::string MakeEnrollCode(const CallFn& call, const std::string& admin_token,
                                  const std::string& host) {
  auto [status, body] = call("POST", "/api/v1/hosts/" + host + "/enroll", admin_token, "");
  EXPECT_EQ(status, 201) << body;
  auto j = ParseJsonObject(body);
  if (status != 201 || !j || !j->contains("code")) {
    ADD_FAILURE() << "no enrolment code for " << host << ": " << body;
    return "";
  }
  return (*j)["code"].get<std::string>();
}

// Enrols `host` and returns its credential; "" (with a test failure) on error.
inline std::string EnrollHost(const CallFn& call, const std::string& admin_token,
                              const std::string& host) {
  const std::string code = MakeEnrollCode(call, admin_token, host);
  auto [status, body] =
      call("POST", "/agent/v1/enroll", "", DumpJson(Json{{"name", host}, {"code", code}}));
  EXPECT_EQ(status, 201) << body;
  auto j = ParseJsonObject(body);
  if (status != 201 || !j || !j->contains("credential")) {
    ADD_FAILURE() << "could not enrol " << host << ": " << body;
    return "";
  }
  return (*j)["credential"].get<std::string>();
}

}  // namespace medic::test
