// Launchers for the causal depthwise conv1d (+ SiLU) kernels (causal_conv1d.cu). Plain C++
// interface, no LibTorch. Layout [B, L, C] (channels innermost, stride 1), width K in 1..4:
//   u[b,t,c] = bias[c] + sum_{k<K} w[c,k] x[b, t-(K-1)+k, c]   (x = 0 before t = 0)
//   y = silu(u) if silu else u
// Backward, given dy: du = dy * silu'(u) (or dy), dx[t] = sum_k w[c,k] du[t+(K-1)-k],
//   dw[c,k] += sum_{b,t} du[t] x[t-(K-1)+k],  dbias[c] += sum_{b,t} du[t].
// Invariants: w is fp32 contiguous [C, K]; bias fp32 [C] or null; dw [C, K] and dbias [C] are
// fp32, zeroed by the caller (the kernel accumulates with atomics; dbias may be null);
// x, y, dy, dx share one dtype (MP_F32 / MP_F16 / MP_BF16, enum in ssd_scan.cuh).
#pragma once

#include "kernels/cuda/ssd_scan.cuh"

struct MpConvArgs {
  int dtype;
  int batch, seqlen, channels, width;
  const void* x;  int64_t x_sb, x_sl;
  const float* w;
  const float* bias;
  int silu;
  void* y;        int64_t y_sb, y_sl;   // forward output
  const void* dy; int64_t dy_sb, dy_sl; // backward input
  void* dx;       int64_t dx_sb, dx_sl; // backward outputs
  float* dw;
  float* dbias;
};

int mp_causal_conv1d_supported(const MpConvArgs* a);
cudaError_t mp_causal_conv1d_fwd(const MpConvArgs* a, cudaStream_t stream);
cudaError_t mp_causal_conv1d_bwd(const MpConvArgs* a, cudaStream_t stream);
