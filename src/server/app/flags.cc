#include "server/app/flags.h"

#include <CLI/CLI.hpp>

namespace medic::server {

ServerFlags ParseServerFlags(int argc, const char* const* argv) {
  ServerFlags flags;
  CLI::App app{"medic-server: the medic control plane"};
  app.add_option("--config", flags.config_file, "YAML config file");
  app.add_option("--listen", flags.listen, "HOST:PORT to serve on (default 127.0.0.1:8080)");
  app.add_option("--data-dir", flags.data_dir, "state directory (default /var/lib/medic)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    flags.exit_code = app.exit(e);  // the help to stdout, or the error to stderr
  }
  return flags;
}

Result<ServerConfig> LoadServerConfig(const ServerFlags& flags) {
  ServerConfig config;
  if (!flags.config_file.empty()) {
    ASSIGN_OR_RETURN(config, LoadServerConfig(flags.config_file));
  }
  if (!flags.listen.empty()) {
    config.listen = flags.listen;
  }
  if (!flags.data_dir.empty()) {
    config.data_dir = flags.data_dir;
  }
  return config;
}

}  // namespace medic::server
