#pragma once

// The PostgreSQL Store backend (libpq): the store several medic-servers share (issue 15;
// docs/STORE.md, "PostgreSQL backend").

#include <memory>
#include <string>

#include "core/result.h"
#include "server/store/store.h"

namespace medic::server {

// Connects to the PostgreSQL database named by `dsn` (a libpq connection string or URI:
// "host=db1,db2 dbname=medic user=medic target_session_attrs=read-write" or
// "postgresql://medic@db/medic?sslmode=verify-full"), applies pending schema migrations (under
// an advisory lock, so servers starting together apply each migration once) and returns the
// store. `audit_key` keys the audit chain, as for OpenSqliteStore; every server on one database
// must use the same key. Unavailable (naming the host and port, never the password) when the
// database cannot be reached; FailedPrecondition when its schema is newer than this medic.
//
// The store keeps a small pool of connections (kPostgresPoolSize); a connection that broke
// (PostgreSQL restarted) is dropped and a new one is made on the next call, so the store
// recovers by itself once PostgreSQL is back. Calls while it is down return Unavailable.
Result<std::unique_ptr<Store>> OpenPostgresStore(const std::string& dsn,
                                                 const std::string& audit_key);

// Where `dsn` points, for the log: its host, hostaddr, port, dbname and user as given
// ("host=db1 port=5432 dbname=medic user=medic"), and nothing else of it: never the password,
// in whatever form the dsn carries it. "(libpq's defaults)" when it gives none of them.
std::string DescribePostgresDsn(const std::string& dsn);

// Connections a PostgresStore opens at most; callers beyond that wait for one.
inline constexpr int kPostgresPoolSize = 4;

}  // namespace medic::server
