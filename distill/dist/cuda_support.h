// The CUDA side of data parallelism, declared for every build and defined only where it can be:
// cuda_device.cpp when LibTorch has CUDA (MP_WITH_TORCH_CUDA), nccl_communicator.cpp when NCCL
// was found as well (MP_WITH_NCCL). data_parallel.cpp checks the same macros before calling.
#pragma once

#include "distill/dist/communicator.h"

#include <cstdint>
#include <memory>
#include <string>

namespace mp::dist {

// Makes CUDA device `index` the current one of this process (contexts, NCCL, default allocations).
void use_cuda_device(int index);

// Rank 0 draws the NCCL id that every rank then receives through the job's store (membership.h).
std::string nccl_unique_id();
// Joins the NCCL communicator of `world_size` ranks on CUDA device `device` (blocking until all
// ranks have joined; the liveness monitor must already run, so a rank dying here is noticed).
std::unique_ptr<Communicator> make_nccl_communicator(int64_t rank, int64_t world_size, int device,
                                                     const std::string& unique_id);
std::string nccl_version();  // "2.28.9"

}  // namespace mp::dist
