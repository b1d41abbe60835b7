// Issue 18 end to end: the real medic-server and the real medic-agent (interval 10 s, so only the
// fast watch can be quick), the agent's primary mount a 4 MiB tmpfs the test mounts. Filling it
// past 85 % puts Disk-Critical-ASG in ALARM within kDiskAlarmBound of the write, measured by
// polling the server's alarm API; the server is in approval mode, so nothing is fixed.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <string>
#include <thread>

#include "core/files.h"
#include "core/json.h"
#include "tests/agent/chaos_sandbox.h"
#include "tests/fakes/subprocess.h"
#include "tests/fakes/temp_dir.h"
#include "transport/http_client.h"

namespace medic {
namespace {

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

// From the write that fills the disk to the alarm seen through the API: the agent's fast watch
// (50 ms), its report, the engine's 1-of-1 rule, and our polling.
constexpr auto kDiskAlarmBound = 500ms;

std::string Bin(const std::string& name) {
  const char* dir = std::getenv("MEDIC_BIN_DIR");
  return std::string(dir != nullptr ? dir : "build/bin") + "/" + name;
}

Result<HttpResponse> Call(HttpClient& client, const std::string& method, const std::string& url,
                          const std::string& token) {
  HttpRequest req;
  req.method = method;
  req.url = url;
  req.timeout = Millis(5'000);
  req.headers.emplace_back("Authorization", "Bearer " + token);
  return client.Do(req);
}

TEST(FastDiskAlarmTest, TheRealServerFiresTheDiskAlarmSoonAfterTheCrossing) {
  InitHttpClientLibrary();
  setenv("MEDIC_AI_PROVIDER", "none", 1);
  test::TempDir dir;
  chaos_testing::TmpfsDir fs("4m");
  ASSERT_TRUE(fs.ok()) << fs.error();
  auto client = NewCurlHttpClient();
  test::Subprocess server(
      {Bin("medic-server"), "--data-dir", dir.File("data"), "--listen", "127.0.0.1:0"},
      dir.File("server.log"));
  auto logs = [&] {
    return "server:\n" + ReadFileTail(dir.File("server.log"), 3000).value_or("") +
           "\nagent:\n" + ReadFileTail(dir.File("agent.log"), 3000).value_or("");
  };
  const int port =
      test::WaitForReportedPort(server.pid(), dir.File("server.log"), test::kServerServingOn, 15s);
  ASSERT_GT(port, 0) << logs();
  const std::string url = "http://127.0.0.1:" + std::to_string(port);
  std::string admin;
  const auto deadline = Steady::now() + 15s;
  while (Steady::now() < deadline) {
    admin = std::string(Trim(ReadFile(dir.File("data/admin.token")).value_or("")));
    auto r = admin.empty() ? Result<HttpResponse>(Unavailable("no token"))
                           : Call(*client, "GET", url + "/api/v1/settings", admin);
    if (r && r->status == 200) {
      break;
    }
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_FALSE(admin.empty()) << logs();
  auto code = Call(*client, "POST", url + "/api/v1/hosts/web-1/enroll", admin);
  ASSERT_TRUE(code && code->status == 201) << (code ? code->body : code.error().message);
  const std::string enroll_code = ParseJsonObject(code->body).value()["code"];
  ASSERT_TRUE(WriteFileAtomic(dir.File("agent.yaml"),
                              "server: " + url + "\nname: web-1\nstate_dir: " +
                                  dir.File("state") + "\nenroll_code: " + enroll_code +
                                  "\ninterval: 10s\nmounts: [" + fs.mount() +
                                  "]\ndisk_primary_mount: " + fs.mount() +
                                  "\nlog_dir: " + fs.mount() + "\n")
                  .has_value());
  test::Subprocess agent({Bin("medic-agent"), "--config", dir.File("agent.yaml")},
                         dir.File("agent.log"));

  // The state of Disk-Critical-ASG on web-1 ("" while it has none).
  auto disk_alarm = [&]() -> std::string {
    auto r = Call(*client, "GET", url + "/api/v1/alarms?host=web-1&alarm=Disk-Critical-ASG",
                  admin);
    if (!r || r->status != 200) {
      return "";
    }
    auto j = ParseJsonObject(r->body);
    if (!j || (*j)["alarms"].empty()) {
      return "";
    }
    return (*j)["alarms"][0].value("state", "");
  };
  // Registered and reported (the alarm has a state: OK on the empty tmpfs); then a few readings
  // of the fast watch (every 50 ms; the first only records the side of each threshold).
  const auto registered_by = Steady::now() + 20s;
  while (disk_alarm() != "OK" && Steady::now() < registered_by) {
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_EQ(disk_alarm(), "OK") << logs();
  std::this_thread::sleep_for(300ms);

  // 3.6 MiB of 4: 90 % > 85.
  {
    const int fd = ::open((fs.mount() + "/app.log").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    const std::string chunk(3686400, 'x');
    ASSERT_EQ(::write(fd, chunk.data(), chunk.size()), static_cast<ssize_t>(chunk.size()));
    ::close(fd);
  }
  const auto filled = Steady::now();
  ASSERT_GT(chaos_testing::UsedPercent(fs.mount()), 85);
  std::string state;
  while ((state = disk_alarm()) != "ALARM" && Steady::now() < filled + 10s) {
    std::this_thread::sleep_for(5ms);
  }
  const auto seen = Steady::now();
  ASSERT_EQ(state, "ALARM") << logs();
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(seen - filled);
  std::cout << "Disk-Critical-ASG in ALARM " << took.count() << " ms after the write\n";
  EXPECT_LT(took, kDiskAlarmBound) << logs();

  agent.SignalAndWait(SIGTERM, 10s);
  server.SignalAndWait(SIGTERM, 10s);
}

}  // namespace
}  // namespace medic
