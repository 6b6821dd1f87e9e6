#include "kernels/conv_norm.h"

#ifdef MP_WITH_CUDA_KERNELS
#include "kernels/cuda_dispatch.h"
#endif

#include <ATen/ATen.h>

namespace mp {

at::Tensor causal_conv1d(const at::Tensor& x_BLC, const at::Tensor& weight, const at::Tensor& bias_C, bool silu) {
#ifdef MP_WITH_CUDA_KERNELS
  if (x_BLC.is_cuda() && causal_conv1d_cuda_supported(x_BLC, weight)) return causal_conv1d_cuda(x_BLC, weight, bias_C, silu);
#endif
  return causal_conv1d_ops(x_BLC, weight, bias_C, silu);
}

at::Tensor causal_conv1d_ops(const at::Tensor& x_BLC, const at::Tensor& weight, const at::Tensor& bias_C, bool silu) {
  const int64_t L = x_BLC.size(1), C = x_BLC.size(2);
  const int64_t K = weight.size(-1);
  at::Tensor w = weight.reshape({C, 1, K});
  at::Tensor y = at::conv1d(x_BLC.transpose(1, 2), w, bias_C, /*stride=*/{1}, /*padding=*/{K - 1},
                            /*dilation=*/{1}, /*groups=*/C);
  y = y.narrow(2, 0, L).transpose(1, 2);
  return silu ? at::silu(y) : y;
}

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
#ifdef MP_WITH_CUDA_KERNELS
  if (x.is_cuda() && rms_norm_cuda_supported(x, at::Tensor(), weight, 1)) return rms_norm_cuda(x, at::Tensor(), weight, 1, eps);
#endif
  return rms_norm_ops(x, weight, eps);
}

at::Tensor rms_norm_ops(const at::Tensor& x, const at::Tensor& weight, double eps) {
  at::Tensor xf = x.to(at::kFloat);
  at::Tensor var = xf.pow(2).mean(-1, /*keepdim=*/true);
  return weight * (xf * at::rsqrt(var + eps)).to(x.scalar_type());
}

at::Tensor gated_rms_norm(const at::Tensor& y, const at::Tensor& z, const at::Tensor& weight,
                          int64_t groups, double eps) {
#ifdef MP_WITH_CUDA_KERNELS
  if (y.is_cuda() && rms_norm_cuda_supported(y, z, weight, groups)) return rms_norm_cuda(y, z, weight, groups, eps);
#endif
  return gated_rms_norm_ops(y, z, weight, groups, eps);
}

at::Tensor gated_rms_norm_ops(const at::Tensor& y, const at::Tensor& z, const at::Tensor& weight,
                              int64_t groups, double eps) {
  at::Tensor g = y.to(at::kFloat) * at::silu(z.to(at::kFloat));
  std::vector<int64_t> grouped(g.sizes().begin(), g.sizes().end());
  const int64_t width = grouped.back();
  grouped.back() = groups;
  grouped.push_back(width / groups);
  at::Tensor gg = g.view(grouped);
  gg = gg * at::rsqrt(gg.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return weight * gg.view(g.sizes()).to(y.scalar_type());
}

}  // namespace mp
