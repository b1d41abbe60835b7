#pragma once

// A real ServerApp on 127.0.0.1:0 in a temp data dir, its admin and bootstrap tokens, host
// web-1 enrolled (agent_ is its credential), and a libcurl client to call it: the base of the
// HTTP-level server tests. Enroll() enrols more hosts.

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "core/files.h"
#include "server/app/server_app.h"
#include "tests/fakes/temp_dir.h"
#include "tests/server/enroll_host.h"
#include "transport/http_client.h"

namespace medic::test {

class ServerFixture : public ::testing::Test {
 protected:
  void TearDown() override {
    if (app_) {
      app_->Stop();
    }
  }
  // Starts (or, after a Stop, restarts) the server on the same data dir.
  void StartServer() {
    server::ServerConfig config;
    config.listen = "127.0.0.1:0";
    config.data_dir = dir_.File("data");
    Configure(config);
    auto deps = server::MakeRealServerDeps(config, ServerClock());
    ASSERT_TRUE(deps.has_value()) << deps.error().ToString();
    auto app = server::ServerApp::Create(config, std::move(*deps));
    ASSERT_TRUE(app.has_value()) << app.error().ToString();
    app_ = std::move(*app);
    ASSERT_TRUE(app_->Start().has_value());
    base_ = "http://127.0.0.1:" + std::to_string(app_->port());
    admin_ = std::string(Trim(ReadFile(dir_.File("data/admin.token")).value()));
    bootstrap_ = std::string(Trim(ReadFile(dir_.File("data/agent.token")).value()));
    if (agent_.empty()) {  // a restarted server still knows it
      agent_ = Enroll("web-1");
    }
  }
  // Enrols `host` (a code from the admin token, then the agent's enrolment) and returns its
  // credential, which replaces any it had.
  std::string Enroll(const std::string& host) { return EnrollHost(Caller(), admin_, host); }
  CallFn Caller() {
    return [this](const std::string& method, const std::string& path, const std::string& token,
                  const std::string& body) {
      HttpResponse r = Call(method, path, token, body);
      return std::make_pair(r.status, r.body);
    };
  }
  // A test's changes to the server config (e.g. short timeouts), before the server is made.
  virtual void Configure(server::ServerConfig&) {}
  // The server's clock: real time unless a test overrides it (e.g. with a ManualClock).
  virtual const Clock& ServerClock() const { return clock_; }
  // Without a token, no Authorization header is sent.
  HttpResponse Call(const std::string& method, const std::string& path, const std::string& token,
                    const std::string& body = "") {
    HttpRequest req;
    req.method = method;
    req.url = base_ + path;
    if (!token.empty()) {
      req.headers.emplace_back("Authorization", "Bearer " + token);
    }
    req.body = body;
    auto r = client_->Do(req);
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().ToString());
    return r.value_or(HttpResponse{});
  }

  TempDir dir_;
  SystemClock clock_;
  std::unique_ptr<server::ServerApp> app_;
  std::unique_ptr<HttpClient> client_ = NewCurlHttpClient();
  std::string base_, admin_;
  std::string bootstrap_;  // agent.token: enrolment only
  std::string agent_;      // web-1's own credential
};

}  // namespace medic::test
