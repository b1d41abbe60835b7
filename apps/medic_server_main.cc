// medic-server: the control plane. See docs/ARCHITECTURE.md.

#include <csignal>
#include <cstdio>

#include <CLI/CLI.hpp>

#include "core/log.h"
#include "server/app/server_app.h"

int main(int argc, char** argv) {
  CLI::App cli{"medic-server: the medic control plane"};
  std::string config_file, listen, data_dir;
  cli.add_option("--config", config_file, "YAML config file");
  cli.add_option("--listen", listen, "HOST:PORT to serve on (default 127.0.0.1:8080)");
  cli.add_option("--data-dir", data_dir, "state directory (default /var/lib/medic)");
  CLI11_PARSE(cli, argc, argv);

  medic::SetLogPrefix("medic-server");
  medic::server::ServerConfig config;
  if (!config_file.empty()) {
    auto loaded = medic::server::LoadServerConfig(config_file);
    if (!loaded) {
      std::fprintf(stderr, "medic-server: %s\n", loaded.error().message.c_str());
      return 2;
    }
    config = *loaded;
  }
  if (!listen.empty()) config.listen = listen;
  if (!data_dir.empty()) config.data_dir = data_dir;
  if (!medic::SetLogLevelByName(config.log_level)) {
    std::fprintf(stderr, "medic-server: unknown log_level '%s'\n", config.log_level.c_str());
    return 2;
  }
  return medic::server::RunServerUntilSignal(config);
}
