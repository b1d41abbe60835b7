// The `hosts:` section of the server config (fleet/host_config.h): each host's log directory and
// chaos permission, layered defaults < patterns (shorter first) < exact name; and the errors a
// bad section gets, naming file, line and key.

#include "server/fleet/host_config.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "core/files.h"
#include "server/app/server_app.h"
#include "tests/fakes/temp_dir.h"
#include "tests/server/config_errors.h"

namespace medic::server {
namespace {

Result<ServerConfig> Load(const std::string& text) {
  test::TempDir dir;
  EXPECT_TRUE(WriteFileAtomic(dir.File("s.yaml"), text).has_value());
  return LoadServerConfig(dir.File("s.yaml"));
}

TEST(HostConfigTest, BuiltInDefaultsAreVarLogAndNoChaos) {
  const HostsConfig none;
  EXPECT_EQ(none.For("web-1"), (HostConfig{"/var/log", false}));
  EXPECT_EQ(ServerConfig{}.hosts.For("anything"), (HostConfig{"/var/log", false}));
}

TEST(HostConfigTest, MoreSpecificEntriesWinFieldByField) {
  auto c = Load(R"(
hosts:
  defaults: {log_dir: /var/log/app, chaos_allowed: false}
  "web-*": {chaos_allowed: true}
  "web-1*": {log_dir: /srv/web-1x/log}
  web-1: {log_dir: /srv/web-1/log/}
  db-1: {chaos_allowed: false}
  lab-*: {log_dir: /lab/log, chaos_allowed: true}
  lab-9: {chaos_allowed: false}
)");
  ASSERT_TRUE(c.has_value()) << c.error().ToString();
  struct Case {
    std::string_view host;
    HostConfig want;
  };
  for (const Case& t : std::initializer_list<Case>{
           {"web-1", {"/srv/web-1/log", true}},     // exact, over web-1* and web-*
           {"web-12", {"/srv/web-1x/log", true}},   // web-1* over web-*, chaos from web-*
           {"web-2", {"/var/log/app", true}},       // web-*, log_dir from defaults
           {"web-", {"/var/log/app", true}},        // '*' matches nothing too
           {"db-1", {"/var/log/app", false}},
           {"lab-1", {"/lab/log", true}},
           {"lab-9", {"/lab/log", false}},          // exact turns chaos off again
           {"we", {"/var/log/app", false}},         // a prefix of a pattern is no match
           {"other", {"/var/log/app", false}},
       }) {
    SCOPED_TRACE(t.host);
    EXPECT_EQ(c->hosts.For(t.host), t.want);
  }
}

TEST(HostConfigTest, KillAllowlistsReplaceLayerByLayer) {
  EXPECT_EQ(HostConfig{}.kill_allowlist, (std::vector<std::string>{"stress-ng"}));
  auto c = Load(R"(
hosts:
  defaults: {kill_allowlist: [stress-ng, php-fpm]}
  "web-*": {kill_allowlist: [nginx, systemd-journald]}
  web-9: {kill_allowlist: []}
)");
  ASSERT_TRUE(c.has_value()) << c.error().ToString();
  EXPECT_EQ(c->hosts.For("db-1").kill_allowlist,
            (std::vector<std::string>{"stress-ng", "php-fpm"}));
  EXPECT_EQ(c->hosts.For("web-1").kill_allowlist,
            (std::vector<std::string>{"nginx", "systemd-journald"}));
  EXPECT_TRUE(c->hosts.For("web-9").kill_allowlist.empty());
}

TEST(HostConfigTest, AnEmptySectionChangesNothing) {
  auto c = Load("hosts:\n");
  ASSERT_TRUE(c.has_value()) << c.error().ToString();
  EXPECT_EQ(c->hosts.For("web-1"), HostConfig{});
  c = Load("hosts: {web-1: {}}\n");
  ASSERT_TRUE(c.has_value()) << c.error().ToString();
  EXPECT_EQ(c->hosts.For("web-1"), HostConfig{});
}

TEST(HostConfigTest, BadEntriesAreErrorsNamingLineAndKey) {
  test::ExpectConfigErrors({
      {"hosts: [web-1]\n", ":1: hosts must map host names"},
      {"hosts:\n  web-1: yes\n", ":2: hosts: 'web-1' must be a mapping"},
      {"hosts:\n  web-1: {log_dir: /srv, chaos: true}\n",
       ":2: hosts: 'web-1': unknown key 'chaos' (known: log_dir, chaos_allowed, kill_allowlist)"},
      {"hosts:\n  web-1: {kill_allowlist: nginx}\n",
       ":2: hosts: 'web-1': kill_allowlist must be a list of process names"},
      {"hosts:\n  web-1: {kill_allowlist: [\"nginx; reboot\"]}\n",
       ":2: hosts: 'web-1': kill_allowlist: 'nginx; reboot' is not a process name"},
      {"hosts:\n  web-1: {kill_allowlist: [[a]]}\n", "kill_allowlist: '' is not a process name"},
      {"hosts:\n  defaults: {colour: blue}\n", ":2: hosts: 'defaults': unknown key 'colour'"},
      {"hosts:\n  web-1:\n    chaos_allowed: sometimes\n",
       ":3: hosts: 'web-1': wrong type for 'chaos_allowed'"},
      {"hosts:\n  web-1: {log_dir: [a]}\n", ":2: hosts: 'web-1': wrong type for 'log_dir'"},
      {"hosts:\n  web-1: {log_dir: var/log}\n",
       ":2: hosts: 'web-1': log_dir must be a clean absolute directory other than /, got "
       "'var/log'"},
      {"hosts:\n  web-1: {log_dir: /}\n", "log_dir must be a clean absolute directory"},
      {"hosts:\n  web-1: {log_dir: /var/../etc}\n", "log_dir must be a clean absolute directory"},
      {"hosts:\n  web-1: {log_dir: /var/./log}\n", "log_dir must be a clean absolute directory"},
      {"hosts:\n  web-1: {log_dir: \"/var//log\"}\n", "log_dir must be a clean absolute directory"},
      {"hosts:\n  web-1: {log_dir: \"/var/log;rm\"}\n", "log_dir must be a clean absolute"},
      {"hosts:\n  web-1: {log_dir: \"/var/my log\"}\n", "log_dir must be a clean absolute"},
      {"hosts:\n  \"*\": {chaos_allowed: true}\n", ":2: hosts: '*': '*' matches every host: use "
                                                   "'defaults'"},
      {"hosts:\n  \"w*b\": {}\n", ":2: hosts: 'w*b': only one '*', at the end"},
      {"hosts:\n  \"web-**\": {}\n", "only one '*', at the end"},
      {"hosts:\n  \"web 1\": {}\n", ":2: hosts: 'web 1': not a host name"},
      {"hosts:\n  \"-web\": {}\n", "not a host name"},
      {"hosts:\n  web-1: {}\n  web-1: {chaos_allowed: true}\n", ":3: hosts: 'web-1': appears twice"},
  });
}

}  // namespace
}  // namespace medic::server
