#pragma once

// A whole installation copied from one Store to another, through the Store interface only
// (medic-server migrate, docs/STORE.md "Moving to PostgreSQL"): incidents with their timelines,
// tokens, hosts, host credentials, the audit log, the notification outbox and the settings.
//
// Not copied, by design: enrolment codes and waiting enrolment requests (short-lived: a code
// lives an hour by default and is shown once, so an admin makes a new one; an agent whose request
// waits files it again, with the same key, at its next try, and only an approval not yet
// collected must be given again), and what several servers keep while running (incident
// leases, the cluster bus's messages, alarm states), which the servers rebuild.
//
// The audit log is appended again in order: with the same audit key on both stores the target's
// chain comes out identical, entry for entry, so its head equals the source's.
//
// Neither function takes a lock on the stores: the servers on them must be stopped.

#include <cstdint>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/result.h"
#include "server/store/store.h"

namespace medic::server {

// The setting CopyStore writes last, when everything was copied and compared: {"from": the
// source (a redacted URI), "at": RFC 3339, counts per kind}. A target that holds records but
// not this setting is a copy that did not finish. It is never copied from a source.
inline constexpr std::string_view kMigratedFromSetting = "migrated_from";

// How many records of each kind were copied (or compared).
struct CopyReport {
  int64_t incidents = 0;
  int64_t timeline_entries = 0;
  int64_t tokens = 0;
  int64_t hosts = 0;
  int64_t host_credentials = 0;
  int64_t audit_entries = 0;
  int64_t outbox_rows = 0;
  int64_t settings = 0;    // not counting migrated_from
  std::string audit_head;  // the newest audit entry's hash (64 zeros for an empty log)
};

struct CopyOptions {
  std::string source_label;  // what migrated_from names as the source ("" = "unknown")
  WallTime now;              // migrated_from's "at"
};

// Copies everything in `from` into `to`, then compares the two (CompareStores) and, when they
// are the same, writes kMigratedFromSetting into `to`. `from` is only read.
// Errors (nothing is undone; `to` then lacks kMigratedFromSetting):
//   FailedPrecondition: `to` is not empty (it names what it holds, and whether it is a finished
//     copy or one that stopped); the source's audit chain does not verify with its key (a wrong
//     key, or a damaged log: a copy would re-chain it as intact); the source's audit ids are not
//     1, 2, 3, ... (its chain cannot be reproduced); the copy differs from the source.
//   Otherwise the failing store's error, its message prefixed with what was being copied
//   ("copy incident inc-7 to the target: ...").
Result<CopyReport> CopyStore(Store& from, Store& to, const CopyOptions& options = {});

// Reads both stores completely and compares every record of every kind, field by field (times
// at millisecond precision), and the audit chains (each entry's hashes; the target's
// VerifyAudit must pass with the source's head). kMigratedFromSetting is left out.
// FailedPrecondition naming the first difference ("incident inc-7: timeline[3].detail differs").
Result<CopyReport> CompareStores(Store& from, Store& to);

// OK when `store` holds no incident, token, host, host credential, audit entry, outbox row or
// setting; FailedPrecondition saying what it holds otherwise.
Status CheckStoreEmpty(Store& store);

}  // namespace medic::server
