#include "distill/dist/c10d_communicator.h"

#include "common/error.h"
#include "distill/dist/c10d_compat.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <utility>
#include <vector>

namespace mp::dist {
namespace {

// One collective in flight: its c10d work and, for host-side waits, when it completed.
struct Pending {
  compat::WorkPtr work;
  std::string what;  // "gloo all-reduce"
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
};

class C10dWork : public CommWork {
 public:
  C10dWork(std::shared_ptr<Pending> p, bool host_wait, std::shared_ptr<std::atomic<bool>> aborted,
           std::function<void()> then)
      : p_(std::move(p)), host_wait_(host_wait), aborted_(std::move(aborted)), then_(std::move(then)) {}

  void wait() override {
    if (p_) {
      if (host_wait_) {
        std::unique_lock<std::mutex> lock(p_->mu);
        p_->cv.wait(lock, [&] { return p_->done || aborted_->load(); });
        if (!p_->done) fail_runtime("{} was aborted", p_->what);
      }
      try {
        p_->work->wait();
      } catch (const std::exception& e) {
        fail_runtime("{} failed: {}", p_->what, compat::error_text(e));
      }
    }
    if (then_) {
      then_();
      then_ = nullptr;
    }
  }

 private:
  std::shared_ptr<Pending> p_;  // null: nothing to wait for
  bool host_wait_;
  std::shared_ptr<std::atomic<bool>> aborted_;
  std::function<void()> then_;
};

class C10dCommunicator : public Communicator {
 public:
  C10dCommunicator(std::shared_ptr<compat::Group> g, int64_t rank, int64_t world, at::Device device)
      : g_(std::move(g)), name_(compat::backend_name(*g_)), rank_(rank), world_(world), device_(device),
        host_wait_(name_ == "gloo") {}
  ~C10dCommunicator() override {
    if (!finished_) abort();
  }

  int64_t rank() const override { return rank_; }
  int64_t world_size() const override { return world_; }
  std::string name() const override { return name_; }
  at::Device device() const override { return device_; }

  std::shared_ptr<CommWork> start_all_reduce_sum(const at::Tensor& flat) override {
    check(flat, "all-reduce");
    if (flat.numel() == 0) return done();
    if (!compat::sums_dtype(*g_, flat.scalar_type())) {
      at::Tensor staged = flat.to(at::kFloat);
      auto w = launch("all-reduce", [&] { return compat::all_reduce_sum(*g_, staged); });
      return with_then(w, [flat, staged]() mutable { flat.copy_(staged); });
    }
    at::Tensor t = flat;
    return launch("all-reduce", [&] { return compat::all_reduce_sum(*g_, t); });
  }

  std::shared_ptr<CommWork> start_all_gather(const at::Tensor& out, const at::Tensor& in) override {
    check(out, "all-gather");
    check(in, "all-gather");
    if (out.numel() != in.numel() * world_ || out.scalar_type() != in.scalar_type())
      fail_runtime("{} all-gather: the output must hold {} x the input's {} elements of its dtype (got {})", name_,
                   world_, in.numel(), out.numel());
    if (in.numel() == 0) return done();
    if (!compat::has_all_gather(*g_)) return Communicator::start_all_gather(out, in);
    if (!compat::sums_dtype(*g_, in.scalar_type())) {
      at::Tensor in32 = in.to(at::kFloat), out32 = at::empty({out.numel()}, out.options().dtype(at::kFloat));
      auto w = launch("all-gather", [&] { return compat::all_gather(*g_, out32, in32); });
      at::Tensor target = out;
      return with_then(w, [target, out32, in32]() mutable { target.copy_(out32); });
    }
    at::Tensor o = out, i = in;
    return launch("all-gather", [&] { return compat::all_gather(*g_, o, i); });
  }

  std::shared_ptr<CommWork> start_reduce_scatter_sum(const at::Tensor& out, const at::Tensor& in) override {
    check(out, "reduce-scatter");
    check(in, "reduce-scatter");
    if (in.numel() != out.numel() * world_ || out.scalar_type() != in.scalar_type())
      fail_runtime("{} reduce-scatter: the input must hold {} x the output's {} elements of its dtype (got {})", name_,
                   world_, out.numel(), in.numel());
    if (out.numel() == 0) return done();
    if (!compat::has_reduce_scatter(*g_) || !compat::sums_dtype(*g_, in.scalar_type()))
      return Communicator::start_reduce_scatter_sum(out, in);
    at::Tensor o = out, i = in;
    return launch("reduce-scatter", [&] { return compat::reduce_scatter_sum(*g_, o, i); });
  }

  std::shared_ptr<CommWork> start_broadcast(const at::Tensor& flat, int64_t root) override {
    check(flat, "broadcast");
    if (root < 0 || root >= world_) fail_runtime("{} broadcast: root {} is not a rank of {}", name_, root, world_);
    if (flat.numel() == 0) return done();
    if (!compat::sums_dtype(*g_, flat.scalar_type())) {
      at::Tensor staged = flat.to(at::kFloat);
      auto w = launch("broadcast", [&] { return compat::broadcast(*g_, staged, static_cast<int>(root)); });
      return with_then(w, [flat, staged]() mutable { flat.copy_(staged); });
    }
    at::Tensor t = flat;
    return launch("broadcast", [&] { return compat::broadcast(*g_, t, static_cast<int>(root)); });
  }

  void abort() noexcept override {
    aborted_->store(true);
    std::vector<std::shared_ptr<Pending>> live;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& w : live_)
        if (auto p = w.lock()) live.push_back(std::move(p));
    }
    for (auto& p : live) {
      std::lock_guard<std::mutex> lock(p->mu);
      p->cv.notify_all();
    }
    if (!finished_) compat::abort(*g_);
  }

  void finish() override {
    if (finished_ || aborted_->load()) return;
    try {
      compat::shutdown(*g_);
    } catch (const std::exception& e) {
      fail_runtime("{}: closing the process group failed: {}", name_, compat::error_text(e));
    }
    finished_ = true;
  }

  std::string poll_error() override {
    std::vector<std::shared_ptr<Pending>> live;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& w : live_)
        if (auto p = w.lock()) live.push_back(std::move(p));
    }
    for (auto& p : live) {
      try {
        if (!p->work->isCompleted()) continue;
        if (std::exception_ptr ep = p->work->exception()) std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        return fmt::format("rank {}: {} failed: {}; stopping", rank_, p->what, compat::error_text(e));
      }
    }
    return "";
  }

 private:
  void check(const at::Tensor& t, const char* what) const {
    if (!t.defined() || t.dim() != 1 || !t.is_contiguous() || t.device() != device_)
      fail_runtime("{} {}: expected a 1-D contiguous tensor on {}", name_, what, device_.str());
    if (aborted_->load()) fail_runtime("{} {} after the process group was aborted", name_, what);
    if (finished_) fail_runtime("{} {} after the process group was closed", name_, what);
  }

  std::shared_ptr<CommWork> done() { return std::make_shared<C10dWork>(nullptr, false, aborted_, nullptr); }

  template <typename Start>
  std::shared_ptr<C10dWork> launch(const char* what, Start&& start) {
    auto p = std::make_shared<Pending>();
    p->what = name_ + " " + what;
    try {
      p->work = start();
    } catch (const std::exception& e) {
      fail_runtime("{} failed: {}", p->what, compat::error_text(e));
    }
    if (host_wait_) {
      std::weak_ptr<Pending> weak = p;
      compat::when_complete(p->work, [weak] {
        if (auto q = weak.lock()) {
          std::lock_guard<std::mutex> lock(q->mu);
          q->done = true;
          q->cv.notify_all();
        }
      });
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      std::vector<std::weak_ptr<Pending>> keep;
      for (auto& w : live_)
        if (!w.expired()) keep.push_back(std::move(w));
      keep.push_back(p);
      live_.swap(keep);
    }
    return std::make_shared<C10dWork>(std::move(p), host_wait_, aborted_, nullptr);
  }

  std::shared_ptr<CommWork> with_then(const std::shared_ptr<C10dWork>& inner, std::function<void()> then) {
    struct Then : CommWork {
      std::shared_ptr<C10dWork> inner;
      std::function<void()> then;
      void wait() override {
        inner->wait();
        if (then) {
          then();
          then = nullptr;
        }
      }
    };
    auto w = std::make_shared<Then>();
    w->inner = inner, w->then = std::move(then);
    return w;
  }

  std::shared_ptr<compat::Group> g_;
  std::string name_;
  int64_t rank_, world_;
  at::Device device_;
  bool host_wait_;
  bool finished_ = false;
  std::shared_ptr<std::atomic<bool>> aborted_ = std::make_shared<std::atomic<bool>>(false);
  std::mutex mu_;
  std::vector<std::weak_ptr<Pending>> live_;
};

}  // namespace

std::unique_ptr<Communicator> make_c10d_communicator(const std::string& backend, Membership& members,
                                                     at::Device device) {
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(members.timeout_s() * 1000));
  const int rank = static_cast<int>(members.rank()), world = static_cast<int>(members.world_size());
  std::shared_ptr<compat::Group> g;
  try {
    if (backend == "nccl") {
      if (!device.is_cuda()) fail_usage("the nccl backend needs a CUDA device (got {})", device.str());
      g = compat::make_nccl_group(members.store(), rank, world, timeout, device.index());
    } else if (backend == "gloo") {
      if (!device.is_cpu()) fail_usage("the gloo backend runs on the CPU (got {}); use nccl for CUDA", device.str());
      g = compat::make_gloo_group(members.store(), rank, world, timeout, members.master_addr());
    } else {
      fail_usage("unknown c10d backend '{}' (expected gloo or nccl)", backend);
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail_runtime("rank {}: could not start the {} process group: {}", rank, backend, compat::error_text(e));
  }
  return std::make_unique<C10dCommunicator>(std::move(g), members.rank(), members.world_size(), device);
}

}  // namespace mp::dist
