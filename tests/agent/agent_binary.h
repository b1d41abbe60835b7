#pragma once

// What the tests that start the real medic-agent binary share: where it is, and the credential
// their fake servers issue and expect.

#include <cstdlib>
#include <string>

namespace medic::agent::testing {

// From MEDIC_BIN_DIR when the test runner sets it, else the binary this test was built with
// (MEDIC_AGENT_BINARY, set by tests/agent/CMakeLists.txt).
inline std::string AgentBinary() {
  const char* dir = std::getenv("MEDIC_BIN_DIR");
  return dir != nullptr ? std::string(dir) + "/medic-agent" : std::string(MEDIC_AGENT_BINARY);
}

// The host credential the fake servers issue (at enrolment, or stored in the state directory).
inline constexpr char kCredential[] =
    "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00";

}  // namespace medic::agent::testing
