// POST /api/v1/ingest/sns (docs/integrations/sns.md): the SNS envelope, the string SNS signs,
// the URL checks, CloudWatch alarm mapping, the ingest.sns config, signature verification, and
// the whole route against a loopback SNS that signs as SNS does (tests/fakes/fake_sns.h).

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <mutex>
#include <vector>

#include "core/files.h"
#include "server/http/routes.h"
#include "server/ingest/sns_config.h"
#include "server/ingest/sns_ingest.h"
#include "server/ingest/sns_message.h"
#include "server/ingest/sns_verify.h"
#include "tests/fakes/fake_sns.h"
#include "tests/fakes/temp_dir.h"

namespace medic::server {
namespace {

constexpr char kTopic[] = "arn:aws:sns:eu-west-1:123456789012:medic-alarms";
constexpr char kOtherTopic[] = "arn:aws:sns:eu-west-1:123456789012:someone-elses";
constexpr char kInstance[] = "i-0abc1234def567890";

// What the route handed on.
class RecordingSink : public AlertSink {
 public:
  struct Unmapped {
    std::string source, summary, why;
  };
  IngestResult Submit(const ExternalAlert& alert) override {
    std::lock_guard<std::mutex> lock(mu_);
    submitted_.push_back(alert);
    return IngestResult::kApplied;
  }
  void RecordUnmapped(const std::string& source, const std::string& summary,
                      const std::string& why) override {
    std::lock_guard<std::mutex> lock(mu_);
    unmapped_.push_back({source, summary, why});
  }
  std::vector<ExternalAlert> submitted() const {
    std::lock_guard<std::mutex> lock(mu_);
    return submitted_;
  }
  std::vector<Unmapped> unmapped() const {
    std::lock_guard<std::mutex> lock(mu_);
    return unmapped_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<ExternalAlert> submitted_;
  std::vector<Unmapped> unmapped_;
};

// --- The string to sign --------------------------------------------------------------------

// The fields of the AWS documentation's example Notification ("HTTP/HTTPS notification JSON
// format"), and its confirmation's, each with the string SNS signs written out by hand: any
// field out of order, missing or extra fails.
TEST(SnsStringToSignTest, KnownVectors) {
  struct Case {
    std::string name;
    Json body;
    std::string want;
  };
  const Json notification = {
      {"Type", "Notification"},
      {"MessageId", "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324"},
      {"TopicArn", "arn:aws:sns:us-west-2:123456789012:MyTopic"},
      {"Subject", "My First Message"},
      {"Message", "Hello world!"},
      {"Timestamp", "2012-05-02T00:54:06.655Z"},
      {"SignatureVersion", "1"},
      {"Signature", "EXAMPLEw6JRN"},
      {"SigningCertURL",
       "https://sns.us-west-2.amazonaws.com/"
       "SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem"},
      {"UnsubscribeURL",
       "https://sns.us-west-2.amazonaws.com/"
       "?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:us-west-2:123456789012:MyTopic:c9135db0"},
      {"MessageAttributes", {{"k", {{"Type", "String"}, {"Value", "v"}}}}}};
  Json no_subject = notification;
  no_subject.erase("Subject");
  const Json confirmation = {
      {"Type", "SubscriptionConfirmation"},
      {"MessageId", "165545c9-2a5c-472c-8df2-7ff2be2b3b1b"},
      {"Token", "2336412f37f"},
      {"TopicArn", "arn:aws:sns:us-west-2:123456789012:MyTopic"},
      {"Message", "You have chosen to subscribe to the topic "
                  "arn:aws:sns:us-west-2:123456789012:MyTopic.\nTo confirm the subscription, "
                  "visit the SubscribeURL included in this message."},
      {"SubscribeURL",
       "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:"
       "us-west-2:123456789012:MyTopic&Token=2336412f37f"},
      {"Timestamp", "2012-04-26T20:45:04.751Z"},
      {"SignatureVersion", "1"},
      {"Signature", "EXAMPLEpH+DcEwjAPg8O9mY8dReBSwksfg2S7WKQcikcNKWLQjwu6A4VbeS0QHVCkhRS7fUQvi2"},
      {"SigningCertURL",
       "https://sns.us-west-2.amazonaws.com/"
       "SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem"}};
  Json unsubscribe = confirmation;
  unsubscribe["Type"] = "UnsubscribeConfirmation";
  Json confirmation_with_subject = confirmation;
  confirmation_with_subject["Subject"] = "not signed in a confirmation";

  const std::string conf_fields =
      "Message\nYou have chosen to subscribe to the topic "
      "arn:aws:sns:us-west-2:123456789012:MyTopic.\nTo confirm the subscription, visit the "
      "SubscribeURL included in this message.\n"
      "MessageId\n165545c9-2a5c-472c-8df2-7ff2be2b3b1b\n"
      "SubscribeURL\nhttps://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn="
      "arn:aws:sns:us-west-2:123456789012:MyTopic&Token=2336412f37f\n"
      "Timestamp\n2012-04-26T20:45:04.751Z\n"
      "Token\n2336412f37f\n"
      "TopicArn\narn:aws:sns:us-west-2:123456789012:MyTopic\n";
  const std::vector<Case> cases = {
      {"notification with a subject", notification,
       "Message\nHello world!\n"
       "MessageId\n22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324\n"
       "Subject\nMy First Message\n"
       "Timestamp\n2012-05-02T00:54:06.655Z\n"
       "TopicArn\narn:aws:sns:us-west-2:123456789012:MyTopic\n"
       "Type\nNotification\n"},
      {"notification without a subject", no_subject,
       "Message\nHello world!\n"
       "MessageId\n22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324\n"
       "Timestamp\n2012-05-02T00:54:06.655Z\n"
       "TopicArn\narn:aws:sns:us-west-2:123456789012:MyTopic\n"
       "Type\nNotification\n"},
      {"subscription confirmation", confirmation, conf_fields + "Type\nSubscriptionConfirmation\n"},
      {"a confirmation's subject is not signed", confirmation_with_subject,
       conf_fields + "Type\nSubscriptionConfirmation\n"},
      {"unsubscribe confirmation", unsubscribe, conf_fields + "Type\nUnsubscribeConfirmation\n"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto m = ParseSnsMessage(c.body.dump());
    ASSERT_TRUE(m.has_value()) << m.error().message;
    EXPECT_EQ(SnsStringToSign(*m), c.want);
    // The fake signs what medic checks: its own rendering agrees on every vector.
    EXPECT_EQ(test::FakeSns::StringToSign(c.body), c.want);
  }
}

TEST(SnsMessageTest, MalformedDeliveriesAreNamed) {
  struct Case {
    std::string body;
    std::string mentions;
  };
  const Json good = {{"Type", "Notification"}, {"MessageId", "m"}, {"TopicArn", kTopic},
                     {"Message", "x"},         {"Timestamp", "t"}, {"SignatureVersion", "2"},
                     {"Signature", "s"},       {"SigningCertURL", "https://x/y.pem"}};
  auto without = [&](const char* key) {
    Json j = good;
    j.erase(key);
    return j.dump();
  };
  auto with = [&](const char* key, Json value) {
    Json j = good;
    j[key] = std::move(value);
    return j.dump();
  };
  const std::vector<Case> cases = {
      {"{not json", "malformed JSON"},
      {"[1,2]", "object"},
      {with("Type", "Publish"), "unknown Type 'Publish'"},
      {without("Type"), "'Type'"},
      {without("MessageId"), "'MessageId'"},
      {without("Signature"), "'Signature'"},
      {without("SigningCertURL"), "'SigningCertURL'"},
      {with("Message", 42), "'Message'"},
      {with("Subject", Json::array()), "'Subject'"},
      {with("Type", "SubscriptionConfirmation"), "'SubscribeURL'"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.body);
    auto m = ParseSnsMessage(c.body);
    ASSERT_FALSE(m.has_value());
    EXPECT_EQ(m.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(m.error().message.find(c.mentions), std::string::npos) << m.error().message;
  }
  EXPECT_TRUE(ParseSnsMessage(good.dump()).has_value());
}

TEST(SnsUrlTest, OnlyHttpsOnAnSnsHost) {
  struct Case {
    std::string url;
    bool ok;
  };
  const std::vector<Case> cases = {
      {"https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem", true},
      {"https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem", true},
      {"HTTPS://SNS.EU-WEST-1.AMAZONAWS.COM/x.pem", true},
      {"https://sns.us-east-1.amazonaws.com:443/x.pem", true},
      {"http://sns.us-east-1.amazonaws.com/x.pem", false},
      {"https://evil.example/SimpleNotificationService-abc.pem", false},
      {"https://sns.us-east-1.amazonaws.com.evil.example/x.pem", false},
      {"https://sns.us-east-1.amazonaws.com@evil.example/x.pem", false},
      {"https://evil.example/sns.us-east-1.amazonaws.com/x.pem", false},
      {"https://evil.example?sns.us-east-1.amazonaws.com", false},
      {"https://xsns.us-east-1.amazonaws.com/x.pem", false},
      {"https://sns.us-east-1.amazonaws.com:4x3/x.pem", false},
      {"ftp://sns.us-east-1.amazonaws.com/x.pem", false},
      {"", false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.url);
    auto ok = CheckSnsUrl(c.url, kDefaultSnsCertHostPattern);
    EXPECT_EQ(ok.has_value(), c.ok);
    if (!ok) {
      EXPECT_EQ(ok.error().code, ErrorCode::kPermissionDenied);
    }
  }
  EXPECT_TRUE(CheckSnsUrl("https://localhost:8443/x.pem", "^localhost$").has_value());
  EXPECT_FALSE(CheckSnsUrl("https://127.0.0.1:8443/x.pem", "^localhost$").has_value());
}

TEST(CloudWatchTest, TimesAsCloudWatchWritesThem) {
  auto t = ParseCloudWatchTime("2018-11-02T14:49:02.612+0000");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(FormatRfc3339(*t), "2018-11-02T14:49:02.612Z");
  auto z = ParseCloudWatchTime("2018-11-02T16:49:02.612+0200");
  ASSERT_TRUE(z.has_value());
  EXPECT_EQ(*z, *t);
  EXPECT_TRUE(ParseCloudWatchTime("2018-11-02T14:49:02Z").has_value());
  EXPECT_FALSE(ParseCloudWatchTime("yesterday").has_value());
}

SnsConfig MappingConfig() {
  SnsConfig c;
  c.topics = {kTopic};
  c.alarms = {{"web-1-disk-full", "Disk-Critical-ASG"}};
  c.instances = {{kInstance, "web-1"}};
  c.auto_scaling_groups = {{"web-asg", "web-2"}};
  return c;
}

TEST(CloudWatchTest, MapsAlarmAndHost) {
  const SnsConfig config = MappingConfig();
  const WallTime fallback = FromUnixMillis(1'000);
  struct Case {
    std::string name;
    Json message;
    InstanceHostLookup lookup;
    // Mapped:
    std::string alarm, host;
    bool firing = false;
    // Unmapped: a word of why ("" when mapped).
    std::string unmapped_why;
  };
  auto with_dims = [](Json m, Json dims) {
    m["Trigger"]["Dimensions"] = std::move(dims);
    return m;
  };
  const Json alarm = test::CloudWatchAlarmMessage("web-1-disk-full", "ALARM", kInstance);
  const Json ok = test::CloudWatchAlarmMessage("web-1-disk-full", "OK", kInstance);
  const std::vector<Case> cases = {
      {"ALARM fires the mapped alarm on the mapped host", alarm, nullptr, "Disk-Critical-ASG",
       "web-1", true, ""},
      {"OK resolves it", ok, nullptr, "Disk-Critical-ASG", "web-1", false, ""},
      {"an unmapped alarm name is kept",
       test::CloudWatchAlarmMessage("Memory-Exhaustion-ASG", "ALARM", kInstance), nullptr,
       "Memory-Exhaustion-ASG", "web-1", true, ""},
      {"the API's spelling of dimensions",
       with_dims(alarm, Json::array({{{"Name", "InstanceId"}, {"Value", kInstance}}})), nullptr,
       "Disk-Critical-ASG", "web-1", true, ""},
      {"an auto scaling group",
       with_dims(alarm, Json::array({{{"name", "AutoScalingGroupName"}, {"value", "web-asg"}}})),
       nullptr, "Disk-Critical-ASG", "web-2", true, ""},
      {"the lookup finds an instance the config does not name",
       test::CloudWatchAlarmMessage("web-1-disk-full", "ALARM", "i-0fff"),
       [](const std::string& id) -> std::optional<std::string> {
         return id == "i-0fff" ? std::optional<std::string>("web-3") : std::nullopt;
       },
       "Disk-Critical-ASG", "web-3", true, ""},
      {"an unknown instance", test::CloudWatchAlarmMessage("web-1-disk-full", "ALARM", "i-0fff"),
       nullptr, "", "", false, "i-0fff is not in ingest.sns.instances"},
      {"an unknown auto scaling group",
       with_dims(alarm, Json::array({{{"name", "AutoScalingGroupName"}, {"value", "db-asg"}}})),
       nullptr, "", "", false, "db-asg is not in ingest.sns.auto_scaling_groups"},
      {"no dimension to find a host by", with_dims(alarm, Json::array()), nullptr, "", "", false,
       "no InstanceId or AutoScalingGroupName"},
      {"INSUFFICIENT_DATA changes nothing",
       test::CloudWatchAlarmMessage("web-1-disk-full", "INSUFFICIENT_DATA", kInstance), nullptr,
       "", "", false, "INSUFFICIENT_DATA"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto parsed = ParseCloudWatchAlarm(c.message.dump());
    ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
    auto mapped = MapCloudWatchAlarm(*parsed, config, c.lookup, fallback);
    if (!c.unmapped_why.empty()) {
      ASSERT_TRUE(std::holds_alternative<SnsUnmapped>(mapped));
      const auto& u = std::get<SnsUnmapped>(mapped);
      EXPECT_NE(u.why.find(c.unmapped_why), std::string::npos) << u.why;
      EXPECT_NE(u.summary.find("AlarmName="), std::string::npos) << u.summary;
      continue;
    }
    ASSERT_TRUE(std::holds_alternative<ExternalAlert>(mapped));
    const auto& a = std::get<ExternalAlert>(mapped);
    EXPECT_EQ(a.source, "sns");
    EXPECT_EQ(a.alarm, c.alarm);
    EXPECT_EQ(a.host, c.host);
    EXPECT_EQ(a.firing, c.firing);
    EXPECT_EQ(a.key, "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:" +
                         c.message["AlarmName"].get<std::string>());
    EXPECT_EQ(a.reason.rfind("CloudWatch: Threshold Crossed", 0), 0u) << a.reason;
    EXPECT_EQ(FormatRfc3339(a.at), c.firing ? "2026-12-07T01:00:02.612Z"
                                            : "2026-12-07T01:05:02.100Z");
    EXPECT_EQ(a.labels.at("AlarmName"), c.message["AlarmName"].get<std::string>());
  }
}

TEST(CloudWatchTest, OtherMessagesAreNotAlarms) {
  EXPECT_EQ(ParseCloudWatchAlarm("Hello world!").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(ParseCloudWatchAlarm(R"({"version":"0","detail-type":"EC2 Spot"})").error().code,
            ErrorCode::kNotFound);
  EXPECT_EQ(ParseCloudWatchAlarm(R"({"AlarmName":"a","NewStateValue":"ALARM","Trigger":3})")
                .error()
                .code,
            ErrorCode::kInvalidArgument);
  // Missing StateChangeTime: the delivery's time.
  Json m = test::CloudWatchAlarmMessage("x", "ALARM", kInstance);
  m.erase("StateChangeTime");
  auto parsed = ParseCloudWatchAlarm(m.dump());
  ASSERT_TRUE(parsed.has_value());
  auto mapped = MapCloudWatchAlarm(*parsed, MappingConfig(), nullptr, FromUnixMillis(5'000));
  ASSERT_TRUE(std::holds_alternative<ExternalAlert>(mapped));
  EXPECT_EQ(std::get<ExternalAlert>(mapped).at, FromUnixMillis(5'000));
}

// --- The config ----------------------------------------------------------------------------

// The first ```yaml block of docs/integrations/sns.md: the example the documentation gives.
std::string DocumentedExample() {
  const char* src = std::getenv("MEDIC_SOURCE_DIR");
  if (src == nullptr) {
    ADD_FAILURE() << "MEDIC_SOURCE_DIR is not set (run the test through ctest)";
    return "";
  }
  auto doc = ReadFile(std::string(src) + "/docs/integrations/sns.md");
  if (!doc) {
    ADD_FAILURE() << doc.error().message;
    return "";
  }
  const size_t start = doc->find("```yaml\n");
  const size_t end = doc->find("```", start + 8);
  if (start == std::string::npos || end == std::string::npos) {
    ADD_FAILURE() << "no ```yaml block in docs/integrations/sns.md";
    return "";
  }
  return doc->substr(start + 8, end - start - 8);
}

SnsConfig DocumentedConfig() {
  const YAML::Node root = YAML::Load(DocumentedExample());
  auto config = ParseSnsConfig(root["ingest"]["sns"], "docs/integrations/sns.md");
  EXPECT_TRUE(config.has_value()) << config.error().message;
  return config.value_or(SnsConfig{});
}

TEST(SnsConfigTest, TheDocumentedExampleParses) {
  const SnsConfig c = DocumentedConfig();
  EXPECT_EQ(c.topics, std::vector<std::string>{kTopic});
  EXPECT_EQ(c.alarms.at("web-1-disk-full"), "Disk-Critical-ASG");
  EXPECT_EQ(c.instances.at(kInstance), "web-1");
  EXPECT_EQ(c.auto_scaling_groups.at("web-asg"), "web-2");
  EXPECT_EQ(c.cert_host_pattern, kDefaultSnsCertHostPattern);
  EXPECT_TRUE(c.ca_file.empty());
  EXPECT_TRUE(c.TopicAllowed(kTopic));
  EXPECT_FALSE(c.TopicAllowed(kOtherTopic));
}

TEST(SnsConfigTest, DefaultsAcceptNoTopic) {
  auto c = ParseSnsConfig(YAML::Node(), "f.yaml");
  ASSERT_TRUE(c.has_value());
  EXPECT_TRUE(c->topics.empty());
  EXPECT_FALSE(c->TopicAllowed(kTopic));
  EXPECT_EQ(c->cert_host_pattern, kDefaultSnsCertHostPattern);
}

TEST(SnsConfigTest, ErrorsNameFileLineAndKey) {
  struct Case {
    std::string yaml;
    std::string mentions;
  };
  const std::vector<Case> cases = {
      {"sns:\n  topic: [x]\n", "server.yaml:2: ingest.sns: unknown key 'topic'"},
      {"sns:\n  topics: arn:aws:sns:eu-west-1:123456789012:a\n", "server.yaml:2: ingest.sns: "
                                                                 "topics must be a list"},
      {"sns:\n  topics:\n    - arn:aws:s3:::bucket\n", "server.yaml:3: ingest.sns: topics: "
                                                      "'arn:aws:s3:::bucket' is not an SNS"},
      {"sns:\n  instances: {i-1: 'web 1'}\n", "server.yaml:2: ingest.sns: instances: 'web 1' is "
                                              "not a host name"},
      {"sns:\n  instances: [i-1]\n", "server.yaml:2: ingest.sns: instances must be a mapping"},
      {"sns:\n  alarms: {a: [b]}\n", "server.yaml:2: ingest.sns: alarms: each entry"},
      {"sns:\n  auto_scaling_groups: {asg: ''}\n", "auto_scaling_groups: each entry"},
      {"sns:\n  cert_host_pattern: '^sns(\\.'\n", "server.yaml:2: ingest.sns: cert_host_pattern "
                                                  "'^sns(\\.' is not a regular expression"},
      {"sns:\n  ca_file: [a]\n", "ca_file must be a file name"},
      {"sns: [1]\n", "server.yaml:1: ingest.sns: must be a mapping"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.yaml);
    const YAML::Node root = YAML::Load(c.yaml);
    auto got = ParseSnsConfig(root["sns"], "server.yaml");
    ASSERT_FALSE(got.has_value());
    EXPECT_EQ(got.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(got.error().message.find(c.mentions), std::string::npos) << got.error().message;
  }
}

// --- Signatures ----------------------------------------------------------------------------

// A test's signing key and certificate: the fake's, read back through its server.
class SnsRouteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(sns_.ok()) << "the loopback SNS did not start";
    config_ = DocumentedConfig();
    config_.cert_host_pattern = "^localhost$";
    config_.ca_file = sns_.ca_file();
    web_ = NewCurlSnsWeb(config_.ca_file);
    ingest_ = std::make_unique<SnsIngest>(config_, sink_, *web_, clock_);
    AddSnsIngestRoutes(router_, *ingest_);
  }

  ApiResponse Post(const std::string& body) {
    ApiRequest req;
    req.method = "POST";
    req.target = req.path = "/api/v1/ingest/sns";
    req.content_type = "text/plain; charset=UTF-8";
    req.body = body;
    ApiResponse out;
    out.status = 0;
    router_.Handle(std::move(req), [&out](ApiResponse r) { out = std::move(r); });
    return out;
  }
  ApiResponse Post(const Json& body) { return Post(body.dump()); }

  Json Signed(Json message, int version = 2) {
    sns_.Sign(message, version);
    return message;
  }

  std::string ResultOf(const ApiResponse& r) {
    auto j = ParseJson(r.body);
    return j ? StringOr(*j, "result", StringOr(*j, "error")) : r.body;
  }

  test::TempDir dir_;
  test::FakeSns sns_{dir_.path()};
  SystemClock clock_;
  RecordingSink sink_;
  SnsConfig config_;
  std::unique_ptr<SnsWeb> web_;
  std::unique_ptr<SnsIngest> ingest_;
  TokenRegistry tokens_;
  Router router_{tokens_};
};

TEST_F(SnsRouteTest, ThePublicRouteTakesItsOwnBodyLimit) {
  ApiRequest req;
  req.method = "POST";
  req.target = req.path = "/api/v1/ingest/sns";
  const Admission a = router_.Admit(req);
  EXPECT_FALSE(a.refusal.has_value());  // no token: SNS sends none
  EXPECT_EQ(a.max_body_bytes, kSnsMaxBodyBytes);
}

TEST_F(SnsRouteTest, ConfirmsTheSubscriptionOfAConfiguredTopicOnly) {
  for (int version : {1, 2}) {
    SCOPED_TRACE(version);
    const int before = sns_.confirmations();
    ApiResponse r = Post(Signed(sns_.SubscriptionConfirmation(kTopic), version));
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(ResultOf(r), "confirmed");
    EXPECT_EQ(sns_.confirmations(), before + 1);  // the SubscribeURL was visited
  }
  const int before = sns_.confirmations();
  ApiResponse r = Post(Signed(sns_.SubscriptionConfirmation(kOtherTopic)));
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_EQ(sns_.confirmations(), before);
  ASSERT_EQ(sink_.unmapped().size(), 1u);
  EXPECT_EQ(sink_.unmapped()[0].source, "sns");
  EXPECT_NE(sink_.unmapped()[0].summary.find(kOtherTopic), std::string::npos);
  EXPECT_TRUE(sink_.submitted().empty());
}

TEST_F(SnsRouteTest, ASubscribeUrlOffTheSnsHostIsNotVisited) {
  Json m = sns_.SubscriptionConfirmation(kTopic);
  m["SubscribeURL"] = "https://127.0.0.1:" + std::to_string(sns_.port()) + "/confirm?x=1";
  ApiResponse r = Post(Signed(m));
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_EQ(sns_.confirmations(), 0);
}

TEST_F(SnsRouteTest, CloudWatchAlarmFiresAndOkResolvesOnTheMappedHost) {
  for (int version : {1, 2}) {
    SCOPED_TRACE(version);
    const size_t before = sink_.submitted().size();
    ApiResponse fire = Post(Signed(
        sns_.Notification(kTopic,
                          test::CloudWatchAlarmMessage("web-1-disk-full", "ALARM", kInstance).dump(),
                          "ALARM: \"web-1-disk-full\" in EU (Ireland)"),
        version));
    EXPECT_EQ(fire.status, 200) << fire.body;
    EXPECT_EQ(ResultOf(fire), "applied");
    ApiResponse ok = Post(Signed(
        sns_.Notification(kTopic,
                          test::CloudWatchAlarmMessage("web-1-disk-full", "OK", kInstance).dump()),
        version));
    EXPECT_EQ(ok.status, 200) << ok.body;
    const auto got = sink_.submitted();
    ASSERT_EQ(got.size(), before + 2);
    EXPECT_EQ(got[before].source, "sns");
    EXPECT_EQ(got[before].alarm, "Disk-Critical-ASG");
    EXPECT_EQ(got[before].host, "web-1");
    EXPECT_TRUE(got[before].firing);
    EXPECT_EQ(got[before].labels.at("InstanceId"), kInstance);
    EXPECT_EQ(got[before].labels.at("TopicArn"), kTopic);
    EXPECT_EQ(got[before + 1].alarm, "Disk-Critical-ASG");
    EXPECT_EQ(got[before + 1].host, "web-1");
    EXPECT_FALSE(got[before + 1].firing);
    EXPECT_EQ(got[before + 1].key, got[before].key);
  }
  // One fetch of the certificate for all four messages: it is kept by URL.
  EXPECT_EQ(sns_.certificate_fetches(), 1);
  EXPECT_TRUE(sink_.unmapped().empty());
}

TEST_F(SnsRouteTest, UnmappedAndForeignMessagesAreRecordedAndAnswered200) {
  ApiResponse unknown_instance = Post(Signed(sns_.Notification(
      kTopic, test::CloudWatchAlarmMessage("web-1-disk-full", "ALARM", "i-0999").dump())));
  EXPECT_EQ(unknown_instance.status, 200) << unknown_instance.body;
  EXPECT_EQ(ResultOf(unknown_instance), "unmapped");
  ApiResponse text = Post(Signed(sns_.Notification(kTopic, "Hello world!", "greeting")));
  EXPECT_EQ(text.status, 200) << text.body;
  ApiResponse unsubscribed = Post(Signed(sns_.UnsubscribeConfirmation(kTopic)));
  EXPECT_EQ(unsubscribed.status, 200) << unsubscribed.body;
  EXPECT_EQ(ResultOf(unsubscribed), "unsubscribed");
  EXPECT_TRUE(sink_.submitted().empty());
  const auto unmapped = sink_.unmapped();
  ASSERT_EQ(unmapped.size(), 2u);
  EXPECT_NE(unmapped[0].why.find("i-0999"), std::string::npos) << unmapped[0].why;
  EXPECT_NE(unmapped[1].why.find("not a CloudWatch alarm"), std::string::npos) << unmapped[1].why;
  EXPECT_EQ(sns_.confirmations(), 0);  // an unsubscribe is not undone
}

TEST_F(SnsRouteTest, ForgedOrTamperedDeliveriesAre403AndApplyNothing) {
  const std::string alarm =
      test::CloudWatchAlarmMessage("web-1-disk-full", "ALARM", kInstance).dump();
  struct Case {
    std::string name;
    Json body;
  };
  std::vector<Case> cases;
  {
    Json m = Signed(sns_.Notification(kTopic, alarm));
    std::string msg = m["Message"];
    msg[msg.find("ALARM")] = 'B';  // one byte of the Message
    m["Message"] = msg;
    cases.push_back({"one byte of Message changed", m});
  }
  {
    Json m = Signed(sns_.Notification(kTopic, alarm), 1);
    m["Timestamp"] = "2026-12-07T01:00:00.000Z";
    cases.push_back({"a signed field changed (version 1)", m});
  }
  {
    Json m = Signed(sns_.Notification(kTopic, alarm));
    m["TopicArn"] = kOtherTopic;
    cases.push_back({"the topic changed", m});
  }
  {
    Json m = sns_.Notification(kTopic, alarm);
    sns_.Sign(m, 2, "", /*other_key=*/true);
    cases.push_back({"signed with another key", m});
  }
  {
    Json m = Signed(sns_.Notification(kTopic, alarm), 1);
    m["SignatureVersion"] = "2";
    cases.push_back({"a version 1 signature claimed as version 2", m});
  }
  {
    Json m = Signed(sns_.Notification(kTopic, alarm));
    m["SignatureVersion"] = "3";
    cases.push_back({"an unknown SignatureVersion", m});
  }
  {
    Json m = Signed(sns_.Notification(kTopic, alarm));
    m["Signature"] = "not base64!";
    cases.push_back({"a signature that is not base64", m});
  }
  {
    Json m = sns_.Notification(kTopic, alarm);
    sns_.Sign(m, 2, sns_.url("/SimpleNotificationService-old.pem"));
    cases.push_back({"an expired certificate", m});
  }
  {
    Json m = sns_.Notification(kTopic, alarm);
    sns_.Sign(m, 2, sns_.url("/SimpleNotificationService-other.pem"));
    cases.push_back({"another key's certificate", m});
  }
  {
    Json m = sns_.Notification(kTopic, alarm);
    sns_.Sign(m, 2, "https://evil.example/SimpleNotificationService-test.pem");
    cases.push_back({"a certificate on another host", m});
  }
  {
    // The fake itself, by an address that does not match the pattern: refused before any fetch.
    Json m = sns_.Notification(kTopic, alarm);
    sns_.Sign(m, 2,
              "https://127.0.0.1:" + std::to_string(sns_.port()) +
                  "/SimpleNotificationService-test.pem");
    cases.push_back({"a certificate on a loopback name that does not match", m});
  }
  {
    Json m = sns_.Notification(kTopic, alarm);
    sns_.Sign(m, 2, "http://localhost:" + std::to_string(sns_.port()) +
                        "/SimpleNotificationService-test.pem");
    cases.push_back({"a certificate over http", m});
  }
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ApiResponse r = Post(c.body);
    EXPECT_EQ(r.status, 403) << r.body;
  }
  EXPECT_TRUE(sink_.submitted().empty());
  EXPECT_TRUE(sink_.unmapped().empty());
  EXPECT_EQ(sns_.confirmations(), 0);
  // Fetched: test.pem (once), old.pem, other.pem; never by 127.0.0.1 or over http.
  EXPECT_EQ(sns_.certificate_fetches(), 3);
  EXPECT_EQ(ingest_->refused(), cases.size());
}

// A certificate that is not valid now is not kept: the next delivery fetches it again (and a
// valid one is fetched once).
TEST_F(SnsRouteTest, AnExpiredCertificateIsNotKept) {
  for (int i = 0; i < 2; ++i) {
    Json m = sns_.Notification(kTopic, "x");
    sns_.Sign(m, 2, sns_.url("/SimpleNotificationService-old.pem"));
    EXPECT_EQ(Post(m).status, 403);
  }
  EXPECT_EQ(sns_.certificate_fetches(), 2);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(Post(Signed(sns_.Notification(kTopic, "x"))).status, 200);
  }
  EXPECT_EQ(sns_.certificate_fetches(), 3);
}

// A server without ingest.sns.topics accepts nothing and fetches nothing for it.
TEST_F(SnsRouteTest, WithoutTopicsNothingIsFetched) {
  SnsConfig none = config_;
  none.topics.clear();
  SnsIngest ingest(none, sink_, *web_, clock_);
  SnsIngest::Outcome out = ingest.Handle(Signed(sns_.SubscriptionConfirmation(kTopic)).dump());
  EXPECT_EQ(out.status, 403);
  out = ingest.Handle(
      Signed(sns_.Notification(
                 kTopic, test::CloudWatchAlarmMessage("web-1-disk-full", "ALARM", kInstance).dump()))
          .dump());
  EXPECT_EQ(out.status, 403);
  EXPECT_EQ(sns_.certificate_fetches(), 0);
  EXPECT_EQ(sns_.confirmations(), 0);
  EXPECT_TRUE(sink_.submitted().empty());
}

TEST_F(SnsRouteTest, MalformedBodiesAre400) {
  for (const std::string& body :
       {std::string("{\"Type\":"), std::string(""), std::string("[]"),
        Json{{"Type", "Notification"}}.dump()}) {
    SCOPED_TRACE(body);
    ApiResponse r = Post(body);
    EXPECT_EQ(r.status, 400) << r.body;
  }
  EXPECT_TRUE(sink_.submitted().empty());
  EXPECT_EQ(sns_.certificate_fetches(), 0);
}

TEST_F(SnsRouteTest, ACertificateThatCannotBeFetchedIs502) {
  Json m = sns_.Notification(kTopic, "x");
  sns_.Sign(m, 2, sns_.url("/SimpleNotificationService-missing.pem"));
  ApiResponse r = Post(m);
  EXPECT_EQ(r.status, 502) << r.body;
  EXPECT_TRUE(sink_.submitted().empty());
  EXPECT_TRUE(sink_.unmapped().empty());
}

}  // namespace
}  // namespace medic::server
