// Issue 17 end to end, with the real medic-server, medic-agent and medic CLI on loopback:
//  - a stage gate: Disk-Critical-ASG's runbook gates its diagnostics (`diagnose: approval`) but
//    not its fix (`fix: automatic`, although the server is in approval mode): the incident waits
//    with nothing run on the host until `medic approve ID --step diagnose`, then diagnoses and
//    fixes on its own;
//  - what changed: the agent reads a sandboxed root the test made (var/log/dpkg.log with a
//    package installed 12 minutes ago, etc/nginx/nginx.conf edited 5 minutes ago, an older file
//    that must not be listed), and the incident's diagnostics list both changes.
// The disk is a 4 MiB tmpfs the test mounts (and unmounts, also on failure).

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "agent/host_changes.h"
#include "core/files.h"
#include "core/json.h"
#include "core/sha256.h"
#include "tests/agent/chaos_sandbox.h"
#include "tests/fakes/subprocess.h"
#include "tests/integration/demo_fixture.h"
#include "tests/fakes/temp_dir.h"
#include "transport/http_client.h"

namespace medic {
namespace {

using namespace std::chrono_literals;

// Bin and Eventually: tests/integration/demo_fixture.h.
using test::Bin;
using test::Eventually;

void WriteAt(const std::string& path, const std::string& text, WallTime mtime) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  ASSERT_TRUE(WriteFileAtomic(path, text).has_value()) << path;
  const time_t secs = std::chrono::system_clock::to_time_t(mtime);
  const timespec times[2] = {{secs, 0}, {secs, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0) << path;
}

class WhatChangedTest : public ::testing::Test {
 protected:
  Result<HttpResponse> Call(const std::string& method, const std::string& path) {
    HttpRequest req;
    req.method = method;
    req.url = url_ + path;
    req.timeout = Millis(5'000);
    req.headers.emplace_back("Authorization", "Bearer " + admin_);
    return client_->Do(req);
  }
  Json Get(const std::string& path) {
    auto r = Call("GET", path);
    if (!r || r->status != 200) {
      return Json();
    }
    return ParseJson(r->body).value_or(Json());
  }
  test::RunResult Cli(std::vector<std::string> args) {
    std::vector<std::string> argv = {Bin("medic"), "--server", url_, "--token-file",
                                     dir_.File("data/admin.token")};
    argv.insert(argv.end(), args.begin(), args.end());
    return test::Run(argv);
  }
  std::string Logs() {
    return "server:\n" + ReadFileTail(dir_.File("server.log"), 3000).value_or("") +
           "\nagent:\n" + ReadFileTail(dir_.File("agent.log"), 3000).value_or("");
  }

  test::TempDir dir_;
  std::unique_ptr<HttpClient> client_;
  std::string url_;
  std::string admin_;
};

TEST_F(WhatChangedTest, GatedDiagnoseThenAutomaticFixAndTheHostsRecentChanges) {
  InitHttpClientLibrary();
  setenv("MEDIC_AI_PROVIDER", "none", 1);
  chaos_testing::TmpfsDir fs("4m");
  ASSERT_TRUE(fs.ok()) << fs.error();
  client_ = NewCurlHttpClient();

  // The sandboxed root the agent reads its changes from.
  const WallTime now = std::chrono::system_clock::now();
  const std::string root = dir_.File("root");
  WriteAt(root + "/var/log/dpkg.log",
          agent::FormatDpkgTime(now - 3h) + " install ancient-pkg:amd64 <none> 0.1\n" +
              agent::FormatDpkgTime(now - 12min) + " install nginx-extras:amd64 <none> 1.22.1-9\n" +
              "garbage that is not a dpkg line\n",
          now - 12min);
  const std::string conf = "worker_processes 64;\n";
  WriteAt(root + "/etc/nginx/nginx.conf", conf, now - 5min);
  WriteAt(root + "/etc/hostname", "web-1\n", now - 3h);

  // The server decides where web-1 keeps its logs (the tmpfs): its fix may touch only that.
  ASSERT_TRUE(WriteFileAtomic(dir_.File("server.yaml"),
                              "runbooks:\n"
                              "  Disk-Critical-ASG:\n"
                              "    gates: {diagnose: approval, fix: automatic}\n"
                              "hosts:\n"
                              "  web-1: {log_dir: " + fs.mount() + "}\n")
                  .has_value());
  std::unique_ptr<test::Subprocess> server;
  url_ = test::StartServerOnPortZero(
      server, {"--config", dir_.File("server.yaml"), "--data-dir", dir_.File("data")},
      dir_.File("data"), dir_.File("server.log"), 15s);
  ASSERT_FALSE(url_.empty()) << Logs();
  ASSERT_TRUE(Eventually(15s, [&] {
    admin_ = std::string(Trim(ReadFile(dir_.File("data/admin.token")).value_or("")));
    auto r = admin_.empty() ? Result<HttpResponse>(Unavailable("no token"))
                            : Call("GET", "/api/v1/settings");
    return r && r->status == 200;
  })) << Logs();
  EXPECT_EQ(Get("/api/v1/settings").value("approval_mode", false), true);
  auto code = Call("POST", "/api/v1/hosts/web-1/enroll");
  ASSERT_TRUE(code && code->status == 201) << (code ? code->body : code.error().message);
  const std::string enroll_code = ParseJsonObject(code->body).value()["code"];
  ASSERT_TRUE(WriteFileAtomic(dir_.File("agent.yaml"),
                              "server: " + url_ + "\nname: web-1\nstate_dir: " +
                                  dir_.File("state") + "\nenroll_code: " + enroll_code +
                                  "\ninterval: 1s\nmounts: [" + fs.mount() +
                                  "]\ndisk_primary_mount: " + fs.mount() + "\nlog_dir: " +
                                  fs.mount() + "\nchanges:\n  root: " + root +
                                  "\npolicy:\n  actions: [disk.usage, dir.list, host.changes, "
                                  "log.archive_truncate]\n")
                  .has_value());
  test::Subprocess agent({Bin("medic-agent"), "--config", dir_.File("agent.yaml")},
                         dir_.File("agent.log"));
  auto disk_alarm = [&]() -> std::string {
    Json j = Get("/api/v1/alarms?host=web-1&alarm=Disk-Critical-ASG");
    return j.is_object() && !j["alarms"].empty() ? j["alarms"][0].value("state", "") : "";
  };
  ASSERT_TRUE(Eventually(20s, [&] { return disk_alarm() == "OK"; })) << Logs();

  // 3.6 MiB of 4 in one log file: 90 % > 85.
  {
    const int fd = ::open((fs.mount() + "/app.log").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    const std::string chunk(3686400, 'x');
    ASSERT_EQ(::write(fd, chunk.data(), chunk.size()), static_cast<ssize_t>(chunk.size()));
    ::close(fd);
  }

  // The incident waits at its diagnose gate: nothing has run on the host.
  Json inc;
  ASSERT_TRUE(Eventually(20s, [&] {
    Json list = Get("/api/v1/incidents?alarm=Disk-Critical-ASG");
    if (!list.is_object() || list["incidents"].empty()) {
      return false;
    }
    inc = list["incidents"][0];
    return inc.value("awaiting", "") == "diagnose";
  })) << inc.dump(2) << Logs();
  const std::string id = inc["incident_id"];
  EXPECT_EQ(inc["status"], "pending_approval");
  EXPECT_EQ(inc["diagnostics"], "");
  EXPECT_FALSE(inc.contains("action_hash")) << inc.dump(2);
  std::this_thread::sleep_for(300ms);  // the agent polls continuously: a command would show
  inc = Get("/api/v1/incidents/" + id);
  EXPECT_EQ(inc["status"], "pending_approval");
  EXPECT_EQ(inc["diagnostics"], "");

  // `medic show` says what it waits for, and how to approve it.
  test::RunResult waiting = Cli({"show", id});
  EXPECT_EQ(waiting.exit_code, 0);
  EXPECT_NE(waiting.out.find("approval of its diagnose step (medic approve " + id +
                             " --step diagnose)"),
            std::string::npos)
      << waiting.out;

  // `medic approve ID` (a fix) is refused; the wrong step too; nothing changes.
  EXPECT_NE(Cli({"approve", id}).exit_code, 0);
  EXPECT_NE(Cli({"approve", id, "--step", "verify"}).exit_code, 0);
  EXPECT_NE(Cli({"approve", id, "--step", "everything"}).exit_code, 0);
  EXPECT_EQ(Get("/api/v1/incidents/" + id).value("awaiting", ""), "diagnose");

  test::RunResult approved = Cli({"approve", id, "--step", "diagnose", "--comment", "go look"});
  ASSERT_EQ(approved.exit_code, 0) << approved.out;
  EXPECT_NE(approved.out.find("approved " + id), std::string::npos) << approved.out;

  // Diagnosed, then the fix runs without a human, and the incident completes.
  ASSERT_TRUE(Eventually(25s, [&] {
    inc = Get("/api/v1/incidents/" + id);
    const std::string st = inc.value("status", "");
    return st == "completed" || st == "failed" || st == "timeout" || st == "rejected";
  })) << inc.dump(2) << Logs();
  std::vector<std::string> events;
  for (const auto& e : inc["timeline"]) {
    events.push_back(e["event"]);
  }
  auto has = [&](const std::string& e) {
    return std::find(events.begin(), events.end(), e) != events.end();
  };
  EXPECT_TRUE(has("awaiting_diagnostics_approval")) << inc.dump(2);
  EXPECT_TRUE(has("diagnostics_approved")) << inc.dump(2);
  EXPECT_TRUE(has("auto_approved")) << inc.dump(2);
  EXPECT_FALSE(has("awaiting_approval")) << inc.dump(2);
  EXPECT_EQ(inc["ai_suggestion"], "log.archive_truncate path=" + fs.mount() + "/app.log");
  EXPECT_EQ(inc["status"], "completed") << inc.dump(2) << Logs();

  // What changed, in the diagnostics: the package and the config file, and nothing older.
  const std::string diag = inc["diagnostics"];
  EXPECT_NE(diag.find("$ host.changes window="), std::string::npos) << diag;
  EXPECT_NE(diag.find("install nginx-extras:amd64 1.22.1-9"), std::string::npos) << diag;
  EXPECT_NE(diag.find("/etc/nginx/nginx.conf (" + std::to_string(conf.size()) + " B, sha256 " +
                      Sha256Hex(conf) + ")"),
            std::string::npos)
      << diag;
  EXPECT_NE(diag.find("(1 line(s) not understood, skipped)"), std::string::npos) << diag;
  EXPECT_EQ(diag.find("ancient-pkg"), std::string::npos) << diag;
  EXPECT_EQ(diag.find("/etc/hostname"), std::string::npos) << diag;
  EXPECT_NE(diag.find("$ medic's actions on web-1"), std::string::npos) << diag;

  // `medic show` prints them too.
  test::RunResult show = Cli({"show", id});
  EXPECT_EQ(show.exit_code, 0);
  EXPECT_NE(show.out.find("install nginx-extras:amd64 1.22.1-9"), std::string::npos) << show.out;

  agent.SignalAndWait(SIGTERM, 10s);
  server->SignalAndWait(SIGTERM, 10s);
}

}  // namespace
}  // namespace medic
