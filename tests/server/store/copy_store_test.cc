// CopyStore (medic-server migrate's copy, server/store/copy_store.h) and the store URIs
// (store_uri.h): a populated store copied into MemoryStore and into a SQLite file reads back
// identical, field by field; the audit chain comes out with the same hashes; a target that is
// not empty is refused and left alone; a store error midway names what failed and leaves the
// target unmarked; CompareStores finds each kind of difference.

#include "server/store/copy_store.h"

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/files.h"
#include "core/json.h"
#include "server/store/store.h"
#include "server/store/store_uri.h"
#include "tests/fakes/faulty_store.h"
#include "tests/fakes/memory_store.h"
#include "tests/fakes/temp_dir.h"

namespace medic::server {
namespace {

using test::FaultyStore;
using test::MemoryStore;
using test::StoreOp;

constexpr int64_t kT0 = 1'800'000'000'000;  // 2027-01-15, unix ms
constexpr char kKey[] = "0123456789abcdef-the-audit-key";

WallTime Ms(int64_t ms) { return FromUnixMillis(ms); }

constexpr IncidentStatus kStatuses[] = {
    IncidentStatus::kDiagnosing, IncidentStatus::kPendingApproval, IncidentStatus::kExecuting,
    IncidentStatus::kCompleted,  IncidentStatus::kFailed,          IncidentStatus::kTimeout,
    IncidentStatus::kRejected};

// How much to put in: the memory variant goes past every page of 1,000.
struct Size {
  int plain_incidents = 0;  // small closed incidents beyond the rich ones
  int audit_entries = 0;
  int outbox_rows = 0;
};

// An incident with every field set and a timeline of `events` entries (unicode, JSON, ties).
Incident RichIncident(int n, IncidentStatus status, int events) {
  Incident inc;
  inc.incident_id = "inc-" + std::to_string(1000 + n);
  inc.alarm_name = n % 2 == 0 ? "Disk-Critical-ASG" : "Nginx-Down-ALB";
  inc.alarm_description = "disk ≥ 85 % on wëb-" + std::to_string(n) + " — 💾";
  inc.instance_id = "web-" + std::to_string(n);
  inc.status = status;
  inc.diagnostics = "df -h\n/dev/vda 100G 95G 5G 95% /\n日本語のログ\n\ttab";
  inc.ai_suggestion = "log.archive_truncate path=/var/log/app-" + std::to_string(n) + ".log";
  inc.ai_reasoning = "the log is 60 GB; 'quotes' and \"double\" and \\backslash";
  inc.remediation_output = IsOpen(status) ? "" : "truncated 60 GB\nexit 0";
  inc.action = Json{{"name", "log.archive_truncate"},
                    {"params", {{"path", "/var/log/app.log"}, {"older_than", "7d"}}},
                    {"nested", Json::array({1, 2.5, "três", nullptr, true})}};
  inc.reason = status == IncidentStatus::kRejected ? "operator: не сейчас" : "";
  inc.ai_usage = Json{{"provider", "openai"}, {"model", "m"}, {"input_tokens", 1200 + n}};
  // Every third one shares its created_at with the one before: ties in the listing's order.
  inc.created_at = Ms(kT0 + (n / 3) * 1000);
  inc.updated_at = Ms(kT0 + (n / 3) * 1000 + 777);
  if (!IsOpen(status)) {
    inc.resolved_at = Ms(kT0 + (n / 3) * 1000 + 999);
  }
  for (int e = 0; e < events; ++e) {
    inc.timeline.push_back({e == 0 ? "created" : "step_" + std::to_string(e),
                            Ms(kT0 + (n / 3) * 1000 + e), e % 2 ? "agent:web-1" : "admin",
                            "détail n°" + std::to_string(e) + (e % 5 == 0 ? "" : " ✓")});
  }
  return inc;
}

// Fills `store` with every kind of record.
void Populate(Store& store, const Size& size) {
  int n = 0;
  for (IncidentStatus status : kStatuses) {
    for (int i = 0; i < 3; ++i, ++n) {
      ASSERT_TRUE(store.CreateIncident(RichIncident(n, status, 25 + n)).has_value()) << n;
    }
  }
  for (int i = 0; i < size.plain_incidents; ++i) {
    Incident inc = RichIncident(100 + i, IncidentStatus::kCompleted, 2);
    inc.incident_id = "plain-" + std::to_string(i);
    inc.created_at = Ms(kT0 + 50'000 + i / 4);  // many ties across page boundaries
    ASSERT_TRUE(store.CreateIncident(inc).has_value()) << i;
  }
  ASSERT_TRUE(store.PutSetting("approval_mode", "true").has_value());
  ASSERT_TRUE(store.PutSetting("automation_paused", "false").has_value());
  ASSERT_TRUE(store.PutSetting("notify.since.webhook", "\"2027-01-15T08:00:00Z\"").has_value());
  ASSERT_TRUE(store.PutSetting("ünïcode ✓", "{\"x\":\"ÿ\"}").has_value());
  const std::pair<const char*, const char*> tokens[] = {
      {"admin", "admin"}, {"ops-bot", "operator"}, {"grafana", "viewer"}, {"am", "ingest"}};
  int t = 0;
  for (const auto& [name, role] : tokens) {
    ASSERT_TRUE(store
                    .CreateToken({name, role, std::string(63, 'a') + std::to_string(t),
                                  Ms(kT0 + t * 11), t == 0 ? "medic" : "admin"})
                    .has_value());
    ++t;
  }
  for (int h = 0; h < 3; ++h) {
    const std::string name = "web-" + std::to_string(h);
    ASSERT_TRUE(
        store
            .PutHost({name, Json{{"name", name}, {"version", "1.4"}, {"labels", {{"tier", "fr"}}}},
                      Ms(kT0 + h), Ms(kT0 + 60'000 + h)})
            .has_value());
    if (h < 2) {
      ASSERT_TRUE(store
                      .PutHostCredential({name, std::string(63, 'c') + std::to_string(h),
                                          Ms(kT0 + 5 + h), h == 0 ? "code:admin" : "approval:ops"})
                      .has_value());
    }
  }
  for (int a = 0; a < size.audit_entries; ++a) {
    ASSERT_TRUE(store
                    .AppendAudit({Ms(kT0 + a * 3), a % 3 == 0 ? "admin" : "ops-bot",
                                  a % 2 == 0 ? "incident.approve" : "settings.update",
                                  "entry " + std::to_string(a) + (a % 7 == 0 ? " — é" : "")})
                    .has_value());
  }
  std::vector<OutboxRecord> rows;
  for (int o = 0; o < size.outbox_rows; ++o) {
    OutboxRecord r;
    r.key = "inc-" + std::to_string(1000 + o % 21) + ":" + std::to_string(o) + ":opened:webhook";
    r.channel = o % 3 == 0 ? "slack" : "webhook";
    r.event = "incident_opened";
    r.incident_id = "inc-" + std::to_string(1000 + o % 21);
    r.payload = "{\"n\":" + std::to_string(o) + ",\"t\":\"é\"}";
    r.state = o % 3 == 0   ? OutboxState::kPending
              : o % 3 == 1 ? OutboxState::kSent
                           : OutboxState::kDead;
    r.attempts = o % 5;
    r.created_at = Ms(kT0 + o);
    r.next_attempt_at = Ms(kT0 + 10'000 + o);
    r.last_error = o % 3 == 2 ? "HTTP 410 from https://hooks.example/é" : "";
    rows.push_back(std::move(r));
  }
  if (!rows.empty()) {
    Result<int> added = store.EnqueueOutbox(rows);
    ASSERT_TRUE(added.has_value());
    ASSERT_EQ(*added, size.outbox_rows);
  }
}

void ExpectSameIncident(const Incident& a, const Incident& b) {
  SCOPED_TRACE(a.incident_id);
  EXPECT_EQ(a.incident_id, b.incident_id);
  EXPECT_EQ(a.alarm_name, b.alarm_name);
  EXPECT_EQ(a.alarm_description, b.alarm_description);
  EXPECT_EQ(a.instance_id, b.instance_id);
  EXPECT_EQ(a.status, b.status);
  EXPECT_EQ(a.diagnostics, b.diagnostics);
  EXPECT_EQ(a.ai_suggestion, b.ai_suggestion);
  EXPECT_EQ(a.ai_reasoning, b.ai_reasoning);
  EXPECT_EQ(a.remediation_output, b.remediation_output);
  EXPECT_EQ(DumpJson(a.action), DumpJson(b.action));
  EXPECT_EQ(a.reason, b.reason);
  EXPECT_EQ(DumpJson(a.ai_usage), DumpJson(b.ai_usage));
  EXPECT_EQ(ToUnixMillis(a.created_at), ToUnixMillis(b.created_at));
  EXPECT_EQ(ToUnixMillis(a.updated_at), ToUnixMillis(b.updated_at));
  ASSERT_EQ(a.resolved_at.has_value(), b.resolved_at.has_value());
  if (a.resolved_at) {
    EXPECT_EQ(ToUnixMillis(*a.resolved_at), ToUnixMillis(*b.resolved_at));
  }
  ASSERT_EQ(a.timeline.size(), b.timeline.size());
  for (size_t i = 0; i < a.timeline.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(a.timeline[i].event, b.timeline[i].event);
    EXPECT_EQ(ToUnixMillis(a.timeline[i].timestamp), ToUnixMillis(b.timeline[i].timestamp));
    EXPECT_EQ(a.timeline[i].actor, b.timeline[i].actor);
    EXPECT_EQ(a.timeline[i].detail, b.timeline[i].detail);
  }
}

std::vector<AuditEntry> WholeAudit(Store& s) {
  std::vector<AuditEntry> all;
  int64_t after = 0;
  for (;;) {
    auto page = s.ListAuditAfter(after, 1000);
    EXPECT_TRUE(page.has_value());
    if (!page || page->empty()) {
      return all;
    }
    after = page->back().id;
    all.insert(all.end(), page->begin(), page->end());
  }
}

std::vector<OutboxRecord> WholeOutbox(Store& s) {
  std::vector<OutboxRecord> all;
  std::string after;
  for (;;) {
    auto page = s.ListOutboxAfter(after, 1000);
    EXPECT_TRUE(page.has_value());
    if (!page || page->empty()) {
      return all;
    }
    after = page->back().key;
    all.insert(all.end(), page->begin(), page->end());
  }
}

// Checks, without CompareStores, that `to` holds exactly what `from` holds.
void ExpectSameContents(Store& from, Store& to) {
  auto a = ListAllIncidents(from, IncidentQuery{.limit = 1000});
  auto b = ListAllIncidents(to, IncidentQuery{.limit = 1000});
  ASSERT_TRUE(a.has_value() && b.has_value());
  ASSERT_EQ(a->size(), b->size());
  for (const Incident& inc : *a) {
    Result<Incident> got = to.GetIncident(inc.incident_id);
    ASSERT_TRUE(got.has_value()) << inc.incident_id;
    ExpectSameIncident(inc, *got);
  }

  auto ta = from.ListTokens();
  auto tb = to.ListTokens();
  ASSERT_TRUE(ta.has_value() && tb.has_value());
  ASSERT_EQ(ta->size(), tb->size());
  for (size_t i = 0; i < ta->size(); ++i) {
    EXPECT_EQ((*ta)[i].name, (*tb)[i].name);
    EXPECT_EQ((*ta)[i].role, (*tb)[i].role);
    EXPECT_EQ((*ta)[i].token_hash, (*tb)[i].token_hash);
    EXPECT_EQ(ToUnixMillis((*ta)[i].created_at), ToUnixMillis((*tb)[i].created_at));
    EXPECT_EQ((*ta)[i].created_by, (*tb)[i].created_by);
  }
  auto ha = from.ListHosts();
  auto hb = to.ListHosts();
  ASSERT_TRUE(ha.has_value() && hb.has_value());
  ASSERT_EQ(ha->size(), hb->size());
  for (size_t i = 0; i < ha->size(); ++i) {
    EXPECT_EQ((*ha)[i].name, (*hb)[i].name);
    EXPECT_EQ(DumpJson((*ha)[i].facts), DumpJson((*hb)[i].facts));
    EXPECT_EQ(ToUnixMillis((*ha)[i].registered_at), ToUnixMillis((*hb)[i].registered_at));
    EXPECT_EQ(ToUnixMillis((*ha)[i].last_seen), ToUnixMillis((*hb)[i].last_seen));
  }
  auto ca = from.ListHostCredentials();
  auto cb = to.ListHostCredentials();
  ASSERT_TRUE(ca.has_value() && cb.has_value());
  ASSERT_EQ(ca->size(), cb->size());
  for (size_t i = 0; i < ca->size(); ++i) {
    EXPECT_EQ((*ca)[i].name, (*cb)[i].name);
    EXPECT_EQ((*ca)[i].secret_hash, (*cb)[i].secret_hash);
    EXPECT_EQ(ToUnixMillis((*ca)[i].issued_at), ToUnixMillis((*cb)[i].issued_at));
    EXPECT_EQ((*ca)[i].issued_by, (*cb)[i].issued_by);
  }

  const std::vector<AuditEntry> aa = WholeAudit(from);
  const std::vector<AuditEntry> ab = WholeAudit(to);
  ASSERT_EQ(aa.size(), ab.size());
  for (size_t i = 0; i < aa.size(); ++i) {
    SCOPED_TRACE("audit " + std::to_string(i));
    EXPECT_EQ(aa[i].id, ab[i].id);
    EXPECT_EQ(ToUnixMillis(aa[i].timestamp), ToUnixMillis(ab[i].timestamp));
    EXPECT_EQ(aa[i].actor, ab[i].actor);
    EXPECT_EQ(aa[i].action, ab[i].action);
    EXPECT_EQ(aa[i].detail, ab[i].detail);
    EXPECT_EQ(aa[i].prev_hash, ab[i].prev_hash);
    EXPECT_EQ(aa[i].hash, ab[i].hash);
  }
  auto va = from.VerifyAudit();
  auto vb = to.VerifyAudit();
  ASSERT_TRUE(va.has_value() && vb.has_value());
  EXPECT_TRUE(va->ok) << va->reason;
  EXPECT_TRUE(vb->ok) << vb->reason;
  EXPECT_EQ(va->entries, vb->entries);
  EXPECT_EQ(va->head, vb->head);

  const std::vector<OutboxRecord> oa = WholeOutbox(from);
  const std::vector<OutboxRecord> ob = WholeOutbox(to);
  ASSERT_EQ(oa.size(), ob.size());
  for (size_t i = 0; i < oa.size(); ++i) {
    SCOPED_TRACE(oa[i].key);
    EXPECT_EQ(oa[i].key, ob[i].key);
    EXPECT_EQ(oa[i].channel, ob[i].channel);
    EXPECT_EQ(oa[i].event, ob[i].event);
    EXPECT_EQ(oa[i].incident_id, ob[i].incident_id);
    EXPECT_EQ(oa[i].payload, ob[i].payload);
    EXPECT_EQ(oa[i].state, ob[i].state);
    EXPECT_EQ(oa[i].attempts, ob[i].attempts);
    EXPECT_EQ(ToUnixMillis(oa[i].created_at), ToUnixMillis(ob[i].created_at));
    EXPECT_EQ(ToUnixMillis(oa[i].next_attempt_at), ToUnixMillis(ob[i].next_attempt_at));
    EXPECT_EQ(oa[i].last_error, ob[i].last_error);
  }

  // The settings, plus the target's mark.
  auto sa = from.ListSettings();
  auto sb = to.ListSettings();
  ASSERT_TRUE(sa.has_value() && sb.has_value());
  std::vector<std::pair<std::string, std::string>> without_mark;
  for (const auto& kv : *sb) {
    if (kv.first != kMigratedFromSetting) {
      without_mark.push_back(kv);
    }
  }
  EXPECT_EQ(*sa, without_mark);
}

CopyOptions Options() { return CopyOptions{"sqlite:/var/lib/medic/medic.db", Ms(kT0 + 99'000)}; }

TEST(CopyStoreTest, CopiesEveryKindIntoMemoryAcrossPagesAndReadsBackIdentical) {
  MemoryStore from(kKey);
  ASSERT_NO_FATAL_FAILURE(
      Populate(from, Size{.plain_incidents = 1010, .audit_entries = 1250, .outbox_rows = 1005}));
  MemoryStore to(kKey);
  Result<CopyReport> report = CopyStore(from, to, Options());
  ASSERT_TRUE(report.has_value()) << report.error().ToString();
  EXPECT_EQ(report->incidents, 21 + 1010);
  EXPECT_EQ(report->tokens, 4);
  EXPECT_EQ(report->hosts, 3);
  EXPECT_EQ(report->host_credentials, 2);
  EXPECT_EQ(report->audit_entries, 1250);
  EXPECT_EQ(report->outbox_rows, 1005);
  EXPECT_EQ(report->settings, 4);
  auto head = from.VerifyAudit();
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(report->audit_head, head->head);
  ASSERT_NO_FATAL_FAILURE(ExpectSameContents(from, to));

  // The mark, written last, names the source.
  auto mark = to.GetSetting(std::string(kMigratedFromSetting));
  ASSERT_TRUE(mark.has_value() && mark->has_value());
  auto j = ParseJsonObject(**mark);
  ASSERT_TRUE(j.has_value());
  EXPECT_EQ((*j)["from"], "sqlite:/var/lib/medic/medic.db");
  EXPECT_EQ((*j)["at"], FormatRfc3339(Ms(kT0 + 99'000)));
  EXPECT_EQ((*j)["incidents"], 1031);
  EXPECT_EQ((*j)["audit_head"], head->head);
}

TEST(CopyStoreTest, SqliteToSqliteReadsBackIdenticalAndNeverWritesTheSource) {
  test::TempDir dir;
  const std::string src_path = dir.File("src.db");
  {
    auto src = OpenSqliteStore(src_path, kKey);
    ASSERT_TRUE(src.has_value()) << src.error().ToString();
    ASSERT_NO_FATAL_FAILURE(
        Populate(**src, Size{.plain_incidents = 40, .audit_entries = 300, .outbox_rows = 30}));
  }
  const Result<std::string> before = ReadFile(src_path);
  ASSERT_TRUE(before.has_value());

  auto src = OpenSqliteStoreReadOnly(src_path, kKey);
  ASSERT_TRUE(src.has_value()) << src.error().ToString();
  auto dst = OpenSqliteStore(dir.File("dst.db"), kKey);
  ASSERT_TRUE(dst.has_value()) << dst.error().ToString();
  Result<CopyReport> report = CopyStore(**src, **dst, Options());
  ASSERT_TRUE(report.has_value()) << report.error().ToString();
  EXPECT_EQ(report->incidents, 61);
  EXPECT_EQ(report->audit_entries, 300);
  EXPECT_EQ(report->outbox_rows, 30);
  ASSERT_NO_FATAL_FAILURE(ExpectSameContents(**src, **dst));

  // The read-only source refuses writes, and its file is byte for byte what it was.
  EXPECT_FALSE((*src)->PutSetting("x", "1").has_value());
  src->reset();
  const Result<std::string> after = ReadFile(src_path);
  ASSERT_TRUE(after.has_value());
  EXPECT_TRUE(*before == *after) << "the source file changed";

  // A reopened target still holds the same (durable, and a real medic-server could open it).
  dst->reset();
  auto again = OpenSqliteStore(dir.File("dst.db"), kKey);
  ASSERT_TRUE(again.has_value());
  auto src2 = OpenSqliteStoreReadOnly(src_path, kKey);
  ASSERT_TRUE(src2.has_value());
  ASSERT_NO_FATAL_FAILURE(ExpectSameContents(**src2, **again));
}

TEST(CopyStoreTest, ReadOnlyOpenRefusesWhatIsNotThisMedicsDatabase) {
  test::TempDir dir;
  auto missing = OpenSqliteStoreReadOnly(dir.File("nope.db"), kKey);
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.error().message.find(dir.File("nope.db")), std::string::npos);
  EXPECT_FALSE(PathExists(dir.File("nope.db"))) << "a read-only open created the file";

  ASSERT_TRUE(
      WriteFileAtomic(dir.File("text.db"), "not a database at all, just text\n", 0600).has_value());
  auto text = OpenSqliteStoreReadOnly(dir.File("text.db"), kKey);
  ASSERT_FALSE(text.has_value());
  EXPECT_NE(text.error().message.find("text.db"), std::string::npos);
}

// One record of one kind in the target is enough to refuse it.
struct NonEmptyCase {
  std::string_view name;
  std::function<void(Store&)> put;
  std::string_view mentions;
};

TEST(CopyStoreTest, RefusesATargetThatIsNotEmptyAndLeavesItAsItWas) {
  const std::vector<NonEmptyCase> cases = {
      {"incident",
       [](Store& s) {
         ASSERT_TRUE(s.CreateIncident(RichIncident(900, IncidentStatus::kFailed, 3)));
       },
       "1 incidents"},
      {"token",
       [](Store& s) {
         ASSERT_TRUE(s.CreateToken({"other", "admin", std::string(64, 'f'), Ms(kT0), "x"}));
       },
       "1 tokens"},
      {"host",
       [](Store& s) {
         ASSERT_TRUE(s.PutHost({"db-9", Json::object(), Ms(kT0), Ms(kT0)}));
       },
       "1 hosts"},
      {"credential",
       [](Store& s) {
         ASSERT_TRUE(s.PutHostCredential({"db-9", std::string(64, 'e'), Ms(kT0), "x"}));
       },
       "1 host credentials"},
      {"audit",
       [](Store& s) {
         ASSERT_TRUE(s.AppendAudit({Ms(kT0), "a", "b", "c"}));
       },
       "1 audit entries"},
      {"outbox",
       [](Store& s) {
         OutboxRecord r;
         r.key = "k";
         r.created_at = r.next_attempt_at = Ms(kT0);
         ASSERT_TRUE(s.EnqueueOutbox({r}));
       },
       "1 outbox rows"},
      {"setting", [](Store& s) { ASSERT_TRUE(s.PutSetting("approval_mode", "false")); },
       "1 settings"},
  };
  for (const NonEmptyCase& c : cases) {
    SCOPED_TRACE(std::string(c.name));
    MemoryStore from(kKey);
    ASSERT_NO_FATAL_FAILURE(Populate(from, Size{.audit_entries = 5, .outbox_rows = 3}));
    MemoryStore to(kKey);
    ASSERT_NO_FATAL_FAILURE(c.put(to));
    Result<CopyReport> r = CopyStore(from, to, Options());
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, ErrorCode::kFailedPrecondition);
    EXPECT_NE(r.error().message.find("not empty"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find(c.mentions), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("did not finish"), std::string::npos) << r.error().message;
    // Nothing was added: the target holds its one record and nothing of the source.
    auto incidents = to.ListIncidents({});
    ASSERT_TRUE(incidents.has_value());
    EXPECT_LE(incidents->size(), 1u);
    EXPECT_FALSE(to.GetIncident("inc-1000").has_value());
    auto tokens = to.ListTokens();
    ASSERT_TRUE(tokens.has_value());
    EXPECT_LE(tokens->size(), 1u);
    auto audit = to.VerifyAudit();
    ASSERT_TRUE(audit.has_value());
    EXPECT_LE(audit->entries, 1);
    auto settings = to.ListSettings();
    ASSERT_TRUE(settings.has_value());
    EXPECT_LE(settings->size(), 1u);
    EXPECT_FALSE(to.GetSetting(std::string(kMigratedFromSetting))->has_value());
  }
}

TEST(CopyStoreTest, ASecondRunOnAFinishedCopyIsRefusedNamingIt) {
  MemoryStore from(kKey);
  ASSERT_NO_FATAL_FAILURE(Populate(from, Size{.audit_entries = 3, .outbox_rows = 2}));
  MemoryStore to(kKey);
  ASSERT_TRUE(CopyStore(from, to, Options()).has_value());
  Result<CopyReport> again = CopyStore(from, to, Options());
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(again.error().message.find("finished copy"), std::string::npos)
      << again.error().message;
  EXPECT_NE(again.error().message.find("sqlite:/var/lib/medic/medic.db"), std::string::npos);
  ASSERT_NO_FATAL_FAILURE(ExpectSameContents(from, to));
}

// A store that fails one operation midway: the error names what was being copied, and the
// target is left without the mark (detectable as unfinished; a re-run is refused).
struct MidwayCase {
  StoreOp op;
  bool on_source;
  std::string_view names;
};

TEST(CopyStoreTest, AStoreErrorMidwayNamesWhatFailedAndLeavesTheTargetUnmarked) {
  const std::vector<MidwayCase> cases = {
      {StoreOp::kCreateIncident, false, "copy incident inc-"},
      {StoreOp::kCreateToken, false, "copy token "},
      {StoreOp::kPutHost, false, "copy host web-0"},
      {StoreOp::kPutHostCredential, false, "copy the credential of host web-0"},
      {StoreOp::kAppendAudit, false, "copy audit entry 1 to the target"},
      {StoreOp::kEnqueueOutbox, false, "copy outbox rows from "},
      {StoreOp::kPutSetting, false, "copy setting "},
      {StoreOp::kListIncidents, true, "read the source's incidents"},
      {StoreOp::kListTokens, true, "read the source's tokens"},
      {StoreOp::kListAuditAfter, true, "read the source's audit log"},
      {StoreOp::kListOutboxAfter, true, "read the source's outbox"},
      {StoreOp::kListSettings, true, "read the source's settings"},
  };
  for (const MidwayCase& c : cases) {
    SCOPED_TRACE(std::string(test::StoreOpName(c.op)));
    MemoryStore from_base(kKey);
    ASSERT_NO_FATAL_FAILURE(Populate(from_base, Size{.audit_entries = 4, .outbox_rows = 3}));
    MemoryStore to_base(kKey);
    FaultyStore from(from_base);
    FaultyStore to(to_base);
    (c.on_source ? from : to).FailAlways(c.op);
    (c.on_source ? from : to).SetError(Unavailable("connection to server lost"));
    Result<CopyReport> r = CopyStore(from, to, Options());
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, ErrorCode::kUnavailable) << r.error().message;
    EXPECT_NE(r.error().message.find(c.names), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("connection to server lost"), std::string::npos)
        << r.error().message;
    EXPECT_FALSE(to_base.GetSetting(std::string(kMigratedFromSetting))->has_value());
    // Whatever was copied makes the target non-empty: a second run is refused as unfinished.
    if (!(c.op == StoreOp::kCreateIncident || c.op == StoreOp::kListIncidents)) {
      Result<CopyReport> again = CopyStore(from_base, to_base, Options());
      ASSERT_FALSE(again.has_value());
      EXPECT_NE(again.error().message.find("did not finish"), std::string::npos)
          << again.error().message;
    }
  }
}

TEST(CopyStoreTest, RefusesASourceWhoseAuditLogDoesNotVerifyWithTheGivenKey) {
  test::TempDir dir;
  {
    auto src = OpenSqliteStore(dir.File("src.db"), kKey);
    ASSERT_TRUE(src.has_value());
    ASSERT_NO_FATAL_FAILURE(Populate(**src, Size{.audit_entries = 6}));
  }
  auto src = OpenSqliteStoreReadOnly(dir.File("src.db"), "not-the-key-it-was-written-with");
  ASSERT_TRUE(src.has_value());
  MemoryStore to("not-the-key-it-was-written-with");
  Result<CopyReport> r = CopyStore(**src, to, Options());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(r.error().message.find("does not verify"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("--audit-key"), std::string::npos) << r.error().message;
  EXPECT_TRUE(CheckStoreEmpty(to).has_value()) << "something was copied";
}

TEST(CopyStoreTest, ATargetKeyedWithAnotherKeyFailsTheComparisonAndStaysUnmarked) {
  MemoryStore from(kKey);
  ASSERT_NO_FATAL_FAILURE(Populate(from, Size{.audit_entries = 3}));
  MemoryStore to("another-key-entirely");
  Result<CopyReport> r = CopyStore(from, to, Options());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(r.error().message.find("audit entry 1: hash differs"), std::string::npos)
      << r.error().message;
  EXPECT_FALSE(to.GetSetting(std::string(kMigratedFromSetting))->has_value());
}

// CompareStores finds each kind of difference a lossy backend could make.
struct DifferenceCase {
  std::string_view name;
  std::function<void(Store&)> change;  // applied to a finished copy
  std::string_view names;              // in the error
};

TEST(CopyStoreTest, CompareStoresNamesTheFirstDifferenceOfEachKind) {
  const std::vector<DifferenceCase> cases = {
      {"incident field",
       [](Store& s) {
         Incident inc = *s.GetIncident("inc-1003");
         inc.diagnostics += " ";
         ASSERT_TRUE(s.UpdateIncident(inc));
       },
       "incident inc-1003: diagnostics differs"},
      {"timeline entry",
       [](Store& s) {
         Incident inc = *s.GetIncident("inc-1004");
         inc.timeline.push_back({"extra", Ms(kT0), "x", ""});
         ASSERT_TRUE(s.UpdateIncident(inc));
       },
       "incident inc-1004: timeline length"},
      {"resolved_at",
       [](Store& s) {
         Incident inc = *s.GetIncident("inc-1012");
         inc.resolved_at = Ms(kT0 + 1);
         ASSERT_TRUE(s.UpdateIncident(inc));
       },
       "incident inc-1012: resolved_at differs"},
      {"extra incident",
       [](Store& s) {
         Incident inc = RichIncident(500, IncidentStatus::kFailed, 1);
         inc.created_at = Ms(1);
         ASSERT_TRUE(s.CreateIncident(inc));
       },
       "incident inc-1500 is in the target"},
      {"token",
       [](Store& s) {
         ASSERT_TRUE(s.DeleteToken("grafana"));
         ASSERT_TRUE(s.CreateToken(
             {"grafana", "admin", std::string(63, 'a') + "2", Ms(kT0 + 22), "admin"}));
       },
       "tokens grafana: role differs"},
      {"host facts",
       [](Store& s) {
         ASSERT_TRUE(s.PutHost({"web-1", Json{{"name", "web-1"}}, Ms(kT0 + 1), Ms(kT0 + 60'001)}));
       },
       "hosts web-1: facts differs"},
      {"credential", [](Store& s) { ASSERT_TRUE(s.DeleteHostCredential("web-1")); },
       "host credentials: 2 in the source, 1 in the target"},
      {"setting", [](Store& s) { ASSERT_TRUE(s.PutSetting("automation_paused", "true")); },
       "settings automation_paused: value differs"},
      {"audit entry",
       [](Store& s) {
         ASSERT_TRUE(s.AppendAudit({Ms(kT0), "x", "y", "z"}));
       },
       "the audit log has more entries in the target"},
      {"outbox state",
       [](Store& s) {
         OutboxRecord r = WholeOutbox(s).front();
         r.state = OutboxState::kDead;
         r.attempts = 9;
         ASSERT_TRUE(s.UpdateOutbox(r));
       },
       ": state differs"},
  };
  for (const DifferenceCase& c : cases) {
    SCOPED_TRACE(std::string(c.name));
    MemoryStore from(kKey);
    ASSERT_NO_FATAL_FAILURE(Populate(from, Size{.audit_entries = 4, .outbox_rows = 4}));
    MemoryStore to(kKey);
    ASSERT_TRUE(CopyStore(from, to, Options()).has_value());
    ASSERT_TRUE(CompareStores(from, to).has_value());
    ASSERT_NO_FATAL_FAILURE(c.change(to));
    Result<CopyReport> r = CompareStores(from, to);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, ErrorCode::kFailedPrecondition);
    EXPECT_NE(r.error().message.find(c.names), std::string::npos) << r.error().message;
  }
}

// --- store URIs -------------------------------------------------------------------------------

struct UriCase {
  std::string_view input;
  StoreDriver driver;
  std::string_view path;
  std::string_view dsn;
};

TEST(StoreUriTest, ParsesEveryForm) {
  const UriCase cases[] = {
      {"sqlite:/var/lib/medic/medic.db", StoreDriver::kSqlite, "/var/lib/medic/medic.db", ""},
      {"sqlite:medic.db", StoreDriver::kSqlite, "medic.db", ""},
      {"sqlite:///abs/x.db", StoreDriver::kSqlite, "/abs/x.db", ""},
      {"SQLite:/x y/ü.db", StoreDriver::kSqlite, "/x y/ü.db", ""},
      {"postgres:host=db1 dbname=medic user=medic", StoreDriver::kPostgres, "",
       "host=db1 dbname=medic user=medic"},
      {"postgresql:host=/tmp/pg port=5433", StoreDriver::kPostgres, "", "host=/tmp/pg port=5433"},
      {"postgres://medic@db1:5432/medic", StoreDriver::kPostgres, "",
       "postgres://medic@db1:5432/medic"},
      {"postgresql://db1/medic?sslmode=require", StoreDriver::kPostgres, "",
       "postgresql://db1/medic?sslmode=require"},
      {"postgres:postgresql://db1/medic", StoreDriver::kPostgres, "", "postgresql://db1/medic"},
  };
  for (const UriCase& c : cases) {
    SCOPED_TRACE(std::string(c.input));
    Result<StoreUri> u = ParseStoreUri(c.input);
    ASSERT_TRUE(u.has_value()) << u.error().message;
    EXPECT_EQ(u->driver, c.driver);
    EXPECT_EQ(u->path, c.path);
    EXPECT_EQ(u->dsn, c.dsn);
  }
}

struct BadUriCase {
  std::string_view input;
  std::string_view says;
};

TEST(StoreUriTest, BadUrisGetErrorsNamingTheProblem) {
  const BadUriCase cases[] = {
      {"", "empty store URI"},
      {"/var/lib/medic/medic.db", "no driver prefix"},
      {"medic.db", "no driver prefix"},
      {"./dir:x/medic.db", "no driver prefix"},
      {"sqlite:", "empty path"},
      {"sqlite://", "empty path"},
      {"postgres:", "empty DSN"},
      {"postgresql:   ", "empty DSN"},
      {"mysql://db/medic", "unknown driver 'mysql'"},
      {"redis:localhost", "unknown driver 'redis'"},
      {std::string_view("sqlite:a\0b", 10), "NUL"},
  };
  for (const BadUriCase& c : cases) {
    SCOPED_TRACE(std::string(c.input));
    Result<StoreUri> u = ParseStoreUri(c.input);
    ASSERT_FALSE(u.has_value());
    EXPECT_EQ(u.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(u.error().message.find(c.says), std::string::npos) << u.error().message;
  }
}

TEST(StoreUriTest, RedactionHidesEveryFormOfPassword) {
  const std::pair<std::string_view, std::string_view> cases[] = {
      {"postgres:host=db password=s3cret dbname=m", "postgres:host=db password=*** dbname=m"},
      {"postgres:password = 's3 cr\\'et' host=x", "postgres:password = *** host=x"},
      {"postgres:PASSWORD=s3cret", "postgres:PASSWORD=***"},
      {"postgresql://u:s3cret@db1:5432/medic", "postgresql://u:***@db1:5432/medic"},
      {"postgresql://db1/medic?user=u&password=s3cret&sslmode=require",
       "postgresql://db1/medic?user=u&password=***&sslmode=require"},
      {"postgresql://db1:5432/medic", "postgresql://db1:5432/medic"},
      {"postgres:host=db1 user=passwordless", "postgres:host=db1 user=passwordless"},
      {"sqlite:/var/lib/medic/medic.db", "sqlite:/var/lib/medic/medic.db"},
  };
  for (const auto& [input, want] : cases) {
    SCOPED_TRACE(std::string(input));
    Result<StoreUri> u = ParseStoreUri(input);
    ASSERT_TRUE(u.has_value());
    const std::string got = RedactedStoreUri(*u);
    EXPECT_EQ(got, want);
    EXPECT_EQ(got.find("s3"), std::string::npos);
  }
}

TEST(StoreUriTest, OpensSqliteReadWriteOrReadOnly) {
  test::TempDir dir;
  Result<StoreUri> u = ParseStoreUri("sqlite:" + dir.File("m.db"));
  ASSERT_TRUE(u.has_value());
  auto ro = OpenStoreUri(*u, kKey, StoreAccess::kReadOnly);
  ASSERT_FALSE(ro.has_value()) << "read-only created a database";
  auto rw = OpenStoreUri(*u, kKey, StoreAccess::kReadWrite);
  ASSERT_TRUE(rw.has_value()) << rw.error().message;
  ASSERT_TRUE((*rw)->PutSetting("a", "1").has_value());
  rw->reset();
  ro = OpenStoreUri(*u, kKey, StoreAccess::kReadOnly);
  ASSERT_TRUE(ro.has_value()) << ro.error().message;
  EXPECT_EQ(*(*ro)->GetSetting("a"), std::optional<std::string>("1"));
  EXPECT_FALSE((*ro)->PutSetting("a", "2").has_value());
}

}  // namespace
}  // namespace medic::server
