// Issue 15, part C (integration, ~25 s): one real medic-agent given the URLs of two real
// medic-servers. It reports to the first; the first is killed (SIGKILL) and, while no server
// answers, the agent keeps sampling into its buffer; the second comes up and receives every
// sample taken since the kill, in order, with the time it was taken at, and a command sent
// through the second runs on the host; then the second is killed and the first restarted, and
// the agent is back on the first.
//
// The two servers do not share a store yet (PostgreSQL is issue 15's part A): the second
// starts from a copy of the first's data directory taken after the kill (SQLite survives
// SIGKILL), so it knows the host's credential and signs commands with the same key, as servers
// on one store would. A server's metric history lives in its memory: whatever the second holds
// came from the agent after the failover.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <iostream>
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

void KillNow(pid_t& pid) {
  ASSERT_GT(pid, 0);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  ASSERT_EQ(::waitpid(pid, nullptr, 0), pid);
  pid = 0;
}

std::string Trimmed(std::string t) {
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) {
    t.pop_back();
  }
  return t;
}

struct Point {
  WallTime t;
  double v;
};

// One medic-server process: its port, data directory and log.
struct ServerProc {
  int port = 0;
  std::string data_dir;
  std::string log;
  pid_t pid = 0;

  std::string Url(const std::string& path = "") const {
    return "http://127.0.0.1:" + std::to_string(port) + path;
  }
  std::string AdminToken() const {
    return Trimmed(ReadFile(data_dir + "/admin.token").value_or(""));
  }
};

class FailoverBinaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    InitHttpClientLibrary();
    char tmpl[] = "/tmp/medic-failover-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    // The agent's config names both servers' ports before b first starts and while a is down:
    // ports chosen in advance and held for the whole test (HeldPort; each server binds beside
    // the hold), so nothing else takes one while its server is down.
    a_.port = a_held_.port();
    b_.port = b_held_.port();
    ASSERT_GT(a_.port, 0);
    ASSERT_GT(b_.port, 0);
    a_.data_dir = dir_ + "/data-a";
    b_.data_dir = dir_ + "/data-b";
    a_.log = dir_ + "/server-a.log";
    b_.log = dir_ + "/server-b.log";
    ASSERT_EQ(::mkdir(a_.data_dir.c_str(), 0700), 0);
    // Operators may run chaos on fo-1 (the command sent through the second server).
    ASSERT_TRUE(
        WriteFileAtomic(dir_ + "/server.yaml", "hosts:\n  \"fo-*\": {chaos_allowed: true}\n")
            .has_value());
    http_ = NewCurlHttpClient();
  }

  void TearDown() override {
    test::StopProcess(agent_);
    test::StopProcess(a_.pid);
    test::StopProcess(b_.pid);
    if (HasFailure()) {
      for (const char* log : {"/agent.log", "/server-a.log", "/server-b.log"}) {
        const std::string text = ReadFile(dir_ + log).value_or("");
        std::cerr << "----- " << log << " (last 4000 bytes)\n"
                  << text.substr(text.size() > 4000 ? text.size() - 4000 : 0) << "\n";
      }
    }
    ASSERT_EQ(::system(("rm -rf -- '" + dir_ + "'").c_str()), 0);
  }

  void StartServer(ServerProc& s) {
    s.pid = test::SpawnWithLog(
        {Binary("medic-server", MEDIC_SERVER_BINARY), "--config", dir_ + "/server.yaml", "--listen",
         "127.0.0.1:" + std::to_string(s.port), "--data-dir", s.data_dir},
        s.log);
    ASSERT_GT(s.pid, 0);
    const auto deadline = Steady::now() + Millis(15'000);
    while (Steady::now() < deadline) {
      if (PathExists(s.data_dir + "/admin.token")) {
        HttpRequest req;
        req.url = s.Url("/api/v1/hosts");
        req.headers = {{"Authorization", "Bearer " + s.AdminToken()}};
        req.timeout = Millis(1000);
        auto r = http_->Do(req);
        if (r && r->status == 200) {
          return;
        }
      }
      std::this_thread::sleep_for(Millis(20));
    }
    FAIL() << "medic-server on port " << s.port << " did not come up. "
           << test::PortTakenMessage(s.log, s.port);
  }

  // The server's mem_used_percent history of host fo-1 since `since`.
  std::vector<Point> History(const ServerProc& s, WallTime since) {
    HttpRequest req;
    req.url = s.Url("/api/v1/hosts/fo-1/metrics?metric=mem_used_percent&since=" +
                    FormatRfc3339(since));
    req.headers = {{"Authorization", "Bearer " + s.AdminToken()}};
    req.timeout = Millis(2000);
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

  // Waits (bounded) until `s` holds a point of fo-1 taken after `after`; returns its history
  // since `since`.
  std::vector<Point> WaitForPointAfter(const ServerProc& s, WallTime since, WallTime after,
                                       Millis limit) {
    std::vector<Point> points;
    const auto deadline = Steady::now() + limit;
    while (Steady::now() < deadline) {
      points = History(s, since);
      if (!points.empty() && points.back().t > after) {
        break;
      }
      std::this_thread::sleep_for(Millis(100));
    }
    return points;
  }

  // The agent's ledger line with the result of command `id`, if it is there yet.
  std::optional<Json> LedgerResult(const std::string& id) {
    const std::string text = ReadFile(dir_ + "/agent-state/commands.log").value_or("");
    size_t start = 0;
    while (start < text.size()) {
      const size_t end = text.find('\n', start);
      const std::string line = text.substr(start, end == std::string::npos ? end : end - start);
      start = end == std::string::npos ? text.size() : end + 1;
      auto j = ParseJsonObject(line);
      if (j && j->contains("result") && (*j)["result"].value("id", "") == id) {
        return (*j)["result"];
      }
    }
    return std::nullopt;
  }

  std::string dir_;
  const test::HeldPort a_held_, b_held_;
  ServerProc a_, b_;
  pid_t agent_ = 0;
  std::unique_ptr<HttpClient> http_;
};

TEST_F(FailoverBinaryTest, TheAgentMovesToTheOtherServerWithItsBufferAndBackAgain) {
  StartServer(a_);
  ASSERT_FALSE(HasFatalFailure());
  HttpRequest enroll;
  enroll.method = "POST";
  enroll.url = a_.Url("/api/v1/hosts/fo-1/enroll");
  enroll.headers = {{"Authorization", "Bearer " + a_.AdminToken()}};
  auto code = http_->Do(enroll);
  ASSERT_TRUE(code.has_value() && code->status == 201) << (code ? code->body : "no answer");
  // Both URLs, a first; b is not even running yet.
  const std::string yaml =
      "server:\n  - " + a_.Url() + "\n  - " + b_.Url() + "\nname: fo-1\nstate_dir: " + dir_ +
      "/agent-state\nenroll_code: " +
      ParseJsonObject(code->body).value()["code"].get<std::string>() +
      "\ninterval: 500ms\nchaos: {allowed: true}\n";
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/agent.yaml", yaml).has_value());
  agent_ = test::SpawnWithLog(
      {Binary("medic-agent", MEDIC_AGENT_BINARY), "--config", dir_ + "/agent.yaml"},
      dir_ + "/agent.log");
  ASSERT_GT(agent_, 0);

  const WallTime test_start = std::chrono::system_clock::now() - std::chrono::seconds(5);
  const auto up_deadline = Steady::now() + Millis(15'000);
  while (History(a_, test_start).size() < 3 && Steady::now() < up_deadline) {
    std::this_thread::sleep_for(Millis(100));
  }
  ASSERT_GE(History(a_, test_start).size(), 3u);

  // a dies; for 3 s no server answers (the agent buffers); then b comes up.
  KillNow(a_.pid);
  ASSERT_FALSE(HasFatalFailure());
  const WallTime down_at = std::chrono::system_clock::now();
  ASSERT_EQ(::system(("cp -a -- '" + a_.data_dir + "' '" + b_.data_dir + "'").c_str()), 0);
  std::this_thread::sleep_for(std::chrono::seconds(3));
  const WallTime up_at = std::chrono::system_clock::now();
  StartServer(b_);
  ASSERT_FALSE(HasFatalFailure());

  // Within a few seconds b holds the host's samples: every one taken since the kill, in order,
  // with the time it was taken at (one every 500 ms: no hole longer than 1.5 s anywhere).
  std::vector<Point> points =
      WaitForPointAfter(b_, down_at - std::chrono::seconds(2), up_at, Millis(15'000));
  ASSERT_FALSE(points.empty()) << "no sample reached the second server";
  ASSERT_GT(points.back().t, up_at) << "the buffered samples did not all arrive";
  EXPECT_LT(points.front().t - down_at, Millis(1500)) << "the samples just after the kill";
  size_t in_gap = 0;
  for (size_t i = 0; i < points.size(); ++i) {
    if (points[i].t >= down_at && points[i].t < up_at) {
      ++in_gap;
    }
    if (i > 0) {
      const auto gap = std::chrono::duration_cast<Millis>(points[i].t - points[i - 1].t);
      EXPECT_GT(gap, Millis(0)) << "out of order or repeated at " << i;
      EXPECT_LT(gap, Millis(1500)) << "a sample is missing before " << FormatRfc3339(points[i].t);
    }
  }
  EXPECT_GE(in_gap, 4u) << "samples taken while no server answered";

  // A command sent through b runs on the host (the agent's own ledger has its result).
  HttpRequest chaos;
  chaos.method = "POST";
  chaos.url = b_.Url("/api/v1/chaos");
  chaos.headers = {{"Authorization", "Bearer " + b_.AdminToken()},
                   {"Content-Type", "application/json"}};
  chaos.body = R"({"host":"fo-1","mode":"stop"})";
  auto sent = http_->Do(chaos);
  ASSERT_TRUE(sent.has_value() && sent->status == 202) << (sent ? sent->body : "no answer");
  const std::string command_id =
      ParseJsonObject(sent->body).value()["command_id"].get<std::string>();
  std::optional<Json> result;
  const auto command_deadline = Steady::now() + Millis(15'000);
  while (!(result = LedgerResult(command_id)) && Steady::now() < command_deadline) {
    std::this_thread::sleep_for(Millis(100));
  }
  ASSERT_TRUE(result.has_value()) << "command " << command_id << " did not run on the host";
  EXPECT_TRUE(result->value("ran", false)) << DumpJson(*result);

  // b dies, a comes back: the agent returns to a (whose history, in memory, starts empty).
  KillNow(b_.pid);
  ASSERT_FALSE(HasFatalFailure());
  const WallTime b_down_at = std::chrono::system_clock::now();
  StartServer(a_);
  ASSERT_FALSE(HasFatalFailure());
  const WallTime a_up_at = std::chrono::system_clock::now();
  points = WaitForPointAfter(a_, b_down_at - std::chrono::seconds(2), a_up_at, Millis(15'000));
  ASSERT_FALSE(points.empty()) << "the agent did not come back to the first server";
  EXPECT_GT(points.back().t, a_up_at);
}

}  // namespace
}  // namespace medic::agent
