// The archive's s3 backend without a network: the SigV4 signer against AWS's published example,
// key encoding, S3's XML answers (also hostile ones), ETag arithmetic, the `archive.s3` config,
// and S3Uploader / Archive over a scripted fake HTTP client (single PUT, multipart, aborts,
// refusals). The real S3-compatible server is in s3rver_test.cc.

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <deque>
#include <map>

#include "core/files.h"
#include "core/sha256.h"
#include "server/app/server_app.h"
#include "server/archive/archive.h"
#include "server/archive/s3_client.h"
#include "server/archive/s3_config.h"
#include "tests/fakes/temp_dir.h"
#include "tests/server/config_errors.h"

namespace medic::server {
namespace {

// AWS's example "GET Object" request (Amazon S3 API Reference, "Signature Calculations for the
// Authorization Header: Transferring Payload in a Single Chunk"), with its published signature.
TEST(SigV4, MatchesAwsPublishedExample) {
  SigV4Input in;
  in.method = "GET";
  in.canonical_uri = "/test.txt";
  in.headers = {{"Host", "examplebucket.s3.amazonaws.com"},
                {"Range", "bytes=0-9"},
                {"x-amz-content-sha256",
                 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
                {"x-amz-date", "20130524T000000Z"}};
  in.payload_sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
  in.amz_date = "20130524T000000Z";
  in.region = "us-east-1";
  EXPECT_EQ(SigV4Authorization(in, "AKIAIOSFODNN7EXAMPLE",
                               "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
            "aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  // Another secret, another signature.
  EXPECT_EQ(SigV4Authorization(in, "AKIAIOSFODNN7EXAMPLE", "other").find("f0e8bdb8"),
            std::string::npos);
}

TEST(S3Keys, EncodingAndNaming) {
  EXPECT_EQ(S3UriEncode("a b/c+d~e_f.g-h", true), "a%20b/c%2Bd~e_f.g-h");
  EXPECT_EQ(S3UriEncode("a/b=c&d", false), "a%2Fb%3Dc%26d");
  EXPECT_EQ(S3UriEncode("\xc3\xa9", false), "%C3%A9");
  EXPECT_EQ(S3ObjectKey("medic/", "web-1", "20261130T001131Z-app.log"),
            "medic/web-1/20261130T001131Z-app.log");
  EXPECT_EQ(S3ObjectKey("", "web-1", "n"), "web-1/n");
  EXPECT_EQ(AmzDate(WallTime(std::chrono::seconds(1369353600))), "20130524T000000Z");
}

TEST(S3Xml, ReadsElementsAndRefusesGarbage) {
  const std::string created =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<InitiateMultipartUploadResult "
      "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>b</Bucket><Key>k</Key>"
      "<UploadId>VXBsb2FkIElE&amp;x&#x41;&#66;</UploadId></InitiateMultipartUploadResult>";
  EXPECT_EQ(XmlElementText(created, "UploadId"), "VXBsb2FkIElE&xAB");
  EXPECT_EQ(XmlElementText(created, "Key"), "k");
  EXPECT_EQ(XmlElementText("<ETag>&quot;abc&quot;</ETag>", "ETag"), "\"abc\"");
  EXPECT_EQ(XmlElementText("<Message>&lt;&gt;&apos;&#233;</Message>", "Message"),
            "<>'\xc3\xa9");
  struct Case {
    std::string xml;
  };
  for (const Case& c : std::vector<Case>{
           {""},
           {"<UploadId>"},                          // never closed
           {"</UploadId>x<UploadId>"},              // closed before opened
           {"<UploadId><X>y</X></UploadId>"},       // not a text element
           {"<UploadId>&bogus;</UploadId>"},        // unknown entity
           {"<UploadId>&amp</UploadId>"},           // unterminated entity
           {"<UploadId>&#0;</UploadId>"},           // NUL
           {"<UploadId>&#x110000;</UploadId>"},     // beyond Unicode
           {"<UploadId>&#99999999999;</UploadId>"}, // too many digits
           {"<UploadId>&#xZZ;</UploadId>"},
           {"<uploadid>x</uploadid>"},              // names are case-sensitive
           {std::string(2 << 20, '<') + "<UploadId>x</UploadId>"},  // beyond the first MiB
       }) {
    SCOPED_TRACE(c.xml.substr(0, 60));
    EXPECT_FALSE(XmlElementText(c.xml, "UploadId").has_value());
  }
  HttpResponse denied;
  denied.status = 403;
  denied.body =
      "<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><Message>The request "
      "signature we calculated does not match</Message></Error>";
  EXPECT_EQ(DescribeS3Error(denied),
            "403 SignatureDoesNotMatch: The request signature we calculated does not match");
  HttpResponse garbage;
  garbage.status = 502;
  garbage.body = std::string("bad\x01gateway") + std::string(500, 'x');
  const std::string d = DescribeS3Error(garbage);
  EXPECT_EQ(d.rfind("502: bad gateway", 0), 0u) << d;
  EXPECT_LT(d.size(), 220u);
}

TEST(S3Etag, Md5AndMultipart) {
  EXPECT_EQ(Md5Hex(""), "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(Md5Base64(""), "1B2M2Y8AsgTpgAmY7PhCfg==");
  Md5 m;
  m.Update("a");
  m.Update("b");
  EXPECT_EQ(m.HexDigest(), Md5Hex("ab"));
  // md5(md5("a") || md5("b")) computed independently (Python's hashlib).
  EXPECT_EQ(MultipartEtag({Md5Hex("a"), Md5Hex("b")}), "96e024ba2074fe77e8e965ba43a704be-2");
  EXPECT_EQ(NormalizeEtag(" \"D41D8CD98F00B204E9800998ECF8427E\" "),
            "d41d8cd98f00b204e9800998ecf8427e");
}

// ---- config ----

Result<S3Config> ParseText(const std::string& text, const std::string& file = "s.yaml") {
  S3Config c;
  YAML::Node node = YAML::Load(text);
  RETURN_IF_ERROR(ParseS3Yaml(node, file, c));
  return c;
}

EnvLookup Env(std::map<std::string, std::string> vars) {
  return [vars](const std::string& n) -> std::optional<std::string> {
    auto it = vars.find(n);
    return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
}

TEST(S3Config, ParsesEveryKey) {
  test::TempDir dir;
  ASSERT_TRUE(WriteFileAtomic(dir.File("secret"), "  s3cr3t\n", 0600).has_value());
  auto c = ParseText("{endpoint: 'http://127.0.0.1:9000', bucket: medic-logs, prefix: medic/, "
                     "region: eu-west-1, access_key_id: AK, secret_access_key_file: " +
                     dir.File("secret") +
                     ", session_token: tok, path_style: false, ca_file: /etc/ca.pem, "
                     "part_size: 16MiB, timeout: 30s}");
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->endpoint, "http://127.0.0.1:9000");
  EXPECT_EQ(c->bucket, "medic-logs");
  EXPECT_EQ(c->prefix, "medic/");
  EXPECT_EQ(c->region, "eu-west-1");
  EXPECT_EQ(c->access_key_id, "AK");
  EXPECT_EQ(c->secret_access_key, "s3cr3t");
  EXPECT_EQ(c->session_token, "tok");
  EXPECT_FALSE(c->PathStyle());
  EXPECT_EQ(c->ca_file, "/etc/ca.pem");
  EXPECT_EQ(c->part_size, uint64_t{16} << 20);
  EXPECT_EQ(c->timeout, Millis(30'000));
  ASSERT_TRUE(CompleteS3Config(*c, Env({}), "").has_value());
}

TEST(S3Config, DefaultsAndTheEnvironment) {
  auto c = ParseText("{bucket: medic-logs}");
  ASSERT_TRUE(c.has_value());
  ASSERT_TRUE(CompleteS3Config(*c, Env({{"AWS_ACCESS_KEY_ID", "AKENV"},
                                        {"AWS_SECRET_ACCESS_KEY", "secretenv"},
                                        {"AWS_SESSION_TOKEN", "tokenv"},
                                        {"AWS_DEFAULT_REGION", "ap-south-1"}}),
                               "")
                  .has_value());
  EXPECT_EQ(c->access_key_id, "AKENV");
  EXPECT_EQ(c->secret_access_key, "secretenv");
  EXPECT_EQ(c->session_token, "tokenv");
  EXPECT_EQ(c->region, "ap-south-1");
  // AWS itself: virtual-hosted addressing on the regional endpoint.
  EXPECT_EQ(c->EffectiveEndpoint(), "https://s3.ap-south-1.amazonaws.com");
  EXPECT_FALSE(c->PathStyle());

  // AWS_REGION wins over AWS_DEFAULT_REGION; the endpoint from AWS_ENDPOINT_URL_S3 means path
  // style; credentials in the file are not mixed with the environment's.
  auto d = ParseText("{bucket: medic-logs, access_key_id: AKFILE, secret_access_key: sfile}");
  ASSERT_TRUE(d.has_value());
  ASSERT_TRUE(CompleteS3Config(*d, Env({{"AWS_ACCESS_KEY_ID", "AKENV"},
                                        {"AWS_SECRET_ACCESS_KEY", "secretenv"},
                                        {"AWS_REGION", "eu-central-1"},
                                        {"AWS_DEFAULT_REGION", "ap-south-1"},
                                        {"AWS_ENDPOINT_URL", "http://other:1"},
                                        {"AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9000"}}),
                               "")
                  .has_value());
  EXPECT_EQ(d->access_key_id, "AKFILE");
  EXPECT_EQ(d->secret_access_key, "sfile");
  EXPECT_EQ(d->region, "eu-central-1");
  EXPECT_EQ(d->EffectiveEndpoint(), "http://127.0.0.1:9000");
  EXPECT_TRUE(d->PathStyle());
  EXPECT_EQ(d->part_size, uint64_t{8} << 20);
}

TEST(S3Config, MissingBucketOrCredentialsAreClearErrors) {
  auto c = ParseText("{region: us-east-1}");
  ASSERT_TRUE(c.has_value());
  auto s = CompleteS3Config(*c, Env({{"AWS_ACCESS_KEY_ID", "a"}, {"AWS_SECRET_ACCESS_KEY", "b"}}),
                            "s.yaml:3: ");
  ASSERT_FALSE(s.has_value());
  EXPECT_NE(s.error().message.find("s.yaml:3: archive backend s3 needs archive.s3.bucket"),
            std::string::npos)
      << s.error().message;
  auto d = ParseText("{bucket: medic-logs, access_key_id: AK}");
  ASSERT_TRUE(d.has_value());
  s = CompleteS3Config(*d, Env({{"AWS_SECRET_ACCESS_KEY", "fromenv"}}), "");
  ASSERT_FALSE(s.has_value());
  EXPECT_NE(s.error().message.find("needs credentials"), std::string::npos) << s.error().message;
}

TEST(S3Config, ErrorsNameFileAndLineAndNeverTheSecret) {
  test::ExpectConfigErrors({
      {"archive:\n  backend: s4\n", "s.yaml:2: archive.backend: 's4' is not a backend (dir, s3)"},
      {"archive:\n  backend: s3\n", "archive backend s3 needs archive.s3.bucket"},
      {"archive:\n  s3: [1]\n", "s.yaml:2: archive.s3 must be a mapping"},
      {"archive:\n  s3:\n    bucket: b1b\n    colour: red\n",
       "s.yaml:4: unknown archive.s3 key 'colour'"},
      {"archive:\n  s3:\n    part_size: 1MiB\n", "s.yaml:3: archive.s3.part_size: '1MiB' must be"},
      {"archive:\n  s3:\n    part_size: lots\n", "s.yaml:3: archive.s3.part_size"},
      {"archive:\n  s3:\n    endpoint: ftp://x\n", "s.yaml:3: archive.s3.endpoint: 'ftp://x'"},
      {"archive:\n  s3:\n    endpoint: http://x/path\n", "s.yaml:3: archive.s3.endpoint"},
      {"archive:\n  s3:\n    bucket: Bad_Bucket\n", "s.yaml:3: archive.s3.bucket"},
      {"archive:\n  s3:\n    path_style: maybe\n", "s.yaml:3: archive.s3.path_style: must be true"},
      {"archive:\n  s3:\n    timeout: 0s\n", "s.yaml:3: archive.s3.timeout"},
      {"archive:\n  s3:\n    bucket: [a, b]\n", "s.yaml:3: archive.s3.bucket: must be a single"},
      {"archive:\n  s3:\n    secret_access_key: hunter2\n    secret_access_key_file: /x\n",
       "s.yaml:4: archive.s3.secret_access_key_file: give secret_access_key or"},
      {"archive:\n  s3:\n    secret_access_key_file: /nonexistent/secret\n",
       "s.yaml:3: archive.s3.secret_access_key_file: cannot read '/nonexistent/secret'"},
      {"archive:\n  s3:\n    region: Not A Region\n", "s.yaml:3: archive.s3.region"},
  });
  // The secret is in no error message.
  test::TempDir dir;
  ASSERT_TRUE(WriteFileAtomic(dir.File("s.yaml"),
                              "archive:\n  backend: s3\n  s3:\n    secret_access_key: hunter2\n"
                              "    access_key_id: AK\n")
                  .has_value());
  auto r = LoadServerConfig(dir.File("s.yaml"));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message.find("hunter2"), std::string::npos) << r.error().message;
}

TEST(S3Config, TheServerConfigCarriesTheBackend) {
  test::TempDir dir;
  ASSERT_TRUE(WriteFileAtomic(dir.File("s.yaml"),
                              "archive:\n  max_age: 7d\n  backend: s3\n  s3:\n"
                              "    endpoint: http://127.0.0.1:9000\n    bucket: medic-logs\n"
                              "    access_key_id: S3RVER\n    secret_access_key: S3RVER\n")
                  .has_value());
  auto r = LoadServerConfig(dir.File("s.yaml"));
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->archive.backend, ArchiveOptions::Backend::kS3);
  EXPECT_EQ(r->archive.s3.bucket, "medic-logs");
  EXPECT_TRUE(r->archive.s3.PathStyle());
  auto dflt = LoadServerConfig(dir.File("none.yaml"));
  EXPECT_EQ(ServerConfig().archive.backend, ArchiveOptions::Backend::kDir);
}

// ---- the uploader over a scripted client ----

struct Exchange {
  HttpRequest request;
};

// Answers each request with the next scripted response (or, when a responder is set, by it) and
// records what was asked.
class ScriptedS3 {
 public:
  std::function<HttpResponse(const HttpRequest&)> respond;
  std::vector<HttpRequest> requests;

  S3Uploader::ClientFactory Factory() {
    return [this] { return std::make_unique<Client>(*this); };
  }

 private:
  class Client : public HttpClient {
   public:
    explicit Client(ScriptedS3& s) : s_(s) {}
    Result<HttpResponse> Do(const HttpRequest& r) override {
      s_.requests.push_back(r);
      return s_.respond(r);
    }

   private:
    ScriptedS3& s_;
  };
};

std::string Header(const HttpRequest& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) {
      return v;
    }
  }
  return "";
}

HttpResponse Answer(int status, std::string body = "", std::string etag = "") {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  if (!etag.empty()) {
    r.headers.emplace_back("ETag", "\"" + etag + "\"");
  }
  return r;
}

S3Config TestConfig() {
  S3Config c;
  c.endpoint = "http://127.0.0.1:9000";
  c.bucket = "medic-logs";
  c.prefix = "p/";
  c.region = "us-east-1";
  c.access_key_id = "AK";
  c.secret_access_key = "SECRET";
  c.part_size = kS3MinPartSize;
  return c;
}

// A store that behaves: the ETag of a PUT is its body's MD5; parts likewise; completion answers
// S3's multipart ETag.
HttpResponse WellBehaved(const HttpRequest& r, std::vector<std::string>* parts) {
  if (r.method == "POST" && r.url.find("?uploads=") != std::string::npos) {
    return Answer(200, "<InitiateMultipartUploadResult><UploadId>up/1+2</UploadId>"
                       "</InitiateMultipartUploadResult>");
  }
  if (r.method == "PUT") {
    if (Header(r, "content-md5") != Md5Base64(r.body)) {
      return Answer(400, "<Error><Code>BadDigest</Code></Error>");
    }
    if (r.url.find("partNumber=") != std::string::npos) {
      parts->push_back(Md5Hex(r.body));
    }
    return Answer(200, "", Md5Hex(r.body));
  }
  if (r.method == "POST") {
    return Answer(200, "<CompleteMultipartUploadResult><ETag>&quot;" + MultipartEtag(*parts) +
                           "&quot;</ETag></CompleteMultipartUploadResult>");
  }
  return Answer(204);
}

class S3UploaderTest : public ::testing::Test {
 protected:
  std::string MakeFile(size_t bytes) {
    std::string data(bytes, '\0');
    for (size_t i = 0; i < bytes; ++i) {
      data[i] = static_cast<char>('a' + (i * 7 + i / 4096) % 26);
    }
    EXPECT_TRUE(WriteFileAtomic(dir_.File("f.log"), data).has_value());
    return dir_.File("f.log");
  }
  test::TempDir dir_;
  ManualClock clock_;
  ScriptedS3 s3_;
  std::vector<std::string> parts_;
};

TEST_F(S3UploaderTest, SmallFileIsOneSignedPutWithContentMd5) {
  s3_.respond = [&](const HttpRequest& r) { return WellBehaved(r, &parts_); };
  S3Uploader up(TestConfig(), clock_, s3_.Factory());
  const std::string path = MakeFile(1000);
  auto where = up.Upload("p/web-1/n a.log", path);
  ASSERT_TRUE(where.has_value()) << where.error().message;
  EXPECT_EQ(*where, "s3://medic-logs/p/web-1/n a.log");
  ASSERT_EQ(s3_.requests.size(), 1u);
  const HttpRequest& put = s3_.requests[0];
  EXPECT_EQ(put.method, "PUT");
  EXPECT_EQ(put.url, "http://127.0.0.1:9000/medic-logs/p/web-1/n%20a.log");
  EXPECT_EQ(Header(put, "host"), "127.0.0.1:9000");
  EXPECT_EQ(Header(put, "x-amz-content-sha256"), Sha256Hex(put.body));
  EXPECT_EQ(Header(put, "x-amz-date"), "20270115T080000Z");
  EXPECT_EQ(Header(put, "content-md5"), Md5Base64(put.body));
  EXPECT_EQ(put.body, *ReadFile(path));
  const std::string auth = Header(put, "Authorization");
  EXPECT_EQ(auth.rfind("AWS4-HMAC-SHA256 Credential=AK/20270115/us-east-1/s3/aws4_request, "
                       "SignedHeaders=content-md5;host;x-amz-content-sha256;x-amz-date, "
                       "Signature=",
                       0),
            0u)
      << auth;
  EXPECT_EQ(auth.find("SECRET"), std::string::npos);
}

TEST_F(S3UploaderTest, VirtualHostedAddressingAndSessionToken) {
  s3_.respond = [&](const HttpRequest& r) { return WellBehaved(r, &parts_); };
  S3Config c = TestConfig();
  c.endpoint = "https://s3.eu-west-1.amazonaws.com:443";
  c.path_style = false;
  c.session_token = "TOKEN";
  S3Uploader up(c, clock_, s3_.Factory());
  ASSERT_TRUE(up.Upload("k", MakeFile(10)).has_value());
  ASSERT_EQ(s3_.requests.size(), 1u);
  EXPECT_EQ(s3_.requests[0].url, "https://medic-logs.s3.eu-west-1.amazonaws.com/k");
  EXPECT_EQ(Header(s3_.requests[0], "host"), "medic-logs.s3.eu-west-1.amazonaws.com");
  EXPECT_EQ(Header(s3_.requests[0], "x-amz-security-token"), "TOKEN");
  EXPECT_NE(Header(s3_.requests[0], "Authorization").find("x-amz-security-token"),
            std::string::npos);
}

TEST_F(S3UploaderTest, WrongEtagOrRefusalFailsNamingTheStoresAnswer) {
  S3Uploader up(TestConfig(), clock_, s3_.Factory());
  const std::string path = MakeFile(100);
  s3_.respond = [](const HttpRequest&) { return Answer(200, "", Md5Hex("something else")); };
  auto r = up.Upload("k", path);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(r.error().message.find("is not the MD5 of the file"), std::string::npos)
      << r.error().message;
  s3_.respond = [](const HttpRequest&) {
    return Answer(403, "<Error><Code>SignatureDoesNotMatch</Code><Message>no</Message></Error>");
  };
  r = up.Upload("k", path);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("upload to s3://medic-logs/k failed: PUT: 403 "
                                   "SignatureDoesNotMatch: no"),
            std::string::npos)
      << r.error().message;
  EXPECT_EQ(r.error().message.find("SECRET"), std::string::npos);
  s3_.respond = [](const HttpRequest&) -> HttpResponse { return Answer(200); };  // no ETag
  EXPECT_FALSE(up.Upload("k", path).has_value());
}

TEST_F(S3UploaderTest, LargeFileGoesUpInPartsAndTheObjectEtagIsChecked) {
  s3_.respond = [&](const HttpRequest& r) { return WellBehaved(r, &parts_); };
  S3Uploader up(TestConfig(), clock_, s3_.Factory());
  const std::string path = MakeFile(kS3MinPartSize * 2 + 1234);
  auto where = up.Upload("p/web-1/big.log", path);
  ASSERT_TRUE(where.has_value()) << where.error().message;
  ASSERT_EQ(s3_.requests.size(), 5u);  // create, 3 parts, complete
  EXPECT_EQ(s3_.requests[0].url, "http://127.0.0.1:9000/medic-logs/p/web-1/big.log?uploads=");
  const std::string id = "uploadId=up%2F1%2B2";
  EXPECT_EQ(s3_.requests[1].url,
            "http://127.0.0.1:9000/medic-logs/p/web-1/big.log?partNumber=1&" + id);
  EXPECT_EQ(s3_.requests[3].url,
            "http://127.0.0.1:9000/medic-logs/p/web-1/big.log?partNumber=3&" + id);
  EXPECT_EQ(s3_.requests[1].body.size(), kS3MinPartSize);
  EXPECT_EQ(s3_.requests[3].body.size(), 1234u);
  EXPECT_EQ(s3_.requests[1].body + s3_.requests[2].body + s3_.requests[3].body, *ReadFile(path));
  const HttpRequest& complete = s3_.requests[4];
  EXPECT_EQ(complete.method, "POST");
  EXPECT_EQ(complete.url, "http://127.0.0.1:9000/medic-logs/p/web-1/big.log?" + id);
  EXPECT_NE(complete.body.find("<Part><PartNumber>3</PartNumber><ETag>\"" + parts_[2] +
                               "\"</ETag></Part></CompleteMultipartUpload>"),
            std::string::npos)
      << complete.body;

  // A store that answers the whole object's MD5 as its ETag (s3rver does) is confirmed too.
  s3_.requests.clear();
  parts_.clear();
  const std::string whole = Md5Hex(*ReadFile(path));
  s3_.respond = [&](const HttpRequest& r) {
    if (r.method == "POST" && r.url.find("uploads=") == std::string::npos) {
      return Answer(200, "<CompleteMultipartUploadResult><ETag>\"" + whole +
                             "\"</ETag></CompleteMultipartUploadResult>");
    }
    return WellBehaved(r, &parts_);
  };
  EXPECT_TRUE(up.Upload("k", path).has_value());
}

TEST_F(S3UploaderTest, AFailedPartOrCompletionAbortsTheUpload) {
  S3Uploader up(TestConfig(), clock_, s3_.Factory());
  const std::string path = MakeFile(kS3MinPartSize * 2 + 1);
  struct Case {
    std::string name;
    std::function<std::optional<HttpResponse>(const HttpRequest&)> fault;
    std::string want;
    bool aborted = true;  // a completed upload is no longer abortable
  };
  const std::vector<Case> cases = {
      {"part 2 refused",
       [](const HttpRequest& r) -> std::optional<HttpResponse> {
         if (r.url.find("partNumber=2") != std::string::npos) {
           return Answer(400, "<Error><Code>BadDigest</Code><Message>md5</Message></Error>");
         }
         return std::nullopt;
       },
       "UploadPart 2: 400 BadDigest: md5"},
      {"part etag wrong",
       [](const HttpRequest& r) -> std::optional<HttpResponse> {
         if (r.url.find("partNumber=1") != std::string::npos) {
           return Answer(200, "", Md5Hex("x"));
         }
         return std::nullopt;
       },
       "UploadPart 1: the store's ETag"},
      {"complete 200 with an error body",
       [](const HttpRequest& r) -> std::optional<HttpResponse> {
         if (r.method == "POST" && r.url.find("uploads=") == std::string::npos) {
           return Answer(200, "<Error><Code>InternalError</Code><Message>x</Message></Error>");
         }
         return std::nullopt;
       },
       "CompleteMultipartUpload: 200 InternalError"},
      {"object etag wrong",
       [](const HttpRequest& r) -> std::optional<HttpResponse> {
         if (r.method == "POST" && r.url.find("uploads=") == std::string::npos) {
           return Answer(200, "<CompleteMultipartUploadResult><ETag>\"abc-3\"</ETag>"
                              "</CompleteMultipartUploadResult>");
         }
         return std::nullopt;
       },
       "the object's ETag 'abc-3'", false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    s3_.requests.clear();
    parts_.clear();
    s3_.respond = [&](const HttpRequest& r) {
      if (auto f = c.fault(r)) {
        return *f;
      }
      return WellBehaved(r, &parts_);
    };
    auto r = up.Upload("k", path);
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().message.find(c.want), std::string::npos) << r.error().message;
    ASSERT_FALSE(s3_.requests.empty());
    if (c.aborted) {
      EXPECT_EQ(s3_.requests.back().method, "DELETE");
      EXPECT_EQ(s3_.requests.back().url,
                "http://127.0.0.1:9000/medic-logs/k?uploadId=up%2F1%2B2");
    } else {
      EXPECT_EQ(s3_.requests.back().method, "POST");
    }
  }
  // No UploadId: nothing to abort.
  s3_.requests.clear();
  s3_.respond = [](const HttpRequest&) { return Answer(200, "<garbage"); };
  auto r = up.Upload("k", path);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("no UploadId"), std::string::npos) << r.error().message;
  EXPECT_EQ(s3_.requests.size(), 1u);
}

// ---- the archive with the s3 backend ----

class ArchiveS3Test : public S3UploaderTest {
 protected:
  std::unique_ptr<Archive> MakeArchive() {
    ArchiveOptions o;
    o.min_free_bytes = 0;
    o.backend = ArchiveOptions::Backend::kS3;
    o.s3 = TestConfig();
    auto a = std::make_unique<Archive>(dir_.File("archive"), clock_, o, s3_.Factory());
    EXPECT_TRUE(a->Init().has_value());
    return a;
  }
  Result<ArchivedFile> Archive1(Archive& a, const std::string& data) {
    auto id = a.Start("web-1", "/var/log/app.log", static_cast<int64_t>(data.size()));
    EXPECT_TRUE(id.has_value());
    EXPECT_TRUE(a.Append(*id, 0, data).has_value());
    return a.Finish(*id, Sha256Hex(data), static_cast<int64_t>(data.size()));
  }
  // Regular files under DIR/web-1 (the staged copies).
  size_t StagedFiles() {
    std::error_code ec;
    size_t n = 0;
    for (std::filesystem::directory_iterator it(dir_.File("archive/web-1"), ec), end;
         !ec && it != end; it.increment(ec)) {
      ++n;
    }
    return n;
  }
};

TEST_F(ArchiveS3Test, FinishAnswersOnlyOnceTheBucketHoldsTheFile) {
  s3_.respond = [&](const HttpRequest& r) { return WellBehaved(r, &parts_); };
  auto a = MakeArchive();
  const std::string data = "line 1\nline 2\n";
  auto f = Archive1(*a, data);
  ASSERT_TRUE(f.has_value()) << f.error().message;
  EXPECT_EQ(f->location, "s3://medic-logs/p/web-1/20270115T080000Z-app.log");
  EXPECT_EQ(f->sha256, Sha256Hex(data));
  ASSERT_EQ(s3_.requests.size(), 1u);
  EXPECT_EQ(s3_.requests[0].body, data);
  EXPECT_EQ(StagedFiles(), 0u) << "the staged copy is deleted after the upload";
  auto list = a->List(10);
  ASSERT_TRUE(list.has_value());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].location, f->location);
  EXPECT_EQ((*list)[0].sha256, Sha256Hex(data));
}

TEST_F(ArchiveS3Test, SameNameInTheSameSecondIsNeverPutTwice) {
  s3_.respond = [&](const HttpRequest& r) { return WellBehaved(r, &parts_); };
  auto a = MakeArchive();
  // The clock does not move: three archives of app.log in the same second.
  auto f1 = Archive1(*a, "one\n");
  auto f2 = Archive1(*a, "two\n");
  auto f3 = Archive1(*a, "three\n");
  ASSERT_TRUE(f1.has_value() && f2.has_value() && f3.has_value());
  EXPECT_EQ(f1->location, "s3://medic-logs/p/web-1/20270115T080000Z-app.log");
  EXPECT_EQ(f2->location, "s3://medic-logs/p/web-1/20270115T080000Z-1-app.log");
  EXPECT_EQ(f3->location, "s3://medic-logs/p/web-1/20270115T080000Z-2-app.log");
  ASSERT_EQ(s3_.requests.size(), 3u);
  EXPECT_NE(s3_.requests[0].url, s3_.requests[1].url);
  EXPECT_NE(s3_.requests[1].url, s3_.requests[2].url);
}

TEST_F(ArchiveS3Test, ARefusedUploadFailsTheFinishAndLeavesNothing) {
  s3_.respond = [](const HttpRequest&) {
    return Answer(403, "<Error><Code>SignatureDoesNotMatch</Code><Message>m</Message></Error>");
  };
  auto a = MakeArchive();
  auto f = Archive1(*a, "data\n");
  ASSERT_FALSE(f.has_value());
  EXPECT_EQ(f.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(f.error().message.find("403 SignatureDoesNotMatch"), std::string::npos)
      << f.error().message;
  EXPECT_EQ(StagedFiles(), 0u);
  EXPECT_EQ(a->uploads_in_progress(), 0u);
  EXPECT_TRUE(a->List(10)->empty());
  // A mismatching checksum never reaches the bucket.
  s3_.requests.clear();
  auto id = a->Start("web-1", "/var/log/app.log", 4);
  ASSERT_TRUE(a->Append(*id, 0, "abcd").has_value());
  auto bad = a->Finish(*id, Sha256Hex("abce"), 4);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_TRUE(s3_.requests.empty());
}

}  // namespace
}  // namespace medic::server
