#include "prune/importance.h"

#include "common/atomic_output.h"
#include "common/error.h"
#include "common/input_file.h"
#include "common/json_file.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>

namespace mp {

using json = nlohmann::json;

LayerMetric parse_layer_metric(const std::string& s) {
  for (LayerMetric m : {LayerMetric::MseHidden, LayerMetric::MseNormed, LayerMetric::Kl, LayerMetric::LossDelta,
                        LayerMetric::Agreement, LayerMetric::BlockInfluence})
    if (s == layer_metric_name(m)) return m;
  fail_usage("layer metric '{}': expected mse_hidden, mse_normed, kl, loss_delta, agreement or block_influence", s);
}

const char* layer_metric_name(LayerMetric m) {
  switch (m) {
    case LayerMetric::MseHidden: return "mse_hidden";
    case LayerMetric::MseNormed: return "mse_normed";
    case LayerMetric::Kl: return "kl";
    case LayerMetric::LossDelta: return "loss_delta";
    case LayerMetric::Agreement: return "agreement";
    case LayerMetric::BlockInfluence: return "block_influence";
  }
  return "?";
}

double LayerImportanceRow::importance(LayerMetric m) const {
  switch (m) {
    case LayerMetric::MseHidden: return mse_hidden;
    case LayerMetric::MseNormed: return mse_normed;
    case LayerMetric::Kl: return kl;
    case LayerMetric::LossDelta: return loss_delta;
    case LayerMetric::Agreement: return -agreement;
    case LayerMetric::BlockInfluence: return block_influence;
  }
  return 0.0;
}

namespace {

// Shortest decimal that reads back as the same float: ~9 characters instead of 17.
json float_array(const std::vector<float>& v) {
  json a = json::array();
  for (float f : v) a.push_back(std::strtod(fmt::format("{}", f).c_str(), nullptr));
  return a;
}

}  // namespace

std::string fingerprint_hex(uint64_t f) { return fmt::format("0x{:016x}", f); }

json importance_to_json(const Importance& imp) {
  const ModelConfig& c = imp.parent;
  json j;
  j["format"] = "minipuzzle-importance";
  j["version"] = 1;
  j["fingerprint"] = fingerprint_hex(imp.fingerprint);
  j["config"] = config_to_json(c);
  const ScoreSettings& s = imp.settings;
  j["settings"] = {{"samples", s.samples}, {"layer_samples", s.layer_samples}, {"seq_len", s.seq_len},
                   {"seed", s.seed}, {"aggregate_seq", s.aggregate_seq}, {"aggregate_batch", s.aggregate_batch},
                   {"dtype", s.dtype}, {"data", s.data}, {"stream", s.stream}};
  j["full_loss"] = imp.full_loss;
  json per_layer = json::object(), mlp = json::object(), attn = json::object(), mamba = json::object();
  json layers = json::array();
  for (int64_t i = 0; i < c.num_layers(); ++i) {
    const std::string k = std::to_string(i);
    per_layer[k] = float_array(imp.hidden_per_layer[i]);
    switch (c.layers[i]) {
      case LayerType::Mlp: mlp[k] = float_array(imp.mlp[i]); break;
      case LayerType::Attention: attn[k] = float_array(imp.attention[i]); break;
      case LayerType::Mamba:
        mamba[k] = {{"heads", c.mamba_num_heads}, {"head_dim", c.mamba_head_dim}, {"scores", float_array(imp.mamba[i])}};
        break;
    }
    const LayerImportanceRow& r = imp.layers[i];
    layers.push_back({{"index", i}, {"type", layer_type_name(c.layers[i])}, {"mse_hidden", r.mse_hidden},
                      {"mse_normed", r.mse_normed}, {"kl", r.kl}, {"loss_delta", r.loss_delta},
                      {"agreement", r.agreement}, {"block_influence", r.block_influence}});
  }
  j["hidden"] = {{"aggregate", float_array(imp.hidden)}, {"per_layer", per_layer}};
  j["mlp"] = mlp;
  j["attention"] = attn;
  j["mamba"] = mamba;
  j["layers"] = layers;
  return j;
}

namespace {

const json& field(const json& j, const char* key, const std::string& where, const std::string& source) {
  if (!j.is_object() || !j.contains(key)) fail_input("{}: missing field '{}{}'", source, where, key);
  return j.at(key);
}

std::vector<float> read_floats(const json& j, int64_t expected, const std::string& what, const std::string& source) {
  if (!j.is_array()) fail_input("{}: '{}' must be an array of numbers", source, what);
  if (static_cast<int64_t>(j.size()) != expected)
    fail_input("{}: '{}' has {} entries, the model's config implies {}", source, what, j.size(), expected);
  std::vector<float> v;
  v.reserve(j.size());
  for (const json& x : j) {
    if (!x.is_number()) fail_input("{}: '{}' holds a non-number ({})", source, what, json_brief(x));
    v.push_back(static_cast<float>(x.get<double>()));
  }
  return v;
}

double read_number(const json& j, const char* key, const std::string& where, const std::string& source) {
  const json& v = field(j, key, where, source);
  if (!v.is_number()) fail_input("{}: '{}{}' must be a number, got {}", source, where, key, json_brief(v));
  return v.get<double>();
}

// A count (windows, tokens): a whole number from 0 to 2^53, so that it converts to int64 exactly.
int64_t read_count(const json& j, const char* key, const std::string& where, const std::string& source) {
  const double x = read_number(j, key, where, source);
  if (!(x >= 0.0 && x <= 9007199254740992.0) || x != std::floor(x))
    fail_input("{}: '{}{}' is {}, expected a whole number from 0 to 2^53", source, where, key,
               json_brief(field(j, key, where, source)));
  return static_cast<int64_t>(x);
}

}  // namespace

Importance importance_from_json(const json& j, const std::string& source) {
  if (!j.is_object()) fail_input("{}: not a JSON object", source);
  const json& fmt_ = field(j, "format", "", source);
  if (fmt_ != "minipuzzle-importance")
    fail_input("{}: 'format' is {}, expected \"minipuzzle-importance\"", source, fmt_.dump());
  const json& ver = field(j, "version", "", source);
  if (ver != 1) fail_input("{}: 'version' is {}, this build reads version 1", source, ver.dump());
  Importance imp;
  imp.parent = config_from_json(field(j, "config", "", source), source + " (config)");
  const ModelConfig& c = imp.parent;
  const json& fp = field(j, "fingerprint", "", source);
  if (!fp.is_string()) fail_input("{}: 'fingerprint' must be a hex string", source);
  imp.fingerprint = std::strtoull(fp.get<std::string>().c_str(), nullptr, 16);
  const json& s = field(j, "settings", "", source);
  imp.settings.samples = read_count(s, "samples", "settings.", source);
  imp.settings.layer_samples = read_count(s, "layer_samples", "settings.", source);
  imp.settings.seq_len = read_count(s, "seq_len", "settings.", source);
  imp.settings.seed = json_uint(field(s, "seed", "settings.", source), "settings.seed", source);
  imp.settings.aggregate_seq = json_string(field(s, "aggregate_seq", "settings.", source), "settings.aggregate_seq", source);
  imp.settings.aggregate_batch =
      json_string(field(s, "aggregate_batch", "settings.", source), "settings.aggregate_batch", source);
  imp.settings.dtype = s.value("dtype", "");
  imp.settings.data = s.value("data", "");
  imp.settings.stream = s.value("stream", false);
  imp.full_loss = read_number(j, "full_loss", "", source);

  const int64_t n = c.num_layers(), d = c.hidden_size;
  const json& hidden = field(j, "hidden", "", source);
  imp.hidden = read_floats(field(hidden, "aggregate", "hidden.", source), d, "hidden.aggregate", source);
  const json& per_layer = field(hidden, "per_layer", "hidden.", source);
  const json& mlp = field(j, "mlp", "", source);
  const json& attn = field(j, "attention", "", source);
  const json& mamba = field(j, "mamba", "", source);
  imp.hidden_per_layer.resize(n);
  imp.mlp.resize(n);
  imp.attention.resize(n);
  imp.mamba.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    const std::string k = std::to_string(i);
    imp.hidden_per_layer[i] = read_floats(field(per_layer, k.c_str(), "hidden.per_layer.", source), d,
                                          "hidden.per_layer." + k, source);
    switch (c.layers[i]) {
      case LayerType::Mlp:
        imp.mlp[i] = read_floats(field(mlp, k.c_str(), "mlp.", source), c.intermediate_size, "mlp." + k, source);
        break;
      case LayerType::Attention:
        imp.attention[i] =
            read_floats(field(attn, k.c_str(), "attention.", source), c.num_attention_heads, "attention." + k, source);
        break;
      case LayerType::Mamba: {
        const json& e = field(mamba, k.c_str(), "mamba.", source);
        imp.mamba[i] = read_floats(field(e, "scores", ("mamba." + k + ".").c_str(), source), c.mamba_inner(),
                                   "mamba." + k + ".scores", source);
        break;
      }
    }
  }
  const json& layers = field(j, "layers", "", source);
  if (!layers.is_array() || static_cast<int64_t>(layers.size()) != n)
    fail_input("{}: 'layers' must list {} layers (config), found {}", source, n, layers.is_array() ? layers.size() : 0);
  for (int64_t i = 0; i < n; ++i) {
    const json& e = layers[i];
    const std::string w = fmt::format("layers[{}].", i);
    if (read_number(e, "index", w, source) != i) fail_input("{}: '{}index' is not {}", source, w, i);
    const std::string type = field(e, "type", w, source).get<std::string>();
    if (type != layer_type_name(c.layers[i]))
      fail_input("{}: '{}type' is \"{}\", the config says \"{}\"", source, w, type, layer_type_name(c.layers[i]));
    LayerImportanceRow r;
    r.mse_hidden = read_number(e, "mse_hidden", w, source);
    r.mse_normed = read_number(e, "mse_normed", w, source);
    r.kl = read_number(e, "kl", w, source);
    r.loss_delta = read_number(e, "loss_delta", w, source);
    r.agreement = read_number(e, "agreement", w, source);
    r.block_influence = read_number(e, "block_influence", w, source);
    imp.layers.push_back(r);
  }
  return imp;
}

void save_importance(const Importance& imp, const std::string& path) {
  write_file_atomic(path, importance_to_json(imp).dump(1) + "\n");
}

namespace {
const JsonLimits kImportanceLimits{uint64_t{1} << 30, 16};  // per-channel scores of large models
}

Importance importance_from_json_text(const std::string& text, const std::string& source) {
  const json j = parse_json_text(text, source, kImportanceLimits);
  return with_json_source(source, [&] { return importance_from_json(j, source); });
}

Importance load_importance(const std::string& path) {
  return importance_from_json_text(read_regular_file(path, kImportanceLimits.max_bytes, "JSON"), path);
}

void check_importance_matches(const Importance& imp, const ModelConfig& model, uint64_t model_fp,
                              const std::string& imp_path, const std::string& model_path) {
  json a = config_to_json(imp.parent), b = config_to_json(model);
  a.erase("dtype");  // the compute dtype of scoring is not part of the model's identity
  b.erase("dtype");
  for (auto it = b.begin(); it != b.end(); ++it) {
    if (!a.contains(it.key()) || a[it.key()] != it.value())
      fail_input("{}: made for another model: config field '{}' is {} there, {} in {}", imp_path, it.key(),
                 a.contains(it.key()) ? a[it.key()].dump() : "absent", it.value().dump(), model_path);
  }
  if (imp.fingerprint != model_fp)
    fail_input("{}: made for another model: weight fingerprint {} there, {} for {} (same shape, different weights)",
               imp_path, fingerprint_hex(imp.fingerprint), fingerprint_hex(model_fp), model_path);
}

Importance randomized_importance(const Importance& imp, uint64_t seed) {
  // splitmix64: the same stream on every platform.
  uint64_t state = seed;
  auto next = [&state]() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return static_cast<double>((z ^ (z >> 31)) >> 11) / 9007199254740992.0;  // [0, 1)
  };
  Importance r = imp;
  auto fill = [&](std::vector<float>& v) {
    for (float& x : v) x = static_cast<float>(next());
  };
  fill(r.hidden);
  for (auto& v : r.hidden_per_layer) fill(v);
  for (auto& v : r.mlp) fill(v);
  for (auto& v : r.attention) fill(v);
  for (auto& v : r.mamba) fill(v);
  for (auto& row : r.layers) {
    row.mse_hidden = next();
    row.mse_normed = next();
    row.kl = next();
    row.loss_delta = next();
    row.agreement = next();
    row.block_influence = next();
  }
  return r;
}

}  // namespace mp
