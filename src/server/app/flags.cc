#include "server/app/flags.h"

#include <CLI/CLI.hpp>
#include <boost/asio/ip/address.hpp>

#include <cstdlib>

#include "server/http/http_server.h"
#include "server/store/store_uri.h"

namespace medic::server {

bool IsLoopbackHost(const std::string& host) {
  boost::system::error_code ec;
  const auto address = boost::asio::ip::make_address(host, ec);
  if (ec) {
    return host == "localhost";
  }
  return address.is_loopback();
}

ServerFlags ParseServerFlags(int argc, const char* const* argv) {
  ServerFlags flags;
  CLI::App app{"medic-server: the medic control plane"};
  app.footer(
      "medic-server migrate --from URI --to URI: copy an installation to another store "
      "(medic-server migrate --help)\n");
  app.add_option("--config", flags.config_file, "YAML config file");
  app.add_option("--listen", flags.listen, "HOST:PORT to serve on (default 127.0.0.1:8080)");
  app.add_option("--data-dir", flags.data_dir, "state directory (default /var/lib/medic)");
  app.add_option("--store", flags.store,
                 "where the state is kept: sqlite:PATH (default sqlite:DATA_DIR/medic.db) or "
                 "postgres://... / postgres:DSN (also MEDIC_STORE; docs/STORE.md)");
  app.add_option("--tls-cert", flags.tls_cert, "TLS certificate (PEM, may hold the chain)");
  app.add_option("--tls-key", flags.tls_key, "TLS private key (PEM)");
  app.add_flag("--tls-self-signed", flags.tls_self_signed,
               "serve HTTPS with the server's own CA and certificate (DATA_DIR/tls/, made once)");
  app.add_flag("--auto-approve-hosts", flags.auto_approve_hosts,
               "enrol a new host name that asks with the bootstrap token without an admin "
               "(labs and benchmarks)");
  app.add_flag("--metrics-public", flags.metrics_public,
               "serve GET /metrics without a token (default: a viewer token or session)");
  app.add_flag("--insecure-http", flags.insecure_http,
               "serve plain HTTP on a non-loopback address (tokens cross the network in clear)");
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
  std::string store_uri = flags.store;
  std::string store_from = "--store";
  if (store_uri.empty()) {
    if (const char* env = std::getenv(kStoreUriEnv); env != nullptr && *env != '\0') {
      store_uri = env;
      store_from = kStoreUriEnv;
    }
  }
  if (!store_uri.empty()) {
    Result<StoreUri> uri = ParseStoreUri(store_uri);
    if (!uri) {
      return InvalidArgument(store_from + ": " + uri.error().message);
    }
    StoreConfig store;
    if (uri->driver == StoreDriver::kPostgres) {
      store.driver = StoreConfig::Driver::kPostgres;
      store.dsn = uri->dsn;
    } else {
      store.sqlite_path = uri->path;
    }
    config.store = std::move(store);
  }
  if (!flags.tls_cert.empty() || !flags.tls_key.empty()) {
    config.tls_cert = flags.tls_cert;
    config.tls_key = flags.tls_key;
  }
  config.tls_self_signed = config.tls_self_signed || flags.tls_self_signed;
  config.auto_approve_hosts = config.auto_approve_hosts || flags.auto_approve_hosts;
  config.metrics_public = config.metrics_public || flags.metrics_public;
  const bool tls = !config.tls_cert.empty() || !config.tls_key.empty() || config.tls_self_signed;
  std::string host;
  uint16_t port = 0;
  RETURN_IF_ERROR(ParseHostPort(config.listen, &host, &port));
  if (!tls && !IsLoopbackHost(host) && !flags.insecure_http) {
    return InvalidArgument(
        "refusing to serve plain HTTP on " + config.listen +
        ": operator and agent tokens, commands and diagnostics would cross the network in clear. "
        "Serve HTTPS (--tls-cert and --tls-key, or --tls-self-signed), listen on 127.0.0.1, or "
        "pass --insecure-http to accept that risk");
  }
  return config;
}

}  // namespace medic::server
