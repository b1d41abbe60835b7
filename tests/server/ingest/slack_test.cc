// Slack interaction callbacks, the parts without a server: the request signature (Slack's own
// documented example, timestamp window edges, replays, the replay memory's bound), form
// decoding, payload parsing with hostile input, and the `slack:` config section.

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/files.h"
#include "core/json.h"
#include "server/ingest/slack_config.h"
#include "server/ingest/slack_interaction.h"
#include "server/ingest/slack_verify.h"
#include "tests/fakes/temp_dir.h"
#include "tests/server/config_errors.h"

namespace medic::server {
namespace {

// Slack's example in "Verifying requests from Slack" (api.slack.com/authentication/
// verifying-requests-from-slack): a slash command's body, signed at 1531420618.
constexpr std::string_view kDocSecret = "8f742231b10e8888abcd99yyyzzz85a5";
constexpr std::string_view kDocTimestamp = "1531420618";
constexpr std::string_view kDocBody =
    "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id="
    "G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-"
    "collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F3977008855"
    "54%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121."
    "803a0bc887a14d10d2c447fce8b6703c";
constexpr std::string_view kDocSignature =
    "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

WallTime At(int64_t unix_seconds) { return WallTime(std::chrono::seconds(unix_seconds)); }

TEST(SlackSignatureTest, ReproducesSlacksDocumentedExample) {
  EXPECT_EQ(SlackSignature(kDocSecret, kDocTimestamp, kDocBody), kDocSignature);
  ManualClock clock(At(1531420618 + 30));
  SlackVerifier v(std::string(kDocSecret), clock);
  EXPECT_TRUE(v.Verify(kDocTimestamp, kDocSignature, kDocBody).has_value());
}

TEST(SlackSignatureTest, AnyChangeToSecretTimestampBodyOrSignatureIsRefused) {
  ManualClock clock(At(1531420618));
  const std::string body(kDocBody);
  struct Case {
    std::string name, secret, timestamp, signature, body;
  };
  const std::string sig(kDocSignature);
  std::string flipped = sig;
  flipped.back() = flipped.back() == '3' ? '4' : '3';
  std::string upper = sig;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const std::vector<Case> cases = {
      {"other secret", "8f742231b10e8888abcd99yyyzzz85a6", "1531420618", sig, body},
      {"other timestamp", std::string(kDocSecret), "1531420619", sig, body},
      {"body changed", std::string(kDocSecret), "1531420618", sig, body + "&x=1"},
      {"last digit", std::string(kDocSecret), "1531420618", flipped, body},
      {"upper case", std::string(kDocSecret), "1531420618", upper, body},
      {"no version", std::string(kDocSecret), "1531420618", sig.substr(3), body},
      {"v1", std::string(kDocSecret), "1531420618", "v1=" + sig.substr(3), body},
      {"truncated", std::string(kDocSecret), "1531420618", sig.substr(0, 40), body},
      {"longer", std::string(kDocSecret), "1531420618", sig + "00", body},
      {"missing signature", std::string(kDocSecret), "1531420618", "", body},
      {"missing timestamp", std::string(kDocSecret), "", sig, body},
      {"timestamp not digits", std::string(kDocSecret), "1531420618.5", sig, body},
      {"timestamp negative", std::string(kDocSecret), "-1531420618", sig, body},
      {"timestamp huge", std::string(kDocSecret), "99999999999999999999", sig, body},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    SlackVerifier v(c.secret, clock);
    const Status s = v.Verify(c.timestamp, c.signature, c.body);
    ASSERT_FALSE(s.has_value());
    EXPECT_EQ(s.error().code, ErrorCode::kUnauthenticated);
    EXPECT_EQ(v.remembered(), 0u);
  }
}

// Slack: refuse a request whose timestamp is more than five minutes from the local time.
TEST(SlackSignatureTest, TheTimestampWindowIsFiveMinutesEitherSideInclusive) {
  const int64_t ts = 1'800'000'000;
  const std::string text = std::to_string(ts);
  const std::string body = "payload=%7B%7D";
  const std::string sig = SlackSignature(kDocSecret, text, body);
  struct Case {
    int64_t now;
    bool ok;
  };
  for (const Case& c : {Case{ts, true}, Case{ts + 300, true}, Case{ts + 301, false},
                        Case{ts - 300, true}, Case{ts - 301, false}, Case{ts + 86400, false},
                        Case{ts - 86400, false}}) {
    SCOPED_TRACE(c.now - ts);
    ManualClock clock(At(c.now));
    SlackVerifier v(std::string(kDocSecret), clock);
    const Status s = v.Verify(text, sig, body);
    EXPECT_EQ(s.has_value(), c.ok) << (s ? "" : s.error().message);
    if (!c.ok) {
      EXPECT_NE(s.error().message.find("stale"), std::string::npos) << s.error().message;
    }
  }
}

TEST(SlackSignatureTest, AReplayWithinTheWindowIsRefusedAndForgottenOnlyAfterIt) {
  ManualClock clock(At(1'800'000'000));
  SlackVerifier v(std::string(kDocSecret), clock);
  const std::string ts = "1800000000";
  const std::string sig = SlackSignature(kDocSecret, ts, "a=1");
  ASSERT_TRUE(v.Verify(ts, sig, "a=1").has_value());
  const Status again = v.Verify(ts, sig, "a=1");
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, ErrorCode::kUnauthenticated);
  EXPECT_NE(again.error().message.find("replay"), std::string::npos);
  // Another body at the same second is another request.
  EXPECT_TRUE(v.Verify(ts, SlackSignature(kDocSecret, ts, "a=2"), "a=2").has_value());
  // At the window's last second it is still remembered; after it the timestamp refuses it.
  clock.Advance(std::chrono::seconds(300));
  EXPECT_FALSE(v.Verify(ts, sig, "a=1").has_value());
  clock.Advance(std::chrono::seconds(1));
  const Status late = v.Verify(ts, sig, "a=1");
  ASSERT_FALSE(late.has_value());
  EXPECT_NE(late.error().message.find("stale"), std::string::npos);
  // A fresh request prunes what left the window.
  const std::string ts2 = "1800000301";
  ASSERT_TRUE(v.Verify(ts2, SlackSignature(kDocSecret, ts2, "a=3"), "a=3").has_value());
  EXPECT_EQ(v.remembered(), 1u);
}

TEST(SlackSignatureTest, AFullReplayMemoryRefusesRatherThanForgets) {
  ManualClock clock(At(1'800'000'000));
  SlackVerifier v(std::string(kDocSecret), clock, {300, 3});
  const std::string ts = "1800000000";
  for (int i = 0; i < 3; ++i) {
    const std::string body = "n=" + std::to_string(i);
    ASSERT_TRUE(v.Verify(ts, SlackSignature(kDocSecret, ts, body), body).has_value());
  }
  const Status full = v.Verify(ts, SlackSignature(kDocSecret, ts, "n=3"), "n=3");
  ASSERT_FALSE(full.has_value());
  EXPECT_EQ(full.error().code, ErrorCode::kUnavailable);
  // The first is still refused as a replay: nothing was forgotten to make room.
  EXPECT_EQ(v.Verify(ts, SlackSignature(kDocSecret, ts, "n=0"), "n=0").error().code,
            ErrorCode::kUnauthenticated);
  clock.Advance(std::chrono::seconds(301));
  const std::string ts2 = "1800000301";
  EXPECT_TRUE(v.Verify(ts2, SlackSignature(kDocSecret, ts2, "n=4"), "n=4").has_value());
}

TEST(SlackSignatureTest, ConcurrentDeliveriesOfOneRequestAreAcceptedOnce) {
  ManualClock clock(At(1'800'000'000));
  SlackVerifier v(std::string(kDocSecret), clock);
  const std::string ts = "1800000000";
  const std::string sig = SlackSignature(kDocSecret, ts, "x=1");
  std::atomic<int> accepted{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      if (v.Verify(ts, sig, "x=1").has_value()) {
        ++accepted;
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(accepted.load(), 1);
}

TEST(SlackFormTest, DecodesPercentEscapesAndPlus) {
  auto f = ParseFormUrlEncoded("payload=%7B%22a%22%3A+1%7D&b=x%20y+z&empty=&&c=%e2%9c%93");
  ASSERT_TRUE(f.has_value()) << f.error().message;
  EXPECT_EQ((*f)["payload"], "{\"a\": 1}");
  EXPECT_EQ((*f)["b"], "x y z");
  EXPECT_EQ((*f)["empty"], "");
  EXPECT_EQ((*f)["c"], "\xe2\x9c\x93");
  EXPECT_EQ(f->size(), 4u);
  EXPECT_TRUE(ParseFormUrlEncoded("").value().empty());
  EXPECT_EQ(ParseFormUrlEncoded("a=%2B%26%3D").value().at("a"), "+&=");
}

TEST(SlackFormTest, RefusesMalformedBodies) {
  for (const char* body : {"a=%", "a=%4", "a=%zz", "a=%4g", "noequals", "=x", "a=1&a=2",
                           "a=1&%=2", "payload=%7B%"}) {
    SCOPED_TRACE(body);
    auto f = ParseFormUrlEncoded(body);
    ASSERT_FALSE(f.has_value());
    EXPECT_EQ(f.error().code, ErrorCode::kInvalidArgument);
  }
}

std::string Form(const Json& payload) {
  std::string out = "payload=";
  for (const unsigned char c : DumpJson(payload)) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

Json Payload() {
  return Json{{"type", "block_actions"},
              {"user", {{"id", "U0123ABC"}, {"username", "alice.s"}, {"team_id", "T0001"}}},
              {"team", {{"id", "T0001"}, {"domain", "acme"}}},
              {"response_url", "https://hooks.slack.com/actions/T0001/1/abc"},
              {"actions",
               {{{"action_id", "medic_approve"},
                 {"block_id", "medic_incident"},
                 {"type", "button"},
                 {"value", "inc-42"},
                 {"action_ts", "1800000000.1"}}}}};
}

TEST(SlackPayloadTest, ReadsABlockActionsButtonPress) {
  auto in = ParseSlackInteraction(Form(Payload()));
  ASSERT_TRUE(in.has_value()) << in.error().message;
  EXPECT_EQ(in->type, "block_actions");
  EXPECT_EQ(in->user_id, "U0123ABC");
  EXPECT_EQ(in->user_name, "alice.s");
  EXPECT_EQ(in->team_id, "T0001");
  EXPECT_EQ(in->action_id, kSlackApproveAction);
  EXPECT_EQ(in->block_id, kSlackBlockId);
  EXPECT_EQ(in->value, "inc-42");
  EXPECT_EQ(in->response_url, "https://hooks.slack.com/actions/T0001/1/abc");
  // Another type is read without actions (the route ignores it).
  Json shortcut = Payload();
  shortcut["type"] = "shortcut";
  shortcut.erase("actions");
  auto s = ParseSlackInteraction(Form(shortcut));
  ASSERT_TRUE(s.has_value()) << s.error().message;
  EXPECT_EQ(s->type, "shortcut");
  EXPECT_EQ(s->action_id, "");
}

TEST(SlackPayloadTest, RefusesHostilePayloadsNamingTheProblem) {
  struct Case {
    std::string name;
    std::string body;
    std::string want;
  };
  auto with = [](auto change) {
    Json p = Payload();
    change(p);
    return Form(p);
  };
  const std::vector<Case> cases = {
      {"no payload", "other=1", "no 'payload'"},
      {"not json", "payload=%7Bnope", "not JSON"},
      {"array", "payload=%5B%5D", "JSON object"},
      {"no type", with([](Json& p) { p.erase("type"); }), "type is missing"},
      {"type number", with([](Json& p) { p["type"] = 7; }), "type must be a string"},
      {"no user", with([](Json& p) { p.erase("user"); }), "user.id"},
      {"user string", with([](Json& p) { p["user"] = "U0123ABC"; }), "user must be an object"},
      {"user id number", with([](Json& p) { p["user"]["id"] = 12345; }), "user.id must be"},
      {"user id lower", with([](Json& p) { p["user"]["id"] = "u0123abc"; }), "user.id"},
      {"user id huge", with([](Json& p) { p["user"]["id"] = "U" + std::string(100000, 'A'); }),
       "longer than"},
      {"team array", with([](Json& p) { p["team"] = Json::array(); }), "team must be"},
      {"no actions", with([](Json& p) { p.erase("actions"); }), "actions"},
      {"actions empty", with([](Json& p) { p["actions"] = Json::array(); }), "actions"},
      {"actions object", with([](Json& p) { p["actions"] = Json::object(); }), "actions"},
      {"action string", with([](Json& p) { p["actions"][0] = "medic_approve"; }), "actions[0]"},
      {"action_id number", with([](Json& p) { p["actions"][0]["action_id"] = 1; }),
       "action_id must be a string"},
      {"value object", with([](Json& p) { p["actions"][0]["value"] = Json::object(); }),
       "value must be a string"},
      {"value huge", with([](Json& p) { p["actions"][0]["value"] = std::string(5000, 'i'); }),
       "longer than 256"},
      {"deep", "payload=" + std::string(300, '[') , "not JSON"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto in = ParseSlackInteraction(c.body);
    ASSERT_FALSE(in.has_value());
    EXPECT_EQ(in.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(in.error().message.find(c.want), std::string::npos) << in.error().message;
  }
}

TEST(SlackConfigTest, ReadsTheSectionWithASecretFileRelativeToTheConfig) {
  test::TempDir dir;
  ASSERT_TRUE(WriteFileAtomic(dir.File("secret"), "  0123456789abcdef0123456789abcdef\n").has_value());
  ASSERT_TRUE(WriteFileAtomic(dir.File("s.yaml"),
                              "slack:\n"
                              "  signing_secret_file: secret\n"
                              "  team_id: T0001\n"
                              "  users:\n"
                              "    U0123ABC: alice\n"
                              "    W0456DEF: bob.ops\n")
                  .has_value());
  auto c = LoadServerConfig(dir.File("s.yaml"));
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_TRUE(c->slack.enabled());
  EXPECT_EQ(c->slack.signing_secret, "0123456789abcdef0123456789abcdef");
  EXPECT_EQ(c->slack.team_id, "T0001");
  EXPECT_EQ(c->slack.users, (std::map<std::string, std::string>{{"U0123ABC", "alice"},
                                                               {"W0456DEF", "bob.ops"}}));
  EXPECT_FALSE(ServerConfig{}.slack.enabled());
}

TEST(SlackConfigTest, ASecretFileThatIsEmptyOrShortIsRefused) {
  test::TempDir dir;
  for (const std::string& text : {std::string(""), std::string("\n"), std::string("short\n"),
                                 std::string("0123456789 abcdef0123\n"),
                                 std::string(5000, 'a')}) {
    SCOPED_TRACE(text);
    ASSERT_TRUE(WriteFileAtomic(dir.File("secret"), text).has_value());
    ASSERT_TRUE(
        WriteFileAtomic(dir.File("s.yaml"), "slack:\n  signing_secret_file: secret\n").has_value());
    auto c = LoadServerConfig(dir.File("s.yaml"));
    ASSERT_FALSE(c.has_value());
    EXPECT_NE(c.error().message.find(":2: slack.signing_secret_file: "), std::string::npos)
        << c.error().message;
    EXPECT_TRUE(c.error().message.find("must hold 16 to 256") != std::string::npos ||
                c.error().message.find("larger than 4 KiB") != std::string::npos)
        << c.error().message;
  }
}

TEST(SlackConfigTest, BadSectionsAreRefusedNamingFileLineAndKey) {
  test::ExpectConfigErrors({
      {"slack: 3\n", ":1: slack must be a mapping"},
      {"slack: {}\n", "signing_secret or signing_secret_file is required"},
      {"slack: {users: {U0123ABC: alice}}\n", "signing_secret or signing_secret_file is required"},
      {"slack: {signing_secret: short}\n", "slack.signing_secret: must be 16 to 256"},
      {"slack: {signing_secret: \"0123456789abcdef 0123\"}\n", "without spaces"},
      {"slack: {signing_secret: [a]}\n", "slack.signing_secret: must be a string"},
      {"slack:\n  signing_secret: 0123456789abcdef0123\n  signing_secret_file: /x\n",
       "not both"},
      {"slack:\n  signing_secret_file: /nonexistent/medic-slack-secret\n", ":2: slack."
                                                                          "signing_secret_file: "
                                                                          "cannot read"},
      {"slack:\n  signing_secret_file: /dev/zero\n", "/dev/zero: it is not a regular file"},
      {"slack:\n  signing_secret_file: /\n", "it is not a regular file"},
      {"slack:\n  signing_secret: 0123456789abcdef0123\n  channel: x\n",
       ":3: unknown slack key 'channel'"},
      {"slack:\n  signing_secret: 0123456789abcdef0123\n  users: [alice]\n",
       "must map Slack user ids"},
      {"slack:\n  signing_secret: 0123456789abcdef0123\n  users:\n    alice: alice\n",
       ":4: slack.users: 'alice': is not a Slack user id"},
      {"slack:\n  signing_secret: 0123456789abcdef0123\n  users:\n    U0123ABC: \"a b\"\n",
       "must name a medic token"},
      {"slack:\n  signing_secret: 0123456789abcdef0123\n  users:\n    U0123ABC: [a]\n",
       "must name a medic token"},
      {"slack:\n  signing_secret: 0123456789abcdef0123\n  users:\n    U0123ABC: a\n"
       "    U0123ABC: b\n",
       "U0123ABC"},
      {"slack:\n  signing_secret: 0123456789abcdef0123\n  team_id: acme\n",
       "slack.team_id: must be a Slack team id"},
  });
}

}  // namespace
}  // namespace medic::server
