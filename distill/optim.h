// AdamW with fp32 master weights, decoupled weight decay and global gradient-norm clipping.
//
// The optimizer owns one fp32 master tensor per parameter plus the first and second moments
// (m, v, fp32, same device). The model may compute in bf16: the trainer copies masters into the
// model after each step (when the model computes in fp32 the masters *are* its tensors).
// One step with gradient g (any dtype, converted to fp32), t = steps taken after this one:
//   p <- p * (1 - lr * wd)                       (decoupled decay; only where decays(name, p))
//   m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2
//   p <- p - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// which is PyTorch's torch.optim.AdamW to the operation.
// Weight decay applies to matrices (dim >= 2: embeddings, LM head, in/out/q/k/v/o/up/down
// projections, conv1d kernels) and never to 1-D tensors: RMSNorm weights (block, gated Mamba
// norm, final), conv1d bias, A_log, D and dt_bias.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace mp {

bool applies_weight_decay(const std::string& name, const at::Tensor& t);

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1;
};

class AdamW {
 public:
  // `params`: name and initial value; copied into fresh fp32 masters on the value's device.
  AdamW(const std::vector<std::pair<std::string, at::Tensor>>& params, AdamWOptions opt);

  // grads[i] belongs to names()[i]; undefined grads count as zero (the moments still decay).
  void step(const std::vector<at::Tensor>& grads, double lr);

  int64_t steps_taken() const { return steps_; }
  const std::vector<std::string>& names() const { return names_; }
  const std::vector<at::Tensor>& masters() const { return master_; }
  const AdamWOptions& options() const { return opt_; }

  // "master.NAME", "exp_avg.NAME", "exp_avg_sq.NAME" in parameter order (CPU copies).
  std::vector<std::pair<std::string, at::Tensor>> state_tensors() const;
  // Restores from state_tensors() output; bad input naming `source` and the tensor when a name
  // is missing or a shape differs.
  void load_state(const std::map<std::string, at::Tensor>& state, int64_t steps_taken, const std::string& source);

 private:
  AdamWOptions opt_;
  std::vector<std::string> names_;
  std::vector<bool> decay_;
  std::vector<at::Tensor> master_, m_, v_;
  int64_t steps_ = 0;
};

// sqrt(sum of squares) over all defined grads, accumulated in fp32 per tensor and float64 over
// tensors. NaN/inf propagate.
double global_grad_norm(const std::vector<at::Tensor>& grads);
// Scales grads in place by max_norm / (norm + 1e-6) when the norm exceeds max_norm (> 0);
// returns the norm before clipping.
double clip_grad_norm(const std::vector<at::Tensor>& grads, double max_norm);

}  // namespace mp
