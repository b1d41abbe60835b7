#include "server/app/store_config.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>

#include "core/yaml_util.h"

namespace medic::server {

Status ParseStoreYaml(const YAML::Node& node, const std::string& file, StoreConfig& out,
                      const StoreEnvLookup& env) {
  if (!node.IsMap()) {
    return InvalidArgument(YamlWhere(file, node) +
                           "store must be a mapping (driver: sqlite|postgres, dsn: ...)");
  }
  bool has_dsn = false;
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>("");
    const YAML::Node& v = kv.second;
    const std::string where = YamlWhere(file, kv.first);
    try {
      if (key == "driver") {
        const std::string driver = v.as<std::string>();
        if (driver == "sqlite") {
          out.driver = StoreConfig::Driver::kSqlite;
        } else if (driver == "postgres") {
          out.driver = StoreConfig::Driver::kPostgres;
        } else {
          return InvalidArgument(where + "store.driver must be sqlite or postgres, not '" +
                                 driver + "'");
        }
      } else if (key == "dsn") {
        if (!v.IsScalar()) {
          return InvalidArgument(where + "store.dsn must be a string");
        }
        out.dsn = v.as<std::string>();
        has_dsn = true;
      } else {
        return InvalidArgument(where + "unknown store key '" + key + "' (driver, dsn)");
      }
    } catch (const YAML::Exception&) {
      return InvalidArgument(where + "wrong type for store." + key);
    }
  }
  std::optional<std::string> from_env;
  if (env) {
    from_env = env(kStoreDsnEnv);
  } else if (const char* v = std::getenv(kStoreDsnEnv); v != nullptr) {
    from_env = std::string(v);
  }
  const std::string where = YamlWhere(file, node);
  if (out.driver == StoreConfig::Driver::kSqlite) {
    if (has_dsn) {
      return InvalidArgument(where + "store.dsn is for driver postgres; driver sqlite keeps "
                             "DATA_DIR/medic.db");
    }
    return OkStatus();
  }
  if (from_env.has_value() && !from_env->empty()) {
    out.dsn = *from_env;
  }
  if (out.dsn.empty()) {
    return InvalidArgument(where + "store.dsn is required with store.driver postgres (or set " +
                           std::string(kStoreDsnEnv) + ")");
  }
  return OkStatus();
}

}  // namespace medic::server
