// Issue 18's acceptance for the fast watch, with the real medic-agent binary and a recording
// fake server speaking the agent protocol (integration): a disk crossing on a small tmpfs the
// test mounts, and a memory crossing in a memory cgroup the test creates (the agent runs inside
// it, so its mem_used_percent is the cgroup's), are each reported within kCrossingReportBound of
// happening (the write / the allocation done -> the report's arrival at the server), in both
// directions; and a value flipping around its threshold every 10 ms never brings two reports
// closer together than fast_report_min_gap. The agent's interval is 10 s, so no periodic sample
// can stand in for the fast watch.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <functional>
#include <iostream>
#include <optional>

#include "core/files.h"
#include "core/json.h"
#include "host/metrics.h"
#include "protocol/wire.h"
#include "tests/agent/chaos_sandbox.h"
#include "tests/agent/agent_binary.h"
#include "tests/fakes/command_signing.h"
#include "tests/fakes/http_server.h"

namespace medic::agent {
namespace {

using chaos_testing::MemoryCgroup;
using chaos_testing::TmpfsDir;
using test::CannedReply;
using test::FakeHttpServer;
using test::RecordedRequest;
using Steady = std::chrono::steady_clock;

// Issue 18: "a disk crossing and a memory crossing reported within 100 ms of happening".
constexpr Millis kCrossingReportBound{100};
// fast_report_min_gap's default: a crossing within it of the last report waits for its end.
constexpr Millis kDefaultMinGap{200};

using testing::AgentBinary;
using testing::kCredential;

// Answers registration with the thresholds to watch and records each report with the time it
// arrived.
class RecordingServer {
 public:
  explicit RecordingServer(std::vector<protocol::WatchedThreshold> watch)
      : watch_(std::move(watch)), http_([this](const RecordedRequest& r) { return Handle(r); }) {}

  struct Arrival {
    Steady::time_point at;
    protocol::Report report;
  };

  std::string url() const { return http_.url(); }

  // Waits (at most `limit`) for a report after the first `from` whose latest sample satisfies
  // `pred`; returns its arrival time.
  std::optional<Steady::time_point> WaitForReport(
      size_t from, const std::function<bool(const host::Metrics&)>& pred, Millis limit) {
    std::unique_lock<std::mutex> lock(mu_);
    std::optional<Steady::time_point> found;
    cv_.wait_for(lock, limit, [&] {
      for (size_t i = from; i < arrivals_.size(); ++i) {
        const auto& samples = arrivals_[i].report.samples;
        if (!samples.empty() && pred(samples.back().metrics)) {
          found = arrivals_[i].at;
          return true;
        }
      }
      return false;
    });
    return found;
  }
  size_t count() {
    std::lock_guard<std::mutex> lock(mu_);
    return arrivals_.size();
  }
  std::vector<Arrival> arrivals() {
    std::lock_guard<std::mutex> lock(mu_);
    return arrivals_;
  }

 private:
  CannedReply Handle(const RecordedRequest& req) {
    const Steady::time_point now = Steady::now();
    if (req.Header("authorization") != "Bearer " + std::string(kCredential)) {
      return {401, R"({"error":"bad token"})"};
    }
    if (req.method == "POST" && req.target == "/agent/v1/register") {
      protocol::RegisterResponse r;
      r.interval_ms = 10'000;
      r.watch = watch_;
      return {200, DumpJson(protocol::ToJson(r))};
    }
    if (req.method == "POST" && req.target == "/agent/v1/report") {
      auto report = protocol::ReportFromJson(*ParseJsonObject(req.body));
      std::lock_guard<std::mutex> lock(mu_);
      arrivals_.push_back({now, *report});
      cv_.notify_all();
      return {200, "{}"};
    }
    if (req.method == "GET" && req.target.rfind("/agent/v1/commands", 0) == 0) {
      return {200, R"({"commands":[])", {}, Millis(300)};
    }
    return {404, R"({"error":"no route"})"};
  }

  const std::vector<protocol::WatchedThreshold> watch_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Arrival> arrivals_;  // Guarded by mu_.
  FakeHttpServer http_;            // last: stopped first
};

class FastWatchBinaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/medic-fast-watch-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ASSERT_TRUE(WriteFileAtomic(dir_ + "/agent.token", "tok\n", 0600).has_value());
    ASSERT_TRUE(MakeDirs(dir_ + "/state", 0700).has_value());
    ASSERT_TRUE(WriteFileAtomic(dir_ + "/state/credential", std::string(kCredential) + "\n", 0600)
                    .has_value());
    ASSERT_TRUE(WriteFileAtomic(dir_ + "/state/command.key", test::TestCommandKey() + "\n", 0600)
                    .has_value());
  }
  void TearDown() override {
    for (pid_t* pid : {&hog_, &agent_}) {
      if (*pid > 0) {
        ::kill(*pid, SIGKILL);
        ::waitpid(*pid, nullptr, 0);
        *pid = 0;
      }
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Starts medic-agent (output to agent.log), inside the cgroup whose cgroup.procs is open as
  // `cgroup_procs_fd` when >= 0.
  void StartAgent(const std::string& server_url, const std::string& extra_yaml,
                  int cgroup_procs_fd = -1) {
    const std::string yaml = "server: " + server_url + "\nname: web-1\ntoken_file: " + dir_ +
                             "/agent.token\nstate_dir: " + dir_ +
                             "/state\ninterval: 10s\nlog_level: warn\n" + extra_yaml;
    ASSERT_TRUE(WriteFileAtomic(dir_ + "/agent.yaml", yaml).has_value());
    const std::string bin = AgentBinary(), config = dir_ + "/agent.yaml",
                      log = dir_ + "/agent.log";
    agent_ = ::fork();
    ASSERT_GE(agent_, 0);
    if (agent_ == 0) {
      if (cgroup_procs_fd >= 0 && ::write(cgroup_procs_fd, "0", 1) != 1) {
        ::_exit(126);
      }
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::execl(bin.c_str(), bin.c_str(), "--config", config.c_str(), nullptr);
      ::_exit(127);
    }
  }

  // Waits for the agent's first report (it registered and learnt the thresholds), then long
  // enough for its fast watch to take its first readings (every 50 ms; the first only records
  // the side of each threshold).
  void WaitUntilWatching(RecordingServer& server) {
    const auto first =
        server.WaitForReport(0, [](const host::Metrics&) { return true; }, Millis(10'000));
    ASSERT_TRUE(first.has_value()) << Log();
    std::this_thread::sleep_for(Millis(300));
  }

  std::string Log() { return ReadFile(dir_ + "/agent.log").value_or(""); }

  std::string dir_;
  pid_t agent_ = 0;
  pid_t hog_ = 0;
};

long long Ms(Steady::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

TEST_F(FastWatchBinaryTest, ADiskCrossingOnATmpfsIsReportedWithinTheBoundBothWays) {
  TmpfsDir fs("4m");
  ASSERT_TRUE(fs.ok()) << fs.error();
  const std::string disk = "disk_used_percent";
  RecordingServer server({{disk, ">", 50}});
  StartAgent(server.url(), "mounts: [" + fs.mount() + "]\ndisk_primary_mount: " + fs.mount() +
                               "\n");
  WaitUntilWatching(server);
  ASSERT_LT(chaos_testing::UsedPercent(fs.mount()), 50);

  // Fill the tmpfs past the threshold: 3 MiB of 4.
  const size_t before = server.count();
  const std::string file = fs.mount() + "/big.log";
  {
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    const std::string chunk(1 << 20, 'x');
    for (int i = 0; i < 3; ++i) {
      ASSERT_EQ(::write(fd, chunk.data(), chunk.size()), static_cast<ssize_t>(chunk.size()));
    }
    ::close(fd);
  }
  const auto filled = Steady::now();
  ASSERT_GT(chaos_testing::UsedPercent(fs.mount()), 50);
  auto seen = server.WaitForReport(
      before, [&](const host::Metrics& m) { return m.count(disk) && m.at(disk) > 50; },
      Millis(5'000));
  ASSERT_TRUE(seen.has_value()) << "the crossing was never reported\n" << Log();
  EXPECT_LT(*seen - filled, kCrossingReportBound) << "reported after " << Ms(*seen - filled)
                                                  << " ms";
  std::cout << "disk crossing up reported after " << Ms(*seen - filled) << " ms\n";

  // And back under it, once the gap after that report has passed.
  std::this_thread::sleep_until(*seen + kDefaultMinGap);
  const size_t after_fill = server.count();
  ASSERT_EQ(::unlink(file.c_str()), 0);
  const auto freed = Steady::now();
  seen = server.WaitForReport(
      after_fill, [&](const host::Metrics& m) { return m.count(disk) && m.at(disk) <= 50; },
      Millis(5'000));
  ASSERT_TRUE(seen.has_value()) << "the way back was never reported\n" << Log();
  EXPECT_LT(*seen - freed, kCrossingReportBound) << "reported after " << Ms(*seen - freed)
                                                 << " ms";
  std::cout << "disk crossing down reported after " << Ms(*seen - freed) << " ms\n";
}

TEST_F(FastWatchBinaryTest, AMemoryCrossingInAMemoryCgroupIsReportedWithinTheBoundBothWays) {
  constexpr uint64_t kLimit = 256ull << 20;
  constexpr double kThreshold = 45;
  MemoryCgroup cgroup(kLimit);
  ASSERT_TRUE(cgroup.ok()) << cgroup.error();
  const std::string mem = "mem_used_percent";
  RecordingServer server({{mem, ">", kThreshold}});
  StartAgent(server.url(), "", cgroup.procs_fd());
  WaitUntilWatching(server);
  const double base = cgroup.UsedPercent();
  ASSERT_LT(base, kThreshold - 15) << "the agent alone uses that much of " << kLimit;

  // A process in the same cgroup first brings it to 4 points under the threshold; then, when
  // told, allocates 8 points more (the crossing, measured from when it is told) and says so.
  const auto bytes = [&](double percent) {
    return static_cast<size_t>(percent / 100 * static_cast<double>(kLimit));
  };
  const size_t first = bytes(kThreshold - 4 - base), second = bytes(8);
  int to_hog[2], from_hog[2];
  ASSERT_EQ(::pipe2(to_hog, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(from_hog, O_CLOEXEC), 0);
  hog_ = ::fork();
  ASSERT_GE(hog_, 0);
  if (hog_ == 0) {
    char go = 0;
    if (::write(cgroup.procs_fd(), "0", 1) != 1) {
      ::_exit(126);
    }
    for (size_t size : {first, second}) {
      void* p =
          ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) {
        ::_exit(125);
      }
      std::memset(p, 1, size);
      if (::write(from_hog[1], "1", 1) != 1 || (size == first && ::read(to_hog[0], &go, 1) != 1)) {
        ::_exit(124);
      }
    }
    ::pause();
    ::_exit(0);
  }
  ::close(from_hog[1]);
  ::close(to_hog[0]);
  char c = 0;
  ASSERT_EQ(::read(from_hog[0], &c, 1), 1) << "the allocating process died";
  ASSERT_LT(cgroup.UsedPercent(), kThreshold);
  const size_t before = server.count();
  const auto allocating = Steady::now();
  ASSERT_EQ(::write(to_hog[1], "g", 1), 1);
  ASSERT_EQ(::read(from_hog[0], &c, 1), 1) << "the allocating process died";
  ::close(from_hog[0]);
  ::close(to_hog[1]);
  ASSERT_GT(cgroup.UsedPercent(), kThreshold);
  auto seen = server.WaitForReport(
      before, [&](const host::Metrics& m) { return m.count(mem) && m.at(mem) > kThreshold; },
      Millis(5'000));
  ASSERT_TRUE(seen.has_value()) << "the crossing was never reported\n" << Log();
  EXPECT_LT(*seen - allocating, kCrossingReportBound)
      << "reported after " << Ms(*seen - allocating) << " ms";
  std::cout << "memory crossing up reported after " << Ms(*seen - allocating) << " ms\n";

  // The memory comes back when the process is gone (uncharged before waitpid returns), once
  // the gap after that report has passed.
  std::this_thread::sleep_until(*seen + kDefaultMinGap);
  const size_t after_alloc = server.count();
  const auto released = Steady::now();
  ::kill(hog_, SIGKILL);
  ::waitpid(hog_, nullptr, 0);
  hog_ = 0;
  seen = server.WaitForReport(
      after_alloc, [&](const host::Metrics& m) { return m.count(mem) && m.at(mem) <= kThreshold; },
      Millis(5'000));
  ASSERT_TRUE(seen.has_value()) << "the way back was never reported\n" << Log();
  EXPECT_LT(*seen - released, kCrossingReportBound)
      << "reported after " << Ms(*seen - released) << " ms";
  std::cout << "memory crossing down reported after " << Ms(*seen - released) << " ms\n";
}

TEST_F(FastWatchBinaryTest, AValueHoveringAroundItsThresholdNeverBringsReportsCloserThanTheGap) {
  constexpr Millis kGap{250};
  TmpfsDir fs("4m");
  ASSERT_TRUE(fs.ok()) << fs.error();
  RecordingServer server({{"disk_used_percent", ">", 50}});
  StartAgent(server.url(), "mounts: [" + fs.mount() + "]\ndisk_primary_mount: " + fs.mount() +
                               "\nfast_report_min_gap: 250ms\n");
  WaitUntilWatching(server);

  // 3 MiB of 4 allocated, then freed, every 10 ms for 1.5 s.
  const std::string file = fs.mount() + "/hover.log";
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  const auto start = Steady::now();
  int flips = 0;
  for (auto t = start; t < start + Millis(1'500); t += Millis(10)) {
    std::this_thread::sleep_until(t);
    const int rc = flips % 2 == 0 ? ::posix_fallocate(fd, 0, 3 << 20) : ::ftruncate(fd, 0);
    ASSERT_EQ(rc, 0) << std::strerror(rc == -1 ? errno : rc);
    ++flips;
  }
  ::close(fd);
  const auto end = Steady::now();

  std::vector<Steady::time_point> during;
  for (const auto& a : server.arrivals()) {
    if (a.at >= start && a.at <= end + kGap) {
      during.push_back(a.at);
    }
  }
  // The crossings were reported (else the watch did not work and the gap proves nothing): about
  // one report per gap.
  EXPECT_GE(during.size(), 3u) << Log();
  for (size_t i = 1; i < during.size(); ++i) {
    EXPECT_GE(during[i] - during[i - 1], kGap)
        << "reports " << i - 1 << " and " << i << " only " << Ms(during[i] - during[i - 1])
        << " ms apart";
  }
  // And every report the agent sent, from its registration on, kept the gap.
  const auto all = server.arrivals();
  for (size_t i = 1; i < all.size(); ++i) {
    EXPECT_GE(all[i].at - all[i - 1].at, kGap) << "reports " << i - 1 << " and " << i;
  }
}

}  // namespace
}  // namespace medic::agent
