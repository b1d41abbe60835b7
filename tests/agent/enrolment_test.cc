// The agent's enrolment (agent/enrolment.h) against a scripted server: with a code, with the
// bootstrap token (pending, then approved), the state directory, and Registration driving it.

#include "agent/enrolment.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "core/files.h"
#include "tests/agent/fakes.h"
#include "tests/fakes/command_signing.h"
#include "tests/fakes/temp_dir.h"

namespace medic::agent {
namespace {

using testing::FakeServer;
using testing::JsonResponse;

constexpr char kCredential[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

std::string AuthOf(const HttpRequest& r) {
  for (const auto& [k, v] : r.headers) {
    if (k == "Authorization") {
      return v;
    }
  }
  return "";
}

class EnrolmentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(WriteFileAtomic(dir_.File("agent.token"), "boot\n", 0600).has_value());
    server_.SetHandler([this](const HttpRequest& req) -> Result<HttpResponse> {
      if (req.url.find("/agent/v1/enroll") != std::string::npos) {
        auto body = ParseJsonObject(req.body).value();
        if (body.contains("code")) {
          if (body["code"] != "c0de" || code_used_) {
            return JsonResponse(401, R"({"error":"invalid, used or expired enrolment code"})");
          }
          code_used_ = true;
          return JsonResponse(201, DumpJson(Json{{"name", "web-1"},
                                              {"credential", kCredential},
                                              {"command_key", key_}}));
        }
        if (AuthOf(req) != "Bearer boot") {
          return JsonResponse(401, R"({"error":"invalid bootstrap token"})");
        }
        if (!approved_) {
          return JsonResponse(202, R"({"status":"pending","fingerprint":"abcd"})");
        }
        return JsonResponse(201, DumpJson(Json{{"name", "web-1"},
                                              {"credential", kCredential},
                                              {"command_key", key_}}));
      }
      if (AuthOf(req) != "Bearer " + std::string(kCredential)) {
        return JsonResponse(401, R"({"error":"invalid token"})");
      }
      return JsonResponse(200, R"({"interval_ms":1000})");
    });
  }
  EnrolmentOptions Options(std::string code, bool bootstrap) {
    EnrolmentOptions o;
    o.name = "web-1";
    o.state_dir = dir_.File("state");
    o.enroll_code = std::move(code);
    o.bootstrap_token_file = bootstrap ? dir_.File("agent.token") : "";
    o.hostname = "box";
    return o;
  }

  test::TempDir dir_;
  FakeServer server_;
  std::unique_ptr<HttpClient> http_ = server_.NewClient();
  ServerApi api_{"http://server:8080", ""};
  bool approved_ = false;
  bool code_used_ = false;
  std::string key_ = test::TestCommandKey();  // the server's command key
};

TEST_F(EnrolmentTest, ACodeEnrolsAtOnceAndTheCredentialIsKept) {
  CommandVerifier verifier;
  Enrolment e(api_, Options("c0de", false), &verifier);
  EXPECT_FALSE(e.enrolled());
  ASSERT_TRUE(e.Attempt(*http_).has_value());
  EXPECT_TRUE(e.enrolled());
  EXPECT_TRUE(api_.has_credential());
  EXPECT_EQ(LoadStoredCredential(dir_.File("state")).value(), kCredential);
  // The server's command key came with it: kept beside the credential, and in use at once.
  EXPECT_EQ(LoadStoredCommandKey(dir_.File("state")).value(), key_);
  EXPECT_TRUE(verifier.has_key());
  struct stat st {};
  ASSERT_EQ(::stat(dir_.File("state/credential").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(dir_.File("state/command.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(dir_.File("state").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  auto reqs = server_.RequestsTo("/agent/v1/enroll");
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(AuthOf(reqs[0]), "");  // a code needs no token
  EXPECT_EQ(ParseJsonObject(reqs[0].body).value(), (Json{{"name", "web-1"}, {"code", "c0de"}}));
  // Later calls carry the credential.
  ASSERT_TRUE(api_.Register(*http_, protocol::RegisterRequest{"web-1"}).has_value());
}

TEST_F(EnrolmentTest, TheBootstrapTokenWaitsForApprovalWithTheSameKey) {
  Enrolment e(api_, Options("", true));
  Status s = e.Attempt(*http_);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_FALSE(e.enrolled());
  const std::string key(Trim(ReadFile(dir_.File("state/enroll.key")).value()));
  EXPECT_EQ(key.size(), 64u);
  // A restarted agent asks with the same key.
  Enrolment again(api_, Options("", true));
  ASSERT_FALSE(again.Attempt(*http_).has_value());
  approved_ = true;
  ASSERT_TRUE(again.Attempt(*http_).has_value());
  auto reqs = server_.RequestsTo("/agent/v1/enroll");
  ASSERT_EQ(reqs.size(), 3u);
  for (const auto& r : reqs) {
    EXPECT_EQ(AuthOf(r), "Bearer boot");
    const Json body = ParseJsonObject(r.body).value();
    EXPECT_EQ(body["key"], key);
    EXPECT_EQ(body["hostname"], "box");
  }
  EXPECT_EQ(LoadStoredCredential(dir_.File("state")).value(), kCredential);
  EXPECT_FALSE(PathExists(dir_.File("state/enroll.key")));
}

TEST_F(EnrolmentTest, ARefusedCodeFallsBackToTheBootstrapTokenOrSaysWhatToDo) {
  code_used_ = true;
  Enrolment with_token(api_, Options("c0de", true));
  Status s = with_token.Attempt(*http_);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code, ErrorCode::kFailedPrecondition);  // pending, through the token

  Enrolment code_only(api_, Options("c0de", false));
  s = code_only.Attempt(*http_);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code, ErrorCode::kUnauthenticated);
  s = code_only.Attempt(*http_);  // not tried twice
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(s.error().message.find("medic hosts enroll web-1"), std::string::npos);
}

TEST_F(EnrolmentTest, RegistrationEnrolsFirstAndBacksOffWhilePending) {
  Enrolment e(api_, Options("", true));
  Registration reg(api_, protocol::RegisterRequest{"web-1"}, Millis(100), Millis(1000), &e);
  const SteadyTime t0{};
  ASSERT_FALSE(reg.Attempt(*http_, t0).has_value());
  EXPECT_FALSE(reg.registered());
  EXPECT_GT(reg.next_attempt(), t0);
  EXPECT_TRUE(server_.RequestsTo("/agent/v1/register").empty());
  approved_ = true;
  ASSERT_TRUE(reg.Attempt(*http_, reg.next_attempt()).has_value());
  EXPECT_TRUE(reg.registered());
  auto regs = server_.RequestsTo("/agent/v1/register");
  ASSERT_EQ(regs.size(), 1u);
  EXPECT_EQ(AuthOf(regs[0]), "Bearer " + std::string(kCredential));
}

// A server that sends no usable command key: the agent does not take the credential (it could
// never check a command), and says why.
TEST_F(EnrolmentTest, AnAnswerWithoutAUsableCommandKeyIsRefused) {
  key_ = "bm90IGEga2V5";  // base64 of "not a key"
  CommandVerifier verifier;
  Enrolment e(api_, Options("c0de", false), &verifier);
  Status s = e.Attempt(*http_);
  ASSERT_FALSE(s.has_value());
  EXPECT_NE(s.error().message.find("command key is not usable"), std::string::npos)
      << s.error().message;
  EXPECT_FALSE(e.enrolled());
  EXPECT_FALSE(api_.has_credential());
  EXPECT_FALSE(PathExists(dir_.File("state/credential")));
  EXPECT_FALSE(verifier.has_key());
}

TEST_F(EnrolmentTest, AStoredCommandKeyThatIsNotOneIsAnError) {
  ASSERT_TRUE(MakeDirs(dir_.File("state"), 0700).has_value());
  ASSERT_TRUE(WriteFileAtomic(dir_.File("state/command.key"), "garbage\n", 0600).has_value());
  auto r = LoadStoredCommandKey(dir_.File("state"));
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("does not hold the server's command key"), std::string::npos)
      << r.error().message;
}

TEST_F(EnrolmentTest, AStoredCredentialThatIsNotOneIsAnError) {
  EXPECT_EQ(LoadStoredCredential(dir_.File("state")).value(), "");
  ASSERT_TRUE(MakeDirs(dir_.File("state"), 0700).has_value());
  ASSERT_TRUE(WriteFileAtomic(dir_.File("state/credential"), "garbage\n", 0600).has_value());
  auto r = LoadStoredCredential(dir_.File("state"));
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("remove it to enrol again"), std::string::npos);
}

}  // namespace
}  // namespace medic::agent
