// Gradient all-reduce in buckets that overlaps the backward pass (the DDP scheme).
//
// Layout: parameters are taken in reverse registration order (the backward reaches the last
// layers first) and packed into flat buckets of about `cap_bytes`; a bucket also ends where the
// dtype or device changes, and a parameter larger than the cap gets a bucket of its own.
// Bucket b's flat buffer holds its parameters' gradients back to back (slot = offset + numel).
//
// One step: arm() before the backward of the step's last micro-batch. During that backward each
// parameter's autograd hook writes (its .grad so far, if any, + the incoming gradient) into its
// slot; when a bucket's last slot is written its all-reduce starts, while the backward goes on.
// Buckets start strictly in index order (a bucket complete early waits for its predecessors),
// so every rank starts the same sequence whatever order its hooks fired in. finish() fills the
// slots of parameters that got no gradient this time (from .grad, else zeros) and starts what is
// left, waits for every bucket, divides by the world size and copies each slot into the grads
// it is given (in place): grads[i] = (sum over ranks of rank's accumulated gradient i) / W.
// Invariants: hooks are registered once (the trainer keeps its weight tensors for the whole run)
// and removed by the destructor; unarmed, a hook does nothing, so earlier micro-batches
// accumulate into .grad as usual.
#pragma once

#include "distill/dist/communicator.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace mp::dist {

// Parameter indices per bucket, in bucket order (the layout rule above).
std::vector<std::vector<size_t>> plan_buckets(const std::vector<at::Tensor>& params, int64_t cap_bytes);

class GradBuckets {
 public:
  GradBuckets(std::vector<at::Tensor> params, int64_t cap_bytes, Communicator& comm);
  ~GradBuckets();
  GradBuckets(const GradBuckets&) = delete;
  GradBuckets& operator=(const GradBuckets&) = delete;

  void arm();
  void finish(const std::vector<at::Tensor>& grads);

  const std::vector<std::vector<size_t>>& layout() const { return layout_; }
  int64_t launched() const { return next_launch_; }  // buckets started so far in this step

 private:
  struct Slot {
    size_t bucket = 0;
    int64_t offset = 0;
    bool filled = false;
  };
  struct Bucket {
    at::Tensor flat;
    int64_t pending = 0;  // slots not yet written this step
    std::shared_ptr<CommWork> work;
  };
  void on_grad(size_t i, const at::Tensor& g);
  void fill_locked(size_t i, const at::Tensor& g);  // g undefined: .grad or zeros
  void launch_ready_locked();

  std::vector<at::Tensor> params_;
  std::vector<unsigned> hook_ids_;
  std::vector<std::vector<size_t>> layout_;
  std::vector<Slot> slots_;
  std::vector<Bucket> buckets_;
  Communicator& comm_;
  std::mutex mu_;
  bool armed_ = false;
  int64_t next_launch_ = 0;
};

}  // namespace mp::dist
