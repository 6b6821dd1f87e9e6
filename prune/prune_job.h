// One pruning job, as `minipuzzle prune` runs it: a parent checkpoint and its importance file in,
// the target shape resolved (a shape file, then width and layer overrides), the plan made, and the
// sliced child written as a Hugging Face checkpoint (or only planned, without an output).
#pragma once

#include "model/config.h"
#include "model/model.h"
#include "prune/importance.h"
#include "prune/plan.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mp {

// The target's sources, in the order they apply: the shape file, then these overrides.
struct TargetRequest {
  std::string shape_file;  // empty: start from the parent's shape
  std::optional<int64_t> hidden_size, intermediate_size, num_attention_heads, mamba_num_heads, mamba_head_dim;
  std::string keep_layers;   // "mamba=45,attention=5,mlp=48" (counts) or "0,1,5" (indices)
  std::string drop_layers;   // "3,17,40"
  std::string layer_metric;  // empty: the shape file's, else mse_normed
};

// The target shape; usage errors name the flag (--keep-layers, --drop-layers, --layer-metric).
PruneTarget resolve_target(const TargetRequest& r);

struct PruneJob {
  std::string model, importance;
  std::string shape_file;  // the target's shape file, if any: an input the output must not replace
  std::string output;      // empty: plan only, nothing written
  PruneTarget target;
  // Control experiment: random indices and layers of the same shape instead of the most important.
  std::optional<uint64_t> random_indices_seed;
  std::optional<at::ScalarType> dtype;  // default: as stored
  uint64_t max_shard_bytes = 5000000000ull;
  bool overwrite = false;
};

struct PruneOutcome {
  ModelConfig parent, child;
  int64_t parent_params = 0, child_params = 0;
  std::vector<int64_t> dropped_layers;  // parent indices
  LayerMetric layer_metric = LayerMetric::MseNormed;
};

// Checks the output and the importance file against the parent (shape, then the weights'
// fingerprint) before slicing; the child lands atomically in job.output.
PruneOutcome run_prune_job(const PruneJob& job);

}  // namespace mp
