#include "model/device_memory.h"

#if defined(MP_TORCH_HAS_CUDA)
#include <ATen/ATen.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime_api.h>
#endif

namespace mp {

void reset_peak_memory(at::Device device) {
#if defined(MP_TORCH_HAS_CUDA)
  if (device.is_cuda()) {
    // The caching allocator refuses stats calls ("Invalid device argument") until it has been
    // initialised by a first allocation on the device.
    at::empty({1}, at::TensorOptions().device(device));
    c10::cuda::CUDACachingAllocator::resetPeakStats(device.has_index() ? device.index() : 0);
  }
#endif
}

std::optional<int64_t> peak_memory_bytes(at::Device device) {
#if defined(MP_TORCH_HAS_CUDA)
  if (device.is_cuda()) {
    auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.has_index() ? device.index() : 0);
    return stats.allocated_bytes[0].peak;  // index 0: StatType::AGGREGATE in every LibTorch version
  }
#endif
  return std::nullopt;
}

std::optional<int64_t> peak_reserved_bytes(at::Device device) {
#if defined(MP_TORCH_HAS_CUDA)
  if (device.is_cuda()) {
    auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.has_index() ? device.index() : 0);
    return stats.reserved_bytes[0].peak;
  }
#endif
  return std::nullopt;
}

std::optional<DeviceMemory> device_memory(at::Device device) {
#if defined(MP_TORCH_HAS_CUDA)
  if (device.is_cuda()) {
    const int index = device.has_index() ? device.index() : 0;
    if (index >= static_cast<int>(c10::cuda::device_count())) return std::nullopt;
    c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(index));
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
      (void)cudaGetLastError();  // clear it, so that later CUDA calls do not report it
      return std::nullopt;
    }
    return DeviceMemory{static_cast<int64_t>(free_b), static_cast<int64_t>(total_b)};
  }
#endif
  (void)device;
  return std::nullopt;
}

}  // namespace mp
