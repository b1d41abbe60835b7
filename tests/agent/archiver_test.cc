// The disk actions with a fake archive: log.archive_truncate (checksums, no truncation on any
// failure, policy and symlinks) and disk.cleanup (old files only, symlinks never followed);
// the agent config keys log_dir, targets and disk_primary_mount and what they feed.

#include "agent/archiver.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "agent/agent.h"
#include "agent/command_processor.h"
#include "core/files.h"
#include "core/sha256.h"
#include "tests/agent/fakes.h"
#include "tests/fakes/temp_dir.h"

namespace medic::agent {
namespace {

using testing::FakeCommandRunner;
using testing::FakeProcFs;
using testing::FakeServiceManager;

// An in-memory archive that records every upload. Can corrupt or fail on request.
class FakeArchiveSink : public ArchiveSink {
 public:
  Result<std::string> Start(const std::string& path, int64_t size) override {
    if (fail_start) {
      return Unavailable("archive start: connection refused");
    }
    const std::string id = "u" + std::to_string(uploads.size() + 1);
    uploads.push_back({id, path, size, ""});
    return id;
  }
  Result<int64_t> Append(const std::string& id, int64_t offset, std::string_view bytes) override {
    Upload& u = Find(id);
    EXPECT_EQ(offset, static_cast<int64_t>(u.data.size()));
    EXPECT_LE(bytes.size(), 4u * 1024 * 1024);  // ArchiveLimits::chunk_bytes
    ++chunks;
    u.data += bytes;
    return static_cast<int64_t>(u.data.size());
  }
  Result<ArchiveReceipt> Finish(const std::string& id, const std::string& sha256,
                                int64_t bytes) override {
    Upload& u = Find(id);
    if (on_finish) {
      auto hook = std::move(on_finish);
      on_finish = nullptr;
      hook();
    }
    if (fail_finish) {
      return FailedPrecondition("archive finish: HTTP 409 checksum mismatch");
    }
    EXPECT_EQ(sha256, Sha256Hex(u.data));
    EXPECT_EQ(bytes, static_cast<int64_t>(u.data.size()));
    ArchiveReceipt r;
    r.sha256 = corrupt ? Sha256Hex(u.data + "!") : Sha256Hex(u.data);
    r.bytes = static_cast<int64_t>(u.data.size());
    r.location = "/archive/web-1/" + id;
    return r;
  }

  // log.restore: serves `served` in chunks of `fetch_chunk` bytes.
  Result<std::string> Fetch(const std::string& name, int64_t offset) override {
    fetched.push_back(name);
    if (offset >= static_cast<int64_t>(served.size())) {
      return std::string();
    }
    return served.substr(static_cast<size_t>(offset), fetch_chunk);
  }

  struct Upload {
    std::string id, path;
    int64_t size;
    std::string data;
  };
  std::string served;
  size_t fetch_chunk = 3;
  std::vector<std::string> fetched;
  std::vector<Upload> uploads;
  int chunks = 0;
  bool fail_start = false;
  bool fail_finish = false;
  bool corrupt = false;
  std::function<void()> on_finish;

 private:
  Upload& Find(const std::string& id) {
    for (auto& u : uploads) {
      if (u.id == id) {
        return u;
      }
    }
    std::abort();
  }
};

// Executor + processor whose policy allows the archive actions under `allowed` only.
struct Harness {
  explicit Harness(const std::string& allowed) {
    PolicyRules rules = PolicyRulesFromConfig(AgentConfig{}, 5000);
    rules.actions.insert({"log.archive_truncate", "disk.cleanup", "log.restore"});
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
    c.id = "c1";
    c.action = action;
    c.params = std::move(params);
    c.timeout_ms = 10'000;
    c.expires_at = clock.Now() + std::chrono::seconds(60);
    return processor->Process(c);
  }

  ManualClock clock;
  FakeCommandRunner runner;
  FakeServiceManager services;
  FakeProcFs procfs;
  FakeArchiveSink sink;
  std::unique_ptr<Policy> policy;
  std::unique_ptr<ActionExecutor> executor;
  std::unique_ptr<CommandProcessor> processor;
};

std::string BigLog(size_t at_least) {
  std::string s;
  for (int i = 0; s.size() < at_least; ++i) {
    s += "2026-11-30T00:00:00Z GET /item/" + std::to_string(i) + " 200\n";
  }
  return s;
}

void Write(const std::string& path, const std::string& content) {
  ASSERT_TRUE(WriteFileAtomic(path, content).has_value());
}

void Age(const std::string& path, std::chrono::hours age) {
  const auto t = std::chrono::system_clock::now() - age;
  timespec ts[2];
  ts[0].tv_sec = ts[1].tv_sec = std::chrono::system_clock::to_time_t(t);
  ts[0].tv_nsec = ts[1].tv_nsec = 0;
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), ts, AT_SYMLINK_NOFOLLOW), 0) << path;
}

TEST(LogArchiveTruncate, UploadsInChunksVerifiesThenTruncates) {
  test::TempDir dir;
  Harness h(dir.path());
  const std::string log = dir.File("app.log");
  const std::string content = BigLog(9'000'000);
  Write(log, content);
  auto r = h.Run("log.archive_truncate", {{"path", log}});
  ASSERT_TRUE(r.Succeeded()) << r.error << r.output;
  ASSERT_EQ(h.sink.uploads.size(), 1u);
  EXPECT_EQ(h.sink.uploads[0].data, content);
  EXPECT_EQ(h.sink.uploads[0].path, log);
  EXPECT_EQ(h.sink.chunks, 3);  // 9 MB in chunks of 4 MiB
  EXPECT_EQ(r.output, "archived " + log + " (" + std::to_string(content.size()) +
                          " bytes) to /archive/web-1/u1\nsha256 " + Sha256Hex(content) +
                          "\ntruncated " + log + "\n");
  struct stat st {};
  ASSERT_EQ(::stat(log.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 0);
}

// log.restore, the undo of log.archive_truncate: the archived copy, checked, back in front of
// what the file holds now.
TEST(LogRestore, PutsTheArchivedCopyBackByteForByteBeforeWhatWasWrittenSince) {
  test::TempDir dir;
  Harness h(dir.path());
  const std::string log = dir.File("app.log");
  const std::string content = BigLog(10'000);
  Write(log, content);
  ASSERT_TRUE(h.Run("log.archive_truncate", {{"path", log}}).Succeeded());
  ASSERT_EQ(ReadFile(log).value_or("x"), "");
  // The service keeps writing after the truncation.
  const int fd = ::open(log.c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "after\n", 6), 6);
  ::close(fd);
  struct stat before {};
  ASSERT_EQ(::stat(log.c_str(), &before), 0);

  h.sink.served = h.sink.uploads[0].data;
  h.sink.fetch_chunk = 4096;
  auto r = h.Run("log.restore", {{"path", log},
                                 {"archive", "20261207T193500Z-app.log"},
                                 {"sha256", Sha256Hex(content)},
                                 {"bytes", static_cast<int64_t>(content.size())}});
  ASSERT_TRUE(r.Succeeded()) << r.error << r.output;
  EXPECT_EQ(ReadFile(log).value_or(""), content + "after\n");
  EXPECT_EQ(r.output, "restored " + log + " from 20261207T193500Z-app.log (" +
                          std::to_string(content.size()) + " bytes, sha256 " +
                          Sha256Hex(content) + ")\nkept the 6 bytes " + log +
                          " held (written after it was archived), after them\n");
  struct stat after {};
  ASSERT_EQ(::stat(log.c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino);  // the same file: a writer holding it open keeps it
  EXPECT_EQ(h.sink.fetched.front(), "20261207T193500Z-app.log");
}

TEST(LogRestore, RefusesACopyThatIsNotWhatTheArchiveRecordedOrNotThisFiles) {
  struct Case {
    std::string name;
    std::string archive;
    std::string served;
    std::string want_error;
  };
  const std::string original = "one\ntwo\n";
  for (const Case& c : std::vector<Case>{
           {"tampered", "20261207T193500Z-app.log", "one\ntwO\n", "checksum mismatch"},
           {"short", "20261207T193500Z-app.log", "one\n", "checksum mismatch"},
           {"another file's copy", "20261207T193500Z-other.log", original,
            "archived from another file"}}) {
    SCOPED_TRACE(c.name);
    test::TempDir dir;
    Harness h(dir.path());
    const std::string log = dir.File("app.log");
    Write(log, "now\n");
    h.sink.served = c.served;
    auto r = h.Run("log.restore", {{"path", log},
                                   {"archive", c.archive},
                                   {"sha256", Sha256Hex(original)},
                                   {"bytes", static_cast<int64_t>(original.size())}});
    EXPECT_FALSE(r.Succeeded());
    EXPECT_NE(r.error.find(c.want_error), std::string::npos) << r.error;
    EXPECT_EQ(ReadFile(log).value_or(""), "now\n");  // untouched
  }
}

TEST(LogRestore, OnlyInsideThePolicysPathsAndOnlyWhenAllowed) {
  test::TempDir dir;
  test::TempDir outside;
  Harness h(dir.File("allowed"));
  ASSERT_EQ(::mkdir(dir.File("allowed").c_str(), 0700), 0);
  const std::string log = outside.File("app.log");
  Write(log, "now\n");
  h.sink.served = "x\n";
  auto r = h.Run("log.restore", {{"path", log},
                                 {"archive", "20261207T193500Z-app.log"},
                                 {"sha256", Sha256Hex("x\n")},
                                 {"bytes", 2}});
  EXPECT_FALSE(r.Succeeded());
  EXPECT_NE(r.error.find("outside the allowed paths"), std::string::npos) << r.error;
  EXPECT_TRUE(h.sink.fetched.empty());
  EXPECT_EQ(ReadFile(log).value_or(""), "now\n");
}

TEST(LogArchiveTruncate, BytesWrittenDuringTheUploadAreArchivedToo) {
  test::TempDir dir;
  Harness h(dir.path());
  const std::string log = dir.File("app.log");
  Write(log, "first\n");
  h.sink.on_finish = [&] {  // the service logs a line while the upload finishes
    const int fd = ::open(log.c_str(), O_WRONLY | O_APPEND);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, "late\n", 5), 5);
    ::close(fd);
  };
  auto r = h.Run("log.archive_truncate", {{"path", log}});
  ASSERT_TRUE(r.Succeeded()) << r.error;
  ASSERT_EQ(h.sink.uploads.size(), 2u);
  EXPECT_EQ(h.sink.uploads[0].data + h.sink.uploads[1].data, "first\nlate\n");
  EXPECT_NE(r.output.find("archived " + log + " bytes 6-11 (5 bytes) to /archive/web-1/u2\n"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(ReadFile(log).value_or("x"), "");
}

TEST(LogArchiveTruncate, NothingIsTruncatedWhenTheArchiveDisagreesOrFails) {
  struct Case {
    std::string name;
    std::function<void(FakeArchiveSink&)> setup;
    std::string want_error;
  };
  for (const Case& c : std::vector<Case>{
           {"mismatch", [](FakeArchiveSink& s) { s.corrupt = true; }, "checksum mismatch"},
           {"409", [](FakeArchiveSink& s) { s.fail_finish = true; }, "HTTP 409"},
           {"unreachable", [](FakeArchiveSink& s) { s.fail_start = true; },
            "connection refused"}}) {
    SCOPED_TRACE(c.name);
    test::TempDir dir;
    Harness h(dir.path());
    const std::string log = dir.File("app.log");
    const std::string content = BigLog(700'000);
    Write(log, content);
    c.setup(h.sink);
    auto r = h.Run("log.archive_truncate", {{"path", log}});
    EXPECT_TRUE(r.ran);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.error.find(c.want_error), std::string::npos) << r.error;
    EXPECT_NE(r.error.find("was not truncated"), std::string::npos) << r.error;
    EXPECT_EQ(ReadFile(log).value_or(""), content);
  }
}

TEST(LogArchiveTruncate, PathsOutsideThePolicyAndSymlinksAreRefused) {
  test::TempDir allowed, outside;
  Harness h(allowed.path());
  const std::string secret = outside.File("secret.log");
  Write(secret, "do not touch\n");
  const std::string inside = allowed.File("real.log");
  Write(inside, "inside\n");

  auto r = h.Run("log.archive_truncate", {{"path", secret}});
  EXPECT_FALSE(r.ran);
  EXPECT_NE(r.error.find("refused by local policy"), std::string::npos) << r.error;

  // A symlink in the allowed directory to a file outside: refused (no symlink is followed).
  ASSERT_EQ(::symlink(secret.c_str(), allowed.File("escape.log").c_str()), 0);
  r = h.Run("log.archive_truncate", {{"path", allowed.File("escape.log")}});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.error.find("is a symbolic link"), std::string::npos) << r.error;

  // A symlink to a file inside is refused too: archive files by their own path.
  ASSERT_EQ(::symlink(inside.c_str(), allowed.File("alias.log").c_str()), 0);
  r = h.Run("log.archive_truncate", {{"path", allowed.File("alias.log")}});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.error.find("symbolic link"), std::string::npos) << r.error;

  // Not a regular file.
  ASSERT_EQ(::mkdir(allowed.File("sub").c_str(), 0755), 0);
  r = h.Run("log.archive_truncate", {{"path", allowed.File("sub")}});
  EXPECT_EQ(r.exit_code, 1);

  EXPECT_TRUE(h.sink.uploads.empty());
  EXPECT_EQ(ReadFile(secret).value_or(""), "do not touch\n");
  EXPECT_EQ(ReadFile(inside).value_or(""), "inside\n");
}

TEST(LogArchiveTruncate, WithoutAnArchiveItFails) {
  test::TempDir dir;
  PolicyRules rules = PolicyRulesFromConfig(AgentConfig{}, 5000);
  rules.actions.insert("log.archive_truncate");
  rules.paths = {dir.path()};
  Policy policy(rules);
  FakeCommandRunner runner;
  FakeServiceManager services;
  FakeProcFs procfs;
  ActionExecutor executor(ExecutorOptions{}, policy, runner, services, procfs);
  Write(dir.File("app.log"), "keep\n");
  auto action = protocol::ValidateAction("log.archive_truncate", {{"path", dir.File("app.log")}});
  ASSERT_TRUE(action.has_value());
  auto r = executor.Execute(*action, Millis(1000));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.error.find("no archive"), std::string::npos);
  EXPECT_EQ(ReadFile(dir.File("app.log")).value_or(""), "keep\n");
}

TEST(DiskCleanup, RemovesOnlyOldRegularFilesAndNeverFollowsSymlinks) {
  test::TempDir dir, outside;
  Harness h(dir.path());
  Write(dir.File("old.log"), std::string(100, 'o'));
  Write(dir.File("new.log"), "new\n");
  ASSERT_EQ(::mkdir(dir.File("sub").c_str(), 0755), 0);
  Write(dir.File("sub/old2.log"), std::string(50, 'p'));
  Age(dir.File("old.log"), std::chrono::hours(24 * 10));
  Age(dir.File("sub/old2.log"), std::chrono::hours(24 * 8));
  Age(dir.File("sub"), std::chrono::hours(24 * 30));
  // Canaries outside, old enough to be deleted if a link were followed.
  const std::string canary = outside.File("canary.log");
  Write(canary, "canary\n");
  Age(canary, std::chrono::hours(24 * 30));
  ASSERT_EQ(::mkdir(outside.File("d").c_str(), 0755), 0);
  Write(outside.File("d/deep-canary.log"), "deep\n");
  Age(outside.File("d/deep-canary.log"), std::chrono::hours(24 * 30));
  ASSERT_EQ(::symlink(canary.c_str(), dir.File("link.log").c_str()), 0);
  ASSERT_EQ(::symlink(outside.File("d").c_str(), dir.File("linkdir").c_str()), 0);
  Age(dir.File("link.log"), std::chrono::hours(24 * 30));

  auto r = h.Run("disk.cleanup", {{"path", dir.path()}, {"older_than", "7d"}});
  ASSERT_TRUE(r.Succeeded()) << r.error;
  EXPECT_EQ(
      r.output.rfind("removed 2 files (150 bytes) under " + dir.path() + " older than 7d\n", 0), 0u)
      << r.output;
  EXPECT_NE(r.output.find("removed " + dir.File("sub/old2.log") + "\n"), std::string::npos);
  EXPECT_FALSE(PathExists(dir.File("old.log")));
  EXPECT_FALSE(PathExists(dir.File("sub/old2.log")));
  EXPECT_TRUE(PathExists(dir.File("new.log")));
  EXPECT_TRUE(PathExists(dir.File("sub")));  // directories stay
  struct stat st {};
  EXPECT_EQ(::lstat(dir.File("link.log").c_str(), &st), 0);  // links stay
  EXPECT_EQ(::lstat(dir.File("linkdir").c_str(), &st), 0);
  EXPECT_EQ(ReadFile(canary).value_or(""), "canary\n");
  EXPECT_EQ(ReadFile(outside.File("d/deep-canary.log")).value_or(""), "deep\n");

  // Outside the policy: refused before anything is examined.
  r = h.Run("disk.cleanup", {{"path", outside.path()}, {"older_than", "1h"}});
  EXPECT_FALSE(r.ran);
  EXPECT_TRUE(PathExists(canary));
  // A symlinked directory resolving outside: refused too.
  r = h.Run("disk.cleanup", {{"path", dir.File("linkdir")}, {"older_than", "1h"}});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(PathExists(outside.File("d/deep-canary.log")));
}

TEST(DiskCleanup, ListIsCappedAndAgesParse) {
  test::TempDir dir;
  for (int i = 0; i < 5; ++i) {
    const std::string f = dir.File("f" + std::to_string(i));
    Write(f, "x");
    Age(f, std::chrono::hours(2));
  }
  CleanupLimits limits;
  limits.list_cap = 2;
  auto report =
      CleanupOldFiles(dir.path(), std::chrono::system_clock::now() - Millis(3'600'000), limits);
  ASSERT_TRUE(report.has_value());
  EXPECT_EQ(report->files, 5);
  EXPECT_EQ(report->removed.size(), 2u);
  const std::string text = FormatCleanupReport(dir.path(), "1h", *report, 2);
  EXPECT_NE(text.find("(3 more not listed"), std::string::npos) << text;

  EXPECT_EQ(ParseAge("7d").value_or(Millis(0)), Millis(7LL * 86'400'000));
  EXPECT_EQ(ParseAge("12h").value_or(Millis(0)), Millis(12LL * 3'600'000));
  EXPECT_FALSE(ParseAge("d").has_value());
  EXPECT_FALSE(ParseAge("-1d").has_value());
  EXPECT_FALSE(ParseAge("soon").has_value());
}

// --- config keys -----------------------------------------------------------------------------

TEST(AgentConfigDiskKeys, LogDirTargetsAndPrimaryMount) {
  auto c = ParseAgentConfig(R"(
server: http://127.0.0.1:8080
log_dir: /srv/web-1/log/
disk_primary_mount: /srv/web-1
targets:
  - {group: web, url: "http://127.0.0.1:8081/"}
  - group: api
    url: https://127.0.0.1:8443/health
)",
                            "agent.yaml");
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->log_dir, "/srv/web-1/log");
  EXPECT_EQ(c->disk_primary_mount, "/srv/web-1");
  ASSERT_EQ(c->targets.size(), 2u);
  EXPECT_EQ(c->targets[0].group, "web");
  EXPECT_EQ(c->targets[0].url, "http://127.0.0.1:8081/");
  EXPECT_EQ(c->targets[1].group, "api");

  const protocol::RegisterRequest reg = MakeRegisterRequest(*c);
  EXPECT_EQ(reg.log_dir, "/srv/web-1/log");
  ASSERT_EQ(reg.targets.size(), 2u);
  EXPECT_EQ(reg.targets[1].url, "https://127.0.0.1:8443/health");

  const PolicyRules rules = PolicyRulesFromConfig(*c, 1);
  EXPECT_EQ(rules.paths, (std::vector<std::string>{"/var/log", "/srv/web-1/log"}));

  auto d = ParseAgentConfig("server: http://x:1\n", "agent.yaml");
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->log_dir, "/var/log");
  EXPECT_EQ(d->disk_primary_mount, "/");
  EXPECT_TRUE(d->targets.empty());
  EXPECT_EQ(PolicyRulesFromConfig(*d, 1).paths, std::vector<std::string>{"/var/log"});
}

TEST(AgentConfigDiskKeys, BadValuesNameFileAndLine) {
  struct Case {
    std::string yaml;
    std::string want;  // in the message, after "agent.yaml:LINE:"
  };
  for (const Case& c : std::vector<Case>{
           {"log_dir: var/log\n", "agent.yaml:1:10: log_dir must be an absolute path"},
           {"log_dir: /\n", "agent.yaml:1:10: log_dir must be a clean absolute directory"},
           {"log_dir: /var/../etc\n", "agent.yaml:1:10: log_dir must be a clean"},
           {"disk_primary_mount: data\n",
            "agent.yaml:1:21: disk_primary_mount must be an absolute"},
           {"targets: web\n", "agent.yaml:1:10: targets must be a list"},
           {"x: 1\ntargets:\n  - {group: web}\n", "agent.yaml:1:1: unknown key 'x'"},
           {"targets:\n  - {group: web}\n", "agent.yaml:2:5: a target needs a 'group' and a 'url'"},
           {"targets:\n  - {group: web, url: ftp://x/}\n",
            "agent.yaml:2:23: target url must start with http"},
           {"targets:\n  - {group: 'a b', url: http://x/}\n",
            "agent.yaml:2:13: target group 'a b'"},
           {"targets:\n  - {group: web, url: http://x/, port: 1}\n",
            "agent.yaml:2:34: unknown key 'port' in a target"}}) {
    SCOPED_TRACE(c.yaml);
    auto r = ParseAgentConfig(c.yaml, "agent.yaml");
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().message.rfind(c.want, 0), 0u) << r.error().message;
  }
}

TEST(AgentMetricsPrimaryMount, PrimaryIsUnlabelledAndRootGetsALabel) {
  FakeProcFs procfs;
  procfs.SetMount("/", host::FsStats{1000, 500, 500, 100, 50});
  procfs.SetMount("/srv/web-1", host::FsStats{100, 10, 10, 10, 5});
  procfs.SetMount("/data", host::FsStats{100, 50, 50, 0, 0});
  host::ProcMetricsCollector collector(procfs, {"/data"}, "/srv/web-1");
  const host::Metrics m = collector.Collect();
  EXPECT_DOUBLE_EQ(m.at("disk_used_percent"), 90.0);
  EXPECT_DOUBLE_EQ(m.at("inode_used_percent"), 50.0);
  EXPECT_DOUBLE_EQ(m.at("disk_used_percent{mount=\"/\"}"), 50.0);
  EXPECT_DOUBLE_EQ(m.at("disk_used_percent{mount=\"/data\"}"), 50.0);
  EXPECT_EQ(m.count("disk_used_percent{mount=\"/srv/web-1\"}"), 0u);

  host::ProcMetricsCollector plain(procfs, {"/data"});
  const host::Metrics p = plain.Collect();
  EXPECT_DOUBLE_EQ(p.at("disk_used_percent"), 50.0);
  EXPECT_EQ(p.count("disk_used_percent{mount=\"/\"}"), 0u);
}

}  // namespace
}  // namespace medic::agent
