// The YAML config loaders: the agent's (ParseAgentConfig from text, then FinalizeAgentConfig), medic-server's whole file
// (LoadServerConfig: the alarms, runbooks, breaker, target_groups, hosts, archive and ai
// sections and the scalars) and `medic ai check`'s ai section (LoadAiConfigFile). The server's
// loaders take a path only, so the input goes to one temp file (in TMPDIR, removed at exit).

#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "agent/config.h"
#include "ai/ai_config.h"
#include "server/app/server_app.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

std::string* config_path = nullptr;

void RemoveConfig() {
  if (config_path != nullptr) {
    unlink(config_path->c_str());
  }
}

void WriteConfig(const uint8_t* data, size_t size) {
  const int fd = open(config_path->c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  FUZZ_CHECK(fd >= 0);
  size_t done = 0;
  while (done < size) {
    const ssize_t n = write(fd, data + done, size - done);
    FUZZ_CHECK(n > 0);
    done += static_cast<size_t>(n);
  }
  close(fd);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* tmp = std::getenv("TMPDIR");
  config_path = new std::string(std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                                "/medic-config-fuzzer-" + std::to_string(getpid()) + ".yaml");
  std::atexit(RemoveConfig);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto agent = medic::agent::ParseAgentConfig(text, "fuzz.yaml"); agent.has_value()) {
    (void)medic::agent::FinalizeAgentConfig({}, &*agent);
  }
  WriteConfig(data, size);
  (void)medic::server::LoadServerConfig(*config_path);
  (void)medic::ai::LoadAiConfigFile(*config_path);
  return 0;
}
