#pragma once

// Table tests of bad server config files: each text, written to s.yaml, must be refused by
// LoadServerConfig with a message naming the file and containing `want` (usually ":LINE: why").

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/files.h"
#include "server/app/server_app.h"
#include "tests/fakes/temp_dir.h"

namespace medic::test {

struct ConfigErrorCase {
  std::string text;
  std::string want;  // substring of the message
};

inline void ExpectConfigErrors(const std::vector<ConfigErrorCase>& cases) {
  TempDir dir;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    ASSERT_TRUE(WriteFileAtomic(dir.File("s.yaml"), c.text).has_value());
    auto r = server::LoadServerConfig(dir.File("s.yaml"));
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().message.find(c.want), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("s.yaml"), std::string::npos) << r.error().message;
  }
}

}  // namespace medic::test
