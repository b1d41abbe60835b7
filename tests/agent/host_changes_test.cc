// What changed on a host (agent/host_changes.h): dpkg's log, the service manager's record, config
// files under the watched paths, the boot time; all read under a sandboxed root the test builds,
// and bounded against bad input (a malformed dpkg.log line, huge files, a symlink loop).

#include "agent/host_changes.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ctime>
#include <filesystem>

#include "agent/config.h"
#include "core/files.h"
#include "core/sha256.h"
#include "tests/fakes/temp_dir.h"

namespace medic::agent {
namespace {

using namespace std::chrono_literals;

void Write(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  ASSERT_TRUE(WriteFileAtomic(path, text).has_value()) << path;
}

void SetMtime(const std::string& path, WallTime t) {
  const time_t secs = std::chrono::system_clock::to_time_t(t);
  const timespec times[2] = {{secs, 0}, {secs, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW), 0) << path;
}

// A sparse file of `size` bytes (no disk blocks but for `tail`, written at its end).
void Sparse(const std::string& path, off_t size, const std::string& tail = "") {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(::ftruncate(fd, size), 0);
  if (!tail.empty()) {
    ASSERT_EQ(::pwrite(fd, tail.data(), tail.size(), size - static_cast<off_t>(tail.size())),
              static_cast<ssize_t>(tail.size()));
  }
  ::close(fd);
}

bool Has(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

TEST(ParseDpkgLogTest, ChangesInTheWindowOnlyMalformedLinesCounted) {
  const WallTime now = std::chrono::system_clock::now();
  const WallTime since = now - 1h;
  const std::string text =
      FormatDpkgTime(now - 2h) + " install old-pkg:amd64 <none> 1.0\n" +
      FormatDpkgTime(now - 10min) + " install nginx-extras:amd64 <none> 1.22.1-9\n" +
      FormatDpkgTime(now - 9min) + " status half-installed nginx-extras:amd64 1.22.1-9\n" +
      FormatDpkgTime(now - 8min) + " upgrade libssl3:amd64 3.0.11-1 3.0.13-1\n" +
      FormatDpkgTime(now - 7min) + " remove telnet:amd64 0.17-44 <none>\n" +
      FormatDpkgTime(now - 6min) + " configure nginx-extras:amd64 1.22.1-9 <none>\n" +
      "this is not a dpkg line\n" +
      "2026-13-45 99:99:99 install bad:amd64 <none> 1\n" +
      FormatDpkgTime(now - 5min) + " install missing-fields:amd64\n" +
      std::string(5000, 'x') + "\n" +
      FormatDpkgTime(now - 4min) + " purge \x1b[31mevil:amd64 1 <none>\n";
  size_t malformed = 0;
  const std::vector<PackageChange> got = ParseDpkgLog(text, since, &malformed);
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[0].action, "install");
  EXPECT_EQ(got[0].package, "nginx-extras:amd64");
  EXPECT_EQ(got[0].new_version, "1.22.1-9");
  EXPECT_EQ(got[1].action, "upgrade");
  EXPECT_EQ(got[1].old_version, "3.0.11-1");
  EXPECT_EQ(got[1].new_version, "3.0.13-1");
  EXPECT_EQ(got[2].action, "remove");
  EXPECT_EQ(got[3].action, "purge");
  EXPECT_EQ(malformed, 4u);
  EXPECT_EQ(std::chrono::system_clock::to_time_t(got[0].at),
            std::chrono::system_clock::to_time_t(now - 10min));
}

class HostChangesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_.File("root");
    options_.root = root_;
    options_.watch_paths = {"/etc"};
    std::filesystem::create_directories(root_ + "/etc");
  }
  std::string Collect(std::vector<ServiceStatus> services = {}) {
    return CollectHostChanges(options_, now_, 1h, services);
  }

  test::TempDir dir_;
  std::string root_;
  ChangesOptions options_;
  WallTime now_ = std::chrono::system_clock::now();
};

// Acceptance (the host's part): a package installed and a config file changed shortly before,
// and nothing older than the window.
TEST_F(HostChangesTest, ListsAPackageInstalledAndAConfigFileChangedShortlyBefore) {
  Write(root_ + "/var/log/dpkg.log",
        FormatDpkgTime(now_ - 3h) + " install ancient:amd64 <none> 0.1\n" +
            FormatDpkgTime(now_ - 12min) + " install nginx-extras:amd64 <none> 1.22.1-9\n");
  const std::string conf = "worker_processes 64;\n";
  Write(root_ + "/etc/nginx/nginx.conf", conf);
  SetMtime(root_ + "/etc/nginx/nginx.conf", now_ - 5min);
  Write(root_ + "/etc/hostname", "web-1\n");
  SetMtime(root_ + "/etc/hostname", now_ - 5h);
  Write(root_ + "/proc/stat", "cpu  1 2 3\nbtime 1000000000\n");

  ServiceStatus nginx;
  nginx.name = "nginx";
  nginx.running = true;
  nginx.pid = 4242;
  nginx.started_at = now_ - 3min;
  ServiceStatus app;
  app.name = "healthapp";
  app.started_at = now_ - 10h;
  const std::string out = Collect({nginx, app});
  EXPECT_TRUE(Has(out, "install nginx-extras:amd64 1.22.1-9")) << out;
  EXPECT_FALSE(Has(out, "ancient")) << out;
  EXPECT_TRUE(Has(out, "/etc/nginx/nginx.conf (" + std::to_string(conf.size()) +
                           " B, sha256 " + Sha256Hex(conf) + ")"))
      << out;
  EXPECT_FALSE(Has(out, "/etc/hostname")) << out;
  EXPECT_FALSE(Has(out, root_)) << "paths are shown as the host sees them:\n" << out;
  EXPECT_TRUE(Has(out, "nginx started (running, pid 4242)")) << out;
  EXPECT_FALSE(Has(out, "healthapp")) << out;
  EXPECT_TRUE(Has(out, "none: booted 2001-09-09T01:46:40Z, before the window")) << out;
}

TEST_F(HostChangesTest, MissingSourcesAreSaidNotFatal) {
  std::filesystem::remove_all(root_ + "/etc");
  const std::string out = Collect();
  EXPECT_TRUE(Has(out, "packages (/var/log/dpkg.log):\n  unknown: cannot read")) << out;
  EXPECT_TRUE(Has(out, "(cannot read /etc:")) << out;
  EXPECT_TRUE(Has(out, "reboots:\n  unknown")) << out;
  EXPECT_TRUE(Has(out, "services (the agent's service manager):\n  none")) << out;
}

TEST_F(HostChangesTest, ARecentBootIsARebootInTheWindow) {
  const time_t boot = std::chrono::system_clock::to_time_t(now_ - 20min);
  Write(root_ + "/proc/stat", "btime " + std::to_string(boot) + "\n");
  EXPECT_TRUE(Has(Collect(), "the host booted (within the window)"));
}

// Bad input: a symlink loop, a link out of the sandbox, a huge file, a huge dpkg.log, many
// files: all bounded, nothing followed, no crash.
TEST_F(HostChangesTest, SymlinkLoopsAndLinksAreListedNeverFollowed) {
  const std::string etc = root_ + "/etc";
  std::filesystem::create_directories(etc + "/a");
  ASSERT_EQ(::symlink(".", (etc + "/a/loop").c_str()), 0);
  ASSERT_EQ(::symlink("../a", (etc + "/a/up").c_str()), 0);
  ASSERT_EQ(::symlink("self", (etc + "/self").c_str()), 0);
  ASSERT_EQ(::symlink("/", (etc + "/escape").c_str()), 0);
  Write(etc + "/a/real.conf", "x=1\n");
  const std::string out = Collect();
  EXPECT_TRUE(Has(out, "/etc/a/loop (symlink -> .)")) << out;
  EXPECT_TRUE(Has(out, "/etc/a/up (symlink -> ../a)")) << out;
  EXPECT_TRUE(Has(out, "/etc/self (symlink -> self)")) << out;
  EXPECT_TRUE(Has(out, "/etc/escape (symlink -> /)")) << out;
  EXPECT_TRUE(Has(out, "/etc/a/real.conf (4 B, sha256 " + Sha256Hex("x=1\n") + ")")) << out;
  EXPECT_FALSE(Has(out, "/etc/a/loop/")) << out;
  EXPECT_FALSE(Has(out, "stopped after")) << out;
}

TEST_F(HostChangesTest, HugeFilesAreListedWithoutBeingReadWhole) {
  options_.max_hash_bytes = 1 << 20;
  Sparse(root_ + "/etc/huge.bin", off_t{3} << 30);  // 3 GiB, sparse: no disk used
  std::filesystem::create_directories(root_ + "/var/log");
  // A 2 GiB dpkg.log whose last line is the change: only its tail is read.
  Sparse(root_ + "/var/log/dpkg.log", off_t{2} << 30,
         "\n" + FormatDpkgTime(now_ - 1min) + " install tail-pkg:amd64 <none> 2.0\n");
  const std::string out = Collect();
  EXPECT_TRUE(Has(out, "/etc/huge.bin (3221225472 B, not hashed: larger than 1048576 B)"))
      << out;
  EXPECT_TRUE(Has(out, "install tail-pkg:amd64 2.0")) << out;
  // The zeros before it are one malformed "line" at most: bounded.
  EXPECT_LT(out.size(), 4096u) << out;
}

TEST_F(HostChangesTest, TheCapsBoundWalkingHashingAndLines) {
  options_.max_entries_walked = 30;
  options_.max_files_hashed = 5;
  options_.max_lines = 10;
  for (int i = 0; i < 100; ++i) {
    Write(root_ + "/etc/many/f" + std::to_string(i) + ".conf", "v" + std::to_string(i));
  }
  const std::string out = Collect();
  EXPECT_TRUE(Has(out, "(stopped after 30 entries: more may have changed)")) << out;
  EXPECT_TRUE(Has(out, "older not shown)")) << out;
  size_t hashed = 0;
  for (size_t pos = 0; (pos = out.find("sha256 ", pos)) != std::string::npos; ++pos) {
    ++hashed;
  }
  EXPECT_LE(hashed, 5u) << out;
  EXPECT_TRUE(Has(out, "not hashed: the hashing budget of this report is spent")) << out;
}

TEST_F(HostChangesTest, DeepTreesStopAtTheDepthCap) {
  options_.max_depth = 3;
  std::string deep = root_ + "/etc";
  for (int i = 0; i < 10; ++i) {
    deep += "/d" + std::to_string(i);
  }
  Write(deep + "/bottom.conf", "deep\n");
  Write(root_ + "/etc/d0/top.conf", "top\n");
  const std::string out = Collect();
  EXPECT_TRUE(Has(out, "/etc/d0/top.conf")) << out;
  EXPECT_FALSE(Has(out, "bottom.conf")) << out;
  EXPECT_TRUE(Has(out, "(directories deeper than 3 levels not read)")) << out;
}

TEST(HostChangesConfigTest, TheChangesSectionParsesAndBadValuesAreErrors) {
  auto ok = ParseAgentConfig("changes:\n  root: /srv/sandbox\n  watch: [/etc, /opt/app/conf]\n"
                             "  max_files_hashed: 10\n  max_hash_bytes: 2MiB\n"
                             "  max_entries: 500\n  max_lines: 20\n",
                             "agent.yaml");
  ASSERT_TRUE(ok.has_value()) << ok.error().message;
  EXPECT_EQ(ok->changes.root, "/srv/sandbox");
  EXPECT_EQ(ok->changes.watch_paths, (std::vector<std::string>{"/etc", "/opt/app/conf"}));
  EXPECT_EQ(ok->changes.max_files_hashed, 10u);
  EXPECT_EQ(ok->changes.max_hash_bytes, 2u << 20);
  EXPECT_EQ(ok->changes.max_entries_walked, 500u);
  EXPECT_EQ(ok->changes.max_lines, 20u);
  auto defaults = ParseAgentConfig("name: web-1\n", "agent.yaml");
  ASSERT_TRUE(defaults.has_value());
  EXPECT_EQ(defaults->changes.root, "/");
  EXPECT_EQ(defaults->changes.watch_paths, std::vector<std::string>{"/etc"});

  struct Case {
    std::string yaml;
    std::string want;
  };
  const Case cases[] = {
      {"changes:\n  root: relative\n", "changes.root must be an absolute path"},
      {"changes:\n  watch: [etc]\n", "changes.watch entry must be an absolute path"},
      {"changes:\n  watch: [/etc/../root]\n", "changes.watch entries must be clean"},
      {"changes:\n  max_hash_bytes: lots\n", "changes.max_hash_bytes must be a byte size"},
      {"changes:\n  max_lines: 0\n", "changes.max_lines must be an integer from 1 to 1000"},
      {"changes:\n  colour: red\n", "unknown key 'colour' in changes"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.yaml);
    auto r = ParseAgentConfig(c.yaml, "agent.yaml");
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().message.find(c.want), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("agent.yaml:"), std::string::npos) << r.error().message;
  }
}

}  // namespace
}  // namespace medic::agent
