// The tensors a config implies: their Hugging Face names and shapes, and their initialisation.
// Names are the on-disk ones ("backbone.layers.3.mixer.in_proj.weight"); readers also accept a
// "model." prefix and "backbone.embedding.weight" (see model.cpp).
#pragma once

#include "model/config.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace mp {

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
};

std::string layer_prefix(int64_t layer);                            // "backbone.layers.{i}."
std::string layer_tensor(int64_t layer, const std::string& suffix);  // prefix + suffix
extern const char* const kEmbeddingName;   // "backbone.embeddings.weight"
extern const char* const kFinalNormName;   // "backbone.norm_f.weight"
extern const char* const kLmHeadName;      // "lm_head.weight"

// The on-disk name variants readers accept ("model." for "backbone.", "backbone.embedding.weight")
// mapped to the canonical name.
std::string canonical_tensor_name(const std::string& stored);
std::string shape_string(const std::vector<int64_t>& shape);  // "[a, b]", for messages

// Every tensor of the model in a stable order (embedding, layers in order, final norm, head).
std::vector<TensorSpec> expected_tensors(const ModelConfig& c);

// Random initialisation as transformers' NemotronH does it: linear and embedding weights
// and conv1d weights N(0, initializer_range), biases 0, norms 1, A_log = log(1..H), D = 1, dt_bias = softplus^-1 of
// dt ~ log-uniform[time_step_min, time_step_max] clamped at time_step_floor, and out_proj
// kaiming-uniform scaled by 1/sqrt(num_layers) when rescale_prenorm_residual.
// Deterministic in `seed` and the device (a CPU generator on the CPU, the device's own generator
// elsewhere, so a model too large for the host is made on the GPU directly); each tensor is drawn
// in fp32 and cast to `dtype` before the next one is drawn.
std::vector<std::pair<std::string, at::Tensor>> init_weights(const ModelConfig& c, uint64_t seed,
                                                             at::ScalarType dtype, at::Device device = at::kCPU);

}  // namespace mp
