#include "server/identity/host_identities.h"

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <iterator>
#include <memory>
#include <thread>
#include <vector>

#include "core/sha256.h"
#include "tests/fakes/faulty_store.h"
#include "tests/fakes/memory_store.h"
#include "tests/fakes/temp_dir.h"

namespace medic::server {
namespace {

constexpr char kBootstrap[] = "bootstrap-token-0123456789";

class HostIdentitiesTest : public ::testing::Test {
 protected:
  HostIdentitiesTest() : store_(memory_), ids_(store_, clock_, Sha256Hex(kBootstrap), Small()) {}
  static HostIdentityOptions Small() {
    HostIdentityOptions o;
    o.max_codes = 3;
    o.max_pending = 2;
    return o;
  }
  std::string Enrol(const std::string& name) {
    auto code = ids_.CreateCode(name, std::nullopt, "admin");
    EXPECT_TRUE(code.has_value());
    auto issued = ids_.EnrollWithCode(name, code->code);
    EXPECT_TRUE(issued.has_value()) << issued.error().ToString();
    return issued ? issued->credential : "";
  }
  static std::string Key(char c) { return std::string(64, c); }

  ManualClock clock_;
  test::MemoryStore memory_;
  test::FaultyStore store_;
  HostIdentities ids_;
};

TEST_F(HostIdentitiesTest, ACodeEnrolsItsHostOnceAndTheCredentialNamesTheHost) {
  auto code = ids_.CreateCode("web-1", std::nullopt, "alice");
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(code->expires_at, clock_.Now() + std::chrono::hours(1));
  EXPECT_EQ(code->code.size(), 32u);
  EXPECT_EQ(ids_.EnrollWithCode("web-2", code->code).error().code, ErrorCode::kUnauthenticated);
  auto issued = ids_.EnrollWithCode("web-1", code->code);
  ASSERT_TRUE(issued.has_value());
  EXPECT_EQ(issued->credential.size(), 64u);
  EXPECT_EQ(ids_.Authenticate(issued->credential).value(), "web-1");
  EXPECT_EQ(ids_.EnrollWithCode("web-1", code->code).error().code, ErrorCode::kUnauthenticated);
  EXPECT_EQ(ids_.Authenticate("nope").error().code, ErrorCode::kUnauthenticated);
  // The store has the hash only, and who issued it.
  auto stored = memory_.ListHostCredentials().value();
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].secret_hash, Sha256Hex(issued->credential));
  EXPECT_EQ(stored[0].issued_by, "code:alice");
}

TEST_F(HostIdentitiesTest, CodesExpireAndTheirNumberIsBounded) {
  auto code = ids_.CreateCode("web-1", Millis(120'000), "admin");
  ASSERT_TRUE(code.has_value());
  clock_.Advance(std::chrono::seconds(120));
  EXPECT_EQ(ids_.EnrollWithCode("web-1", code->code).error().code, ErrorCode::kUnauthenticated);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(ids_.CreateCode("web-" + std::to_string(i), std::nullopt, "admin").has_value());
  }
  EXPECT_EQ(ids_.CreateCode("web-9", std::nullopt, "admin").error().code,
            ErrorCode::kResourceExhausted);
  clock_.Advance(std::chrono::hours(1));  // all expired: room again
  EXPECT_TRUE(ids_.CreateCode("web-9", std::nullopt, "admin").has_value());
  EXPECT_EQ(ids_.CreateCode("web-9", Millis(1'000), "admin").error().code,
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(ids_.CreateCode("web-9", std::chrono::hours(24 * 8), "admin").error().code,
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(ids_.CreateCode("bad name", std::nullopt, "admin").error().code,
            ErrorCode::kInvalidArgument);
}

// --auto-approve-hosts: a new name gets its credential at its first ask; a name that already has
// one still waits for an admin (re-enrolment never happens on the bootstrap token alone).
TEST_F(HostIdentitiesTest, AutoApproveEnrolsNewNamesOnlyAtOnce) {
  HostIdentityOptions o = Small();
  o.auto_approve = true;
  HostIdentities ids(store_, clock_, Sha256Hex(kBootstrap), o);
  auto issued = ids.EnrollWithBootstrap(kBootstrap, "web-7", Key('a'), "box7");
  ASSERT_TRUE(issued.has_value() && issued->has_value()) << (issued ? "pending" : issued.error().ToString());
  EXPECT_EQ(ids.Authenticate((*issued)->credential).value(), "web-7");
  EXPECT_TRUE(ids.Pending().value().empty());
  EXPECT_EQ(memory_.ListHostCredentials().value()[0].issued_by, "approval:auto");
  auto again = ids.EnrollWithBootstrap(kBootstrap, "web-7", Key('b'), "box7");
  ASSERT_TRUE(again.has_value());
  EXPECT_FALSE(again->has_value()) << "a known name waits for an admin";
  EXPECT_EQ(ids.EnrollWithBootstrap("wrong", "web-8", Key('a'), "").error().code,
            ErrorCode::kUnauthenticated);
}

TEST_F(HostIdentitiesTest, TheBootstrapTokenWaitsForApprovalBoundToItsKey) {
  EXPECT_EQ(ids_.EnrollWithBootstrap("wrong", "web-1", Key('a'), "").error().code,
            ErrorCode::kUnauthenticated);
  auto first = ids_.EnrollWithBootstrap(kBootstrap, "web-1", Key('a'), "box1");
  ASSERT_TRUE(first.has_value());
  EXPECT_FALSE(first->has_value());  // pending
  EXPECT_EQ(ids_.EnrollWithBootstrap(kBootstrap, "web-1", Key('b'), "").error().code,
            ErrorCode::kAlreadyExists);
  auto pending = ids_.Pending().value();
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0].name, "web-1");
  EXPECT_EQ(pending[0].fingerprint, RequestFingerprint(Key('a')));
  EXPECT_EQ(pending[0].hostname, "box1");
  EXPECT_FALSE(pending[0].approved);
  EXPECT_EQ(ids_.Approve("web-2", "alice").error().code, ErrorCode::kNotFound);
  ASSERT_TRUE(ids_.Approve("web-1", "alice").has_value());
  EXPECT_TRUE(ids_.Pending().value()[0].approved);
  // Only the request's own key picks the credential up.
  EXPECT_EQ(ids_.EnrollWithBootstrap(kBootstrap, "web-1", Key('b'), "").error().code,
            ErrorCode::kAlreadyExists);
  auto issued = ids_.EnrollWithBootstrap(kBootstrap, "web-1", Key('a'), "");
  ASSERT_TRUE(issued.has_value() && issued->has_value());
  EXPECT_EQ(ids_.Authenticate((*issued)->credential).value(), "web-1");
  EXPECT_TRUE(ids_.Pending().value().empty());
  EXPECT_EQ(memory_.ListHostCredentials().value()[0].issued_by, "approval:alice");
  // Bounded: at most two requests wait.
  ASSERT_TRUE(ids_.EnrollWithBootstrap(kBootstrap, "web-2", Key('a'), "").has_value());
  ASSERT_TRUE(ids_.EnrollWithBootstrap(kBootstrap, "web-3", Key('a'), "").has_value());
  EXPECT_EQ(ids_.EnrollWithBootstrap(kBootstrap, "web-4", Key('a'), "").error().code,
            ErrorCode::kResourceExhausted);
  EXPECT_EQ(ids_.EnrollWithBootstrap(kBootstrap, "web-5", "abc", "").error().code,
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(ids_.EnrollWithBootstrap(kBootstrap, ".web", Key('a'), "").error().code,
            ErrorCode::kInvalidArgument);
}

// limits.hosts (issue 12): past max_hosts credentials a new name cannot enrol, by code or by an
// approved or automatic bootstrap request; a host that has one may get a new one, and a revoked
// host's place is free again.
TEST_F(HostIdentitiesTest, NoNewHostEnrolsPastMaxHosts) {
  HostIdentityOptions o = Small();
  o.max_hosts = 2;
  o.auto_approve = true;
  HostIdentities ids(store_, clock_, Sha256Hex(kBootstrap), o);
  auto enrol = [&](const std::string& name) {
    auto code = ids.CreateCode(name, std::nullopt, "admin");
    EXPECT_TRUE(code.has_value());
    return ids.EnrollWithCode(name, code->code);
  };
  ASSERT_TRUE(enrol("web-1").has_value());
  ASSERT_TRUE(enrol("web-2").has_value());  // exactly max_hosts
  auto third = enrol("web-3");
  ASSERT_FALSE(third.has_value());
  EXPECT_EQ(third.error().code, ErrorCode::kResourceExhausted);
  EXPECT_NE(third.error().message.find("limits.hosts"), std::string::npos);
  auto automatic = ids.EnrollWithBootstrap(kBootstrap, "web-4", Key('a'), "box");
  ASSERT_FALSE(automatic.has_value());
  EXPECT_EQ(automatic.error().code, ErrorCode::kResourceExhausted);
  EXPECT_EQ(ids.refused_over_host_limit(), 2u);
  EXPECT_EQ(ids.enrolled_count(), 2u);
  EXPECT_TRUE(enrol("web-1").has_value()) << "an enrolled host may get a new credential";
  ASSERT_TRUE(ids.Revoke("web-2").has_value());
  EXPECT_TRUE(enrol("web-3").has_value());
}

TEST_F(HostIdentitiesTest, ReEnrolmentReplacesTheCredential) {
  const std::string old_credential = Enrol("web-1");
  const std::string new_credential = Enrol("web-1");
  EXPECT_NE(old_credential, new_credential);
  EXPECT_FALSE(ids_.Authenticate(old_credential).has_value());
  EXPECT_EQ(ids_.Authenticate(new_credential).value(), "web-1");
  EXPECT_EQ(memory_.ListHostCredentials().value().size(), 1u);
}

TEST_F(HostIdentitiesTest, RevokeCutsOffAtOnceAndSurvivesALoad) {
  const std::string web1 = Enrol("web-1");
  const std::string web2 = Enrol("web-2");
  auto code = ids_.CreateCode("web-1", std::nullopt, "admin");
  ASSERT_TRUE(ids_.Revoke("web-1").has_value());
  EXPECT_FALSE(ids_.Authenticate(web1).has_value());
  EXPECT_FALSE(ids_.IsEnrolled("web-1"));
  EXPECT_EQ(ids_.EnrollWithCode("web-1", code->code).error().code, ErrorCode::kUnauthenticated);
  EXPECT_EQ(ids_.Revoke("web-1").error().code, ErrorCode::kNotFound);

  HostIdentities reloaded(store_, clock_, Sha256Hex(kBootstrap));
  ASSERT_TRUE(reloaded.Load().has_value());
  EXPECT_FALSE(reloaded.Authenticate(web1).has_value());
  EXPECT_EQ(reloaded.Authenticate(web2).value(), "web-2");
  EXPECT_EQ(reloaded.enrolled_count(), 1u);
}

TEST_F(HostIdentitiesTest, StoreErrorsLeaveTheCodeAndSayWhatHappened) {
  auto code = ids_.CreateCode("web-1", std::nullopt, "admin");
  store_.FailAlways(test::StoreOp::kPutHostCredential);
  EXPECT_FALSE(ids_.EnrollWithCode("web-1", code->code).has_value());
  EXPECT_FALSE(ids_.IsEnrolled("web-1"));
  store_.HealAll();
  ASSERT_TRUE(ids_.EnrollWithCode("web-1", code->code).has_value());  // the code was kept

  store_.FailAlways(test::StoreOp::kDeleteHostCredential);
  Status s = ids_.Revoke("web-1");
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code, ErrorCode::kInternal);
  EXPECT_FALSE(ids_.IsEnrolled("web-1"));  // cut off in memory all the same
}

// Codes and requests are in the store now: a restarted server (a new HostIdentities on the same
// store) accepts a code made before the restart and still knows the waiting request.
TEST_F(HostIdentitiesTest, CodesAndRequestsSurviveARestart) {
  auto code = ids_.CreateCode("web-1", std::nullopt, "alice");
  ASSERT_TRUE(code.has_value());
  ASSERT_TRUE(ids_.EnrollWithBootstrap(kBootstrap, "web-2", Key('a'), "box2").has_value());
  ASSERT_TRUE(ids_.Approve("web-2", "alice").has_value());

  HostIdentities restarted(store_, clock_, Sha256Hex(kBootstrap), Small());
  ASSERT_TRUE(restarted.Load().has_value());
  auto issued = restarted.EnrollWithCode("web-1", code->code);
  ASSERT_TRUE(issued.has_value()) << issued.error().ToString();
  EXPECT_EQ(restarted.Authenticate(issued->credential).value(), "web-1");
  auto collected = restarted.EnrollWithBootstrap(kBootstrap, "web-2", Key('a'), "box2");
  ASSERT_TRUE(collected.has_value() && collected->has_value());
  EXPECT_EQ(memory_.ListHostCredentials().value()[1].issued_by, "approval:alice");
}

TEST_F(HostIdentitiesTest, AStoreErrorWhileTakingACodeIsReturnedAndTheCodeStays) {
  auto code = ids_.CreateCode("web-1", std::nullopt, "admin");
  ASSERT_TRUE(code.has_value());
  store_.FailNext(test::StoreOp::kTakeEnrollmentCode, 1);
  auto failed = ids_.EnrollWithCode("web-1", code->code);
  ASSERT_FALSE(failed.has_value());
  EXPECT_EQ(failed.error().code, ErrorCode::kUnavailable);
  EXPECT_TRUE(ids_.EnrollWithCode("web-1", code->code).has_value());

  // The credential cannot be stored and the code cannot be put back: the error says so.
  auto second = ids_.CreateCode("web-2", std::nullopt, "admin");
  ASSERT_TRUE(second.has_value());
  store_.FailAlways(test::StoreOp::kPutHostCredential);
  store_.FailAlways(test::StoreOp::kPutEnrollmentCode);
  auto lost = ids_.EnrollWithCode("web-2", second->code);
  ASSERT_FALSE(lost.has_value());
  EXPECT_NE(lost.error().message.find("make a new one"), std::string::npos)
      << lost.error().message;
  store_.HealAll();
  EXPECT_EQ(ids_.EnrollWithCode("web-2", second->code).error().code,
            ErrorCode::kUnauthenticated);
}

TEST_F(HostIdentitiesTest, ARevokeThatCannotDeleteTheCodesSaysSo) {
  auto code = ids_.CreateCode("web-1", std::nullopt, "admin");
  ASSERT_TRUE(code.has_value());
  store_.FailAlways(test::StoreOp::kDeleteEnrollmentCodes);
  Status s = ids_.Revoke("web-1");
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code, ErrorCode::kInternal);
  EXPECT_NE(s.error().message.find("enrolment codes could not be deleted"), std::string::npos)
      << s.error().message;
  store_.HealAll();
  ASSERT_TRUE(ids_.Revoke("web-1").has_value());
  EXPECT_EQ(ids_.EnrollWithCode("web-1", code->code).error().code, ErrorCode::kUnauthenticated);
}

// Two medic-servers on one store (docs/DEPLOY.md): here two HostIdentities, each on its own
// connection to one SQLite file, as two servers each have their own connections to one
// PostgreSQL (the same cases run on PostgreSQL in the store conformance suite).
class TwoServersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (auto* s : {&store_a_, &store_b_}) {
      auto opened = OpenSqliteStore(dir_.File("medic.db"));
      ASSERT_TRUE(opened.has_value()) << opened.error().ToString();
      *s = std::move(*opened);
    }
    a_ = std::make_unique<HostIdentities>(*store_a_, clock_, Sha256Hex(kBootstrap));
    b_ = std::make_unique<HostIdentities>(*store_b_, clock_, Sha256Hex(kBootstrap));
    ASSERT_TRUE(a_->Load().has_value());
    ASSERT_TRUE(b_->Load().has_value());
  }
  // The database file and its write-ahead log, as bytes.
  std::string DatabaseBytes() const {
    std::string all;
    for (const char* suffix : {"", "-wal"}) {
      std::ifstream in(dir_.File("medic.db") + suffix, std::ios::binary);
      all.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    return all;
  }
  static std::string Key(char c) { return std::string(64, c); }

  test::TempDir dir_;
  ManualClock clock_;
  std::unique_ptr<Store> store_a_;
  std::unique_ptr<Store> store_b_;
  std::unique_ptr<HostIdentities> a_;
  std::unique_ptr<HostIdentities> b_;
};

TEST_F(TwoServersTest, ACodeMadeOnOneServerEnrolsOnTheOtherExactlyOnce) {
  auto code = a_->CreateCode("web-1", std::nullopt, "alice");
  ASSERT_TRUE(code.has_value()) << code.error().ToString();
  // Stored as a hash, never as the code.
  const std::string bytes = DatabaseBytes();
  EXPECT_EQ(bytes.find(code->code), std::string::npos);
  EXPECT_NE(bytes.find(Sha256Hex(code->code)), std::string::npos);

  auto issued = b_->EnrollWithCode("web-1", code->code);
  ASSERT_TRUE(issued.has_value()) << issued.error().ToString();
  EXPECT_EQ(b_->Authenticate(issued->credential).value(), "web-1");
  EXPECT_EQ(a_->EnrollWithCode("web-1", code->code).error().code, ErrorCode::kUnauthenticated);
  EXPECT_EQ(b_->EnrollWithCode("web-1", code->code).error().code, ErrorCode::kUnauthenticated);
  // The other server learns the credential at its reload (cluster_share.h posts `changed`).
  ASSERT_TRUE(a_->Reload().has_value());
  EXPECT_EQ(a_->Authenticate(issued->credential).value(), "web-1");
  EXPECT_EQ(store_a_->ListHostCredentials().value()[0].issued_by, "code:alice");
}

TEST_F(TwoServersTest, ConcurrentRedemptionsOfOneCodeOnBothServersEnrolOnce) {
  constexpr int kRounds = 5;
  constexpr int kThreads = 8;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::string name = "web-" + std::to_string(round);
    auto code = (round % 2 == 0 ? a_ : b_)->CreateCode(name, std::nullopt, "admin");
    ASSERT_TRUE(code.has_value()) << code.error().ToString();
    std::atomic<int> won{0};
    std::atomic<int> refused{0};
    std::vector<std::string> other_errors(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      HostIdentities& ids = t % 2 == 0 ? *a_ : *b_;
      threads.emplace_back([&ids, &name, &code, &won, &refused, &other_errors, t] {
        auto r = ids.EnrollWithCode(name, code->code);
        if (r.has_value()) {
          ++won;
        } else if (r.error().code == ErrorCode::kUnauthenticated) {
          ++refused;
        } else {
          other_errors[static_cast<size_t>(t)] = r.error().ToString();
        }
      });
    }
    for (auto& th : threads) {
      th.join();
    }
    EXPECT_EQ(won.load(), 1);
    EXPECT_EQ(refused.load(), kThreads - 1);
    for (const std::string& e : other_errors) {
      EXPECT_EQ(e, "");
    }
  }
  EXPECT_EQ(store_a_->ListHostCredentials().value().size(), static_cast<size_t>(kRounds));
}

TEST_F(TwoServersTest, ARequestFiledOnOneServerIsApprovedOnTheOtherAndCollectedOnEither) {
  auto first = a_->EnrollWithBootstrap(kBootstrap, "web-1", Key('a'), "box1");
  ASSERT_TRUE(first.has_value()) << first.error().ToString();
  EXPECT_FALSE(first->has_value());
  // The same name with another key, on the other server: the first request holds.
  EXPECT_EQ(b_->EnrollWithBootstrap(kBootstrap, "web-1", Key('b'), "").error().code,
            ErrorCode::kAlreadyExists);
  auto pending = b_->Pending();
  ASSERT_TRUE(pending.has_value());
  ASSERT_EQ(pending->size(), 1u);
  EXPECT_EQ((*pending)[0].fingerprint, RequestFingerprint(Key('a')));
  EXPECT_EQ((*pending)[0].hostname, "box1");
  ASSERT_TRUE(b_->Approve("web-1", "alice").has_value());
  EXPECT_TRUE(a_->Pending().value()[0].approved);

  auto issued = a_->EnrollWithBootstrap(kBootstrap, "web-1", Key('a'), "box1");
  ASSERT_TRUE(issued.has_value() && issued->has_value());
  EXPECT_EQ(a_->Authenticate((*issued)->credential).value(), "web-1");
  EXPECT_TRUE(b_->Pending().value().empty());
  EXPECT_EQ(store_b_->ListHostCredentials().value()[0].issued_by, "approval:alice");
}

TEST_F(TwoServersTest, RevokingOnOneServerVoidsTheCodesMadeOnTheOther) {
  auto code = a_->CreateCode("web-1", std::nullopt, "admin");
  ASSERT_TRUE(code.has_value());
  ASSERT_TRUE(b_->Revoke("web-1").has_value()) << "the code counts as something to revoke";
  EXPECT_EQ(a_->EnrollWithCode("web-1", code->code).error().code, ErrorCode::kUnauthenticated);
}

}  // namespace
}  // namespace medic::server
