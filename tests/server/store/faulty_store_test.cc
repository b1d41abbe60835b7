// FaultyStore (tests/fakes/faulty_store.h): fails what it is told to, when it is told to, and
// forwards everything else untouched. (That an unfaulted FaultyStore is invisible is proven by
// the conformance suite in memory_store_test.cc.)

#include "tests/fakes/faulty_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "server/store/store.h"
#include "tests/fakes/memory_store.h"

namespace medic::server {
namespace {

using test::FaultyStore;
using test::MemoryStore;
using test::StoreOp;

constexpr int64_t kT0 = 1'800'000'000'000;

WallTime Ms(int64_t ms) { return FromUnixMillis(ms); }

// An open incident. (store_conformance.h has a richer one, but defines the suite's tests in
// every file that includes it.)
Incident MakeIncident(const std::string& id, const std::string& alarm = "disk_full",
                      const std::string& instance = "web-1") {
  Incident inc;
  inc.incident_id = id;
  inc.alarm_name = alarm;
  inc.instance_id = instance;
  inc.created_at = Ms(kT0);
  inc.updated_at = Ms(kT0);
  inc.timeline.push_back({"created", Ms(kT0), "medic", "alarm fired"});
  return inc;
}

// The error of a failed call, or nullopt if it succeeded.
template <typename R>
std::optional<Error> ErrorOf(const R& r) {
  if (r.has_value()) {
    return std::nullopt;
  }
  return r.error();
}

void ExpectInjected(const std::optional<Error>& e) {
  ASSERT_TRUE(e.has_value()) << "the call succeeded";
  EXPECT_EQ(e->code, ErrorCode::kUnavailable);
  EXPECT_EQ(e->message, "store unavailable (injected)");
}

class FaultyStoreTest : public ::testing::Test {
 protected:
  MemoryStore base_;
  FaultyStore store_{base_};
};

// One call per operation, each valid against a store holding inc-1 and the token/host/host
// credential "x".
struct OpCall {
  StoreOp op;
  std::function<std::optional<Error>(Store&)> call;
};

server::OutboxRecord OutboxRow(const std::string& key) {
  server::OutboxRecord r;
  r.key = key;
  r.channel = "webhook";
  r.event = "incident_opened";
  r.incident_id = "inc-1";
  r.payload = "{}";
  r.created_at = Ms(kT0);
  r.next_attempt_at = Ms(kT0);
  return r;
}

std::vector<OpCall> EveryOp() {
  return {
      {StoreOp::kCreateIncident,
       [](Store& s) { return ErrorOf(s.CreateIncident(MakeIncident("new", "a", "h9"))); }},
      {StoreOp::kUpdateIncident,
       [](Store& s) { return ErrorOf(s.UpdateIncident(MakeIncident("inc-1"))); }},
      {StoreOp::kGetIncident, [](Store& s) { return ErrorOf(s.GetIncident("inc-1")); }},
      {StoreOp::kListIncidents, [](Store& s) { return ErrorOf(s.ListIncidents({})); }},
      {StoreOp::kFindOpenIncident,
       [](Store& s) { return ErrorOf(s.FindOpenIncident("disk_full", "web-1")); }},
      {StoreOp::kGetSetting, [](Store& s) { return ErrorOf(s.GetSetting("k")); }},
      {StoreOp::kPutSetting, [](Store& s) { return ErrorOf(s.PutSetting("k", "v")); }},
      {StoreOp::kCreateToken,
       [](Store& s) {
         return ErrorOf(s.CreateToken({"new", "viewer", std::string(64, 'n'), Ms(kT0), "a"}));
       }},
      {StoreOp::kDeleteToken, [](Store& s) { return ErrorOf(s.DeleteToken("x")); }},
      {StoreOp::kListTokens, [](Store& s) { return ErrorOf(s.ListTokens()); }},
      {StoreOp::kPutHost,
       [](Store& s) {
         return ErrorOf(s.PutHost({"new", Json::object(), Ms(kT0), Ms(kT0)}));
       }},
      {StoreOp::kDeleteHost, [](Store& s) { return ErrorOf(s.DeleteHost("x")); }},
      {StoreOp::kListHosts, [](Store& s) { return ErrorOf(s.ListHosts()); }},
      {StoreOp::kPutHostCredential,
       [](Store& s) {
         return ErrorOf(s.PutHostCredential({"new", std::string(64, 'n'), Ms(kT0), "a"}));
       }},
      {StoreOp::kDeleteHostCredential,
       [](Store& s) { return ErrorOf(s.DeleteHostCredential("x")); }},
      {StoreOp::kListHostCredentials, [](Store& s) { return ErrorOf(s.ListHostCredentials()); }},
      {StoreOp::kAppendAudit,
       [](Store& s) {
         return ErrorOf(s.AppendAudit({Ms(kT0), "a", "x", ""}));
       }},
      {StoreOp::kListAudit, [](Store& s) { return ErrorOf(s.ListAudit(10)); }},
      {StoreOp::kVerifyAudit, [](Store& s) { return ErrorOf(s.VerifyAudit()); }},
      {StoreOp::kUpdateHostsLastSeen,
       [](Store& s) { return ErrorOf(s.UpdateHostsLastSeen({{"x", Ms(kT0 + 1000)}})); }},
      {StoreOp::kEnqueueOutbox,
       [](Store& s) { return ErrorOf(s.EnqueueOutbox({OutboxRow("new")})); }},
      {StoreOp::kDueOutbox, [](Store& s) { return ErrorOf(s.DueOutbox(Ms(kT0), 10)); }},
      {StoreOp::kUpdateOutbox, [](Store& s) { return ErrorOf(s.UpdateOutbox(OutboxRow("x"))); }},
      {StoreOp::kListOutbox, [](Store& s) { return ErrorOf(s.ListOutbox("", 10)); }},
      {StoreOp::kListSettings, [](Store& s) { return ErrorOf(s.ListSettings()); }},
      {StoreOp::kListAuditAfter, [](Store& s) { return ErrorOf(s.ListAuditAfter(0, 10)); }},
      {StoreOp::kListOutboxAfter, [](Store& s) { return ErrorOf(s.ListOutboxAfter("", 10)); }},
      {StoreOp::kClaimIncidentLease,
       [](Store& s) {
         return ErrorOf(s.ClaimIncidentLease("inc-1", "s1", Ms(kT0), Ms(kT0 + 6000)));
       }},
      {StoreOp::kRenewIncidentLeases,
       [](Store& s) { return ErrorOf(s.RenewIncidentLeases("s1", Ms(kT0), Ms(kT0 + 6000))); }},
      {StoreOp::kReleaseIncidentLease,
       [](Store& s) { return ErrorOf(s.ReleaseIncidentLease("inc-1", "s1")); }},
      {StoreOp::kListClaimableIncidents,
       [](Store& s) { return ErrorOf(s.ListClaimableIncidents(Ms(kT0), Ms(kT0), 10)); }},
      {StoreOp::kAppendClusterMessage,
       [](Store& s) {
         return ErrorOf(s.AppendClusterMessage({0, Ms(kT0), "s1", "changed", "", "{}"}));
       }},
      {StoreOp::kReadClusterMessages,
       [](Store& s) { return ErrorOf(s.ReadClusterMessages(0, 10)); }},
      {StoreOp::kLastClusterMessageId, [](Store& s) { return ErrorOf(s.LastClusterMessageId()); }},
      {StoreOp::kPruneClusterMessages,
       [](Store& s) { return ErrorOf(s.PruneClusterMessages(Ms(kT0))); }},
      {StoreOp::kPutAlarmStates,
       [](Store& s) {
         return ErrorOf(s.PutAlarmStates({{"x", "r", "OK", Ms(kT0), "", "s1", Ms(kT0)}}));
       }},
      {StoreOp::kListAlarmStates, [](Store& s) { return ErrorOf(s.ListAlarmStates("x")); }},
      {StoreOp::kPutEnrollmentCode,
       [](Store& s) {
         return ErrorOf(s.PutEnrollmentCode({std::string(64, 'n'), "new", Ms(kT0 + 1000), "a"}));
       }},
      {StoreOp::kTakeEnrollmentCode,
       [](Store& s) { return ErrorOf(s.TakeEnrollmentCode(std::string(64, 'x'), "x", Ms(kT0))); }},
      {StoreOp::kPruneEnrollmentCodes,
       [](Store& s) { return ErrorOf(s.PruneEnrollmentCodes(Ms(kT0))); }},
      {StoreOp::kDeleteEnrollmentCodes,
       [](Store& s) { return ErrorOf(s.DeleteEnrollmentCodes("x")); }},
      {StoreOp::kFilePendingEnrollment,
       [](Store& s) {
         return ErrorOf(s.FilePendingEnrollment({"new", std::string(64, 'n'), Ms(kT0), "", ""}));
       }},
      {StoreOp::kGetPendingEnrollment, [](Store& s) { return ErrorOf(s.GetPendingEnrollment("x")); }},
      {StoreOp::kListPendingEnrollments,
       [](Store& s) { return ErrorOf(s.ListPendingEnrollments()); }},
      {StoreOp::kApprovePendingEnrollment,
       [](Store& s) { return ErrorOf(s.ApprovePendingEnrollment("x", "a")); }},
      {StoreOp::kDeletePendingEnrollment,
       [](Store& s) { return ErrorOf(s.DeletePendingEnrollment("x")); }},
  };
}

void Seed(Store& s) {
  ASSERT_TRUE(s.CreateIncident(MakeIncident("inc-1")).has_value());
  ASSERT_TRUE(s.CreateToken({"x", "viewer", std::string(64, 'x'), Ms(kT0), "a"}).has_value());
  ASSERT_TRUE(s.PutHost({"x", Json::object(), Ms(kT0), Ms(kT0)}).has_value());
  ASSERT_TRUE(s.PutHostCredential({"x", std::string(64, 'x'), Ms(kT0), "a"}).has_value());
  ASSERT_TRUE(s.EnqueueOutbox({OutboxRow("x")}).has_value());
  ASSERT_TRUE(s.PutEnrollmentCode({std::string(64, 'x'), "x", Ms(kT0 + 1000), "a"}).has_value());
  ASSERT_TRUE(s.FilePendingEnrollment({"x", std::string(64, 'x'), Ms(kT0), "", ""}).has_value());
}

TEST(FaultyStoreEveryOpTest, EachOperationFailsAloneAndOthersPass) {
  const std::vector<OpCall> ops = EveryOp();
  ASSERT_EQ(ops.size(), test::kStoreOpCount);
  for (const OpCall& target : ops) {
    SCOPED_TRACE(std::string(test::StoreOpName(target.op)));
    MemoryStore base;
    Seed(base);
    FaultyStore store(base);
    store.FailAlways(target.op);
    for (const OpCall& other : ops) {
      SCOPED_TRACE("calling " + std::string(test::StoreOpName(other.op)));
      std::optional<Error> e = other.call(store);
      if (other.op == target.op) {
        ExpectInjected(e);
      } else {
        EXPECT_FALSE(e.has_value()) << e->ToString();
      }
    }
    EXPECT_EQ(store.failed(target.op), 1);
    EXPECT_EQ(store.total_failed(), 1);
    for (const OpCall& other : ops) {
      EXPECT_EQ(store.calls(other.op), 1);
    }
    // Healed, it passes through.
    MemoryStore fresh;
    Seed(fresh);
    FaultyStore healed(fresh);
    healed.FailAlways(target.op);
    healed.Heal(target.op);
    EXPECT_FALSE(target.call(healed).has_value());
  }
}

TEST_F(FaultyStoreTest, FailedWritesDoNotReachTheBaseStore) {
  store_.FailAlways(StoreOp::kCreateIncident);
  store_.FailAlways(StoreOp::kPutSetting);
  ExpectInjected(ErrorOf(store_.CreateIncident(MakeIncident("inc-1"))));
  ExpectInjected(ErrorOf(store_.PutSetting("k", "v")));
  EXPECT_EQ(base_.GetIncident("inc-1").error().code, ErrorCode::kNotFound);
  EXPECT_FALSE(base_.GetSetting("k")->has_value());
}

TEST_F(FaultyStoreTest, FailNextFailsExactlyNCallsThenPasses) {
  ASSERT_TRUE(base_.CreateIncident(MakeIncident("inc-1")).has_value());
  store_.FailNext(StoreOp::kGetIncident, 2);
  store_.FailNext(StoreOp::kGetIncident, 1);  // adds up
  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE(i);
    ExpectInjected(ErrorOf(store_.GetIncident("inc-1")));
  }
  EXPECT_TRUE(store_.GetIncident("inc-1").has_value());
  EXPECT_TRUE(store_.GetIncident("inc-1").has_value());
  EXPECT_EQ(store_.failed(StoreOp::kGetIncident), 3);
  EXPECT_EQ(store_.calls(StoreOp::kGetIncident), 5);
  EXPECT_EQ(store_.failed(StoreOp::kUpdateIncident), 0);
}

TEST_F(FaultyStoreTest, FailAlwaysLastsUntilHealed) {
  store_.FailAlways(StoreOp::kListIncidents);
  for (int i = 0; i < 10; ++i) {
    ExpectInjected(ErrorOf(store_.ListIncidents({})));
  }
  store_.Heal(StoreOp::kListIncidents);
  EXPECT_TRUE(store_.ListIncidents({}).has_value());
  EXPECT_EQ(store_.failed(StoreOp::kListIncidents), 10);
  EXPECT_EQ(store_.calls(StoreOp::kListIncidents), 11);
}

TEST_F(FaultyStoreTest, HealDropsPendingFailNext) {
  store_.FailNext(StoreOp::kFindOpenIncident, 5);
  ExpectInjected(ErrorOf(store_.FindOpenIncident("a", "h")));
  store_.Heal(StoreOp::kFindOpenIncident);
  EXPECT_TRUE(store_.FindOpenIncident("a", "h").has_value());
  EXPECT_EQ(store_.failed(StoreOp::kFindOpenIncident), 1);
}

TEST_F(FaultyStoreTest, FailEverythingIsAnOutageUntilHealAll) {
  store_.FailEverything();
  for (const OpCall& c : EveryOp()) {
    SCOPED_TRACE(std::string(test::StoreOpName(c.op)));
    ExpectInjected(c.call(store_));
  }
  EXPECT_EQ(store_.total_failed(), static_cast<int>(test::kStoreOpCount));
  store_.HealAll();
  EXPECT_TRUE(store_.CreateIncident(MakeIncident("inc-1")).has_value());
  EXPECT_TRUE(base_.GetIncident("inc-1").has_value());
}

TEST_F(FaultyStoreTest, SetErrorChangesTheInjectedError) {
  store_.SetError(Internal("disk on fire"));
  store_.FailNext(StoreOp::kUpdateIncident, 1);
  Status s = store_.UpdateIncident(MakeIncident("inc-1"));
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code, ErrorCode::kInternal);
  EXPECT_EQ(s.error().message, "disk on fire");
}

TEST_F(FaultyStoreTest, ErrorsOfTheBaseStorePassThroughUncounted) {
  Status s = store_.UpdateIncident(MakeIncident("inc-404"));
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store_.failed(StoreOp::kUpdateIncident), 0);
  EXPECT_EQ(store_.calls(StoreOp::kUpdateIncident), 1);
}

TEST_F(FaultyStoreTest, FailNextIsExactUnderConcurrentCallers) {
  constexpr int kThreads = 8;
  constexpr int kCalls = 50;
  constexpr int kToFail = 37;
  store_.FailNext(StoreOp::kGetSetting, kToFail);
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kCalls; ++i) {
        if (!store_.GetSetting("k").has_value()) {
          ++errors;
        }
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_EQ(errors.load(), kToFail);
  EXPECT_EQ(store_.failed(StoreOp::kGetSetting), kToFail);
  EXPECT_EQ(store_.calls(StoreOp::kGetSetting), kThreads * kCalls);
}

}  // namespace
}  // namespace medic::server
