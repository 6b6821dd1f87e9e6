#include "distill/dist/grad_buckets.h"

#include "common/error.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

namespace mp::dist {

std::vector<std::vector<size_t>> plan_buckets(const std::vector<at::Tensor>& params, int64_t cap_bytes) {
  std::vector<std::vector<size_t>> out;
  int64_t bytes = 0;
  for (size_t k = params.size(); k-- > 0;) {
    const at::Tensor& p = params[k];
    const int64_t b = p.numel() * static_cast<int64_t>(p.element_size());
    bool fresh = out.empty() || bytes + b > cap_bytes;
    if (!fresh) {
      const at::Tensor& q = params[out.back().front()];
      fresh = q.scalar_type() != p.scalar_type() || q.device() != p.device();
    }
    if (fresh) out.emplace_back(), bytes = 0;
    out.back().push_back(k);
    bytes += b;
  }
  return out;
}

GradBuckets::GradBuckets(std::vector<at::Tensor> params, int64_t cap_bytes, Communicator& comm)
    : params_(std::move(params)), comm_(comm) {
  layout_ = plan_buckets(params_, cap_bytes);
  slots_.resize(params_.size());
  buckets_.resize(layout_.size());
  for (size_t b = 0; b < layout_.size(); ++b) {
    int64_t n = 0;
    for (size_t i : layout_[b]) slots_[i] = {b, n, false}, n += params_[i].numel();
    const at::Tensor& first = params_[layout_[b].front()];
    buckets_[b].flat = at::zeros({n}, first.options().requires_grad(false));
    buckets_[b].pending = static_cast<int64_t>(layout_[b].size());
  }
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!params_[i].requires_grad()) fail_runtime("data parallel: parameter {} does not require a gradient", i);
    hook_ids_.push_back(params_[i].register_hook([this, i](const at::Tensor& g) { on_grad(i, g); }));
  }
}

GradBuckets::~GradBuckets() {
  for (size_t i = 0; i < hook_ids_.size(); ++i) params_[i].remove_hook(hook_ids_[i]);
}

void GradBuckets::arm() {
  std::lock_guard<std::mutex> lock(mu_);
  armed_ = true;
}

void GradBuckets::on_grad(size_t i, const at::Tensor& g) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!armed_ || slots_[i].filled) return;
  fill_locked(i, g);
  launch_ready_locked();
}

void GradBuckets::fill_locked(size_t i, const at::Tensor& g) {
  at::NoGradGuard no_grad;
  Slot& s = slots_[i];
  const at::Tensor& p = params_[i];
  at::Tensor dst = buckets_[s.bucket].flat.narrow(0, s.offset, p.numel()).view(p.sizes());
  const at::Tensor& prev = p.grad();
  if (g.defined() && prev.defined()) at::add_out(dst, prev, g);
  else if (g.defined()) dst.copy_(g);
  else if (prev.defined()) dst.copy_(prev);
  else dst.zero_();
  s.filled = true;
  --buckets_[s.bucket].pending;
}

void GradBuckets::launch_ready_locked() {
  while (next_launch_ < static_cast<int64_t>(buckets_.size()) && buckets_[next_launch_].pending == 0) {
    Bucket& b = buckets_[next_launch_++];
    b.work = comm_.start_all_reduce_sum(b.flat);
  }
}

void GradBuckets::finish(const std::vector<at::Tensor>& grads) {
  if (grads.size() != params_.size())
    fail_runtime("data parallel: {} gradients for {} parameters", grads.size(), params_.size());
  std::unique_lock<std::mutex> lock(mu_);
  if (!armed_) fail_runtime("data parallel: gradients finished without arm() before the last backward");
  for (size_t i = 0; i < params_.size(); ++i)
    if (!slots_[i].filled) fill_locked(i, at::Tensor());
  launch_ready_locked();
  armed_ = false;
  lock.unlock();
  at::NoGradGuard no_grad;
  for (Bucket& b : buckets_) {
    b.work->wait();
    b.work.reset();
    b.flat.div_(static_cast<double>(comm_.world_size()));
  }
  lock.lock();
  for (size_t i = 0; i < params_.size(); ++i) {
    const Slot& s = slots_[i];
    grads[i].copy_(buckets_[s.bucket].flat.narrow(0, s.offset, params_[i].numel()).view(params_[i].sizes()));
    slots_[i].filled = false;
  }
  for (size_t b = 0; b < buckets_.size(); ++b) buckets_[b].pending = static_cast<int64_t>(layout_[b].size());
  next_launch_ = 0;
}

}  // namespace mp::dist
