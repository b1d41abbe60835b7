// medic-server: parse flags, load config, run on the real dependencies (MakeRealServerDeps)
// until SIGTERM/SIGINT. See docs/ARCHITECTURE.md.

#include <cstdio>

#include "core/log.h"
#include "server/app/flags.h"
#include "server/app/server_app.h"

int main(int argc, char** argv) {
  medic::SetLogPrefix("medic-server");
  const medic::server::ServerFlags flags = medic::server::ParseServerFlags(argc, argv);
  if (flags.exit_code) {
    return *flags.exit_code;  // --help, or a bad flag
  }
  auto config = medic::server::LoadServerConfig(flags);
  if (!config) {
    std::fprintf(stderr, "medic-server: %s\n", config.error().message.c_str());
    return 2;
  }
  return medic::server::RunServerUntilSignal(*config);
}
