// Mamba-2 SSD scan.
//
// Shapes (suffix legend): B batch, L sequence, H heads, P head dim, G groups, N state size.
//   x_BLHP, dt_BLH (raw: dt_bias added and softplus applied inside), A_H (negative, = -exp(A_log)),
//   B_BLGN, C_BLGN, D_H, dt_bias_H, optional initial state_BHPN.
// Head h reads group h / (H / G). Per head, with state S [P, N]:
//   dt_t = clamp(softplus(dt_t + dt_bias), lo, hi)
//   S_t  = exp(dt_t A) S_{t-1} + dt_t x_t B_t^T,     y_t = S_t C_t + D x_t
// ssd_scan_ops() computes this by the chunked (SSD) algorithm: within a chunk of Q steps the output
// is a masked matrix product; chunk states are passed on by the exact recurrence between chunks.
// Math is fp32 whatever the input dtype; y has x's dtype, the final state is fp32.
// The implementation is LibTorch ops, differentiable by autograd; it is the CPU path and the
// reference the CUDA kernels are checked against.
#pragma once

#include <ATen/core/Tensor.h>

#include <limits>

namespace mp {

struct SsdOptions {
  int64_t chunk_size = 128;
  bool dt_softplus = true;
  double dt_min = 0.0;  // clamp of dt after softplus (config time_step_limit)
  double dt_max = std::numeric_limits<double>::infinity();
  // Autograd on CUDA: the forward keeps the state entering every 64-step chunk (x's dtype,
  // b * ceil(L / 64) * H * P * N elements) for its backward, which then does not walk the chunks
  // again to recompute them. A faster backward for more activation memory: at the 56B mixer
  // (H 256, P 64, N 256) that is 4x the size of x. Ignored by the ops path and without autograd.
  bool keep_chunk_states = false;
};

// While one is alive on this thread, ssd_scan runs as if opt.keep_chunk_states were set. For a
// forward whose graph lives briefly, such as a block recomputed inside the backward
// (model/recompute.cpp): the kept states then cost one layer's worth of memory, not the model's.
class SsdKeepChunkStates {
 public:
  SsdKeepChunkStates();
  ~SsdKeepChunkStates();
  SsdKeepChunkStates(const SsdKeepChunkStates&) = delete;
  SsdKeepChunkStates& operator=(const SsdKeepChunkStates&) = delete;
  static bool active();

 private:
  bool prev_;
};

struct SsdResult {
  at::Tensor y_BLHP;
  at::Tensor final_state_BHPN;  // defined only when requested
};

// Dispatches: our CUDA kernels (kernels/ssd_scan_cuda.cpp) for CUDA tensors when they were
// built and handle the shapes, else ssd_scan_ops.
SsdResult ssd_scan(const at::Tensor& x_BLHP, const at::Tensor& dt_BLH, const at::Tensor& A_H,
                   const at::Tensor& B_BLGN, const at::Tensor& C_BLGN, const at::Tensor& D_H,
                   const at::Tensor& dt_bias_H, const SsdOptions& opt,
                   const at::Tensor& initial_state_BHPN = {}, bool return_final_state = false);

// The chunked algorithm in LibTorch ops on any device (differentiable by autograd).
SsdResult ssd_scan_ops(const at::Tensor& x_BLHP, const at::Tensor& dt_BLH, const at::Tensor& A_H,
                       const at::Tensor& B_BLGN, const at::Tensor& C_BLGN, const at::Tensor& D_H,
                       const at::Tensor& dt_bias_H, const SsdOptions& opt,
                       const at::Tensor& initial_state_BHPN = {}, bool return_final_state = false);

// The plain recurrence, one time step at a time, in float64: the ground truth for tests.
SsdResult ssd_scan_sequential(const at::Tensor& x_BLHP, const at::Tensor& dt_BLH, const at::Tensor& A_H,
                              const at::Tensor& B_BLGN, const at::Tensor& C_BLGN, const at::Tensor& D_H,
                              const at::Tensor& dt_bias_H, const SsdOptions& opt,
                              const at::Tensor& initial_state_BHPN = {});

// dt after bias, softplus and clamp, in fp32: shared by both paths.
at::Tensor ssd_effective_dt(const at::Tensor& dt_BLH, const at::Tensor& dt_bias_H, const SsdOptions& opt);

}  // namespace mp
