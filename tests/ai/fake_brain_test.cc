// FakeBrain (tests/fakes/fake_brain.h): records, answers from its script, holds until released.
// (It lives with the other test doubles' tests; it is not a store.)

#include "tests/fakes/fake_brain.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "ai/brain.h"
#include "ai/runbooks.h"

namespace medic::ai {
namespace {

using test::FakeBrain;

DecisionRequest Request(const std::string& alarm, const std::string& host = "web-1") {
  DecisionRequest r;
  r.incident = {"inc-" + alarm, alarm, "about " + alarm, host, "df -h ..."};
  for (const Runbook& rb : DefaultRunbooks()) {
    if (rb.alarm == alarm) {
      r.runbook = rb;
    }
  }
  return r;
}

Decision Restart(const std::string& service, const std::string& source) {
  Decision d;
  d.action = protocol::Action{"service.restart", Json{{"service", service}}};
  d.source = source;
  d.reasoning = "scripted";
  return d;
}

TEST(FakeBrainTest, UnscriptedItProposesTheRunbooksFixAndRecordsTheRequest) {
  FakeBrain brain;
  const DecisionRequest req = Request("Disk-Critical-ASG");
  ASSERT_EQ(req.runbook.alarm, "Disk-Critical-ASG");
  const Decision d = brain.Decide(req);
  EXPECT_EQ(d.action.name, req.runbook.fix.name);
  EXPECT_EQ(d.action.params, req.runbook.fix.params);
  EXPECT_EQ(d.source, "fake");
  EXPECT_FALSE(d.requires_approval);
  ASSERT_EQ(brain.calls(), 1u);
  const std::vector<DecisionRequest> seen = brain.requests();
  EXPECT_EQ(seen[0].incident.incident_id, "inc-Disk-Critical-ASG");
  EXPECT_EQ(seen[0].incident.diagnostics, "df -h ...");
  EXPECT_EQ(seen[0].runbook.alarm, "Disk-Critical-ASG");
}

TEST(FakeBrainTest, QueuedAnswersComeFirstThenTheStandingOneThenTheRunbook) {
  FakeBrain brain;
  brain.AnswerNext(Restart("one", "queued"));
  brain.AnswerNext(Restart("two", "queued"));
  brain.AnswerAlways(Restart("always", "standing"));
  struct Want {
    std::string service;
    std::string source;
  };
  for (const Want& w : {Want{"one", "queued"}, Want{"two", "queued"}, Want{"always", "standing"},
                        Want{"always", "standing"}}) {
    SCOPED_TRACE(w.service);
    const Decision d = brain.Decide(Request("Nginx-Down-ALB"));
    EXPECT_EQ(d.action.params["service"], w.service);
    EXPECT_EQ(d.source, w.source);
  }
  brain.AnswerWith([](const DecisionRequest& r) { return Restart(r.incident.instance_id, "fn"); });
  EXPECT_EQ(brain.Decide(Request("Nginx-Down-ALB", "web-7")).action.params["service"], "web-7");
  brain.AnswerWith(nullptr);
  EXPECT_EQ(brain.Decide(Request("Nginx-Down-ALB")).source, "fake");
  EXPECT_EQ(brain.calls(), 6u);
}

TEST(FakeBrainTest, HeldDecisionsWaitForRelease) {
  FakeBrain brain;
  brain.Hold();
  std::vector<Decision> answers(3);
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] { answers[i] = brain.Decide(Request("Nginx-Down-ALB")); });
  }
  ASSERT_TRUE(brain.WaitForHeld(3));
  EXPECT_TRUE(brain.WaitForRequests(3));
  EXPECT_EQ(brain.held(), 3u);
  brain.Release();
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(brain.held(), 0u);
  for (const Decision& d : answers) {
    EXPECT_EQ(d.source, "fake");
  }
  // Released: later calls answer at once.
  EXPECT_EQ(brain.Decide(Request("Nginx-Down-ALB")).source, "fake");
}

TEST(FakeBrainTest, AReleaseIsNotLostToAHoldThatFollowsIt) {
  FakeBrain brain;
  brain.Hold();
  std::thread t([&] { (void)brain.Decide(Request("Nginx-Down-ALB")); });
  ASSERT_TRUE(brain.WaitForHeld(1));
  brain.Release();
  brain.Hold();  // before the held thread may have woken
  t.join();      // hangs if the release were lost
  EXPECT_EQ(brain.calls(), 1u);
}

TEST(FakeBrainTest, WaitsTimeOutWhenNothingComes) {
  FakeBrain brain;
  EXPECT_FALSE(brain.WaitForRequests(1, std::chrono::milliseconds(1)));
  EXPECT_FALSE(brain.WaitForHeld(1, std::chrono::milliseconds(1)));
}

TEST(FakeBrainTest, DestroyingAHoldingBrainReleasesItsCallers) {
  auto brain = std::make_unique<FakeBrain>();
  brain->Hold();
  Decision answer;
  std::thread t([&, b = brain.get()] { answer = b->Decide(Request("Nginx-Down-ALB")); });
  ASSERT_TRUE(brain->WaitForHeld(1));
  brain.reset();  // returns once the held call has its answer
  t.join();
  EXPECT_EQ(answer.source, "fake");
}

}  // namespace
}  // namespace medic::ai
