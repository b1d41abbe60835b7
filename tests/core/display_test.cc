#include "core/display.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "core/log.h"

namespace medic {
namespace {

TEST(SanitizeForDisplayTest, Table) {
  struct Case {
    const char* name;
    std::string in;
    std::string want;
  };
  const Case kCases[] = {
      {"plain text", "nginx: stopped\n\tpid 12", "nginx: stopped\n\tpid 12"},
      {"utf-8 kept", "disk \xc3\xa9t\xc3\xa9 \xe2\x80\x94 95 %", "disk \xc3\xa9t\xc3\xa9 \xe2\x80\x94 95 %"},
      {"four-byte utf-8 kept", "\xf0\x9f\x94\xa5", "\xf0\x9f\x94\xa5"},
      {"clear screen", "a\x1b[2Jb", "a\\x1b[2Jb"},
      {"OSC 52 clipboard write", "\x1b]52;c;cm0gLXJmIC8=\x07", "\\x1b]52;c;cm0gLXJmIC8=\\x07"},
      {"C1 CSI", "a\xc2\x9b" "2Jb", "a\\u009b2Jb"},
      {"NUL and DEL", std::string("a\0b\x7f", 4), "a\\x00b\\x7f"},
      {"CR LF to LF, lone CR escaped", "a\r\nb\rc", "a\nb\\x0dc"},
      {"invalid byte", "a\xff" "b", "a\xef\xbf\xbd" "b"},
      {"overlong encoding", "\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},
      {"truncated sequence", "a\xe2\x80", "a\xef\xbf\xbd\xef\xbf\xbd"},
      {"surrogate", "\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
      {"right-to-left override", "rm -rf \xe2\x80\xae/ tsil", "rm -rf \\u202e/ tsil"},
      {"isolates and marks", "\xe2\x81\xa6x\xe2\x81\xa9\xe2\x80\x8f", "\\u2066x\\u2069\\u200f"},
      {"other punctuation kept", "\xe2\x80\x94\xe2\x80\xa6", "\xe2\x80\x94\xe2\x80\xa6"},
      {"empty", "", ""},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(SanitizeForDisplay(c.in), c.want);
  }
}

}  // namespace
}  // namespace medic

namespace medic {
namespace {

TEST(SanitizeForLogLineTest, OneLineWhateverTheMessageHolds) {
  EXPECT_EQ(SanitizeForLogLine("plain text, 100% ASCII"), "plain text, 100% ASCII");
  EXPECT_EQ(SanitizeForLogLine("check ok\n2026-12-06T00:00:00.000Z medic-server INFO: forged"),
            "check ok\\n2026-12-06T00:00:00.000Z medic-server INFO: forged");
  EXPECT_EQ(SanitizeForLogLine("a\r\nb\tc\x1b[2J\x07"), "a\\nb\\tc\\x1b[2J\\x07");
  EXPECT_EQ(SanitizeForLogLine("\xe2\x80\xae" "evil"), "\\u202eevil");
  EXPECT_EQ(SanitizeForLogLine("h\xc3\xa9llo"), "h\xc3\xa9llo");
}

TEST(LogTest, AForgedLineIsWrittenAsOneEscapedLine) {
  testing::internal::CaptureStderr();
  LogWarn("report from web-1: detail=ok\n2026-12-06T00:00:00.000Z medic INFO: \x1b]52;c;x\x07");
  const std::string out = testing::internal::GetCapturedStderr();
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  EXPECT_EQ(out.find('\x1b'), std::string::npos) << out;
  EXPECT_NE(out.find("detail=ok\\n2026-12-06T00:00:00.000Z medic INFO: \\x1b]52;c;x\\x07"),
            std::string::npos)
      << out;
}

}  // namespace
}  // namespace medic
