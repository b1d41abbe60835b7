// server/notify: the channels' bodies and headers, the outbox state machine (retries, backoff,
// giving up, idempotency) on a test clock, and the `notifications:` config's errors.

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <deque>
#include <map>
#include <mutex>

#include "core/files.h"
#include "core/json.h"
#include "server/app/server_app.h"
#include "server/notify/notification.h"
#include "server/notify/notifier.h"
#include "server/notify/notify_config.h"
#include "tests/fakes/faulty_store.h"
#include "tests/fakes/memory_store.h"
#include "tests/fakes/temp_dir.h"
#include "tests/server/config_errors.h"

namespace medic::server {
namespace {

using namespace std::chrono_literals;

// HMAC-SHA256 by OpenSSL directly: an independent check of medic's own (core/sha256.h).
std::string OpenSslHmacHex(const std::string& key, const std::string& data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &n);
  static const char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < n; ++i) {
    hex += kHex[out[i] >> 4];
    hex += kHex[out[i] & 15];
  }
  return hex;
}

std::string HeaderOf(const HttpRequest& req, const std::string& name) {
  for (const auto& [k, v] : req.headers) {
    if (k == name) {
      return v;
    }
  }
  return "";
}

// Records every request; answers from a queue (the last answer repeats), or a transport error.
class RecordingHttpClient : public HttpClient {
 public:
  struct Answer {
    int status = 200;
    bool transport_error = false;
  };
  explicit RecordingHttpClient(std::deque<Answer>* answers) : answers_(answers) {}
  Result<HttpResponse> Do(const HttpRequest& request) override {
    requests.push_back(request);
    Answer a = answers_->empty() ? Answer{} : answers_->front();
    if (answers_->size() > 1) {
      answers_->pop_front();
    }
    if (a.transport_error) {
      return Unavailable("connection refused");
    }
    HttpResponse r;
    r.status = a.status;
    return r;
  }
  std::vector<HttpRequest> requests;

 private:
  std::deque<Answer>* answers_;
};

Incident MakeIncident(WallTime t0) {
  Incident inc;
  inc.incident_id = "inc-42";
  inc.alarm_name = "Nginx-Down-ALB";
  inc.instance_id = "web-1";
  inc.status = IncidentStatus::kPendingApproval;
  inc.ai_suggestion = "service.restart service=nginx";
  inc.action = Json{{"name", "service.restart"}, {"params", {{"service", "nginx"}}}};
  inc.created_at = t0;
  inc.updated_at = t0;
  inc.timeline = {{"created", t0, "medic", "alarm fired"},
                  {"diagnosed", t0 + 1s, "medic", ""},
                  {"suggested", t0 + 2s, "medic", ""},
                  {"awaiting_approval", t0 + 3s, "medic", ""}};
  return inc;
}

NotificationsConfig AllChannels() {
  NotificationsConfig c;
  c.dashboard_url = "https://medic.example.com";
  ChannelConfig webhook;
  webhook.kind = ChannelKind::kWebhook;
  webhook.url = "http://127.0.0.1:9/hook";
  webhook.secret = "s3cret";
  ChannelConfig slack;
  slack.kind = ChannelKind::kSlack;
  slack.url = "http://127.0.0.1:9/slack";
  slack.buttons = true;
  ChannelConfig pd;
  pd.kind = ChannelKind::kPagerDuty;
  pd.url = "http://127.0.0.1:9/v2/enqueue";
  pd.routing_key = "R0UT1NG";
  c.channels = {webhook, slack, pd};
  return c;
}

// The one row of `event` on `kind` for `inc`.
OutboxRecord RowOf(const Incident& inc, const NotificationsConfig& c, ChannelKind kind,
                   const std::string& event) {
  for (const auto& r : OutboxRowsFor(inc, c, kind, WallTime{}, inc.updated_at)) {
    if (r.event == event) {
      return r;
    }
  }
  ADD_FAILURE() << "no " << event << " row";
  return {};
}

// --- events and rows -------------------------------------------------------------------------

TEST(NotificationTest, TimelineEntriesMapToEvents) {
  struct Case {
    std::string_view entry;
    std::optional<NotifyEvent> want;
  };
  const Case kCases[] = {
      {"created", NotifyEvent::kIncidentOpened},
      {"awaiting_approval", NotifyEvent::kApprovalNeeded},
      {"completed", NotifyEvent::kIncidentCompleted},
      {"failed", NotifyEvent::kIncidentFailed},
      {"timeout", NotifyEvent::kIncidentFailed},
      {"rejected", NotifyEvent::kIncidentFailed},
      {"breaker_open", NotifyEvent::kBreakerOpen},
      {"diagnosed", std::nullopt},
      {"approved", std::nullopt},
      {"resumed", std::nullopt},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(std::string(c.entry));
    EXPECT_EQ(NotifyEventOf(c.entry), c.want);
  }
}

TEST(NotificationTest, RowsAreOnePerEventAndChannelWithStableKeysFromSince) {
  const WallTime t0 = FromUnixMillis(1'800'000'000'000);
  NotificationsConfig c = AllChannels();
  const Incident inc = MakeIncident(t0);
  auto rows = OutboxRowsFor(inc, c, ChannelKind::kWebhook, WallTime{}, t0 + 5s);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].key, "inc-42:0:incident_opened:webhook");
  EXPECT_EQ(rows[1].key, "inc-42:3:approval_needed:webhook");
  EXPECT_EQ(rows[1].next_attempt_at, t0 + 5s);
  // Events before the channel's outbox began are not notified.
  rows = OutboxRowsFor(inc, c, ChannelKind::kWebhook, t0 + 2s, t0 + 5s);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].event, "approval_needed");
  // A channel's event list filters.
  c.channels[1].events = {NotifyEvent::kApprovalNeeded};
  rows = OutboxRowsFor(inc, c, ChannelKind::kSlack, WallTime{}, t0);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].key, "inc-42:3:approval_needed:slack");
}

// --- the webhook -----------------------------------------------------------------------------

TEST(NotificationTest, WebhookCarriesTheEventAndASignatureThatVerifiesIndependently) {
  const WallTime t0 = FromUnixMillis(1'800'000'000'000);
  const NotificationsConfig c = AllChannels();
  const OutboxRecord row = RowOf(MakeIncident(t0), c, ChannelKind::kWebhook, "approval_needed");
  auto req = RenderNotification(c.channels[0], c, row, t0 + 7s);
  ASSERT_TRUE(req.has_value()) << req.error().ToString();
  EXPECT_EQ(req->method, "POST");
  EXPECT_EQ(req->url, "http://127.0.0.1:9/hook");
  EXPECT_EQ(HeaderOf(*req, "X-Medic-Event"), "approval_needed");
  EXPECT_EQ(HeaderOf(*req, "Idempotency-Key"), "inc-42:3:approval_needed:webhook");
  const std::string ts = HeaderOf(*req, "X-Medic-Timestamp");
  EXPECT_EQ(ts, "1800000007");
  EXPECT_EQ(HeaderOf(*req, "X-Medic-Signature"),
            "sha256=" + OpenSslHmacHex("s3cret", ts + "." + req->body));
  // Another secret or a changed body does not verify.
  EXPECT_NE(HeaderOf(*req, "X-Medic-Signature"),
            "sha256=" + OpenSslHmacHex("other", ts + "." + req->body));
  auto body = ParseJson(req->body);
  ASSERT_TRUE(body.has_value());
  EXPECT_EQ((*body)["event"], "approval_needed");
  EXPECT_EQ((*body)["idempotency_key"], "inc-42:3:approval_needed:webhook");
  EXPECT_EQ((*body)["incident"]["incident_id"], "inc-42");
  EXPECT_EQ((*body)["incident"]["alarm_name"], "Nginx-Down-ALB");
  EXPECT_EQ((*body)["incident"]["instance_id"], "web-1");
  EXPECT_EQ((*body)["incident"]["status"], "pending_approval");
  EXPECT_EQ((*body)["incident"]["ai_suggestion"], "service.restart service=nginx");
  EXPECT_EQ((*body)["dashboard_url"], "https://medic.example.com/#/incident/inc-42");
  EXPECT_EQ((*body)["sent_at"], FormatRfc3339(t0 + 7s));
}

// --- Slack -----------------------------------------------------------------------------------

TEST(NotificationTest, SlackMessageIsReadableWithButtonsOnlyForApprovals) {
  const WallTime t0 = FromUnixMillis(1'800'000'000'000);
  NotificationsConfig c = AllChannels();
  const Incident inc = MakeIncident(t0);
  auto req = RenderNotification(c.channels[1], c,
                                RowOf(inc, c, ChannelKind::kSlack, "approval_needed"), t0);
  ASSERT_TRUE(req.has_value());
  auto body = ParseJson(req->body);
  ASSERT_TRUE(body.has_value());
  EXPECT_EQ((*body)["text"], "Approval needed: Nginx-Down-ALB on web-1");
  const Json& blocks = (*body)["blocks"];
  ASSERT_EQ(blocks.size(), 2u);
  const std::string text = blocks[0]["text"]["text"];
  EXPECT_NE(text.find("*Alarm:* Nginx-Down-ALB"), std::string::npos) << text;
  EXPECT_NE(text.find("*Host:* web-1"), std::string::npos) << text;
  EXPECT_NE(text.find("`service.restart service=nginx`"), std::string::npos) << text;
  EXPECT_NE(text.find("<https://medic.example.com/#/incident/inc-42|"), std::string::npos) << text;
  const Json& actions = blocks[1];
  EXPECT_EQ(actions["type"], "actions");
  EXPECT_EQ(actions["block_id"], "medic_incident");
  ASSERT_EQ(actions["elements"].size(), 2u);
  EXPECT_EQ(actions["elements"][0]["action_id"], "medic_approve");
  EXPECT_EQ(actions["elements"][0]["style"], "primary");
  EXPECT_EQ(actions["elements"][0]["value"], "inc-42");
  EXPECT_EQ(actions["elements"][1]["action_id"], "medic_reject");
  EXPECT_EQ(actions["elements"][1]["style"], "danger");
  EXPECT_EQ(actions["elements"][1]["value"], "inc-42");

  // No buttons for other events, nor without `buttons: true`.
  req = RenderNotification(c.channels[1], c,
                           RowOf(inc, c, ChannelKind::kSlack, "incident_opened"), t0);
  ASSERT_TRUE(req.has_value());
  EXPECT_EQ(ParseJson(req->body)->at("blocks").size(), 1u);
  c.channels[1].buttons = false;
  req = RenderNotification(c.channels[1], c,
                           RowOf(inc, c, ChannelKind::kSlack, "approval_needed"), t0);
  ASSERT_TRUE(req.has_value());
  EXPECT_EQ(ParseJson(req->body)->at("blocks").size(), 1u);
}

TEST(NotificationTest, SlackEscapesHostileTextFromTheIncident) {
  const WallTime t0 = FromUnixMillis(1'800'000'000'000);
  const NotificationsConfig c = AllChannels();
  Incident inc = MakeIncident(t0);
  inc.instance_id = "web-1<!channel>";
  inc.action = Json{{"name", "shell"}, {"params", {{"command", "echo <https://evil|click> && x"}}}};
  auto req = RenderNotification(c.channels[1], c,
                                RowOf(inc, c, ChannelKind::kSlack, "approval_needed"), t0);
  ASSERT_TRUE(req.has_value());
  auto body = ParseJson(req->body);
  ASSERT_TRUE(body.has_value());
  const std::string text = (*body)["blocks"][0]["text"]["text"];
  EXPECT_EQ(text.find("<!channel>"), std::string::npos) << text;
  EXPECT_EQ(text.find("<https://evil"), std::string::npos) << text;
  EXPECT_NE(text.find("web-1&lt;!channel&gt;"), std::string::npos) << text;
  EXPECT_NE(text.find("echo &lt;https://evil|click&gt; &amp;&amp; x"), std::string::npos) << text;
  EXPECT_EQ((*body)["text"], "Approval needed: Nginx-Down-ALB on web-1&lt;!channel&gt;");
  EXPECT_EQ(SlackEscape("a&b<c>d"), "a&amp;b&lt;c&gt;d");
}

// --- PagerDuty -------------------------------------------------------------------------------

TEST(NotificationTest, PagerDutyTriggersOnOpenAndResolvesOnCompletionWithTheIncidentAsDedupKey) {
  const WallTime t0 = FromUnixMillis(1'800'000'000'000);
  const NotificationsConfig c = AllChannels();
  Incident inc = MakeIncident(t0);
  auto req = RenderNotification(c.channels[2], c,
                                RowOf(inc, c, ChannelKind::kPagerDuty, "incident_opened"), t0);
  ASSERT_TRUE(req.has_value());
  auto body = ParseJson(req->body);
  ASSERT_TRUE(body.has_value());
  EXPECT_EQ((*body)["routing_key"], "R0UT1NG");
  EXPECT_EQ((*body)["event_action"], "trigger");
  EXPECT_EQ((*body)["dedup_key"], "inc-42");
  EXPECT_EQ((*body)["payload"]["source"], "web-1");
  EXPECT_EQ((*body)["payload"]["severity"], "error");
  EXPECT_EQ((*body)["payload"]["component"], "Nginx-Down-ALB");
  EXPECT_EQ((*body)["payload"]["summary"], "Incident opened: Nginx-Down-ALB on web-1");
  EXPECT_EQ((*body)["links"][0]["href"], "https://medic.example.com/#/incident/inc-42");

  struct Case {
    std::string entry;
    std::string want_action;
  };
  for (const Case& k : {Case{"completed", "resolve"}, Case{"rejected", "resolve"},
                        Case{"failed", "trigger"}, Case{"timeout", "trigger"}}) {
    SCOPED_TRACE(k.entry);
    Incident done = inc;
    done.timeline.push_back({k.entry, t0 + 10s, "medic", ""});
    const std::string event = k.entry == "completed" ? "incident_completed" : "incident_failed";
    req = RenderNotification(c.channels[2], c, RowOf(done, c, ChannelKind::kPagerDuty, event), t0);
    ASSERT_TRUE(req.has_value());
    body = ParseJson(req->body);
    EXPECT_EQ((*body)["event_action"], k.want_action);
    EXPECT_EQ((*body)["dedup_key"], "inc-42");
    EXPECT_EQ((*body)["routing_key"], "R0UT1NG");
  }
}

// --- the outbox ------------------------------------------------------------------------------

class NotifierTest : public ::testing::Test {
 protected:
  std::unique_ptr<Notifier> Make(NotificationsConfig c) {
    auto http = std::make_unique<RecordingHttpClient>(&answers_);
    http_ = http.get();
    return std::make_unique<Notifier>(store_, clock_, std::move(c), std::move(http));
  }
  NotificationsConfig WebhookOnly() {
    NotificationsConfig c = AllChannels();
    c.channels.resize(1);
    c.retry.initial = 1s;
    c.retry.max_delay = 4s;
    c.retry.max_attempts = 5;
    return c;
  }
  std::vector<OutboxRecord> Rows() { return store_.ListOutbox("", 1000).value(); }

  ManualClock clock_;
  test::MemoryStore store_;
  std::deque<RecordingHttpClient::Answer> answers_;
  RecordingHttpClient* http_ = nullptr;
};

TEST_F(NotifierTest, BackoffDoublesFromInitialAndIsCapped) {
  RetryPolicy r;
  r.initial = 1s;
  r.max_delay = 300s;
  EXPECT_EQ(Notifier::Backoff(r, 1), 1s);
  EXPECT_EQ(Notifier::Backoff(r, 2), 2s);
  EXPECT_EQ(Notifier::Backoff(r, 5), 16s);
  EXPECT_EQ(Notifier::Backoff(r, 9), 256s);
  EXPECT_EQ(Notifier::Backoff(r, 10), 300s);
  EXPECT_EQ(Notifier::Backoff(r, 1000), 300s);
}

TEST_F(NotifierTest, RetriesWithBackoffThenSendsOnceAndNeverAgain) {
  auto n = Make(WebhookOnly());
  ASSERT_TRUE(n->Init().has_value());
  clock_.Advance(1s);
  answers_ = {{503}, {0, true}, {200}};
  Incident inc = MakeIncident(clock_.Now());
  inc.timeline.resize(1);  // created
  n->OnIncident(inc);
  n->OnIncident(inc);  // the same change announced twice: one row
  n->RunOnce();
  ASSERT_EQ(http_->requests.size(), 1u);
  ASSERT_EQ(Rows().size(), 1u);
  EXPECT_EQ(Rows()[0].state, OutboxState::kPending);
  EXPECT_EQ(Rows()[0].attempts, 1);
  EXPECT_EQ(Rows()[0].last_error.rfind("HTTP 503", 0), 0u) << Rows()[0].last_error;
  // Not due before the backoff has passed.
  clock_.Advance(900ms);
  n->RunOnce();
  EXPECT_EQ(http_->requests.size(), 1u);
  clock_.Advance(100ms);
  n->RunOnce();  // a transport error: retried after 2 s
  ASSERT_EQ(http_->requests.size(), 2u);
  clock_.Advance(1999ms);
  n->RunOnce();
  EXPECT_EQ(http_->requests.size(), 2u);
  clock_.Advance(1ms);
  n->RunOnce();
  ASSERT_EQ(http_->requests.size(), 3u);
  EXPECT_EQ(Rows()[0].state, OutboxState::kSent);
  EXPECT_EQ(Rows()[0].attempts, 3);
  // Every attempt carried the same idempotency key.
  for (const auto& r : http_->requests) {
    EXPECT_EQ(HeaderOf(r, "Idempotency-Key"), "inc-42:0:incident_opened:webhook");
  }
  // Sent is final: neither time nor the same incident again sends it twice.
  clock_.Advance(1h);
  n->OnIncident(inc);
  n->RunOnce();
  EXPECT_EQ(http_->requests.size(), 3u);
  EXPECT_EQ(n->counters(ChannelKind::kWebhook), (NotifierCounters{1, 2, 0}));
  EXPECT_NE(n->MetricsText().find(
                "medic_notifications_total{channel=\"webhook\",result=\"sent\"} 1"),
            std::string::npos);
}

TEST_F(NotifierTest, GivesUpAfterMaxAttemptsAndOnAClientError) {
  auto n = Make(WebhookOnly());
  ASSERT_TRUE(n->Init().has_value());
  clock_.Advance(1s);
  answers_ = {{500}};
  Incident inc = MakeIncident(clock_.Now());
  inc.timeline.resize(1);
  n->OnIncident(inc);
  for (int i = 0; i < 10; ++i) {
    n->RunOnce();
    clock_.Advance(4s);
  }
  EXPECT_EQ(http_->requests.size(), 5u);  // max_attempts
  EXPECT_EQ(Rows()[0].state, OutboxState::kDead);
  EXPECT_EQ(n->counters(ChannelKind::kWebhook), (NotifierCounters{0, 4, 1}));

  // A 4xx other than 408/429 is not retried; 429 is.
  answers_ = {{429}, {400}};
  Incident other = MakeIncident(clock_.Now());
  other.incident_id = "inc-43";
  other.timeline.resize(1);
  n->OnIncident(other);
  n->RunOnce();
  clock_.Advance(1s);
  n->RunOnce();
  clock_.Advance(1h);
  n->RunOnce();
  EXPECT_EQ(http_->requests.size(), 7u);
  auto rows = store_.ListOutbox("inc-43", 10).value();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].state, OutboxState::kDead);
  EXPECT_EQ(rows[0].attempts, 2);
}

TEST_F(NotifierTest, GivesUpOnceTheEventIsOlderThanGiveUpAfter) {
  NotificationsConfig c = WebhookOnly();
  c.retry.max_attempts = 1000;
  c.retry.give_up_after = 10s;
  auto n = Make(c);
  ASSERT_TRUE(n->Init().has_value());
  clock_.Advance(1s);
  answers_ = {{503}};
  Incident inc = MakeIncident(clock_.Now());
  inc.timeline.resize(1);
  n->OnIncident(inc);
  for (int i = 0; i < 20; ++i) {
    n->RunOnce();
    clock_.Advance(1s);
  }
  EXPECT_EQ(Rows()[0].state, OutboxState::kDead);
  EXPECT_LE(http_->requests.size(), 11u);
}

TEST_F(NotifierTest, ARestartReconcilesEventsTheListenerNeverHeardOfAndSendsEachOnce) {
  NotificationsConfig c = AllChannels();
  {
    auto first = Make(c);
    ASSERT_TRUE(first->Init().has_value());  // the outbox begins now
  }
  clock_.Advance(1s);
  // Committed while no notifier listened (a SIGKILL right after the incident's write).
  Incident inc = MakeIncident(clock_.Now());
  ASSERT_TRUE(store_.CreateIncident(inc).has_value());
  // An incident from before the outbox existed is never notified.
  Incident old = MakeIncident(clock_.Now() - 1h);
  old.incident_id = "inc-old";
  old.alarm_name = "Disk-Critical-ASG";
  ASSERT_TRUE(store_.CreateIncident(old).has_value());
  old.updated_at = clock_.Now();
  ASSERT_TRUE(store_.UpdateIncident(old).has_value());

  auto second = Make(c);
  ASSERT_TRUE(second->Init().has_value());
  EXPECT_EQ(Rows().size(), 6u);  // 2 events x 3 channels, none of inc-old
  second->RunOnce();
  EXPECT_EQ(http_->requests.size(), 6u);
  // A third start reconciles again and sends nothing twice.
  auto third = Make(c);
  ASSERT_TRUE(third->Init().has_value());
  third->OnIncident(inc);
  third->RunOnce();
  EXPECT_EQ(http_->requests.size(), 0u);  // a fresh client: nothing more was sent
  for (const auto& r : Rows()) {
    EXPECT_EQ(r.state, OutboxState::kSent) << r.key;
    EXPECT_EQ(r.incident_id, "inc-42");
  }
}

TEST_F(NotifierTest, AStoreErrorOnEnqueueIsMadeGoodFromTheStore) {
  test::FaultyStore faulty(store_);
  auto http = std::make_unique<RecordingHttpClient>(&answers_);
  RecordingHttpClient* client = http.get();
  Notifier n(faulty, clock_, WebhookOnly(), std::move(http));
  ASSERT_TRUE(n.Init().has_value());
  clock_.Advance(1s);
  Incident inc = MakeIncident(clock_.Now());
  inc.timeline.resize(1);
  ASSERT_TRUE(store_.CreateIncident(inc).has_value());
  faulty.FailNext(test::StoreOp::kEnqueueOutbox, 1);
  n.OnIncident(inc);
  n.RunOnce();
  EXPECT_EQ(client->requests.size(), 0u);
  n.RunOnce();  // reconciles from the store
  EXPECT_EQ(client->requests.size(), 1u);
  EXPECT_EQ(Rows().size(), 1u);
}

TEST_F(NotifierTest, WithoutChannelsNothingIsQueuedOrSent) {
  auto n = Make(NotificationsConfig{});
  ASSERT_TRUE(n->Init().has_value());
  n->OnIncident(MakeIncident(clock_.Now()));
  n->RunOnce();
  EXPECT_TRUE(Rows().empty());
  EXPECT_TRUE(http_->requests.empty());
}

// --- the config ------------------------------------------------------------------------------

TEST(NotificationsConfigTest, ParsesChannelsSecretsFromFilesAndDefaults) {
  test::TempDir dir;
  ASSERT_TRUE(WriteFileAtomic(dir.File("secret"), "  hmac-key\n").has_value());
  ASSERT_TRUE(WriteFileAtomic(dir.File("pd"), "pd-routing\n").has_value());
  ASSERT_TRUE(WriteFileAtomic(dir.File("s.yaml"),
                              "notifications:\n"
                              "  dashboard_url: https://medic.example.com/\n"
                              "  retry: {initial: 200ms, max_delay: 2s, max_attempts: 7}\n"
                              "  webhook:\n"
                              "    url: http://127.0.0.1:8/hook\n"
                              "    secret_file: " + dir.File("secret") + "\n"
                              "    events: [incident_opened, incident_failed]\n"
                              "  slack: {url: https://hooks.slack.com/services/T/B/X, buttons: true}\n"
                              "  pagerduty: {routing_key_file: " + dir.File("pd") +
                                  ", severity: critical}\n")
                  .has_value());
  auto c = LoadServerConfig(dir.File("s.yaml"));
  ASSERT_TRUE(c.has_value()) << c.error().ToString();
  const NotificationsConfig& n = c->notifications;
  EXPECT_EQ(n.dashboard_url, "https://medic.example.com");
  EXPECT_EQ(n.retry.initial, 200ms);
  EXPECT_EQ(n.retry.max_delay, 2s);
  EXPECT_EQ(n.retry.max_attempts, 7);
  ASSERT_EQ(n.channels.size(), 3u);
  EXPECT_EQ(n.channels[0].secret, "hmac-key");
  EXPECT_EQ(n.channels[0].events,
            (std::set<NotifyEvent>{NotifyEvent::kIncidentOpened, NotifyEvent::kIncidentFailed}));
  EXPECT_TRUE(n.channels[1].buttons);
  EXPECT_EQ(n.channels[1].events.size(), 5u);
  EXPECT_EQ(n.channels[2].routing_key, "pd-routing");
  EXPECT_EQ(n.channels[2].url, "https://events.pagerduty.com/v2/enqueue");
  EXPECT_EQ(n.channels[2].severity, "critical");
}

TEST(NotificationsConfigTest, BadSectionsNameFileLineAndProblem) {
  test::ExpectConfigErrors({
      {"notifications: [1]\n", "s.yaml:1: notifications must be a mapping"},
      {"notifications:\n  teams: {}\n", "s.yaml:2: unknown notifications key 'teams'"},
      {"notifications:\n  webhook: {url: http://x/h}\n",
       "s.yaml:2: notifications.webhook needs secret"},
      {"notifications:\n  webhook: {url: ftp://x/h, secret: k}\n",
       "s.yaml:2: notifications.webhook.url must start with https:// or http://"},
      {"notifications:\n  webhook: {url: 'http://u:p@x/h', secret: k}\n", "needs a host name"},
      {"notifications:\n  webhook: {url: http://x/h, secret: k, secret_file: /f}\n",
       "secret and secret_file exclude each other"},
      {"notifications:\n  webhook: {url: http://x/h, secret_file: /nonexistent/medic}\n",
       "s.yaml:2: notifications.webhook.secret_file: cannot read /nonexistent/medic"},
      {"notifications:\n  webhook: {url: http://x/h, secret_file: /dev/zero}\n",
       "s.yaml:2: notifications.webhook.secret_file: /dev/zero is not a regular file"},
      {"notifications:\n  webhook: {url: http://x/h, secret: k, buttons: true}\n",
       "unknown notifications.webhook key 'buttons'"},
      {"notifications:\n  slack: {buttons: true}\n", "notifications.slack needs url"},
      {"notifications:\n  slack: {url: http://x/s, buttons: maybe}\n",
       "s.yaml:2: wrong type for notifications.slack.buttons"},
      {"notifications:\n  slack: {url: http://x/s, events: [incident_exploded]}\n",
       "s.yaml:2: notifications.slack: unknown event 'incident_exploded'"},
      {"notifications:\n  pagerduty: {severity: error}\n",
       "notifications.pagerduty needs routing_key"},
      {"notifications:\n  pagerduty: {routing_key: k, severity: loud}\n",
       "severity must be critical, error, warning or info"},
      {"notifications:\n  retry: {initial: 0s}\n", "retry.initial must be a duration"},
      {"notifications:\n  retry: {initial: 10s, max_delay: 1s}\n",
       "max_delay must not be less than initial"},
      {"notifications:\n  retry: {max_attempts: 0}\n", "max_attempts must be from 1 to 1000"},
      {"notifications:\n  dashboard_url: medic.example.com\n",
       "s.yaml:2: notifications.dashboard_url must start with https://"},
  });
}

}  // namespace
}  // namespace medic::server
