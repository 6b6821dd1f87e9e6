// The memory plan of one `train` / `distill` job (distill/memory_plan.h) from its settings:
// which configs, which card, all three shard modes, the smallest world size per reference card,
// and the check that refuses a job which will not fit before any weights load.
//
// Models: only config.json is read (--teacher / --student / --config / --model may be a config
// file or a checkpoint folder). Compute dtype: --dtype, with auto planned as bf16 (the CUDA
// path). Shard mode: the run's `shard` setting when the trainer has one, else `fallback_shard`.
// Card: what is usable of it: free memory when read from the device; the card's total less the
// CUDA context (kCudaContextBytes) when given as a size.
#pragma once

#include "distill/memory_plan.h"
#include "distill/train_config.h"
#include "model/config.h"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mp {

struct JobModels {
  std::string student_path, teacher_path;  // teacher_path empty for train
  ModelConfig student;
  std::optional<ModelConfig> teacher;
  const ModelConfig* teacher_ptr() const { return teacher ? &*teacher : nullptr; }
};
// Usage error when the run names no model (distill: --teacher and --student; train: --config or --model).
JobModels job_models(const TrainConfig& c);

PlanSettings plan_settings(const TrainConfig& c, const JobModels& m, int64_t world_size,
                           const std::string& fallback_shard = "none");

struct Card {
  std::string name;          // "cuda:0 (free memory)", "--gpu-memory 80GiB", "80 GB card"
  int64_t usable_bytes = 0;  // what the plan's peak must stay within
};
Card card_of_size(const std::string& name, int64_t total_bytes);  // total less the CUDA context
const std::vector<Card>& reference_cards();                      // 80 GB and 141 GB

struct SmallestWorld {
  Card card;
  bool recompute = false;
  std::vector<std::optional<int64_t>> by_mode;  // in all_shard_modes() order
};

struct JobPlan {
  std::string mode;  // train | distill
  JobModels models;
  int64_t student_params = 0, teacher_params = 0;
  PlanSettings settings;  // the run's
  Card card;
  std::vector<RankMemory> by_mode;  // at the run's world size and recompute, in all_shard_modes() order
  RankMemory run;                   // the run's shard mode
  bool fits = false;
  std::vector<SmallestWorld> smallest;  // each reference card, recompute off and on
  std::vector<std::string> remedies;    // flags that would make it fit (empty when it fits)
};
JobPlan make_job_plan(const std::string& mode, const JobModels& m, const PlanSettings& s, const Card& card);

// Every figure in bytes; `fits` for the run's settings.
nlohmann::json job_plan_json(const JobPlan& p);

// Refuses (bad input, exit 2) a job whose plan does not fit `card`, naming the figures and what
// would make it fit. Nothing happens when MP_MEMORY_CHECK=0 is in the environment.
void check_job_fits(const TrainConfig& c, int64_t world_size, const Card& card, const std::string& fallback_shard = "none");

}  // namespace mp
