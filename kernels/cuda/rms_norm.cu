// Fused (gated, grouped) RMSNorm, forward and backward. Semantics in rms_norm.cuh.
// The LibTorch-ops version runs ~10 element-wise kernels over fp32 copies of the row (casts,
// silu, product, square, mean, rsqrt, scale, cast, weight) and keeps several of them alive for
// autograd; these kernels read each input once and write each output once.
// - Forward: one block per row. Each thread owns VPT 16-byte vectors of the row (vector
//   v = k * blockDim + thread, so a warp reads 512 contiguous bytes per k), issues all its loads
//   before any arithmetic, and keeps the row in registers. Per-vector sums of squares go to
//   shared memory; one warp per group adds them in a fixed order (same input, same bits).
// - Backward: a grid of resident blocks walks the rows (grid stride). r comes from the forward
//   (rstd, 4 bytes per row and group); the per-group dot mean(dn n) takes the same shared-memory
//   reduction. dw is summed over the block's rows in shared memory (each thread its own columns)
//   and written once per block as a row of partial sums (no atomics: the caller's sum over
//   blocks is deterministic).
#include "kernels/cuda/rms_norm.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace {

constexpr int kVecBytes = 16;
constexpr int kMaxVectors = 2048;  // per row: 4 per thread x 512 threads (128 registers each)

template <typename T> __device__ __forceinline__ float to_f(T v) { return static_cast<float>(v); }
template <> __device__ __forceinline__ float to_f<__half>(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float to_f<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T> __device__ __forceinline__ T from_f(float v) { return v; }
template <> __device__ __forceinline__ __half from_f<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
// v rounded to T and back: what HF's `.to(input_dtype)` does to the normalised value.
template <typename T> __device__ __forceinline__ float round_to(float v) { return to_f(from_f<T>(v)); }

template <typename T>
struct alignas(kVecBytes) Vec {
  static constexpr int E = kVecBytes / sizeof(T);
  T v[E];
};

template <typename T>
__device__ __forceinline__ const T* row_ptr(const void* base, int64_t sb, int64_t sl, int b, int t) {
  return static_cast<const T*>(base) + b * sb + t * sl;
}
template <typename T>
__device__ __forceinline__ T* row_ptr(void* base, int64_t sb, int64_t sl, int b, int t) {
  return static_cast<T*>(base) + b * sb + t * sl;
}

// The E weights of vector v (w is fp32, 16-byte aligned; E is 4 or 8).
template <int E>
__device__ __forceinline__ void load_w(const float* w, int v, float (&out)[E]) {
#pragma unroll
  for (int i = 0; i < E / 4; ++i) {
    const float4 q = reinterpret_cast<const float4*>(w + v * E)[i];
    out[4 * i] = q.x, out[4 * i + 1] = q.y, out[4 * i + 2] = q.z, out[4 * i + 3] = q.w;
  }
}

__device__ __forceinline__ float sigmoid(float z) { return 1.f / (1.f + expf(-z)); }

__device__ __forceinline__ float warp_sum(float s) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  return s;
}

// out[k] = f(sum of vec_sum[k * vpg .. (k + 1) * vpg)), one warp per group, fixed order.
// Followed by a barrier, so every thread may read out[] after it.
template <typename F>
__device__ __forceinline__ void reduce_groups(const float* vec_sum, int vpg, int groups, float* out, F f) {
  __syncthreads();
  const int lane = threadIdx.x % 32, warps = blockDim.x / 32;
  for (int k = threadIdx.x / 32; k < groups; k += warps) {
    float s = 0.f;
    for (int i = lane; i < vpg; i += 32) s += vec_sum[k * vpg + i];
    s = warp_sum(s);
    if (lane == 0) out[k] = f(s);
  }
  __syncthreads();
}

// The thread's k-th vector index, or -1 past the row's end.
__device__ __forceinline__ int vec_index(int k, int nvec) {
  const int v = k * blockDim.x + threadIdx.x;
  return v < nvec ? v : -1;
}

template <typename T, int VPT>
__global__ void __launch_bounds__(512) rms_norm_fwd_kernel(MpNormArgs a) {
  constexpr int E = Vec<T>::E;
  extern __shared__ float smem[];  // [nvec] per-vector sums of squares, then [groups] r
  const int nvec = a.width / E, vpg = nvec / a.groups;
  float* vec_sum = smem;
  float* group_r = smem + nvec;
  const int row = blockIdx.x, b = row / a.seqlen, t = row - b * a.seqlen;
  const T* x = row_ptr<T>(a.x, a.x_sb, a.x_sl, b, t);
  const T* z = a.z ? row_ptr<T>(a.z, a.z_sb, a.z_sl, b, t) : nullptr;

  Vec<T> xv[VPT], zv[VPT];
#pragma unroll
  for (int k = 0; k < VPT; ++k) {
    const int v = vec_index(k, nvec);
    if (v < 0) continue;
    xv[k] = reinterpret_cast<const Vec<T>*>(x)[v];
    if (z) zv[k] = reinterpret_cast<const Vec<T>*>(z)[v];
  }
  float g[VPT][E];
#pragma unroll
  for (int k = 0; k < VPT; ++k) {
    const int v = vec_index(k, nvec);
    if (v < 0) continue;
    float ss = 0.f;
#pragma unroll
    for (int e = 0; e < E; ++e) {
      float gi = to_f(xv[k].v[e]);
      if (z) {
        const float zi = to_f(zv[k].v[e]);
        gi *= zi * sigmoid(zi);
      }
      g[k][e] = gi;
      ss += gi * gi;
    }
    vec_sum[v] = ss;
  }
  const float inv_w = 1.f / static_cast<float>(vpg * E), eps = a.eps;
  reduce_groups(vec_sum, vpg, a.groups, group_r, [=](float s) { return rsqrtf(s * inv_w + eps); });

  T* out = row_ptr<T>(a.out, a.out_sb, a.out_sl, b, t);
#pragma unroll
  for (int k = 0; k < VPT; ++k) {
    const int v = vec_index(k, nvec);
    if (v < 0) continue;
    const float r = group_r[v / vpg];
    float w[E];
    load_w(a.w, v, w);
    Vec<T> o;
#pragma unroll
    for (int e = 0; e < E; ++e) o.v[e] = from_f<T>(w[e] * round_to<T>(g[k][e] * r));
    reinterpret_cast<Vec<T>*>(out)[v] = o;
  }
  if (a.rstd)
    for (int k = threadIdx.x; k < a.groups; k += blockDim.x) a.rstd[static_cast<int64_t>(row) * a.groups + k] = group_r[k];
}

template <typename T, int VPT>
__global__ void __launch_bounds__(512) rms_norm_bwd_kernel(MpNormArgs a) {
  constexpr int E = Vec<T>::E;
  // Shared memory: [nvec] per-vector sums of dn n, [groups rounded up to 4] mean(dn n), then the
  // block's dw sums [W]. Each thread owns the dw slots of its own vectors, so they need no
  // barrier; they live here rather than in registers, which the row's inputs fill.
  extern __shared__ float smem[];
  const int nvec = a.width / E, vpg = nvec / a.groups;
  float* vec_sum = smem;
  float* group_m = smem + nvec;
  float* dw = group_m + (a.groups + 3) / 4 * 4;
  const float inv_w = 1.f / static_cast<float>(vpg * E);
  const int rows = a.batch * a.seqlen;
  const bool gated = a.z != nullptr;

#pragma unroll
  for (int k = 0; k < VPT; ++k) {
    const int v = vec_index(k, nvec);
    if (v < 0) continue;
#pragma unroll
    for (int e = 0; e < E; e += 4) *reinterpret_cast<float4*>(dw + v * E + e) = make_float4(0.f, 0.f, 0.f, 0.f);
  }

  for (int row = blockIdx.x; row < rows; row += gridDim.x) {
    const int b = row / a.seqlen, t = row - b * a.seqlen;
    const T* x = row_ptr<T>(a.x, a.x_sb, a.x_sl, b, t);
    const T* z = gated ? row_ptr<T>(a.z, a.z_sb, a.z_sl, b, t) : nullptr;
    const T* dout = row_ptr<T>(a.dout, a.dout_sb, a.dout_sl, b, t);
    const float* rstd = a.rstd + static_cast<int64_t>(row) * a.groups;
    Vec<T> xv[VPT], zv[VPT], dv[VPT];
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
      const int v = vec_index(k, nvec);
      if (v < 0) continue;
      xv[k] = reinterpret_cast<const Vec<T>*>(x)[v];
      if (gated) zv[k] = reinterpret_cast<const Vec<T>*>(z)[v];
      dv[k] = reinterpret_cast<const Vec<T>*>(dout)[v];
    }
    // Pass 1: n = g r, dn = dout w; the per-vector sums of dn n and the dw terms.
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
      const int v = vec_index(k, nvec);
      if (v < 0) continue;
      const float r = rstd[v / vpg];
      float w[E], acc[E];
      load_w(a.w, v, w);
      load_w(dw, v, acc);
      float dot = 0.f;
#pragma unroll
      for (int e = 0; e < E; ++e) {
        float gi = to_f(xv[k].v[e]);
        if (gated) {
          const float zi = to_f(zv[k].v[e]);
          gi *= zi * sigmoid(zi);
        }
        const float n = gi * r, d = to_f(dv[k].v[e]);
        dot += d * w[e] * n;
        acc[e] += d * round_to<T>(n);
      }
#pragma unroll
      for (int e = 0; e < E; e += 4)
        *reinterpret_cast<float4*>(dw + v * E + e) = make_float4(acc[e], acc[e + 1], acc[e + 2], acc[e + 3]);
      vec_sum[v] = dot;
    }
    reduce_groups(vec_sum, vpg, a.groups, group_m, [=](float s) { return s * inv_w; });

    // Pass 2: dg = r (dn - n mean(dn n)), then through the gate.
    T* dx = row_ptr<T>(a.dx, a.dx_sb, a.dx_sl, b, t);
    T* dz = gated ? row_ptr<T>(a.dz, a.dz_sb, a.dz_sl, b, t) : nullptr;
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
      const int v = vec_index(k, nvec);
      if (v < 0) continue;
      const float r = rstd[v / vpg], m = group_m[v / vpg];
      float w[E];
      load_w(a.w, v, w);
      Vec<T> ox, oz;
#pragma unroll
      for (int e = 0; e < E; ++e) {
        const float xi = to_f(xv[k].v[e]), d = to_f(dv[k].v[e]);
        if (gated) {
          const float zi = to_f(zv[k].v[e]), s = sigmoid(zi), silu = zi * s;
          const float n = xi * silu * r;
          const float dg = r * (d * w[e] - n * m);
          ox.v[e] = from_f<T>(dg * silu);
          oz.v[e] = from_f<T>(dg * xi * s * (1.f + zi * (1.f - s)));
        } else {
          const float n = xi * r;
          ox.v[e] = from_f<T>(r * (d * w[e] - n * m));
        }
      }
      reinterpret_cast<Vec<T>*>(dx)[v] = ox;
      if (gated) reinterpret_cast<Vec<T>*>(dz)[v] = oz;
    }
    // reduce_groups' closing barrier ordered every read of vec_sum before pass 2; this one keeps
    // the next row's reduction from overwriting group_m while pass 2 still reads it.
    __syncthreads();
  }
  float* part = a.dw_partial + static_cast<int64_t>(blockIdx.x) * a.width;
#pragma unroll
  for (int k = 0; k < VPT; ++k) {
    const int v = vec_index(k, nvec);
    if (v < 0) continue;
#pragma unroll
    for (int e = 0; e < E; e += 4)
      *reinterpret_cast<float4*>(part + v * E + e) = *reinterpret_cast<const float4*>(dw + v * E + e);
  }
}

int elem_bytes(int dtype) { return dtype == MP_F32 ? 4 : 2; }

// Vectors per thread: few threads per row for narrow rows, up to 4 per thread for wide ones.
int vectors_per_thread(int nvec) { return nvec <= 256 ? 1 : nvec <= 512 ? 2 : 4; }
int threads_for(int nvec) {
  const int vpt = vectors_per_thread(nvec);
  return ((nvec + vpt - 1) / vpt + 31) / 32 * 32;
}
size_t fwd_smem(const MpNormArgs* a) {
  return sizeof(float) * (a->width / (kVecBytes / elem_bytes(a->dtype)) + a->groups);
}
size_t bwd_smem(const MpNormArgs* a) {
  return sizeof(float) * (a->width / (kVecBytes / elem_bytes(a->dtype)) + (a->groups + 3) / 4 * 4 + a->width);
}

bool aligned(const void* p, int64_t sb, int64_t sl, int eb) {
  return p == nullptr ||
         (reinterpret_cast<uintptr_t>(p) % kVecBytes == 0 && (sb * eb) % kVecBytes == 0 && (sl * eb) % kVecBytes == 0);
}

template <typename T, int VPT>
const void* bwd_kernel() { return reinterpret_cast<const void*>(&rms_norm_bwd_kernel<T, VPT>); }

const void* pick_bwd(int dtype, int vpt) {
  switch (dtype * 8 + vpt) {
    case MP_F32 * 8 + 1: return bwd_kernel<float, 1>();
    case MP_F32 * 8 + 2: return bwd_kernel<float, 2>();
    case MP_F32 * 8 + 4: return bwd_kernel<float, 4>();
    case MP_F16 * 8 + 1: return bwd_kernel<__half, 1>();
    case MP_F16 * 8 + 2: return bwd_kernel<__half, 2>();
    case MP_F16 * 8 + 4: return bwd_kernel<__half, 4>();
    case MP_BF16 * 8 + 1: return bwd_kernel<__nv_bfloat16, 1>();
    case MP_BF16 * 8 + 2: return bwd_kernel<__nv_bfloat16, 2>();
    default: return bwd_kernel<__nv_bfloat16, 4>();
  }
}

template <typename T, int VPT>
cudaError_t launch_fwd(const MpNormArgs* a, int threads, size_t smem, cudaStream_t s) {
  rms_norm_fwd_kernel<T, VPT><<<a->batch * a->seqlen, threads, smem, s>>>(*a);
  return cudaGetLastError();
}

template <typename T>
cudaError_t fwd_for(const MpNormArgs* a, int vpt, int threads, size_t smem, cudaStream_t s) {
  if (vpt == 1) return launch_fwd<T, 1>(a, threads, smem, s);
  if (vpt == 2) return launch_fwd<T, 2>(a, threads, smem, s);
  return launch_fwd<T, 4>(a, threads, smem, s);
}

}  // namespace

int mp_rms_norm_shape_supported(int dtype, int64_t rows, int64_t width, int64_t groups) {
  if (dtype != MP_F32 && dtype != MP_F16 && dtype != MP_BF16) return 0;
  const int per_vec = kVecBytes / elem_bytes(dtype);
  if (rows < 0 || rows > (1LL << 31) - 1 || width <= 0 || groups <= 0 || width % groups != 0) return 0;
  return (width / groups) % per_vec == 0 && width / per_vec <= kMaxVectors;
}

int mp_rms_norm_supported(const MpNormArgs* a) {
  if (a->batch < 0 || a->seqlen < 0 ||
      !mp_rms_norm_shape_supported(a->dtype, static_cast<int64_t>(a->batch) * a->seqlen, a->width, a->groups))
    return 0;
  const int eb = elem_bytes(a->dtype);
  return a->w && aligned(a->x, a->x_sb, a->x_sl, eb) && aligned(a->z, a->z_sb, a->z_sl, eb);
}

cudaError_t mp_rms_norm_fwd(const MpNormArgs* a, cudaStream_t stream) {
  if (!mp_rms_norm_supported(a) || !aligned(a->out, a->out_sb, a->out_sl, elem_bytes(a->dtype)))
    return cudaErrorInvalidValue;
  if (a->batch == 0 || a->seqlen == 0) return cudaSuccess;
  const int nvec = a->width / (kVecBytes / elem_bytes(a->dtype));
  const int vpt = vectors_per_thread(nvec), threads = threads_for(nvec);
  const size_t smem = fwd_smem(a);
  switch (a->dtype) {
    case MP_F32: return fwd_for<float>(a, vpt, threads, smem, stream);
    case MP_F16: return fwd_for<__half>(a, vpt, threads, smem, stream);
    default: return fwd_for<__nv_bfloat16>(a, vpt, threads, smem, stream);
  }
}

int mp_rms_norm_bwd_blocks(const MpNormArgs* a) {
  if (!mp_rms_norm_supported(a)) return 0;
  const int rows = a->batch * a->seqlen;
  if (rows == 0) return 0;
  const int nvec = a->width / (kVecBytes / elem_bytes(a->dtype));
  const void* f = pick_bwd(a->dtype, vectors_per_thread(nvec));
  int dev = 0, sms = 0, per_sm = 0;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
      cudaFuncSetAttribute(f, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bwd_smem(a)) != cudaSuccess ||
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, f, threads_for(nvec), bwd_smem(a)) != cudaSuccess)
    return 0;
  const int64_t resident = static_cast<int64_t>(sms) * (per_sm > 0 ? per_sm : 1);
  return static_cast<int>(resident < rows ? resident : rows);
}

cudaError_t mp_rms_norm_bwd(const MpNormArgs* a, cudaStream_t stream) {
  const int eb = elem_bytes(a->dtype);
  if (!mp_rms_norm_supported(a) || !a->rstd || !a->dw_partial || !aligned(a->dout, a->dout_sb, a->dout_sl, eb) ||
      !aligned(a->dx, a->dx_sb, a->dx_sl, eb) || (a->z && (!a->dz || !aligned(a->dz, a->dz_sb, a->dz_sl, eb))))
    return cudaErrorInvalidValue;
  const int blocks = mp_rms_norm_bwd_blocks(a);
  if (blocks == 0) return a->batch == 0 || a->seqlen == 0 ? cudaSuccess : cudaErrorInvalidConfiguration;
  const int nvec = a->width / (kVecBytes / eb);
  const void* f = pick_bwd(a->dtype, vectors_per_thread(nvec));
  MpNormArgs copy = *a;
  void* params[] = {&copy};
  return cudaLaunchKernel(f, dim3(blocks), dim3(threads_for(nvec)), params, bwd_smem(a), stream);
}
