#pragma once

// A real ServerApp on 127.0.0.1:0 in a temp data dir, its admin and agent tokens, and a libcurl
// client to call it: the base of the HTTP-level server tests.

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "core/files.h"
#include "server/app/server_app.h"
#include "tests/fakes/temp_dir.h"
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
    auto deps = server::MakeRealServerDeps(config, ServerClock());
    ASSERT_TRUE(deps.has_value()) << deps.error().ToString();
    auto app = server::ServerApp::Create(config, std::move(*deps));
    ASSERT_TRUE(app.has_value()) << app.error().ToString();
    app_ = std::move(*app);
    ASSERT_TRUE(app_->Start().has_value());
    base_ = "http://127.0.0.1:" + std::to_string(app_->port());
    admin_ = std::string(Trim(ReadFile(dir_.File("data/admin.token")).value()));
    agent_ = std::string(Trim(ReadFile(dir_.File("data/agent.token")).value()));
  }
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
  std::string base_, admin_, agent_;
};

}  // namespace medic::test
