// The environment a test runs in (tests/fakes/hermetic_env.cc). CTest starts this binary with
// MEDIC_AI_PROVIDER, MEDIC_AI_API_KEY, MEDIC_STORE and MEDIC_TOKEN set (tests/core/CMakeLists.txt),
// as an operator's shell might have them.

#include <gtest/gtest.h>

#include <cstdlib>

#include "tests/fakes/subprocess.h"

namespace {

TEST(HermeticEnvTest, NoProductVariableReachesTheTestOrWhatItStarts) {
  for (const char* name : {"MEDIC_AI_PROVIDER", "MEDIC_AI_API_KEY", "MEDIC_STORE", "MEDIC_TOKEN"}) {
    EXPECT_EQ(std::getenv(name), nullptr) << name;
  }
  // A child started the way the tests start binaries sees none of them either.
  const medic::test::RunResult r =
      medic::test::Run({"/bin/sh", "-c", "env | grep '^MEDIC_' | sort; true"});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out.find("MEDIC_AI"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("MEDIC_STORE"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("MEDIC_TOKEN"), std::string::npos) << r.out;
}

TEST(HermeticEnvTest, TheTestsOwnVariablesStay) {
  ASSERT_NE(std::getenv("MEDIC_BIN_DIR"), nullptr);
  ASSERT_NE(std::getenv("MEDIC_CRASH_SEED"), nullptr);
  EXPECT_STREQ(std::getenv("MEDIC_CRASH_SEED"), "7");
}

}  // namespace
