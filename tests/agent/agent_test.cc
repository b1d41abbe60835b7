// The whole Agent, its three threads running, against a fake server and fake host.

#include "agent/agent.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "tests/fakes/command_signing.h"
#include "tests/agent/fakes.h"

namespace medic::agent {
namespace {

using testing::FakeCommandRunner;
using testing::FakeProcFs;
using testing::FakeServer;
using testing::FakeServiceManager;
using testing::Fixture;
using testing::JsonResponse;

// Bounded wait for a condition the agent's threads bring about.
template <typename Pred>
bool WaitUntil(Pred pred, Millis limit = Millis(5000)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) {
      return false;
    }
    std::this_thread::sleep_for(Millis(5));
  }
  return true;
}

TEST(Agent, RegistersReportsRunsCommandsAndReportsCheckChangesAtOnce) {
  SystemClock clock;
  FakeProcFs procfs;
  procfs.SetFile("meminfo", Fixture("meminfo.txt"));
  procfs.SetFile("loadavg", Fixture("loadavg.txt"));
  procfs.SetMount("/", host::FsStats{1000, 400, 300, 100, 25});
  FakeCommandRunner runner;
  FakeServiceManager services;
  FakeServer server;

  std::atomic<int> health_status{200};
  std::atomic<bool> command_sent{false};
  server.SetHandler([&](const HttpRequest& req) -> Result<HttpResponse> {
    if (req.url == "http://app/health") {
      return JsonResponse(health_status.load(), "ok");
    }
    if (req.url.find("/agent/v1/commands") != std::string::npos) {
      if (!command_sent.exchange(true)) {
        protocol::Command c;
        c.id = "restart-1";
        c.action = "service.restart";
        c.params = {{"service", "nginx"}};
        c.expires_at = clock.Now() + std::chrono::seconds(60);
        return JsonResponse(200, DumpJson(protocol::ToJson(
                                     protocol::CommandBatch{{test::SignedFor("web-1", c)}})));
      }
      std::this_thread::sleep_for(Millis(20));  // a short "long poll"
      return JsonResponse(200, R"({"commands":[]})");
    }
    return JsonResponse(200, "{}");
  });

  AgentConfig config;
  config.server = "http://medic";
  config.name = "web-1";
  config.interval = Millis(10'000);  // no periodic report during the test after the first
  ServiceConfig nginx;
  nginx.name = "nginx";
  nginx.start = {"/usr/sbin/nginx"};
  config.services = {nginx};
  CheckConfig check;
  check.name = "web";
  check.url = "http://app/health";
  check.interval = Millis(50);
  config.checks = {check};

  Agent agent(config, "tok",
              AgentDeps{clock, procfs, runner, services, [&] { return server.NewClient(); }, {},
                        nullptr, test::TestCommandKey()},
              AgentTuning{.poll_wait = Millis(100)});
  agent.Start();

  auto reports = [&] {
    std::vector<protocol::Report> out;
    for (const auto& r : server.RequestsTo("/agent/v1/report")) {
      out.push_back(*protocol::ReportFromJson(*ParseJsonObject(r.body)));
    }
    return out;
  };
  // Registered, and the command ran once with its result delivered.
  ASSERT_TRUE(WaitUntil([&] { return !server.RequestsTo("/agent/v1/results").empty(); }));
  EXPECT_EQ(server.RequestsTo("/agent/v1/register").size(), 1u);
  EXPECT_EQ(services.calls(), std::vector<std::string>{"restart nginx"});
  auto result = protocol::CommandResultFromJson(
      *ParseJsonObject(server.RequestsTo("/agent/v1/results")[0].body));
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->id, "restart-1");
  EXPECT_TRUE(result->Succeeded());

  // The first report carries metrics and, soon, the healthy check.
  ASSERT_TRUE(WaitUntil([&] {
    for (const auto& r : reports()) {
      for (const auto& c : r.checks) {
        if (c.name == "web" && c.healthy) {
          return true;
        }
      }
    }
    return false;
  }));
  EXPECT_EQ(reports()[0].samples.at(0).metrics.count("mem_used_percent"), 1u);

  // nginx goes down: the change is reported at once, long before the 10 s interval.
  const auto before = std::chrono::steady_clock::now();
  health_status = 502;
  ASSERT_TRUE(WaitUntil([&] {
    auto rs = reports();
    return !rs.empty() && !rs.back().checks.empty() && !rs.back().checks.back().healthy;
  }));
  // Well inside the 10 s interval, with room for ASan on a loaded 2-core machine.
  EXPECT_LT(std::chrono::steady_clock::now() - before, Millis(5000));
  EXPECT_EQ(reports().back().checks.back().detail.rfind("HTTP 502 in ", 0), 0u);

  const auto stop_start = std::chrono::steady_clock::now();
  EXPECT_TRUE(agent.Stop());
  EXPECT_LT(std::chrono::steady_clock::now() - stop_start, Millis(5000));  // not a 10 s wait
}

}  // namespace
}  // namespace medic::agent
