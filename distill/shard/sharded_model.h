// A student trained with `--shard optimizer|full`, and a teacher held with `--shard full`: the
// pieces of shard_layout.h, sharded_adamw.h, unit_comm.h and unit_runner.h put together.
//
// What each rank keeps from step to step (W ranks, P parameters, compute dtype of c bytes):
//   optimizer: the whole compute-dtype model (c P) + fp32 masters, moments and gradient of its
//              shard (16 P / W);
//   full:      its shard only: compute-dtype weights (c P / W; none extra in fp32, where they are
//              the masters) + fp32 masters, moments and gradient (16 P / W);
//   teacher (full): its compute-dtype shard (c P / W).
// Gathered units live only while a unit runs (plus one prefetched unit).
//
// One step, on every rank: begin_micro() and the forward / backward of each micro-batch (through
// runner()), finish_grads(), clip() (the global norm over all shards), step() (AdamW on the
// shard, then the compute weights from the masters). gather_model() and gather_optimizer() are
// collectives that assemble the whole student (rank 0 keeps it) for evaluation and checkpoints.
#pragma once

#include "distill/dist/communicator.h"
#include "distill/checkpoint.h"
#include "distill/optim.h"
#include "distill/shard/shard_layout.h"
#include "distill/shard/shard_source.h"
#include "distill/shard/sharded_adamw.h"
#include "distill/shard/unit_comm.h"
#include "distill/shard/unit_runner.h"
#include "model/lm_eval.h"
#include "model/model.h"

#include <memory>

namespace mp::shard {

class ShardedStudent {
 public:
  // This rank's shards of the masters (and of the moments and step count when `src` has them),
  // read from `src` range by range; compute weights of `dtype` on `device`.
  ShardedStudent(const ShardSource& src, ShardMode mode, at::ScalarType dtype, const AdamWOptions& options,
                 dist::Communicator& comm, at::Device device);
  ShardedStudent(const ShardedStudent&) = delete;  // the parts refer to layout_
  ShardedStudent& operator=(const ShardedStudent&) = delete;

  UnitRunner& runner() { return *runner_; }
  const ShardLayout& layout() const { return layout_; }
  ShardedAdamW& optimizer() { return *opt_; }

  void begin_micro() { runner_->begin_micro(); }
  void finish_grads() { rs_->finish(); }
  const std::vector<at::Tensor>& grads() const { return opt_->grads(); }
  // The global gradient norm over all ranks' shards (collective); grads scaled by
  // max_norm / (norm + 1e-6) when it exceeds max_norm > 0, as clip_grad_norm does.
  double clip(double max_norm);
  void step(double lr);

  // Collectives (every rank calls them); only where `keep` is the result filled.
  Model gather_model(bool keep);
  std::unique_ptr<AdamW> gather_optimizer(bool keep);

  // Collective: every rank writes its masters and moments as one file of a sharded checkpoint
  // (sharded_checkpoint.h), then rank 0 commits OUTPUT/checkpoint-STEP. Returns the folder.
  // Without `optimizer_state`, only the weights, in the compute dtype (what a final model needs).
  std::string save_checkpoint(const std::string& output, const TrainerState& state,
                              const std::string& companions_from, bool optimizer_state = true);
  // Collective: language-model statistics over `windows` (every rank passes the same ones),
  // the student run unit by unit without gradients.
  LmStats evaluate(const at::Tensor& windows, int64_t micro_batch);

  int64_t parameters() const;
  int64_t held_bytes() const;  // weights, gradients and optimizer state this rank keeps between steps

 private:
  ModelConfig config_;
  std::vector<TensorSpec> tensors_;  // checkpoint order
  dist::Communicator& comm_;
  ShardMode mode_;
  at::ScalarType dtype_;
  std::vector<std::string> names_;
  ShardLayout layout_;
  std::unique_ptr<ShardedAdamW> opt_;
  std::unique_ptr<GradReduceScatter> rs_;
  std::unique_ptr<UnitWeights> weights_;
  std::unique_ptr<UnitRunner> runner_;
  std::unique_ptr<UnitRunner> frozen_;  // evaluation: the same weights, no gradients
  at::Device device_ = at::kCPU;
};

class ShardedTeacher {
 public:
  // This rank's shards of the teacher's weights, read from `src`, in `dtype` on `device`.
  ShardedTeacher(const ShardSource& src, at::ScalarType dtype, dist::Communicator& comm, at::Device device);
  ShardedTeacher(const ShardedTeacher&) = delete;
  ShardedTeacher& operator=(const ShardedTeacher&) = delete;
  UnitRunner& runner() { return *runner_; }
  int64_t held_bytes() const { return weights_->held_bytes(); }
  LmStats evaluate(const at::Tensor& windows, int64_t micro_batch);  // collective, as the student's

 private:
  ShardLayout layout_;
  std::unique_ptr<UnitWeights> weights_;
  std::unique_ptr<UnitRunner> runner_;
  at::Device device_ = at::kCPU;
};

}  // namespace mp::shard
