// Device helpers shared by the SSD scan kernels (ssd_scan_fwd.cu, ssd_scan_bwd.cu): dtype
// conversions (from dtype_convert.cuh), the decay exp, 16x16 tile products on tensor cores (or
// exact fp32 FMA), and asynchronous row loads into shared memory. Header-only, CUDA only, no
// LibTorch.
#pragma once

#include "kernels/cuda/dtype_convert.cuh"
#include "kernels/cuda/ssd_scan.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

#include <type_traits>

namespace mp_ssd {

namespace wm = nvcuda::wmma;
constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;

using mp_cuda::from_f;
using mp_cuda::to_f;

// exp for the decay factors: exact expf for fp32 inputs; the hardware ex2 path (__expf, a few
// ulp) for 16-bit inputs, whose operands are rounded to 8 or 11 bits anyway.
template <typename T> __device__ __forceinline__ float dexp(float v) { return __expf(v); }
template <> __device__ __forceinline__ float dexp<float>(float v) { return expf(v); }

__device__ __forceinline__ float load_any(const void* p, int dtype, int64_t i) {
  if (dtype == MP_BF16) return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
  if (dtype == MP_F16) return __half2float(static_cast<const __half*>(p)[i]);
  return static_cast<const float*>(p)[i];
}

// The effective dt of a step from its raw dt + bias: softplus (if on), then the clamp.
__device__ __forceinline__ float effective_dt(const MpSsdFwdArgs& a, float raw) {
  const float d = a.dt_softplus ? (raw > 20.f ? raw : log1pf(expf(raw))) : raw;
  return fminf(fmaxf(d, a.dt_min), a.dt_max);
}

// One whole warp: the sum of v over the lanes below this one (an exclusive scan).
__device__ __forceinline__ float warp_exclusive_sum(float v) {
  float incl = v;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const float n = __shfl_up_sync(0xffffffffu, incl, o);
    if ((threadIdx.x & 31) >= o) incl += n;
  }
  return incl - v;
}

// One whole warp, for the chunk's rows t0 .. t0 + Q - 1 of (b, h): dtv = the effective dt (bias,
// softplus, clamp; 0 past L), acs = the inclusive sum of dt*A within the chunk and, if `pre` is
// non-null, dt + bias before softplus/clamp (for the chain rule). Q = 32 * E rows.
template <int Q>
__device__ void chunk_dt(const MpSsdFwdArgs& a, int b, int h, int t0, float Ah, float bias, float* dtv, float* acs,
                         float* pre) {
  constexpr int E = Q / 32;
  const int lane = threadIdx.x & 31;
  float v[E], run = 0.f;
#pragma unroll
  for (int e = 0; e < E; ++e) {
    const int l = lane * E + e, t = t0 + l;
    float d = 0.f, raw = 0.f;
    if (t < a.seqlen) {
      raw = load_any(a.dt, a.dt_dtype, b * a.dt_sb + (int64_t)t * a.dt_sl + h * a.dt_sh) + bias;
      d = effective_dt(a, raw);
    }
    dtv[l] = d;
    if (pre) pre[l] = raw;
    run += d * Ah;
    v[e] = run;
  }
  const float excl = warp_exclusive_sum(run);
#pragma unroll
  for (int e = 0; e < E; ++e) acs[lane * E + e] = v[e] + excl;
}

// The forward kernels' grid: block index -> (head-dim tile, head, batch, segment), tile fastest.
struct FwdBlock {
  int pt, h, b, seg;
};
__device__ __forceinline__ FwdBlock fwd_block(int ptiles, int H, int batch, int bid) {
  FwdBlock r;
  r.pt = bid % ptiles;
  bid /= ptiles;
  r.h = bid % H;
  bid /= H;
  r.b = bid % batch;
  r.seg = bid / batch;
  return r;
}
__device__ __forceinline__ FwdBlock fwd_block(int ptiles, int H, int batch) { return fwd_block(ptiles, H, batch, blockIdx.x); }

// A forward block's slices of the inputs and output: x, y at head h and head-dim column p0,
// B, C at group g, and the offset of its [P, N] state in the per-segment state arrays.
template <typename T>
struct FwdView {
  const T* x;
  const T* B;
  const T* C;
  T* y;
  int64_t state_off;
};
template <typename T>
__device__ __forceinline__ FwdView<T> fwd_view(const MpSsdFwdArgs& a, const FwdBlock& k, int g, int p0, int nseg) {
  FwdView<T> v;
  v.x = static_cast<const T*>(a.x) + k.b * a.x_sb + k.h * a.x_sh + p0;
  v.B = static_cast<const T*>(a.B) + k.b * a.B_sb + g * a.B_sg;
  v.C = static_cast<const T*>(a.C) + k.b * a.C_sb + g * a.C_sg;
  v.y = static_cast<T*>(a.y) + k.b * a.y_sb + k.h * a.y_sh + p0;
  v.state_off = ((int64_t)((k.b * nseg + k.seg) * a.heads + k.h) * a.headdim + p0) * a.dstate;
  return v;
}

// ---- Host helpers of the launchers.
// An attribute of the current device (0 when it cannot be read).
inline int device_attr(cudaDeviceAttr attr) {
  int dev = 0, v = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return 0;
  if (cudaDeviceGetAttribute(&v, attr, dev) != cudaSuccess) return 0;
  return v;
}
inline int max_smem_optin() { return device_attr(cudaDevAttrMaxSharedMemoryPerBlockOptin); }
inline int esize_of(int dtype) { return dtype == MP_F32 ? 4 : 2; }
inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

// ---- 16x16 tile products: acc (16x16 fp32) += A (16 x K) * B (K x 16), operands in shared memory.
// Layout tags: Row = element (r, k) at p[r * ld + k]; Col = element (r, k) at p[k * ld + r].
struct Row {};
struct Col {};

template <typename T>
struct TileOps {  // tensor cores (T = __half or __nv_bfloat16)
  using Acc = wm::fragment<wm::accumulator, 16, 16, 16, float>;
  template <typename L> using WL = typename std::conditional<std::is_same<L, Row>::value, wm::row_major, wm::col_major>::type;
  __device__ static void zero(Acc& c) { wm::fill_fragment(c, 0.0f); }
  __device__ static void scale(Acc& c, float s) {
#pragma unroll
    for (int i = 0; i < c.num_elements; ++i) c.x[i] *= s;
  }
  __device__ static void store(float* p, int ld, const Acc& c) { wm::store_matrix_sync(p, c, ld, wm::mem_row_major); }
  __device__ static void load(Acc& c, const float* p, int ld) { wm::load_matrix_sync(c, p, ld, wm::mem_row_major); }
  // A is M x K (16 rows), B is K x N (16 columns); offsets of the k-th slab depend on layout.
  template <typename LA, typename LB>
  __device__ static void mma(Acc& c, const T* a, int lda, const T* b, int ldb, int K) {
    wm::fragment<wm::matrix_a, 16, 16, 16, T, WL<LA>> fa;
    wm::fragment<wm::matrix_b, 16, 16, 16, T, WL<LB>> fb;
    for (int k = 0; k < K; k += 16) {
      wm::load_matrix_sync(fa, a + (std::is_same<LA, Row>::value ? k : k * lda), lda);
      wm::load_matrix_sync(fb, b + (std::is_same<LB, Row>::value ? k * ldb : k), ldb);
      wm::mma_sync(c, fa, fb, c);
    }
  }
};

template <>
struct TileOps<float> {  // exact fp32: lane owns row lane/2, columns (lane%2)*8 .. +8
  struct Acc { float x[8]; };
  __device__ static void zero(Acc& c) {
#pragma unroll
    for (int j = 0; j < 8; ++j) c.x[j] = 0.f;
  }
  __device__ static void scale(Acc& c, float s) {
#pragma unroll
    for (int j = 0; j < 8; ++j) c.x[j] *= s;
  }
  __device__ static void store(float* p, int ld, const Acc& c) {
    const int lane = threadIdx.x & 31, r = lane >> 1, c0 = (lane & 1) * 8;
#pragma unroll
    for (int j = 0; j < 8; ++j) p[r * ld + c0 + j] = c.x[j];
    __syncwarp();
  }
  __device__ static void load(Acc& c, const float* p, int ld) {
    const int lane = threadIdx.x & 31, r = lane >> 1, c0 = (lane & 1) * 8;
#pragma unroll
    for (int j = 0; j < 8; ++j) c.x[j] = p[r * ld + c0 + j];
  }
  template <typename LA, typename LB>
  __device__ static void mma(Acc& c, const float* a, int lda, const float* b, int ldb, int K) {
    const int lane = threadIdx.x & 31, r = lane >> 1, c0 = (lane & 1) * 8;
    for (int k = 0; k < K; ++k) {
      const float av = std::is_same<LA, Row>::value ? a[r * lda + k] : a[k * lda + r];
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const float bv = std::is_same<LB, Row>::value ? b[k * ldb + c0 + j] : b[(c0 + j) * ldb + k];
        c.x[j] = fmaf(av, bv, c.x[j]);
      }
    }
  }
};

__host__ __device__ inline int align128(int v) { return (v + 127) & ~127; }

__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
  const int n = valid ? 16 : 0;  // 0: nothing read, 16 zero bytes written
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(n) : "memory");
}
// The same copy without the source-size operand, for pieces known to be in range: no select of
// the source address and no predicate register per piece.
__device__ __forceinline__ void cp_async16(void* dst, const void* src) {
  const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(d), "l"(src) : "memory");
}
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_all;\n" ::: "memory"); }

// Copies rows [t0, t0 + Q) x cols [0, ncols) of a strided [L, ncols] slab into shared memory
// (leading dim ld), zero-filling rows at or past L. With `vec`: asynchronous 16-byte copies
// (all in flight at once; the caller waits with cp_async_wait_all + __syncthreads).
template <typename T>
__device__ void load_rows(T* dst, int ld, const T* src, int64_t row_stride, int t0, int Q, int L, int ncols, bool vec) {
  if (vec) {
    constexpr int V = 16 / sizeof(T);
    const int nv = ncols / V;
    if (kThreads % nv == 0) {
      // Each thread keeps one 16-byte column and steps over rows: no integer division per copy
      // (these loops run per chunk and per head; a division is ~20 instructions).
      const int c = (threadIdx.x % nv) * V, step = kThreads / nv;
      int r = threadIdx.x / nv;
      const T* p = src + (int64_t)(t0 + r) * row_stride + c;
      for (; r < Q; r += step, p += step * row_stride) {
        const bool ok = t0 + r < L;
        cp_async16(dst + r * ld + c, ok ? p : src, ok);
      }
      return;
    }
    for (int i = threadIdx.x; i < Q * nv; i += kThreads) {
      const int r = i / nv, c = (i - r * nv) * V;
      const bool ok = t0 + r < L;
      cp_async16(dst + r * ld + c, ok ? src + (int64_t)(t0 + r) * row_stride + c : src, ok);
    }
  } else {
    for (int i = threadIdx.x; i < Q * ncols; i += kThreads) {
      const int r = i / ncols, c = i - r * ncols;
      dst[r * ld + c] = (t0 + r < L) ? src[(int64_t)(t0 + r) * row_stride + c] : from_f<T>(0.f);
    }
  }
}

// load_rows for a compile-time ROWS x COLS tile (16-byte aligned rows): rows [0, ROWS) of src
// (row stride row_stride) into dst (leading dim ld), rows at or past `valid` zero-filled. Every
// thread copies ROWS * COLS / (8 * kThreads) fixed 16-byte pieces (one column, rows a constant
// step apart), fully unrolled: a few instructions per piece. The loops over a group's heads in
// the backward issue ~12 pieces per thread per head; the generic load_rows spent ~20% of the
// dB/dC kernel's instructions on them. load_tile_by: the same copy by THREADS threads of the
// block, tid (0 .. THREADS - 1) being this one's index among them; load_tile: the whole block.
template <typename T, int ROWS, int COLS, int THREADS, typename Index>
__device__ __forceinline__ void load_tile_by(T* dst, int ld, const T* src, int64_t row_stride, int valid, Index tid) {
  constexpr int V = 16 / sizeof(T), NV = COLS / V, STEP = THREADS / NV;
  static_assert(COLS % V == 0 && THREADS % NV == 0 && ROWS % STEP == 0, "load_tile: shape");
  const int c = (tid % NV) * V, r0 = tid / NV;
  const T* p = src + r0 * row_stride + c;
  const int64_t step = STEP * row_stride;
  if (valid >= ROWS) {  // every chunk but a partial last one
#pragma unroll
    for (int i = 0; i < ROWS / STEP; ++i) cp_async16(dst + (r0 + i * STEP) * ld + c, p + i * step);
    return;
  }
#pragma unroll
  for (int i = 0; i < ROWS / STEP; ++i) {
    const int r = r0 + i * STEP;
    cp_async16(dst + r * ld + c, r < valid ? p + i * step : src, r < valid);
  }
}
template <typename T, int ROWS, int COLS>
__device__ __forceinline__ void load_tile(T* dst, int ld, const T* src, int64_t row_stride, int valid) {
  load_tile_by<T, ROWS, COLS, kThreads>(dst, ld, src, row_stride, valid, threadIdx.x);
}

// load_rows of chunk rows [t0, t0 + Q) through load_tile where the width is a compile-time
// COLS (> 0) and the copies can be 16-byte (vec).
template <typename T, int Q, int COLS>
__device__ __forceinline__ void load_chunk(T* dst, int ld, const T* src, int64_t row_stride, int t0, int L, int ncols,
                                           bool vec) {
  if constexpr (COLS > 0) {
    if (vec) {
      load_tile<T, Q, COLS>(dst, ld, src + (int64_t)t0 * row_stride, row_stride, min(Q, L - t0));
      return;
    }
  }
  load_rows<T>(dst, ld, src, row_stride, t0, Q, L, ncols, vec);
}

// Segmented (two-level) scan. The chunks are split into nseg segments of seg_chunks chunks;
// a block handles one (b, h, p-tile, segment). Single pass: nseg = 1, init/fin = the caller's
// initial/final state. Pass 1 (the state-only kernels): from a zero state, the segment's local
// end state (-> fin) and its total decay exp(sum dt A) (-> decay). Pass 2 (ssd_seg_combine) turns the
// local states into entering states in place. Pass 3: the full kernel from init = entering states.
struct Seg {
  int nseg, seg_chunks;
  const float* init;  // [b, nseg, H, P, N] state entering each segment; null = zero
  float* fin;         // [b, nseg, H, P, N] state leaving each segment; null = not written
  float* decay;       // [b, nseg, H] (kStateOnly only); null = not written
  // kStateOnly only: the backward's adjoint chunk states (ssd_scan_bwd.cu). The caller passes
  // dy as x and C as B, and each row is weighted by exp(Acs_l) instead of dt_s exp(Acs_end - Acs_s),
  // so the pass yields sum_l exp(Acs_l) dy_l^T C_l, the chunk's own part of the adjoint entering it.
  bool adjoint;
  // The mma state-only kernel with one segment only: the backward's sequential state pass. The
  // block walks every chunk (in reverse when `reverse`) and stores the state it carries into a
  // chunk, before the chunk's update, in the input dtype at chunk_states [b, nchunks, H, P, N]:
  // the entering states, or for the adjoint walk the adjoints leaving each chunk. No combine then.
  void* chunk_states;
  bool reverse;
  // The mma forward's full passes, both from mma_scores_launch: C B^T per (b, chunk, group),
  // and dt, Acs, exp(Acs), dt_s exp(Acs_end - Acs_s) per (b, chunk, head), [4][Q] fp32. The
  // vectors also serve the mma state-only kernel where given (else it computes its own).
  const void* scores;
  const float* chunk_vecs;
  // The mma state-only kernel launched as a programmatic dependent (pdl.cuh) of a kernel whose
  // output it does not read (the backward's adjoint walk after the entering-state walk): it waits
  // for that kernel at its end instead of its start, so the two walks overlap.
  bool wait_late = false;
};

using KernFn = void (*)(MpSsdFwdArgs, bool, Seg);

// The register-fragment forward (ssd_scan_fwd_mma.cu): 16-bit inputs, internal chunk 64,
// head-dim tiles of 64, N a multiple of 32 up to 256. Null when the shape is not one of those.
// state_only: the state-only kernel of the same file (Seg's pass 1, adjoint mode, the walk), unsplit.
KernFn mma_fwd_kernel(const MpSsdFwdArgs* a, bool state_only = false);
int mma_fwd_smem_bytes(const MpSsdFwdArgs* a, bool state_only = false);
// The full passes of that forward read the chunk scores C B^T, computed once per (b, chunk,
// group), and the per-row dt vectors of each (b, chunk, head), both by mma_scores_launch into
// `scores` (mma_scores_bytes, 16-byte aligned) beforehand; *vecs -> where the vectors start.
int64_t mma_scores_bytes(const MpSsdFwdArgs* a);
cudaError_t mma_scores_launch(const MpSsdFwdArgs* a, bool vec, void* scores, cudaStream_t stream, const float** vecs);
// The per-row vectors alone ([b, chunk, H, 4, kMmaQ] fp32: dt, Acs, exp(Acs), dt_s exp(Acs_end -
// Acs_s)), for the backward's dB/dC kernel.
int64_t mma_chunk_vecs_bytes(const MpSsdFwdArgs* a);
cudaError_t mma_chunk_vecs_launch(const MpSsdFwdArgs* a, float* vecs, cudaStream_t stream);
// The state-only kernel with the state's N columns split over `split` blocks (1 or 2; grid =
// split x the unsplit one, split fastest). Null when the shape does not allow that split.
KernFn mma_state_kernel(const MpSsdFwdArgs* a, int split);
int mma_state_smem_bytes(const MpSsdFwdArgs* a, int split);
constexpr int kMmaQ = 64, kMmaPT = 64;

}  // namespace mp_ssd
