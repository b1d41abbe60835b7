// Issue 12, agent paths: a directory component swapped for a symlink mid-action never lets the
// agent touch a file outside the allowed root. A thread exchanges (renameat2 RENAME_EXCHANGE)
// a middle component of the path between a real directory inside the allowed root and a symlink
// to a directory outside it, thousands of times, while the executor runs file.truncate,
// log.archive_truncate, disk.cleanup, log.tail and dir.list on paths through it. The canary
// outside must keep its content and its name, and no output or upload may carry its content.
// Also: hard-linked files, symlinks in a middle component, FIFOs.
//
// On the code before this change (realpath() + open() by name, O_NOFOLLOW on the last component
// only) RaceTest.SwappedComponentNeverReachesTheCanary failed within a few hundred iterations.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "agent/action_executor.h"
#include "agent/archiver.h"
#include "agent/command_processor.h"
#include "core/files.h"
#include "host/safe_open.h"
#include "tests/agent/fakes.h"
#include "tests/fakes/temp_dir.h"

namespace medic::agent {
namespace {

using testing::FakeCommandRunner;
using testing::FakeProcFs;
using testing::FakeServiceManager;

constexpr char kCanary[] = "CANARY-OUTSIDE-THE-ALLOWED-ROOT\n";
constexpr char kInside[] = "inside the allowed root\n";

// Records every upload's bytes.
class RecordingSink : public ArchiveSink {
 public:
  Result<std::string> Start(const std::string&, int64_t) override {
    data.emplace_back();
    return std::to_string(data.size() - 1);
  }
  Result<int64_t> Append(const std::string& id, int64_t, std::string_view bytes) override {
    std::string& d = data[std::stoul(id)];
    d += bytes;
    return static_cast<int64_t>(d.size());
  }
  Result<ArchiveReceipt> Finish(const std::string& id, const std::string& sha256,
                                int64_t bytes) override {
    ArchiveReceipt r;
    r.sha256 = sha256;
    r.bytes = bytes;
    r.location = "/archive/" + id;
    (void)data[std::stoul(id)];
    return r;
  }
  std::vector<std::string> data;
};

struct Harness {
  explicit Harness(const std::string& allowed) {
    PolicyRules rules = PolicyRulesFromConfig(AgentConfig{}, 5000);
    rules.actions.insert(
        {"file.truncate", "log.archive_truncate", "disk.cleanup", "log.tail", "dir.list"});
    rules.paths = {allowed};
    policy = std::make_unique<Policy>(rules);
    ExecutorOptions o;
    o.self_pid = 5000;
    o.archive = &sink;
    executor = std::make_unique<ActionExecutor>(o, *policy, runner, services, procfs);
    processor = std::make_unique<CommandProcessor>("web-1", *policy, *executor, clock);
  }
  protocol::CommandResult Run(const std::string& action, Json params) {
    protocol::Command c;
    c.id = "c" + std::to_string(++n);
    c.action = action;
    c.params = std::move(params);
    c.timeout_ms = 10'000;
    c.expires_at = clock.Now() + std::chrono::seconds(45);
    return processor->Process(c);
  }

  int n = 0;
  ManualClock clock;
  FakeCommandRunner runner;
  FakeServiceManager services;
  FakeProcFs procfs;
  RecordingSink sink;
  std::unique_ptr<Policy> policy;
  std::unique_ptr<ActionExecutor> executor;
  std::unique_ptr<CommandProcessor> processor;
};

void Write(const std::string& path, const std::string& content, bool old = true) {
  ASSERT_TRUE(WriteFileAtomic(path, content, 0644).has_value()) << path;
  if (old) {
    const timespec times[2] = {{1'000'000'000, 0}, {1'000'000'000, 0}};  // 2001
    ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW), 0) << path;
  }
}

std::string Slurp(const std::string& path) {
  auto text = ReadFileTail(path, 1 << 20);
  return text ? *text : "<" + text.error().message + ">";
}

std::string ParentOf(const std::string& path) { return path.substr(0, path.rfind('/')); }

bool Exchange(const std::string& a, const std::string& b) {
  return ::syscall(SYS_renameat2, AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), 2 /*EXCHANGE*/) == 0;
}

// Both ways host::OpenBeneath resolves: openat2 and the O_NOFOLLOW walk (kernels without it).
class RaceTest : public ::testing::TestWithParam<host::SafeOpenMode> {
 protected:
  void SetUp() override { host::SetSafeOpenModeForTesting(GetParam()); }
  void TearDown() override { host::SetSafeOpenModeForTesting(host::SafeOpenMode::kAuto); }
};
INSTANTIATE_TEST_SUITE_P(Modes, RaceTest,
                         ::testing::Values(host::SafeOpenMode::kAuto, host::SafeOpenMode::kWalk),
                         [](const auto& info) {
                           return info.param == host::SafeOpenMode::kAuto ? "openat2" : "walk";
                         });

TEST_P(RaceTest, SwappedComponentNeverReachesTheCanary) {
  test::TempDir tmp;
  const std::string allowed = tmp.File("allowed");
  const std::string outside = tmp.File("outside");
  ASSERT_EQ(::mkdir(allowed.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(outside.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((outside + "/logs").c_str(), 0755), 0);
  const std::string canary = outside + "/logs/app.log";
  Write(canary, kCanary);
  // allowed/sw is a real directory (allowed/sw/logs/app.log) or a symlink to `outside`; the
  // other one waits at allowed/spare. Exchanged atomically, so the name always exists.
  ASSERT_EQ(::mkdir((allowed + "/sw").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((allowed + "/sw/logs").c_str(), 0755), 0);
  ASSERT_EQ(::symlink(outside.c_str(), (allowed + "/spare").c_str()), 0);
  // A handle on the real logs directory, wherever it is, to refill it.
  const int logs_fd = ::open((allowed + "/sw/logs").c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(logs_fd, 0);
  auto refill = [&] {
    const int fd = ::openat(logs_fd, "app.log", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, kInside, sizeof(kInside) - 1), static_cast<ssize_t>(sizeof(kInside) - 1));
    const timespec times[2] = {{1'000'000'000, 0}, {1'000'000'000, 0}};
    ASSERT_EQ(::futimens(fd, times), 0);
    ::close(fd);
  };

  Harness h(allowed);
  std::atomic<bool> stop{false};
  std::atomic<long> flips{0};
  std::thread flipper([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      if (Exchange(allowed + "/sw", allowed + "/spare")) {
        flips.fetch_add(1, std::memory_order_relaxed);
      }
    }
  });

  const std::string file = allowed + "/sw/logs/app.log";
  const std::string dir = allowed + "/sw/logs";
  const char* actions[] = {"file.truncate", "log.archive_truncate", "disk.cleanup", "log.tail",
                           "dir.list"};
  std::map<std::string, std::pair<int, int>> tally;  // action -> (succeeded, refused)
  // 3,000 actions (600 of each) while the component flips; stops after 45 s on a slow machine
  // (the sanitizer build), having raced at least 1,000 times.
  constexpr int kIterations = 3000;
  std::string violation;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(45);
  int i = 0;
  for (; i < kIterations && violation.empty() && std::chrono::steady_clock::now() < deadline;
       ++i) {
    refill();
    const std::string action = actions[i % 5];
    Json params = {{"path", action == "disk.cleanup" || action == "dir.list" ? dir : file}};
    if (action == "disk.cleanup") {
      params["older_than"] = "1d";
    }
    const size_t uploads = h.sink.data.size();
    auto r = h.Run(action, params);
    (r.Succeeded() ? tally[action].first : tally[action].second)++;
    struct stat st {};
    if (::lstat(canary.c_str(), &st) != 0) {
      violation = action + " removed the canary (iteration " + std::to_string(i) + ")";
    } else if (Slurp(canary) != kCanary) {
      violation = action + " changed the canary to '" + Slurp(canary) + "' (iteration " +
                  std::to_string(i) + ")";
    } else if (r.output.find("CANARY") != std::string::npos ||
               r.error.find("CANARY") != std::string::npos) {
      violation = action + " returned the canary's content (iteration " + std::to_string(i) + ")";
    }
    for (size_t u = uploads; u < h.sink.data.size() && violation.empty(); ++u) {
      if (h.sink.data[u].find("CANARY") != std::string::npos) {
        violation = action + " uploaded the canary's content (iteration " + std::to_string(i) + ")";
      }
    }
  }
  stop = true;
  flipper.join();
  ::close(logs_fd);
  EXPECT_EQ(violation, "") << "after " << flips.load() << " flips";
  EXPECT_EQ(Slurp(canary), kCanary);
  // The race was really run: the component flipped often, and actions both succeeded (the
  // directory was real) and were refused (it was a symlink).
  EXPECT_GT(flips.load(), 1000);
  if (violation.empty()) {
    EXPECT_GE(i, 1000);
    for (const char* a : actions) {
      EXPECT_GT(tally[a].first, 0) << a << " never succeeded";
      EXPECT_GT(tally[a].second, 0) << a << " was never refused";
    }
  }
  for (const auto& [a, t] : tally) {
    std::cout << a << ": " << t.first << " succeeded, " << t.second << " refused\n";
  }
}

TEST_P(RaceTest, HardLinkedFileIsRefused) {
  test::TempDir tmp;
  const std::string allowed = tmp.File("allowed");
  ASSERT_EQ(::mkdir(allowed.c_str(), 0755), 0);
  const std::string target = tmp.File("secret");
  Write(target, kCanary);
  const std::string link = allowed + "/app.log";
  ASSERT_EQ(::link(target.c_str(), link.c_str()), 0);  // link count 2
  Harness h(allowed);
  for (const char* action : {"file.truncate", "log.archive_truncate", "log.tail"}) {
    auto r = h.Run(action, {{"path", link}});
    EXPECT_EQ(r.exit_code, 1) << action;
    EXPECT_NE(r.error.find("refusing " + link + ": it has 2 hard links"), std::string::npos)
        << action << ": " << r.error;
    EXPECT_EQ(r.output.find("CANARY"), std::string::npos) << action;
  }
  EXPECT_TRUE(h.sink.data.empty());
  // disk.cleanup removes no name of a hard-linked file, and says so.
  auto r = h.Run("disk.cleanup", {{"path", allowed}, {"older_than", "1d"}});
  EXPECT_TRUE(r.Succeeded()) << r.error;
  EXPECT_NE(r.output.find("skipped: " + link + " has 2 hard links; not removed"),
            std::string::npos)
      << r.output;
  struct stat st {};
  ASSERT_EQ(::stat(link.c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 2u);
  EXPECT_EQ(Slurp(target), kCanary);
}

TEST_P(RaceTest, SymlinkInAnyComponentIsRefused) {
  test::TempDir tmp;
  const std::string allowed = tmp.File("allowed");
  ASSERT_EQ(::mkdir(allowed.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((allowed + "/real").c_str(), 0755), 0);
  Write(allowed + "/real/app.log", kInside);
  // A symlink in the middle, even one that points inside the allowed root.
  ASSERT_EQ(::symlink((allowed + "/real").c_str(), (allowed + "/mid").c_str()), 0);
  ASSERT_EQ(::symlink("real", (allowed + "/rel").c_str()), 0);
  // And a symlinked allowed root itself.
  ASSERT_EQ(::symlink(allowed.c_str(), tmp.File("alias").c_str()), 0);
  Harness h(allowed);
  for (const std::string& path : {allowed + "/mid/app.log", allowed + "/rel/app.log"}) {
    for (const char* action : {"file.truncate", "log.archive_truncate", "log.tail"}) {
      auto r = h.Run(action, {{"path", path}});
      EXPECT_EQ(r.exit_code, 1) << action << " " << path;
      EXPECT_NE(r.error.find(" is a symbolic link"), std::string::npos) << action << ": " << r.error;
    }
    for (const char* action : {"disk.cleanup", "dir.list"}) {
      Json params = {{"path", ParentOf(path)}};
      if (std::string(action) == "disk.cleanup") {
        params["older_than"] = "1d";
      }
      auto r = h.Run(action, params);
      EXPECT_EQ(r.exit_code, 1) << action << " " << path;
      EXPECT_NE(r.error.find(" is a symbolic link"), std::string::npos) << action << ": " << r.error;
    }
  }
  Harness alias(tmp.File("alias"));
  auto r = alias.Run("log.tail", {{"path", tmp.File("alias") + "/real/app.log"}});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.error.find(tmp.File("alias") + " is a symbolic link"), std::string::npos) << r.error;
  // The last component as a symlink, and a FIFO (never opened for writing, never hangs).
  ASSERT_EQ(::symlink("/etc/passwd", (allowed + "/real/passwd.log").c_str()), 0);
  r = h.Run("log.tail", {{"path", allowed + "/real/passwd.log"}});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.error.find(" is a symbolic link"), std::string::npos) << r.error;
  ASSERT_EQ(::mkfifo((allowed + "/real/fifo.log").c_str(), 0644), 0);
  for (const char* action : {"file.truncate", "log.archive_truncate", "log.tail"}) {
    r = h.Run(action, {{"path", allowed + "/real/fifo.log"}});
    EXPECT_EQ(r.exit_code, 1) << action;
  }
  // The real path works, and dir.list lists it in `ls -la -S` form from the descriptor.
  r = h.Run("log.tail", {{"path", allowed + "/real/app.log"}});
  EXPECT_TRUE(r.Succeeded()) << r.error;
  EXPECT_EQ(r.output, kInside);
  r = h.Run("dir.list", {{"path", allowed + "/real"}});
  EXPECT_TRUE(r.Succeeded()) << r.error;
  EXPECT_EQ(r.output.rfind("total ", 0), 0u) << r.output;
  EXPECT_NE(r.output.find(" app.log\n"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(" passwd.log -> /etc/passwd\n"), std::string::npos) << r.output;
  // The server's runbook takes the first regular file's name (ai::LargestFileInListing).
  const size_t first_file = r.output.find("\n-");
  ASSERT_NE(first_file, std::string::npos) << r.output;
  const std::string line = r.output.substr(first_file + 1, r.output.find('\n', first_file + 1) - first_file - 1);
  EXPECT_TRUE(line.size() > 8 && line.substr(line.size() - 8) == " app.log") << line;
}

}  // namespace
}  // namespace medic::agent
