#include "cli/demo.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <system_error>
#include <thread>

#include "cli/api.h"
#include "core/files.h"
#include "host/cgroup.h"
#include "host/proc_parsers.h"

namespace medic::cli {

namespace {

namespace fs = std::filesystem;

constexpr Millis kKillGrace{2'000};
constexpr Millis kHealthzTimeout{1'000};
constexpr Millis kCgroupDrainTimeout{5'000};
constexpr Millis kProbeEvery{25};
constexpr char kMemoryHierarchy[] = "/sys/fs/cgroup/memory";

std::string ErrnoText(int e) { return std::strerror(e); }

// Writes `text` to an existing file (a cgroup control file) with one write(2).
Status WriteControlFile(const std::string& path, const std::string& text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    return Internal("open " + path + ": " + ErrnoText(errno));
  }
  const ssize_t n = ::write(fd, text.data(), text.size());
  const int e = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(text.size())) {
    return Internal("write " + path + ": " + (n < 0 ? ErrnoText(e) : "short write"));
  }
  return OkStatus();
}

std::string AbsolutePath(const std::string& path);
bool IsMountedAt(host::ProcFs& procfs, const std::string& dir);

class PosixHostIsolation : public HostIsolation {
 public:
  Status MountTmpfs(const std::string& dir, uint64_t size_bytes) override {
    if (::geteuid() != 0) {
      return PermissionDenied("mounting a tmpfs needs root");
    }
    // A volume left by a demo that was killed: detach it rather than stack another on it.
    for (int i = 0; i < 4 && IsMountPoint(dir); ++i) {
      ::umount2(dir.c_str(), MNT_DETACH);
    }
    const std::string data = "size=" + std::to_string(size_bytes) + ",mode=0755";
    if (::mount("medic-demo", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, data.c_str()) != 0) {
      return Internal("mount tmpfs (" + data + ") on " + dir + ": " + ErrnoText(errno));
    }
    return OkStatus();
  }

  Status Unmount(const std::string& dir) override {
    if (::umount2(dir.c_str(), 0) == 0) {
      return OkStatus();
    }
    if (errno == EBUSY && ::umount2(dir.c_str(), MNT_DETACH) == 0) {
      return OkStatus();
    }
    return Internal("unmount " + dir + ": " + ErrnoText(errno));
  }

  Result<std::string> CreateMemoryCgroup(const std::string& name, uint64_t limit_bytes) override {
    ASSIGN_OR_RETURN(const std::string parent, OwnMemoryCgroup("self/cgroup"));
    RemoveStaleSiblings(parent);
    const std::string dir = parent + "/" + name;
    if (::mkdir(dir.c_str(), 0755) != 0) {
      return Internal("create memory cgroup " + dir + ": " + ErrnoText(errno));
    }
    if (Status s = WriteControlFile(dir + "/memory.limit_in_bytes", std::to_string(limit_bytes));
        !s.has_value()) {
      ::rmdir(dir.c_str());
      return s.error();
    }
    return dir;
  }

  Result<int> StartInCgroup(const std::string& dir,
                            const std::function<Result<int>()>& start) override {
    ASSIGN_OR_RETURN(const std::string home, OwnMemoryCgroup("thread-self/cgroup"));
    const std::string tid = std::to_string(::syscall(SYS_gettid));
    RETURN_IF_ERROR(WriteControlFile(dir + "/tasks", tid));
    Result<int> started = start();
    if (Status back = WriteControlFile(home + "/tasks", tid); !back.has_value()) {
      // The started process is fine (and must stay tracked); what the demo starts later would
      // share this host's limit.
      std::cerr << "medic demo: warning: cannot move back to " << home << ": "
                << back.error().message << std::endl;
    }
    return started;
  }

  Status RemoveCgroup(const std::string& dir) override {
    std::error_code ec;
    std::vector<std::string> children;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      std::error_code dir_ec;
      if (it->is_directory(dir_ec)) {
        children.push_back(it->path().string());
      }
    }
    Status first = OkStatus();
    for (const std::string& child : children) {
      if (Status s = RemoveCgroup(child); !s.has_value() && first.has_value()) {
        first = s;
      }
    }
    const auto deadline = std::chrono::steady_clock::now() + kCgroupDrainTimeout;
    for (;;) {
      for (const int pid : Pids(dir)) {
        ::kill(pid, SIGKILL);
      }
      if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) {
        return first;
      }
      if (errno != EBUSY || std::chrono::steady_clock::now() >= deadline) {
        return Internal("remove memory cgroup " + dir + ": " + ErrnoText(errno));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

 private:
  bool IsMountPoint(const std::string& path) { return IsMountedAt(procfs_, AbsolutePath(path)); }

  // `proc_file`: "self/cgroup" or "thread-self/cgroup".
  Result<std::string> OwnMemoryCgroup(const std::string& proc_file) {
    ASSIGN_OR_RETURN(const std::string text, procfs_.Read(proc_file));
    std::optional<std::string> dir = host::CgroupDir(text, "memory", kMemoryHierarchy);
    if (!dir.has_value()) {
      return NotFound("no cgroup v1 memory controller in /proc/" + proc_file);
    }
    if (!PathExists(*dir + "/memory.limit_in_bytes")) {
      return NotFound("memory cgroup " + *dir + " is not mounted here");
    }
    return *dir;
  }

  // The processes in the cgroup `dir`, never init.
  std::vector<int> Pids(const std::string& dir) {
    std::vector<int> pids;
    const std::string procs = procfs_.Read(dir + "/cgroup.procs").value_or("");
    for (const pid_t pid : host::ParseCgroupProcs(procs)) {
      if (pid > 1) {
        pids.push_back(pid);
      }
    }
    return pids;
  }

  // Empty cgroups of demos that were killed (medic-demo-PID-* whose PID is gone). rmdir(2)
  // removes only empty cgroups, so nothing running is touched.
  static void RemoveStaleSiblings(const std::string& parent) {
    std::error_code ec;
    for (fs::directory_iterator it(parent, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (name.rfind(kDemoCgroupPrefix, 0) != 0) {
        continue;
      }
      const int pid = std::atoi(name.c_str() + std::strlen(kDemoCgroupPrefix));
      if (pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH) {
        ::rmdir(it->path().c_str());
      }
    }
  }

  host::LinuxProcFs procfs_;
};

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

// True when `dir` is a mount point in /proc/self/mounts.
bool IsMountedAt(host::ProcFs& procfs, const std::string& dir) {
  Result<std::string> mounts = procfs.Read("self/mounts");
  if (!mounts.has_value()) {
    return false;
  }
  for (const host::MountEntry& m : host::ParseMounts(*mounts)) {
    if (m.mount_point == dir) {
      return true;
    }
  }
  return false;
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
  PosixDemoEnv()
      : http_(NewCurlHttpClient()),
        explaining_(NewExplainingHttpClient(*http_)),
        isolation_(NewPosixHostIsolation()),
        network_(NewLinuxDemoNetwork()) {
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
  WallTime WallNow() override { return std::chrono::system_clock::now(); }
  HostIsolation& Isolation() override { return *isolation_; }
  DemoNetwork& Network() override { return *network_; }
  std::unique_ptr<LoadProbe> StartProbe(const std::string& url) override {
    auto probe = std::make_unique<ThreadLoadProbe>(NewCurlHttpClient(), url, kProbeEvery);
    probe->Start();
    return probe;
  }

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
  std::unique_ptr<HostIsolation> isolation_;
  std::unique_ptr<DemoNetwork> network_;
  bool stopped_ = false;
};

// The scenario runner's world: the demo's HTTP client, clock, stop signals and probes. A sleep
// also ends the run when `server_gone` says medic-server has exited (nothing could answer).
class DemoScenarioEnv : public ScenarioEnv {
 public:
  DemoScenarioEnv(DemoEnv& env, std::function<bool()> server_gone)
      : env_(env), server_gone_(std::move(server_gone)) {}
  HttpClient& Http() override { return env_.Http(); }
  WallTime Now() override { return env_.WallNow(); }
  bool Sleep(Millis d) override {
    if (server_gone_()) {
      server_died_ = true;
      return false;
    }
    return !env_.WaitForStop(d);
  }
  std::unique_ptr<LoadProbe> StartProbe(const std::string& url) override {
    return env_.StartProbe(url);
  }
  bool server_died() const { return server_died_; }

 private:
  DemoEnv& env_;
  std::function<bool()> server_gone_;
  bool server_died_ = false;
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

std::unique_ptr<HostIsolation> NewPosixHostIsolation() {
  return std::make_unique<PosixHostIsolation>();
}

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
        if (h.is_object() && StringOr(h, "name") == name) {
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
        if (c.is_object() && !BoolOr(c, "healthy", false)) {
          why += ": check " + StringOr(c, "name", "?") + " failing";
          const std::string detail = StringOr(c, "detail");
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

Demo::Demo(DemoOptions options, ProcessLauncher& launcher, DemoEnv& env, host::ProcFs& procfs,
           SignalFn signal, std::ostream& out, std::ostream& err)
    : options_(std::move(options)),
      launcher_(launcher),
      env_(env),
      procfs_(procfs),
      signal_(std::move(signal)),
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
  if (options_.hosts < 1 || options_.hosts > kDemoMaxNetHosts) {
    return InvalidArgument("--hosts must be between 1 and " + std::to_string(kDemoMaxNetHosts) +
                           " (got " + std::to_string(options_.hosts) + ")");
  }
  if (!options_.scenario.empty()) {
    RETURN_IF_ERROR(SelectScenarios(options_.scenario));
  }
  ASSIGN_OR_RETURN(listen_, ParseHostPort(options_.listen));
  data_dir_ = AbsolutePath(options_.data_dir);
  RETURN_IF_ERROR(MakeDirs(data_dir_, 0700));
  state_path_ = data_dir_ + "/" + kDemoStateFile;
  RETURN_IF_ERROR(CleanUpLeftover());
  state_.pid = ::getpid();
  state_.start_time = StartTimeOf(state_.pid).value_or(0);
  SaveState();
  if (listen_.port == 0) {
    ASSIGN_OR_RETURN(listen_.port, env_.FreeLoopbackPort());
  } else {
    if (Status s = env_.CheckCanListen(listen_); !s.has_value()) {
      return Error{s.error().code,
                   s.error().message + " (is another medic demo running? choose --listen)"};
    }
  }
  server_url_ = "http://" + ConnectableAddress(listen_).ToString();
  agent_server_url_ = server_url_;
  server_dir_ = data_dir_ + "/server";
  server_log_ = server_dir_ + "/server.log";
  admin_token_path_ = server_dir_ + "/admin.token";
  server_config_ = server_dir_ + "/server.yaml";
  RETURN_IF_ERROR(MakeDirs(server_dir_, 0700));
  // The hosts' log directories and chaos permission are the server's to know: its config says.
  std::vector<DemoHost> hosts;
  for (int i = 1; i <= options_.hosts; ++i) {
    hosts.push_back(MakeDemoHost(data_dir_, i));
  }
  RETURN_IF_ERROR(WriteFileAtomic(server_config_, ServerYaml(hosts), 0600));
  return OkStatus();
}

Status Demo::WaitForServer() {
  err_ << "medic demo: starting medic-server on " << listen_.ToString() << " (log " << server_log_
       << ")" << std::endl;
  ASSIGN_OR_RETURN(server_pid_,
                   launcher_.Start({options_.server_bin, "--listen", listen_.ToString(),
                                    "--data-dir", server_dir_, "--config", server_config_},
                                   server_log_));
  RecordProcess(server_pid_, "medic-server");
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

Status Demo::IsolateHost(DemoHost& host) {
  HostIsolation& iso = env_.Isolation();
  RETURN_IF_ERROR(iso.MountTmpfs(host.LogDir(), kDemoLogVolumeBytes));
  mounts_.push_back(host.LogDir());
  state_.mounts.push_back(host.LogDir());
  SaveState();
  Result<std::string> cgroup = iso.CreateMemoryCgroup(
      kDemoCgroupPrefix + std::to_string(::getpid()) + "-" + host.name, kDemoMemoryLimitBytes);
  if (!cgroup.has_value()) {
    if (iso.Unmount(host.LogDir()).has_value()) {
      mounts_.pop_back();
    }
    return cgroup.error();
  }
  cgroups_.push_back(*cgroup);
  state_.cgroups.push_back(*cgroup);
  SaveState();
  host.cgroup = *cgroup;
  host.isolated = true;
  return OkStatus();
}

Status Demo::StartHost(int index) {
  DemoHost host = MakeDemoHost(data_dir_, index);
  if (!hub_ns_.empty()) {
    // Its own namespace: fixed ports, its own address on the hub's bridge.
    host.netns = DemoHostNamespace(::getpid(), host.name);
    host.address = DemoHostAddress(index);
    host.nginx_port = kDemoNsNginxPort;
    host.app_port = kDemoNsAppPort;
    namespaces_.push_back(host.netns);
    state_.namespaces.push_back(host.netns);
    SaveState();
    RETURN_IF_ERROR(env_.Network().CreateHost(hub_ns_, host.netns, host.name, host.address));
    // medic-server health-checks the host's `web` target from the root namespace, as a load
    // balancer would: through a relay to the host's nginx.
    ASSIGN_OR_RETURN(host.target_port,
                     env_.Network().Forward("", HostPort{"127.0.0.1", 0}, host.netns,
                                            HostPort{"127.0.0.1", host.nginx_port}));
  } else {
    ASSIGN_OR_RETURN(host.nginx_port, env_.FreeLoopbackPort());
    ASSIGN_OR_RETURN(host.app_port, env_.FreeLoopbackPort());
    for (int tries = 0; host.app_port == host.nginx_port && tries < 5; ++tries) {
      ASSIGN_OR_RETURN(host.app_port, env_.FreeLoopbackPort());
    }
  }
  for (const std::string& d : {host.dir, host.LogDir(), host.RunDir(), host.TmpDir()}) {
    RETURN_IF_ERROR(MakeDirs(d));
  }
  if (Status isolated = IsolateHost(host); !isolated.has_value() && !isolation_warned_) {
    isolation_warned_ = true;
    err_ << "medic demo: warning: cannot give the demo hosts a tmpfs log volume and a memory "
            "cgroup ("
         << isolated.error().message
         << "); they use plain directories and no memory limit, so only nginx-crash chaos is "
            "allowed on them"
         << std::endl;
  }
  ClearRunDir(host.RunDir());
  RETURN_IF_ERROR(WriteFileAtomic(host.NginxConfPath(), NginxConfig(host)));
  // Each host enrols itself with a code made now with the admin token (an agent that kept its
  // credential from an earlier demo on this data dir uses that and ignores the code).
  ApiClient api(env_.Http(), server_url_, admin_token_);
  ASSIGN_OR_RETURN(Json code, api.Call("POST", "/api/v1/hosts/" + host.name + "/enroll", nullptr,
                                       "enrolment code for " + host.name));
  if (!code.contains("code") || !code["code"].is_string()) {
    return Internal("the server's answer to POST /api/v1/hosts/" + host.name +
                    "/enroll has no code");
  }
  const AgentYamlInputs inputs{agent_server_url_, code["code"].get<std::string>(),
                               options_.nginx_bin, options_.medic_bin};
  RETURN_IF_ERROR(WriteFileAtomic(host.AgentConfigPath(), AgentYaml(host, inputs), 0600));
  err_ << "medic demo: starting " << host.name;
  if (!host.netns.empty()) {
    err_ << " in network namespace " << host.netns << " (nginx " << host.address << ":"
         << host.nginx_port << ", its target relayed from 127.0.0.1:" << host.target_port;
  } else {
    err_ << " (nginx 127.0.0.1:" << host.nginx_port;
  }
  err_ << " -> healthapp 127.0.0.1:" << host.app_port << ", log " << host.AgentLogPath();
  if (host.isolated) {
    err_ << "; log volume " << host.LogDir() << " (tmpfs " << (kDemoLogVolumeBytes >> 20)
         << " MiB), memory cgroup " << host.cgroup << " (" << (kDemoMemoryLimitBytes >> 20)
         << " MiB)";
  }
  err_ << ")" << std::endl;
  hosts_.push_back(host);
  agent_pids_.push_back(0);
  agent_exit_reported_.push_back(false);
  const std::vector<std::string> argv = {options_.agent_bin, "--config", host.AgentConfigPath()};
  auto start = [&]() { return launcher_.Start(argv, host.AgentLogPath()); };
  auto start_in_cgroup = [&]() {
    return host.isolated ? env_.Isolation().StartInCgroup(host.cgroup, start) : start();
  };
  ASSIGN_OR_RETURN(agent_pids_.back(), host.netns.empty()
                                           ? start_in_cgroup()
                                           : env_.Network().StartIn(host.netns, start_in_cgroup));
  RecordProcess(agent_pids_.back(), "medic-agent " + host.name);
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

Status Demo::StartLoadBalancer(const HostPort& listen, const std::vector<std::string>& upstreams) {
  lb_ = MakeDemoLoadBalancer(data_dir_);
  lb_.listen = listen.ToString();
  lb_.upstreams = upstreams;
  for (const std::string& d : {lb_.dir, lb_.LogDir(), lb_.RunDir(), lb_.TmpDir()}) {
    RETURN_IF_ERROR(MakeDirs(d));
  }
  ClearRunDir(lb_.RunDir());
  RETURN_IF_ERROR(WriteFileAtomic(lb_.ConfPath(), LoadBalancerNginxConfig(lb_)));
  lb_url_ = "http://" + ConnectableAddress(listen).ToString();
  std::string members;
  for (const std::string& u : upstreams) {
    members += (members.empty() ? "" : ", ") + u;
  }
  err_ << "medic demo: starting the load balancer (nginx " << lb_.listen << " -> " << members
       << ", log " << lb_.LogDir() << ")" << std::endl;
  auto start = [&]() {
    return launcher_.Start({options_.nginx_bin, "-p", lb_.dir + "/", "-e",
                            lb_.LogDir() + "/error.log", "-c", lb_.ConfPath(), "-g",
                            "daemon off;"},
                           lb_.OutLogPath());
  };
  ASSIGN_OR_RETURN(lb_pid_, hub_ns_.empty() ? start() : env_.Network().StartIn(hub_ns_, start));
  RecordProcess(lb_pid_, "load balancer");
  return OkStatus();
}

Status Demo::WaitForLoadBalancer() {
  HttpRequest health;
  health.url = lb_url_ + "/health";
  health.timeout = kHealthzTimeout;
  health.connect_timeout = kHealthzTimeout;
  const SteadyTime deadline = env_.Now() + options_.lb_start_timeout;
  for (;;) {
    if (launcher_.WaitExit(lb_pid_, Millis(0))) {
      return Unavailable("the load balancer (nginx) exited at start; last lines of " +
                         lb_.OutLogPath() + ":\n" + LogTail(lb_.OutLogPath()) + "and of " +
                         lb_.LogDir() + "/error.log:\n" + LogTail(lb_.LogDir() + "/error.log"));
    }
    Result<HttpResponse> r = env_.Http().Do(health);
    if (r.has_value() && r->status == 200) {
      return OkStatus();
    }
    if (env_.Now() >= deadline) {
      return DeadlineExceeded(
          "the load balancer did not answer GET " + health.url + " with 200 within " +
          std::to_string(options_.lb_start_timeout.count() / 1000) + " s (" +
          (r.has_value() ? "last answer " + std::to_string(r->status) : r.error().message) +
          "); last lines of " + lb_.LogDir() + "/error.log:\n" +
          LogTail(lb_.LogDir() + "/error.log"));
    }
    if (!Pause()) {
      return DeadlineExceeded("interrupted");
    }
  }
}

std::ostream& Demo::ReadyOut() { return options_.json && !options_.scenario.empty() ? err_ : out_; }

void Demo::PrintHint() {
  if (!options_.scenario.empty()) {
    return;  // the scenarios run now; the demo stops after them
  }
  const DemoHost& first = hosts_.front();
  err_ << "\nTry it (Ctrl-C stops the demo):\n"
       << "  export MEDIC_SERVER=" << server_url_ << " MEDIC_TOKEN=$(cat " << admin_token_path_
       << ")\n"
       << "  curl " << lb_url_ << "/health    # the load balancer in front of";
  for (const DemoHost& h : hosts_) {
    err_ << " " << h.name;
  }
  err_ << "\n"
       << "  " << options_.medic_bin << " chaos nginx-crash --host " << first.name
       << "    # or locally: ... chaos nginx-crash --pidfile " << first.NginxPidPath() << "\n"
       << "  " << options_.medic_bin << " incidents\n"
       << "  " << options_.medic_bin << " approve INCIDENT_ID"
       << (options_.auto_approve ? "    # not needed: --auto approves by itself" : "") << "\n"
       << std::flush;
}

void Demo::PrintSignInLink() {
  // A single-use code (5 minutes) in the URL's fragment: browsers never send a fragment to a
  // server or in a Referer, and the token itself never appears in a URL.
  ApiClient api(env_.Http(), server_url_, admin_token_);
  auto answer = api.Call("POST", "/api/v1/session/codes", nullptr, "get a sign-in code");
  if (!answer || !answer->is_object() || !answer->contains("code") ||
      !(*answer)["code"].is_string()) {
    err_ << "medic demo: no sign-in link ("
         << (answer ? std::string("the server answered no code") : answer.error().message)
         << "); sign in with the token file" << std::endl;
    return;
  }
  ReadyOut() << "sign in: " << server_url_ << "/#code=" << (*answer)["code"].get<std::string>()
             << std::endl;
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
  SetUpNetwork();
  for (int i = 1; i <= options_.hosts; ++i) {
    RETURN_IF_ERROR(StartHost(i));
  }
  RETURN_IF_ERROR(WaitForHealthyHosts());
  std::vector<std::string> upstreams;
  for (const DemoHost& h : hosts_) {
    upstreams.push_back((h.address.empty() ? "127.0.0.1" : h.address) + ":" +
                        std::to_string(h.nginx_port));
  }
  if (!hub_ns_.empty()) {
    // In the hub, on its address, over the hosts' addresses; the user reaches it on loopback
    // through the relay.
    RETURN_IF_ERROR(StartLoadBalancer(HostPort{DemoHubAddress(), kDemoLbPort}, upstreams));
    ASSIGN_OR_RETURN(const int lb_port,
                     env_.Network().Forward("", HostPort{"127.0.0.1", 0}, hub_ns_,
                                            HostPort{DemoHubAddress(), kDemoLbPort}));
    lb_url_ = "http://127.0.0.1:" + std::to_string(lb_port);
  } else {
    ASSIGN_OR_RETURN(const int lb_port, env_.FreeLoopbackPort());
    RETURN_IF_ERROR(StartLoadBalancer(HostPort{"127.0.0.1", lb_port}, upstreams));
  }
  RETURN_IF_ERROR(WaitForLoadBalancer());
  WriteDemoJson();
  ReadyOut() << "medic demo ready: " << server_url_ << "/ token-file " << admin_token_path_
             << " load-balancer " << lb_url_ << "/" << std::endl;
  PrintSignInLink();
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
    // Nothing supervises the load balancer: say so once if it goes.
    if (!lb_exit_reported_ && lb_pid_ > 0 && launcher_.WaitExit(lb_pid_, Millis(0))) {
      lb_exit_reported_ = true;
      err_ << "medic demo: the load balancer (nginx) exited; see " << lb_.OutLogPath() << " and "
           << lb_.LogDir() << "/error.log" << std::endl;
    }
  }
}

int Demo::RunScenarios() {
  Result<std::vector<ScenarioSpec>> specs = SelectScenarios(options_.scenario);
  if (!specs.has_value()) {  // PrepareServer checked it already
    err_ << "medic demo: " << specs.error().message << std::endl;
    return 2;
  }
  ScenarioRunnerOptions o;
  o.server_url = server_url_;
  o.admin_token = admin_token_;
  o.lb_url = lb_url_;
  for (const DemoHost& h : hosts_) {
    o.hosts.push_back({h.name, h.isolated});
  }
  o.auto_approve = options_.auto_approve;
  o.poll_interval = options_.poll_interval;
  DemoScenarioEnv env(env_, [this] { return launcher_.WaitExit(server_pid_, Millis(0)); });
  ScenarioRunner runner(std::move(o), env, err_);
  std::vector<ScenarioResult> results = runner.RunAll(*specs);
  if (env.server_died()) {
    for (ScenarioResult& r : results) {
      if (r.status == "interrupted") {
        r.status = "interrupted: medic-server exited";
      }
    }
  }
  if (options_.json) {
    out_ << DumpJson(ScenarioResultsJson(results), 2) << std::endl;
  } else {
    out_ << FormatScenarioTable(results) << std::flush;
  }
  if (env.server_died()) {
    err_ << "medic demo: medic-server exited during the scenarios; last lines of " << server_log_
         << ":\n"
         << LogTail(server_log_) << std::flush;
    return 1;
  }
  if (runner.interrupted()) {
    stop_requested_ = true;
    return 130;
  }
  return ScenarioExitStatus(results);
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
  // The load balancer first: it is the fleet's front door.
  if (lb_pid_ > 0 && !launcher_.WaitExit(lb_pid_, Millis(0))) {
    launcher_.Signal(lb_pid_, SIGTERM, false);
    StopProcess(lb_pid_, "the load balancer (nginx)");
  }
  if (!lb_.dir.empty()) {
    ClearRunDir(lb_.RunDir());
  }
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
      if (Result<NginxKill> k = CrashNginx(procfs_, signal_, h.NginxPidPath()); k.has_value()) {
        err_ << "medic demo: " << h.name << ": nginx was still running; " << DescribeNginxKill(*k)
             << std::endl;
      }
    }
  }
  RemoveCgroups();
  if (server_pid_ > 0 && !launcher_.WaitExit(server_pid_, Millis(0))) {
    launcher_.Signal(server_pid_, SIGTERM, false);
    StopProcess(server_pid_, "medic-server");
  }
  for (const DemoHost& h : hosts_) {
    ClearRunDir(h.RunDir());
  }
  env_.Network().StopForwarding();
  DeleteNamespaces();
  Unmount();
  if (state_.pid == ::getpid()) {  // not when it refused to start next to a running demo
    std::error_code ec;
    fs::remove(data_dir_ + "/demo.json", ec);
    if (!cleanup_failed_) {
      // Everything it lists is gone; after a failure it stays for the next demo to retry.
      fs::remove(state_path_, ec);
    }
  }
}

void Demo::DeleteNamespaces() {
  for (auto it = namespaces_.rbegin(); it != namespaces_.rend(); ++it) {
    if (Status s = env_.Network().DeleteNamespace(*it); !s.has_value()) {
      cleanup_failed_ = true;
      err_ << "medic demo: " << s.error().message << std::endl;
    }
  }
  namespaces_.clear();
}

void Demo::RemoveCgroups() {
  for (const std::string& cgroup : cgroups_) {
    if (Status s = env_.Isolation().RemoveCgroup(cgroup); !s.has_value()) {
      cleanup_failed_ = true;
      err_ << "medic demo: " << s.error().message << std::endl;
    }
  }
  cgroups_.clear();
}

void Demo::Unmount() {
  for (const std::string& dir : mounts_) {
    if (Status s = env_.Isolation().Unmount(dir); !s.has_value()) {
      cleanup_failed_ = true;
      err_ << "medic demo: " << s.error().message << std::endl;
    }
  }
  mounts_.clear();
}

std::optional<uint64_t> Demo::StartTimeOf(int pid) {
  Result<std::string> stat = procfs_.Read(std::to_string(pid) + "/stat");
  if (!stat.has_value()) {
    return std::nullopt;
  }
  // A zombie (reaped soon by whoever inherited it) is gone for our purposes.
  if (Result<host::PidStat> st = host::ParsePidStat(*stat); st.has_value() && !host::IsLive(*st)) {
    return std::nullopt;
  }
  return ParseStartTime(*stat);
}

void Demo::SaveState() {
  Status s = WriteFileAtomic(state_path_, DumpJson(DemoStateToJson(state_), 2) + "\n", 0600);
  if (!s.has_value() && !state_warned_) {
    state_warned_ = true;
    err_ << "medic demo: warning: cannot record what the demo creates (" << s.error().message
         << "); if it is killed, remove its leftovers by hand" << std::endl;
  }
}

void Demo::RecordProcess(int pid, const std::string& what) {
  state_.processes.push_back({pid, StartTimeOf(pid).value_or(0), what});
  SaveState();
}

Status Demo::CleanUpLeftover() {
  if (!PathExists(state_path_)) {
    return OkStatus();
  }
  ASSIGN_OR_RETURN(const std::string text, ReadFile(state_path_));
  Result<DemoState> parsed = ParseDemoState(text);
  if (!parsed.has_value()) {
    return FailedPrecondition(state_path_ + " is not a medic demo state file (" +
                              parsed.error().message +
                              "); remove it if no medic demo runs on " + data_dir_);
  }
  const DemoState& old = *parsed;
  if (Status valid = ValidateDemoState(old, data_dir_); !valid.has_value()) {
    return FailedPrecondition(state_path_ + ": " + valid.error().message +
                              "; nothing was touched: remove what it lists by hand, then the file");
  }
  if (JudgeLeftover(old, StartTimeOf(old.pid)) == LeftoverDemo::kRunning) {
    return FailedPrecondition("another medic demo (pid " + std::to_string(old.pid) +
                              ") is running on " + data_dir_ +
                              "; stop it first, or choose another --data-dir");
  }
  // A killed demo: its processes (still the same ones), then whatever is left in its cgroups
  // and namespaces, then its mounts.
  const std::vector<DemoProcessRecord> kill =
      ProcessesToKill(old, [this](int pid) { return StartTimeOf(pid); });
  for (const DemoProcessRecord& p : kill) {
    if (Status s = signal_(p.pid, SIGKILL); !s.has_value()) {
      err_ << "medic demo: " << s.error().message << std::endl;
    }
  }
  const SteadyTime deadline = env_.Now() + kCgroupDrainTimeout;
  for (const DemoProcessRecord& p : kill) {
    while (StartTimeOf(p.pid) == std::optional<uint64_t>(p.start_time) && env_.Now() < deadline) {
      if (env_.WaitForStop(Millis(20))) {
        stop_requested_ = true;
        return DeadlineExceeded("interrupted");
      }
    }
  }
  bool failed = false;
  for (const std::string& cg : old.cgroups) {
    if (Status s = env_.Isolation().RemoveCgroup(cg); !s.has_value()) {
      failed = true;
      err_ << "medic demo: " << s.error().message << std::endl;
    }
  }
  for (auto it = old.namespaces.rbegin(); it != old.namespaces.rend(); ++it) {
    if (Status s = env_.Network().DeleteNamespace(*it); !s.has_value()) {
      failed = true;
      err_ << "medic demo: " << s.error().message << std::endl;
    }
  }
  for (const std::string& m : old.mounts) {
    // Only what is still mounted there (a clean unmount may have happened before the kill).
    if (IsMountedAt(procfs_, m)) {
      if (Status s = env_.Isolation().Unmount(m); !s.has_value()) {
        failed = true;
        err_ << "medic demo: " << s.error().message << std::endl;
      }
    }
  }
  if (failed) {
    return Internal("could not remove everything a killed medic demo (pid " +
                    std::to_string(old.pid) + ") left on " + data_dir_ + " (see above)");
  }
  std::error_code ec;
  fs::remove(state_path_, ec);
  err_ << "medic demo: cleaned up after a medic demo (pid " << old.pid
       << ") that did not stop: " << kill.size() << " process(es) killed, " << old.cgroups.size()
       << " cgroup(s), " << old.namespaces.size() << " network namespace(s) and "
       << old.mounts.size() << " mount(s) removed" << std::endl;
  return OkStatus();
}

void Demo::SetUpNetwork() {
  const std::string hub = DemoHubNamespace(::getpid());
  namespaces_.push_back(hub);
  state_.namespaces.push_back(hub);
  SaveState();
  DemoNetwork& net = env_.Network();
  Status s = net.CreateHub(hub);
  Result<int> relay_port = 0;
  if (s.has_value()) {
    relay_port = net.Forward(hub, HostPort{DemoHubAddress(), 0}, "", ConnectableAddress(listen_));
    if (!relay_port.has_value()) {
      s = relay_port.error();
    }
  }
  if (!s.has_value()) {
    err_ << "medic demo: warning: cannot give the demo hosts network namespaces of their own ("
         << s.error().message << "); they run on this machine's loopback" << std::endl;
    net.StopForwarding();
    DeleteNamespaces();
    state_.namespaces.clear();
    SaveState();
    return;
  }
  hub_ns_ = hub;
  agent_server_url_ = "http://" + DemoHubAddress() + ":" + std::to_string(*relay_port);
  err_ << "medic demo: network namespace " << hub << " (bridge " << kDemoBridge << " "
       << DemoHubAddress() << "/" << kDemoSubnetBits << "); the agents reach medic-server at "
       << agent_server_url_ << " through a relay" << std::endl;
}

void Demo::WriteDemoJson() {
  Json hosts = Json::array();
  for (const DemoHost& h : hosts_) {
    const std::string addr = h.address.empty() ? "127.0.0.1" : h.address;
    hosts.push_back({{"name", h.name},
                     {"namespace", h.netns},
                     {"address", h.address},
                     {"target_url", "http://127.0.0.1:" +
                                        std::to_string(h.target_port > 0 ? h.target_port
                                                                         : h.nginx_port) +
                                        "/"},
                     {"nginx_url", "http://" + addr + ":" + std::to_string(h.nginx_port) + "/"},
                     {"dir", h.dir}});
  }
  const Json j = {{"pid", ::getpid()},
                  {"server", server_url_},
                  {"load_balancer", lb_url_},
                  {"token_file", admin_token_path_},
                  {"hub_namespace", hub_ns_},
                  {"hosts", hosts}};
  if (Status s = WriteFileAtomic(data_dir_ + "/demo.json", DumpJson(j, 2) + "\n", 0644);
      !s.has_value()) {
    err_ << "medic demo: warning: " << s.error().message << std::endl;
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
  if (!options_.scenario.empty()) {
    const int status = RunScenarios();
    err_ << "medic demo: stopping" << std::endl;
    Stop();
    if (status != 130) {
      err_ << "medic demo: stopped; data kept in " << data_dir_ << std::endl;
    }
    return status;
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
