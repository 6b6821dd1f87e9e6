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
  virtual std::string name() const = 0;  // "gloo", "nccl"
  // Where the small sums run (a CUDA device for NCCL, the CPU for Gloo). The c10d
  // implementation (c10d_communicator.h) takes tensors on this device only.
  virtual at::Device device() const = 0;
  // Starts summing `flat` (1-D, contiguous) over all ranks, in place.
  virtual std::shared_ptr<CommWork> start_all_reduce_sum(const at::Tensor& flat) = 0;
  // Gathers every rank's `in` (1-D, contiguous, n elements) into `out` (1-D, contiguous,
  // world_size * n elements): rank r's part lands at [r * n, (r + 1) * n).
  // Default: a sum over a zero-filled buffer that holds this rank's part (exact: x + 0 == x).
  virtual std::shared_ptr<CommWork> start_all_gather(const at::Tensor& out, const at::Tensor& in);
  // Sums `in` (1-D, contiguous, world_size * n elements) over ranks and leaves rank r's part of
  // the sum, [r * n, (r + 1) * n), in `out` (n elements). Default: a whole all-reduce, then a copy.
  virtual std::shared_ptr<CommWork> start_reduce_scatter_sum(const at::Tensor& out,
                                                             const at::Tensor& in);
  // Copies rank `root`'s `flat` (1-D, contiguous) to every rank, in place.
  // Default: a sum in which every rank but the root contributes zeros.
  virtual std::shared_ptr<CommWork> start_broadcast(const at::Tensor& flat, int64_t root);
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
