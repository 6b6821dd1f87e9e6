// The student of an unsharded run (`--shard none`) as the optimizer sees it: fp32 masters inside
// AdamW, and the model the forward pass reads in the compute dtype. In fp32 the model's tensors
// are the masters themselves (no copy).
#pragma once

#include "distill/optim.h"
#include "model/model.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace mp {

struct WholeStudent {
  Model model;
  std::unique_ptr<AdamW> opt;
  bool shares_masters = false;

  // Masters from `base` on `dev`; the model in `dt` from them.
  void bind(const Model& base, at::Device dev, at::ScalarType dt, const AdamWOptions& ao);
  // (Re)creates the model tensors from the masters (after a resume restored them).
  void rebind(at::ScalarType dt);
  std::vector<at::Tensor> weights() const;  // parameter order
  std::vector<at::Tensor> grads() const;    // parameter order; zeros for a weight without one
  // After AdamW stepped: clears the gradients and copies the masters into the model.
  void after_step();
  // Weights (when not the masters), masters, moments and a whole gradient in the compute dtype.
  int64_t held_bytes() const;
  Model detached() const;
};

}  // namespace mp
