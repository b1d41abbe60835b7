#pragma once

// The Store conformance suite: the contract of src/server/store.h as tests. Every backend
// instantiates it once, in exactly one test source of its test binary (this header defines
// TEST_P bodies):
//
//   class MyBackend : public StoreBackend { ... };
//   INSTANTIATE_TEST_SUITE_P(MyStore, StoreConformanceTest,
//                            ::testing::Values(StoreBackendFactory{"my", [] { ... }}),
//                            StoreBackendName);
//
// Each test gets a fresh backend (e.g. a temporary directory or database) and an empty store.
// Times are compared at millisecond precision, the precision every backend must keep.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "core/clock.h"
#include "core/json.h"
#include "core/result.h"
#include "server/store/incident.h"
#include "server/store/store.h"

namespace medic::server::conformance {

// One backend instance under test: owns whatever the store lives in and removes it when
// destroyed (after every store it opened is gone).
class StoreBackend {
 public:
  virtual ~StoreBackend() = default;
  // Opens a store on this backend's (initially empty) storage. May be called more than once;
  // every call sees the same data.
  virtual Result<std::unique_ptr<Store>> Open() = 0;
};

struct StoreBackendFactory {
  std::string name;  // a gtest name suffix: [A-Za-z0-9_]
  std::function<std::unique_ptr<StoreBackend>()> make;
};

inline std::string StoreBackendName(const ::testing::TestParamInfo<StoreBackendFactory>& info) {
  return info.param.name;
}

inline WallTime Ms(int64_t ms) { return FromUnixMillis(ms); }

constexpr int64_t kT0 = 1'800'000'000'000;  // 2027-01-15, unix ms

// A valid incident with every field filled. created_at = kT0 + created_offset_ms.
inline Incident MakeIncident(const std::string& id, const std::string& alarm = "disk_full",
                             const std::string& instance = "web-1",
                             IncidentStatus status = IncidentStatus::kDiagnosing,
                             int64_t created_offset_ms = 0) {
  Incident inc;
  inc.incident_id = id;
  inc.alarm_name = alarm;
  inc.alarm_description = "disk usage above 90% on " + instance;
  inc.instance_id = instance;
  inc.status = status;
  inc.diagnostics = "df -h\n/dev/vda 100G 95G 5G 95% /";
  inc.ai_suggestion = "log.archive_truncate path=/var/log/app.log";
  inc.ai_reasoning = "the log file is 60 GB";
  inc.remediation_output = "";
  inc.action = Json{{"name", "log.archive_truncate"}, {"params", {{"path", "/var/log/app.log"}}}};
  inc.reason = "";
  inc.created_at = Ms(kT0 + created_offset_ms);
  inc.updated_at = Ms(kT0 + created_offset_ms + 5);
  if (!IsOpen(status)) {
    inc.resolved_at = Ms(kT0 + created_offset_ms + 10);
  }
  inc.timeline.push_back({"created", Ms(kT0 + created_offset_ms), "medic", "alarm fired"});
  return inc;
}

inline void ExpectSameTimeline(const std::vector<TimelineEntry>& got,
                               const std::vector<TimelineEntry>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    SCOPED_TRACE("timeline entry " + std::to_string(i));
    EXPECT_EQ(got[i].event, want[i].event);
    EXPECT_EQ(ToUnixMillis(got[i].timestamp), ToUnixMillis(want[i].timestamp));
    EXPECT_EQ(got[i].actor, want[i].actor);
    EXPECT_EQ(got[i].detail, want[i].detail);
  }
}

// Field by field, so that a failure names the field (and does not print megabytes twice).
inline void ExpectSameIncident(const Incident& got, const Incident& want) {
  SCOPED_TRACE("incident " + want.incident_id);
  EXPECT_EQ(got.incident_id, want.incident_id);
  EXPECT_EQ(got.alarm_name, want.alarm_name);
  EXPECT_EQ(got.alarm_description, want.alarm_description);
  EXPECT_EQ(got.instance_id, want.instance_id);
  EXPECT_EQ(StatusName(got.status), StatusName(want.status));
  EXPECT_TRUE(got.diagnostics == want.diagnostics)
      << "diagnostics differ: " << got.diagnostics.size() << " vs " << want.diagnostics.size()
      << " bytes";
  EXPECT_EQ(got.ai_suggestion, want.ai_suggestion);
  EXPECT_EQ(got.ai_reasoning, want.ai_reasoning);
  EXPECT_TRUE(got.remediation_output == want.remediation_output)
      << "remediation_output differs: " << got.remediation_output.size() << " vs "
      << want.remediation_output.size() << " bytes";
  EXPECT_EQ(got.action, want.action);
  EXPECT_EQ(got.reason, want.reason);
  EXPECT_EQ(ToUnixMillis(got.created_at), ToUnixMillis(want.created_at));
  EXPECT_EQ(ToUnixMillis(got.updated_at), ToUnixMillis(want.updated_at));
  ASSERT_EQ(got.resolved_at.has_value(), want.resolved_at.has_value());
  if (want.resolved_at.has_value()) {
    EXPECT_EQ(ToUnixMillis(*got.resolved_at), ToUnixMillis(*want.resolved_at));
  }
  ExpectSameTimeline(got.timeline, want.timeline);
}

inline std::vector<std::string> Ids(const std::vector<Incident>& incidents) {
  std::vector<std::string> out;
  for (const auto& inc : incidents) {
    out.push_back(inc.incident_id);
  }
  return out;
}

#define MEDIC_ASSERT_OK(expr)                                                          \
  do {                                                                                 \
    const auto& medic_r_ = (expr);                                                     \
    ASSERT_TRUE(medic_r_.has_value()) << #expr << ": " << medic_r_.error().ToString(); \
  } while (0)

class StoreConformanceTest : public ::testing::TestWithParam<StoreBackendFactory> {
 protected:
  void SetUp() override {
    backend_ = GetParam().make();
    ASSERT_NE(backend_, nullptr);
    Result<std::unique_ptr<Store>> store = backend_->Open();
    ASSERT_TRUE(store.has_value()) << store.error().ToString();
    store_ = std::move(*store);
  }
  void TearDown() override {
    store_.reset();
    backend_.reset();
  }

  Store& store() { return *store_; }

  Incident MustGet(const std::string& id) {
    Result<Incident> r = store_->GetIncident(id);
    EXPECT_TRUE(r.has_value()) << r.error().ToString();
    return r.has_value() ? *r : Incident{};
  }

  // The error code of a failed Status or Result, or nullopt if it succeeded.
  template <typename R>
  static std::optional<ErrorCode> CodeOf(const R& r) {
    if (r.has_value()) {
      return std::nullopt;
    }
    return r.error().code;
  }

  std::unique_ptr<StoreBackend> backend_;
  std::unique_ptr<Store> store_;
};

// --- round trips ----------------------------------------------------------------------------

TEST_P(StoreConformanceTest, CreateGetRoundTripsEveryField) {
  Incident inc = MakeIncident("inc-1");
  inc.alarm_name = "nginx_down";
  inc.alarm_description = "nginx is down — « ça ne répond plus » 🔥";
  inc.instance_id = "web-ü-1";
  inc.status = IncidentStatus::kCompleted;
  inc.diagnostics = "línea 1\nзаписи 2\n日本語 3\n\ttab 'single' \"double\" `back` $(x) ; | & \\";
  inc.ai_suggestion = "service.restart service=nginx";
  inc.ai_reasoning = "nginx exited with status 1; Ελληνικά";
  inc.remediation_output = "restarted\n";
  inc.action = Json{{"name", "service.restart"},
                    {"params", {{"service", "nginx"}, {"nested", {{"list", {1, 2.5, "x"}}}}}}};
  inc.reason = "résolu";
  inc.created_at = Ms(kT0 + 1);
  inc.updated_at = Ms(kT0 + 2'001);
  inc.resolved_at = Ms(kT0 + 3'456);
  inc.timeline = {
      {"created", Ms(kT0 + 1), "medic", "alarm fired"},
      {"diagnosed", Ms(kT0 + 500), "agent:web-ü-1", ""},
      {"approved", Ms(kT0 + 1'000), "", "opérateur 👍"},
      {"completed", Ms(kT0 + 3'456), "medic", "exit 0"},
  };
  MEDIC_ASSERT_OK(store().CreateIncident(inc));
  ExpectSameIncident(MustGet("inc-1"), inc);
}

TEST_P(StoreConformanceTest, OptionalAndEmptyFieldsRoundTrip) {
  Incident inc = MakeIncident("inc-empty");
  inc.alarm_description.clear();
  inc.diagnostics.clear();
  inc.ai_suggestion.clear();
  inc.ai_reasoning.clear();
  inc.action = Json::object();
  inc.resolved_at.reset();
  inc.timeline.clear();
  MEDIC_ASSERT_OK(store().CreateIncident(inc));
  ExpectSameIncident(MustGet("inc-empty"), inc);
}

TEST_P(StoreConformanceTest, EveryStatusRoundTrips) {
  const IncidentStatus kAll[] = {IncidentStatus::kDiagnosing, IncidentStatus::kPendingApproval,
                                 IncidentStatus::kExecuting,  IncidentStatus::kCompleted,
                                 IncidentStatus::kFailed,     IncidentStatus::kTimeout,
                                 IncidentStatus::kRejected};
  int n = 0;
  for (IncidentStatus s : kAll) {
    SCOPED_TRACE(std::string(StatusName(s)));
    // A host per incident so that the open ones do not collide.
    Incident inc = MakeIncident("inc-" + std::to_string(n), "a", "h" + std::to_string(n), s);
    ++n;
    MEDIC_ASSERT_OK(store().CreateIncident(inc));
    EXPECT_EQ(MustGet(inc.incident_id).status, s);
  }
}

TEST_P(StoreConformanceTest, ArbitraryBytesAndLargeTextRoundTripExactly) {
  Incident inc = MakeIncident("inc-bytes");
  // Every byte value except NUL, including invalid UTF-8 sequences and control characters.
  std::string junk;
  for (int round = 0; round < 4; ++round) {
    for (int b = 1; b < 256; ++b) {
      junk.push_back(static_cast<char>(b));
    }
  }
  junk += "\xff\xfe\xc3\x28\xa0\xa1\xe2\x82\xf0\x28\x8c\xbc";  // malformed UTF-8
  inc.diagnostics = junk;
  inc.ai_reasoning = std::string("\x80\x81 trailing continuation bytes \xc0\xaf");
  // Several megabytes, not a repeating pattern of period 1.
  std::string big;
  big.reserve(4 << 20);
  uint32_t x = 12345;
  while (big.size() < (4u << 20)) {
    x = x * 1103515245u + 12345u;
    big.push_back(static_cast<char>('!' + (x >> 16) % 90));
    if (big.size() % 97 == 0) {
      big.push_back('\n');
    }
  }
  inc.remediation_output = big;
  inc.timeline.push_back({"output", Ms(kT0 + 7), "agent:web-1", junk});
  MEDIC_ASSERT_OK(store().CreateIncident(inc));
  ExpectSameIncident(MustGet("inc-bytes"), inc);

  // And through an update as well.
  inc.diagnostics = big + junk;
  inc.timeline.push_back({"more", Ms(kT0 + 8), "", big});
  MEDIC_ASSERT_OK(store().UpdateIncident(inc));
  ExpectSameIncident(MustGet("inc-bytes"), inc);
}

TEST_P(StoreConformanceTest, HostileLookingIdsAreJustData) {
  const std::string kIds[] = {
      "x'; DROP TABLE incidents; --", "\"quoted\"", "%_*", "a\nb", "🔥", "  spaced  "};
  for (const auto& id : kIds) {
    SCOPED_TRACE(id);
    Incident inc = MakeIncident(id, "alarm " + id, "host " + id);
    MEDIC_ASSERT_OK(store().CreateIncident(inc));
    ExpectSameIncident(MustGet(id), inc);
  }
  EXPECT_EQ(CodeOf(store().GetIncident("%")), ErrorCode::kNotFound);
  Result<std::vector<Incident>> all = store().ListIncidents({});
  MEDIC_ASSERT_OK(all);
  EXPECT_EQ(all->size(), std::size(kIds));
}

// --- not found ------------------------------------------------------------------------------

TEST_P(StoreConformanceTest, GetUnknownIdIsNotFound) {
  MEDIC_ASSERT_OK(store().CreateIncident(MakeIncident("inc-1")));
  Result<Incident> r = store().GetIncident("inc-404");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kNotFound);
  EXPECT_NE(r.error().message.find("inc-404"), std::string::npos) << r.error().message;
  EXPECT_EQ(CodeOf(store().GetIncident("")), ErrorCode::kNotFound);
}

TEST_P(StoreConformanceTest, UpdateUnknownIdIsNotFoundAndCreatesNothing) {
  Incident inc = MakeIncident("inc-404");
  EXPECT_EQ(CodeOf(store().UpdateIncident(inc)), ErrorCode::kNotFound);
  EXPECT_EQ(CodeOf(store().GetIncident("inc-404")), ErrorCode::kNotFound);
  Result<std::vector<Incident>> all = store().ListIncidents({});
  MEDIC_ASSERT_OK(all);
  EXPECT_TRUE(all->empty());
}

TEST_P(StoreConformanceTest, FindOpenIncidentWithNoneIsEmpty) {
  Result<std::optional<Incident>> r = store().FindOpenIncident("disk_full", "web-1");
  MEDIC_ASSERT_OK(r);
  EXPECT_FALSE(r->has_value());
  MEDIC_ASSERT_OK(store().CreateIncident(
      MakeIncident("done", "disk_full", "web-1", IncidentStatus::kCompleted)));
  r = store().FindOpenIncident("disk_full", "web-1");
  MEDIC_ASSERT_OK(r);
  EXPECT_FALSE(r->has_value());
}

// --- uniqueness -----------------------------------------------------------------------------

TEST_P(StoreConformanceTest, DuplicateIdIsAlreadyExists) {
  MEDIC_ASSERT_OK(store().CreateIncident(
      MakeIncident("inc-1", "disk_full", "web-1", IncidentStatus::kCompleted)));
  // Different pair and status: only the id collides.
  Incident dup = MakeIncident("inc-1", "nginx_down", "web-2", IncidentStatus::kFailed);
  EXPECT_EQ(CodeOf(store().CreateIncident(dup)), ErrorCode::kAlreadyExists);
  EXPECT_EQ(MustGet("inc-1").alarm_name, "disk_full");
}

TEST_P(StoreConformanceTest, SecondOpenIncidentForSamePairIsRejected) {
  struct Case {
    IncidentStatus first;
    IncidentStatus second;
  };
  const Case kCases[] = {
      {IncidentStatus::kDiagnosing, IncidentStatus::kDiagnosing},
      {IncidentStatus::kDiagnosing, IncidentStatus::kExecuting},
      {IncidentStatus::kPendingApproval, IncidentStatus::kDiagnosing},
      {IncidentStatus::kPendingApproval, IncidentStatus::kPendingApproval},
      {IncidentStatus::kExecuting, IncidentStatus::kDiagnosing},
      {IncidentStatus::kExecuting, IncidentStatus::kPendingApproval},
  };
  int n = 0;
  for (const Case& c : kCases) {
    SCOPED_TRACE(std::string(StatusName(c.first)) + " then " + std::string(StatusName(c.second)));
    const std::string host = "web-" + std::to_string(n++);
    Incident first = MakeIncident("first-" + host, "disk_full", host, c.first);
    MEDIC_ASSERT_OK(store().CreateIncident(first));
    Incident second = MakeIncident("second-" + host, "disk_full", host, c.second);
    second.timeline.push_back({"extra", Ms(kT0 + 1), "medic", ""});
    Status s = store().CreateIncident(second);
    EXPECT_EQ(CodeOf(s), ErrorCode::kAlreadyExists);
    // Nothing of the rejected incident is left behind.
    EXPECT_EQ(CodeOf(store().GetIncident(second.incident_id)), ErrorCode::kNotFound);
    Result<std::optional<Incident>> open = store().FindOpenIncident("disk_full", host);
    MEDIC_ASSERT_OK(open);
    ASSERT_TRUE(open->has_value());
    EXPECT_EQ((*open)->incident_id, first.incident_id);
    ExpectSameIncident(**open, first);
  }
}

TEST_P(StoreConformanceTest, NewOpenIncidentAllowedOnceTheFirstIsClosed) {
  Incident first = MakeIncident("first");
  MEDIC_ASSERT_OK(store().CreateIncident(first));
  first.status = IncidentStatus::kCompleted;
  first.resolved_at = Ms(kT0 + 100);
  first.timeline.push_back({"completed", Ms(kT0 + 100), "medic", ""});
  MEDIC_ASSERT_OK(store().UpdateIncident(first));

  Incident second = MakeIncident("second", "disk_full", "web-1", IncidentStatus::kDiagnosing, 200);
  MEDIC_ASSERT_OK(store().CreateIncident(second));
  Result<std::optional<Incident>> open = store().FindOpenIncident("disk_full", "web-1");
  MEDIC_ASSERT_OK(open);
  ASSERT_TRUE(open->has_value());
  EXPECT_EQ((*open)->incident_id, "second");

  // Closed incidents of the same pair, in every closed status, coexist freely.
  const IncidentStatus kClosed[] = {IncidentStatus::kCompleted, IncidentStatus::kFailed,
                                    IncidentStatus::kTimeout, IncidentStatus::kRejected,
                                    IncidentStatus::kCompleted};
  int n = 0;
  for (IncidentStatus s : kClosed) {
    SCOPED_TRACE(std::string(StatusName(s)));
    MEDIC_ASSERT_OK(store().CreateIncident(
        MakeIncident("closed-" + std::to_string(n++), "disk_full", "web-1", s)));
  }
}

TEST_P(StoreConformanceTest, OtherHostOrOtherAlarmIsAllowed) {
  MEDIC_ASSERT_OK(store().CreateIncident(MakeIncident("a", "disk_full", "web-1")));
  MEDIC_ASSERT_OK(store().CreateIncident(MakeIncident("b", "disk_full", "web-2")));
  MEDIC_ASSERT_OK(store().CreateIncident(MakeIncident("c", "nginx_down", "web-1")));
  // Pairs must not be compared by concatenation.
  MEDIC_ASSERT_OK(store().CreateIncident(MakeIncident("d", "disk_full", "web-1x")));
  MEDIC_ASSERT_OK(store().CreateIncident(MakeIncident("e", "disk_fullweb-", "1")));
  for (const auto& [alarm, host, id] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"disk_full", "web-1", "a"},
           {"disk_full", "web-2", "b"},
           {"nginx_down", "web-1", "c"}}) {
    Result<std::optional<Incident>> open = store().FindOpenIncident(alarm, host);
    MEDIC_ASSERT_OK(open);
    ASSERT_TRUE(open->has_value());
    EXPECT_EQ((*open)->incident_id, id);
  }
}

TEST_P(StoreConformanceTest, UpdateThatWouldOpenASecondIncidentIsRejectedAtomically) {
  Incident old = MakeIncident("old", "disk_full", "web-1", IncidentStatus::kCompleted);
  MEDIC_ASSERT_OK(store().CreateIncident(old));
  MEDIC_ASSERT_OK(store().CreateIncident(MakeIncident("new", "disk_full", "web-1")));

  Incident reopened = old;
  reopened.status = IncidentStatus::kExecuting;
  reopened.resolved_at.reset();
  reopened.reason = "should not be written";
  reopened.timeline.push_back({"reopened", Ms(kT0 + 50), "medic", ""});
  EXPECT_EQ(CodeOf(store().UpdateIncident(reopened)), ErrorCode::kAlreadyExists);
  // Neither the fields nor the timeline entry of the rejected update were written.
  ExpectSameIncident(MustGet("old"), old);

  // Moving an incident onto an occupied pair is the same violation.
  Incident moved = MakeIncident("other", "disk_full", "web-2");
  MEDIC_ASSERT_OK(store().CreateIncident(moved));
  moved.instance_id = "web-1";
  EXPECT_EQ(CodeOf(store().UpdateIncident(moved)), ErrorCode::kAlreadyExists);
  EXPECT_EQ(MustGet("other").instance_id, "web-2");
}

TEST_P(StoreConformanceTest, ConcurrentCreatesOfTheSamePairLetExactlyOneWin) {
  constexpr int kThreads = 8;
  std::atomic<int> ok{0};
  std::atomic<int> conflicts{0};
  std::atomic<int> other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Status s = store().CreateIncident(MakeIncident("race-" + std::to_string(t)));
      if (s.has_value()) {
        ++ok;
      } else if (s.error().code == ErrorCode::kAlreadyExists) {
        ++conflicts;
      } else {
        ++other;
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_EQ(ok.load(), 1);
  EXPECT_EQ(conflicts.load(), kThreads - 1);
  EXPECT_EQ(other.load(), 0);
}

// --- updates and the timeline ---------------------------------------------------------------

TEST_P(StoreConformanceTest, UpdateWritesEveryScalarField) {
  Incident inc = MakeIncident("inc-1");
  MEDIC_ASSERT_OK(store().CreateIncident(inc));
  inc.alarm_name = "disk_full_v2";
  inc.alarm_description = "changed";
  inc.instance_id = "web-9";
  inc.status = IncidentStatus::kFailed;
  inc.diagnostics = "new diagnostics";
  inc.ai_suggestion = "disk.cleanup path=/tmp older_than=7d";
  inc.ai_reasoning = "tmp is full";
  inc.remediation_output = "deleted 3 files";
  inc.action = Json{{"name", "disk.cleanup"}, {"params", {{"path", "/tmp"}, {"older_than", "7d"}}}};
  inc.reason = "exit status 1";
  inc.created_at = Ms(kT0 - 1);
  inc.updated_at = Ms(kT0 + 9'999);
  inc.resolved_at = Ms(kT0 + 9'999);
  MEDIC_ASSERT_OK(store().UpdateIncident(inc));
  ExpectSameIncident(MustGet("inc-1"), inc);

  // And back: resolved_at can be cleared again.
  inc.status = IncidentStatus::kDiagnosing;
  inc.resolved_at.reset();
  MEDIC_ASSERT_OK(store().UpdateIncident(inc));
  ExpectSameIncident(MustGet("inc-1"), inc);
}

TEST_P(StoreConformanceTest, TimelineIsAppendOnlyAndOrdered) {
  Incident inc = MakeIncident("inc-1");
  inc.timeline.push_back({"diagnosed", Ms(kT0 + 10), "agent:web-1", "df output"});
  MEDIC_ASSERT_OK(store().CreateIncident(inc));
  const std::vector<TimelineEntry> original = inc.timeline;

  // An update that rewrites stored entries and adds two: only the new ones are written.
  Incident update = inc;
  update.timeline[0].detail = "rewritten history";
  update.timeline[1].event = "forged";
  update.timeline.push_back({"suggested", Ms(kT0 + 20), "medic", "restart"});
  // Out of time order on purpose: the store keeps insertion order, it does not sort.
  update.timeline.push_back({"approved", Ms(kT0 + 15), "admin", ""});
  MEDIC_ASSERT_OK(store().UpdateIncident(update));

  std::vector<TimelineEntry> want = original;
  want.push_back(update.timeline[2]);
  want.push_back(update.timeline[3]);
  ExpectSameTimeline(MustGet("inc-1").timeline, want);

  // The same timeline again appends nothing.
  MEDIC_ASSERT_OK(store().UpdateIncident(update));
  ExpectSameTimeline(MustGet("inc-1").timeline, want);
}

TEST_P(StoreConformanceTest, UpdateWithFewerTimelineEntriesIsInvalidArgument) {
  Incident inc = MakeIncident("inc-1");
  inc.timeline.push_back({"diagnosed", Ms(kT0 + 10), "medic", ""});
  inc.timeline.push_back({"suggested", Ms(kT0 + 20), "medic", ""});
  MEDIC_ASSERT_OK(store().CreateIncident(inc));

  struct Case {
    size_t keep;
  };
  for (const Case& c : {Case{0}, Case{1}, Case{2}}) {
    SCOPED_TRACE("keep " + std::to_string(c.keep));
    Incident shorter = inc;
    shorter.timeline.resize(c.keep);
    shorter.reason = "should not be written";
    shorter.status = IncidentStatus::kFailed;
    EXPECT_EQ(CodeOf(store().UpdateIncident(shorter)), ErrorCode::kInvalidArgument);
    ExpectSameIncident(MustGet("inc-1"), inc);
  }
}

TEST_P(StoreConformanceTest, LongTimelineBuiltOverManyUpdatesKeepsOrder) {
  Incident inc = MakeIncident("inc-1");
  MEDIC_ASSERT_OK(store().CreateIncident(inc));
  for (int i = 1; i <= 60; ++i) {
    // 1, 2 or 3 entries per update.
    for (int k = 0; k <= i % 3; ++k) {
      inc.timeline.push_back({"event-" + std::to_string(inc.timeline.size()),
                              Ms(kT0 + static_cast<int64_t>(inc.timeline.size())), "medic",
                              std::to_string(i)});
    }
    inc.updated_at = Ms(kT0 + i);
    MEDIC_ASSERT_OK(store().UpdateIncident(inc));
  }
  ExpectSameIncident(MustGet("inc-1"), inc);
}

// --- listing --------------------------------------------------------------------------------

TEST_P(StoreConformanceTest, ListIsNewestFirstWithIdBreakingTies) {
  // Inserted in scrambled order; "b" and "c" share created_at.
  MEDIC_ASSERT_OK(
      store().CreateIncident(MakeIncident("b", "x", "h1", IncidentStatus::kFailed, 200)));
  MEDIC_ASSERT_OK(
      store().CreateIncident(MakeIncident("a", "x", "h2", IncidentStatus::kFailed, 300)));
  MEDIC_ASSERT_OK(
      store().CreateIncident(MakeIncident("d", "x", "h3", IncidentStatus::kFailed, 100)));
  MEDIC_ASSERT_OK(
      store().CreateIncident(MakeIncident("c", "x", "h4", IncidentStatus::kFailed, 200)));
  MEDIC_ASSERT_OK(
      store().CreateIncident(MakeIncident("e", "x", "h5", IncidentStatus::kFailed, -5'000)));
  Result<std::vector<Incident>> all = store().ListIncidents({});
  MEDIC_ASSERT_OK(all);
  EXPECT_EQ(Ids(*all), (std::vector<std::string>{"a", "c", "b", "d", "e"}));
}

TEST_P(StoreConformanceTest, ListFiltersByStatus) {
  MEDIC_ASSERT_OK(store().CreateIncident(
      MakeIncident("open-1", "x", "h1", IncidentStatus::kPendingApproval, 1)));
  MEDIC_ASSERT_OK(
      store().CreateIncident(MakeIncident("done-1", "x", "h1", IncidentStatus::kCompleted, 2)));
  MEDIC_ASSERT_OK(store().CreateIncident(
      MakeIncident("open-2", "x", "h2", IncidentStatus::kPendingApproval, 3)));
  MEDIC_ASSERT_OK(
      store().CreateIncident(MakeIncident("fail-1", "x", "h3", IncidentStatus::kFailed, 4)));

  struct Case {
    std::optional<IncidentStatus> status;
    std::vector<std::string> want;
  };
  const Case kCases[] = {
      {std::nullopt, {"fail-1", "open-2", "done-1", "open-1"}},
      {IncidentStatus::kPendingApproval, {"open-2", "open-1"}},
      {IncidentStatus::kCompleted, {"done-1"}},
      {IncidentStatus::kFailed, {"fail-1"}},
      {IncidentStatus::kExecuting, {}},
      {IncidentStatus::kRejected, {}},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.status ? std::string(StatusName(*c.status)) : "any");
    IncidentQuery q;
    q.status = c.status;
    Result<std::vector<Incident>> got = store().ListIncidents(q);
    MEDIC_ASSERT_OK(got);
    EXPECT_EQ(Ids(*got), c.want);
    for (const auto& inc : *got) {
      if (c.status) {
        EXPECT_EQ(inc.status, *c.status);
      }
    }
  }
}

TEST_P(StoreConformanceTest, ListHonoursAndClampsLimit) {
  for (int i = 0; i < 12; ++i) {
    MEDIC_ASSERT_OK(store().CreateIncident(MakeIncident("inc-" + std::to_string(100 + i), "x",
                                                        "h" + std::to_string(i),
                                                        IncidentStatus::kCompleted, i)));
  }
  struct Case {
    int limit;
    size_t want;
  };
  const Case kCases[] = {{1, 1},     {5, 5},     {12, 12}, {13, 12}, {100, 12},
                         {1000, 12}, {5000, 12}, {0, 1},   {-7, 1}};
  for (const Case& c : kCases) {
    SCOPED_TRACE("limit " + std::to_string(c.limit));
    IncidentQuery q;
    q.limit = c.limit;
    Result<std::vector<Incident>> got = store().ListIncidents(q);
    MEDIC_ASSERT_OK(got);
    ASSERT_EQ(got->size(), c.want);
    // The newest ones.
    EXPECT_EQ(got->front().incident_id, "inc-111");
    EXPECT_EQ(got->back().incident_id, "inc-" + std::to_string(111 - c.want + 1));
  }
}

TEST_P(StoreConformanceTest, ListFiltersByAlarmHostAndUpdateTime) {
  // updated_at = created_at + 5 (MakeIncident).
  MEDIC_ASSERT_OK(store().CreateIncident(MakeIncident("a1", "disk", "h1", IncidentStatus::kFailed, 1)));
  MEDIC_ASSERT_OK(store().CreateIncident(MakeIncident("a2", "disk", "h1", IncidentStatus::kFailed, 20)));
  MEDIC_ASSERT_OK(store().CreateIncident(MakeIncident("b1", "disk", "h2", IncidentStatus::kFailed, 3)));
  MEDIC_ASSERT_OK(store().CreateIncident(MakeIncident("c1", "mem", "h1", IncidentStatus::kFailed, 4)));
  MEDIC_ASSERT_OK(store().CreateIncident(
      MakeIncident("c2", "mem", "h1", IncidentStatus::kPendingApproval, 30)));
  struct Case {
    std::string name;
    IncidentQuery query;
    std::vector<std::string> want;
  };
  auto q = [](std::optional<std::string> alarm, std::optional<std::string> host,
              std::optional<int64_t> updated_since_offset,
              std::optional<IncidentStatus> status = std::nullopt) {
    IncidentQuery out;
    out.alarm_name = std::move(alarm);
    out.instance_id = std::move(host);
    if (updated_since_offset) {
      out.updated_since = Ms(kT0 + *updated_since_offset);
    }
    out.status = status;
    return out;
  };
  const Case kCases[] = {
      {"alarm", q("disk", std::nullopt, std::nullopt), {"a2", "b1", "a1"}},
      {"host", q(std::nullopt, "h1", std::nullopt), {"c2", "a2", "c1", "a1"}},
      {"pair", q("disk", "h1", std::nullopt), {"a2", "a1"}},
      {"updated since, inclusive", q(std::nullopt, std::nullopt, 9), {"c2", "a2", "c1"}},
      {"pair and updated since", q("disk", "h1", 7), {"a2"}},
      {"pair and status", q("mem", "h1", std::nullopt, IncidentStatus::kFailed), {"c1"}},
      {"nothing matches", q("disk", "h9", std::nullopt), {}},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    Result<std::vector<Incident>> got = store().ListIncidents(c.query);
    MEDIC_ASSERT_OK(got);
    EXPECT_EQ(Ids(*got), c.want);
  }
}

TEST_P(StoreConformanceTest, PagesWithACursorVisitEveryIncidentOnce) {
  // 25 incidents, several created in the same millisecond: the cursor orders by id within one.
  std::vector<std::string> want;
  for (int i = 0; i < 25; ++i) {
    const std::string id = "inc-" + std::to_string(100 + i);
    MEDIC_ASSERT_OK(store().CreateIncident(
        MakeIncident(id, "disk", "h" + std::to_string(i), IncidentStatus::kPendingApproval, i / 4)));
    want.insert(want.begin(), id);
  }
  for (int page_size : {1, 4, 7, 25, 100}) {
    SCOPED_TRACE("page size " + std::to_string(page_size));
    IncidentQuery q;
    q.status = IncidentStatus::kPendingApproval;
    q.limit = page_size;
    std::vector<std::string> seen;
    for (int pages = 0;; ++pages) {
      ASSERT_LE(pages, 26) << "paging does not end";
      Result<std::vector<Incident>> page = store().ListIncidents(q);
      MEDIC_ASSERT_OK(page);
      if (page->empty()) {
        break;
      }
      ASSERT_LE(page->size(), static_cast<size_t>(page_size));
      for (const auto& inc : *page) {
        seen.push_back(inc.incident_id);
      }
      q.before = IncidentQuery::Cursor{page->back().created_at, page->back().incident_id};
    }
    EXPECT_EQ(seen, want);
    IncidentQuery all;
    all.status = IncidentStatus::kPendingApproval;
    all.limit = page_size;
    Result<std::vector<Incident>> listed = ListAllIncidents(store(), all);
    MEDIC_ASSERT_OK(listed);
    EXPECT_EQ(Ids(*listed), want);
  }
}

TEST_P(StoreConformanceTest, ListCarriesFullIncidentsWithTimelines) {
  Incident a = MakeIncident("a", "x", "h1", IncidentStatus::kDiagnosing, 1);
  a.timeline.push_back({"diagnosed", Ms(kT0 + 2), "medic", "d"});
  Incident b = MakeIncident("b", "x", "h2", IncidentStatus::kDiagnosing, 2);
  MEDIC_ASSERT_OK(store().CreateIncident(a));
  MEDIC_ASSERT_OK(store().CreateIncident(b));
  Result<std::vector<Incident>> all = store().ListIncidents({});
  MEDIC_ASSERT_OK(all);
  ASSERT_EQ(all->size(), 2u);
  ExpectSameIncident((*all)[0], b);
  ExpectSameIncident((*all)[1], a);
}

TEST_P(StoreConformanceTest, ListOfEmptyStoreIsEmpty) {
  Result<std::vector<Incident>> all = store().ListIncidents({});
  MEDIC_ASSERT_OK(all);
  EXPECT_TRUE(all->empty());
}

// --- hosts ----------------------------------------------------------------------------------

TEST_P(StoreConformanceTest, HostsArePutReplacedListedByNameAndDeleted) {
  Result<std::vector<HostRecord>> none = store().ListHosts();
  MEDIC_ASSERT_OK(none);
  EXPECT_TRUE(none->empty());
  HostRecord web2{"web-2", Json{{"name", "web-2"}, {"log_dir", "/srv/logs"}}, Ms(kT0), Ms(kT0 + 7)};
  HostRecord web1{"web-1", Json{{"name", "web-1"}, {"services", {"nginx"}}}, Ms(kT0 + 1),
                  Ms(kT0 + 2)};
  MEDIC_ASSERT_OK(store().PutHost(web2));
  MEDIC_ASSERT_OK(store().PutHost(web1));
  web2.last_seen = Ms(kT0 + 60'000);
  web2.facts["log_dir"] = "/var/log/web";
  MEDIC_ASSERT_OK(store().PutHost(web2));  // replaces

  Result<std::vector<HostRecord>> all = store().ListHosts();
  MEDIC_ASSERT_OK(all);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].name, "web-1");
  EXPECT_EQ((*all)[0].facts, web1.facts);
  EXPECT_EQ((*all)[0].registered_at, Ms(kT0 + 1));
  EXPECT_EQ((*all)[0].last_seen, Ms(kT0 + 2));
  EXPECT_EQ((*all)[1].name, "web-2");
  EXPECT_EQ((*all)[1].facts["log_dir"], "/var/log/web");
  EXPECT_EQ((*all)[1].last_seen, Ms(kT0 + 60'000));

  MEDIC_ASSERT_OK(store().DeleteHost("web-2"));
  Status again = store().DeleteHost("web-2");
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, ErrorCode::kNotFound);
  all = store().ListHosts();
  MEDIC_ASSERT_OK(all);
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].name, "web-1");
}

TEST_P(StoreConformanceTest, LastSeenTimesAreUpdatedTogetherAndUnknownNamesSkipped) {
  HostRecord web1{"web-1", Json{{"name", "web-1"}}, Ms(kT0), Ms(kT0)};
  HostRecord web2{"web-2", Json{{"name", "web-2"}}, Ms(kT0), Ms(kT0)};
  MEDIC_ASSERT_OK(store().PutHost(web1));
  MEDIC_ASSERT_OK(store().PutHost(web2));
  MEDIC_ASSERT_OK(store().UpdateHostsLastSeen(
      {{"web-1", Ms(kT0 + 60'000)}, {"gone", Ms(kT0 + 60'000)}, {"web-2", Ms(kT0 + 61'000)}}));
  MEDIC_ASSERT_OK(store().UpdateHostsLastSeen({}));
  Result<std::vector<HostRecord>> all = store().ListHosts();
  MEDIC_ASSERT_OK(all);
  ASSERT_EQ(all->size(), 2u) << "a name not stored is not created";
  EXPECT_EQ((*all)[0].last_seen, Ms(kT0 + 60'000));
  EXPECT_EQ((*all)[0].facts, web1.facts) << "only the time changes";
  EXPECT_EQ((*all)[0].registered_at, Ms(kT0));
  EXPECT_EQ((*all)[1].last_seen, Ms(kT0 + 61'000));
}

// --- host credentials -----------------------------------------------------------------------

TEST_P(StoreConformanceTest, HostCredentialsArePutReplacedListedByNameAndDeleted) {
  Result<std::vector<HostCredentialRecord>> none = store().ListHostCredentials();
  MEDIC_ASSERT_OK(none);
  EXPECT_TRUE(none->empty());
  HostCredentialRecord web2{"web-2", std::string(64, 'b'), Ms(kT0), "code:admin"};
  HostCredentialRecord web1{"web-1", std::string(64, 'a'), Ms(kT0 + 1), "approval:alice"};
  MEDIC_ASSERT_OK(store().PutHostCredential(web2));
  MEDIC_ASSERT_OK(store().PutHostCredential(web1));
  web2.secret_hash = std::string(64, 'c');  // re-enrolled: the old hash is gone
  web2.issued_at = Ms(kT0 + 60'000);
  MEDIC_ASSERT_OK(store().PutHostCredential(web2));

  Result<std::vector<HostCredentialRecord>> all = store().ListHostCredentials();
  MEDIC_ASSERT_OK(all);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].name, "web-1");
  EXPECT_EQ((*all)[0].secret_hash, std::string(64, 'a'));
  EXPECT_EQ((*all)[0].issued_at, Ms(kT0 + 1));
  EXPECT_EQ((*all)[0].issued_by, "approval:alice");
  EXPECT_EQ((*all)[1].name, "web-2");
  EXPECT_EQ((*all)[1].secret_hash, std::string(64, 'c'));
  EXPECT_EQ((*all)[1].issued_at, Ms(kT0 + 60'000));

  MEDIC_ASSERT_OK(store().DeleteHostCredential("web-2"));
  Status again = store().DeleteHostCredential("web-2");
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, ErrorCode::kNotFound);
  all = store().ListHostCredentials();
  MEDIC_ASSERT_OK(all);
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].name, "web-1");
}

// --- enrolment codes and requests (shared by the servers on one store) ------------------------

TEST_P(StoreConformanceTest, AnEnrolmentCodeIsTakenOnceForItsNameUntilItExpires) {
  const EnrollmentCodeRecord code{std::string(64, 'a'), "web-1", Ms(kT0 + 60'000), "alice"};
  MEDIC_ASSERT_OK(store().PutEnrollmentCode(code));
  EXPECT_EQ(CodeOf(store().PutEnrollmentCode(code)), ErrorCode::kAlreadyExists);

  // Another name, an unknown hash, or the expiry instant itself: nothing taken, nothing changed.
  Result<std::optional<EnrollmentCodeRecord>> none =
      store().TakeEnrollmentCode(code.code_hash, "web-2", Ms(kT0));
  MEDIC_ASSERT_OK(none);
  EXPECT_FALSE(none->has_value());
  none = store().TakeEnrollmentCode(std::string(64, 'b'), "web-1", Ms(kT0));
  MEDIC_ASSERT_OK(none);
  EXPECT_FALSE(none->has_value());
  none = store().TakeEnrollmentCode(code.code_hash, "web-1", Ms(kT0 + 60'000));
  MEDIC_ASSERT_OK(none);
  EXPECT_FALSE(none->has_value());

  Result<std::optional<EnrollmentCodeRecord>> taken =
      store().TakeEnrollmentCode(code.code_hash, "web-1", Ms(kT0 + 59'999));
  MEDIC_ASSERT_OK(taken);
  ASSERT_TRUE(taken->has_value());
  EXPECT_EQ((*taken)->code_hash, code.code_hash);
  EXPECT_EQ((*taken)->name, "web-1");
  EXPECT_EQ((*taken)->expires_at, Ms(kT0 + 60'000));
  EXPECT_EQ((*taken)->created_by, "alice");
  Result<std::optional<EnrollmentCodeRecord>> again =
      store().TakeEnrollmentCode(code.code_hash, "web-1", Ms(kT0));
  MEDIC_ASSERT_OK(again);
  EXPECT_FALSE(again->has_value()) << "single use";
  // Taken codes are gone, so the hash may be stored again (a code put back after a failure).
  MEDIC_ASSERT_OK(store().PutEnrollmentCode(code));
}

TEST_P(StoreConformanceTest, ExpiredEnrolmentCodesArePrunedAndARevokedHostLosesItsCodes) {
  MEDIC_ASSERT_OK(store().PutEnrollmentCode({std::string(64, 'a'), "web-1", Ms(kT0 + 1000), "a"}));
  MEDIC_ASSERT_OK(store().PutEnrollmentCode({std::string(64, 'b'), "web-1", Ms(kT0 + 5000), "a"}));
  MEDIC_ASSERT_OK(store().PutEnrollmentCode({std::string(64, 'c'), "web-2", Ms(kT0 + 5000), "a"}));
  Result<int64_t> left = store().PruneEnrollmentCodes(Ms(kT0));
  MEDIC_ASSERT_OK(left);
  EXPECT_EQ(*left, 3);
  left = store().PruneEnrollmentCodes(Ms(kT0 + 1000));  // 'a' expires at that instant
  MEDIC_ASSERT_OK(left);
  EXPECT_EQ(*left, 2);
  // Pruned for good: not even an earlier `now` brings it back.
  Result<std::optional<EnrollmentCodeRecord>> gone =
      store().TakeEnrollmentCode(std::string(64, 'a'), "web-1", Ms(kT0));
  MEDIC_ASSERT_OK(gone);
  EXPECT_FALSE(gone->has_value());

  Result<int> deleted = store().DeleteEnrollmentCodes("web-1");
  MEDIC_ASSERT_OK(deleted);
  EXPECT_EQ(*deleted, 1);
  deleted = store().DeleteEnrollmentCodes("web-1");
  MEDIC_ASSERT_OK(deleted);
  EXPECT_EQ(*deleted, 0);
  Result<std::optional<EnrollmentCodeRecord>> other =
      store().TakeEnrollmentCode(std::string(64, 'c'), "web-2", Ms(kT0));
  MEDIC_ASSERT_OK(other);
  EXPECT_TRUE(other->has_value()) << "another host's code stays";
}

// Two servers (two stores on one backend) and several threads each redeem the same code at
// once: exactly one gets it. This is what keeps a code single-use across servers.
TEST_P(StoreConformanceTest, ConcurrentTakesOfOneCodeFromTwoStoresLetExactlyOneWin) {
  Result<std::unique_ptr<Store>> second = backend_->Open();
  ASSERT_TRUE(second.has_value()) << second.error().ToString();
  constexpr int kRounds = 5;
  constexpr int kThreads = 8;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::string hash(64, static_cast<char>('a' + round));
    MEDIC_ASSERT_OK(store().PutEnrollmentCode({hash, "web-1", Ms(kT0 + 60'000), "admin"}));
    std::atomic<int> won{0};
    std::atomic<int> lost{0};
    std::atomic<int> failed{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      Store& s = t % 2 == 0 ? store() : **second;
      threads.emplace_back([&s, &hash, &won, &lost, &failed] {
        Result<std::optional<EnrollmentCodeRecord>> r =
            s.TakeEnrollmentCode(hash, "web-1", Ms(kT0));
        if (!r.has_value()) {
          ++failed;
        } else if (r->has_value()) {
          ++won;
        } else {
          ++lost;
        }
      });
    }
    for (auto& th : threads) {
      th.join();
    }
    EXPECT_EQ(won.load(), 1);
    EXPECT_EQ(lost.load(), kThreads - 1);
    EXPECT_EQ(failed.load(), 0);
  }
}

TEST_P(StoreConformanceTest, AnEnrolmentRequestIsFiledOnceApprovedListedAndDeleted) {
  Result<std::vector<PendingEnrollmentRecord>> none = store().ListPendingEnrollments();
  MEDIC_ASSERT_OK(none);
  EXPECT_TRUE(none->empty());
  Result<std::optional<PendingEnrollmentRecord>> missing = store().GetPendingEnrollment("web-2");
  MEDIC_ASSERT_OK(missing);
  EXPECT_FALSE(missing->has_value());

  const PendingEnrollmentRecord web2{"web-2", std::string(64, 'a'), Ms(kT0), "box2", ""};
  Result<PendingEnrollmentRecord> filed = store().FilePendingEnrollment(web2);
  MEDIC_ASSERT_OK(filed);
  EXPECT_EQ(filed->key_hash, web2.key_hash);
  // A second filing for the name (another key, say) changes nothing and returns the first.
  filed = store().FilePendingEnrollment({"web-2", std::string(64, 'b'), Ms(kT0 + 5), "x", "auto"});
  MEDIC_ASSERT_OK(filed);
  EXPECT_EQ(filed->key_hash, std::string(64, 'a'));
  EXPECT_EQ(filed->requested_at, Ms(kT0));
  EXPECT_EQ(filed->hostname, "box2");
  EXPECT_EQ(filed->approved_by, "");
  MEDIC_ASSERT_OK(
      store().FilePendingEnrollment({"web-1", std::string(64, 'c'), Ms(kT0 + 1), "", "auto"}));

  MEDIC_ASSERT_OK(store().ApprovePendingEnrollment("web-2", "alice"));
  EXPECT_EQ(CodeOf(store().ApprovePendingEnrollment("web-9", "alice")), ErrorCode::kNotFound);
  Result<std::vector<PendingEnrollmentRecord>> all = store().ListPendingEnrollments();
  MEDIC_ASSERT_OK(all);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].name, "web-1");
  EXPECT_EQ((*all)[0].approved_by, "auto");
  EXPECT_EQ((*all)[0].requested_at, Ms(kT0 + 1));
  EXPECT_EQ((*all)[1].name, "web-2");
  EXPECT_EQ((*all)[1].key_hash, std::string(64, 'a'));
  EXPECT_EQ((*all)[1].hostname, "box2");
  EXPECT_EQ((*all)[1].approved_by, "alice");
  Result<std::optional<PendingEnrollmentRecord>> got = store().GetPendingEnrollment("web-2");
  MEDIC_ASSERT_OK(got);
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->approved_by, "alice");

  MEDIC_ASSERT_OK(store().DeletePendingEnrollment("web-2"));
  EXPECT_EQ(CodeOf(store().DeletePendingEnrollment("web-2")), ErrorCode::kNotFound);
  all = store().ListPendingEnrollments();
  MEDIC_ASSERT_OK(all);
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].name, "web-1");
}

// Two servers file a request for one name at once with different keys: one request is stored
// and both are told which.
TEST_P(StoreConformanceTest, ConcurrentFilingsForOneNameStoreOneRequest) {
  Result<std::unique_ptr<Store>> second = backend_->Open();
  ASSERT_TRUE(second.has_value()) << second.error().ToString();
  constexpr int kThreads = 8;
  std::vector<std::string> seen(kThreads);
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    Store& s = t % 2 == 0 ? store() : **second;
    threads.emplace_back([&s, &seen, &failed, t] {
      Result<PendingEnrollmentRecord> r = s.FilePendingEnrollment(
          {"web-1", std::string(64, static_cast<char>('a' + t)), Ms(kT0 + t), "", ""});
      if (r.has_value()) {
        seen[static_cast<size_t>(t)] = r->key_hash;
      } else {
        ++failed;
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_EQ(failed.load(), 0);
  Result<std::vector<PendingEnrollmentRecord>> all = store().ListPendingEnrollments();
  MEDIC_ASSERT_OK(all);
  ASSERT_EQ(all->size(), 1u);
  for (const std::string& key_hash : seen) {
    EXPECT_EQ(key_hash, (*all)[0].key_hash);
  }
}

// --- settings -------------------------------------------------------------------------------

TEST_P(StoreConformanceTest, SettingsGetPutOverwrite) {
  Result<std::optional<std::string>> missing = store().GetSetting("approval_mode");
  MEDIC_ASSERT_OK(missing);
  EXPECT_FALSE(missing->has_value());

  struct Case {
    std::string key;
    std::string value;
  };
  const Case kCases[] = {
      {"approval_mode", "\"manual\""},
      {"automation_paused", "false"},
      {"empty", ""},
      {"unicode-ключ-🔑", "{\"note\":\"żółć\"}"},
      {"x'; DROP TABLE settings; --", "[1,2,3]"},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.key);
    MEDIC_ASSERT_OK(store().PutSetting(c.key, c.value));
  }
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.key);
    Result<std::optional<std::string>> got = store().GetSetting(c.key);
    MEDIC_ASSERT_OK(got);
    ASSERT_TRUE(got->has_value());
    EXPECT_EQ(**got, c.value);
  }

  MEDIC_ASSERT_OK(store().PutSetting("approval_mode", "\"auto\""));
  Result<std::optional<std::string>> got = store().GetSetting("approval_mode");
  MEDIC_ASSERT_OK(got);
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ(**got, "\"auto\"");
  // Other keys are untouched by the overwrite.
  got = store().GetSetting("automation_paused");
  MEDIC_ASSERT_OK(got);
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ(**got, "false");
}

TEST_P(StoreConformanceTest, ListSettingsIsEveryKeyInByteOrder) {
  Result<std::vector<std::pair<std::string, std::string>>> none = store().ListSettings();
  MEDIC_ASSERT_OK(none);
  EXPECT_TRUE(none->empty());
  MEDIC_ASSERT_OK(store().PutSetting("b", "2"));
  MEDIC_ASSERT_OK(store().PutSetting("unicode-ключ", "{}"));
  MEDIC_ASSERT_OK(store().PutSetting("A", "1"));
  MEDIC_ASSERT_OK(store().PutSetting("a", ""));
  MEDIC_ASSERT_OK(store().PutSetting("b", "3"));  // overwritten, listed once
  Result<std::vector<std::pair<std::string, std::string>>> all = store().ListSettings();
  MEDIC_ASSERT_OK(all);
  const std::vector<std::pair<std::string, std::string>> want = {
      {"A", "1"}, {"a", ""}, {"b", "3"}, {"unicode-ключ", "{}"}};
  EXPECT_EQ(*all, want);
}

// --- incident leases (several servers on one store) -----------------------------------------

TEST_P(StoreConformanceTest, ClaimSucceedsWhenFreeExpiredOrOwnAndFailsWhileAnotherHoldsIt) {
  MEDIC_ASSERT_OK(store().CreateIncident(MakeIncident("inc-1")));
  Result<bool> won = store().ClaimIncidentLease("inc-1", "s1", Ms(kT0), Ms(kT0 + 6000));
  MEDIC_ASSERT_OK(won);
  EXPECT_TRUE(*won) << "a free incident";
  won = store().ClaimIncidentLease("inc-1", "s2", Ms(kT0 + 1000), Ms(kT0 + 7000));
  MEDIC_ASSERT_OK(won);
  EXPECT_FALSE(*won) << "s1's lease is live until kT0+6000";
  won = store().ClaimIncidentLease("inc-1", "s1", Ms(kT0 + 2000), Ms(kT0 + 8000));
  MEDIC_ASSERT_OK(won);
  EXPECT_TRUE(*won) << "already s1's: extended";
  won = store().ClaimIncidentLease("inc-1", "s2", Ms(kT0 + 7999), Ms(kT0 + 9000));
  MEDIC_ASSERT_OK(won);
  EXPECT_FALSE(*won) << "the extension holds until kT0+8000";
  won = store().ClaimIncidentLease("inc-1", "s2", Ms(kT0 + 8000), Ms(kT0 + 14000));
  MEDIC_ASSERT_OK(won);
  EXPECT_TRUE(*won) << "expired at kT0+8000: anyone's";
  // s1 no longer holds it: its renewal does not bring it back.
  Result<std::vector<std::string>> held =
      store().RenewIncidentLeases("s1", Ms(kT0 + 8001), Ms(kT0 + 14001));
  MEDIC_ASSERT_OK(held);
  EXPECT_TRUE(held->empty());
  held = store().RenewIncidentLeases("s2", Ms(kT0 + 8001), Ms(kT0 + 14001));
  MEDIC_ASSERT_OK(held);
  EXPECT_EQ(*held, std::vector<std::string>{"inc-1"});

  Result<bool> unknown = store().ClaimIncidentLease("inc-nope", "s1", Ms(kT0), Ms(kT0 + 6000));
  ASSERT_FALSE(unknown.has_value());
  EXPECT_EQ(unknown.error().code, ErrorCode::kNotFound);
}

TEST_P(StoreConformanceTest, RenewExtendsOnlyLiveLeasesOfTheOwnerAndReleaseFreesOne) {
  for (const char* id : {"inc-a", "inc-b", "inc-c"}) {
    MEDIC_ASSERT_OK(store().CreateIncident(MakeIncident(id, "x", std::string("h-") + id)));
  }
  MEDIC_ASSERT_OK(store().ClaimIncidentLease("inc-b", "s1", Ms(kT0), Ms(kT0 + 6000)));
  MEDIC_ASSERT_OK(store().ClaimIncidentLease("inc-a", "s1", Ms(kT0), Ms(kT0 + 3000)));
  MEDIC_ASSERT_OK(store().ClaimIncidentLease("inc-c", "s2", Ms(kT0), Ms(kT0 + 6000)));
  // At kT0+4000 inc-a's lease has expired: only inc-b is renewed.
  Result<std::vector<std::string>> held =
      store().RenewIncidentLeases("s1", Ms(kT0 + 4000), Ms(kT0 + 10000));
  MEDIC_ASSERT_OK(held);
  EXPECT_EQ(*held, std::vector<std::string>{"inc-b"});
  Result<bool> won = store().ClaimIncidentLease("inc-b", "s2", Ms(kT0 + 9000), Ms(kT0 + 15000));
  MEDIC_ASSERT_OK(won);
  EXPECT_FALSE(*won) << "renewed until kT0+10000";
  // Releasing another owner's lease changes nothing; releasing one's own frees it.
  MEDIC_ASSERT_OK(store().ReleaseIncidentLease("inc-c", "s1"));
  won = store().ClaimIncidentLease("inc-c", "s1", Ms(kT0 + 1000), Ms(kT0 + 7000));
  MEDIC_ASSERT_OK(won);
  EXPECT_FALSE(*won);
  MEDIC_ASSERT_OK(store().ReleaseIncidentLease("inc-c", "s2"));
  won = store().ClaimIncidentLease("inc-c", "s1", Ms(kT0 + 1000), Ms(kT0 + 7000));
  MEDIC_ASSERT_OK(won);
  EXPECT_TRUE(*won);
  MEDIC_ASSERT_OK(store().ReleaseIncidentLease("inc-nope", "s1"));  // no lease: no-op
}

TEST_P(StoreConformanceTest, ClaimableAreOpenIncidentsWithAnExpiredLeaseOrNoneSinceLongEnough) {
  // updated_at = kT0 + offset + 5 (MakeIncident).
  MEDIC_ASSERT_OK(store().CreateIncident(
      MakeIncident("inc-old", "x", "h1", IncidentStatus::kDiagnosing, 0)));
  MEDIC_ASSERT_OK(store().CreateIncident(
      MakeIncident("inc-new", "x", "h2", IncidentStatus::kPendingApproval, 5000)));
  MEDIC_ASSERT_OK(store().CreateIncident(
      MakeIncident("inc-live", "x", "h3", IncidentStatus::kExecuting, 0)));
  MEDIC_ASSERT_OK(store().CreateIncident(
      MakeIncident("inc-gone", "x", "h4", IncidentStatus::kExecuting, 100)));
  MEDIC_ASSERT_OK(
      store().CreateIncident(MakeIncident("inc-done", "x", "h5", IncidentStatus::kCompleted, 0)));
  MEDIC_ASSERT_OK(store().ClaimIncidentLease("inc-live", "s1", Ms(kT0), Ms(kT0 + 20000)));
  MEDIC_ASSERT_OK(store().ClaimIncidentLease("inc-gone", "s2", Ms(kT0), Ms(kT0 + 6000)));
  MEDIC_ASSERT_OK(store().ClaimIncidentLease("inc-done", "s2", Ms(kT0), Ms(kT0 + 6000)));

  // At kT0+6000, unleased ones updated at or before kT0+1000: inc-old (not inc-new), and
  // inc-gone whose lease expired; never a live lease, never a closed incident.
  Result<std::vector<std::string>> got =
      store().ListClaimableIncidents(Ms(kT0 + 6000), Ms(kT0 + 1000), 100);
  MEDIC_ASSERT_OK(got);
  EXPECT_EQ(*got, (std::vector<std::string>{"inc-old", "inc-gone"}));  // oldest update first
  got = store().ListClaimableIncidents(Ms(kT0 + 5999), Ms(kT0 + 5005), 100);
  MEDIC_ASSERT_OK(got);
  EXPECT_EQ(*got, (std::vector<std::string>{"inc-old", "inc-new"}));
  got = store().ListClaimableIncidents(Ms(kT0 + 6000), Ms(kT0 + 1000), 1);
  MEDIC_ASSERT_OK(got);
  EXPECT_EQ(*got, std::vector<std::string>{"inc-old"});
}

// Two connections (two servers) race for the same free incidents: each is won exactly once.
TEST_P(StoreConformanceTest, TwoHandlesRacingForTheSameIncidentsEachWinOnceExactly) {
  constexpr int kIncidents = 20;
  for (int i = 0; i < kIncidents; ++i) {
    MEDIC_ASSERT_OK(store().CreateIncident(
        MakeIncident("inc-" + std::to_string(i), "x", "h" + std::to_string(i))));
  }
  auto other = backend_->Open();
  MEDIC_ASSERT_OK(other);
  std::vector<Store*> handles = {&store(), other->get()};
  std::vector<std::vector<std::string>> wins(2);
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      const std::string owner = "s" + std::to_string(t + 1);
      for (int i = 0; i < kIncidents; ++i) {
        Result<bool> won = handles[static_cast<size_t>(t)]->ClaimIncidentLease(
            "inc-" + std::to_string(i), owner, Ms(kT0), Ms(kT0 + 6000));
        if (!won) {
          ++errors;
        } else if (*won) {
          wins[static_cast<size_t>(t)].push_back("inc-" + std::to_string(i));
        }
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(wins[0].size() + wins[1].size(), static_cast<size_t>(kIncidents));
  // What each won is what the store says it holds.
  for (int t = 0; t < 2; ++t) {
    std::vector<std::string> want = wins[static_cast<size_t>(t)];
    std::sort(want.begin(), want.end());
    Result<std::vector<std::string>> held = store().RenewIncidentLeases(
        "s" + std::to_string(t + 1), Ms(kT0 + 1), Ms(kT0 + 6000));
    MEDIC_ASSERT_OK(held);
    EXPECT_EQ(*held, want);
  }
}

// --- the cluster bus's message log ------------------------------------------------------------

inline ClusterMessageRecord Message(const std::string& sender, const std::string& payload,
                                    int64_t at_offset_ms = 0) {
  return ClusterMessageRecord{0, Ms(kT0 + at_offset_ms), sender, "changed", "web-1", payload};
}

TEST_P(StoreConformanceTest, ABatchOfClusterMessagesIsAppendedInOrderWithOneCommit) {
  Result<int64_t> none = store().AppendClusterMessages({});
  MEDIC_ASSERT_OK(none);
  EXPECT_EQ(*none, 0);
  MEDIC_ASSERT_OK(store().AppendClusterMessage(Message("s2", "before")));
  std::vector<ClusterMessageRecord> batch;
  for (int i = 0; i < 700; ++i) {  // more than one read page
    batch.push_back(Message("s1", "m" + std::to_string(i), i));
  }
  Result<int64_t> last = store().AppendClusterMessages(batch);
  MEDIC_ASSERT_OK(last);
  Result<int64_t> newest = store().LastClusterMessageId();
  MEDIC_ASSERT_OK(newest);
  EXPECT_EQ(*last, *newest);
  std::vector<ClusterMessageRecord> all;
  int64_t cursor = 0;
  for (;;) {
    Result<std::vector<ClusterMessageRecord>> page = store().ReadClusterMessages(cursor, 500);
    MEDIC_ASSERT_OK(page);
    if (page->empty()) {
      break;
    }
    cursor = page->back().id;
    all.insert(all.end(), page->begin(), page->end());
  }
  ASSERT_EQ(all.size(), 701u);
  EXPECT_EQ(all[0].payload, "before");
  for (int i = 0; i < 700; ++i) {
    EXPECT_EQ(all[i + 1].payload, "m" + std::to_string(i));
    EXPECT_EQ(ToUnixMillis(all[i + 1].at), kT0 + i);
    EXPECT_LT(all[i].id, all[i + 1].id);
  }
  EXPECT_EQ(all.back().id, *last);
}

TEST_P(StoreConformanceTest, ClusterMessagesAreNumberedAndReadAfterACursorInOrder) {
  Result<int64_t> empty = store().LastClusterMessageId();
  MEDIC_ASSERT_OK(empty);
  EXPECT_EQ(*empty, 0);
  std::vector<int64_t> ids;
  for (const std::string payload : {"{\"what\":\"settings\"}", "", "bytes \xff\x01 ok"}) {
    Result<int64_t> id = store().AppendClusterMessage(Message("s1", payload, 7));
    MEDIC_ASSERT_OK(id);
    ids.push_back(*id);
  }
  ASSERT_LT(ids[0], ids[1]);
  ASSERT_LT(ids[1], ids[2]);
  Result<int64_t> last = store().LastClusterMessageId();
  MEDIC_ASSERT_OK(last);
  EXPECT_EQ(*last, ids[2]);
  Result<std::vector<ClusterMessageRecord>> all = store().ReadClusterMessages(0, 1000);
  MEDIC_ASSERT_OK(all);
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].id, ids[0]);
  EXPECT_EQ((*all)[0].sender, "s1");
  EXPECT_EQ((*all)[0].kind, "changed");
  EXPECT_EQ((*all)[0].target, "web-1");
  EXPECT_EQ((*all)[0].payload, "{\"what\":\"settings\"}");
  EXPECT_EQ(ToUnixMillis((*all)[0].at), kT0 + 7);
  EXPECT_EQ((*all)[1].payload, "");
  EXPECT_EQ((*all)[2].payload, "bytes \xff\x01 ok");
  // After a cursor, at most `limit`.
  Result<std::vector<ClusterMessageRecord>> page = store().ReadClusterMessages(ids[0], 1);
  MEDIC_ASSERT_OK(page);
  ASSERT_EQ(page->size(), 1u);
  EXPECT_EQ((*page)[0].id, ids[1]);
  Result<std::vector<ClusterMessageRecord>> none = store().ReadClusterMessages(ids[2], 10);
  MEDIC_ASSERT_OK(none);
  EXPECT_TRUE(none->empty());
}

// Two handles on one data set (two servers on one database): what either appends, a reader on
// either handle reads exactly once, in id order, each poster's messages in the order posted,
// while the posts are still going on.
TEST_P(StoreConformanceTest, ClusterMessagesOfTwoHandlesAreOneLogReadWithoutGaps) {
  Result<std::unique_ptr<Store>> second = backend_->Open();
  ASSERT_TRUE(second.has_value()) << second.error().ToString();
  constexpr int kEach = 150;
  std::atomic<bool> failed{false};
  auto post = [&](Store& s, const std::string& sender) {
    for (int i = 0; i < kEach; ++i) {
      if (!s.AppendClusterMessage(Message(sender, std::to_string(i))).has_value()) {
        failed = true;
      }
    }
  };
  std::thread a([&] { post(store(), "s1"); });
  std::thread b([&] { post(**second, "s2"); });
  std::vector<ClusterMessageRecord> seen;
  int64_t cursor = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (seen.size() < 2u * kEach && !failed && std::chrono::steady_clock::now() < deadline) {
    Result<std::vector<ClusterMessageRecord>> page = (*second)->ReadClusterMessages(cursor, 7);
    if (!page.has_value()) {
      ADD_FAILURE() << page.error().ToString();
      break;
    }
    for (ClusterMessageRecord& m : *page) {
      EXPECT_GT(m.id, cursor);
      cursor = m.id;
      seen.push_back(std::move(m));
    }
  }
  a.join();
  b.join();
  ASSERT_FALSE(failed);
  ASSERT_EQ(seen.size(), 2u * kEach);
  std::map<std::string, int> next;
  for (const ClusterMessageRecord& m : seen) {
    EXPECT_EQ(m.payload, std::to_string(next[m.sender]++)) << "from " << m.sender;
  }
  EXPECT_EQ(next["s1"], kEach);
  EXPECT_EQ(next["s2"], kEach);
}

TEST_P(StoreConformanceTest, PruningDropsOlderMessagesAndIdsAreNotReused) {
  Result<int64_t> first = store().AppendClusterMessage(Message("s1", "old", 0));
  MEDIC_ASSERT_OK(first);
  MEDIC_ASSERT_OK(store().AppendClusterMessage(Message("s1", "older-but-later", -5)));
  Result<int64_t> keep = store().AppendClusterMessage(Message("s2", "new", 1000));
  MEDIC_ASSERT_OK(keep);
  Result<int> pruned = store().PruneClusterMessages(Ms(kT0 + 1000));
  MEDIC_ASSERT_OK(pruned);
  EXPECT_EQ(*pruned, 2);
  Result<int> again = store().PruneClusterMessages(Ms(kT0 + 1000));  // another server's turn
  MEDIC_ASSERT_OK(again);
  EXPECT_EQ(*again, 0);
  Result<std::vector<ClusterMessageRecord>> left = store().ReadClusterMessages(0, 10);
  MEDIC_ASSERT_OK(left);
  ASSERT_EQ(left->size(), 1u);
  EXPECT_EQ((*left)[0].id, *keep);
  EXPECT_EQ((*left)[0].payload, "new");
  // Everything pruned: a new message still gets a higher id than any before it.
  MEDIC_ASSERT_OK(store().PruneClusterMessages(Ms(kT0 + 5000)));
  Result<int64_t> after = store().AppendClusterMessage(Message("s1", "after", 6000));
  MEDIC_ASSERT_OK(after);
  EXPECT_GT(*after, *keep);
}

TEST_P(StoreConformanceTest, AlarmStatesArePutReplacedAndListedByHost) {
  Result<std::vector<AlarmStateRecord>> none = store().ListAlarmStates("web-1");
  MEDIC_ASSERT_OK(none);
  EXPECT_TRUE(none->empty());
  MEDIC_ASSERT_OK(store().PutAlarmStates(
      {{"web-1", "Nginx-Down-ALB", "ALARM", Ms(kT0 + 1), "1 of 1 periods < 1", "s1", Ms(kT0 + 2)},
       {"web-1", "Host-Unreachable", "OK", Ms(kT0), "", "s1", Ms(kT0 + 2)},
       {"web-2", "Host-Unreachable", "ALARM", Ms(kT0), "3 of 3", "s2", Ms(kT0)}}));
  // Replaced under (host, rule): the host moved to s2.
  MEDIC_ASSERT_OK(store().PutAlarmStates(
      {{"web-1", "Host-Unreachable", "INSUFFICIENT_DATA", Ms(kT0 + 5), "x", "s2", Ms(kT0 + 6)}}));
  Result<std::vector<AlarmStateRecord>> got = store().ListAlarmStates("web-1");
  MEDIC_ASSERT_OK(got);
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[0].rule, "Host-Unreachable");
  EXPECT_EQ((*got)[0].state, "INSUFFICIENT_DATA");
  EXPECT_EQ(ToUnixMillis((*got)[0].since), kT0 + 5);
  EXPECT_EQ((*got)[0].server, "s2");
  EXPECT_EQ(ToUnixMillis((*got)[0].updated_at), kT0 + 6);
  EXPECT_EQ((*got)[1].rule, "Nginx-Down-ALB");
  EXPECT_EQ((*got)[1].state, "ALARM");
  EXPECT_EQ((*got)[1].reason, "1 of 1 periods < 1");
  EXPECT_EQ(ToUnixMillis((*got)[1].since), kT0 + 1);
}

TEST_P(StoreConformanceTest, AlarmStatesOfEveryHostAreListedWithAnEmptyHost) {
  Result<std::vector<AlarmStateRecord>> none = store().ListAlarmStates("");
  MEDIC_ASSERT_OK(none);
  EXPECT_TRUE(none->empty());
  MEDIC_ASSERT_OK(store().PutAlarmStates(
      {{"web-2", "Host-Unreachable", "OK", Ms(kT0), "", "s2", Ms(kT0)},
       {"db-1", "Host-Unreachable", "ALARM", Ms(kT0), "3 of 3", "s1", Ms(kT0)},
       {"web-2", "Disk-Critical-ASG", "OK", Ms(kT0), "", "s2", Ms(kT0)}}));
  Result<std::vector<AlarmStateRecord>> all = store().ListAlarmStates("");
  MEDIC_ASSERT_OK(all);
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].host, "db-1");  // by host, then rule
  EXPECT_EQ((*all)[0].server, "s1");
  EXPECT_EQ((*all)[1].host, "web-2");
  EXPECT_EQ((*all)[1].rule, "Disk-Critical-ASG");
  EXPECT_EQ((*all)[2].rule, "Host-Unreachable");
  Result<std::vector<AlarmStateRecord>> one = store().ListAlarmStates("web-2");
  MEDIC_ASSERT_OK(one);
  EXPECT_EQ(one->size(), 2u);
}

// --- concurrency ----------------------------------------------------------------------------

TEST_P(StoreConformanceTest, ConcurrentUpdatesOnDifferentIncidentsAllLand) {
  constexpr int kThreads = 8;
  constexpr int kUpdates = 25;
  for (int t = 0; t < kThreads; ++t) {
    MEDIC_ASSERT_OK(store().CreateIncident(
        MakeIncident("inc-" + std::to_string(t), "x", "h" + std::to_string(t))));
  }
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Incident inc = MakeIncident("inc-" + std::to_string(t), "x", "h" + std::to_string(t));
      for (int u = 0; u < kUpdates; ++u) {
        inc.diagnostics = "thread " + std::to_string(t) + " update " + std::to_string(u);
        inc.updated_at = Ms(kT0 + u);
        inc.timeline.push_back(
            {"update", Ms(kT0 + u), "thread-" + std::to_string(t), std::to_string(u)});
        if (!store().UpdateIncident(inc).has_value()) {
          ++failures;
        }
        // Readers interleave with writers.
        if (!store().GetIncident("inc-" + std::to_string((t + 1) % kThreads)).has_value()) {
          ++failures;
        }
      }
      if (!store().PutSetting("thread-" + std::to_string(t), std::to_string(t)).has_value()) {
        ++failures;
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_EQ(failures.load(), 0);
  for (int t = 0; t < kThreads; ++t) {
    SCOPED_TRACE("thread " + std::to_string(t));
    Incident got = MustGet("inc-" + std::to_string(t));
    EXPECT_EQ(got.diagnostics,
              "thread " + std::to_string(t) + " update " + std::to_string(kUpdates - 1));
    ASSERT_EQ(got.timeline.size(), 1u + kUpdates);
    for (int u = 0; u < kUpdates; ++u) {
      EXPECT_EQ(got.timeline[1 + u].detail, std::to_string(u));
      EXPECT_EQ(got.timeline[1 + u].actor, "thread-" + std::to_string(t));
    }
    Result<std::optional<std::string>> setting = store().GetSetting("thread-" + std::to_string(t));
    MEDIC_ASSERT_OK(setting);
    ASSERT_TRUE(setting->has_value());
    EXPECT_EQ(**setting, std::to_string(t));
  }
}

TEST_P(StoreConformanceTest, TokensCreateListDelete) {
  const WallTime t = FromUnixMillis(1'800'000'000'000);
  MEDIC_ASSERT_OK(store().CreateToken({"vera", "viewer", std::string(64, 'a'), t, "admin"}));
  MEDIC_ASSERT_OK(store().CreateToken({"otto", "operator", std::string(64, 'b'), t, "admin"}));
  Status dup = store().CreateToken({"vera", "admin", std::string(64, 'c'), t, "admin"});
  ASSERT_FALSE(dup.has_value());
  EXPECT_EQ(dup.error().code, ErrorCode::kAlreadyExists);
  auto list = store().ListTokens();
  MEDIC_ASSERT_OK(list);
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].name, "otto");
  EXPECT_EQ((*list)[0].role, "operator");
  EXPECT_EQ((*list)[0].token_hash, std::string(64, 'b'));
  EXPECT_EQ(ToUnixMillis((*list)[0].created_at), ToUnixMillis(t));
  EXPECT_EQ((*list)[1].created_by, "admin");
  MEDIC_ASSERT_OK(store().DeleteToken("vera"));
  Status again = store().DeleteToken("vera");
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store().ListTokens()->size(), 1u);
}

TEST_P(StoreConformanceTest, AuditIsNewestFirstAndLimited) {
  for (int i = 0; i < 5; ++i) {
    MEDIC_ASSERT_OK(store().AppendAudit(
        {FromUnixMillis(1'800'000'000'000 + i), "ada", "settings.update", std::to_string(i)}));
  }
  auto list = store().ListAudit(3);
  MEDIC_ASSERT_OK(list);
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ((*list)[0].detail, "4");
  EXPECT_EQ((*list)[2].detail, "2");
  EXPECT_EQ((*list)[0].actor, "ada");
  EXPECT_EQ((*list)[0].action, "settings.update");
}

TEST_P(StoreConformanceTest, AuditEntriesAreNumberedAndChained) {
  auto empty = store().VerifyAudit();
  MEDIC_ASSERT_OK(empty);
  EXPECT_TRUE(empty->ok);
  EXPECT_EQ(empty->entries, 0);
  EXPECT_EQ(empty->head, std::string(64, '0'));
  for (int i = 0; i < 4; ++i) {
    // Whatever the caller puts in id and the hashes is ignored.
    AuditEntry e{FromUnixMillis(1'800'000'000'000 + i), "ada", "incident.approve",
                 "detail " + std::to_string(i)};
    e.id = 99;
    e.hash = "forged";
    MEDIC_ASSERT_OK(store().AppendAudit(e));
  }
  auto list = store().ListAudit(10);
  MEDIC_ASSERT_OK(list);
  ASSERT_EQ(list->size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    const AuditEntry& e = (*list)[i];  // newest first
    SCOPED_TRACE(e.detail);
    EXPECT_EQ(e.id, static_cast<int64_t>(4 - i));
    EXPECT_EQ(e.hash.size(), 64u);
    EXPECT_EQ(e.hash.find_first_not_of("0123456789abcdef"), std::string::npos);
    EXPECT_EQ(e.prev_hash, i + 1 < 4 ? (*list)[i + 1].hash : std::string(64, '0'));
  }
  auto v = store().VerifyAudit();
  MEDIC_ASSERT_OK(v);
  EXPECT_TRUE(v->ok) << v->reason;
  EXPECT_EQ(v->entries, 4);
  EXPECT_FALSE(v->first_broken.has_value());
  EXPECT_EQ(v->head, (*list)[0].hash);

  // Another connection on the same data continues the same chain.
  auto again = backend_->Open();
  MEDIC_ASSERT_OK(again);
  MEDIC_ASSERT_OK((*again)->AppendAudit({FromUnixMillis(1'800'000'000'010), "bob", "x", "y"}));
  auto newest = store().ListAudit(1);
  MEDIC_ASSERT_OK(newest);
  ASSERT_EQ(newest->size(), 1u);
  EXPECT_EQ((*newest)[0].prev_hash, (*list)[0].hash);
  v = store().VerifyAudit();
  MEDIC_ASSERT_OK(v);
  EXPECT_TRUE(v->ok) << v->reason;
  EXPECT_EQ(v->entries, 5);
}

TEST_P(StoreConformanceTest, ListAuditAfterPagesThroughTheWholeLogOldestFirst) {
  {
    auto none = store().ListAuditAfter(0, 10);
    MEDIC_ASSERT_OK(none);
    EXPECT_TRUE(none->empty());
  }
  for (int i = 0; i < 7; ++i) {
    MEDIC_ASSERT_OK(
        store().AppendAudit({Ms(kT0 + 10 - i), "ada", "settings.update", "d" + std::to_string(i)}));
  }
  auto newest = store().ListAudit(1000);
  MEDIC_ASSERT_OK(newest);
  ASSERT_EQ(newest->size(), 7u);
  std::vector<AuditEntry> paged;
  int64_t after = 0;
  for (int pages = 0; pages < 10; ++pages) {
    auto page = store().ListAuditAfter(after, 3);
    MEDIC_ASSERT_OK(page);
    ASSERT_LE(page->size(), 3u);
    if (page->empty()) {
      break;
    }
    after = page->back().id;
    paged.insert(paged.end(), page->begin(), page->end());
  }
  ASSERT_EQ(paged.size(), 7u);
  for (size_t i = 0; i < paged.size(); ++i) {
    const AuditEntry& want = (*newest)[newest->size() - 1 - i];  // insertion order
    SCOPED_TRACE(i);
    EXPECT_EQ(paged[i].id, static_cast<int64_t>(i + 1));
    EXPECT_EQ(paged[i].detail, "d" + std::to_string(i));
    EXPECT_EQ(paged[i].id, want.id);
    EXPECT_EQ(paged[i].timestamp, want.timestamp);
    EXPECT_EQ(paged[i].actor, want.actor);
    EXPECT_EQ(paged[i].action, want.action);
    EXPECT_EQ(paged[i].prev_hash, want.prev_hash);
    EXPECT_EQ(paged[i].hash, want.hash);
  }
  {
    auto none = store().ListAuditAfter(7, 10);
    MEDIC_ASSERT_OK(none);
    EXPECT_TRUE(none->empty());
  }
  auto clamped = store().ListAuditAfter(-5, 0);  // limit clamped to 1
  MEDIC_ASSERT_OK(clamped);
  ASSERT_EQ(clamped->size(), 1u);
  EXPECT_EQ(clamped->front().id, 1);
}

TEST_P(StoreConformanceTest, ConcurrentAuditAppendsKeepOneChain) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([this, t] {
      for (int i = 0; i < 10; ++i) {
        EXPECT_TRUE(store()
                        .AppendAudit({FromUnixMillis(1'800'000'000'000 + i), "t" + std::to_string(t),
                                      "settings.update", std::to_string(i)})
                        .has_value());
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  auto v = store().VerifyAudit();
  MEDIC_ASSERT_OK(v);
  EXPECT_TRUE(v->ok) << v->reason;
  EXPECT_EQ(v->entries, 80);
}

// --- the notification outbox ------------------------------------------------------------------

inline OutboxRecord MakeOutboxRow(const std::string& key, int64_t created_ms,
                                  const std::string& incident = "inc-1") {
  OutboxRecord r;
  r.key = key;
  r.channel = "webhook";
  r.event = "incident_opened";
  r.incident_id = incident;
  r.payload = "{\"x\":\"" + key + "\"}";
  r.created_at = Ms(created_ms);
  r.next_attempt_at = Ms(created_ms);
  return r;
}

TEST_P(StoreConformanceTest, OutboxEnqueueIgnoresKnownKeysAndListsDueRowsOldestFirst) {
  Result<int> added = store().EnqueueOutbox(
      {MakeOutboxRow("b", kT0 + 2), MakeOutboxRow("a", kT0 + 1), MakeOutboxRow("c", kT0 + 9)});
  MEDIC_ASSERT_OK(added);
  EXPECT_EQ(*added, 3);
  // The same key again (a restart's reconcile) changes nothing, even with other fields.
  OutboxRecord again = MakeOutboxRow("a", kT0 + 50);
  again.payload = "{}";
  added = store().EnqueueOutbox({again, MakeOutboxRow("d", kT0 + 3, "inc-2")});
  MEDIC_ASSERT_OK(added);
  EXPECT_EQ(*added, 1);

  Result<std::vector<OutboxRecord>> due = store().DueOutbox(Ms(kT0 + 5), 10);
  MEDIC_ASSERT_OK(due);
  std::vector<std::string> keys;
  for (const auto& r : *due) {
    keys.push_back(r.key);
  }
  EXPECT_EQ(keys, (std::vector<std::string>{"a", "b", "d"}));
  ASSERT_FALSE(due->empty());
  EXPECT_EQ(due->front().payload, "{\"x\":\"a\"}");
  EXPECT_EQ(due->front().state, OutboxState::kPending);
  EXPECT_EQ(due->front().created_at, Ms(kT0 + 1));

  // Retried later, then delivered: neither is due any more.
  OutboxRecord a = due->front();
  a.attempts = 1;
  a.next_attempt_at = Ms(kT0 + 100);
  a.last_error = "HTTP 503";
  MEDIC_ASSERT_OK(store().UpdateOutbox(a));
  OutboxRecord b = (*due)[1];
  b.state = OutboxState::kSent;
  b.attempts = 1;
  MEDIC_ASSERT_OK(store().UpdateOutbox(b));
  due = store().DueOutbox(Ms(kT0 + 5), 10);
  MEDIC_ASSERT_OK(due);
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ(due->front().key, "d");
  due = store().DueOutbox(Ms(kT0 + 100), 1);
  MEDIC_ASSERT_OK(due);
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ(due->front().key, "a");
  EXPECT_EQ(due->front().attempts, 1);
  EXPECT_EQ(due->front().last_error, "HTTP 503");

  Result<std::vector<OutboxRecord>> of1 = store().ListOutbox("inc-1", 10);
  MEDIC_ASSERT_OK(of1);
  ASSERT_EQ(of1->size(), 3u);
  EXPECT_EQ((*of1)[1].key, "b");
  EXPECT_EQ((*of1)[1].state, OutboxState::kSent);
  Result<std::vector<OutboxRecord>> all = store().ListOutbox("", 1000);
  MEDIC_ASSERT_OK(all);
  EXPECT_EQ(all->size(), 4u);

  EXPECT_EQ(CodeOf(store().UpdateOutbox(MakeOutboxRow("nope", kT0))), ErrorCode::kNotFound);
}

TEST_P(StoreConformanceTest, ListOutboxAfterPagesThroughEveryRowByKey) {
  {
    auto none = store().ListOutboxAfter("", 10);
    MEDIC_ASSERT_OK(none);
    EXPECT_TRUE(none->empty());
  }
  // Keys in another order than created_at, one with a byte above 0x7f (bytewise order).
  std::vector<OutboxRecord> rows = {
      MakeOutboxRow("inc-2:0:x:webhook", kT0 + 1), MakeOutboxRow("inc-1:3:x:slack", kT0 + 2),
      MakeOutboxRow("inc-1:3:x:pagerduty", kT0 + 3), MakeOutboxRow("\xc3\xa9t\xc3\xa9", kT0 + 4),
      MakeOutboxRow("a", kT0 + 5)};
  rows[1].state = OutboxState::kDead;
  rows[1].attempts = 7;
  rows[1].last_error = "HTTP 410 gone";
  rows[2].state = OutboxState::kSent;
  rows[2].attempts = 2;
  rows[2].next_attempt_at = Ms(kT0 + 999);
  Result<int> added = store().EnqueueOutbox(rows);
  MEDIC_ASSERT_OK(added);
  ASSERT_EQ(*added, 5);
  std::vector<OutboxRecord> paged;
  std::string after;
  for (int pages = 0; pages < 10; ++pages) {
    auto page = store().ListOutboxAfter(after, 2);
    MEDIC_ASSERT_OK(page);
    ASSERT_LE(page->size(), 2u);
    if (page->empty()) {
      break;
    }
    after = page->back().key;
    paged.insert(paged.end(), page->begin(), page->end());
  }
  std::vector<std::string> keys;
  for (const auto& r : paged) {
    keys.push_back(r.key);
  }
  EXPECT_EQ(keys, (std::vector<std::string>{"a", "inc-1:3:x:pagerduty", "inc-1:3:x:slack",
                                            "inc-2:0:x:webhook", "\xc3\xa9t\xc3\xa9"}));
  ASSERT_EQ(paged.size(), 5u);
  EXPECT_EQ(paged[1].state, OutboxState::kSent);
  EXPECT_EQ(paged[1].attempts, 2);
  EXPECT_EQ(paged[1].next_attempt_at, Ms(kT0 + 999));
  EXPECT_EQ(paged[2].state, OutboxState::kDead);
  EXPECT_EQ(paged[2].attempts, 7);
  EXPECT_EQ(paged[2].last_error, "HTTP 410 gone");
  EXPECT_EQ(paged[2].created_at, Ms(kT0 + 2));
  EXPECT_EQ(paged[2].payload, rows[1].payload);
}

}  // namespace medic::server::conformance
