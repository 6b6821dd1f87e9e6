// The training loop behind `minipuzzle train` (next-token CE, no teacher) and
// `minipuzzle distill` (frozen teacher, KD loss on the LM head, optional hidden-state loss).
//
// One optimizer step: for each of global_batch / (micro_batch x world) micro-batches, draw
// micro_batch x world windows from the sampler, keep this rank's rows (r, r + W, ...), run the
// student (and the teacher without grad), form the loss, backward (scaled by 1 / micro-batches).
// Then: hooks.average(losses) and hooks.after_backward(grads) (data parallel: means over ranks,
// distill/dist/data_parallel.h), a finite check of loss and gradient norm, clipping, AdamW on
// fp32 masters, copy masters into the compute-dtype student. With --shard optimizer|full and
// more than one rank, the student (and with full the teacher) is sharded instead
// (distill/shard/sharded_model.h): gradients are reduce-scattered during the backward, clipping
// uses the norm over all shards, and each rank updates its shard. Records go to OUTPUT/metrics.jsonl; checkpoints every save_every steps
// (checkpoint.h); the trained student to OUTPUT/final; a summary to OUTPUT/summary.json.
//
// Invariants: on CPU the same config gives bit-identical weights, and a run stopped after a
// checkpoint and resumed (--resume) equals an unbroken one bit for bit (the state is the
// weights, AdamW's moments and step count, and the sampler position; nothing else is random).
// Nothing is created in OUTPUT until every input (models, data, settings) has been checked.
// A non-finite loss or gradient norm stops the run before the weights change (bad input naming
// the step and the last complete checkpoint).
#pragma once

#include "distill/kd_loss.h"
#include "distill/shard/shard_mode.h"
#include "distill/train_config.h"
#include "model/lm_eval.h"

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mp::dist {
class Communicator;
}

namespace mp {

// Seams for data parallelism (distill/dist/data_parallel.h) and tests. Steps are 0-based here
// (the number of steps completed before this one). Rank 0 alone writes files and prints progress
// and evaluates; every rank runs the same steps.
struct TrainHooks {
  int64_t rank = 0, world_size = 1;
  // The ranks' collectives; needed by --shard optimizer|full at world size > 1 (the trainer then
  // reduce-scatters and gathers itself, and neither calls on_weights nor hands after_backward
  // whole gradients: it gets this rank's fp32 gradient shards instead).
  dist::Communicator* comm = nullptr;
  // Once, before the first step: the student's weight tensors in parameter order. They stay the
  // same tensors (updated in place) for the whole run, so autograd hooks may be put on them.
  std::function<void(const std::vector<at::Tensor>& weights)> on_weights;
  // Before each micro-batch's backward; `last` marks the step's last micro-batch.
  std::function<void(int64_t step, int64_t micro, bool last)> before_backward;
  // After the micro-batches of a step: the step's mean loss, kl, ce, hidden loss, replaced in
  // place (data parallel: by their mean over ranks, so every rank decides alike).
  std::function<void(std::vector<double>& losses)> average;
  // After the last micro-batch's backward, before clipping; grads in parameter order (in place).
  std::function<void(int64_t step, const std::vector<at::Tensor>& grads)> after_backward;
  // Stop once this many steps are complete, writing a checkpoint there (0: run to the end).
  int64_t stop_at = 0;
};

struct TrainSummary {
  std::string mode;
  int64_t start_step = 0, steps_done = 0, total_steps = 0, tokens = 0, parameters = 0;
  double seconds = 0.0, tokens_per_s = 0.0, seconds_per_step = 0.0;
  double last_loss = 0.0, last_kl = 0.0, last_ce = 0.0;
  std::optional<LmStats> eval_start, eval_end, teacher_eval;
  // Bytes of weights, gradients and optimizer state this rank keeps at the optimizer step (for
  // --shard none the whole gradient counts, whether held in .grad or in the all-reduce buckets).
  int64_t state_bytes_per_rank = 0;
  std::string shard = "none";  // the sharding that ran
  bool finished = false;    // reached total_steps and wrote OUTPUT/final
  std::string output_dir;   // OUTPUT/final when finished, else the last checkpoint
  // CUDA only: the caching allocator's peaks over the process (allocated, and held from the card).
  std::optional<int64_t> peak_gpu_bytes, peak_gpu_reserved_bytes;
  nlohmann::json to_json() const;
};

// The settings that steer the loop, parsed once from the TrainConfig's strings.
enum class RunMode { Train, Distill };
enum class HiddenLoss { None, Cosine };
struct TrainSettings {
  RunMode mode = RunMode::Train;
  LossKind loss = LossKind::CE;
  HiddenLoss hidden = HiddenLoss::None;
  shard::ShardMode shard = shard::ShardMode::None;
  at::Device device = at::kCPU;
  at::ScalarType dtype = at::kFloat;  // compute dtype ("auto": bf16 on CUDA, fp32 on the CPU)
};
TrainSettings parse_train_settings(const TrainConfig& c);

// One run, as its steps read:
//   Trainer t(config, hooks);            open: resume point, models, data, output folder
//   while (!t.done()) {
//     t.step();                          micro-batches, clipping, NaN check, update, record
//     t.evaluate_if_due();
//     t.checkpoint_if_due();
//   }
//   TrainSummary s = t.finish();         last evaluation, final/, summary.json, loss.svg
class Trainer {
 public:
  Trainer(const TrainConfig& config, const TrainHooks& hooks = {});
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  bool done() const;  // the last step is done, or hooks.stop_at reached
  void step();
  void evaluate_if_due();
  void checkpoint_if_due();
  TrainSummary finish();

 private:
  void step_unguarded();
  struct State;
  std::unique_ptr<State> s_;
};

// The loop above.
TrainSummary run_training(const TrainConfig& config, const TrainHooks& hooks = {});

}  // namespace mp
