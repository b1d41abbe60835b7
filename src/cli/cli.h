#pragma once

// The `medic` command line: option parsing (CLI11) and dispatch. Everything the commands touch
// comes through CliEnv, so tests run RunCli with a fake environment; main() only builds the real
// one (NewRealCliEnv) and calls RunCli.

#include <istream>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "cli/chaos.h"
#include "cli/demo.h"
#include "core/clock.h"
#include "core/result.h"
#include "host/proc_fs.h"
#include "transport/http_client.h"

namespace medic::cli {

class CliEnv {
 public:
  virtual ~CliEnv() = default;
  // Standard input: `medic mcp` reads its messages there.
  virtual std::istream& In() = 0;
  virtual std::ostream& Out() = 0;
  virtual std::ostream& Err() = 0;
  virtual std::optional<std::string> GetEnv(const std::string& name) = 0;
  virtual HttpClient& Http() = 0;
  // How Http() verifies an https:// medic-server (--ca-file, --pin); called before the first
  // call to the server, after any `ai check` (which talks to the model's provider instead).
  virtual void UseServerTls(const TlsOptions& tls) = 0;
  virtual const Clock& GetClock() = 0;
  // Waits `d` between two looks at a command's state (`medic chaos --host` waiting for its
  // result); tests advance their clock instead.
  virtual void Sleep(Millis d) = 0;
  // /proc of this machine (and nginx's pidfile), read by `chaos nginx-crash`.
  virtual host::ProcFs& Procs() = 0;
  // kill(2), as SendSignal; `chaos nginx-crash` signals through it.
  virtual Status Signal(int pid, int sig) = 0;
  // The long-running commands: real in the binary, recorded by test fakes.
  virtual Status RunHealthApp(const std::string& listen) = 0;
  virtual int RunDemo(const DemoOptions& options) = 0;
  // Local disk-fill, oom and stop (real in the binary; test fakes record the options).
  virtual Status RunLocalChaos(const LocalChaosOptions& options) = 0;
};

// Runs one command line (`args` without the program name) and returns the exit status:
// 0 success, 1 a failed command (one line "medic: ..." on Err), 2 a usage error.
int RunCli(const std::vector<std::string>& args, CliEnv& env);

// The real environment: std::cout/std::cerr, getenv, curl, /proc, Beast, fork/exec.
std::unique_ptr<CliEnv> NewRealCliEnv();

}  // namespace medic::cli
