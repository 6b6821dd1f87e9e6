// LibTorch layer over the fused RMSNorm kernels (kernels/cuda/rms_norm.cu): one autograd
// Function for the plain RMSNorm (no gate, one group) and the Mamba-2 gated, grouped one.
// Invariants: inputs are viewed as [B, L, W] (2-D as [1, T, W], more dims flattened into L);
// rows keep their strides when the kernels accept them (a gate narrowed out of the input
// projection does), else they are copied contiguous; the weight goes to the kernels as aligned
// fp32; the forward's 1 / rms per (row, group) is saved for the backward instead of the fp32 row.
#include "kernels/cuda/rms_norm.cuh"
#include "kernels/cuda_dispatch.h"
#include "kernels/cuda_torch_util.h"

#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/csrc/autograd/custom_function.h>

namespace mp {
namespace {

// t as [B, L, W] with a contiguous last dim (a view when possible).
at::Tensor as_rows(const at::Tensor& t) {
  at::Tensor r = t.stride(-1) == 1 ? t : t.contiguous();
  if (r.dim() == 3) return r;
  if (r.dim() == 2) return r.unsqueeze(0);
  return r.reshape({1, -1, r.size(-1)});
}

// Rows whose start is not 16-byte aligned (an odd narrow, an odd storage offset) go to the
// kernels as a fresh copy (clone: contiguous() would keep a contiguous tensor's odd offset).
at::Tensor kernel_rows(const at::Tensor& t) {
  at::Tensor r = as_rows(t);
  const int64_t eb = r.element_size();
  const bool ok = reinterpret_cast<uintptr_t>(r.data_ptr()) % 16 == 0 && (r.stride(0) * eb) % 16 == 0 &&
                  (r.stride(1) * eb) % 16 == 0;
  return ok ? r : r.clone(at::MemoryFormat::Contiguous);
}

// A [b, L, W] operand as MpNormArgs holds it: data pointer, batch and row strides (elements).
template <typename Ptr>
void set_rows(const at::Tensor& t, Ptr& p, int64_t& sb, int64_t& sl) {
  p = t.data_ptr();
  sb = t.stride(0);
  sl = t.stride(1);
}

MpNormArgs norm_args(const at::Tensor& x, const at::Tensor& z, const at::Tensor& w32, int64_t groups, double eps) {
  MpNormArgs a{};
  a.dtype = kernel_dtype_code(x.scalar_type());
  a.batch = (int)x.size(0);
  a.seqlen = (int)x.size(1);
  a.width = (int)x.size(2);
  a.groups = (int)groups;
  a.eps = (float)eps;
  set_rows(x, a.x, a.x_sb, a.x_sl);
  if (z.defined()) set_rows(z, a.z, a.z_sb, a.z_sl);
  a.w = w32.data_ptr<float>();
  return a;
}

// The weight as the kernels read it: fp32, contiguous, 16-byte aligned (float4 loads); a view at
// an odd offset is copied.
at::Tensor kernel_weight(const at::Tensor& weight) {
  at::Tensor w = weight.to(at::kFloat).contiguous();
  return reinterpret_cast<uintptr_t>(w.data_ptr()) % 16 == 0 ? w : w.clone();
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class RmsNormFunction : public torch::autograd::Function<RmsNormFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x_in, const at::Tensor& z_in,
                               const at::Tensor& weight, int64_t groups, double eps) {
    c10::cuda::CUDAGuard guard(x_in.device());
    const at::Tensor x = kernel_rows(x_in);
    const at::Tensor z = present(z_in).defined() ? kernel_rows(z_in) : at::Tensor();
    const at::Tensor w32 = kernel_weight(weight);
    at::Tensor out = at::empty(x.sizes(), x.options());
    at::Tensor rstd = at::empty({x.size(0) * x.size(1), groups}, x.options().dtype(at::kFloat));
    if (cuda_output_poison()) {
      out.fill_(NAN);
      rstd.fill_(NAN);
    }
    MpNormArgs a = norm_args(x, z, w32, groups, eps);
    a.rstd = rstd.data_ptr<float>();
    set_rows(out, a.out, a.out_sb, a.out_sl);
    check_cuda(mp_rms_norm_fwd(&a, c10::cuda::getCurrentCUDAStream().stream()), "RMSNorm CUDA forward");
    ctx->save_for_backward({x, z.defined() ? z : at::empty({0}, x.options()), weight, rstd});
    ctx->saved_data["sizes"] = x_in.sizes().vec();
    ctx->saved_data["groups"] = groups;
    ctx->saved_data["eps"] = eps;
    return {out.view(x_in.sizes())};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list s = ctx->get_saved_variables();
    const at::Tensor &x = s[0], z = present(s[1]), &weight = s[2], &rstd = s[3];
    c10::cuda::CUDAGuard guard(x.device());
    const int64_t groups = ctx->saved_data["groups"].toInt();
    const at::Tensor w32 = kernel_weight(weight);
    const at::Tensor dout = kernel_rows(grads[0].to(x.scalar_type()).reshape(x.sizes()));
    at::Tensor dx = at::empty(x.sizes(), x.options());
    at::Tensor dz = z.defined() ? at::empty(x.sizes(), x.options()) : at::Tensor();
    if (cuda_output_poison()) {
      dx.fill_(NAN);
      if (dz.defined()) dz.fill_(NAN);
    }
    MpNormArgs a = norm_args(x, z, w32, groups, ctx->saved_data["eps"].toDouble());
    a.rstd = rstd.data_ptr<float>();
    set_rows(dout, a.dout, a.dout_sb, a.dout_sl);
    set_rows(dx, a.dx, a.dx_sb, a.dx_sl);
    if (dz.defined()) set_rows(dz, a.dz, a.dz_sb, a.dz_sl);
    // One row of dw partial sums per block the backward launches; no blocks (no rows, or a CUDA
    // error, which the launcher then reports) leaves one row of zeros.
    const int blocks = mp_rms_norm_bwd_blocks(&a);
    const at::TensorOptions f32 = x.options().dtype(at::kFloat);
    at::Tensor partial = blocks > 0 ? at::empty({blocks, x.size(2)}, f32) : at::zeros({1, x.size(2)}, f32);
    a.dw_partial = partial.data_ptr<float>();
    check_cuda(mp_rms_norm_bwd(&a, c10::cuda::getCurrentCUDAStream().stream()), "RMSNorm CUDA backward");
    at::Tensor dw = partial.sum(0).to(weight.scalar_type()).view(weight.sizes());
    const std::vector<int64_t> sizes = ctx->saved_data["sizes"].toIntVector();
    return {dx.view(sizes), dz.defined() ? dz.view(sizes) : at::Tensor(), dw, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

bool rms_norm_cuda_supported(const at::Tensor& x, const at::Tensor& z, const at::Tensor& weight, int64_t groups) {
  if (x.dim() < 2 || kernel_dtype_code(x.scalar_type()) < 0 || weight.scalar_type() != x.scalar_type()) return false;
  if (z.defined() && (z.sizes() != x.sizes() || z.scalar_type() != x.scalar_type() || z.device() != x.device()))
    return false;
  if (weight.numel() != x.size(-1) || groups <= 0 || x.size(-1) % groups != 0) return false;
  int64_t rows = 1;
  for (int64_t d = 0; d + 1 < x.dim(); ++d) rows *= x.size(d);
  return mp_rms_norm_shape_supported(kernel_dtype_code(x.scalar_type()), rows, x.size(-1), groups) != 0;
}

at::Tensor rms_norm_cuda(const at::Tensor& x, const at::Tensor& z, const at::Tensor& weight, int64_t groups,
                         double eps) {
  return RmsNormFunction::apply(x, z.defined() ? z : at::empty({0}, x.options()), weight, groups, eps)[0];
}

}  // namespace mp
