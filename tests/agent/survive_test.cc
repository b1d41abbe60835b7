// Issue 3 acceptance (integration, ~45 s): the real medic-agent against the real medic-server.
// The server is stopped for 30 s and started again on the same port and data directory; every
// sample the agent took during the outage must arrive afterwards, in order, with the timestamp
// it was taken at (the restarted server starts with an empty metric history, so whatever it holds
// from the outage came from the agent's buffer).

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "core/files.h"
#include "core/json.h"
#include "transport/http_client.h"
#include "tests/fakes/subprocess.h"

namespace medic::agent {
namespace {

using Steady = std::chrono::steady_clock;

std::string Binary(const std::string& name, const char* built) {
  const char* dir = std::getenv("MEDIC_BIN_DIR");
  return dir != nullptr ? std::string(dir) + "/" + name : std::string(built);
}

struct Point {
  WallTime t;
  double v;
};

class SurviveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    InitHttpClientLibrary();
    char tmpl[] = "/tmp/medic-survive-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ASSERT_EQ(::mkdir((dir_ + "/data").c_str(), 0700), 0);
    http_ = NewCurlHttpClient();
  }
  void TearDown() override {
    test::StopProcess(agent_);
    test::StopProcess(server_);
    if (!HasFailure()) {
      ASSERT_EQ(::system(("rm -rf -- '" + dir_ + "'").c_str()), 0);
    } else {
      std::cerr << "logs kept in " << dir_ << "\n";
    }
  }

  // The first start binds port 0 and reads back the port it got; a restart asks for that same
  // port again (the agent's config names it), held by the test since the server stopped
  // (StopServer), so nothing else takes it during the outage; medic-server names the port if
  // it cannot listen there.
  void StartServer() {
    const size_t log_from = FileSize(dir_ + "/server.log");
    server_ =
        test::SpawnWithLog({Binary("medic-server", MEDIC_SERVER_BINARY), "--listen",
                            "127.0.0.1:" + std::to_string(port_), "--data-dir", dir_ + "/data"},
                           dir_ + "/server.log");
    ASSERT_GT(server_, 0);
    const int port = test::WaitForReportedPort(server_, dir_ + "/server.log",
                                               test::kServerServingOn, Millis(10'000), log_from);
    ASSERT_GT(port, 0) << "medic-server did not start"
                       << (port_ != 0 ? " again on port " + std::to_string(port_) : "") << ": "
                       << ReadFile(dir_ + "/server.log").value_or("").substr(log_from);
    port_ = port;
    const auto deadline = Steady::now() + Millis(10'000);
    while (Steady::now() < deadline) {
      if (PathExists(dir_ + "/data/admin.token")) {
        HttpRequest req;
        req.url = Url("/api/v1/hosts");
        req.headers = {{"Authorization", "Bearer " + AdminToken()}};
        req.timeout = Millis(1000);
        auto r = http_->Do(req);
        if (r && r->status == 200) {
          held_.reset();
          return;
        }
      }
      std::this_thread::sleep_for(Millis(20));
    }
    FAIL() << "medic-server did not come up: " << ReadFile(dir_ + "/server.log").value_or("");
  }

  // Stops the server and holds its port until it serves again.
  void StopServer() {
    test::StopProcess(server_);
    held_ = std::make_unique<test::HeldPort>(port_);
    ASSERT_EQ(held_->port(), port_) << "port " << port_ << " was taken once medic-server stopped";
  }

  static size_t FileSize(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 ? static_cast<size_t>(st.st_size) : 0;
  }

  std::string Url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  std::string AdminToken() const {
    std::string t = ReadFile(dir_ + "/data/admin.token").value_or("");
    while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) {
      t.pop_back();
    }
    return t;
  }

  // The server's mem_used_percent history of host survive-1 since `since`.
  std::vector<Point> History(WallTime since) {
    HttpRequest req;
    req.url = Url("/api/v1/hosts/survive-1/metrics?metric=mem_used_percent&since=" +
                  FormatRfc3339(since));
    req.headers = {{"Authorization", "Bearer " + AdminToken()}};
    auto r = http_->Do(req);
    std::vector<Point> out;
    if (!r || r->status != 200) {
      return out;
    }
    auto j = ParseJsonObject(r->body);
    if (!j) {
      return out;
    }
    for (const auto& p : (*j)["points"]) {
      auto t = ParseRfc3339(p["t"].get<std::string>());
      if (t) {
        out.push_back({*t, p["v"].get<double>()});
      }
    }
    return out;
  }

  std::string dir_;
  int port_ = 0;  // 0 until the first start said which port it got
  std::unique_ptr<test::HeldPort> held_;  // port_ while the server is down
  pid_t server_ = 0;
  pid_t agent_ = 0;
  std::unique_ptr<HttpClient> http_;
};

TEST_F(SurviveTest, EverySampleOfA30sOutageArrivesLaterWithItsOriginalTimestamp) {
  StartServer();
  ASSERT_FALSE(HasFatalFailure());
  // Enrolled with a code from the admin token; the credential it keeps in its state directory
  // must still work after the server's restart.
  HttpRequest enroll;
  enroll.method = "POST";
  enroll.url = Url("/api/v1/hosts/survive-1/enroll");
  enroll.headers = {{"Authorization", "Bearer " + AdminToken()}};
  auto code = http_->Do(enroll);
  ASSERT_TRUE(code.has_value() && code->status == 201) << (code ? code->body : "no answer");
  const std::string yaml = "server: " + Url("") + "\nname: survive-1\nstate_dir: " + dir_ +
                           "/agent-state\nenroll_code: " +
                           ParseJsonObject(code->body).value()["code"].get<std::string>() +
                           "\ninterval: 1s\n";
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/agent.yaml", yaml).has_value());
  agent_ = test::SpawnWithLog(
      {Binary("medic-agent", MEDIC_AGENT_BINARY), "--config", dir_ + "/agent.yaml"},
      dir_ + "/agent.log");
  ASSERT_GT(agent_, 0);

  const WallTime test_start = std::chrono::system_clock::now() - std::chrono::seconds(5);
  const auto up_deadline = Steady::now() + Millis(15'000);
  while (History(test_start).size() < 3 && Steady::now() < up_deadline) {
    std::this_thread::sleep_for(Millis(100));
  }
  ASSERT_GE(History(test_start).size(), 3u) << ReadFile(dir_ + "/agent.log").value_or("");

  // The outage: the scenario itself is 30 s of wall time.
  ASSERT_NO_FATAL_FAILURE(StopServer());
  const WallTime down_at = std::chrono::system_clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(30));
  const WallTime up_at = std::chrono::system_clock::now();
  StartServer();
  ASSERT_FALSE(HasFatalFailure());

  // Wait until the replay has reached a sample taken after the restart.
  std::vector<Point> points;
  const auto replay_deadline = Steady::now() + Millis(20'000);
  while (Steady::now() < replay_deadline) {
    points = History(down_at - std::chrono::seconds(5));
    if (!points.empty() && points.back().t > up_at) {
      break;
    }
    std::this_thread::sleep_for(Millis(200));
  }
  ASSERT_FALSE(points.empty());
  ASSERT_GT(points.back().t, up_at) << "the replay did not finish";

  std::vector<Point> outage;
  for (const auto& p : points) {
    if (p.t >= down_at && p.t < up_at) {
      outage.push_back(p);
    }
  }
  // One sample a second for 30 s: at least 29 of them (the edges may fall either side).
  EXPECT_GE(outage.size(), 29u);
  ASSERT_FALSE(outage.empty());
  EXPECT_LT(outage.front().t - down_at, Millis(1500));
  EXPECT_LT(up_at - outage.back().t, Millis(1500));
  for (size_t i = 1; i < points.size(); ++i) {
    const auto gap = std::chrono::duration_cast<Millis>(points[i].t - points[i - 1].t);
    EXPECT_GT(gap, Millis(0)) << "out of order or repeated at " << i;
    EXPECT_LT(gap, Millis(1500)) << "a sample is missing before " << FormatRfc3339(points[i].t);
  }
  for (const auto& p : outage) {
    EXPECT_GT(p.v, 0.0);
    EXPECT_LE(p.v, 100.0);
  }
}

}  // namespace
}  // namespace medic::agent
