// How a model's parameters are cut into flat, evenly sharded units for `--shard optimizer|full`.
//
// Units, in forward order: the embedding; each layer i (every "backbone.layers.{i}." tensor, in
// name order); the head (final norm, then LM head). A unit's tensors are laid end to end in one
// flat buffer of `numel` elements (tensor k at [offset_k, offset_k + numel_k)), padded with zeros
// to `padded` = ceil(numel / W) x W so that it splits evenly: rank r owns the `shard` = padded / W
// elements [r x shard, (r + 1) x shard). Padding is never read as a weight; its gradient and
// optimizer state stay 0. Every rank owns exactly `shard` elements of every unit, so every rank
// holds the same number of bytes.
//
// owned_ranges() is the per-tensor view of the same split: for each tensor, the element range
// [begin, end) of its row-major flattening that this rank owns (empty when begin == end), and
// where that range sits in the rank's shard of the unit. Sharded checkpoints are written and
// read in these terms.
#pragma once

#include "distill/shard/shard_mode.h"
#include "model/model.h"
#include "model/weights.h"

#include <cstdint>
#include <string>
#include <vector>

namespace mp::shard {

struct FlatTensor {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset = 0, numel = 0;  // in the unit's flat buffer
};

struct Unit {
  std::string name;  // "embedding", "layer 3", "head"
  std::vector<FlatTensor> tensors;
  int64_t numel = 0, padded = 0, shard = 0;
};

struct OwnedRange {
  std::string name;
  int64_t unit = 0;
  int64_t begin = 0, end = 0;  // of the tensor's flattening
  int64_t shard_offset = 0;    // where element `begin` sits in this rank's shard of the unit
};

class ShardLayout {
 public:
  ShardLayout(const Model& m, int64_t world_size, int64_t rank);
  // From the tensors' names and shapes alone (no weights needed).
  ShardLayout(const ModelConfig& config, const std::vector<TensorSpec>& tensors, int64_t world_size, int64_t rank);
  const std::vector<Unit>& units() const { return units_; }
  int64_t num_units() const { return static_cast<int64_t>(units_.size()); }
  int64_t embedding_unit() const { return 0; }
  int64_t layer_unit(int64_t layer) const { return 1 + layer; }
  int64_t head_unit() const { return num_units() - 1; }
  int64_t world_size() const { return world_; }
  int64_t rank() const { return rank_; }
  std::vector<OwnedRange> owned_ranges() const;

 private:
  std::vector<Unit> units_;
  int64_t world_, rank_;
};

// The unit's tensors of `m`, flattened end to end and zero-padded to unit.padded elements, in
// `dtype` on `m`'s device.
at::Tensor flatten_unit(const Model& m, const Unit& u, at::ScalarType dtype);
// Views of `flat` (padded elements of one unit) in each tensor's shape, by name.
std::vector<std::pair<std::string, at::Tensor>> unit_views(const at::Tensor& flat, const Unit& u);

}  // namespace mp::shard
