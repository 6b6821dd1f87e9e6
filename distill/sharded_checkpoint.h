// Sharded training checkpoints: every rank writes the parts of the weights and optimizer state it
// owns; any world size reads them back, whatever the world size that wrote them.
//
// OUTPUT/checkpoint-STEP/ of a sharded run holds
//   rank-R-of-W.safetensors  one per rank: for each (parameter, kind) the rank owns a part of, the
//                            element range [begin, end) of the flattened tensor as a 1-D tensor named
//                            "KIND/NAME"; its metadata repeats step, rank, world size and the ranges
//   manifest.json            format, step, world size, shard mode, every tensor's full shape in
//                            checkpoint order, per rank its file, byte size and pieces
//                            (name, kind, begin, end, dtype), the model's config.json and the
//                            trainer state
// Kinds: "weight" (F32 master or the compute dtype: F32, BF16, F16), "exp_avg" and "exp_avg_sq"
// (F32). Invariants of a committed folder, checked on every read:
//   - for each tensor and kind, the pieces of all ranks tile [0, numel) exactly: no gap, no
//     overlap, one dtype; a rank holds at most one piece of a (tensor, kind)
//   - every tensor has a "weight"; an optimizer kind covers every tensor or none
//   - each rank file holds exactly the pieces the manifest lists for it, with their dtypes and
//     lengths, and has the byte size the manifest records
//
// Saving has two phases; the ranks synchronise between them through the caller (a barrier):
//   1. every rank: write_rank_shard() writes its file atomically into the staging folder
//      OUTPUT/.checkpoint-STEP.partial-sharded (created by whichever rank comes first);
//   2. rank 0, once every rank has returned: commit_sharded_checkpoint() reads the rank files'
//      headers, checks the invariants above, writes manifest.json, renames the staging folder to
//      checkpoint-STEP (replacing an older one of that name) and then replaces OUTPUT/latest.
// A crash before the rename leaves only the hidden staging folder, which `latest` never names and
// remove_partial_checkpoints() deletes; after it, a complete folder. The folder is committed only
// by the rename, so a manifest is never seen beside missing rank files.
#pragma once

#include "distill/checkpoint.h"
#include "model/config.h"
#include "model/safetensors.h"
#include "model/weights.h"

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mp {

extern const char* const kShardManifestName;  // "manifest.json"
extern const char* const kShardKindWeight;    // "weight"
extern const char* const kShardKindExpAvg;    // "exp_avg"
extern const char* const kShardKindExpAvgSq;  // "exp_avg_sq"

std::string rank_shard_file_name(int rank, int world_size);            // "rank-R-of-W.safetensors"
std::string sharded_staging_dir(const std::string& output, int64_t step);  // OUTPUT/.checkpoint-STEP.partial-sharded
bool is_sharded_checkpoint(const std::string& dir);                    // DIR/manifest.json exists

// The part [begin, end) of the flattened tensor `name` that a rank owns, for one kind. `data` has
// end - begin elements (any shape, device and layout; it is written flattened) in the dtype to store.
struct ShardPiece {
  std::string name;
  std::string kind;
  int64_t begin = 0, end = 0;
  at::Tensor data;
};

// Phase 1, on every rank: writes OUTPUT/.checkpoint-STEP.partial-sharded/rank-R-of-W.safetensors
// atomically. Empty pieces are skipped. Runtime error (a caller bug) for a piece whose data does
// not have end - begin elements, an unknown kind, or a (name, kind) given twice.
void write_rank_shard(const std::string& output, int64_t step, int rank, int world_size,
                      const std::vector<ShardPiece>& pieces);

struct ShardedCommit {
  int world_size = 1;
  std::string shard_mode;            // "optimizer" or "full" (recorded; readers reshard either)
  std::vector<TensorSpec> tensors;   // every tensor's name and full shape, in checkpoint order
  ModelConfig config;                // the student's; config.dtype is the compute dtype
  TrainerState state;                // state.step is the step saved
  std::string companions_from;       // a folder whose tokenizer and other non-weight files are copied in
};

// Phase 2, on rank 0 after every rank's write_rank_shard returned: checks the staging folder
// (all W rank files of this step, the invariants above; runtime error naming the file and tensor
// otherwise), writes the manifest, commits the folder and points OUTPUT/latest at it. Files in
// the staging folder that are not this world size's rank files are removed. Returns the folder.
std::string commit_sharded_checkpoint(const std::string& output, const ShardedCommit& commit);

// A committed sharded checkpoint, opened and validated (bad input naming the manifest or the
// rank file and the tensor, on any violation). Rank files are memory-mapped; reads copy out.
class ShardedCheckpointReader {
 public:
  explicit ShardedCheckpointReader(const std::string& dir);
  ~ShardedCheckpointReader();

  const std::string& dir() const { return dir_; }
  int64_t step() const { return step_; }
  int world_size() const { return world_size_; }
  const std::string& shard_mode() const { return shard_mode_; }
  const ModelConfig& config() const { return config_; }
  const TrainerState& state() const { return state_; }
  const std::vector<TensorSpec>& tensors() const { return tensors_; }  // checkpoint order
  const TensorSpec& tensor(const std::string& name) const;              // bad input if absent

  bool has(const std::string& name, const std::string& kind) const;
  StDType dtype(const std::string& name, const std::string& kind) const;  // bad input if absent
  // Elements [begin, end) of the flattened tensor, gathered from whichever rank files hold them,
  // as a new 1-D CPU tensor of the stored dtype. Bad input when the checkpoint lacks (name, kind);
  // runtime error when the range is not inside [0, numel).
  at::Tensor read_range(const std::string& name, const std::string& kind, int64_t begin, int64_t end) const;
  // The whole tensor in its full shape, stored dtype.
  at::Tensor read(const std::string& name, const std::string& kind) const;

 private:
  struct Piece {
    int64_t begin, end;
    int rank;
    const StTensorInfo* info;  // inside files_[rank]
  };
  std::string dir_;
  int64_t step_ = 0;
  int world_size_ = 0;
  std::string shard_mode_;
  ModelConfig config_;
  TrainerState state_;
  std::vector<TensorSpec> tensors_;
  std::map<std::string, size_t> tensor_index_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;  // by rank
  std::map<std::pair<std::string, std::string>, std::vector<Piece>> pieces_;  // sorted by begin
};

}  // namespace mp
