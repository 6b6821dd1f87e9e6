// A loaded model: its config and its tensors by Hugging Face name. The model is data; the
// forward pass (forward.h), pruning and training are functions over it. Per-layer widths are read
// from the tensors' shapes, so a layer pruned narrower than the config's default still runs.
#pragma once

#include "model/config.h"

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mp {

struct Model {
  ModelConfig config;
  std::map<std::string, at::Tensor> weights;

  const at::Tensor& w(const std::string& name) const;  // runtime error naming the tensor if absent
  const at::Tensor& layer_w(int64_t layer, const char* suffix) const;
  at::Device device() const;
  at::ScalarType dtype() const;  // of the embedding table
  // Copy on another device / dtype (norm weights and A_log/D/dt_bias included).
  Model to(at::Device device, at::ScalarType dtype) const;
  // Tensors in the canonical order of expected_tensors(config), for writing.
  std::vector<std::pair<std::string, at::Tensor>> ordered() const;
};

struct LoadOptions {
  at::Device device = at::kCPU;
  std::optional<at::ScalarType> dtype;  // default: as stored
};
// Reads config.json and the tensors; validates every tensor's presence and shape against the
// config (bad input naming the file, the tensor, the expected and the found shape) and refuses
// tensors the config does not imply. Accepts "model." for "backbone." and
// "backbone.embedding.weight" for "backbone.embeddings.weight". A tensor holding NaN or infinity
// is refused naming it (checked per tensor as it is read: one extra pass over memory just written).
Model load_model(const std::string& dir, const LoadOptions& opt = {});
struct SaveOptions {
  std::optional<at::ScalarType> dtype;  // default: as held
  uint64_t max_shard_bytes = 5000000000ull;
  // A checkpoint folder whose tokenizer and other non-weight files are copied along
  // (model/companion_files.h); empty: none.
  std::string companions_from;
};
// Writes config.json + safetensors (sharded beyond max_shard_bytes) into `dir` atomically.
void save_model(const Model& m, const std::string& dir, const SaveOptions& opt = {});

Model make_random_model(const ModelConfig& c, uint64_t seed, at::ScalarType dtype, at::Device device = at::kCPU);

// "fp32"/"float32", "bf16"/"bfloat16", "fp16"/"float16" -> scalar type; usage error otherwise.
at::ScalarType parse_dtype(const std::string& name);
std::string dtype_config_name(at::ScalarType t);  // "float32", "bfloat16", "float16"
at::Device parse_device(const std::string& name);  // "cpu", "cuda", "cuda:1"; clear error without CUDA

}  // namespace mp
