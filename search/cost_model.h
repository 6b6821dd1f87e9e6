// Deployment memory of a shape under a budget: weights in the budget's format, KV cache, Mamba
// conv and SSM state, and an activation workspace for one prefill chunk. Arithmetic only.
#pragma once

#include "model/config.h"
#include "search/budget.h"

namespace mp {

struct MemoryBreakdown {
  double weights = 0, kv_cache = 0, mamba_conv = 0, mamba_ssm = 0, workspace = 0;  // bytes
  double total() const { return weights + kv_cache + mamba_conv + mamba_ssm + workspace; }
};

// Weights: every projection matrix (and the embedding / LM head unless embeddings_bf16) in the
// budget's weight format with its scales counted per tensor; norms, conv1d, A_log, D and dt_bias
// stay bf16 (small, and precision-sensitive).
// Workspace: a prefill chunk of T tokens holds the residual stream, the normed input and the
// widest mixer intermediate in bf16 (T x (2d + max(F, in_proj rows, q + 2 kv)) x 2 bytes) plus
// the fp32 logits of the last token per sequence.
MemoryBreakdown deployment_memory(const ModelConfig& c, const Budget& b);

double to_gib(double bytes);  // bytes / 2^30

}  // namespace mp
