#include "model/recompute.h"

#include "model/forward.h"
#include "model/weights.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

namespace mp {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Inputs, in the order backward returns their gradients: the block input, the model (no
// gradient), the layer index (no gradient), then the layer's weights.
struct RecomputedBlock : public torch::autograd::Function<RecomputedBlock> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& h, const Model* m, int64_t layer,
                            at::TensorList params) {
    ctx->saved_data["model"] = reinterpret_cast<int64_t>(m);
    ctx->saved_data["layer"] = layer;
    ctx->saved_data["params"] = static_cast<int64_t>(params.size());
    ctx->save_for_backward({h});
    at::NoGradGuard no_grad;
    return block_forward(*m, layer, h);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    const Model& m = *reinterpret_cast<const Model*>(ctx->saved_data["model"].toInt());
    const int64_t layer = ctx->saved_data["layer"].toInt();
    at::Tensor h = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    // The layer's weights as the model holds them (leaves with requires_grad): the gradient is
    // taken with respect to them and handed back through this node, not accumulated here.
    std::vector<at::Tensor> inputs{h};
    for (const auto& [name, t] : m.weights)
      if (name.rfind(layer_prefix(layer), 0) == 0) inputs.push_back(t);
    at::Tensor out;
    {
      at::AutoGradMode grad_on(true);
      out = block_forward(m, layer, h);
    }
    variable_list g = torch::autograd::grad({out}, inputs, {grad_out[0]}, /*retain_graph=*/false,
                                            /*create_graph=*/false, /*allow_unused=*/true);
    variable_list result{g[0], at::Tensor(), at::Tensor()};
    for (size_t i = 1; i < g.size(); ++i) result.push_back(g[i]);
    return result;
  }
};

}  // namespace

at::Tensor block_forward_recomputed(const Model& m, int64_t layer, const at::Tensor& h_BLD) {
  std::vector<at::Tensor> params;
  for (const auto& [name, t] : m.weights)
    if (name.rfind(layer_prefix(layer), 0) == 0) params.push_back(t);
  return RecomputedBlock::apply(h_BLD, &m, layer, at::TensorList(params));
}

}  // namespace mp
