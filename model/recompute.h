// Activation recomputation per layer: a block's forward runs without keeping its intermediates
// (only its input is saved), and the backward runs the block again, with grad, to get them back.
// Memory for activations drops from every intermediate of every layer to one [B, L, d] tensor a
// layer plus one layer's intermediates at a time; the cost is a second forward of each block
// (about a third more compute for a training step).
//
// Invariant: values and gradients equal the plain block_forward's (the same ops run twice on the
// same inputs; there is nothing random in a block). Observers are not supported (what they would
// see during the recomputation has no grad), so callers refuse the combination.
#pragma once

#include "model/model.h"

#include <ATen/core/Tensor.h>

namespace mp {

// h + mixer_i(RMSNorm_i(h)) as block_forward computes it, recomputed in the backward pass.
at::Tensor block_forward_recomputed(const Model& m, int64_t layer, const at::Tensor& h_BLD);

}  // namespace mp
