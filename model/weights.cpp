#include "model/weights.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

#include <cmath>

namespace mp {

const char* const kEmbeddingName = "backbone.embeddings.weight";
const char* const kFinalNormName = "backbone.norm_f.weight";
const char* const kLmHeadName = "lm_head.weight";

std::string layer_prefix(int64_t layer) { return fmt::format("backbone.layers.{}.", layer); }
std::string layer_tensor(int64_t layer, const std::string& suffix) { return layer_prefix(layer) + suffix; }

std::string canonical_tensor_name(const std::string& n) {
  std::string r = n;
  if (r.rfind("model.", 0) == 0) r = "backbone." + r.substr(6);
  if (r == "backbone.embedding.weight") r = kEmbeddingName;
  return r;
}

std::string shape_string(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

std::vector<TensorSpec> expected_tensors(const ModelConfig& c) {
  const int64_t d = c.hidden_size;
  std::vector<TensorSpec> out;
  out.push_back({kEmbeddingName, {c.vocab_size, d}});
  for (int64_t i = 0; i < c.num_layers(); ++i) {
    auto t = [&](const char* suffix, std::vector<int64_t> shape) { out.push_back({layer_tensor(i, suffix), std::move(shape)}); };
    t("norm.weight", {d});
    switch (c.layers[i]) {
      case LayerType::Mamba: {
        const int64_t H = c.mamba_num_heads, I = c.mamba_inner(), cd = c.mamba_conv_dim();
        t("mixer.in_proj.weight", {c.mamba_in_proj_rows(), d});
        t("mixer.conv1d.weight", {cd, 1, c.conv_kernel});
        if (c.use_conv_bias) t("mixer.conv1d.bias", {cd});
        t("mixer.dt_bias", {H});
        t("mixer.A_log", {H});
        t("mixer.D", {H});
        t("mixer.norm.weight", {I});
        t("mixer.out_proj.weight", {d, I});
        break;
      }
      case LayerType::Attention: {
        const int64_t q = c.num_attention_heads * c.head_dim, kv = c.num_key_value_heads * c.head_dim;
        t("mixer.q_proj.weight", {q, d});
        t("mixer.k_proj.weight", {kv, d});
        t("mixer.v_proj.weight", {kv, d});
        t("mixer.o_proj.weight", {d, q});
        break;
      }
      case LayerType::Mlp:
        t("mixer.up_proj.weight", {c.intermediate_size, d});
        t("mixer.down_proj.weight", {d, c.intermediate_size});
        break;
    }
  }
  out.push_back({kFinalNormName, {d}});
  out.push_back({kLmHeadName, {c.vocab_size, d}});
  return out;
}

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// PyTorch's default for Linear/Conv weights: kaiming_uniform(a = sqrt(5)) = U(-1/sqrt(fan_in), +).
at::Tensor kaiming_uniform(const std::vector<int64_t>& shape, int64_t fan_in, at::Generator& gen,
                           const at::TensorOptions& opts) {
  double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  return at::empty(shape, opts).uniform_(-bound, bound, gen);
}

}  // namespace

std::vector<std::pair<std::string, at::Tensor>> init_weights(const ModelConfig& c, uint64_t seed,
                                                             at::ScalarType dtype, at::Device device) {
  at::Generator gen;
  if (device.is_cpu()) {
    gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  } else {
    gen = at::globalContext().defaultGenerator(device);
    gen.set_current_seed(seed);
  }
  const at::TensorOptions f32 = at::TensorOptions().dtype(at::kFloat).device(device);
  const double std_dev = c.initializer_range;
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const TensorSpec& spec : expected_tensors(c)) {
    const std::string& n = spec.name;
    at::Tensor t;
    if (ends_with(n, "norm.weight") || ends_with(n, "norm_f.weight") || ends_with(n, "mixer.D")) {
      t = at::ones(spec.shape, f32);
    } else if (ends_with(n, "mixer.A_log")) {
      t = at::log(at::arange(1, c.mamba_num_heads + 1, f32));
    } else if (ends_with(n, "mixer.dt_bias")) {
      const double lo = std::log(c.time_step_min), hi = std::log(c.time_step_max);
      at::Tensor dt = at::exp(at::empty(spec.shape, f32).uniform_(0.0, 1.0, gen) * (hi - lo) + lo);
      dt = at::clamp_min(dt, c.time_step_floor);
      t = dt + at::log(-at::expm1(-dt));  // inverse of softplus
    } else if (ends_with(n, "conv1d.bias")) {
      t = at::zeros(spec.shape, f32);
    } else if (ends_with(n, "out_proj.weight") && c.rescale_prenorm_residual) {
      t = kaiming_uniform(spec.shape, spec.shape[1], gen, f32) / std::sqrt(static_cast<double>(c.num_layers()));
    } else {
      t = at::empty(spec.shape, f32).normal_(0.0, std_dev, gen);
    }
    out.emplace_back(n, t.to(dtype));
  }
  return out;
}

}  // namespace mp
