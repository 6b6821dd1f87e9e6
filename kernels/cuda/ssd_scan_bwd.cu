// Mamba-2 SSD scan, backward: chunk-parallel CUDA kernels.
//
// Per batch b, head h, chunk of Q steps from t0 (local rows l, s), with dt the effective step
// (bias, softplus, clamp), Acs the inclusive cumulative sum of dt*A in the chunk, and
//   E_ls = exp(Acs_l - Acs_s) (s <= l, else 0),  e_s = exp(Acs_end - Acs_s),
// the forward of one chunk is
//   y_l   = sum_s (C_l.B_s) E_ls dt_s x_s + exp(Acs_l) C_l S_in^T + D x_l
//   S_out = exp(Acs_end) S_in + sum_s e_s dt_s x_s B_s^T.
// Given dy and dS_out (the adjoint of S_out; the next chunk's dS_in), with Z_ls = dy_l.x_s,
// CB_ls = C_l.B_s, M = CB * E * dt_s, Wz = Z * E * dt_s, V = B dS_out^T (V_s = dS_out B_s):
//   dx_s   = sum_l M_ls dy_l + dt_s e_s V_s + D dy_s
//   dB_s  += sum_l Wz_ls C_l + dt_s e_s x_s^T dS_out                  (summed over the group's heads)
//   dC_l  += sum_s Wz_ls B_s + exp(Acs_l) S_in^T dy_l                  (likewise)
//   ddt_s  = sum_l Z_ls CB_ls E_ls + e_s x_s.V_s + A dAcs-suffix_s      (direct terms, then via Acs)
//   dAcs_l = sum_s R_ls - sum_l' R_l'l   (R = Z * M: the intra-chunk decays)
//          + exp(Acs_l) C_l.(S_in^T dy_l)                               (inter-chunk term)
//          - q_l, and at l = end: + sum_s q_s + exp(Acs_end) <dS_out, S_in>,  q_s = dt_s e_s x_s.V_s
//   da_t   = sum_{l >= t} dAcs_l,  dA += sum_t dt_t da_t,  dD += sum dy.x,  dS_in = exp(Acs_end) dS_out + ...
// The raw dt's gradient goes through the clamp (zero outside) and softplus (sigmoid).
//
// Launch sequence (mp_ssd_scan_bwd):
//   1. states entering every chunk and 2. adjoints leaving every chunk, in the input dtype, the
//      operand of steps 3-4 (mp_ssd_chunk_states, ssd_scan_fwd.cu): either one block per (b, h)
//      walking the chunks in order (when those blocks fill the GPU), or the state-only kernel
//      with one chunk per segment (fp32 local states) and a chunk combine; pass 2 also yields
//      dL/d initial state;
//   3. ssd_bwd_dbc_kernel, one block per (b, chunk, group, 64-wide slice of N), looping over the
//      group's heads: dB and dC accumulate in tensor-core fragments across heads, so no atomics
//      and no per-head copies; it also adds the inter-chunk and end terms of dAcs (global, fp32);
//   4. ssd_bwd_dx_kernel, one block per (b, chunk, head): dx, the rest of dAcs, the reverse
//      cumulative sum, ddt, and the per-head sums dA, dD, ddt_bias (atomics).
// Steps 3-4 run the register-fragment kernels of ssd_scan_bwd_mma.cu instead where they apply
// (16-bit, Q = P = 64, N % 32 == 0: the Nemotron-H shapes); the WMMA kernels here take the rest.
// Operands of tensor-core products are rounded to the input dtype (as in the forward); every
// elementwise step and every accumulator is fp32. fp32 inputs use exact fp32 tile products.
#include "kernels/cuda/ssd_scan.cuh"

#include "kernels/cuda/ssd_bwd_common.cuh"
#include "kernels/cuda/ssd_common.cuh"

#include <cmath>

namespace {

using namespace mp_ssd;

constexpr int kNs = 64;  // N-slice width: the N dimension is streamed through shared memory in slices

// Bump allocator over dynamic shared memory; every buffer 128-byte aligned. Host and device
// run the same sequence, so the host's total is the kernel's need.
struct Carve {
  int off = 0;
  __host__ __device__ int take(int bytes) {
    const int o = off;
    off = align128(off + bytes);
    return o;
  }
};

template <typename T> __host__ __device__ constexpr int pad_of() { return 16 / (int)sizeof(T); }

// Shared-memory layout of ssd_bwd_dx_kernel.
struct DxPlan {
  int X, dY, Wt, B, C, dS, stage, vec, total;
};
template <typename T>
__host__ __device__ DxPlan dx_plan(int Q, int P) {
  const int es = sizeof(T), ldP = P + pad_of<T>(), ldQ = Q + pad_of<T>(), ldS = kNs + pad_of<T>();
  Carve cv;
  DxPlan p;
  p.X = cv.take(Q * ldP * es);
  p.dY = cv.take(Q * ldP * es);
  p.Wt = cv.take(Q * ldQ * es);
  p.B = cv.take(Q * ldS * es);
  p.C = cv.take(Q * ldS * es);
  p.dS = cv.take(P * ldS * es);
  p.stage = cv.take(kWarps * 512 * 4);
  p.vec = cv.take(7 * Q * 4);
  p.total = cv.off;
  return p;
}

// Shared-memory layout of ssd_bwd_dbc_kernel.
struct DbcPlan {
  int B, C, X, Xw, dY, Sin, dS, Wz, stage, vec, total;
};
template <typename T>
__host__ __device__ DbcPlan dbc_plan(int Q, int P) {
  const int es = sizeof(T), ldP = P + pad_of<T>(), ldQ = Q + pad_of<T>(), ldS = kNs + pad_of<T>();
  Carve cv;
  DbcPlan p;
  p.B = cv.take(Q * ldS * es);
  p.C = cv.take(Q * ldS * es);
  p.X = cv.take(Q * ldP * es);
  p.Xw = cv.take(Q * ldP * es);
  p.dY = cv.take(Q * ldP * es);
  p.Sin = cv.take(P * ldS * es);
  p.dS = cv.take(P * ldS * es);
  p.Wz = cv.take(Q * ldQ * es);
  p.stage = cv.take(kWarps * 512 * 4);
  p.vec = cv.take(5 * Q * 4);
  p.total = cv.off;
  return p;
}

// Lower-triangular tile index k -> (i, j), j <= i.
__device__ __forceinline__ void tri_tile(int k, int& i, int& j) {
  i = 0;
  while ((i + 1) * (i + 2) / 2 <= k) ++i;
  j = k - i * (i + 1) / 2;
}

// Sum over the 16 lanes that hold one row of a staged 16x16 tile (lanes 0-15 and 16-31 hold two rows).
__device__ __forceinline__ float row16_sum(float v) {
#pragma unroll
  for (int o = 8; o >= 1; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// ---- dB, dC (and the inter-chunk / end terms of dAcs): block per (b, chunk, group, N-slice) ----
template <typename T, int Q>
__global__ void __launch_bounds__(kThreads) ssd_bwd_dbc_kernel(MpSsdBwdArgs ba, const T* Sf, const T* Sb,
                                                               float* dacs_g, bool vec) {
  using Ops = TileOps<T>;
  using Acc = typename Ops::Acc;
  const MpSsdFwdArgs& a = ba.f;
  constexpr int nTq = Q / 16, MAXT = (2 * nTq * (kNs / 16) + kWarps - 1) / kWarps;
  const int N = a.dstate, P = a.headdim, L = a.seqlen, H = a.heads, G = a.groups, Hg = H / G;
  const int nch = (L + Q - 1) / Q, nsl = (N + kNs - 1) / kNs;
  int bid = blockIdx.x;
  const int sl = bid % nsl;
  bid /= nsl;
  const int g = bid % G;
  bid /= G;
  const int c = bid % nch, b = bid / nch;
  const int t0 = c * Q, n0 = sl * kNs, ns = min(kNs, N - n0), nTs = ns / 16;
  const int ldP = P + pad_of<T>(), ldQ = Q + pad_of<T>(), ldS = kNs + pad_of<T>();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;

  extern __shared__ __align__(128) unsigned char smem[];
  const DbcPlan pl = dbc_plan<T>(Q, P);
  T* Bs = reinterpret_cast<T*>(smem + pl.B);
  T* Cs = reinterpret_cast<T*>(smem + pl.C);
  T* Xs = reinterpret_cast<T*>(smem + pl.X);
  T* Xw = reinterpret_cast<T*>(smem + pl.Xw);
  T* dYs = reinterpret_cast<T*>(smem + pl.dY);
  T* Sin = reinterpret_cast<T*>(smem + pl.Sin);
  T* dSo = reinterpret_cast<T*>(smem + pl.dS);
  T* Wz = reinterpret_cast<T*>(smem + pl.Wz);
  float* st0 = reinterpret_cast<float*>(smem + pl.stage) + warp * 512;
  float* dtv = reinterpret_cast<float*>(smem + pl.vec);
  float* acs = dtv + Q;
  float* ea = acs + Q;    // exp(Acs_l)
  float* ee = ea + Q;     // e_s = exp(Acs_end - Acs_s)
  float* dint = ee + Q;   // this head's inter-chunk dAcs term, this slice's part

  const T* Bg = static_cast<const T*>(a.B) + b * a.B_sb + g * a.B_sg + n0;
  const T* Cg = static_cast<const T*>(a.C) + b * a.C_sb + g * a.C_sg + n0;
  load_rows<T>(Bs, ldS, Bg, a.B_sl, t0, Q, L, ns, vec);
  load_rows<T>(Cs, ldS, Cg, a.C_sl, t0, Q, L, ns, vec);

  // Accumulator tile k = warp + kWarps * i: k < nTq*nTs -> dC tile (k / nTs, k % nTs), else dB.
  const int nOut = nTq * nTs;
  Acc acc[MAXT];
#pragma unroll
  for (int i = 0; i < MAXT; ++i) Ops::zero(acc[i]);

  for (int hh = 0; hh < Hg; ++hh) {
    const int h = g * Hg + hh;
    __syncthreads();  // the previous head's reads of every buffer are done
    const T* xg = static_cast<const T*>(a.x) + b * a.x_sb + h * a.x_sh;
    const T* dyg = static_cast<const T*>(ba.dy) + b * ba.dy_sb + h * ba.dy_sh;
    load_rows<T>(Xs, ldP, xg, a.x_sl, t0, Q, L, P, vec);
    load_rows<T>(dYs, ldP, dyg, ba.dy_sl, t0, Q, L, P, vec);
    if (warp == 0) {
      chunk_dt<Q>(a, b, h, t0, a.A[h], a.dt_bias ? a.dt_bias[h] : 0.f, dtv, acs, nullptr);
      __syncwarp();
      const float end = acs[Q - 1];
      for (int l = lane; l < Q; l += 32) {
        ea[l] = dexp<T>(acs[l]);
        ee[l] = dexp<T>(end - acs[l]);
        dint[l] = 0.f;
      }
    }
    const int64_t soff = ((int64_t)(b * nch + c) * H + h) * P * N + n0;  // states: always 16-byte aligned rows
    load_rows<T>(Sin, ldS, Sf + soff, N, 0, P, P, ns, true);
    load_rows<T>(dSo, ldS, Sb + soff, N, 0, P, P, ns, true);
    cp_async_wait_all();
    __syncthreads();

    // End term of dAcs: exp(Acs_end) <dS_out, S_in> (this slice's part).
    float endsum = 0.f;
    for (int e = threadIdx.x; e < P * ns; e += kThreads) {
      const int p = e / ns, n = e - p * ns;
      endsum += to_f(Sin[p * ldS + n]) * to_f(dSo[p * ldS + n]);
    }
    endsum = warp_sum(endsum);
    if (lane == 0 && endsum != 0.f)
      atomicAdd(dacs_g + ((int64_t)b * H + h) * nch * Q + t0 + Q - 1, endsum * ea[Q - 1]);
    for (int e = threadIdx.x; e < Q * P; e += kThreads) {
      const int s = e / P, p = e - s * P;
      Xw[s * ldP + p] = from_f<T>(to_f(Xs[s * ldP + p]) * dtv[s] * ee[s]);
    }
    // Wz = (dY X^T) * E * dt_s on the lower tiles (the upper ones are never read).
    for (int k = warp; k < nTq * (nTq + 1) / 2; k += kWarps) {
      int i, j;
      tri_tile(k, i, j);
      Acc z;
      Ops::zero(z);
      Ops::template mma<Row, Col>(z, dYs + i * 16 * ldP, ldP, Xs + j * 16 * ldP, ldP, P);
      Ops::store(st0, 16, z);
      __syncwarp();
      for (int e = lane; e < 256; e += 32) {
        const int l = i * 16 + (e >> 4), s = j * 16 + (e & 15);
        Wz[l * ldQ + s] = from_f<T>(s <= l ? st0[e] * dexp<T>(acs[l] - acs[s]) * dtv[s] : 0.f);
      }
      __syncwarp();
    }
    __syncthreads();

#pragma unroll
    for (int i = 0; i < MAXT; ++i) {
      const int k = warp + kWarps * i;
      if (k < nOut) {  // dC tile: += diag(exp Acs) dY S_in  (and its dAcs dot with C), += Wz B
        const int ti = k / nTs, tj = k % nTs;
        Acc u;
        Ops::zero(u);
        Ops::template mma<Row, Row>(u, dYs + ti * 16 * ldP, ldP, Sin + tj * 16, ldS, P);
        Ops::store(st0, 16, u);
        __syncwarp();
        for (int e = lane; e < 256; e += 32) {
          const int l = ti * 16 + (e >> 4), n = tj * 16 + (e & 15);
          const float uv = st0[e] * ea[l];
          st0[e] = uv;
          const float d = row16_sum(uv * to_f(Cs[l * ldS + n]));
          if ((lane & 15) == 0) atomicAdd(dint + l, d);
        }
        __syncwarp();
        Ops::load(u, st0, 16);
        __syncwarp();
#pragma unroll
        for (int x = 0; x < (int)(sizeof(u.x) / sizeof(u.x[0])); ++x) acc[i].x[x] += u.x[x];
        Ops::template mma<Row, Row>(acc[i], Wz + ti * 16 * ldQ, ldQ, Bs + tj * 16, ldS, (ti + 1) * 16);
      } else if (k < 2 * nOut) {  // dB tile: += Xw dS_out + Wz^T C
        const int ti = (k - nOut) / nTs, tj = (k - nOut) % nTs;
        Ops::template mma<Row, Row>(acc[i], Xw + ti * 16 * ldP, ldP, dSo + tj * 16, ldS, P);
        Ops::template mma<Col, Row>(acc[i], Wz + ti * 16 + ti * 16 * ldQ, ldQ, Cs + ti * 16 * ldS + tj * 16, ldS,
                                    Q - ti * 16);
      }
    }
    __syncthreads();
    for (int l = threadIdx.x; l < Q; l += kThreads)
      if (dint[l] != 0.f) atomicAdd(dacs_g + ((int64_t)b * H + h) * nch * Q + t0 + l, dint[l]);
  }

  // dB, dC rows of this chunk (t < L), columns of this slice, in the input dtype.
#pragma unroll
  for (int i = 0; i < MAXT; ++i) {
    const int k = warp + kWarps * i;
    if (k < 2 * nOut) {
      const bool isC = k < nOut;
      const int kk = isC ? k : k - nOut, ti = kk / nTs, tj = kk % nTs;
      T* out = static_cast<T*>(isC ? ba.dC : ba.dB);
      Ops::store(st0, 16, acc[i]);
      __syncwarp();
      for (int e = lane; e < 256; e += 32) {
        const int t = t0 + ti * 16 + (e >> 4), n = n0 + tj * 16 + (e & 15);
        if (t < L) out[(((int64_t)b * L + t) * G + g) * N + n] = from_f<T>(st0[e]);
      }
      __syncwarp();
    }
  }
}

// ---- dx, ddt, dA, dD, ddt_bias: block per (b, chunk, head) ----
template <typename T, int Q>
__global__ void __launch_bounds__(kThreads) ssd_bwd_dx_kernel(MpSsdBwdArgs ba, const T* Sb, const float* dacs_g,
                                                              bool vec) {
  using Ops = TileOps<T>;
  using Acc = typename Ops::Acc;
  const MpSsdFwdArgs& a = ba.f;
  constexpr int nTq = Q / 16, nCB = nTq * (nTq + 1) / 2, MAXT = (nCB + nTq * 8 + kWarps - 1) / kWarps;
  const int N = a.dstate, P = a.headdim, L = a.seqlen, H = a.heads;
  const int nch = (L + Q - 1) / Q, nTp = P / 16, nTot = nCB + nTq * nTp;
  int bid = blockIdx.x;
  const int h = bid % H;
  bid /= H;
  const int c = bid % nch, b = bid / nch;
  const int g = h / (H / a.groups), t0 = c * Q;
  const int ldP = P + pad_of<T>(), ldQ = Q + pad_of<T>(), ldS = kNs + pad_of<T>();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;

  extern __shared__ __align__(128) unsigned char smem[];
  const DxPlan pl = dx_plan<T>(Q, P);
  T* Xs = reinterpret_cast<T*>(smem + pl.X);
  T* dYs = reinterpret_cast<T*>(smem + pl.dY);
  T* Wt = reinterpret_cast<T*>(smem + pl.Wt);
  T* Bs = reinterpret_cast<T*>(smem + pl.B);
  T* Cs = reinterpret_cast<T*>(smem + pl.C);
  T* dSo = reinterpret_cast<T*>(smem + pl.dS);
  float* st0 = reinterpret_cast<float*>(smem + pl.stage) + warp * 512;
  float* st1 = st0 + 256;
  float* dtv = reinterpret_cast<float*>(smem + pl.vec);
  float* acs = dtv + Q;
  float* pre = acs + Q;   // dt + bias before softplus and clamp
  float* ee = pre + Q;    // e_s
  float* dacs = ee + Q;   // intra-chunk dAcs
  float* ddt = dacs + Q;  // direct dt terms
  float* xv = ddt + Q;    // x_s . V_s

  const float Ah = a.A[h], Dh = a.D[h];
  const T* xg = static_cast<const T*>(a.x) + b * a.x_sb + h * a.x_sh;
  const T* dyg = static_cast<const T*>(ba.dy) + b * ba.dy_sb + h * ba.dy_sh;
  const T* Bg = static_cast<const T*>(a.B) + b * a.B_sb + g * a.B_sg;
  const T* Cg = static_cast<const T*>(a.C) + b * a.C_sb + g * a.C_sg;
  const T* dSg = Sb + ((int64_t)(b * nch + c) * H + h) * P * N;
  load_rows<T>(Xs, ldP, xg, a.x_sl, t0, Q, L, P, vec);
  load_rows<T>(dYs, ldP, dyg, ba.dy_sl, t0, Q, L, P, vec);
  if (warp == 0) {
    chunk_dt<Q>(a, b, h, t0, Ah, a.dt_bias ? a.dt_bias[h] : 0.f, dtv, acs, pre);
    __syncwarp();
    for (int l = lane; l < Q; l += 32) ee[l] = dexp<T>(acs[Q - 1] - acs[l]);
  }
  for (int l = threadIdx.x; l < Q; l += kThreads) dacs[l] = ddt[l] = xv[l] = 0.f;

  // CB = C B^T (lower tiles) and V = B dS_out^T, accumulated over slices of N.
  // Tile k = warp + kWarps * i: k < nCB -> CB tile tri(k); else V tile ((k - nCB) / nTp, (k - nCB) % nTp).
  Acc acc[MAXT];
#pragma unroll
  for (int i = 0; i < MAXT; ++i) Ops::zero(acc[i]);
  for (int n0 = 0; n0 < N; n0 += kNs) {
    const int ns = min(kNs, N - n0);
    __syncthreads();
    load_rows<T>(Bs, ldS, Bg + n0, a.B_sl, t0, Q, L, ns, vec);
    load_rows<T>(Cs, ldS, Cg + n0, a.C_sl, t0, Q, L, ns, vec);
    load_rows<T>(dSo, ldS, dSg + n0, N, 0, P, P, ns, true);
    cp_async_wait_all();
    __syncthreads();
#pragma unroll
    for (int i = 0; i < MAXT; ++i) {
      const int k = warp + kWarps * i;
      if (k < nCB) {
        int ti, tj;
        tri_tile(k, ti, tj);
        Ops::template mma<Row, Col>(acc[i], Cs + ti * 16 * ldS, ldS, Bs + tj * 16 * ldS, ldS, ns);
      } else if (k < nTot) {
        const int ti = (k - nCB) / nTp, tj = (k - nCB) % nTp;
        Ops::template mma<Row, Col>(acc[i], Bs + ti * 16 * ldS, ldS, dSo + tj * 16 * ldS, ldS, ns);
      }
    }
  }

  // Z = dY X^T with CB: M = CB E dt_s -> Wt (operand of dx), R = Z M -> dAcs, Z CB E -> ddt.
#pragma unroll
  for (int i = 0; i < MAXT; ++i) {
    const int k = warp + kWarps * i;
    if (k < nCB) {
      int ti, tj;
      tri_tile(k, ti, tj);
      Acc z;
      Ops::zero(z);
      Ops::template mma<Row, Col>(z, dYs + ti * 16 * ldP, ldP, Xs + tj * 16 * ldP, ldP, P);
      Ops::store(st0, 16, acc[i]);
      Ops::store(st1, 16, z);
      __syncwarp();
      for (int e = lane; e < 256; e += 32) {
        const int l = ti * 16 + (e >> 4), s = tj * 16 + (e & 15);
        float m = 0.f;
        if (s <= l) {
          const float cbE = st0[e] * dexp<T>(acs[l] - acs[s]), zz = st1[e];
          m = cbE * dtv[s];
          if (s < l) {
            atomicAdd(dacs + l, zz * m);
            atomicAdd(dacs + s, -zz * m);
          }
          atomicAdd(ddt + s, zz * cbE);
        }
        Wt[l * ldQ + s] = from_f<T>(m);
      }
      __syncwarp();
    }
  }
  __syncthreads();

  // dx = M^T dY + dt_s e_s V + D dy;  x.V per row;  dD partial.
  float dsum = 0.f;
  T* dxg = static_cast<T*>(ba.dx) + b * ba.dx_sb + h * ba.dx_sh;
#pragma unroll
  for (int i = 0; i < MAXT; ++i) {
    const int k = warp + kWarps * i;
    if (k >= nCB && k < nTot) {
      const int ti = (k - nCB) / nTp, tj = (k - nCB) % nTp;
      Acc d;
      Ops::zero(d);
      Ops::template mma<Col, Row>(d, Wt + ti * 16 + ti * 16 * ldQ, ldQ, dYs + ti * 16 * ldP + tj * 16, ldP,
                                  Q - ti * 16);
      Ops::store(st0, 16, d);
      Ops::store(st1, 16, acc[i]);
      __syncwarp();
      for (int e = lane; e < 256; e += 32) {
        const int s = ti * 16 + (e >> 4), p = tj * 16 + (e & 15);
        const float v = st1[e], xx = to_f(Xs[s * ldP + p]), dyy = to_f(dYs[s * ldP + p]);
        if (t0 + s < L) dxg[(int64_t)(t0 + s) * ba.dx_sl + p] = from_f<T>(st0[e] + dtv[s] * ee[s] * v + Dh * dyy);
        dsum += xx * dyy;
        const float r = row16_sum(xx * v);
        if ((lane & 15) == 0) atomicAdd(xv + s, r);
      }
      __syncwarp();
    }
  }
  dsum = warp_sum(dsum);
  if (lane == 0 && dsum != 0.f) atomicAdd(ba.dD + h, dsum);
  __syncthreads();

  // dAcs -> da (suffix sums) -> ddt (chain rule through softplus and clamp), dA, ddt_bias.
  if (warp == 0) bwd_dt_tail<Q>(ba, b, h, t0, nch, Ah, dtv, pre, ee, dacs, ddt, xv, dacs_g);
}


int smem_need(int dtype, int Q, int P) {
  const int a = dtype == MP_F32 ? dx_plan<float>(Q, P).total : dx_plan<__half>(Q, P).total;
  const int b = dtype == MP_F32 ? dbc_plan<float>(Q, P).total : dbc_plan<__half>(Q, P).total;
  return a > b ? a : b;
}

// The chunk the forward's state pass runs at with these overrides (0 if none).
int state_pass_chunk(const MpSsdFwdArgs& f, int q, int p_tile) {
  MpSsdFwdArgs g = f;
  g.chunk = q;
  g.p_tile = p_tile;
  g.segments = 0;
  int c = 0, pt = 0, sg = 0;
  mp_ssd_scan_fwd_plan(&g, &c, &pt, &sg);
  return c;
}

// Whether chunk q can run: both kernels fit shared memory and the state pass takes q as is.
bool chunk_fits(const MpSsdBwdArgs* a, int q) {
  return smem_need(a->f.dtype, q, a->f.headdim) <= max_smem_optin() && state_pass_chunk(a->f, q, 0) == q;
}

// The backward's chunk: 32 for fp32, else 64 (or 128 when asked and it fits).
int bwd_chunk(const MpSsdBwdArgs* a) {
  if (a->f.dtype == MP_F32) return chunk_fits(a, 32) ? 32 : 0;
  if (a->f.chunk == 128 && chunk_fits(a, 128)) return 128;
  return chunk_fits(a, 64) ? 64 : 0;
}

// The arguments of the two state passes at chunk Q: f for the states entering each chunk, r for
// the adjoints leaving each (the same pass over dy and C).
void state_pass_args(const MpSsdBwdArgs* a, int Q, MpSsdFwdArgs* f, MpSsdFwdArgs* r) {
  *f = a->f;
  f->chunk = Q;
  f->chunk_states = nullptr;  // the forward's output, not the passes'
  // Whole 64-wide head-dim tiles where they fit at this chunk: B is then read once per head.
  f->p_tile = f->headdim % 64 == 0 && state_pass_chunk(*f, Q, 64) == Q ? 64 : 0;
  *r = *f;
  r->x = a->dy, r->x_sb = a->dy_sb, r->x_sl = a->dy_sl, r->x_sh = a->dy_sh;
  r->B = a->f.C, r->B_sb = a->f.C_sb, r->B_sl = a->f.C_sl, r->B_sg = a->f.C_sg;
}

// Workspace: fp32 local chunk states and chunk decays (scratch of the state passes, none when
// both walk the chunks in order), fp32 dAcs partials, the entering states and the adjoints in
// the input dtype (16-byte aligned), then the mma kernels' chunk vectors.
struct Layout {
  int Q, nch;
  int64_t local, decay, dacs, states, vecs;  // element counts of each part
  bool saved;  // the entering states come from the forward (a->states_in), so only the adjoints are computed
};

Layout layout(const MpSsdBwdArgs* a) {
  Layout l;
  l.Q = bwd_chunk(a);
  l.nch = l.Q ? (a->f.seqlen + l.Q - 1) / l.Q : 0;
  const int64_t bh = (int64_t)a->f.batch * a->f.heads;
  l.states = bh * l.nch * a->f.headdim * a->f.dstate;
  MpSsdFwdArgs f, r;
  state_pass_args(a, l.Q, &f, &r);
  l.saved = a->states_in && l.Q == kMmaQ;
  const bool walks = l.Q && (l.saved || mp_ssd_chunk_states_walks(&f)) && mp_ssd_chunk_states_walks(&r);
  l.local = walks ? 0 : l.states;
  l.decay = walks ? 0 : (bh * l.nch + 3) / 4 * 4;
  l.dacs = bh * l.nch * l.Q;
  l.vecs = l.Q == kMmaQ ? mma_chunk_vecs_bytes(&a->f) / 4 : 0;
  return l;
}

template <typename T, int Q>
cudaError_t launch_tail(const MpSsdBwdArgs& a, const void* Sf_, const void* Sb_, float* dacs, bool vec,
                        cudaStream_t stream) {
  const T* Sf = static_cast<const T*>(Sf_);
  const T* Sb = static_cast<const T*>(Sb_);
  const int P = a.f.headdim, nch = (a.f.seqlen + Q - 1) / Q, nsl = (a.f.dstate + kNs - 1) / kNs;
  const int s1 = dbc_plan<T>(Q, P).total, s2 = dx_plan<T>(Q, P).total;
  auto k1 = ssd_bwd_dbc_kernel<T, Q>;
  auto k2 = ssd_bwd_dx_kernel<T, Q>;
  cudaError_t e = cudaFuncSetAttribute((const void*)k1, cudaFuncAttributeMaxDynamicSharedMemorySize, s1);
  if (e == cudaSuccess) e = cudaFuncSetAttribute((const void*)k2, cudaFuncAttributeMaxDynamicSharedMemorySize, s2);
  if (e != cudaSuccess) return e;
  k1<<<(unsigned)((int64_t)a.f.batch * nch * a.f.groups * nsl), kThreads, s1, stream>>>(a, Sf, Sb, dacs, vec);
  e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  k2<<<(unsigned)((int64_t)a.f.batch * nch * a.f.heads), kThreads, s2, stream>>>(a, Sb, dacs, vec);
  return cudaGetLastError();
}


}  // namespace

int mp_ssd_scan_bwd_supported(const MpSsdBwdArgs* a) {
  if (!mp_ssd_scan_fwd_supported(&a->f) || a->f.headdim > 128) return 0;
  return bwd_chunk(a) != 0 ? 1 : 0;
}

int64_t mp_ssd_scan_bwd_workspace_bytes(const MpSsdBwdArgs* a) {
  if (!mp_ssd_scan_bwd_supported(a)) return 0;
  const Layout l = layout(a);
  return 4 * (l.local + l.decay + l.dacs + l.vecs) + (l.saved ? 1 : 2) * (int64_t)esize_of(a->f.dtype) * l.states;
}

cudaError_t mp_ssd_scan_bwd(const MpSsdBwdArgs* a, cudaStream_t stream) {
  if (!mp_ssd_scan_bwd_supported(a) || !a->workspace) return cudaErrorInvalidValue;
  const Layout l = layout(a);
  float* local = l.local ? a->workspace : nullptr;
  float* decay = l.decay ? a->workspace + l.local : nullptr;
  float* dacs = a->workspace + l.local + l.decay;
  unsigned char* Sb = reinterpret_cast<unsigned char*>(dacs + l.dacs);
  unsigned char* own = Sb + esize_of(a->f.dtype) * l.states;  // the entering states when not saved
  const void* Sf = l.saved ? a->states_in : own;
  // 1. The state entering every chunk.
  MpSsdFwdArgs f, r;
  state_pass_args(a, l.Q, &f, &r);
  // The chunk vectors first where the mma kernels run (Q = 64): every pass below reads them.
  float* vecs = l.vecs ? reinterpret_cast<float*>(own + (l.saved ? 0 : esize_of(a->f.dtype) * l.states)) : nullptr;
  // The dAcs partials are zeroed first, so that from here on kernel follows kernel: each may
  // start as the one before it ends (programmatic dependent launches, pdl.cuh).
  cudaError_t e = cudaMemsetAsync(dacs, 0, sizeof(float) * l.dacs, stream);
  if (e == cudaSuccess && vecs) e = mma_chunk_vecs_launch(&a->f, vecs, stream);
  if (e != cudaSuccess) return e;
  if (!l.saved) e = mp_ssd_chunk_states(&f, 0, local, decay, own, a->f.init_state, nullptr, vecs, stream, 1);
  if (e != cudaSuccess) return e;
  // 2. The adjoint leaving every chunk: the same pass over (dy, C) with the adjoint weights. It
  // reads nothing the first walk writes, so it runs alongside that one's last blocks.
  e = mp_ssd_chunk_states(&r, 1, local, decay, Sb, a->dfinal, a->dinit, vecs, stream, l.saved ? 1 : 2);
  if (e != cudaSuccess) return e;
  // 3-4. Everything else.
  const int V = 16 / esize_of(a->f.dtype);
  const MpSsdFwdArgs& x = a->f;
  const bool vec = aligned16(x.x) && aligned16(x.B) && aligned16(x.C) && aligned16(a->dy) && x.x_sl % V == 0 &&
                   x.x_sb % V == 0 && x.x_sh % V == 0 && x.B_sl % V == 0 && x.B_sb % V == 0 && x.B_sg % V == 0 &&
                   x.C_sl % V == 0 && x.C_sb % V == 0 && x.C_sg % V == 0 && a->dy_sl % V == 0 && a->dy_sb % V == 0 &&
                   a->dy_sh % V == 0;
  // The register-fragment kernels where they apply (16-bit, Q = P = 64: Nemotron-H), else WMMA.
  if (vecs && bwd_mma_applies(*a, l.Q, vec)) return bwd_mma_launch(*a, Sf, Sb, dacs, vecs, vec, stream);
  switch (x.dtype) {
    case MP_BF16:
      return l.Q == 128 ? launch_tail<__nv_bfloat16, 128>(*a, Sf, Sb, dacs, vec, stream)
                        : launch_tail<__nv_bfloat16, 64>(*a, Sf, Sb, dacs, vec, stream);
    case MP_F16:
      return l.Q == 128 ? launch_tail<__half, 128>(*a, Sf, Sb, dacs, vec, stream)
                        : launch_tail<__half, 64>(*a, Sf, Sb, dacs, vec, stream);
    default: return launch_tail<float, 32>(*a, Sf, Sb, dacs, vec, stream);
  }
}
