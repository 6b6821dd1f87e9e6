// A checkpoint folder's tensors: `model.safetensors`, or shards
// `model-0000i-of-0000N.safetensors` listed by `model.safetensors.index.json`.
// Reading is lazy: files are memory-mapped and one tensor is copied out at a time.
#pragma once

#include "model/safetensors.h"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace mp {

class CheckpointReader {
 public:
  // Opens the folder. Checks: the folder exists; it holds model.safetensors or an index; every
  // shard the index names is a plain file name inside the folder (no folders, no "..") and exists and is a valid safetensors file; every tensor the index maps is
  // in the shard it is mapped to; no tensor appears in two shards. Bad input otherwise, naming
  // the folder/file/tensor.
  explicit CheckpointReader(const std::string& dir);

  const std::string& dir() const { return dir_; }
  std::vector<std::string> names() const;  // sorted
  bool has(const std::string& name) const;
  const StTensorInfo& info(const std::string& name) const;  // bad input if missing
  at::Tensor load(const std::string& name) const;           // bad input if missing
  // Elements [begin, end) of the flattened tensor, 1-D, stored dtype (SafetensorsFile::load_range).
  at::Tensor load_range(const std::string& name, int64_t begin, int64_t end) const;
  uint64_t total_bytes() const;

 private:
  std::string dir_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> where_;  // tensor name -> index into files_
};

// Writes tensors into `dir` (which must exist; callers use AtomicDir for the folder).
// max_shard_bytes == 0, or everything fits in one shard: a single model.safetensors.
// Otherwise shards `model-%05d-of-%05d.safetensors` filled in order up to max_shard_bytes each
// (a tensor larger than the limit gets a shard of its own) plus model.safetensors.index.json
// with metadata.total_size and the weight_map.
void write_checkpoint_tensors(const std::string& dir,
                              const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                              uint64_t max_shard_bytes);

// The same layout, written one tensor at a time: `produce(i)` returns the tensor for specs[i]
// (its dtype and shape must match the spec) and is called once per tensor, in order, so only one
// tensor needs to be in memory. Shards are planned from the specs exactly as above.
void write_checkpoint_tensors_streaming(const std::string& dir, const std::vector<StTensorSpec>& specs,
                                        uint64_t max_shard_bytes,
                                        const std::function<at::Tensor(size_t index)>& produce);

// "5GB", "20KB", "1.5GiB", "1000" (bytes) -> bytes; bad input for anything else.
uint64_t parse_byte_size(const std::string& text);

}  // namespace mp
