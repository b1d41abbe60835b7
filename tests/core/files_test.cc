#include "core/files.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

namespace medic {
namespace {

class FilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/medic-files-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::vector<std::string> Entries() const {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(dir_)) {
      out.push_back(e.path().filename().string());
    }
    return out;
  }

  static int ModeOf(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
    return static_cast<int>(st.st_mode & 07777);
  }

  std::string dir_;
};

// Sets the process umask for one scope.
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : old_(::umask(mask)) {}
  ~ScopedUmask() { ::umask(old_); }

 private:
  mode_t old_;
};

TEST_F(FilesTest, WriteFileAtomicRoundTripsBytesAndLeavesNoTemporaries) {
  const std::string path = dir_ + "/data.bin";
  std::string content("binary\0with\xff bytes\n", 20);
  ASSERT_TRUE(WriteFileAtomic(path, content).has_value());
  Result<std::string> got = ReadFile(path);
  ASSERT_TRUE(got.has_value()) << got.error().ToString();
  EXPECT_EQ(*got, content);

  // Replacing keeps exactly one file.
  ASSERT_TRUE(WriteFileAtomic(path, "second").has_value());
  EXPECT_EQ(ReadFile(path).value_or(""), "second");
  EXPECT_EQ(Entries(), std::vector<std::string>{"data.bin"});

  ASSERT_TRUE(WriteFileAtomic(path, "").has_value());
  EXPECT_EQ(ReadFile(path).value_or("x"), "");
}

TEST_F(FilesTest, WriteFileAtomicAppliesTheModeWhateverTheUmask) {
  struct Case {
    mode_t umask;
    int mode;
  };
  const Case kCases[] = {{0, 0600}, {022, 0600}, {077, 0600}, {022, 0644}, {077, 0644}, {0, 0640}};
  for (const Case& c : kCases) {
    SCOPED_TRACE("umask " + std::to_string(c.umask) + " mode " + std::to_string(c.mode));
    const std::string path = dir_ + "/secret";
    {
      ScopedUmask mask(c.umask);
      ASSERT_TRUE(WriteFileAtomic(path, "token", c.mode).has_value());
    }
    EXPECT_EQ(ModeOf(path), c.mode);
  }
  // A secret written over a world-readable file is no longer world-readable.
  const std::string path = dir_ + "/admin.token";
  ASSERT_TRUE(WriteFileAtomic(path, "old", 0644).has_value());
  ASSERT_TRUE(WriteFileAtomic(path, "new", 0600).has_value());
  EXPECT_EQ(ModeOf(path), 0600);
  EXPECT_EQ(ModeOf(dir_ + "/secret"), 0640);
}

TEST_F(FilesTest, WriteFileAtomicIntoMissingDirectoryFails) {
  Status s = WriteFileAtomic(dir_ + "/missing/file", "x");
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code, ErrorCode::kNotFound);
  EXPECT_NE(s.error().message.find(dir_ + "/missing/file"), std::string::npos);
}

TEST_F(FilesTest, ReadFileOfMissingFileIsNotFound) {
  Result<std::string> r = ReadFile(dir_ + "/nope");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kNotFound);
  EXPECT_NE(r.error().message.find(dir_ + "/nope"), std::string::npos);
}

TEST_F(FilesTest, ReadFileTail) {
  std::string big;
  for (int i = 0; big.size() < 100'000; ++i) {
    big += "line " + std::to_string(i) + "\n";
  }
  struct Case {
    std::string name;
    std::string content;
    size_t max_bytes;
    std::string want;
  };
  const Case kCases[] = {
      {"shorter than the file", "0123456789", 4, "6789"},
      {"exactly the file", "0123456789", 10, "0123456789"},
      {"longer than the file", "0123456789", 100, "0123456789"},
      {"zero bytes", "0123456789", 0, ""},
      {"empty file", "", 10, ""},
      {"one byte", "0123456789", 1, "9"},
      {"big file, more than one read buffer", big, 20'000, big.substr(big.size() - 20'000)},
      {"big file, whole", big, 1'000'000, big},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    const std::string path = dir_ + "/log";
    ASSERT_TRUE(WriteFileAtomic(path, c.content).has_value());
    Result<std::string> got = ReadFileTail(path, c.max_bytes);
    ASSERT_TRUE(got.has_value()) << got.error().ToString();
    EXPECT_TRUE(*got == c.want) << got->size() << " bytes vs " << c.want.size();
  }
  Result<std::string> missing = ReadFileTail(dir_ + "/nope", 10);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
}

TEST_F(FilesTest, MakeDirs) {
  const std::string nested = dir_ + "/a/b/c";
  ASSERT_TRUE(MakeDirs(nested).has_value());
  EXPECT_TRUE(std::filesystem::is_directory(nested));
  // Existing is fine, trailing slash too.
  EXPECT_TRUE(MakeDirs(nested).has_value());
  EXPECT_TRUE(MakeDirs(dir_ + "/a/b/").has_value());

  ASSERT_TRUE(WriteFileAtomic(dir_ + "/file", "x").has_value());
  EXPECT_FALSE(MakeDirs(dir_ + "/file").has_value());
  EXPECT_FALSE(MakeDirs(dir_ + "/file/sub").has_value());
  EXPECT_FALSE(MakeDirs("").has_value());
}

TEST_F(FilesTest, PathExists) {
  EXPECT_TRUE(PathExists(dir_));
  EXPECT_FALSE(PathExists(dir_ + "/nope"));
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/f", "x").has_value());
  EXPECT_TRUE(PathExists(dir_ + "/f"));
}

TEST(FilesPureTest, Trim) {
  struct Case {
    std::string_view in;
    std::string_view want;
  };
  const Case kCases[] = {{"", ""},           {"   ", ""},      {"a", "a"},  {"  a b  ", "a b"},
                         {"\t\r\na\n", "a"}, {"\f\va\v", "a"}, {"x\n", "x"}};
  for (const Case& c : kCases) {
    SCOPED_TRACE(std::string(c.in));
    EXPECT_EQ(Trim(c.in), c.want);
  }
}

TEST(FilesPureTest, SplitLines) {
  struct Case {
    std::string in;
    std::vector<std::string> want;
  };
  const Case kCases[] = {
      {"", {}},
      {"a", {"a"}},
      {"a\n", {"a"}},
      {"a\nb", {"a", "b"}},
      {"a\n\nb\n", {"a", "", "b"}},
      {"\n", {""}},
      {"a\r\nb", {"a\r", "b"}},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.in);
    EXPECT_EQ(SplitLines(c.in), c.want);
  }
}

TEST(FilesPureTest, RandomHexIsHexOfTheRightLengthAndVaries) {
  std::set<std::string> seen;
  for (size_t bytes : {0, 1, 16, 32}) {
    SCOPED_TRACE(bytes);
    const std::string hex = RandomHex(bytes);
    EXPECT_EQ(hex.size(), 2 * bytes);
    EXPECT_EQ(hex.find_first_not_of("0123456789abcdef"), std::string::npos);
  }
  for (int i = 0; i < 20; ++i) {
    seen.insert(RandomHex(16));
  }
  EXPECT_EQ(seen.size(), 20u);
}

}  // namespace
}  // namespace medic
