#include "distill/optim.h"

#include "common/error.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>

namespace mp {

bool applies_weight_decay(const std::string& name, const at::Tensor& t) {
  // 1-D tensors are norm weights, biases and the SSM's A_log / D / dt_bias: never decayed.
  (void)name;
  return t.dim() >= 2;
}

AdamW::AdamW(const std::vector<std::pair<std::string, at::Tensor>>& params, AdamWOptions opt) : opt_(opt) {
  for (const auto& [name, t] : params) {
    names_.push_back(name);
    decay_.push_back(applies_weight_decay(name, t));
    at::Tensor p = t.detach().to(at::kFloat);
    if (p.data_ptr() == t.data_ptr()) p = p.clone();  // never alias the caller's tensor
    master_.push_back(p);
    m_.push_back(at::zeros_like(p));
    v_.push_back(at::zeros_like(p));
  }
}

void AdamW::step(const std::vector<at::Tensor>& grads, double lr) {
  if (grads.size() != master_.size())
    fail_runtime("AdamW: {} gradients for {} parameters", grads.size(), master_.size());
  at::NoGradGuard no_grad;
  ++steps_;
  const double b1 = opt_.beta1, b2 = opt_.beta2;
  const double bc1 = 1.0 - std::pow(b1, static_cast<double>(steps_));
  const double bc2 = 1.0 - std::pow(b2, static_cast<double>(steps_));
  const double step_size = lr / bc1, inv_sqrt_bc2 = 1.0 / std::sqrt(bc2);
  for (size_t i = 0; i < master_.size(); ++i) {
    at::Tensor& p = master_[i];
    if (decay_[i] && opt_.weight_decay != 0.0) p.mul_(1.0 - lr * opt_.weight_decay);
    if (grads[i].defined()) {
      at::Tensor g = grads[i].to(at::kFloat);
      m_[i].mul_(b1).add_(g, 1.0 - b1);
      v_[i].mul_(b2).addcmul_(g, g, 1.0 - b2);
    } else {
      m_[i].mul_(b1);
      v_[i].mul_(b2);
    }
    at::Tensor denom = (v_[i].sqrt() * inv_sqrt_bc2).add_(opt_.eps);
    p.addcdiv_(m_[i], denom, -step_size);
  }
}

std::vector<std::pair<std::string, at::Tensor>> AdamW::state_tensors() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (size_t i = 0; i < names_.size(); ++i) out.emplace_back("master." + names_[i], master_[i].detach().cpu());
  for (size_t i = 0; i < names_.size(); ++i) out.emplace_back("exp_avg." + names_[i], m_[i].detach().cpu());
  for (size_t i = 0; i < names_.size(); ++i) out.emplace_back("exp_avg_sq." + names_[i], v_[i].detach().cpu());
  return out;
}

void AdamW::load_state(const std::map<std::string, at::Tensor>& state, int64_t steps_taken,
                       const std::string& source) {
  at::NoGradGuard no_grad;
  auto restore = [&](const std::string& key, at::Tensor& into) {
    auto it = state.find(key);
    if (it == state.end()) fail_input("{}: optimizer state lacks tensor '{}'", source, key);
    if (it->second.sizes() != into.sizes())
      fail_input("{}: optimizer tensor '{}' has {} elements in shape {}, the model needs shape {}", source, key,
                 it->second.numel(), c10::str(it->second.sizes()), c10::str(into.sizes()));
    // A damaged state would turn the first update into NaN weights: refused here, naming the tensor.
    if (!at::isfinite(it->second).all().item<bool>())
      fail_input("{}: optimizer tensor '{}' holds NaN or infinite values; the checkpoint is damaged", source, key);
    if (key.rfind("exp_avg_sq.", 0) == 0 && (it->second < 0).any().item<bool>())
      fail_input("{}: optimizer tensor '{}' holds negative second moments; the checkpoint is damaged", source, key);
    into.copy_(it->second);
  };
  for (size_t i = 0; i < names_.size(); ++i) {
    restore("master." + names_[i], master_[i]);
    restore("exp_avg." + names_[i], m_[i]);
    restore("exp_avg_sq." + names_[i], v_[i]);
  }
  steps_ = steps_taken;
}

double global_grad_norm(const std::vector<at::Tensor>& grads) {
  std::vector<at::Tensor> sq;
  for (const at::Tensor& g : grads)
    if (g.defined()) sq.push_back(g.to(at::kFloat).pow(2).sum().to(at::kDouble));
  if (sq.empty()) return 0.0;
  return std::sqrt(at::stack(sq).sum().item<double>());
}

double clip_grad_norm(const std::vector<at::Tensor>& grads, double max_norm) {
  const double norm = global_grad_norm(grads);
  if (max_norm > 0.0 && std::isfinite(norm) && norm > max_norm) {
    at::NoGradGuard no_grad;
    const double coef = max_norm / (norm + 1e-6);
    for (const at::Tensor& g : grads)
      if (g.defined()) g.mul_(coef);
  }
  return norm;
}

}  // namespace mp
