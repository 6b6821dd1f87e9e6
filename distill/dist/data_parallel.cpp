#include "distill/dist/data_parallel.h"

#include "common/error.h"
#include "distill/dist/c10d_communicator.h"
#include "distill/dist/c10d_compat.h"
#include "distill/dist/cuda_support.h"
#include "distill/dist/grad_buckets.h"
#include "distill/dist/membership.h"
#include "model/model.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <unistd.h>

namespace mp::dist {
namespace {

#if defined(MP_WITH_NCCL)
constexpr bool kHaveNccl = true;
#else
constexpr bool kHaveNccl = false;
#endif

// Exact and order-independent: each tensor's bits summed as integers (wrapping), then mixed in
// parameter order. Equal weights give equal checksums on any device and thread count.
uint64_t weights_checksum(const std::vector<at::Tensor>& weights) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> sums;
  for (const at::Tensor& w : weights) {
    const at::ScalarType bits = w.element_size() == 8   ? at::kLong
                                : w.element_size() == 4 ? at::kInt
                                : w.element_size() == 2 ? at::kShort
                                                        : at::kChar;
    sums.push_back(at::sum(w.detach().view(bits), at::kLong));
  }
  at::Tensor all = at::stack(sums).to(at::kCPU).contiguous();
  uint64_t h = 1469598103934665603ull;
  for (int64_t i = 0; i < all.numel(); ++i) h = (h ^ static_cast<uint64_t>(all.data_ptr<int64_t>()[i])) * 1099511628211ull;
  return h;
}

class Session {
 public:
  Session(const DistEnv& env, at::Device dev, const std::string& backend, uint64_t fingerprint)
      : env_(env), members_(env, fingerprint) {
    if (const char* die = std::getenv("MP_TEST_DIE")) {
      if (std::sscanf(die, "%ld:%ld", &die_rank_, &die_step_) != 2)
        fail_usage("MP_TEST_DIE: expected RANK:STEP (a test-only fault), got '{}'", die);
    }
    std::string id;
    if (backend == "nccl-raw") {
#if defined(MP_WITH_NCCL)
      id = members_.broadcast(env.rank == 0 ? nccl_unique_id() : std::string());
#endif
    }
    // The monitor runs before the process group forms, so a rank dying while the others wait
    // for it there is noticed too.
    members_.start_monitor([this](const std::string& line, int code) { fatal(line, code); },
                           [this]() -> std::string {
                             Communicator* c = comm_ptr_.load();
                             return c ? c->poll_error() : std::string();
                           });
    if (backend == "nccl-raw") {
#if defined(MP_WITH_NCCL)
      comm_ = make_nccl_communicator(env.rank, env.world_size, dev.index(), id);
#endif
    } else {
      comm_ = make_c10d_communicator(backend, members_, dev);
    }
    comm_ptr_ = comm_.get();
  }
  ~Session() {
    members_.stop_monitor();
    comm_ptr_ = nullptr;
    buckets_.reset();
    comm_.reset();
  }

  TrainHooks hooks(TrainHooks base) {
    TrainHooks h = base;
    h.rank = env_.rank, h.world_size = env_.world_size;
    h.comm = comm_.get();  // sharded runs (--shard) do their own collectives; then no buckets exist
    h.on_weights = [this](const std::vector<at::Tensor>& w) {
      weights_ = w;
      buckets_ = std::make_unique<GradBuckets>(w, env_.bucket_bytes, *comm_);
    };
    h.before_backward = [this](int64_t step, int64_t micro, bool last) {
      if (micro == 0) {
        if (env_.rank == die_rank_ && step + 1 == die_step_) ::raise(SIGKILL);
        // Sharded runs (--shard) hand over no replicated weights: nothing to compare.
        if (env_.check_every > 0 && !weights_.empty() && (first_step_ || step % env_.check_every == 0))
          check_replicas(step + 1);
        first_step_ = false;
      }
      if (last && buckets_) buckets_->arm();
    };
    h.average = [this](std::vector<double>& v) {
      guarded([&] { comm_->all_reduce_sum(v); });
      for (double& x : v) x /= static_cast<double>(env_.world_size);
    };
    h.after_backward = [this, then = base.after_backward](int64_t step, const std::vector<at::Tensor>& grads) {
      if (buckets_) guarded([&] { buckets_->finish(grads); });
      members_.set_steps_done(step + 1);  // every collective of this step is complete
      if (then) then(step, grads);
    };
    return h;
  }

  void finish() {
    comm_->finish();
    members_.finish();
  }
  void fail(int exit_code) noexcept { members_.announce_failure(exit_code); }

 private:
  // A collective failed (a rank went missing, a timeout): stop the whole job now. Usually a rank
  // went: the monitor then names it, which takes up to the heartbeat timeout.
  template <typename F>
  void guarded(F&& f) {
    try {
      f();
    } catch (const Error& e) {
      if (members_.await_loss(env_.heartbeat_timeout_s + 2.0))  // the monitor is stopping the process
        std::this_thread::sleep_for(std::chrono::seconds(20));
      fatal(fmt::format("{} {}; stopping", e.what(), members_.progress()), 1);
    }
  }

  // Prints the one line, lets the others know, aborts the collectives and exits, from whichever
  // thread sees the failure first (the others wait for the exit).
  [[noreturn]] void fatal(const std::string& line, int code) {
    static std::atomic<bool> once{false};
    if (once.exchange(true))
      for (;;) ::pause();
    std::fprintf(stderr, "minipuzzle: error: %s%s\n", env_.rank ? fmt::format("rank {}: ", env_.rank).c_str() : "",
                 line.c_str());
    std::fflush(stderr);
    std::thread([code] {  // should aborting itself hang, exit anyway
      std::this_thread::sleep_for(std::chrono::seconds(10));
      ::_exit(code);
    }).detach();
    members_.relay_abort(line, code);
    if (Communicator* c = comm_ptr_.load()) c->abort();
    ::_exit(code);
  }

  void check_replicas(int64_t step) {
    const uint64_t mine = weights_checksum(weights_);
    const int64_t W = env_.world_size;
    std::vector<double> v(static_cast<size_t>(4 * W), 0.0);  // 16 bits per slot: sums stay exact
    for (int k = 0; k < 4; ++k) v[4 * env_.rank + k] = static_cast<double>((mine >> (16 * k)) & 0xffff);
    guarded([&] { comm_->all_reduce_sum(v); });
    auto of = [&](int64_t r) {
      uint64_t h = 0;
      for (int k = 0; k < 4; ++k) h |= static_cast<uint64_t>(v[4 * r + k]) << (16 * k);
      return h;
    };
    for (int64_t r = 1; r < W; ++r)
      if (of(r) != of(0))
        fail_runtime("the ranks' weights differ before step {}: rank {} has checksum {:016x}, rank 0 {:016x}; every "
                     "rank must start from the same weights and apply the same updates",
                     step, r, of(r), of(0));
  }

  DistEnv env_;
  Membership members_;
  std::unique_ptr<Communicator> comm_;
  std::atomic<Communicator*> comm_ptr_{nullptr};
  std::unique_ptr<GradBuckets> buckets_;
  std::vector<at::Tensor> weights_;
  long die_rank_ = -1, die_step_ = -1;
  bool first_step_ = true;
};

// The collective library for this device (MP_DIST_BACKEND, dist_env.h), checked against what
// this build has before any connection is made.
std::string choose_backend(std::string backend, at::Device dev, const std::string& device) {
  if (backend == "auto") {
    if (!dev.is_cuda()) backend = "gloo";
    else if (compat::have_nccl()) backend = "nccl";
    else if (kHaveNccl) backend = "nccl-raw";
    else
      fail_usage("data parallel on {} needs NCCL, which this build lacks (a CUDA LibTorch >= 2.3 with "
                 "ProcessGroupNCCL, or nccl.h, when it was configured; see docs/distributed.md)", device);
  }
  if (backend == "gloo" && dev.is_cuda())
    fail_usage("MP_DIST_BACKEND=gloo runs on the CPU, not on {}; use nccl for CUDA devices", device);
  if ((backend == "nccl" || backend == "nccl-raw") && !dev.is_cuda())
    fail_usage("MP_DIST_BACKEND={} needs a CUDA --device (got {}); use gloo for the CPU", backend, device);
  if (backend == "gloo" && !compat::have_gloo())
    fail_usage("data parallel on the CPU needs Gloo, which this build lacks (LibTorch's ProcessGroupGloo.hpp or "
               "Gloo's headers were not found when it was configured; see docs/distributed.md)");
  if (backend == "nccl" && !compat::have_nccl())
    fail_usage("MP_DIST_BACKEND=nccl: this build has no ProcessGroupNCCL (it needs a CUDA LibTorch >= 2.3 when "
               "configured; see docs/distributed.md)");
  if (backend == "nccl-raw" && !kHaveNccl)
    fail_usage("MP_DIST_BACKEND=nccl-raw: this build has no NCCL (nccl.h was not found when it was configured; see "
               "docs/distributed.md)");
  return backend;
}

}  // namespace

uint64_t job_fingerprint(const TrainConfig& config) {
  nlohmann::json shaped = nlohmann::json::object();
  const nlohmann::json all = train_config_to_json(config);
  for (auto it = all.begin(); it != all.end(); ++it)
    if (!resume_may_change(it.key()) || it.key() == "dtype" || it.key() == "shard") shaped[it.key()] = it.value();
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : shaped.dump()) h = (h ^ ch) * 1099511628211ull;
  return h;
}

TrainSummary run_data_parallel(TrainConfig c, const DistEnv& env, TrainHooks hooks) {
  if (!env.distributed()) fail_usage("run_data_parallel needs a world size > 1");
  validate_train_config(c, env.world_size);
  if (c.device == "cuda") c.device = "cuda:" + std::to_string(env.local_rank);
  const at::Device dev = parse_device(c.device);
  const std::string backend = choose_backend(env.backend, dev, c.device);
#if defined(MP_WITH_TORCH_CUDA)
  if (dev.is_cuda()) use_cuda_device(dev.index());
#endif
  Session session(env, dev, backend, job_fingerprint(c));
  if (env.rank == 0 && !c.quiet) {
    std::string how = "c10d " + backend + " (LibTorch " + compat::torch_version() + ")";
#if defined(MP_WITH_NCCL)
    if (backend == "nccl-raw") how = "NCCL " + nccl_version() + " called directly";
#endif
    std::fprintf(stderr, "data parallel: %ld ranks, %s, gradient buckets of %ld MiB\n",
                 static_cast<long>(env.world_size), how.c_str(), static_cast<long>(env.bucket_bytes >> 20));
  }
  try {
    TrainSummary s = run_training(c, session.hooks(std::move(hooks)));
    session.finish();
    return s;
  } catch (const Error& e) {
    session.fail(e.exit_code());
    if (env.rank != 0) throw Error(e.kind(), fmt::format("rank {}: {}", env.rank, e.what()));
    throw;
  } catch (...) {
    session.fail(1);
    throw;
  }
}

}  // namespace mp::dist
