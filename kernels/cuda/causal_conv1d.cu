// Causal depthwise conv1d (+ SiLU) on [B, L, C], forward and backward. Semantics in
// causal_conv1d.cuh. Memory-bound: each thread owns V adjacent channels (one 8- or 16-byte
// vector) and TL consecutive time steps, so a warp reads whole contiguous row segments; the
// K-1 rows of history are re-read from L1/L2 by the neighbouring time tile.
// Every width K <= 4 runs one code path: weights are right-aligned in a 4-tap window
// (w4[j] = w[j - (4 - K)], zero for j < 4 - K), so the loops are fully unrolled and all register
// arrays are indexed by compile-time constants.
// Backward: du = dy * silu'(u) (u recomputed), dx by the transposed stencil, dw and dbias reduced
// over the block's 8 time tiles in shared memory, then one fp32 atomicAdd per (channel, tap).
#include "kernels/cuda/causal_conv1d.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace {

template <typename T> __device__ __forceinline__ float to_f(T v) { return static_cast<float>(v); }
template <> __device__ __forceinline__ float to_f<__half>(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float to_f<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T> __device__ __forceinline__ T from_f(float v) { return v; }
template <> __device__ __forceinline__ __half from_f<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

template <typename T, int V>
__device__ __forceinline__ void load_vec(float (&out)[V], const T* p) {
  const Pack<T, V> pk = *reinterpret_cast<const Pack<T, V>*>(p);
#pragma unroll
  for (int i = 0; i < V; ++i) out[i] = to_f(pk.v[i]);
}
template <typename T, int V>
__device__ __forceinline__ void store_vec(T* p, const float (&in)[V]) {
  Pack<T, V> pk;
#pragma unroll
  for (int i = 0; i < V; ++i) pk.v[i] = from_f<T>(in[i]);
  *reinterpret_cast<Pack<T, V>*>(p) = pk;
}

__device__ __forceinline__ float silu_f(float u) { return u / (1.f + expf(-u)); }
__device__ __forceinline__ float dsilu_f(float u) {
  const float s = 1.f / (1.f + expf(-u));
  return s * (1.f + u * (1.f - s));
}

constexpr int kBX = 32, kBY = 8;

template <int V>
__device__ __forceinline__ void load_weights(const MpConvArgs& a, int c0, float (&w4)[4][V], float (&bs)[V]) {
  const int K = a.width;
#pragma unroll
  for (int v = 0; v < V; ++v) {
    bs[v] = a.bias ? a.bias[c0 + v] : 0.f;
#pragma unroll
    for (int j = 0; j < 4; ++j) w4[j][v] = (j >= 4 - K) ? a.w[(c0 + v) * K + j - (4 - K)] : 0.f;
  }
}

template <typename T, int V, int TL>
__global__ void __launch_bounds__(kBX * kBY) conv_fwd_kernel(MpConvArgs a) {
  const int c0 = (blockIdx.x * kBX + threadIdx.x) * V;
  const int t0 = (blockIdx.y * kBY + threadIdx.y) * TL;
  const int b = blockIdx.z, L = a.seqlen;
  if (c0 >= a.channels || t0 >= L) return;
  float w4[4][V], bs[V];
  load_weights<V>(a, c0, w4, bs);
  const T* x = static_cast<const T*>(a.x) + b * a.x_sb + c0;
  T* y = static_cast<T*>(a.y) + b * a.y_sb + c0;
  float win[TL + 3][V];  // rows t0 - 3 .. t0 + TL - 1
#pragma unroll
  for (int r = 0; r < TL + 3; ++r) {
    const int t = t0 - 3 + r;
    if (t >= 0 && t < L) load_vec<T, V>(win[r], x + (int64_t)t * a.x_sl);
    else {
#pragma unroll
      for (int v = 0; v < V; ++v) win[r][v] = 0.f;
    }
  }
#pragma unroll
  for (int i = 0; i < TL; ++i) {
    if (t0 + i < L) {
      float out[V];
#pragma unroll
      for (int v = 0; v < V; ++v) {
        float u = bs[v];
#pragma unroll
        for (int j = 0; j < 4; ++j) u = fmaf(w4[j][v], win[i + j][v], u);
        out[v] = a.silu ? silu_f(u) : u;
      }
      store_vec<T, V>(y + (int64_t)(t0 + i) * a.y_sl, out);
    }
  }
}

template <typename T, int V, int TL>
__global__ void __launch_bounds__(kBX * kBY) conv_bwd_kernel(MpConvArgs a) {
  __shared__ float red[kBY][kBX][5 * V];
  const int c0 = (blockIdx.x * kBX + threadIdx.x) * V;
  const int t0 = (blockIdx.y * kBY + threadIdx.y) * TL;
  const int b = blockIdx.z, L = a.seqlen;
  const bool active = c0 < a.channels && t0 < L;
  float dw4[4][V], db[V];
#pragma unroll
  for (int v = 0; v < V; ++v) {
    db[v] = 0.f;
#pragma unroll
    for (int j = 0; j < 4; ++j) dw4[j][v] = 0.f;
  }
  if (active) {
    float w4[4][V], bs[V];
    load_weights<V>(a, c0, w4, bs);
    const T* x = static_cast<const T*>(a.x) + b * a.x_sb + c0;
    const T* dy = static_cast<const T*>(a.dy) + b * a.dy_sb + c0;
    T* dx = static_cast<T*>(a.dx) + b * a.dx_sb + c0;
    float xw[TL + 6][V];  // rows t0 - 3 .. t0 + TL + 2
#pragma unroll
    for (int r = 0; r < TL + 6; ++r) {
      const int t = t0 - 3 + r;
      if (t >= 0 && t < L) load_vec<T, V>(xw[r], x + (int64_t)t * a.x_sl);
      else {
#pragma unroll
        for (int v = 0; v < V; ++v) xw[r][v] = 0.f;
      }
    }
    float du[TL + 3][V];  // rows t0 .. t0 + TL + 2; zero past the end
#pragma unroll
    for (int i = 0; i < TL + 3; ++i) {
      const int t = t0 + i;
      if (t < L) {
        load_vec<T, V>(du[i], dy + (int64_t)t * a.dy_sl);
#pragma unroll
        for (int v = 0; v < V; ++v) {
          if (a.silu) {
            float u = bs[v];
#pragma unroll
            for (int j = 0; j < 4; ++j) u = fmaf(w4[j][v], xw[i + j][v], u);
            du[i][v] *= dsilu_f(u);
          }
        }
      } else {
#pragma unroll
        for (int v = 0; v < V; ++v) du[i][v] = 0.f;
      }
    }
#pragma unroll
    for (int i = 0; i < TL; ++i) {
      if (t0 + i < L) {
        float out[V];
#pragma unroll
        for (int v = 0; v < V; ++v) {
          float s = 0.f;
#pragma unroll
          for (int j = 0; j < 4; ++j) s = fmaf(w4[j][v], du[i + 3 - j][v], s);
          out[v] = s;
          db[v] += du[i][v];
#pragma unroll
          for (int j = 0; j < 4; ++j) dw4[j][v] = fmaf(du[i][v], xw[i + j][v], dw4[j][v]);
        }
        store_vec<T, V>(dx + (int64_t)(t0 + i) * a.dx_sl, out);
      }
    }
  }
#pragma unroll
  for (int v = 0; v < V; ++v) {
    red[threadIdx.y][threadIdx.x][v] = db[v];
#pragma unroll
    for (int j = 0; j < 4; ++j) red[threadIdx.y][threadIdx.x][V + j * V + v] = dw4[j][v];
  }
  __syncthreads();
  if (c0 >= a.channels) return;
  // Threads of row y reduce entries e = y, y + 8, ... of their column's 5V values.
  const int K = a.width;
  for (int e = threadIdx.y; e < 5 * V; e += kBY) {
    float s = 0.f;
#pragma unroll
    for (int r = 0; r < kBY; ++r) s += red[r][threadIdx.x][e];
    if (e < V) {
      if (a.dbias) atomicAdd(a.dbias + c0 + e, s);
    } else {
      const int j = (e - V) / V, v = (e - V) % V;
      if (j >= 4 - K) atomicAdd(a.dw + (c0 + v) * K + j - (4 - K), s);
    }
  }
}

bool aligned(const void* p, int bytes) { return (reinterpret_cast<uintptr_t>(p) % bytes) == 0; }

template <typename T, int V, int TL, bool Bwd>
cudaError_t launch(const MpConvArgs* a, cudaStream_t s) {
  const int nvec = a->channels / V, ntile = (a->seqlen + TL - 1) / TL;
  dim3 grid((nvec + kBX - 1) / kBX, (ntile + kBY - 1) / kBY, a->batch), block(kBX, kBY);
  if (Bwd) conv_bwd_kernel<T, V, TL><<<grid, block, 0, s>>>(*a);
  else conv_fwd_kernel<T, V, TL><<<grid, block, 0, s>>>(*a);
  return cudaGetLastError();
}

// Vector width: VB bytes when every row start is VB-aligned, else one element per thread.
template <typename T, int VB, int TL, bool Bwd>
cudaError_t dispatch_vec(const MpConvArgs* a, cudaStream_t s) {
  constexpr int V = VB / sizeof(T);
  bool ok = a->channels % V == 0 && aligned(a->x, VB) && a->x_sb % V == 0 && a->x_sl % V == 0;
  if (Bwd) ok = ok && aligned(a->dy, VB) && a->dy_sb % V == 0 && a->dy_sl % V == 0 && aligned(a->dx, VB) &&
                a->dx_sb % V == 0 && a->dx_sl % V == 0;
  else ok = ok && aligned(a->y, VB) && a->y_sb % V == 0 && a->y_sl % V == 0;
  if (ok) return launch<T, V, TL, Bwd>(a, s);
  return launch<T, 1, TL, Bwd>(a, s);
}

template <bool Bwd>
cudaError_t dispatch(const MpConvArgs* a, cudaStream_t s) {
  if (!mp_causal_conv1d_supported(a)) return cudaErrorInvalidValue;
  // Four channels per thread for 16-bit types (8-byte vectors), two or four for fp32: more
  // keeps too many rows live in registers (255 registers at eight bf16 channels).
  switch (a->dtype) {
    case MP_BF16: return Bwd ? dispatch_vec<__nv_bfloat16, 8, 8, true>(a, s) : dispatch_vec<__nv_bfloat16, 8, 8, false>(a, s);
    case MP_F16: return Bwd ? dispatch_vec<__half, 8, 8, true>(a, s) : dispatch_vec<__half, 8, 8, false>(a, s);
    default: return Bwd ? dispatch_vec<float, 8, 8, true>(a, s) : dispatch_vec<float, 16, 8, false>(a, s);
  }
}

}  // namespace

int mp_causal_conv1d_supported(const MpConvArgs* a) {
  return a->dtype >= MP_F32 && a->dtype <= MP_BF16 && a->width >= 1 && a->width <= 4 && a->batch >= 1 &&
         a->seqlen >= 1 && a->seqlen <= (1 << 22) && a->channels >= 1 && a->batch <= 65535;
}

cudaError_t mp_causal_conv1d_fwd(const MpConvArgs* a, cudaStream_t s) { return dispatch<false>(a, s); }
cudaError_t mp_causal_conv1d_bwd(const MpConvArgs* a, cudaStream_t s) { return dispatch<true>(a, s); }
