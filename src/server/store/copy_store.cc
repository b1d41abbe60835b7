#include "server/store/copy_store.h"

#include <optional>
#include <utility>
#include <vector>

#include "core/json.h"
#include "server/store/audit_chain.h"

namespace medic::server {

namespace {

constexpr int kPage = 1000;  // the largest page every Store method returns

Error Prefixed(const Error& e, const std::string& what) {
  return Error{e.code, what + ": " + e.message};
}

Error Differs(const std::string& what) {
  return FailedPrecondition("the target differs from the source: " + what);
}

bool SameTime(WallTime a, WallTime b) { return ToUnixMillis(a) == ToUnixMillis(b); }

// The first field of `b` that is not `a`'s, or "".
std::string IncidentDifference(const Incident& a, const Incident& b) {
  if (a.incident_id != b.incident_id) {
    return "incident_id";
  }
  if (a.alarm_name != b.alarm_name) {
    return "alarm_name";
  }
  if (a.alarm_description != b.alarm_description) {
    return "alarm_description";
  }
  if (a.instance_id != b.instance_id) {
    return "instance_id";
  }
  if (a.status != b.status) {
    return "status";
  }
  if (a.diagnostics != b.diagnostics) {
    return "diagnostics";
  }
  if (a.ai_suggestion != b.ai_suggestion) {
    return "ai_suggestion";
  }
  if (a.ai_reasoning != b.ai_reasoning) {
    return "ai_reasoning";
  }
  if (a.remediation_output != b.remediation_output) {
    return "remediation_output";
  }
  if (a.action != b.action) {
    return "action";
  }
  if (a.reason != b.reason) {
    return "reason";
  }
  if (a.ai_usage != b.ai_usage) {
    return "ai_usage";
  }
  if (!SameTime(a.created_at, b.created_at)) {
    return "created_at";
  }
  if (!SameTime(a.updated_at, b.updated_at)) {
    return "updated_at";
  }
  if (a.resolved_at.has_value() != b.resolved_at.has_value() ||
      (a.resolved_at && !SameTime(*a.resolved_at, *b.resolved_at))) {
    return "resolved_at";
  }
  if (a.timeline.size() != b.timeline.size()) {
    return "timeline length (" + std::to_string(a.timeline.size()) + " in the source, " +
           std::to_string(b.timeline.size()) + " in the target)";
  }
  for (size_t i = 0; i < a.timeline.size(); ++i) {
    const TimelineEntry& x = a.timeline[i];
    const TimelineEntry& y = b.timeline[i];
    const std::string at = "timeline[" + std::to_string(i) + "].";
    if (x.event != y.event) {
      return at + "event";
    }
    if (!SameTime(x.timestamp, y.timestamp)) {
      return at + "timestamp";
    }
    if (x.actor != y.actor) {
      return at + "actor";
    }
    if (x.detail != y.detail) {
      return at + "detail";
    }
  }
  return "";
}

std::string AuditDifference(const AuditEntry& a, const AuditEntry& b) {
  if (a.id != b.id) {
    return "id";
  }
  if (!SameTime(a.timestamp, b.timestamp)) {
    return "timestamp";
  }
  if (a.actor != b.actor) {
    return "actor";
  }
  if (a.action != b.action) {
    return "action";
  }
  if (a.detail != b.detail) {
    return "detail";
  }
  if (a.prev_hash != b.prev_hash) {
    return "prev_hash";
  }
  if (a.hash != b.hash) {
    return "hash";
  }
  return "";
}

std::string OutboxDifference(const OutboxRecord& a, const OutboxRecord& b) {
  if (a.key != b.key) {
    return "key";
  }
  if (a.channel != b.channel) {
    return "channel";
  }
  if (a.event != b.event) {
    return "event";
  }
  if (a.incident_id != b.incident_id) {
    return "incident_id";
  }
  if (a.payload != b.payload) {
    return "payload";
  }
  if (a.state != b.state) {
    return "state";
  }
  if (a.attempts != b.attempts) {
    return "attempts";
  }
  if (!SameTime(a.created_at, b.created_at)) {
    return "created_at";
  }
  if (!SameTime(a.next_attempt_at, b.next_attempt_at)) {
    return "next_attempt_at";
  }
  if (a.last_error != b.last_error) {
    return "last_error";
  }
  return "";
}

// Every setting but kMigratedFromSetting, by key.
Result<std::vector<std::pair<std::string, std::string>>> CopiedSettings(Store& store) {
  ASSIGN_OR_RETURN(auto all, store.ListSettings());
  std::vector<std::pair<std::string, std::string>> out;
  for (auto& kv : all) {
    if (kv.first != kMigratedFromSetting) {
      out.push_back(std::move(kv));
    }
  }
  return out;
}

// Reads one kind from both stores (`read` gives a store's complete list) and compares them
// element by element with `differ` (returns "" or the first differing field) and `name`.
template <typename Read, typename Differ, typename Name>
Result<int64_t> CompareLists(Store& from, Store& to, const std::string& kind, Read read,
                             Differ differ, Name name) {
  auto a = read(from);
  if (!a) {
    return Prefixed(a.error(), "read the source's " + kind);
  }
  auto b = read(to);
  if (!b) {
    return Prefixed(b.error(), "read the target's " + kind);
  }
  for (size_t i = 0; i < a->size() && i < b->size(); ++i) {
    if (std::string d = differ((*a)[i], (*b)[i]); !d.empty()) {
      return Differs(kind + " " + name((*a)[i]) + ": " + d + " differs");
    }
  }
  if (a->size() != b->size()) {
    return Differs(kind + ": " + std::to_string(a->size()) + " in the source, " +
                   std::to_string(b->size()) + " in the target");
  }
  return static_cast<int64_t>(a->size());
}

}  // namespace

Status CheckStoreEmpty(Store& store) {
  std::vector<std::string> holds;
  auto note = [&holds](const std::string& kind, size_t n, bool more) {
    if (n > 0) {
      holds.push_back(std::to_string(n) + (more ? "+ " : " ") + kind);
    }
  };
  IncidentQuery q;
  q.limit = kPage;
  ASSIGN_OR_RETURN(const std::vector<Incident> incidents, store.ListIncidents(q));
  note("incidents", incidents.size(), incidents.size() >= static_cast<size_t>(kPage));
  ASSIGN_OR_RETURN(const std::vector<TokenRecord> tokens, store.ListTokens());
  note("tokens", tokens.size(), false);
  ASSIGN_OR_RETURN(const std::vector<HostRecord> hosts, store.ListHosts());
  note("hosts", hosts.size(), false);
  ASSIGN_OR_RETURN(const std::vector<HostCredentialRecord> creds, store.ListHostCredentials());
  note("host credentials", creds.size(), false);
  ASSIGN_OR_RETURN(const AuditVerification audit, store.VerifyAudit());
  note("audit entries", static_cast<size_t>(audit.entries), false);
  ASSIGN_OR_RETURN(const std::vector<OutboxRecord> outbox, store.ListOutboxAfter("", kPage));
  note("outbox rows", outbox.size(), outbox.size() >= static_cast<size_t>(kPage));
  ASSIGN_OR_RETURN(const auto settings, store.ListSettings());
  note("settings", settings.size(), false);
  if (holds.empty()) {
    return OkStatus();
  }
  std::string what;
  for (const std::string& h : holds) {
    what += (what.empty() ? "" : ", ") + h;
  }
  ASSIGN_OR_RETURN(const std::optional<std::string> migrated,
                   store.GetSetting(std::string(kMigratedFromSetting)));
  const std::string state =
      migrated ? "it holds a finished copy (migrated_from: " + *migrated + ")"
               : "it has no migrated_from setting, so if it is a copy, that copy did not finish";
  return FailedPrecondition("the target is not empty (" + what + "); " + state +
                            ". medic-server migrate copies into an empty store only: empty it "
                            "(drop and create the database, or remove the file) and run again");
}

Result<CopyReport> CompareStores(Store& from, Store& to) {
  CopyReport report;

  // Incidents, page by page in the listing's order (both stores order alike).
  IncidentQuery qa;
  qa.limit = kPage;
  IncidentQuery qb = qa;
  for (;;) {
    auto a = from.ListIncidents(qa);
    if (!a) {
      return Prefixed(a.error(), "read the source's incidents");
    }
    auto b = to.ListIncidents(qb);
    if (!b) {
      return Prefixed(b.error(), "read the target's incidents");
    }
    for (size_t i = 0; i < a->size() && i < b->size(); ++i) {
      const Incident& x = (*a)[i];
      const Incident& y = (*b)[i];
      if (x.incident_id != y.incident_id) {
        return Differs("incident " + x.incident_id + " is missing from the target (found " +
                       y.incident_id + " in its place)");
      }
      if (std::string d = IncidentDifference(x, y); !d.empty()) {
        return Differs("incident " + x.incident_id + ": " + d + " differs");
      }
      ++report.incidents;
      report.timeline_entries += static_cast<int64_t>(x.timeline.size());
    }
    if (a->size() != b->size()) {
      return Differs(a->size() > b->size()
                         ? "incident " + (*a)[b->size()].incident_id + " is missing from the target"
                         : "incident " + (*b)[a->size()].incident_id +
                               " is in the target, not in the source");
    }
    if (a->empty()) {
      break;
    }
    qa.before = IncidentQuery::Cursor{a->back().created_at, a->back().incident_id};
    qb.before = IncidentQuery::Cursor{b->back().created_at, b->back().incident_id};
  }

  ASSIGN_OR_RETURN(report.tokens,
                   CompareLists(
                       from, to, "tokens", [](Store& s) { return s.ListTokens(); },
                       [](const TokenRecord& a, const TokenRecord& b) -> std::string {
                         if (a.name != b.name) {
                           return "name";
                         }
                         if (a.role != b.role) {
                           return "role";
                         }
                         if (a.token_hash != b.token_hash) {
                           return "token_hash";
                         }
                         if (!SameTime(a.created_at, b.created_at)) {
                           return "created_at";
                         }
                         if (a.created_by != b.created_by) {
                           return "created_by";
                         }
                         return "";
                       },
                       [](const TokenRecord& t) { return t.name; }));
  ASSIGN_OR_RETURN(report.hosts, CompareLists(
                                     from, to, "hosts", [](Store& s) { return s.ListHosts(); },
                                     [](const HostRecord& a, const HostRecord& b) -> std::string {
                                       if (a.name != b.name) {
                                         return "name";
                                       }
                                       if (a.facts != b.facts) {
                                         return "facts";
                                       }
                                       if (!SameTime(a.registered_at, b.registered_at)) {
                                         return "registered_at";
                                       }
                                       if (!SameTime(a.last_seen, b.last_seen)) {
                                         return "last_seen";
                                       }
                                       return "";
                                     },
                                     [](const HostRecord& h) { return h.name; }));
  ASSIGN_OR_RETURN(
      report.host_credentials,
      CompareLists(
          from, to, "host credentials", [](Store& s) { return s.ListHostCredentials(); },
          [](const HostCredentialRecord& a, const HostCredentialRecord& b) -> std::string {
            if (a.name != b.name) {
              return "name";
            }
            if (a.secret_hash != b.secret_hash) {
              return "secret_hash";
            }
            if (!SameTime(a.issued_at, b.issued_at)) {
              return "issued_at";
            }
            if (a.issued_by != b.issued_by) {
              return "issued_by";
            }
            return "";
          },
          [](const HostCredentialRecord& c) { return c.name; }));
  ASSIGN_OR_RETURN(report.settings,
                   CompareLists(
                       from, to, "settings", [](Store& s) { return CopiedSettings(s); },
                       [](const auto& a, const auto& b) -> std::string {
                         if (a.first != b.first) {
                           return "key";
                         }
                         if (a.second != b.second) {
                           return "value";
                         }
                         return "";
                       },
                       [](const auto& kv) { return kv.first; }));

  // The audit log, entry by entry (hashes included), then the target's own verification.
  int64_t after = 0;
  for (;;) {
    auto a = from.ListAuditAfter(after, kPage);
    if (!a) {
      return Prefixed(a.error(), "read the source's audit log");
    }
    auto b = to.ListAuditAfter(after, kPage);
    if (!b) {
      return Prefixed(b.error(), "read the target's audit log");
    }
    for (size_t i = 0; i < a->size() && i < b->size(); ++i) {
      if (std::string d = AuditDifference((*a)[i], (*b)[i]); !d.empty()) {
        return Differs("audit entry " + std::to_string((*a)[i].id) + ": " + d + " differs");
      }
      ++report.audit_entries;
    }
    if (a->size() != b->size()) {
      return Differs("the audit log has " + std::string(a->size() > b->size() ? "fewer" : "more") +
                     " entries in the target after entry " +
                     std::to_string(after + static_cast<int64_t>(std::min(a->size(), b->size()))));
    }
    if (a->empty()) {
      break;
    }
    after = a->back().id;
  }
  auto va = from.VerifyAudit();
  if (!va) {
    return Prefixed(va.error(), "verify the source's audit log");
  }
  auto vb = to.VerifyAudit();
  if (!vb) {
    return Prefixed(vb.error(), "verify the target's audit log");
  }
  if (!vb->ok) {
    return Differs("the target's audit log does not verify (entry " +
                   std::to_string(vb->first_broken ? vb->first_broken->id : 0) + ": " + vb->reason +
                   "): is it keyed with the source's audit key?");
  }
  if (!va->ok || vb->head != va->head) {
    return Differs("the audit head is " + vb->head + " in the target, " +
                   (va->ok ? va->head : std::string("broken")) + " in the source");
  }
  report.audit_head = vb->head;

  // The outbox, page by page by key.
  std::string after_key;
  for (;;) {
    auto a = from.ListOutboxAfter(after_key, kPage);
    if (!a) {
      return Prefixed(a.error(), "read the source's outbox");
    }
    auto b = to.ListOutboxAfter(after_key, kPage);
    if (!b) {
      return Prefixed(b.error(), "read the target's outbox");
    }
    for (size_t i = 0; i < a->size() && i < b->size(); ++i) {
      if (std::string d = OutboxDifference((*a)[i], (*b)[i]); !d.empty()) {
        return Differs("outbox row " + (*a)[i].key + ": " + d + " differs");
      }
      ++report.outbox_rows;
    }
    if (a->size() != b->size()) {
      return Differs("the outbox has " + std::string(a->size() > b->size() ? "fewer" : "more") +
                     " rows in the target");
    }
    if (a->empty()) {
      break;
    }
    after_key = a->back().key;
  }
  return report;
}

Result<CopyReport> CopyStore(Store& from, Store& to, const CopyOptions& options) {
  if (Status s = CheckStoreEmpty(to); !s) {
    return s.error().code == ErrorCode::kFailedPrecondition
               ? s.error()
               : Prefixed(s.error(), "read the target");
  }
  // A log that does not verify would come out re-chained, intact: refuse rather than launder it.
  auto verified = from.VerifyAudit();
  if (!verified) {
    return Prefixed(verified.error(), "verify the source's audit log");
  }
  if (!verified->ok) {
    return FailedPrecondition(
        "the source's audit log does not verify with the given audit key (entry " +
        std::to_string(verified->first_broken ? verified->first_broken->id : 0) + ": " +
        verified->reason +
        "): pass the source's own audit.key (--audit-key); a damaged log is not copied, "
        "since the copy would chain it again as intact");
  }

  CopyReport report;
  IncidentQuery q;
  q.limit = kPage;
  for (;;) {
    auto page = from.ListIncidents(q);
    if (!page) {
      return Prefixed(page.error(), "read the source's incidents");
    }
    if (page->empty()) {
      break;
    }
    for (const Incident& inc : *page) {
      if (Status s = to.CreateIncident(inc); !s) {
        return Prefixed(s.error(), "copy incident " + inc.incident_id + " to the target");
      }
      ++report.incidents;
      report.timeline_entries += static_cast<int64_t>(inc.timeline.size());
    }
    q.before = IncidentQuery::Cursor{page->back().created_at, page->back().incident_id};
  }

  auto tokens = from.ListTokens();
  if (!tokens) {
    return Prefixed(tokens.error(), "read the source's tokens");
  }
  for (const TokenRecord& t : *tokens) {
    if (Status s = to.CreateToken(t); !s) {
      return Prefixed(s.error(), "copy token " + t.name + " to the target");
    }
    ++report.tokens;
  }

  auto hosts = from.ListHosts();
  if (!hosts) {
    return Prefixed(hosts.error(), "read the source's hosts");
  }
  for (const HostRecord& h : *hosts) {
    if (Status s = to.PutHost(h); !s) {
      return Prefixed(s.error(), "copy host " + h.name + " to the target");
    }
    ++report.hosts;
  }

  auto creds = from.ListHostCredentials();
  if (!creds) {
    return Prefixed(creds.error(), "read the source's host credentials");
  }
  for (const HostCredentialRecord& c : *creds) {
    if (Status s = to.PutHostCredential(c); !s) {
      return Prefixed(s.error(), "copy the credential of host " + c.name + " to the target");
    }
    ++report.host_credentials;
  }

  // The audit log, oldest first. The target numbers and chains each entry as the source did,
  // which reproduces the source's hashes only if its ids are 1, 2, 3, ...
  int64_t after = 0;
  for (;;) {
    auto page = from.ListAuditAfter(after, kPage);
    if (!page) {
      return Prefixed(page.error(),
                      "read the source's audit log after entry " + std::to_string(after));
    }
    if (page->empty()) {
      break;
    }
    for (const AuditEntry& e : *page) {
      if (e.id != report.audit_entries + 1) {
        return FailedPrecondition("the source's audit entries are not numbered 1, 2, 3, ... (" +
                                  std::to_string(e.id) + " follows " +
                                  std::to_string(report.audit_entries) +
                                  "): the target could not reproduce its chain");
      }
      if (Status s = to.AppendAudit(e); !s) {
        return Prefixed(s.error(), "copy audit entry " + std::to_string(e.id) + " to the target");
      }
      ++report.audit_entries;
    }
    after = page->back().id;
  }

  std::string after_key;
  for (;;) {
    auto page = from.ListOutboxAfter(after_key, kPage);
    if (!page) {
      return Prefixed(page.error(), "read the source's outbox");
    }
    if (page->empty()) {
      break;
    }
    auto added = to.EnqueueOutbox(*page);
    if (!added) {
      return Prefixed(added.error(),
                      "copy outbox rows from " + page->front().key + " to the target");
    }
    if (*added != static_cast<int>(page->size())) {
      return FailedPrecondition("copy outbox rows from " + page->front().key +
                                ": the target took " + std::to_string(*added) + " of " +
                                std::to_string(page->size()));
    }
    report.outbox_rows += *added;
    after_key = page->back().key;
  }

  // Settings last but one (the kill switch and approval mode arrive with everything else).
  auto settings = CopiedSettings(from);
  if (!settings) {
    return Prefixed(settings.error(), "read the source's settings");
  }
  for (const auto& [key, value] : *settings) {
    if (Status s = to.PutSetting(key, value); !s) {
      return Prefixed(s.error(), "copy setting " + key + " to the target");
    }
    ++report.settings;
  }
  report.audit_head = verified->head;

  // Both read back completely and compared: a difference (a server still writing to the source,
  // a backend that lost something) fails the copy before it is marked finished.
  if (Result<CopyReport> compared = CompareStores(from, to); !compared) {
    return compared.error();
  }

  // Last: the mark of a finished, verified copy.
  Json mark{{"from", options.source_label.empty() ? "unknown" : options.source_label},
            {"at", FormatRfc3339(options.now)},
            {"incidents", report.incidents},
            {"audit_entries", report.audit_entries},
            {"audit_head", report.audit_head}};
  if (Status s = to.PutSetting(std::string(kMigratedFromSetting), DumpJson(mark)); !s) {
    return Prefixed(s.error(), "write the migrated_from setting to the target");
  }
  return report;
}

}  // namespace medic::server
