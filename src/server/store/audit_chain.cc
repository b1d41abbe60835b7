#include "server/store/audit_chain.h"

#include "core/clock.h"
#include "core/sha256.h"

namespace medic::server {

namespace {

void AppendNetstring(std::string& out, std::string_view field) {
  out += std::to_string(field.size());
  out += ':';
  out += field;
  out += ',';
}

}  // namespace

std::string AuditEntryHash(std::string_view key, std::string_view prev_hash,
                           const AuditEntry& entry) {
  std::string msg;
  AppendNetstring(msg, "medic-audit-v1");
  AppendNetstring(msg, prev_hash);
  AppendNetstring(msg, std::to_string(entry.id));
  AppendNetstring(msg, std::to_string(ToUnixMillis(entry.timestamp)));
  AppendNetstring(msg, entry.actor);
  AppendNetstring(msg, entry.action);
  AppendNetstring(msg, entry.detail);
  return HmacSha256Hex(key, msg);
}

AuditVerification VerifyAuditChain(std::string_view key, const std::vector<AuditEntry>& entries) {
  AuditVerification v;
  v.entries = static_cast<int64_t>(entries.size());
  std::string prev(kAuditGenesis);
  for (size_t i = 0; i < entries.size(); ++i) {
    const AuditEntry& e = entries[i];
    std::string why;
    if (e.prev_hash != prev) {
      why = i == 0 ? "entry " + std::to_string(e.id) +
                         " is the oldest but does not start the chain: older entries were "
                         "removed, or it was inserted"
                   : "entry " + std::to_string(e.id) + " does not follow entry " +
                         std::to_string(entries[i - 1].id) +
                         " (its prev_hash is not that entry's hash): an entry between them was "
                         "removed or inserted, or the entries were reordered";
    } else if (AuditEntryHash(key, prev, e) != e.hash) {
      why = "entry " + std::to_string(e.id) +
            " does not match its hash: it was changed, moved to another id, or written without "
            "the audit key";
    }
    if (!why.empty()) {
      v.ok = false;
      v.first_broken = e;
      v.reason = std::move(why);
      return v;
    }
    prev = e.hash;
  }
  v.ok = true;
  v.head = prev;
  return v;
}

}  // namespace medic::server
