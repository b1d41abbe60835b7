// The `store:` section (app/store_config.h): drivers, the dsn, MEDIC_STORE_DSN, errors that
// name file, line and key.

#include "server/app/store_config.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include "core/files.h"
#include "server/app/server_app.h"
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

}  // namespace
}  // namespace medic::server
