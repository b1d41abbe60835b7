#include "server/store/store_uri.h"

#include <regex>

// The PostgreSQL backend is written alongside (issue 15, part A). Until it is in the tree, a
// postgres URI parses but does not open. MERGE: once pg_store.h is here this include is taken.
#if __has_include("server/store/pg_store.h")
#include "server/store/pg_store.h"
#define MEDIC_HAVE_PG_STORE 1
#else
#define MEDIC_HAVE_PG_STORE 0
#endif

namespace medic::server {

namespace {

constexpr std::string_view kForms =
    "give sqlite:PATH or postgres:DSN (a libpq conninfo string or a postgresql:// URI)";

bool IsDriverName(std::string_view s) {
  if (s.empty()) {
    return false;
  }
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) {
      return false;
    }
  }
  return true;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

}  // namespace

std::string_view StoreDriverName(StoreDriver driver) {
  switch (driver) {
    case StoreDriver::kSqlite:
      return "sqlite";
    case StoreDriver::kPostgres:
      return "postgres";
  }
  return "sqlite";
}

Result<StoreUri> ParseStoreUri(std::string_view text) {
  const std::string quoted = "'" + std::string(text) + "'";
  if (text.empty()) {
    return InvalidArgument(std::string("empty store URI: ") + std::string(kForms));
  }
  if (text.find('\0') != std::string_view::npos) {
    return InvalidArgument("store URI contains a NUL byte");
  }
  StoreUri uri;
  const std::string lower = Lower(text.substr(0, std::min<size_t>(text.size(), 16)));
  if (lower.rfind("postgres://", 0) == 0 || lower.rfind("postgresql://", 0) == 0) {
    uri.driver = StoreDriver::kPostgres;
    uri.dsn = std::string(text);
    return uri;
  }
  const size_t colon = text.find(':');
  const std::string_view prefix = text.substr(0, colon == std::string_view::npos ? 0 : colon);
  if (colon == std::string_view::npos || !IsDriverName(prefix)) {
    return InvalidArgument("store URI " + quoted + " has no driver prefix: " + std::string(kForms));
  }
  const std::string driver = Lower(prefix);
  std::string_view rest = text.substr(colon + 1);
  if (driver == "sqlite") {
    if (rest.rfind("//", 0) == 0) {
      rest.remove_prefix(2);  // sqlite:///var/lib/medic/medic.db
    }
    if (rest.empty()) {
      return InvalidArgument("store URI " + quoted +
                             " has an empty path: give sqlite:PATH, e.g. "
                             "sqlite:/var/lib/medic/medic.db");
    }
    uri.driver = StoreDriver::kSqlite;
    uri.path = std::string(rest);
    return uri;
  }
  if (driver == "postgres" || driver == "postgresql") {
    if (rest.find_first_not_of(" \t") == std::string_view::npos) {
      return InvalidArgument("store URI " + quoted +
                             " has an empty DSN: give postgres:DSN, e.g. "
                             "postgres:host=db1 dbname=medic user=medic");
    }
    uri.driver = StoreDriver::kPostgres;
    uri.dsn = std::string(rest);
    return uri;
  }
  return InvalidArgument("store URI " + quoted + " names an unknown driver '" +
                         std::string(prefix) + "': medic knows sqlite and postgres");
}

std::string RedactedStoreUri(const StoreUri& uri) {
  if (uri.driver == StoreDriver::kSqlite) {
    return "sqlite:" + uri.path;
  }
  std::string dsn = uri.dsn;
  // A URI's user:PASSWORD@ (the userinfo ends at the first '@' before the path).
  static const std::regex kUserInfo(R"(^([A-Za-z]+://[^/@:]*):[^/@]*@)");
  dsn = std::regex_replace(dsn, kUserInfo, "$1:***@");
  // password=... in a URI's query.
  static const std::regex kQuery(R"(([?&]password=)[^&]*)", std::regex::icase);
  dsn = std::regex_replace(dsn, kQuery, "$1***");
  // password = value or 'quoted value' in a conninfo string.
  static const std::regex kConninfo(R"((^|\s)(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s']\S*))",
                                    std::regex::icase);
  dsn = std::regex_replace(dsn, kConninfo, "$1$2***");
  const bool bare_uri = dsn.rfind("postgres://", 0) == 0 || dsn.rfind("postgresql://", 0) == 0;
  return bare_uri ? dsn : "postgres:" + dsn;
}

Result<std::unique_ptr<Store>> OpenStoreUri(const StoreUri& uri, const std::string& audit_key,
                                            StoreAccess access) {
  switch (uri.driver) {
    case StoreDriver::kSqlite:
      return access == StoreAccess::kReadOnly ? OpenSqliteStoreReadOnly(uri.path, audit_key)
                                              : OpenSqliteStore(uri.path, audit_key);
    case StoreDriver::kPostgres:
#if MEDIC_HAVE_PG_STORE
      return OpenPostgresStore(uri.dsn, audit_key);
#else
      return FailedPrecondition("cannot open " + RedactedStoreUri(uri) +
                                ": this medic-server was built without the PostgreSQL store");
#endif
  }
  return InvalidArgument("unknown store driver");
}

}  // namespace medic::server
