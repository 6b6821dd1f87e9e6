// Fused, token-chunked knowledge-distillation loss on the LM head.
//
// Inputs: the student's final-normed hidden states h_s [T, d_s] and LM head W_s [V, d_s]; the
// teacher's final-normed hidden states h_t [T, d_t] and head W_t [V, d_t] (teacher widths may
// differ from the student's; the vocabulary may not); next-token targets [T] (for CE).
// Logits z = h W^T are formed `slice_tokens` rows at a time, so no [T, V] float32 softmax ever
// exists whole: per slice the loss and its gradients are computed at once and the [n, V]
// temporaries die before the next slice.
//
// Loss (means over the T tokens; p^tau = softmax(z / tau)):
//   kl     : tau^2 * KL(p_t^tau || p_s^tau) = tau^2 * sum_v p_t (log p_t - log p_s)
//   ce     : -log softmax(z_s)[target]                 (always at temperature 1)
//   kl+ce  : the sum of both, equal weights
// The tau^2 factor is Hinton et al.'s convention: it keeps the gradient's size independent of
// tau (d/dz_s of tau^2 KL = tau (p_s^tau - p_t^tau)). At tau = 1 (the paper's recipe) it is 1.
// Reported `kl` is the plain KL at temperature tau (nats/token, without tau^2); `ce` is the CE
// (computed for logging only when the loss kind is kl and targets are given).
//
// Autograd: a custom Function whose forward also computes d loss / d h_s and d loss / d W_s
// (d loss / d z_s per token, divided by T:  tau (p_s^tau - p_t^tau) for KL,
// softmax(z_s) - onehot(target) for CE; then dh = G W_s, dW = G^T h_s summed over slices) and
// saves only those two tensors; backward scales them by the incoming gradient. The teacher gets
// no gradient. Math is float32 (float64 when the inputs are float64); gradients are returned in
// the inputs' dtypes.
#pragma once

#include "distill/loss_kind.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace mp {


struct KdLossOptions {
  LossKind kind = LossKind::KL;
  double temperature = 1.0;
  int64_t slice_tokens = 1024;
};

struct KdLossResult {
  at::Tensor loss;  // scalar, differentiable w.r.t. student_normed and student_head
  double kl = 0.0;  // mean KL(p_t^tau || p_s^tau), nats/token (0 for kind ce)
  double ce = 0.0;  // mean CE at tau = 1, nats/token (0 when no targets are given)
};

// teacher_* may be undefined for kind ce; targets may be undefined for kind kl.
KdLossResult kd_loss(const at::Tensor& student_normed_Td, const at::Tensor& student_head_Vd,
                     const at::Tensor& teacher_normed_Td, const at::Tensor& teacher_head_Vd,
                     const at::Tensor& targets_T, const KdLossOptions& opt);

}  // namespace mp
