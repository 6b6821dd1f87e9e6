// Tiny models and data shared by the prune tests (header-only; the test binary globs test_*.cpp).
#pragma once

#include "model/config.h"
#include "model/model.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <string>

namespace mp::test {

// Two of each layer type, GQA (4 query heads, 2 kv heads), 2 Mamba groups of 2 heads x 8 channels.
// `eps` defaults to the real 1e-5; tests of norm-rescaling invariances use a negligible one.
inline ModelConfig prune_config(double eps = 1e-5, const std::string& pattern = "M*-M-*") {
  return config_from_json_text(R"({"hybrid_override_pattern": ")" + pattern + R"(", "vocab_size": 61,
    "hidden_size": 32, "intermediate_size": 48, "num_attention_heads": 4, "num_key_value_heads": 2,
    "head_dim": 8, "mamba_num_heads": 4, "mamba_head_dim": 8, "ssm_state_size": 8, "n_groups": 2,
    "conv_kernel": 4, "chunk_size": 8, "layer_norm_epsilon": )" + fmt::format("{}", eps) + "}",
                               "prune test config");
}

// A random model whose norm weights and D are perturbed too, so that slicing mistakes show.
inline Model prune_model(uint64_t seed, double eps = 1e-5, const std::string& pattern = "M*-M-*") {
  Model m = make_random_model(prune_config(eps, pattern), seed, at::kFloat);
  at::manual_seed(seed);
  for (auto& [n, t] : m.weights) {
    if (n.find("norm") != std::string::npos || n.find("mixer.D") != std::string::npos)
      t = t + 0.3 * at::randn(t.sizes(), at::kFloat);
    if (n.find("out_proj") != std::string::npos || n.find("o_proj") != std::string::npos ||
        n.find("down_proj") != std::string::npos)
      t = t * 8.0;  // larger mixer outputs: layers matter more
  }
  return m;
}

inline at::Tensor prune_ids(int64_t batch, int64_t len, uint64_t seed) {
  at::manual_seed(seed);
  return at::randint(0, 61, {batch, len}, at::kLong);
}

}  // namespace mp::test
