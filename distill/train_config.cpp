#include "distill/train_config.h"

#include "common/atomic_output.h"
#include "common/error.h"
#include "common/input_file.h"
#include "common/json_file.h"
#include "distill/loss_kind.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <set>
#include <type_traits>

namespace mp {

int64_t TrainConfig::total_steps() const {
  if (steps > 0) return steps;
  const int64_t per = tokens_per_step();
  return per > 0 ? (tokens + per - 1) / per : 0;
}

TrainConfig default_train_config(const std::string& mode) {
  TrainConfig c;
  c.mode = mode;
  if (mode == "train") c.loss = "ce";
  return c;
}

const std::vector<ConfigKey>& train_config_keys() {
  static const std::vector<ConfigKey> keys = {
      {"config", KeyType::String, "train", "Model config.json for a randomly initialised model (seeded by --seed)"},
      {"model", KeyType::String, "train", "Checkpoint folder to continue training from"},
      {"teacher", KeyType::String, "distill", "Teacher checkpoint folder (frozen)"},
      {"student", KeyType::String, "distill", "Student checkpoint folder (trained)"},
      {"data", KeyType::String, "both", "Training token data prefix (PREFIX.bin + PREFIX.idx)"},
      {"eval_data", KeyType::String, "both", "Held-out token data prefix for evaluation"},
      {"output", KeyType::String, "both", "Run folder: checkpoints, metrics.jsonl, final/, summary.json"},
      {"steps", KeyType::Int, "both", "Optimizer steps (wins over --tokens when > 0)"},
      {"tokens", KeyType::Int, "both", "Total training tokens (rounded up to whole steps)"},
      {"seq_len", KeyType::Int, "both", "Tokens per sequence"},
      {"micro_batch", KeyType::Int, "both", "Sequences per forward/backward pass"},
      {"global_batch", KeyType::Int, "both", "Sequences per optimizer step (a multiple of --micro-batch)"},
      {"lr", KeyType::Float, "both", "Peak learning rate"},
      {"min_lr", KeyType::Float, "both", "Learning rate at the end of the cosine"},
      {"warmup", KeyType::Int, "both", "Linear warmup steps"},
      {"weight_decay", KeyType::Float, "both", "Decoupled weight decay (matrices only)"},
      {"beta1", KeyType::Float, "both", "AdamW beta1"},
      {"beta2", KeyType::Float, "both", "AdamW beta2"},
      {"adam_eps", KeyType::Float, "both", "AdamW epsilon"},
      {"clip", KeyType::Float, "both", "Global gradient-norm clip (0: off)"},
      {"loss", KeyType::String, "both", "kl, kl+ce or ce (train: ce only)"},
      {"temperature", KeyType::Float, "distill", "Softmax temperature of the KL (loss scaled by T^2)"},
      {"hidden_loss", KeyType::String, "distill", "none or cosine (residual streams at matched layers)"},
      {"hidden_weight", KeyType::Float, "distill", "Weight of the hidden-state loss"},
      {"hidden_map", KeyType::String, "distill", "Explicit layer map 's:t,s:t' (default: by relative depth)"},
      {"eval_every", KeyType::Int, "both", "Evaluate on --eval-data every N steps (0: start and end only)"},
      {"eval_samples", KeyType::Int, "both", "Held-out windows per evaluation"},
      {"save_every", KeyType::Int, "both", "Write a checkpoint every N steps (0: only final/)"},
      {"seed", KeyType::Int, "both", "Seed for data order and random init"},
      {"device", KeyType::String, "both", "cpu or cuda[:i]"},
      {"dtype", KeyType::String, "both", "Compute dtype: auto (bf16 on CUDA, fp32 on CPU), fp32, bf16"},
      {"logit_slice", KeyType::Int, "both", "Tokens per LM-head slice inside the loss"},
      {"recompute", KeyType::Bool, "both", "Recompute each layer's activations in the backward (less memory, ~1/3 more compute)"},
      {"keep_ssd_states", KeyType::Bool, "both", "CUDA: keep each Mamba scan's chunk states for its backward (faster backward, more activation memory; on anyway per layer under --recompute)"},
      {"shard", KeyType::String, "both", "Data-parallel sharding: none (replicas), optimizer (masters, moments and gradients split over ranks) or full (weights too, gathered per layer; implies per-layer recomputation; the teacher is sharded as well)"},
      {"resume", KeyType::Bool, "both", "Continue the run in OUTPUT (from OUTPUT/latest when present)"},
      {"overwrite", KeyType::Bool, "both", "Replace an existing --output folder's contents (never one holding an input)"},
      {"quiet", KeyType::Bool, "both", "No progress lines"},
  };
  return keys;
}

namespace {

// Applies f(key, member) to every serialised field (mode included).
template <typename C, typename F>
void visit(C& c, F&& f) {
  f("mode", c.mode);
  f("config", c.config), f("model", c.model), f("teacher", c.teacher), f("student", c.student);
  f("data", c.data), f("eval_data", c.eval_data), f("output", c.output);
  f("steps", c.steps), f("tokens", c.tokens);
  f("seq_len", c.seq_len), f("micro_batch", c.micro_batch), f("global_batch", c.global_batch);
  f("lr", c.lr), f("min_lr", c.min_lr), f("warmup", c.warmup);
  f("weight_decay", c.weight_decay), f("beta1", c.beta1), f("beta2", c.beta2), f("adam_eps", c.adam_eps);
  f("clip", c.clip);
  f("loss", c.loss), f("temperature", c.temperature);
  f("hidden_loss", c.hidden_loss), f("hidden_weight", c.hidden_weight), f("hidden_map", c.hidden_map);
  f("eval_every", c.eval_every), f("eval_samples", c.eval_samples), f("save_every", c.save_every);
  f("seed", c.seed), f("device", c.device), f("dtype", c.dtype), f("logit_slice", c.logit_slice);
  f("recompute", c.recompute), f("keep_ssd_states", c.keep_ssd_states), f("shard", c.shard);
  f("resume", c.resume), f("quiet", c.quiet), f("overwrite", c.overwrite);
}

const char* json_type(const nlohmann::json& v) { return v.type_name(); }

}  // namespace

nlohmann::json train_config_to_json(const TrainConfig& c) {
  nlohmann::json j = nlohmann::json::object();
  visit(c, [&](const char* k, const auto& v) { j[k] = v; });
  return j;
}

TrainConfig train_config_from_json(const nlohmann::json& j, const std::string& source, TrainConfig c) {
  if (!j.is_object()) fail_input("{}: expected a JSON object of training settings, got {}", source, json_type(j));
  std::set<std::string> known;
  visit(c, [&](const char* k, auto& member) {
    known.insert(k);
    auto it = j.find(k);
    if (it == j.end()) return;
    using T = std::decay_t<decltype(member)>;
    const nlohmann::json& v = *it;
    if constexpr (std::is_same_v<T, std::string>) {
      if (!v.is_string()) fail_input("{}: '{}' must be a string, got {}", source, k, json_type(v));
      member = v.template get<std::string>();
    } else if constexpr (std::is_same_v<T, bool>) {
      if (!v.is_boolean()) fail_input("{}: '{}' must be true or false, got {}", source, k, json_type(v));
      member = v.template get<bool>();
    } else if constexpr (std::is_integral_v<T>) {
      // Integers may be written 7e9 in a recipe; accept whole numbers only (within 2^62, so the
      // conversion is defined).
      const bool whole_float = v.is_number_float() && std::isfinite(v.template get<double>()) &&
                               std::fabs(v.template get<double>()) <= 4.6e18 &&
                               v.template get<double>() == std::floor(v.template get<double>());
      if (!v.is_number() || (v.is_number_float() && !whole_float) ||
          (v.is_number_unsigned() && v.template get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)))
        fail_input("{}: '{}' must be a whole number, got {}", source, k, json_brief(v));
      if (v.is_number_float()) member = static_cast<T>(v.template get<double>());
      else member = v.template get<T>();
      if (std::is_unsigned_v<T> && v.is_number_integer() && v.template get<int64_t>() < 0)
        fail_input("{}: '{}' must be >= 0, got {}", source, k, v.dump());
    } else {
      if (!v.is_number()) fail_input("{}: '{}' must be a number, got {}", source, k, json_type(v));
      member = v.template get<double>();
      if (!std::isfinite(member)) fail_input("{}: '{}' must be a finite number, got {}", source, k, member);
    }
  });
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!known.count(it.key()) && it.key().rfind('_', 0) != 0)
      fail_input("{}: unknown setting '{}'", source, it.key());
  return c;
}

TrainConfig recipe_from_json_text(const std::string& text, const std::string& source, TrainConfig base) {
  const nlohmann::json j = parse_json_text(text, source);
  return with_json_source(source, [&] { return train_config_from_json(j, source, std::move(base)); });
}

TrainConfig load_recipe(const std::string& path, TrainConfig base) {
  return recipe_from_json_text(read_regular_file(path, JsonLimits{}.max_bytes, "JSON"), path, std::move(base));
}

void validate_train_config(const TrainConfig& c, int64_t world_size) {
  const bool distill = c.mode == "distill";
  if (c.mode != "train" && c.mode != "distill") fail_usage("mode: expected train or distill, got '{}'", c.mode);
  if (c.data.empty()) fail_usage("--data is required (training token data prefix)");
  if (c.output.empty()) fail_usage("--output is required (run folder)");
  if (distill) {
    if (c.teacher.empty() || c.student.empty()) fail_usage("distill needs --teacher and --student checkpoint folders");
  } else {
    if (c.config.empty() == c.model.empty())
      fail_usage("train needs exactly one of --config (random init) or --model (a checkpoint folder)");
  }
  if (c.steps < 0 || c.tokens < 0) fail_usage("--steps and --tokens must be >= 0");
  // Bounds far above any real run keep every product (tokens per step, step counts) inside 64 bits.
  constexpr int64_t kMaxLen = int64_t{1} << 24, kMaxBatch = int64_t{1} << 24, kMaxSteps = int64_t{1} << 40,
                    kMaxTokens = int64_t{1} << 56;
  if (c.seq_len < 1 || c.micro_batch < 1 || c.global_batch < 1)
    fail_usage("--seq-len, --micro-batch and --global-batch must be >= 1 (got {}, {}, {})", c.seq_len, c.micro_batch,
               c.global_batch);
  if (c.seq_len > kMaxLen || c.micro_batch > kMaxBatch || c.global_batch > kMaxBatch)
    fail_usage("--seq-len, --micro-batch and --global-batch must be at most {}, {} and {} (got {}, {}, {})", kMaxLen,
               kMaxBatch, kMaxBatch, c.seq_len, c.micro_batch, c.global_batch);
  if (c.steps > kMaxSteps || c.tokens > kMaxTokens)
    fail_usage("--steps must be at most {} and --tokens at most {} (got {}, {})", kMaxSteps, kMaxTokens,
               c.steps, c.tokens);
  for (const auto& [name, v] : {std::pair<const char*, double>{"--lr", c.lr}, {"--min-lr", c.min_lr},
                                {"--weight-decay", c.weight_decay}, {"--beta1", c.beta1}, {"--beta2", c.beta2},
                                {"--adam-eps", c.adam_eps}, {"--clip", c.clip}, {"--temperature", c.temperature},
                                {"--hidden-weight", c.hidden_weight}})
    if (!std::isfinite(v)) fail_usage("{}: expected a finite number, got {}", name, v);
  if (c.lr > 1e3) fail_usage("--lr {} is not a learning rate (expected at most 1000)", c.lr);
  if (c.total_steps() < 1) fail_usage("nothing to do: give --steps or --tokens (> 0)");
  if (c.global_batch % (c.micro_batch * world_size) != 0)
    fail_input("global batch {} is not a multiple of micro batch {} x {} rank(s); choose a global batch of {} or {}",
               c.global_batch, c.micro_batch, world_size,
               (c.global_batch / (c.micro_batch * world_size)) * c.micro_batch * world_size,
               (c.global_batch / (c.micro_batch * world_size) + 1) * c.micro_batch * world_size);
  if (!(c.lr > 0.0) || c.min_lr < 0.0 || c.min_lr > c.lr)
    fail_usage("learning rates: need lr > 0 and 0 <= min_lr <= lr (got lr {}, min_lr {})", c.lr, c.min_lr);
  if (c.warmup < 0) fail_usage("--warmup must be >= 0, got {}", c.warmup);
  if (c.weight_decay < 0.0 || c.clip < 0.0) fail_usage("--weight-decay and --clip must be >= 0");
  if (!(c.beta1 >= 0.0 && c.beta1 < 1.0 && c.beta2 >= 0.0 && c.beta2 < 1.0 && c.adam_eps > 0.0))
    fail_usage("AdamW: need 0 <= beta1, beta2 < 1 and eps > 0 (got {}, {}, {})", c.beta1, c.beta2, c.adam_eps);
  const LossKind kind = parse_loss_kind(c.loss);
  if (!distill && kind != LossKind::CE)
    fail_usage("train has no teacher: --loss must be ce (got '{}'); use distill for {}", c.loss, c.loss);
  if (!(c.temperature > 0.0)) fail_usage("--temperature must be > 0, got {}", c.temperature);
  if (c.hidden_loss != "none" && c.hidden_loss != "cosine")
    fail_usage("--hidden-loss: expected none or cosine, got '{}'", c.hidden_loss);
  if (!distill && c.hidden_loss != "none") fail_usage("--hidden-loss needs a teacher (use distill)");
  if (c.eval_every < 0 || c.save_every < 0 || c.eval_samples < 1)
    fail_usage("--eval-every and --save-every must be >= 0, --eval-samples >= 1");
  if (c.eval_samples > kMaxBatch) fail_usage("--eval-samples must be at most {}, got {}", kMaxBatch, c.eval_samples);
  if (c.eval_every > 0 && c.eval_data.empty()) fail_usage("--eval-every needs --eval-data");
  if (c.dtype != "auto" && c.dtype != "fp32" && c.dtype != "float32" && c.dtype != "bf16" && c.dtype != "bfloat16" &&
      c.dtype != "fp16" && c.dtype != "float16")
    fail_usage("--dtype: expected auto, fp32, bf16 or fp16, got '{}'", c.dtype);
  if (c.logit_slice < 1) fail_usage("--logit-slice must be >= 1");
  if (c.shard != "none" && c.shard != "optimizer" && c.shard != "full")
    fail_usage("--shard: expected none, optimizer or full, got '{}'", c.shard);
  if (c.recompute && c.hidden_loss != "none")
    fail_usage("--recompute cannot be combined with --hidden-loss (the hidden-state loss needs the kept activations)");
}

bool resume_may_change(const std::string& key) {
  static const std::set<std::string> free = {"output", "eval_data", "eval_every", "eval_samples", "save_every",
                                             "device", "dtype",     "logit_slice", "resume",      "quiet", "recompute", "overwrite",
                                             "keep_ssd_states", "shard"};
  return free.count(key) > 0;
}

}  // namespace mp
