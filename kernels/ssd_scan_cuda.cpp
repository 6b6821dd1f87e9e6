// LibTorch layer over the CUDA SSD scan forward (kernels/cuda/ssd_scan_fwd.cu).
// Invariants: inputs are made last-dim contiguous (other strides pass through); A, D, dt_bias
// go to the kernel as fp32 contiguous; y is allocated contiguous in x's dtype; the final state
// is always computed (fp32) so the Function has a fixed output list.
// Long sequences run as a segmented (two-level) scan that needs an fp32 workspace; it is taken
// from the caching allocator per call (mp_ssd_scan_fwd_workspace_bytes says how much).
// Backward: the CUDA kernels of ssd_scan_bwd.cu (chunk states recomputed from the saved inputs,
// or, under SsdOptions::keep_chunk_states, the forward's kept in x's dtype). Shapes those
// kernels refuse (not expected for the supported forward shapes) fall back to differentiating
// ssd_scan_ops on the saved inputs.
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

// The forward's inputs as kernel arguments (the tensors must outlive the launch): x, B, C
// last-dim contiguous; A, D, bias, s0 fp32 contiguous (bias, s0 may be undefined).
MpSsdFwdArgs input_args(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& A, const at::Tensor& B,
                        const at::Tensor& C, const at::Tensor& D, const at::Tensor& bias, const at::Tensor& s0,
                        const SsdOptions& opt) {
  MpSsdFwdArgs a = shape_args(x, dt, B);
  a.x = x.data_ptr();   a.x_sb = x.stride(0);   a.x_sl = x.stride(1);   a.x_sh = x.stride(2);
  a.dt = dt.data_ptr(); a.dt_sb = dt.stride(0); a.dt_sl = dt.stride(1); a.dt_sh = dt.stride(2);
  a.A = A.data_ptr<float>();
  a.D = D.data_ptr<float>();
  a.dt_bias = bias.defined() ? bias.data_ptr<float>() : nullptr;
  a.B = B.data_ptr();   a.B_sb = B.stride(0);   a.B_sl = B.stride(1);   a.B_sg = B.stride(2);
  a.C = C.data_ptr();   a.C_sb = C.stride(0);   a.C_sl = C.stride(1);   a.C_sg = C.stride(2);
  a.init_state = s0.defined() ? s0.data_ptr<float>() : nullptr;
  a.dt_softplus = opt.dt_softplus ? 1 : 0;
  // As ssd_effective_dt: no clamp at all unless a limit is set (matters without softplus).
  const bool clamp = opt.dt_min > 0.0 || std::isfinite(opt.dt_max);
  a.dt_min = clamp ? (float)opt.dt_min : -INFINITY;
  a.dt_max = clamp && std::isfinite(opt.dt_max) ? (float)opt.dt_max : INFINITY;
  return a;
}

bool g_poison = false;

}  // namespace

void set_cuda_output_poison(bool on) { g_poison = on; }
bool cuda_output_poison() { return g_poison; }
bool ssd_wgmma_built() { return mp_ssd_wgmma_built() != 0; }

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
                                const at::Tensor& initial_state_BHPN, int chunk, int p_tile, int segments,
                                at::Tensor* chunk_states_out) {
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
  MpSsdFwdArgs a = input_args(x, dt, A, B, C, D, bias, s0, opt);
  a.y = y.data_ptr();   a.y_sb = y.stride(0);   a.y_sl = y.stride(1);   a.y_sh = y.stride(2);
  a.final_state = fin.data_ptr<float>();
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
  at::Tensor states;
  const int sq = chunk_states_out ? mp_ssd_scan_fwd_state_chunk(&a) : 0;
  if (sq > 0) {
    states = at::empty({b, (L + sq - 1) / sq, H, P, N}, x.options());
    if (g_poison) states.fill_(NAN);
    a.chunk_states = states.data_ptr();
  }
  check_cuda(mp_ssd_scan_fwd(&a, c10::cuda::getCurrentCUDAStream().stream()), "ssd_scan CUDA forward failed");
  SsdResult r;
  r.y_BLHP = y;
  r.final_state_BHPN = fin;
  if (chunk_states_out) *chunk_states_out = states;
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

std::vector<at::Tensor> ssd_scan_cuda_backward(const at::Tensor& x_in, const at::Tensor& dt, const at::Tensor& A_H,
                                               const at::Tensor& B_in, const at::Tensor& C_in, const at::Tensor& D_H,
                                               const at::Tensor& dt_bias_H, const at::Tensor& s0_in,
                                               const SsdOptions& opt, const at::Tensor& dy_in,
                                               const at::Tensor& dfinal_in, int chunk, const at::Tensor& chunk_states) {
  c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = last_contig(x_in), B = last_contig(B_in), C = last_contig(C_in);
  const at::Tensor dy = last_contig(dy_in.to(x.scalar_type()));
  const at::Tensor A = f32c(A_H), D = f32c(D_H), bias = f32c(dt_bias_H), s0 = f32c(s0_in), dfin = f32c(dfinal_in);
  MpSsdBwdArgs a{};
  MpSsdFwdArgs& f = a.f;
  f = input_args(x, dt, A, B, C, D, bias, s0, opt);
  f.chunk = chunk;
  if (!mp_ssd_scan_bwd_supported(&a)) return {};
  if (chunk_states.defined()) {
    const int64_t nch = (x.size(1) + kMpSsdStateChunk - 1) / kMpSsdStateChunk;
    TORCH_CHECK(chunk_states.scalar_type() == x.scalar_type() && chunk_states.is_contiguous() &&
                    chunk_states.sizes() == at::IntArrayRef({x.size(0), nch, x.size(2), x.size(3), B.size(3)}),
                "ssd_scan CUDA backward: chunk states ", chunk_states.sizes(), " ", chunk_states.scalar_type(),
                " do not match the forward's inputs");
    a.states_in = chunk_states.data_ptr();
  }

  const int64_t b = x.size(0), L = x.size(1), H = x.size(2), P = x.size(3), G = B.size(2), N = B.size(3);
  at::Tensor dx = at::empty({b, L, H, P}, x.options());
  at::Tensor dB = at::empty({b, L, G, N}, x.options()), dC = at::empty({b, L, G, N}, x.options());
  at::Tensor ddt = at::empty({b, L, H}, x.options().dtype(at::kFloat));
  at::Tensor sums = at::zeros({3, H}, x.options().dtype(at::kFloat));  // dA, dD, ddt_bias
  at::Tensor dinit = s0.defined() ? at::empty({b, H, P, N}, x.options().dtype(at::kFloat)) : at::Tensor();
  if (g_poison) {
    for (at::Tensor* t : {&dx, &dB, &dC, &ddt}) t->fill_(NAN);
    if (dinit.defined()) dinit.fill_(NAN);
  }
  a.dy = dy.data_ptr(); a.dy_sb = dy.stride(0); a.dy_sl = dy.stride(1); a.dy_sh = dy.stride(2);
  a.dfinal = dfin.defined() ? dfin.data_ptr<float>() : nullptr;
  a.dx = dx.data_ptr(); a.dx_sb = dx.stride(0); a.dx_sl = dx.stride(1); a.dx_sh = dx.stride(2);
  a.dB = dB.data_ptr();
  a.dC = dC.data_ptr();
  a.ddt = ddt.data_ptr<float>();
  a.dA = sums[0].data_ptr<float>();
  a.dD = sums[1].data_ptr<float>();
  a.ddt_bias = bias.defined() ? sums[2].data_ptr<float>() : nullptr;
  a.dinit = dinit.defined() ? dinit.data_ptr<float>() : nullptr;
  at::Tensor ws = at::empty({(mp_ssd_scan_bwd_workspace_bytes(&a) + 3) / 4}, x.options().dtype(at::kFloat));
  a.workspace = ws.data_ptr<float>();
  check_cuda(mp_ssd_scan_bwd(&a, c10::cuda::getCurrentCUDAStream().stream()), "ssd_scan CUDA backward failed");
  // Gradients in each input's own dtype; absent optional inputs get none.
  return {dx,
          ddt.to(dt.scalar_type()),
          sums[0].to(A_H.scalar_type()),
          dB,
          dC,
          sums[1].to(D_H.scalar_type()),
          dt_bias_H.defined() ? sums[2].to(dt_bias_H.scalar_type()) : at::Tensor(),
          s0_in.defined() ? dinit.to(s0_in.scalar_type()) : at::Tensor(),
          at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class SsdScanFunction : public torch::autograd::Function<SsdScanFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& dt, const at::Tensor& A,
                               const at::Tensor& B, const at::Tensor& C, const at::Tensor& D,
                               const at::Tensor& dt_bias, const at::Tensor& s0, int64_t chunk, bool softplus,
                               double dt_min, double dt_max, bool keep_states) {
    SsdOptions opt;
    opt.chunk_size = chunk;
    opt.dt_softplus = softplus;
    opt.dt_min = dt_min;
    opt.dt_max = dt_max;
    at::Tensor states;
    SsdResult r = ssd_scan_cuda_forward(x, dt, A, B, C, D, present(dt_bias), opt, present(s0), 0, 0, 0,
                                        keep_states ? &states : nullptr);
    // Saved last, as an empty tensor when not kept (see `present`).
    ctx->save_for_backward({x, dt, A, B, C, D, dt_bias, s0, states.defined() ? states : at::empty({0}, x.options())});
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
    const at::Tensor dy = grads[0].defined() ? grads[0] : at::zeros_like(saved[0]);
    const at::Tensor dfin = grads.size() > 1 ? grads[1] : at::Tensor();
    variable_list k = ssd_scan_cuda_backward(saved[0], saved[1], saved[2], saved[3], saved[4], saved[5],
                                             present(saved[6]), present(saved[7]), opt, dy, dfin, 0, present(saved[8]));
    if (!k.empty()) {
      k.push_back(at::Tensor());  // keep_states
      return k;
    }
    saved.pop_back();  // the kept states, which the ops path does not use
    variable_list g = ops_backward(saved, grads, opt);
    g.push_back(at::Tensor());
    return g;
  }

  // Fallback: autograd through the chunked ops path on the saved inputs.
  static variable_list ops_backward(const variable_list& saved, const variable_list& grads, const SsdOptions& opt) {
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
  // States are kept only where a backward will run.
  bool any_grad = false;
  for (const at::Tensor* t : {&x_BLHP, &dt_BLH, &A_H, &B_BLGN, &C_BLGN, &D_H, &dt_bias_H, &initial_state_BHPN})
    any_grad = any_grad || (t->defined() && t->requires_grad());
  const bool keep = (opt.keep_chunk_states || SsdKeepChunkStates::active()) && at::GradMode::is_enabled() && any_grad;
  variable_list out = SsdScanFunction::apply(x_BLHP, dt_BLH, A_H, B_BLGN, C_BLGN, D_H, or_empty(dt_bias_H),
                                             or_empty(initial_state_BHPN), opt.chunk_size, opt.dt_softplus,
                                             opt.dt_min, opt.dt_max, keep);
  SsdResult r;
  r.y_BLHP = out[0];
  if (return_final_state) r.final_state_BHPN = out[1];
  return r;
}

}  // namespace mp
