// Where a sharded run's starting state comes from. Each rank asks only for the element ranges it
// owns (ShardLayout::owned_ranges), so a sharded run never reads a whole model into one process:
// weights come straight out of the memory-mapped safetensors files.
//
// Kinds (as in sharded checkpoints): "weight" (the master weights, or the model's weights for a
// fresh start, in their stored dtype) and, for a resumed run, "exp_avg" and "exp_avg_sq" (fp32).
#pragma once

#include "distill/optim.h"
#include "distill/shard/shard_layout.h"
#include "model/config.h"
#include "model/model.h"
#include "model/weights.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mp::shard {

class ShardSource {
 public:
  virtual ~ShardSource() = default;
  virtual const ModelConfig& config() const = 0;
  virtual const std::vector<TensorSpec>& tensors() const = 0;  // every tensor's name and shape
  virtual bool has_moments() const = 0;                        // AdamW moments to restore
  virtual int64_t optimizer_steps() const = 0;                 // steps those moments have seen
  // Elements [begin, end) of the tensor's row-major flattening, 1-D on the CPU (bad input naming
  // the file and tensor when the source is damaged, e.g. NaN in the weights).
  virtual at::Tensor read(const std::string& name, const std::string& kind, int64_t begin, int64_t end) const = 0;
};

// A model in memory (a fresh random initialisation).
std::unique_ptr<ShardSource> model_source(const Model& m);
// A whole optimizer in memory: its masters and, once it has stepped, its moments.
std::unique_ptr<ShardSource> optimizer_source(const AdamW& opt, const ModelConfig& config);
// A Hugging Face model folder (model/model_folder.h), checked as load_model checks it.
std::unique_ptr<ShardSource> model_folder_source(const std::string& dir);
// A training checkpoint of either form: sharded (manifest.json) or whole (config.json,
// optimizer.safetensors with the fp32 masters and moments).
std::unique_ptr<ShardSource> checkpoint_source(const std::string& dir, int64_t optimizer_steps);

// This rank's shard of every unit of `layout` for one kind: zeros, then each owned range read from
// `src` and converted to `dtype` (padding stays 0).
std::vector<at::Tensor> read_shards(const ShardSource& src, const ShardLayout& layout, const std::string& kind,
                                    at::ScalarType dtype, at::Device device);

}  // namespace mp::shard
