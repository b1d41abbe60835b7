#include "server/app/migrate_command.h"

#include <CLI/CLI.hpp>
#include <filesystem>
#include <system_error>

#include "core/clock.h"
#include "core/files.h"

namespace medic::server {

Result<std::string> DefaultAuditKeyPath(const StoreUri& from) {
  if (from.driver != StoreDriver::kSqlite) {
    return InvalidArgument("--audit-key FILE is needed for a " +
                           std::string(StoreDriverName(from.driver)) +
                           " source: the audit.key of the servers that wrote it");
  }
  const std::filesystem::path dir = std::filesystem::path(from.path).parent_path();
  return (dir.empty() ? std::filesystem::path("audit.key") : dir / "audit.key").string();
}

Result<std::string> ReadAuditKeyFile(const std::string& path) {
  Result<std::string> text = ReadFile(path);
  if (!text) {
    return InvalidArgument("cannot read the audit key " + path + ": " + text.error().message +
                           " (pass the source's audit.key with --audit-key FILE)");
  }
  const std::string key(Trim(*text));
  if (key.size() < 16) {
    return InvalidArgument(path + " holds an audit key shorter than 16 characters");
  }
  return key;
}

std::string FormatCopyReport(const CopyReport& r) {
  auto line = [](const char* kind, int64_t n, const std::string& more = "") {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "  %-18s%lld", kind, static_cast<long long>(n));
    return std::string(buf) + more + "\n";
  };
  return line("incidents", r.incidents,
              " (timeline entries " + std::to_string(r.timeline_entries) + ")") +
         line("tokens", r.tokens) + line("hosts", r.hosts) +
         line("host credentials", r.host_credentials) +
         line("audit entries", r.audit_entries, " (head " + r.audit_head + ")") +
         line("outbox rows", r.outbox_rows) + line("settings", r.settings);
}

namespace {

bool SameFile(const StoreUri& a, const StoreUri& b) {
  if (a.driver != StoreDriver::kSqlite || b.driver != StoreDriver::kSqlite) {
    return a.driver == b.driver && a.dsn == b.dsn;
  }
  std::error_code ec;
  return a.path == b.path || std::filesystem::equivalent(a.path, b.path, ec);
}

}  // namespace

int RunMigrateCommand(int argc, const char* const* argv, std::FILE* out, std::FILE* err) {
  std::string from_text;
  std::string to_text;
  std::string key_file;
  CLI::App app{
      "medic-server migrate: copy a whole installation (incidents and timelines, settings, "
      "tokens, hosts, host credentials, the audit log, the notification outbox) into an empty "
      "store, then compare the two. Stop the medic-server on the source first."};
  app.name("medic-server migrate");
  app.add_option("--from", from_text, "the source: sqlite:PATH (opened read-only) or postgres:DSN")
      ->required();
  app.add_option("--to", to_text,
                 "the target, empty: postgres:DSN (a libpq conninfo string or a postgresql:// "
                 "URI) or sqlite:PATH")
      ->required();
  app.add_option("--audit-key", key_file,
                 "the source's audit key (default: audit.key beside a SQLite source, i.e. its "
                 "data directory); the target's servers use the same key");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);  // the help to stdout, or the error to stderr
  }
  auto fail = [err](int code, const std::string& message) {
    std::fprintf(err, "medic-server migrate: %s\n", message.c_str());
    return code;
  };

  Result<StoreUri> from = ParseStoreUri(from_text);
  if (!from) {
    return fail(2, "--from: " + from.error().message);
  }
  Result<StoreUri> to = ParseStoreUri(to_text);
  if (!to) {
    return fail(2, "--to: " + to.error().message);
  }
  if (SameFile(*from, *to)) {
    return fail(2, "--from and --to name the same store");
  }
  if (key_file.empty()) {
    Result<std::string> path = DefaultAuditKeyPath(*from);
    if (!path) {
      return fail(2, path.error().message);
    }
    key_file = *path;
  }
  Result<std::string> key = ReadAuditKeyFile(key_file);
  if (!key) {
    return fail(2, key.error().message);
  }
  // The source first: a source that does not open leaves no target file behind.
  Result<std::unique_ptr<Store>> source = OpenStoreUri(*from, *key, StoreAccess::kReadOnly);
  if (!source) {
    return fail(2, "the source: " + source.error().message);
  }
  Result<std::unique_ptr<Store>> target = OpenStoreUri(*to, *key, StoreAccess::kReadWrite);
  if (!target) {
    return fail(2, "the target: " + target.error().message);
  }
  const std::string from_label = RedactedStoreUri(*from);
  const std::string to_label = RedactedStoreUri(*to);
  SystemClock clock;
  Result<CopyReport> report = CopyStore(**source, **target, CopyOptions{from_label, clock.Now()});
  if (!report) {
    return fail(1,
                "copying " + from_label + " to " + to_label + " failed: " + report.error().message);
  }
  std::fprintf(out, "medic-server migrate: copied %s to %s; read back and compared: identical\n%s",
               from_label.c_str(), to_label.c_str(), FormatCopyReport(*report).c_str());
  return 0;
}

}  // namespace medic::server
