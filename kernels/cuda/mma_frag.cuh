// Register-fragment tensor-core helpers for 16-bit inputs: PTX mma.sync m16n8k16 (fp32
// accumulate), ldmatrix operand loads from shared memory, and packing of fp32 pairs into the
// 16-bit operand registers. Used by the forward (ssd_scan_fwd_mma.cu) and the backward
// (ssd_scan_bwd_mma.cu). Header-only, CUDA only, no LibTorch.
//
// Fragment layouts (PTX ISA, m16n8k16; g = lane / 4, t = lane % 4):
//   A 16x16: a0 (g, 2t..2t+1), a1 (g+8, 2t..), a2 (g, 2t+8..), a3 (g+8, 2t+8..)
//   B 16x8 : b0 (k 2t..2t+1, col g), b1 (k 2t+8.., col g)
//   C 16x8 : c0 c1 (g, 2t..2t+1), c2 c3 (g+8, 2t..2t+1)
// so two adjacent C tiles, rounded to 16 bits, are exactly one A fragment (how the kernels feed
// a score tile computed in registers straight into the next product).
#pragma once

#include "kernels/cuda/ssd_common.cuh"

namespace mp_ssd {

template <typename T> struct MmaType;
template <> struct MmaType<__nv_bfloat16> { static constexpr bool bf = true; };
template <> struct MmaType<__half> { static constexpr bool bf = false; };

// d += a * b (16x8x16, fp32 accumulate).
template <typename T>
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if (MmaType<T>::bf)
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Four 8x8 16-bit matrices from shared memory; lane l supplies the address of row l % 8 of matrix l / 8.
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const void* p) {
  const unsigned s = (unsigned)__cvta_generic_to_shared(p);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(s));
}
// The same, each matrix transposed.
__device__ __forceinline__ void ldsm_x4_t(uint32_t (&r)[4], const void* p) {
  const unsigned s = (unsigned)__cvta_generic_to_shared(p);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(s));
}

// Two fp32 values rounded to T and packed (lo in the low half), the layout of one operand register.
template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  T l = from_f<T>(lo), h = from_f<T>(hi);
  return (uint32_t)(*reinterpret_cast<unsigned short*>(&l)) | ((uint32_t)(*reinterpret_cast<unsigned short*>(&h)) << 16);
}

// (lo * f0, hi * f1) of a packed pair, rounded back to T.
template <typename T>
__device__ __forceinline__ uint32_t scale2(uint32_t v, float f0, float f1) {
  const T* e = reinterpret_cast<const T*>(&v);
  return pack2<T>(to_f(e[0]) * f0, to_f(e[1]) * f1);
}

// The two values of a packed pair as fp32.
template <typename T>
__device__ __forceinline__ float2 unpack2(uint32_t v) {
  const T* e = reinterpret_cast<const T*>(&v);
  return make_float2(to_f(e[0]), to_f(e[1]));
}

// Dot product of two packed pairs, in fp32.
template <typename T>
__device__ __forceinline__ float dot2(uint32_t u, uint32_t v) {
  const float2 a = unpack2<T>(u), b = unpack2<T>(v);
  return a.x * b.x + a.y * b.y;
}

}  // namespace mp_ssd
