// minipuzzle search: candidates that fit a deployment budget, ranked, with the trade-offs laid out.
#include "cli/commands.h"
#include "cli/format.h"
#include "cli/flag_checks.h"
#include "common/error.h"
#include "common/output_guard.h"
#include "model/config.h"
#include "common/progress.h"
#include "data/sampler.h"
#include "distill/finalists.h"
#include "distill/train_config.h"
#include "model/model.h"
#include "prune/apply.h"
#include "prune/fingerprint.h"
#include "prune/plan.h"
#include "search/rank.h"
#include "search/report.h"
#include "search/search.h"
#include "eval/run_tasks.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <filesystem>
#include <iostream>
#include <algorithm>
#include <memory>
#include <optional>

namespace mp::cli {
namespace {

constexpr int64_t kMaxTokens = int64_t{1} << 40;

struct SearchArgs {
  std::string model, config, budget, output = "search-out";
  std::string mamba_layers, attention_layers, mlp_layers, ffn_grid, hidden_grid, attention_heads, mamba_heads,
      mamba_head_dim;
  double min_memory_gib = 0, max_memory_gib = -1, min_params = 0, max_params = 1e300, min_speedup = 0;
  std::string throughput;  // throughput model JSON; default: configs/throughput/h200-bf16.json if present
  int64_t prompt_tokens = 65536, output_tokens = 1024;
  size_t show = 15;
  // Ranking against the parent (needs --model, --importance, --data).
  std::string importance, data, device = "cpu", dtype = "fp32", rank_by = "kl", layer_metric = "mse_normed";
  int64_t eval_tokens = 16384, seq_len = 512, top = 20, micro_batch = 4, finalists = 0;
  uint64_t seed = 4321;
  bool quiet = false, overwrite = false, resume = false;
  // Short distillation of the finalists (0: none).
  int64_t distill_tokens = 0;
  std::string recipe, distill_data;
};

// The finalists distilled from the parent for the same tokens, evaluated and ranked again.
void distill_and_rerank(const SearchArgs& a, const std::vector<Finalist>& finalists, const std::string& metric) {
  FinalistDistillOptions o;
  o.recipe = default_train_config("distill");
  if (!a.recipe.empty()) o.recipe = load_recipe(a.recipe, o.recipe);
  o.recipe.device = a.device, o.recipe.dtype = a.dtype, o.recipe.quiet = a.quiet;
  o.teacher = a.model;
  o.data = a.distill_data.empty() ? a.data : a.distill_data;
  o.eval_data = a.data;
  o.tokens = a.distill_tokens;
  o.eval_seq_len = a.seq_len;
  o.eval_windows = std::max<int64_t>(1, a.eval_tokens / a.seq_len);
  o.eval_micro_batch = a.micro_batch;
  o.seed = a.seed;
  std::cerr << fmt::format("distilling {} finalist(s) for {} tokens each\n", finalists.size(), a.distill_tokens);
  std::vector<FinalistResult> res = distill_finalists(finalists, o, [&](size_t i, size_t n) {
    if (!a.quiet) std::cerr << fmt::format("finalist {}/{} distilled\n", i, n);
  });
  nlohmann::json doc = write_finalists_report(res, a.output, metric, o);
  std::cout << fmt::format("{:>9} {:>10} {:>12} {:>12}  {}\n", "zero-shot", "distilled", "loss before", "loss after",
                           "candidate");
  for (const FinalistResult& r : res)
    std::cout << fmt::format("{:>9} {:>10} {:>12.4f} {:>12.4f}  {}\n", r.finalist.zero_shot_rank, r.rank_after,
                             r.loss_before, r.loss_after, r.finalist.key);
  std::cout << fmt::format("rank correlation (Spearman) {:.3f}; chosen {}\n", doc["spearman"].get<double>(),
                           doc["chosen"].is_string() ? doc["chosen"].get<std::string>() : "-");
  std::cout << fmt::format("wrote {0}/finalists.json, {0}/finalists.csv, {0}/finalists.svg\n", a.output);
}

void run_search_cmd(const SearchArgs& a) {
  if (a.model.empty() == a.config.empty()) fail_usage("search: give exactly one of --model DIR or --config CONFIG.json");
  {
    std::vector<std::string> inputs = token_data_files(a.data);
    for (const std::string& p : {a.model, a.config, a.budget, a.importance})
      inputs.push_back(p);
    if (a.throughput != "none" && a.throughput != "default") inputs.push_back(a.throughput);
    if (a.rank_by.rfind("task:", 0) == 0) {
      const std::string t = a.rank_by.substr(5);
      inputs.push_back(t.substr(t.find('=') == std::string::npos ? 0 : t.find('=') + 1));
    }
    // --resume continues a search's folder (its finalists' distillations resume where they stopped).
    guard_output({"--output", a.output, OutputKind::Folder}, inputs, a.overwrite || a.resume);
  }
  ModelConfig parent = load_config(a.model.empty() ? a.config : a.model);
  Budget budget = a.budget.empty() ? Budget{} : load_budget(a.budget);
  SearchSpace space = default_space(parent);
  auto over = [](const std::string& spec, const char* flag, std::vector<int64_t>* out) {
    if (!spec.empty()) *out = parse_int_list(spec, flag);
  };
  over(a.mamba_layers, "--mamba-layers", &space.mamba);
  over(a.attention_layers, "--attention-layers", &space.attention);
  over(a.mlp_layers, "--mlp-layers", &space.mlp);
  over(a.ffn_grid, "--ffn-grid", &space.ffn);
  over(a.hidden_grid, "--hidden-grid", &space.hidden);
  over(a.attention_heads, "--attention-heads", &space.attention_heads);
  over(a.mamba_heads, "--mamba-heads", &space.mamba_heads);
  over(a.mamba_head_dim, "--mamba-head-dim", &space.mamba_head_dim);
  SearchConstraints lim;
  lim.min_memory_gib = a.min_memory_gib;
  lim.max_memory_gib = a.max_memory_gib;
  lim.min_params = a.min_params * 1e9;
  lim.max_params = a.max_params * 1e9;
  lim.min_speedup = a.min_speedup;
  std::optional<SpeedPrediction> speed;
  const std::string tp = a.throughput.empty() ? default_throughput_path() : a.throughput;
  if (!tp.empty() && a.throughput != "none") {
    if (a.prompt_tokens < 1 || a.output_tokens < 0)
      fail_usage("search: --prompt-tokens must be >= 1 and --output-tokens >= 0 (got {} and {})", a.prompt_tokens,
                 a.output_tokens);
    speed = SpeedPrediction{load_throughput(tp), Workload{budget.batch, a.prompt_tokens, a.output_tokens}};
  }
  const bool ranking = !a.importance.empty() || !a.data.empty();
  if (ranking && (a.model.empty() || a.importance.empty() || a.data.empty()))
    fail_usage("search: ranking against the parent needs --model, --importance and --data together");
  if (a.finalists > 0 && !ranking) fail_usage("search: --finalists needs ranking (--model, --importance, --data)");
  if (a.distill_tokens > 0 && a.finalists < 1) fail_usage("search: --distill-tokens needs --finalists N (N >= 1)");
  if (a.resume && a.overwrite) fail_usage("search: --resume and --overwrite contradict each other");
  // --rank-by task:FILE (a task file, or NAME=DATA.jsonl): every candidate is scored on the task
  // with the parent's tokenizer; the ranking metric is the task's acc_norm, else its acc.
  struct RankTask {
    eval::PreparedTask prepared;
    std::string metric;
  };
  std::optional<RankTask> task;
  if (a.rank_by.rfind("task:", 0) == 0) {
    if (!ranking) fail_usage("search: --rank-by {} needs ranking (--model, --importance, --data)", a.rank_by);
    const eval::TaskSpec spec = eval::resolve_task_argument(a.rank_by.substr(5));
    const auto& ms = spec.metrics;
    const bool norm = std::find(ms.begin(), ms.end(), "acc_norm") != ms.end();
    if (!norm && std::find(ms.begin(), ms.end(), "acc") == ms.end())
      fail_usage("--rank-by {}: task {} reports no accuracy (acc or acc_norm) to rank by", a.rank_by, spec.name);
    const ModelConfig pc = load_config(a.model);
    const eval::TextEncoder enc = eval::encoder_for_model(a.model, pc.vocab_size, "", std::nullopt);
    eval::BuildOptions b;
    b.seed = a.seed;
    task = RankTask{eval::prepare_task(spec, b, enc, eval::default_max_length(a.model)), norm ? "task_acc_norm" : "task_acc"};
  }
  std::optional<Importance> imp;
  std::vector<int64_t> order;
  LayerMetric lm = parse_layer_metric(a.layer_metric);
  if (ranking) {
    imp = load_importance(a.importance);
    order = layer_ranking(*imp, lm);
  }
  SearchResult r = run_search(parent, budget, space, lim, order, speed);
  const double parent_gib = to_gib(deployment_memory(parent, budget).total());
  std::cout << fmt::format("parent {} layers, {} parameters, {:.3f} GiB under {} (limit {} GiB)\n",
                           parent.num_layers(), billions(count_params(parent).total()), parent_gib, budget.name,
                           lim.max_memory_gib > 0 ? lim.max_memory_gib : budget.memory_limit_gib);
  if (r.speed)
    std::cout << fmt::format("speed predicted for {} {} (model {}): batch {}, {} prompt + {} new tokens; parent {:.3f} s "
                             "(prefill {:.3f} s, decode {:.2f} ms/token)\n",
                             r.speed->model.card, r.speed->model.dtype, tp, r.speed->workload.batch,
                             r.speed->workload.prompt_tokens, r.speed->workload.output_tokens, r.parent_speed->generation_s,
                             r.parent_speed->prefill_s, 1e3 * r.parent_speed->decode_s_per_token);
  std::cout << fmt::format("{} candidates enumerated, {} fit, in {:.3f} s\n", r.enumerated, r.feasible.size(), r.seconds);
  if (r.feasible.empty())
    fail_input("no candidate fits: none of the {} satisfies memory in [{}, {}] GiB under {}, parameters in "
               "[{:.4g}, {:.4g}] B{}; widen the space, the budget or the limits",
               r.enumerated, lim.min_memory_gib, lim.max_memory_gib > 0 ? lim.max_memory_gib : budget.memory_limit_gib,
               budget.name, a.min_params, a.max_params,
               a.min_speedup > 0 ? fmt::format(" and predicted speed-up >= {}", a.min_speedup) : "");
  std::string metric = "params";
  std::optional<Model> model;
  if (ranking) {
    LoadOptions lo;
    lo.device = parse_device(a.device);
    lo.dtype = parse_dtype(a.dtype);
    model = load_model(a.model, lo);
    check_importance_matches(*imp, model->config, model_fingerprint(model->weights), a.importance, a.model);
    WindowSampler sampler(IndexedDataset::open(a.data), a.seq_len, a.seed, model->config.vocab_size);
    const int64_t n = std::max<int64_t>(1, std::min<int64_t>(a.eval_tokens / a.seq_len, sampler.num_windows()));
    RankOptions ro;
    ro.top_k = a.top;
    ro.metric = a.rank_by;
    if (task) {
      ro.metric = task->metric;
      ro.extra_metrics = [&task, &a](const Model& m) {
        eval::EvaluateOptions eo;
        eo.bootstrap_iters = 0;
        eo.seed = a.seed;
        for (const eval::MetricResult& r : eval::evaluate_task(m, task->prepared, eo).metrics)
          if ("task_" + r.name == task->metric) return std::map<std::string, double>{{task->metric, r.value}};
        return std::map<std::string, double>{};
      };
    }
    ro.micro_batch = a.micro_batch;
    ro.layer_metric = lm;
    const int64_t k = std::min<int64_t>(a.top, static_cast<int64_t>(r.feasible.size()));
    Progress progress("rank", k, "candidates", a.quiet);
    rank_candidates(r, *model, *imp, sampler.fixed_windows(n), ro, [&](int64_t, int64_t) { progress.advance(1); });
    progress.finish();
    metric = ro.metric;
  }
  write_search_outputs(r, a.output, metric);
  std::cout << search_table(r, a.show, metric);
  std::vector<Finalist> finalists;
  for (int64_t i = 0; i < std::min<int64_t>(a.finalists, static_cast<int64_t>(r.feasible.size())); ++i) {
    const CandidateResult& c = r.feasible[i];
    PruneTarget t = candidate_target(c, lm);
    std::string dir = fmt::format("{}/finalist-{}", a.output, i + 1);
    const PruningPlan plan = make_plan(*imp, t);
    // A resumed search keeps a finalist written before (a complete folder: AtomicDir) when it is
    // this candidate's; anything else is refused rather than mixed.
    if (a.resume && std::filesystem::exists(dir + "/config.json")) {
      if (config_to_json(load_config(dir)) != config_to_json(plan_config(model->config, plan)))
        fail_input("{}: holds another shape than candidate {} of this search; resume with the same settings or use a "
                   "new --output", dir, c.candidate.key());
    } else {
      SaveOptions so;
      so.companions_from = a.model;
      save_model(apply_plan(*model, plan), dir, so);
      std::cout << fmt::format("wrote {} ({})\n", dir, c.candidate.key());
    }
    auto mv = c.metrics.find(metric);
    finalists.push_back({dir, c.candidate.key(), i + 1, mv == c.metrics.end() ? 0.0 : mv->second});
  }
  std::cout << fmt::format("wrote {0}/candidates.json, {0}/candidates.csv, {0}/pareto.svg, {0}/best.shape.json\n", a.output);
  if (a.distill_tokens > 0) {
    model.reset();  // the finalists' runs load what they need
    distill_and_rerank(a, finalists, metric);
  }
}

}  // namespace

void register_search(CLI::App& app) {
  auto a = std::make_shared<SearchArgs>();
  CLI::App* cmd = app.add_subcommand("search", "Architectures that fit a deployment budget, ranked against the parent");
  cmd->add_option("--model", a->model, "Parent checkpoint folder");
  cmd->add_option("--config", a->config, "Parent config.json (shape only)");
  cmd->add_option("--budget", a->budget, "Budget JSON (configs/budgets/); default: bf16, 8192 tokens, 31.7 GiB");
  cmd->add_option("--output", a->output, "Output folder")->capture_default_str();
  cmd->add_option("--mamba-layers", a->mamba_layers, "Mamba layers kept: a:b[:step] or a,b,.. (default 3/4..all)");
  cmd->add_option("--attention-layers", a->attention_layers, "Attention layers kept (default 1..all)");
  cmd->add_option("--mlp-layers", a->mlp_layers, "MLP layers kept (default 3/4..all)");
  cmd->add_option("--ffn-grid", a->ffn_grid, "MLP widths, e.g. 24576:32768:1024 (default 75%..100% in 1/32 steps)");
  cmd->add_option("--hidden-grid", a->hidden_grid, "Hidden sizes (default: the parent's)");
  cmd->add_option("--attention-heads", a->attention_heads, "Query heads (default: the parent's)");
  cmd->add_option("--mamba-heads", a->mamba_heads, "Mamba heads (default: the parent's)");
  cmd->add_option("--mamba-head-dim", a->mamba_head_dim, "Mamba head channels (default: the parent's)");
  cmd->add_option("--min-memory-gib", a->min_memory_gib, "Drop candidates below this memory (they waste the budget)")
      ->capture_default_str()->check(finite_number());
  cmd->add_option("--max-memory-gib", a->max_memory_gib, "Override the budget's limit")->check(finite_number());
  cmd->add_option("--min-params", a->min_params, "Parameter range, in billions")->capture_default_str()
      ->check(finite_number());
  cmd->add_option("--max-params", a->max_params, "Parameter range, in billions")->check(finite_number());
  cmd->add_option("--min-speedup", a->min_speedup, "Minimum predicted generation speed-up over the parent (e.g. 1.2)")
      ->capture_default_str()->check(finite_number());
  cmd->add_option("--throughput", a->throughput,
                  "Throughput model JSON (bench/bench_throughput); default configs/throughput/h200-bf16.json; 'none' "
                  "turns speed prediction off");
  cmd->add_option("--prompt-tokens", a->prompt_tokens, "Generation workload for predicted speed: prompt tokens")
      ->capture_default_str()->check(CLI::Range(int64_t{1}, kMaxTokens));
  cmd->add_option("--output-tokens", a->output_tokens, "Generation workload for predicted speed: new tokens")
      ->capture_default_str()->check(CLI::Range(int64_t{0}, kMaxTokens));
  cmd->add_option("--show", a->show, "Rows of the terminal table")->capture_default_str();
  cmd->add_option("--importance", a->importance, "importance.json of the parent (from minipuzzle score): keeps the most important layers");
  cmd->add_option("--data", a->data, "Held-out token data to rank candidates against the parent");
  cmd->add_option("--eval-tokens", a->eval_tokens, "Held-out tokens for ranking")->capture_default_str()
      ->check(CLI::Range(int64_t{1}, kMaxTokens));
  cmd->add_option("--seq-len", a->seq_len, "Window length for ranking")->capture_default_str()
      ->check(CLI::Range(int64_t{1}, kMaxTokens));
  cmd->add_option("--top", a->top, "Candidates ranked (the largest by parameters)")->capture_default_str()
      ->check(CLI::Range(int64_t{1}, kMaxTokens));
  cmd->add_option("--rank-by", a->rank_by, "kl, loss, accuracy, agreement, or task:FILE (a task file or NAME=DATA.jsonl, docs/eval_tasks.md): the task's acc_norm, else acc")->capture_default_str();
  cmd->add_option("--layer-metric", a->layer_metric, "Layer importance metric for choosing layers")->capture_default_str();
  cmd->add_option("--micro-batch", a->micro_batch, "Windows per forward pass")->capture_default_str()
      ->check(CLI::Range(int64_t{1}, kMaxTokens));
  cmd->add_option("--finalists", a->finalists, "Write the N best pruned checkpoints to OUTPUT/finalist-k")
      ->capture_default_str()->check(CLI::Range(int64_t{0}, int64_t{1000}));
  cmd->add_option("--distill-tokens", a->distill_tokens,
                  "Distill each finalist from the parent for this many tokens, then rank them again by held-out loss")
      ->check(CLI::Range(int64_t{1}, kMaxTokens));
  cmd->add_option("--recipe", a->recipe, "Distillation recipe for the finalists (configs/recipes/*.json)");
  cmd->add_option("--distill-data", a->distill_data, "Token data to distill the finalists on (default: --data)");
  cmd->add_flag("--resume", a->resume, "Continue a search in its --output folder (finalists already distilled are kept)");
  cmd->add_flag("--overwrite", a->overwrite, "Write into an existing non-empty --output folder, replacing its files");
  cmd->add_option("--device", a->device, "cpu or cuda")->capture_default_str();
  cmd->add_option("--dtype", a->dtype, "fp32, bf16 or fp16")->capture_default_str();
  cmd->add_option("--seed", a->seed, "Window selection seed")->capture_default_str();
  cmd->add_flag("--quiet", a->quiet, "No progress lines");
  cmd->callback([a] { run_search_cmd(*a); });
}

}  // namespace mp::cli
