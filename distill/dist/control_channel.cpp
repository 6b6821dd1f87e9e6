#include "distill/dist/control_channel.h"

#include "common/error.h"

#include <fmt/format.h>

#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

namespace mp::dist {
namespace {

enum MsgType : uint32_t { kHello = 1, kWelcome, kRefuse, kBlob, kFinish, kRelease, kAbort };
enum Kind : uint32_t { kControl = 0, kData = 1 };

constexpr uint32_t kMagic = 0x4d504450;  // "MPDP"
constexpr uint32_t kVersion = 1;

struct Hello {
  uint32_t magic = kMagic, version = kVersion, kind = kControl, pad = 0;
  int64_t rank = 0, world = 0, pid = 0;
  uint64_t fingerprint = 0;
};

std::string pack_hello(uint32_t kind, int64_t rank, int64_t world, uint64_t fp) {
  Hello h;
  h.kind = kind, h.rank = rank, h.world = world, h.pid = ::getpid(), h.fingerprint = fp;
  return std::string(reinterpret_cast<const char*>(&h), sizeof(h));
}

// An abort message: the exit code the receivers use, then the line they print.
std::string pack_abort(int code, const std::string& line) {
  const int32_t c = code;
  return std::string(reinterpret_cast<const char*>(&c), sizeof(c)) + line;
}
std::pair<int, std::string> unpack_abort(const std::string& p) {
  int32_t c = 1;
  if (p.size() >= sizeof(c)) std::memcpy(&c, p.data(), sizeof(c));
  return {c, p.size() >= sizeof(c) ? p.substr(sizeof(c)) : std::string("a rank stopped")};
}

double seconds_left(std::chrono::steady_clock::time_point end) {
  return std::chrono::duration<double>(end - std::chrono::steady_clock::now()).count();
}

}  // namespace

ControlChannel::ControlChannel(const DistEnv& env, uint64_t fingerprint)
    : rank_(env.rank), world_(env.world_size), timeout_s_(env.timeout_s), pids_(env.world_size, 0) {
  pids_[rank_] = ::getpid();
  if (world_ == 1) return;
  if (rank_ == 0) rendezvous_hub(env, fingerprint);
  else rendezvous_spoke(env, fingerprint);
}

void ControlChannel::rendezvous_hub(const DistEnv& env, uint64_t fingerprint) {
  Socket listener = listen_tcp(env.master_addr, env.master_port);
  peers_.resize(world_ - 1);
  for (int64_t r = 1; r < world_; ++r) peers_[r - 1].rank = r;
  std::vector<Socket> strays;  // accepted connections that are not (yet) a known rank's
  auto refuse_all = [&](const std::string& why) {
    for (Peer& p : peers_)
      for (Socket* s : {&p.control, &p.data})
        if (s->valid()) try { send_message(*s, kRefuse, why, 2.0); } catch (const SocketError&) {}
    for (Socket& s : strays) try { send_message(s, kRefuse, why, 2.0); } catch (const SocketError&) {}
    fail_usage("{}", why);
  };
  const auto end = std::chrono::steady_clock::now() +
                   std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(timeout_s_));
  int64_t joined = 0;
  while (joined < 2 * (world_ - 1)) {
    const double left = seconds_left(end);
    if (left <= 0) {
      std::string missing;
      for (const Peer& p : peers_)
        if (!p.control.valid() || !p.data.valid()) missing += (missing.empty() ? "" : ", ") + std::to_string(p.rank);
      fail_runtime("rank 0: rank(s) {} did not join at port {} within {:g} s (MP_DIST_TIMEOUT); were all {} ranks "
                   "started with MASTER_ADDR {} and MASTER_PORT {}?",
                   missing, env.master_port, timeout_s_, world_, env.master_addr, env.master_port);
    }
    Socket s = accept_tcp(listener, left);
    if (!s.valid()) continue;
    Message m;
    try {
      m = recv_message(s, std::min(left, 10.0));
    } catch (const SocketError&) {
      continue;  // not one of ours, or gone already
    }
    Hello h;
    if (m.type != kHello || m.payload.size() != sizeof(Hello)) continue;
    std::memcpy(&h, m.payload.data(), sizeof(h));
    if (h.magic != kMagic) continue;
    strays.push_back(std::move(s));
    Socket& conn = strays.back();
    if (h.version != kVersion)
      refuse_all(fmt::format("rank {} (pid {}) runs another minipuzzle version (protocol {} vs {}); start every rank "
                             "from the same build", h.rank, h.pid, h.version, kVersion));
    if (h.world != world_)
      refuse_all(fmt::format("rank {} (pid {}) was started with world size {} but rank 0 with {}; every rank needs "
                             "the same {}", h.rank, h.pid, h.world, world_, env.world_var));
    if (h.rank < 1 || h.rank >= world_) refuse_all(fmt::format("a process says it is rank {} of {}", h.rank, world_));
    if (h.fingerprint != fingerprint)
      refuse_all(fmt::format("rank {} (pid {}) was started with other training settings than rank 0 (data, batch, "
                             "steps, learning rate, ...); start every rank with the same command", h.rank, h.pid));
    Peer& p = peers_[h.rank - 1];
    Socket& slot = h.kind == kData ? p.data : p.control;
    const bool other_pid = pids_[h.rank] != 0 && pids_[h.rank] != h.pid;
    if (slot.valid() || other_pid)
      refuse_all(fmt::format("two processes say they are rank {} (pids {} and {}); each rank needs its own {}", h.rank,
                             pids_[h.rank], h.pid, env.rank_var));
    pids_[h.rank] = h.pid;
    slot = std::move(conn);
    strays.pop_back();
    ++joined;
  }
  std::string welcome(reinterpret_cast<const char*>(pids_.data()), pids_.size() * sizeof(int64_t));
  for (Peer& p : peers_) {
    try {
      send_message(p.control, kWelcome, welcome, timeout_s_);
    } catch (const SocketError& e) {
      fail_runtime("rank 0: rank {} (pid {}) left during start-up: {}", p.rank, pids_[p.rank], e.what());
    }
  }
}

void ControlChannel::rendezvous_spoke(const DistEnv& env, uint64_t fingerprint) {
  const auto end = std::chrono::steady_clock::now() +
                   std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(timeout_s_));
  peers_.resize(1);
  Peer& hub = peers_[0];
  hub.rank = 0;
  // Rank 0 gave up after we reached it: report its reason when it sent one.
  auto refused = [&]() {
    try {
      Message m = recv_message(hub.control, 2.0);
      if (m.type == kRefuse) fail_usage("{}", m.payload);
    } catch (const SocketError&) {
    }
    fail_runtime("rank {}: rank 0 closed the connection during start-up (see rank 0's message)", rank_);
  };
  std::string why;
  hub.control = connect_tcp(env.master_addr, env.master_port, std::max(seconds_left(end), 0.1), &why);
  if (!hub.control.valid())
    fail_runtime("rank {}: could not reach rank 0 at {}:{} within {:g} s (MP_DIST_TIMEOUT): {}; is rank 0 running?",
                 rank_, env.master_addr, env.master_port, timeout_s_, why);
  // Rank 0 is listening now: a data connection that fails means it stopped. Both connections
  // are made before either hello, so a refusal always finds us connected.
  hub.data = connect_tcp(env.master_addr, env.master_port, 3.0);
  if (!hub.data.valid()) refused();
  try {
    send_message(hub.control, kHello, pack_hello(kControl, rank_, world_, fingerprint), 10.0);
    send_message(hub.data, kHello, pack_hello(kData, rank_, world_, fingerprint), 10.0);
  } catch (const SocketError&) {
    refused();
  }
  Message m;
  try {
    m = recv_message(hub.control, std::max(seconds_left(end), 1.0));
  } catch (const SocketError& e) {
    if (e.timed_out())
      fail_runtime("rank {}: rank 0 did not see all {} ranks within {:g} s (MP_DIST_TIMEOUT); were they all started?",
                   rank_, world_, timeout_s_);
    fail_runtime("rank {}: rank 0 closed the connection during start-up (see rank 0's message)", rank_);
  }
  if (m.type == kRefuse) fail_usage("{}", m.payload);
  if (m.type != kWelcome || m.payload.size() != pids_.size() * sizeof(int64_t))
    fail_runtime("rank {}: unexpected answer from {}:{}; is it a minipuzzle rank 0?", rank_, env.master_addr,
                 env.master_port);
  std::memcpy(pids_.data(), m.payload.data(), m.payload.size());
}

ControlChannel::~ControlChannel() { stop_monitor(); }

std::string ControlChannel::progress() const {
  const int64_t n = steps_done_.load();
  return n > 0 ? fmt::format("after step {}", n) : std::string("before the first step");
}

std::string ControlChannel::broadcast(const std::string& blob) {
  if (world_ == 1) return blob;
  if (rank_ == 0) {
    for (Peer& p : peers_) {
      try {
        send_message(p.control, kBlob, blob, timeout_s_);
      } catch (const SocketError& e) {
        fail_runtime("rank 0: lost rank {} (pid {}) during start-up: {}", p.rank, pids_[p.rank], e.what());
      }
    }
    return blob;
  }
  try {
    Message m = recv_message(peers_[0].control, timeout_s_);
    if (m.type != kBlob) fail_runtime("rank {}: unexpected message {} from rank 0 during start-up", rank_, m.type);
    return m.payload;
  } catch (const SocketError& e) {
    fail_runtime("rank {}: lost rank 0 (pid {}) during start-up: {}", rank_, pids_[0], e.what());
  }
}

std::vector<std::pair<int64_t, Socket*>> ControlChannel::data_peers() {
  std::vector<std::pair<int64_t, Socket*>> out;
  for (Peer& p : peers_) out.emplace_back(p.rank, &p.data);
  return out;
}

void ControlChannel::start_monitor(LostFn on_lost, TickFn tick) {
  if (world_ == 1 || monitor_.joinable()) return;
  on_lost_ = std::move(on_lost);
  tick_ = std::move(tick);
  if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) fail_runtime("cannot create a pipe: {}", std::strerror(errno));
  monitor_ = std::thread([this] { monitor_loop(); });
}

void ControlChannel::monitor_loop() {
  for (;;) {
    std::vector<pollfd> fds = {{wake_[0], POLLIN, 0}};
    for (const Peer& p : peers_) fds.push_back({p.control.fd(), POLLIN, 0});
    const int r = ::poll(fds.data(), fds.size(), 100);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_ || stopping_ || released_ || lost_) return;
    }
    if (tick_) {
      const std::string failure = tick_();
      if (!failure.empty()) return lost(failure, 1, nullptr);
    }
    if (r <= 0) continue;
    for (size_t i = 1; i < fds.size(); ++i)
      if (fds[i].revents && !handle(peers_[i - 1])) return;
  }
}

bool ControlChannel::handle(Peer& p) {
  Message m;
  try {
    m = recv_message(p.control, 10.0);
  } catch (const SocketError&) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_ || released_) return false;
    }
    lost(fmt::format("rank {} (pid {}) died or lost connection {}; stopping", p.rank, pids_[p.rank], progress()), 1,
         &p);
    return false;
  }
  if (m.type == kFinish && rank_ == 0) {
    std::lock_guard<std::mutex> lock(mu_);
    p.finished = true;
    maybe_release_locked();
    return !released_;
  }
  if (m.type == kRelease && rank_ != 0) {
    std::lock_guard<std::mutex> lock(mu_);
    released_ = true;
    cv_.notify_all();
    return false;
  }
  if (m.type == kAbort) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return false;
    }
    auto [code, line] = unpack_abort(m.payload);
    lost(line, code, &p);
    return false;
  }
  lost(fmt::format("rank {} (pid {}) sent an unexpected message ({}); stopping", p.rank, pids_[p.rank], m.type), 1, &p);
  return false;
}

void ControlChannel::lost(const std::string& line, int code, const Peer*) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (lost_ || stopping_) return;
    lost_ = true;
    cv_.notify_all();
  }
  if (on_lost_) on_lost_(line, code);
}

void ControlChannel::relay_abort(const std::string& line, int exit_code) noexcept {
  {
    std::lock_guard<std::mutex> lock(mu_);
    lost_ = true;
    cv_.notify_all();
  }
  if (rank_ == 0)  // the other ranks hear it from the hub, in the same words
    for (Peer& q : peers_) send_to(q, kAbort, pack_abort(exit_code, line), 1.0);
}

void ControlChannel::send_to(Peer& p, uint32_t type, const std::string& payload, double timeout_s) noexcept {
  std::lock_guard<std::mutex> lock(send_mu_);
  try {
    send_message(p.control, type, payload, timeout_s);
  } catch (const SocketError&) {
  }
}

void ControlChannel::announce_failure(int exit_code) noexcept {
  if (world_ == 1) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || lost_) return;
    stopping_ = true;
  }
  const std::string line = fmt::format("rank {} stopped with an error (its message says why); stopping", rank_);
  for (Peer& p : peers_) send_to(p, kAbort, pack_abort(exit_code, line), 2.0);
}

void ControlChannel::maybe_release_locked() {
  if (rank_ != 0 || !self_finished_ || released_) return;
  for (const Peer& p : peers_)
    if (!p.finished) return;
  for (Peer& p : peers_) send_to(p, kRelease, "", timeout_s_);
  released_ = true;
  cv_.notify_all();
}

void ControlChannel::finish() {
  if (world_ == 1) return;
  if (!monitor_.joinable()) {  // no monitor thread (tests): the same barrier, read here
    try {
      for (Peer& p : peers_) {
        if (rank_ != 0) send_message(p.control, kFinish, "", timeout_s_);
        Message m = recv_message(p.control, timeout_s_);
        if (m.type != (rank_ == 0 ? kFinish : kRelease)) fail_runtime("rank {}: unexpected message {} from rank {}",
                                                                      rank_, m.type, p.rank);
      }
      if (rank_ == 0)
        for (Peer& p : peers_) send_message(p.control, kRelease, "", timeout_s_);
    } catch (const SocketError& e) {
      fail_runtime("rank {}: lost a rank while finishing: {}", rank_, e.what());
    }
    for (Peer& p : peers_) p.control.close(), p.data.close();
    return;
  }
  if (rank_ != 0) send_to(peers_[0], kFinish, "", timeout_s_);
  std::unique_lock<std::mutex> lock(mu_);
  self_finished_ = true;
  maybe_release_locked();
  cv_.wait(lock, [&] { return released_ || lost_; });
  const bool was_lost = lost_;
  lock.unlock();
  if (was_lost) fail_runtime("rank {}: a rank was lost while finishing", rank_);
  stop_monitor();
  for (Peer& p : peers_) p.control.close(), p.data.close();
}

void ControlChannel::stop_monitor() {
  if (monitor_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    const char c = 1;
    if (::write(wake_[1], &c, 1) < 0) {
    }
    if (monitor_.get_id() == std::this_thread::get_id()) monitor_.detach();
    else monitor_.join();
  }
  for (int& fd : wake_)
    if (fd >= 0) ::close(fd), fd = -1;
}

}  // namespace mp::dist
