// Causal depthwise conv1d (+ SiLU) on [B, L, C], forward and backward. Semantics in
// causal_conv1d.cuh. Memory-bound streaming kernels, designed for copy bandwidth:
// - Each thread owns V adjacent channels (one 8-byte vector when alignment allows; a warp reads a
//   contiguous 256-byte row segment) and a long time tile (kTileFwd / kTileBwd rows), walked in
//   order with a rolling window: only the last 3 input rows stay live, and the halo re-read from
//   the neighbouring tile (3 rows forward, 6 backward) is a small fraction, mostly L2 hits.
// - Rows are loaded kU at a time and one chunk ahead (chunk n + 1 is in flight while chunk n is
//   computed), so loads overlap the arithmetic even at moderate occupancy.
// - 8-byte rather than 16-byte vectors: the kernels are latency / issue bound at 16-bit types
//   (twice the elements per byte of fp32), and 16-byte vectors double the per-thread state
//   (weights, windows, dw sums), which costs more occupancy than the wider loads save (measured
//   on H200: forward 66-72% of copy bandwidth at 16 bytes against 86-92% at 8).
// - Every width K <= 4 runs one code path: weights are right-aligned in a 4-tap window
//   (w4[j] = w[j - (4 - K)], zero for j < 4 - K), so loops unroll fully and all register arrays
//   are indexed by compile-time constants.
// Backward: du = dy * silu'(u) (u recomputed from x), dx[t] = sum_j w4[j] du[t+3-j] (so dx of row
// t is emitted once du of row t+3 is known: 3 rows of du history, and the tile reads 3 rows past
// its end), dw and dbias summed in registers over the thread's tile, then over the block's warps
// (which stack along time on the same channels) in shared memory, then one fp32 atomicAdd per
// (channel, tap) per block.
#include "kernels/cuda/causal_conv1d.cuh"
#include "kernels/cuda/dtype_convert.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace {

using mp_cuda::from_f;
using mp_cuda::to_f;
// Two floats to one packed pair (a single cvt instruction on sm_80+).
__device__ __forceinline__ __half2 from_f2(float a, float b, __half) { return __floats2half2_rn(a, b); }
__device__ __forceinline__ __nv_bfloat162 from_f2(float a, float b, __nv_bfloat16) { return __floats2bfloat162_rn(a, b); }

template <typename T, int V>
struct alignas(sizeof(T) * V) Vec {
  T v[V];
};

template <typename T, int V>
__device__ __forceinline__ Vec<T, V> load_row(const T* p, bool ok) {
  return ok ? *reinterpret_cast<const Vec<T, V>*>(p) : Vec<T, V>{};
}
// Rows t .. t + U - 1 from p (at row t, row stride sl), rows >= lim as zeros; p moves U rows on.
template <typename T, int V, int U>
__device__ __forceinline__ void load_rows(Vec<T, V> (&r)[U], const T*& p, int64_t sl, int t, int lim) {
#pragma unroll
  for (int i = 0; i < U; ++i, p += sl) r[i] = load_row<T, V>(p, t + i < lim);
}
template <typename T, int V>
__device__ __forceinline__ void unpack(const Vec<T, V>& p, float (&f)[V]) {
#pragma unroll
  for (int i = 0; i < V; ++i) f[i] = to_f(p.v[i]);
}
template <typename T, int V>
__device__ __forceinline__ void store_row(T* p, const float (&f)[V]) {
  Vec<T, V> pk;
  if constexpr (sizeof(T) == 2 && V % 2 == 0) {
#pragma unroll
    for (int i = 0; i < V; i += 2) {
      const auto two = from_f2(f[i], f[i + 1], T());
      pk.v[i] = two.x;
      pk.v[i + 1] = two.y;
    }
  } else {
#pragma unroll
    for (int i = 0; i < V; ++i) pk.v[i] = from_f<T>(f[i]);
  }
  *reinterpret_cast<Vec<T, V>*>(p) = pk;
}

// sigmoid(u) = 1 / (1 + 2^(-u log2 e)). For 16-bit types the hardware approximations (ex2, rcp:
// ~2 ulp of fp32, flush-to-zero) are far below the 8-11 bit output rounding and cost one
// instruction each; 2^(+big) = inf gives 1/inf = 0. fp32 keeps the accurate expf and division.
__device__ __forceinline__ float ex2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
__device__ __forceinline__ float rcp_approx(float x) {
  float y;
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
template <typename T>
__device__ __forceinline__ float sigmoid_f(float u) {
  if constexpr (sizeof(T) == 2) return rcp_approx(1.f + ex2_approx(-1.4426950408889634f * u));
  else return 1.f / (1.f + expf(-u));
}

template <int V>
__device__ __forceinline__ void load_weights(const MpConvArgs& a, int c0, float (&w4)[4][V], float (&bs)[V]) {
  const int K = a.width;
#pragma unroll
  for (int v = 0; v < V; ++v) {
    bs[v] = a.bias ? a.bias[c0 + v] : 0.f;
#pragma unroll
    for (int j = 0; j < 4; ++j) w4[j][v] = (j >= 4 - K) ? a.w[(int64_t)(c0 + v) * K + j - (4 - K)] : 0.f;
  }
}

// Tile shape: the best measured on H200 among 16-128-row tiles, 2-16-row chunks, 4-16-byte
// vectors, with and without the one-chunk prefetch.
constexpr int kU = 4;         // rows per load chunk
constexpr int kWarps = 4;     // warps per block, stacked along time on the same channels
constexpr int kTileFwd = 32;  // rows per thread, forward
constexpr int kTileBwd = 64;  // rows per thread, backward (its halo is 6 rows, so longer pays)

// Block = 32 x kWarps threads: lane x owns channels c0 .. c0 + V - 1, warp y the y-th of the
// block's kWarps consecutive time tiles. Grid = (channel groups of 32 V, time tiles / kWarps, batch).
template <typename T, int V, bool Silu>
__global__ void __launch_bounds__(32 * kWarps) conv_fwd_kernel(const MpConvArgs a) {
  constexpr int TT = kTileFwd, U = kU;
  const int c0 = (blockIdx.x * 32 + threadIdx.x) * V;
  const int t0 = (blockIdx.y * kWarps + threadIdx.y) * TT;
  const int L = a.seqlen;
  if (c0 >= a.channels || t0 >= L) return;
  const int t1 = min(t0 + TT, L);
  float w4[4][V], bs[V];
  load_weights<V>(a, c0, w4, bs);
  const T* x = static_cast<const T*>(a.x) + blockIdx.z * a.x_sb + c0;
  T* y = static_cast<T*>(a.y) + blockIdx.z * a.y_sb + c0;
  float h[3][V];  // x rows t-3, t-2, t-1 (zero before t = 0)
#pragma unroll
  for (int r = 0; r < 3; ++r) unpack<T, V>(load_row<T, V>(x + (int64_t)(t0 - 3 + r) * a.x_sl, t0 - 3 + r >= 0), h[r]);
  x += (int64_t)t0 * a.x_sl;  // x and y walk the tile one row at a time
  y += (int64_t)t0 * a.y_sl;
  Vec<T, V> next[U];  // the chunk after the current one, in flight while it is computed
  load_rows<T, V, U>(next, x, a.x_sl, t0, t1);
  for (int t = t0; t < t1; t += U) {
    Vec<T, V> raw[U];
#pragma unroll
    for (int i = 0; i < U; ++i) raw[i] = next[i];
    load_rows<T, V, U>(next, x, a.x_sl, t + U, t1);
#pragma unroll
    for (int i = 0; i < U; ++i, y += a.y_sl) {
      float xc[V], out[V];
      unpack<T, V>(raw[i], xc);
#pragma unroll
      for (int v = 0; v < V; ++v) {
        float u = bs[v];
        u = fmaf(w4[0][v], h[0][v], u);
        u = fmaf(w4[1][v], h[1][v], u);
        u = fmaf(w4[2][v], h[2][v], u);
        u = fmaf(w4[3][v], xc[v], u);
        out[v] = Silu ? u * sigmoid_f<T>(u) : u;
        h[0][v] = h[1][v];
        h[1][v] = h[2][v];
        h[2][v] = xc[v];
      }
      if (t + i < t1) store_row<T, V>(y, out);
    }
  }
}

// Per-thread backward state over one time tile: the rolling windows and the dw / dbias sums.
template <typename T, int V, bool Silu>
struct BwdTile {
  float w4[4][V], bs[V];
  float hx[3][V];  // x rows s-3 .. s-1
  float hd[3][V];  // du rows s-3 .. s-1 (zero before the tile: their dx rows belong to the previous tile)
  float dw4[4][V], db[V];

  // Consumes row s (x and dy, zeros past L); returns dx of row s - 3 in dx. Acc: row s is in the
  // tile, so its du enters dw / dbias.
  template <bool Acc>
  __device__ __forceinline__ void step(const Vec<T, V>& xr, const Vec<T, V>& gr, float (&dx)[V]) {
    float xc[V], g[V];
    unpack<T, V>(xr, xc);
    unpack<T, V>(gr, g);
#pragma unroll
    for (int v = 0; v < V; ++v) {
      float du = g[v];
      if (Silu) {
        float u = bs[v];
        u = fmaf(w4[0][v], hx[0][v], u);
        u = fmaf(w4[1][v], hx[1][v], u);
        u = fmaf(w4[2][v], hx[2][v], u);
        u = fmaf(w4[3][v], xc[v], u);
        const float s = sigmoid_f<T>(u);
        du *= fmaf(s, fmaf(-u, s, u), s);  // silu'(u) = s (1 + u (1 - s))
      }
      if (Acc) {
        db[v] += du;
        dw4[0][v] = fmaf(du, hx[0][v], dw4[0][v]);
        dw4[1][v] = fmaf(du, hx[1][v], dw4[1][v]);
        dw4[2][v] = fmaf(du, hx[2][v], dw4[2][v]);
        dw4[3][v] = fmaf(du, xc[v], dw4[3][v]);
      }
      float o = w4[0][v] * du;
      o = fmaf(w4[1][v], hd[2][v], o);
      o = fmaf(w4[2][v], hd[1][v], o);
      o = fmaf(w4[3][v], hd[0][v], o);
      dx[v] = o;
      hx[0][v] = hx[1][v];
      hx[1][v] = hx[2][v];
      hx[2][v] = xc[v];
      hd[0][v] = hd[1][v];
      hd[1][v] = hd[2][v];
      hd[2][v] = du;
    }
  }
};

template <typename T, int V, bool Silu>
__global__ void __launch_bounds__(32 * kWarps) conv_bwd_kernel(const MpConvArgs a) {
  constexpr int TT = kTileBwd, U = kU, NW = kWarps;
  // [warp][tap 0..3 | 4 = bias][lane][V + 1]: the pad makes the lane stride odd (no bank conflicts).
  __shared__ float red[NW][5][32][V + 1];
  const int c0 = (blockIdx.x * 32 + threadIdx.x) * V;
  const int t0 = (blockIdx.y * NW + threadIdx.y) * TT;
  const int L = a.seqlen, C = a.channels;
  BwdTile<T, V, Silu> st;
#pragma unroll
  for (int v = 0; v < V; ++v) {
    st.db[v] = 0.f;
#pragma unroll
    for (int j = 0; j < 4; ++j) st.dw4[j][v] = 0.f;
#pragma unroll
    for (int j = 0; j < 3; ++j) st.hd[j][v] = 0.f;
  }
  if (c0 < C && t0 < L) {
    const int t1 = min(t0 + TT, L);
    load_weights<V>(a, c0, st.w4, st.bs);
    const T* xb = static_cast<const T*>(a.x) + blockIdx.z * a.x_sb + c0;
    const T* dyb = static_cast<const T*>(a.dy) + blockIdx.z * a.dy_sb + c0;
    T* dx = static_cast<T*>(a.dx) + blockIdx.z * a.dx_sb + c0 + (int64_t)(t0 - 3) * a.dx_sl;
#pragma unroll
    for (int r = 0; r < 3; ++r)
      unpack<T, V>(load_row<T, V>(xb + (int64_t)(t0 - 3 + r) * a.x_sl, t0 - 3 + r >= 0), st.hx[r]);
    // x and dy walk rows t0, t0 + 1, ...; dx trails them by 3 rows (it starts at row t0 - 3).
    const T* x = xb + (int64_t)t0 * a.x_sl;
    const T* dy = dyb + (int64_t)t0 * a.dy_sl;
    Vec<T, V> nx[U], ng[U];  // the next chunk, in flight while the current one is computed
    load_rows<T, V, U>(nx, x, a.x_sl, t0, t1);
    load_rows<T, V, U>(ng, dy, a.dy_sl, t0, t1);
    int t = t0;
    for (; t < t1; t += U) {  // rows past t1 (only when t1 = L) load as zeros: du = 0 there
      Vec<T, V> xr[U], gr[U];
#pragma unroll
      for (int i = 0; i < U; ++i) {
        xr[i] = nx[i];
        gr[i] = ng[i];
      }
      load_rows<T, V, U>(nx, x, a.x_sl, t + U, t1);
      load_rows<T, V, U>(ng, dy, a.dy_sl, t + U, t1);
#pragma unroll
      for (int i = 0; i < U; ++i, dx += a.dx_sl) {
        float o[V];
        st.template step<true>(xr[i], gr[i], o);
        const int r = t + i - 3;
        if (r >= t0 && r < t1) store_row<T, V>(dx, o);
      }
    }
    // The 3 rows after the walk complete dx of the tile's last rows; their du belongs to the
    // next tile's dw / dbias. (x and dy ran a chunk ahead: re-aim them at row t.)
    Vec<T, V> xr[3], gr[3];
    x = xb + (int64_t)t * a.x_sl;
    dy = dyb + (int64_t)t * a.dy_sl;
    load_rows<T, V, 3>(xr, x, a.x_sl, t, L);
    load_rows<T, V, 3>(gr, dy, a.dy_sl, t, L);
#pragma unroll
    for (int i = 0; i < 3; ++i, dx += a.dx_sl) {
      float o[V];
      st.template step<false>(xr[i], gr[i], o);
      const int r = t + i - 3;
      if (r >= t0 && r < t1) store_row<T, V>(dx, o);
    }
  }
#pragma unroll
  for (int v = 0; v < V; ++v) {
#pragma unroll
    for (int j = 0; j < 4; ++j) red[threadIdx.y][j][threadIdx.x][v] = st.dw4[j][v];
    red[threadIdx.y][4][threadIdx.x][v] = st.db[v];
  }
  __syncthreads();
  // The block's channels cb .. cb + nc - 1 own dw entries cb K .. (cb + nc) K - 1, contiguous:
  // consecutive threads take consecutive entries (coalesced atomics).
  const int K = a.width, cb = blockIdx.x * 32 * V, nc = min(32 * V, C - cb);
  const int tid = threadIdx.y * 32 + threadIdx.x;
  for (int e = tid; e < nc * K; e += 32 * NW) {
    const int c = e / K, j = e % K + 4 - K;
    float s = 0.f;
#pragma unroll
    for (int w = 0; w < NW; ++w) s += red[w][j][c / V][c % V];
    atomicAdd(a.dw + (int64_t)cb * K + e, s);
  }
  if (a.dbias) {
    for (int c = tid; c < nc; c += 32 * NW) {
      float s = 0.f;
#pragma unroll
      for (int w = 0; w < NW; ++w) s += red[w][4][c / V][c % V];
      atomicAdd(a.dbias + cb + c, s);
    }
  }
}

bool aligned(const void* p, int bytes) { return (reinterpret_cast<uintptr_t>(p) % bytes) == 0; }

template <typename T, int V, bool Bwd>
cudaError_t launch(const MpConvArgs* a, cudaStream_t s) {
  constexpr int rows = (Bwd ? kTileBwd : kTileFwd) * kWarps;
  // Time tiles per block column fit gridDim.y (<= 65535) for any seqlen <= 2^22.
  static_assert(rows >= 128 && kTileFwd % kU == 0 && kTileBwd % kU == 0, "tile shape");
  const int nvec = (a->channels + V - 1) / V;
  dim3 grid((nvec + 31) / 32, (a->seqlen + rows - 1) / rows, a->batch), block(32, kWarps);
  if constexpr (Bwd) {
    if (a->silu) conv_bwd_kernel<T, V, true><<<grid, block, 0, s>>>(*a);
    else conv_bwd_kernel<T, V, false><<<grid, block, 0, s>>>(*a);
  } else {
    if (a->silu) conv_fwd_kernel<T, V, true><<<grid, block, 0, s>>>(*a);
    else conv_fwd_kernel<T, V, false><<<grid, block, 0, s>>>(*a);
  }
  return cudaGetLastError();
}

// V-element vectors when every row start is V-aligned, else one element per thread.
template <typename T, int V>
bool vec_ok(const MpConvArgs* a, bool bwd) {
  bool ok = a->channels % V == 0 && aligned(a->x, V * sizeof(T)) && a->x_sb % V == 0 && a->x_sl % V == 0;
  if (bwd) ok = ok && aligned(a->dy, V * sizeof(T)) && a->dy_sb % V == 0 && a->dy_sl % V == 0 &&
                aligned(a->dx, V * sizeof(T)) && a->dx_sb % V == 0 && a->dx_sl % V == 0;
  else ok = ok && aligned(a->y, V * sizeof(T)) && a->y_sb % V == 0 && a->y_sl % V == 0;
  return ok;
}

template <typename T>
cudaError_t run(const MpConvArgs* a, bool bwd, cudaStream_t s) {
  constexpr int V = 8 / sizeof(T);  // one 8-byte vector
  if (bwd) return vec_ok<T, V>(a, true) ? launch<T, V, true>(a, s) : launch<T, 1, true>(a, s);
  return vec_ok<T, V>(a, false) ? launch<T, V, false>(a, s) : launch<T, 1, false>(a, s);
}

cudaError_t dispatch(const MpConvArgs* a, bool bwd, cudaStream_t s) {
  if (!mp_causal_conv1d_supported(a)) return cudaErrorInvalidValue;
  switch (a->dtype) {
    case MP_BF16: return run<__nv_bfloat16>(a, bwd, s);
    case MP_F16: return run<__half>(a, bwd, s);
    default: return run<float>(a, bwd, s);
  }
}

}  // namespace

int mp_causal_conv1d_supported(const MpConvArgs* a) {
  return a->dtype >= MP_F32 && a->dtype <= MP_BF16 && a->width >= 1 && a->width <= 4 && a->batch >= 1 &&
         a->seqlen >= 1 && a->seqlen <= (1 << 22) && a->channels >= 1 && a->batch <= 65535;
}

cudaError_t mp_causal_conv1d_fwd(const MpConvArgs* a, cudaStream_t s) { return dispatch(a, false, s); }
cudaError_t mp_causal_conv1d_bwd(const MpConvArgs* a, cudaStream_t s) { return dispatch(a, true, s); }
