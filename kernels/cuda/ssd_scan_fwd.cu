// Mamba-2 SSD scan, forward: one fused kernel, chunk states never leave the chip.
//
// Math (per batch b, head h; state S [P, N]; chunk of Q steps starting at t0, local index l, s):
//   a_l   = dt_l A,   Acs_l = a_0 + ... + a_l                          (inclusive, within the chunk)
//   intra: y_l  = sum_{s<=l} (C_l . B_s) exp(Acs_l - Acs_s) dt_s x_s   = (W X)_l,  W lower-triangular
//   inter: y_l += exp(Acs_l) C_l S_in^T                                  (S_in = state entering)
//   skip:  y_l += D x_l
//   state: S_out = exp(Acs_{Q-1}) S_in + sum_s x_s^T B_s dt_s exp(Acs_{Q-1} - Acs_s)  = dec S_in + Xw^T B
// The recurrence between chunks is exact, so any chunk length gives the same function; the kernel
// picks its own (Q, a template parameter) independent of the model's chunk_size.
//
// Decomposition: one thread block per (b, h, p-tile of PT head-dim columns); it walks the
// chunks in order and keeps S [PT, N] in fp32 tensor-core accumulator fragments (registers)
// plus a copy in the input dtype in shared memory (the operand of C S^T). Nothing per chunk is
// written to device memory except y. Parallelism is b * H * (P / PT) blocks; smaller PT means
// more blocks at the cost of recomputing C B^T once per p-tile.
//
// Products (8 warps share each): scores C B^T (Q x Q x N, lower tiles only), Y = C S^T (Q x PT x N)
// then row-scaled and += W X (Q x PT x Q, causal tiles only), S = dec S + Xw^T B (PT x N x Q).
// 16-bit inputs use WMMA (bf16/fp16 operands, fp32 accumulate); W, Xw and S are rounded to the
// input dtype as operands (as Triton's SSD does). fp32 inputs use the same code with an exact
// fp32 FMA emulation of the 16x16 tile product (no TF32), so fp32 results are fp32-accurate.
//
// Padding: rows past the sequence end get dt = 0 and zero x, B, C: they neither decay nor feed S.
#include "kernels/cuda/ssd_scan.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

#include <type_traits>

namespace {

namespace wm = nvcuda::wmma;
constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;

template <typename T> __device__ __forceinline__ float to_f(T v);
template <> __device__ __forceinline__ float to_f<float>(float v) { return v; }
template <> __device__ __forceinline__ float to_f<__half>(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float to_f<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_f<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

__device__ __forceinline__ float load_any(const void* p, int dtype, int64_t i) {
  if (dtype == MP_BF16) return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
  if (dtype == MP_F16) return __half2float(static_cast<const __half*>(p)[i]);
  return static_cast<const float*>(p)[i];
}

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

// Shared-memory plan, in bytes, for one block; each buffer starts 128-byte aligned.
struct Plan {
  int ldN, ldP, ldQ, ldQf;
  int offC, offB, offX, offXw, offW, offSc, offS, offStage, offDt, offAcs, total;
};

__host__ __device__ inline int align128(int v) { return (v + 127) & ~127; }

__host__ __device__ inline Plan make_plan(int Q, int PT, int N, int esize) {
  Plan p;
  const int pad = 16 / esize;  // one 16-byte vector per row: spreads rows over banks
  p.ldN = N + pad;
  p.ldP = PT + pad;
  p.ldQ = Q + pad;
  p.ldQf = Q + 4;
  int o = 0;
  p.offC = o;  o = align128(o + Q * p.ldN * esize);
  p.offB = o;  o = align128(o + Q * p.ldN * esize);
  p.offX = o;  o = align128(o + Q * p.ldP * esize);
  p.offXw = o; o = align128(o + Q * p.ldP * esize);
  p.offW = o;  o = align128(o + Q * p.ldQ * esize);
  p.offSc = o; o = align128(o + Q * p.ldQf * 4);
  p.offS = o;  o = align128(o + PT * p.ldN * esize);
  p.offStage = o; o = align128(o + kWarps * 256 * 4);
  p.offDt = o; o = align128(o + Q * 4);
  p.offAcs = o; o = align128(o + Q * 4);
  p.total = o;
  return p;
}

// Copies rows [t0, t0 + Q) x cols [0, ncols) of a strided [L, ncols] slab into shared memory
// (leading dim ld), zero-filling rows at or past L. 16-byte vectors when `vec`.
template <typename T>
__device__ void load_rows(T* dst, int ld, const T* src, int64_t row_stride, int t0, int Q, int L, int ncols, bool vec) {
  if (vec) {
    constexpr int V = 16 / sizeof(T);
    const int nv = ncols / V;
    for (int i = threadIdx.x; i < Q * nv; i += kThreads) {
      const int r = i / nv, c = (i - r * nv) * V;
      uint4 v = make_uint4(0, 0, 0, 0);
      if (t0 + r < L) v = *reinterpret_cast<const uint4*>(src + (int64_t)(t0 + r) * row_stride + c);
      *reinterpret_cast<uint4*>(dst + r * ld + c) = v;
    }
  } else {
    for (int i = threadIdx.x; i < Q * ncols; i += kThreads) {
      const int r = i / ncols, c = i - r * ncols;
      dst[r * ld + c] = (t0 + r < L) ? src[(int64_t)(t0 + r) * row_stride + c] : from_f<T>(0.f);
    }
  }
}

template <typename T, int Q, int PT>
__global__ void __launch_bounds__(kThreads) ssd_fwd_kernel(MpSsdFwdArgs a, bool vec) {
  using Ops = TileOps<T>;
  using Acc = typename Ops::Acc;
  constexpr int MAXT = PT / 8;  // state tiles per warp at N = 256: (PT/16) * 16 / kWarps
  const int N = a.dstate, P = a.headdim, L = a.seqlen, H = a.heads;
  const int ptiles = P / PT;
  int bid = blockIdx.x;
  const int pt = bid % ptiles;
  bid /= ptiles;
  const int h = bid % H, b = bid / H;
  const int g = h / (H / a.groups);
  const int p0 = pt * PT;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;

  extern __shared__ __align__(128) unsigned char smem[];
  const Plan pl = make_plan(Q, PT, N, sizeof(T));
  T* Cs = reinterpret_cast<T*>(smem + pl.offC);
  T* Bs = reinterpret_cast<T*>(smem + pl.offB);
  T* Xs = reinterpret_cast<T*>(smem + pl.offX);
  T* Xw = reinterpret_cast<T*>(smem + pl.offXw);
  T* Ws = reinterpret_cast<T*>(smem + pl.offW);
  float* Sc = reinterpret_cast<float*>(smem + pl.offSc);
  T* Ss = reinterpret_cast<T*>(smem + pl.offS);
  float* stage = reinterpret_cast<float*>(smem + pl.offStage) + warp * 256;
  float* dtv = reinterpret_cast<float*>(smem + pl.offDt);
  float* acs = reinterpret_cast<float*>(smem + pl.offAcs);

  const float Ah = a.A[h], Dh = a.D[h], bias = a.dt_bias ? a.dt_bias[h] : 0.f;
  const T* xg = static_cast<const T*>(a.x) + b * a.x_sb + h * a.x_sh + p0;
  const T* Bg = static_cast<const T*>(a.B) + b * a.B_sb + g * a.B_sg;
  const T* Cg = static_cast<const T*>(a.C) + b * a.C_sb + g * a.C_sg;
  T* yg = static_cast<T*>(a.y) + b * a.y_sb + h * a.y_sh + p0;
  const int64_t state_off = ((int64_t)(b * H + h) * P + p0) * N;

  // State fragments: tile k = warp + kWarps * i covers rows (k / (N/16)) * 16, cols (k % (N/16)) * 16.
  const int nTn = N / 16, ntS = (PT / 16) * nTn;
  Acc S[MAXT];
#pragma unroll
  for (int i = 0; i < MAXT; ++i) {
    const int k = warp + kWarps * i;
    Ops::zero(S[i]);
    if (k < ntS && a.init_state) {
      const float* src = a.init_state + state_off + (k / nTn) * 16 * N + (k % nTn) * 16;
      for (int e = lane; e < 256; e += 32) stage[e] = src[(e >> 4) * N + (e & 15)];
      __syncwarp();
      Ops::load(S[i], stage, 16);
      __syncwarp();
    }
  }
  // Writes the fragments' values, rounded to T, into Ss (the operand copy of S).
  auto publish_state = [&]() {
#pragma unroll
    for (int i = 0; i < MAXT; ++i) {
      const int k = warp + kWarps * i;
      if (k < ntS) {
        Ops::store(stage, 16, S[i]);
        __syncwarp();
        T* dst = Ss + (k / nTn) * 16 * pl.ldN + (k % nTn) * 16;
        for (int e = lane; e < 256; e += 32) dst[(e >> 4) * pl.ldN + (e & 15)] = from_f<T>(stage[e]);
        __syncwarp();
      }
    }
  };
  publish_state();

  const int nchunks = (L + Q - 1) / Q;
  constexpr int nTq = Q / 16, nTp = PT / 16;
  for (int c = 0; c < nchunks; ++c) {
    const int t0 = c * Q;
    // Phase A: loads of dt (bias, softplus, clamp), C, B, X for this chunk.
    if (threadIdx.x < Q) {
      const int t = t0 + threadIdx.x;
      float d = 0.f;
      if (t < L) {
        d = load_any(a.dt, a.dt_dtype, b * a.dt_sb + (int64_t)t * a.dt_sl + h * a.dt_sh) + bias;
        if (a.dt_softplus) d = d > 20.f ? d : log1pf(expf(d));
        d = fminf(fmaxf(d, a.dt_min), a.dt_max);
      }
      dtv[threadIdx.x] = d;
    }
    load_rows<T>(Cs, pl.ldN, Cg, a.C_sl, t0, Q, L, N, vec);
    load_rows<T>(Bs, pl.ldN, Bg, a.B_sl, t0, Q, L, N, vec);
    load_rows<T>(Xs, pl.ldP, xg, a.x_sl, t0, Q, L, PT, vec);
    __syncthreads();

    // Phase B: warp 0 scans dt*A into acs; all warps compute the lower tiles of C B^T.
    if (warp == 0) {
      constexpr int E = Q / 32;
      float v[E];
      float run = 0.f;
#pragma unroll
      for (int e = 0; e < E; ++e) { run += dtv[lane * E + e] * Ah; v[e] = run; }
      float incl = run;
#pragma unroll
      for (int o = 1; o < 32; o <<= 1) {
        const float n = __shfl_up_sync(0xffffffffu, incl, o);
        if (lane >= o) incl += n;
      }
      const float excl = incl - run;
#pragma unroll
      for (int e = 0; e < E; ++e) acs[lane * E + e] = v[e] + excl;
    }
    for (int k = warp; k < nTq * (nTq + 1) / 2; k += kWarps) {
      int i = 0;
      while ((i + 1) * (i + 2) / 2 <= k) ++i;
      const int j = k - i * (i + 1) / 2;
      Acc acc;
      Ops::zero(acc);
      Ops::template mma<Row, Col>(acc, Cs + i * 16 * pl.ldN, pl.ldN, Bs + j * 16 * pl.ldN, pl.ldN, N);
      Ops::store(Sc + i * 16 * pl.ldQf + j * 16, pl.ldQf, acc);
    }
    __syncthreads();

    // Phase C: W = mask(C B^T) * exp(Acs_l - Acs_s) * dt_s;  Xw = x_s dt_s exp(Acs_end - Acs_s).
    const float acs_end = acs[Q - 1];
    for (int e = threadIdx.x; e < Q * Q; e += kThreads) {
      const int l = e / Q, s = e - l * Q;
      const float w = s <= l ? Sc[l * pl.ldQf + s] * expf(acs[l] - acs[s]) * dtv[s] : 0.f;
      Ws[l * pl.ldQ + s] = from_f<T>(w);
    }
    for (int e = threadIdx.x; e < Q * PT; e += kThreads) {
      const int s = e / PT, p = e - s * PT;
      Xw[s * pl.ldP + p] = from_f<T>(to_f(Xs[s * pl.ldP + p]) * dtv[s] * expf(acs_end - acs[s]));
    }
    __syncthreads();

    // Phase D1: Y = rowscale(exp(Acs)) (C S_in^T) + W X + D x  -> y.
    for (int k = warp; k < nTq * nTp; k += kWarps) {
      const int i = k / nTp, j = k - i * nTp;
      Acc acc;
      Ops::zero(acc);
      Ops::template mma<Row, Col>(acc, Cs + i * 16 * pl.ldN, pl.ldN, Ss + j * 16 * pl.ldN, pl.ldN, N);
      Ops::store(stage, 16, acc);
      __syncwarp();
      for (int e = lane; e < 256; e += 32) stage[e] *= expf(acs[i * 16 + (e >> 4)]);
      __syncwarp();
      Ops::load(acc, stage, 16);
      __syncwarp();
      Ops::template mma<Row, Row>(acc, Ws + i * 16 * pl.ldQ, pl.ldQ, Xs + j * 16, pl.ldP, (i + 1) * 16);
      Ops::store(stage, 16, acc);
      __syncwarp();
      for (int e = lane; e < 256; e += 32) {
        const int r = i * 16 + (e >> 4), col = j * 16 + (e & 15);
        if (t0 + r < L) {
          const float v = stage[e] + Dh * to_f(Xs[r * pl.ldP + col]);
          yg[(int64_t)(t0 + r) * a.y_sl + col] = from_f<T>(v);
        }
      }
      __syncwarp();
    }
    // Phase D2: S = exp(Acs_end) S + Xw^T B  (fragments in registers; Ss still holds S_in).
    const float dec = expf(acs_end);
#pragma unroll
    for (int i = 0; i < MAXT; ++i) {
      const int k = warp + kWarps * i;
      if (k < ntS) {
        Ops::scale(S[i], dec);
        Ops::template mma<Col, Row>(S[i], Xw + (k / nTn) * 16, pl.ldP, Bs + (k % nTn) * 16, pl.ldN, Q);
      }
    }
    __syncthreads();
    publish_state();  // overlaps with the next chunk's loads (disjoint buffers); sync follows them
  }

  if (a.final_state) {
#pragma unroll
    for (int i = 0; i < MAXT; ++i) {
      const int k = warp + kWarps * i;
      if (k < ntS) {
        Ops::store(stage, 16, S[i]);
        __syncwarp();
        float* dst = a.final_state + state_off + (k / nTn) * 16 * N + (k % nTn) * 16;
        for (int e = lane; e < 256; e += 32) dst[(e >> 4) * N + (e & 15)] = stage[e];
        __syncwarp();
      }
    }
  }
}

int max_smem_optin() {
  int dev = 0, v = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return 0;
  if (cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess) return 0;
  return v;
}

int esize_of(int dtype) { return dtype == MP_F32 ? 4 : 2; }

// Picks (Q, PT): explicit overrides when valid, else the defaults; the plan must fit shared memory.
bool choose(const MpSsdFwdArgs* a, int smem_limit, int* Q, int* PT) {
  const int es = esize_of(a->dtype);
  int q = a->chunk, pt = a->p_tile;
  if (q == 0) q = a->dtype == MP_F32 ? 32 : 64;
  if (pt == 0) pt = a->dtype == MP_F32 ? 32 : 32;
  if (a->dtype == MP_F32 ? q != 32 : (q != 64 && q != 128)) return false;
  if (pt != 16 && pt != 32 && pt != 64) return false;
  while (pt > a->headdim) pt /= 2;
  if (pt < 16 || a->headdim % pt) return false;
  while (make_plan(q, pt, a->dstate, es).total > smem_limit) {
    if (q > 64 && a->dtype != MP_F32) q /= 2;
    else if (pt > 16) pt /= 2;
    else return false;
  }
  *Q = q;
  *PT = pt;
  return true;
}

template <typename T, int Q, int PT>
cudaError_t launch(const MpSsdFwdArgs* a, bool vec, cudaStream_t stream) {
  const int smem = make_plan(Q, PT, a->dstate, sizeof(T)).total;
  auto kern = ssd_fwd_kernel<T, Q, PT>;
  cudaError_t e = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (e != cudaSuccess) return e;
  const int64_t blocks = (int64_t)a->batch * a->heads * (a->headdim / PT);
  kern<<<(unsigned)blocks, kThreads, smem, stream>>>(*a, vec);
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_t(const MpSsdFwdArgs* a, int Q, int PT, bool vec, cudaStream_t s) {
  if (Q == 128) {
    if (PT == 16) return launch<T, 128, 16>(a, vec, s);
    if (PT == 32) return launch<T, 128, 32>(a, vec, s);
    return launch<T, 128, 64>(a, vec, s);
  }
  if (PT == 16) return launch<T, 64, 16>(a, vec, s);
  if (PT == 32) return launch<T, 64, 32>(a, vec, s);
  return launch<T, 64, 64>(a, vec, s);
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

}  // namespace

int mp_ssd_scan_fwd_supported(const MpSsdFwdArgs* a) {
  if (a->dtype < MP_F32 || a->dtype > MP_BF16 || a->dt_dtype < MP_F32 || a->dt_dtype > MP_BF16) return 0;
  if (a->batch < 1 || a->seqlen < 1 || a->heads < 1 || a->groups < 1 || a->heads % a->groups) return 0;
  if (a->headdim % 16 || a->headdim > 128 || a->dstate % 16 || a->dstate > 256 || a->dstate < 16) return 0;
  int Q = 0, PT = 0;
  return choose(a, max_smem_optin(), &Q, &PT) ? 1 : 0;
}

cudaError_t mp_ssd_scan_fwd(const MpSsdFwdArgs* a, cudaStream_t stream) {
  int Q = 0, PT = 0;
  if (!mp_ssd_scan_fwd_supported(a) || !choose(a, max_smem_optin(), &Q, &PT)) return cudaErrorInvalidValue;
  const int V = 16 / esize_of(a->dtype);
  const bool vec = aligned16(a->x) && aligned16(a->B) && aligned16(a->C) && a->x_sl % V == 0 && a->x_sb % V == 0 &&
                   a->x_sh % V == 0 && a->B_sl % V == 0 && a->B_sb % V == 0 && a->B_sg % V == 0 &&
                   a->C_sl % V == 0 && a->C_sb % V == 0 && a->C_sg % V == 0;
  switch (a->dtype) {
    case MP_BF16: return launch_t<__nv_bfloat16>(a, Q, PT, vec, stream);
    case MP_F16: return launch_t<__half>(a, Q, PT, vec, stream);
    default:
      if (PT == 16) return launch<float, 32, 16>(a, vec, stream);
      if (PT == 32) return launch<float, 32, 32>(a, vec, stream);
      return launch<float, 32, 64>(a, vec, stream);
  }
}
