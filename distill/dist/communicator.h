// What data parallelism needs from a collective library: an asynchronous in-place sum of a flat
// tensor over all ranks, and a blocking sum of a few host numbers (losses, checksums).
//
// Invariants every implementation keeps:
//  - Operations are matched across ranks by the order they are started: every rank starts the
//    same sequence (same sizes, same dtypes). A mismatch is an error, never a silent mix-up.
//  - The sum is the same on every rank, bit for bit (so replicas stay identical).
//  - Between start and wait() the caller does not touch the tensor. After wait() returns, work
//    queued on the caller's current stream (CUDA) or thread (CPU) sees the sum.
//  - abort() may be called from any thread (the liveness monitor): pending and later operations
//    fail or return promptly instead of waiting for a rank that is gone.
//  - Failures are mp::Error (runtime) whose message names the rank that went missing.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mp::dist {

class CommWork {
 public:
  virtual ~CommWork() = default;
  virtual void wait() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int64_t rank() const = 0;
  virtual int64_t world_size() const = 0;
  virtual std::string name() const = 0;  // "nccl", "tcp"
  // Where the small sums run (a CUDA device for NCCL, the CPU for TCP).
  virtual at::Device device() const = 0;
  // Starts summing `flat` (1-D, contiguous) over all ranks, in place.
  virtual std::shared_ptr<CommWork> start_all_reduce_sum(const at::Tensor& flat) = 0;
  virtual void abort() noexcept = 0;
  // Orderly teardown after the last operation (every rank calls it).
  virtual void finish() {}
  // An asynchronous failure the library noticed on its own (NCCL), else empty. Polled from the
  // liveness monitor's thread.
  virtual std::string poll_error() { return ""; }

  // Sums `values` over all ranks in float64 (blocking): built on start_all_reduce_sum.
  void all_reduce_sum(std::vector<double>& values);
};

}  // namespace mp::dist
