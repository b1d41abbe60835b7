#pragma once

// medic-server's command line: --config FILE, --listen HOST:PORT, --data-dir DIR, --help.

#include <optional>
#include <string>

#include "core/result.h"
#include "server/app/server_app.h"

namespace medic::server {

struct ServerFlags {
  std::string config_file;  // empty: the built-in defaults
  std::string listen;       // empty: the config's
  std::string data_dir;     // empty: the config's
  // Set when there is nothing to run: --help (0) or a bad flag (CLI11's exit code). The help or
  // the error has been printed.
  std::optional<int> exit_code;
};

// Parses argv; prints and sets exit_code as described above.
ServerFlags ParseServerFlags(int argc, const char* const* argv);

// The config the flags ask for: the file (or the defaults), then --listen and --data-dir.
// Errors name the file and line.
Result<ServerConfig> LoadServerConfig(const ServerFlags& flags);

}  // namespace medic::server
