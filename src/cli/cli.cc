#include "cli/cli.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "cli/ai_check.h"
#include "cli/api.h"
#include "cli/commands.h"
#include "cli/healthapp.h"
#include "cli/mcp.h"
#include "core/display.h"
#include "core/files.h"

#ifndef MEDIC_VERSION
#define MEDIC_VERSION "dev"
#endif

namespace medic::cli {

namespace {

constexpr char kDefaultServer[] = "http://127.0.0.1:8080";
constexpr char kDefaultPidfile[] = "/run/nginx.pid";

int Fail(CliEnv& env, const std::string& message) {
  env.Err() << "medic: " << SanitizeForDisplay(message) << std::endl;  // may quote the server
  return 1;
}

// A --timeout value into wait.timeout ("" keeps the default); false when it is not a positive
// duration.
bool SetWaitTimeout(const std::string& text, Commands::WaitOptions& wait) {
  if (text.empty()) {
    return true;
  }
  Result<Millis> t = ParseDuration(text);
  if (!t.has_value() || t->count() <= 0) {
    return false;
  }
  wait.timeout = *t;
  return true;
}

// A usage error (docs/CLI.md): exit 2, one line.
int Usage(CliEnv& env, const std::string& message) {
  env.Err() << "medic: " << SanitizeForDisplay(message) << " (see medic --help)" << std::endl;
  return 2;
}

struct ApiTarget {
  std::string server;
  std::string token;
  TlsOptions tls;
};

// --ca-file / $MEDIC_CA_FILE and --pin / $MEDIC_PIN: how an https:// server is verified.
Result<TlsOptions> ResolveServerTls(const std::string& ca_flag, const std::string& pin_flag,
                                    CliEnv& env) {
  TlsOptions tls;
  tls.ca_file = !ca_flag.empty() ? ca_flag : env.GetEnv("MEDIC_CA_FILE").value_or("");
  tls.pin = !pin_flag.empty() ? pin_flag : env.GetEnv("MEDIC_PIN").value_or("");
  if (!tls.ca_file.empty() && !ReadFile(tls.ca_file).has_value()) {
    return InvalidArgument("cannot read the CA file " + tls.ca_file);
  }
  if (!tls.pin.empty() && !IsPublicKeyPin(tls.pin)) {
    return InvalidArgument("--pin must be sha256//BASE64 of the server's public key (medic-server "
                           "prints it at start), not '" + tls.pin + "'");
  }
  return tls;
}

// --server, else $MEDIC_SERVER, else the default.
std::string ServerUrl(const std::string& server_flag, CliEnv& env) {
  std::string server = server_flag;
  if (server.empty()) {
    server = env.GetEnv("MEDIC_SERVER").value_or("");
  }
  return server.empty() ? std::string(kDefaultServer) : server;
}

Status CheckServerUrl(const std::string& server) {
  if (server.rfind("http://", 0) != 0 && server.rfind("https://", 0) != 0) {
    return InvalidArgument("--server '" + server + "' is not an http:// or https:// URL");
  }
  return OkStatus();
}

Result<ApiTarget> ResolveTarget(const std::string& server_flag, const std::string& token_file,
                                CliEnv& env) {
  ApiTarget t;
  t.server = ServerUrl(server_flag, env);
  if (Status s = CheckServerUrl(t.server); !s.has_value()) {
    return s.error();
  }
  if (!token_file.empty()) {
    Result<std::string> text = ReadFile(token_file);
    if (!text.has_value()) {
      return Error{text.error().code, "cannot read token file: " + text.error().message};
    }
    t.token = std::string(Trim(*text));
    if (t.token.empty()) {
      return InvalidArgument("token file " + token_file + " is empty");
    }
    return t;
  }
  t.token = std::string(Trim(env.GetEnv("MEDIC_TOKEN").value_or("")));
  if (t.token.empty()) {
    return Unauthenticated(
        "no API token: pass --token-file FILE or set MEDIC_TOKEN (medic demo prints its "
        "token file)");
  }
  return t;
}

// A whole number lo..hi, told apart from a word: "'abc' is not a number".
CLI::Validator WholeNumberIn(int64_t lo, int64_t hi) {
  return CLI::Validator(
      [lo, hi](std::string& text) -> std::string {
        int64_t v = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        if (ec == std::errc::result_out_of_range) {
          return text + " is not from " + std::to_string(lo) + " to " + std::to_string(hi);
        }
        if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
          return "'" + text + "' is not a number";
        }
        if (v < lo || v > hi) {
          return text + " is not from " + std::to_string(lo) + " to " + std::to_string(hi);
        }
        return "";
      },
      "INT in [" + std::to_string(lo) + " - " + std::to_string(hi) + "]");
}

// A number lo..hi (a fraction allowed).
CLI::Validator NumberIn(double lo, double hi) {
  return CLI::Validator(
      [lo, hi](std::string& text) -> std::string {
        double v = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
          return "'" + text + "' is not a number";
        }
        if (!(v >= lo && v <= hi)) {
          char range[64];
          std::snprintf(range, sizeof(range), " is not from %g to %g", lo, hi);
          return text + range;
        }
        return "";
      },
      "NUMBER");
}

// The commands of `level`: "create, list, revoke".
std::string CommandList(CLI::App* level) {
  std::string known;
  for (CLI::App* sub : level->get_subcommands([](CLI::App*) { return true; })) {
    known += (known.empty() ? "" : ", ") + sub->get_name();
  }
  return known;
}

// "unknown command 'token lsit' (commands of token: create, list, revoke)" when the words
// given name no command: at each level that has commands, the first word that is neither an
// option nor an option's value must be one of them, unless the level takes positional
// arguments of its own; "missing command (...)" when a level that needs one got none. nullopt
// otherwise (CLI11's own message then says what is wrong).
std::optional<std::string> CommandError(CLI::App& app, const std::vector<std::string>& args) {
  CLI::App* level = &app;
  std::string path;
  auto known = [&] {
    return " (" + (path.empty() ? std::string("commands: ") : "commands of " +
                                                                   path.substr(0, path.size() - 1) +
                                                                   ": ") +
           CommandList(level) + ")";
  };
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& word = args[i];
    if (word == "--") {
      return std::nullopt;
    }
    if (word.size() > 1 && word[0] == '-') {
      if (word.find('=') != std::string::npos) {
        continue;
      }
      for (CLI::App* at = level; at != nullptr; at = at->get_parent()) {
        if (const CLI::Option* opt = at->get_option_no_throw(word)) {
          if (opt->get_expected_min() > 0) {
            ++i;  // its value
          }
          break;
        }
      }
      continue;
    }
    CLI::App* next = nullptr;
    for (CLI::App* sub : level->get_subcommands([](CLI::App*) { return true; })) {
      if (sub->check_name(word)) {
        next = sub;
      }
    }
    if (next != nullptr) {
      level = next;
      path += word + " ";
      continue;
    }
    const bool takes_positionals =
        !level->get_options([](const CLI::Option* o) { return o->get_positional(); }).empty();
    if (!CommandList(level).empty() && !takes_positionals) {
      return "unknown command '" + path + word + "'" + known();
    }
    return std::nullopt;
  }
  if (level->get_require_subcommand_min() > 0) {
    return "missing command" + known();
  }
  return std::nullopt;
}

// One-line text of a CLI11 parse error.
std::string UsageMessage(const CLI::ParseError& e) {
  std::string msg = e.what();
  std::replace(msg.begin(), msg.end(), '\n', ' ');
  while (!msg.empty() && msg.back() == ' ') {
    msg.pop_back();
  }
  return msg;
}

class RealCliEnv : public CliEnv {
 public:
  std::istream& In() override { return std::cin; }
  std::ostream& Out() override { return std::cout; }
  std::ostream& Err() override { return std::cerr; }
  std::optional<std::string> GetEnv(const std::string& name) override {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) {
      return std::nullopt;
    }
    return std::string(v);
  }
  HttpClient& Http() override {
    if (explaining_ == nullptr) {
      curl_ = NewCurlHttpClient(tls_);
      explaining_ = NewExplainingHttpClient(*curl_);
    }
    return *explaining_;
  }
  void UseServerTls(const TlsOptions& tls) override {
    tls_ = tls;
    explaining_.reset();  // the next Http() verifies the server this way
    curl_.reset();
  }
  const Clock& GetClock() override { return clock_; }
  void Sleep(Millis d) override { std::this_thread::sleep_for(d); }
  host::ProcFs& Procs() override { return procfs_; }
  Status Signal(int pid, int sig) override { return SendSignal(pid, sig); }
  Status RunHealthApp(const std::string& listen) override {
    return cli::RunHealthApp(listen, std::cout);
  }
  Status RunLocalChaos(const LocalChaosOptions& options) override {
    return cli::RunLocalChaos(options, std::cout, std::cerr);
  }
  int RunDemo(const DemoOptions& in) override {
    DemoOptions options = in;
    char self[4096] = {};
    const ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0) {
      return Fail(*this, "demo: cannot find this executable (/proc/self/exe)");
    }
    if (Status s = FindDemoPrograms(std::string(self, static_cast<size_t>(n)), options);
        !s.has_value()) {
      return Fail(*this, "demo: " + s.error().message);
    }
    // Before anything else: the demo env blocks the stop signals for this process.
    std::unique_ptr<DemoEnv> env = NewPosixDemoEnv();
    std::unique_ptr<ProcessLauncher> launcher = NewPosixProcessLauncher();
    Demo demo(std::move(options), *launcher, *env, procfs_, SendSignal, std::cout, std::cerr);
    return demo.Run();
  }

 private:
  SystemClock clock_;
  TlsOptions tls_;
  std::unique_ptr<HttpClient> curl_;
  std::unique_ptr<HttpClient> explaining_;
  host::LinuxProcFs procfs_;
};

}  // namespace

int RunCli(const std::vector<std::string>& args, CliEnv& env) {
  CLI::App app{"medic: the operator CLI of medic, a self-healing infrastructure platform", "medic"};
  app.fallthrough();
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("medic ") + MEDIC_VERSION);
  app.footer("Errors exit non-zero with one line on standard error.\n");

  std::string server;
  std::string token_file;
  bool json = false;
  app.add_option("--server", server,
                 "medic-server URL (default: $MEDIC_SERVER, else http://127.0.0.1:8080)");
  app.add_option("--token-file", token_file,
                 "file holding the API token (default: the token in $MEDIC_TOKEN)");
  std::string ca_file;
  std::string pin;
  app.add_option("--ca-file", ca_file,
                 "verify an https:// server against this CA (default: $MEDIC_CA_FILE, else the "
                 "system's CAs)");
  app.add_option("--pin", pin,
                 "verify an https:// server by its public key, sha256//BASE64 as medic-server "
                 "prints it (default: $MEDIC_PIN)");
  app.add_flag("--json", json, "print the API's JSON instead of tables");

  const std::vector<std::string> statuses = {
      "diagnosing", "pending_approval", "executing", "completed", "failed", "timeout", "rejected"};
  Commands::IncidentFilter filter;
  CLI::App* incidents = app.add_subcommand("incidents", "list incidents, newest first");
  incidents->add_option("--status", filter.status, "only incidents in this status")
      ->check(CLI::IsMember(statuses));
  incidents->add_option("--alarm", filter.alarm, "only incidents of this alarm");
  incidents->add_option("--host", filter.host, "only incidents on this host");
  incidents->add_option("--before", filter.before,
                        "only incidents older than this incident id (the next page)");
  incidents->add_option("--limit", filter.limit, "at most N incidents")
      ->check(WholeNumberIn(1, 1000));

  std::string id;
  CLI::App* show = app.add_subcommand("show", "show one incident and its timeline");
  show->add_option("ID", id, "incident id")->required();

  std::optional<std::string> comment;
  CLI::App* approve = app.add_subcommand("approve", "approve the fix an incident proposes");
  approve->add_option("ID", id, "incident id")->required();
  approve->add_option("--comment", comment, "recorded in the timeline");
  bool approve_no_wait = false;
  std::string approve_timeout;
  Commands::WaitOptions approve_wait;
  approve->add_flag("--no-wait", approve_no_wait,
                    "return once the approval is recorded, without the fix's result");
  approve->add_option("--timeout", approve_timeout,
                      "how long to wait for the fix and its verification (default 120s)");
  std::optional<std::string> step;
  approve->add_option("--step", step,
                      "approve the gated step the incident waits at instead of a fix: diagnose "
                      "or verify (docs/AUTONOMY.md)")
      ->check(CLI::IsMember({"diagnose", "verify"}));
  std::optional<int64_t> option;
  approve->add_option("--option", option,
                      "run the Nth of the incident's options (1-based; default 1, the first)")
      ->check(WholeNumberIn(1, 1000));
  CLI::App* reject = app.add_subcommand("reject", "reject the fix an incident proposes");
  reject->add_option("ID", id, "incident id")->required();
  reject->add_option("--comment", comment, "recorded in the timeline");
  CLI::App* undo = app.add_subcommand(
      "undo", "run the recorded undo of a finished incident's fix (operator)");
  undo->add_option("ID", id, "incident id")->required();

  std::string format = "md";
  CLI::App* report = app.add_subcommand("report", "print an incident's report");
  report->add_option("ID", id, "incident id")->required();
  report->add_option("--format", format, "md or html (default md)")
      ->check(CLI::IsMember({"md", "html"}));

  CLI::App* hosts = app.add_subcommand("hosts", "list hosts with health and metrics");
  hosts->fallthrough();
  hosts->require_subcommand(0, 1);
  std::string host_name;
  CLI::App* hosts_remove =
      hosts->add_subcommand("remove", "forget a retired host: facts, alarms, memberships (admin)");
  hosts_remove->fallthrough();
  hosts_remove->add_option("NAME", host_name, "host name")->required();
  bool close_incidents = false;
  hosts_remove->add_flag("--close-incidents", close_incidents,
                         "close the host's open incidents too (reason: host removed)");
  std::string enroll_ttl;
  CLI::App* hosts_enroll = hosts->add_subcommand(
      "enroll", "print a single-use enrolment code for a host's agent (admin)");
  hosts_enroll->fallthrough();
  hosts_enroll->add_option("NAME", host_name, "host name")->required();
  hosts_enroll->add_option("--ttl", enroll_ttl, "how long the code is valid (default 1h)");
  CLI::App* hosts_pending = hosts->add_subcommand(
      "pending", "enrolment requests made with the bootstrap token (admin)");
  hosts_pending->fallthrough();
  CLI::App* hosts_approve =
      hosts->add_subcommand("approve", "approve a host's enrolment request (admin)");
  hosts_approve->fallthrough();
  hosts_approve->add_option("NAME", host_name, "host name")->required();
  CLI::App* hosts_revoke =
      hosts->add_subcommand("revoke", "cut a host's agent off at once (admin)");
  hosts_revoke->fallthrough();
  hosts_revoke->add_option("NAME", host_name, "host name")->required();
  CLI::App* alarms = app.add_subcommand("alarms", "list the state of every alarm on every host");
  std::optional<std::string> alarm_state, alarm_host;
  alarms->add_option("--state", alarm_state, "only alarms in this state")
      ->check(CLI::IsMember({"OK", "ALARM", "INSUFFICIENT_DATA"}));
  alarms->add_option("--host", alarm_host, "only the alarms of this host");

  CLI::App* audit = app.add_subcommand("audit", "the newest entries of the audit log (admin)");
  audit->fallthrough();
  audit->require_subcommand(0, 1);
  int audit_limit = 50;
  audit->add_option("--limit", audit_limit, "how many entries, newest first (1-1000, default 50)")
      ->check(WholeNumberIn(1, 1000));
  CLI::App* audit_verify = audit->add_subcommand(
      "verify", "check the audit log's hash chain; exit 1 naming the first broken entry");
  audit_verify->fallthrough();

  CLI::App* token = app.add_subcommand("token", "list, create or revoke API tokens (admin)");
  token->fallthrough();
  token->require_subcommand(1);
  std::string token_name;
  std::string role;
  CLI::App* token_create = token->add_subcommand("create", "create a token and print it");
  token_create->fallthrough();
  token_create->add_option("NAME", token_name, "token name")->required();
  token_create->add_option("--role", role, "viewer, operator, admin or ingest")
      ->required()
      ->check(CLI::IsMember({"viewer", "operator", "admin", "ingest"}));
  CLI::App* token_list =
      token->add_subcommand("list", "the tokens: name, role, created, created by");
  token_list->fallthrough();
  CLI::App* token_revoke = token->add_subcommand("revoke", "revoke a token at once");
  token_revoke->fallthrough();
  token_revoke->add_option("NAME", token_name, "token name")->required();

  CLI::App* settings = app.add_subcommand(
      "settings", "show the global settings: approval mode and the automation kill switch");
  CLI::App* pause = app.add_subcommand(
      "pause", "the kill switch: no fix runs on its own; incidents wait for approval (admin)");
  CLI::App* resume = app.add_subcommand(
      "resume", "undo pause: fixes run as approval mode and the runbooks allow (admin)");

  CLI::App* autonomy = app.add_subcommand(
      "autonomy", "the record and mode of every alarm x action pair (earned autonomy)");
  autonomy->fallthrough();
  autonomy->require_subcommand(0, 1);
  std::string pair_alarm, pair_action, pin_mode;
  CLI::App* autonomy_pin =
      autonomy->add_subcommand("pin", "fix a pair's mode whatever its record says (admin)");
  autonomy_pin->fallthrough();
  autonomy_pin->add_option("ALARM", pair_alarm, "alarm name")->required();
  autonomy_pin->add_option("ACTION", pair_action, "action name (service.restart, ...)")->required();
  autonomy_pin->add_option("--mode", pin_mode, "automatic or approval")
      ->required()
      ->check(CLI::IsMember({"automatic", "approval"}));
  CLI::App* autonomy_unpin =
      autonomy->add_subcommand("unpin", "let the pair's record decide again (admin)");
  autonomy_unpin->fallthrough();
  autonomy_unpin->add_option("ALARM", pair_alarm, "alarm name")->required();
  autonomy_unpin->add_option("ACTION", pair_action, "action name")->required();
  std::string stats_since;
  CLI::App* stats = app.add_subcommand(
      "stats", "graded outcomes: precision, MTTR by alarm, share resolved without a human");
  stats->add_option("--since", stats_since, "the period, a duration like 24h (default 168h)");

  std::string mode;
  std::string chaos_host;
  std::string pidfile = kDefaultPidfile;
  std::vector<std::string> chaos_params;
  CLI::App* chaos = app.add_subcommand("chaos", "break something on purpose: " + ChaosModeList() +
                                                    " (without --host: on this machine)");
  chaos->add_option("MODE", mode, ChaosModeList())->required();
  CLI::Option* host_opt =
      chaos->add_option("--host", chaos_host, "run it on this host, through its agent");
  chaos
      ->add_option(
          "--pidfile", pidfile,
          "local nginx-crash: nginx's pid file (default " + std::string(kDefaultPidfile) + ")")
      ->excludes(host_opt);
  chaos->add_option("PARAMS", chaos_params, "KEY=VALUE parameters for the mode (with --host)");
  LocalChaosOptions local_chaos;
  double chaos_percent = 0;
  CLI::Option* percent_opt = chaos->add_option(
      "--percent", chaos_percent, "disk-fill, oom: target used percent (default 90, 95)");
  percent_opt->check(NumberIn(1.0, 99.0));
  chaos->add_option("--path", local_chaos.path,
                    "disk-fill: directory to fill, on the mount to fill (default /var/log)");
  chaos->add_option("--duration", local_chaos.duration, "oom: how long to hold (default 600s)");
  Commands::WaitOptions chaos_wait;
  std::string chaos_timeout;
  bool chaos_no_wait = false;
  chaos
      ->add_flag("--no-wait", chaos_no_wait,
                 "with --host: return once the server took the command, without its result")
      ->needs(host_opt);
  chaos
      ->add_option("--timeout", chaos_timeout,
                   "with --host: how long to wait for the host's result (default 120s)")
      ->needs(host_opt);
  chaos
      ->add_option("--state-file", local_chaos.state_file,
                   "local: where local chaos is recorded for `chaos stop` (default "
                   "/run/medic-chaos.json as root)")
      ->excludes(host_opt);

  std::string health_listen = "127.0.0.1:8000";
  CLI::App* healthapp = app.add_subcommand("healthapp", "run the demo health app");
  healthapp->add_option("--listen", health_listen,
                        "HOST:PORT (default 127.0.0.1:8000; port 0 picks one)");

  DemoOptions demo_options;
  CLI::App* demo = app.add_subcommand("demo", "run a local demo fleet until Ctrl-C");
  demo->add_option("--listen", demo_options.listen, "server HOST:PORT (default 127.0.0.1:8080)");
  demo->add_option("--data-dir", demo_options.data_dir, "data directory (default ./medic-demo)");
  demo->add_option("--hosts", demo_options.hosts, "number of demo hosts (default 2)")
      ->check(WholeNumberIn(1, 50));
  demo->add_flag("--auto", demo_options.auto_approve, "turn approval mode off");
  CLI::Option* scenario_opt =
      demo->add_option("--scenario", demo_options.scenario,
                       "run scenarios on the fleet, print their table (or --json) and stop: " +
                           DemoScenarioChoices());

  McpOptions mcp_options;
  mcp_options.server_version = MEDIC_VERSION;
  CLI::App* mcp = app.add_subcommand(
      "mcp", "a Model Context Protocol server on standard input/output: read-only tools for "
             "incidents, hosts, alarms, metrics and reports (docs/integrations/mcp.md)");
  mcp->add_flag("--allow-approve", mcp_options.allow_approve,
                "also offer approve_incident and reject_incident, if the token is operator or "
                "admin");

  AiCheckOptions ai_options;
  CLI::App* ai = app.add_subcommand("ai", "the AI provider");
  ai->fallthrough();
  ai->require_subcommand(1);
  CLI::App* ai_check = ai->add_subcommand(
      "check", "send one tiny request to the AI provider; print model, latency and whether "
               "the answer parsed");
  ai_check->fallthrough();
  ai_check->add_option("--config", ai_options.config_file,
                       "medic-server's config file (its ai: section)");
  ai_check->add_option("--provider", ai_options.provider, "gemini or openai")
      ->check(CLI::IsMember({"gemini", "openai"}));
  ai_check->add_option("--base-url", ai_options.base_url, "override the provider's base URL");
  ai_check->add_option("--model", ai_options.model, "override the model");

  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::Success& e) {  // --help, --version
    return app.exit(e, env.Out(), env.Err());
  } catch (const CLI::ParseError& e) {
    const std::optional<std::string> unknown = CommandError(app, args);
    env.Err() << "medic: " << unknown.value_or(UsageMessage(e)) << " (see medic --help)"
              << std::endl;
    return 2;
  }

  if (*healthapp) {
    if (Status s = env.RunHealthApp(health_listen); !s.has_value()) {
      return Fail(env, s.error().message);
    }
    return 0;
  }
  if (*demo) {
    if (*scenario_opt) {
      if (Result<std::vector<ScenarioSpec>> s = SelectScenarios(demo_options.scenario);
          !s.has_value()) {
        env.Err() << "medic: demo --scenario: " << s.error().message << std::endl;
        return 2;
      }
    }
    demo_options.json = json;
    return env.RunDemo(demo_options);
  }
  if (*approve) {
    approve_wait.wait = !approve_no_wait;
    if (!SetWaitTimeout(approve_timeout, approve_wait)) {
      return Usage(env, "approve: --timeout '" + approve_timeout + "' is not a duration like 30s or 5m");
    }
  }
  if (*chaos) {
    if (std::find(ChaosModes().begin(), ChaosModes().end(), mode) == ChaosModes().end()) {
      return Usage(env, "chaos: unknown mode '" + mode + "' (valid: " + ChaosModeList() + ")");
    }
    // Each flag belongs to the modes that take it (protocol::ChaosModeParams).
    const struct {
      bool given;
      const char* flag;
      std::vector<std::string> modes;
    } kModeFlags[] = {{!local_chaos.path.empty(), "--path", {"disk-fill"}},
                      {percent_opt->count() > 0, "--percent", {"disk-fill", "oom"}},
                      {!local_chaos.duration.empty(), "--duration", {"oom"}}};
    for (const auto& f : kModeFlags) {
      if (f.given && std::find(f.modes.begin(), f.modes.end(), mode) == f.modes.end()) {
        std::string modes;
        for (const auto& m : f.modes) {
          modes += (modes.empty() ? "" : " and ") + m;
        }
        return Usage(env, "chaos " + mode + ": " + f.flag + " applies to " + modes + " only");
      }
    }
    if (!SetWaitTimeout(chaos_timeout, chaos_wait)) {
      return Usage(env, "chaos: --timeout '" + chaos_timeout + "' is not a duration like 30s or 5m");
    }
    if (*percent_opt) {
      local_chaos.percent = chaos_percent;
    }
    if (chaos_host.empty()) {
      if (!chaos_params.empty()) {
        return Usage(env, "chaos " + mode + ": KEY=VALUE parameters apply only with --host");
      }
      if (mode != "nginx-crash") {
        local_chaos.mode = mode;
        if (local_chaos.state_file.empty()) {
          local_chaos.state_file =
              DefaultChaosStateFile([&env](const std::string& name) { return env.GetEnv(name); });
        }
        if (Status s = env.RunLocalChaos(local_chaos); !s.has_value()) {
          return Fail(env, "chaos " + mode + ": " + s.error().message);
        }
        return 0;
      }
      Result<NginxKill> k = CrashNginx(
          env.Procs(), [&env](int pid, int sig) { return env.Signal(pid, sig); }, pidfile);
      if (!k.has_value()) {
        return Fail(env, "chaos nginx-crash: " + k.error().message);
      }
      env.Out() << DescribeNginxKill(*k) << std::endl;
      return 0;
    }
  }

  if (*ai_check) {
    Result<ai::AiConfig> config = ResolveAiCheckConfig(
        ai_options, [&env](const std::string& name) { return env.GetEnv(name); });
    if (!config.has_value()) {
      return Fail(env, "ai check: " + config.error().message);
    }
    if (Status s = RunAiCheck(*config, env.Http(), env.GetClock(), json, env.Out());
        !s.has_value()) {
      return Fail(env, "ai check: " + s.error().message);
    }
    return 0;
  }

  // A malformed --server (or $MEDIC_SERVER) is a usage error; an unreadable token is not.
  if (Status s = CheckServerUrl(ServerUrl(server, env)); !s.has_value()) {
    env.Err() << "medic: " << s.error().message << std::endl;
    return 2;
  }
  Result<ApiTarget> target = ResolveTarget(server, token_file, env);
  if (!target.has_value()) {
    return Fail(env, target.error().message);
  }
  Result<TlsOptions> tls = ResolveServerTls(ca_file, pin, env);
  if (!tls.has_value()) {
    env.Err() << "medic: " << tls.error().message << std::endl;
    return 2;
  }
  env.UseServerTls(*tls);
  ApiClient api(env.Http(), target->server, target->token);
  if (*mcp) {
    // Standard output carries the protocol only; everything else goes to standard error.
    McpServer server(api, env.GetClock(), mcp_options, env.Err());
    env.Err() << "medic mcp: serving MCP on standard input/output for " << api.server()
              << (mcp_options.allow_approve ? " (--allow-approve)" : " (read-only)") << std::endl;
    ServeMcp(server, env.In(), env.Out());
    return 0;
  }
  Commands commands(api, env.GetClock(), env.Out(), json);
  commands.SetSleep([&env](Millis d) { env.Sleep(d); });
  Status s = OkStatus();
  if (*incidents) {
    s = commands.Incidents(filter);
  } else if (*show) {
    s = commands.Show(id);
  } else if (*approve) {
    s = step ? commands.ApproveStep(id, *step, comment)
             : commands.Approve(id, comment, approve_wait, option);
  } else if (*undo) {
    s = commands.Undo(id);
  } else if (*reject) {
    s = commands.Reject(id, comment);
  } else if (*report) {
    s = commands.Report(id, format);
  } else if (*hosts_remove) {
    s = commands.HostRemove(host_name, close_incidents);
  } else if (*hosts_enroll) {
    s = commands.HostEnroll(host_name, enroll_ttl);
  } else if (*hosts_pending) {
    s = commands.HostsPending();
  } else if (*hosts_approve) {
    s = commands.HostApprove(host_name);
  } else if (*hosts_revoke) {
    s = commands.HostRevoke(host_name);
  } else if (*hosts) {
    s = commands.Hosts();
  } else if (*alarms) {
    s = commands.Alarms(alarm_state, alarm_host);
  } else if (*audit_verify) {
    s = commands.AuditVerify();
  } else if (*audit) {
    s = commands.Audit(audit_limit);
  } else if (*token_create) {
    s = commands.TokenCreate(token_name, role);
  } else if (*token_list) {
    s = commands.TokenList();
  } else if (*token_revoke) {
    s = commands.TokenRevoke(token_name);
  } else if (*settings) {
    s = commands.Settings();
  } else if (*pause) {
    s = commands.SetAutomationPaused(true);
  } else if (*resume) {
    s = commands.SetAutomationPaused(false);
  } else if (*autonomy_pin) {
    s = commands.AutonomyPin(pair_alarm, pair_action, pin_mode);
  } else if (*autonomy_unpin) {
    s = commands.AutonomyPin(pair_alarm, pair_action, std::nullopt);
  } else if (*autonomy) {
    s = commands.Autonomy();
  } else if (*stats) {
    s = commands.Stats(stats_since);
  } else if (*chaos) {
    Result<Json> params = ParseChaosParams(chaos_params);
    if (params.has_value()) {
      // --path/--percent/--duration are the same parameters, spelled as flags.
      if (!local_chaos.path.empty()) {
        (*params)["path"] = local_chaos.path;
      }
      if (local_chaos.percent.has_value()) {
        (*params)["percent"] = *local_chaos.percent;
      }
      if (!local_chaos.duration.empty()) {
        (*params)["duration"] = local_chaos.duration;
      }
    }
    chaos_wait.wait = !chaos_no_wait;
    s = params.has_value() ? commands.Chaos(chaos_host, mode, *params, chaos_wait)
                           : Status(params.error());
  }
  if (!s.has_value()) {
    return Fail(env, s.error().message);
  }
  env.Out().flush();
  if (*token_create && !json) {
    // On standard error, so that `TOKEN=$(medic token create …)` still takes the token alone.
    env.Err() << "medic: the token of " << SanitizeForDisplay(token_name)
              << " is shown this once (the server keeps only its hash): store it now" << std::endl;
  }
  return 0;
}

std::unique_ptr<CliEnv> NewRealCliEnv() { return std::make_unique<RealCliEnv>(); }

}  // namespace medic::cli
