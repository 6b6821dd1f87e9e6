#include "distill/shard/unit_runner.h"

#include "common/error.h"
#include "kernels/ssd_scan.h"
#include "model/recompute.h"
#include "model/weights.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include <optional>

namespace mp::shard {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

UnitRunner* runner_of(AutogradContext* ctx) {
  return reinterpret_cast<UnitRunner*>(ctx->saved_data["runner"].toInt());
}

// Passes a unit's weights through unchanged; its backward receives all of their gradients.
// Inputs: the anchor (a leaf that requires grad, so that the node exists), the runner, the unit,
// then the weights.
struct GradTap : public torch::autograd::Function<GradTap> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& anchor, UnitRunner* r, int64_t unit,
                               at::TensorList weights) {
    (void)anchor;
    ctx->saved_data["runner"] = reinterpret_cast<int64_t>(r);
    ctx->saved_data["unit"] = unit;
    return weights.vec();
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    runner_of(ctx)->tap_backward(ctx->saved_data["unit"].toInt(), grads);
    return variable_list(3 + grads.size());
  }
};

// One unit of a fully sharded model (see the header). Inputs: the unit's input, the anchor, the
// runner, the call's index.
struct ShardedUnit : public torch::autograd::Function<ShardedUnit> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& in, const at::Tensor& anchor, UnitRunner* r,
                            UnitRunner::Call* call) {
    (void)anchor;
    ctx->saved_data["runner"] = reinterpret_cast<int64_t>(r);
    ctx->saved_data["call"] = reinterpret_cast<int64_t>(call);
    if (!call->eager) ctx->save_for_backward({in});
    return r->forward_call(*call, in);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    auto* call = reinterpret_cast<UnitRunner::Call*>(ctx->saved_data["call"].toInt());
    at::Tensor in = call->eager ? at::Tensor() : ctx->get_saved_variables()[0];
    std::vector<at::Tensor> g = runner_of(ctx)->backward_call(*call, in, grad_out[0]);
    return {g[0], at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor embed(const Model& v, const at::Tensor& ids) { return at::embedding(v.w(kEmbeddingName), ids); }

}  // namespace

UnitRunner::UnitRunner(const ShardLayout& layout, UnitWeights& weights, GradReduceScatter* grads, RunKind kind,
                       const ModelConfig& config, at::Device device)
    : layout_(layout), weights_(weights), grads_(grads), kind_(kind), device_(device) {
  if (kind != RunKind::Frozen && !grads) fail_runtime("sharded training: a trained model needs a gradient reduce-scatter");
  scratch_.config = config;
  tapped_.config = config;
  anchor_ = at::zeros({}, at::kFloat).requires_grad_(true);
}

void UnitRunner::begin_micro() {
  calls_.clear();
  tapped_.weights.clear();
}

void UnitRunner::fill_view(Model& view, int64_t u, const at::Tensor& flat, bool leaves) {
  view.weights.clear();
  for (auto& [name, t] : unit_views(flat, layout_.units()[u]))
    view.weights[name] = leaves ? t.detach().requires_grad_(true) : t;
}

at::Tensor UnitRunner::pack(int64_t u, const std::vector<at::Tensor>& grads) const {
  const Unit& unit = layout_.units()[u];
  at::Tensor flat = at::zeros({unit.padded}, at::TensorOptions().dtype(weights_.dtype()).device(device_));
  for (size_t k = 0; k < unit.tensors.size(); ++k)
    if (grads[k].defined()) flat.narrow(0, unit.tensors[k].offset, unit.tensors[k].numel).copy_(grads[k].reshape({-1}));
  return flat;
}

at::Tensor UnitRunner::run(int64_t u, const at::Tensor& in, UnitFn f, bool eager, bool values_in_backward,
                           int64_t next_forward, int64_t next_backward) {
  if (kind_ == RunKind::Frozen) {
    at::NoGradGuard no_grad;
    at::Tensor flat = weights_.acquire(u);
    weights_.prefetch(next_forward);
    fill_view(scratch_, u, flat, false);
    at::Tensor out = f(scratch_, in);
    scratch_.weights.clear();
    return out;
  }
  if (kind_ == RunKind::Optimizer) {
    at::Tensor flat = weights_.acquire(u);
    std::vector<std::pair<std::string, at::Tensor>> views = unit_views(flat, layout_.units()[u]);
    std::vector<at::Tensor> ws;
    for (auto& [n, t] : views) ws.push_back(t);
    variable_list tapped = GradTap::apply(anchor_, this, u, at::TensorList(ws));
    for (size_t k = 0; k < views.size(); ++k) tapped_.weights[views[k].first] = tapped[k];
    return f(tapped_, in);
  }
  Call& c = calls_.emplace_back();
  c.unit = u, c.f = std::move(f), c.eager = eager, c.values_in_backward = values_in_backward;
  c.next_forward = next_forward, c.next_backward = next_backward;
  c.input_requires_grad = in.requires_grad();
  return ShardedUnit::apply(in, anchor_, this, &c);
}

at::Tensor UnitRunner::forward_call(Call& c, const at::Tensor& in) {
  at::Tensor flat = weights_.acquire(c.unit);
  weights_.prefetch(c.next_forward);
  if (!c.eager) {
    at::NoGradGuard no_grad;
    fill_view(scratch_, c.unit, flat, false);
    at::Tensor out = c.f(scratch_, in);
    scratch_.weights.clear();
    return out;
  }
  at::AutoGradMode grad_on(true);
  fill_view(scratch_, c.unit, flat, true);
  std::vector<at::Tensor> inputs{in.detach().requires_grad_(true)};
  for (const FlatTensor& t : layout_.units()[c.unit].tensors) inputs.push_back(scratch_.weights.at(t.name));
  at::Tensor out = c.f(scratch_, inputs[0]);
  variable_list g = torch::autograd::grad({out}, inputs, {}, /*retain_graph=*/false, /*create_graph=*/false,
                                          /*allow_unused=*/true);
  c.dx = g[0];
  c.dflat = pack(c.unit, std::vector<at::Tensor>(g.begin() + 1, g.end()));
  scratch_.weights.clear();
  return out.detach();
}

std::vector<at::Tensor> UnitRunner::backward_call(Call& c, const at::Tensor& in, const at::Tensor& grad_out) {
  at::NoGradGuard no_grad;
  if (c.eager) {
    weights_.prefetch(c.next_backward);
    grads_->start(c.unit, c.dflat * grad_out);
    at::Tensor dx = c.dx.defined() ? c.dx * grad_out : at::Tensor();
    c.dx = at::Tensor(), c.dflat = at::Tensor();
    return {dx};
  }
  const Unit& unit = layout_.units()[c.unit];
  at::Tensor flat = c.values_in_backward
                        ? weights_.acquire(c.unit)
                        : at::zeros({unit.padded}, at::TensorOptions().dtype(weights_.dtype()).device(device_));
  weights_.prefetch(c.next_backward);
  std::vector<at::Tensor> inputs;
  at::Tensor x = in.detach();
  if (c.input_requires_grad) inputs.push_back(x.requires_grad_(true));
  at::Tensor out;
  {
    at::AutoGradMode grad_on(true);
    SsdKeepChunkStates keep;
    fill_view(scratch_, c.unit, flat, true);
    for (const FlatTensor& t : unit.tensors) inputs.push_back(scratch_.weights.at(t.name));
    out = c.f(scratch_, x);
  }
  variable_list g = torch::autograd::grad({out}, inputs, {grad_out}, /*retain_graph=*/false, /*create_graph=*/false,
                                          /*allow_unused=*/true);
  scratch_.weights.clear();
  const size_t first = c.input_requires_grad ? 1 : 0;
  grads_->start(c.unit, pack(c.unit, std::vector<at::Tensor>(g.begin() + first, g.end())));
  return {c.input_requires_grad ? g[0] : at::Tensor()};
}

void UnitRunner::tap_backward(int64_t unit, const std::vector<at::Tensor>& grads) {
  at::NoGradGuard no_grad;
  grads_->start(unit, pack(unit, grads));
}

at::Tensor UnitRunner::forward_hidden(const at::Tensor& ids_BL, const Observer* obs, bool recompute,
                                      bool keep_ssd_states) {
  const ModelConfig& cfg = scratch_.config;
  check_token_ids(ids_BL, cfg.vocab_size);
  std::optional<SsdKeepChunkStates> keep;
  if (keep_ssd_states) keep.emplace();
  const int64_t layers = cfg.num_layers();
  at::Tensor h = run(layout_.embedding_unit(), ids_BL.to(at::kLong), embed, false, false, layout_.layer_unit(0), -1);
  for (int64_t i = 0; i < layers; ++i) {
    if (obs) (*obs)(i, Site::BlockInput, h);
    const int64_t u = layout_.layer_unit(i);
    UnitFn f = kind_ == RunKind::Optimizer && recompute && at::GradMode::is_enabled()
                   ? UnitFn([i](const Model& v, const at::Tensor& x) { return block_forward_recomputed(v, i, x); })
                   : UnitFn([i](const Model& v, const at::Tensor& x) { return block_forward(v, i, x); });
    const int64_t next_fwd = i + 1 < layers || kind_ != RunKind::Frozen ? u + 1 : -1;
    h = run(u, h, std::move(f), false, true, next_fwd, i > 0 ? u - 1 : -1);
  }
  if (obs) (*obs)(layers, Site::FinalHidden, h);
  return h;
}

at::Tensor UnitRunner::head(const at::Tensor& hidden, const UnitFn& f) {
  if (kind_ == RunKind::Frozen) fail_runtime("sharded model: head() needs a trained model");
  const int64_t u = layout_.head_unit();
  return run(u, hidden, f, true, true, -1, u - 1 >= layout_.layer_unit(0) ? u - 1 : -1);
}

at::Tensor UnitRunner::with_head(const std::function<at::Tensor(const Model& view)>& f) {
  {
    at::NoGradGuard no_grad;  // f itself may run a student's loss with grad: the weights here never need one
    fill_view(scratch_, layout_.head_unit(), weights_.acquire(layout_.head_unit()), false);
  }
  at::Tensor out = f(scratch_);
  scratch_.weights.clear();
  return out;
}

}  // namespace mp::shard
