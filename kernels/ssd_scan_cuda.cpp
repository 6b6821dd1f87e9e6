// LibTorch layer over the CUDA SSD scan forward (kernels/cuda/ssd_scan_fwd.cu).
// Invariants: inputs are made last-dim contiguous (other strides pass through); A, D, dt_bias
// go to the kernel as fp32 contiguous; y is allocated contiguous in x's dtype; the final state
// is always computed (fp32) so the Function has a fixed output list.
// Long sequences run as a segmented (two-level) scan that needs an fp32 workspace; it is taken
// from the caching allocator per call (mp_ssd_scan_fwd_workspace_bytes says how much).
// Backward: not a CUDA kernel yet. It recomputes ssd_scan_ops (the chunked LibTorch path, exact)
// on the saved inputs under autograd and differentiates it.
#include "kernels/cuda/ssd_scan.cuh"
#include "kernels/cuda_dispatch.h"
#include "kernels/cuda_torch_util.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>

namespace mp {
namespace {

at::Tensor last_contig(const at::Tensor& t) { return t.stride(-1) == 1 ? t : t.contiguous(); }
at::Tensor f32c(const at::Tensor& t) { return t.defined() ? t.to(at::kFloat).contiguous() : t; }

MpSsdFwdArgs shape_args(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& B) {
  MpSsdFwdArgs a{};
  a.dtype = kernel_dtype_code(x.scalar_type());
  a.dt_dtype = kernel_dtype_code(dt.scalar_type());
  a.batch = (int)x.size(0);
  a.seqlen = (int)x.size(1);
  a.heads = (int)x.size(2);
  a.headdim = (int)x.size(3);
  a.groups = (int)B.size(2);
  a.dstate = (int)B.size(3);
  return a;
}

bool g_poison = false;

}  // namespace

void set_cuda_output_poison(bool on) { g_poison = on; }
bool cuda_output_poison() { return g_poison; }

bool ssd_scan_cuda_supported(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& B, const at::Tensor& C) {
  if (x.dim() != 4 || dt.dim() != 3 || B.dim() != 4 || C.dim() != 4) return false;
  if (B.scalar_type() != x.scalar_type() || C.scalar_type() != x.scalar_type()) return false;
  if (x.size(0) > (1 << 30) || x.size(1) > (1 << 30)) return false;
  c10::cuda::CUDAGuard guard(x.device());
  MpSsdFwdArgs a = shape_args(x, dt, B);
  return mp_ssd_scan_fwd_supported(&a) != 0;
}

SsdResult ssd_scan_cuda_forward(const at::Tensor& x_in, const at::Tensor& dt_in, const at::Tensor& A_H,
                                const at::Tensor& B_in, const at::Tensor& C_in, const at::Tensor& D_H,
                                const at::Tensor& dt_bias_H, const SsdOptions& opt,
                                const at::Tensor& initial_state_BHPN, int chunk, int p_tile, int segments) {
  c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = last_contig(x_in), B = last_contig(B_in), C = last_contig(C_in), dt = dt_in;
  const at::Tensor A = f32c(A_H), D = f32c(D_H), bias = f32c(dt_bias_H), s0 = f32c(initial_state_BHPN);
  const int64_t b = x.size(0), L = x.size(1), H = x.size(2), P = x.size(3), N = B.size(3);
  at::Tensor y = at::empty({b, L, H, P}, x.options());
  at::Tensor fin = at::empty({b, H, P, N}, x.options().dtype(at::kFloat));
  if (g_poison) {
    y.fill_(NAN);
    fin.fill_(NAN);
  }
  MpSsdFwdArgs a = shape_args(x, dt, B);
  a.x = x.data_ptr();   a.x_sb = x.stride(0);   a.x_sl = x.stride(1);   a.x_sh = x.stride(2);
  a.dt = dt.data_ptr(); a.dt_sb = dt.stride(0); a.dt_sl = dt.stride(1); a.dt_sh = dt.stride(2);
  a.A = A.data_ptr<float>();
  a.D = D.data_ptr<float>();
  a.dt_bias = bias.defined() ? bias.data_ptr<float>() : nullptr;
  a.B = B.data_ptr();   a.B_sb = B.stride(0);   a.B_sl = B.stride(1);   a.B_sg = B.stride(2);
  a.C = C.data_ptr();   a.C_sb = C.stride(0);   a.C_sl = C.stride(1);   a.C_sg = C.stride(2);
  a.init_state = s0.defined() ? s0.data_ptr<float>() : nullptr;
  a.y = y.data_ptr();   a.y_sb = y.stride(0);   a.y_sl = y.stride(1);   a.y_sh = y.stride(2);
  a.final_state = fin.data_ptr<float>();
  a.dt_softplus = opt.dt_softplus ? 1 : 0;
  // As ssd_effective_dt: no clamp at all unless a limit is set (matters without softplus).
  const bool clamp = opt.dt_min > 0.0 || std::isfinite(opt.dt_max);
  a.dt_min = clamp ? (float)opt.dt_min : -INFINITY;
  a.dt_max = clamp && std::isfinite(opt.dt_max) ? (float)opt.dt_max : INFINITY;
  a.chunk = chunk;
  a.p_tile = p_tile;
  a.segments = segments;
  // Segmented scan: per-segment fp32 states and decays, from the caching allocator.
  const int64_t ws_bytes = mp_ssd_scan_fwd_workspace_bytes(&a);
  at::Tensor ws;
  if (ws_bytes > 0) {
    ws = at::empty({(ws_bytes + 3) / 4}, x.options().dtype(at::kFloat));
    a.workspace = ws.data_ptr<float>();
  }
  const cudaError_t err = mp_ssd_scan_fwd(&a, c10::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(err == cudaSuccess, "ssd_scan CUDA forward failed: ", cudaGetErrorString(err));
  SsdResult r;
  r.y_BLHP = y;
  r.final_state_BHPN = fin;
  return r;
}

void ssd_scan_cuda_plan(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& B, int chunk, int p_tile,
                        int segments, int* out_chunk, int* out_p_tile, int* out_segments) {
  c10::cuda::CUDAGuard guard(x.device());
  MpSsdFwdArgs a = shape_args(x, dt, B);
  a.chunk = chunk;
  a.p_tile = p_tile;
  a.segments = segments;
  mp_ssd_scan_fwd_plan(&a, out_chunk, out_p_tile, out_segments);
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class SsdScanFunction : public torch::autograd::Function<SsdScanFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& dt, const at::Tensor& A,
                               const at::Tensor& B, const at::Tensor& C, const at::Tensor& D,
                               const at::Tensor& dt_bias, const at::Tensor& s0, int64_t chunk, bool softplus,
                               double dt_min, double dt_max) {
    SsdOptions opt;
    opt.chunk_size = chunk;
    opt.dt_softplus = softplus;
    opt.dt_min = dt_min;
    opt.dt_max = dt_max;
    SsdResult r = ssd_scan_cuda_forward(x, dt, A, B, C, D, present(dt_bias), opt, present(s0));
    ctx->save_for_backward({x, dt, A, B, C, D, dt_bias, s0});
    ctx->saved_data["chunk"] = chunk;
    ctx->saved_data["softplus"] = softplus;
    ctx->saved_data["dt_min"] = dt_min;
    ctx->saved_data["dt_max"] = dt_max;
    return {r.y_BLHP, r.final_state_BHPN};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list saved = ctx->get_saved_variables();
    SsdOptions opt;
    opt.chunk_size = ctx->saved_data["chunk"].toInt();
    opt.dt_softplus = ctx->saved_data["softplus"].toBool();
    opt.dt_min = ctx->saved_data["dt_min"].toDouble();
    opt.dt_max = ctx->saved_data["dt_max"].toDouble();
    at::AutoGradMode enable(true);
    variable_list leaves(saved.size()), wrt;
    std::vector<size_t> wrt_index;
    for (size_t i = 0; i < saved.size(); ++i) {
      if (!present(saved[i]).defined()) continue;
      leaves[i] = saved[i].detach().requires_grad_(true);
      wrt.push_back(leaves[i]);
      wrt_index.push_back(i);
    }
    const bool want_final = grads.size() > 1 && grads[1].defined();
    SsdResult r = ssd_scan_ops(leaves[0], leaves[1], leaves[2], leaves[3], leaves[4], leaves[5], leaves[6], opt,
                               leaves[7], want_final);
    variable_list outs{r.y_BLHP}, gouts{grads[0].defined() ? grads[0] : at::zeros_like(r.y_BLHP)};
    if (want_final) {
      outs.push_back(r.final_state_BHPN);
      gouts.push_back(grads[1]);
    }
    variable_list g = torch::autograd::grad(outs, wrt, gouts, /*retain_graph=*/false, /*create_graph=*/false,
                                            /*allow_unused=*/true);
    variable_list result(12);
    for (size_t k = 0; k < wrt_index.size(); ++k) result[wrt_index[k]] = g[k];
    return result;
  }
};

}  // namespace

SsdResult ssd_scan_cuda(const at::Tensor& x_BLHP, const at::Tensor& dt_BLH, const at::Tensor& A_H,
                        const at::Tensor& B_BLGN, const at::Tensor& C_BLGN, const at::Tensor& D_H,
                        const at::Tensor& dt_bias_H, const SsdOptions& opt, const at::Tensor& initial_state_BHPN,
                        bool return_final_state) {
  // LibTorch 2.x records device/dtype info for every tensor argument of a custom Function and
  // refuses undefined ones, so absent optional inputs travel as empty tensors (see `present`).
  auto or_empty = [&](const at::Tensor& t) { return t.defined() ? t : at::empty({0}, A_H.options()); };
  variable_list out = SsdScanFunction::apply(x_BLHP, dt_BLH, A_H, B_BLGN, C_BLGN, D_H, or_empty(dt_bias_H),
                                             or_empty(initial_state_BHPN), opt.chunk_size, opt.dt_softplus,
                                             opt.dt_min, opt.dt_max);
  SsdResult r;
  r.y_BLHP = out[0];
  if (return_final_state) r.final_state_BHPN = out[1];
  return r;
}

}  // namespace mp
