// minipuzzle search: candidates that fit a deployment budget, ranked, with the trade-offs laid out
// (search/search_job.h runs the job; this file parses flags and prints).
#include "cli/commands.h"
#include "cli/common_options.h"
#include "cli/flag_checks.h"
#include "cli/format.h"
#include "search/report.h"
#include "search/search_job.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <iostream>
#include <memory>

namespace mp::cli {
namespace {

constexpr int64_t kMaxTokens = int64_t{1} << 40;

struct SearchArgs {
  SearchJob job;
  // Layer counts and widths to try, each "a,b,c" or "a:b[:step]" (empty: the default).
  std::string mamba_layers, attention_layers, mlp_layers;
  std::vector<std::string> widths = std::vector<std::string>(width_flags().size());
  double min_params = 0, max_params = 1e300;  // billions
  bool no_predict_speed = false;
  size_t show = 15;
  ReportFlags report;
};

SearchSpace space_overrides(const SearchArgs& a) {
  SearchSpace s;
  auto over = [](const std::string& spec, const char* flag, std::vector<int64_t>* out) {
    if (!spec.empty()) *out = parse_int_list(spec, flag);
  };
  over(a.mamba_layers, "--mamba-layers", &s.mamba);
  over(a.attention_layers, "--attention-layers", &s.attention);
  over(a.mlp_layers, "--mlp-layers", &s.mlp);
  std::vector<int64_t>* axes[] = {&s.hidden, &s.ffn, &s.attention_heads, &s.mamba_heads, &s.mamba_head_dim};
  for (size_t i = 0; i < a.widths.size(); ++i) over(a.widths[i], width_flags()[i].flag, axes[i]);
  return s;
}

void print_header(const SearchOutcome& o) {
  const SearchResult& r = o.result;
  std::cout << fmt::format("parent {} layers, {} parameters, {:.3f} GiB under {} (limit {} GiB)\n",
                           r.parent.num_layers(), billions(count_params(r.parent).total()), o.parent_gib,
                           r.budget.name, o.memory_limit_gib);
  if (r.speed)
    std::cout << fmt::format("speed predicted for {} {} (model {}): batch {}, {} prompt + {} new tokens; parent {:.3f} s "
                             "(prefill {:.3f} s, decode {:.2f} ms/token)\n",
                             r.speed->model.card, r.speed->model.dtype, o.throughput_model, r.speed->workload.batch,
                             r.speed->workload.prompt_tokens, r.speed->workload.output_tokens,
                             r.parent_speed->generation_s, r.parent_speed->prefill_s,
                             1e3 * r.parent_speed->decode_s_per_token);
  std::cout << fmt::format("{} candidates enumerated, {} fit, in {:.3f} s\n", r.enumerated, r.feasible.size(), r.seconds);
}

void print_finalists(const SearchOutcome& o) {
  std::cout << fmt::format("{:>9} {:>10} {:>12} {:>12}  {}\n", "zero-shot", "distilled", "loss before", "loss after",
                           "candidate");
  for (const FinalistResult& r : o.distilled)
    std::cout << fmt::format("{:>9} {:>10} {:>12.4f} {:>12.4f}  {}\n", r.finalist.zero_shot_rank, r.rank_after,
                             r.loss_before, r.loss_after, r.finalist.key);
  const nlohmann::json& doc = o.finalists_report;
  std::cout << fmt::format("rank correlation (Spearman) {:.3f}; chosen {}\n", doc["spearman"].get<double>(),
                           doc["chosen"].is_string() ? doc["chosen"].get<std::string>() : "-");
}

// The parent, the ranked candidates shown in the table (best first) and the finalists.
nlohmann::json search_json(const SearchOutcome& o, size_t show) {
  const SearchResult& r = o.result;
  nlohmann::json top = nlohmann::json::array();
  for (size_t i = 0; i < std::min(show, r.feasible.size()); ++i) {
    const CandidateResult& c = r.feasible[i];
    nlohmann::json j = shape_json(c, r.parent);
    j["key"] = c.candidate.key();
    j["parameters"] = c.params;
    j["memory_gib"] = to_gib(c.memory.total());
    j["metrics"] = c.metrics;
    if (c.speed) j["speedup"] = c.speedup;
    top.push_back(j);
  }
  nlohmann::json finalists = nlohmann::json::array();
  for (const Finalist& f : o.finalists) finalists.push_back({{"dir", f.dir}, {"key", f.key}, {"rank", f.zero_shot_rank}});
  return {{"parent_parameters", count_params(r.parent).total()},
          {"parent_memory_gib", o.parent_gib},
          {"memory_limit_gib", o.memory_limit_gib},
          {"budget", r.budget.name},
          {"throughput_model", o.throughput_model.empty() ? nlohmann::json(nullptr) : nlohmann::json(o.throughput_model)},
          {"enumerated", r.enumerated},
          {"feasible", r.feasible.size()},
          {"metric", o.metric},
          {"seconds", r.seconds},
          {"candidates", top},
          {"finalists", finalists},
          {"distilled", o.finalists_report.is_null() ? nlohmann::json(nullptr) : o.finalists_report}};
}

void run(SearchArgs& a) {
  SearchJob& j = a.job;
  j.space = space_overrides(a);
  j.limits.min_params = a.min_params * 1e9;
  j.limits.max_params = a.max_params * 1e9;
  j.predict_speed = !a.no_predict_speed;
  j.quiet = a.report.quiet;
  const SearchOutcome o = run_search_job(j, [&](const std::string& line) { note(a.report, line); });
  if (a.report.json) {
    std::cout << search_json(o, a.show).dump(2) << "\n";
    return;
  }
  print_header(o);
  std::cout << search_table(o.result, a.show, o.metric);
  if (!o.distilled.empty()) print_finalists(o);
}

}  // namespace

void register_search(CLI::App& app) {
  auto a = std::make_shared<SearchArgs>();
  SearchJob& j = a->job;
  CLI::App* cmd = app.add_subcommand("search", "Architectures that fit a deployment budget, ranked against the parent");
  add_model(cmd, j.model, "Parent checkpoint folder");
  cmd->add_option("--config", j.config, "Parent config.json (shape only)");
  cmd->add_option("--budget", j.budget, "Budget JSON (configs/budgets/); default: bf16, 8192 tokens, 31.7 GiB");
  add_output(cmd, j.output, "Output folder")->capture_default_str();
  cmd->add_option("--mamba-layers", a->mamba_layers, "Mamba layers kept: a:b[:step] or a,b,.. (default 3/4..all)");
  cmd->add_option("--attention-layers", a->attention_layers, "Attention layers kept (default 1..all)");
  cmd->add_option("--mlp-layers", a->mlp_layers, "MLP layers kept (default 3/4..all)");
  for (size_t i = 0; i < width_flags().size(); ++i) {
    const std::string what = width_flags()[i].what;
    const bool ffn = std::string(width_flags()[i].flag) == "--ffn-hidden-size";
    cmd->add_option(width_flags()[i].flag, a->widths[i],
                    "Values to try for the " + what + ": a,b,c or a:b[:step] (default: " +
                        (ffn ? "75%..100% of the parent's in 1/32 steps; e.g. 24576:32768:1024)" : "the parent's)"));
  }
  cmd->add_option("--min-memory-gib", j.limits.min_memory_gib, "Drop candidates below this memory (they waste the budget)")
      ->capture_default_str()->check(finite_number());
  cmd->add_option("--max-memory-gib", j.limits.max_memory_gib, "Override the budget's limit")->check(finite_number());
  cmd->add_option("--min-params", a->min_params, "Parameter range, in billions")->capture_default_str()
      ->check(finite_number());
  cmd->add_option("--max-params", a->max_params, "Parameter range, in billions")->check(finite_number());
  cmd->add_option("--min-speedup", j.limits.min_speedup, "Minimum predicted generation speed-up over the parent (e.g. 1.2)")
      ->capture_default_str()->check(finite_number());
  CLI::Option* model_file = cmd->add_option("--throughput-model", j.throughput_model,
                  "Throughput model JSON (bench/bench_throughput) that predicts generation speed [default: "
                  "configs/throughput/h200-bf16.json]");
  cmd->add_flag("--no-predict-speed", a->no_predict_speed, "Predict no generation speed (no --min-speedup, no speed column)")
      ->excludes(model_file);
  cmd->add_option("--prompt-tokens", j.prompt_tokens, "Generation workload for predicted speed: prompt tokens")
      ->capture_default_str()->check(CLI::Range(int64_t{1}, kMaxTokens));
  cmd->add_option("--output-tokens", j.output_tokens, "Generation workload for predicted speed: new tokens")
      ->capture_default_str()->check(CLI::Range(int64_t{0}, kMaxTokens));
  cmd->add_option("--show", a->show, "Rows of the terminal table (and of --json's candidates)")->capture_default_str();
  cmd->add_option("--importance", j.importance,
                  "importance.json of the parent (from minipuzzle score): keeps the most important layers");
  add_data(cmd, j.data, "Held-out token data to rank candidates against the parent");
  cmd->add_option("--eval-tokens", j.eval_tokens, "Held-out tokens for ranking")->capture_default_str()
      ->check(CLI::Range(int64_t{1}, kMaxTokens));
  add_seq_len(cmd, j.seq_len, "Tokens per window for ranking");
  cmd->add_option("--top", j.top, "Candidates ranked (the largest by parameters)")->capture_default_str()
      ->check(CLI::Range(int64_t{1}, kMaxTokens));
  cmd->add_option("--rank-by", j.rank_by,
                  "kl, loss, accuracy, agreement, or task:FILE (a task file or NAME=DATA.jsonl, docs/eval_tasks.md): "
                  "the task's acc_norm, else acc")
      ->capture_default_str();
  cmd->add_option("--layer-metric", j.layer_metric, "Layer importance metric for choosing layers: mse_normed, mse_hidden, kl, loss_delta, agreement, block_influence")->capture_default_str();
  add_micro_batch(cmd, j.micro_batch);
  cmd->add_option("--finalists", j.finalists, "Write the N best pruned checkpoints to OUTPUT/finalist-k")
      ->capture_default_str()->check(CLI::Range(int64_t{0}, int64_t{1000}));
  cmd->add_option("--distill-tokens", j.distill_tokens,
                  "Distill each finalist from the parent for this many tokens, then rank them again by held-out loss")
      ->check(CLI::Range(int64_t{1}, kMaxTokens));
  cmd->add_option("--recipe", j.recipe, "Distillation recipe for the finalists (configs/recipes/*.json)");
  cmd->add_option("--distill-data", j.distill_data, "Token data to distill the finalists on (default: --data)");
  cmd->add_flag("--resume", j.resume, "Continue a search in its --output folder (finalists already distilled are kept)");
  add_overwrite(cmd, j.overwrite, "Write into an existing non-empty --output folder, replacing its files");
  add_device(cmd, j.device);
  add_dtype(cmd, j.dtype)->capture_default_str();
  add_seed(cmd, j.seed, "Window selection seed");
  add_report_flags(cmd, a->report);
  cmd->callback([a] { run(*a); });
}

}  // namespace mp::cli
