#include "prune/device_memory.h"

#if defined(MP_TORCH_HAS_CUDA)
#include <ATen/ATen.h>
#include <c10/cuda/CUDACachingAllocator.h>
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

}  // namespace mp
