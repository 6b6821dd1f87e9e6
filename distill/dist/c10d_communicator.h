// The Communicator (communicator.h) over a c10d process group (c10d_compat.h): Gloo for the CPU,
// NCCL for CUDA devices.
//
// Gloo: wait() blocks the calling thread until the collective is done (or abort() is called).
// Gloo cannot sum bfloat16: such tensors travel as float32 and are rounded back once, the same on
// every rank (exact for all-gather and broadcast). All-gather and broadcast are Gloo's own;
// reduce-scatter is Communicator's default over the all-reduce (LibTorch 1.13's Gloo has none).
// NCCL: every collective is NCCL's own; it runs on NCCL's stream after the work queued so far on
// the caller's current stream, and wait() makes the current stream wait for it (the host does not
// block). c10d keeps the tensors alive for the caching allocator until the collective is done.
// c10d's own constraints, checked at start: tensors are 1-D, contiguous and on device(); an
// all-gather's output holds world_size x its input, a reduce-scatter's input world_size x its
// output. An empty tensor starts no collective (every rank starts the same sizes, so all skip).
// Failures are mp::Error (runtime) "<backend> <collective> failed: <c10d's reason>".
// poll_error() reports the first collective in flight that c10d marked failed (NCCL's watchdog
// does so for NCCL errors and timeouts).
#pragma once

#include "distill/dist/communicator.h"
#include "distill/dist/membership.h"

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>

namespace mp::dist {

// backend: "gloo" (device must be the CPU) or "nccl" (a CUDA device). Joins the other ranks'
// process group (blocking); the liveness monitor should already run.
std::unique_ptr<Communicator> make_c10d_communicator(const std::string& backend, Membership& members,
                                                     at::Device device);

}  // namespace mp::dist
