#include "protocol/actions.h"

#include <gtest/gtest.h>

#include <csignal>
#include <set>
#include <string>

namespace medic::protocol {
namespace {

// Parameters are written as JSON text so that the tables read like what arrives on the wire.
Json P(std::string_view text) { return Json::parse(text); }

TEST(ActionsTest, CatalogNamesAreUniqueAndFindable) {
  std::set<std::string> names;
  for (const ActionSpec& spec : ActionCatalog()) {
    SCOPED_TRACE(spec.name);
    EXPECT_TRUE(names.insert(spec.name).second) << "duplicate action";
    EXPECT_EQ(FindAction(spec.name), &spec);
    EXPECT_FALSE(spec.summary.empty());
    EXPECT_NE(RiskName(spec.risk), "unknown");
    std::set<std::string> params;
    for (const ParamSpec& p : spec.params) {
      EXPECT_TRUE(params.insert(p.name).second) << "duplicate parameter " << p.name;
    }
    // Read-only diagnostics carry no risk; anything that changes the host carries some.
    EXPECT_EQ(spec.read_only, spec.risk == Risk::kNone);
  }
  EXPECT_EQ(FindAction("rm"), nullptr);
  EXPECT_EQ(FindAction(""), nullptr);
  EXPECT_EQ(FindAction("Service.Restart"), nullptr);
}

TEST(ActionsTest, RiskNames) {
  EXPECT_EQ(RiskName(Risk::kNone), "none");
  EXPECT_EQ(RiskName(Risk::kLow), "low");
  EXPECT_EQ(RiskName(Risk::kMedium), "medium");
  EXPECT_EQ(RiskName(Risk::kHigh), "high");
}

TEST(ActionsTest, ValidateActionAcceptsGoodParameters) {
  struct Case {
    std::string name;
    std::string params;
  };
  const Case kCases[] = {
      {"service.status", R"({"service": "nginx"})"},
      {"service.start", R"({"service": "nginx.service"})"},
      {"service.stop", R"({"service": "getty@tty1"})"},
      {"service.restart", R"({"service": "my_app-2"})"},
      {"service.restart",
       R"({"service": "a234567890123456789012345678901234567890123456789012345678901234"})"},
      {"service.logs", R"({"service": "nginx"})"},
      {"service.logs", R"({"service": "nginx", "lines": 200})"},
      {"log.tail", R"({"path": "/var/log/nginx/error.log", "lines": 100})"},
      {"log.tail", R"({"path": "/var/log/app-2024.01.log"})"},
      {"log.tail", R"({"path": "/var/log/h\u00e9llo.log"})"},
      {"log.tail", R"({"path": "/var/log/...hidden"})"},
      {"log.tail", R"({"path": "/var/log/a..b"})"},
      {"disk.usage", R"({})"},
      {"disk.usage", R"(null)"},
      {"memory.usage", R"({})"},
      {"process.top", R"({"lines": 1})"},
      {"process.top", R"({"lines": 100000})"},
      {"dir.list", R"({"path": "/var/log"})"},
      {"dir.list", R"({"path": "/"})"},
      {"dir.list", R"({"path": "/var/log/"})"},
      {"process.kill", R"({"pattern": "stress-ng", "signal": "KILL"})"},
      {"process.kill", R"({"pattern": "nginx: worker process"})"},
      {"process.kill", R"({"pattern": "python3 -m http.server"})"},
      {"process.kill", R"({"pid": 4242})"},
      {"process.kill", R"({"pid": 2, "signal": "SIGTERM"})"},
      {"process.kill", R"({"pid": 4194304, "signal": "HUP"})"},
      {"process.kill", R"({"pid": 77, "signal": "SIGUSR2"})"},
      {"file.truncate", R"({"path": "/var/log/app.log"})"},
      {"log.archive_truncate", R"({"path": "/var/log/app.log"})"},
      {"disk.cleanup", R"({"path": "/tmp", "older_than": "7d"})"},
      {"disk.cleanup", R"({"path": "/tmp", "older_than": "30s"})"},
      {"disk.cleanup", R"({"path": "/tmp", "older_than": "1.5h"})"},
      {"disk.cleanup", R"({"path": "/tmp", "older_than": "11574d"})"},
      {"chaos.start", R"({"mode": "disk-fill", "params": {"percent": 95}})"},
      {"chaos.start", R"({"mode": "oom"})"},
      {"chaos.start", R"({"mode": "nginx-crash", "params": {}})"},
      {"chaos.start", R"({"mode": "disk-fill", "params": {"path": "/var/log", "percent": 97.5}})"},
      {"chaos.start", R"({"mode": "oom", "params": {"percent": 80, "duration": "10m"}})"},
      {"chaos.start", R"({"mode": "oom", "params": {"duration": 3600}})"},
      {"chaos.stop", R"({})"},
      // The shell action is the explicit escape hatch: it takes shell syntax on purpose.
      {"shell", R"({"command": "df -h | sort -k5; echo $HOME && ls `pwd`"})"},
      {"shell", R"({"command": "printf 'a\nb'"})"},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name + " " + c.params);
    const Json params = P(c.params);
    Result<Action> a = ValidateAction(c.name, params);
    ASSERT_TRUE(a.has_value()) << a.error().ToString();
    EXPECT_EQ(a->name, c.name);
    EXPECT_EQ(a->params, params.is_null() ? Json::object() : params);
  }
}

TEST(ActionsTest, ValidateActionRejectsHostileParameters) {
  const std::string k65(65, 'a');
  const std::string k257(257, 'a');
  const std::string k5000(5000, 'a');
  struct Case {
    std::string name;
    Json params;
    std::string why;
  };
  const Case kCases[] = {
      // Unknown or malformed action names.
      {"rm", P(R"({})"), "unknown action"},
      {"", P(R"({})"), "empty action"},
      {"service.restart;", P(R"({"service": "nginx"})"), "action with ;"},
      {"SERVICE.RESTART", P(R"({"service": "nginx"})"), "action case"},
      {"service.restart ", P(R"({"service": "nginx"})"), "action trailing space"},
      {"../service.restart", P(R"({"service": "nginx"})"), "action path"},
      // Parameters that are not an object.
      {"service.restart", P(R"(["nginx"])"), "params array"},
      {"service.restart", P(R"("service=nginx")"), "params string"},
      {"disk.usage", P(R"(1)"), "params number"},
      // Service names.
      {"service.restart", P(R"({"service": "nginx;rm -rf /"})"), "service ;"},
      {"service.restart", P(R"({"service": "nginx|cat"})"), "service |"},
      {"service.restart", P(R"({"service": "nginx&&reboot"})"), "service &&"},
      {"service.restart", P(R"j({"service": "$(reboot)"})j"), "service $()"},
      {"service.restart", P(R"({"service": "${IFS}"})"), "service ${}"},
      {"service.restart", P(R"({"service": "`reboot`"})"), "service backticks"},
      {"service.restart", P(R"({"service": "nginx\nreboot"})"), "service newline"},
      {"service.restart", P(R"({"service": "nginx\rreboot"})"), "service CR"},
      {"service.restart", P(R"({"service": "nginx\u0000"})"), "service NUL"},
      {"service.restart", P(R"({"service": "-h"})"), "service leading -"},
      {"service.restart", P(R"({"service": "--now"})"), "service option"},
      {"service.restart", P(R"({"service": ".."})"), "service .."},
      {"service.restart", P(R"({"service": "../../etc/passwd"})"), "service path"},
      {"service.restart", P(R"({"service": "a/b"})"), "service /"},
      {"service.restart", P(R"({"service": "a b"})"), "service space"},
      {"service.restart", P(R"({"service": "ngin\u00ed"})"), "service non-ASCII"},
      {"service.restart", P(R"({"service": ""})"), "service empty"},
      {"service.restart", Json{{"service", k65}}, "service too long"},
      {"service.restart", P(R"({"service": 42})"), "service number"},
      {"service.restart", P(R"({"service": ["nginx"]})"), "service list"},
      {"service.restart", P(R"({"service": {"name": "nginx"}})"), "service object"},
      {"service.restart", P(R"({"service": null})"), "service null"},
      {"service.restart", P(R"({"service": true})"), "service bool"},
      {"service.restart", P(R"({})"), "service missing"},
      {"service.restart", P(R"(null)"), "service missing, null params"},
      // Unknown parameters.
      {"service.restart", P(R"({"service": "nginx", "force": true})"), "unknown param"},
      {"service.restart", P(R"({"service": "nginx", "service; rm": "x"})"), "unknown param ;"},
      {"disk.usage", P(R"({"path": "/"})"), "param on parameterless action"},
      {"chaos.stop", P(R"({"all": true})"), "param on chaos.stop"},
      // Paths.
      {"log.tail", P(R"({"path": "var/log/syslog"})"), "relative path"},
      {"log.tail", P(R"({"path": "./syslog"})"), "dot-relative path"},
      {"log.tail", P(R"({"path": "~/syslog"})"), "home-relative path"},
      {"log.tail", P(R"({"path": "/var/log/../../etc/shadow"})"), "path .."},
      {"log.tail", P(R"({"path": "/var/log/.."})"), "path trailing .."},
      {"log.tail", P(R"({"path": "/.."})"), "path /.."},
      {"log.tail", P(R"({"path": "/var/./log/syslog"})"), "path ."},
      {"log.tail", P(R"({"path": "/var/log/x;rm -rf /"})"), "path ;"},
      {"log.tail", P(R"({"path": "/var/log/x|sh"})"), "path |"},
      {"log.tail", P(R"j({"path": "/var/log/$(id)"})j"), "path $()"},
      {"log.tail", P(R"({"path": "/var/log/`id`"})"), "path backticks"},
      {"log.tail", P(R"({"path": "/var/log/a b"})"), "path space"},
      {"log.tail", P(R"({"path": "/var/log/x\n/etc/shadow"})"), "path newline"},
      {"log.tail", P(R"({"path": "/var/log/x\u0000y"})"), "path NUL"},
      {"log.tail", P(R"({"path": "/var/log/*.log"})"), "path glob *"},
      {"log.tail", P(R"({"path": "/var/log/?.log"})"), "path glob ?"},
      {"log.tail", P(R"({"path": "/var/log/[ab].log"})"), "path glob []"},
      {"log.tail", P(R"({"path": "/var/log/x>y"})"), "path redirect"},
      {"log.tail", P(R"({"path": "/var/log/'x'"})"), "path quote"},
      {"log.tail", P(R"({"path": ""})"), "path empty"},
      {"log.tail", P(R"({"path": ["/var/log/syslog"]})"), "path list"},
      {"log.tail", Json{{"path", "/" + std::string(5000, 'a')}}, "path too long"},
      {"dir.list", P(R"({})"), "path missing"},
      // Counts.
      {"log.tail", P(R"({"path": "/var/log/syslog", "lines": 0})"), "lines 0"},
      {"log.tail", P(R"({"path": "/var/log/syslog", "lines": -5})"), "lines negative"},
      {"log.tail", P(R"({"path": "/var/log/syslog", "lines": 100001})"), "lines too many"},
      {"log.tail", P(R"({"path": "/var/log/syslog", "lines": "10"})"), "lines string"},
      {"log.tail", P(R"({"path": "/var/log/syslog", "lines": 1.5})"), "lines float"},
      {"log.tail", P(R"({"path": "/var/log/syslog", "lines": 10.0})"), "lines float 10.0"},
      {"log.tail", P(R"({"path": "/var/log/syslog", "lines": true})"), "lines bool"},
      {"process.top", P(R"({"lines": 18446744073709551615})"), "lines huge unsigned"},
      // Signals: only the list.
      {"process.kill", P(R"({"pid": 4242, "signal": "STOP"})"), "signal STOP"},
      {"process.kill", P(R"({"pid": 4242, "signal": "SIGSTOP"})"), "signal SIGSTOP"},
      {"process.kill", P(R"({"pid": 4242, "signal": "SEGV"})"), "signal SEGV"},
      {"process.kill", P(R"({"pid": 4242, "signal": "9"})"), "signal number text"},
      {"process.kill", P(R"({"pid": 4242, "signal": 9})"), "signal number"},
      {"process.kill", P(R"({"pid": 4242, "signal": "term"})"), "signal lowercase"},
      {"process.kill", P(R"({"pid": 4242, "signal": "SIG"})"), "signal SIG"},
      {"process.kill", P(R"({"pid": 4242, "signal": "SIGSIGTERM"})"), "signal SIGSIG"},
      {"process.kill", P(R"({"pid": 4242, "signal": "-9"})"), "signal -9"},
      {"process.kill", P(R"({"pid": 4242, "signal": "TERM;reboot"})"), "signal ;"},
      {"process.kill", P(R"({"pid": 4242, "signal": ""})"), "signal empty"},
      // Pids: never init, never the kernel's range end, integers only.
      {"process.kill", P(R"({"pid": 1})"), "pid 1"},
      {"process.kill", P(R"({"pid": 0})"), "pid 0"},
      {"process.kill", P(R"({"pid": -1})"), "pid -1 (every process)"},
      {"process.kill", P(R"({"pid": -4242})"), "pid negative (process group)"},
      {"process.kill", P(R"({"pid": 4194305})"), "pid beyond pid_max"},
      {"process.kill", P(R"({"pid": 9223372036854775807})"), "pid int64 max"},
      {"process.kill", P(R"({"pid": 18446744073709551615})"), "pid uint64 max (wraps to -1)"},
      {"process.kill", P(R"({"pid": 18446744073709551614})"), "pid uint64 max-1 (wraps to -2)"},
      {"process.kill", P(R"({"pid": "4242"})"), "pid string"},
      {"process.kill", P(R"({"pid": 4242.0})"), "pid float"},
      {"process.kill", P(R"({"pid": [4242]})"), "pid list"},
      // process.kill needs exactly one target.
      {"process.kill", P(R"({"pattern": "nginx", "pid": 4242})"), "pattern and pid"},
      {"process.kill", P(R"({"signal": "KILL"})"), "no target"},
      {"process.kill", P(R"({})"), "no params"},
      // Patterns.
      {"process.kill", P(R"({"pattern": "nginx;reboot"})"), "pattern ;"},
      {"process.kill", P(R"({"pattern": "nginx|sh"})"), "pattern |"},
      {"process.kill", P(R"({"pattern": "a&b"})"), "pattern &"},
      {"process.kill", P(R"j({"pattern": "$(id)"})j"), "pattern $()"},
      {"process.kill", P(R"({"pattern": "`id`"})"), "pattern backticks"},
      {"process.kill", P(R"({"pattern": "a>b"})"), "pattern >"},
      {"process.kill", P(R"({"pattern": "a<b"})"), "pattern <"},
      {"process.kill", P(R"({"pattern": ".*"})"), "pattern *"},
      {"process.kill", P(R"({"pattern": "a?"})"), "pattern ?"},
      {"process.kill", P(R"({"pattern": "\"q\""})"), "pattern double quote"},
      {"process.kill", P(R"({"pattern": "'q'"})"), "pattern single quote"},
      {"process.kill", P(R"({"pattern": "a\\b"})"), "pattern backslash"},
      {"process.kill", P(R"({"pattern": "a\tb"})"), "pattern tab"},
      {"process.kill", P(R"({"pattern": "a\nb"})"), "pattern newline"},
      {"process.kill", P(R"({"pattern": "#comment"})"), "pattern #"},
      {"process.kill", P(R"({"pattern": "~root"})"), "pattern ~"},
      {"process.kill", P(R"({"pattern": "{a,b}"})"), "pattern braces"},
      {"process.kill", P(R"({"pattern": "!x"})"), "pattern !"},
      {"process.kill", P(R"({"pattern": "-9"})"), "pattern leading -"},
      {"process.kill", P(R"({"pattern": "--signal=KILL"})"), "pattern option"},
      {"process.kill", P(R"({"pattern": ""})"), "pattern empty"},
      {"process.kill", Json{{"pattern", k257}}, "pattern too long"},
      // Durations.
      {"disk.cleanup", P(R"({"path": "/tmp", "older_than": "7x"})"), "duration unit"},
      {"disk.cleanup", P(R"({"path": "/tmp", "older_than": "-7d"})"), "duration negative days"},
      {"disk.cleanup", P(R"({"path": "/tmp", "older_than": "-1s"})"), "duration negative"},
      {"disk.cleanup", P(R"({"path": "/tmp", "older_than": "d"})"), "duration d"},
      {"disk.cleanup", P(R"({"path": "/tmp", "older_than": "7.5d"})"), "duration fractional days"},
      {"disk.cleanup", P(R"({"path": "/tmp", "older_than": "1e3"})"), "duration exponent"},
      {"disk.cleanup", P(R"({"path": "/tmp", "older_than": "7d;rm"})"), "duration ;"},
      {"disk.cleanup", P(R"({"path": "/tmp", "older_than": ""})"), "duration empty"},
      {"disk.cleanup", P(R"({"path": "/tmp", "older_than": 7})"), "duration number"},
      {"disk.cleanup", P(R"({"path": "/tmp", "older_than": "99999999999999999999d"})"),
       "duration absurd days"},
      {"disk.cleanup", P(R"({"path": "/tmp", "older_than": "11575d"})"), "duration beyond max"},
      {"disk.cleanup", P(R"({"path": "/tmp"})"), "duration missing"},
      {"disk.cleanup", P(R"({"older_than": "7d"})"), "cleanup path missing"},
      {"disk.cleanup", P(R"({"path": "tmp", "older_than": "7d"})"), "cleanup relative path"},
      // Chaos.
      {"chaos.start", P(R"({"mode": "fork-bomb"})"), "chaos mode unknown"},
      {"chaos.start", P(R"({"mode": "OOM"})"), "chaos mode case"},
      {"chaos.start", P(R"({"mode": "oom", "params": "percent=95"})"), "chaos params string"},
      {"chaos.start", P(R"({"mode": "oom", "params": [95]})"), "chaos params list"},
      {"chaos.start", P(R"({"params": {}})"), "chaos mode missing"},
      {"chaos.start", P(R"({"mode": "oom", "params": null})"), "chaos params null"},
      // Chaos params: the mode's known keys, each a scalar of its kind (issue 12).
      {"chaos.start", P(R"({"mode": "disk-fill", "params": {"percent": [95]}})"), "percent list"},
      {"chaos.start", P(R"({"mode": "disk-fill", "params": {"percent": {"v": 95}}})"),
       "percent object"},
      {"chaos.start", P(R"({"mode": "disk-fill", "params": {"percent": "95"}})"),
       "percent string"},
      {"chaos.start", P(R"({"mode": "disk-fill", "params": {"percent": 100}})"), "percent 100"},
      {"chaos.start", P(R"({"mode": "disk-fill", "params": {"percent": 1e300}})"),
       "percent huge"},
      {"chaos.start", P(R"({"mode": "disk-fill", "params": {"path": ["/var/log"]}})"),
       "path list"},
      {"chaos.start", P(R"({"mode": "disk-fill", "params": {"path": "var/log"}})"),
       "path relative"},
      {"chaos.start", P(R"({"mode": "disk-fill", "params": {"path": "/var/log/../etc"}})"),
       "path traversal"},
      {"chaos.start", P(R"({"mode": "disk-fill", "params": {"duration": "60s"}})"),
       "duration on disk-fill"},
      {"chaos.start", P(R"({"mode": "disk-fill", "params": {"x": {"y": [[[1]]]}}})"),
       "nested unknown key"},
      {"chaos.start", P(R"({"mode": "oom", "params": {"duration": 0}})"), "duration 0"},
      {"chaos.start", P(R"({"mode": "oom", "params": {"duration": 3601}})"), "duration 3601"},
      {"chaos.start", P(R"({"mode": "oom", "params": {"duration": "2h"}})"), "duration 2h"},
      {"chaos.start", P(R"({"mode": "oom", "params": {"duration": 1.5}})"), "duration float"},
      {"chaos.start", P(R"({"mode": "oom", "params": {"duration": 18446744073709551615}})"),
       "duration huge"},
      {"chaos.start", P(R"({"mode": "oom", "params": {"duration": [600]}})"), "duration list"},
      {"chaos.start", P(R"({"mode": "oom", "params": {"path": "/var/log"}})"), "path on oom"},
      {"chaos.start", P(R"({"mode": "nginx-crash", "params": {"percent": 50}})"),
       "param on nginx-crash"},
      {"process.kill", P(R"({"pid": 18446744073709551615})"), "pid above int64"},
      {"log.tail", P(R"({"path": "/var/log/x", "lines": 18446744073709551615})"),
       "lines above int64"},
      // Shell.
      {"shell", P(R"({})"), "shell command missing"},
      {"shell", P(R"({"command": ""})"), "shell command empty"},
      {"shell", P(R"({"command": 42})"), "shell command number"},
      {"shell", Json{{"command", k5000}}, "shell command too long"},
  };
  ASSERT_GE(std::size(kCases), 30u);
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.why + ": " + c.name + " " + DumpJson(c.params));
    Result<Action> a = ValidateAction(c.name, c.params);
    if (a.has_value()) {
      ADD_FAILURE() << "accepted: " << RenderCommandLine(*a);
      continue;
    }
    EXPECT_EQ(a.error().code, ErrorCode::kInvalidArgument);
    EXPECT_FALSE(a.error().message.empty());
  }
}

TEST(ActionsTest, ValidateActionKeepsOnlyCheckedParams) {
  Result<Action> a = ValidateAction("process.kill", P(R"({"pid": 4242, "signal": "KILL"})"));
  ASSERT_TRUE(a.has_value()) << a.error().ToString();
  EXPECT_EQ(a->params, P(R"({"pid": 4242, "signal": "KILL"})"));
}

TEST(ActionsTest, ErrorsNameTheOffendingParameter) {
  struct Case {
    std::string name;
    std::string params;
    std::string want_in_message;
  };
  const Case kCases[] = {
      {"service.restart", R"({"service": "a;b"})", "'service'"},
      {"log.tail", R"({"path": "/x", "lines": 0})", "'lines'"},
      {"service.restart", R"({"service": "x", "force": 1})", "'force'"},
      {"service.restart", R"({})", "'service'"},
      {"nope", R"({})", "'nope'"},
      {"chaos.start", R"({"mode": "disk-fill", "params": {"percent": [1]}})", "'percent'"},
      {"chaos.start", R"({"mode": "disk-fill", "params": {"bogus": 1}})", "'bogus'"},
      {"chaos.start", R"({"mode": "oom", "params": {"duration": {}}})", "'duration'"},
      {"chaos.start", R"({"mode": "oom", "params": []})", "'params'"},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name + " " + c.params);
    Result<Action> a = ValidateAction(c.name, P(c.params));
    ASSERT_FALSE(a.has_value());
    EXPECT_NE(a.error().message.find(c.want_in_message), std::string::npos) << a.error().message;
  }
}

TEST(ActionsTest, RenderCommandLine) {
  struct Case {
    std::string name;
    Json params;
    std::string want;
  };
  const Case kCases[] = {
      {"service.restart", P(R"({"service": "nginx"})"), "service.restart service=nginx"},
      {"disk.usage", P(R"({})"), "disk.usage"},
      // Parameters in catalog order, whatever the JSON order.
      {"disk.cleanup", P(R"({"older_than": "7d", "path": "/tmp"})"),
       "disk.cleanup path=/tmp older_than=7d"},
      {"process.kill", P(R"({"signal": "KILL", "pid": 4242})"),
       "process.kill pid=4242 signal=KILL"},
      {"process.kill", P(R"({"pattern": "nginx: worker"})"),
       "process.kill pattern='nginx: worker'"},
      {"log.tail", P(R"({"path": "/var/log/a,b=c+d%e@f:g", "lines": 10})"),
       "log.tail path=/var/log/a,b=c+d%e@f:g lines=10"},
      {"chaos.start", P(R"({"mode": "disk-fill", "params": {"percent": 95}})"),
       "chaos.start mode=disk-fill params='{\"percent\":95}'"},
      {"shell", P(R"({"command": "echo 'hi'; rm x"})"), "shell command='echo '\\''hi'\\''; rm x'"},
      {"shell", P(R"({"command": "a\nb"})"), "shell command='a\\nb'"},
      {"shell", P(R"({"command": "a\tb\rc"})"), "shell command='a\\tb\\rc'"},
      {"shell", P(R"({"command": "x\u001b[2Ky"})"), "shell command='x\\x1b[2Ky'"},
      {"shell", P(R"({"command": "del\u007f"})"), "shell command='del\\x7f'"},
      {"shell", P(R"({"command": ""})"), "shell command=''"},
      {"shell", P(R"j({"command": "$(id)"})j"), "shell command='$(id)'"},
      // Unknown keys and unknown actions render nothing they cannot vouch for.
      {"service.restart", P(R"({"service": "nginx", "extra": "x"})"),
       "service.restart service=nginx"},
      {"no.such", P(R"({"a": "b"})"), "no.such"},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.want);
    EXPECT_EQ(RenderCommandLine(Action{c.name, c.params}), c.want);
  }
}

// The line is shown to an operator who approves it: no byte of it may move the cursor, erase
// or recolour what the terminal or the page shows.
TEST(ActionsTest, RenderedLinesNeverCarryControlCharacters) {
  std::string every_byte;
  for (int b = 1; b < 256; ++b) {
    every_byte.push_back(static_cast<char>(b));
  }
  const std::string kCommands[] = {"rm -rf /\rservice.status service=nginx",
                                   "echo \x1b[1A\x1b[2Khidden", every_byte, std::string("a\0b", 3),
                                   "C1 control \xc2\x9b"
                                   "2K as UTF-8"};
  for (const std::string& command : kCommands) {
    const std::string line = RenderCommandLine(Action{"shell", Json{{"command", command}}});
    SCOPED_TRACE(line);
    for (unsigned char c : line) {
      EXPECT_FALSE(c < 0x20 || c == 0x7f) << "control byte " << static_cast<int>(c);
    }
    for (int c1 = 0x80; c1 <= 0x9f; ++c1) {
      EXPECT_EQ(line.find(std::string{'\xc2', static_cast<char>(c1)}), std::string::npos)
          << "C1 control U+00" << std::hex << c1;
    }
  }
}

TEST(ActionsTest, SignalNumber) {
  struct Case {
    std::string name;
    int want;
  };
  const Case kCases[] = {
      {"TERM", SIGTERM}, {"SIGTERM", SIGTERM}, {"KILL", SIGKILL}, {"SIGKILL", SIGKILL},
      {"HUP", SIGHUP},   {"INT", SIGINT},      {"QUIT", SIGQUIT}, {"USR1", SIGUSR1},
      {"USR2", SIGUSR2}, {"SIGUSR2", SIGUSR2}, {"STOP", -1},      {"CONT", -1},
      {"SEGV", -1},      {"term", -1},         {"9", -1},         {"", -1},
      {"SIG", -1},       {"SIGSIGTERM", -1},   {"TERM ", -1},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(SignalNumber(c.name), c.want);
  }
}

}  // namespace
}  // namespace medic::protocol
