// Fused (gated, grouped) RMSNorm, forward and backward. Semantics in rms_norm.cuh.
// The LibTorch-ops version runs ~10 element-wise kernels over fp32 copies of the row (casts,
// silu, product, square, mean, rsqrt, scale, cast, weight) and keeps several of them alive for
// autograd; these kernels read each input once and write each output once.
// - Forward: one block per row. Each thread owns VPT 16-byte vectors of the row (vector
//   v = k * blockDim + thread, so a warp reads 512 contiguous bytes per k), issues all its loads
//   before any arithmetic, and keeps the row's packed inputs in registers; g = x silu(z) is
//   recomputed for the output rather than kept in fp32 (fewer registers, more blocks per SM:
//   1.8x faster at W = 8192 on the H200). Per-vector sums of squares go to shared memory; one
//   warp per group adds them in a fixed order (same input, same bits).
// - Backward: a grid of resident blocks walks the rows (grid stride). r comes from the forward
//   (rstd, 4 bytes per row and group); the per-group dot mean(dn n) takes the same shared-memory
//   reduction. dw is summed over the block's rows in shared memory (each thread its own columns)
//   and written once per block as a row of partial sums (no atomics: the caller's sum over
//   blocks is deterministic).
#include "kernels/cuda/dtype_convert.cuh"
#include "kernels/cuda/rms_norm.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace {

constexpr int kVecBytes = 16;
constexpr int kMaxVectors = 2048;  // per row: 4 per thread x 512 threads

using mp_cuda::from_f;
using mp_cuda::to_f;
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

// Hardware exp (a few ulp, far inside fp32's 1e-5 budget) and a correctly rounded reciprocal;
// 1 / (1 + inf) = 0 for z << 0.
__device__ __forceinline__ float sigmoid(float z) { return __frcp_rn(1.f + __expf(-z)); }

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

__host__ __device__ __forceinline__ int round_up4(int n) { return (n + 3) / 4 * 4; }

// The thread's k-th vector index, or -1 past the row's end.
__device__ __forceinline__ int vec_index(int k, int nvec) {
  const int v = k * blockDim.x + threadIdx.x;
  return v < nvec ? v : -1;
}

// One row's inputs as the thread holds them: VPT packed vectors of each of NIN tensors
// (x, z, dout in that order; z absent without a gate).
template <typename T, int VPT, int NIN>
struct RowIn {
  Vec<T> v[NIN][VPT];
};

// Issues the loads of row `row` of the NIN tensors whose bases and strides are given.
template <typename T, int VPT, int NIN>
__device__ __forceinline__ void load_row(RowIn<T, VPT, NIN>& in, const void* const (&base)[NIN],
                                         const int64_t (&sb)[NIN], const int64_t (&sl)[NIN], int row, int seqlen,
                                         int nvec) {
  const int b = row / seqlen, t = row - b * seqlen;
#pragma unroll
  for (int i = 0; i < NIN; ++i) {
    const Vec<T>* p = reinterpret_cast<const Vec<T>*>(row_ptr<T>(base[i], sb[i], sl[i], b, t));
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
      const int v = vec_index(k, nvec);
      if (v >= 0) in.v[i][k] = p[v];
    }
  }
}

// g = x * silu(z) (element e of the thread's k-th vector), or x without a gate. Recomputed where
// needed rather than kept in fp32: fewer registers, more blocks per SM.
template <bool GATED, typename T, int VPT, int NIN>
__device__ __forceinline__ float gate(const RowIn<T, VPT, NIN>& in, int k, int e) {
  const float x = to_f(in.v[0][k].v[e]);
  if (!GATED) return x;
  const float z = to_f(in.v[1][k].v[e]);
  return x * z * sigmoid(z);
}

// The forward of one row from its loaded inputs: sums of squares, r per group, the output.
template <bool GATED, typename T, int VPT, int NIN>
__device__ __forceinline__ void fwd_row(const MpNormArgs& a, int row, const RowIn<T, VPT, NIN>& in, float* vec_sum,
                                        float* group_r) {
  constexpr int E = Vec<T>::E;
  const int nvec = a.width / E, vpg = nvec / a.groups;
#pragma unroll
  for (int k = 0; k < VPT; ++k) {
    const int v = vec_index(k, nvec);
    if (v < 0) continue;
    float ss = 0.f;
#pragma unroll
    for (int e = 0; e < E; ++e) {
      const float g = gate<GATED>(in, k, e);
      ss += g * g;
    }
    vec_sum[v] = ss;
  }
  const float inv_w = 1.f / static_cast<float>(vpg * E), eps = a.eps;
  reduce_groups(vec_sum, vpg, a.groups, group_r, [=](float s) { return rsqrtf(s * inv_w + eps); });
  const int b = row / a.seqlen, t = row - b * a.seqlen;
  Vec<T>* out = reinterpret_cast<Vec<T>*>(row_ptr<T>(a.out, a.out_sb, a.out_sl, b, t));
#pragma unroll
  for (int k = 0; k < VPT; ++k) {
    const int v = vec_index(k, nvec);
    if (v < 0) continue;
    const float r = group_r[v / vpg];
    float w[E];
    load_w(a.w, v, w);
    Vec<T> o;
#pragma unroll
    for (int e = 0; e < E; ++e) o.v[e] = from_f<T>(w[e] * round_to<T>(gate<GATED>(in, k, e) * r));
    out[v] = o;
  }
  if (a.rstd)
    for (int k = threadIdx.x; k < a.groups; k += blockDim.x) a.rstd[static_cast<int64_t>(row) * a.groups + k] = group_r[k];
  // No barrier needed before the next row: its sums go to vec_sum, whose reads all finished
  // before reduce_groups' closing barrier, and its group_r writes come after that row's first
  // barrier, which every thread reaches only after reading this row's group_r.
}

// The backward of one row: pass 1 sums dn n per vector and adds the dw terms, the group means,
// pass 2 writes dx (and dz).
template <bool GATED, typename T, int VPT, int NIN>
__device__ __forceinline__ void bwd_row(const MpNormArgs& a, int row, const RowIn<T, VPT, NIN>& in, float* vec_sum,
                                        float* group_m, float* dw) {
  constexpr int E = Vec<T>::E, D = NIN - 1;  // in.v[D]: dout
  const int nvec = a.width / E, vpg = nvec / a.groups;
  const float inv_w = 1.f / static_cast<float>(vpg * E);
  const float* rstd = a.rstd + static_cast<int64_t>(row) * a.groups;
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
      const float n = gate<GATED>(in, k, e) * r, d = to_f(in.v[D][k].v[e]);
      dot += d * w[e] * n;
      acc[e] += d * round_to<T>(n);
    }
#pragma unroll
    for (int e = 0; e < E; e += 4)
      *reinterpret_cast<float4*>(dw + v * E + e) = make_float4(acc[e], acc[e + 1], acc[e + 2], acc[e + 3]);
    vec_sum[v] = dot;
  }
  reduce_groups(vec_sum, vpg, a.groups, group_m, [=](float s) { return s * inv_w; });

  const int b = row / a.seqlen, t = row - b * a.seqlen;
  Vec<T>* dx = reinterpret_cast<Vec<T>*>(row_ptr<T>(a.dx, a.dx_sb, a.dx_sl, b, t));
  Vec<T>* dz = GATED ? reinterpret_cast<Vec<T>*>(row_ptr<T>(a.dz, a.dz_sb, a.dz_sl, b, t)) : nullptr;
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
      const float x = to_f(in.v[0][k].v[e]), d = to_f(in.v[D][k].v[e]);
      if (GATED) {
        const float z = to_f(in.v[1][k].v[e]), s = sigmoid(z), silu = z * s;
        const float dg = r * (d * w[e] - x * silu * r * m);
        ox.v[e] = from_f<T>(dg * silu);
        oz.v[e] = from_f<T>(dg * x * s * (1.f + z * (1.f - s)));
      } else {
        ox.v[e] = from_f<T>(r * (d * w[e] - x * r * m));
      }
    }
    dx[v] = ox;
    if (GATED) dz[v] = oz;
  }
  // No barrier before the next row, as in fwd_row: its group_m writes follow its first barrier.
}

// Rows blockIdx.x, + gridDim.x, ...: each loaded, then processed. (Loading the next row before
// processing this one, in a second register set, measured slower on the H200 at every shape:
// the extra registers cost more occupancy than the overlap gains.)
template <typename T, int VPT, int NIN, typename F>
__device__ __forceinline__ void walk_rows(int rows, int seqlen, int nvec, const void* const (&base)[NIN],
                                          const int64_t (&sb)[NIN], const int64_t (&sl)[NIN], F process) {
  RowIn<T, VPT, NIN> in;
  for (int row = blockIdx.x; row < rows; row += gridDim.x) {
    load_row(in, base, sb, sl, row, seqlen, nvec);
    process(row, in);
  }
}

template <bool GATED, typename T, int VPT, int MAXT>
__global__ void __launch_bounds__(MAXT) rms_norm_fwd_kernel(MpNormArgs a) {
  constexpr int E = Vec<T>::E, NIN = GATED ? 2 : 1;
  extern __shared__ float smem[];  // [nvec] per-vector sums of squares, then [groups] r
  const int nvec = a.width / E;
  float* vec_sum = smem;
  float* group_r = smem + nvec;
  const void* base[NIN] = {a.x};
  int64_t sb[NIN] = {a.x_sb}, sl[NIN] = {a.x_sl};
  if constexpr (GATED) base[1] = a.z, sb[1] = a.z_sb, sl[1] = a.z_sl;
  walk_rows<T, VPT, NIN>(a.batch * a.seqlen, a.seqlen, nvec, base, sb, sl,
                               [&](int row, const RowIn<T, VPT, NIN>& in) { fwd_row<GATED>(a, row, in, vec_sum, group_r); });
}

template <bool GATED, typename T, int VPT, int MAXT>
__global__ void __launch_bounds__(MAXT) rms_norm_bwd_kernel(MpNormArgs a) {
  constexpr int E = Vec<T>::E, NIN = GATED ? 3 : 2;
  // Shared memory: [nvec] per-vector sums of dn n, [groups] mean(dn n), then the block's dw sums
  // [W], each region padded to 16 bytes (dw is read and written as float4). Each thread owns the
  // dw slots of its own vectors, so they need no barrier; they live here rather than in
  // registers, which the rows' inputs fill.
  extern __shared__ float smem[];
  const int nvec = a.width / E;
  float* vec_sum = smem;
  float* group_m = smem + round_up4(nvec);
  float* dw = group_m + round_up4(a.groups);
#pragma unroll
  for (int k = 0; k < VPT; ++k) {
    const int v = vec_index(k, nvec);
    if (v < 0) continue;
#pragma unroll
    for (int e = 0; e < E; e += 4) *reinterpret_cast<float4*>(dw + v * E + e) = make_float4(0.f, 0.f, 0.f, 0.f);
  }
  const void* base[NIN] = {a.x};
  int64_t sb[NIN] = {a.x_sb}, sl[NIN] = {a.x_sl};
  if constexpr (GATED) base[1] = a.z, sb[1] = a.z_sb, sl[1] = a.z_sl;
  base[NIN - 1] = a.dout, sb[NIN - 1] = a.dout_sb, sl[NIN - 1] = a.dout_sl;
  walk_rows<T, VPT, NIN>(a.batch * a.seqlen, a.seqlen, nvec, base, sb, sl,
                               [&](int row, const RowIn<T, VPT, NIN>& in) { bwd_row<GATED>(a, row, in, vec_sum, group_m, dw); });
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

// Vectors per thread: 1, 2 or 4, the fewest that keep a row within 256 threads; rows of more
// than 1024 vectors take 4 per thread and up to 512 threads (measured on the H200 at W = 16384:
// 0.56 ms forward against 0.80 ms with 8 vectors per thread in 256 threads).
int vectors_per_thread(int nvec) { return nvec <= 256 ? 1 : nvec <= 512 ? 2 : 4; }
int threads_for(int nvec) {
  const int vpt = vectors_per_thread(nvec);
  return ((nvec + vpt - 1) / vpt + 31) / 32 * 32;
}
int vectors(const MpNormArgs* a) { return a->width / (kVecBytes / elem_bytes(a->dtype)); }
size_t fwd_smem(const MpNormArgs* a) { return sizeof(float) * (vectors(a) + a->groups); }
size_t bwd_smem(const MpNormArgs* a) { return sizeof(float) * (round_up4(vectors(a)) + round_up4(a->groups) + a->width); }

bool aligned(const void* p, int64_t sb, int64_t sl, int eb) {
  return p == nullptr ||
         (reinterpret_cast<uintptr_t>(p) % kVecBytes == 0 && (sb * eb) % kVecBytes == 0 && (sl * eb) % kVecBytes == 0);
}

// The kernel instance for (forward or backward, gated, dtype, vectors per thread, threads).
template <bool FWD, bool GATED, typename T, int VPT, int MAXT>
const void* kernel() {
  if (FWD) return reinterpret_cast<const void*>(&rms_norm_fwd_kernel<GATED, T, VPT, MAXT>);
  return reinterpret_cast<const void*>(&rms_norm_bwd_kernel<GATED, T, VPT, MAXT>);
}
template <bool FWD, bool GATED, typename T>
const void* instance(int nvec) {
  switch (vectors_per_thread(nvec)) {
    case 1: return kernel<FWD, GATED, T, 1, 256>();
    case 2: return kernel<FWD, GATED, T, 2, 256>();
    default: return nvec <= 1024 ? kernel<FWD, GATED, T, 4, 256>() : kernel<FWD, GATED, T, 4, 512>();
  }
}
template <bool FWD, bool GATED>
const void* instance_for(int dtype, int nvec) {
  if (dtype == MP_F32) return instance<FWD, GATED, float>(nvec);
  if (dtype == MP_F16) return instance<FWD, GATED, __half>(nvec);
  return instance<FWD, GATED, __nv_bfloat16>(nvec);
}
template <bool FWD>
const void* pick(const MpNormArgs* a) {
  return a->z ? instance_for<FWD, true>(a->dtype, vectors(a)) : instance_for<FWD, false>(a->dtype, vectors(a));
}

// Resident blocks of kernel f (all SMs), at most `rows`; 0 on a CUDA error.
int resident_blocks(const void* f, int threads, size_t smem, int64_t rows) {
  int dev = 0, sms = 0, per_sm = 0;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
      cudaFuncSetAttribute(f, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem) != cudaSuccess ||
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, f, threads, smem) != cudaSuccess)
    return 0;
  const int64_t resident = static_cast<int64_t>(sms) * (per_sm > 0 ? per_sm : 1);
  return static_cast<int>(resident < rows ? resident : rows);
}

cudaError_t launch(const void* f, int blocks, int threads, size_t smem, const MpNormArgs* a, cudaStream_t stream) {
  MpNormArgs copy = *a;
  void* params[] = {&copy};
  return cudaLaunchKernel(f, dim3(blocks), dim3(threads), params, smem, stream);
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
  const int64_t rows = static_cast<int64_t>(a->batch) * a->seqlen;
  if (rows == 0) return cudaSuccess;
  return launch(pick<true>(a), static_cast<int>(rows), threads_for(vectors(a)), fwd_smem(a), a, stream);
}

int mp_rms_norm_bwd_blocks(const MpNormArgs* a) {
  if (!mp_rms_norm_supported(a)) return 0;
  const int64_t rows = static_cast<int64_t>(a->batch) * a->seqlen;
  if (rows == 0) return 0;
  return resident_blocks(pick<false>(a), threads_for(vectors(a)), bwd_smem(a), rows);
}

cudaError_t mp_rms_norm_bwd(const MpNormArgs* a, cudaStream_t stream) {
  const int eb = elem_bytes(a->dtype);
  // No rows: nothing to do (and an empty tensor's data pointer may be null).
  if (mp_rms_norm_supported(a) && (a->batch == 0 || a->seqlen == 0)) return cudaSuccess;
  if (!mp_rms_norm_supported(a) || !a->rstd || !a->dw_partial || !aligned(a->dout, a->dout_sb, a->dout_sl, eb) ||
      !aligned(a->dx, a->dx_sb, a->dx_sl, eb) || (a->z && (!a->dz || !aligned(a->dz, a->dz_sb, a->dz_sl, eb))))
    return cudaErrorInvalidValue;
  const int blocks = mp_rms_norm_bwd_blocks(a);
  if (blocks == 0) return cudaErrorInvalidConfiguration;
  return launch(pick<false>(a), blocks, threads_for(vectors(a)), bwd_smem(a), a, stream);
}
