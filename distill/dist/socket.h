// Blocking IPv4 TCP sockets for the data-parallel control and data channels, with deadlines.
//
// Invariants: no operation here waits forever. send_all / recv_all fail with SocketError when the
// peer closed or reset the connection, or when no byte moved for `timeout_s` seconds (<= 0: no
// limit); shutdown() from another thread makes a blocked operation fail at once. Messages are
// framed as [u32 type][u32 length][payload] in host byte order (every rank runs the same build),
// with payloads capped at 1 MiB: the control channel carries only small things.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace mp::dist {

class SocketError : public std::runtime_error {
 public:
  SocketError(const std::string& what, bool timed_out) : std::runtime_error(what), timed_out_(timed_out) {}
  bool timed_out() const { return timed_out_; }

 private:
  bool timed_out_;
};

class Socket {
 public:
  Socket() = default;
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket() { close(); }
  Socket(Socket&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Socket& operator=(Socket&& o) noexcept;
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  int fd() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void close() noexcept;
  void shutdown() noexcept;  // wakes operations blocked in other threads; fd stays open

  void send_all(const void* data, size_t n, double timeout_s);
  void recv_all(void* data, size_t n, double timeout_s);

 private:
  int fd_ = -1;
};

struct Message {
  uint32_t type = 0;
  std::string payload;
};
void send_message(Socket& s, uint32_t type, const std::string& payload, double timeout_s);
Message recv_message(Socket& s, double timeout_s);

// Rank 0's listening socket on `port`: bound to loopback when `host` is a loopback name or
// address (127.x, localhost), else to every interface. Runtime error naming the port when busy.
Socket listen_tcp(const std::string& host, int port);
// The next connection, or an invalid Socket when none came within timeout_s.
Socket accept_tcp(Socket& listener, double timeout_s);
// Connects to host:port, retrying refused / unreachable attempts until timeout_s has passed;
// an invalid Socket then. `last_error` receives the reason of the last failed attempt.
Socket connect_tcp(const std::string& host, int port, double timeout_s, std::string* last_error = nullptr);
// A port that the OS just reported free on 127.0.0.1 (for --nproc on one host).
int find_free_port();

// Turns on TCP keep-alive probes (a vanished host is noticed within about a minute) and
// TCP_NODELAY (small control messages go out at once).
void tune_socket(int fd);

}  // namespace mp::dist
