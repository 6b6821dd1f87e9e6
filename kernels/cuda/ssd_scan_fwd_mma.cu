// Mamba-2 SSD scan forward for 16-bit inputs on tensor-core fragments held in registers: mma.sync,
// and at N = 64, 128, 256 warpgroup products (wgmma.cuh) for C S^T and the state update.
//
// Same math and block walk as ssd_fwd_kernel (ssd_scan_fwd.cu): one block per (b, h, 64-wide
// head-dim tile, segment) walks its chunks of Q = 64 steps in order, the state S [64, N] lives in
// fp32 registers and a copy in the input dtype in shared memory is the operand of C S^T. The
// difference is how the products are done: PTX mma.sync m16n8k16 with ldmatrix operand loads
// (or, for the two large products where the device code has them, wgmma reading shared memory
// directly, with accumulators in the same per-warp layout), and every elementwise step (decay,
// causal mask, dt, exp(Acs) row scaling, D x) applied to the accumulator registers directly,
// whose layout the PTX ISA fixes. Nothing is staged through
// shared memory between products; W = mask(C B^T) * exp(Acs_l - Acs_s) * dt_s is built in
// registers 16 columns at a time and fed straight back as the A operand of W X.
//
// The scores C B^T do not depend on the head: ssd_scores_kernel computes them once per (b, chunk,
// group), in the A-fragment order the forward reads back with one 16-byte load per lane, instead
// of once per head (32 times at Nemotron-H's 8 groups of 256 heads). That was 22% of the
// forward's products and most of its barriers. The same kernel writes each head's per-row
// vectors (dt, Acs, exp(Acs), fw; chunk_vecs), which the forward loads with its other operands,
// so no warp computes dt while the others wait.
//
// Warp roles (8 warps): for y, warp w owns chunk rows 16 (w % 4) .. +16 and head-dim columns
// 32 (w / 4) .. +32; for the state, rows 16 (w % 4) .. +16 of the 64 head-dim rows and columns
// (N/2) (w / 4) .. +N/2 of the state. Fragment layouts: mma_frag.cuh.
#include "kernels/cuda/mma_frag.cuh"
#include "kernels/cuda/pdl.cuh"
#include "kernels/cuda/ssd_common.cuh"
#include "kernels/cuda/wgmma.cuh"

namespace {

using namespace mp_ssd;

// The scores of one (b, chunk, group): the 10 lower-triangle 16x16 tiles (i, j), j <= i, of
// C B^T, tile (i, j) at index i (i + 1) / 2 + j; each tile is 32 lanes x 8 bf16 values, lane l's
// A-operand registers a0..a3 of that tile (mma_frag.cuh), so a warp reads a tile as one 16-byte
// load per lane. bf16 whatever the input dtype: the range of fp32 for sums over N, and W is
// rounded to 16 bits as an operand anyway.
constexpr int kScoreTiles = (kMmaQ / 16) * (kMmaQ / 16 + 1) / 2;
constexpr int kScoreBytes = kScoreTiles * 32 * 16;  // 5,120 per (b, chunk, group)

// Shared memory: C, B [Q, N], X [Q, 64], S [64, N] in T; dt, Acs, exp(Acs), fw; the chunk's scores.
// At N = 64, 128, 256 (the compile-time instances, `tiled_layout`) C, S and B are in the 128-byte
// swizzled tiled layout of wgmma.cuh, which the tensor cores read directly (wgmma) and ldmatrix
// reads conflict-free; C and S first, so that their 1,024-byte alignment holds. At other N
// (runtime N): C and B with padded rows, and S unpadded with its 16-byte pieces XOR-swizzled by
// row (s_index), so ldmatrix rows still hit distinct banks.
__host__ __device__ constexpr bool tiled_layout(int N) { return N == 64 || N == 128 || N == 256; }
struct MmaPlan {
  int ldN, ldP, offC, offB, offX, offS, offVec, offCB, total;
};
__host__ __device__ inline MmaPlan mma_plan(int N) {
  MmaPlan p;
  p.ldN = N + 8;
  p.ldP = kMmaPT + 8;
  int o = 0;
  if (tiled_layout(N)) {
    p.offC = o;  o += kMmaQ * N * 2;
    p.offS = o;  o += kMmaPT * N * 2;
    p.offB = o;  o += kMmaQ * N * 2;
  } else {
    p.offC = o;  o = align128(o + kMmaQ * p.ldN * 2);
    p.offB = o;  o = align128(o + kMmaQ * p.ldN * 2);
    p.offS = o;  o = align128(o + kMmaPT * N * 2);
  }
  p.offX = o;  o = align128(o + kMmaQ * p.ldP * 2);
  p.offVec = o; o = align128(o + 4 * kMmaQ * 4);
  p.offCB = o; o = align128(o + kScoreBytes);
  p.total = o;  // 113,664 bytes at N = 256: two blocks per SM (228 KB less 1 KB each)
  return p;
}

// Element (p, n) of the operand copy of S [64, N]: the tiled layout, or else 16-byte piece n / 8
// of row p stored at piece (n / 8) ^ (p % 8) (p % 4 at N = 32, which has only four pieces).
__device__ __forceinline__ int s_index(int p, int n, int N) {
  if (tiled_layout(N)) return sw128_index(p, n, kMmaPT);
  const int m = N >= 64 ? 7 : 3;
  return p * N + ((((n >> 3) ^ (p & m))) << 3) + (n & 7);
}

// Rows [t0, t0 + Q) x cols [0, COLS) of a strided [L, COLS] slab into the tiled layout
// (wgmma.cuh), rows at or past L zero-filled. Each thread copies one 16-byte column piece j of
// rows r0, r0 + STEP, ...; STEP is a multiple of 8, so every row it copies has the same swizzle.
template <typename T, int COLS>
__device__ __forceinline__ void load_chunk_tiled(T* dst, const T* src, int64_t row_stride, int t0, int L, bool vec) {
  constexpr int Q = kMmaQ, NV = COLS / 8, STEP = kThreads / NV;
  static_assert(kThreads % NV == 0 && STEP % 8 == 0 && Q % STEP == 0, "load_chunk_tiled: shape");
  if (!vec) {  // unaligned strides: element copies
    for (int i = threadIdx.x; i < Q * COLS; i += kThreads) {
      const int r = i / COLS, c = i % COLS;
      dst[sw128_index(r, c, Q)] = t0 + r < L ? src[(int64_t)(t0 + r) * row_stride + c] : from_f<T>(0.f);
    }
    return;
  }
  const int j = threadIdx.x % NV, r0 = threadIdx.x / NV, valid = min(Q, L - t0);
  T* d = dst + (j >> 3) * (Q * 64) + r0 * 64 + (((j & 7) ^ (r0 & 7)) << 3);
  const T* p = src + (int64_t)(t0 + r0) * row_stride + 8 * j;
  if (valid >= Q) {
#pragma unroll
    for (int i = 0; i < Q / STEP; ++i) cp_async16(d + i * STEP * 64, p + i * STEP * row_stride);
    return;
  }
#pragma unroll
  for (int i = 0; i < Q / STEP; ++i) {
    const bool ok = r0 + i * STEP < valid;
    cp_async16(d + i * STEP * 64, ok ? p + i * STEP * row_stride : src, ok);
  }
}

constexpr int kMaxS = 256 / 2 / 8;  // state n8-tiles per warp at N = 256

// The A operand of the state update for the chunk rows k .. k + 15: Xw^T (row p, k = s) from
// X [s][p] by transposed ldmatrix, matrices (p 0-7, s 0-7), (p 8-15, s 0-7), (p 0-7, s 8-15),
// (p 8-15, s 8-15) -> a0..a3, each row s scaled by fw[s] (Xw = X fw): a0, a1 hold s = k + 2t,
// k + 2t + 1; a2, a3 hold s = k + 8 + 2t, +1. The warp's rows 16 rb .. +16 of the head-dim tile.
template <typename T>
__device__ __forceinline__ void load_xw_fragment(uint32_t (&af)[4], const T* Xs, int ldP, const float* fw, int k,
                                                 int rb) {
  const int lane = threadIdx.x & 31, tq = lane & 3;
  ldsm_x4_t(af, Xs + (k + (lane & 7) + (lane >> 4) * 8) * ldP + 16 * rb + ((lane >> 3) & 1) * 8);
  const float f0 = fw[k + 2 * tq], f1 = fw[k + 2 * tq + 1], f2 = fw[k + 8 + 2 * tq], f3 = fw[k + 9 + 2 * tq];
  af[0] = scale2<T>(af[0], f0, f1);
  af[1] = scale2<T>(af[1], f0, f1);
  af[2] = scale2<T>(af[2], f2, f3);
  af[3] = scale2<T>(af[3], f2, f3);
}

// S = dec S + Xw^T B over the chunk's Q rows, Xw_s = x_s fw_s, for a block that holds Nb
// columns of the state (B's columns in shared memory): the warp's rows 16 rb .. +16 of the
// head-dim tile and columns (Nb/2) ch .. +Nb/2, nS = Nb / 16 n8 tiles (at most MS).
template <typename T, int MS>
__device__ __forceinline__ void state_update(float (&S)[MS][4], const T* Xs, int ldP, const T* Bs, int ldB,
                                             const float* fw, float dec, int Nb, int rb, int ch) {
  const int lane = threadIdx.x & 31, nS = Nb / 16;
  const int lr = (lane & 7) + ((lane >> 3) & 1) * 8, lc = (lane >> 4) * 8;
#pragma unroll
  for (int i = 0; i < MS; ++i) S[i][0] *= dec, S[i][1] *= dec, S[i][2] *= dec, S[i][3] *= dec;
  for (int k = 0; k < kMmaQ; k += 16) {
    uint32_t af[4];
    load_xw_fragment<T>(af, Xs, ldP, fw, k, rb);
#pragma unroll
    for (int i = 0; i < MS; i += 2)
      if (i < nS) {
        uint32_t bf[4];  // B (k = s, col = n) from B [s][n]: transposed, two n8 tiles
        ldsm_x4_t(bf, Bs + (k + lr) * ldB + (Nb / 2) * ch + 8 * i + lc);
        mma16816<T>(S[i], af, bf[0], bf[1]);
        mma16816<T>(S[i + 1], af, bf[2], bf[3]);
      }
  }
}

// state_update for the full forward's tiled B [Q, N] (wgmma.cuh), in two parts. The operands:
// S scaled by the chunk's decay, and A = Xw^T built in registers (the fw scaling) from X [s][p]
// by transposed ldmatrix. The product: the warpgroup's wgmma where the target has it and the
// warp's half of the columns is whole 64-column blocks (N = 128, 256), else mma.sync from
// ldmatrix. A wgmma is only issued (after the caller's wgmma_fence): the caller commits it and
// waits (wgmma_wait, then wgmma_hold on S and af) before it reads S or lets B change.
template <typename T, int kN>
__device__ __forceinline__ void state_operands(float (&S)[kN / 16][4], uint32_t (&af)[kMmaQ / 16][4], const T* Xs,
                                               int ldP, const float* fw, float dec, int rb) {
#pragma unroll
  for (int i = 0; i < kN / 16; ++i) S[i][0] *= dec, S[i][1] *= dec, S[i][2] *= dec, S[i][3] *= dec;
#pragma unroll
  for (int kk = 0; kk < kMmaQ / 16; ++kk) load_xw_fragment<T>(af[kk], Xs, ldP, fw, 16 * kk, rb);
}
template <typename T, int kN>
__device__ __forceinline__ void state_product(float (&S)[kN / 16][4], const uint32_t (&af)[kMmaQ / 16][4], const T* Bs,
                                              int ch) {
#if MP_WGMMA
  if constexpr (kN >= 128) {
    // B [s][n], n contiguous: MN-major. The group's columns (N/2) ch .. are blocks of 64; the
    // 8-row atoms along s are 1,024 bytes apart, the 64-column blocks Q * 128 bytes.
    const uint32_t db = sw128_desc_lo(Bs + (kN / 2) * ch * kMmaQ, kMmaQ * 128);
#pragma unroll
    for (int kk = 0; kk < kMmaQ / 16; ++kk) {
      if constexpr (kN == 256) wgmma_64x128_rs_t<T>(S, af[kk], desc_add(db, kk * 16 * 128));
      else wgmma_64x64_rs_t<T>(S, af[kk], desc_add(db, kk * 16 * 128));
    }
    return;
  }
#endif
  const int lane = threadIdx.x & 31;
  const int lr = (lane & 7) + ((lane >> 3) & 1) * 8, lc = (lane >> 4) * 8;
  const int colw = (kN / 2) * ch + lc;  // this lane's ldmatrix column within the warp's half
#pragma unroll
  for (int kk = 0; kk < kMmaQ / 16; ++kk)
#pragma unroll
    for (int i = 0; i < kN / 16; i += 2) {
      uint32_t bf[4];  // B (k = s, col = n) from B [s][n]: transposed, two n8 tiles
      ldsm_x4_t(bf, Bs + sw128_index(16 * kk + lr, colw + 8 * i, kMmaQ));
      mma16816<T>(S[i], af[kk], bf[0], bf[1]);
      mma16816<T>(S[i + 1], af[kk], bf[2], bf[3]);
    }
}

// The whole update, done when it returns: state_operands, then state_product, waited for.
template <typename T, int kN>
__device__ __forceinline__ void state_update_tiled(float (&S)[kN / 16][4], const T* Xs, int ldP, const T* Bs,
                                                   const float* fw, float dec, int rb, int ch) {
  uint32_t af[kMmaQ / 16][4];
  state_operands<T, kN>(S, af, Xs, ldP, fw, dec, rb);
#if MP_WGMMA
  if constexpr (kN >= 128) wgmma_fence();
#endif
  state_product<T, kN>(S, af, Bs, ch);
#if MP_WGMMA
  if constexpr (kN >= 128) {
    wgmma_commit();
    wgmma_wait<0>();
    wgmma_hold(S);
    wgmma_hold(af);
  }
#endif
}

// The state registers' fp32 values at row srow, columns scol0 + 8 i (+1), and 8 rows below.
template <int MS>
__device__ __forceinline__ void load_state(float (&S)[MS][4], const float* src, int N, int nS) {
#pragma unroll
  for (int i = 0; i < MS; ++i) {
    S[i][0] = S[i][1] = S[i][2] = S[i][3] = 0.f;
    if (src && i < nS) {
      const float2 lo = *reinterpret_cast<const float2*>(src + 8 * i), hi = *reinterpret_cast<const float2*>(src + 8 * i + 8 * N);
      S[i][0] = lo.x, S[i][1] = lo.y, S[i][2] = hi.x, S[i][3] = hi.y;
    }
  }
}
template <int MS>
__device__ __forceinline__ void store_state(const float (&S)[MS][4], float* dst, int N, int nS) {
#pragma unroll
  for (int i = 0; i < MS; ++i)
    if (i < nS) {
      *reinterpret_cast<float2*>(dst + 8 * i) = make_float2(S[i][0], S[i][1]);
      *reinterpret_cast<float2*>(dst + 8 * i + 8 * N) = make_float2(S[i][2], S[i][3]);
    }
}
// The same rounded to T, with leading dimension ld (a shared-memory operand or a global array).
template <typename T, int MS>
__device__ __forceinline__ void store_state_t(const float (&S)[MS][4], T* dst, int64_t ld, int nS) {
#pragma unroll
  for (int i = 0; i < MS; ++i)
    if (i < nS) {
      *reinterpret_cast<uint32_t*>(dst + 8 * i) = pack2<T>(S[i][0], S[i][1]);
      *reinterpret_cast<uint32_t*>(dst + 8 * i + 8 * ld) = pack2<T>(S[i][2], S[i][3]);
    }
}

// The state registers rounded to T into the swizzled operand copy (s_index): row srow and 8 rows
// below (same swizzle: they agree mod 8, so that row is a fixed distance further: 8 rows of the
// tiled layout's 64-value blocks, or of the other layout's N), columns scol0 + 8 i (+1).
template <typename T, int MS>
__device__ __forceinline__ void publish_state(const float (&S)[MS][4], T* Ss, int srow, int scol0, int N, int nS) {
  const int below = 8 * (tiled_layout(N) ? 64 : N);
#pragma unroll
  for (int i = 0; i < MS; ++i)
    if (i < nS) {
      const int o = s_index(srow, scol0 + 8 * i, N);
      *reinterpret_cast<uint32_t*>(Ss + o) = pack2<T>(S[i][0], S[i][1]);
      *reinterpret_cast<uint32_t*>(Ss + o + below) = pack2<T>(S[i][2], S[i][3]);
    }
}

// The operand copy of S (swizzled, in T) to dst [64 rows, N] unswizzled, as whole 16-byte
// pieces with streaming stores (the backward reads them long after this kernel): the state
// entering a chunk, kept for the backward (MpSsdFwdArgs::chunk_states) so that it need not walk
// the chunks again. Ss must be complete (after a barrier) and unchanged until the next one.
template <typename T, int kN>
__device__ __forceinline__ void save_chunk_state(const T* Ss, T* dst, int n_runtime) {
  const int N = kN ? kN : n_runtime, pieces = N / 8;
  for (int i = threadIdx.x; i < kMmaPT * pieces; i += kThreads) {
    const int p = i / pieces, j = i % pieces;
    const uint4 v = *reinterpret_cast<const uint4*>(Ss + s_index(p, 8 * j, N));
    __stcs(reinterpret_cast<uint4*>(dst + (int64_t)p * N + 8 * j), v);
  }
}

// The full forward: y and the state, one block per (b, h, head-dim tile, segment).
// kN: the state size N when it is one of the instantiated ones (64, 128, 256), else 0 (read from
// the arguments). A compile-time N folds the row-copy index divisions, the tile predicates and the
// swizzle arithmetic: Nsight Compute counted half the instructions of the runtime-N kernel there.
template <typename T, int kN>
__global__ void __launch_bounds__(kThreads, 2) ssd_fwd_mma_kernel(MpSsdFwdArgs a, bool vec, Seg sg) {
  constexpr int Q = kMmaQ, PT = kMmaPT;
  const int N = kN ? kN : a.dstate, P = a.headdim, L = a.seqlen, H = a.heads;
  const int ptiles = P / PT;
  const FwdBlock blk = fwd_block(ptiles, H, a.batch);
  const int pt = blk.pt, h = blk.h, b = blk.b, seg = blk.seg;
  const int g = h / (H / a.groups), p0 = pt * PT;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gq = lane >> 2, tq = lane & 3;
  const int rb = warp & 3, ch = warp >> 2;  // y: rows 16 rb, cols 32 ch;  state: rows 16 rb, cols (N/2) ch
  const int nS = N / 16;                    // state n8-tiles per warp
  // The tiled layout and its products (wgmma where the target has it) at N = 64, 128, 256.
  constexpr bool kTiled = tiled_layout(kN);
  // The state update as a warpgroup product. kEarlyState: issued before W X, so that it runs
  // under it, and waited for at the chunk's end; else issued and waited for after y. Measured on
  // an H200 (bench/results/2026-11-27-ssd-h200-wgmma-ab.txt): early is faster at N = 256
  // (56B, b = 1: 0.870 against 0.986 ms), late at N = 128 (8B, b = 4: 1.227 against 1.329 ms).
  constexpr bool kWgState = MP_WGMMA && kN >= 128;
  constexpr bool kEarlyState = kWgState && kN == 256;
  constexpr int MS = kTiled ? kN / 16 : kMaxS;  // state n8-tiles held per warp

  // 1,024-byte aligned: the tiled layout's swizzle is the hardware's only from such a base.
  extern __shared__ __align__(1024) unsigned char smem[];
  const MmaPlan pl = mma_plan(N);
  T* Cs = reinterpret_cast<T*>(smem + pl.offC);
  T* Bs = reinterpret_cast<T*>(smem + pl.offB);
  T* Xs = reinterpret_cast<T*>(smem + pl.offX);
  T* Ss = reinterpret_cast<T*>(smem + pl.offS);
  float* dtv = reinterpret_cast<float*>(smem + pl.offVec);
  float* acs = dtv + Q;
  float* ea = acs + Q;  // exp(Acs_l)
  float* fw = ea + Q;   // dt_s exp(Acs_end - Acs_s)
  __nv_bfloat16* cbs = reinterpret_cast<__nv_bfloat16*>(smem + pl.offCB);
  const int ldN = pl.ldN, ldP = pl.ldP;

  const float Dh = a.D[h];
  const FwdView<T> view = fwd_view<T>(a, blk, g, p0, sg.nseg);
  const T *xg = view.x, *Bg = view.B, *Cg = view.C;
  T* yg = view.y;

  // State registers: tile i covers rows 16 rb + {g, g+8}, cols (N/2) ch + 8 i + {2t, 2t+1}.
  float S[MS][4];
  const int srow = 16 * rb + gq, scol0 = (N / 2) * ch + 2 * tq;
  load_state(S, sg.init ? sg.init + view.state_off + (int64_t)srow * N + scol0 : nullptr, N, nS);

  // ldmatrix lane addressing: lane l supplies row (l % 8) + 8 * ((l / 8) % 2) and column offset
  // 8 * (l / 16) of a 16x16 block for A operands (non-transposed); the B-operand variants below.
  const int lr = (lane & 7) + ((lane >> 3) & 1) * 8, lc = (lane >> 4) * 8;
  // B operand from a [col][k] (k contiguous) array, two n8 tiles x k16: rows j0 + (l%8) + 8 (l/16), col k0 + 8 ((l/8)%2).
  const int br = (lane & 7) + (lane >> 4) * 8, bc = ((lane >> 3) & 1) * 8;

  const int nchunks = (L + Q - 1) / Q;
  const int c_begin = seg * sg.seg_chunks, c_end = min(nchunks, c_begin + sg.seg_chunks);
  for (int c = c_begin; c < c_end; ++c) {
    const int t0 = c * Q;
    if constexpr (kTiled) {
      load_chunk_tiled<T, kTiled ? kN : 64>(Cs, Cg, a.C_sl, t0, L, vec);
      load_chunk_tiled<T, kTiled ? kN : 64>(Bs, Bg, a.B_sl, t0, L, vec);
    } else {
      load_chunk<T, Q, kN>(Cs, ldN, Cg, a.C_sl, t0, L, N, vec);
      load_chunk<T, Q, kN>(Bs, ldN, Bg, a.B_sl, t0, L, N, vec);
    }
    load_chunk<T, Q, PT>(Xs, ldP, xg, a.x_sl, t0, L, PT, vec);
    // Launched as a programmatic dependent of the scores kernel (pdl.cuh): the first chunk's
    // inputs above are in flight while that kernel finishes; its outputs are read from here on.
    if (c == c_begin) pdl_wait();
    {  // this chunk's scores (ours, so always 16-byte aligned)
      const __nv_bfloat16* src = static_cast<const __nv_bfloat16*>(sg.scores) + ((int64_t)(b * nchunks + c) * a.groups + g) * (kScoreBytes / 2);
      for (int i = threadIdx.x; i < kScoreBytes / 16; i += kThreads) cp_async16(cbs + 8 * i, src + 8 * i, true);
    }
    {  // dt, Acs, exp(Acs), fw of this chunk and head, from the same pass
      const float* src = sg.chunk_vecs + ((int64_t)(b * nchunks + c) * H + h) * (4 * Q);
      if (threadIdx.x < Q) cp_async16(dtv + 4 * threadIdx.x, src + 4 * threadIdx.x, true);
    }
    // The operand copy of the state entering this chunk, while the copies above are in flight
    // (the previous chunk's reads of Ss ended at its last barrier).
    publish_state<T, MS>(S, Ss, srow, scol0, N, nS);
    cp_async_wait_all();
#if MP_WGMMA
    if constexpr (kTiled) fence_proxy_async();  // the copies and the stores above, for wgmma's reads
#endif
    __syncthreads();
    if (a.chunk_states)  // the state entering this chunk, for the backward
      save_chunk_state<T, kN>(Ss, static_cast<T*>(a.chunk_states) + ((int64_t)(b * nchunks + c) * H + h) * P * N + (int64_t)p0 * N, N);

    [[maybe_unused]] uint32_t xw[kEarlyState ? Q / 16 : 1][4];  // the state update's A operand (Xw^T), live until its wait
    {
      // ---- y rows 16 rb .. +16, cols 32 ch .. +32: exp(Acs_l) (C S^T) + W X + D x ----
      float Y[4][4];
#pragma unroll
      for (int n = 0; n < 4; ++n) Y[n][0] = Y[n][1] = Y[n][2] = Y[n][3] = 0.f;
#if MP_WGMMA
      if constexpr (kTiled) {
        // C S^T as the warpgroup's product: rows 0-63 x cols 32 ch .. +32, K = N in steps of 16.
        // Both operands K-major (n contiguous): the k step is 32 bytes within a 128-byte row,
        // and every 4 steps the next 64-column block.
        const uint32_t dc = sw128_desc_lo(Cs, 16), ds = sw128_desc_lo(Ss + 32 * ch * 64, 16);
        // The state update's register operands first: once a wgmma is in flight, ptxas makes any
        // instruction that touches registers a wgmma wrote (S) wait for all of them.
        if constexpr (kEarlyState) state_operands<T, kTiled ? kN : 64>(S, xw, Xs, ldP, fw, __expf(acs[Q - 1]), rb);
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < kN / 16; ++kk) {
          const uint32_t off = (kk >> 2) * (64 * 128) + (kk & 3) * 32;
          wgmma_64x32_ss<T>(Y, desc_add(dc, off), desc_add(ds, off));
        }
        wgmma_commit();
        // The state update reads only X, B and the per-row vectors, which nothing writes in this
        // chunk: issued now, it runs under W X.
        if constexpr (kEarlyState) {
          state_product<T, kTiled ? kN : 64>(S, xw, Bs, ch);
          wgmma_commit();
        }
      } else
#endif
      {
        const int crow = 16 * rb + lr;
#pragma unroll 2  // deeper unrolling at a compile-time N runs out of registers
        for (int k = 0; k < N; k += 16) {
          uint32_t af[4], b01[4], b23[4];
          ldsm_x4(af, Cs + (kTiled ? sw128_index(crow, k + lc, Q) : crow * ldN + k + lc));
          // S^T as B: element (k = n, col = p) at Ss[s_index(p, n)]: rows p = 32 ch + 16 q + br.
          ldsm_x4(b01, Ss + s_index(32 * ch + br, k + bc, N));
          ldsm_x4(b23, Ss + s_index(32 * ch + 16 + br, k + bc, N));
          mma16816<T>(Y[0], af, b01[0], b01[1]);
          mma16816<T>(Y[1], af, b01[2], b01[3]);
          mma16816<T>(Y[2], af, b23[0], b23[1]);
          mma16816<T>(Y[3], af, b23[2], b23[3]);
        }
      }
#if MP_WGMMA
      if constexpr (kTiled) {  // C S^T done (wgmma groups complete in order; the state update may still run)
        if constexpr (kEarlyState) wgmma_wait<1>();
        else wgmma_wait<0>();
        wgmma_hold(Y);
      }
#endif
      const int l0 = 16 * rb + gq, l1 = l0 + 8;
      const float e0 = ea[l0], e1 = ea[l1], a0 = acs[l0], a1 = acs[l1];
#pragma unroll
      for (int n = 0; n < 4; ++n) Y[n][0] *= e0, Y[n][1] *= e0, Y[n][2] *= e1, Y[n][3] *= e1;
      const __nv_bfloat16* cb_row = cbs + (rb * (rb + 1) / 2) * 256 + lane * 8;  // tiles (rb, 0 .. rb)
      for (int j = 0; j <= rb; ++j) {
        // Scores C B^T for rows 16 rb.., cols s = 16 j .. +16: this lane's A-fragment values.
        const uint4 cf = *reinterpret_cast<const uint4*>(cb_row + 256 * j);
        const uint32_t cr[4] = {cf.x, cf.y, cf.z, cf.w};  // (l0, s 2t..), (l1, ..), (l0, s 2t+8..), (l1, ..)
        // W = scores * exp(Acs_l - Acs_s) * dt_s on s <= l, packed as the A operand (k = s).
        // Branch-free: the exp runs on every element, of 0 where the mask then zeroes it (so it
        // never overflows there), and selects replace the branches around it.
        uint32_t wf[4];
#pragma unroll
        for (int n = 0; n < 2; ++n) {
          const int s0 = 16 * j + 8 * n + 2 * tq, s1 = s0 + 1;
          const float2 as = *reinterpret_cast<const float2*>(acs + s0), d = *reinterpret_cast<const float2*>(dtv + s0);
          const float2 c0 = unpack2<__nv_bfloat16>(cr[2 * n]), c1 = unpack2<__nv_bfloat16>(cr[2 * n + 1]);
          const bool m00 = s0 <= l0, m01 = s1 <= l0, m10 = s0 <= l1, m11 = s1 <= l1;
          const float w00 = c0.x * __expf(m00 ? a0 - as.x : 0.f) * d.x, w01 = c0.y * __expf(m01 ? a0 - as.y : 0.f) * d.y;
          const float w10 = c1.x * __expf(m10 ? a1 - as.x : 0.f) * d.x, w11 = c1.y * __expf(m11 ? a1 - as.y : 0.f) * d.y;
          wf[2 * n] = pack2<T>(m00 ? w00 : 0.f, m01 ? w01 : 0.f);
          wf[2 * n + 1] = pack2<T>(m10 ? w10 : 0.f, m11 ? w11 : 0.f);
        }
        // X as B (k = s, col = p) from X [s][p]: transposed ldmatrix, two n8 tiles per load.
#pragma unroll
        for (int q = 0; q < 2; ++q) {
          uint32_t xf[4];
          ldsm_x4_t(xf, Xs + (16 * j + lr) * ldP + 32 * ch + 16 * q + lc);
          mma16816<T>(Y[2 * q], wf, xf[0], xf[1]);
          mma16816<T>(Y[2 * q + 1], wf, xf[2], xf[3]);
        }
      }
#pragma unroll
      for (int n = 0; n < 4; ++n) {
        const int p = 32 * ch + 8 * n + 2 * tq;
        if (t0 + l0 < L) {
          const float x0 = to_f(Xs[l0 * ldP + p]), x1 = to_f(Xs[l0 * ldP + p + 1]);
          *reinterpret_cast<uint32_t*>(yg + (int64_t)(t0 + l0) * a.y_sl + p) = pack2<T>(Y[n][0] + Dh * x0, Y[n][1] + Dh * x1);
        }
        if (t0 + l1 < L) {
          const float x0 = to_f(Xs[l1 * ldP + p]), x1 = to_f(Xs[l1 * ldP + p + 1]);
          *reinterpret_cast<uint32_t*>(yg + (int64_t)(t0 + l1) * a.y_sl + p) = pack2<T>(Y[n][2] + Dh * x0, Y[n][3] + Dh * x1);
        }
      }
    }
    // ---- state: S = exp(Acs_end) S + Xw^T B,  Xw_s = x_s dt_s exp(Acs_end - Acs_s) ----
    // No barrier before it: it reads only X, B and the per-row vectors, which nothing writes in
    // this chunk, so warps with less y work (small rb) start on it while the others finish.
    if constexpr (kEarlyState) {
#if MP_WGMMA
      wgmma_wait<0>();
      wgmma_hold(S);
      wgmma_hold(xw);
#endif
    } else if constexpr (kTiled) {
      state_update_tiled<T, kTiled ? kN : 64>(S, Xs, ldP, Bs, fw, __expf(acs[Q - 1]), rb, ch);
    } else {
      state_update<T, kMaxS>(S, Xs, ldP, Bs, ldN, fw, __expf(acs[Q - 1]), N, rb, ch);
    }
    __syncthreads();  // every read of S, C, B, X of this chunk is done
  }
  pdl_wait();  // (returns at once after the first chunk's; here for a block with no chunk)
  if (sg.fin) store_state(S, sg.fin + view.state_off + (int64_t)srow * N + scol0, N, nS);
}

// One whole warp: dt, Acs, exp(Acs) and fw = dt_s exp(Acs_end - Acs_s) of chunk c as [4][Q]
// fp32 at vecs [b, chunk, h], for the nh (<= K) heads h0, h0 + hstep, ...: the per-row vectors
// of the forward's chunk (and the gradient kernels'), computed once instead of by one warp of
// every block while the others wait. The same arithmetic as chunk_dt, in registers: every
// head's raw dt is loaded first (independent loads, one memory round trip for all K heads), and
// nothing is read back from the stored vectors.
template <int K>
__device__ __forceinline__ void chunk_vecs(const MpSsdFwdArgs& a, int b, int c, int h0, int hstep, int nh,
                                           float* vecs) {
  constexpr int Q = kMmaQ, E = Q / 32;
  static_assert(E == 2, "two rows per lane (float2 stores)");
  const int nchunks = (a.seqlen + Q - 1) / Q, lane = threadIdx.x & 31, t0 = c * Q + lane * E;
  float raw[K][E], Ah[K], bias[K];
#pragma unroll
  for (int k = 0; k < K; ++k) {
    const int h = h0 + k * hstep;
    Ah[k] = k < nh ? a.A[h] : 0.f;
    bias[k] = k < nh && a.dt_bias ? a.dt_bias[h] : 0.f;
#pragma unroll
    for (int e = 0; e < E; ++e) {
      const int t = t0 + e;
      raw[k][e] = k < nh && t < a.seqlen ? load_any(a.dt, a.dt_dtype, b * a.dt_sb + (int64_t)t * a.dt_sl + h * a.dt_sh) : 0.f;
    }
  }
#pragma unroll
  for (int k = 0; k < K; ++k) {
    if (k >= nh) break;
    float d[E], acs[E], run = 0.f;
#pragma unroll
    for (int e = 0; e < E; ++e) {
      d[e] = 0.f;
      if (t0 + e < a.seqlen) d[e] = effective_dt(a, raw[k][e] + bias[k]);
      run += d[e] * Ah[k];
      acs[e] = run;
    }
    const float excl = warp_exclusive_sum(run);
#pragma unroll
    for (int e = 0; e < E; ++e) acs[e] += excl;
    const float end = __shfl_sync(0xffffffffu, acs[E - 1], 31);  // Acs of the chunk's last row
    float* v = vecs + ((int64_t)(b * nchunks + c) * a.heads + h0 + k * hstep) * (4 * Q) + lane * E;
    *reinterpret_cast<float2*>(v) = make_float2(d[0], d[1]);
    *reinterpret_cast<float2*>(v + Q) = make_float2(acs[0], acs[1]);
    *reinterpret_cast<float2*>(v + 2 * Q) = make_float2(__expf(acs[0]), __expf(acs[1]));
    *reinterpret_cast<float2*>(v + 3 * Q) = make_float2(d[0] * __expf(end - acs[0]), d[1] * __expf(end - acs[1]));
  }
}

// The chunk vectors alone (the backward's): one block per (b, chunk, 8 heads), a warp per head.
__global__ void __launch_bounds__(kThreads) ssd_chunk_vecs_kernel(MpSsdFwdArgs a, float* vecs) {
  const int nchunks = (a.seqlen + kMmaQ - 1) / kMmaQ, hb = (a.heads + kWarps - 1) / kWarps;
  const int h = (blockIdx.x % hb) * kWarps + (threadIdx.x >> 5), c = (blockIdx.x / hb) % nchunks;
  const int b = blockIdx.x / (hb * nchunks);
  pdl_release();  // the state walk launched after it waits for the vectors at its start
  if (h < a.heads) chunk_vecs<1>(a, b, c, h, 0, 1, vecs);
}

// The scores C B^T of every (b, chunk, group), lower tiles only, in the layout of kScoreBytes.
// One block per (b, chunk, group); warp w computes tiles w and w + 8 over K = N.
template <typename T>
__global__ void __launch_bounds__(kThreads) ssd_scores_kernel(MpSsdFwdArgs a, bool vec, __nv_bfloat16* out, float* vecs) {
  constexpr int Q = kMmaQ;
  const int N = a.dstate, L = a.seqlen, G = a.groups, nchunks = (L + Q - 1) / Q;
  const int g = blockIdx.x % G, c = (blockIdx.x / G) % nchunks, b = blockIdx.x / (G * nchunks);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  pdl_release();  // the forward launched after it waits before reading the scores
  extern __shared__ __align__(1024) unsigned char smem[];
  const int ldN = N + 8;
  T* Cs = reinterpret_cast<T*>(smem);
  T* Bs = Cs + Q * ldN;
  load_rows<T>(Cs, ldN, static_cast<const T*>(a.C) + b * a.C_sb + g * a.C_sg, a.C_sl, c * Q, Q, L, N, vec);
  load_rows<T>(Bs, ldN, static_cast<const T*>(a.B) + b * a.B_sb + g * a.B_sg, a.B_sl, c * Q, Q, L, N, vec);
  // Meanwhile, the chunk vectors of the group's heads (warp w: heads w, w + 8, ..., four at a time).
  constexpr int kHeadsAtOnce = 4;
  const int hpg = a.heads / G;
  for (int hh = warp; hh < hpg; hh += kWarps * kHeadsAtOnce)
    chunk_vecs<kHeadsAtOnce>(a, b, c, g * hpg + hh, kWarps, (hpg - hh + kWarps - 1) / kWarps, vecs);
  cp_async_wait_all();
  __syncthreads();
  const int lr = (lane & 7) + ((lane >> 3) & 1) * 8, lc = (lane >> 4) * 8;
  const int br = (lane & 7) + (lane >> 4) * 8, bc = ((lane >> 3) & 1) * 8;
  __nv_bfloat16* dst = out + (int64_t)blockIdx.x * (kScoreBytes / 2);
  for (int t = warp; t < kScoreTiles; t += kWarps) {
    int i = 0;
    while ((i + 1) * (i + 2) / 2 <= t) ++i;
    const int j = t - i * (i + 1) / 2;
    float acc[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
    for (int k = 0; k < N; k += 16) {
      uint32_t af[4], bf[4];
      ldsm_x4(af, Cs + (16 * i + lr) * ldN + k + lc);
      ldsm_x4(bf, Bs + (16 * j + br) * ldN + k + bc);  // B operand (k = n, col = s) from B [s][n]
      mma16816<T>(acc[0], af, bf[0], bf[1]);
      mma16816<T>(acc[1], af, bf[2], bf[3]);
    }
    // Accumulator tiles (cols 0-7, 8-15) -> A-fragment registers a0..a3 (mma_frag.cuh).
    uint4 v;
    v.x = pack2<__nv_bfloat16>(acc[0][0], acc[0][1]);
    v.y = pack2<__nv_bfloat16>(acc[0][2], acc[0][3]);
    v.z = pack2<__nv_bfloat16>(acc[1][0], acc[1][1]);
    v.w = pack2<__nv_bfloat16>(acc[1][2], acc[1][3]);
    *reinterpret_cast<uint4*>(dst + t * 256 + lane * 8) = v;
  }
}

// ---- The state-only pass (Seg in ssd_common.cuh): pass 1 of the segmented scan and the
// backward's chunk states. No y, no C, no operand copy of S; the segment's end state -> sg.fin,
// its decay -> sg.decay, each chunk's carried-in state -> sg.chunk_states; sg.adjoint weights
// rows by exp(Acs_l) (the caller passes dy as x and C as B); sg.reverse walks the chunks last to
// first.
// Two stages: chunk i + 1's B, X and vectors load into one buffer while chunk i's update reads
// the other. The stored states go out through the buffer the update has just finished with (a
// per-warp tile, so that the global stores are whole 16-byte rows), which keeps both stages
// within four blocks per SM at Nb = 128. With one stage, Nsight Compute had a quarter of the
// walk's stall samples waiting on each chunk's loads and at the barrier after them (56B, b = 1).
// Where a block holds 128 or 256 state columns (Nb), B is in the tiled layout (wgmma.cuh) and
// the update is the warpgroup's product (state_operands / state_product, as in the forward);
// each stage then starts 1,024-byte aligned. Other Nb keep padded rows and mma.sync.
__host__ __device__ constexpr bool state_tiled(int Nb) { return Nb == 128 || Nb == 256; }
struct StatePlan {
  int ldN, ldP, ldG, offB, offX, offVec, stage, total;  // offsets within a stage
};
// Nb: the state columns one block holds (N / split).
__host__ __device__ inline StatePlan state_plan(int Nb) {
  StatePlan p;
  const bool tiled = state_tiled(Nb);
  p.ldN = tiled ? Nb : Nb + 8;
  p.ldP = kMmaPT + 8;
  p.ldG = Nb / 2 + 8;
  int o = 0;
  p.offB = o;   o = align128(o + kMmaQ * p.ldN * 2);
  p.offX = o;   o = align128(o + kMmaQ * p.ldP * 2);
  const int staging = kWarps * 16 * p.ldG * 2;  // each warp's 16 x Nb/2 part of S, in T, over B and X
  p.offVec = o = align128(o > staging ? o : staging);
  o = align128(o + 3 * kMmaQ * 4);
  if (tiled) o = (o + 1023) & ~1023;
  p.stage = o;
  p.total = 2 * o;  // 86,016 bytes at Nb = 256, 53,248 at Nb = 128 (four blocks per SM)
  return p;
}

// kSplit: the state's N columns are split over kSplit blocks (block index fastest), each with
// a kSplit-th of the registers, so more blocks fit on an SM: four instead of two at kSplit = 2
// (64 registers, a few bytes spilled). The walk is a dependent chain per chunk, issue-latency-
// bound at 16 warps per SM; more resident warps hide more of it. X and dt are loaded by each of
// the kSplit blocks. Measured on an H200 at the 56B shape (b = 1: 512 blocks): three blocks per
// SM (80 registers) left a second wave and was 37% slower than no split; four fit one wave and
// are 7% faster than no split (at b = 4, 27% faster).
// kN: N when it is 128 or 256, else 0 = read from the arguments (as in the full forward).
template <typename T, int kSplit, int kN>
__global__ void __launch_bounds__(kThreads, kSplit == 1 ? 2 : 4) ssd_state_mma_kernel(MpSsdFwdArgs a, bool vec, Seg sg) {
  constexpr int Q = kMmaQ, PT = kMmaPT;
  // (kN = 0: never tiled; see state_plan.) MS: the state n8 tiles a warp holds.
  constexpr bool kTiled = state_tiled(kN / kSplit);
  constexpr int MS = kTiled ? kN / kSplit / 16 : kMaxS / kSplit;
  const int N = kN ? kN : a.dstate, P = a.headdim, L = a.seqlen, H = a.heads, Nb = N / kSplit;
  const int nh = blockIdx.x % kSplit, n0 = nh * Nb;
  const FwdBlock blk = fwd_block(P / PT, H, a.batch, blockIdx.x / kSplit);
  const int h = blk.h, b = blk.b, seg = blk.seg;
  const int g = h / (H / a.groups), p0 = blk.pt * PT;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gq = lane >> 2, tq = lane & 3;
  const int rb = warp & 3, ch = warp >> 2, nS = Nb / 16;
  // As a programmatic dependent (pdl.cuh): wait for the previous kernel (the chunk vectors)
  // before any read, unless it is the other walk, whose output this one does not read; then let
  // the next kernel (the gradient kernels, which wait for this one) take the SMs as blocks end.
  if (!sg.wait_late) pdl_wait();
  pdl_release();

  extern __shared__ __align__(1024) unsigned char smem[];
  const StatePlan pl = state_plan(Nb);
  const int ldN = pl.ldN, ldP = pl.ldP;

  const float Ah = a.A[h], bias = a.dt_bias ? a.dt_bias[h] : 0.f;
  const FwdView<T> view = fwd_view<T>(a, blk, g, p0, sg.nseg);
  float S[MS][4];
  const int srow = 16 * rb + gq, scol0 = n0 + (Nb / 2) * ch + 2 * tq;  // this lane's first state column
  load_state<MS>(S, sg.init ? sg.init + view.state_off + (int64_t)srow * N + scol0 : nullptr, N, nS);

  const int nchunks = (L + Q - 1) / Q;
  const int c_begin = seg * sg.seg_chunks, c_end = min(nchunks, c_begin + sg.seg_chunks);
  auto chunk_at = [&](int i) { return sg.reverse ? c_end - 1 - (i - c_begin) : i; };  // walk step -> chunk
  // Chunk c's B, X and vectors (dt, Acs, row weights fw: dt_s exp(Acs_end - Acs_s), or exp(Acs_l)
  // for the adjoint) into stage k. Without precomputed vectors warp 0 computes them.
  auto issue = [&](int c, int k) {
    unsigned char* st = smem + k * pl.stage;
    const int t0 = c * Q;
    if constexpr (kTiled)
      load_chunk_tiled<T, kTiled ? kN / kSplit : 64>(reinterpret_cast<T*>(st + pl.offB), view.B + n0, a.B_sl, t0, L, vec);
    else
      load_chunk<T, Q, kN / kSplit>(reinterpret_cast<T*>(st + pl.offB), ldN, view.B + n0, a.B_sl, t0, L, Nb, vec);
    load_chunk<T, Q, PT>(reinterpret_cast<T*>(st + pl.offX), ldP, view.x, a.x_sl, t0, L, PT, vec);
    float* dtv = reinterpret_cast<float*>(st + pl.offVec);
    float *acs = dtv + Q, *fw = acs + Q;
    if (sg.chunk_vecs) {  // mma_chunk_vecs_launch
      const float* src = sg.chunk_vecs + ((int64_t)(b * nchunks + c) * H + h) * (4 * Q);
      if (threadIdx.x < Q / 2) cp_async16(dtv + 4 * threadIdx.x, src + 4 * threadIdx.x, true);
      else if (threadIdx.x < 3 * Q / 4) cp_async16(fw + 4 * (threadIdx.x - Q / 2), src + (sg.adjoint ? 2 : 3) * Q + 4 * (threadIdx.x - Q / 2), true);
    } else if (warp == 0) {
      chunk_dt<Q>(a, b, h, t0, Ah, bias, dtv, acs, nullptr);
      __syncwarp();
      const float end = acs[Q - 1];
      for (int l = lane; l < Q; l += 32) fw[l] = sg.adjoint ? __expf(acs[l]) : dtv[l] * __expf(end - acs[l]);
    }
  };
  // The state carried into chunk c (the registers S) to sg.chunk_states, through stage k's B and
  // X space: the accumulator pairs alone would fill half of each 32-byte sector.
  T* const cst = static_cast<T*>(sg.chunk_states);
  auto store_entering = [&](int c, int k) {
    if (!cst) return;
    T* g0 = cst + ((int64_t)(b * nchunks + c) * H + h) * P * N + (int64_t)(p0 + 16 * rb) * N + n0 + (Nb / 2) * ch;
    const int cpr = Nb / 16;  // 16-byte pieces in a tile row of Nb/2 values
    if (32 % cpr == 0) {
      T* stg = reinterpret_cast<T*>(smem + k * pl.stage) + warp * 16 * pl.ldG;
      store_state_t<T, MS>(S, stg + gq * pl.ldG + 2 * tq, pl.ldG, nS);
      __syncwarp();
      const int cc = (lane % cpr) * 8;
      for (int r = lane / cpr; r < 16; r += 32 / cpr)
        *reinterpret_cast<uint4*>(g0 + (int64_t)r * N + cc) = *reinterpret_cast<const uint4*>(stg + r * pl.ldG + cc);
      __syncwarp();
    } else {
      store_state_t<T, MS>(S, g0 + (int64_t)gq * N + 2 * tq, N, nS);
    }
  };

  float seg_sum = 0.f;  // sum of dt A over the segment (the decay)
  if (c_begin < c_end) {
    issue(chunk_at(c_begin), 0);
    store_entering(chunk_at(c_begin), 1);
  }
  for (int i = c_begin; i < c_end; ++i) {
    const int k = (i - c_begin) & 1;
    cp_async_wait_all();
#if MP_WGMMA
    if constexpr (kTiled) fence_proxy_async();  // the copies, for wgmma's reads of B
#endif
    __syncthreads();  // chunk i is in stage k; every warp is done with stage k ^ 1 (its staging too)
    if (i + 1 < c_end) issue(chunk_at(i + 1), k ^ 1);
    unsigned char* st = smem + k * pl.stage;
    const float* dtv = reinterpret_cast<const float*>(st + pl.offVec);
    const float *acs = dtv + Q, *fw = acs + Q;
    seg_sum += acs[Q - 1];
    if constexpr (kTiled) {
      state_update_tiled<T, kTiled ? kN / kSplit : 128>(S, reinterpret_cast<const T*>(st + pl.offX), ldP,
                                                         reinterpret_cast<const T*>(st + pl.offB), fw,
                                                         __expf(acs[Q - 1]), rb, ch);
    } else {
      state_update<T, MS>(S, reinterpret_cast<const T*>(st + pl.offX), ldP, reinterpret_cast<const T*>(st + pl.offB), ldN,
                          fw, __expf(acs[Q - 1]), Nb, rb, ch);
    }
    __syncthreads();  // every read of stage k is done
    if (i + 1 < c_end) store_entering(chunk_at(i + 1), k);
  }
  if (sg.fin) store_state<MS>(S, sg.fin + view.state_off + (int64_t)srow * N + scol0, N, nS);
  if (sg.wait_late) pdl_wait();  // so that this grid's completion implies the previous one's
  if (sg.decay && blk.pt == 0 && nh == 0 && threadIdx.x == 0) sg.decay[(b * sg.nseg + seg) * H + h] = expf(seg_sum);
}

template <typename T>
KernFn fwd_for_n(int N) {
  if (N == 256) return ssd_fwd_mma_kernel<T, 256>;
  if (N == 128) return ssd_fwd_mma_kernel<T, 128>;
  if (N == 64) return ssd_fwd_mma_kernel<T, 64>;
  return ssd_fwd_mma_kernel<T, 0>;
}

template <typename T, int kSplit>
KernFn state_for_n(int N) {
  if (N == 256) return ssd_state_mma_kernel<T, kSplit, 256>;
  if (N == 128) return ssd_state_mma_kernel<T, kSplit, 128>;
  return ssd_state_mma_kernel<T, kSplit, 0>;
}

}  // namespace

// What the device code of this file was compiled with (the value differs per cubin: 1 in the
// sm_90a one). Read back by mp_ssd_wgmma_built.
static __device__ int g_wgmma_built = MP_WGMMA;

namespace mp_ssd {

KernFn mma_fwd_kernel(const MpSsdFwdArgs* a, bool state_only) {
  if (state_only) return mma_state_kernel(a, 1);
  if (a->headdim % kMmaPT || a->dstate % 32 || a->dstate > 256) return nullptr;
  if (a->dtype == MP_BF16) return fwd_for_n<__nv_bfloat16>(a->dstate);
  if (a->dtype == MP_F16) return fwd_for_n<__half>(a->dstate);
  return nullptr;
}

int mma_fwd_smem_bytes(const MpSsdFwdArgs* a, bool state_only) {
  return state_only ? mma_state_smem_bytes(a, 1) : mma_plan(a->dstate).total;
}

// (b, chunk) pairs at the mma kernels' chunk: the scores have a->groups entries per pair, the
// chunk vectors a->heads.
static int64_t mma_chunk_pairs(const MpSsdFwdArgs* a) { return (int64_t)a->batch * ((a->seqlen + kMmaQ - 1) / kMmaQ); }

int64_t mma_scores_bytes(const MpSsdFwdArgs* a) {
  return mma_chunk_pairs(a) * a->groups * kScoreBytes + mma_chunk_vecs_bytes(a);  // the scores, then the vectors
}

cudaError_t mma_scores_launch(const MpSsdFwdArgs* a, bool vec, void* scores, cudaStream_t stream, const float** vecs) {
  const int smem = 2 * kMmaQ * (a->dstate + 8) * 2;
  const void* f = a->dtype == MP_BF16 ? (const void*)ssd_scores_kernel<__nv_bfloat16> : (const void*)ssd_scores_kernel<__half>;
  cudaError_t e = cudaFuncSetAttribute(f, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (e != cudaSuccess) return e;
  const int64_t blocks = mma_chunk_pairs(a) * a->groups;
  __nv_bfloat16* cb = static_cast<__nv_bfloat16*>(scores);
  float* v = reinterpret_cast<float*>(cb + blocks * (kScoreBytes / 2));
  *vecs = v;
  if (a->dtype == MP_BF16)
    ssd_scores_kernel<__nv_bfloat16><<<(unsigned)blocks, kThreads, smem, stream>>>(*a, vec, cb, v);
  else
    ssd_scores_kernel<__half><<<(unsigned)blocks, kThreads, smem, stream>>>(*a, vec, cb, v);
  return cudaGetLastError();
}

int64_t mma_chunk_vecs_bytes(const MpSsdFwdArgs* a) {
  return mma_chunk_pairs(a) * a->heads * 4 * kMmaQ * 4;
}

cudaError_t mma_chunk_vecs_launch(const MpSsdFwdArgs* a, float* vecs, cudaStream_t stream) {
  const int64_t blocks = mma_chunk_pairs(a) * ((a->heads + kWarps - 1) / kWarps);
  ssd_chunk_vecs_kernel<<<(unsigned)blocks, kThreads, 0, stream>>>(*a, vecs);
  return cudaGetLastError();
}

KernFn mma_state_kernel(const MpSsdFwdArgs* a, int split) {
  if (a->headdim % kMmaPT || a->dstate > 256 || (split != 1 && split != 2) || a->dstate % (32 * split)) return nullptr;
  if (a->dtype == MP_BF16) return split == 1 ? state_for_n<__nv_bfloat16, 1>(a->dstate) : state_for_n<__nv_bfloat16, 2>(a->dstate);
  if (a->dtype == MP_F16) return split == 1 ? state_for_n<__half, 1>(a->dstate) : state_for_n<__half, 2>(a->dstate);
  return nullptr;
}

int mma_state_smem_bytes(const MpSsdFwdArgs* a, int split) { return state_plan(a->dstate / split).total; }

}  // namespace mp_ssd

int mp_ssd_wgmma_built(void) {
  static std::atomic<int> known[mp_ssd::kMaxDevices];
  return mp_ssd::once_per_device(known, [](int) {
    int v = 0;
    return cudaMemcpyFromSymbol(&v, g_wgmma_built, sizeof v) == cudaSuccess && v != 0;
  });
}
