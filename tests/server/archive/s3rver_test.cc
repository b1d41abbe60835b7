// The archive's s3 backend against a real S3-compatible server: s3rver (npm @20minutes/s3rver
// 5.0.0, which checks SigV4 signatures itself; tests/fakes/s3rver.js) on loopback. A wrong
// secret is refused; a file
// above the part size goes up in parts and the bucket then holds exactly the file.

#include <gtest/gtest.h>

#include "core/files.h"
#include "core/sha256.h"
#include "server/archive/archive.h"
#include "server/archive/s3_client.h"
#include "tests/fakes/s3rver.h"
#include "tests/fakes/temp_dir.h"

namespace medic::server {
namespace {

// libcurl, recording each request's method and URL.
class RecordingClient : public HttpClient {
 public:
  explicit RecordingClient(std::vector<std::string>* log) : log_(log) {}
  Result<HttpResponse> Do(const HttpRequest& r) override {
    log_->push_back(r.method + " " + r.url.substr(r.url.find('/', 8)));
    return real_->Do(r);
  }

 private:
  std::vector<std::string>* log_;
  std::unique_ptr<HttpClient> real_ = NewCurlHttpClient();
};

class S3rverTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { InitHttpClientLibrary(); }
  void SetUp() override {
    s3_ = std::make_unique<test::S3rver>(dir_.File("s3"), "medic-logs", dir_.File("s3.stderr"));
    ASSERT_TRUE(s3_->ok()) << ReadFile(dir_.File("s3.stderr")).value_or("");
  }
  // A file of `bytes` pseudo-random printable bytes.
  std::string MakeFile(const std::string& name, size_t bytes) {
    std::string data(bytes, '\0');
    uint32_t x = 12345;
    for (char& c : data) {
      x = x * 1103515245 + 12345;
      c = static_cast<char>(' ' + (x >> 16) % 94);
    }
    EXPECT_TRUE(WriteFileAtomic(dir_.File(name), data).has_value());
    return dir_.File(name);
  }

  test::TempDir dir_;
  SystemClock clock_;
  std::unique_ptr<test::S3rver> s3_;
};

TEST_F(S3rverTest, SignatureCheckingIsOnAWrongSecretIsRefused) {
  const std::string path = MakeFile("small.log", 1000);
  S3Uploader wrong(s3_->Config("not-the-secret"), clock_);
  auto refused = wrong.Upload("web-1/small.log", path);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(refused.error().message.find("403 SignatureDoesNotMatch"), std::string::npos)
      << refused.error().message;
  EXPECT_EQ(refused.error().message.find("not-the-secret"), std::string::npos);
  auto missing = s3_->Get("web-1/small.log");
  ASSERT_TRUE(missing.has_value()) << missing.error().message;
  EXPECT_EQ(missing->status, 404) << "a refused PUT stored nothing";

  S3Uploader right(s3_->Config(), clock_);
  auto ok = right.Upload("web-1/small.log", path);
  ASSERT_TRUE(ok.has_value()) << ok.error().message;
  EXPECT_EQ(*ok, "s3://medic-logs/web-1/small.log");
  auto got = s3_->Get("web-1/small.log");
  ASSERT_TRUE(got.has_value()) << got.error().message;
  EXPECT_EQ(got->status, 200);
  EXPECT_EQ(Sha256Hex(got->body), Sha256Hex(*ReadFile(path)));
}

TEST_F(S3rverTest, AFileAboveThePartSizeGoesUpInPartsAndTheObjectIsTheFile) {
  // 12 MiB + a bit in 5 MiB parts: three parts, the last one short.
  const std::string path = MakeFile("big.log", (size_t{12} << 20) + 4321);
  S3Config c = s3_->Config();
  c.part_size = kS3MinPartSize;
  c.prefix = "medic/";
  std::vector<std::string> sent;
  S3Uploader up(c, clock_, [&] { return std::make_unique<RecordingClient>(&sent); });
  const std::string key = S3ObjectKey(c.prefix, "web-1", "20261207T010000Z-big.log");
  auto where = up.Upload(key, path);
  ASSERT_TRUE(where.has_value()) << where.error().message;
  ASSERT_EQ(sent.size(), 5u);
  const std::string object = "/medic-logs/medic/web-1/20261207T010000Z-big.log";
  EXPECT_EQ(sent[0], "POST " + object + "?uploads=");
  EXPECT_EQ(sent[1].rfind("PUT " + object + "?partNumber=1&uploadId=", 0), 0u) << sent[1];
  EXPECT_EQ(sent[3].rfind("PUT " + object + "?partNumber=3&uploadId=", 0), 0u) << sent[3];
  EXPECT_EQ(sent[4].rfind("POST " + object + "?uploadId=", 0), 0u) << sent[4];
  EXPECT_EQ(*where, "s3://medic-logs/medic/web-1/20261207T010000Z-big.log");
  auto got = s3_->Get(key);
  ASSERT_TRUE(got.has_value()) << got.error().message;
  ASSERT_EQ(got->status, 200);
  EXPECT_EQ(got->body.size(), (size_t{12} << 20) + 4321);
  EXPECT_EQ(Sha256Hex(got->body), Sha256Hex(*ReadFile(path)));
  // (s3rver answers ListMultipartUploads with 501: that no upload is left open is the unit
  // test's, AFailedPartOrCompletionAbortsTheUpload.)
}

TEST_F(S3rverTest, AMultipartUploadWithAWrongSecretLeavesNoObject) {
  const std::string path = MakeFile("big.log", (size_t{6} << 20));
  S3Config c = s3_->Config("wrong");
  c.part_size = kS3MinPartSize;
  S3Uploader up(c, clock_);
  auto r = up.Upload("web-1/big.log", path);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("CreateMultipartUpload: 403 SignatureDoesNotMatch"),
            std::string::npos)
      << r.error().message;
  auto got = s3_->Get("web-1/big.log");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->status, 404);
}

}  // namespace
}  // namespace medic::server
