// An Amazon SNS delivery as POST /api/v1/ingest/sns receives it (src/server/ingest/sns_*):
// ParseSnsMessage, the string to sign, the URL checks of SigningCertURL and SubscribeURL, and,
// as a Notification's Message, ParseCloudWatchAlarm and MapCloudWatchAlarm. No network, no
// signature: those need a certificate (tests/server/ingest/sns_test.cc).

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "server/ingest/sns_message.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using namespace medic::server;

const SnsConfig& Config() {
  static const SnsConfig* config = [] {
    auto* c = new SnsConfig;
    c->topics = {"arn:aws:sns:eu-west-1:123456789012:medic-alarms"};
    c->alarms = {{"web-1-disk-full", "Disk-Critical-ASG"}};
    c->instances = {{"i-0abc1234def567890", "web-1"}};
    c->auto_scaling_groups = {{"web-asg", "web-2"}};
    return c;
  }();
  return *config;
}

void CheckUrl(const std::string& url) {
  if (CheckSnsUrl(url, Config().cert_host_pattern).has_value()) {
    // Accepted: https, and no user information before the host.
    FUZZ_CHECK(url.size() > 8);
    std::string authority = url.substr(8, url.find_first_of("/?#", 8) - 8);
    for (char& c : authority) {
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    FUZZ_CHECK(authority.find('@') == std::string::npos);
    FUZZ_CHECK(authority.find("amazonaws.com") != std::string::npos);
  }
}

void Alarm(std::string_view message) {
  auto alarm = ParseCloudWatchAlarm(message);
  if (!alarm.has_value()) {
    return;
  }
  auto mapped = MapCloudWatchAlarm(*alarm, Config(), nullptr, medic::FromUnixMillis(0));
  if (const auto* a = std::get_if<ExternalAlert>(&mapped)) {
    FUZZ_CHECK(a->source == "sns");
    FUZZ_CHECK(!a->host.empty() && !a->alarm.empty());
    FUZZ_CHECK(a->firing == (alarm->new_state == "ALARM"));
    FUZZ_CHECK(alarm->new_state == "ALARM" || alarm->new_state == "OK");
    FUZZ_CHECK(a->reason.find('\n') == std::string::npos);
  } else {
    FUZZ_CHECK(!std::get<SnsUnmapped>(mapped).why.empty());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  Alarm(text);
  auto m = ParseSnsMessage(text);
  if (!m.has_value()) {
    return 0;
  }
  const std::string signed_text = SnsStringToSign(*m);
  const std::string type_line = "Type\n" + std::string(SnsTypeName(m->type)) + "\n";
  FUZZ_CHECK(signed_text.rfind("Message\n", 0) == 0);
  FUZZ_CHECK(
      signed_text.size() >= type_line.size() &&
      signed_text.compare(signed_text.size() - type_line.size(), type_line.size(), type_line) == 0);
  CheckUrl(m->signing_cert_url);
  CheckUrl(m->subscribe_url);
  if (m->type == SnsType::kNotification) {
    Alarm(m->message);
  }
  return 0;
}
