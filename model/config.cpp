#include "model/config.h"

#include "common/atomic_output.h"
#include "common/error.h"
#include "common/input_file.h"
#include "common/json_file.h"

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

constexpr uint64_t kMaxConfigBytes = uint64_t{16} << 20;  // 16 MiB; real ones are a few KB

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
  if (v.is_object() && v.contains("__float__") && v["__float__"].is_string()) {
    std::string s = v["__float__"].get<std::string>();
    if (s == "Infinity" || s == "inf") return std::numeric_limits<double>::infinity();
    if (s == "-Infinity" || s == "-inf") return -std::numeric_limits<double>::infinity();
    if (s == "NaN" || s == "nan") return std::numeric_limits<double>::quiet_NaN();
  }
  if (v.is_string()) {
    try { return std::stod(v.get<std::string>()); } catch (...) {}
  }
  fail_input("{}: field '{}' must be a number, got {}", source, field, json_brief(v));
}

// Reads the first present key among `names` into `out` (left unchanged when none is present).
template <typename T>
bool read_field(const json& j, std::initializer_list<const char*> names, T* out, const std::string& source) {
  for (const char* n : names) {
    auto it = j.find(n);
    if (it == j.end() || it->is_null()) continue;
    if constexpr (std::is_same_v<T, bool>) {
      *out = json_bool(*it, n, source);
    } else if constexpr (std::is_integral_v<T>) {
      *out = json_int(*it, n, source);
    } else if constexpr (std::is_floating_point_v<T>) {
      *out = as_double(*it, n, source);
    } else {
      *out = json_string(*it, n, source);
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

  // The sizes that fix the weights' shapes are required: transformers documents defaults for them
  // (those of the 8B model), but a config.json it writes always holds them, so a missing one is a
  // damaged file, and a default would silently describe a different model. Settings that only
  // shape initialisation or numerics keep transformers' documented defaults.
  const bool mamba = c.count(LayerType::Mamba) > 0, attention = c.count(LayerType::Attention) > 0,
             mlp = c.count(LayerType::Mlp) > 0;
  auto size = [&](std::initializer_list<const char*> names, int64_t* out, bool required) {
    if (!read_field(j, names, out, source) && required)
      fail_input("{}: field '{}' is missing (the {} layers' weight shapes depend on it)", source, *names.begin(),
                 c.pattern());
  };
  size({"vocab_size"}, &c.vocab_size, true);
  size({"hidden_size"}, &c.hidden_size, true);
  size({"intermediate_size"}, &c.intermediate_size, mlp);
  size({"num_attention_heads"}, &c.num_attention_heads, attention);
  c.num_key_value_heads = c.num_attention_heads;  // transformers: absent kv heads mean one per query head
  read_field(j, {"num_key_value_heads"}, &c.num_key_value_heads, source);
  size({"head_dim", "attention_head_dim"}, &c.head_dim, attention);
  size({"mamba_num_heads"}, &c.mamba_num_heads, mamba);
  size({"mamba_head_dim"}, &c.mamba_head_dim, mamba);
  size({"ssm_state_size"}, &c.ssm_state_size, mamba);
  size({"n_groups", "mamba_n_groups"}, &c.n_groups, mamba);
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
  if (text.size() > kMaxConfigBytes)
    fail_input("{}: {} bytes, more than the {} a config.json may have", source, text.size(), kMaxConfigBytes);
  const json j = parse_json_text(normalise_nonfinite(text), source, JsonLimits{4 * kMaxConfigBytes, 16});
  return with_json_source(source, [&] { return config_from_json(j, source); });
}

ModelConfig load_config(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) fail_input("{}: not found (expected a config.json or a checkpoint folder)", path);
  std::string file = fs::is_directory(path, ec) ? (fs::path(path) / "config.json").string() : path;
  if (!fs::exists(file, ec) && !fs::is_symlink(file, ec)) fail_input("{}: config.json missing in checkpoint folder", path);
  return config_from_json_text(read_regular_file(file, kMaxConfigBytes, "config.json"), file);
}

void ModelConfig::validate(const std::string& source) const {
  // Each size positive and at most `cap`, so that every product the model and the accounting form
  // fits 64 bits; the estimated parameter count is then bounded as a whole below.
  auto positive = [&](const char* name, int64_t v, int64_t cap) {
    if (v <= 0) fail_input("{}: {} must be positive, got {}", source, name, v);
    if (v > cap) fail_input("{}: {} is {}, more than the {} this tool supports", source, name, v, cap);
  };
  constexpr int64_t k16 = int64_t{1} << 16, k20 = int64_t{1} << 20, k24 = int64_t{1} << 24, k31 = (int64_t{1} << 31) - 1;
  if (layers.empty()) fail_input("{}: the model has no layers", source);
  if (num_layers() > k16) fail_input("{}: {} layers, more than the {} this tool supports", source, num_layers(), k16);
  positive("vocab_size", vocab_size, k31);
  positive("hidden_size", hidden_size, k20);
  if (!std::isfinite(layer_norm_epsilon) || layer_norm_epsilon <= 0 || layer_norm_epsilon >= 1)
    fail_input("{}: layer_norm_epsilon must be a finite number in (0, 1), got {}", source, layer_norm_epsilon);
  if (!std::isfinite(initializer_range) || initializer_range < 0)
    fail_input("{}: initializer_range must be a finite number >= 0, got {}", source, initializer_range);
  if (count(LayerType::Mlp)) positive("intermediate_size", intermediate_size, k24);
  if (count(LayerType::Attention)) {
    positive("num_attention_heads", num_attention_heads, k16);
    positive("num_key_value_heads", num_key_value_heads, k16);
    positive("head_dim", head_dim, k16);
    if (num_attention_heads % num_key_value_heads != 0)
      fail_input("{}: num_attention_heads {} is not a multiple of num_key_value_heads {}", source,
                 num_attention_heads, num_key_value_heads);
  }
  if (count(LayerType::Mamba)) {
    positive("mamba_num_heads", mamba_num_heads, k16);
    positive("mamba_head_dim", mamba_head_dim, k16);
    positive("ssm_state_size", ssm_state_size, k16);
    positive("n_groups", n_groups, k16);
    positive("conv_kernel", conv_kernel, 1024);
    positive("chunk_size", chunk_size, k20);
    for (double v : {time_step_min, time_step_max, time_step_floor})
      if (!std::isfinite(v) || v < 0)
        fail_input("{}: time_step_min/max/floor must be finite numbers >= 0, got {}", source, v);
    if (std::isnan(time_step_limit_lo) || std::isnan(time_step_limit_hi))
      fail_input("{}: time_step_limit holds NaN", source);
    if (mamba_num_heads % n_groups != 0)
      fail_input("{}: mamba_num_heads {} is not a multiple of n_groups {}", source, mamba_num_heads, n_groups);
    if (time_step_limit_lo > time_step_limit_hi)
      fail_input("{}: time_step_limit [{}, {}] is empty", source, time_step_limit_lo, time_step_limit_hi);
  }
  // The parameter count, estimated in floating point so it cannot overflow: at most 10^15.
  const double H = static_cast<double>(hidden_size), V = static_cast<double>(vocab_size);
  const double per_mamba = H * (2.0 * mamba_num_heads * mamba_head_dim + 2.0 * n_groups * ssm_state_size + mamba_num_heads) +
                           H * mamba_num_heads * mamba_head_dim;
  const double per_attention = 2.0 * H * num_attention_heads * head_dim + 2.0 * H * num_key_value_heads * head_dim;
  const double per_mlp = 2.0 * H * intermediate_size;
  const double params = 2.0 * V * H + count(LayerType::Mamba) * per_mamba + count(LayerType::Attention) * per_attention +
                        count(LayerType::Mlp) * per_mlp;
  if (params > 1e15)
    fail_input("{}: the sizes describe about {:.3g} parameters, more than the 10^15 this tool supports", source, params);
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
