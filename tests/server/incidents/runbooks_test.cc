// Runbooks: host log directories, the largest-file fix, the `runbooks:`/`breaker:` config, and
// how the incident manager uses them (disk fix aimed at the largest log file, an alarm with no
// fix, breaker limits).

#include "ai/runbooks.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "core/files.h"
#include "server/incidents/incident_manager.h"
#include "tests/fakes/incident_fakes.h"
#include "tests/fakes/subprocess.h"
#include "tests/fakes/temp_dir.h"

namespace medic::server {
namespace {

const ai::Runbook& Find(const std::vector<ai::Runbook>& all, const std::string& alarm) {
  for (const auto& r : all) {
    if (r.alarm == alarm) {
      return r;
    }
  }
  ADD_FAILURE() << "no runbook " << alarm;
  static ai::Runbook none;
  return none;
}

TEST(RunbooksTest, DefaultsCoverTheFourDefaultAlarms) {
  const auto all = ai::DefaultRunbooks();
  EXPECT_EQ(Find(all, "Nginx-Down-ALB").fix.name, "service.restart");
  EXPECT_EQ(Find(all, "Disk-Critical-ASG").fix_target, ai::FixTarget::kLargestLogFile);
  EXPECT_EQ(Find(all, "Disk-Critical-ASG").largest_file_fix.name, "log.archive_truncate");
  EXPECT_EQ(Find(all, "Memory-Exhaustion-ASG").fix.name, "process.kill");
  EXPECT_FALSE(Find(all, "Host-Unreachable").has_fix);
}

TEST(RunbooksTest, ForHostMovesLogPathsToTheHostsLogDir) {
  const ai::Runbook disk = Find(ai::DefaultRunbooks(), "Disk-Critical-ASG");
  const ai::Runbook moved = ai::ForHost(disk, "/srv/demo/hosts/web-1/log/");
  EXPECT_EQ(moved.diagnostics[1].params["path"], "/srv/demo/hosts/web-1/log");
  EXPECT_EQ(moved.fix.params["path"], "/srv/demo/hosts/web-1/log");
  EXPECT_EQ(moved.largest_file_fix.params["path"], "/srv/demo/hosts/web-1/log/syslog");
  // Unknown, default or relative directories change nothing.
  EXPECT_EQ(ai::ForHost(disk, "").diagnostics[1].params["path"], "/var/log");
  EXPECT_EQ(ai::ForHost(disk, "/var/log").diagnostics[1].params["path"], "/var/log");
  EXPECT_EQ(ai::ForHost(disk, "relative").diagnostics[1].params["path"], "/var/log");
  // A directory that no action may name keeps the runbook as written.
  EXPECT_EQ(ai::ForHost(disk, "/srv/a;b").diagnostics[1].params["path"], "/var/log");
  // /var/logs is not under /var/log.
  ai::Runbook other = disk;
  other.diagnostics[1].params["path"] = "/var/logs";
  EXPECT_EQ(ai::ForHost(other, "/x").diagnostics[1].params["path"], "/var/logs");
}

TEST(RunbooksTest, LargestFileInCapturedListing) {
  const std::string listing =
      "total 30748\n"
      "drwxr-xr-x 2 root root      120 Nov 30 00:10 .\n"
      "drwxr-xr-x 6 root root     4096 Nov 30 00:09 ..\n"
      "lrwxrwxrwx 1 root root       11 Nov 30 00:10 link -> /etc/passwd\n"
      "-rw-r--r-- 1 root root 31457280 Nov 30 00:10 medic-chaos-fill.log\n"
      "-rw-r--r-- 1 root root     1234 Nov 30 00:09 error.log\n";
  EXPECT_EQ(ai::LargestFileInListing(listing), "medic-chaos-fill.log");
  EXPECT_EQ(ai::LargestFileInListing("total 0\ndrwxr-xr-x 2 root root 40 Nov 30 00:10 .\n"),
            std::nullopt);
  EXPECT_EQ(ai::LargestFileInListing(""), std::nullopt);
  EXPECT_EQ(ai::LargestFileInListing("-rw-r--r-- 1 root\n"), std::nullopt);
  EXPECT_EQ(ai::LargestFileInListing("-rw-r--r-- 1 root root 9 Jan  1  2025 old file.log\n"),
            "old file.log");
}

TEST(RunbooksTest, LargestFileInRealLsOutput) {
  test::TempDir dir;
  ASSERT_TRUE(WriteFileAtomic(dir.File("small.log"), std::string(10, 'x'), 0644).has_value());
  ASSERT_TRUE(WriteFileAtomic(dir.File("big one.log"), std::string(5000, 'x'), 0644).has_value());
  ASSERT_TRUE(MakeDirs(dir.File("subdir"), 0755).has_value());
  const test::RunResult ls = test::Run({"/bin/ls", "-la", "-S", "--", dir.path()});
  ASSERT_EQ(ls.exit_code, 0);
  EXPECT_EQ(ai::LargestFileInListing(ls.out), "big one.log") << ls.out;
}

TEST(RunbooksTest, ResolveFixAimsAtTheLargestFileOrFallsBack) {
  const ai::Runbook disk = ai::ForHost(Find(ai::DefaultRunbooks(), "Disk-Critical-ASG"), "/data/log");
  std::string note;
  protocol::Action fix = ai::ResolveFix(
      disk, "/data/log", "-rw-r--r-- 1 root root 999 Nov 30 00:10 access.log\n", &note);
  EXPECT_EQ(fix.name, "log.archive_truncate");
  EXPECT_EQ(fix.params["path"], "/data/log/access.log");
  EXPECT_NE(note.find("access.log"), std::string::npos);

  fix = ai::ResolveFix(disk, "/data/log", "total 0\n", &note);
  EXPECT_EQ(fix.name, "disk.cleanup");
  EXPECT_NE(note.find("falling back"), std::string::npos);

  // A hostile host names its largest file so that it would smuggle shell syntax.
  fix = ai::ResolveFix(disk, "/data/log", "-rw-r--r-- 1 r r 9 Nov 30 00:10 x;reboot\n", &note);
  EXPECT_EQ(fix.name, "disk.cleanup");
  EXPECT_NE(note.find("cannot be named"), std::string::npos);
  fix = ai::ResolveFix(disk, "/data/log", "-rw-r--r-- 1 r r 9 Nov 30 00:10 ..\n", &note);
  EXPECT_EQ(fix.name, "disk.cleanup");
}

Status ParseRunbooks(const std::string& text, std::vector<ai::Runbook>& out) {
  return ai::ParseRunbooksYaml(YAML::Load(text), "server.yaml", out);
}

TEST(RunbooksTest, YamlOverridesAndAddsRunbooks) {
  std::vector<ai::Runbook> all = ai::DefaultRunbooks();
  ASSERT_TRUE(ParseRunbooks(R"(
Memory-Exhaustion-ASG:
  approval_required: false
  fix: {action: process.kill, params: {pattern: java, signal: KILL}}
  verification_window: 90s
Nginx-Down-ALB:
  approval_required: true
Queue-Backlog:
  diagnostics:
    - {action: service.status, params: {service: worker}}
  fix: {action: service.restart, params: {service: worker}}
  reasoning: the worker is stuck
)",
                            all)
                  .has_value());
  const ai::Runbook& mem = Find(all, "Memory-Exhaustion-ASG");
  EXPECT_EQ(mem.approval_required, false);
  EXPECT_EQ(mem.fix.params["pattern"], "java");
  EXPECT_EQ(mem.fix.params["signal"], "KILL");
  EXPECT_EQ(mem.verification_window, Millis(90'000));
  EXPECT_EQ(mem.diagnostics.size(), 2u);  // untouched
  EXPECT_EQ(Find(all, "Nginx-Down-ALB").approval_required, true);
  const ai::Runbook& q = Find(all, "Queue-Backlog");
  EXPECT_TRUE(q.has_fix);
  EXPECT_EQ(q.diagnostics.size(), 1u);
  EXPECT_EQ(q.fix_reasoning, "the worker is stuck");
}

TEST(RunbooksTest, YamlAlternativesWithEveryConstraintForm) {
  std::vector<ai::Runbook> all = ai::DefaultRunbooks();
  ASSERT_TRUE(ParseRunbooks(R"(
Nginx-Down-ALB:
  alternatives:
    - action: process.kill
      params: {pattern: [nginx, php-fpm], signal: KILL}
      automatic: true
    - {action: service.restart, params: {service: [nginx]}}
    - action: disk.cleanup
      params: {path: {under: /var/log/nginx/}, older_than: {at_least: 14d}}
    - {action: log.archive_truncate, params: {path: {one_of: [/var/log/a.log]}}}
    - {action: service.start, params: {service: any}}
)",
                            all)
                  .has_value());
  const ai::Runbook& nginx = Find(all, "Nginx-Down-ALB");
  ASSERT_EQ(nginx.alternatives.size(), 5u);
  const ai::Alternative& kill = nginx.alternatives[0];
  EXPECT_EQ(kill.action, "process.kill");
  EXPECT_TRUE(kill.automatic);
  EXPECT_EQ(kill.params.at("pattern").values, (std::vector<Json>{"nginx", "php-fpm"}));
  EXPECT_EQ(kill.params.at("signal").values, (std::vector<Json>{"KILL"}));
  EXPECT_FALSE(nginx.alternatives[1].automatic);
  const ai::ParamConstraint& under = nginx.alternatives[2].params.at("path");
  EXPECT_EQ(under.kind, ai::ParamConstraint::Kind::kUnder);
  EXPECT_EQ(under.dir, "/var/log/nginx");  // the trailing slash dropped
  const ai::ParamConstraint& age = nginx.alternatives[2].params.at("older_than");
  EXPECT_EQ(age.kind, ai::ParamConstraint::Kind::kAtLeast);
  EXPECT_EQ(age.at_least, Millis(14LL * 86'400'000));
  EXPECT_EQ(nginx.alternatives[3].params.at("path").values, (std::vector<Json>{"/var/log/a.log"}));
  EXPECT_EQ(nginx.alternatives[4].params.at("service").kind, ai::ParamConstraint::Kind::kAny);
  // An empty list removes the defaults' alternatives.
  ASSERT_TRUE(ParseRunbooks("Disk-Critical-ASG:\n  alternatives: []\n", all).has_value());
  EXPECT_TRUE(Find(all, "Disk-Critical-ASG").alternatives.empty());
}

TEST(RunbooksTest, DefaultAlternativesValidateAndMoveWithTheLogDir) {
  for (const auto& rb : ai::DefaultRunbooks()) {
    for (const auto& alt : rb.alternatives) {
      EXPECT_TRUE(ai::ValidateAlternative(alt).has_value()) << rb.alarm << " " << alt.action;
    }
  }
  const std::vector<ai::Runbook> defaults = ai::DefaultRunbooks();
  const ai::Runbook disk = ai::ForHost(Find(defaults, "Disk-Critical-ASG"), "/srv/web-1/log");
  ASSERT_FALSE(disk.alternatives.empty());
  EXPECT_EQ(disk.alternatives[0].params.at("path").dir, "/srv/web-1/log");
}

TEST(RunbooksTest, YamlErrorsNameTheLineAndTheProblem) {
  struct Case {
    const char* yaml;
    const char* expect;
  } cases[] = {
      {"Nginx-Down-ALB:\n  approval_required: maybe\n", "server.yaml:2: wrong type"},
      {"Nginx-Down-ALB:\n  colour: red\n", "server.yaml:2: unknown runbook key 'colour'"},
      {"Nginx-Down-ALB:\n  fix: {action: rm, params: {}}\n", "server.yaml:2:"},
      {"Nginx-Down-ALB:\n  fix: {action: service.restart, params: {service: 'a;b'}}\n",
       "service"},
      {"Nginx-Down-ALB:\n  diagnostics:\n    - {action: service.restart, params: {service: x}}\n",
       "must be read-only"},
      {"Nginx-Down-ALB:\n  verification_window: soon\n", "positive duration"},
      {"Nginx-Down-ALB: 3\n", "must be a mapping"},
      {"- a\n", "must map alarm names"},
      {"Nginx-Down-ALB:\n  fix: {name: service.restart}\n", "unknown key 'name'"},
      // Alternatives (issue 12): each names the file, the line and the problem.
      {"Nginx-Down-ALB:\n  alternatives:\n    - {action: system.reboot}\n",
       "server.yaml:3: alternative system.reboot: unknown action 'system.reboot'"},
      {"Nginx-Down-ALB:\n  alternatives:\n    - {action: service.restart, params: {service: "
       "'a;b'}}\n",
       "server.yaml:3: alternative service.restart: service.restart: parameter 'service' is not a "
       "service name"},
      {"Nginx-Down-ALB:\n  alternatives:\n    - action: service.restart\n      colour: red\n",
       "server.yaml:4: unknown key 'colour' in an alternative"},
      {"Nginx-Down-ALB:\n  alternatives:\n    - {action: service.restart}\n",
       "server.yaml:3: alternative service.restart: service.restart needs a constraint for "
       "parameter 'service'"},
      {"Nginx-Down-ALB:\n  alternatives:\n    - {action: service.restart, params: {sevice: "
       "nginx}}\n",
       "has no parameter 'sevice' (known: service)"},
      {"Nginx-Down-ALB:\n  alternatives:\n    - {action: file.truncate, params: {path: {under: "
       "/}}}\n",
       "server.yaml:3: alternative file.truncate: file.truncate: 'under' needs a clean directory "
       "other than /"},
      {"Nginx-Down-ALB:\n  alternatives:\n    - {action: service.restart, params: {service: "
       "{under: /x}}}\n",
       "'under' applies to paths"},
      {"Nginx-Down-ALB:\n  alternatives:\n    - {action: disk.cleanup, params: {path: {under: "
       "/var/log}, older_than: {at_least: soon}}}\n",
       "server.yaml:3: at_least: 'soon' is not a duration"},
      {"Nginx-Down-ALB:\n  alternatives:\n    - {action: process.kill, params: {pid: any}}\n",
       "never 'pid'"},
      {"Nginx-Down-ALB:\n  alternatives:\n    - {action: chaos.start, params: {mode: oom}}\n",
       "chaos actions are never taken"},
      {"Nginx-Down-ALB:\n  alternatives:\n    - {action: dir.list, params: {path: /var/log}}\n",
       "read-only diagnostic"},
      {"Nginx-Down-ALB:\n  alternatives:\n    - {action: shell, params: {command: any}, "
       "automatic: true}\n",
       "cannot be automatic"},
      {"Nginx-Down-ALB:\n  alternatives:\n    - {action: service.start, params: {service: "
       "nginx}, automatic: often}\n",
       "server.yaml:3: automatic must be true or false"},
      {"Nginx-Down-ALB:\n  alternatives: {action: service.start}\n",
       "server.yaml:2: alternatives must be a list"},
      {"Nginx-Down-ALB:\n  alternatives:\n    - {action: service.start, params: {service: "
       "{maybe: nginx}}}\n",
       "a parameter constraint is a value, a list of values"},
  };
  for (const auto& c : cases) {
    std::vector<ai::Runbook> all = ai::DefaultRunbooks();
    Status s = ParseRunbooks(c.yaml, all);
    ASSERT_FALSE(s.has_value()) << c.yaml;
    EXPECT_NE(s.error().message.find(c.expect), std::string::npos)
        << c.yaml << " -> " << s.error().message;
  }
}

TEST(RunbooksTest, BreakerYaml) {
  ai::BreakerConfig b;
  ASSERT_TRUE(ai::ParseBreakerYaml(YAML::Load("{max_fixes: 5, window: 30m}"), "f", b).has_value());
  EXPECT_EQ(b.max_fixes, 5);
  EXPECT_EQ(b.window, Millis(1'800'000));
  EXPECT_FALSE(ai::ParseBreakerYaml(YAML::Load("{max_fixes: -1}"), "f", b).has_value());
  EXPECT_FALSE(ai::ParseBreakerYaml(YAML::Load("{window: 0s}"), "f", b).has_value());
  EXPECT_FALSE(ai::ParseBreakerYaml(YAML::Load("{limit: 3}"), "f", b).has_value());
  EXPECT_FALSE(ai::ParseBreakerYaml(YAML::Load("3"), "f", b).has_value());
}

// The incident manager with these runbooks.
class RunbookIncidentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::move(OpenSqliteStore(dir_.File("medic.db")).value());
    settings_ = std::move(SettingsService::Load(*store_, Settings{}).value());
    manager_ = std::make_unique<IncidentManager>(
        *store_, clock_, sink_, alarms_, *settings_, brain_,
        [](std::function<void()> task) { task(); }, DefaultAlarmRules(), ai::DefaultRunbooks());
    manager_->SetLogDirLookup([](const std::string& host) {
      return host == "web-1" ? std::string("/srv/hosts/web-1/log") : std::string();
    });
  }
  Incident Only() {
    auto list = store_->ListIncidents({});
    EXPECT_TRUE(list.has_value());
    EXPECT_EQ(list->size(), 1u);
    return list->empty() ? Incident{} : list->front();
  }
  void Answer(const protocol::Command& c, std::string output) {
    manager_->OnCommandResult(test::OkResult(c.id, std::move(output)));
  }
  static AlarmTransition Transition(const std::string& rule, AlarmState to) {
    return {rule, "web-1", to == AlarmState::kAlarm ? AlarmState::kOk : AlarmState::kAlarm, to,
            WallTime{}, "test"};
  }

  test::TempDir dir_;
  ManualClock clock_;
  test::RecordingSink sink_;
  test::FakeAlarms alarms_;
  ai::RunbookBrain brain_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<SettingsService> settings_;
  std::unique_ptr<IncidentManager> manager_;
};

TEST_F(RunbookIncidentTest, DiskFixArchivesTheLargestFileInTheHostsLogDir) {
  manager_->OnAlarmTransition(Transition("Disk-Critical-ASG", AlarmState::kAlarm));
  ASSERT_EQ(sink_.sent.size(), 2u);
  EXPECT_EQ(sink_.sent[1].second.action, "dir.list");
  EXPECT_EQ(sink_.sent[1].second.params["path"], "/srv/hosts/web-1/log");
  Answer(sink_.sent[0].second, "Filesystem Size Used Avail Use% Mounted on\n");
  Answer(sink_.sent[1].second,
         "total 30000\n-rw-r--r-- 1 root root 30000000 Nov 30 00:10 medic-chaos-fill.log\n"
         "-rw-r--r-- 1 root root 100 Nov 30 00:10 error.log\n");
  const Incident inc = Only();
  EXPECT_EQ(inc.status, IncidentStatus::kPendingApproval);
  EXPECT_EQ(inc.ai_suggestion,
            "log.archive_truncate path=/srv/hosts/web-1/log/medic-chaos-fill.log");
  bool noted = false;
  for (const auto& e : inc.timeline) {
    noted |= e.event == "fix_target" && e.detail.find("medic-chaos-fill.log") != std::string::npos;
  }
  EXPECT_TRUE(noted);
}

TEST_F(RunbookIncidentTest, DiskFixFallsBackToCleanupWhenTheListingFailed) {
  manager_->OnAlarmTransition(Transition("Disk-Critical-ASG", AlarmState::kAlarm));
  ASSERT_EQ(sink_.sent.size(), 2u);
  Answer(sink_.sent[0].second, "df output\n");
  protocol::CommandResult refused;
  refused.id = sink_.sent[1].second.id;
  refused.host = "web-1";
  refused.ran = false;
  refused.error = "path outside policy";
  manager_->OnCommandResult(refused);
  const Incident inc = Only();
  EXPECT_EQ(inc.ai_suggestion, "disk.cleanup path=/srv/hosts/web-1/log older_than=7d");
}

TEST_F(RunbookIncidentTest, HostUnreachableWaitsForAHumanAndClosesWhenTheAgentIsBack) {
  manager_->OnAlarmTransition(Transition("Host-Unreachable", AlarmState::kAlarm));
  EXPECT_TRUE(sink_.sent.empty());  // nothing can be sent to a host that is away
  Incident inc = Only();
  EXPECT_EQ(inc.status, IncidentStatus::kPendingApproval);
  EXPECT_TRUE(inc.ai_suggestion.empty());
  auto approved = manager_->Approve(inc.incident_id, "alice", ActionHash(inc), "");
  ASSERT_FALSE(approved.has_value());
  EXPECT_NE(approved.error().message.find("no fix to run"), std::string::npos);
  manager_->OnAlarmTransition(Transition("Host-Unreachable", AlarmState::kOk));
  inc = Only();
  EXPECT_EQ(inc.status, IncidentStatus::kCompleted);
  EXPECT_TRUE(sink_.sent.empty());
}

TEST_F(RunbookIncidentTest, BreakerLimitFromConfig) {
  ASSERT_TRUE(settings_->Update(Json{{"approval_mode", false}}).has_value());
  manager_->SetBreaker(1, Millis(600'000));
  alarms_.state = AlarmState::kOk;  // every fix verifies at once
  for (int round = 0; round < 2; ++round) {
    const size_t before = sink_.sent.size();
    manager_->OnAlarmTransition(Transition("Nginx-Down-ALB", AlarmState::kAlarm));
    ASSERT_EQ(sink_.sent.size(), before + 2);
    Answer(sink_.sent[before].second, "inactive");
    Answer(sink_.sent[before + 1].second, "log");
    if (round == 0) {
      ASSERT_EQ(sink_.sent.size(), before + 3);  // the fix went out automatically
      Answer(sink_.sent[before + 2].second, "restarted");
    }
  }
  auto list = store_->ListIncidents({});
  ASSERT_TRUE(list.has_value());
  ASSERT_EQ(list->size(), 2u);
  const Incident& second = list->at(0).status == IncidentStatus::kCompleted ? list->at(1)
                                                                              : list->at(0);
  EXPECT_EQ(second.status, IncidentStatus::kPendingApproval);
  bool breaker = false;
  for (const auto& e : second.timeline) {
    breaker |= e.event == "breaker_open";
  }
  EXPECT_TRUE(breaker);
}

}  // namespace
}  // namespace medic::server
