// Runs a model unit by unit (shard_layout.h) under a sharding mode, so that the forward pass
// and its backward move weights and gradients the way the mode says:
//
//  - Frozen (a sharded teacher, no gradient): gather the unit, run it, free it; the next unit's
//    gather is prefetched while this one runs.
//  - Optimizer (`--shard optimizer`): the weights are kept whole; a pass-through autograd node
//    ("tap") created just before the unit runs hands the unit's weights to it, and in the
//    backward it receives all of the unit's weight gradients at once, when the unit's backward
//    ends, and starts their reduce-scatter while the backward goes on. The unit itself runs as
//    in an unsharded model (with --recompute, through model/recompute.h).
//  - Full (`--shard full`): one autograd node per unit. Forward: gather the unit, run it without
//    keeping intermediates, free it (only the unit's input is saved). Backward: gather it again
//    (the previous unit's gather prefetched), run it again with grad, take the input's and the
//    weights' gradients, free it, and start the weights' reduce-scatter. So full sharding always
//    recomputes layer activations: the intermediates of a layer hold its gathered weights (the
//    matmuls save them for their backward), so keeping them would keep every layer's weights
//    whole. `--recompute` is implied and changes nothing.
//    Two unit kinds differ: the embedding's backward needs no weight values (the gradient of a
//    lookup depends only on the ids), so it is not gathered again; the head (final norm, LM
//    head and the loss, a scalar) is run eagerly: its forward also takes the gradients of the
//    loss with respect to its input and weights, then frees the weights, and its backward only
//    scales them by the incoming gradient (the fused KD loss does the same internally).
//
// Invariant: values and gradients are the unsharded model's (the same operations on the same
// numbers), up to the order in which the reduce-scatter sums over ranks. Every rank issues the
// same collectives in the same order (the graph and the unit order are the same on every rank).
#pragma once

#include "distill/shard/shard_layout.h"
#include "distill/shard/unit_comm.h"
#include "model/forward.h"

#include <ATen/core/Tensor.h>

#include <deque>
#include <functional>

namespace mp::shard {

enum class RunKind { Frozen, Optimizer, Full };

// f(view, input): `view` holds (at least) the unit's tensors by name and the model's config.
using UnitFn = std::function<at::Tensor(const Model& view, const at::Tensor& input)>;

class UnitRunner {
 public:
  // `grads` may be null for Frozen.
  UnitRunner(const ShardLayout& layout, UnitWeights& weights, GradReduceScatter* grads, RunKind kind,
             const ModelConfig& config, at::Device device);

  // Drops what the previous micro-batch's graph needed (call before each forward).
  void begin_micro();
  // Residual stream after the last layer (before the final norm), as forward_hidden computes it;
  // `obs` sees BlockInput and FinalHidden only. `recompute` matters for Optimizer only.
  at::Tensor forward_hidden(const at::Tensor& ids_BL, const Observer* obs, bool recompute, bool keep_ssd_states);
  // The head unit (final norm, LM head) applied to `hidden` through f, which returns a scalar loss.
  at::Tensor head(const at::Tensor& hidden, const UnitFn& f);
  // Frozen: runs f with the head unit gathered (f's result is returned as is).
  at::Tensor with_head(const std::function<at::Tensor(const Model& view)>& f);

  // Internal to the autograd nodes.
  struct Call {
    int64_t unit = 0;
    UnitFn f;
    bool eager = false, values_in_backward = true;
    int64_t next_forward = -1, next_backward = -1;
    bool input_requires_grad = false;
    at::Tensor dx, dflat;  // eager: gradients for a unit output gradient of 1
  };
  at::Tensor forward_call(Call& c, const at::Tensor& in);
  std::vector<at::Tensor> backward_call(Call& c, const at::Tensor& in, const at::Tensor& grad_out);
  void tap_backward(int64_t unit, const std::vector<at::Tensor>& grads);

 private:
  at::Tensor run(int64_t u, const at::Tensor& in, UnitFn f, bool eager, bool values_in_backward,
                 int64_t next_forward, int64_t next_backward);
  void fill_view(Model& view, int64_t u, const at::Tensor& flat, bool leaves);
  at::Tensor pack(int64_t u, const std::vector<at::Tensor>& grads) const;

  const ShardLayout& layout_;
  UnitWeights& weights_;
  GradReduceScatter* grads_;
  RunKind kind_;
  Model scratch_;  // Frozen / Full: the unit being run
  Model tapped_;   // Optimizer: this micro-batch's tapped weights (the recompute nodes point here)
  std::deque<Call> calls_;
  at::Tensor anchor_;
  at::Device device_;
};

}  // namespace mp::shard
