// Alertmanager's webhook (src/server/ingest/alertmanager.*): the body as sent to POST
// /api/v1/ingest/alertmanager. Parsing and mapping must never throw, and what maps is a
// well-formed alert: an alarm name and a host, a time, a key.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "server/ingest/alertmanager.h"
#include "tests/fuzz/fuzz_check.h"

namespace server = medic::server;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  auto hook = server::ParseAlertmanagerWebhook(body, 100);
  if (!hook.has_value()) {
    FUZZ_CHECK(!hook.error().message.empty());
    return 0;
  }
  FUZZ_CHECK(hook->version == "4");
  FUZZ_CHECK(hook->alerts.size() <= 100);
  server::AlertmanagerConfig config;
  server::AlertmanagerRule rule;
  rule.match = {{"alertname", "A"}};
  rule.alarm_label = "medic_alarm";
  rule.host_label = "node";
  config.rules = {rule};
  for (const auto& a : hook->alerts) {
    FUZZ_CHECK(a.status == "firing" || a.status == "resolved");
    server::MappedAlert m = server::MapAlertmanagerAlert(a, config);
    FUZZ_CHECK(!m.summary.empty());
    if (m.alert.has_value()) {
      FUZZ_CHECK(!m.alert->alarm.empty() && !m.alert->host.empty() && !m.alert->key.empty());
      FUZZ_CHECK(m.alert->firing == (a.status == "firing"));
    } else {
      FUZZ_CHECK(!m.why.empty());
    }
  }
  return 0;
}
