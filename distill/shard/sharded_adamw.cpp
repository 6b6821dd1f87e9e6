#include "distill/shard/sharded_adamw.h"

#include "common/error.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <utility>

namespace mp::shard {

ShardedAdamW::ShardedAdamW(const ShardLayout& layout, std::vector<at::Tensor> master_shards, AdamWOptions opt)
    : layout_(layout), opt_(opt), master_(std::move(master_shards)) {
  at::NoGradGuard no_grad;
  const std::vector<Unit>& units = layout.units();
  if (master_.size() != units.size())
    fail_runtime("sharded AdamW: {} unit shards for a layout of {}", master_.size(), units.size());
  decay_.resize(units.size());
  for (const OwnedRange& r : layout.owned_ranges()) {
    const Unit& u = units[r.unit];
    for (const FlatTensor& t : u.tensors)
      if (t.name == r.name && r.end > r.begin && t.shape.size() >= 2)  // applies_weight_decay: matrices
        decay_[r.unit].emplace_back(r.shard_offset, r.end - r.begin);
  }
  for (size_t k = 0; k < units.size(); ++k) {
    if (master_[k].numel() != units[k].shard || master_[k].scalar_type() != at::kFloat)
      fail_runtime("sharded AdamW: the master shard of {} is not {} fp32 elements", units[k].name, units[k].shard);
    m_.push_back(at::zeros_like(master_[k]));
    v_.push_back(at::zeros_like(master_[k]));
    grad_.push_back(at::zeros_like(master_[k]));
  }
}

void ShardedAdamW::zero_grads() {
  for (at::Tensor& g : grad_) g.zero_();
}

double ShardedAdamW::local_grad_sq() const {
  std::vector<at::Tensor> sq;
  for (const at::Tensor& g : grad_) sq.push_back(g.pow(2).sum().to(at::kDouble));
  return sq.empty() ? 0.0 : at::stack(sq).sum().item<double>();
}

void ShardedAdamW::scale_grads(double coef) {
  for (at::Tensor& g : grad_) g.mul_(coef);
}

void ShardedAdamW::step(double lr) {
  at::NoGradGuard no_grad;
  ++steps_;
  const double b1 = opt_.beta1, b2 = opt_.beta2;
  const double bc1 = 1.0 - std::pow(b1, static_cast<double>(steps_));
  const double bc2 = 1.0 - std::pow(b2, static_cast<double>(steps_));
  const double step_size = lr / bc1, inv_sqrt_bc2 = 1.0 / std::sqrt(bc2);
  for (size_t k = 0; k < master_.size(); ++k) {
    at::Tensor& p = master_[k];
    if (opt_.weight_decay != 0.0)
      for (const auto& [off, len] : decay_[k]) p.narrow(0, off, len).mul_(1.0 - lr * opt_.weight_decay);
    const at::Tensor& g = grad_[k];
    m_[k].mul_(b1).add_(g, 1.0 - b1);
    v_[k].mul_(b2).addcmul_(g, g, 1.0 - b2);
    at::Tensor denom = (v_[k].sqrt() * inv_sqrt_bc2).add_(opt_.eps);
    p.addcdiv_(m_[k], denom, -step_size);
  }
}

std::vector<OwnedState> ShardedAdamW::owned_state() {
  std::vector<OwnedState> out;
  for (const OwnedRange& r : layout_.owned_ranges()) {
    const int64_t n = r.end - r.begin;
    out.push_back({r, master_[r.unit].narrow(0, r.shard_offset, n), m_[r.unit].narrow(0, r.shard_offset, n),
                   v_[r.unit].narrow(0, r.shard_offset, n)});
  }
  return out;
}

int64_t ShardedAdamW::held_bytes() const {
  int64_t b = 0;
  for (const auto* v : {&master_, &m_, &v_, &grad_})
    for (const at::Tensor& t : *v) b += t.numel() * static_cast<int64_t>(t.element_size());
  return b;
}

}  // namespace mp::shard
