// AdamW on this rank's shards of the flat units (shard_layout.h): fp32 master weights, first and
// second moments and the accumulated gradient, each `unit.shard` elements per unit.
//
// The update is distill/optim.h's AdamW applied elementwise to the shard (the same operations in
// the same order, so a sharded run and an unsharded one differ only by how gradients were
// summed). Decoupled weight decay applies to the elements of matrices only (applies_weight_decay):
// each unit's shard keeps the [begin, end) pieces that belong to decayed tensors. Padding
// elements have master, gradient and moments 0 and stay 0 (m = v = 0, p -= 0 / (0 + eps)).
//
// Global-norm clipping across shards: norm^2 = sum over ranks of this rank's sum of g^2 (every
// element is owned by exactly one rank, padding adds 0), so the caller all-reduces
// local_grad_sq() and passes the same norm to every rank.
#pragma once

#include "distill/optim.h"
#include "distill/shard/shard_layout.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace mp::shard {

// One tensor's owned piece of the optimizer state (views into the shards): the checkpoint seam.
struct OwnedState {
  OwnedRange range;
  at::Tensor master, exp_avg, exp_avg_sq;  // fp32, range.end - range.begin elements
};

class ShardedAdamW {
 public:
  // `master_shards[u]`: this rank's shard of unit u (unit.shard elements, fp32, on the training
  // device), taken as the masters; moments and gradients start at 0.
  ShardedAdamW(const ShardLayout& layout, std::vector<at::Tensor> master_shards, AdamWOptions opt);

  // The accumulated gradient shards (fp32, one per unit), summed into by the reduce-scatter.
  const std::vector<at::Tensor>& grads() const { return grad_; }
  void zero_grads();
  double local_grad_sq() const;   // sum of g^2 over this rank's shards (float64)
  void scale_grads(double coef);  // g *= coef
  void step(double lr);           // one AdamW step from grads()

  const std::vector<at::Tensor>& masters() const { return master_; }
  const std::vector<at::Tensor>& exp_avg() const { return m_; }
  const std::vector<at::Tensor>& exp_avg_sq() const { return v_; }
  std::vector<at::Tensor>& mutable_exp_avg() { return m_; }
  std::vector<at::Tensor>& mutable_exp_avg_sq() { return v_; }
  int64_t steps_taken() const { return steps_; }
  void set_steps_taken(int64_t s) { steps_ = s; }
  const AdamWOptions& options() const { return opt_; }

  // Per tensor name, this rank's owned range and its master / exp_avg / exp_avg_sq (views).
  std::vector<OwnedState> owned_state();
  int64_t held_bytes() const;  // masters, moments and gradient shards

 private:
  const ShardLayout& layout_;
  AdamWOptions opt_;
  std::vector<at::Tensor> master_, m_, v_, grad_;
  std::vector<std::vector<std::pair<int64_t, int64_t>>> decay_;  // per unit: (offset, length) in the shard
  int64_t steps_ = 0;
};

}  // namespace mp::shard
