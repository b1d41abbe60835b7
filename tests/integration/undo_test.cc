// Issue 17, fix options and undo, end to end: the real medic-server, the real medic-agent and the
// real `medic` CLI on loopback; the agent's log directory a 4 MiB tmpfs the test mounts, and a
// real service the test owns under the agent's supervision ("holder": a shell that fills the
// tmpfs with a file it keeps open after unlinking it, so only stopping it frees the space).
//   - an incident offering three options, option 2 approved: the agent runs option 2, not 1;
//   - `medic undo` of that stop starts the service again;
//   - `medic undo` of log.archive_truncate restores the log byte for byte (sha256);
//   - bad input: option 0 / past the end / "x" -> 400; undo of an unfinished or an already
//     undone incident -> 409.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

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

bool Alive(pid_t pid) { return pid > 1 && ::kill(pid, 0) == 0; }

class UndoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    InitHttpClientLibrary();
    setenv("MEDIC_AI_PROVIDER", "none", 1);
    ASSERT_TRUE(fs_.ok()) << fs_.error();
    client_ = NewCurlHttpClient();
  }
  void TearDown() override {
    if (agent_) {
      agent_->SignalAndWait(SIGTERM, 10s);
    }
    if (server_) {
      server_->SignalAndWait(SIGTERM, 10s);
    }
    // The test's own service, should the agent have left it running: by the pid it wrote.
    const pid_t holder = static_cast<pid_t>(
        std::atoi(ReadFile(fs_.mount() + "/holder.pid").value_or("0").c_str()));
    if (Alive(holder)) {
      ::kill(holder, SIGKILL);
    }
  }

  // Starts the server (approval mode, the host's log directory the tmpfs, `runbooks` added to
  // its config) and an agent enrolled as web-1 that supervises `services` (YAML under
  // services:, "" for none) and allows the disk actions and their undo.
  void Start(const std::string& runbooks, const std::string& services) {
    const std::string mount = fs_.mount();
    ASSERT_TRUE(WriteFileAtomic(dir_.File("server.yaml"),
                                "hosts:\n  web-1: {log_dir: " + mount + "}\n" + runbooks)
                    .has_value());
    url_ = test::StartServerOnPortZero(
        server_, {"--config", dir_.File("server.yaml"), "--data-dir", dir_.File("data")},
        dir_.File("data"), dir_.File("server.log"), 15s);
    ASSERT_FALSE(url_.empty()) << Logs();
    ASSERT_TRUE(Eventually(15s, [&] {
      admin_ = std::string(Trim(ReadFile(dir_.File("data/admin.token")).value_or("")));
      auto r = admin_.empty() ? Result<HttpResponse>(Unavailable("no token"))
                              : Call("GET", "/api/v1/settings");
      return r && r->status == 200;
    })) << Logs();
    auto code = Call("POST", "/api/v1/hosts/web-1/enroll");
    ASSERT_TRUE(code && code->status == 201) << (code ? code->body : code.error().message);
    const std::string enroll = ParseJsonObject(code->body).value()["code"];
    ASSERT_TRUE(
        WriteFileAtomic(
            dir_.File("agent.yaml"),
            "server: " + url_ + "\nname: web-1\nstate_dir: " + dir_.File("state") +
                "\nenroll_code: " + enroll + "\ninterval: 2s\nmounts: [" + mount +
                "]\ndisk_primary_mount: " + mount + "\nlog_dir: " + mount + "\n" + services +
                "policy:\n  actions: [service.status, service.logs, log.tail, disk.usage, "
                "memory.usage, process.top, dir.list, service.start, service.stop, "
                "service.restart, log.archive_truncate, log.restore]\n")
            .has_value());
    agent_ = std::make_unique<test::Subprocess>(
        std::vector<std::string>{Bin("medic-agent"), "--config", dir_.File("agent.yaml")},
        dir_.File("agent.log"));
  }

  Result<HttpResponse> Call(const std::string& method, const std::string& path,
                            const std::string& body = "") {
    HttpRequest req;
    req.method = method;
    req.url = url_ + path;
    req.timeout = Millis(10'000);
    req.headers.emplace_back("Authorization", "Bearer " + admin_);
    if (!body.empty()) {
      req.headers.emplace_back("Content-Type", "application/json");
      req.body = body;
    }
    return client_->Do(req);
  }
  Json Get(const std::string& path) {
    auto r = Call("GET", path);
    return r && r->status == 200 ? ParseJson(r->body).value_or(Json()) : Json();
  }
  // `medic ARGS` against the server; its exit status and standard output.
  test::RunResult Cli(std::vector<std::string> args) {
    std::vector<std::string> argv = {Bin("medic"), "--server", url_, "--token-file",
                                     dir_.File("data/admin.token")};
    argv.insert(argv.end(), args.begin(), args.end());
    return test::Run(argv);
  }
  // The pending_approval incident of Disk-Critical-ASG on web-1, once it is there.
  Json WaitPending() {
    Json inc;
    Eventually(30s, [&] {
      Json list = Get("/api/v1/incidents?status=pending_approval&alarm=Disk-Critical-ASG");
      if (!list.is_object() || list["incidents"].empty()) {
        return false;
      }
      inc = list["incidents"][0];
      return true;
    });
    return inc;
  }
  Json WaitStatus(const std::string& id, const std::string& status) {
    Json inc;
    Eventually(30s, [&] {
      inc = Get("/api/v1/incidents/" + id);
      return inc.is_object() && inc.value("status", "") == status;
    });
    return inc;
  }
  bool HasEvent(const Json& inc, const std::string& event) {
    for (const auto& e : inc.value("timeline", Json::array())) {
      if (e.value("event", "") == event) {
        return true;
      }
    }
    return false;
  }
  Json WaitEvent(const std::string& id, const std::string& event) {
    Json inc;
    Eventually(30s, [&] {
      inc = Get("/api/v1/incidents/" + id);
      return HasEvent(inc, event) || HasEvent(inc, "undo_failed");
    });
    return inc;
  }
  // The status and error text of POST PATH with BODY.
  std::pair<int, std::string> Post(const std::string& path, const std::string& body) {
    auto r = Call("POST", path, body);
    if (!r) {
      return {0, r.error().message};
    }
    auto j = ParseJson(r->body);
    return {r->status, j && j->is_object() ? j->value("error", r->body) : r->body};
  }
  std::string Logs() {
    return "server:\n" + ReadFileTail(dir_.File("server.log"), 4000).value_or("") +
           "\nagent:\n" + ReadFileTail(dir_.File("agent.log"), 4000).value_or("");
  }

  test::TempDir dir_;
  chaos_testing::TmpfsDir fs_{"4m"};
  std::unique_ptr<HttpClient> client_;
  std::unique_ptr<test::Subprocess> server_;
  std::unique_ptr<test::Subprocess> agent_;
  std::string url_;
  std::string admin_;
};

TEST_F(UndoTest, ApprovingOptionTwoRunsItAndUndoStartsTheStoppedServiceAgain) {
  const std::string mount = fs_.mount();
  // The service fills the disk once (a marker file remembers it), keeps the filler open after
  // unlinking it, and writes its pid; a restart or a start after that only sleeps.
  const std::string holder =
      "services:\n  holder:\n    start: [/bin/sh, -c, \"echo $$ > " + mount +
      "/holder.pid; if [ ! -e " + mount + "/.filled ]; then touch " + mount +
      "/.filled; head -c 3686400 /dev/zero > " + mount + "/held; exec 3<" + mount +
      "/held; rm " + mount + "/held; fi; exec sleep 100000\"]\n";
  ASSERT_NO_FATAL_FAILURE(Start(
      "runbooks:\n  Disk-Critical-ASG:\n"
      "    fix: {action: service.restart, params: {service: holder}}\n"
      "    alternatives:\n"
      "      - {action: service.stop, params: {service: holder}}\n"
      "      - {action: service.start, params: {service: holder}}\n",
      holder));
  pid_t first = -1;
  ASSERT_TRUE(Eventually(20s, [&] {
    first = static_cast<pid_t>(std::atoi(ReadFile(mount + "/holder.pid").value_or("0").c_str()));
    return Alive(first);
  })) << Logs();

  const Json pending = WaitPending();
  ASSERT_TRUE(pending.is_object()) << Logs();
  const std::string id = pending["incident_id"];
  const std::string hash = pending["action_hash"];
  const Json options = pending["options"];
  ASSERT_EQ(options.size(), 3u) << pending.dump(2);
  EXPECT_EQ(options[0]["line"], "service.restart service=holder");
  EXPECT_EQ(options[1]["line"], "service.stop service=holder");
  EXPECT_EQ(options[2]["line"], "service.start service=holder");
  EXPECT_EQ(options[1]["undo"], "start it again: service.start service=holder");

  // Bad input first: nothing runs.
  const std::string approve = "/api/v1/incidents/" + id + "/approve";
  for (const std::string& bad : {std::string("0"), std::string("\"x\""), std::string("2.5")}) {
    auto [status, error] =
        Post(approve, "{\"action_hash\":\"" + hash + "\",\"option\":" + bad + "}");
    EXPECT_EQ(status, 400) << bad << ": " << error;
    EXPECT_NE(error.find("option must be a whole number"), std::string::npos) << error;
  }
  auto [past_status, past_error] =
      Post(approve, "{\"action_hash\":\"" + hash + "\",\"option\":4}");
  EXPECT_EQ(past_status, 400) << past_error;
  EXPECT_NE(past_error.find("offers options 1 to 3"), std::string::npos) << past_error;
  auto [early_status, early_error] = Post("/api/v1/incidents/" + id + "/undo", "");
  EXPECT_EQ(early_status, 409) << early_error;
  EXPECT_NE(early_error.find("pending_approval"), std::string::npos) << early_error;
  EXPECT_EQ(Get("/api/v1/incidents/" + id).value("status", ""), "pending_approval");
  EXPECT_TRUE(Alive(first));

  // Option 2 through the CLI.
  test::RunResult approved = Cli({"approve", id, "--option", "2", "--comment", "stop it"});
  ASSERT_EQ(approved.exit_code, 0) << approved.out;
  EXPECT_NE(approved.out.find("option 2: service.stop service=holder"), std::string::npos)
      << approved.out;
  const Json done = WaitStatus(id, "completed");
  ASSERT_EQ(done.value("status", ""), "completed") << done.dump(2) << Logs();
  // What the agent ran: the command medic sent it, and what it answered.
  const Json command = Get("/api/v1/commands/" + done["action"].value("command_id", ""));
  EXPECT_EQ(command.value("command", ""), "service.stop service=holder") << command.dump(2);
  EXPECT_EQ(command.value("state", ""), "succeeded") << command.dump(2);
  EXPECT_EQ(done["remediation_output"].get<std::string>().rfind("$ service.stop service=holder", 0),
            0u)
      << done["remediation_output"];
  EXPECT_EQ(done["action"].value("option", 0), 2);
  // Stopped, not restarted: the process is gone and no other took its place.
  EXPECT_TRUE(Eventually(5s, [&] { return !Alive(first); }));
  EXPECT_EQ(std::atoi(ReadFile(mount + "/holder.pid").value_or("0").c_str()), first);
  EXPECT_LT(chaos_testing::UsedPercent(mount), 85);

  // The undo starts it again, as a new step of the same incident.
  test::RunResult undo = Cli({"undo", id});
  ASSERT_EQ(undo.exit_code, 0) << undo.out;
  EXPECT_NE(undo.out.find("service.start service=holder"), std::string::npos) << undo.out;
  const Json undone = WaitEvent(id, "undone");
  ASSERT_TRUE(HasEvent(undone, "undone")) << undone.dump(2) << Logs();
  EXPECT_TRUE(HasEvent(undone, "undo_requested"));
  EXPECT_EQ(undone.value("status", ""), "completed");
  pid_t second = -1;
  EXPECT_TRUE(Eventually(10s, [&] {
    second =
        static_cast<pid_t>(std::atoi(ReadFile(mount + "/holder.pid").value_or("0").c_str()));
    return second != first && Alive(second);
  })) << Logs();

  auto [again_status, again_error] = Post("/api/v1/incidents/" + id + "/undo", "{}");
  EXPECT_EQ(again_status, 409) << again_error;
  EXPECT_NE(again_error.find("already undone"), std::string::npos) << again_error;
}

TEST_F(UndoTest, UndoRestoresTheArchivedLogByteForByte) {
  const std::string mount = fs_.mount();
  ASSERT_NO_FATAL_FAILURE(Start("", ""));
  // Registered: the alarm has a state (OK on the empty tmpfs).
  ASSERT_TRUE(Eventually(20s, [&] {
    Json a = Get("/api/v1/alarms?host=web-1&alarm=Disk-Critical-ASG");
    return a.is_object() && !a["alarms"].empty() && a["alarms"][0].value("state", "") == "OK";
  })) << Logs();
  // 3.6 MiB of log lines, each different: 90 % of the disk.
  std::string log;
  for (int i = 0; log.size() < 3'600'000; ++i) {
    log += "2026-12-07T19:00:00Z GET /item/" + std::to_string(i * 7919 % 100003) + " 200\n";
  }
  const std::string path = mount + "/app.log";
  ASSERT_TRUE(WriteFileAtomic(path, log).has_value());
  const std::string want = Sha256Hex(log);

  const Json pending = WaitPending();
  ASSERT_TRUE(pending.is_object()) << Logs();
  const std::string id = pending["incident_id"];
  ASSERT_GE(pending["options"].size(), 1u);
  EXPECT_EQ(pending["options"][0]["line"], "log.archive_truncate path=" + path);
  test::RunResult approved = Cli({"approve", id});
  ASSERT_EQ(approved.exit_code, 0) << approved.out;
  const Json done = WaitStatus(id, "completed");
  ASSERT_EQ(done.value("status", ""), "completed") << done.dump(2) << Logs();
  ASSERT_EQ(ReadFile(path).value_or("x"), "");

  test::RunResult undo = Cli({"undo", id});
  ASSERT_EQ(undo.exit_code, 0) << undo.out;
  const Json undone = WaitEvent(id, "undone");
  ASSERT_TRUE(HasEvent(undone, "undone")) << undone.dump(2) << Logs();
  const std::string restored = ReadFile(path).value_or("");
  EXPECT_EQ(restored.size(), log.size());
  EXPECT_EQ(Sha256Hex(restored), want);
  EXPECT_NE(undone["remediation_output"].get<std::string>().find("restored " + path), std::string::npos)
      << undone["remediation_output"];

  auto [again_status, again_error] = Post("/api/v1/incidents/" + id + "/undo", "");
  EXPECT_EQ(again_status, 409) << again_error;
}

}  // namespace
}  // namespace medic
