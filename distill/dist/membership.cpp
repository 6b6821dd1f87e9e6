#include "distill/dist/membership.h"

#include "common/error.h"
#include "distill/dist/c10d_compat.h"
#include "distill/dist/net.h"

#include <fmt/format.h>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <unistd.h>

namespace mp::dist {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kTick = std::chrono::milliseconds(200);
constexpr double kLinger = 3.0;  // rank 0's wait for the others to read a posted reason

// Keys in the job's store (the process groups' own keys live under "pg/").
std::string hello_key(int64_t r) { return fmt::format("mp/hello/{}", r); }
std::string claim_key(int64_t r) { return fmt::format("mp/claim/{}", r); }
std::string beat_key(int64_t r) { return fmt::format("mp/beat/{}", r); }
std::string finished_key(int64_t r) { return fmt::format("mp/finished/{}", r); }
const char* const kVerdict = "mp/verdict";
const char* const kVerdictRead = "mp/verdict_read";
const char* const kReason = "mp/reason";
const char* const kReasonClaim = "mp/reason_claim";
const char* const kReasonSeen = "mp/reason_seen";
const char* const kRelease = "mp/release";
const char* const kGone = "mp/gone";

std::vector<uint8_t> bytes(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }
std::string text(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }

std::string first_line_of_file(const char* path) {
  std::ifstream f(path);
  std::string s;
  std::getline(f, s);
  return s;
}

// Processes with the same key see each other's pids: same host name, boot and pid namespace.
std::string host_key() {
  char name[256] = {0};
  ::gethostname(name, sizeof(name) - 1);
  char ns[128] = {0};
  if (::readlink("/proc/self/ns/pid", ns, sizeof(ns) - 1) < 0) ns[0] = 0;
  return fmt::format("{}|{}|{}", name, first_line_of_file("/proc/sys/kernel/random/boot_id"), ns);
}

// The store's own timeout bounds its connect and blocking reads; waiting for ranks has its own
// deadlines here, so a short MP_DIST_TIMEOUT must not cut rank 0's connection to itself short.
c10d::TCPStoreOptions store_options(int port, bool server, double timeout_s) {
  timeout_s = std::max(timeout_s, 30.0);
  c10d::TCPStoreOptions o;
  o.port = static_cast<std::uint16_t>(port);
  o.isServer = server;
  o.waitWorkers = false;
  o.timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  return o;
}

}  // namespace

Membership::Membership(const DistEnv& env, uint64_t fingerprint)
    : rank_(env.rank), world_(env.world_size), timeout_s_(env.timeout_s),
      heartbeat_timeout_s_(env.heartbeat_timeout_s), master_addr_(env.master_addr), port_(env.master_port),
      pids_(env.world_size, 0), hosts_(env.world_size) {
  pids_[rank_] = ::getpid();
  hosts_[rank_] = host_key();
  if (world_ == 1) return;
  if (rank_ == 0) {
    const std::string busy = port_unavailable(port_);
    if (!busy.empty()) fail_runtime("rank 0: cannot listen on port {} (MASTER_PORT): {}", port_, busy);
    try {
      store_ = c10::make_intrusive<c10d::TCPStore>(master_addr_, store_options(port_, true, timeout_s_));
    } catch (const std::exception& e) {
      fail_runtime("rank 0: cannot serve the job's store at {}:{}: {}", master_addr_, port_, compat::error_text(e));
    }
  } else {
    std::string why;
    if (!wait_for_listener(master_addr_, port_, timeout_s_, &why))
      fail_runtime("rank {}: could not reach rank 0 at {}:{} within {:g} s (MP_DIST_TIMEOUT): {}; is rank 0 running?",
                   rank_, master_addr_, port_, timeout_s_, why);
    try {
      store_ = c10::make_intrusive<c10d::TCPStore>(master_addr_, store_options(port_, false, timeout_s_));
    } catch (const std::exception& e) {
      fail_runtime("rank {}: could not reach rank 0 at {}:{}: {}", rank_, master_addr_, port_, compat::error_text(e));
    }
  }
  join(env, fingerprint);
}

void Membership::join(const DistEnv& env, uint64_t fingerprint) {
  const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s_));
  const auto left = [&] { return std::chrono::duration<double>(end - Clock::now()).count(); };
  if (rank_ != 0) {
    int64_t claims = 0;
    try {
      claims = store_->add(claim_key(rank_), 1);
      store_->set(hello_key(rank_) + (claims > 1 ? "/again" : ""),
                  bytes(fmt::format("{} {} {} {}", world_, fingerprint, pids_[rank_], hosts_[rank_])));
      while (!store_->check({kVerdict})) {
        if (left() <= 0)
          fail_runtime("rank {}: rank 0 did not see all {} ranks within {:g} s (MP_DIST_TIMEOUT); were they all started?",
                       rank_, world_, timeout_s_);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      const std::string verdict = text(store_->get(kVerdict));
      store_->add(kVerdictRead, 1);
      std::istringstream in(verdict);
      std::string word;
      in >> word;
      if (word != "welcome") fail_usage("{}", verdict.substr(std::min(verdict.size(), word.size() + 1)));
      int64_t world0 = 0;
      uint64_t fingerprint0 = 0;
      in >> world0 >> fingerprint0;
      if (world0 != world_)
        fail_usage("rank {} (pid {}) was started with world size {} but rank 0 with {}; every rank needs the same {}",
                   rank_, pids_[rank_], world_, world0, env.world_var);
      if (fingerprint0 != fingerprint)
        fail_usage("rank {} (pid {}) was started with other training settings than rank 0 (data, batch, steps, "
                   "learning rate, ...); start every rank with the same command", rank_, pids_[rank_]);
      if (claims > 1)
        fail_usage("two processes say they are rank {} (this one is pid {}); each rank needs its own {}", rank_,
                   pids_[rank_], env.rank_var);
      for (int64_t r = 0; r < world_; ++r) in >> pids_[r] >> hosts_[r];
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      fail_runtime("rank {}: rank 0 closed the connection during start-up (see rank 0's message)", rank_);
    }
    return;
  }
  // Rank 0: wait for every hello, then judge.
  std::vector<std::string> hello(world_);
  std::string why;
  for (;;) {
    std::string missing;
    for (int64_t r = 1; r < world_ && why.empty(); ++r) {
      if (hello[r].empty() && store_->check({hello_key(r)})) hello[r] = text(store_->get(hello_key(r)));
      if (hello[r].empty()) missing += (missing.empty() ? "" : ", ") + std::to_string(r);
      else if (store_->add(claim_key(r), 0) > 1)
        why = fmt::format("two processes say they are rank {}; each rank needs its own {}", r, env.rank_var);
    }
    if (missing.empty() || !why.empty()) break;
    if (left() <= 0)
      fail_runtime("rank 0: rank(s) {} did not join at port {} within {:g} s (MP_DIST_TIMEOUT); were all {} ranks "
                   "started with MASTER_ADDR {} and MASTER_PORT {}?",
                   missing, port_, timeout_s_, world_, master_addr_, port_);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (int64_t r = 1; r < world_ && why.empty(); ++r) {
    if (hello[r].empty()) continue;
    std::istringstream in(hello[r]);
    int64_t world = 0;
    uint64_t fp = 0;
    in >> world >> fp >> pids_[r] >> hosts_[r];
    if (world != world_)
      why = fmt::format("rank {} (pid {}) was started with world size {} but rank 0 with {}; every rank needs the same {}",
                        r, pids_[r], world, world_, env.world_var);
    else if (fp != fingerprint)
      why = fmt::format("rank {} (pid {}) was started with other training settings than rank 0 (data, batch, steps, "
                        "learning rate, ...); start every rank with the same command", r, pids_[r]);
  }
  if (!why.empty()) {
    store_->set(kVerdict, bytes("refuse " + why));
    const auto until = Clock::now() + std::chrono::seconds(5);  // let the others read it before the store goes
    while (store_->add(kVerdictRead, 0) < world_ - 1 && Clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    fail_usage("{}", why);
  }
  std::string welcome = fmt::format("welcome {} {}", world_, fingerprint);
  for (int64_t r = 0; r < world_; ++r) welcome += fmt::format(" {} {}", pids_[r], hosts_[r]);
  store_->set(kVerdict, bytes(welcome));
}

Membership::~Membership() { stop_monitor(); }

std::string Membership::progress() const {
  const int64_t n = steps_done_.load();
  return n > 0 ? fmt::format("after step {}", n) : std::string("before the first step");
}

std::string Membership::broadcast(const std::string& blob) {
  if (world_ == 1) return blob;
  const std::string key = fmt::format("mp/blob/{}", blobs_++);
  try {
    if (rank_ == 0) {
      store_->set(key, bytes(blob));
      return blob;
    }
    return text(store_->get(key));
  } catch (const std::exception& e) {
    fail_runtime("rank {}: lost {} during start-up: {}", rank_, rank_ == 0 ? "a rank" : "rank 0",
                 compat::error_text(e));
  }
}

void Membership::start_monitor(LostFn on_lost, TickFn tick) {
  if (world_ == 1 || monitor_.joinable()) return;
  on_lost_ = std::move(on_lost);
  tick_ = std::move(tick);
  try {
    monitor_store_ = c10::make_intrusive<c10d::TCPStore>(master_addr_, store_options(port_, false, timeout_s_));
  } catch (const std::exception& e) {
    fail_runtime("rank {}: lost rank 0 during start-up: {}", rank_, compat::error_text(e));
  }
  const auto now = Clock::now();
  beats_.assign(world_, -1);
  beat_seen_.assign(world_, now);
  last_look_ = now;
  monitor_ = std::thread([this] { monitor_loop(); });
}

bool Membership::gone_locally(int64_t r) const {
  if (hosts_[r] != hosts_[rank_] || pids_[r] <= 0) return false;
  std::ifstream f(fmt::format("/proc/{}/stat", pids_[r]));
  if (!f) return true;
  std::string stat;
  std::getline(f, stat);
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return false;
  const char state = stat[paren + 2];
  return state == 'Z' || state == 'X';  // killed, not yet reaped by its parent
}

std::string Membership::judge(Clock::time_point now) {
  // Had this thread itself not run for a while, silence would say nothing about the others.
  if (std::chrono::duration<double>(now - last_look_).count() > 1.0)
    for (auto& t : beat_seen_) t = now;
  last_look_ = now;
  for (int64_t r = 1; r < world_; ++r) {
    const int64_t b = monitor_store_->add(beat_key(r), 0);
    if (b != beats_[r]) beats_[r] = b, beat_seen_[r] = now;
    if (gone_locally(r) || std::chrono::duration<double>(now - beat_seen_[r]).count() > heartbeat_timeout_s_) {
      ++lost_ranks_;
      return fmt::format("rank {} (pid {}) died or lost connection {}; stopping", r, pids_[r], progress());
    }
  }
  return "";
}

void Membership::monitor_loop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, kTick, [&] { return stop_; });
      if (stop_ || quiet_ || lost_) return;
    }
    std::string line;
    int code = 1;
    try {
      if (rank_ != 0) monitor_store_->add(beat_key(rank_), 1);
      if (monitor_store_->check({kReason})) {
        const std::string reason = text(monitor_store_->get(kReason));
        if (!seen_reason_.exchange(true)) monitor_store_->add(kReasonSeen, 1);
        const size_t nl = reason.find('\n');
        code = std::atoi(reason.substr(0, nl).c_str());
        line = nl == std::string::npos ? reason : reason.substr(nl + 1);
      } else if (rank_ == 0) {
        line = judge(Clock::now());
      }
    } catch (const std::exception& e) {
      line = rank_ != 0 ? fmt::format("rank 0 (pid {}) died or lost connection {}; stopping", pids_[0], progress())
                        : fmt::format("the job's store failed: {}; stopping", compat::error_text(e));
    }
    if (line.empty() && tick_) line = tick_();
    if (!line.empty()) return lost(line, code);
  }
}

void Membership::lost(const std::string& line, int code) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (lost_ || quiet_) return;
    lost_ = true;
    cv_.notify_all();
  }
  if (on_lost_) on_lost_(line, code);
}

bool Membership::await_loss(double seconds) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, std::chrono::duration<double>(seconds), [&] { return lost_; });
  return lost_;
}

void Membership::post_reason(const std::string& line, int code) noexcept {
  if (world_ == 1 || !store_) return;
  try {
    if (store_->add(kReasonClaim, 1) == 1) store_->set(kReason, bytes(fmt::format("{}\n{}", code, line)));
    if (!seen_reason_.exchange(true)) store_->add(kReasonSeen, 1);  // this rank knows why the job stops
    if (rank_ != 0) return;
    const auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(kLinger));
    while (store_->add(kReasonSeen, 0) < world_ - lost_ranks_ && Clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  } catch (...) {
  }
}

void Membership::relay_abort(const std::string& line, int exit_code) noexcept {
  {
    std::lock_guard<std::mutex> lock(mu_);
    lost_ = true;
    cv_.notify_all();
  }
  post_reason(line, exit_code);
}

void Membership::announce_failure(int exit_code) noexcept {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (quiet_ || lost_) return;
    quiet_ = true;
    cv_.notify_all();
  }
  post_reason(fmt::format("rank {} stopped with an error (its message says why); stopping", rank_), exit_code);
}

void Membership::stop_monitor() {
  if (!monitor_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    cv_.notify_all();
  }
  if (monitor_.get_id() == std::this_thread::get_id()) monitor_.detach();
  else monitor_.join();
}

void Membership::finish() {
  if (world_ == 1) return;
  auto poll_until = [&](const std::function<bool()>& done) {
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (lost_) fail_runtime("rank {}: a rank was lost while finishing", rank_);
      }
      if (done()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  };
  try {
    if (rank_ != 0) {
      store_->set(finished_key(rank_), bytes("1"));
      poll_until([&] { return store_->check({kRelease}); });
      stop_monitor();
      store_->add(kGone, 1);
      return;
    }
    std::vector<std::string> keys;
    for (int64_t r = 1; r < world_; ++r) keys.push_back(finished_key(r));
    poll_until([&] { return store_->check(keys); });
    stop_monitor();
    store_->set(kRelease, bytes("1"));
    const auto until = Clock::now() + std::chrono::seconds(10);  // the others leave before the store goes
    while (store_->add(kGone, 0) < world_ - 1 && Clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail_runtime("rank {}: lost {} while finishing: {}", rank_, rank_ == 0 ? "a rank" : "rank 0", compat::error_text(e));
  }
}

}  // namespace mp::dist
