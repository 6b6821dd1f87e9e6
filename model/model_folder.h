// A model checkpoint folder, checked the way load_model checks it, whose weights stay on disk:
// tensors are read on demand, whole or as an element range of their row-major flattening, from
// the memory-mapped safetensors files. Sharded training reads only the ranges each rank owns
// this way, so no rank ever holds a whole model it does not need.
#pragma once

#include "model/checkpoint_io.h"
#include "model/config.h"
#include "model/weights.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace mp {

class ModelFolder {
 public:
  // Reads config.json and the safetensors headers; checks every tensor the config implies is
  // there once (under its canonical or an accepted alternative name) with the implied shape and
  // a float dtype, and that nothing else is (multi-token-prediction heads "mtp." are ignored).
  // Bad input naming the folder, the tensor, the expected and the found shape otherwise.
  explicit ModelFolder(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const ModelConfig& config() const { return config_; }
  const std::vector<TensorSpec>& tensors() const { return tensors_; }  // expected_tensors(config) order
  StDType stored_dtype(const std::string& name) const;

  // The tensor (canonical name) in its shape and stored dtype, on the CPU; bad input naming it
  // when it holds NaN or infinity.
  at::Tensor read(const std::string& name) const;
  // Elements [begin, end) of its flattening, 1-D, stored dtype, checked for NaN and infinity alike.
  at::Tensor read_range(const std::string& name, int64_t begin, int64_t end) const;

 private:
  const std::string& stored_name(const std::string& name) const;
  std::string dir_;
  ModelConfig config_;
  std::vector<TensorSpec> tensors_;
  std::unique_ptr<CheckpointReader> reader_;
  std::map<std::string, std::string> stored_;  // canonical -> name in the files
};

// Whether every value of a floating tensor is finite (integer tensors: true).
bool all_finite(const at::Tensor& t);

}  // namespace mp
