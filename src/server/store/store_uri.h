#pragma once

// Where a store lives, as one string (medic-server migrate --from/--to, docs/STORE.md):
//
//   sqlite:PATH                    the SQLite file at PATH (sqlite:///abs/path also works)
//   postgres:DSN, postgresql:DSN   PostgreSQL; DSN is a libpq conninfo string
//                                  ("host=db1 dbname=medic user=medic") or a URI
//   postgres://..., postgresql://...  a libpq URI as it is (the whole string is the DSN)
//
// and the one function that opens any of them.

#include <memory>
#include <string>
#include <string_view>

#include "core/result.h"
#include "server/store/store.h"

namespace medic::server {

enum class StoreDriver { kSqlite, kPostgres };

std::string_view StoreDriverName(StoreDriver driver);  // "sqlite" | "postgres"

struct StoreUri {
  StoreDriver driver = StoreDriver::kSqlite;
  std::string path;  // kSqlite: the database file
  std::string dsn;   // kPostgres: what libpq's PQconnectdb takes
};

// InvalidArgument naming the problem: an empty string, no driver prefix (a bare path), an
// unknown driver, an empty path or DSN, a NUL byte.
Result<StoreUri> ParseStoreUri(std::string_view uri);

// The URI for messages and records, with any PostgreSQL password replaced by "***"
// (password=... in a conninfo string or a URI's query, user:PASSWORD@ in a URI).
std::string RedactedStoreUri(const StoreUri& uri);

enum class StoreAccess {
  kReadWrite,  // created and migrated if needed (what medic-server does)
  // For a copy's source: SQLite is opened read-only and must already have this medic's
  // schema. PostgreSQL is opened as usual (the copy only reads from it).
  kReadOnly,
};

// Opens the store `uri` names, its audit chain keyed by `audit_key` (audit_chain.h).
// A postgres URI needs the PostgreSQL backend (server/store/pg_store.h, OpenPostgresStore);
// a build without it answers FailedPrecondition.
Result<std::unique_ptr<Store>> OpenStoreUri(const StoreUri& uri, const std::string& audit_key,
                                            StoreAccess access);

}  // namespace medic::server
