#include "prune/plan.h"

#include "common/atomic_output.h"
#include "common/error.h"
#include "common/input_file.h"
#include "common/json_file.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

namespace mp {

using json = nlohmann::json;

namespace {

std::vector<int64_t> iota(int64_t n) {
  std::vector<int64_t> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

// The k highest-scoring of `candidates` (ties: lower index first), returned ascending.
template <typename Score>
std::vector<int64_t> top_k(std::vector<int64_t> candidates, int64_t k, Score score) {
  std::stable_sort(candidates.begin(), candidates.end(), [&](int64_t a, int64_t b) { return score(a) > score(b); });
  candidates.resize(static_cast<size_t>(k));
  std::sort(candidates.begin(), candidates.end());
  return candidates;
}

void check_indices(const std::vector<int64_t>& v, int64_t limit, const std::string& what) {
  if (v.empty()) fail_input("pruning plan: {} keeps nothing", what);
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] < 0 || v[i] >= limit) fail_input("pruning plan: {} index {} is outside [0, {})", what, v[i], limit);
    if (i && v[i] <= v[i - 1]) fail_input("pruning plan: {} indices must be ascending and unique", what);
  }
}

// Every group of `group_size` consecutive indices must keep the same number.
int64_t per_group(const std::vector<int64_t>& kept, int64_t total, int64_t groups, const std::string& what) {
  const int64_t size = total / groups;
  std::vector<int64_t> count(groups, 0);
  for (int64_t h : kept) ++count[h / size];
  for (int64_t g = 1; g < groups; ++g)
    if (count[g] != count[0])
      fail_input("pruning plan: {} keeps {} in group 0 but {} in group {}; every group must keep the same number",
                 what, count[0], count[g], g);
  return count[0];
}

void same_count(std::optional<int64_t>& seen, int64_t count, const std::string& what) {
  if (seen && *seen != count)
    fail_input("pruning plan: {} keeps {} where an earlier layer keeps {}; the shape must be homogeneous", what,
               count, *seen);
  seen = count;
}

}  // namespace

PruningPlan identity_plan(const ModelConfig& c) {
  PruningPlan p;
  const int64_t n = c.num_layers();
  p.kept_layers = iota(n);
  p.hidden = iota(c.hidden_size);
  p.mlp.resize(n);
  p.attention.resize(n);
  p.mamba_heads.resize(n);
  p.mamba_channels.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    switch (c.layers[i]) {
      case LayerType::Mlp: p.mlp[i] = iota(c.intermediate_size); break;
      case LayerType::Attention: p.attention[i] = iota(c.num_attention_heads); break;
      case LayerType::Mamba:
        p.mamba_heads[i] = iota(c.mamba_num_heads);
        p.mamba_channels[i] = iota(c.mamba_head_dim);
        break;
    }
  }
  return p;
}

ModelConfig plan_config(const ModelConfig& parent, const PruningPlan& p) {
  const int64_t n = parent.num_layers();
  check_indices(p.kept_layers, n, "layer list");
  check_indices(p.hidden, parent.hidden_size, "hidden channels");
  for (const auto* v : {&p.mlp, &p.attention, &p.mamba_heads, &p.mamba_channels})
    if (static_cast<int64_t>(v->size()) != n)
      fail_input("pruning plan: per-layer index lists cover {} layers, the parent has {}", v->size(), n);
  ModelConfig c = parent;
  c.layers.clear();
  c.hidden_size = static_cast<int64_t>(p.hidden.size());
  std::optional<int64_t> F, Hq, H, P;
  for (int64_t i : p.kept_layers) {
    c.layers.push_back(parent.layers[i]);
    const std::string L = fmt::format("layer {}", i);
    switch (parent.layers[i]) {
      case LayerType::Mlp:
        check_indices(p.mlp[i], parent.intermediate_size, L + " MLP neurons");
        same_count(F, static_cast<int64_t>(p.mlp[i].size()), L + " MLP neurons");
        break;
      case LayerType::Attention: {
        check_indices(p.attention[i], parent.num_attention_heads, L + " query heads");
        int64_t k = per_group(p.attention[i], parent.num_attention_heads, parent.num_key_value_heads, L + " query heads");
        same_count(Hq, k * parent.num_key_value_heads, L + " query heads");
        break;
      }
      case LayerType::Mamba: {
        check_indices(p.mamba_heads[i], parent.mamba_num_heads, L + " Mamba heads");
        check_indices(p.mamba_channels[i], parent.mamba_head_dim, L + " Mamba head channels");
        int64_t k = per_group(p.mamba_heads[i], parent.mamba_num_heads, parent.n_groups, L + " Mamba heads");
        same_count(H, k * parent.n_groups, L + " Mamba heads");
        same_count(P, static_cast<int64_t>(p.mamba_channels[i].size()), L + " Mamba head channels");
        break;
      }
    }
  }
  if (F) c.intermediate_size = *F;
  if (Hq) c.num_attention_heads = *Hq;
  if (H) c.mamba_num_heads = *H;
  if (P) c.mamba_head_dim = *P;
  c.validate("pruned config");
  return c;
}

std::vector<int64_t> parse_index_list(const std::string& text, const std::string& flag) {
  std::vector<int64_t> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find(',', pos);
    if (end == std::string::npos) end = text.size();
    std::string item = text.substr(pos, end - pos);
    char* stop = nullptr;
    long long v = std::strtoll(item.c_str(), &stop, 10);
    if (item.empty() || *stop != '\0' || v < 0) fail_usage("{} {}: expected layer indices like 3,7,12", flag, text);
    out.push_back(v);
    pos = end + 1;
  }
  return out;
}

std::map<LayerType, int64_t> parse_layer_counts(const std::string& text, const std::string& flag) {
  std::map<LayerType, int64_t> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find(',', pos);
    if (end == std::string::npos) end = text.size();
    std::string item = text.substr(pos, end - pos);
    size_t eq = item.find('=');
    char* stop = nullptr;
    long long v = eq == std::string::npos ? -1 : std::strtoll(item.c_str() + eq + 1, &stop, 10);
    std::string name = item.substr(0, eq);
    std::optional<LayerType> t;
    for (LayerType x : {LayerType::Mamba, LayerType::Attention, LayerType::Mlp})
      if (name == layer_type_name(x)) t = x;
    if (!t || v < 0 || !stop || *stop != '\0' || out.count(*t))
      fail_usage("{} {}: expected counts like mamba=45,attention=5,mlp=48", flag, text);
    out[*t] = v;
    pos = end + 1;
  }
  return out;
}

PruneTarget target_from_json(const json& j, const std::string& source) {
  if (!j.is_object()) fail_input("{}: a shape file must be a JSON object", source);
  PruneTarget t;
  auto size = [&](const char* key, std::optional<int64_t>& out) {
    if (!j.contains(key)) return;
    if (!j[key].is_number_integer() || j[key].get<int64_t>() <= 0)
      fail_input("{}: '{}' must be a positive integer, got {}", source, key, json_brief(j[key]));
    out = j[key].get<int64_t>();
  };
  auto list = [&](const char* key, std::optional<std::vector<int64_t>>& out) {
    if (!j.contains(key)) return;
    if (!j[key].is_array()) fail_input("{}: '{}' must be an array of layer indices", source, key);
    std::vector<int64_t> v;
    for (const json& x : j[key]) {
      if (!x.is_number_integer() || x.get<int64_t>() < 0)
        fail_input("{}: '{}' holds {}, expected layer indices", source, key, json_brief(x));
      v.push_back(x.get<int64_t>());
    }
    out = v;
  };
  static const std::set<std::string> known = {"hidden_size", "intermediate_size", "num_attention_heads",
                                              "mamba_num_heads", "mamba_head_dim", "kept_layers", "drop_layers",
                                              "layers", "layer_metric", "name", "comment", "metadata"};
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!known.count(it.key()))
      fail_input("{}: unknown field '{}' (expected hidden_size, intermediate_size, num_attention_heads, "
                 "mamba_num_heads, mamba_head_dim, kept_layers | drop_layers | layers, layer_metric)", source, it.key());
  size("hidden_size", t.hidden_size);
  size("intermediate_size", t.intermediate_size);
  size("num_attention_heads", t.num_attention_heads);
  size("mamba_num_heads", t.mamba_num_heads);
  size("mamba_head_dim", t.mamba_head_dim);
  list("kept_layers", t.keep_layers);
  list("drop_layers", t.drop_layers);
  if (j.contains("layers")) {
    const json& l = j["layers"];
    if (!l.is_object()) fail_input("{}: 'layers' must be an object like {{\"mamba\": 45, \"attention\": 5, \"mlp\": 48}}", source);
    std::map<LayerType, int64_t> counts;
    for (auto it = l.begin(); it != l.end(); ++it) {
      std::optional<LayerType> ty;
      for (LayerType x : {LayerType::Mamba, LayerType::Attention, LayerType::Mlp})
        if (it.key() == layer_type_name(x)) ty = x;
      if (!ty) fail_input("{}: 'layers.{}': unknown layer type (expected mamba, attention, mlp)", source, it.key());
      if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0)
        fail_input("{}: 'layers.{}' must be a non-negative integer", source, it.key());
      counts[*ty] = it.value().get<int64_t>();
    }
    t.keep_counts = counts;
  }
  if ((t.keep_layers.has_value() + t.drop_layers.has_value() + t.keep_counts.has_value()) > 1)
    fail_input("{}: give at most one of kept_layers, drop_layers and layers", source);
  if (j.contains("layer_metric")) t.layer_metric = parse_layer_metric(json_string(j["layer_metric"], "layer_metric", source));
  return t;
}

PruneTarget target_from_json_text(const std::string& text, const std::string& source) {
  const json j = parse_json_text(text, source);
  return with_json_source(source, [&] { return target_from_json(j, source); });
}

PruneTarget load_target(const std::string& path) {
  return target_from_json_text(read_regular_file(path, JsonLimits{}.max_bytes, "JSON"), path);
}

PruningPlan make_plan(const Importance& imp, const PruneTarget& t) {
  const ModelConfig& c = imp.parent;
  const int64_t n = c.num_layers();
  auto within = [](const std::optional<int64_t>& v, int64_t parent, const char* name) {
    const int64_t k = v.value_or(parent);
    if (k <= 0) fail_input("target {} must be positive, got {}", name, k);
    if (k > parent) fail_input("target {} {} is above the parent's {}; pruning only removes", name, k, parent);
    return k;
  };
  const int64_t d = within(t.hidden_size, c.hidden_size, "hidden_size");
  const int64_t F = within(t.intermediate_size, c.intermediate_size, "intermediate_size");
  const int64_t Hq = within(t.num_attention_heads, c.num_attention_heads, "num_attention_heads");
  const int64_t H = within(t.mamba_num_heads, c.mamba_num_heads, "mamba_num_heads");
  const int64_t P = within(t.mamba_head_dim, c.mamba_head_dim, "mamba_head_dim");
  if (Hq % c.num_key_value_heads != 0)
    fail_input("target num_attention_heads {} is not a multiple of num_key_value_heads {} (kv heads are all kept; "
               "each kv group keeps the same number of query heads)", Hq, c.num_key_value_heads);
  if (H % c.n_groups != 0)
    fail_input("target mamba_num_heads {} is not a multiple of n_groups {} (each group keeps the same number of heads)",
               H, c.n_groups);

  PruningPlan p;
  // Layers.
  if (t.keep_layers || t.drop_layers) {
    const auto& list = t.keep_layers ? *t.keep_layers : *t.drop_layers;
    const char* what = t.keep_layers ? "kept layer" : "dropped layer";
    std::set<int64_t> s;
    for (int64_t i : list) {
      if (i < 0 || i >= n) fail_input("{} {} does not exist (the parent has layers 0..{})", what, i, n - 1);
      if (!s.insert(i).second) fail_input("{} {} is listed twice", what, i);
    }
    for (int64_t i = 0; i < n; ++i)
      if (s.count(i) == static_cast<bool>(t.keep_layers)) p.kept_layers.push_back(i);
    if (p.kept_layers.empty()) fail_input("the target drops every layer");
  } else if (t.keep_counts) {
    for (LayerType ty : {LayerType::Mamba, LayerType::Attention, LayerType::Mlp}) {
      std::vector<int64_t> of_type;
      for (int64_t i = 0; i < n; ++i)
        if (c.layers[i] == ty) of_type.push_back(i);
      auto it = t.keep_counts->find(ty);
      const int64_t k = it == t.keep_counts->end() ? static_cast<int64_t>(of_type.size()) : it->second;
      if (k > static_cast<int64_t>(of_type.size()))
        fail_input("target keeps {} {} layers; the parent has only {}", k, layer_type_name(ty), of_type.size());
      for (int64_t i : top_k(of_type, k, [&](int64_t l) { return imp.layers[l].importance(t.layer_metric); }))
        p.kept_layers.push_back(i);
    }
    std::sort(p.kept_layers.begin(), p.kept_layers.end());
    if (p.kept_layers.empty()) fail_input("the target keeps no layers");
  } else {
    p.kept_layers = iota(n);
  }

  // Widths.
  p.hidden = top_k(iota(c.hidden_size), d, [&](int64_t k) { return imp.hidden[k]; });
  p.mlp.resize(n);
  p.attention.resize(n);
  p.mamba_heads.resize(n);
  p.mamba_channels.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    switch (c.layers[i]) {
      case LayerType::Mlp: {
        const auto& s = imp.mlp[i];
        p.mlp[i] = top_k(iota(c.intermediate_size), F, [&](int64_t k) { return s[k]; });
        break;
      }
      case LayerType::Attention: {
        const auto& s = imp.attention[i];
        const int64_t per = c.num_attention_heads / c.num_key_value_heads, keep = Hq / c.num_key_value_heads;
        for (int64_t g = 0; g < c.num_key_value_heads; ++g) {
          std::vector<int64_t> group(per);
          std::iota(group.begin(), group.end(), g * per);
          for (int64_t h : top_k(group, keep, [&](int64_t k) { return s[k]; })) p.attention[i].push_back(h);
        }
        break;
      }
      case LayerType::Mamba: {
        const auto& s = imp.mamba[i];  // [H0 * P0], row-major (head, channel)
        const int64_t H0 = c.mamba_num_heads, P0 = c.mamba_head_dim;
        // Channel score: L2 over heads; the same channels are kept in every head.
        std::vector<double> ch(P0, 0.0);
        for (int64_t h = 0; h < H0; ++h)
          for (int64_t q = 0; q < P0; ++q) ch[q] += double(s[h * P0 + q]) * s[h * P0 + q];
        p.mamba_channels[i] = top_k(iota(P0), P, [&](int64_t q) { return ch[q]; });
        // Head score: L2 over the kept channels; heads ranked inside their group.
        std::vector<double> hs(H0, 0.0);
        for (int64_t h = 0; h < H0; ++h)
          for (int64_t q : p.mamba_channels[i]) hs[h] += double(s[h * P0 + q]) * s[h * P0 + q];
        const int64_t per = H0 / c.n_groups, keep = H / c.n_groups;
        for (int64_t g = 0; g < c.n_groups; ++g) {
          std::vector<int64_t> group(per);
          std::iota(group.begin(), group.end(), g * per);
          for (int64_t h : top_k(group, keep, [&](int64_t k) { return hs[k]; })) p.mamba_heads[i].push_back(h);
        }
        break;
      }
    }
  }
  return p;
}

}  // namespace mp
