// Training checkpoints: OUTPUT/checkpoint-STEP/ holds
//   config.json + model.safetensors   the student in Hugging Face form (loadable by eval, prune)
//   optimizer.safetensors             AdamW fp32 master weights, exp_avg and exp_avg_sq
//   trainer_state.json                step, tokens, sampler position, optimizer steps, the run's
//                                     TrainConfig; no random state is used while training
// The folder is filled under a temporary name and renamed when complete (AtomicDir); only then
// is OUTPUT/latest (one line: the folder name) replaced atomically. A run killed mid-save thus
// leaves at worst a hidden ".checkpoint-STEP.partial-PID" folder, or a complete folder that
// latest does not name yet; resume follows latest, so it always starts from a complete one.
#pragma once

#include "distill/optim.h"
#include "model/model.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace mp {

struct TrainerState {
  int64_t step = 0;    // optimizer steps completed
  int64_t tokens = 0;  // training tokens consumed (all ranks)
  uint64_t sampler_position = 0;
  int64_t optimizer_steps = 0;
  nlohmann::json config;  // train_config_to_json of the run
};

std::string checkpoint_dir_name(int64_t step);  // "checkpoint-STEP"

// trainer_state.json's document, and back (bad input naming `source` and the field).
nlohmann::json trainer_state_to_json(const TrainerState& s);
TrainerState trainer_state_from_json(const nlohmann::json& j, const std::string& source);

// Writes OUTPUT/checkpoint-STEP atomically, then OUTPUT/latest. `student` is written as held.
void save_training_checkpoint(const std::string& output, const Model& student, const AdamW& opt,
                              const TrainerState& state);

// The folder OUTPUT/latest names, when there is one; bad input when latest names a folder that
// is missing or incomplete. Sharded checkpoints (sharded_checkpoint.h) count as complete when
// their manifest is there.
std::optional<std::string> latest_checkpoint(const std::string& output);

// From trainer_state.json, or from the manifest of a sharded checkpoint.
TrainerState read_trainer_state(const std::string& checkpoint_dir);
// Restores the optimizer (masters, moments, step count) from a checkpoint folder; a sharded one
// is assembled whole (its "weight" pieces become the masters).
void load_optimizer_state(const std::string& checkpoint_dir, AdamW& opt, int64_t optimizer_steps);

// Removes temporary folders a killed save left behind (".checkpoint-*.partial-*", ".old-*"),
// including the staging folders of uncommitted sharded saves. Call it on rank 0 before any rank
// starts saving.
void remove_partial_checkpoints(const std::string& output);

}  // namespace mp
