#include "distill/whole_student.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <string>
#include <utility>

namespace mp {

void WholeStudent::bind(const Model& base, at::Device dev, at::ScalarType dt, const AdamWOptions& ao) {
  std::vector<std::pair<std::string, at::Tensor>> params;
  for (const auto& [n, t] : base.ordered()) params.emplace_back(n, t.to(dev, at::kFloat));
  opt = std::make_unique<AdamW>(params, ao);
  model.config = base.config;
  model.config.dtype = dtype_config_name(dt);
  shares_masters = dt == at::kFloat;
  rebind(dt);
}

void WholeStudent::rebind(at::ScalarType dt) {
  model.weights.clear();
  for (size_t i = 0; i < opt->names().size(); ++i) {
    at::Tensor w = shares_masters ? opt->masters()[i] : opt->masters()[i].to(dt);
    w.set_requires_grad(true);
    model.weights[opt->names()[i]] = w;
  }
}

std::vector<at::Tensor> WholeStudent::weights() const {
  std::vector<at::Tensor> w;
  for (const std::string& n : opt->names()) w.push_back(model.weights.at(n));
  return w;
}

std::vector<at::Tensor> WholeStudent::grads() const {
  std::vector<at::Tensor> g;
  for (const std::string& n : opt->names()) {
    const at::Tensor& w = model.weights.at(n);
    g.push_back(w.grad().defined() ? w.grad() : at::zeros_like(w));
  }
  return g;
}

void WholeStudent::after_step() {
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < opt->names().size(); ++i) {
    at::Tensor& w = model.weights.at(opt->names()[i]);
    w.mutable_grad() = at::Tensor();
    if (!shares_masters) w.copy_(opt->masters()[i]);
  }
}

int64_t WholeStudent::held_bytes() const {
  int64_t b = 0;
  for (size_t i = 0; i < opt->names().size(); ++i) {
    const at::Tensor& w = model.weights.at(opt->names()[i]);
    const int64_t wb = w.numel() * static_cast<int64_t>(w.element_size());
    b += 3 * opt->masters()[i].numel() * 4 + wb + (shares_masters ? 0 : wb);
  }
  return b;
}

Model WholeStudent::detached() const {
  Model m;
  m.config = model.config;
  for (const auto& [n, t] : model.weights) m.weights[n] = t.detach();
  return m;
}

}  // namespace mp
