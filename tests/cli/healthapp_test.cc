#include "cli/healthapp.h"

#include <gtest/gtest.h>

#include "core/json.h"

namespace medic::cli {
namespace {

TEST(HandleHealthRequestTest, Routes) {
  struct Case {
    std::string_view method;
    std::string_view target;
    int status;
    std::string_view body;
  };
  const Case cases[] = {
      {"GET", "/health", 200, R"j({"host":"web-1","status":"ok"})j"},
      {"GET", "/health?probe=1", 200, R"j({"host":"web-1","status":"ok"})j"},
      {"HEAD", "/health", 200, R"j({"host":"web-1","status":"ok"})j"},
      {"GET", "/", 200, R"j({"host":"web-1","status":"ok"})j"},
      {"GET", "/index.html", 404, R"j({"error":"not found"})j"},
      {"GET", "/healthz", 404, R"j({"error":"not found"})j"},
      {"POST", "/health", 404, R"j({"error":"not found"})j"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.method) + " " + std::string(c.target));
    const HealthResponse r = HandleHealthRequest(c.method, c.target, "web-1");
    EXPECT_EQ(r.status, c.status);
    EXPECT_EQ(r.content_type, "application/json");
    EXPECT_EQ(ParseJson(r.body).value(), ParseJson(c.body).value());
  }
}

TEST(RunHealthAppTest, RejectsABadListenAddress) {
  std::ostringstream out;
  EXPECT_FALSE(RunHealthApp("nonsense", out).has_value());
  EXPECT_FALSE(RunHealthApp("host.invalid:0", out).has_value());
  EXPECT_EQ(out.str(), "");
}

}  // namespace
}  // namespace medic::cli
