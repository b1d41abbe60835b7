#pragma once

// Drives a real `medic demo` the way a user does: the medic binary (MEDIC_BIN_DIR) and the HTTP
// API. One DemoFixture is one demo in its own temp dir; it stops the demo with SIGTERM when it
// goes and then removes whatever a demo that did not stop cleanly left behind (its tmpfs mounts,
// its memory cgroups and the processes in them — all started by this demo), so a failing test
// leaves nothing running or mounted.

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/files.h"
#include "core/json.h"
#include "core/sha256.h"
#include "tests/fakes/subprocess.h"
#include "tests/fakes/temp_dir.h"
#include "transport/http_client.h"

namespace medic::test {

inline std::string Bin(const std::string& name) {
  const char* dir = std::getenv("MEDIC_BIN_DIR");
  return std::string(dir != nullptr ? dir : "build/bin") + "/" + name;
}

// Polls fn every `every` until it returns true or `timeout` passes; returns fn's last answer.
template <typename Fn>
bool Eventually(std::chrono::milliseconds timeout, Fn fn,
                std::chrono::milliseconds every = std::chrono::milliseconds(200)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (fn()) {
      return true;
    }
    std::this_thread::sleep_for(every);
  }
  return fn();
}

inline std::vector<pid_t> ChildrenOf(pid_t pid) {
  std::vector<pid_t> out;
  const std::string task_dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = opendir(task_dir.c_str());
  if (d == nullptr) {
    return out;
  }
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') {
      continue;
    }
    auto text = ReadFile(task_dir + "/" + e->d_name + "/children");
    if (!text) {
      continue;
    }
    std::istringstream in(*text);
    pid_t child;
    while (in >> child) {
      out.push_back(child);
    }
  }
  closedir(d);
  return out;
}

inline pid_t ReadPid(const std::string& path) {
  auto text = ReadFile(path);
  return text ? static_cast<pid_t>(std::atoi(std::string(Trim(*text)).c_str())) : -1;
}

inline int HttpStatus(const std::string& url) {
  auto client = NewCurlHttpClient();
  HttpRequest req;
  req.url = url;
  req.timeout = std::chrono::seconds(2);
  auto r = client->Do(req);
  return r ? r->status : 0;
}

// Starts medic-server (`Bin("medic-server")` followed by `args`, which must not name --listen) on
// 127.0.0.1 port 0 into `server`, its standard error appended to `stderr_path`; returns
// "http://127.0.0.1:PORT" from its "serving on" line once /healthz answers 200 and
// DATA_DIR/admin.token is written, or "" when it died or `timeout` passed (the process is then
// killed). No port is picked and released for it.
inline std::string StartServerOnPortZero(std::unique_ptr<Subprocess>& server,
                                         std::vector<std::string> args,
                                         const std::string& data_dir,
                                         const std::string& stderr_path,
                                         std::chrono::milliseconds timeout) {
  std::vector<std::string> argv = {Bin("medic-server")};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back("--listen");
  argv.push_back("127.0.0.1:0");
  struct stat st {};
  const size_t from = ::stat(stderr_path.c_str(), &st) == 0 ? static_cast<size_t>(st.st_size) : 0;
  server = std::make_unique<Subprocess>(argv, stderr_path);
  const int port = WaitForReportedPort(server->pid(), stderr_path, kServerServingOn, timeout, from);
  const std::string url = port > 0 ? "http://127.0.0.1:" + std::to_string(port) : "";
  if (!url.empty() && Eventually(timeout, [&] {
        return !ProcessAlive(server->pid()) ||
               (HttpStatus(url + "/healthz") == 200 &&
                !Trim(ReadFile(data_dir + "/admin.token").value_or("")).empty());
      }) && ProcessAlive(server->pid())) {
    return url;
  }
  server.reset();
  return "";
}

// HttpStatus(url) from inside the network namespace /run/netns/NS (a helper thread enters it;
// this thread stays where it is); 0 when the namespace is gone or nothing answers.
inline int HttpStatusIn(const std::string& ns, const std::string& url) {
  if (ns.empty()) {
    return HttpStatus(url);
  }
  int status = 0;
  std::thread t([&] {
    const int fd = open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      return;
    }
    const bool entered = setns(fd, CLONE_NEWNET) == 0;
    close(fd);
    if (entered) {
      status = HttpStatus(url);
    }
  });
  t.join();
  return status;
}

// The inode of a network namespace (/proc/PID/ns/net, /run/netns/NAME); 0 when unreadable.
inline ino_t NetnsInode(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

// The network namespaces (names under /run/netns) a `medic demo` with this pid created.
inline std::vector<std::string> DemoNamespaces(pid_t demo_pid) {
  std::vector<std::string> out;
  const std::string hub = "medic-demo-" + std::to_string(demo_pid);
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/run/netns", ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name == hub || name.rfind(hub + "-", 0) == 0) {
      out.push_back(name);
    }
  }
  return out;
}

// The pids whose network namespace is /run/netns/NS.
inline std::vector<pid_t> PidsInNamespace(const std::string& ns) {
  std::vector<pid_t> out;
  const ino_t ino = NetnsInode("/run/netns/" + ns);
  if (ino == 0) {
    return out;
  }
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc", ec), end; !ec && it != end;
       it.increment(ec)) {
    const pid_t pid = std::atoi(it->path().filename().c_str());
    if (pid > 1 && NetnsInode(it->path().string() + "/ns/net") == ino) {
      out.push_back(pid);
    }
  }
  return out;
}

// SIGKILLs what runs in namespace NS (all of it the demo's: nothing else enters it) and deletes
// it with `ip netns del`.
inline void RemoveNamespace(const std::string& ns) {
  Eventually(
      std::chrono::seconds(5),
      [&] {
        const std::vector<pid_t> pids = PidsInNamespace(ns);
        for (pid_t p : pids) {
          kill(p, SIGKILL);
        }
        return pids.empty();
      },
      std::chrono::milliseconds(20));
  const pid_t pid = fork();
  if (pid == 0) {
    execl("/usr/sbin/ip", "ip", "netns", "del", ns.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  if (pid > 0) {
    waitpid(pid, &status, 0);
  }
}

// Lowercase hex SHA-256 of a file, read in chunks; "" if unreadable.
inline std::string Sha256OfFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return "";
  }
  Sha256 h;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    h.Update(std::string_view(buf.data(), static_cast<size_t>(in.gcount())));
  }
  return h.HexDigest();
}

// Used percentage of the file system holding `path`, as df computes it; -1 on error.
inline double UsedPercent(const std::string& path) {
  struct statvfs st {};
  if (statvfs(path.c_str(), &st) != 0 || st.f_blocks == 0) {
    return -1;
  }
  const double used = static_cast<double>(st.f_blocks - st.f_bfree);
  const double avail = static_cast<double>(st.f_bavail);
  return 100.0 * used / (used + avail);
}

// Mount points at or below `prefix` in /proc/self/mounts.
inline std::vector<std::string> MountsUnder(const std::string& prefix) {
  std::vector<std::string> out;
  for (const std::string& line : SplitLines(ReadFile("/proc/self/mounts").value_or(""))) {
    std::istringstream in(line);
    std::string device;
    std::string point;
    if (in >> device >> point && (point == prefix || point.rfind(prefix + "/", 0) == 0)) {
      out.push_back(point);
    }
  }
  return out;
}

// The directory of this process's memory cgroup (cgroup v1), "" when there is none.
inline std::string OwnMemoryCgroupDir() {
  for (const std::string& line : SplitLines(ReadFile("/proc/self/cgroup").value_or(""))) {
    const size_t a = line.find(':');
    const size_t b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b != std::string::npos && line.substr(a + 1, b - a - 1) == "memory") {
      std::string path = line.substr(b + 1);
      if (path == "/") {
        path.clear();
      }
      return "/sys/fs/cgroup/memory" + path;
    }
  }
  return "";
}

// The memory cgroups a `medic demo` with this pid created (medic-demo-PID-HOST).
inline std::vector<std::string> DemoCgroups(pid_t demo_pid) {
  std::vector<std::string> out;
  const std::string parent = OwnMemoryCgroupDir();
  const std::string prefix = "medic-demo-" + std::to_string(demo_pid) + "-";
  std::error_code ec;
  for (std::filesystem::directory_iterator it(parent, ec), end; !ec && it != end;
       it.increment(ec)) {
    if (it->path().filename().string().rfind(prefix, 0) == 0) {
      out.push_back(it->path().string());
    }
  }
  return out;
}

inline std::vector<pid_t> CgroupPids(const std::string& dir) {
  std::vector<pid_t> out;
  std::istringstream in(ReadFile(dir + "/cgroup.procs").value_or(""));
  pid_t pid = 0;
  while (in >> pid) {
    out.push_back(pid);
  }
  return out;
}

// Kills every process in `dir` and its child cgroups (SIGKILL, by pid) and removes them.
inline void RemoveCgroupTree(const std::string& dir) {
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_directory(ec)) {
      RemoveCgroupTree(it->path().string());
    }
  }
  Eventually(
      std::chrono::seconds(5),
      [&] {
        for (pid_t p : CgroupPids(dir)) {
          kill(p, SIGKILL);
        }
        return rmdir(dir.c_str()) == 0 || errno == ENOENT;
      },
      std::chrono::milliseconds(20));
}

// The timeline's event names, in order.
inline std::vector<std::string> TimelineEvents(const Json& incident) {
  std::vector<std::string> out;
  if (incident.contains("timeline") && incident["timeline"].is_array()) {
    for (const Json& e : incident["timeline"]) {
      out.push_back(e.value("event", ""));
    }
  }
  return out;
}

// True when `required` appears in `events` in this order (other events may come between).
inline bool InOrder(const std::vector<std::string>& events,
                    const std::vector<std::string>& required) {
  size_t next = 0;
  for (const std::string& e : events) {
    if (next < required.size() && e == required[next]) {
      ++next;
    }
  }
  return next == required.size();
}

// `medic demo ready: URL token-file PATH load-balancer LBURL`, URLs without their final '/'.
struct ReadyLine {
  std::string url;
  std::string token_file;
  std::string lb_url;
};
inline std::optional<ReadyLine> ParseReadyLine(const std::string& line) {
  std::smatch m;
  if (!std::regex_match(line, m,
                        std::regex(R"(medic demo ready: (http://\S+?)/? token-file (\S+) )"
                                   R"(load-balancer (http://\S+?)/?)"))) {
    return std::nullopt;
  }
  return ReadyLine{m[1], m[2], m[3]};
}

class DemoFixture {
 public:
  explicit DemoFixture(TempDir& dir) : dir_(dir), data_(dir.File("demo")) {}
  ~DemoFixture() {
    Stop();
    demo_.reset();  // SIGKILLs the demo's process group if it did not stop
    for (const std::string& m : MountsUnder(data_)) {
      umount2(m.c_str(), MNT_DETACH);
    }
    if (demo_pid_ > 0) {
      for (const std::string& cg : DemoCgroups(demo_pid_)) {
        RemoveCgroupTree(cg);
      }
      for (const std::string& ns : DemoNamespaces(demo_pid_)) {
        RemoveNamespace(ns);
      }
    }
  }
  DemoFixture(const DemoFixture&) = delete;
  DemoFixture& operator=(const DemoFixture&) = delete;

  // Starts `medic demo --hosts 1` (with --auto when asked) on a free port; "" once it printed
  // its ready line, else what went wrong.
  std::string Start(bool auto_approve) {
    std::vector<std::string> argv = {Bin("medic"), "demo", "--listen", "127.0.0.1:0",
                                     "--data-dir", data_,  "--hosts",  "1"};
    if (auto_approve) {
      argv.push_back("--auto");
    }
    demo_ = std::make_unique<Subprocess>(argv, stderr_path());
    demo_pid_ = demo_->pid();
    auto ready = demo_->ReadLine(std::chrono::seconds(90));
    if (!ready) {
      return "demo never became ready: " + Stderr();
    }
    std::optional<ReadyLine> parsed = ParseReadyLine(*ready);
    if (!parsed.has_value()) {
      return "unexpected ready line: " + *ready;
    }
    url_ = parsed->url;
    token_file_ = parsed->token_file;
    lb_url_ = parsed->lb_url;
    demo_json_ = ParseJson(ReadFile(data_ + "/demo.json").value_or("")).value_or(Json());
    return "";
  }

  // DATA_DIR/demo.json as the demo wrote it when it became ready (hosts, namespaces, addresses).
  const Json& demo_json() const { return demo_json_; }
  // The network namespace of a host ("" when it runs on loopback).
  std::string host_namespace(const std::string& host = "web-1") const {
    return HostField(host, "namespace");
  }
  // The HTTP status of GET PATH on a host's nginx, asked from inside its network namespace when
  // it has one; 0 when nothing answers (or the namespace is gone).
  int HostStatus(const std::string& host = "web-1", const std::string& path = "health") const {
    const std::string base = HostField(host, "nginx_url");
    if (base.empty()) {
      return 0;
    }
    return HttpStatusIn(HostField(host, "namespace"), base + path);
  }

  // SIGTERM to the demo and wait for it; its wait status, or nullopt (not running, timeout).
  std::optional<int> Stop(std::chrono::milliseconds timeout = std::chrono::seconds(40)) {
    if (demo_ == nullptr || stopped_) {
      return std::nullopt;
    }
    stopped_ = true;
    return demo_->SignalAndWait(SIGTERM, timeout);
  }

  std::vector<std::string> Cli(std::vector<std::string> args) const {
    std::vector<std::string> argv = {Bin("medic"), "--server", url_, "--token-file", token_file_};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }
  RunResult Run(std::vector<std::string> args) const { return test::Run(Cli(std::move(args))); }
  // `medic --json ARGS`, parsed; null when it failed.
  Json CliJson(std::vector<std::string> args) const {
    args.insert(args.begin(), "--json");
    RunResult r = test::Run(Cli(args));
    if (r.exit_code != 0) {
      return Json();
    }
    return ParseJson(r.out).value_or(Json());
  }

  Json Incidents() const {
    Json list = CliJson({"incidents"});
    return list.is_object() && list.contains("incidents") ? list["incidents"] : Json::array();
  }
  // Incidents of this alarm, newest first.
  std::vector<Json> IncidentsOf(const std::string& alarm) const {
    std::vector<Json> out;
    for (const Json& i : Incidents()) {
      if (i.value("alarm_name", "") == alarm) {
        out.push_back(i);
      }
    }
    return out;
  }
  Json Show(const std::string& id) const { return CliJson({"show", id}); }
  // The state (OK, ALARM, INSUFFICIENT_DATA) of an alarm on web-1, "" if unknown.
  std::string AlarmState(const std::string& alarm) const {
    Json body = CliJson({"alarms"});
    const Json list = body.is_object() && body.contains("alarms") ? body["alarms"] : body;
    if (list.is_array()) {
      for (const Json& a : list) {
        if (a.value("alarm_name", "") == alarm && a.value("host", "") == "web-1") {
          return a.value("state", "");
        }
      }
    }
    return "";
  }
  // web-1's metrics as the agent last reported them.
  Json HostMetrics() const {
    Json hosts = CliJson({"hosts"});
    if (hosts.is_object() && hosts.contains("hosts")) {
      for (const Json& h : hosts["hosts"]) {
        if (h.value("name", "") == "web-1" && h.contains("metrics")) {
          return h["metrics"];
        }
      }
    }
    return Json::object();
  }

  // Waits for an incident of `alarm` with an id not in `seen`, in one of `statuses` (any when
  // empty).
  std::optional<Json> WaitForNewIncident(const std::string& alarm,
                                         const std::vector<std::string>& seen,
                                         std::chrono::milliseconds timeout) const {
    std::optional<Json> found;
    Eventually(
        timeout,
        [&] {
          for (const Json& i : IncidentsOf(alarm)) {
            const std::string id = i.value("incident_id", "");
            if (std::find(seen.begin(), seen.end(), id) == seen.end()) {
              found = i;
              return true;
            }
          }
          return false;
        },
        std::chrono::milliseconds(300));
    return found;
  }
  // Waits until incident `id` has one of these statuses; returns it as last seen.
  Json WaitForStatus(const std::string& id, const std::vector<std::string>& statuses,
                     std::chrono::milliseconds timeout) const {
    Json last;
    Eventually(
        timeout,
        [&] {
          last = Show(id);
          const std::string s = last.is_object() ? last.value("status", "") : "";
          return std::find(statuses.begin(), statuses.end(), s) != statuses.end();
        },
        std::chrono::milliseconds(300));
    return last;
  }

  // The tails of the demo's, the server's and web-1's agent's logs, for failure messages.
  std::string Logs() const {
    return "\n--- medic demo stderr:\n" + Stderr() + "\n--- server.log:\n" +
           ReadFileTail(data_ + "/server/server.log", 3000).value_or("") + "\n--- agent.log:\n" +
           ReadFileTail(host_dir() + "/agent.log", 3000).value_or("");
  }
  std::string Stderr() const { return ReadFileTail(stderr_path(), 3000).value_or(""); }

  const std::string& data() const { return data_; }
  std::string host_dir() const { return data_ + "/hosts/web-1"; }
  std::string log_dir() const { return host_dir() + "/log"; }
  std::string pidfile() const { return host_dir() + "/run/nginx.pid"; }
  std::string archive_dir() const { return data_ + "/server/archive/web-1"; }
  int nginx_port() const {
    auto conf = ReadFile(host_dir() + "/nginx.conf");
    std::smatch m;
    const std::string text = conf.value_or("");
    if (std::regex_search(text, m, std::regex(R"(listen\s+127\.0\.0\.1:(\d+))"))) {
      return std::stoi(m[1]);
    }
    return -1;
  }
  // Only for a host on loopback; use HostStatus(), which also reaches a host in its namespace.
  std::string health_url() const {
    return "http://127.0.0.1:" + std::to_string(nginx_port()) + "/health";
  }
  const std::string& url() const { return url_; }
  const std::string& token_file() const { return token_file_; }
  // The front load balancer, "http://127.0.0.1:41000".
  const std::string& lb_url() const { return lb_url_; }
  pid_t demo_pid() const { return demo_pid_; }

 private:
  std::string stderr_path() const { return dir_.File("demo.stderr"); }
  std::string HostField(const std::string& host, const std::string& key) const {
    if (demo_json_.is_object() && demo_json_.contains("hosts") && demo_json_["hosts"].is_array()) {
      for (const Json& h : demo_json_["hosts"]) {
        if (h.value("name", "") == host) {
          return h.value(key, "");
        }
      }
    }
    return "";
  }

  TempDir& dir_;
  std::string data_;
  std::unique_ptr<Subprocess> demo_;
  pid_t demo_pid_ = -1;
  bool stopped_ = false;
  std::string url_;
  std::string token_file_;
  Json demo_json_;
  std::string lb_url_;
};

}  // namespace medic::test
