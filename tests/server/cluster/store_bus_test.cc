// The store-backed ClusterBus: two (or three) buses over one shared store are servers of one
// cluster. Mostly driven by RunOnce (no thread, no sleep); one test runs the real thread.

#include "server/cluster/store_bus.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "tests/fakes/faulty_store.h"
#include "tests/fakes/memory_store.h"
#include "tests/fakes/temp_dir.h"

namespace medic::server {
namespace {

using test::FaultyStore;
using test::MemoryStore;
using test::StoreOp;

// What one bus handed to its subscribers, as "from:kind:target:payload".
class Recorder {
 public:
  void Listen(ClusterBus& bus, const std::string& kind) {
    bus.Subscribe(kind, [this](const ClusterMessage& m) {
      std::lock_guard<std::mutex> lock(mu_);
      got_.push_back(m.from + ":" + m.kind + ":" + m.target + ":" + m.payload);
      ids_.push_back(m.id);
    });
  }
  std::vector<std::string> got() const {
    std::lock_guard<std::mutex> lock(mu_);
    return got_;
  }
  std::vector<int64_t> ids() const {
    std::lock_guard<std::mutex> lock(mu_);
    return ids_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> got_;
  std::vector<int64_t> ids_;
};

StoreBusOptions Manual() {
  StoreBusOptions o;
  o.start = false;
  return o;
}

std::unique_ptr<StoreBus> Open(Store& store, const std::string& id, const Clock& clock,
                               StoreBusOptions options = Manual()) {
  auto bus = OpenStoreBus(store, id, clock, options);
  EXPECT_TRUE(bus.has_value()) << bus.error().ToString();
  return bus.has_value() ? std::move(*bus) : nullptr;
}

class StoreBusTest : public ::testing::Test {
 protected:
  ManualClock clock_;
  MemoryStore data_;
  std::unique_ptr<MemoryStore> store1_ = data_.Share();
  std::unique_ptr<MemoryStore> store2_ = data_.Share();
};

TEST_F(StoreBusTest, OtherServersGetEveryMessageInOrderAndThePosterNone) {
  auto bus1 = Open(*store1_, "s1", clock_);
  auto bus2 = Open(*store2_, "s2", clock_);
  ASSERT_TRUE(bus1 && bus2);
  Recorder on1, on2;
  on1.Listen(*bus1, "changed");
  on2.Listen(*bus2, "changed");
  Recorder other2;
  other2.Listen(*bus2, "event");
  ASSERT_TRUE(bus1->Post("changed", "", R"({"what":"settings"})").has_value());
  ASSERT_TRUE(bus1->Post("event", "web-1", R"({"event":"host"})").has_value());
  ASSERT_TRUE(bus1->Post("changed", "web-1", R"({"what":"hosts"})").has_value());
  ASSERT_TRUE(bus2->Post("changed", "", R"({"what":"tokens"})").has_value());

  ASSERT_TRUE(bus2->RunOnce().has_value());
  ASSERT_TRUE(bus1->RunOnce().has_value());
  EXPECT_EQ(on2.got(), (std::vector<std::string>{"s1:changed::{\"what\":\"settings\"}",
                                                 "s1:changed:web-1:{\"what\":\"hosts\"}"}));
  EXPECT_EQ(other2.got(), (std::vector<std::string>{"s1:event:web-1:{\"event\":\"host\"}"}));
  EXPECT_EQ(on1.got(), (std::vector<std::string>{"s2:changed::{\"what\":\"tokens\"}"}));
  const std::vector<int64_t> ids = on2.ids();
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_LT(ids[0], ids[1]);
  // Read once: another turn hands nothing on again.
  ASSERT_TRUE(bus2->RunOnce().has_value());
  EXPECT_EQ(on2.got().size(), 2u);
}

TEST_F(StoreBusTest, AServerThatStartsDoesNotReplayHistory) {
  auto bus1 = Open(*store1_, "s1", clock_);
  ASSERT_TRUE(bus1->Post("changed", "", "before").has_value());
  auto bus2 = Open(*store2_, "s2", clock_);
  Recorder on2;
  on2.Listen(*bus2, "changed");
  ASSERT_TRUE(bus1->Post("changed", "", "after").has_value());
  ASSERT_TRUE(bus2->RunOnce().has_value());
  EXPECT_EQ(on2.got(), (std::vector<std::string>{"s1:changed::after"}));
}

// The store is down for a while, and again in the middle of a turn: nothing is skipped or
// handed on twice, and the reads resume from where they stopped.
TEST_F(StoreBusTest, ReadErrorsAreRetriedFromTheSameCursorAndSkipNothing) {
  FaultyStore faulty(*store2_);
  StoreBusOptions options = Manual();
  options.batch = 2;
  auto bus1 = Open(*store1_, "s1", clock_);
  auto bus2 = Open(faulty, "s2", clock_, options);
  Recorder on2;
  on2.Listen(*bus2, "changed");
  bool failed_once = false;
  bus2->Subscribe("changed", [&](const ClusterMessage& m) {
    if (m.payload == "1" && !failed_once) {
      failed_once = true;
      faulty.FailNext(StoreOp::kReadClusterMessages, 1);  // the next page's read fails
    }
  });
  std::vector<std::string> want;
  for (int i = 0; i < 7; ++i) {
    ASSERT_TRUE(bus1->Post("changed", "", std::to_string(i)).has_value());
    want.push_back("s1:changed::" + std::to_string(i));
  }
  faulty.FailAlways(StoreOp::kReadClusterMessages);  // the database is away
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE(bus2->RunOnce().has_value());
  }
  EXPECT_TRUE(on2.got().empty());
  faulty.Heal(StoreOp::kReadClusterMessages);
  EXPECT_FALSE(bus2->RunOnce().has_value());  // fails after the first page
  EXPECT_EQ(on2.got(), (std::vector<std::string>{want[0], want[1]}));
  ASSERT_TRUE(bus2->RunOnce().has_value());
  EXPECT_EQ(on2.got(), want);
  EXPECT_EQ(faulty.failed(StoreOp::kReadClusterMessages), 4);
}

TEST_F(StoreBusTest, AFailedPostIsAnErrorAndReachesNobody) {
  FaultyStore faulty(*store1_);
  auto bus1 = Open(faulty, "s1", clock_);
  auto bus2 = Open(*store2_, "s2", clock_);
  Recorder on2;
  on2.Listen(*bus2, "changed");
  faulty.FailNext(StoreOp::kAppendClusterMessage, 1);
  Status lost = bus1->Post("changed", "", "lost");
  ASSERT_FALSE(lost.has_value());
  EXPECT_EQ(lost.error().code, ErrorCode::kUnavailable);
  ASSERT_TRUE(bus1->Post("changed", "", "kept").has_value());
  ASSERT_TRUE(bus2->RunOnce().has_value());
  EXPECT_EQ(on2.got(), (std::vector<std::string>{"s1:changed::kept"}));
}

// PostSoon (a burst of alarm transitions, the events for the dashboards): nothing is written
// until the bus's turn, then everything queued in one batch, in order with Post.
TEST_F(StoreBusTest, PostSoonIsWrittenAtTheNextTurnInOrderWithPost) {
  auto bus1 = Open(*store1_, "s1", clock_);
  auto bus2 = Open(*store2_, "s2", clock_);
  Recorder on2;
  on2.Listen(*bus2, "alarm_transition");
  for (int i = 0; i < 1200; ++i) {
    bus1->PostSoon("alarm_transition", "web-" + std::to_string(i), std::to_string(i));
  }
  EXPECT_EQ(bus1->queued(), 1200u);
  ASSERT_TRUE(bus2->RunOnce().has_value());
  EXPECT_TRUE(on2.got().empty());  // not written yet
  // A Post writes what was queued before it first: this server's messages keep their order.
  ASSERT_TRUE(bus1->Post("alarm_transition", "last", "post").has_value());
  EXPECT_EQ(bus1->queued(), 0u);
  bus1->PostSoon("alarm_transition", "after", "soon");
  ASSERT_TRUE(bus1->RunOnce().has_value());
  EXPECT_EQ(bus1->queued(), 0u);
  ASSERT_TRUE(bus2->RunOnce().has_value());
  std::vector<std::string> got = on2.got();
  ASSERT_EQ(got.size(), 1202u);
  for (int i = 0; i < 1200; ++i) {
    ASSERT_EQ(got[i], "s1:alarm_transition:web-" + std::to_string(i) + ":" + std::to_string(i));
  }
  EXPECT_EQ(got[1200], "s1:alarm_transition:last:post");
  EXPECT_EQ(got[1201], "s1:alarm_transition:after:soon");
}

TEST_F(StoreBusTest, PostSoonKeepsItsQueueWhileTheStoreIsDownAndDropsTheOldestPastTheCap) {
  FaultyStore faulty(*store1_);
  StoreBusOptions options = Manual();
  options.max_queued = 3;
  auto bus1 = Open(faulty, "s1", clock_, options);
  auto bus2 = Open(*store2_, "s2", clock_);
  Recorder on2;
  on2.Listen(*bus2, "event");
  bus1->PostSoon("event", "", "1");
  bus1->PostSoon("event", "", "2");
  faulty.FailNext(StoreOp::kAppendClusterMessage, 2);
  (void)bus1->RunOnce();  // the write fails: kept
  EXPECT_EQ(bus1->queued(), 2u);
  // A Post while the store is down fails, and what was queued stays queued.
  EXPECT_FALSE(bus1->Post("event", "", "lost").has_value());
  EXPECT_EQ(bus1->queued(), 2u);
  bus1->PostSoon("event", "", "3");
  bus1->PostSoon("event", "", "4");  // past the cap of 3: "1" goes
  EXPECT_EQ(bus1->queued(), 3u);
  EXPECT_EQ(bus1->dropped(), 1u);
  ASSERT_TRUE(bus1->RunOnce().has_value());
  ASSERT_TRUE(bus2->RunOnce().has_value());
  EXPECT_EQ(on2.got(), (std::vector<std::string>{"s1:event::2", "s1:event::3", "s1:event::4"}));
}

TEST_F(StoreBusTest, StopWritesWhatIsStillQueued) {
  auto bus1 = Open(*store1_, "s1", clock_);
  auto bus2 = Open(*store2_, "s2", clock_);
  Recorder on2;
  on2.Listen(*bus2, "event");
  bus1->PostSoon("event", "", "queued at stop");
  bus1->Stop();
  ASSERT_TRUE(bus2->RunOnce().has_value());
  EXPECT_EQ(on2.got(), (std::vector<std::string>{"s1:event::queued at stop"}));
}

TEST_F(StoreBusTest, OpeningNeedsTheStoreAndAnId) {
  FaultyStore faulty(*store1_);
  faulty.FailNext(StoreOp::kLastClusterMessageId, 1);
  EXPECT_FALSE(OpenStoreBus(faulty, "s1", clock_, Manual()).has_value());
  EXPECT_FALSE(OpenStoreBus(*store1_, "", clock_, Manual()).has_value());
}

TEST_F(StoreBusTest, MessagesOlderThanKeepArePruned) {
  StoreBusOptions options = Manual();
  options.keep = Millis(600'000);
  auto bus1 = Open(*store1_, "s1", clock_, options);
  ASSERT_TRUE(bus1->Post("changed", "", "old").has_value());
  clock_.Advance(Millis(601'000));
  ASSERT_TRUE(bus1->Post("changed", "", "new").has_value());
  ASSERT_TRUE(bus1->RunOnce().has_value());  // the first turn prunes
  auto left = data_.ReadClusterMessages(0, 10);
  ASSERT_TRUE(left.has_value());
  ASSERT_EQ(left->size(), 1u);
  EXPECT_EQ((*left)[0].payload, "new");
  // A server that opens now still starts after the newest message.
  auto bus2 = Open(*store2_, "s2", clock_, options);
  EXPECT_EQ(bus2->cursor(), (*left)[0].id);
}

// The real thread: posts from a busy poster arrive in order, within bounded waits.
TEST_F(StoreBusTest, TheReadingThreadDeliversWhilePostsGoOn) {
  StoreBusOptions options;
  options.poll = Millis(5);
  options.batch = 3;
  SystemClock clock;
  auto bus1 = Open(*store1_, "s1", clock);
  auto bus2 = OpenStoreBus(*store2_, "s2", clock, options);
  ASSERT_TRUE(bus2.has_value());
  Recorder on2;
  on2.Listen(**bus2, "changed");
  constexpr int kCount = 200;
  std::thread poster([&] {
    for (int i = 0; i < kCount; ++i) {
      EXPECT_TRUE(bus1->Post("changed", "", std::to_string(i)).has_value());
      if (i % 50 == 0) {
        (*bus2)->Wake();
      }
    }
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (on2.got().size() < static_cast<size_t>(kCount) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  poster.join();
  (*bus2)->Stop();
  const std::vector<std::string> got = on2.got();
  ASSERT_EQ(got.size(), static_cast<size_t>(kCount));
  for (int i = 0; i < kCount; ++i) {
    EXPECT_EQ(got[i], "s1:changed::" + std::to_string(i));
  }
}

// Two connections to one SQLite file are two servers on one database.
TEST(StoreBusSqliteTest, TwoHandlesOnOneFileAreOneCluster) {
  test::TempDir dir;
  auto a = OpenSqliteStore(dir.File("medic.db"));
  auto b = OpenSqliteStore(dir.File("medic.db"));
  ASSERT_TRUE(a.has_value() && b.has_value());
  ManualClock clock;
  auto bus1 = Open(**a, "s1", clock);
  auto bus2 = Open(**b, "s2", clock);
  Recorder on1, on2;
  on1.Listen(*bus1, "changed");
  on2.Listen(*bus2, "changed");
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(bus1->Post("changed", "", "a" + std::to_string(i)).has_value());
    ASSERT_TRUE(bus2->Post("changed", "", "b" + std::to_string(i)).has_value());
  }
  ASSERT_TRUE(bus1->RunOnce().has_value());
  ASSERT_TRUE(bus2->RunOnce().has_value());
  EXPECT_EQ(on2.got(),
            (std::vector<std::string>{"s1:changed::a0", "s1:changed::a1", "s1:changed::a2",
                                      "s1:changed::a3", "s1:changed::a4"}));
  EXPECT_EQ(on1.got(),
            (std::vector<std::string>{"s2:changed::b0", "s2:changed::b1", "s2:changed::b2",
                                      "s2:changed::b3", "s2:changed::b4"}));
}

}  // namespace
}  // namespace medic::server
