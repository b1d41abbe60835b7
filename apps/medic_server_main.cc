// medic-server: parse flags, load config, run on the real dependencies (MakeRealServerDeps)
// until SIGTERM/SIGINT. `medic-server migrate ...` copies an installation to another store
// (migrate_command.h). See docs/ARCHITECTURE.md.

#include <cstdio>
#include <string_view>

#include "core/log.h"
#include "server/app/flags.h"
#include "server/app/migrate_command.h"
#include "server/app/server_app.h"

int main(int argc, char** argv) {
  medic::SetLogPrefix("medic-server");
  if (argc > 1 && std::string_view(argv[1]) == "migrate") {
    return medic::server::RunMigrateCommand(argc - 1, argv + 1, stdout, stderr);
  }
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
