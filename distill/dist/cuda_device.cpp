// use_cuda_device (cuda_support.h): compiled only when LibTorch has CUDA.
#include "distill/dist/cuda_support.h"

#include <c10/cuda/CUDAFunctions.h>

namespace mp::dist {

void use_cuda_device(int index) { c10::cuda::set_device(static_cast<c10::DeviceIndex>(index)); }

}  // namespace mp::dist
