#include "transport/plain_http_client.h"

#include <cctype>
#include <string>
#include <utility>

namespace medic {

namespace {

bool StartsWithHttp(std::string_view url) {
  constexpr std::string_view kPrefix = "http://";
  if (url.size() < kPrefix.size()) {
    return false;
  }
  for (size_t i = 0; i < kPrefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(url[i])) != kPrefix[i]) {
      return false;
    }
  }
  return true;
}

class SchemeRoutingHttpClient : public HttpClient {
 public:
  SchemeRoutingHttpClient(std::unique_ptr<HttpClient> plain,
                          std::function<std::unique_ptr<HttpClient>()> make_other)
      : plain_(std::move(plain)), make_other_(std::move(make_other)) {}

  Result<HttpResponse> Do(const HttpRequest& req) override {
    if (StartsWithHttp(req.url)) {
      return plain_->Do(req);
    }
    if (other_ == nullptr) {
      other_ = make_other_();
      if (other_ == nullptr) {
        return Unavailable(req.method + " " + req.url + ": no client for this URL scheme");
      }
    }
    return other_->Do(req);
  }

 private:
  std::unique_ptr<HttpClient> plain_;
  std::function<std::unique_ptr<HttpClient>()> make_other_;
  std::unique_ptr<HttpClient> other_;
};

}  // namespace

Result<HttpUrl> ParseHttpUrl(std::string_view url) { return ParseUrl(url, UrlScheme::kHttp); }

std::unique_ptr<HttpClient> NewPlainHttpClient(const PlainHttpOptions& options) {
  return NewHttp1Client(
      UrlScheme::kHttp,
      [](const HttpUrl& url, Deadline connect_deadline,
         Millis connect_timeout) -> Result<std::unique_ptr<ByteStream>> {
        ASSIGN_OR_RETURN(int fd, ConnectTcp(url, connect_deadline, connect_timeout));
        return NewSocketStream(fd);
      },
      options);
}

std::unique_ptr<HttpClient> NewSchemeRoutingHttpClient(
    std::unique_ptr<HttpClient> plain, std::function<std::unique_ptr<HttpClient>()> make_other) {
  return std::make_unique<SchemeRoutingHttpClient>(std::move(plain), std::move(make_other));
}

}  // namespace medic
