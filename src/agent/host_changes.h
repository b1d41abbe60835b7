#pragma once

// What changed on this host within a window (the host.changes diagnostic; docs/AUTONOMY.md
// "What changed"): packages installed, upgraded or removed (dpkg's log), services started or
// exited (the service manager's own record), config files modified under the watched paths
// (mtime, size, sha256), and the last boot. Read from files only, never by running a program,
// under a root prefix a test can point at a sandbox. Every part is bounded: the bytes of
// dpkg.log read, the directory entries walked, the files hashed and their bytes, the lines kept.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "agent/service_manager.h"
#include "core/clock.h"

namespace medic::agent {

struct ChangesOptions {
  std::string root = "/";                         // every path below is read under it
  std::vector<std::string> watch_paths = {"/etc"};  // config files: absolute, under root
  uint64_t max_dpkg_bytes = 4ull << 20;   // the tail of dpkg.log that is read
  size_t max_entries_walked = 20'000;     // directory entries looked at, all watch paths
  int max_depth = 12;                     // directories below a watch path
  size_t max_files_hashed = 64;
  uint64_t max_hash_bytes = 1ull << 20;   // a larger file is listed with its size, not hashed
  uint64_t max_total_hash_bytes = 16ull << 20;
  size_t max_lines = 50;                  // entries kept per section (the newest)
};

// One line of dpkg.log that changed a package.
struct PackageChange {
  WallTime at;
  std::string action;  // install | upgrade | remove | purge
  std::string package;  // with its architecture, as logged ("nginx:amd64")
  std::string old_version;
  std::string new_version;
};

// The package changes in `text` (dpkg.log: "YYYY-MM-DD HH:MM:SS ACTION PKG OLD NEW", local
// time) at or after `since`, oldest first. Lines of other kinds (status, configure, startup,
// trigproc) are not changes; a line that is none of these and does not parse is counted in
// `malformed`. Pure (but for the local time zone).
std::vector<PackageChange> ParseDpkgLog(std::string_view text, WallTime since, size_t* malformed);

// `t` as dpkg.log stamps it: "YYYY-MM-DD HH:MM:SS" in local time (what ParseDpkgLog reads).
std::string FormatDpkgTime(WallTime t);

// The whole report, as text (what the diagnostic prints): the window ending at `now`, then one
// section per kind of change. `services` is the service manager's view of each service.
std::string CollectHostChanges(const ChangesOptions& options, WallTime now, Millis window,
                               const std::vector<ServiceStatus>& services);

}  // namespace medic::agent
