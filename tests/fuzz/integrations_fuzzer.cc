// What the other integrations of issue 14 read from outside, byte 0 choosing which:
//   0: a Slack interaction callback body (POST /api/v1/ingest/slack): ParseFormUrlEncoded and
//      ParseSlackInteraction (src/server/ingest/slack_interaction.h), and the signature of it;
//   1: an S3 answer (src/server/archive/s3_client.h): XmlElementText for each element medic
//      reads and DescribeS3Error, as a 200 and as a 403;
// No network, no clock.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "server/archive/s3_client.h"
#include "server/ingest/slack_interaction.h"
#include "server/ingest/slack_verify.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using namespace medic::server;

void Slack(std::string_view body) {
  auto form = ParseFormUrlEncoded(body);
  auto parsed = ParseSlackInteraction(body);
  if (parsed.has_value()) {
    // Accepted: the form parsed too, and the limits held.
    FUZZ_CHECK(form.has_value());
    FUZZ_CHECK(!parsed->type.empty());
    FUZZ_CHECK(!parsed->user_id.empty() && parsed->user_id.size() <= 64);
    FUZZ_CHECK(parsed->value.size() <= 256);
    FUZZ_CHECK(parsed->response_url.size() <= 1024);
    FUZZ_CHECK(parsed->action_id.size() <= 255 && parsed->block_id.size() <= 255);
  }
  const std::string sig = SlackSignature("8f742231b10e8888abcd99yyyzzz85a5", "1531420618", body);
  FUZZ_CHECK(sig.size() == 3 + 64 && sig.rfind("v0=", 0) == 0);
}

void S3Answer(std::string_view xml) {
  for (std::string_view name : {"UploadId", "ETag", "Code", "Message", "Key", "Bucket"}) {
    auto text = XmlElementText(xml, name);
    if (text.has_value()) {
      FUZZ_CHECK(text->size() <= xml.size());
    }
  }
  for (int status : {200, 403, 500}) {
    medic::HttpResponse r;
    r.status = status;
    r.body = std::string(xml);
    const std::string described = DescribeS3Error(r);
    FUZZ_CHECK(!described.empty());
    for (unsigned char c : described) {
      FUZZ_CHECK(c >= 0x20 && c != 0x7f);  // printable only: it ends up in logs and incidents
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    Slack(rest);
  } else {
    S3Answer(rest);
  }
  return 0;
}
