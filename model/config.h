// The hybrid model's configuration, as Hugging Face's NemotronH config.json describes it.
// Reads every form docs/formats.md lists (pattern string or block-type list, old field names,
// Infinity spelled two ways); writes the canonical form that transformers loads. The sizes that
// fix weight shapes are required (vocab and hidden size always; the MLP, attention and Mamba sizes
// when such layers exist); other settings default as transformers documents. Every size is range
// checked (so all products fit 64 bits) and every float must be finite where the model uses it.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace mp {

enum class LayerType : char { Mamba = 'M', Attention = '*', Mlp = '-' };
const char* layer_type_name(LayerType t);  // "mamba", "attention", "mlp"

struct ModelConfig {
  std::vector<LayerType> layers;
  int64_t vocab_size = 131072;
  int64_t hidden_size = 4096;
  int64_t intermediate_size = 21504;  // MLP width
  int64_t num_attention_heads = 32;
  int64_t num_key_value_heads = 8;
  int64_t head_dim = 128;
  int64_t mamba_num_heads = 128;
  int64_t mamba_head_dim = 64;
  int64_t ssm_state_size = 128;
  int64_t n_groups = 8;
  int64_t conv_kernel = 4;
  int64_t chunk_size = 128;
  double layer_norm_epsilon = 1e-5;
  bool use_conv_bias = true;
  double time_step_limit_lo = 0.0;
  double time_step_limit_hi = 1.0 / 0.0;  // +inf
  double time_step_min = 1e-3, time_step_max = 0.1, time_step_floor = 1e-4;
  double initializer_range = 0.02;
  bool rescale_prenorm_residual = true;
  std::string dtype = "bfloat16";  // the checkpoint's declared dtype

  // Derived sizes.
  int64_t num_layers() const { return static_cast<int64_t>(layers.size()); }
  int64_t mamba_inner() const { return mamba_num_heads * mamba_head_dim; }  // I = H * P
  int64_t mamba_conv_dim() const { return mamba_inner() + 2 * n_groups * ssm_state_size; }
  int64_t mamba_in_proj_rows() const { return 2 * mamba_inner() + 2 * n_groups * ssm_state_size + mamba_num_heads; }
  int64_t count(LayerType t) const;
  std::string pattern() const;  // one character a layer

  // Throws mp::Error(BadInput) naming `source` and the field: non-positive sizes, heads not
  // divisible by kv heads / groups, empty pattern, etc.
  void validate(const std::string& source) const;
};

bool operator==(const ModelConfig& a, const ModelConfig& b);

// Parses a config.json document. `source` names it in error messages.
ModelConfig config_from_json(const nlohmann::json& j, const std::string& source);
ModelConfig config_from_json_text(const std::string& text, const std::string& source);
// Reads PATH, or PATH/config.json when PATH is a folder.
ModelConfig load_config(const std::string& path);
// The canonical config.json (hybrid_override_pattern, head_dim, model_type, architectures, ...).
nlohmann::json config_to_json(const ModelConfig& c);
std::string config_to_json_text(const ModelConfig& c);
std::vector<LayerType> parse_pattern(const std::string& pattern, const std::string& source);

}  // namespace mp
