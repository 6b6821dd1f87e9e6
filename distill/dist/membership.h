// Who is in a data-parallel job and whether they are all still there, through c10d's TCPStore at
// MASTER_ADDR:MASTER_PORT (rank 0 serves it; every other rank is a client).
//
// Joining (the constructor): every rank posts a hello (world size, settings fingerprint, pid,
// host). Rank 0 waits for ranks 1..W-1, then posts one verdict: welcome (with every rank's pid),
// or the one reason it refuses (another world size, other settings, two processes claiming one
// rank): a usage error on every rank. Waiting is bounded by MP_DIST_TIMEOUT (a runtime error
// naming the missing ranks, or rank 0 when it cannot be reached).
// Liveness (after start_monitor): a thread per rank with its own store connection. Ranks 1..W-1
// bump a heartbeat counter every 0.2 s; rank 0 watches the counters and calls a rank lost when its
// process is gone (checked directly for ranks on the same host and pid namespace) or its counter
// stood still for MP_DIST_HEARTBEAT_TIMEOUT seconds. A rank that cannot reach the store any more
// has lost rank 0. Whoever stops first posts the reason under one key; every rank polls it, so
// all stop naming the same cause. on_lost(line, code) is called at most once; after
// announce_failure() (this rank fails with its own error) or relay_abort() the monitor is quiet.
// Rank 0 lingers up to 3 s after posting a reason, so that the others read it before its store
// goes away.
// finish() is the orderly end: a barrier through the store after which rank 0 waits for the
// others to leave (its process holds the store).
#pragma once

#include "distill/dist/dist_env.h"

#include <torch/csrc/distributed/c10d/Store.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace mp::dist {

class Membership {
 public:
  using LostFn = std::function<void(const std::string& line, int exit_code)>;
  using TickFn = std::function<std::string()>;  // polled 5x a second; non-empty = a failure line

  // Joins the job (blocks until every rank is there); mp::Error when that fails.
  Membership(const DistEnv& env, uint64_t job_fingerprint);
  ~Membership();
  Membership(const Membership&) = delete;
  Membership& operator=(const Membership&) = delete;

  int64_t rank() const { return rank_; }
  int64_t world_size() const { return world_; }
  int64_t pid_of(int64_t rank) const { return pids_.at(static_cast<size_t>(rank)); }
  double timeout_s() const { return timeout_s_; }
  const std::string& master_addr() const { return master_addr_; }
  // The job's store, for c10d process groups (they keep their keys under their own prefix).
  c10::intrusive_ptr<c10d::Store> store() const { return store_; }

  // Rank 0's blob, on every rank (rank 0 passes it, the others receive it).
  std::string broadcast(const std::string& blob);

  void start_monitor(LostFn on_lost, TickFn tick = {});
  // Steps whose collectives this rank has completed, for messages: "after step N" (or "before
  // the first step"). A rank that dies during step N + 1 is reported by the others "after step
  // N": they cannot have gone further without it.
  void set_steps_done(int64_t n) { steps_done_ = n; }
  std::string progress() const;
  // This rank is failing on its own: tell the others (they stop with exit_code) and stay quiet.
  void announce_failure(int exit_code) noexcept;
  // This rank is stopping because of `line`: make it the job's reason unless one was posted
  // already. The monitor stays quiet afterwards.
  void relay_abort(const std::string& line, int exit_code) noexcept;
  // Waits up to `seconds` for the monitor to report a loss; true when it did (a failed collective
  // asks this first, so that the line names the rank that went rather than a socket error).
  bool await_loss(double seconds);
  void stop_monitor();
  // Barrier with every rank. Runtime error if a rank was lost meanwhile and on_lost returned (it
  // normally ends the process).
  void finish();

 private:
  void join(const DistEnv& env, uint64_t fingerprint);
  void monitor_loop();
  std::string judge(std::chrono::steady_clock::time_point now);  // rank 0: a lost rank's line, or ""
  bool gone_locally(int64_t rank) const;
  void lost(const std::string& line, int code);
  void post_reason(const std::string& line, int code) noexcept;

  int64_t rank_ = 0, world_ = 1;
  double timeout_s_ = 300.0, heartbeat_timeout_s_ = 5.0;
  std::string master_addr_;
  int port_ = 0;
  std::vector<int64_t> pids_;
  std::vector<std::string> hosts_;
  c10::intrusive_ptr<c10d::Store> store_, monitor_store_;
  std::atomic<int64_t> steps_done_{0};
  int64_t blobs_ = 0;
  // Rank 0's view of the heartbeats.
  std::vector<int64_t> beats_;
  std::vector<std::chrono::steady_clock::time_point> beat_seen_;
  std::chrono::steady_clock::time_point last_look_;
  int64_t lost_ranks_ = 0;
  std::atomic<bool> seen_reason_{false};  // this rank counted itself among those that read the reason
  LostFn on_lost_;
  TickFn tick_;
  std::thread monitor_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool lost_ = false, quiet_ = false, stop_ = false;
};

}  // namespace mp::dist
