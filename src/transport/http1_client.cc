#include "transport/http1_client.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>
#include <utility>
#include <vector>

namespace medic {

namespace {

using Steady = std::chrono::steady_clock;

constexpr size_t kMaxStoredHeaders = 256;

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

bool ContainsTokenIgnoreCase(std::string_view list, std::string_view token) {
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t end = list.find(',', pos);
    if (end == std::string_view::npos) {
      end = list.size();
    }
    std::string_view item = list.substr(pos, end - pos);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) {
      item.remove_prefix(1);
    }
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) {
      item.remove_suffix(1);
    }
    if (EqualsIgnoreCase(item, token)) {
      return true;
    }
    pos = end + 1;
  }
  return false;
}

bool HasCrOrLf(std::string_view s) { return s.find_first_of("\r\n") != std::string_view::npos; }

// Milliseconds left until `deadline` for poll(): at least 0, at most INT_MAX.
int MillisLeft(Deadline deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Steady::now()).count();
  return static_cast<int>(std::clamp<int64_t>(left, 0, 0x7fffffff));
}

Error ErrnoError(const std::string& what, int err) {
  return Unavailable(what + ": " + std::strerror(err));
}

// The errors of one request: `prefix` is "METHOD URL".
class Failure {
 public:
  explicit Failure(std::string prefix) : prefix_(std::move(prefix)) {}
  Error Unavailable(const std::string& what) const {
    return medic::Unavailable(prefix_ + ": " + what);
  }
  // A stream's or connector's error, same code, with the prefix.
  Error Wrap(const Error& e) const { return Error{e.code, prefix_ + ": " + e.message}; }

 private:
  std::string prefix_;
};

class SocketStream : public ByteStream {
 public:
  explicit SocketStream(int fd) : fd_(fd) {}
  ~SocketStream() override { ::close(fd_); }

  Status Write(std::string_view data, Deadline deadline) override {
    size_t sent = 0;
    while (sent < data.size()) {
      const ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n >= 0) {
        sent += static_cast<size_t>(n);
        continue;
      }
      if (errno == EINTR) {
        continue;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        RETURN_IF_ERROR(WaitForFd(fd_, POLLOUT, deadline, "sending the request"));
        continue;
      }
      return ErrnoError("send", errno);
    }
    return OkStatus();
  }

  Result<size_t> Read(char* buf, size_t size, Deadline deadline) override {
    for (;;) {
      const ssize_t n = ::recv(fd_, buf, size, 0);
      if (n >= 0) {
        return static_cast<size_t>(n);
      }
      if (errno == EINTR) {
        continue;
      }
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        return ErrnoError("receive", errno);
      }
      RETURN_IF_ERROR(WaitForFd(fd_, POLLIN, deadline, "waiting for the response"));
    }
  }

  bool IdleAndOpen() override {
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, 0) == 0;  // readable: closed by the server, or unexpected bytes
  }

 private:
  int fd_;
};

// Buffered reads from a stream, bounded by a deadline.
class Reader {
 public:
  Reader(ByteStream& stream, Deadline deadline, const Failure& fail)
      : stream_(stream), deadline_(deadline), fail_(fail) {}

  // Reads more bytes into the buffer. Returns false at end of stream.
  Result<bool> Fill() {
    char chunk[16 * 1024];
    auto n = stream_.Read(chunk, sizeof(chunk), deadline_);
    if (!n) {
      return fail_.Wrap(n.error());
    }
    if (*n == 0) {
      return false;
    }
    buf_.append(chunk, *n);
    received_ += *n;
    return true;
  }

  // One line without its CRLF (a bare LF is accepted); `*budget` bounds the bytes consumed.
  Result<std::string> Line(size_t* budget, const char* what) {
    for (;;) {
      const size_t eol = buf_.find('\n', pos_);
      if (eol != std::string::npos) {
        const size_t used = eol + 1 - pos_;
        if (used > *budget) {
          break;
        }
        *budget -= used;
        std::string line = buf_.substr(pos_, eol - pos_);
        pos_ = eol + 1;
        if (!line.empty() && line.back() == '\r') {
          line.pop_back();
        }
        return line;
      }
      if (buf_.size() - pos_ > *budget) {
        break;
      }
      Compact();
      ASSIGN_OR_RETURN(bool more, Fill());
      if (!more) {
        if (received_ == 0) {
          return fail_.Unavailable("Empty reply from server");
        }
        return fail_.Unavailable(std::string("connection closed in the ") + what);
      }
    }
    return fail_.Unavailable(std::string("response too large: ") + what + " exceeds the limit");
  }

  // Appends exactly n bytes to out.
  Status Exactly(size_t n, std::string* out) {
    while (buf_.size() - pos_ < n) {
      const size_t have = buf_.size() - pos_;
      out->append(buf_, pos_, have);
      n -= have;
      buf_.clear();
      pos_ = 0;
      ASSIGN_OR_RETURN(bool more, Fill());
      if (!more) {
        return fail_.Unavailable("connection closed in the middle of the body");
      }
    }
    out->append(buf_, pos_, n);
    pos_ += n;
    return OkStatus();
  }

  // Appends everything up to the end of the stream, at most `limit` bytes in all.
  Status ToEnd(std::string* out, size_t limit) {
    for (;;) {
      out->append(buf_, pos_, std::string::npos);
      buf_.clear();
      pos_ = 0;
      if (out->size() > limit) {
        return fail_.Unavailable("response body larger than " + std::to_string(limit) + " bytes");
      }
      ASSIGN_OR_RETURN(bool more, Fill());
      if (!more) {
        return OkStatus();
      }
    }
  }

  // Appends what is left of the stream, at most `limit` bytes in all; true when more followed
  // (left unread).
  Result<bool> UpTo(std::string* out, size_t limit) {
    for (;;) {
      const size_t take = std::min(buf_.size() - pos_, limit - std::min(limit, out->size()));
      out->append(buf_, pos_, take);
      pos_ += take;
      if (pos_ < buf_.size()) {
        return true;
      }
      buf_.clear();
      pos_ = 0;
      ASSIGN_OR_RETURN(bool more, Fill());
      if (!more) {
        return false;
      }
    }
  }

  size_t received() const { return received_; }
  bool drained() const { return pos_ == buf_.size(); }

 private:
  void Compact() {
    if (pos_ > 0) {
      buf_.erase(0, pos_);
      pos_ = 0;
    }
  }

  ByteStream& stream_;
  Deadline deadline_;
  const Failure& fail_;
  std::string buf_;
  size_t pos_ = 0;
  size_t received_ = 0;
};

Result<size_t> ParseSize(std::string_view s, int base, const Failure& fail, const char* what) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  size_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) {
    return fail.Unavailable(std::string("malformed ") + what + ": \"" +
                            std::string(s.substr(0, 40)) + "\"");
  }
  return v;
}

struct Exchange {
  HttpResponse response;
  bool reusable = false;
};

// Reads one response (after any interim 1xx answers) from the connection.
Result<Exchange> ReadResponse(Reader& in, const HttpRequest& req, const Http1Options& opt,
                              const Failure& fail) {
  Exchange ex;
  HttpResponse& resp = ex.response;
  size_t budget = opt.max_header_bytes;
  bool http11 = false;
  bool close = false;
  bool keep_alive = false;
  bool chunked = false;
  std::optional<size_t> content_length;
  for (;;) {
    ASSIGN_OR_RETURN(std::string status_line, in.Line(&budget, "status line"));
    // "HTTP/1.1 200 OK"
    if (status_line.size() < 12 || status_line.compare(0, 7, "HTTP/1.") != 0 ||
        status_line[8] != ' ') {
      return fail.Unavailable("malformed response: \"" + status_line.substr(0, 40) + "\"");
    }
    ASSIGN_OR_RETURN(size_t status, ParseSize(std::string_view(status_line).substr(9, 3), 10, fail,
                                              "status code"));
    if (status < 100 || status > 999 || (status_line.size() > 12 && status_line[12] != ' ')) {
      return fail.Unavailable("malformed response: \"" + status_line.substr(0, 40) + "\"");
    }
    http11 = status_line[7] == '1';
    resp.status = static_cast<int>(status);
    resp.headers.clear();
    resp.content_type.clear();
    close = false;
    keep_alive = false;
    chunked = false;
    content_length.reset();
    for (;;) {
      ASSIGN_OR_RETURN(std::string line, in.Line(&budget, "header"));
      if (line.empty()) {
        break;
      }
      const size_t colon = line.find(':');
      if (colon == std::string::npos || colon == 0) {
        return fail.Unavailable("malformed header line: \"" + line.substr(0, 40) + "\"");
      }
      std::string_view name(line.data(), colon);
      std::string_view value = std::string_view(line).substr(colon + 1);
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
        value.remove_prefix(1);
      }
      while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) {
        value.remove_suffix(1);
      }
      if (EqualsIgnoreCase(name, "content-length")) {
        ASSIGN_OR_RETURN(size_t n, ParseSize(value, 10, fail, "Content-Length"));
        if (content_length && *content_length != n) {
          return fail.Unavailable("conflicting Content-Length headers");
        }
        content_length = n;
      } else if (EqualsIgnoreCase(name, "transfer-encoding")) {
        chunked = ContainsTokenIgnoreCase(value, "chunked");
        if (!chunked) {
          return fail.Unavailable("unsupported Transfer-Encoding: " + std::string(value));
        }
      } else if (EqualsIgnoreCase(name, "connection")) {
        close = close || ContainsTokenIgnoreCase(value, "close");
        keep_alive = keep_alive || ContainsTokenIgnoreCase(value, "keep-alive");
      } else if (EqualsIgnoreCase(name, "content-type")) {
        resp.content_type = std::string(value);
      }
      if (resp.headers.size() < kMaxStoredHeaders) {
        resp.headers.emplace_back(std::string(name), std::string(value));
      }
    }
    if (resp.status >= 200 || resp.status == 101) {
      break;
    }
    // An interim answer (100 Continue, 103 Early Hints): the real one follows.
  }
  if (resp.status == 101) {
    return fail.Unavailable("unexpected 101 Switching Protocols");
  }
  const bool no_body = req.method == "HEAD" || resp.status == 204 || resp.status == 304;
  // HttpRequest::max_body_bytes (at most the client's limit): the body is cut there, the rest
  // left unread. 0: no cut, a body over the limit is an error.
  const size_t cut =
      req.max_body_bytes > 0 ? std::min(req.max_body_bytes, opt.max_body_bytes) : 0;
  bool delimited = true;
  if (no_body) {
    // Nothing follows the header.
  } else if (chunked) {
    for (;;) {
      size_t line_budget = 1024;
      ASSIGN_OR_RETURN(std::string size_line, in.Line(&line_budget, "chunk size"));
      const size_t semi = size_line.find(';');
      ASSIGN_OR_RETURN(
          size_t n, ParseSize(std::string_view(size_line).substr(0, semi), 16, fail, "chunk size"));
      if (n == 0) {
        break;
      }
      if (cut > 0 && n > cut - resp.body.size()) {
        RETURN_IF_ERROR(in.Exactly(cut - resp.body.size(), &resp.body));
        resp.body_truncated = true;
        break;
      }
      if (n > opt.max_body_bytes - resp.body.size()) {
        return fail.Unavailable("response body larger than " + std::to_string(opt.max_body_bytes) +
                                " bytes");
      }
      RETURN_IF_ERROR(in.Exactly(n, &resp.body));
      ASSIGN_OR_RETURN(std::string crlf, in.Line(&line_budget, "chunk end"));
      if (!crlf.empty()) {
        return fail.Unavailable("malformed chunked body");
      }
    }
    size_t trailer_budget = opt.max_header_bytes;
    while (!resp.body_truncated) {  // trailer fields, ignored
      ASSIGN_OR_RETURN(std::string trailer, in.Line(&trailer_budget, "trailer"));
      if (trailer.empty()) {
        break;
      }
    }
  } else if (content_length && cut > 0 && *content_length > cut) {
    RETURN_IF_ERROR(in.Exactly(cut, &resp.body));
    resp.body_truncated = true;
  } else if (content_length) {
    if (*content_length > opt.max_body_bytes) {
      return fail.Unavailable("response body larger than " + std::to_string(opt.max_body_bytes) +
                              " bytes");
    }
    resp.body.reserve(*content_length);
    RETURN_IF_ERROR(in.Exactly(*content_length, &resp.body));
  } else {
    delimited = false;  // the body ends when the server closes the connection
    if (cut > 0) {
      ASSIGN_OR_RETURN(resp.body_truncated, in.UpTo(&resp.body, cut));
    } else {
      RETURN_IF_ERROR(in.ToEnd(&resp.body, opt.max_body_bytes));
    }
  }
  ex.reusable =
      delimited && !resp.body_truncated && !close && (http11 || keep_alive) && in.drained();
  return ex;
}

class Http1Client : public HttpClient {
 public:
  Http1Client(UrlScheme scheme, StreamConnector connect, Http1Options options)
      : scheme_(scheme), connect_(std::move(connect)), opt_(options) {}

  Result<HttpResponse> Do(const HttpRequest& req) override {
    const Failure fail(req.method + " " + req.url);
    auto url = ParseUrl(req.url, scheme_);
    if (!url) {
      return InvalidArgument(req.method + " " + req.url + ": " + url.error().message);
    }
    ASSIGN_OR_RETURN(std::string wire, Serialize(req, *url));
    const Deadline start = Steady::now();
    const Deadline deadline = req.timeout.count() > 0 ? start + req.timeout : Deadline::max();
    Deadline connect_deadline = deadline;
    if (req.connect_timeout.count() > 0) {
      connect_deadline = std::min(connect_deadline, start + req.connect_timeout);
    }
    const std::string key = url->host + " " + url->port;
    std::unique_ptr<ByteStream> conn = TakeIdle(key);
    const bool reused = conn != nullptr;
    bool retry = false;
    auto result = Attempt(conn, req, *url, wire, deadline, connect_deadline, fail, &retry);
    if (!result && reused && retry) {
      // The idle connection had been closed by the server before it saw this request: once
      // more on a new connection (what curl does too).
      conn.reset();
      result = Attempt(conn, req, *url, wire, deadline, connect_deadline, fail, &retry);
    }
    if (!result) {
      return result.error();
    }
    if (result->reusable && conn != nullptr) {
      PutIdle(key, std::move(conn));
    }
    return std::move(result->response);
  }

 private:
  struct Idle {
    std::string key;
    std::unique_ptr<ByteStream> stream;
  };

  // A body this large is written after the head, from the request itself, rather than copied
  // behind the head (archive chunks are 4 MiB; TCP_NODELAY keeps the two writes from waiting).
  static constexpr size_t kBodyApartBytes = 64 * 1024;
  static bool SendsBody(const HttpRequest& req) {
    return req.method != "GET" && req.method != "HEAD";
  }
  static bool BodyApart(const HttpRequest& req) {
    return SendsBody(req) && req.body.size() >= kBodyApartBytes;
  }

  // The request's head, and its body unless BodyApart.
  Result<std::string> Serialize(const HttpRequest& req, const HttpUrl& url) const {
    if (req.method.empty() || req.method.find_first_of(" \r\n\t") != std::string::npos) {
      return InvalidArgument("invalid HTTP method \"" + req.method + "\"");
    }
    const bool send_body = SendsBody(req);
    std::string out;
    out.reserve(256 + (BodyApart(req) ? 0 : req.body.size()));
    out += req.method;
    out += ' ';
    out += url.target;
    out += " HTTP/1.1\r\n";
    bool have_host = false;
    bool have_accept = false;
    for (const auto& [name, value] : req.headers) {
      if (name.empty() || HasCrOrLf(name) || HasCrOrLf(value) ||
          name.find(':') != std::string::npos) {
        return InvalidArgument("invalid header \"" + name + "\"");
      }
      if (EqualsIgnoreCase(name, "content-length") || EqualsIgnoreCase(name, "transfer-encoding") ||
          EqualsIgnoreCase(name, "connection")) {
        continue;  // this client frames the message itself
      }
      have_host = have_host || EqualsIgnoreCase(name, "host");
      have_accept = have_accept || EqualsIgnoreCase(name, "accept");
      out += name;
      out += ": ";
      out += value;
      out += "\r\n";
    }
    if (!have_host) {
      out += "Host: " + url.host_header + "\r\n";
    }
    if (!have_accept) {
      out += "Accept: */*\r\n";
    }
    if (send_body) {
      out += "Content-Length: " + std::to_string(req.body.size()) + "\r\n";
    }
    out += "\r\n";
    if (send_body && !BodyApart(req)) {
      out += req.body;
    }
    return out;
  }

  // One request on `conn` (a new connection when null; conn is set to it, and reset when the
  // attempt fails). *retry tells whether a failure happened on a reused connection before any
  // byte of the answer arrived, other than a timeout.
  Result<Exchange> Attempt(std::unique_ptr<ByteStream>& conn, const HttpRequest& req,
                           const HttpUrl& url, const std::string& wire, Deadline deadline,
                           Deadline connect_deadline, const Failure& fail, bool* retry) {
    *retry = false;
    const bool reused = conn != nullptr;
    if (!reused) {
      auto made = connect_(url, connect_deadline, req.connect_timeout);
      if (!made) {
        return fail.Wrap(made.error());
      }
      conn = std::move(*made);
    }
    Status sent = conn->Write(wire, deadline);
    if (sent && BodyApart(req)) {
      sent = conn->Write(req.body, deadline);
    }
    if (!sent) {
      *retry = reused && sent.error().code == ErrorCode::kUnavailable;
      conn.reset();
      return fail.Wrap(sent.error());
    }
    Reader in(*conn, deadline, fail);
    auto ex = ReadResponse(in, req, opt_, fail);
    if (!ex) {
      *retry = reused && in.received() == 0 &&
               ex.error().code == ErrorCode::kUnavailable;  // closed or reset, not a timeout
      conn.reset();
    }
    return ex;
  }

  // An idle connection to `key` the server has not closed meanwhile, or null.
  std::unique_ptr<ByteStream> TakeIdle(const std::string& key) {
    for (size_t i = 0; i < idle_.size(); ++i) {
      if (idle_[i].key != key) {
        continue;
      }
      std::unique_ptr<ByteStream> stream = std::move(idle_[i].stream);
      idle_.erase(idle_.begin() + static_cast<std::ptrdiff_t>(i));
      if (!stream->IdleAndOpen()) {
        return nullptr;
      }
      return stream;
    }
    return nullptr;
  }

  void PutIdle(const std::string& key, std::unique_ptr<ByteStream> stream) {
    if (opt_.max_idle_connections == 0) {
      return;
    }
    if (idle_.size() >= opt_.max_idle_connections) {
      idle_.erase(idle_.begin());
    }
    idle_.push_back({key, std::move(stream)});
  }

  UrlScheme scheme_;
  StreamConnector connect_;
  Http1Options opt_;
  std::vector<Idle> idle_;
};

}  // namespace

Status WaitForFd(int fd, short events, Deadline deadline, const char* what) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, MillisLeft(deadline));
    if (n > 0) {
      return OkStatus();
    }
    if (n == 0) {
      return DeadlineExceeded(std::string("timed out ") + what);
    }
    if (errno != EINTR) {
      return ErrnoError("poll", errno);
    }
  }
}

Result<int> ConnectTcp(const HttpUrl& url, Deadline deadline, Millis connect_timeout) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* list = nullptr;
  const int rc = ::getaddrinfo(url.host.c_str(), url.port.c_str(), &hints, &list);
  if (rc != 0) {
    return Unavailable("could not resolve host " + url.host + ": " + ::gai_strerror(rc));
  }
  Error last = Unavailable("no address for host " + url.host);
  for (addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    const int fd =
        ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      last = ErrnoError("socket", errno);
      continue;
    }
    int err = 0;
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      err = errno;
      if (err == EINPROGRESS) {
        pollfd p{fd, POLLOUT, 0};
        int n;
        do {
          n = ::poll(&p, 1, MillisLeft(deadline));
        } while (n < 0 && errno == EINTR);
        if (n == 0) {
          ::close(fd);
          ::freeaddrinfo(list);
          return DeadlineExceeded("connect timed out after " +
                                  std::to_string(connect_timeout.count()) + " ms");
        }
        socklen_t len = sizeof(err);
        if (n < 0 || ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
          err = errno;
        }
      }
    }
    if (err != 0) {
      ::close(fd);
      last = ErrnoError("connect to " + url.host_header, err);
      continue;
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    ::freeaddrinfo(list);
    return fd;
  }
  ::freeaddrinfo(list);
  return last;
}

std::unique_ptr<ByteStream> NewSocketStream(int fd) { return std::make_unique<SocketStream>(fd); }

std::unique_ptr<HttpClient> NewHttp1Client(UrlScheme scheme, StreamConnector connect,
                                           const Http1Options& options) {
  return std::make_unique<Http1Client>(scheme, std::move(connect), options);
}

Result<HttpUrl> ParseUrl(std::string_view url, UrlScheme scheme) {
  const std::string_view prefix = scheme == UrlScheme::kHttps ? "https://" : "http://";
  const int default_port = scheme == UrlScheme::kHttps ? 443 : 80;
  if (url.size() < prefix.size() || !EqualsIgnoreCase(url.substr(0, prefix.size()), prefix)) {
    return InvalidArgument("not an " + std::string(prefix) + " URL");
  }
  std::string_view rest = url.substr(prefix.size());
  if (const size_t hash = rest.find('#'); hash != std::string_view::npos) {
    rest = rest.substr(0, hash);
  }
  const size_t path_start = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, path_start);
  HttpUrl out;
  if (path_start == std::string_view::npos) {
    out.target = "/";
  } else if (rest[path_start] == '?') {
    out.target = "/" + std::string(rest.substr(path_start));
  } else {
    out.target = std::string(rest.substr(path_start));
  }
  if (authority.find('@') != std::string_view::npos) {
    return InvalidArgument("user info in URLs is not supported");
  }
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      return InvalidArgument("unterminated IPv6 address");
    }
    out.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return InvalidArgument("bad authority");
      }
      port = after.substr(1);
    }
  } else {
    const size_t colon = authority.rfind(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
    }
  }
  if (out.host.empty() || HasCrOrLf(out.host) ||
      out.host.find_first_of(" \t") != std::string::npos) {
    return InvalidArgument("missing or bad host");
  }
  if (HasCrOrLf(out.target) || out.target.find_first_of(" \t") != std::string::npos) {
    return InvalidArgument("spaces or line breaks in the path");
  }
  int port_number = default_port;
  if (!port.empty()) {
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), port_number);
    if (ec != std::errc() || end != port.data() + port.size() || port_number < 1 ||
        port_number > 65535) {
      return InvalidArgument("bad port \"" + std::string(port) + "\"");
    }
  }
  out.port = std::to_string(port_number);
  const bool v6 = out.host.find(':') != std::string::npos;
  out.host_header = v6 ? "[" + out.host + "]" : out.host;
  if (port_number != default_port) {
    out.host_header += ":" + out.port;
  }
  return out;
}

}  // namespace medic
