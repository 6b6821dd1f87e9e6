#include "model/config.h"

#include "common/atomic_output.h"
#include "common/error.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <limits>

namespace mp {

using nlohmann::json;

const char* layer_type_name(LayerType t) {
  switch (t) {
    case LayerType::Mamba: return "mamba";
    case LayerType::Attention: return "attention";
    case LayerType::Mlp: return "mlp";
  }
  return "?";
}

int64_t ModelConfig::count(LayerType t) const {
  int64_t n = 0;
  for (auto l : layers) n += (l == t);
  return n;
}

std::string ModelConfig::pattern() const {
  std::string s;
  for (auto l : layers) s += static_cast<char>(l);
  return s;
}

std::vector<LayerType> parse_pattern(const std::string& pattern, const std::string& source) {
  std::vector<LayerType> out;
  for (size_t i = 0; i < pattern.size(); ++i) {
    char c = pattern[i];
    if (c == 'M' || c == '*' || c == '-') {
      out.push_back(static_cast<LayerType>(c));
    } else if (c == 'E') {
      fail_input("{}: hybrid_override_pattern has a MoE layer ('E') at index {}; only dense models "
                 "(M, *, -) are supported", source, i);
    } else {
      fail_input("{}: hybrid_override_pattern has '{}' at index {}; expected one of M * -", source,
                 std::string(1, c), i);
    }
  }
  return out;
}

namespace {

// Replaces bare Infinity / -Infinity / NaN tokens outside strings by {"__float__": "..."}
// so that a strict JSON parser accepts the text (Python's json.dump writes them bare).
std::string normalise_nonfinite(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < text.size()) out += text[++i];
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') { in_string = true; out += c; continue; }
    for (const char* tok : {"-Infinity", "Infinity", "NaN"}) {
      size_t n = std::char_traits<char>::length(tok);
      if (text.compare(i, n, tok) == 0) {
        out += std::string("{\"__float__\": \"") + tok + "\"}";
        i += n - 1;
        goto next;
      }
    }
    out += c;
  next:;
  }
  return out;
}

double as_double(const json& v, const std::string& field, const std::string& source) {
  if (v.is_number()) return v.get<double>();
  if (v.is_object() && v.contains("__float__")) {
    std::string s = v["__float__"].get<std::string>();
    if (s == "Infinity" || s == "inf") return std::numeric_limits<double>::infinity();
    if (s == "-Infinity" || s == "-inf") return -std::numeric_limits<double>::infinity();
    if (s == "NaN" || s == "nan") return std::numeric_limits<double>::quiet_NaN();
  }
  if (v.is_string()) {
    try { return std::stod(v.get<std::string>()); } catch (...) {}
  }
  fail_input("{}: field '{}' must be a number, got {}", source, field, v.dump());
}

// Reads the first present key among `names` into `out` (left unchanged when none is present).
template <typename T>
bool read_field(const json& j, std::initializer_list<const char*> names, T* out, const std::string& source) {
  for (const char* n : names) {
    auto it = j.find(n);
    if (it == j.end() || it->is_null()) continue;
    if constexpr (std::is_same_v<T, bool>) {
      if (!it->is_boolean()) fail_input("{}: field '{}' must be true or false, got {}", source, n, it->dump());
      *out = it->get<bool>();
    } else if constexpr (std::is_integral_v<T>) {
      if (!it->is_number_integer()) fail_input("{}: field '{}' must be an integer, got {}", source, n, it->dump());
      *out = it->get<T>();
    } else if constexpr (std::is_floating_point_v<T>) {
      *out = as_double(*it, n, source);
    } else {
      if (!it->is_string()) fail_input("{}: field '{}' must be a string, got {}", source, n, it->dump());
      *out = it->get<std::string>();
    }
    return true;
  }
  return false;
}

LayerType block_type_from_name(const std::string& name, size_t index, const std::string& source) {
  if (name == "mamba" || name == "linear_attention") return LayerType::Mamba;
  if (name == "attention" || name == "full_attention") return LayerType::Attention;
  if (name == "mlp") return LayerType::Mlp;
  if (name == "moe") fail_input("{}: layers_block_type[{}] is 'moe'; only dense models are supported", source, index);
  fail_input("{}: layers_block_type[{}] is '{}'; expected mamba/linear_attention, attention/full_attention or mlp",
             source, index, name);
}

}  // namespace

ModelConfig config_from_json(const json& j, const std::string& source) {
  if (!j.is_object()) fail_input("{}: expected a JSON object", source);
  ModelConfig c;
  if (j.contains("model_type") && j["model_type"].is_string() && j["model_type"] != "nemotron_h")
    fail_input("{}: model_type is '{}', expected 'nemotron_h'", source, j["model_type"].get<std::string>());

  // Layer types: the list wins over the pattern when both exist.
  if (j.contains("layers_block_type") && !j["layers_block_type"].is_null()) {
    const json& list = j["layers_block_type"];
    if (!list.is_array()) fail_input("{}: layers_block_type must be a list of strings", source);
    for (size_t i = 0; i < list.size(); ++i) {
      if (!list[i].is_string()) fail_input("{}: layers_block_type[{}] must be a string", source, i);
      c.layers.push_back(block_type_from_name(list[i].get<std::string>(), i, source));
    }
  } else if (j.contains("hybrid_override_pattern")) {
    std::string p;
    read_field(j, {"hybrid_override_pattern"}, &p, source);
    c.layers = parse_pattern(p, source);
    int64_t n = -1;
    if (read_field(j, {"num_hidden_layers"}, &n, source) && n != c.num_layers())
      fail_input("{}: hybrid_override_pattern has {} layers but num_hidden_layers is {}", source,
                 c.num_layers(), n);
  } else {
    fail_input("{}: neither layers_block_type nor hybrid_override_pattern is present", source);
  }

  read_field(j, {"vocab_size"}, &c.vocab_size, source);
  read_field(j, {"hidden_size"}, &c.hidden_size, source);
  read_field(j, {"intermediate_size"}, &c.intermediate_size, source);
  read_field(j, {"num_attention_heads"}, &c.num_attention_heads, source);
  c.num_key_value_heads = c.num_attention_heads;
  read_field(j, {"num_key_value_heads"}, &c.num_key_value_heads, source);
  read_field(j, {"head_dim", "attention_head_dim"}, &c.head_dim, source);
  read_field(j, {"mamba_num_heads"}, &c.mamba_num_heads, source);
  read_field(j, {"mamba_head_dim"}, &c.mamba_head_dim, source);
  read_field(j, {"ssm_state_size"}, &c.ssm_state_size, source);
  read_field(j, {"n_groups", "mamba_n_groups"}, &c.n_groups, source);
  read_field(j, {"conv_kernel", "mamba_d_conv"}, &c.conv_kernel, source);
  read_field(j, {"chunk_size", "mamba_chunk_size"}, &c.chunk_size, source);
  read_field(j, {"layer_norm_epsilon"}, &c.layer_norm_epsilon, source);
  read_field(j, {"use_conv_bias", "mamba_conv_bias"}, &c.use_conv_bias, source);
  read_field(j, {"time_step_min", "mamba_dt_min"}, &c.time_step_min, source);
  read_field(j, {"time_step_max", "mamba_dt_max"}, &c.time_step_max, source);
  read_field(j, {"time_step_floor", "mamba_dt_init_floor"}, &c.time_step_floor, source);
  read_field(j, {"initializer_range"}, &c.initializer_range, source);
  read_field(j, {"rescale_prenorm_residual"}, &c.rescale_prenorm_residual, source);
  for (const char* key : {"time_step_limit", "mamba_dt_limit"}) {
    if (!j.contains(key) || j[key].is_null()) continue;
    const json& lim = j[key];
    if (!lim.is_array() || lim.size() != 2) fail_input("{}: {} must be a list of two numbers", source, key);
    c.time_step_limit_lo = as_double(lim[0], key, source);
    c.time_step_limit_hi = as_double(lim[1], key, source);
    break;
  }
  std::string dt;
  if (read_field(j, {"dtype", "torch_dtype"}, &dt, source)) c.dtype = dt;

  // Features the model does not implement must be refused, not silently ignored.
  auto require = [&](const char* key, auto expected, const char* what) {
    auto it = j.find(key);
    if (it != j.end() && !it->is_null() && *it != expected)
      fail_input("{}: {} is {}; only {} is supported", source, key, it->dump(), what);
  };
  require("use_bias", false, "false");
  require("mamba_proj_bias", false, "false");
  require("mlp_bias", false, "false");
  require("attention_bias", false, "false");
  require("mlp_hidden_act", "relu2", "\"relu2\"");
  require("mamba_hidden_act", "silu", "\"silu\"");
  require("tie_word_embeddings", false, "false (untied embedding and LM head)");
  if (j.contains("residual_in_fp32") && j["residual_in_fp32"] == true) {
    // Only changes rounding of the residual stream in low precision; fp32 math is unaffected.
  }
  c.validate(source);
  return c;
}

ModelConfig config_from_json_text(const std::string& text, const std::string& source) {
  json j;
  try {
    j = json::parse(normalise_nonfinite(text));
  } catch (const json::parse_error& e) {
    fail_input("{}: not valid JSON ({})", source, e.what());
  }
  return config_from_json(j, source);
}

ModelConfig load_config(const std::string& path) {
  namespace fs = std::filesystem;
  if (!fs::exists(path)) fail_input("{}: not found (expected a config.json or a checkpoint folder)", path);
  std::string file = fs::is_directory(path) ? (fs::path(path) / "config.json").string() : path;
  if (!fs::exists(file)) fail_input("{}: config.json missing in checkpoint folder", path);
  return config_from_json_text(read_file(file), file);
}

void ModelConfig::validate(const std::string& source) const {
  auto positive = [&](const char* name, int64_t v) {
    if (v <= 0) fail_input("{}: {} must be positive, got {}", source, name, v);
  };
  if (layers.empty()) fail_input("{}: the model has no layers", source);
  positive("vocab_size", vocab_size);
  positive("hidden_size", hidden_size);
  positive("layer_norm_epsilon", layer_norm_epsilon > 0 ? 1 : 0);
  if (count(LayerType::Mlp)) positive("intermediate_size", intermediate_size);
  if (count(LayerType::Attention)) {
    positive("num_attention_heads", num_attention_heads);
    positive("num_key_value_heads", num_key_value_heads);
    positive("head_dim", head_dim);
    if (num_attention_heads % num_key_value_heads != 0)
      fail_input("{}: num_attention_heads {} is not a multiple of num_key_value_heads {}", source,
                 num_attention_heads, num_key_value_heads);
  }
  if (count(LayerType::Mamba)) {
    positive("mamba_num_heads", mamba_num_heads);
    positive("mamba_head_dim", mamba_head_dim);
    positive("ssm_state_size", ssm_state_size);
    positive("n_groups", n_groups);
    positive("conv_kernel", conv_kernel);
    positive("chunk_size", chunk_size);
    if (mamba_num_heads % n_groups != 0)
      fail_input("{}: mamba_num_heads {} is not a multiple of n_groups {}", source, mamba_num_heads, n_groups);
    if (time_step_limit_lo > time_step_limit_hi)
      fail_input("{}: time_step_limit [{}, {}] is empty", source, time_step_limit_lo, time_step_limit_hi);
  }
}

bool operator==(const ModelConfig& a, const ModelConfig& b) {
  return config_to_json(a) == config_to_json(b);
}

json config_to_json(const ModelConfig& c) {
  auto num = [](double v) -> json {
    if (std::isinf(v)) return json{{"__float__", v > 0 ? "Infinity" : "-Infinity"}};
    return v;
  };
  json j;
  j["architectures"] = {"NemotronHForCausalLM"};
  j["model_type"] = "nemotron_h";
  j["hybrid_override_pattern"] = c.pattern();
  j["num_hidden_layers"] = c.num_layers();
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["head_dim"] = c.head_dim;
  j["mamba_num_heads"] = c.mamba_num_heads;
  j["mamba_head_dim"] = c.mamba_head_dim;
  j["ssm_state_size"] = c.ssm_state_size;
  j["n_groups"] = c.n_groups;
  j["conv_kernel"] = c.conv_kernel;
  j["chunk_size"] = c.chunk_size;
  j["layer_norm_epsilon"] = c.layer_norm_epsilon;
  j["use_conv_bias"] = c.use_conv_bias;
  j["use_bias"] = false;
  j["mlp_bias"] = false;
  j["attention_bias"] = false;
  j["mlp_hidden_act"] = "relu2";
  j["mamba_hidden_act"] = "silu";
  j["tie_word_embeddings"] = false;
  j["time_step_limit"] = {num(c.time_step_limit_lo), num(c.time_step_limit_hi)};
  j["time_step_min"] = c.time_step_min;
  j["time_step_max"] = c.time_step_max;
  j["time_step_floor"] = c.time_step_floor;
  j["initializer_range"] = c.initializer_range;
  j["rescale_prenorm_residual"] = c.rescale_prenorm_residual;
  j["residual_in_fp32"] = false;
  j["use_mamba_kernels"] = false;
  j["dtype"] = c.dtype;
  return j;
}

std::string config_to_json_text(const ModelConfig& c) { return config_to_json(c).dump(2) + "\n"; }

}  // namespace mp
