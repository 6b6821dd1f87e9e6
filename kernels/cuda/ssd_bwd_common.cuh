// Pieces shared by the backward's two kernel families (ssd_scan_bwd.cu: WMMA through shared
// memory, any supported shape; ssd_scan_bwd_mma.cu: mma.sync register fragments, the 16-bit
// P = 64 shapes of Nemotron-H): the per-step dt tail and the register-fragment launcher.
// Header-only device code, CUDA only, no LibTorch.
#pragma once

#include "kernels/cuda/ssd_common.cuh"

namespace mp_ssd {

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o >= 1; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// The dt tail's inputs for the rows l = lane * E + e (e < E) of one lane: dt, e_l = exp(Acs_end -
// Acs_l), the raw dt + bias before softplus and clamp, and the three per-row sums below.
template <int E>
struct DtTailRows {
  float dt[E], ee[E], pre[E], dacs[E], ddt[E], xv[E];
};

// One whole warp, after the dx kernel has gathered, per row l of the chunk: dacs (the
// intra-chunk dL/dAcs_l), ddt (the direct terms of dL/ddt_l), xv (x_l . V_l), and the dB/dC
// kernel the inter-chunk and end terms in dacs_g (global). It forms
//   dAcs_l = dacs_l + dacs_g_l - q_l (+ sum_s q_s at l = end),  q_s = dt_s e_s x_s.V_s,
//   da_t = sum_{l >= t} dAcs_l (suffix sums),  dL/d(effective dt_t) = ddt_t + e_t xv_t + A da_t,
// then the raw dt's gradient through the clamp (zero outside) and softplus (sigmoid), and adds
// the chunk's parts of dA = sum_t dt_t da_t and ddt_bias to the per-head sums (atomics).
template <int Q>
__device__ void dt_tail_rows(const MpSsdBwdArgs& ba, int b, int h, int t0, int nch, float Ah,
                             const DtTailRows<Q / 32>& r, const float* dacs_g) {
  const MpSsdFwdArgs& a = ba.f;
  const int lane = threadIdx.x & 31, L = a.seqlen, H = a.heads;
  constexpr int E = Q / 32;
  const float* dg = dacs_g + ((int64_t)b * H + h) * nch * Q + t0;
  float q[E], qs = 0.f;
#pragma unroll
  for (int e = 0; e < E; ++e) {
    q[e] = r.dt[e] * r.ee[e] * r.xv[e];
    qs += q[e];
  }
  qs = warp_sum(qs);
  float v[E], run = 0.f;
#pragma unroll
  for (int e = E - 1; e >= 0; --e) {  // suffix sums within the lane's rows
    const int l = lane * E + e;
    float d = r.dacs[e] + dg[l] - q[e];
    if (l == Q - 1) d += qs;
    run += d;
    v[e] = run;
  }
  float incl = run;  // suffix sum over lanes >= this one
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const float n = __shfl_down_sync(0xffffffffu, incl, o);
    if (lane + o < 32) incl += n;
  }
  const float after = incl - run;  // rows of later lanes
  float dA = 0.f, dbias = 0.f;
#pragma unroll
  for (int e = 0; e < E; ++e) {
    const int l = lane * E + e, t = t0 + l;
    if (t >= L) continue;
    const float da = v[e] + after;
    const float gdt = r.ddt[e] + r.ee[e] * r.xv[e] + Ah * da;  // dL/d(effective dt)
    dA += r.dt[e] * da;
    const float raw = r.pre[e];
    float sp = raw, deriv = 1.f;
    if (a.dt_softplus && raw <= 20.f) {
      sp = log1pf(expf(raw));
      deriv = 1.f / (1.f + expf(-raw));
    }
    const float gr = (sp >= a.dt_min && sp <= a.dt_max) ? gdt * deriv : 0.f;
    ba.ddt[((int64_t)b * L + t) * H + h] = gr;
    dbias += gr;
  }
  dA = warp_sum(dA);
  dbias = warp_sum(dbias);
  if (lane == 0) {
    atomicAdd(ba.dA + h, dA);
    if (ba.ddt_bias) atomicAdd(ba.ddt_bias + h, dbias);
  }
}

// The same with every per-row input in shared memory ([Q] arrays).
template <int Q>
__device__ void bwd_dt_tail(const MpSsdBwdArgs& ba, int b, int h, int t0, int nch, float Ah, const float* dtv,
                            const float* pre, const float* ee, const float* dacs, const float* ddt, const float* xv,
                            const float* dacs_g) {
  constexpr int E = Q / 32;
  const int lane = threadIdx.x & 31;
  DtTailRows<E> r;
#pragma unroll
  for (int e = 0; e < E; ++e) {
    const int l = lane * E + e;
    r.dt[e] = dtv[l], r.ee[e] = ee[l], r.pre[e] = pre[l];
    r.dacs[e] = dacs[l], r.ddt[e] = ddt[l], r.xv[e] = xv[l];
  }
  dt_tail_rows<Q>(ba, b, h, t0, nch, Ah, r, dacs_g);
}

// ---- The register-fragment backward (ssd_scan_bwd_mma.cu).
// Whether it takes this launch: 16-bit inputs, chunk Q = 64, P = 64, N a multiple of 32 (<= 256),
// every operand 16-byte aligned (`vec`) and dx's strides even (paired stores).
bool bwd_mma_applies(const MpSsdBwdArgs& a, int Q, bool vec);
// Steps 3-4 of mp_ssd_scan_bwd (dB/dC kernel, then dx kernel) from the entering states Sf and the
// adjoints Sb ([b, nchunks, H, P, N], input dtype), the zeroed fp32 dAcs partials and the chunk
// vectors of mma_chunk_vecs_launch (ssd_common.cuh).
cudaError_t bwd_mma_launch(const MpSsdBwdArgs& a, const void* Sf, const void* Sb, float* dacs, const float* vecs, bool vec,
                           cudaStream_t stream);

}  // namespace mp_ssd
