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
#include <vector>

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
// `companions_from`: a checkpoint folder whose tokenizer and other non-weight files are copied
// along (model/companion_files.h).
void save_training_checkpoint(const std::string& output, const Model& student, const AdamW& opt,
                              const TrainerState& state, const std::string& companions_from = "");

// The folder OUTPUT/latest names, when there is one; bad input when latest names a folder that
// is missing or incomplete. Sharded checkpoints (sharded_checkpoint.h) count as complete when
// their manifest is there.
std::optional<std::string> latest_checkpoint(const std::string& output);

// From trainer_state.json, or from the manifest of a sharded checkpoint.
TrainerState read_trainer_state(const std::string& checkpoint_dir);
// Restores the optimizer (masters, moments, step count) from a checkpoint folder; a sharded one
// is assembled whole (its "weight" pieces become the masters).
void load_optimizer_state(const std::string& checkpoint_dir, AdamW& opt, int64_t optimizer_steps);

// Removes the temporaries a killed run left in OUTPUT: hidden ".NAME.partial-PID" and ".NAME.old-PID"
// entries of any kind (checkpoint folders, latest, final/, train_config.json, metrics.jsonl, ...),
// including the staging folders of uncommitted sharded saves. Call it on rank 0 before any rank
// starts saving.
void remove_partial_checkpoints(const std::string& output);

// What an existing run folder means for a run about to start (reads only; call before any work).
// Refuses (usage) an output equal to, inside or containing an input. Then (all of it only when
// `check_occupied`, i.e. on rank 0; other ranks just follow OUTPUT/latest under `resume`):
//   - absent or empty: a new run;
//   - `resume`: the run continuing: from OUTPUT/latest when there is one, else from the start
//     (a run killed before its first checkpoint, or between final/ and summary.json, which a
//     resume finishes); a folder that is no run folder at all is refused;
//   - `overwrite`: a new run replacing the folder's contents (clear_run_folder, after the inputs
//     are checked);
//   - otherwise refused, saying which of --resume or --overwrite applies.
// Returns the checkpoint folder to resume from.
std::optional<std::string> run_folder_start(const std::string& output, bool resume, bool overwrite,
                                            const std::vector<std::string>& inputs, bool check_occupied);
// Empties OUTPUT (for --overwrite).
void clear_run_folder(const std::string& output);

}  // namespace mp
