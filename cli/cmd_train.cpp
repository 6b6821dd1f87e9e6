// minipuzzle train | distill: one training loop (distill/trainer.h), two entry points.
// Every setting is a key of TrainConfig; its flag is the key with '-' for '_' (train_config_keys()
// is the one table). --recipe FILE loads a JSON recipe first; flags given on the line override it.
// Data parallel (docs/distributed.md): launcher variables in the environment (RANK, WORLD_SIZE,
// ...) make this process one rank (distill/dist/data_parallel.h); --nproc N starts N ranks here
// (distill/dist/local_launch.h). Only rank 0 prints the summary.
// Memory (cli/train_plan.h): --plan prints the per-rank plan and exits; a run whose plan does not
// fit its card (--gpu-memory, else a CUDA device's free memory) is refused before weights load.
#include "cli/commands.h"
#include "cli/format.h"
#include "cli/train_plan.h"
#include "common/error.h"
#include "common/progress.h"
#include "distill/dist/data_parallel.h"
#include "distill/dist/dist_env.h"
#include "distill/dist/local_launch.h"
#include "distill/train_config.h"
#include "distill/trainer.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>

namespace mp::cli {
namespace {

struct TrainArgs {
  std::string mode, recipe;
  int64_t stop_at = 0, nproc = 1, world_size = 0;
  bool json = false, plan = false;
  std::string gpu_memory, shard = "none";  // shard: used only while the trainer has no `shard` setting
  std::map<std::string, std::string> values;  // key -> text given on the line
  std::map<std::string, bool> flags;          // bool keys
  std::map<std::string, CLI::Option*> options;
};

std::string flag_name(const char* key) {
  std::string f = std::string("--") + key;
  for (char& ch : f) if (ch == '_') ch = '-';
  return f;
}

// Converts one flag's text to the JSON type its key has (usage error naming the flag).
nlohmann::json flag_value(const ConfigKey& k, const std::string& text) {
  const std::string flag = flag_name(k.key);
  try {
    size_t used = 0;
    if (k.type == KeyType::Int) {
      const double d = std::stod(text, &used);  // accepts 7e9 for --tokens
      if (used != text.size() || !(std::fabs(d) < 4.6e18) || d != std::floor(d)) throw std::invalid_argument("");
      return static_cast<int64_t>(d);
    }
    if (k.type == KeyType::Float) {
      const double d = std::stod(text, &used);
      if (used != text.size() || !std::isfinite(d)) throw std::invalid_argument("");
      return d;
    }
  } catch (const std::exception&) {
    fail_usage("{}: expected a {} number, got '{}'", flag, k.type == KeyType::Int ? "whole" : "finite", text);
  }
  return text;
}

void print_summary(const TrainSummary& s, bool json) {
  if (json) {
    std::cout << s.to_json().dump(2) << "\n";
    return;
  }
  std::cout << fmt::format("{}: steps {}..{} of {}, {} tokens, {} ({:.0f} tokens/s, {:.2f} s/step), {} parameters\n",
                           s.mode, s.start_step, s.start_step + s.steps_done, s.total_steps, format_count(s.tokens),
                           format_duration(s.seconds), s.tokens_per_s, s.seconds_per_step, billions(s.parameters));
  std::vector<std::vector<std::string>> rows = {{"held-out", "loss (nats)", "bits/token", "accuracy"}};
  auto add = [&](const char* name, const std::optional<LmStats>& st) {
    if (st) rows.push_back({name, fmt::format("{:.4f}", st->loss()), fmt::format("{:.4f}", st->bits_per_token()),
                            fmt::format("{:.2f}%", 100.0 * st->accuracy())});
  };
  add("teacher", s.teacher_eval);
  add("student before", s.eval_start);
  add("student after", s.eval_end);
  if (rows.size() > 1) std::cout << table(rows);
  if (s.mode == "distill")
    std::cout << fmt::format("last step: loss {:.4f} | kl {:.4f} | ce {:.4f}\n", s.last_loss, s.last_kl, s.last_ce);
  else
    std::cout << fmt::format("last step: loss {:.4f}\n", s.last_loss);
  std::cout << (s.finished ? "final student: " : "stopped early; checkpoint: ") << s.output_dir << "\n";
}

void run(const TrainArgs& a) {
  TrainConfig c = default_train_config(a.mode);
  if (!a.recipe.empty()) c = load_recipe(a.recipe, c);
  c.mode = a.mode;
  nlohmann::json overrides = nlohmann::json::object();
  for (const ConfigKey& k : train_config_keys()) {
    auto it = a.options.find(k.key);
    if (it == a.options.end() || it->second->count() == 0) continue;
    overrides[k.key] = k.type == KeyType::Bool ? nlohmann::json(a.flags.at(k.key)) : flag_value(k, a.values.at(k.key));
  }
  // --steps on the line replaces a recipe's token budget, and --tokens a recipe's step count.
  if (overrides.contains("tokens") && !overrides.contains("steps")) overrides["steps"] = 0;
  c = train_config_from_json(overrides, "command line", c);
  TrainHooks hooks;
  hooks.stop_at = a.stop_at;
  const dist::DistEnv env = dist::dist_env_from_environment();
  if (a.plan) {
    const int64_t world = a.world_size > 0 ? a.world_size : a.nproc != 1 ? a.nproc : env.world_size;
    if (world < 1) fail_usage("--world-size / --nproc: expected a number of ranks >= 1, got {}", world);
    const JobModels m = job_models(c);
    PlanSettings ps = plan_settings(c, m, world, a.shard);
    ps.bucket_bytes = env.bucket_bytes;
    const Card card = run_card(a.gpu_memory, c.device, env.local_rank)
                          .value_or(Card{"80 GB card (default; set --gpu-memory)", reference_cards()[0].usable_bytes});
    if (env.rank == 0) print_train_plan(make_job_plan(c.mode, m, ps, card), a.json);
    return;
  }
  if (a.shard != "none" && !train_config_to_json(c).contains("shard"))
    fail_usage("--shard {}: this build's trainer does not shard; the flag only plans (--plan)", a.shard);
  if (a.nproc != 1) {
    if (a.nproc < 1) fail_usage("--nproc: expected a number of processes >= 1, got {}", a.nproc);
    if (env.distributed())
      fail_usage("--nproc {} inside a launched job ({} is {}): use either --nproc or a launcher", a.nproc,
                 env.world_var, env.world_size);
    if (c.device.rfind("cuda:", 0) == 0)
      fail_usage("--nproc {}: rank r runs on cuda:r; pass --device cuda instead of {}", a.nproc, c.device);
    validate_train_config(c, a.nproc);
    if (!a.gpu_memory.empty()) check_job_fits(c, a.nproc, *run_card(a.gpu_memory, c.device, 0), a.shard);
    const int code = dist::launch_local_ranks(static_cast<int>(a.nproc), dist::without_option(command_line(), "--nproc"));
    if (code != 0) {
      std::fflush(stdout);
      std::exit(code);
    }
    return;
  }
  validate_train_config(c, env.world_size);
  if (const std::optional<Card> card = run_card(a.gpu_memory, c.device, env.local_rank))
    check_job_fits(c, env.world_size, *card, a.shard);
  const TrainSummary s = env.distributed() ? dist::run_data_parallel(c, env, hooks) : run_training(c, hooks);
  if (env.rank == 0) print_summary(s, a.json);
}

void add_command(CLI::App& app, const char* mode, const char* description) {
  auto a = std::make_shared<TrainArgs>();
  a->mode = mode;
  CLI::App* cmd = app.add_subcommand(mode, description);
  cmd->add_option("--recipe", a->recipe, "JSON recipe (configs/recipes/*.json); flags override it");
  const nlohmann::json defaults = train_config_to_json(default_train_config(mode));
  for (const ConfigKey& k : train_config_keys()) {
    const std::string cmds = k.commands;
    if (cmds != "both" && cmds != mode) continue;
    std::string help = k.help;
    if (k.type != KeyType::Bool) {
      const nlohmann::json& d = defaults[k.key];
      if (!(d.is_string() && d.get<std::string>().empty())) help += " [default: " + (d.is_string() ? d.get<std::string>() : d.dump()) + "]";
    }
    CLI::Option* o = k.type == KeyType::Bool ? cmd->add_flag(flag_name(k.key), a->flags[k.key], help)
                                             : cmd->add_option(flag_name(k.key), a->values[k.key], help);
    o->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // a later flag wins, as over a recipe
    a->options[k.key] = o;
  }
  cmd->add_option("--stop-at", a->stop_at, "Stop after this many steps, writing a checkpoint (resume later)");
  cmd->add_option("--nproc", a->nproc,
                  "Data parallel on this host: run N ranks (one per GPU with --device cuda); the global batch is "
                  "split over them (see docs/distributed.md) [default: 1]");
  cmd->add_flag("--json", a->json, "Print the summary (or the --plan) as JSON");
  cmd->add_flag("--plan", a->plan,
                "Print the per-rank GPU memory plan (reads only config.json; no data or weights) and exit");
  cmd->add_option("--world-size", a->world_size, "Ranks to plan for [default: --nproc, else the launcher's]");
  cmd->add_option("--gpu-memory", a->gpu_memory,
                  "Card memory to plan and check against, e.g. 80GiB [default: the CUDA device's free memory]");
  if (!cmd->get_option_no_throw("--shard"))
    cmd->add_option("--shard", a->shard, "Sharding to plan for: none, optimizer or full [default: none]");
  cmd->callback([a] { run(*a); });
}

}  // namespace

void register_train(CLI::App& app) {
  add_command(app, "train", "Train a model on token data with next-token cross-entropy");
  add_command(app, "distill", "Distill a student from a frozen teacher (forward KL on logits by default)");
}

}  // namespace mp::cli
