#include "model/recompute.h"

#include "kernels/ssd_scan.h"
#include "model/forward.h"
#include "model/weights.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

namespace mp {
namespace {

using torch::autograd::AutogradContext;

// Layer i's tensors as the model holds them (leaves with requires_grad during training), in name
// order: the names sharing the prefix "backbone.layers.{i}." are contiguous in the sorted map.
std::vector<at::Tensor> layer_weights(const Model& m, int64_t layer) {
  const std::string prefix = layer_prefix(layer);
  std::vector<at::Tensor> out;
  for (auto it = m.weights.lower_bound(prefix); it != m.weights.end() && it->first.rfind(prefix, 0) == 0; ++it)
    out.push_back(it->second);
  return out;
}
using torch::autograd::variable_list;

// Inputs, in the order backward returns their gradients: the block input, the model (no
// gradient), the layer index (no gradient), then the layer's weights.
struct RecomputedBlock : public torch::autograd::Function<RecomputedBlock> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& h, const Model* m, int64_t layer,
                            at::TensorList params) {
    ctx->saved_data["model"] = reinterpret_cast<int64_t>(m);
    ctx->saved_data["layer"] = layer;
    ctx->save_for_backward({h});
    at::NoGradGuard no_grad;
    return block_forward(*m, layer, h);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    const Model& m = *reinterpret_cast<const Model*>(ctx->saved_data["model"].toInt());
    const int64_t layer = ctx->saved_data["layer"].toInt();
    at::Tensor h = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    // The gradient is taken with respect to the layer's weights and handed back through this
    // node, not accumulated here.
    std::vector<at::Tensor> inputs{h};
    for (const at::Tensor& t : layer_weights(m, layer)) inputs.push_back(t);
    at::Tensor out;
    {
      at::AutoGradMode grad_on(true);
      // This graph lives until the grad call below, so the SSD scan may keep its chunk states for
      // its backward at the cost of one layer's worth of memory (kernels/ssd_scan.h).
      SsdKeepChunkStates keep;
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
  const std::vector<at::Tensor> params = layer_weights(m, layer);
  return RecomputedBlock::apply(h_BLD, &m, layer, at::TensorList(params));
}

}  // namespace mp
