// Parameter, weight-byte and inference-state accounting from a config alone (no tensors), so
// it costs microseconds even for 56B-sized shapes.
#pragma once

#include "model/config.h"

#include <cstdint>

namespace mp {

struct ParamCounts {
  int64_t embedding = 0, lm_head = 0, final_norm = 0;
  int64_t mamba = 0, attention = 0, mlp = 0;  // all layers of the type, their pre-norms included
  int64_t per_mamba_layer = 0, per_attention_layer = 0, per_mlp_layer = 0;  // with pre-norm
  int64_t total() const { return embedding + lm_head + final_norm + mamba + attention + mlp; }
};
ParamCounts count_params(const ModelConfig& c);

// Inference state (the cache a decoder keeps), in elements; multiply by the state dtype size.
struct StateSizes {
  int64_t kv_per_token = 0;           // all attention layers: layers x 2 x kv_heads x head_dim
  int64_t mamba_conv_per_seq = 0;     // all Mamba layers: conv_dim x (conv_kernel - 1)
  int64_t mamba_ssm_per_seq = 0;      // all Mamba layers: heads x head_dim x state
};
StateSizes state_sizes(const ModelConfig& c);

// Forward FLOPs per token at a given context (matmuls 2 x params, attention scores and values,
// and the SSD scan's intra-chunk and state terms); used for roofline figures.
double forward_flops_per_token(const ModelConfig& c, int64_t context);

}  // namespace mp
