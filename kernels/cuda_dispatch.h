// The LibTorch layer over our CUDA kernels (kernels/cuda/*.cu). Compiled only when nvcc is
// there and LibTorch has CUDA (compile definition MP_WITH_CUDA_KERNELS); mp::ssd_scan,
// mp::causal_conv1d, mp::rms_norm and mp::gated_rms_norm call these for CUDA tensors. Each is a
// torch::autograd::Function:
//   - causal_conv1d_cuda: forward and backward (dx, dweight, dbias) in CUDA;
//   - ssd_scan_cuda: forward and backward in CUDA (the backward recomputes chunk states from
//     the saved inputs, or takes the forward's under SsdOptions::keep_chunk_states);
//   - rms_norm_cuda: the fused (gated) RMSNorm, forward and backward in CUDA.
#pragma once

#include "kernels/ssd_scan.h"

#include <ATen/core/Tensor.h>

#include <vector>

namespace mp {

bool ssd_scan_cuda_supported(const at::Tensor& x_BLHP, const at::Tensor& dt_BLH, const at::Tensor& B_BLGN,
                             const at::Tensor& C_BLGN);
SsdResult ssd_scan_cuda(const at::Tensor& x_BLHP, const at::Tensor& dt_BLH, const at::Tensor& A_H,
                        const at::Tensor& B_BLGN, const at::Tensor& C_BLGN, const at::Tensor& D_H,
                        const at::Tensor& dt_bias_H, const SsdOptions& opt, const at::Tensor& initial_state_BHPN,
                        bool return_final_state);

// Forward only, no autograd, with tuning overrides (0 = automatic): internal chunk, head-dim
// tile, sequence segments (1 = single pass): for benchmarks and tests. With chunk_states_out,
// the state entering every chunk is kept there for ssd_scan_cuda_backward when the chosen kernel
// can (else it is left undefined).
SsdResult ssd_scan_cuda_forward(const at::Tensor& x_BLHP, const at::Tensor& dt_BLH, const at::Tensor& A_H,
                                const at::Tensor& B_BLGN, const at::Tensor& C_BLGN, const at::Tensor& D_H,
                                const at::Tensor& dt_bias_H, const SsdOptions& opt,
                                const at::Tensor& initial_state_BHPN, int chunk = 0, int p_tile = 0,
                                int segments = 0, at::Tensor* chunk_states_out = nullptr);
// The backward's gradients {dx, ddt, dA, dB, dC, dD, ddt_bias, dinit, 4 x undefined} through
// the CUDA kernels (ssd_scan_bwd.cu), in each input's dtype; dfinal may be undefined. Empty when
// the kernels refuse the shapes. chunk: 0 = automatic, 64 or 128 for 16-bit inputs (tuning).
// chunk_states: the forward's (ssd_scan_cuda_forward's chunk_states_out) or undefined.
std::vector<at::Tensor> ssd_scan_cuda_backward(const at::Tensor& x_BLHP, const at::Tensor& dt_BLH,
                                               const at::Tensor& A_H, const at::Tensor& B_BLGN,
                                               const at::Tensor& C_BLGN, const at::Tensor& D_H,
                                               const at::Tensor& dt_bias_H, const at::Tensor& initial_state_BHPN,
                                               const SsdOptions& opt, const at::Tensor& dy_BLHP,
                                               const at::Tensor& dfinal_BHPN, int chunk = 0,
                                               const at::Tensor& chunk_states = {});
// The (chunk, p_tile, segments) the forward would use for these shapes and overrides.
void ssd_scan_cuda_plan(const at::Tensor& x_BLHP, const at::Tensor& dt_BLH, const at::Tensor& B_BLGN, int chunk,
                        int p_tile, int segments, int* out_chunk, int* out_p_tile, int* out_segments);

// Whether the SSD kernels on the current device use warpgroup products (wgmma: device code
// built for sm_90a on a Hopper card) rather than mma.sync.
bool ssd_wgmma_built();

// Testing hook: while on, every output buffer these layers allocate (y, final state, dx) is
// filled with NaN before the kernel runs, so an element the kernel forgot stays NaN.
void set_cuda_output_poison(bool on);
bool cuda_output_poison();

// The fused RMSNorm (kernels/norm_cuda.cpp): weight * norm(x * silu(z)) in `groups` slices of
// the last dim; z undefined = plain RMSNorm. Forward and backward (dx, dz, dweight) in CUDA.
bool rms_norm_cuda_supported(const at::Tensor& x, const at::Tensor& z, const at::Tensor& weight, int64_t groups);
at::Tensor rms_norm_cuda(const at::Tensor& x, const at::Tensor& z, const at::Tensor& weight, int64_t groups,
                         double eps);

bool causal_conv1d_cuda_supported(const at::Tensor& x_BLC, const at::Tensor& weight);
at::Tensor causal_conv1d_cuda(const at::Tensor& x_BLC, const at::Tensor& weight, const at::Tensor& bias_C, bool silu);

}  // namespace mp
