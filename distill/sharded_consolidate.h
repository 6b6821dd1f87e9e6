// A sharded training checkpoint (sharded_checkpoint.h) turned back into whole tensors: the
// student as a Model, or a Hugging Face checkpoint folder written by streaming, one tensor at a
// time, so that consolidating never holds more than one tensor of the model in memory.
#pragma once

#include "distill/sharded_checkpoint.h"
#include "model/model.h"

#include <cstdint>
#include <optional>
#include <string>

namespace mp {

// The student a sharded checkpoint holds, whole (its "weight" tensors), as load_model() gives it.
Model load_sharded_model(const ShardedCheckpointReader& reader, const LoadOptions& opt = {});

struct ConsolidateOptions {
  std::optional<at::ScalarType> dtype;  // default: the config's dtype (the run's compute dtype)
  uint64_t max_shard_bytes = 5000000000ull;
  std::string companions_from;  // a folder whose tokenizer and other non-weight files are copied along
};

// Writes a Hugging Face checkpoint folder (config.json, model.safetensors or shards + index) from
// the sharded checkpoint in `dir`, atomically (AtomicDir), tensors in checkpoint order. At most
// one tensor and its converted copy are in memory at once.
void consolidate_sharded_checkpoint(const std::string& dir, const std::string& out_dir,
                                    const ConsolidateOptions& opt = {});

}  // namespace mp
