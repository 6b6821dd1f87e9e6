// Accelerator memory as the process sees it: the card's free and total memory, and the caching
// allocator's peaks (what a scoring or training run needed). Only CUDA is measured; on CPU, or
// in a build whose LibTorch has no CUDA, the functions do nothing / return nullopt.
#pragma once

#include <c10/core/Device.h>

#include <cstdint>
#include <optional>

namespace mp {

void reset_peak_memory(at::Device device);
std::optional<int64_t> peak_memory_bytes(at::Device device);    // bytes allocated at the peak
std::optional<int64_t> peak_reserved_bytes(at::Device device);  // bytes the allocator held at most

// cudaMemGetInfo on the device: free (excludes this process's CUDA context and other processes'
// memory) and total bytes. nullopt without CUDA or when the device cannot be queried.
struct DeviceMemory {
  int64_t free_bytes = 0, total_bytes = 0;
};
std::optional<DeviceMemory> device_memory(at::Device device);

}  // namespace mp
