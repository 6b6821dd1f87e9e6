// Assembles an Importance from the calibration and layer-removal passes: LibTorch tensors become
// the file's float vectors (kept apart from importance.cpp, whose reading and writing need no
// LibTorch).
#include "prune/calibration.h"
#include "prune/importance.h"
#include "prune/layer_importance.h"

#include <ATen/ATen.h>

namespace mp {
namespace {

std::vector<float> to_vec(const at::Tensor& t) {
  if (!t.defined()) return {};
  at::Tensor c = t.to(at::kFloat).cpu().contiguous().reshape({-1});
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

}  // namespace

Importance make_importance(const ModelConfig& parent, uint64_t fingerprint, const ScoreSettings& s,
                           const CalibrationScores& cal, const LayerDropScores& drops) {
  Importance imp;
  imp.parent = parent;
  imp.fingerprint = fingerprint;
  imp.settings = s;
  imp.full_loss = drops.full_loss;
  const int64_t n = parent.num_layers();
  imp.hidden.assign(parent.hidden_size, 0.0f);
  at::Tensor hidden_sum = at::zeros({parent.hidden_size}, at::kDouble);
  for (int64_t i = 0; i < n; ++i) {
    imp.hidden_per_layer.push_back(to_vec(cal.mixer_input[i]));
    hidden_sum += cal.mixer_input[i].to(at::kDouble);
    imp.mlp.push_back(to_vec(cal.mlp[i]));
    imp.attention.push_back(to_vec(cal.attn_heads[i]));
    imp.mamba.push_back(to_vec(cal.mamba[i]));
    LayerImportanceRow r;
    r.mse_hidden = drops.mse_hidden[i];
    r.mse_normed = drops.mse_normed[i];
    r.kl = drops.kl[i];
    r.loss_delta = drops.loss_delta[i];
    r.agreement = drops.agreement[i];
    r.block_influence = cal.block_influence[i];
    imp.layers.push_back(r);
  }
  imp.hidden = to_vec(hidden_sum);
  return imp;
}

}  // namespace mp
