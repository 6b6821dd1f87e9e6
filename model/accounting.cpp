#include "model/accounting.h"

namespace mp {

ParamCounts count_params(const ModelConfig& c) {
  ParamCounts p;
  const int64_t d = c.hidden_size;
  p.embedding = c.vocab_size * d;
  p.lm_head = c.vocab_size * d;
  p.final_norm = d;
  const int64_t H = c.mamba_num_heads, I = c.mamba_inner(), K = c.conv_kernel;
  // in_proj + conv1d (weight and bias) + dt_bias, A_log, D + gated norm + out_proj + pre-norm
  p.per_mamba_layer = c.mamba_in_proj_rows() * d + c.mamba_conv_dim() * K +
                      (c.use_conv_bias ? c.mamba_conv_dim() : 0) + 3 * H + I + d * I + d;
  const int64_t q = c.num_attention_heads * c.head_dim, kv = c.num_key_value_heads * c.head_dim;
  p.per_attention_layer = q * d + 2 * kv * d + d * q + d;
  p.per_mlp_layer = 2 * c.intermediate_size * d + d;
  p.mamba = p.per_mamba_layer * c.count(LayerType::Mamba);
  p.attention = p.per_attention_layer * c.count(LayerType::Attention);
  p.mlp = p.per_mlp_layer * c.count(LayerType::Mlp);
  return p;
}

StateSizes state_sizes(const ModelConfig& c) {
  StateSizes s;
  s.kv_per_token = c.count(LayerType::Attention) * 2 * c.num_key_value_heads * c.head_dim;
  const int64_t m = c.count(LayerType::Mamba);
  s.mamba_conv_per_seq = m * c.mamba_conv_dim() * (c.conv_kernel - 1);
  s.mamba_ssm_per_seq = m * c.mamba_num_heads * c.mamba_head_dim * c.ssm_state_size;
  return s;
}

double forward_flops_per_token(const ModelConfig& c, int64_t context) {
  ParamCounts p = count_params(c);
  // Every weight except the embedding table is used once per token in a matmul (2 FLOPs a MAC).
  double flops = 2.0 * static_cast<double>(p.total() - p.embedding);
  // Causal attention: QK^T and AV, on average over a sequence of `context` tokens half the keys.
  flops += c.count(LayerType::Attention) * 2.0 * 2.0 * c.num_attention_heads * c.head_dim * (context / 2.0);
  // SSD per token: state update and readout (4 H P N), intra-chunk C.B (2 G Q N) and its use (2 H Q P).
  const double Q = static_cast<double>(c.chunk_size);
  flops += c.count(LayerType::Mamba) *
           (4.0 * c.mamba_num_heads * c.mamba_head_dim * c.ssm_state_size +
            2.0 * c.n_groups * Q * c.ssm_state_size + 2.0 * c.mamba_num_heads * Q * c.mamba_head_dim);
  return flops;
}

}  // namespace mp
