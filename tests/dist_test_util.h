// Test helpers for data parallelism: an in-process group of ranks (threads) whose communicator
// sums contributions in rank order (the reference the bucket tests compare against), and
// launcher environments for ranks run as threads.
#pragma once

#include "distill/dist/communicator.h"
#include "distill/dist/dist_env.h"
#include "distill/dist/net.h"

#include <ATen/ATen.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace mp::test {

// Ranks as threads of one process: operation k of every rank is summed (rank 0 + rank 1 + ...)
// once all ranks have started it.
class LocalGroup {
 public:
  explicit LocalGroup(int64_t world) : world_(world) {}
  int64_t world() const { return world_; }
  void put(uint64_t op, int64_t rank, at::Tensor x) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& parts = parts_[op];
    parts.resize(static_cast<size_t>(world_));
    parts[rank] = std::move(x);
    cv_.notify_all();
  }
  at::Tensor sum(uint64_t op) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] {
      auto it = parts_.find(op);
      if (it == parts_.end()) return false;
      for (const at::Tensor& t : it->second)
        if (!t.defined()) return false;
      return true;
    });
    auto& parts = parts_[op];
    at::Tensor s = parts[0].clone();
    for (size_t r = 1; r < parts.size(); ++r) s.add_(parts[r]);
    return s;
  }

 private:
  int64_t world_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint64_t, std::vector<at::Tensor>> parts_;
};

class LocalComm : public mp::dist::Communicator {
 public:
  LocalComm(LocalGroup& g, int64_t rank, std::vector<std::string>* log = nullptr) : g_(g), rank_(rank), log_(log) {}
  int64_t rank() const override { return rank_; }
  int64_t world_size() const override { return g_.world(); }
  std::string name() const override { return "local"; }
  at::Device device() const override { return at::kCPU; }
  std::shared_ptr<mp::dist::CommWork> start_all_reduce_sum(const at::Tensor& flat) override {
    const uint64_t op = next_++;
    if (log_) log_->push_back("launch " + std::to_string(op) + " numel " + std::to_string(flat.numel()));
    g_.put(op, rank_, flat.clone());
    struct Work : mp::dist::CommWork {
      LocalGroup* g;
      uint64_t op;
      at::Tensor flat;
      void wait() override { flat.copy_(g->sum(op)); }
    };
    auto w = std::make_shared<Work>();
    w->g = &g_, w->op = op, w->flat = flat;
    return w;
  }
  void abort() noexcept override {}

 private:
  LocalGroup& g_;
  int64_t rank_;
  std::vector<std::string>* log_;
  uint64_t next_ = 0;
};

inline mp::dist::DistEnv thread_rank_env(int64_t rank, int64_t world, int port, double timeout_s = 60.0) {
  mp::dist::DistEnv e;
  e.rank = rank, e.world_size = world, e.local_rank = rank;
  e.master_addr = "127.0.0.1", e.master_port = port, e.timeout_s = timeout_s;
  return e;
}

}  // namespace mp::test

#include "distill/dist/c10d_compat.h"

// Data parallel on the CPU runs on Gloo, which only some LibTorch builds carry (Debian's has it,
// the CUDA wheel's headers lack it): tests that start CPU ranks skip themselves without it.
#define MP_SKIP_WITHOUT_GLOO()                                                        \
  do {                                                                                \
    if (!mp::dist::compat::have_gloo()) GTEST_SKIP() << "this build has no Gloo (CPU data parallel)"; \
  } while (0)
