// Mamba-2 SSD scan backward, steps 3-4 (the gradient kernels), on mma.sync register fragments.
//
// Same math as ssd_scan_bwd.cu (derivation in its header; the notation below is the same: rows
// l, s of a chunk of Q = 64 steps, E_ls = exp(Acs_l - Acs_s) for s <= l, e_s = exp(Acs_end -
// Acs_s), Z_ls = dy_l.x_s, CB_ls = C_l.B_s, M = CB E dt_s, Wz = Z E dt_s, V_s = dS_out B_s). The
// WMMA kernels there stage every 16x16 product through shared memory to apply the elementwise
// steps; here the products are PTX mma.sync m16n8k16 with ldmatrix operand loads, and every
// elementwise step (decays, causal mask, dt, row scalings, the dAcs/ddt reductions) is applied to
// the accumulator registers, whose layout the PTX ISA fixes (mma_frag.cuh). A score tile computed
// in registers, rounded to 16 bits, is the A operand of the next product as it stands.
//
// For 16-bit inputs with Q = 64, P = 64, N % 32 == 0 (Nemotron-H 8B and 56B); the launcher in
// ssd_scan_bwd.cu takes the WMMA kernels for everything else.
#include "kernels/cuda/mma_frag.cuh"
#include "kernels/cuda/pdl.cuh"
#include "kernels/cuda/ssd_bwd_common.cuh"
#include "kernels/cuda/ssd_common.cuh"

namespace {

using namespace mp_ssd;

constexpr int kQ = 64, kP = 64;  // chunk and head dim this file handles
constexpr int kNs = 128;         // dB/dC kernel: N slice per block (its accumulators: 64 fp32 per thread)

// ldmatrix lane addressing, as in ssd_scan_fwd_mma.cu.
//  A operand (16 x 16 at rows r0, cols k0) from a row-major [row][k] array: row r0 + lr, col k0 + lc.
//  B operand, two n8 tiles x k16, from a [col][k] (k contiguous) array: row j0 + br, col k0 + bc.
//  B operand, two n8 tiles x k16, from a [k][col] array: transposed load at row k0 + lr, col j0 + lc.
struct Lanes {
  int lr, lc, br, bc;
  __device__ Lanes() {
    const int lane = threadIdx.x & 31;
    lr = (lane & 7) + ((lane >> 3) & 1) * 8;
    lc = (lane >> 4) * 8;
    br = (lane & 7) + (lane >> 4) * 8;
    bc = ((lane >> 3) & 1) * 8;
  }
};

// Sum over the four lanes of a quad (the lanes that hold one accumulator row).
__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}
// Sum over the eight quads (the lanes that hold one accumulator column).
__device__ __forceinline__ float column_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 4);
  v += __shfl_xor_sync(0xffffffffu, v, 8);
  return v + __shfl_xor_sync(0xffffffffu, v, 16);
}

// acc[i] += a * op[k0 .. k0 + 16, 8 i .. 8 i + 8) for the slice's nT n8 tiles, op row-major
// [k][n] with leading dimension ld (two tiles per transposed ldmatrix).
template <typename T, int MAXT>
__device__ __forceinline__ void mma_strip(float (&acc)[MAXT][4], const uint32_t (&a)[4], const T* op, int ld, int k0,
                                          int nT, const Lanes& ln) {
#pragma unroll
  for (int i = 0; i < MAXT; i += 2)
    if (i < nT) {
      uint32_t bf[4];
      ldsm_x4_t(bf, op + (k0 + ln.lr) * ld + 8 * i + ln.lc);
      mma16816<T>(acc[i], a, bf[0], bf[1]);
      mma16816<T>(acc[i + 1], a, bf[2], bf[3]);
    }
}

// Head h's X and dY rows of the chunk at t0 into Xs and dYs (rows at or past `valid` zeroed):
// the operands both gradient kernels load per head.
template <typename T>
__device__ __forceinline__ void load_x_dy(const MpSsdBwdArgs& ba, int b, int h, int t0, int valid, T* Xs, T* dYs,
                                          int ldP) {
  const MpSsdFwdArgs& a = ba.f;
  const T* xs = static_cast<const T*>(a.x) + b * a.x_sb + h * a.x_sh + (int64_t)t0 * a.x_sl;
  const T* ys = static_cast<const T*>(ba.dy) + b * ba.dy_sb + h * ba.dy_sh + (int64_t)t0 * ba.dy_sl;
  load_tile<T, kQ, kP>(Xs, ldP, xs, a.x_sl, valid);
  load_tile<T, kQ, kP>(dYs, ldP, ys, ba.dy_sl, valid);
}

// ================= dx, ddt, dA, dD, ddt_bias: block per (b, chunk, group) =================
//
// C B^T depends on the group, not the head, so the block computes it once and loops over the
// group's heads (32 at 56B) with it in registers; B stays in shared memory, C's buffer then
// takes each head's dS_out.
// Phase 0 (once): CB^T = B C^T (K = N) in 20 units of (16 rows s, 8 cols l) covering the tiles
//   with l >= s (16-row block sr, l-tiles 2 sr .. 7), units u = warp, warp + 8, warp + 16.
// Per head:
// Phase 1: per unit, Z^T = X dY^T (K = P) in registers; M^T_sl = CB^T E dt_s -> shared memory
//   (the A operand of phase 2, needed by other warps' rows), ddt_s += Z CB E (row sums),
//   R = Z M: dAcs_l += sum_s R (column sums), dAcs_s -= sum_l R (row sums). Each unit stores its
//   16 row sums and 8 column sums (UnitSums); no two units share a slot.
// Phase 2: warp w rows 16 (w % 4), cols 32 (w / 4): dx = M^T dY + dt_s e_s (B dS_out^T) + D dy,
//   x.V row sums (one array per column half), dD. The two warps with the least phase-2 work (one
//   row block each) add the units' sums into the head's per-row dacs and ddt, in a fixed order.
//   Float atomics on shared memory are compare-and-swap loops on this card, and the 8 units of
//   the first row block hit the same rows at once: ~2.9 tries per add (Nsight Compute SASS).
// The per-row sums of a head (dacs, ddt, x.V) go to one of kSumRing slots; every kSumRing heads,
// while the next head's loads are in flight, each warp turns one slot into that head's ddt and
// its parts of dA and ddt_bias (dt_tail_global). One warp doing each head's tail in turn kept
// the other seven waiting at the barrier: 30% of the kernel's stall samples (Nsight Compute).
constexpr int kSumRing = kWarps;
struct DxPlan {
  int ldN, ldP, offB, offU, offX, offDY, offMt, offVec, offSums, offUnit, total;
};
constexpr int kUnits = 20, kMaxUnits = (kUnits + kWarps - 1) / kWarps;
// Phase 1's per-unit partial sums: Z CB E row sums (ddt), Z M row sums and column sums (dacs).
struct UnitSums {
  float rowd[kUnits][16], rowr[kUnits][16], col[kUnits][8];
};
// A slot of the ring: intra-chunk dacs, direct ddt terms, x.V of column halves 0 and 1.
constexpr int kSlotRows = 4;
__host__ __device__ inline DxPlan dx_plan(int N) {
  DxPlan p;
  p.ldN = N + 8;
  p.ldP = kP + 8;
  int o = 0;
  p.offB = o;   o = align128(o + kQ * p.ldN * 2);
  p.offU = o;   o = align128(o + kQ * p.ldN * 2);  // C, then each head's dS_out [P, N]
  p.offX = o;   o = align128(o + kQ * p.ldP * 2);
  p.offDY = o;  o = align128(o + kQ * p.ldP * 2);
  p.offMt = o;  o = align128(o + kQ * p.ldP * 2);  // M^T [s][l]
  p.offVec = o; o = align128(o + 4 * kQ * 4);             // dt, Acs, exp(Acs), fw (chunk_vecs)
  p.offSums = o; o = align128(o + kSumRing * kSlotRows * kQ * 4);
  p.offUnit = o; o = align128(o + (int)sizeof(UnitSums));
  p.total = o;  // 107,648 bytes at N = 256: two blocks per SM
  return p;
}

// Unit u of the lower triangle -> 16-row block sr (rows s) and n8 tile jn (columns l), jn >= 2 sr.
__device__ __forceinline__ void unit_tile(int u, int& sr, int& jn) {
  sr = u < 8 ? 0 : u < 14 ? 1 : u < 18 ? 2 : 3;
  jn = u - (sr == 0 ? 0 : sr == 1 ? 6 : sr == 2 ? 10 : 12);
}
// Its inverse: the unit at row block sr, n8 tile jn (jn >= 2 sr).
__device__ __forceinline__ int unit_at(int sr, int jn) { return jn + (sr == 0 ? 0 : sr == 1 ? 6 : sr == 2 ? 10 : 12); }

// One warp (which = 0: ddt, 1: dacs): a head's per-row sums from the units' partial sums, each
// row's terms added in unit order (the result does not depend on timing). Row i of row block
// sr = i / 16 collects the units (sr, jn) for jn = 2 sr .. 7; column l of tile jn = l / 8 the
// units (sr, jn) for sr = 0 .. jn / 2.
__device__ __forceinline__ void reduce_unit_sums(const UnitSums& us, int which, float* out) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int k = 0; k < 2; ++k) {
    const int i = lane + 32 * k, sr = i >> 4, jn = i >> 3, ri = i & 15, ci = i & 7;
    float v = 0.f;
    if (which == 0) {
#pragma unroll
      for (int j = 0; j < 8; ++j)
        if (j >= 2 * sr) v += us.rowd[unit_at(sr, j)][ri];
    } else {
#pragma unroll
      for (int r = 0; r < 4; ++r)
        if (2 * r <= jn) v += us.col[unit_at(r, jn)][ci];
#pragma unroll
      for (int j = 0; j < 8; ++j)
        if (j >= 2 * sr) v -= us.rowr[unit_at(sr, j)][ri];
    }
    out[i] = v;
  }
}

// acc (16 x 8) += A rows r0 .. r0 + 15 of a [row][k] array times op^T, op rows j0 .. j0 + 7 of
// a [col][k] array, over k < K (K % 32 == 0): two k16 steps per ldmatrix of op.
template <typename T>
__device__ __forceinline__ void unit_product(float (&acc)[4], const T* A, int lda, int r0, const T* op, int ldo, int j0,
                                             int K, const Lanes& ln) {
  const int lane = threadIdx.x & 31, cr = j0 + (lane & 7), ck = 8 * (lane >> 3);
  for (int k = 0; k < K; k += 32) {
    uint32_t a0[4], a1[4], bf[4];  // bf: matrices (k +0, +8, +16, +24) -> (b0, b1) of two k16 steps
    ldsm_x4(a0, A + (r0 + ln.lr) * lda + k + ln.lc);
    ldsm_x4(a1, A + (r0 + ln.lr) * lda + k + 16 + ln.lc);
    ldsm_x4(bf, op + cr * ldo + k + ck);
    mma16816<T>(acc, a0, bf[0], bf[1]);
    mma16816<T>(acc, a1, bf[2], bf[3]);
  }
}

// One warp: head h's dt tail (dt_tail_rows) from its per-row sums in shared memory (a ring
// slot: dacs, ddt, and x.V in two column halves, as [4][Q]), its chunk vectors (dt, Acs) from
// global memory and the raw dt for softplus's derivative.
__device__ void dt_tail_global(const MpSsdBwdArgs& ba, int b, int c, int h, int nch, const float* vecs, float* sums,
                               const float* dacs_g) {
  constexpr int Q = kQ, E = Q / 32;
  const MpSsdFwdArgs& a = ba.f;
  const int lane = threadIdx.x & 31, t0 = c * Q;
  const float* v = vecs + ((int64_t)(b * nch + c) * a.heads + h) * (4 * Q);
  const float bias = a.dt_bias ? a.dt_bias[h] : 0.f, end = v[2 * Q - 1];  // Acs of the chunk's last row
  DtTailRows<E> r;
#pragma unroll
  for (int e = 0; e < E; ++e) {
    const int l = lane * E + e, t = t0 + l;
    r.dt[e] = v[l];
    r.ee[e] = __expf(end - v[Q + l]);
    r.pre[e] = t < a.seqlen ? load_any(a.dt, a.dt_dtype, b * a.dt_sb + (int64_t)t * a.dt_sl + h * a.dt_sh) + bias : 0.f;
    r.dacs[e] = sums[l], r.ddt[e] = sums[Q + l], r.xv[e] = sums[2 * Q + l] + sums[3 * Q + l];
  }
  dt_tail_rows<Q>(ba, b, h, t0, nch, a.A[h], r, dacs_g);
}

// kN (both kernels): N when it is 128 or 256, else 0 = read from the arguments; a compile-time N
// folds index arithmetic and tile predicates (as in the forward, ssd_scan_fwd_mma.cu).
template <typename T, int kN>
__global__ void __launch_bounds__(kThreads, 2) ssd_bwd_dx_mma_kernel(MpSsdBwdArgs ba, const T* Sb, const float* dacs_g,
                                                                    const float* vecs) {
  constexpr int Q = kQ, P = kP;
  const MpSsdFwdArgs& a = ba.f;
  const int N = kN ? kN : a.dstate, L = a.seqlen, H = a.heads, G = a.groups, Hg = H / G, nch = (L + Q - 1) / Q;
  int bid = blockIdx.x;
  const int g = bid % G;
  bid /= G;
  const int c = bid % nch, b = bid / nch, t0 = c * Q;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gq = lane >> 2, tq = lane & 3;
  const int rb = warp & 3, ch = warp >> 2;
  const Lanes ln;

  extern __shared__ __align__(128) unsigned char smem[];
  const DxPlan pl = dx_plan(N);
  const int ldN = pl.ldN, ldP = pl.ldP;
  T* Bs = reinterpret_cast<T*>(smem + pl.offB);
  T* Us = reinterpret_cast<T*>(smem + pl.offU);
  T* Xs = reinterpret_cast<T*>(smem + pl.offX);
  T* dYs = reinterpret_cast<T*>(smem + pl.offDY);
  T* Mt = reinterpret_cast<T*>(smem + pl.offMt);
  float* dtv = reinterpret_cast<float*>(smem + pl.offVec);
  float* acs = dtv + Q;
  float* fw = acs + 2 * Q;  // dt_s e_s
  float* sums = reinterpret_cast<float*>(smem + pl.offSums);
  UnitSums& us = *reinterpret_cast<UnitSums*>(smem + pl.offUnit);

  load_rows<T>(Bs, ldN, static_cast<const T*>(a.B) + b * a.B_sb + g * a.B_sg, a.B_sl, t0, Q, L, N, true);
  load_rows<T>(Us, ldN, static_cast<const T*>(a.C) + b * a.C_sb + g * a.C_sg, a.C_sl, t0, Q, L, N, true);
  cp_async_wait_all();
  __syncthreads();

  // ---- Phase 0: this warp's units of CB^T, kept for every head.
  float cb[kMaxUnits][4];
#pragma unroll
  for (int r = 0; r < kMaxUnits; ++r) {
    cb[r][0] = cb[r][1] = cb[r][2] = cb[r][3] = 0.f;
    const int u = warp + kWarps * r;
    if (u < kUnits) {
      int sr, jn;
      unit_tile(u, sr, jn);
      unit_product<T>(cb[r], Bs, ldN, 16 * sr, Us, ldN, 8 * jn, N, ln);
    }
  }

  // One head's operands: X and dY, and its dS_out [P, N] into C's buffer.
  const int valid = min(Q, L - t0);
  auto load_xy = [&](int h) {
    load_x_dy<T>(ba, b, h, t0, valid, Xs, dYs, ldP);
    const float* src = vecs + ((int64_t)(b * nch + c) * H + h) * (4 * Q);
    if (threadIdx.x < Q) cp_async16(dtv + 4 * threadIdx.x, src + 4 * threadIdx.x, true);
  };
  auto load_adjoint = [&](int h) {
    const T* src = Sb + ((int64_t)(b * nch + c) * H + h) * P * N;
    if constexpr (kN != 0)
      load_tile<T, P, kN>(Us, ldN, src, N, P);
    else
      load_rows<T>(Us, ldN, src, N, 0, P, P, N, true);
  };

  for (int hh = 0; hh <= Hg; ++hh) {
    const int h = g * Hg + hh;
    // The previous head's reads (at the first, phase 0's reads of C) and its per-row sums are done.
    __syncthreads();
    if (hh < Hg) {
      load_xy(h);
      load_adjoint(h);
    }
    if (hh > 0 && (hh % kSumRing == 0 || hh == Hg)) {
      // Launched as a programmatic dependent of the dB/dC kernel (pdl.cuh), which adds its part
      // of dAcs into dacs_g: the tails read that, so the first waits for the kernel's end. The
      // heads before it fill the SMs that kernel's last blocks leave idle.
      pdl_wait();
      // While this head's loads are in flight: the dt tails of the heads since the last ones,
      // warp w taking slot w (the first of them is a multiple of kSumRing).
      const int first = (hh - 1) / kSumRing * kSumRing;
      if (warp < hh - first)
        dt_tail_global(ba, b, c, g * Hg + first + warp, nch, vecs, sums + warp * kSlotRows * Q, dacs_g);
    }
    if (hh == Hg) break;
    float* dacs = sums + (hh % kSumRing) * kSlotRows * Q;  // this head's slot: intra-chunk dAcs,
    float* ddt = dacs + Q;                                  // direct dt terms,
    float* xv = ddt + Q + ch * Q;                           // x_s . V_s over this warp's columns
    const float Dh = a.D[h];
    cp_async_wait_all();
    __syncthreads();

    // ---- Phase 1: Z^T per unit; M^T, the dAcs and ddt sums.
#pragma unroll
    for (int r = 0; r < kMaxUnits; ++r) {
      const int u = warp + kWarps * r;
      if (u >= kUnits) continue;
      int sr, jn;
      unit_tile(u, sr, jn);
      const int l0 = 8 * jn, s0 = 16 * sr + gq, lc0 = l0 + 2 * tq;
      float z[4] = {0.f, 0.f, 0.f, 0.f};
      unit_product<T>(z, Xs, ldP, 16 * sr, dYs, ldP, l0, P, ln);
      // Element i: row s = s0 (+8 for i >= 2), col l = lc0 + (i & 1).
      float rowd[2] = {0.f, 0.f}, rowr[2] = {0.f, 0.f}, colr[2] = {0.f, 0.f}, m[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        // Branch-free (as the forward's W): the exp of 0 off the mask, selects instead of branches.
        const int s = s0 + 8 * (i >> 1), l = lc0 + (i & 1);
        const bool on = s <= l;
        const float e = __expf(on ? acs[l] - acs[s] : 0.f);
        const float cbE = on ? cb[r][i] * e : 0.f;
        m[i] = cbE * dtv[s];
        rowd[i >> 1] += z[i] * cbE;
        const float rr = s < l ? z[i] * m[i] : 0.f;
        rowr[i >> 1] += rr;
        colr[i & 1] += rr;
      }
      *reinterpret_cast<uint32_t*>(Mt + s0 * ldP + lc0) = pack2<T>(m[0], m[1]);
      *reinterpret_cast<uint32_t*>(Mt + (s0 + 8) * ldP + lc0) = pack2<T>(m[2], m[3]);
#pragma unroll
      for (int k = 0; k < 2; ++k) {
        const float d = quad_sum(rowd[k]), rr = quad_sum(rowr[k]);
        if (tq == 0) {
          us.rowd[u][gq + 8 * k] = d;
          us.rowr[u][gq + 8 * k] = rr;
        }
        const float cs = column_sum(colr[k]);
        if (gq == 0) us.col[u][2 * tq + k] = cs;
      }
    }
    __syncthreads();  // M^T and the units' sums complete

    // ---- Phase 2: dx = M^T dY + dt_s e_s V + D dy, V = B dS_out^T (as the forward's C S^T).
    float D[4][4], V[4][4];
#pragma unroll
    for (int n = 0; n < 4; ++n) {
      D[n][0] = D[n][1] = D[n][2] = D[n][3] = 0.f;
      V[n][0] = V[n][1] = V[n][2] = V[n][3] = 0.f;
    }
    for (int j = rb; j < 4; ++j) {
      uint32_t af[4];
      ldsm_x4(af, Mt + (16 * rb + ln.lr) * ldP + 16 * j + ln.lc);
#pragma unroll
      for (int q = 0; q < 2; ++q) {
        uint32_t yf[4];  // dY as B (k = l, col = p) from dY [l][p]: transposed
        ldsm_x4_t(yf, dYs + (16 * j + ln.lr) * ldP + 32 * ch + 16 * q + ln.lc);
        mma16816<T>(D[2 * q], af, yf[0], yf[1]);
        mma16816<T>(D[2 * q + 1], af, yf[2], yf[3]);
      }
    }
    for (int k = 0; k < N; k += 16) {
      uint32_t af[4], b01[4], b23[4];
      ldsm_x4(af, Bs + (16 * rb + ln.lr) * ldN + k + ln.lc);
      ldsm_x4(b01, Us + (32 * ch + ln.br) * ldN + k + ln.bc);
      ldsm_x4(b23, Us + (32 * ch + 16 + ln.br) * ldN + k + ln.bc);
      mma16816<T>(V[0], af, b01[0], b01[1]);
      mma16816<T>(V[1], af, b01[2], b01[3]);
      mma16816<T>(V[2], af, b23[0], b23[1]);
      mma16816<T>(V[3], af, b23[2], b23[3]);
    }
    T* dxg = static_cast<T*>(ba.dx) + b * ba.dx_sb + h * ba.dx_sh;
    float dsum = 0.f;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int s = 16 * rb + gq + 8 * r;
      const float f = fw[s];
      float xvs = 0.f;
#pragma unroll
      for (int n = 0; n < 4; ++n) {
        const int p = 32 * ch + 8 * n + 2 * tq;
        const float2 xx = unpack2<T>(*reinterpret_cast<const uint32_t*>(Xs + s * ldP + p));
        const float2 dy = unpack2<T>(*reinterpret_cast<const uint32_t*>(dYs + s * ldP + p));
        const float v0 = V[n][2 * r], v1 = V[n][2 * r + 1];
        xvs += xx.x * v0 + xx.y * v1;
        dsum += xx.x * dy.x + xx.y * dy.y;
        if (t0 + s < L)
          *reinterpret_cast<uint32_t*>(dxg + (int64_t)(t0 + s) * ba.dx_sl + p) =
              pack2<T>(D[n][2 * r] + f * v0 + Dh * dy.x, D[n][2 * r + 1] + f * v1 + Dh * dy.y);
      }
      xvs = quad_sum(xvs);
      if (tq == 0) xv[s] = xvs;
    }
    dsum = warp_sum(dsum);
    if (lane == 0 && dsum != 0.f) atomicAdd(ba.dD + h, dsum);
    if (rb == 3) reduce_unit_sums(us, ch, ch == 0 ? ddt : dacs);
  }
}

// ============ dB, dC (and dAcs's inter-chunk and end terms): block per (b, chunk, group, N slice) ============
//
// The block loops over the group's heads and accumulates dC and dB [Q, slice] in registers, so
// the sum over heads needs no atomics. Per head, all warps first build Wz^T = (X dY^T) E dt_s
// (s <= l) in the dx kernel's 20 units and store it in shared memory (it serves both halves
// below, one rows-s and one rows-l, so neither recomputes the other's transpose). Then warps
// 0-3 own dC rows 16 w, warps 4-7 dB rows 16 (w - 4), each over the whole slice (up to 16 n8
// tiles, 64 fp32 per thread):
//   dC_l += sum_{s <= l} Wz_ls B_s + exp(Acs_l) (dY S_in)_l   (Wz by transposed ldmatrix of Wz^T;
//           dY S_in in 16-column pieces, whose dot with C_l is this slice's part of the
//           inter-chunk dAcs_l term);
//   dB_s += sum_{l >= s} Wz^T_sl C_l + (Xw dS_out)_s          (Xw = X dt e, scaled by row in the
//           A fragments).
// A dC warp's Wz work grows with its row block and a dB warp's shrinks, so the two halves
// carry the same Wz work; the dC half's inter-chunk dAcs term (every element scaled, dotted
// with C, added) is extra, so the dB half also takes the end term of dAcs,
// exp(Acs_end) <dS_out, S_in>, and fetches the next head's dS_out as soon as its own four warps
// are done with it. The next head's S_in loads a whole head ahead into the second of two
// buffers (the block's shared memory is then exactly two blocks per SM); Nsight Compute had 16%
// of the stall samples at the head's first barrier, waiting on these loads.
struct DbcPlan {
  int ldS, ldP, offB, offC, offX, offDY, offSin, offDS, offWz, offVec, total;  // offSin: two buffers
};
__host__ __device__ inline DbcPlan dbc_plan() {
  DbcPlan p;
  p.ldS = kNs + 8;
  p.ldP = kP + 8;
  int o = 0;
  p.offB = o;   o = align128(o + kQ * p.ldS * 2);
  p.offC = o;   o = align128(o + kQ * p.ldS * 2);
  p.offX = o;   o = align128(o + kQ * p.ldP * 2);
  p.offDY = o;  o = align128(o + kQ * p.ldP * 2);
  p.offSin = o; o = align128(o + 2 * kP * p.ldS * 2);
  p.offDS = o;  o = align128(o + kP * p.ldS * 2);
  p.offWz = o;  o = align128(o + kQ * p.ldP * 2);  // Wz^T [s][l]
  p.offVec = o; o = align128(o + 4 * kQ * 4);
  p.total = o;  // 115,712 bytes: exactly two blocks per SM (228 KB less 1 KB each)
  return p;
}

template <typename T, int kN>
__global__ void __launch_bounds__(kThreads, 2) ssd_bwd_dbc_mma_kernel(MpSsdBwdArgs ba, const T* Sf, const T* Sb,
                                                                     float* dacs_g, const float* vecs) {
  constexpr int Q = kQ, P = kP, MAXT = kNs / 8;
  const MpSsdFwdArgs& a = ba.f;
  const int N = kN ? kN : a.dstate, L = a.seqlen, H = a.heads, G = a.groups, Hg = H / G;
  const int nch = (L + Q - 1) / Q, nsl = (N + kNs - 1) / kNs;
  int bid = blockIdx.x;
  const int sl = bid % nsl;
  bid /= nsl;
  const int g = bid % G;
  bid /= G;
  const int c = bid % nch, b = bid / nch;
  // Slice width: a compile-time kNs where N is a multiple of it (128, 256), so the tile
  // predicates and the row copies' index arithmetic fold.
  constexpr bool kFixedSlice = kN != 0 && kN % kNs == 0;
  const int t0 = c * Q, n0 = sl * kNs, ns = kFixedSlice ? kNs : min(kNs, N - n0), nT = ns / 8;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gq = lane >> 2, tq = lane & 3;
  const int rb = warp & 3;
  const bool isB = warp >= 4;
  const Lanes ln;

  extern __shared__ __align__(128) unsigned char smem[];
  const DbcPlan pl = dbc_plan();
  const int ldS = pl.ldS, ldP = pl.ldP;
  T* Bs = reinterpret_cast<T*>(smem + pl.offB);
  T* Cs = reinterpret_cast<T*>(smem + pl.offC);
  T* Xs = reinterpret_cast<T*>(smem + pl.offX);
  T* dYs = reinterpret_cast<T*>(smem + pl.offDY);
  T* Sin2 = reinterpret_cast<T*>(smem + pl.offSin);  // S_in of even heads, then odd ones
  T* dSo = reinterpret_cast<T*>(smem + pl.offDS);
  T* WzT = reinterpret_cast<T*>(smem + pl.offWz);
  float* dtv = reinterpret_cast<float*>(smem + pl.offVec);
  float* acs = dtv + Q;
  float* ea = acs + Q;      // exp(Acs_l)
  float* fw = ea + Q;       // dt_s e_s

  load_rows<T>(Bs, ldS, static_cast<const T*>(a.B) + b * a.B_sb + g * a.B_sg + n0, a.B_sl, t0, Q, L, ns, true);
  load_rows<T>(Cs, ldS, static_cast<const T*>(a.C) + b * a.C_sb + g * a.C_sg + n0, a.C_sl, t0, Q, L, ns, true);

  // One head's operands, in three sets so that each can be fetched as soon as its buffers are
  // free: X, dY and the chunk vectors (dt, Acs, exp(Acs), fw: the layout of dtv .. fw here,
  // from mma_chunk_vecs_launch) once the previous head has them in registers; this slice of
  // S_in into the other of its two buffers a whole head ahead; dS_out once the previous head's
  // products are done.
  const int valid = min(Q, L - t0);
  auto load_xy = [&](int h) {
    load_x_dy<T>(ba, b, h, t0, valid, Xs, dYs, ldP);
    const float* src = vecs + ((int64_t)(b * nch + c) * H + h) * (4 * Q);
    if (threadIdx.x < Q) cp_async16(dtv + 4 * threadIdx.x, src + 4 * threadIdx.x, true);
  };
  auto load_state = [&](const T* S, T* dst, int h) {
    const int64_t soff = ((int64_t)(b * nch + c) * H + h) * P * N + n0;
    if constexpr (kFixedSlice)
      load_tile<T, P, kNs>(dst, ldS, S + soff, N, P);
    else
      load_rows<T>(dst, ldS, S + soff, N, 0, P, P, ns, true);
  };
  load_xy(g * Hg);
  // Launched as a programmatic dependent of the adjoint walk (pdl.cuh): the inputs and chunk
  // vectors above were complete before it; the states are read from here on. The dx kernel
  // after this one reads the states too, so it may start only once they are complete.
  pdl_wait();
  pdl_release();
  load_state(Sf, Sin2, g * Hg);
  load_state(Sb, dSo, g * Hg);

  float acc[MAXT][4];
#pragma unroll
  for (int i = 0; i < MAXT; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.f;
  const int r0 = 16 * rb + gq, r1 = r0 + 8;  // this lane's accumulator rows (l for dC, s for dB)

  for (int hh = 0; hh < Hg; ++hh) {
    const int h = g * Hg + hh;
    cp_async_wait_all();
    __syncthreads();  // this head's operands are in

    T* Sin = Sin2 + (hh & 1) * P * ldS;
    if (hh + 1 < Hg) load_state(Sf, Sin2 + ((hh + 1) & 1) * P * ldS, h + 1);

    // Wz^T = Z^T E dt_s (s <= l), Z^T = X dY^T, in the dx kernel's 20 units of (16 rows s,
    // 8 cols l): computed once per head into shared memory, read by both halves of the block.
#pragma unroll
    for (int r = 0; r < kMaxUnits; ++r) {
      const int u = warp + kWarps * r;
      if (u >= kUnits) continue;
      int sr, jn;
      unit_tile(u, sr, jn);
      const int s0 = 16 * sr + gq, lc0 = 8 * jn + 2 * tq;
      float z[4] = {0.f, 0.f, 0.f, 0.f};
      unit_product<T>(z, Xs, ldP, 16 * sr, dYs, ldP, 8 * jn, P, ln);
      float w[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int sv = s0 + 8 * (i >> 1), l = lc0 + (i & 1);
        const bool on = sv <= l;  // branch-free, as above
        const float e = __expf(on ? acs[l] - acs[sv] : 0.f);
        w[i] = on ? z[i] * e * dtv[sv] : 0.f;
      }
      *reinterpret_cast<uint32_t*>(WzT + s0 * ldP + lc0) = pack2<T>(w[0], w[1]);
      *reinterpret_cast<uint32_t*>(WzT + (s0 + 8) * ldP + lc0) = pack2<T>(w[2], w[3]);
    }
    // This warp's A operand rows for K = P (dY rows l for dC, X rows s for dB) and row weights
    // go to registers, so the next head's X, dY and vectors can load during the products below.
    uint32_t fa[4][4];
#pragma unroll
    for (int k = 0; k < 4; ++k) ldsm_x4(fa[k], (isB ? Xs : dYs) + (16 * rb + ln.lr) * ldP + 16 * k + ln.lc);
    const float w0 = isB ? fw[r0] : ea[r0], w1 = isB ? fw[r1] : ea[r1], e_end = ea[Q - 1];
    __syncthreads();  // Wz^T complete; X, dY and the vectors read
    if (hh + 1 < Hg) load_xy(h + 1);

    if (!isB) {
      // ---- dC rows l = 16 rb ..: Wz (rows l, k = s) from Wz^T [s][l] by transposed ldmatrix.
      for (int j = 0; j <= rb; ++j) {
        uint32_t wf[4];
        ldsm_x4_t(wf, WzT + (16 * j + (lane & 7) + (lane >> 4) * 8) * ldP + 16 * rb + ((lane >> 3) & 1) * 8);
        mma_strip<T>(acc, wf, Bs, ldS, 16 * j, nT, ln);  // B (k = s, col = n) from B [s][n]
      }
      // exp(Acs_l) (dY S_in) in 16-column pieces; its row dot with C is the inter-chunk dAcs term.
      float d0 = 0.f, d1 = 0.f;
#pragma unroll
      for (int q = 0; q < MAXT; q += 2)
        if (q < nT) {
          float U[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
#pragma unroll
          for (int k = 0; k < 4; ++k) {
            uint32_t bf[4];  // S_in (k = p, col = n) from S_in [p][n]: transposed
            ldsm_x4_t(bf, Sin + (16 * k + ln.lr) * ldS + 8 * q + ln.lc);
            mma16816<T>(U[0], fa[k], bf[0], bf[1]);
            mma16816<T>(U[1], fa[k], bf[2], bf[3]);
          }
#pragma unroll
          for (int n = 0; n < 2; ++n) {  // the row weights: one FFMA per element here, once per row below
            const int col = 8 * (q + n) + 2 * tq;
            const float2 c0 = unpack2<T>(*reinterpret_cast<const uint32_t*>(Cs + r0 * ldS + col));
            const float2 c1 = unpack2<T>(*reinterpret_cast<const uint32_t*>(Cs + r1 * ldS + col));
            d0 += U[n][0] * c0.x + U[n][1] * c0.y;
            d1 += U[n][2] * c1.x + U[n][3] * c1.y;
            acc[q + n][0] = fmaf(U[n][0], w0, acc[q + n][0]), acc[q + n][1] = fmaf(U[n][1], w0, acc[q + n][1]);
            acc[q + n][2] = fmaf(U[n][2], w1, acc[q + n][2]), acc[q + n][3] = fmaf(U[n][3], w1, acc[q + n][3]);
          }
        }
      d0 = quad_sum(d0) * w0;
      d1 = quad_sum(d1) * w1;
      if (tq == 0) {
        float* dg = dacs_g + ((int64_t)b * H + h) * nch * Q + t0;
        atomicAdd(dg + r0, d0);
        atomicAdd(dg + r1, d1);
      }
    } else {
      // ---- dB rows s = 16 rb ..: Wz^T (rows s, k = l) straight from shared memory.
      for (int j = rb; j < 4; ++j) {
        uint32_t wf[4];
        ldsm_x4(wf, WzT + (16 * rb + ln.lr) * ldP + 16 * j + ln.lc);
        mma_strip<T>(acc, wf, Cs, ldS, 16 * j, nT, ln);  // C (k = l, col = n) from C [l][n]
      }
      // Xw dS_out: X's A fragments scaled by fw per row (a0, a2: row r0; a1, a3: row r1).
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        uint32_t xw[4];
        xw[0] = scale2<T>(fa[k][0], w0, w0);
        xw[1] = scale2<T>(fa[k][1], w1, w1);
        xw[2] = scale2<T>(fa[k][2], w0, w0);
        xw[3] = scale2<T>(fa[k][3], w1, w1);
        mma_strip<T>(acc, xw, dSo, ldS, 16 * k, nT, ln);  // dS_out (k = p, col = n) from dS_out [p][n]
      }
      // End term of dAcs, exp(Acs_end) <dS_out, S_in> (this slice's part), here because the dB
      // half has less to do than the dC half (the inter-chunk dAcs term's elementwise work).
      const int tid = threadIdx.x - kThreads / 2;
      float e = 0.f;
      if constexpr (kFixedSlice) {  // 16-byte pieces: each thread 8 columns of P / 8 rows
        constexpr int NV = kNs / 8, STEP = kThreads / 2 / NV;
        const int n = (tid % NV) * 8;
#pragma unroll
        for (int p = tid / NV; p < P; p += STEP) {
          const uint4 u = *reinterpret_cast<const uint4*>(Sin + p * ldS + n);
          const uint4 v = *reinterpret_cast<const uint4*>(dSo + p * ldS + n);
          e += dot2<T>(u.x, v.x) + dot2<T>(u.y, v.y) + dot2<T>(u.z, v.z) + dot2<T>(u.w, v.w);
        }
      } else {  // 32-bit pairs; ns is 32, 64, 96 or 128, so a row takes <= 64 threads
        const int nv = ns / 2;
        const int n = 2 * (tid % nv), step = kThreads / 2 / nv;
        if (tid < step * nv)
          for (int p = tid / nv; p < P; p += step)
            e += dot2<T>(*reinterpret_cast<const uint32_t*>(Sin + p * ldS + n),
                         *reinterpret_cast<const uint32_t*>(dSo + p * ldS + n));
      }
      e = warp_sum(e);
      if (lane == 0 && e != 0.f) atomicAdd(dacs_g + ((int64_t)b * H + h) * nch * Q + t0 + Q - 1, e * e_end);
      if constexpr (kFixedSlice) {
        // Only this half reads dS_out: once all four of its warps are done (named barrier 1),
        // they fetch the next head's while the dC half finishes.
        if (hh + 1 < Hg) {
          asm volatile("bar.sync 1, %0;" ::"n"(kThreads / 2) : "memory");
          load_tile_by<T, P, kNs, kThreads / 2>(dSo, ldS, Sb + ((int64_t)(b * nch + c) * H + h + 1) * P * N + n0, N, P, tid);
        }
      }
    }
    __syncthreads();  // S_in (and dS_out) read
    if (!kFixedSlice && hh + 1 < Hg) load_state(Sb, dSo, h + 1);
  }

  // dC (warps 0-3) or dB (warps 4-7) rows of this chunk (t < L), columns of this slice.
  T* out = static_cast<T*>(isB ? ba.dB : ba.dC);
#pragma unroll
  for (int i = 0; i < MAXT; ++i)
    if (i < nT) {
      const int n = n0 + 8 * i + 2 * tq;
      if (t0 + r0 < L)
        *reinterpret_cast<uint32_t*>(out + (((int64_t)b * L + t0 + r0) * G + g) * N + n) = pack2<T>(acc[i][0], acc[i][1]);
      if (t0 + r1 < L)
        *reinterpret_cast<uint32_t*>(out + (((int64_t)b * L + t0 + r1) * G + g) * N + n) = pack2<T>(acc[i][2], acc[i][3]);
    }
}

template <typename T, int kN>
cudaError_t launch(const MpSsdBwdArgs& a, const void* Sf, const void* Sb, float* dacs, const float* vecs, cudaStream_t stream) {
  const int nch = (a.f.seqlen + kQ - 1) / kQ, nsl = (a.f.dstate + kNs - 1) / kNs;
  const int s1 = dbc_plan().total, s2 = dx_plan(a.f.dstate).total;
  auto k1 = ssd_bwd_dbc_mma_kernel<T, kN == 128 ? 0 : kN>;  // at 128 the fixed N spills 60 bytes
  auto k2 = ssd_bwd_dx_mma_kernel<T, kN>;
  cudaError_t e = cudaFuncSetAttribute((const void*)k1, cudaFuncAttributeMaxDynamicSharedMemorySize, s1);
  if (e == cudaSuccess) e = cudaFuncSetAttribute((const void*)k2, cudaFuncAttributeMaxDynamicSharedMemorySize, s2);
  if (e != cudaSuccess) return e;
  // Both as programmatic dependents of the kernel before them (pdl.cuh; each waits where it
  // first reads that kernel's output).
  const T *sf = static_cast<const T*>(Sf), *sb = static_cast<const T*>(Sb);
  e = launch_dependent(k1, (unsigned)((int64_t)a.f.batch * nch * a.f.groups * nsl), kThreads, s1, stream, true, a, sf,
                       sb, dacs, vecs);
  if (e != cudaSuccess) return e;
  return launch_dependent(k2, (unsigned)((int64_t)a.f.batch * nch * a.f.groups), kThreads, s2, stream, true, a, sb,
                          static_cast<const float*>(dacs), vecs);
}

template <typename T>
cudaError_t launch_n(const MpSsdBwdArgs& a, const void* Sf, const void* Sb, float* dacs, const float* vecs,
                     cudaStream_t stream) {
  if (a.f.dstate == 256) return launch<T, 256>(a, Sf, Sb, dacs, vecs, stream);
  if (a.f.dstate == 128) return launch<T, 128>(a, Sf, Sb, dacs, vecs, stream);
  return launch<T, 0>(a, Sf, Sb, dacs, vecs, stream);
}

}  // namespace

namespace mp_ssd {

bool bwd_mma_applies(const MpSsdBwdArgs& a, int Q, bool vec) {
  const MpSsdFwdArgs& f = a.f;
  if (f.dtype == MP_F32 || Q != kQ || f.headdim != kP || f.dstate % 32 || f.dstate > 256 || !vec) return false;
  if (!aligned16(a.dx) || a.dx_sl % 2 || a.dx_sb % 2 || a.dx_sh % 2) return false;
  const int need = dx_plan(f.dstate).total > dbc_plan().total ? dx_plan(f.dstate).total : dbc_plan().total;
  return need <= max_smem_optin();
}

cudaError_t bwd_mma_launch(const MpSsdBwdArgs& a, const void* Sf, const void* Sb, float* dacs, const float* vecs, bool vec,
                           cudaStream_t stream) {
  if (!bwd_mma_applies(a, kQ, vec)) return cudaErrorInvalidValue;
  return a.f.dtype == MP_BF16 ? launch_n<__nv_bfloat16>(a, Sf, Sb, dacs, vecs, stream)
                              : launch_n<__half>(a, Sf, Sb, dacs, vecs, stream);
}

}  // namespace mp_ssd
