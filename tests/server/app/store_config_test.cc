// The `store:` section (app/store_config.h): drivers, the dsn, MEDIC_STORE_DSN, errors that
// name file, line and key.

#include "server/app/store_config.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <string>
#include <utility>
#include <vector>

#include "core/files.h"
#include "server/app/server_app.h"
#include "server/store/pg_store.h"
#include "tests/fakes/temp_dir.h"
#include "tests/server/config_errors.h"

namespace medic::server {
namespace {

// Sets or unsets MEDIC_STORE_DSN for one scope.
class ScopedDsnEnv {
 public:
  explicit ScopedDsnEnv(const char* value) {
    if (value != nullptr) {
      setenv(kStoreDsnEnv, value, 1);
    } else {
      unsetenv(kStoreDsnEnv);
    }
  }
  ~ScopedDsnEnv() { unsetenv(kStoreDsnEnv); }
};

Result<ServerConfig> Load(const std::string& text) {
  test::TempDir dir;
  EXPECT_TRUE(WriteFileAtomic(dir.File("s.yaml"), text).has_value());
  return LoadServerConfig(dir.File("s.yaml"));
}

TEST(StoreConfigTest, SqliteIsTheDefault) {
  ScopedDsnEnv env(nullptr);
  Result<ServerConfig> c = Load("listen: 127.0.0.1:1\n");
  ASSERT_TRUE(c.has_value()) << c.error().ToString();
  EXPECT_EQ(c->store.driver, StoreConfig::Driver::kSqlite);
  c = Load("store: {driver: sqlite}\n");
  ASSERT_TRUE(c.has_value()) << c.error().ToString();
  EXPECT_EQ(c->store.driver, StoreConfig::Driver::kSqlite);
}

TEST(StoreConfigTest, PostgresWithADsnFromTheFileOrTheEnvironment) {
  {
    ScopedDsnEnv env(nullptr);
    Result<ServerConfig> c = Load("store:\n  driver: postgres\n  dsn: host=db dbname=medic\n");
    ASSERT_TRUE(c.has_value()) << c.error().ToString();
    EXPECT_EQ(c->store.driver, StoreConfig::Driver::kPostgres);
    EXPECT_EQ(c->store.dsn, "host=db dbname=medic");
  }
  {
    // The environment wins, so that a password need not be in the file.
    ScopedDsnEnv env("postgresql://medic:secret@db/medic");
    Result<ServerConfig> c = Load("store:\n  driver: postgres\n  dsn: host=db dbname=medic\n");
    ASSERT_TRUE(c.has_value()) << c.error().ToString();
    EXPECT_EQ(c->store.dsn, "postgresql://medic:secret@db/medic");
    c = Load("store: {driver: postgres}\n");
    ASSERT_TRUE(c.has_value()) << c.error().ToString();
    EXPECT_EQ(c->store.dsn, "postgresql://medic:secret@db/medic");
  }
}

TEST(StoreConfigTest, ErrorsNameFileLineAndKey) {
  ScopedDsnEnv env(nullptr);
  test::ExpectConfigErrors({
      {"store: {driver: mysql}\n", ":1: store.driver must be sqlite or postgres, not 'mysql'"},
      {"store:\n  driver: postgres\n", ":2: store.dsn is required with store.driver postgres"},
      {"store:\n  driver: postgres\n  dsn: ''\n", "store.dsn is required"},
      {"store:\n  dsn: host=db\n", "store.dsn is for driver postgres"},
      {"store:\n  driver: postgres\n  dsn: x\n  pool: 3\n", ":4: unknown store key 'pool'"},
      {"store:\n  driver: postgres\n  dsn: [a, b]\n", ":3: store.dsn must be a string"},
      {"store:\n  driver: [postgres]\n", ":2: wrong type for store.driver"},
      {"store: postgres\n", ":1: store must be a mapping"},
  });
}

// The startup line's store ("serving on ..., store postgres host=..."): where, never the
// password, whichever way the dsn carries it.
TEST(StoreConfigTest, TheStartupLineNamesTheStoreAndNeverThePassword) {
  ServerConfig sqlite;
  sqlite.data_dir = "/var/lib/medic";
  EXPECT_EQ(DescribeStore(sqlite), "sqlite /var/lib/medic/medic.db");
  sqlite.store.sqlite_path = "/srv/medic/state.db";
  EXPECT_EQ(DescribeStore(sqlite), "sqlite /srv/medic/state.db");

  ServerConfig pg;
  pg.store.driver = StoreConfig::Driver::kPostgres;
  pg.store.dsn = "host=db1,db2 port=5433 dbname=medic user=medic password=hunter2 "
                 "sslkey=/etc/medic/client.key target_session_attrs=read-write";
  EXPECT_EQ(DescribeStore(pg), "postgres host=db1,db2 port=5433 dbname=medic user=medic");
  const std::vector<std::pair<std::string, std::string>> dsns = {
      {"host=db dbname=medic user=medic password='it is hunter2'",
       "host=db dbname=medic user=medic"},
      {"password = hunter2 user=ops host=/run/pg", "host=/run/pg user=ops"},
      {"postgresql://ops:hunter2@db.example:6432/medic?sslmode=require",
       "host=db.example port=6432 dbname=medic user=ops"},
      {"postgres://db/medic?user=ops&password=hunter2", "host=db dbname=medic user=ops"},
      {"sslmode=disable password=hunter2", "(libpq's defaults)"},
      {"host=db password='hunter2", "(a dsn libpq cannot parse)"},  // unterminated quote
  };
  for (const auto& [dsn, want] : dsns) {
    const std::string got = DescribePostgresDsn(dsn);
    EXPECT_EQ(got, want) << dsn;
    EXPECT_EQ(got.find("hunter2"), std::string::npos) << dsn;
  }
}

}  // namespace
}  // namespace medic::server
