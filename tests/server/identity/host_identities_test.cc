#include "server/identity/host_identities.h"

#include <gtest/gtest.h>

#include "core/sha256.h"
#include "tests/fakes/faulty_store.h"
#include "tests/fakes/memory_store.h"

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
  EXPECT_TRUE(ids.Pending().empty());
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
  auto pending = ids_.Pending();
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0].name, "web-1");
  EXPECT_EQ(pending[0].fingerprint, RequestFingerprint(Key('a')));
  EXPECT_EQ(pending[0].hostname, "box1");
  EXPECT_FALSE(pending[0].approved);
  EXPECT_EQ(ids_.Approve("web-2", "alice").error().code, ErrorCode::kNotFound);
  ASSERT_TRUE(ids_.Approve("web-1", "alice").has_value());
  EXPECT_TRUE(ids_.Pending()[0].approved);
  // Only the request's own key picks the credential up.
  EXPECT_EQ(ids_.EnrollWithBootstrap(kBootstrap, "web-1", Key('b'), "").error().code,
            ErrorCode::kAlreadyExists);
  auto issued = ids_.EnrollWithBootstrap(kBootstrap, "web-1", Key('a'), "");
  ASSERT_TRUE(issued.has_value() && issued->has_value());
  EXPECT_EQ(ids_.Authenticate((*issued)->credential).value(), "web-1");
  EXPECT_TRUE(ids_.Pending().empty());
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

}  // namespace
}  // namespace medic::server
