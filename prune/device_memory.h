// Peak accelerator memory, for reporting what a (streamed) scoring run needed. Only CUDA is
// measured; on CPU, or in a build whose LibTorch has no CUDA, the functions do nothing / return
// nullopt.
#pragma once

#include <c10/core/Device.h>

#include <cstdint>
#include <optional>

namespace mp {

void reset_peak_memory(at::Device device);
std::optional<int64_t> peak_memory_bytes(at::Device device);  // bytes allocated at the peak

}  // namespace mp
