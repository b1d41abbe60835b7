#include "agent/reporter.h"

#include <gtest/gtest.h>

#include "tests/agent/fakes.h"

namespace medic::agent {
namespace {

using testing::FakeServer;
using testing::JsonResponse;

// Each sample carries a sequence number, so order and loss are visible.
class CountingMetrics : public host::MetricsSource {
 public:
  host::Metrics Collect() override { return {{"seq", static_cast<double>(++n_)}}; }

 private:
  int n_ = 0;
};

// A scriptable server: register and report answers are switched by the test.
struct ScriptedServer {
  FakeServer server;
  bool up = true;
  int register_status = 200;
  int report_status = 200;

  ScriptedServer() {
    server.SetHandler([this](const HttpRequest& req) -> Result<HttpResponse> {
      if (!up) {
        return Unavailable(req.url + ": Couldn't connect to server");
      }
      if (req.url.find("/agent/v1/register") != std::string::npos) {
        return JsonResponse(register_status, R"({"interval_ms":1000})");
      }
      return JsonResponse(report_status, "{}");
    });
  }
  std::vector<protocol::Report> Reports() const {
    std::vector<protocol::Report> out;
    for (const auto& r : server.RequestsTo("/agent/v1/report")) {
      auto j = ParseJsonObject(r.body);
      auto rep = protocol::ReportFromJson(*j);
      EXPECT_TRUE(rep.has_value());
      out.push_back(*rep);
    }
    return out;
  }
  // Reports the server accepted (sent while up with 200) — every report request here.
  std::vector<double> DeliveredSeqs(size_t from_report = 0) const {
    std::vector<double> seqs;
    auto reports = Reports();
    for (size_t i = from_report; i < reports.size(); ++i) {
      for (const auto& s : reports[i].samples) {
        seqs.push_back(s.metrics.at("seq"));
      }
    }
    return seqs;
  }
};

struct Harness {
  explicit Harness(size_t buffer = 600, size_t batch = 300)
      : api("http://server:8080", "tok"),
        registration(api, protocol::RegisterRequest{"web-1", "h", "0.1.0", {"nginx"}, false},
                     Millis(100), Millis(5000)),
        reporter(ReporterOptions{"web-1", Millis(1000), buffer, batch}, api, registration, metrics,
                 checks, clock) {}
  SteadyTime Step() { return reporter.RunOnce(*http, clock.SteadyNow()); }
  // Steps at every time the reporter asks for, until the buffer is empty (bounded).
  void StepUntilDrained() {
    for (int i = 0; i < 100 && reporter.buffered() > 0; ++i) {
      const SteadyTime next = Step();
      if (next > clock.SteadyNow()) {
        clock.Advance(next - clock.SteadyNow());
      }
    }
  }

  ManualClock clock;
  ScriptedServer scripted;
  std::unique_ptr<HttpClient> http = scripted.server.NewClient();
  ServerApi api;
  Registration registration;
  CountingMetrics metrics;
  CheckStates checks;
  Reporter reporter;
};

TEST(Reporter, RegistersThenReportsWithTokenAndPaths) {
  Harness h;
  const SteadyTime next = h.Step();
  EXPECT_EQ(next, h.clock.SteadyNow() + Millis(1000));
  auto reqs = h.scripted.server.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].method, "POST");
  EXPECT_EQ(reqs[0].url, "http://server:8080/agent/v1/register");
  auto reg = protocol::RegisterRequestFromJson(*ParseJsonObject(reqs[0].body));
  ASSERT_TRUE(reg.has_value());
  EXPECT_EQ(reg->name, "web-1");
  EXPECT_EQ(reg->services, std::vector<std::string>{"nginx"});
  EXPECT_EQ(reqs[1].url, "http://server:8080/agent/v1/report");
  for (const auto& r : reqs) {
    bool auth = false;
    for (const auto& [k, v] : r.headers) {
      auth = auth || (k == "Authorization" && v == "Bearer tok");
    }
    EXPECT_TRUE(auth) << r.url;
  }
  auto reports = h.scripted.Reports();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].host, "web-1");
  ASSERT_EQ(reports[0].samples.size(), 1u);
  EXPECT_EQ(reports[0].samples[0].t, h.clock.Now());

  // Not due: nothing is sent.
  h.clock.Advance(Millis(500));
  h.Step();
  EXPECT_EQ(h.scripted.Reports().size(), 1u);
  h.clock.Advance(Millis(500));
  h.Step();
  EXPECT_EQ(h.scripted.DeliveredSeqs(), (std::vector<double>{1, 2}));
}

TEST(Reporter, RegistrationRetriesWithCappedBackoff) {
  Harness h;
  h.scripted.up = false;
  std::vector<Millis> gaps;
  for (int i = 0; i < 12; ++i) {
    h.Step();
    const SteadyTime next = h.registration.next_attempt();
    gaps.push_back(std::chrono::duration_cast<Millis>(next - h.clock.SteadyNow()));
    h.clock.Advance(next - h.clock.SteadyNow());
  }
  EXPECT_EQ(h.scripted.server.RequestsTo("/register").size(), 12u);
  // 100 ms base doubling, with jitter in [50 %, 100 %], never above the 5 s cap.
  EXPECT_GE(gaps[0], Millis(50));
  EXPECT_LE(gaps[0], Millis(100));
  EXPECT_GE(gaps[3], Millis(400));
  for (Millis g : gaps) {
    EXPECT_LE(g, Millis(5000));
  }
  EXPECT_GE(gaps.back(), Millis(2500));
  // Samples kept being taken meanwhile and go out once the server answers.
  h.scripted.up = true;
  h.Step();
  EXPECT_TRUE(h.registration.registered());
  EXPECT_FALSE(h.scripted.DeliveredSeqs().empty());
}

TEST(Reporter, BuffersWhileServerIsAwayAndReplaysInOrder) {
  Harness h;
  h.Step();  // registered, sample 1 delivered
  h.scripted.up = false;
  for (int i = 0; i < 5; ++i) {
    h.clock.Advance(Millis(1000));
    h.Step();
  }
  EXPECT_EQ(h.reporter.buffered(), 5u);
  // While it is away, sends back off (5 attempts at most in 5 intervals, not one per sample).
  EXPECT_LE(h.scripted.server.RequestsTo("/report").size(), 1u + 5u);
  h.scripted.up = true;
  const size_t before = h.scripted.Reports().size();
  h.StepUntilDrained();
  EXPECT_EQ(h.reporter.buffered(), 0u);
  EXPECT_EQ(h.reporter.dropped(), 0u);
  // What reached the server after its return: in order, nothing lost, nothing twice.
  const auto delivered = h.scripted.DeliveredSeqs(before);
  ASSERT_GE(delivered.size(), 5u);
  for (size_t i = 0; i < delivered.size(); ++i) {
    EXPECT_EQ(delivered[i], 2 + static_cast<double>(i));
  }
  const auto last = h.scripted.Reports().back();
  for (size_t i = 1; i < last.samples.size(); ++i) {
    EXPECT_LT(last.samples[i - 1].t, last.samples[i].t);
  }
}

TEST(Reporter, BoundedBufferDropsOldestAndCountsDrops) {
  Harness h(/*buffer=*/3);
  h.Step();
  h.scripted.up = false;
  for (int i = 0; i < 5; ++i) {
    h.clock.Advance(Millis(1000));
    h.Step();
  }
  EXPECT_EQ(h.reporter.buffered(), 3u);
  EXPECT_EQ(h.reporter.dropped(), 2u);
  h.scripted.up = true;
  const size_t before = h.scripted.Reports().size();
  h.StepUntilDrained();  // (the send backoff may let another sample in first)
  auto reports = h.scripted.Reports();
  ASSERT_EQ(reports.size(), before + 1);
  const auto& last = reports.back();
  ASSERT_EQ(last.samples.size(), 3u);
  // Sample 1 went out before the outage; of 2..N only the newest three survived.
  const double n = last.samples[2].metrics.at("seq");
  EXPECT_GE(n, 7);
  EXPECT_EQ(last.samples[0].metrics.at("seq"), n - 2);
  EXPECT_EQ(last.samples[1].metrics.at("seq"), n - 1);
  EXPECT_EQ(last.samples[2].metrics.at("agent_dropped_samples"), n - 4);
  EXPECT_EQ(static_cast<double>(h.reporter.dropped()), n - 4);
}

TEST(Reporter, CatchUpIsSentInBatches) {
  Harness h(/*buffer=*/20, /*batch=*/8);
  h.Step();
  h.scripted.up = false;
  for (int i = 0; i < 30; ++i) {
    h.clock.Advance(Millis(1000));
    h.Step();
  }
  EXPECT_EQ(h.reporter.buffered(), 20u);
  h.scripted.up = true;
  const size_t before = h.scripted.Reports().size();
  h.StepUntilDrained();
  EXPECT_EQ(h.reporter.buffered(), 0u);
  const auto seqs = h.scripted.DeliveredSeqs(before);
  ASSERT_GE(seqs.size(), 20u);
  for (size_t i = 1; i < seqs.size(); ++i) {
    EXPECT_EQ(seqs[i], seqs[i - 1] + 1);
  }
  for (const auto& r : h.scripted.Reports()) {
    EXPECT_LE(r.samples.size(), 8u);
  }
}

TEST(Reporter, RegistersAgainAfter404Or401) {
  for (int status : {404, 401}) {
    SCOPED_TRACE(status);
    Harness h;
    h.Step();
    EXPECT_EQ(h.scripted.server.RequestsTo("/register").size(), 1u);
    h.scripted.report_status = status;  // the server restarted and forgot us
    h.clock.Advance(Millis(1000));
    const SteadyTime next = h.Step();
    EXPECT_FALSE(h.registration.registered());
    EXPECT_EQ(next, h.clock.SteadyNow());  // register again at once
    h.scripted.report_status = 200;
    h.Step();
    EXPECT_TRUE(h.registration.registered());
    EXPECT_EQ(h.scripted.server.RequestsTo("/register").size(), 2u);
    EXPECT_EQ(h.reporter.buffered(), 0u);  // the kept sample went out after registering
  }
}

TEST(Reporter, CheckChangeIsReportedAtOnce) {
  Harness h;
  h.Step();
  h.clock.Advance(Millis(100));  // well before the next interval
  h.checks.Update({"web", false, "connection refused", h.clock.Now()});
  h.reporter.RequestReport();
  h.Step();
  auto reports = h.scripted.Reports();
  ASSERT_EQ(reports.size(), 2u);
  ASSERT_EQ(reports[1].checks.size(), 1u);  // the transition, which is the current state
  EXPECT_FALSE(reports[1].checks[0].healthy);
  EXPECT_EQ(reports[1].checks[0].detail, "connection refused");
  EXPECT_EQ(reports[1].samples.size(), 1u);  // a fresh sample rides along
  EXPECT_FALSE(h.checks.has_pending());
}

// The times (steady, from the harness's clock) at which each report request was made.
struct SendTimes {
  std::vector<SteadyTime> times;
};

// A value hovering around its threshold (the fast watch asks for a report every 10 ms for 2 s):
// no two reports closer together than fast_min_gap, yet the crossings are reported every gap.
TEST(Reporter, FastReportsKeepTheMinimumGapWhileAValueHovers) {
  Harness h;
  SendTimes sent;
  h.scripted.server.SetHandler([&](const HttpRequest& req) -> Result<HttpResponse> {
    if (req.url.find("/agent/v1/register") != std::string::npos) {
      return JsonResponse(200, R"({"interval_ms":1000})");
    }
    sent.times.push_back(h.clock.SteadyNow());
    return JsonResponse(200, "{}");
  });
  const SteadyTime t0 = h.clock.SteadyNow();
  SteadyTime next = h.Step();  // registers, first periodic report
  for (int i = 1; i <= 200; ++i) {
    h.clock.Advance(Millis(10));
    h.reporter.RequestFastReport();
    if (i % 37 == 0) {
      h.reporter.RequestReport();  // a health check changed too
    }
    next = h.Step();
    ASSERT_GT(next, h.clock.SteadyNow()) << "the loop would spin";
  }
  ASSERT_GE(sent.times.size(), 2000 / 200u) << "the crossings were not reported every gap";
  for (size_t i = 1; i < sent.times.size(); ++i) {
    EXPECT_GE(sent.times[i] - sent.times[i - 1], Millis(200))
        << "reports " << i - 1 << " and " << i << " at +"
        << std::chrono::duration_cast<Millis>(sent.times[i - 1] - t0).count() << " ms and +"
        << std::chrono::duration_cast<Millis>(sent.times[i] - t0).count() << " ms";
  }
  EXPECT_EQ(h.reporter.buffered(), 0u);
}

TEST(Reporter, AFastReportWithinTheGapWaitsForItsEndWithAFreshSample) {
  Harness h;
  h.Step();  // periodic report at t0
  const WallTime w0 = h.clock.Now();
  h.clock.Advance(Millis(50));
  h.reporter.RequestFastReport();
  // Too soon after the periodic report: nothing sent, the loop comes back at the gap's end.
  EXPECT_EQ(h.Step(), h.clock.SteadyNow() + Millis(150));
  EXPECT_EQ(h.scripted.Reports().size(), 1u);
  h.clock.Advance(Millis(150));
  h.Step();
  auto reports = h.scripted.Reports();
  ASSERT_EQ(reports.size(), 2u);
  ASSERT_EQ(reports[1].samples.size(), 1u);
  EXPECT_EQ(reports[1].samples[0].t, w0 + Millis(200));  // sampled when sent, not when asked

  // A periodic sample due right after a fast report is taken on time and sent at the gap's end.
  h.clock.Advance(Millis(750));  // t0 + 950
  h.reporter.RequestFastReport();
  h.Step();
  ASSERT_EQ(h.scripted.Reports().size(), 3u);
  h.clock.Advance(Millis(50));  // t0 + 1000: periodic due
  EXPECT_EQ(h.Step(), h.clock.SteadyNow() + Millis(150));
  EXPECT_EQ(h.scripted.Reports().size(), 3u);
  h.clock.Advance(Millis(150));
  h.Step();
  reports = h.scripted.Reports();
  ASSERT_EQ(reports.size(), 4u);
  ASSERT_EQ(reports[3].samples.size(), 1u);
  EXPECT_EQ(reports[3].samples[0].t, w0 + Millis(1000));
}

TEST(Reporter, WithoutFastReportsHealthChangesAreNotHeld) {
  Harness h;
  h.Step();
  h.clock.Advance(Millis(10));
  h.checks.Update({"web", false, "connection refused", h.clock.Now()});
  h.reporter.RequestReport();
  h.Step();
  EXPECT_EQ(h.scripted.Reports().size(), 2u);
}

TEST(Registration, KeepsTheThresholdsOfTheLastRegistration) {
  FakeServer server;
  std::string answer = R"({"interval_ms":1000,"watch":[)"
                       R"({"metric":"disk_used_percent","comparison":">","threshold":85},)"
                       R"({"metric":"mem_used_percent","threshold":90}]})";
  server.SetHandler([&](const HttpRequest&) -> Result<HttpResponse> {
    return JsonResponse(200, answer);
  });
  auto http = server.NewClient();
  ServerApi api("http://server:8080", "tok");
  Registration reg(api, protocol::RegisterRequest{"web-1", "h", "0.1.0", {}, false}, Millis(100),
                   Millis(5000));
  EXPECT_TRUE(reg.watch().empty());
  ASSERT_TRUE(reg.Attempt(*http, SteadyTime{}).has_value());
  EXPECT_EQ(reg.watch(), (std::vector<protocol::WatchedThreshold>{
                             {"disk_used_percent", ">", 85}, {"mem_used_percent", ">", 90}}));
  answer = R"({"interval_ms":1000})";  // an older server: no fast watch
  reg.RegisterAgain();
  ASSERT_TRUE(reg.Attempt(*http, SteadyTime{}).has_value());
  EXPECT_TRUE(reg.watch().empty());
}

TEST(Reporter, RejectedReportIsDroppedNotRetriedForever) {
  Harness h;
  h.scripted.report_status = 400;
  h.Step();
  EXPECT_EQ(h.reporter.buffered(), 0u);
  h.scripted.report_status = 200;
  h.clock.Advance(Millis(1000));
  h.Step();
  EXPECT_EQ(h.scripted.Reports().back().samples.size(), 1u);
}

TEST(BackoffDelay, DoublesWithJitterUpToCap) {
  EXPECT_EQ(BackoffDelay(0, Millis(100), Millis(5000), 0.0), Millis(50));
  EXPECT_EQ(BackoffDelay(0, Millis(100), Millis(5000), 0.999), Millis(99));
  EXPECT_EQ(BackoffDelay(3, Millis(100), Millis(5000), 0.0), Millis(400));
  EXPECT_EQ(BackoffDelay(10, Millis(100), Millis(5000), 0.0), Millis(2500));
  EXPECT_EQ(BackoffDelay(1000, Millis(100), Millis(5000), 1.0), Millis(5000));
}

// A name the server would refuse (issue 12, docs/PROTOCOL.md "Limits") is left out of the
// sample, so that one odd mount point does not get every report refused.
TEST(DropInvalidMetricNamesTest, KeepsWhatTheServerAcceptsOnly) {
  const std::string long_mount(300, 'm');
  host::Metrics m = {{"disk_used_percent", 1},
                     {"disk_used_percent{mount=\"/var/log\"}", 2},
                     {"disk_used_percent{mount=\"/mnt/tab\there\"}", 3},
                     {"disk_used_percent{mount=\"/" + long_mount + "\"}", 4}};
  const auto dropped = DropInvalidMetricNames(m);
  EXPECT_EQ(dropped.size(), 2u);
  EXPECT_EQ(m, (host::Metrics{{"disk_used_percent", 1},
                              {"disk_used_percent{mount=\"/var/log\"}", 2}}));
}

}  // namespace
}  // namespace medic::agent
