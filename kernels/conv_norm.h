// The small element-wise and depthwise ops around the scan, on the model's [B, L, C] layout:
// causal depthwise conv1d (+ SiLU), RMSNorm, and the Mamba-2 gated, grouped RMSNorm.
// The *_ops forms are LibTorch ops (differentiable; the CPU path and the reference); all
// normalisation math in fp32, results cast back.
#pragma once

#include <ATen/core/Tensor.h>

namespace mp {

// y[b, t, c] = act(bias[c] + sum_k w[c, k] x[b, t - (K - 1) + k, c]), zero left padding.
// weight: [C, 1, K] (HF layout) or [C, K]; bias may be undefined.
// On CUDA tensors it runs our kernels (kernels/conv_cuda.cpp) when they were built.
at::Tensor causal_conv1d(const at::Tensor& x_BLC, const at::Tensor& weight, const at::Tensor& bias_C, bool silu);
// The same in LibTorch ops on any device (the reference).
at::Tensor causal_conv1d_ops(const at::Tensor& x_BLC, const at::Tensor& weight, const at::Tensor& bias_C, bool silu);

// y = weight * (x / sqrt(mean(x^2) + eps)), normalised over the last dim in fp32; the normalised
// value is rounded to x's dtype before the weight multiplies it (as transformers does).
// On CUDA tensors it runs our fused kernel (kernels/norm_cuda.cpp) when it was built.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);
at::Tensor rms_norm_ops(const at::Tensor& x, const at::Tensor& weight, double eps);

// g = y * silu(z); normalised separately in `groups` equal slices of the last dim; times weight.
// On CUDA tensors the fused kernel, as above.
at::Tensor gated_rms_norm(const at::Tensor& y, const at::Tensor& z, const at::Tensor& weight,
                          int64_t groups, double eps);
at::Tensor gated_rms_norm_ops(const at::Tensor& y, const at::Tensor& z, const at::Tensor& weight,
                              int64_t groups, double eps);

}  // namespace mp
