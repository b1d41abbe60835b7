// Per-command cgroups on the real v1 hierarchy: the shared medic-agent/ parent goes with the
// last command's cgroup. Runs in a child moved into a private cgroup, so that commands of other
// tests running at the same time cannot keep the parent busy.

#include "host/cgroup.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "core/files.h"

namespace medic::host {
namespace {

bool IsDirectory(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_directory(path, ec);
}

TEST(CommandCgroupTest, TheSharedParentGoesWithTheLastCommandsCgroup) {
  const std::string root = "/sys/fs/cgroup/pids";
  if (!PathExists(root + "/cgroup.procs") || geteuid() != 0) {
    GTEST_SKIP() << "needs root and the cgroup v1 pids hierarchy";
  }
  const std::string mine = root + "/medic-cgroup-test-" + std::to_string(getpid());
  ASSERT_EQ(::mkdir(mine.c_str(), 0755), 0);
  const std::string parent = mine + "/medic-agent";
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Exit codes say which step failed.
    const int fd = ::open((mine + "/cgroup.procs").c_str(), O_WRONLY);
    if (fd < 0 || ::write(fd, "0", 1) != 1) {
      _exit(10);
    }
    ::close(fd);
    {
      auto a = CommandCgroup::Create("cmd-a", root);
      auto b = CommandCgroup::Create("cmd-b", root);
      if (!a || !b || (*a)->path() != parent + "/cmd-a") {
        _exit(11);
      }
      a->reset();
      if (!IsDirectory(parent) || PathExists(parent + "/cmd-a")) {
        _exit(12);  // b is still in it: the parent stays
      }
      b->reset();
      if (PathExists(parent)) {
        _exit(13);  // the last one went: so did the parent
      }
      auto c = CommandCgroup::Create("cmd-c", root);  // and it comes back when needed
      if (!c || !IsDirectory(parent + "/cmd-c")) {
        _exit(14);
      }
    }
    _exit(PathExists(parent) ? 15 : 0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ::rmdir((parent + "/cmd-a").c_str());  // whatever a failure left behind
  ::rmdir((parent + "/cmd-b").c_str());
  ::rmdir((parent + "/cmd-c").c_str());
  ::rmdir(parent.c_str());
  // The child has exited, so its cgroup is empty.
  EXPECT_EQ(::rmdir(mine.c_str()), 0) << mine;
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "step that failed: see the exit codes in the test";
}

}  // namespace
}  // namespace medic::host
