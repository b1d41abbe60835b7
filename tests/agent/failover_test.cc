// The agent with several server URLs (issue 15, part C): which outcomes move it to the next
// server (ShouldFailOver), the sticky order (ServerList), ServerApi's one round per call, the
// reporter's buffer across a failover, and the whole Agent moving its reports, registration,
// long poll and results together. Fake servers only (unit).

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "agent/agent.h"
#include "agent/reporter.h"
#include "agent/server_api.h"
#include "tests/agent/fakes.h"
#include "tests/fakes/command_signing.h"
#include "tests/fakes/http_server.h"
#include "transport/plain_http_client.h"

namespace medic::agent {
namespace {

using testing::FakeCommandRunner;
using testing::FakeProcFs;
using testing::FakeServer;
using testing::FakeServiceManager;
using testing::Fixture;
using testing::JsonResponse;

// How a fake server answers: down (no connection at all) or with this HTTP status.
struct Behaviour {
  std::atomic<bool> up{true};
  std::atomic<int> status{200};
};

// Two servers, http://a and http://b, behind one FakeServer (one recording of every request).
struct TwoServers {
  FakeServer fake;
  Behaviour a, b;
  std::function<Result<HttpResponse>(const HttpRequest&)> on_poll;  // set before use

  TwoServers() {
    fake.SetHandler([this](const HttpRequest& req) -> Result<HttpResponse> {
      Behaviour& s = req.url.rfind("http://a/", 0) == 0 ? a : b;
      if (!s.up) {
        return Unavailable(req.method + " " + req.url + ": connection refused");
      }
      if (s.status != 200) {
        return JsonResponse(s.status, R"({"error":"scripted"})");
      }
      if (req.url.find("/agent/v1/commands") != std::string::npos && on_poll) {
        return on_poll(req);
      }
      if (req.url.find("/agent/v1/register") != std::string::npos) {
        return JsonResponse(200, R"({"interval_ms":1000})");
      }
      return JsonResponse(200, "{}");
    });
  }
  // Requests to server `base` ("http://a") whose path contains `part`.
  std::vector<HttpRequest> To(const std::string& base, const std::string& part) const {
    std::vector<HttpRequest> out;
    for (const auto& r : fake.requests()) {
      if (r.url.rfind(base + "/", 0) == 0 && r.url.find(part) != std::string::npos) {
        out.push_back(r);
      }
    }
    return out;
  }
  size_t Count(const std::string& base) const { return To(base, "/").size(); }
};

TEST(ShouldFailOver, NoAnswerAnd5xxMoveOtherAnswersDoNot) {
  struct Case {
    std::string_view name;
    Result<HttpResponse> outcome;
    bool want;
  };
  const Case cases[] = {
      {"connection refused", Unavailable("POST http://a/x: connection refused"), true},
      {"timeout", DeadlineExceeded("POST http://a/x: timed out"), true},
      {"tls failure", Unavailable("POST https://a/x: certificate verify failed"), true},
      {"500", JsonResponse(500, "{}"), true},
      {"502", JsonResponse(502, "{}"), true},
      {"503", JsonResponse(503, "{}"), true},
      {"200", JsonResponse(200, "{}"), false},
      {"201", JsonResponse(201, "{}"), false},
      {"204", JsonResponse(204, ""), false},
      {"400", JsonResponse(400, "{}"), false},
      {"401", JsonResponse(401, "{}"), false},
      {"403", JsonResponse(403, "{}"), false},
      {"404", JsonResponse(404, "{}"), false},
      {"409", JsonResponse(409, "{}"), false},
      {"413", JsonResponse(413, "{}"), false},
      {"429", JsonResponse(429, "{}"), false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(ShouldFailOver(c.outcome), c.want);
  }
}

TEST(ServerList, MovesInOrderWrapsAroundAndOnlyOncePerFailure) {
  ServerList list({"http://a", "http://b", "http://c"});
  int moves_heard = 0;
  list.SetMoveListener([&] { ++moves_heard; });
  EXPECT_EQ(list.Current().url, "http://a");
  EXPECT_TRUE(list.MoveFrom(0, "connection refused"));
  EXPECT_EQ(list.Current().url, "http://b");
  // Another thread's request to a failed too, after the move: no second move (b is not skipped).
  EXPECT_FALSE(list.MoveFrom(0, "connection refused"));
  EXPECT_EQ(list.Current().url, "http://b");
  // Answers keep it where it is (sticky).
  list.Answered(1);
  EXPECT_EQ(list.Current().url, "http://b");
  EXPECT_TRUE(list.MoveFrom(1, "HTTP 503"));
  EXPECT_EQ(list.Current().url, "http://c");
  EXPECT_TRUE(list.MoveFrom(2, "timed out"));
  EXPECT_EQ(list.Current().url, "http://a");
  EXPECT_EQ(list.moves(), 3u);
  EXPECT_EQ(moves_heard, 3);
}

TEST(ServerList, OneUrlNeverMoves) {
  ServerList list({"http://a"});
  EXPECT_FALSE(list.MoveFrom(0, "connection refused"));
  EXPECT_EQ(list.Current().url, "http://a");
  EXPECT_EQ(list.moves(), 0u);
}

protocol::Report OneSampleReport(double seq) {
  protocol::Report r;
  r.host = "web-1";
  protocol::MetricSample s;
  s.t = WallTime(std::chrono::seconds(1'700'000'000) + std::chrono::seconds(static_cast<int>(seq)));
  s.metrics = {{"seq", seq}};
  r.samples.push_back(s);
  return r;
}

TEST(ServerApiFailover, ARefusedServerIsLeftForTheNextWithinTheSameCallAndStaysLeft) {
  TwoServers s;
  auto http = s.fake.NewClient();
  ServerApi api(std::vector<std::string>{"http://a", "http://b"}, "cred");
  ASSERT_TRUE(api.SendReport(*http, OneSampleReport(1)).has_value());
  EXPECT_EQ(s.To("http://a", "/report").size(), 1u);

  s.a.up = false;
  ASSERT_TRUE(api.SendReport(*http, OneSampleReport(2)).has_value());
  EXPECT_EQ(s.To("http://a", "/report").size(), 2u);  // tried a once, then b
  ASSERT_EQ(s.To("http://b", "/report").size(), 1u);
  EXPECT_EQ(s.To("http://b", "/report")[0].headers.front().second, "Bearer cred");

  // a is back: the agent does not flap back; it stays on b while b answers.
  s.a.up = true;
  const size_t a_before = s.Count("http://a");
  ASSERT_TRUE(api.SendReport(*http, OneSampleReport(3)).has_value());
  ASSERT_TRUE(api.Register(*http, protocol::RegisterRequest{"web-1", "h", "0.1.0", {}, false})
                  .has_value());
  EXPECT_EQ(s.Count("http://a"), a_before);
  EXPECT_EQ(s.To("http://b", "/report").size(), 2u);
  EXPECT_EQ(api.servers().Current().url, "http://b");

  // b answers 503 (stopping, overloaded): back to a, in the same call.
  s.b.status = 503;
  ASSERT_TRUE(api.SendReport(*http, OneSampleReport(4)).has_value());
  EXPECT_EQ(s.To("http://a", "/report").size(), 3u);
  EXPECT_EQ(api.servers().Current().url, "http://a");
}

TEST(ServerApiFailover, A4xxIsAnAnswerAndDoesNotMove) {
  for (int status : {400, 401, 403, 404, 409, 422}) {
    SCOPED_TRACE(status);
    TwoServers s;
    auto http = s.fake.NewClient();
    ServerApi api(std::vector<std::string>{"http://a", "http://b"}, "cred");
    s.a.status = status;
    const Status sent = api.SendReport(*http, OneSampleReport(1));
    ASSERT_FALSE(sent.has_value());
    EXPECT_EQ(s.Count("http://b"), 0u);
    EXPECT_EQ(api.servers().Current().url, "http://a");
    EXPECT_EQ(api.servers().moves(), 0u);
  }
}

TEST(ServerApiFailover, WhenNoServerAnswersACallTriesEachOnceAndFails) {
  TwoServers s;
  auto http = s.fake.NewClient();
  ServerApi api(std::vector<std::string>{"http://a", "http://b"}, "cred");
  s.a.up = false;
  s.b.up = false;
  const Status sent = api.SendReport(*http, OneSampleReport(1));
  ASSERT_FALSE(sent.has_value());
  EXPECT_EQ(sent.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(s.Count("http://a"), 1u);
  EXPECT_EQ(s.Count("http://b"), 1u);
  // The next round starts where the last one ended (a again), with the caller's backoff between.
  ASSERT_FALSE(api.PostResult(*http, protocol::CommandResult{}).has_value());
  EXPECT_EQ(s.Count("http://a"), 2u);
  EXPECT_EQ(s.Count("http://b"), 2u);
}

TEST(ServerApiFailover, AnArchiveUploadStaysOnTheServerThatIssuedItsId) {
  TwoServers s;
  auto http = s.fake.NewClient();
  ServerApi api(std::vector<std::string>{"http://a", "http://b"}, "cred");
  s.a.up = false;
  ASSERT_FALSE(api.AppendArchive(*http, "0123abcd", 0, "bytes").has_value());
  ASSERT_FALSE(api.FinishArchive(*http, "0123abcd", std::string(64, 'a'), 5).has_value());
  EXPECT_EQ(s.To("http://b", "/archive").size(), 1u);  // the finish, after the append moved
  EXPECT_EQ(s.To("http://a", "/archive").size(), 1u);
  // Starting a new upload moves on like every other call.
  s.a.up = true;
  s.b.up = false;
  EXPECT_FALSE(api.StartArchive(*http, "web-1", "/var/log/x", 5).has_value());  // "{}" has no id
  EXPECT_EQ(s.To("http://a", "/archive").size(), 2u);
}

// The same over real loopback connections and the agent's own HTTP client: a refused
// connection, a connection closed without an answer and a 503 move on; a 401 does not.
TEST(ServerApiFailover, RealConnectionsRefusedClosedAnd503MoveA401DoesNot) {
  std::string dead_url;
  {
    test::FakeHttpServer gone;
    ASSERT_TRUE(gone.listening());
    dead_url = gone.url();
  }  // stopped: its port refuses connections
  std::atomic<int> a_status{200};
  std::atomic<bool> b_hangs_up{false};
  test::FakeHttpServer a([&](const test::RecordedRequest&) {
    return test::CannedReply{.status = a_status.load(), .body = "{}"};
  });
  test::FakeHttpServer b([&](const test::RecordedRequest&) {
    if (b_hangs_up) {
      return test::CannedReply{.raw = std::string(), .then = test::CannedReply::Then::kClose};
    }
    return test::CannedReply{.status = 200, .body = "{}"};
  });
  ASSERT_TRUE(a.listening() && b.listening());
  auto http = NewPlainHttpClient();
  ServerApi api(std::vector<std::string>{dead_url, a.url(), b.url()}, "cred");

  ASSERT_TRUE(api.SendReport(*http, OneSampleReport(1)).has_value());  // refused, then a
  EXPECT_EQ(api.servers().Current().url, a.url());
  EXPECT_EQ(a.requests().size(), 1u);

  a_status = 401;
  const Status refused = api.SendReport(*http, OneSampleReport(2));
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kUnauthenticated);
  EXPECT_EQ(api.servers().Current().url, a.url());
  EXPECT_TRUE(b.requests().empty());

  a_status = 503;
  ASSERT_TRUE(api.SendReport(*http, OneSampleReport(3)).has_value());  // 503, then b
  EXPECT_EQ(api.servers().Current().url, b.url());
  EXPECT_EQ(b.requests().size(), 1u);

  // b takes the request and closes the connection unanswered: on to the dead one (refused),
  // around to a, which answers again.
  b_hangs_up = true;
  a_status = 200;
  ASSERT_TRUE(api.SendReport(*http, OneSampleReport(4)).has_value());
  EXPECT_EQ(api.servers().Current().url, a.url());
  // (The client itself tries once more on a fresh connection when a kept-alive one closes.)
  EXPECT_GE(b.requests().size(), 2u);
  EXPECT_LE(b.requests().size(), 3u);
  EXPECT_EQ(a.requests().size(), 4u);
  auto last = protocol::ReportFromJson(*ParseJsonObject(a.requests().back().body));
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->samples.at(0).metrics.at("seq"), 4.0);
}

// Each sample carries a sequence number, so order, loss and repeats are visible.
class CountingMetrics : public host::MetricsSource {
 public:
  host::Metrics Collect() override { return {{"seq", static_cast<double>(++n_)}}; }

 private:
  int n_ = 0;
};

std::vector<double> Seqs(const std::vector<HttpRequest>& reports) {
  std::vector<double> out;
  for (const auto& r : reports) {
    auto rep = protocol::ReportFromJson(*ParseJsonObject(r.body));
    EXPECT_TRUE(rep.has_value());
    for (const auto& sample : rep->samples) {
      out.push_back(sample.metrics.at("seq"));
    }
  }
  return out;
}

// The reporter's buffer across a failover, step by step on a manual clock: samples taken while
// no server answered reach the new server, in order, after it registered there.
struct FailoverHarness {
  FailoverHarness()
      : api(std::vector<std::string>{"http://a", "http://b"}, "tok"),
        registration(api, protocol::RegisterRequest{"web-1", "h", "0.1.0", {}, false},
                     Millis(100), Millis(5000)),
        reporter(ReporterOptions{"web-1", Millis(1000), 600, 300}, api, registration, metrics,
                 checks, clock) {
    // As the Agent does (agent.cc): a move means registering with the new server.
    api.servers().SetMoveListener([this] { registration.RegisterAgain(); });
  }
  // Runs the reporter at every time it asks for until `limit` of clock time has passed.
  void RunFor(Millis limit) {
    const SteadyTime end = clock.SteadyNow() + limit;
    for (int i = 0; i < 1000 && clock.SteadyNow() < end; ++i) {
      const SteadyTime next = reporter.RunOnce(*http, clock.SteadyNow());
      if (next > clock.SteadyNow()) {
        clock.Advance(std::min(next, end) - clock.SteadyNow());
      }
    }
  }

  ManualClock clock;
  TwoServers servers;
  std::unique_ptr<HttpClient> http = servers.fake.NewClient();
  ServerApi api;
  Registration registration;
  CountingMetrics metrics;
  CheckStates checks;
  Reporter reporter;
};

TEST(ReporterFailover, SamplesTakenWhileNoServerAnsweredReachTheNextServerInOrder) {
  FailoverHarness h;
  h.RunFor(Millis(2500));  // samples 1..3 to a
  EXPECT_EQ(Seqs(h.servers.To("http://a", "/report")), (std::vector<double>{1, 2, 3}));
  EXPECT_EQ(h.servers.To("http://b", "/").size(), 0u);

  h.servers.a.up = false;
  h.servers.b.up = false;
  h.RunFor(Millis(20'000));  // samples 4..23 wait in the buffer
  EXPECT_EQ(h.reporter.buffered(), 20u);  // none taken by anyone, none dropped

  const size_t refused_by_b = h.servers.To("http://b", "/agent/v1/").size();
  h.servers.b.up = true;
  h.RunFor(Millis(6'000));  // the send backoff is capped at 5 s
  EXPECT_EQ(h.reporter.buffered(), 0u);
  EXPECT_EQ(h.reporter.dropped(), 0u);
  // What b answered: a registration first, then the samples.
  const auto to_b = h.servers.To("http://b", "/agent/v1/");
  ASSERT_GT(to_b.size(), refused_by_b);
  EXPECT_NE(to_b[refused_by_b].url.find("/register"), std::string::npos)
      << to_b[refused_by_b].url;
  // Everything a did not get, b got: 4, 5, ... in order, none twice, no hole.
  std::vector<HttpRequest> accepted_by_b(to_b.begin() + static_cast<long>(refused_by_b),
                                         to_b.end());
  std::erase_if(accepted_by_b,
                [](const HttpRequest& r) { return r.url.find("/report") == std::string::npos; });
  const std::vector<double> b_seqs = Seqs(accepted_by_b);
  ASSERT_GE(b_seqs.size(), 21u);
  for (size_t i = 0; i < b_seqs.size(); ++i) {
    EXPECT_EQ(b_seqs[i], 4.0 + static_cast<double>(i)) << "at " << i;
  }
  // And it stays on b.
  EXPECT_EQ(h.api.servers().Current().url, "http://b");
}

TEST(ReporterFailover, AReportWhoseAnswerWasLostIsSentAgainToTheNextServer) {
  FailoverHarness h;
  h.RunFor(Millis(500));  // sample 1 to a
  // a stores the next report but the connection resets before its answer: at least once.
  std::atomic<int> lost{0};
  h.servers.fake.SetHandler([&lost](const HttpRequest& req) -> Result<HttpResponse> {
    const bool to_a = req.url.rfind("http://a/", 0) == 0;
    if (to_a && req.url.find("/report") != std::string::npos) {
      ++lost;
      return Unavailable(req.url + ": connection reset by peer");
    }
    if (req.url.find("/register") != std::string::npos) {
      return JsonResponse(200, R"({"interval_ms":1000})");
    }
    return JsonResponse(200, "{}");
  });
  h.RunFor(Millis(1000));  // sample 2: a (lost answer), then b
  EXPECT_EQ(lost.load(), 1);
  EXPECT_EQ(Seqs(h.servers.To("http://a", "/report")), (std::vector<double>{1, 2}));
  EXPECT_EQ(Seqs(h.servers.To("http://b", "/report")), (std::vector<double>{2}));
  EXPECT_EQ(h.reporter.buffered(), 0u);
}

// The whole Agent, threads running: when a stops answering, the reports, the registration, the
// long poll and the command results all go to b; a back does not pull the agent back; a 503 from
// b sends it to a again.
TEST(AgentFailover, ReportsPollAndResultsMoveTogetherAndStay) {
  SystemClock clock;
  FakeProcFs procfs;
  procfs.SetFile("meminfo", Fixture("meminfo.txt"));
  procfs.SetFile("loadavg", Fixture("loadavg.txt"));
  procfs.SetMount("/", host::FsStats{1000, 400, 300, 100, 25});
  FakeCommandRunner runner;
  FakeServiceManager services;
  TwoServers s;
  std::atomic<bool> command_sent{false};
  s.on_poll = [&](const HttpRequest& req) -> Result<HttpResponse> {
    if (req.url.rfind("http://b/", 0) == 0 && !command_sent.exchange(true)) {
      protocol::Command c;
      c.id = "restart-on-b";
      c.action = "service.restart";
      c.params = {{"service", "nginx"}};
      c.expires_at = clock.Now() + std::chrono::seconds(60);
      return JsonResponse(200, DumpJson(protocol::ToJson(
                                   protocol::CommandBatch{{test::SignedFor("web-1", c)}})));
    }
    std::this_thread::sleep_for(Millis(20));  // a short "long poll"
    return JsonResponse(200, R"({"commands":[]})");
  };

  AgentConfig config;
  config.server = "http://a";
  config.servers = {"http://a", "http://b"};
  config.name = "web-1";
  config.interval = Millis(50);
  ServiceConfig nginx;
  nginx.name = "nginx";
  nginx.start = {"/usr/sbin/nginx"};
  config.services = {nginx};

  Agent agent(config, "tok",
              AgentDeps{clock, procfs, runner, services, [&] { return s.fake.NewClient(); }, {},
                        nullptr, test::TestCommandKey()},
              AgentTuning{.poll_wait = Millis(50)});
  agent.Start();

  auto wait_until = [](auto pred) {
    const auto deadline = std::chrono::steady_clock::now() + Millis(10'000);
    while (!pred()) {
      if (std::chrono::steady_clock::now() > deadline) {
        return false;
      }
      std::this_thread::sleep_for(Millis(5));
    }
    return true;
  };
  ASSERT_TRUE(wait_until([&] { return s.To("http://a", "/report").size() >= 2; }));
  EXPECT_EQ(s.Count("http://b"), 0u);  // sticky on the first while it answers

  s.a.up = false;
  // b: registered with, polled, the command it handed out ran here and its result went to b.
  // (The reporter registers; the poller's own request moved on already, so its poll may come
  // first: with one store the host is known to every server.)
  ASSERT_TRUE(wait_until([&] { return !s.To("http://b", "/agent/v1/results").empty(); }));
  ASSERT_TRUE(wait_until([&] { return !s.To("http://b", "/agent/v1/register").empty(); }));
  EXPECT_EQ(services.calls(), std::vector<std::string>{"restart nginx"});
  auto result = protocol::CommandResultFromJson(
      *ParseJsonObject(s.To("http://b", "/agent/v1/results")[0].body));
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->id, "restart-on-b");
  ASSERT_TRUE(wait_until([&] { return s.To("http://b", "/report").size() >= 2; }));

  // a answers again: the agent stays on b (twenty more reports, nothing to a).
  s.a.up = true;
  const size_t a_before = s.Count("http://a");
  const size_t b_reports = s.To("http://b", "/report").size();
  ASSERT_TRUE(wait_until([&] { return s.To("http://b", "/report").size() >= b_reports + 20; }));
  EXPECT_EQ(s.Count("http://a"), a_before);

  // b answers 503: everything goes back to a, registration first.
  const size_t a_registers = s.To("http://a", "/register").size();
  const size_t a_polls = s.To("http://a", "/commands").size();
  const size_t a_reports = s.To("http://a", "/report").size();
  s.b.status = 503;
  ASSERT_TRUE(wait_until([&] {
    return s.To("http://a", "/register").size() > a_registers &&
           s.To("http://a", "/commands").size() > a_polls &&
           s.To("http://a", "/report").size() > a_reports + 2;
  }));
  EXPECT_TRUE(agent.Stop());
}

}  // namespace
}  // namespace medic::agent
