#include "distill/dist/socket.h"

#include "common/error.h"

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

namespace mp::dist {
namespace {

using Clock = std::chrono::steady_clock;

// Waits until fd is ready for `events`; false on timeout. timeout_s <= 0 waits without limit.
bool wait_ready(int fd, short events, double timeout_s) {
  const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
  for (;;) {
    int ms = -1;
    if (timeout_s > 0) {
      const double left = std::chrono::duration<double>(end - Clock::now()).count();
      if (left <= 0) return false;
      ms = static_cast<int>(std::min(left * 1000.0, 1e9)) + 1;
    }
    pollfd p{fd, events, 0};
    const int r = ::poll(&p, 1, ms);
    if (r > 0) return true;  // readable, writable, or an error / hang-up the next call reports
    if (r < 0 && errno != EINTR) throw SocketError(std::string("poll: ") + std::strerror(errno), false);
  }
}

bool is_loopback(const std::string& host) {
  if (host == "localhost") return true;
  in_addr a{};
  return ::inet_pton(AF_INET, host.c_str(), &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

// Resolves an IPv4 address; false (with the reason) when the name does not resolve.
bool resolve(const std::string& host, int port, sockaddr_in* out, std::string* why) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (rc != 0 || !res) {
    if (why) *why = std::string("cannot resolve '") + host + "': " + ::gai_strerror(rc);
    return false;
  }
  std::memcpy(out, res->ai_addr, sizeof(sockaddr_in));
  ::freeaddrinfo(res);
  return true;
}

}  // namespace

Socket& Socket::operator=(Socket&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

void Socket::close() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void Socket::shutdown() noexcept {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
}

void Socket::send_all(const void* data, size_t n, double timeout_s) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t k = ::send(fd_, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (k > 0) {
      p += k, n -= static_cast<size_t>(k);
      continue;
    }
    if (k < 0 && errno == EINTR) continue;
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!wait_ready(fd_, POLLOUT, timeout_s)) throw SocketError("send timed out", true);
      continue;
    }
    throw SocketError(std::string("connection lost (") + std::strerror(errno) + ")", false);
  }
}

void Socket::recv_all(void* data, size_t n, double timeout_s) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    const ssize_t k = ::recv(fd_, p, n, MSG_DONTWAIT);
    if (k > 0) {
      p += k, n -= static_cast<size_t>(k);
      continue;
    }
    if (k == 0) throw SocketError("connection closed by the peer", false);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!wait_ready(fd_, POLLIN, timeout_s)) throw SocketError("receive timed out", true);
      continue;
    }
    throw SocketError(std::string("connection lost (") + std::strerror(errno) + ")", false);
  }
}

void send_message(Socket& s, uint32_t type, const std::string& payload, double timeout_s) {
  uint32_t head[2] = {type, static_cast<uint32_t>(payload.size())};
  std::string buf(reinterpret_cast<const char*>(head), sizeof(head));
  buf += payload;
  s.send_all(buf.data(), buf.size(), timeout_s);
}

Message recv_message(Socket& s, double timeout_s) {
  uint32_t head[2];
  s.recv_all(head, sizeof(head), timeout_s);
  if (head[1] > (1u << 20)) throw SocketError("malformed message (not a minipuzzle rank?)", false);
  Message m;
  m.type = head[0];
  m.payload.resize(head[1]);
  if (head[1]) s.recv_all(&m.payload[0], head[1], timeout_s);
  return m;
}

void tune_socket(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
  int idle = 10, interval = 5, count = 6;
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count));
}

Socket listen_tcp(const std::string& host, int port) {
  Socket s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!s.valid()) fail_runtime("rank 0: cannot create a socket: {}", std::strerror(errno));
  int one = 1;
  ::setsockopt(s.fd(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(is_loopback(host) ? INADDR_LOOPBACK : INADDR_ANY);
  if (::bind(s.fd(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0)
    fail_runtime("rank 0: cannot listen on port {} (MASTER_PORT): {}", port, std::strerror(errno));
  if (::listen(s.fd(), 128) != 0) fail_runtime("rank 0: cannot listen on port {}: {}", port, std::strerror(errno));
  return s;
}

Socket accept_tcp(Socket& listener, double timeout_s) {
  if (!wait_ready(listener.fd(), POLLIN, timeout_s)) return Socket();
  const int fd = ::accept4(listener.fd(), nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) return Socket();
  tune_socket(fd);
  return Socket(fd);
}

Socket connect_tcp(const std::string& host, int port, double timeout_s, std::string* last_error) {
  const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
  std::string why = "no attempt made";
  for (;;) {
    const double left = std::chrono::duration<double>(end - Clock::now()).count();
    if (left <= 0) break;
    sockaddr_in a{};
    if (resolve(host, port, &a, &why)) {
      Socket s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
      if (!s.valid()) fail_runtime("cannot create a socket: {}", std::strerror(errno));
      int rc = ::connect(s.fd(), reinterpret_cast<sockaddr*>(&a), sizeof(a));
      if (rc != 0 && errno == EINPROGRESS && wait_ready(s.fd(), POLLOUT, std::min(left, 5.0))) {
        int err = 0;
        socklen_t len = sizeof(err);
        ::getsockopt(s.fd(), SOL_SOCKET, SO_ERROR, &err, &len);
        rc = err == 0 ? 0 : -1;
        errno = err ? err : ETIMEDOUT;
      } else if (rc != 0 && errno == EINPROGRESS) {
        errno = ETIMEDOUT;
      }
      if (rc == 0) {
        const int flags = ::fcntl(s.fd(), F_GETFL, 0);
        ::fcntl(s.fd(), F_SETFL, flags & ~O_NONBLOCK);
        tune_socket(s.fd());
        return s;
      }
      why = std::strerror(errno);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (last_error) *last_error = why;
  return Socket();
}

int find_free_port() {
  Socket s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  if (!s.valid() || ::bind(s.fd(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      ::getsockname(s.fd(), reinterpret_cast<sockaddr*>(&a), &len) != 0)
    fail_runtime("cannot find a free TCP port on 127.0.0.1: {}", std::strerror(errno));
  return ntohs(a.sin_port);
}

}  // namespace mp::dist
