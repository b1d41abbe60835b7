#pragma once

// The `store:` section of the server config: where medic-server keeps its state
// (docs/STORE.md).
//
//   store:
//     driver: postgres          # sqlite (the default: DATA_DIR/medic.db) | postgres
//     dsn: "host=db1,db2 dbname=medic user=medic target_session_attrs=read-write"
//
// The environment variable MEDIC_STORE_DSN, when set, replaces `dsn`, so that a password need
// not be in the file; it does not choose the driver. `dsn` is required for postgres (in the file or the environment) and
// refused for sqlite. Unknown keys, wrong types and unknown drivers are errors naming file,
// line and key.

#include <functional>
#include <optional>
#include <string>

#include "core/result.h"

namespace YAML {
class Node;
}

namespace medic::server {

struct StoreConfig {
  enum class Driver { kSqlite, kPostgres };
  Driver driver = Driver::kSqlite;
  std::string dsn;  // postgres: a libpq connection string or URI
  // sqlite: the database file; "" = DATA_DIR/medic.db. Only `--store sqlite:PATH` or
  // MEDIC_STORE set it (the file's section has no path: the data directory decides).
  std::string sqlite_path;
};

// The environment variable that chooses the whole store as a URI, like --store
// (CONTRACT.md): `sqlite:PATH`, `postgres:DSN`, `postgres://...` (server/store/store_uri.h).
inline constexpr char kStoreUriEnv[] = "MEDIC_STORE";

// The environment variable that overrides store.dsn.
inline constexpr char kStoreDsnEnv[] = "MEDIC_STORE_DSN";

// Reads an environment variable; nullopt when unset.
using StoreEnvLookup = std::function<std::optional<std::string>(const std::string&)>;

// Parses the `store:` mapping into `out`, applies MEDIC_STORE_DSN (looked up with `env`, the
// process's environment when empty) and checks the result.
Status ParseStoreYaml(const YAML::Node& node, const std::string& file, StoreConfig& out,
                      const StoreEnvLookup& env = nullptr);

}  // namespace medic::server
