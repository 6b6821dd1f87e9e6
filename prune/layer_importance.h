// Layer importance by removal (docs/method.md): for every layer i, run the model without it and
// compare with the full model on the same windows:
//   mse_hidden  mean over elements of (h_drop - h_full)^2, the stream after the last layer
//   mse_normed  the same after norm_f (the LM head's input)
//   kl          mean over tokens of KL(p_full || p_drop) of the next-token distributions
//   loss_delta  LM loss (nats/token) without the layer minus the full model's
//   agreement   fraction of tokens where argmax p_drop == argmax p_full (lower = more important)
// Cost: the residual stream entering each layer is that of the full model, so dropping layer i
// starts from the full model's input of layer i and runs only layers i+1..: about n^2/2 block
// evaluations instead of n^2. The pass is layer-major (every dropped stream is advanced through
// layer j while layer j's weights are at hand), so a streaming source loads each layer once per
// pass. Logits exist only one token slice at a time. Memory: one residual stream per layer for
// the windows of a pass (n x micro_batch x L x d), so large models want a small micro-batch.
#pragma once

#include "prune/layer_source.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <vector>

namespace mp {

struct LayerImportanceOptions {
  int64_t micro_batch = 4;
  int64_t windows_per_pass = 0;  // 0 = micro_batch; results do not depend on it
  int64_t slice_tokens = 1024;   // tokens whose logits are formed at once
  std::function<void(int64_t windows_done)> on_windows;
};

struct LayerDropScores {
  std::vector<double> mse_hidden, mse_normed, kl, loss_delta, agreement;
  double full_loss = 0.0;  // nats/token of the full model on these windows
  int64_t windows = 0, tokens = 0;
};

// windows: int64 [N, L + 1]; inputs [:, :L], targets [:, 1:].
LayerDropScores layer_importance(LayerSource& src, const at::Tensor& windows, const LayerImportanceOptions& opt);

}  // namespace mp
