// Launchers for the Mamba-2 SSD scan kernels (ssd_scan_fwd.cu). Plain C++ interface: pointers,
// element strides, shapes and a stream; no LibTorch. Semantics are those of kernels/ssd_scan.h:
//   dt_t = clamp(softplus(dt_t + dt_bias), dt_min, dt_max)   (softplus optional)
//   S_t  = exp(dt_t A) S_{t-1} + dt_t x_t B_t^T,   y_t = S_t C_t + D x_t       (per head, S [P, N])
// Invariants the caller guarantees (mp_ssd_scan_fwd_supported checks the shape ones):
//   - the last dim of x, B, C, y is contiguous (stride 1); other strides are free (elements);
//   - A, D, dt_bias are fp32 contiguous [H]; dt_bias may be null;
//   - init_state / final_state are fp32 contiguous [B, H, P, N] or null;
//   - x, B, C, y share one dtype (MP_F32 / MP_F16 / MP_BF16); dt may have any of the three;
//   - H % G == 0, P % 16 == 0 and P <= 128, N % 16 == 0 and N <= 256.
// The kernel chooses its own internal chunk length: the chunked algorithm is exact, so the
// caller's chunk size changes results only by rounding.
#pragma once

#include <cuda_runtime_api.h>
#include <stdint.h>

enum MpDtype { MP_F32 = 0, MP_F16 = 1, MP_BF16 = 2 };

struct MpSsdFwdArgs {
  int dtype;     // x, B, C, y
  int dt_dtype;  // dt
  int batch, seqlen, heads, headdim, groups, dstate;
  const void* x;  int64_t x_sb, x_sl, x_sh;
  const void* dt; int64_t dt_sb, dt_sl, dt_sh;
  const float* A;
  const float* D;
  const float* dt_bias;
  const void* B;  int64_t B_sb, B_sl, B_sg;
  const void* C;  int64_t C_sb, C_sl, C_sg;
  const float* init_state;
  void* y;        int64_t y_sb, y_sl, y_sh;
  float* final_state;
  int dt_softplus;
  float dt_min, dt_max;
  // Tuning overrides (0 = automatic): internal chunk length (32, 64, 128) and head-dim tile
  // per thread block (16, 32, 64).
  int chunk;
  int p_tile;
  // Sequence segments scanned in parallel (two-level scan, see ssd_scan_fwd.cu): 0 = automatic,
  // 1 = single pass. With more than one segment the launcher needs `workspace`.
  int segments;
  // fp32 scratch of mp_ssd_scan_fwd_workspace_bytes(this) bytes (per-segment states and decays);
  // null when that is 0. If the chosen plan needs it and it is null, the single pass runs instead.
  float* workspace;
  // Optional, for the backward: where to store the state entering every chunk of
  // mp_ssd_scan_fwd_state_chunk(this) steps, [batch, nchunks, H, P, N] in x's dtype, 16-byte
  // aligned (MpSsdBwdArgs::states_in). Null = not stored. Non-null where that chunk is 0 fails.
  void* chunk_states;
};

// 1 when the shapes are handled (else the caller falls back to the LibTorch path).
int mp_ssd_scan_fwd_supported(const MpSsdFwdArgs* a);
// Bytes of fp32 workspace the launch needs (0 for the single pass). Depends on the shapes, the
// overrides and the current device only, so a query followed by a launch agree.
int64_t mp_ssd_scan_fwd_workspace_bytes(const MpSsdFwdArgs* a);
// The plan a launch would use: internal chunk, head-dim tile and segment count (0s if unsupported).
void mp_ssd_scan_fwd_plan(const MpSsdFwdArgs* a, int* chunk, int* p_tile, int* segments);
// The chunk length at which a launch with these arguments can store chunk_states (the
// register-fragment forward walks chunks of 64 with the state in registers and has it in x's
// dtype at each chunk start anyway), or 0 when the plan cannot (other kernels, no workspace).
int mp_ssd_scan_fwd_state_chunk(const MpSsdFwdArgs* a);
static const int kMpSsdStateChunk = 64;  // that chunk length where it is not 0
// 1 when the SSD kernels that run on the current device have warpgroup products (wgmma: built for
// sm_90a, on a Hopper card), 0 when they use mma.sync. Asked of the loaded device code (once per
// device): LibTorch's CMake decides the architectures of a build, not CMAKE_CUDA_ARCHITECTURES.
int mp_ssd_wgmma_built(void);
// Launches the forward; returns the launch error (cudaSuccess on success).
cudaError_t mp_ssd_scan_fwd(const MpSsdFwdArgs* a, cudaStream_t stream);

// ---- Backward (ssd_scan_bwd.cu) ----------------------------------------------------------------
// Per-chunk states for the backward, chunk length a->chunk (which must be one the forward takes
// as is: 32 for fp32, 64 or 128 for 16-bit). `states` is [batch, nchunks, H, P, N] in x's dtype
// (the backward's operand); `local` fp32 of the same shape and `decay` fp32 [batch, nchunks, H]
// are scratch.
//   adjoint = 0: states[c] = the state entering chunk c (edge_in = initial state or null);
//                edge_out = the final state (or null).
//   adjoint = 1: the caller passes dy as x and C as B; states[c] = the adjoint (dL/dS) of the state
//                leaving chunk c (edge_in = dL/d final state or null); edge_out = dL/d initial state.
// `vecs`: the chunk vectors of mma_chunk_vecs_launch for this launch's shape at chunk 64, or null.
// `local` and `decay` may be null when mp_ssd_chunk_states_walks(a) (the sequential pass runs).
// `dependent` (the sequential pass only; kernels/cuda/pdl.cuh): 0 = an ordinary launch; 1 = it
// may start while the stream's previous kernel ends, and waits for it before reading anything;
// 2 = the same, but that kernel writes nothing this pass reads (the other walk), so it waits only
// at its end.
int mp_ssd_chunk_states_walks(const MpSsdFwdArgs* a);
cudaError_t mp_ssd_chunk_states(const MpSsdFwdArgs* a, int adjoint, float* local, float* decay, void* states,
                                const float* edge_in, float* edge_out, const float* vecs, cudaStream_t stream,
                                int dependent = 0);

struct MpSsdBwdArgs {
  MpSsdFwdArgs f;  // the forward's inputs (f.y, f.final_state, f.segments, f.workspace unused)
  const void* dy; int64_t dy_sb, dy_sl, dy_sh;  // dL/dy, x's dtype, last dim contiguous
  const float* dfinal;                          // dL/d final state [B, H, P, N] fp32, or null
  // Outputs. dx: x's dtype [B, L, H, P] with the strides below; dB, dC: x's dtype, contiguous
  // [B, L, G, N]; ddt: fp32 contiguous [B, L, H] (gradient of the raw dt); dA, dD, ddt_bias: fp32
  // [H], ZEROED by the caller (accumulated with atomics); dinit: fp32 [B, H, P, N] or null.
  void* dx; int64_t dx_sb, dx_sl, dx_sh;
  void* dB;
  void* dC;
  float* ddt;
  float* dA;
  float* dD;
  float* ddt_bias;
  float* dinit;
  // The forward's chunk states (MpSsdFwdArgs::chunk_states, at mp_ssd_scan_fwd_state_chunk's
  // chunk), or null. Used when the backward runs at that chunk: it then skips step 1 (the walk
  // that recomputes them) and its workspace holds one state set instead of two.
  const void* states_in;
  float* workspace;  // mp_ssd_scan_bwd_workspace_bytes(this) bytes (depends on states_in)
};

// Shapes as the forward (mp_ssd_scan_fwd_supported); the chunk is the backward's own choice.
int mp_ssd_scan_bwd_supported(const MpSsdBwdArgs* a);
int64_t mp_ssd_scan_bwd_workspace_bytes(const MpSsdBwdArgs* a);
cudaError_t mp_ssd_scan_bwd(const MpSsdBwdArgs* a, cudaStream_t stream);
