// Language-model statistics over token windows: loss, perplexity, next-token accuracy.
// Logits are formed a slice of tokens at a time, so a 131072-token vocabulary never needs the
// whole batch's logits in memory.
#pragma once

#include "model/model.h"

#include <ATen/core/Tensor.h>

#include <cmath>
#include <cstdint>
#include <functional>

namespace mp {

struct LmStats {
  double loss_sum = 0.0;  // sum of -log p(target) in nats
  int64_t tokens = 0;
  int64_t correct = 0;    // argmax == target
  double loss() const { return tokens ? loss_sum / tokens : 0.0; }
  double perplexity() const { return std::exp(loss()); }
  double accuracy() const { return tokens ? static_cast<double>(correct) / tokens : 0.0; }
  double bits_per_token() const { return loss() / std::log(2.0); }
  void add(const LmStats& o) { loss_sum += o.loss_sum; tokens += o.tokens; correct += o.correct; }
};

// windows: int64 [N, L + 1]; inputs are [:, :L], targets [:, 1:]. Runs without gradients in
// micro-batches on the model's device. `on_batch(tokens_done)` is called after each micro-batch.
LmStats lm_stats(const Model& m, const at::Tensor& windows, int64_t micro_batch,
                 const std::function<void(int64_t)>& on_batch = {});

// Sum statistics for given normed hidden states [T, d] and targets [T], a slice at a time.
LmStats lm_stats_from_hidden(const Model& m, const at::Tensor& normed_Td, const at::Tensor& targets_T,
                             int64_t slice_tokens = 2048);

}  // namespace mp
