#pragma once

// The audit log's hash chain (docs/STORE.md, "The audit chain"), shared by every Store backend:
// each entry carries
//
//   hash = HMAC-SHA256(key, "medic-audit-v1" || prev_hash || id || timestamp || actor ||
//                           action || detail)        (each field a netstring: "LEN:BYTES,")
//
// where prev_hash is the hash of the entry before it (kAuditGenesis for the first) and key is
// the server's audit key (DATA_DIR/audit.key), which the database does not hold. Whoever edits,
// removes, inserts or reorders rows without the key cannot make the chain whole again; see
// docs/STORE.md for what it does not protect against (the newest entries removed, the key read).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/store/store.h"

namespace medic::server {

// prev_hash of the first entry: 64 zeros.
inline constexpr std::string_view kAuditGenesis =
    "0000000000000000000000000000000000000000000000000000000000000000";

// The hash of `entry` (its id, timestamp at millisecond precision, actor, action, detail) when
// it follows an entry whose hash is `prev_hash`.
std::string AuditEntryHash(std::string_view key, std::string_view prev_hash,
                           const AuditEntry& entry);

// Walks `entries` (oldest first, as stored) and reports the first one that breaks the chain:
// a prev_hash that is not the hash of the entry before it (an entry removed, inserted or
// moved), or a hash that does not match the entry's own fields (an edit, or a row written
// without the key).
AuditVerification VerifyAuditChain(std::string_view key, const std::vector<AuditEntry>& entries);

}  // namespace medic::server
