// Target-group health checks against real loopback HTTP servers (port 0): a target turns
// unhealthy (503, then connection refused) and back, through the real checker threads and
// libcurl prober, into the alarm engine; then the same through a whole ServerApp and its API.

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "core/files.h"
#include "server/alarms/alarms.h"
#include "server/http/http_server.h"
#include "server/app/server_app.h"
#include "server/fleet/target_groups.h"
#include "tests/fakes/http_server.h"
#include "tests/fakes/temp_dir.h"
#include "tests/server/enroll_host.h"
#include "transport/http_client.h"

namespace medic::server {
namespace {

// A loopback HTTP server answering every request with `status`.
class Target {
 public:
  Target() {
    server_ = std::make_unique<HttpServer>(
        [this](ApiRequest, Responder respond) {
          respond(JsonResponse(status.load(), Json::object()));
        },
        HttpServerOptions{});
    EXPECT_TRUE(server_->Listen("127.0.0.1", 0).has_value());
    server_->Start();
    url_ = "http://127.0.0.1:" + std::to_string(server_->port()) + "/";
  }
  ~Target() { Stop(); }
  void Stop() { server_->Stop(); }
  const std::string& url() const { return url_; }
  std::atomic<int> status{200};

 private:
  std::unique_ptr<HttpServer> server_;
  std::string url_;
};

// Polls `done` every 20 ms until it holds or `timeout` passes.
template <typename F>
bool WaitFor(F done, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

TargetGroupConfig FastWeb() {
  TargetGroupConfig g;
  g.interval = Millis(200);
  g.timeout = Millis(150);
  return g;
}

TEST(TargetGroupIntegrationTest, RealTargetsTurnUnhealthyAndBack) {
  InitHttpClientLibrary();
  Target web1, web2;
  SystemClock clock;
  TargetGroups groups({FastWeb()});
  AlarmEngine alarms(DefaultAlarmRules(), Millis(100));
  TargetGroupChecker checker(
      groups, clock, [] { return NewHttpProber(); },
      [&](const std::vector<TargetFeed>& feeds) {
        for (const auto& f : feeds) {
          alarms.Observe(f.host, f.series, f.value, f.t);
        }
      },
      2);
  groups.Register("web-1", {{"web", web1.url()}}, clock.Now());
  groups.Register("web-2", {{"web", web2.url()}}, clock.Now());
  checker.Start();
  auto state = [&](const std::string& host) { return alarms.StateOf("Nginx-Down-ALB", host); };
  ASSERT_TRUE(WaitFor(
      [&] { return state("web-1") == AlarmState::kOk && state("web-2") == AlarmState::kOk; }));
  EXPECT_EQ(groups.Snapshot()[0].healthy_count, 2);

  web1.status = 503;
  ASSERT_TRUE(WaitFor([&] { return state("web-1") == AlarmState::kAlarm; }));
  EXPECT_EQ(state("web-2"), AlarmState::kOk);
  auto snap = groups.Snapshot();
  EXPECT_EQ(snap[0].unhealthy_count, 1);
  EXPECT_EQ(snap[0].members[0].detail, "HTTP 503");

  web1.status = 200;
  ASSERT_TRUE(WaitFor([&] { return state("web-1") == AlarmState::kOk; }));

  web2.Stop();  // connection refused
  ASSERT_TRUE(WaitFor([&] { return state("web-2") == AlarmState::kAlarm; }));
  EXPECT_EQ(state("web-1"), AlarmState::kOk);
  checker.Stop();
}

TEST(TargetGroupIntegrationTest, ServerAppChecksRegisteredTargetsAndShowsThemInTheApi) {
  InitHttpClientLibrary();
  test::TempDir dir;
  Target web;
  SystemClock clock;
  ServerConfig config;
  config.listen = "127.0.0.1:0";
  config.data_dir = dir.File("data");
  config.agent_interval_ms = 200;
  config.target_groups = {FastWeb()};
  auto deps = MakeRealServerDeps(config, clock);
  ASSERT_TRUE(deps.has_value()) << deps.error().ToString();
  auto app = ServerApp::Create(config, std::move(*deps));
  ASSERT_TRUE(app.has_value()) << app.error().ToString();
  ASSERT_TRUE((*app)->Start().has_value());
  const std::string base = "http://127.0.0.1:" + std::to_string((*app)->port());
  const std::string admin(Trim(ReadFile(dir.File("data/admin.token")).value()));
  auto client = NewCurlHttpClient();
  auto call = [&](const std::string& method, const std::string& path, const std::string& token,
                  const std::string& body = "") {
    HttpRequest req;
    req.method = method;
    req.url = base + path;
    req.headers.emplace_back("Authorization", "Bearer " + token);
    req.body = body;
    auto r = client->Do(req);
    EXPECT_TRUE(r.has_value());
    auto j = ParseJson(r ? r->body : "{}");
    return j.value_or(Json::object());
  };
  const std::string agent = test::EnrollHost(
      [&](const std::string& method, const std::string& path, const std::string& token,
          const std::string& body) {
        HttpRequest req;
        req.method = method;
        req.url = base + path;
        if (!token.empty()) {
          req.headers.emplace_back("Authorization", "Bearer " + token);
        }
        req.body = body;
        auto r = client->Do(req);
        return r ? std::make_pair(r->status, r->body) : std::make_pair(0, std::string());
      },
      admin, "web-1");
  protocol::RegisterRequest reg;
  reg.name = "web-1";
  reg.targets = {{"web", web.url()}};
  call("POST", "/agent/v1/register", agent, DumpJson(protocol::ToJson(reg)));

  auto alarm = [&]() -> Json {
    const Json all = call("GET", "/api/v1/alarms", admin);
    for (const auto& a : all["alarms"]) {
      if (a["alarm_name"] == "Nginx-Down-ALB" && a["host"] == "web-1") {
        return a;
      }
    }
    return Json::object();
  };
  auto group = [&]() -> Json {
    Json groups = call("GET", "/api/v1/target-groups", admin)["target_groups"];
    return groups.empty() ? Json::object() : groups[0];
  };
  ASSERT_TRUE(WaitFor([&] { return group()["healthy_count"] == 1; })) << group().dump();
  Json g = group();
  EXPECT_EQ(g["name"], "web");
  EXPECT_EQ(g["members"][0]["host"], "web-1");
  EXPECT_EQ(g["members"][0]["url"], web.url());
  EXPECT_EQ(g["members"][0]["health"], "healthy");
  ASSERT_TRUE(WaitFor([&] { return alarm().value("state", "") == "OK"; }));

  web.status = 500;
  ASSERT_TRUE(WaitFor([&] { return alarm().value("state", "") == "ALARM"; })) << alarm().dump();
  Json a = alarm();
  EXPECT_EQ(a["last_value"], 1);
  EXPECT_EQ(a["remediating"], false);
  EXPECT_TRUE(ParseRfc3339(a["since"].get<std::string>()).has_value());
  EXPECT_NE(a["reason"].get<std::string>().find("1 of 1 periods > 0"), std::string::npos) << a;
  EXPECT_EQ(group()["unhealthy_count"], 1);
  // The alarm opened an incident, like a report-driven one.
  EXPECT_TRUE(
      WaitFor([&] { return !call("GET", "/api/v1/incidents", admin)["incidents"].empty(); }));

  web.status = 200;
  ASSERT_TRUE(WaitFor([&] { return alarm().value("state", "") == "OK"; })) << alarm().dump();
  // Viewers can read the groups; the listing names the route.
  Json routes = call("GET", "/api/v1", admin)["routes"];
  EXPECT_NE(routes.dump().find("/api/v1/target-groups"), std::string::npos);
  (*app)->Stop();
}

// A target that answers with an endless body: the probe reads kProbeBodyBytes of it and returns
// the status (without the cap the libcurl client would read 64 MiB and fail the probe). The
// body cap itself is tested against both clients in tests/transport/body_cap_test.cc.
TEST(TargetGroupIntegrationTest, AProbeReadsAFewKibOfAnEndlessBodyAndReturnsTheStatus) {
  InitHttpClientLibrary();
  for (const int status : {200, 503}) {
    SCOPED_TRACE(status);
    test::FakeHttpServer target;
    target.Reply({.raw = "HTTP/1.1 " + std::to_string(status) +
                         " X\r\nTransfer-Encoding: chunked\r\n\r\n",
                  .then = test::CannedReply::Then::kStream,
                  .stream = "4000\r\n" + std::string(0x4000, 'x') + "\r\n"});
    auto prober = NewHttpProber();
    // A timeout far beyond what reading 4 KiB takes: the cap, not a deadline, ends the probe.
    auto got = prober->Probe(target.url("/health"), Millis(60'000));
    ASSERT_TRUE(got.has_value()) << got.error().ToString();
    EXPECT_EQ(*got, status);
    ASSERT_EQ(target.requests().size(), 1u);
    EXPECT_EQ(target.requests()[0].Header("User-Agent"), "medic-target-check");
  }
}

}  // namespace
}  // namespace medic::server
