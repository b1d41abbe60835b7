// MemoryStore (tests/fakes/memory_store.h): the Store conformance suite, run against it alone
// and through a FaultyStore with no faults planned (which must then be invisible); rules beyond
// the suite run against MemoryStore and SqliteStore side by side, so that their agreement is
// tested; and what only MemoryStore has (Share()).
//
// SQLite-only tests stay in sqlite_store_test.cc: files, WAL, migrations, corruption, a process
// that dies without closing. No conformance test is left out here.

#include "tests/fakes/memory_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "server/store/store.h"
#include "tests/fakes/faulty_store.h"
#include "tests/fakes/temp_dir.h"
#include "tests/server/store/store_conformance.h"

namespace medic::server {
namespace {

using conformance::kT0;
using conformance::MakeIncident;
using conformance::Ms;
using conformance::StoreConformanceTest;
using test::FaultyStore;
using test::MemoryStore;

// Every Open() is another MemoryStore on the same data, as every OpenSqliteStore of one path is
// another connection to one file.
class MemoryBackend : public conformance::StoreBackend {
 public:
  Result<std::unique_ptr<Store>> Open() override { return std::unique_ptr<Store>(data_.Share()); }

 private:
  MemoryStore data_;
};

// A FaultyStore that was never told to fail, over a MemoryStore.
class UnfaultedBackend : public conformance::StoreBackend {
 public:
  Result<std::unique_ptr<Store>> Open() override {
    return std::unique_ptr<Store>(std::make_unique<FaultyStore>(base_));
  }

 private:
  MemoryStore base_;
};

INSTANTIATE_TEST_SUITE_P(Memory, StoreConformanceTest,
                         ::testing::Values(
                             conformance::StoreBackendFactory{
                                 "memory", [] { return std::make_unique<MemoryBackend>(); }},
                             conformance::StoreBackendFactory{
                                 "faulty_memory_without_faults",
                                 [] { return std::make_unique<UnfaultedBackend>(); }}),
                         conformance::StoreBackendName);

TEST(MemoryStoreTest, SharedStoresSeeOneDataSetAndOutliveEachOther) {
  auto first = std::make_unique<MemoryStore>();
  std::unique_ptr<MemoryStore> second = first->Share();
  ASSERT_TRUE(first->CreateIncident(MakeIncident("inc-1", "x", "h1")).has_value());
  ASSERT_TRUE(second->PutSetting("approval_mode", "\"manual\"").has_value());
  EXPECT_TRUE(second->GetIncident("inc-1").has_value());
  // The open-incident rule holds across them.
  Status s = second->CreateIncident(MakeIncident("inc-2", "x", "h1"));
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code, ErrorCode::kAlreadyExists);

  first.reset();  // "the server restarts"
  Result<std::optional<std::string>> setting = second->GetSetting("approval_mode");
  ASSERT_TRUE(setting.has_value());
  EXPECT_EQ(setting->value_or(""), "\"manual\"");
  Result<std::optional<Incident>> open = second->FindOpenIncident("x", "h1");
  ASSERT_TRUE(open.has_value());
  ASSERT_TRUE(open->has_value());
  EXPECT_EQ((*open)->incident_id, "inc-1");
}

TEST(MemoryStoreTest, ConcurrentCreatesThroughSharedStoresLetExactlyOneWin) {
  MemoryStore a;
  std::unique_ptr<MemoryStore> b = a.Share();
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    Store* store = t % 2 == 0 ? static_cast<Store*>(&a) : b.get();
    threads.emplace_back([&ok, store, t] {
      if (store->CreateIncident(MakeIncident("race-" + std::to_string(t))).has_value()) {
        ++ok;
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_EQ(ok.load(), 1);
}

// Rules the conformance suite does not spell out but SqliteStore's schema enforces, run against
// both backends so that MemoryStore is shown to agree with SqliteStore, not said to.
struct Backend {
  std::string name;
  std::function<std::unique_ptr<Store>(const std::string& dir)> open;
};

class BackendAgreementTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    store_ = GetParam().open(dir_.path());
    ASSERT_NE(store_, nullptr);
  }
  Store& store() { return *store_; }

  test::TempDir dir_;
  std::unique_ptr<Store> store_;
};

INSTANTIATE_TEST_SUITE_P(
    Backends, BackendAgreementTest,
    ::testing::Values(Backend{"sqlite",
                              [](const std::string& dir) -> std::unique_ptr<Store> {
                                auto s = OpenSqliteStore(dir + "/medic.db");
                                return s.has_value() ? std::move(*s) : nullptr;
                              }},
                      Backend{"memory",
                              [](const std::string&) -> std::unique_ptr<Store> {
                                return std::make_unique<MemoryStore>();
                              }}),
    [](const ::testing::TestParamInfo<Backend>& info) { return info.param.name; });

// Milliseconds, the precision SqliteStore keeps: a test against MemoryStore must not pass on
// precision the real store drops.
TEST_P(BackendAgreementTest, TimesAreKeptAtMillisecondPrecision) {
  const WallTime fine = Ms(kT0 + 7) + std::chrono::microseconds(999);
  Incident inc = MakeIncident("inc-1");
  inc.created_at = fine;
  inc.updated_at = fine;
  inc.resolved_at = fine;
  inc.timeline = {{"created", fine, "medic", ""}};
  ASSERT_TRUE(store().CreateIncident(inc).has_value());
  inc.timeline.push_back({"diagnosed", fine, "medic", ""});
  ASSERT_TRUE(store().UpdateIncident(inc).has_value());
  Result<Incident> got = store().GetIncident("inc-1");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->created_at, Ms(kT0 + 7));
  EXPECT_EQ(got->updated_at, Ms(kT0 + 7));
  EXPECT_EQ(got->resolved_at, Ms(kT0 + 7));
  ASSERT_EQ(got->timeline.size(), 2u);
  EXPECT_EQ(got->timeline[0].timestamp, Ms(kT0 + 7));
  EXPECT_EQ(got->timeline[1].timestamp, Ms(kT0 + 7));

  ASSERT_TRUE(store().PutHost({"web-1", Json::object(), fine, fine}).has_value());
  EXPECT_EQ(store().ListHosts()->at(0).last_seen, Ms(kT0 + 7));
  ASSERT_TRUE(
      store().CreateToken({"vera", "viewer", std::string(64, 'a'), fine, "admin"}).has_value());
  EXPECT_EQ(store().ListTokens()->at(0).created_at, Ms(kT0 + 7));
  ASSERT_TRUE(store().AppendAudit({fine, "vera", "settings.update", ""}).has_value());
  EXPECT_EQ(store().ListAudit(1)->at(0).timestamp, Ms(kT0 + 7));
}

TEST_P(BackendAgreementTest, TokenHashesAreUniqueAndRolesChecked) {
  ASSERT_TRUE(
      store().CreateToken({"vera", "viewer", std::string(64, 'a'), Ms(kT0), "admin"}).has_value());
  Status same_hash = store().CreateToken({"otto", "admin", std::string(64, 'a'), Ms(kT0), "admin"});
  ASSERT_FALSE(same_hash.has_value());
  EXPECT_EQ(same_hash.error().code, ErrorCode::kAlreadyExists);
  Status bad_role = store().CreateToken({"root", "root", std::string(64, 'r'), Ms(kT0), "admin"});
  ASSERT_FALSE(bad_role.has_value());
  EXPECT_EQ(bad_role.error().code, ErrorCode::kInternal);  // the caller broke the schema
  EXPECT_EQ(store().ListTokens()->size(), 1u);
}

TEST_P(BackendAgreementTest, AuditIsNewestAppendedFirstWithItsLimitClamped) {
  ASSERT_TRUE(store().AppendAudit({Ms(kT0 + 10), "a", "x", "first"}).has_value());
  ASSERT_TRUE(store().AppendAudit({Ms(kT0), "a", "x", "second"}).has_value());  // older stamp
  Result<std::vector<AuditEntry>> audit = store().ListAudit(0);
  ASSERT_TRUE(audit.has_value());
  ASSERT_EQ(audit->size(), 1u);
  EXPECT_EQ(audit->front().detail, "second");
  EXPECT_EQ(store().ListAudit(5000)->size(), 2u);
  EXPECT_EQ(store().ListAudit(-1)->size(), 1u);
}

TEST_P(BackendAgreementTest, UpdateErrorsComeInTheSameOrder) {
  // Unknown id: NotFound, named plainly.
  Status s = store().UpdateIncident(MakeIncident("inc-404"));
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(s.error().message, "incident inc-404");

  // An open incident does not conflict with itself.
  Incident inc = MakeIncident("inc-1");
  ASSERT_TRUE(store().CreateIncident(inc).has_value());
  inc.status = IncidentStatus::kExecuting;
  inc.timeline.push_back({"approved", Ms(kT0 + 1), "admin", ""});
  EXPECT_TRUE(store().UpdateIncident(inc).has_value());

  // A conflict and a short timeline at once: the conflict is reported.
  Incident old = MakeIncident("old", "disk_full", "web-1", IncidentStatus::kCompleted);
  old.timeline.push_back({"completed", Ms(kT0 + 2), "medic", ""});
  ASSERT_TRUE(store().CreateIncident(old).has_value());
  old.status = IncidentStatus::kDiagnosing;
  old.timeline.resize(1);
  s = store().UpdateIncident(old);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code, ErrorCode::kAlreadyExists);
}

TEST(MemoryStoreTest, ResultsAreCopiesNotViewsOfTheStore) {
  MemoryStore store;
  ASSERT_TRUE(store.CreateIncident(MakeIncident("inc-1")).has_value());
  Result<Incident> got = store.GetIncident("inc-1");
  ASSERT_TRUE(got.has_value());
  got->diagnostics = "changed by the caller";
  got->timeline.clear();
  Result<Incident> again = store.GetIncident("inc-1");
  ASSERT_TRUE(again.has_value());
  conformance::ExpectSameIncident(*again, MakeIncident("inc-1"));
}

}  // namespace
}  // namespace medic::server
