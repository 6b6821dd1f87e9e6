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
// This file holds the launcher (plan, segments, workspace) and the WMMA kernel. The launcher
// takes the mma.sync kernel of ssd_scan_fwd_mma.cu (same walk, register fragments, 2-3x faster)
// for 16-bit inputs with P % 64 == 0 and N % 32 == 0 unless a tuning override names a chunk or
// head-dim tile, after that file's scores kernel has filled the front of the workspace with
// C B^T and the per-row vectors of every chunk; the WMMA kernel serves every other shape (fp32
// exactly, with FMA tile products).
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

#include "kernels/cuda/ssd_common.cuh"
#include "kernels/cuda/pdl.cuh"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

namespace {

using namespace mp_ssd;

// Shared-memory plan, in bytes, for one block; each buffer starts 128-byte aligned. The
// state-only pass (pass 1 of the segmented scan) needs no C, W or operand copy of S.
struct Plan {
  int ldN, ldP, ldQ;
  int offC, offB, offX, offXw, offW, offS, offStage, offDt, offAcs, offEa, offFw, total;
};

__host__ __device__ inline Plan make_plan(int Q, int PT, int N, int esize, bool state_only) {
  Plan p;
  const int pad = 16 / esize;  // one 16-byte vector per row: spreads rows over banks
  const int full = state_only ? 0 : 1;
  p.ldN = N + pad;
  p.ldP = PT + pad;
  p.ldQ = Q + pad;
  int o = 0;
  p.offC = o;  o = align128(o + full * Q * p.ldN * esize);
  p.offB = o;  o = align128(o + Q * p.ldN * esize);
  p.offX = o;  o = align128(o + Q * p.ldP * esize);
  p.offXw = o; o = align128(o + Q * p.ldP * esize);
  p.offW = o;  o = align128(o + full * Q * p.ldQ * esize);
  p.offS = o;  o = align128(o + full * PT * p.ldN * esize);
  p.offStage = o; o = align128(o + kWarps * 256 * 4);
  p.offDt = o; o = align128(o + Q * 4);
  p.offAcs = o; o = align128(o + Q * 4);
  p.offEa = o; o = align128(o + Q * 4);
  p.offFw = o; o = align128(o + Q * 4);
  p.total = o;
  return p;
}

template <typename T, int Q, int PT, bool kStateOnly>
__global__ void __launch_bounds__(kThreads, 2) ssd_fwd_kernel(MpSsdFwdArgs a, bool vec, Seg sg) {
  using Ops = TileOps<T>;
  using Acc = typename Ops::Acc;
  constexpr int MAXT = PT / 8;  // state tiles per warp at N = 256: (PT/16) * 16 / kWarps
  const int N = a.dstate, P = a.headdim, L = a.seqlen, H = a.heads;
  const int ptiles = P / PT;
  const FwdBlock blk = fwd_block(ptiles, H, a.batch);
  const int pt = blk.pt, h = blk.h, b = blk.b, seg = blk.seg;
  const int g = h / (H / a.groups);
  const int p0 = pt * PT;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;

  extern __shared__ __align__(128) unsigned char smem[];
  const Plan pl = make_plan(Q, PT, N, sizeof(T), kStateOnly);
  T* Cs = reinterpret_cast<T*>(smem + pl.offC);
  T* Bs = reinterpret_cast<T*>(smem + pl.offB);
  T* Xs = reinterpret_cast<T*>(smem + pl.offX);
  T* Xw = reinterpret_cast<T*>(smem + pl.offXw);
  T* Ws = reinterpret_cast<T*>(smem + pl.offW);
  T* Ss = reinterpret_cast<T*>(smem + pl.offS);
  float* stage = reinterpret_cast<float*>(smem + pl.offStage) + warp * 256;
  float* dtv = reinterpret_cast<float*>(smem + pl.offDt);
  float* acs = reinterpret_cast<float*>(smem + pl.offAcs);
  float* ea = reinterpret_cast<float*>(smem + pl.offEa);  // exp(Acs_l)
  float* fw = reinterpret_cast<float*>(smem + pl.offFw);  // dt_s exp(Acs_end - Acs_s)

  const float Ah = a.A[h], Dh = a.D[h], bias = a.dt_bias ? a.dt_bias[h] : 0.f;
  const FwdView<T> view = fwd_view<T>(a, blk, g, p0, sg.nseg);
  const T *xg = view.x, *Bg = view.B, *Cg = view.C;
  T* yg = view.y;
  const int64_t state_off = view.state_off;

  // State fragments: tile k = warp + kWarps * i covers rows (k / (N/16)) * 16, cols (k % (N/16)) * 16.
  const int nTn = N / 16, ntS = (PT / 16) * nTn;
  Acc S[MAXT];
#pragma unroll
  for (int i = 0; i < MAXT; ++i) {
    const int k = warp + kWarps * i;
    Ops::zero(S[i]);
    if (k < ntS && sg.init) {
      const float* src = sg.init + state_off + (k / nTn) * 16 * N + (k % nTn) * 16;
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
  if (!kStateOnly) publish_state();

  const int nchunks = (L + Q - 1) / Q;
  const int c_begin = seg * sg.seg_chunks, c_end = min(nchunks, c_begin + sg.seg_chunks);
  constexpr int nTq = Q / 16, nTp = PT / 16;
  float seg_sum = 0.f;  // sum of dt A over the segment (pass 1's decay)
  for (int c = c_begin; c < c_end; ++c) {
    const int t0 = c * Q;
    // Phase A: C, B, X of this chunk in flight (cp.async) while warp 0 loads dt (bias,
    // softplus, clamp) and scans dt*A into acs (inclusive, within the chunk).
    if (!kStateOnly) load_rows<T>(Cs, pl.ldN, Cg, a.C_sl, t0, Q, L, N, vec);
    load_rows<T>(Bs, pl.ldN, Bg, a.B_sl, t0, Q, L, N, vec);
    load_rows<T>(Xs, pl.ldP, xg, a.x_sl, t0, Q, L, PT, vec);
    if (warp == 0) {
      chunk_dt<Q>(a, b, h, t0, Ah, bias, dtv, acs, nullptr);
      __syncwarp();
      const float end = acs[Q - 1];
      for (int l = lane; l < Q; l += 32) {
        if (!kStateOnly) ea[l] = dexp<T>(acs[l]);
        fw[l] = (kStateOnly && sg.adjoint) ? dexp<T>(acs[l]) : dtv[l] * dexp<T>(end - acs[l]);
      }
    }
    if (vec) cp_async_wait_all();
    __syncthreads();

    // Phase B: W = mask(C B^T) * exp(Acs_l - Acs_s) * dt_s, straight from each score tile (lower
    // tiles only; W's upper tiles are never read);  Xw = x_s dt_s exp(Acs_end - Acs_s).
    const float acs_end = acs[Q - 1];
    seg_sum += acs_end;
    if (!kStateOnly) {
      for (int k = warp; k < nTq * (nTq + 1) / 2; k += kWarps) {
        int i = 0;
        while ((i + 1) * (i + 2) / 2 <= k) ++i;
        const int j = k - i * (i + 1) / 2;
        Acc acc;
        Ops::zero(acc);
        Ops::template mma<Row, Col>(acc, Cs + i * 16 * pl.ldN, pl.ldN, Bs + j * 16 * pl.ldN, pl.ldN, N);
        Ops::store(stage, 16, acc);
        __syncwarp();
        for (int e = lane; e < 256; e += 32) {
          const int l = i * 16 + (e >> 4), s = j * 16 + (e & 15);
          const float w = s <= l ? stage[e] * dexp<T>(acs[l] - acs[s]) * dtv[s] : 0.f;
          Ws[l * pl.ldQ + s] = from_f<T>(w);
        }
        __syncwarp();
      }
    }
    for (int e = threadIdx.x; e < Q * PT; e += kThreads) {
      const int s = e / PT, p = e - s * PT;
      Xw[s * pl.ldP + p] = from_f<T>(to_f(Xs[s * pl.ldP + p]) * fw[s]);
    }
    __syncthreads();

    if (!kStateOnly) {
      // Phase D1: Y = rowscale(exp(Acs)) (C S_in^T) + W X + D x  -> y.
      for (int k = warp; k < nTq * nTp; k += kWarps) {
        const int i = k / nTp, j = k - i * nTp;
        Acc acc;
        Ops::zero(acc);
        Ops::template mma<Row, Col>(acc, Cs + i * 16 * pl.ldN, pl.ldN, Ss + j * 16 * pl.ldN, pl.ldN, N);
        Ops::store(stage, 16, acc);
        __syncwarp();
        for (int e = lane; e < 256; e += 32) stage[e] *= ea[i * 16 + (e >> 4)];
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
    }
    // Phase D2: S = exp(Acs_end) S + Xw^T B  (fragments in registers; Ss still holds S_in).
    const float dec = dexp<T>(acs_end);
#pragma unroll
    for (int i = 0; i < MAXT; ++i) {
      const int k = warp + kWarps * i;
      if (k < ntS) {
        Ops::scale(S[i], dec);
        Ops::template mma<Col, Row>(S[i], Xw + (k / nTn) * 16, pl.ldP, Bs + (k % nTn) * 16, pl.ldN, Q);
      }
    }
    __syncthreads();  // every read of Ss, C, B, X, W, Xw, dt, acs of this chunk is done
    if (!kStateOnly) publish_state();  // overlaps with the next chunk's loads (disjoint buffers)
  }

  if (sg.fin) {
#pragma unroll
    for (int i = 0; i < MAXT; ++i) {
      const int k = warp + kWarps * i;
      if (k < ntS) {
        Ops::store(stage, 16, S[i]);
        __syncwarp();
        float* dst = sg.fin + state_off + (k / nTn) * 16 * N + (k % nTn) * 16;
        for (int e = lane; e < 256; e += 32) dst[(e >> 4) * N + (e & 15)] = stage[e];
        __syncwarp();
      }
    }
  }
  if (kStateOnly && sg.decay && pt == 0 && threadIdx.x == 0) sg.decay[(b * sg.nseg + seg) * H + h] = expf(seg_sum);
}

// Pass 2: per (b, h, p, n) element, in place over the segments: local end state -> entering state.
//   enter[0] = init (or 0);  enter[s+1] = decay[s] * enter[s] + local[s];  final = enter[nseg].
// reverse: the same recurrence from the last segment to the first (the backward's adjoint states:
// init = d final state, fin = d initial state).
__global__ void __launch_bounds__(256) ssd_seg_combine(int64_t per_b, int PN, int H, int nseg, int64_t total,
                                                        float* ws, const float* decay, const float* init, float* fin,
                                                        bool reverse) {
  const int64_t i = (int64_t)blockIdx.x * 256 + threadIdx.x;
  if (i >= total) return;
  const int64_t b = i / per_b, r = i - b * per_b;
  const int h = (int)(r / PN);
  float cur = init ? init[i] : 0.f;
  float* p = ws + b * nseg * per_b + r;
  const float* d = decay + b * nseg * H + h;
  for (int s0 = 0; s0 < nseg; s0 += 8) {  // 8 loads in flight, then the dependent chain
    float loc[8], dec[8];
#pragma unroll
    for (int u = 0; u < 8; ++u) {
      const int64_t sg = reverse ? nseg - 1 - (s0 + u) : s0 + u;
      if (s0 + u < nseg) loc[u] = p[sg * per_b], dec[u] = d[sg * H];
    }
#pragma unroll
    for (int u = 0; u < 8; ++u)
      if (s0 + u < nseg) {
        p[(reverse ? nseg - 1 - (s0 + u) : s0 + u) * (int64_t)per_b] = cur;
        cur = dec[u] * cur + loc[u];
      }
  }
  if (fin) fin[i] = cur;
}


template <typename T, int Q>
KernFn kern_q(int PT, bool state_only) {
  if (PT == 16) return state_only ? ssd_fwd_kernel<T, Q, 16, true> : ssd_fwd_kernel<T, Q, 16, false>;
  if (PT == 32) return state_only ? ssd_fwd_kernel<T, Q, 32, true> : ssd_fwd_kernel<T, Q, 32, false>;
  return state_only ? ssd_fwd_kernel<T, Q, 64, true> : ssd_fwd_kernel<T, Q, 64, false>;
}

KernFn kern_for(int dtype, int Q, int PT, bool state_only) {
  switch (dtype) {
    case MP_BF16: return Q == 128 ? kern_q<__nv_bfloat16, 128>(PT, state_only) : kern_q<__nv_bfloat16, 64>(PT, state_only);
    case MP_F16: return Q == 128 ? kern_q<__half, 128>(PT, state_only) : kern_q<__half, 64>(PT, state_only);
    default: return kern_q<float, 32>(PT, state_only);
  }
}


// Resident blocks per SM of a kernel at `smem` bytes of dynamic shared memory (at least 1).
// The planners ask this for every launch (the forward's plan, and the backward's walk decision
// up to six times per call), so answers are kept per (kernel, smem, device); launch_kernel sets
// the shared-memory attribute itself before each launch.
int blocks_per_sm(KernFn f, int smem) {
  struct Known {
    KernFn f;
    int smem, dev, n;
  };
  thread_local std::vector<Known> known;
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return 1;
  for (const Known& k : known)
    if (k.f == f && k.smem == smem && k.dev == dev) return k.n;
  if (cudaFuncSetAttribute((const void*)f, cudaFuncAttributeMaxDynamicSharedMemorySize, smem) != cudaSuccess) return 1;
  int n = 0;
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, (const void*)f, kThreads, smem) != cudaSuccess) return 1;
  n = n < 1 ? 1 : n;
  known.push_back({f, smem, dev, n});
  return n;
}

// Picks (Q, PT): explicit overrides when valid, else the defaults; the plan must fit shared memory.
bool choose(const MpSsdFwdArgs* a, int smem_limit, int* Q, int* PT) {
  const int es = esize_of(a->dtype);
  int q = a->chunk, pt = a->p_tile;
  if (q == 0) q = a->dtype == MP_F32 ? 32 : 64;
  if (pt == 0) pt = a->dtype == MP_F32 ? 32 : (a->dstate <= 128 ? 64 : 32);
  if (a->dtype == MP_F32 ? q != 32 : (q != 64 && q != 128)) return false;
  if (pt != 16 && pt != 32 && pt != 64) return false;
  while (pt > a->headdim) pt /= 2;
  if (pt < 16 || a->headdim % pt) return false;
  while (make_plan(q, pt, a->dstate, es, false).total > smem_limit) {
    if (q > 64 && a->dtype != MP_F32) q /= 2;
    else if (pt > 16) pt /= 2;
    else return false;
  }
  *Q = q;
  *PT = pt;
  return true;
}

struct Config {
  int Q, PT, nseg, seg_chunks;
  KernFn mma;  // the register-fragment kernel (ssd_scan_fwd_mma.cu) for the full passes, or null
};

// The register-fragment kernel when it takes the shape and no tuning override asks otherwise.
KernFn mma_choice(const MpSsdFwdArgs* a) {
  if (a->p_tile != 0 || (a->chunk != 0 && a->chunk != kMmaQ)) return nullptr;
  KernFn k = mma_fwd_kernel(a);
  return k && mma_fwd_smem_bytes(a) <= max_smem_optin() ? k : nullptr;
}

constexpr int kMinSegChunks = 2;               // automatic segments hold at least this many chunks
constexpr double kMaxWorkspace = 1024.0 * 1048576.0;  // bytes of per-segment states, automatic choice

// Segment count: the explicit override, else the minimum of a cost model in microseconds:
// waves of pass 3 and pass 1 blocks times their chunks per block (per-chunk times estimated on
// an H200), plus the workspace traffic (pass 1 writes, pass 2 reads and writes, pass 3 reads).
bool plan(const MpSsdFwdArgs* a, Config* cfg) {
  cfg->mma = mma_choice(a);
  if (cfg->mma) {
    // Segments only to fill the resident-block slots the (b, h, head-dim tile) blocks leave
    // empty (8B at b = 1: 128 blocks, 264 slots on an H100/H200 -> 2): the state-only pass 1
    // costs about half a full chunk, so splitting further does not pay.
    cfg->Q = kMmaQ, cfg->PT = kMmaPT;
    const int nch = (a->seqlen + kMmaQ - 1) / kMmaQ;
    int S = 1;
    if (a->segments > 0) {
      S = a->segments < nch ? a->segments : nch;
    } else {
      const int sms = device_attr(cudaDevAttrMultiProcessorCount) > 0 ? device_attr(cudaDevAttrMultiProcessorCount) : 1;
      const int64_t base = (int64_t)a->batch * a->heads * (a->headdim / kMmaPT);
      const int64_t slots = (int64_t)sms * blocks_per_sm(cfg->mma, mma_fwd_smem_bytes(a));
      S = (int)std::min<int64_t>(std::max<int64_t>(1, slots / base), nch / kMinSegChunks > 0 ? nch / kMinSegChunks : 1);
    }
    cfg->seg_chunks = (nch + S - 1) / S;
    cfg->nseg = (nch + cfg->seg_chunks - 1) / cfg->seg_chunks;
    return true;
  }
  if (!choose(a, max_smem_optin(), &cfg->Q, &cfg->PT)) return false;
  const int Q = cfg->Q, PT = cfg->PT, es = esize_of(a->dtype);
  const int nch = (a->seqlen + Q - 1) / Q;
  const double base = (double)a->batch * a->heads * (a->headdim / PT);
  const double state_bytes = 4.0 * a->batch * a->heads * a->headdim * a->dstate;  // one segment
  int S = 1;
  if (a->segments > 0) {
    S = a->segments < nch ? a->segments : nch;
  } else if (nch >= 2 * kMinSegChunks) {
    const int sms = device_attr(cudaDevAttrMultiProcessorCount) > 0 ? device_attr(cudaDevAttrMultiProcessorCount) : 1;
    const double slots3 = (double)sms * blocks_per_sm(kern_for(a->dtype, Q, PT, false), make_plan(Q, PT, a->dstate, es, false).total);
    const double slots1 = (double)sms * blocks_per_sm(kern_for(a->dtype, Q, PT, true), make_plan(Q, PT, a->dstate, es, true).total);
    const double per_n = a->dstate / 128.0;  // per-chunk work grows with N (and PT)
    const double t3 = 6.0 * per_n * PT / 64.0 + 2.0, t1 = 0.4 * t3, bw = 3e6;  // us, us, bytes/us
    double best = std::ceil(base / slots3) * nch * t3;
    for (int s = 2; s <= nch / kMinSegChunks; ++s) {
      const int sc = (nch + s - 1) / s, ns = (nch + sc - 1) / sc;
      if (ns != s || ns * state_bytes > kMaxWorkspace) continue;
      const double cost = std::ceil(base * ns / slots3) * sc * t3 + std::ceil(base * ns / slots1) * sc * t1 +
                          4.0 * ns * state_bytes / bw + 10.0;
      if (cost < 0.97 * best) best = cost, S = ns;
    }
  }
  cfg->seg_chunks = (nch + S - 1) / S;
  cfg->nseg = (nch + cfg->seg_chunks - 1) / cfg->seg_chunks;
  return true;
}

// dependent: as a programmatic dependent of the stream's previous kernel (pdl.cuh); only for
// the register-fragment kernels, which wait for it before reading its output.
cudaError_t launch_kernel(KernFn f, int smem, int64_t blocks, const MpSsdFwdArgs& a, bool vec, const Seg& sg,
                          cudaStream_t stream, bool dependent = false) {
  cudaError_t e = cudaFuncSetAttribute((const void*)f, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (e != cudaSuccess) return e;
  return launch_dependent(f, (unsigned)blocks, kThreads, smem, stream, dependent, a, vec, sg);
}


}  // namespace

int mp_ssd_scan_fwd_supported(const MpSsdFwdArgs* a) {
  if (a->dtype < MP_F32 || a->dtype > MP_BF16 || a->dt_dtype < MP_F32 || a->dt_dtype > MP_BF16) return 0;
  if (a->batch < 1 || a->seqlen < 1 || a->heads < 1 || a->groups < 1 || a->heads % a->groups) return 0;
  if (a->headdim % 16 || a->headdim > 128 || a->dstate % 16 || a->dstate > 256 || a->dstate < 16) return 0;
  if (a->segments < 0) return 0;
  int Q = 0, PT = 0;
  return choose(a, max_smem_optin(), &Q, &PT) ? 1 : 0;
}

void mp_ssd_scan_fwd_plan(const MpSsdFwdArgs* a, int* chunk, int* p_tile, int* segments) {
  Config c{0, 0, 0, 0, nullptr};
  if (!mp_ssd_scan_fwd_supported(a) || !plan(a, &c)) c = Config{0, 0, 0, 0, nullptr};
  *chunk = c.Q;
  *p_tile = c.PT;
  *segments = c.nseg;
}

// Workspace layout: the mma forward's chunk scores (bf16, a multiple of 16 bytes), then the
// segments' fp32 states and decays.
int64_t mp_ssd_scan_fwd_workspace_bytes(const MpSsdFwdArgs* a) {
  Config c;
  if (!mp_ssd_scan_fwd_supported(a) || !plan(a, &c)) return 0;
  const int64_t scores = c.mma ? mma_scores_bytes(a) : 0;
  if (c.nseg <= 1) return scores;
  const int64_t per_seg = (int64_t)a->batch * a->heads * a->headdim * a->dstate + (int64_t)a->batch * a->heads;
  return scores + per_seg * c.nseg * 4;
}

static_assert(kMmaQ == kMpSsdStateChunk, "the forward stores chunk states at its own chunk");
int mp_ssd_scan_fwd_state_chunk(const MpSsdFwdArgs* a) {
  Config c;
  if (!mp_ssd_scan_fwd_supported(a) || !plan(a, &c)) return 0;
  return c.mma && a->workspace ? kMpSsdStateChunk : 0;
}

cudaError_t mp_ssd_scan_fwd(const MpSsdFwdArgs* a, cudaStream_t stream) {
  Config c;
  if (!mp_ssd_scan_fwd_supported(a) || !plan(a, &c)) return cudaErrorInvalidValue;
  // The mma kernel reads scores from the workspace; without one, the WMMA kernel runs instead.
  if (c.mma && !a->workspace) {
    c.mma = nullptr;
    if (!choose(a, max_smem_optin(), &c.Q, &c.PT)) return cudaErrorInvalidValue;
    c.nseg = 1;
  }
  // Only the register-fragment kernel stores chunk states; asking another one is an error.
  if (a->chunk_states && !c.mma) return cudaErrorInvalidValue;
  const int nch = (a->seqlen + c.Q - 1) / c.Q;
  if (c.nseg > 1 && !a->workspace) c.nseg = 1;
  if (c.nseg == 1) c.seg_chunks = nch;
  const int V = 16 / esize_of(a->dtype);
  const bool vec = aligned16(a->x) && aligned16(a->B) && aligned16(a->C) && a->x_sl % V == 0 && a->x_sb % V == 0 &&
                   a->x_sh % V == 0 && a->B_sl % V == 0 && a->B_sb % V == 0 && a->B_sg % V == 0 &&
                   a->C_sl % V == 0 && a->C_sb % V == 0 && a->C_sg % V == 0;
  const int es = esize_of(a->dtype);
  const int smem3 = c.mma ? mma_fwd_smem_bytes(a) : make_plan(c.Q, c.PT, a->dstate, es, false).total;
  const int64_t base = (int64_t)a->batch * a->heads * (a->headdim / c.PT);
  KernFn full = c.mma ? c.mma : kern_for(a->dtype, c.Q, c.PT, false);
  void* scores = nullptr;
  const float* vecs = nullptr;
  float* ws = a->workspace;
  if (c.mma) {
    scores = a->workspace;
    ws = reinterpret_cast<float*>(static_cast<char*>(scores) + mma_scores_bytes(a));
    const cudaError_t e = mma_scores_launch(a, vec, scores, stream, &vecs);
    if (e != cudaSuccess) return e;
  }
  Seg s3{1, nch, a->init_state, a->final_state, nullptr, false};
  s3.scores = scores;
  s3.chunk_vecs = vecs;
  // The mma kernels right after the scores kernel start as it ends (pdl.cuh).
  if (c.nseg == 1) return launch_kernel(full, smem3, base, *a, vec, s3, stream, c.mma != nullptr);

  const int64_t per_b = (int64_t)a->heads * a->headdim * a->dstate, total = per_b * a->batch;
  float* decay = ws + total * c.nseg;
  const int smem1 = c.mma ? mma_fwd_smem_bytes(a, true) : make_plan(c.Q, c.PT, a->dstate, es, true).total;
  Seg s1{c.nseg, c.seg_chunks, nullptr, ws, decay, false};
  s1.chunk_vecs = vecs;
  cudaError_t e = launch_kernel(c.mma ? mma_fwd_kernel(a, true) : kern_for(a->dtype, c.Q, c.PT, true), smem1,
                                base * c.nseg, *a, vec, s1, stream, c.mma != nullptr);
  if (e != cudaSuccess) return e;
  ssd_seg_combine<<<(unsigned)((total + 255) / 256), 256, 0, stream>>>(per_b, a->headdim * a->dstate, a->heads, c.nseg,
                                                                       total, ws, decay, a->init_state, a->final_state, false);
  e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  s3 = Seg{c.nseg, c.seg_chunks, ws, nullptr, nullptr, false};
  s3.scores = scores;
  s3.chunk_vecs = vecs;
  return launch_kernel(full, smem3, base * c.nseg, *a, vec, s3, stream);
}

namespace {

// The backward's chunk combine: like ssd_seg_combine (one segment per chunk), but four adjacent
// elements per thread (16-byte loads), the local fp32 states left in place, and the passed-on
// states written in the input dtype TO to `out` (the operand the backward kernels read).
template <typename TO>
__global__ void __launch_bounds__(256) ssd_chunk_combine(int64_t per_b, int PN, int H, int nch, int64_t total4,
                                                         const float* local, const float* decay, const float* init,
                                                         float* fin, TO* out, bool reverse) {
  const int64_t i = (int64_t)blockIdx.x * 256 + threadIdx.x;
  if (i >= total4) return;
  const int64_t e = i * 4, b = e / per_b, r = e - b * per_b;
  const int h = (int)(r / PN);
  float4 cur = init ? *reinterpret_cast<const float4*>(init + e) : make_float4(0.f, 0.f, 0.f, 0.f);
  const float* p = local + b * nch * per_b + r;
  TO* o = out + b * nch * per_b + r;
  const float* d = decay + b * nch * H + h;
  for (int c0 = 0; c0 < nch; c0 += 8) {  // 8 loads in flight, then the dependent chain
    float4 loc[8];
    float dec[8];
#pragma unroll
    for (int u = 0; u < 8; ++u) {
      const int64_t c = reverse ? nch - 1 - (c0 + u) : c0 + u;
      if (c0 + u < nch) loc[u] = *reinterpret_cast<const float4*>(p + c * per_b), dec[u] = d[c * H];
    }
#pragma unroll
    for (int u = 0; u < 8; ++u)
      if (c0 + u < nch) {
        TO* dst = o + (reverse ? nch - 1 - (c0 + u) : c0 + u) * per_b;
        dst[0] = from_f<TO>(cur.x), dst[1] = from_f<TO>(cur.y), dst[2] = from_f<TO>(cur.z), dst[3] = from_f<TO>(cur.w);
        cur.x = dec[u] * cur.x + loc[u].x;
        cur.y = dec[u] * cur.y + loc[u].y;
        cur.z = dec[u] * cur.z + loc[u].z;
        cur.w = dec[u] * cur.w + loc[u].w;
      }
  }
  if (fin) *reinterpret_cast<float4*>(fin + e) = cur;
}

}  // namespace

namespace {

bool chunk_vec_ok(const MpSsdFwdArgs* a) {
  const int V = 16 / esize_of(a->dtype);
  return aligned16(a->x) && aligned16(a->B) && a->x_sl % V == 0 && a->x_sb % V == 0 && a->x_sh % V == 0 &&
         a->B_sl % V == 0 && a->B_sb % V == 0 && a->B_sg % V == 0;
}

// The sequential pass of mp_ssd_chunk_states, where it runs: when the (b, h) blocks alone fill
// most resident-block slots (56B at b = 1: 256 of 264), one block per (b, h) walks all chunks and
// writes each chunk's state in the input dtype directly. That skips the fp32 local states and the
// combine's second sweep over them, which at Q = 64 move ~3x the bytes of the states themselves.
// Where N allows, the walk splits the state's columns over two blocks (four resident per SM),
// except where its update is a warpgroup product (wgmma: device code for sm_90a, at N = 128 and
// 256): there one block holds all N columns. Measured on an H200 (56B, b = 1): each walk 0.521 ms
// split with mma.sync, 0.498 whole with wgmma, 0.65 split with wgmma (64 registers are too few
// for its operands, and ptxas serializes the products).
struct Walk {
  KernFn k;
  int smem;
  int64_t blocks;
};
bool chunk_walk(const MpSsdFwdArgs* a, Walk* w) {
  if (a->chunk != kMmaQ || !chunk_vec_ok(a) || !mma_fwd_kernel(a, true)) return false;
  const bool whole = (a->dstate == 128 || a->dstate == 256) && mp_ssd_wgmma_built();
  const int split = !whole && mma_state_kernel(a, 2) ? 2 : 1;
  w->k = mma_state_kernel(a, split);
  if (!w->k) return false;
  const int sms = device_attr(cudaDevAttrMultiProcessorCount) > 0 ? device_attr(cudaDevAttrMultiProcessorCount) : 1;
  w->smem = mma_state_smem_bytes(a, split);
  const int64_t base = (int64_t)a->batch * a->heads * (a->headdim / kMmaPT);
  const int64_t slots = (int64_t)sms * blocks_per_sm(w->k, w->smem);
  w->blocks = base * split;
  return 4 * w->blocks >= 3 * slots;
}

}  // namespace

int mp_ssd_chunk_states_walks(const MpSsdFwdArgs* a) {
  int Q = 0, PT = 0;
  Walk w;
  return mp_ssd_scan_fwd_supported(a) && choose(a, max_smem_optin(), &Q, &PT) && Q == a->chunk && chunk_walk(a, &w);
}

cudaError_t mp_ssd_chunk_states(const MpSsdFwdArgs* a, int adjoint, float* local, float* decay, void* states,
                                const float* edge_in, float* edge_out, const float* vecs, cudaStream_t stream,
                                int dependent) {
  int Q = 0, PT = 0;
  if (!mp_ssd_scan_fwd_supported(a) || !choose(a, max_smem_optin(), &Q, &PT) || Q != a->chunk) return cudaErrorInvalidValue;
  const int nch = (a->seqlen + Q - 1) / Q;
  const bool vec = chunk_vec_ok(a);
  Walk w;
  if (chunk_walk(a, &w)) {
    Seg sw{1, nch, edge_in, edge_out, nullptr, adjoint != 0, states, adjoint != 0};
    sw.chunk_vecs = vecs;
    sw.wait_late = dependent == 2;
    return launch_kernel(w.k, w.smem, w.blocks, *a, vec, sw, stream, dependent != 0);
  }
  if (!local || !decay) return cudaErrorInvalidValue;
  // Otherwise one block per chunk: the register-fragment state pass where it applies (chunk 64,
  // 64-wide head tiles), else WMMA; then the chunk combine.
  KernFn k1 = Q == kMmaQ ? mma_fwd_kernel(a, true) : nullptr;
  if (k1) PT = kMmaPT;
  const int64_t base = (int64_t)a->batch * a->heads * (a->headdim / PT);
  const int smem1 = k1 ? mma_fwd_smem_bytes(a, true) : make_plan(Q, PT, a->dstate, esize_of(a->dtype), true).total;
  Seg s1{nch, 1, nullptr, local, decay, adjoint != 0};
  s1.chunk_vecs = k1 ? vecs : nullptr;
  cudaError_t e = launch_kernel(k1 ? k1 : kern_for(a->dtype, Q, PT, true), smem1, base * nch, *a, vec, s1, stream);
  if (e != cudaSuccess) return e;
  const int64_t per_b = (int64_t)a->heads * a->headdim * a->dstate, total4 = per_b * a->batch / 4;
  const unsigned grid = (unsigned)((total4 + 255) / 256);
  const int PN = a->headdim * a->dstate;
  const bool rev = adjoint != 0;
  switch (a->dtype) {
    case MP_BF16:
      ssd_chunk_combine<__nv_bfloat16><<<grid, 256, 0, stream>>>(per_b, PN, a->heads, nch, total4, local, decay, edge_in,
                                                                 edge_out, static_cast<__nv_bfloat16*>(states), rev);
      break;
    case MP_F16:
      ssd_chunk_combine<__half><<<grid, 256, 0, stream>>>(per_b, PN, a->heads, nch, total4, local, decay, edge_in,
                                                          edge_out, static_cast<__half*>(states), rev);
      break;
    default:
      ssd_chunk_combine<float><<<grid, 256, 0, stream>>>(per_b, PN, a->heads, nch, total4, local, decay, edge_in,
                                                         edge_out, static_cast<float*>(states), rev);
  }
  return cudaGetLastError();
}
