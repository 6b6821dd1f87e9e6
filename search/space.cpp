#include "search/space.h"

#include "common/error.h"

#include <fmt/format.h>

#include <algorithm>
#include <sstream>

namespace mp {

std::string Candidate::key() const {
  return fmt::format("M{}-A{}-F{}-ffn{}-d{}-q{}-h{}x{}", mamba, attention, mlp, ffn, hidden, attention_heads,
                     mamba_heads, mamba_head_dim);
}

std::vector<int64_t> parse_int_list(const std::string& spec, const std::string& what) {
  auto to_int = [&](const std::string& s) -> int64_t {
    try {
      size_t n = 0;
      int64_t v = std::stoll(s, &n);
      if (n != s.size()) throw 1;
      return v;
    } catch (...) {
      fail_usage("{} '{}': '{}' is not an integer; expected a:b, a:b:step or a,b,c", what, spec, s);
    }
  };
  std::vector<int64_t> out;
  if (spec.find(':') != std::string::npos) {
    std::vector<std::string> parts;
    std::stringstream ss(spec);
    for (std::string p; std::getline(ss, p, ':');) parts.push_back(p);
    if (parts.size() < 2 || parts.size() > 3) fail_usage("{} '{}': expected a:b or a:b:step", what, spec);
    int64_t a = to_int(parts[0]), b = to_int(parts[1]), step = parts.size() == 3 ? to_int(parts[2]) : 1;
    if (step <= 0) fail_usage("{} '{}': step must be positive", what, spec);
    for (int64_t v = a; v <= b; v += step) out.push_back(v);
  } else {
    std::stringstream ss(spec);
    for (std::string p; std::getline(ss, p, ',');) out.push_back(to_int(p));
  }
  if (out.empty()) fail_usage("{} '{}' is empty", what, spec);
  return out;
}

SearchSpace default_space(const ModelConfig& p) {
  SearchSpace s;
  auto range = [](int64_t lo, int64_t hi) {
    std::vector<int64_t> v;
    for (int64_t i = std::max<int64_t>(lo, 0); i <= hi; ++i) v.push_back(i);
    return v;
  };
  const int64_t m = p.count(LayerType::Mamba), a = p.count(LayerType::Attention), f = p.count(LayerType::Mlp);
  s.mamba = range((3 * m + 3) / 4, m);
  s.attention = range(std::min<int64_t>(1, a), a);
  s.mlp = range((3 * f + 3) / 4, f);
  const int64_t step = std::max<int64_t>(1, p.intermediate_size / 32);
  for (int64_t w = p.intermediate_size; w >= (3 * p.intermediate_size) / 4; w -= step) s.ffn.push_back(w);
  std::reverse(s.ffn.begin(), s.ffn.end());
  s.hidden = {p.hidden_size};
  s.attention_heads = {p.num_attention_heads};
  s.mamba_heads = {p.mamba_num_heads};
  s.mamba_head_dim = {p.mamba_head_dim};
  return s;
}

std::vector<Candidate> enumerate(const SearchSpace& s, const ModelConfig& p) {
  auto check = [&](const std::vector<int64_t>& v, int64_t max, const char* flag, int64_t multiple_of, const char* why) {
    if (v.empty()) fail_input("search space: {} is empty", flag);
    for (int64_t x : v) {
      if (x < 0 || x > max) fail_input("search space: {} value {} is outside [0, {}] (the parent's)", flag, x, max);
      if (multiple_of > 1 && x % multiple_of != 0)
        fail_input("search space: {} value {} is not a multiple of {} ({})", flag, x, multiple_of, why);
    }
  };
  check(s.mamba, p.count(LayerType::Mamba), "--mamba-layers", 1, "");
  check(s.attention, p.count(LayerType::Attention), "--attention-layers", 1, "");
  check(s.mlp, p.count(LayerType::Mlp), "--mlp-layers", 1, "");
  check(s.ffn, p.intermediate_size, "--ffn-hidden-size", 1, "");
  check(s.hidden, p.hidden_size, "--hidden-size", 1, "");
  check(s.attention_heads, p.num_attention_heads, "--num-attention-heads", p.num_key_value_heads, "query heads per kv head");
  check(s.mamba_heads, p.mamba_num_heads, "--mamba-num-heads", p.n_groups, "Mamba heads per group");
  check(s.mamba_head_dim, p.mamba_head_dim, "--mamba-head-dim", 1, "");
  std::vector<Candidate> out;
  for (int64_t m : s.mamba)
    for (int64_t a : s.attention)
      for (int64_t f : s.mlp)
        for (int64_t w : s.ffn)
          for (int64_t d : s.hidden)
            for (int64_t q : s.attention_heads)
              for (int64_t h : s.mamba_heads)
                for (int64_t hp : s.mamba_head_dim) {
                  if (m + a + f == 0) continue;
                  out.push_back({m, a, f, w, d, q, h, hp});
                }
  if (out.empty()) fail_input("search space is empty: no candidate keeps any layer");
  return out;
}

std::vector<int64_t> choose_layers(const ModelConfig& p, const Candidate& c, const std::vector<int64_t>& ranking) {
  std::vector<int64_t> order = ranking;
  if (order.empty()) {
    // No importance: the first layer of each type, then the others from the last backwards.
    std::vector<bool> taken(p.num_layers(), false);
    for (LayerType t : {LayerType::Mamba, LayerType::Attention, LayerType::Mlp})
      for (int64_t i = 0; i < p.num_layers(); ++i)
        if (p.layers[i] == t) { order.push_back(i); taken[i] = true; break; }
    for (int64_t i = p.num_layers() - 1; i >= 0; --i)
      if (!taken[i]) order.push_back(i);
  }
  int64_t need[3] = {c.mamba, c.attention, c.mlp};
  auto slot = [](LayerType t) { return t == LayerType::Mamba ? 0 : t == LayerType::Attention ? 1 : 2; };
  std::vector<int64_t> kept;
  for (int64_t i : order) {
    int s = slot(p.layers.at(i));
    if (need[s] > 0) { kept.push_back(i); --need[s]; }
  }
  std::sort(kept.begin(), kept.end());
  return kept;
}

ModelConfig candidate_config(const ModelConfig& p, const Candidate& c, const std::vector<int64_t>& kept) {
  ModelConfig out = p;
  out.layers.clear();
  for (int64_t i : kept) out.layers.push_back(p.layers.at(i));
  out.intermediate_size = c.ffn;
  out.hidden_size = c.hidden;
  out.num_attention_heads = c.attention_heads;
  out.mamba_num_heads = c.mamba_heads;
  out.mamba_head_dim = c.mamba_head_dim;
  return out;
}

}  // namespace mp
