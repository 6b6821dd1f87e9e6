// The collectives of sharded training, per flat unit (shard_layout.h), over mp::dist::Communicator.
//
// UnitWeights holds one model's compute-dtype weights in one of two forms:
//  - kept whole (`--shard optimizer`): one persistent flat buffer per unit, whose views are the
//    weights; after each step every rank's updated shard is all-gathered into it;
//  - sharded (`--shard full`, and a sharded teacher): only this rank's shard of each unit; a
//    unit is all-gathered into a fresh buffer when needed (acquire) and freed when the caller
//    drops it. prefetch(u) starts the gather of u early (on CUDA the communicator runs it on its
//    own stream; on the CPU the TCP worker thread does), and acquire(u) then only waits for it.
//    Every prefetched unit must be acquired before the next update (each rank issues the same
//    collectives in the same order, so prefetches never reorder anything across ranks).
//
// GradReduceScatter sums a unit's flat gradient over ranks and adds this rank's part into its
// fp32 gradient shard: shard_u += (sum over ranks of grad_u)[r x shard, (r + 1) x shard). At most
// `max_in_flight` units are in flight (each holds its whole flat gradient until it completes);
// finish() completes the rest and divides by the world size, so after a step's micro-batches
//   shard_u = (1 / W) sum over micro-batches, ranks of that rank's micro-batch gradient,
// the data-parallel mean that `--shard none` computes with its all-reduce.
#pragma once

#include "distill/dist/communicator.h"
#include "distill/shard/shard_layout.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <vector>

namespace mp::shard {

class UnitWeights {
 public:
  // `shards[u]`: this rank's shard of unit u in any float dtype (copied into `dtype`; kept whole,
  // the units are all-gathered from them, a collective). When `alias_shards` is given (fp32
  // compute, sharded), its tensors are used in place (the optimizer's masters), not copied.
  UnitWeights(const ShardLayout& layout, bool keep_whole, const std::vector<at::Tensor>& shards, at::ScalarType dtype,
              dist::Communicator& comm, const std::vector<at::Tensor>* alias_shards = nullptr);

  bool keeps_whole() const { return keep_whole_; }
  at::ScalarType dtype() const { return dtype_; }
  // Kept whole: the persistent flat. Sharded: the gathered flat (a prefetch of u, or gathered now).
  at::Tensor acquire(int64_t u);
  void prefetch(int64_t u);  // no-op when kept whole, u < 0, or already in flight
  // Every rank's compute weights from the updated fp32 master shards (collective when kept whole).
  void update_from_masters(const std::vector<at::Tensor>& masters);
  int64_t held_bytes() const;

 private:
  const ShardLayout& layout_;
  bool keep_whole_;
  at::ScalarType dtype_;
  dist::Communicator& comm_;
  bool aliased_ = false;
  std::vector<at::Tensor> whole_, shard_;
  struct InFlight {
    at::Tensor out;
    std::shared_ptr<dist::CommWork> work;
  };
  std::map<int64_t, InFlight> in_flight_;
};

class GradReduceScatter {
 public:
  GradReduceScatter(const ShardLayout& layout, dist::Communicator& comm, std::vector<at::Tensor> grad_shards,
                    size_t max_in_flight = 2);
  void start(int64_t u, at::Tensor flat_grad);  // flat_grad: unit.padded elements, any float dtype
  void finish();

 private:
  void complete_oldest();
  const ShardLayout& layout_;
  dist::Communicator& comm_;
  std::vector<at::Tensor> grads_;
  size_t max_in_flight_;
  struct Pending {
    int64_t unit;
    at::Tensor in, out;
    std::shared_ptr<dist::CommWork> work;
  };
  std::deque<Pending> pending_;
};

}  // namespace mp::shard
