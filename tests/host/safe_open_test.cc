// host::OpenBeneath, the one way the agent opens files it acts on: no symlink in any component
// (root included), not across a mount, the expected type, one link; both resolvers (openat2
// and the O_NOFOLLOW component walk).

#include "host/safe_open.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "tests/fakes/temp_dir.h"

namespace medic::host {
namespace {

void Write(const std::string& path, const std::string& content) {
  std::ofstream(path) << content;
}

class SafeOpenTest : public ::testing::TestWithParam<SafeOpenMode> {
 protected:
  void SetUp() override {
    SetSafeOpenModeForTesting(GetParam());
    root_ = tmp_.File("root");
    ASSERT_EQ(::mkdir(root_.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((root_ + "/a").c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((root_ + "/a/b").c_str(), 0755), 0);
    Write(root_ + "/a/b/f.log", "hello\n");
    ASSERT_EQ(::mkdir(tmp_.File("outside").c_str(), 0755), 0);
    Write(tmp_.File("outside/f.log"), "secret\n");
  }
  void TearDown() override { SetSafeOpenModeForTesting(SafeOpenMode::kAuto); }

  test::TempDir tmp_;
  std::string root_;
};

INSTANTIATE_TEST_SUITE_P(Modes, SafeOpenTest,
                         ::testing::Values(SafeOpenMode::kAuto, SafeOpenMode::kWalk),
                         [](const auto& info) {
                           return info.param == SafeOpenMode::kAuto ? "openat2" : "walk";
                         });

TEST_P(SafeOpenTest, OpensARegularFileBeneathTheRoot) {
  auto f = OpenBeneath(root_, root_ + "/a/b/f.log");
  ASSERT_TRUE(f.has_value()) << f.error().message;
  EXPECT_TRUE(S_ISREG(f->st.st_mode));
  auto text = ReadTailFd(f->fd.get(), "f", 3);
  ASSERT_TRUE(text.has_value());
  EXPECT_EQ(*text, "lo\n");
  // Trailing slashes and doubled slashes in the root are fine.
  EXPECT_TRUE(OpenBeneath(root_ + "/", root_ + "//a/b/f.log").has_value());
  SafeOpenOptions dir;
  dir.kind = SafeKind::kDirectory;
  EXPECT_TRUE(OpenBeneath(root_, root_, dir).has_value());
  EXPECT_TRUE(OpenBeneath(root_, root_ + "/a/b", dir).has_value());
}

TEST_P(SafeOpenTest, RefusesSymlinksInEveryComponent) {
  ASSERT_EQ(::symlink(tmp_.File("outside").c_str(), (root_ + "/a/out").c_str()), 0);
  ASSERT_EQ(::symlink("b", (root_ + "/a/in").c_str()), 0);
  ASSERT_EQ(::symlink(tmp_.File("outside/f.log").c_str(), (root_ + "/a/b/last.log").c_str()), 0);
  ASSERT_EQ(::symlink(root_.c_str(), tmp_.File("alias").c_str()), 0);
  struct Case {
    std::string root, path, at;
  } cases[] = {
      {root_, root_ + "/a/out/f.log", root_ + "/a/out"},
      {root_, root_ + "/a/in/f.log", root_ + "/a/in"},
      {root_, root_ + "/a/b/last.log", root_ + "/a/b/last.log"},
      {tmp_.File("alias"), tmp_.File("alias") + "/a/b/f.log", tmp_.File("alias")},
  };
  for (const auto& c : cases) {
    auto f = OpenBeneath(c.root, c.path);
    ASSERT_FALSE(f.has_value()) << c.path;
    EXPECT_EQ(f.error().code, ErrorCode::kPermissionDenied) << f.error().message;
    EXPECT_EQ(f.error().message, "refusing " + c.path + ": " + c.at +
                                     " is a symbolic link (the agent follows no symlink in any "
                                     "component)");
  }
  SafeOpenOptions dir;
  dir.kind = SafeKind::kDirectory;
  EXPECT_FALSE(OpenBeneath(root_, root_ + "/a/out", dir).has_value());
  // O_CREAT never creates through a dangling symlink.
  ASSERT_EQ(::symlink(tmp_.File("outside/new.log").c_str(), (root_ + "/a/b/dangling").c_str()),
            0);
  SafeOpenOptions create;
  create.flags = O_WRONLY | O_CREAT | O_APPEND;
  EXPECT_FALSE(OpenBeneath(root_, root_ + "/a/b/dangling", create).has_value());
  EXPECT_NE(::access(tmp_.File("outside/new.log").c_str(), F_OK), 0);
  auto made = OpenBeneath(root_, root_ + "/a/b/new.log", create);
  ASSERT_TRUE(made.has_value()) << made.error().message;
  EXPECT_EQ(made->st.st_size, 0);
}

TEST_P(SafeOpenTest, RefusesHardLinksWrongTypesAndPathsOutsideTheRoot) {
  ASSERT_EQ(::link(tmp_.File("outside/f.log").c_str(), (root_ + "/a/hard.log").c_str()), 0);
  auto f = OpenBeneath(root_, root_ + "/a/hard.log");
  ASSERT_FALSE(f.has_value());
  EXPECT_EQ(f.error().code, ErrorCode::kPermissionDenied);
  EXPECT_EQ(f.error().message.rfind("refusing " + root_ + "/a/hard.log: it has 2 hard links", 0),
            0u)
      << f.error().message;

  f = OpenBeneath(root_, root_ + "/a/b");  // a directory where a file is expected
  ASSERT_FALSE(f.has_value());
  EXPECT_NE(f.error().message.find("not a regular file"), std::string::npos);
  SafeOpenOptions dir;
  dir.kind = SafeKind::kDirectory;
  f = OpenBeneath(root_, root_ + "/a/b/f.log", dir);
  ASSERT_FALSE(f.has_value());

  ASSERT_EQ(::mkfifo((root_ + "/a/fifo").c_str(), 0644), 0);
  SafeOpenOptions rw;
  rw.flags = O_RDWR;
  f = OpenBeneath(root_, root_ + "/a/fifo", rw);  // O_NONBLOCK: never hangs
  ASSERT_FALSE(f.has_value());
  EXPECT_NE(f.error().message.find("not a regular file"), std::string::npos);

  for (const std::string& bad :
       {tmp_.File("outside/f.log"), root_ + "/a/../../outside/f.log", std::string("a/b/f.log"),
        root_ + "x/f.log"}) {
    f = OpenBeneath(root_, bad);
    ASSERT_FALSE(f.has_value()) << bad;
    EXPECT_EQ(f.error().code, ErrorCode::kPermissionDenied) << bad;
  }
  f = OpenBeneath("/", tmp_.File("outside/f.log"));
  ASSERT_FALSE(f.has_value());
  EXPECT_NE(f.error().message.find("/ is never an allowed root"), std::string::npos);
  SafeOpenOptions trunc;
  trunc.flags = O_WRONLY | O_TRUNC;
  EXPECT_FALSE(OpenBeneath(root_, root_ + "/a/b/f.log", trunc).has_value());
  EXPECT_EQ(::access((root_ + "/a/b/f.log").c_str(), F_OK), 0);

  EXPECT_EQ(OpenBeneath(root_, root_ + "/a/none.log").error().code, ErrorCode::kNotFound);
}

TEST(SafeOpen, ParentDir) {
  EXPECT_EQ(ParentDir("/var/log/a.log"), "/var/log");
  EXPECT_EQ(ParentDir("/a.log"), "/");
  EXPECT_EQ(ParentDir("/var/log/"), "/var");
}

}  // namespace
}  // namespace medic::host
