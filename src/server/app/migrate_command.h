#pragma once

// `medic-server migrate --from URI --to URI [--audit-key FILE]`: copies a whole installation
// from one store to another (CopyStore, server/store/copy_store.h), compares the two and prints
// the counts per kind. URIs: sqlite:PATH, postgres:DSN (server/store/store_uri.h). The source is
// opened read-only; the target must be empty. docs/STORE.md, "Moving to PostgreSQL".

#include <cstdio>
#include <string>

#include "core/result.h"
#include "server/store/copy_store.h"
#include "server/store/store_uri.h"

namespace medic::server {

// The audit key file to use when --audit-key is not given: audit.key beside a SQLite source
// (its data directory). InvalidArgument for a PostgreSQL source, which has no directory.
Result<std::string> DefaultAuditKeyPath(const StoreUri& from);

// The key in `path` (white space trimmed), as medic-server reads DATA_DIR/audit.key. Errors name
// the file: unreadable, or shorter than 16 characters.
Result<std::string> ReadAuditKeyFile(const std::string& path);

// The summary printed after a copy: one line per kind.
std::string FormatCopyReport(const CopyReport& report);

// Runs the subcommand; argv[0] is "migrate". Prints the summary to `out`, errors (one line,
// "medic-server migrate: ...") to `err`. Returns the exit status: 0 copied and identical,
// 1 the copy failed or differs (the target is then not marked migrated_from), 2 bad arguments
// or a store that cannot be opened.
int RunMigrateCommand(int argc, const char* const* argv, std::FILE* out, std::FILE* err);

}  // namespace medic::server
