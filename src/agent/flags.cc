#include "agent/flags.h"

#include <CLI/CLI.hpp>

namespace medic::agent {

namespace {

// CLI11 fills plain strings; these become optionals only when the flag was given.
void Take(const CLI::Option* opt, const std::string& value, std::optional<std::string>* out) {
  if (opt->count() > 0) {
    *out = value;
  }
}

}  // namespace

Result<AgentFlags> ParseAgentFlags(int argc, const char* const* argv) {
  AgentFlags flags;
  CLI::App app{
      "medic-agent: collects host metrics, runs health checks and executes the "
      "medic server's commands within this host's local policy",
      "medic-agent"};
  std::vector<std::string> servers;
  std::string name, token_file, state_dir, enroll_code, interval, metrics_listen;
  std::string ca_file, pin;
  app.add_option("--config", flags.config_file,
                 "YAML config file (every option: /usr/share/doc/medic-agent/examples/agent.yaml "
                 "from the package, config/agent.yaml in the source)");
  auto* o_server =
      app.add_option("--server", servers,
                     "server URL, e.g. http://127.0.0.1:8080; several servers on one store: "
                     "repeat it or list them separated by commas (failover in that order)")
          ->allow_extra_args(false);
  auto* o_name = app.add_option("--name", name, "host name in medic (default: hostname)");
  auto* o_token = app.add_option("--token-file", token_file,
                                 "file holding the bootstrap token (enrolment with approval)");
  auto* o_state = app.add_option("--state-dir", state_dir,
                                 "where the host's credential is kept (default /var/lib/medic-agent)");
  auto* o_code = app.add_option("--enroll-code", enroll_code,
                                "single-use enrolment code from `medic hosts enroll NAME`");
  auto* o_interval = app.add_option("--interval", interval, "report interval, e.g. 1s, 500ms");
  auto* o_ca = app.add_option("--ca-file", ca_file,
                              "verify an https:// server against this CA (tls.ca_file)");
  auto* o_pin = app.add_option("--pin", pin,
                               "verify an https:// server by its key, sha256//BASE64 (tls.pin)");
  auto* o_metrics =
      app.add_option("--metrics-listen", metrics_listen,
                     "HOST:PORT to serve Prometheus /metrics on (port 0: any free port)");
  app.add_flag("--check-config", flags.check_config, "validate the configuration and exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    flags.help = app.help();
    return flags;
  } catch (const CLI::ParseError& e) {
    return InvalidArgument(e.what());
  }
  if (o_server->count() > 0) {
    flags.overrides.server = servers;
  }
  Take(o_name, name, &flags.overrides.name);
  Take(o_token, token_file, &flags.overrides.token_file);
  Take(o_state, state_dir, &flags.overrides.state_dir);
  Take(o_code, enroll_code, &flags.overrides.enroll_code);
  Take(o_interval, interval, &flags.overrides.interval);
  Take(o_ca, ca_file, &flags.overrides.ca_file);
  Take(o_pin, pin, &flags.overrides.pin);
  Take(o_metrics, metrics_listen, &flags.metrics_listen);
  return flags;
}

}  // namespace medic::agent
