// Linked into every test binary (tests/CMakeLists.txt, medic_test): before main, removes every
// MEDIC_* variable of the environment the tests were started from, except the ones that steer
// the tests themselves. The programs the tests start inherit the result, so that an operator's
// exported MEDIC_AI_PROVIDER (a real model), MEDIC_STORE, MEDIC_TOKEN or MEDIC_SERVER never
// reaches a test's server, agent or CLI; a test that wants one sets it itself (issue 20).

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

extern char** environ;

namespace {

// What CTest and the developer pass to the tests: where the binaries and sources are, and the
// knobs of long or randomized tests (MEDIC_CRASH_SEED replays one crash round).
bool KeptForTests(const std::string& name) {
  return name == "MEDIC_BIN_DIR" || name == "MEDIC_SOURCE_DIR" ||
         name.rfind("MEDIC_TEST_", 0) == 0 || name.rfind("MEDIC_CRASH_", 0) == 0 ||
         name.rfind("MEDIC_FUZZ_", 0) == 0;
}

const bool kCleared = [] {
  std::vector<std::string> drop;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const char* eq = std::strchr(*e, '=');
    const std::string name = eq != nullptr ? std::string(*e, eq - *e) : std::string(*e);
    if (name.rfind("MEDIC_", 0) == 0 && !KeptForTests(name)) {
      drop.push_back(name);
    }
  }
  for (const std::string& name : drop) {
    ::unsetenv(name.c_str());
  }
  return true;
}();

}  // namespace
