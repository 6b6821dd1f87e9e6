// LibTorch layer over the CUDA causal conv1d kernels (kernels/cuda/causal_conv1d.cu): forward and
// backward (dx, dweight, dbias) both in CUDA, wired as a torch::autograd::Function.
// Invariants: x keeps its strides if its channels are contiguous; weight [C,1,K] or [C,K] and bias
// go to the kernels as fp32 contiguous; dweight / dbias come back in the parameters' dtypes and shapes.
#include "kernels/cuda/causal_conv1d.cuh"
#include "kernels/cuda_dispatch.h"
#include "kernels/cuda_torch_util.h"

#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>

namespace mp {
namespace {

MpConvArgs conv_args(const at::Tensor& x, const at::Tensor& w32, const at::Tensor& b32, bool silu) {
  MpConvArgs a{};
  a.dtype = kernel_dtype_code(x.scalar_type());
  a.batch = (int)x.size(0);
  a.seqlen = (int)x.size(1);
  a.channels = (int)x.size(2);
  a.width = (int)w32.size(1);
  a.x = x.data_ptr();
  a.x_sb = x.stride(0);
  a.x_sl = x.stride(1);
  a.w = w32.data_ptr<float>();
  a.bias = b32.defined() ? b32.data_ptr<float>() : nullptr;
  a.silu = silu ? 1 : 0;
  return a;
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class CausalConv1dFunction : public torch::autograd::Function<CausalConv1dFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x_in, const at::Tensor& weight,
                               const at::Tensor& bias_in, bool silu) {
    const at::Tensor bias = present(bias_in);
    c10::cuda::CUDAGuard guard(x_in.device());
    const at::Tensor x = x_in.stride(-1) == 1 ? x_in : x_in.contiguous();
    const int64_t C = x.size(2);
    const at::Tensor w32 = weight.reshape({C, weight.size(-1)}).to(at::kFloat).contiguous();
    const at::Tensor b32 = bias.defined() ? bias.to(at::kFloat).contiguous() : bias;
    at::Tensor y = at::empty(x.sizes(), x.options());
    if (cuda_output_poison()) y.fill_(NAN);
    MpConvArgs a = conv_args(x, w32, b32, silu);
    a.y = y.data_ptr();
    a.y_sb = y.stride(0);
    a.y_sl = y.stride(1);
    check_cuda(mp_causal_conv1d_fwd(&a, c10::cuda::getCurrentCUDAStream().stream()), "causal_conv1d CUDA forward");
    ctx->save_for_backward({x, weight, bias});
    ctx->saved_data["silu"] = silu;
    return {y};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list s = ctx->get_saved_variables();
    const at::Tensor &x = s[0], &weight = s[1], bias = present(s[2]);
    c10::cuda::CUDAGuard guard(x.device());
    const int64_t C = x.size(2), K = weight.size(-1);
    const at::Tensor w32 = weight.reshape({C, K}).to(at::kFloat).contiguous();
    const at::Tensor b32 = bias.defined() ? bias.to(at::kFloat).contiguous() : bias;
    const at::Tensor dy = grads[0].to(x.scalar_type()).contiguous();
    at::Tensor dx = at::empty(x.sizes(), x.options());
    if (cuda_output_poison()) dx.fill_(NAN);
    at::Tensor dw = at::zeros({C, K}, x.options().dtype(at::kFloat));
    at::Tensor db = at::zeros({C}, x.options().dtype(at::kFloat));
    MpConvArgs a = conv_args(x, w32, b32, ctx->saved_data["silu"].toBool());
    a.dy = dy.data_ptr();
    a.dy_sb = dy.stride(0);
    a.dy_sl = dy.stride(1);
    a.dx = dx.data_ptr();
    a.dx_sb = dx.stride(0);
    a.dx_sl = dx.stride(1);
    a.dw = dw.data_ptr<float>();
    a.dbias = db.data_ptr<float>();
    check_cuda(mp_causal_conv1d_bwd(&a, c10::cuda::getCurrentCUDAStream().stream()), "causal_conv1d CUDA backward");
    at::Tensor gw = dw.reshape(weight.sizes()).to(weight.scalar_type());
    at::Tensor gb = bias.defined() ? db.to(bias.scalar_type()) : at::Tensor();
    return {dx, gw, gb, at::Tensor()};
  }
};

}  // namespace

bool causal_conv1d_cuda_supported(const at::Tensor& x, const at::Tensor& weight) {
  if (x.dim() != 3 || kernel_dtype_code(x.scalar_type()) < 0 || weight.size(-1) < 1 || weight.size(-1) > 4) return false;
  if (weight.numel() != x.size(2) * weight.size(-1)) return false;
  return x.size(0) <= 65535 && x.size(1) < (1 << 25) && x.size(2) < (1 << 30);
}

at::Tensor causal_conv1d_cuda(const at::Tensor& x_BLC, const at::Tensor& weight, const at::Tensor& bias_C, bool silu) {
  // LibTorch 2.x refuses undefined tensor arguments of a custom Function: absent bias travels empty.
  at::Tensor bias = bias_C.defined() ? bias_C : at::empty({0}, weight.options());
  return CausalConv1dFunction::apply(x_BLC, weight, bias, silu)[0];
}

}  // namespace mp
