#include "distill/dist/net.h"

#include "common/error.h"

#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

namespace mp::dist {
namespace {

using Clock = std::chrono::steady_clock;

// Owns a file descriptor.
struct Fd {
  int fd;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

bool resolve(const std::string& host, int port, sockaddr_in* out, std::string* why) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (rc != 0 || !res) {
    *why = std::string("cannot resolve ") + host + ": " + ::gai_strerror(rc);
    return false;
  }
  std::memcpy(out, res->ai_addr, sizeof(sockaddr_in));
  ::freeaddrinfo(res);
  return true;
}

// One non-blocking connect attempt bounded by timeout_s.
bool try_connect(const sockaddr_in& a, double timeout_s, std::string* why) {
  Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (s.fd < 0) fail_runtime("cannot create a socket: {}", std::strerror(errno));
  int rc = ::connect(s.fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a));
  if (rc != 0 && errno == EINPROGRESS) {
    pollfd p{s.fd, POLLOUT, 0};
    if (::poll(&p, 1, static_cast<int>(timeout_s * 1000)) == 1) {
      int err = 0;
      socklen_t len = sizeof(err);
      ::getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      rc = err == 0 ? 0 : -1;
      errno = err;
    } else {
      errno = ETIMEDOUT;
    }
  }
  if (rc == 0) return true;
  *why = std::strerror(errno);
  return false;
}

}  // namespace

int find_free_port() {
  Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  if (s.fd < 0 || ::bind(s.fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      ::getsockname(s.fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    fail_runtime("cannot find a free TCP port on 127.0.0.1: {}", std::strerror(errno));
  return ntohs(a.sin_port);
}

std::string port_unavailable(int port) {
  Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (s.fd < 0) return std::strerror(errno);
  int one = 1;
  ::setsockopt(s.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (::bind(s.fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return std::strerror(errno);
  return "";
}

bool wait_for_listener(const std::string& host, int port, double timeout_s, std::string* why) {
  const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
  std::string last = "no attempt made";
  for (;;) {
    const double left = std::chrono::duration<double>(end - Clock::now()).count();
    if (left <= 0) break;
    sockaddr_in a{};
    if (resolve(host, port, &a, &last) && try_connect(a, std::min(left, 5.0), &last)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (why) *why = last;
  return false;
}

}  // namespace mp::dist
