// The server's command-signing key and sink, checked against the agent's verifier (mbed TLS):
// what the server signs with OpenSSL, the agent accepts, and nothing else.

#include "server/commands/command_signer.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "agent/command_verifier.h"
#include "core/files.h"
#include "tests/fakes/incident_fakes.h"
#include "tests/fakes/temp_dir.h"

namespace medic::server {
namespace {

TEST(CommandSigner, MakesItsKeyOnceAndKeepsItPrivate) {
  test::TempDir dir;
  const std::string path = dir.File("data/command-signing.key");
  auto first = LoadOrCreateCommandSigner(path);
  ASSERT_TRUE(first.has_value()) << first.error().message;
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(dir.File("data").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  auto again = LoadOrCreateCommandSigner(path);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ((*again)->public_key(), (*first)->public_key());  // the same key, not a new one
  // The agent takes the public key as it comes with the credential.
  agent::CommandVerifier verifier;
  EXPECT_TRUE(verifier.SetKey((*first)->public_key()).has_value());
}

TEST(CommandSigner, RefusesAKeyOthersCanReadOrThatIsNotOne) {
  test::TempDir dir;
  const std::string path = dir.File("command-signing.key");
  ASSERT_TRUE(LoadOrCreateCommandSigner(path).has_value());
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  auto r = LoadOrCreateCommandSigner(path);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("is readable by others"), std::string::npos)
      << r.error().message;
  ASSERT_TRUE(WriteFileAtomic(path, "-----BEGIN PRIVATE KEY-----\ngarbage\n", 0600).has_value());
  r = LoadOrCreateCommandSigner(path);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("is not a P-256 private key"), std::string::npos)
      << r.error().message;
}

TEST(SigningCommandSink, SignsForTheHostWithAFreshNonceWhatTheAgentAccepts) {
  test::TempDir dir;
  auto signer = LoadOrCreateCommandSigner(dir.File("k.key"));
  ASSERT_TRUE(signer.has_value());
  test::RecordingSink queue;
  SigningCommandSink sink(**signer, queue);
  protocol::Command c;
  c.id = "cmd-1";
  c.action = "service.restart";
  c.params = Json{{"service", "nginx"}};
  c.expires_at = SystemClock().Now() + std::chrono::seconds(30);
  c.incident = "inc-1";
  c.approved_by = "alice";
  sink.Send("web-1", c);
  sink.Send("web-1", c);
  ASSERT_EQ(queue.sent.size(), 2u);
  const protocol::Command& sent = queue.sent[0].second;
  EXPECT_EQ(queue.sent[0].first, "web-1");
  EXPECT_EQ(sent.host, "web-1");
  EXPECT_EQ(sent.nonce.size(), 32u);
  EXPECT_NE(sent.nonce, queue.sent[1].second.nonce);
  EXPECT_EQ(sent.envelope, protocol::EnvelopeOf(sent));
  // The envelope on the wire, and what the agent makes of it.
  auto wire = protocol::CommandFromJson(protocol::ToJson(sent));
  ASSERT_TRUE(wire.has_value());
  agent::CommandVerifier verifier;
  ASSERT_TRUE(verifier.SetKey((*signer)->public_key()).has_value());
  auto verified = verifier.Verify(*wire, "web-1", SystemClock().Now());
  ASSERT_TRUE(verified.has_value()) << verified.error().message;
  EXPECT_EQ(verified->id, "cmd-1");
  EXPECT_EQ(verified->action, "service.restart");
  EXPECT_EQ(verified->params, (Json{{"service", "nginx"}}));
  EXPECT_EQ(verified->incident, "inc-1");
  EXPECT_EQ(verified->approved_by, "alice");
  EXPECT_EQ(verified->nonce, sent.nonce);
  EXPECT_EQ(ToUnixMillis(verified->expires_at), ToUnixMillis(c.expires_at));
  // Another server's agent does not take it.
  auto other = LoadOrCreateCommandSigner(dir.File("other.key"));
  ASSERT_TRUE(other.has_value());
  agent::CommandVerifier stranger;
  ASSERT_TRUE(stranger.SetKey((*other)->public_key()).has_value());
  EXPECT_FALSE(stranger.Verify(*wire, "web-1", SystemClock().Now()).has_value());
}

}  // namespace
}  // namespace medic::server
