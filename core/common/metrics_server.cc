#include "core/common/metrics_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "prometheus/text_serializer.h"

namespace grpo {
namespace {

absl::Status Errno(const std::string& what) {
  return absl::UnavailableError(absl::StrCat(what, ": ", std::strerror(errno)));
}

bool WriteAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// Resolves host (name or IPv4 literal) to an IPv4 socket address.
absl::StatusOr<sockaddr_in> Resolve(const std::string& host, int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  std::string h = host.empty() || host == "localhost" ? "127.0.0.1" : host;
  if (h == "0.0.0.0" || h == "*") {
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    return addr;
  }
  if (inet_pton(AF_INET, h.c_str(), &addr.sin_addr) == 1) return addr;
  addrinfo hints{};
  hints.ai_family = AF_INET;
  addrinfo* res = nullptr;
  if (getaddrinfo(h.c_str(), nullptr, &hints, &res) != 0 || res == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("cannot resolve host '", host, "'"));
  }
  addr.sin_addr = reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr;
  freeaddrinfo(res);
  return addr;
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    std::shared_ptr<prometheus::Registry> registry, const std::string& host, int port) {
  absl::StatusOr<sockaddr_in> addr = Resolve(host, port);
  if (!addr.ok()) return addr.status();
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("metrics server: socket");
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&*addr), sizeof(*addr)) != 0) {
    absl::Status s = Errno(absl::StrCat("metrics server: bind ", host, ":", port));
    ::close(fd);
    return s;
  }
  if (::listen(fd, 16) != 0) {
    absl::Status s = Errno("metrics server: listen");
    ::close(fd);
    return s;
  }
  sockaddr_in bound{};
  socklen_t len = sizeof(bound);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  std::unique_ptr<MetricsServer> server(new MetricsServer(std::move(registry), fd, ntohs(bound.sin_port)));
  if (::pipe2(server->wake_pipe_, O_CLOEXEC) != 0) return Errno("metrics server: pipe");
  server->thread_ = std::thread([s = server.get()] { s->Loop(); });
  return server;
}

MetricsServer::MetricsServer(std::shared_ptr<prometheus::Registry> registry, int listen_fd, int port)
    : registry_(std::move(registry)), listen_fd_(listen_fd), port_(port) {}

MetricsServer::~MetricsServer() {
  stop_ = true;
  if (wake_pipe_[1] >= 0) {
    char c = 0;
    (void)!::write(wake_pipe_[1], &c, 1);
  }
  if (thread_.joinable()) thread_.join();
  ::close(listen_fd_);
  if (wake_pipe_[0] >= 0) ::close(wake_pipe_[0]);
  if (wake_pipe_[1] >= 0) ::close(wake_pipe_[1]);
}

std::string MetricsServer::Render() const {
  std::ostringstream os;
  prometheus::TextSerializer().Serialize(os, registry_->Collect());
  return os.str();
}

void MetricsServer::Loop() {
  while (!stop_) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_pipe_[0], POLLIN, 0}};
    int n = ::poll(fds, 2, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents) return;
    if (fds[0].revents & POLLIN) {
      int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      HandleConnection(c);
      ::close(c);
    }
  }
}

void MetricsServer::HandleConnection(int fd) {
  // Read the request head with a bounded wait; a slow or silent client cannot stall
  // the server for more than a second.
  std::string req;
  char buf[2048];
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (req.find("\r\n\r\n") == std::string::npos && req.size() < 16384) {
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                    deadline - std::chrono::steady_clock::now()).count());
    if (left <= 0) return;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, left) <= 0) return;
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return;
    req.append(buf, static_cast<size_t>(n));
  }
  std::string line = req.substr(0, req.find("\r\n"));
  std::string status = "200 OK", body, type = "text/plain; version=0.0.4; charset=utf-8";
  if (line.rfind("GET /metrics", 0) == 0) {
    body = Render();
  } else if (line.rfind("GET /healthz", 0) == 0 || line.rfind("GET / ", 0) == 0) {
    body = "ok\n";
  } else if (line.rfind("GET ", 0) == 0) {
    status = "404 Not Found";
    body = "not found; metrics are at /metrics\n";
  } else {
    status = "405 Method Not Allowed";
    body = "only GET is supported\n";
  }
  WriteAll(fd, absl::StrCat("HTTP/1.1 ", status, "\r\nContent-Type: ", type,
                            "\r\nContent-Length: ", body.size(), "\r\nConnection: close\r\n\r\n", body));
}

absl::StatusOr<std::string> HttpGet(const std::string& host, int port, const std::string& path,
                                    int timeout_ms) {
  absl::StatusOr<sockaddr_in> addr = Resolve(host, port);
  if (!addr.ok()) return addr.status();
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("socket");
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&*addr), sizeof(*addr)) != 0) {
    absl::Status s = Errno(absl::StrCat("connect ", host, ":", port));
    ::close(fd);
    return s;
  }
  WriteAll(fd, absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: ", host, "\r\nConnection: close\r\n\r\n"));
  std::string resp;
  char buf[8192];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      absl::Status s = Errno(absl::StrCat("read from ", host, ":", port));
      ::close(fd);
      return s;
    }
    if (n == 0) break;
    resp.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  size_t head = resp.find("\r\n\r\n");
  if (head == std::string::npos) return absl::DataLossError("malformed HTTP response");
  if (resp.rfind("HTTP/1.1 200", 0) != 0) {
    return absl::UnavailableError(absl::StrCat("HTTP ", resp.substr(0, resp.find("\r\n"))));
  }
  return resp.substr(head + 4);
}

}  // namespace grpo
