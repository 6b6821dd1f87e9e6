// Everything that defines a training or distillation run, as one JSON-serialisable struct.
// Recipe files (configs/recipes/*.json) hold the same keys; the CLI builds one flag per key from
// train_config_keys() (key seq_len <-> flag --seq-len), and flags override a recipe.
// Keys starting with "_" in a recipe are comments; any other unknown key is refused.
//
// Batch arithmetic: tokens per optimizer step = global_batch x seq_len; each step runs
// global_batch / (micro_batch x world_size) micro-batches per rank (gradient accumulation).
// Length: `steps` when > 0, else ceil(tokens / (global_batch x seq_len)).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace mp {

struct TrainConfig {
  std::string mode = "train";  // "train" (next-token CE, no teacher) or "distill"; set by the command
  // Models: train starts from `config` (random init with `seed`) or `model`; distill needs both.
  std::string config, model, teacher, student;
  std::string data, eval_data, output;
  int64_t steps = 0, tokens = 0;
  int64_t seq_len = 1024, micro_batch = 1, global_batch = 8;
  double lr = 1e-4, min_lr = 1e-5;
  int64_t warmup = 100;
  double weight_decay = 0.1, beta1 = 0.9, beta2 = 0.95, adam_eps = 1e-8, clip = 1.0;
  std::string loss = "kl";  // kl | kl+ce | ce
  double temperature = 1.0;
  std::string hidden_loss = "none";  // none | cosine
  double hidden_weight = 1.0;
  std::string hidden_map;  // "" = by relative depth, else "s:t,s:t" (0-based layer outputs)
  int64_t eval_every = 0, eval_samples = 32;
  int64_t save_every = 0;
  uint64_t seed = 1234;
  std::string device = "cpu", dtype = "auto";  // auto: bf16 on CUDA, fp32 on CPU
  int64_t logit_slice = 1024;                   // tokens per LM-head slice in the loss
  bool recompute = false;                       // recompute each layer's activations in the backward
  bool keep_ssd_states = false;                 // keep the SSD scans' chunk states for the backward (CUDA)
  std::string shard = "none";                   // none | optimizer | full (distill/shard/sharded_model.h)
  bool resume = false, quiet = false, overwrite = false;

  int64_t total_steps() const;
  int64_t tokens_per_step() const { return global_batch * seq_len; }
};

enum class KeyType { String, Int, Float, Bool };
struct ConfigKey {
  const char* key;
  KeyType type;
  const char* commands;  // "train", "distill" or "both"
  const char* help;
};
// Every key but `mode`, in the order the help lists them.
const std::vector<ConfigKey>& train_config_keys();

// The defaults for a command: as TrainConfig{}, with loss ce for "train" (it has no teacher).
TrainConfig default_train_config(const std::string& mode);

nlohmann::json train_config_to_json(const TrainConfig& c);
// Overlays `j` onto `base`: only the keys present change. Bad input naming `source` and the key
// for unknown keys and wrong JSON types.
TrainConfig train_config_from_json(const nlohmann::json& j, const std::string& source, TrainConfig base = {});
TrainConfig recipe_from_json_text(const std::string& text, const std::string& source, TrainConfig base = {});
TrainConfig load_recipe(const std::string& path, TrainConfig base = {});

// Checks a run's settings before anything is read or written: usage errors for missing or
// contradictory options, bad input for impossible batch arithmetic.
void validate_train_config(const TrainConfig& c, int64_t world_size = 1);

// Keys a resumed run may change (output place, logging, evaluation, device): all others must
// equal the checkpoint's for the continuation to be exact.
bool resume_may_change(const std::string& key);

}  // namespace mp
