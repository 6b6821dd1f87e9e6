// Warpgroup tensor-core products (PTX wgmma, sm_90a) over shared-memory tiles in the
// 128-byte-swizzled layout, and that layout's index arithmetic. Header-only, CUDA only.
//
// A warpgroup is four consecutive warps (warps 0-3, 4-7 of a block). One `wgmma.mma_async`
// computes D[64, n] += A[64, 16] B[16, n], issued by all 128 threads together, with A and B read
// by the tensor cores straight from shared memory (or A from registers), and D in registers in
// the same per-warp layout as mma.sync's C fragments:
// warp w of the group holds rows 16 w .. +16, and for each n8 tile i the four values
// d[4 i .. 4 i + 3] at (row g, cols 8 i + 2t, +1) and (row g + 8, same cols), g = lane / 4,
// t = lane % 4. So a kernel's mma.sync accumulators [i][4] carry over unchanged.
//
// Against mma.sync with ldmatrix (mma_frag.cuh) this drops the operand loads and their waits:
// one instruction per 64 x n x 16 step instead of an ldmatrix and two HMMAs per 16 x 16 x 16.
//
// The tiled layout ("sw128"): a [rows, cols] 16-bit tile, cols a multiple of 64, is stored as
// cols / 64 blocks of [rows][64] (each row 128 bytes), block after block; within a block the
// 16-byte piece j of row r sits at piece j ^ (r % 8). That is the hardware's 128-byte swizzle
// when every block starts 1024-byte aligned, so the tensor cores read it conflict-free. As a
// wgmma operand it serves both orientations:
//   - K-major (the 16 k values of a row contiguous: A = C [l][n] or B = S [p][n] with k = n): rows
//     8 apart are 1024 bytes apart (the stride byte offset); the k step moves the start 32 bytes
//     within the 128-byte row; the next 64 k are the next block.
//   - MN-major (B [k][n] with n contiguous, transposed): the 8-row atoms follow k (stride 1024
//     bytes), and the next 64 n columns are the next block (leading byte offset = block bytes).
#pragma once

#include <cstdint>
#include <type_traits>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

// MP_WGMMA: this compilation pass targets the sm_90a feature set, which has wgmma. Other targets
// (sm_90 without "a", older cards) keep the mma.sync path, reading the same tiled layout.
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define MP_WGMMA 1
#else
#define MP_WGMMA 0
#endif

namespace mp_ssd {

// Element offset of (r, c) in a tiled [rows, cols] tile (see above); rows = the tile's row count.
__host__ __device__ __forceinline__ int sw128_index(int r, int c, int rows) {
  return (c >> 6) * (rows * 64) + r * 64 + ((((c >> 3) & 7) ^ (r & 7)) << 3) + (c & 7);
}

#if MP_WGMMA

// The shared-memory matrix descriptor (PTX ISA, "Matrix Descriptor Format"): start address,
// leading and stride byte offsets, all >> 4, and the swizzle mode in bits 62-63 (1 = 128 bytes).
// Only its low word changes between the steps of a product (the start address, and the leading
// byte offset, which is fixed per operand), so the helpers take that word and add the high one,
// the same for every operand here: a stride of 1,024 bytes (8 rows of 128) and the 128-byte
// swizzle. Half the registers for the descriptors a kernel keeps, and one add per step.
constexpr uint32_t kSw128DescHi = (1024u >> 4) | (1u << 30);
__device__ __forceinline__ uint32_t sw128_desc_lo(const void* p, uint32_t lead_bytes) {
  const uint32_t a = (uint32_t)__cvta_generic_to_shared(p);
  return ((a >> 4) & 0x3FFF) | (((lead_bytes >> 4) & 0x3FFF) << 16);
}
// The low word with its start moved by `bytes` (a multiple of 16, within the tile).
__device__ __forceinline__ uint32_t desc_add(uint32_t lo, uint32_t bytes) { return lo + (bytes >> 4); }

// Generic-proxy writes to shared memory (st.shared, cp.async) made visible to the tensor cores'
// async proxy: each writing thread runs it after its writes, before the barrier ahead of wgmma.
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
// Before a warpgroup's first wgmma on registers that other instructions wrote.
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
// Until at most N committed groups of this warpgroup are still running.
template <int N>
__device__ __forceinline__ void wgmma_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory"); }

// Registers that an in-flight wgmma writes (or, for an A operand, reads), tied to the wait so
// that the compiler does not move their uses above it (call it right after wgmma_wait).
template <int M>
__device__ __forceinline__ void wgmma_hold(float (&d)[M][4]) {
#pragma unroll
  for (int i = 0; i < M; ++i)
    asm volatile("" : "+f"(d[i][0]), "+f"(d[i][1]), "+f"(d[i][2]), "+f"(d[i][3])::"memory");
}

template <int M>
__device__ __forceinline__ void wgmma_hold(uint32_t (&r)[M][4]) {
#pragma unroll
  for (int i = 0; i < M; ++i) asm volatile("" : "+r"(r[i][0]), "+r"(r[i][1]), "+r"(r[i][2]), "+r"(r[i][3])::"memory");
}

// D[64, 32] += A[64, 16] B[16, 32], both from shared memory, both K-major (d: 4 n8 tiles).
template <typename T>
__device__ __forceinline__ void wgmma_64x32_ss(float (&d)[4][4], uint32_t da, uint32_t db) {
#define MP_WGMMA_64x32_SS(TY)                                                                           \
  asm volatile(                                                                                          \
      "{\n.reg .pred p;\n.reg .b64 da, db;\nsetp.ne.b32 p, 1, 0;\n"                                       \
      "mov.b64 da, {%16, %18};\nmov.b64 db, {%17, %18};\n"                                               \
      "wgmma.mma_async.sync.aligned.m64n32k16.f32." TY "." TY                                           \
      " {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15}, da, db, p, 1, 1, 0, 0;\n}\n"            \
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]),       \
        "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),       \
        "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3])                                      \
      : "r"(da), "r"(db), "r"(kSw128DescHi))
  if constexpr (std::is_same<T, __nv_bfloat16>::value)
    MP_WGMMA_64x32_SS("bf16");
  else
    MP_WGMMA_64x32_SS("f16");
#undef MP_WGMMA_64x32_SS
}

// D[64, 128] += A[64, 16] B[16, 128]: A from registers (the mma.sync A-fragment layout, warp w
// of the group rows 16 w .. +16), B from shared memory MN-major (transposed; d: 16 n8 tiles).
template <typename T>
__device__ __forceinline__ void wgmma_64x128_rs_t(float (&d)[16][4], const uint32_t (&a)[4], uint32_t db) {
#define MP_WGMMA_64x128_RS(TY)                                                                          \
  asm volatile(                                                                                          \
      "{\n.reg .pred p;\n.reg .b64 db;\nsetp.ne.b32 p, 1, 0;\nmov.b64 db, {%68, %69};\n"                   \
      "wgmma.mma_async.sync.aligned.m64n128k16.f32." TY "." TY                                          \
      " {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"                                        \
      "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,"                                 \
      "%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,"                                 \
      "%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63},"                                \
      " {%64,%65,%66,%67}, db, p, 1, 1, 1;\n}\n"                                                         \
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]),       \
        "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),       \
        "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]),       \
        "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),       \
        "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]),       \
        "+f"(d[7][2]), "+f"(d[7][3]), "+f"(d[8][0]), "+f"(d[8][1]), "+f"(d[8][2]), "+f"(d[8][3]),       \
        "+f"(d[9][0]), "+f"(d[9][1]), "+f"(d[9][2]), "+f"(d[9][3]), "+f"(d[10][0]), "+f"(d[10][1]),     \
        "+f"(d[10][2]), "+f"(d[10][3]), "+f"(d[11][0]), "+f"(d[11][1]), "+f"(d[11][2]), "+f"(d[11][3]), \
        "+f"(d[12][0]), "+f"(d[12][1]), "+f"(d[12][2]), "+f"(d[12][3]), "+f"(d[13][0]), "+f"(d[13][1]), \
        "+f"(d[13][2]), "+f"(d[13][3]), "+f"(d[14][0]), "+f"(d[14][1]), "+f"(d[14][2]), "+f"(d[14][3]), \
        "+f"(d[15][0]), "+f"(d[15][1]), "+f"(d[15][2]), "+f"(d[15][3])                                  \
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(db), "r"(kSw128DescHi))
  if constexpr (std::is_same<T, __nv_bfloat16>::value)
    MP_WGMMA_64x128_RS("bf16");
  else
    MP_WGMMA_64x128_RS("f16");
#undef MP_WGMMA_64x128_RS
}

// D[64, 64] += A[64, 16] B[16, 64], as wgmma_64x128_rs_t (d: 8 n8 tiles).
template <typename T>
__device__ __forceinline__ void wgmma_64x64_rs_t(float (&d)[8][4], const uint32_t (&a)[4], uint32_t db) {
#define MP_WGMMA_64x64_RS(TY)                                                                           \
  asm volatile(                                                                                          \
      "{\n.reg .pred p;\n.reg .b64 db;\nsetp.ne.b32 p, 1, 0;\nmov.b64 db, {%36, %37};\n"                   \
      "wgmma.mma_async.sync.aligned.m64n64k16.f32." TY "." TY                                           \
      " {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"                                        \
      "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31},"                                \
      " {%32,%33,%34,%35}, db, p, 1, 1, 1;\n}\n"                                                         \
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]),       \
        "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),       \
        "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]),       \
        "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),       \
        "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]),       \
        "+f"(d[7][2]), "+f"(d[7][3])                                                                    \
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(db), "r"(kSw128DescHi))
  if constexpr (std::is_same<T, __nv_bfloat16>::value)
    MP_WGMMA_64x64_RS("bf16");
  else
    MP_WGMMA_64x64_RS("f16");
#undef MP_WGMMA_64x64_RS
}

#endif  // MP_WGMMA

}  // namespace mp_ssd
