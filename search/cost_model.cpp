#include "search/cost_model.h"

#include <algorithm>

namespace mp {

double to_gib(double bytes) { return bytes / (1024.0 * 1024.0 * 1024.0); }

MemoryBreakdown deployment_memory(const ModelConfig& c, const Budget& b) {
  MemoryBreakdown m;
  const double d = static_cast<double>(c.hidden_size);
  auto matrix = [&](double rows, double cols) { return format_bytes(b.weights, rows * cols); };
  auto small = [&](double n) { return format_bytes(NumberFormat::BF16, n); };

  const double table = static_cast<double>(c.vocab_size) * d;
  m.weights += b.embeddings_bf16 ? 2.0 * small(table) : 2.0 * format_bytes(b.weights, table);
  m.weights += small(d);  // final norm
  const double H = c.mamba_num_heads, I = c.mamba_inner(), cd = c.mamba_conv_dim();
  const double q = c.num_attention_heads * c.head_dim, kv = c.num_key_value_heads * c.head_dim;
  for (LayerType t : c.layers) {
    m.weights += small(d);  // pre-norm
    switch (t) {
      case LayerType::Mamba:
        m.weights += matrix(c.mamba_in_proj_rows(), d) + matrix(d, I);
        m.weights += small(cd * c.conv_kernel + (c.use_conv_bias ? cd : 0) + 3 * H + I);
        break;
      case LayerType::Attention:
        m.weights += matrix(q, d) + 2 * matrix(kv, d) + matrix(d, q);
        break;
      case LayerType::Mlp:
        m.weights += 2 * matrix(c.intermediate_size, d);
        break;
    }
  }
  const double seqs = static_cast<double>(b.batch);
  const double n_attn = c.count(LayerType::Attention), n_mamba = c.count(LayerType::Mamba);
  // One tensor per layer and K/V: the per-tensor scale term of fp8/nvfp4 is negligible but counted.
  m.kv_cache = n_attn * 2 * format_bytes(b.kv_cache, kv * static_cast<double>(b.context_tokens) * seqs);
  m.mamba_conv = n_mamba * format_bytes(b.mamba_conv_state, cd * (c.conv_kernel - 1) * seqs);
  m.mamba_ssm = n_mamba * format_bytes(b.mamba_ssm_state, I * c.ssm_state_size * seqs);
  const double widest = std::max({static_cast<double>(c.intermediate_size) * (c.count(LayerType::Mlp) > 0),
                                  static_cast<double>(c.mamba_in_proj_rows()) * (n_mamba > 0), (q + 2 * kv) * (n_attn > 0)});
  const double T = static_cast<double>(std::min(b.prefill_chunk_tokens, b.context_tokens));
  m.workspace = seqs * (T * (2 * d + widest) * 2.0 + 4.0 * static_cast<double>(c.vocab_size));
  return m;
}

}  // namespace mp
