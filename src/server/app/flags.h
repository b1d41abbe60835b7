#pragma once

// medic-server's command line: --config FILE, --listen HOST:PORT, --data-dir DIR,
// --tls-cert FILE --tls-key FILE | --tls-self-signed, --insecure-http, --auto-approve-hosts,
// --metrics-public, --help.

#include <optional>
#include <string>

#include "core/result.h"
#include "server/app/server_app.h"

namespace medic::server {

struct ServerFlags {
  std::string config_file;  // empty: the built-in defaults
  std::string listen;       // empty: the config's
  std::string data_dir;     // empty: the config's
  // Serve plain HTTP on an address other than loopback anyway (tokens cross the network in
  // clear). Without it such a listen address is refused.
  bool insecure_http = false;
  std::string tls_cert;          // --tls-cert FILE (with --tls-key FILE)
  std::string tls_key;
  bool tls_self_signed = false;  // --tls-self-signed: the server's own CA, DATA_DIR/tls/
  bool auto_approve_hosts = false;  // --auto-approve-hosts (labs, benchmarks)
  bool metrics_public = false;      // --metrics-public: GET /metrics needs no token
  // --store URL (CONTRACT.md): sqlite:PATH or postgres://... / postgres:DSN; empty: MEDIC_STORE
  // from the environment, else the config file's `store:` section, else DATA_DIR/medic.db.
  std::string store;
  // Set when there is nothing to run: --help (0) or a bad flag (CLI11's exit code). The help or
  // the error has been printed.
  std::optional<int> exit_code;
};

// 127.0.0.0/8, ::1 (also as "localhost"); anything else, 0.0.0.0 and :: included, is not.
bool IsLoopbackHost(const std::string& host);

// Parses argv; prints and sets exit_code as described above.
ServerFlags ParseServerFlags(int argc, const char* const* argv);

// The config the flags ask for: the file (or the defaults), then --listen and --data-dir, and
// the store: --store, else MEDIC_STORE, replaces the file's `store:` section whole.
// Errors name the file and line. A listen address other than loopback is an error without TLS
// (a certificate, or --tls-self-signed) or --insecure-http: operator and agent tokens, commands
// and diagnostics would cross the network in clear.
Result<ServerConfig> LoadServerConfig(const ServerFlags& flags);

}  // namespace medic::server
