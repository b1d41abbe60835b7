#include "server/commands/command_queue.h"

#include <gtest/gtest.h>

namespace medic::server {
namespace {

protocol::Command Cmd(const std::string& id, const Clock& clock) {
  protocol::Command c;
  c.id = id;
  c.action = "service.status";
  c.params = Json{{"service", "nginx"}};
  c.expires_at = clock.Now() + std::chrono::seconds(60);
  return c;
}

struct Recorder {
  int calls = 0;
  std::vector<std::string> ids;
  CommandQueue::Deliver Fn() {
    return [this](std::vector<protocol::Command> cmds) {
      ++calls;
      for (auto& c : cmds) {
        ids.push_back(c.id);
      }
    };
  }
};

// Several servers queue the same command (a copy over the cluster bus, the same fix offered
// again after a takeover): an id already queued for the host is offered once, the newer copy
// (its fresh nonce and signature) replacing the older.
TEST(CommandQueueTest, TheSameCommandIdQueuedTwiceIsOfferedOnce) {
  ManualClock clock;
  CommandQueue q(clock);
  protocol::Command first = Cmd("c1", clock);
  first.nonce = "n1";
  protocol::Command again = Cmd("c1", clock);
  again.nonce = "n2";
  q.Send("web-1", first);
  q.Send("web-1", Cmd("c2", clock));
  q.Send("web-1", again);
  EXPECT_EQ(q.pending("web-1"), 2u);
  std::vector<protocol::Command> got;
  q.Poll("web-1", clock.SteadyNow(), [&](std::vector<protocol::Command> cmds) { got = cmds; });
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].id, "c1");
  EXPECT_EQ(got[0].nonce, "n2");
  EXPECT_EQ(got[1].id, "c2");
  // Delivered already: a copy arriving now is not delivered again before redeliver_after.
  q.Send("web-1", first);
  Recorder rec;
  q.Poll("web-1", clock.SteadyNow() + std::chrono::seconds(1), rec.Fn());
  EXPECT_EQ(rec.calls, 0);  // parked: nothing due
  q.Shutdown();
}

// Results are matched to the host each command was sent to, until some time after it expires.
TEST(CommandQueueTest, RemembersTheRecipientOfEachCommandUntilAfterItExpires) {
  ManualClock clock;
  CommandQueue q(clock);
  q.Send("web-1", Cmd("c1", clock));
  q.Send("web-2", Cmd("c2", clock));
  EXPECT_EQ(q.RecipientOf("c1"), "web-1");
  EXPECT_EQ(q.RecipientOf("c2"), "web-2");
  EXPECT_EQ(q.RecipientOf("c3"), std::nullopt);
  q.Complete("web-1", "c1");
  EXPECT_EQ(q.RecipientOf("c1"), "web-1");  // a repeated answer is still matched
  clock.Advance(std::chrono::minutes(5));  // expired 4 minutes ago: results may still come
  q.RunOnce();
  EXPECT_EQ(q.RecipientOf("c2"), "web-2");
  clock.Advance(std::chrono::hours(1));
  q.RunOnce();
  EXPECT_EQ(q.RecipientOf("c1"), std::nullopt);
  EXPECT_EQ(q.RecipientOf("c2"), std::nullopt);
}

// A revoked host's parked poll is answered at once (with nothing); other hosts' stay parked.
TEST(CommandQueueTest, WakeAnswersOnlyThatHostsParkedPoll) {
  ManualClock clock;
  CommandQueue q(clock);
  Recorder r1, r2;
  q.Poll("web-1", clock.SteadyNow() + std::chrono::seconds(25), r1.Fn());
  q.Poll("web-2", clock.SteadyNow() + std::chrono::seconds(25), r2.Fn());
  q.Wake("web-1");
  EXPECT_EQ(r1.calls, 1);
  EXPECT_TRUE(r1.ids.empty());
  EXPECT_EQ(r2.calls, 0);
  EXPECT_EQ(q.parked_polls(), 1u);
  q.Wake("web-3");  // nobody parked: nothing happens
  EXPECT_EQ(q.parked_polls(), 1u);
}

TEST(CommandQueueTest, ParkedPollIsAnsweredAtOnceBySend) {
  ManualClock clock;
  CommandQueue q(clock);
  Recorder r;
  q.Poll("web-1", clock.SteadyNow() + std::chrono::seconds(25), r.Fn());
  EXPECT_EQ(r.calls, 0);
  EXPECT_EQ(q.parked_polls(), 1u);
  q.Send("web-1", Cmd("c1", clock));
  EXPECT_EQ(r.calls, 1);
  EXPECT_EQ(r.ids, std::vector<std::string>{"c1"});
  EXPECT_EQ(q.parked_polls(), 0u);
}

TEST(CommandQueueTest, QueuedCommandIsDeliveredOnNextPoll) {
  ManualClock clock;
  CommandQueue q(clock);
  q.Send("web-1", Cmd("c1", clock));
  q.Send("web-2", Cmd("c2", clock));
  Recorder r;
  q.Poll("web-1", clock.SteadyNow(), r.Fn());
  EXPECT_EQ(r.ids, std::vector<std::string>{"c1"});
}

TEST(CommandQueueTest, PollTimesOutEmpty) {
  ManualClock clock;
  CommandQueue q(clock);
  Recorder r;
  q.Poll("web-1", clock.SteadyNow() + std::chrono::seconds(25), r.Fn());
  clock.Advance(std::chrono::seconds(24));
  q.RunOnce();
  EXPECT_EQ(r.calls, 0);
  clock.Advance(std::chrono::seconds(1));
  q.RunOnce();
  EXPECT_EQ(r.calls, 1);
  EXPECT_TRUE(r.ids.empty());
}

TEST(CommandQueueTest, UnansweredCommandIsRedeliveredCompletedOneIsNot) {
  ManualClock clock;
  CommandQueue q(clock, std::chrono::seconds(15));
  q.Send("web-1", Cmd("c1", clock));
  q.Send("web-1", Cmd("c2", clock));
  Recorder first;
  q.Poll("web-1", clock.SteadyNow(), first.Fn());
  EXPECT_EQ(first.ids.size(), 2u);
  q.Complete("web-1", "c1");
  Recorder soon;
  q.Poll("web-1", clock.SteadyNow() + std::chrono::seconds(1), soon.Fn());
  EXPECT_EQ(soon.calls, 0);  // nothing due yet: parked
  clock.Advance(std::chrono::seconds(16));
  Recorder later;
  q.Poll("web-1", clock.SteadyNow(), later.Fn());
  EXPECT_EQ(soon.calls, 1);  // replaced by the newer poll
  EXPECT_EQ(later.ids, std::vector<std::string>{"c2"});
}

TEST(CommandQueueTest, ExpiredCommandsAreDropped) {
  ManualClock clock;
  CommandQueue q(clock);
  q.Send("web-1", Cmd("c1", clock));
  clock.Advance(std::chrono::seconds(61));
  q.RunOnce();
  EXPECT_EQ(q.pending("web-1"), 0u);
}

TEST(CommandQueueTest, ShutdownAnswersEveryPoll) {
  ManualClock clock;
  CommandQueue q(clock);
  Recorder a, b;
  q.Poll("web-1", clock.SteadyNow() + std::chrono::seconds(25), a.Fn());
  q.Poll("web-2", clock.SteadyNow() + std::chrono::seconds(25), b.Fn());
  q.Shutdown();
  EXPECT_EQ(a.calls, 1);
  EXPECT_EQ(b.calls, 1);
}

// A poll after the shutdown (a request the server had read before it stopped) is answered at
// once, never parked: nothing parked may outlive the HTTP server that holds its connection.
TEST(CommandQueueTest, PollAfterShutdownIsAnsweredAtOnce) {
  ManualClock clock;
  CommandQueue q(clock);
  q.Shutdown();
  Recorder a;
  q.Poll("web-1", clock.SteadyNow() + std::chrono::seconds(25), a.Fn());
  EXPECT_EQ(a.calls, 1);
  EXPECT_TRUE(a.ids.empty());
  EXPECT_EQ(q.parked_polls(), 0u);
}

// A cancelled poll (its client closed) is dropped unanswered; a stale ticket (the host polled
// again since) leaves the newer poll parked.
TEST(CommandQueueTest, CancelDropsOnlyThatParkedPoll) {
  ManualClock clock;
  CommandQueue q(clock);
  Recorder first, second, other;
  const auto deadline = clock.SteadyNow() + std::chrono::seconds(25);
  const uint64_t t1 = q.Poll("web-1", deadline, first.Fn());
  const uint64_t t2 = q.Poll("web-1", deadline, second.Fn());  // answers the first
  q.Poll("web-2", deadline, other.Fn());
  EXPECT_EQ(first.calls, 1);
  q.Cancel("web-1", t1);  // stale: the second poll stays
  EXPECT_EQ(q.parked_polls(), 2u);
  q.Cancel("web-1", t2);
  EXPECT_EQ(q.parked_polls(), 1u);
  EXPECT_EQ(second.calls, 0);  // dropped, not answered
  q.Send("web-1", Cmd("c1", clock));
  EXPECT_EQ(second.calls, 0);
  EXPECT_EQ(q.pending("web-1"), 1u);  // waits for the next poll
  clock.Advance(std::chrono::seconds(30));
  q.RunOnce();
  EXPECT_EQ(second.calls, 0);
  EXPECT_EQ(other.calls, 1);
}

// The tick answers the polls whose deadline passed, by their own deadline: a poll replaced by a
// newer one with a later deadline, or cancelled, leaves nothing behind that expires another.
TEST(CommandQueueTest, TickExpiresOnlyThePollsDue) {
  ManualClock clock;
  CommandQueue q(clock);
  Recorder short1, long1, web2, web3;
  const auto now = clock.SteadyNow();
  q.Poll("web-1", now + std::chrono::seconds(10), short1.Fn());
  q.Poll("web-1", now + std::chrono::seconds(60), long1.Fn());  // replaces it
  q.Poll("web-2", now + std::chrono::seconds(5), web2.Fn());
  const uint64_t t3 = q.Poll("web-3", now + std::chrono::seconds(1), web3.Fn());
  q.Cancel("web-3", t3);
  clock.Advance(std::chrono::seconds(20));
  q.RunOnce();
  EXPECT_EQ(short1.calls, 1);  // answered when replaced
  EXPECT_EQ(long1.calls, 0);
  EXPECT_EQ(web2.calls, 1);
  EXPECT_EQ(web3.calls, 0);
  EXPECT_EQ(q.parked_polls(), 1u);
  clock.Advance(std::chrono::seconds(40));
  q.RunOnce();
  EXPECT_EQ(long1.calls, 1);
  EXPECT_EQ(q.parked_polls(), 0u);
}

// GET /api/v1/commands/ID's states, one step at a time: queued until a poll takes it, delivered
// until the host answers, then what the answer says; expired when nobody took it in time, or
// nobody answered by its expiry and timeout.
TEST(CommandQueueTest, LookupFollowsACommandThroughEveryState) {
  ManualClock clock;
  CommandQueue q(clock);
  EXPECT_FALSE(q.Lookup("c1").has_value());
  protocol::Command c = Cmd("c1", clock);  // expires in 60 s
  c.timeout_ms = 30'000;
  q.Send("web-1", c);
  ASSERT_TRUE(q.Lookup("c1").has_value());
  EXPECT_EQ(q.Lookup("c1")->state, "queued");
  EXPECT_EQ(q.Lookup("c1")->host, "web-1");
  EXPECT_EQ(q.Lookup("c1")->action, "service.status");
  q.Poll("web-1", clock.SteadyNow(), [](std::vector<protocol::Command>) {});
  EXPECT_EQ(q.Lookup("c1")->state, "delivered");
  clock.Advance(std::chrono::seconds(89));  // expiry + timeout not yet past
  EXPECT_EQ(q.Lookup("c1")->state, "delivered");
  clock.Advance(std::chrono::seconds(2));
  EXPECT_EQ(q.Lookup("c1")->state, "expired");
  // A late answer still counts: the host ran it after all.
  protocol::CommandResult ok;
  ok.id = "c1";
  ok.host = "web-1";
  ok.ran = true;
  ok.exit_code = 0;
  ok.output = "active";
  q.Complete(ok);
  EXPECT_EQ(q.Lookup("c1")->state, "succeeded");
  EXPECT_EQ(q.Lookup("c1")->result->output, "active");

  // Never taken before it expired.
  q.Send("web-2", Cmd("c2", clock));
  clock.Advance(std::chrono::seconds(61));
  EXPECT_EQ(q.Lookup("c2")->state, "expired");

  struct Case {
    bool ran;
    int exit_code;
    int signal;
    bool timed_out;
    std::string want;
  };
  const std::vector<Case> cases = {{false, -1, 0, false, "refused"},
                                   {true, 0, 0, false, "succeeded"},
                                   {true, 2, 0, false, "failed"},
                                   {true, -1, 9, false, "failed"},
                                   {true, 0, 0, true, "failed"}};
  int n = 0;
  for (const Case& k : cases) {
    const std::string id = "r" + std::to_string(++n);
    SCOPED_TRACE(id);
    q.Send("web-3", Cmd(id, clock));
    protocol::CommandResult r;
    r.id = id;
    r.host = "web-3";
    r.ran = k.ran;
    r.exit_code = k.exit_code;
    r.signal = k.signal;
    r.timed_out = k.timed_out;
    q.Complete(r);
    EXPECT_EQ(q.Lookup(id)->state, k.want);
  }
  // An answer from another host than the recipient is not the command's result.
  q.Send("web-4", Cmd("c4", clock));
  protocol::CommandResult wrong;
  wrong.id = "c4";
  wrong.host = "web-5";
  wrong.ran = true;
  wrong.exit_code = 0;
  q.Complete(wrong);
  EXPECT_EQ(q.Lookup("c4")->state, "queued");
  EXPECT_FALSE(q.Lookup("c4")->result.has_value());
  // Forgotten some time after expiry, like RecipientOf.
  clock.Advance(std::chrono::hours(1));
  q.RunOnce();
  EXPECT_FALSE(q.Lookup("c4").has_value());
  q.Shutdown();
}

}  // namespace
}  // namespace medic::server
