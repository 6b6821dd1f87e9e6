// Launchers for the fused (gated, grouped) RMSNorm kernels (rms_norm.cu). Plain C++ interface,
// no LibTorch. Rows are the (b, t) pairs of a [B, L, W] layout (last dim contiguous):
//   g = x * silu(z)            (g = x when z is null)
//   r_k = 1 / sqrt(mean_{i in group k} g_i^2 + eps)       (groups equal slices of the W columns)
//   out_i = w_i * round_T(g_i r_k)                        (round_T: to the I/O dtype, as HF does)
// Backward, given dout (the rounding is treated as the identity, as autograd does):
//   dn = dout * w,  dg = r_k (dn - n * mean_{group k}(dn n)),  n = g r_k
//   dx = dg * silu(z),  dz = dg * x * sigmoid(z) (1 + z (1 - sigmoid(z)))     (dx = dg without z)
//   dw_i = sum over rows of dout_i round_T(n_i)
// Invariants (mp_rms_norm_supported checks them): x, z, out, dout, dx, dz share one dtype
// (MP_F32 / MP_F16 / MP_BF16); their rows start 16-byte aligned (data pointers aligned, row
// strides multiples of 16 bytes); W and W / groups are multiples of one 16-byte vector
// (8 elements at 16 bits, 4 at fp32), with at most 2048 vectors per row (W <= 16384 at 16 bits, 8192 at fp32).
// w is fp32 contiguous [W] (the weight's values, whatever its dtype). rstd is fp32 [B * L, groups]:
// written by the forward when non-null, read by the backward. The backward writes one row of
// fp32 dw partial sums per block into dw_partial [mp_rms_norm_bwd_blocks(), W]; the caller sums them.
#pragma once

#include "kernels/cuda/ssd_scan.cuh"  // MpDtype

struct MpNormArgs {
  int dtype;
  int batch, seqlen, width, groups;
  float eps;
  const void* x;    int64_t x_sb, x_sl;
  const void* z;    int64_t z_sb, z_sl;     // gate, or null
  const float* w;
  float* rstd;
  void* out;        int64_t out_sb, out_sl;   // forward output
  const void* dout; int64_t dout_sb, dout_sl; // backward input
  void* dx;         int64_t dx_sb, dx_sl;     // backward outputs
  void* dz;         int64_t dz_sb, dz_sl;     // (null without z)
  float* dw_partial;
};

// The shape checks alone (dtype, row count, width and groups); mp_rms_norm_supported adds the
// pointer and stride alignment.
int mp_rms_norm_shape_supported(int dtype, int64_t rows, int64_t width, int64_t groups);
int mp_rms_norm_supported(const MpNormArgs* a);
cudaError_t mp_rms_norm_fwd(const MpNormArgs* a, cudaStream_t stream);
// Blocks the backward launches (rows of dw_partial); 0 when the arguments are not supported.
int mp_rms_norm_bwd_blocks(const MpNormArgs* a);
cudaError_t mp_rms_norm_bwd(const MpNormArgs* a, cudaStream_t stream);
