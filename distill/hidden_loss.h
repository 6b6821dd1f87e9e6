// Optional hidden-state distillation (Puzzle's cosine loss): 1 - cos(student, teacher) between
// residual streams at matched layers, averaged over matched pairs and tokens.
//
// "Output of layer k" is the residual stream after block k (0-based): BlockInput of layer k + 1,
// or FinalHidden for the last layer, both read through the forward pass's Observer hook.
// Matching by relative depth (default): every student layer k of Ls is paired with teacher layer
//   j = round((k + 1) * Lt / Ls) - 1,
// so equal depths pair layer with layer and the last layers always pair. An explicit map
// "s:t,s:t" pairs student layer output s with teacher layer output t instead.
// Cosine needs equal hidden sizes: a student with pruned embedding channels is refused.
#pragma once

#include "model/forward.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace mp {

using LayerPairs = std::vector<std::pair<int64_t, int64_t>>;  // (student layer, teacher layer)

// Usage error for malformed maps or layers out of range (naming the entry).
LayerPairs match_layers(int64_t student_layers, int64_t teacher_layers, const std::string& explicit_map);

// Collects the residual stream after every layer of one forward pass.
class ResidualRecorder {
 public:
  explicit ResidualRecorder(int64_t num_layers);
  const Observer& observer() const { return observer_; }
  const at::Tensor& after_layer(int64_t k) const;  // runtime error when not recorded
  void clear();

 private:
  std::vector<at::Tensor> after_;
  Observer observer_;
};

// mean over pairs of mean over tokens of (1 - cos(s_k, t_j)); teacher tensors carry no grad.
at::Tensor cosine_hidden_loss(const ResidualRecorder& student, const ResidualRecorder& teacher,
                              const LayerPairs& pairs);

}  // namespace mp
