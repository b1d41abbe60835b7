#include "cli/demo.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "cli/api.h"
#include "core/files.h"

namespace medic::cli {

namespace {

namespace fs = std::filesystem;

constexpr Millis kKillGrace{2'000};
constexpr Millis kHealthzTimeout{1'000};

bool IsExecutable(const std::string& path) {
  return !path.empty() && ::access(path.c_str(), X_OK) == 0 && fs::is_regular_file(path);
}

std::string AbsolutePath(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::absolute(path, ec);
  if (ec) {
    p = path;
  }
  std::string s = p.lexically_normal().string();
  while (s.size() > 1 && s.back() == '/') {
    s.pop_back();
  }
  return s;
}

// The token text of a token file, once it exists and is not empty.
std::optional<std::string> ReadToken(const std::string& path) {
  Result<std::string> text = ReadFile(path);
  if (!text.has_value()) {
    return std::nullopt;
  }
  const std::string_view token = Trim(*text);
  if (token.empty()) {
    return std::nullopt;
  }
  return std::string(token);
}

// Removes the files (pid files, sockets) in `dir`, keeping the directory.
void ClearRunDir(const std::string& dir) {
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code rm_ec;
    if (!it->is_directory(rm_ec)) {
      fs::remove(it->path(), rm_ec);
    }
  }
}

class PosixDemoEnv : public DemoEnv {
 public:
  PosixDemoEnv() : http_(NewCurlHttpClient()), explaining_(NewExplainingHttpClient(*http_)) {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    sigaddset(&set_, SIGHUP);
    ::sigprocmask(SIG_BLOCK, &set_, nullptr);
  }

  HttpClient& Http() override { return *explaining_; }
  Result<int> FreeLoopbackPort() override { return cli::FreeLoopbackPort(); }
  Status CheckCanListen(const HostPort& addr) override { return cli::CheckCanListen(addr); }
  SteadyTime Now() override { return std::chrono::steady_clock::now(); }

  bool WaitForStop(Millis d) override {
    if (stopped_) {
      return true;
    }
    const auto deadline = std::chrono::steady_clock::now() + d;
    for (;;) {
      const auto left = std::max<std::chrono::nanoseconds>(
          std::chrono::nanoseconds(0), deadline - std::chrono::steady_clock::now());
      timespec ts{};
      ts.tv_sec = static_cast<time_t>(left.count() / 1'000'000'000);
      ts.tv_nsec = static_cast<long>(left.count() % 1'000'000'000);
      const int sig = ::sigtimedwait(&set_, nullptr, &ts);
      if (sig > 0) {
        stopped_ = true;
        return true;
      }
      if (errno != EINTR || std::chrono::steady_clock::now() >= deadline) {
        return false;
      }
    }
  }

 private:
  sigset_t set_;
  std::unique_ptr<HttpClient> http_;
  std::unique_ptr<HttpClient> explaining_;
  bool stopped_ = false;
};

}  // namespace

std::string LogTail(const std::string& path, size_t lines) {
  Result<std::string> text = ReadFileTail(path, 4096);
  if (!text.has_value()) {
    return "";
  }
  std::vector<std::string> all = SplitLines(*text);
  const size_t first = all.size() > lines ? all.size() - lines : 0;
  std::string out;
  for (size_t i = first; i < all.size(); ++i) {
    out += "  " + all[i] + "\n";
  }
  return out;
}

Status FindDemoPrograms(const std::string& self_exe, DemoOptions& options) {
  const std::string dir = fs::path(self_exe).parent_path().string();
  options.medic_bin = self_exe;
  options.server_bin = dir + "/medic-server";
  options.agent_bin = dir + "/medic-agent";
  for (const std::string* bin : {&options.server_bin, &options.agent_bin}) {
    if (!IsExecutable(*bin)) {
      return NotFound(fs::path(*bin).filename().string() + " not found next to medic (in " + dir +
                      ")");
    }
  }
  if (!options.nginx_bin.empty()) {
    return OkStatus();
  }
  std::vector<std::string> candidates = {"/usr/sbin/nginx"};
  if (const char* path = std::getenv("PATH")) {
    std::string_view rest = path;
    while (!rest.empty()) {
      const size_t colon = rest.find(':');
      const std::string_view d = rest.substr(0, colon);
      if (!d.empty()) {
        candidates.push_back(std::string(d) + "/nginx");
      }
      rest = colon == std::string_view::npos ? std::string_view() : rest.substr(colon + 1);
    }
  }
  for (const std::string& c : candidates) {
    if (IsExecutable(c)) {
      options.nginx_bin = c;
      return OkStatus();
    }
  }
  return NotFound("nginx not found in /usr/sbin or PATH (Debian: apt-get install nginx)");
}

std::unique_ptr<DemoEnv> NewPosixDemoEnv() { return std::make_unique<PosixDemoEnv>(); }

std::vector<std::string> HostsNotHealthy(const Json& body, const std::vector<std::string>& names) {
  std::vector<std::string> out;
  const Json* list = nullptr;
  if (body.is_object()) {
    if (auto it = body.find("hosts"); it != body.end() && it->is_array()) {
      list = &*it;
    }
  }
  for (const std::string& name : names) {
    const Json* host = nullptr;
    if (list != nullptr) {
      for (const Json& h : *list) {
        if (h.is_object() && h.value("name", "") == name) {
          host = &h;
        }
      }
    }
    if (host == nullptr) {
      out.push_back(name + " (not registered)");
      continue;
    }
    const std::string status = host->value("status", "");
    if (status == "healthy") {
      continue;
    }
    std::string why = name + " (" + (status.empty() ? "no status" : status);
    if (auto it = host->find("checks"); it != host->end() && it->is_array()) {
      for (const Json& c : *it) {
        if (c.is_object() && !c.value("healthy", false)) {
          why += ": check " + c.value("name", "?") + " failing";
          const std::string detail = c.value("detail", "");
          if (!detail.empty()) {
            why += " (" + detail + ")";
          }
        }
      }
    }
    out.push_back(why + ")");
  }
  return out;
}

Demo::Demo(DemoOptions options, ProcessLauncher& launcher, DemoEnv& env, ProcessTable& procs,
           std::ostream& out, std::ostream& err)
    : options_(std::move(options)),
      launcher_(launcher),
      env_(env),
      procs_(procs),
      out_(out),
      err_(err) {}

bool Demo::Pause() {
  if (env_.WaitForStop(options_.poll_interval)) {
    stop_requested_ = true;
    return false;
  }
  return true;
}

Status Demo::PrepareServer() {
  if (options_.hosts < 1) {
    return InvalidArgument("--hosts must be at least 1");
  }
  ASSIGN_OR_RETURN(listen_, ParseHostPort(options_.listen));
  if (listen_.port == 0) {
    ASSIGN_OR_RETURN(listen_.port, env_.FreeLoopbackPort());
  } else {
    if (Status s = env_.CheckCanListen(listen_); !s.has_value()) {
      return Error{s.error().code,
                   s.error().message + " (is another medic demo running? choose --listen)"};
    }
  }
  server_url_ = "http://" + ConnectableAddress(listen_).ToString();
  data_dir_ = AbsolutePath(options_.data_dir);
  server_dir_ = data_dir_ + "/server";
  server_log_ = server_dir_ + "/server.log";
  admin_token_path_ = server_dir_ + "/admin.token";
  RETURN_IF_ERROR(MakeDirs(server_dir_, 0700));
  return OkStatus();
}

Status Demo::WaitForServer() {
  err_ << "medic demo: starting medic-server on " << listen_.ToString() << " (log " << server_log_
       << ")" << std::endl;
  ASSIGN_OR_RETURN(server_pid_, launcher_.Start({options_.server_bin, "--listen",
                                                 listen_.ToString(), "--data-dir", server_dir_},
                                                server_log_));
  const SteadyTime deadline = env_.Now() + options_.server_start_timeout;
  HttpRequest healthz;
  healthz.url = server_url_ + "/healthz";
  healthz.timeout = kHealthzTimeout;
  healthz.connect_timeout = kHealthzTimeout;
  const std::string agent_token_path = server_dir_ + "/agent.token";
  for (;;) {
    if (launcher_.WaitExit(server_pid_, Millis(0))) {
      return Unavailable("medic-server exited during start-up; last lines of " + server_log_ +
                         ":\n" + LogTail(server_log_));
    }
    Result<HttpResponse> r = env_.Http().Do(healthz);
    if (r.has_value() && r->status == 200) {
      if (auto token = ReadToken(admin_token_path_);
          token.has_value() && ReadToken(agent_token_path).has_value()) {
        admin_token_ = *token;
        return OkStatus();
      }
    }
    if (env_.Now() >= deadline) {
      const std::string what =
          r.has_value() && r->status == 200
              ? "did not write " + admin_token_path_ + " and " + agent_token_path
              : "did not answer " + healthz.url;
      return DeadlineExceeded("medic-server " + what + " within " +
                              std::to_string(options_.server_start_timeout.count() / 1000) +
                              " s; last lines of " + server_log_ + ":\n" + LogTail(server_log_));
    }
    if (!Pause()) {
      return DeadlineExceeded("interrupted");
    }
  }
}

Status Demo::StartHost(int index) {
  DemoHost host = MakeDemoHost(data_dir_, index);
  ASSIGN_OR_RETURN(host.nginx_port, env_.FreeLoopbackPort());
  ASSIGN_OR_RETURN(host.app_port, env_.FreeLoopbackPort());
  for (int tries = 0; host.app_port == host.nginx_port && tries < 5; ++tries) {
    ASSIGN_OR_RETURN(host.app_port, env_.FreeLoopbackPort());
  }
  for (const std::string& d : {host.dir, host.LogDir(), host.RunDir(), host.TmpDir()}) {
    RETURN_IF_ERROR(MakeDirs(d));
  }
  ClearRunDir(host.RunDir());
  RETURN_IF_ERROR(WriteFileAtomic(host.NginxConfPath(), NginxConfig(host)));
  const AgentYamlInputs inputs{server_url_, server_dir_ + "/agent.token", options_.nginx_bin,
                               options_.medic_bin};
  RETURN_IF_ERROR(WriteFileAtomic(host.AgentConfigPath(), AgentYaml(host, inputs), 0600));
  err_ << "medic demo: starting " << host.name << " (nginx 127.0.0.1:" << host.nginx_port
       << " -> healthapp 127.0.0.1:" << host.app_port << ", log " << host.AgentLogPath() << ")"
       << std::endl;
  hosts_.push_back(host);
  agent_pids_.push_back(0);
  agent_exit_reported_.push_back(false);
  ASSIGN_OR_RETURN(agent_pids_.back(),
                   launcher_.Start({options_.agent_bin, "--config", host.AgentConfigPath()},
                                   host.AgentLogPath()));
  return OkStatus();
}

Status Demo::WaitForHealthyHosts() {
  ApiClient api(env_.Http(), server_url_, admin_token_);
  std::vector<std::string> names;
  for (const DemoHost& h : hosts_) {
    names.push_back(h.name);
  }
  const Millis timeout =
      options_.healthy_timeout + Millis(5'000) * (static_cast<int>(hosts_.size()) - 1);
  const SteadyTime deadline = env_.Now() + timeout;
  std::vector<std::string> waiting = names;
  std::string last_error;
  for (;;) {
    for (size_t i = 0; i < hosts_.size(); ++i) {
      if (launcher_.WaitExit(agent_pids_[i], Millis(0))) {
        return Unavailable("medic-agent of " + hosts_[i].name + " exited; last lines of " +
                           hosts_[i].AgentLogPath() + ":\n" + LogTail(hosts_[i].AgentLogPath()));
      }
    }
    if (launcher_.WaitExit(server_pid_, Millis(0))) {
      return Unavailable("medic-server exited; last lines of " + server_log_ + ":\n" +
                         LogTail(server_log_));
    }
    Result<Json> body = api.Call("GET", "/api/v1/hosts", nullptr, "GET /api/v1/hosts");
    if (body.has_value()) {
      waiting = HostsNotHealthy(*body, names);
      if (waiting.empty()) {
        return OkStatus();
      }
    } else {
      last_error = body.error().message;
    }
    if (env_.Now() >= deadline) {
      std::string msg =
          "not every host became healthy within " + std::to_string(timeout.count() / 1000) + " s:";
      for (const std::string& w : waiting) {
        msg += " " + w;
      }
      if (!body.has_value()) {
        msg += "; last error: " + last_error;
      }
      for (size_t i = 0; i < hosts_.size(); ++i) {
        for (const std::string& w : waiting) {
          if (w.rfind(hosts_[i].name + " ", 0) == 0) {
            msg += "\nlast lines of " + hosts_[i].AgentLogPath() + ":\n" +
                   LogTail(hosts_[i].AgentLogPath());
          }
        }
      }
      return DeadlineExceeded(msg);
    }
    if (!Pause()) {
      return DeadlineExceeded("interrupted");
    }
  }
}

void Demo::PrintHint() {
  const DemoHost& first = hosts_.front();
  err_ << "\nTry it (Ctrl-C stops the demo):\n"
       << "  export MEDIC_SERVER=" << server_url_ << " MEDIC_TOKEN=$(cat " << admin_token_path_
       << ")\n"
       << "  " << options_.medic_bin << " chaos nginx-crash --host " << first.name
       << "    # or locally: ... chaos nginx-crash --pidfile " << first.NginxPidPath() << "\n"
       << "  " << options_.medic_bin << " incidents\n"
       << "  " << options_.medic_bin << " approve INCIDENT_ID"
       << (options_.auto_approve ? "    # not needed: --auto approves by itself" : "") << "\n"
       << std::flush;
}

Status Demo::Start() {
  RETURN_IF_ERROR(PrepareServer());
  RETURN_IF_ERROR(WaitForServer());
  if (options_.auto_approve) {
    ApiClient api(env_.Http(), server_url_, admin_token_);
    const Json body = {{"approval_mode", false}};
    RETURN_IF_ERROR(api.Call("PUT", "/api/v1/settings", &body, "turn approval mode off"));
    err_ << "medic demo: approval mode off (--auto)" << std::endl;
  }
  for (int i = 1; i <= options_.hosts; ++i) {
    RETURN_IF_ERROR(StartHost(i));
  }
  RETURN_IF_ERROR(WaitForHealthyHosts());
  out_ << "medic demo ready: " << server_url_ << "/ token-file " << admin_token_path_ << std::endl;
  PrintHint();
  return OkStatus();
}

Status Demo::Wait() {
  for (;;) {
    if (env_.WaitForStop(Millis(1'000))) {
      stop_requested_ = true;
      return OkStatus();
    }
    if (launcher_.WaitExit(server_pid_, Millis(0))) {
      return Unavailable("medic-server exited unexpectedly; last lines of " + server_log_ + ":\n" +
                         LogTail(server_log_));
    }
    for (size_t i = 0; i < hosts_.size(); ++i) {
      if (!agent_exit_reported_[i] && launcher_.WaitExit(agent_pids_[i], Millis(0))) {
        agent_exit_reported_[i] = true;
        err_ << "medic demo: medic-agent of " << hosts_[i].name << " exited; see "
             << hosts_[i].AgentLogPath() << std::endl;
      }
    }
  }
}

void Demo::StopProcess(int pid, const std::string& what) {
  if (!launcher_.WaitExit(pid, options_.stop_timeout)) {
    err_ << "medic demo: " << what << " did not stop within "
         << options_.stop_timeout.count() / 1000 << " s; killing its process group" << std::endl;
    launcher_.Signal(pid, SIGKILL, true);
    launcher_.WaitExit(pid, kKillGrace);
  }
}

void Demo::Stop() {
  if (stopped_) {
    return;
  }
  stopped_ = true;
  for (const int pid : agent_pids_) {
    if (pid > 0 && !launcher_.WaitExit(pid, Millis(0))) {
      launcher_.Signal(pid, SIGTERM, false);
    }
  }
  for (size_t i = 0; i < agent_pids_.size(); ++i) {
    if (agent_pids_[i] > 0) {
      StopProcess(agent_pids_[i], "medic-agent of " + hosts_[i].name);
    }
  }
  // An agent that had to be killed cannot have stopped its nginx: the pidfile in the host's own
  // run/ names it (CrashNginx checks it is a running nginx before it kills anything).
  for (const DemoHost& h : hosts_) {
    if (PathExists(h.NginxPidPath())) {
      if (Result<NginxKill> k = CrashNginx(procs_, h.NginxPidPath()); k.has_value()) {
        err_ << "medic demo: " << h.name << ": nginx was still running; " << DescribeNginxKill(*k)
             << std::endl;
      }
    }
  }
  if (server_pid_ > 0 && !launcher_.WaitExit(server_pid_, Millis(0))) {
    launcher_.Signal(server_pid_, SIGTERM, false);
    StopProcess(server_pid_, "medic-server");
  }
  for (const DemoHost& h : hosts_) {
    ClearRunDir(h.RunDir());
  }
}

int Demo::Run() {
  Status started = Start();
  if (!started.has_value()) {
    const bool interrupted = stop_requested_;
    if (!interrupted) {
      err_ << "medic demo: " << started.error().message << std::endl;
    }
    if (server_pid_ > 0) {
      err_ << "medic demo: stopping" << std::endl;
    }
    Stop();
    return interrupted ? 130 : 1;
  }
  Status waited = Wait();
  if (!waited.has_value()) {
    err_ << "medic demo: " << waited.error().message << std::endl;
  }
  err_ << "medic demo: stopping" << std::endl;
  Stop();
  if (waited.has_value()) {
    err_ << "medic demo: stopped; data kept in " << data_dir_ << std::endl;
  }
  return waited.has_value() ? 0 : 1;
}

}  // namespace medic::cli
