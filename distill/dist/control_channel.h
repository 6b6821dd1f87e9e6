// Rendezvous, small broadcasts and liveness of a data-parallel job: a star with rank 0 as hub.
//
// Start-up: rank 0 listens on MASTER_ADDR:MASTER_PORT; every other rank connects twice (a control
// and a data connection; the data one carries the TCP all-reduce) and says hello: rank, world
// size, pid and a fingerprint of the job's settings. Rank 0 waits until each of ranks 1..W-1 came
// exactly once with its world size and fingerprint, then welcomes everyone (passing every rank's
// pid), or sends everyone the one reason it refuses: a usage error on every rank. Waiting for
// the others is bounded by MP_DIST_TIMEOUT (a runtime error naming the missing ranks).
//
// Liveness: after start_monitor() one thread owns reading the control sockets. When a peer dies
// (EOF, reset, keep-alive timeout) or reports that it is failing, it calls on_lost(line, code)
// exactly once; the caller stops the process there, after relay_abort() so that rank 0 passes
// the news on and every rank stops naming the rank that went first. After announce_failure()
// (this rank is failing with its own error) the monitor stays quiet.
// finish() is the orderly end: a barrier (every rank finished its work) after which peers
// closing their sockets is expected and no longer a failure.
#pragma once

#include "distill/dist/dist_env.h"
#include "distill/dist/socket.h"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace mp::dist {

class ControlChannel {
 public:
  using LostFn = std::function<void(const std::string& line, int exit_code)>;
  using TickFn = std::function<std::string()>;  // polled ~10x a second; non-empty = a failure line

  // Joins the job (blocks until every rank is there); mp::Error when that fails.
  ControlChannel(const DistEnv& env, uint64_t job_fingerprint);
  ~ControlChannel();
  ControlChannel(const ControlChannel&) = delete;
  ControlChannel& operator=(const ControlChannel&) = delete;

  int64_t rank() const { return rank_; }
  int64_t world_size() const { return world_; }
  int64_t pid_of(int64_t rank) const { return pids_.at(static_cast<size_t>(rank)); }
  double timeout_s() const { return timeout_s_; }

  // Rank 0's blob, on every rank (rank 0 passes it, the others receive it). Before start_monitor.
  std::string broadcast(const std::string& blob);
  // (peer rank, data socket): rank 0 has ranks 1..W-1 in order, the others rank 0 only.
  std::vector<std::pair<int64_t, Socket*>> data_peers();

  void start_monitor(LostFn on_lost, TickFn tick = {});
  // Steps whose collectives this rank has completed, for messages: "after step N" (or "before
  // the first step"). A rank that dies during step N + 1 is reported by the others "after step
  // N": they cannot have gone further without it.
  void set_steps_done(int64_t n) { steps_done_ = n; }
  std::string progress() const;
  // This rank is failing on its own: tell the peers (they stop with exit_code) and stay quiet.
  void announce_failure(int exit_code) noexcept;
  // This rank is stopping because of `line` (a lost rank): rank 0 passes the line on to every
  // other rank, so they stop naming the same cause. The monitor stays quiet afterwards.
  void relay_abort(const std::string& line, int exit_code) noexcept;
  void stop_monitor();
  // Barrier with every rank, then close. Runtime error if a rank was lost meanwhile and on_lost
  // returned (it normally ends the process).
  void finish();

 private:
  struct Peer {
    int64_t rank = -1;
    Socket control, data;
    bool finished = false;
  };
  void rendezvous_hub(const DistEnv& env, uint64_t fingerprint);
  void rendezvous_spoke(const DistEnv& env, uint64_t fingerprint);
  void monitor_loop();
  bool handle(Peer& p);            // false: stop monitoring
  void lost(const std::string& line, int code, const Peer* from);
  void maybe_release_locked();
  void send_to(Peer& p, uint32_t type, const std::string& payload, double timeout_s) noexcept;

  int64_t rank_ = 0, world_ = 1;
  double timeout_s_ = 300.0;
  std::vector<int64_t> pids_;
  std::vector<Peer> peers_;
  std::atomic<int64_t> steps_done_{0};
  LostFn on_lost_;
  TickFn tick_;
  std::thread monitor_;
  int wake_[2] = {-1, -1};
  std::mutex mu_, send_mu_;
  std::condition_variable cv_;
  bool self_finished_ = false, released_ = false, lost_ = false, stopping_ = false, stop_ = false;
};

}  // namespace mp::dist
