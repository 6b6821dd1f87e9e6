// Small helpers shared by the LibTorch layers over the CUDA kernels (ssd_scan_cuda.cpp,
// conv_cuda.cpp, norm_cuda.cpp). Internal: included only where LibTorch has CUDA.
#pragma once

#include "kernels/cuda/ssd_scan.cuh"  // MpDtype

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>
#include <cuda_runtime_api.h>

namespace mp {

// The kernels' dtype code for a tensor dtype; -1 when the kernels do not take it.
inline int kernel_dtype_code(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return MP_F32;
    case at::kHalf: return MP_F16;
    case at::kBFloat16: return MP_BF16;
    default: return -1;
  }
}

// An optional input of a custom autograd Function: LibTorch 2.x refuses undefined tensor
// arguments, so absent ones travel as empty tensors and are turned back into undefined here.
inline at::Tensor present(const at::Tensor& t) { return t.defined() && t.numel() > 0 ? t : at::Tensor(); }

// A launcher's status as a LibTorch error naming the step: "<what>: <CUDA's message>".
inline void check_cuda(cudaError_t e, const char* what) {
  TORCH_CHECK(e == cudaSuccess, what, ": ", cudaGetErrorString(e));
}

}  // namespace mp
