#include "search/search_job.h"

#include "common/error.h"
#include "common/output_guard.h"
#include "common/progress.h"
#include "data/sampler.h"
#include "distill/train_config.h"
#include "eval/run_tasks.h"
#include "model/model.h"
#include "prune/apply.h"
#include "prune/fingerprint.h"
#include "prune/plan.h"
#include "search/rank.h"
#include "search/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

namespace mp {
namespace {

// --rank-by task:FILE (a task file, or NAME=DATA.jsonl): every candidate is scored on the task
// with the parent's tokenizer; the ranking metric is the task's acc_norm, else its acc.
struct RankTask {
  eval::PreparedTask prepared;
  std::string metric;
};

std::optional<RankTask> rank_task(const SearchJob& j) {
  if (j.rank_by.rfind("task:", 0) != 0) return std::nullopt;
  const eval::TaskSpec spec = eval::resolve_task_argument(j.rank_by.substr(5));
  const auto& ms = spec.metrics;
  const bool norm = std::find(ms.begin(), ms.end(), "acc_norm") != ms.end();
  if (!norm && std::find(ms.begin(), ms.end(), "acc") == ms.end())
    fail_usage("--rank-by {}: task {} reports no accuracy (acc or acc_norm) to rank by", j.rank_by, spec.name);
  const ModelConfig pc = load_config(j.model);
  const eval::TextEncoder enc = eval::encoder_for_model(j.model, pc.vocab_size, "", std::nullopt);
  eval::BuildOptions b;
  b.seed = j.seed;
  return RankTask{eval::prepare_task(spec, b, enc, eval::default_max_length(j.model)), norm ? "task_acc_norm" : "task_acc"};
}

void guard_search_output(const SearchJob& j) {
  std::vector<std::string> inputs = token_data_files(j.data);
  for (const std::string& p : {j.model, j.config, j.budget, j.importance, j.throughput_model}) inputs.push_back(p);
  if (j.rank_by.rfind("task:", 0) == 0) {
    const std::string t = j.rank_by.substr(5);
    inputs.push_back(t.substr(t.find('=') == std::string::npos ? 0 : t.find('=') + 1));
  }
  // --resume continues a search's folder (its finalists' distillations resume where they stopped).
  guard_output({"--output", j.output, OutputKind::Folder}, inputs, j.overwrite || j.resume);
}

void check_combinations(const SearchJob& j, bool ranking) {
  if (j.model.empty() == j.config.empty()) fail_usage("search: give exactly one of --model DIR or --config CONFIG.json");
  if (ranking && (j.model.empty() || j.importance.empty() || j.data.empty()))
    fail_usage("search: ranking against the parent needs --model, --importance and --data together");
  if (j.finalists > 0 && !ranking) fail_usage("search: --finalists needs ranking (--model, --importance, --data)");
  if (j.distill_tokens > 0 && j.finalists < 1) fail_usage("search: --distill-tokens needs --finalists N (N >= 1)");
  if (j.resume && j.overwrite) fail_usage("search: --resume and --overwrite contradict each other");
  if (j.rank_by.rfind("task:", 0) == 0 && !ranking)
    fail_usage("search: --rank-by {} needs ranking (--model, --importance, --data)", j.rank_by);
  if (j.prompt_tokens < 1 || j.output_tokens < 0)
    fail_usage("search: --prompt-tokens must be >= 1 and --output-tokens >= 0 (got {} and {})", j.prompt_tokens,
               j.output_tokens);
}

SearchSpace space_with_overrides(const ModelConfig& parent, const SearchSpace& over) {
  SearchSpace s = default_space(parent);
  for (auto [from, to] : {std::pair{&over.mamba, &s.mamba}, {&over.attention, &s.attention}, {&over.mlp, &s.mlp},
                          {&over.ffn, &s.ffn}, {&over.hidden, &s.hidden}, {&over.attention_heads, &s.attention_heads},
                          {&over.mamba_heads, &s.mamba_heads}, {&over.mamba_head_dim, &s.mamba_head_dim}})
    if (!from->empty()) *to = *from;
  return s;
}

// The finalists distilled from the parent for the same tokens, evaluated and ranked again.
void distill_and_rerank(const SearchJob& j, SearchOutcome& out, const SearchNote& note) {
  FinalistDistillOptions o;
  o.recipe = default_train_config("distill");
  if (!j.recipe.empty()) o.recipe = load_recipe(j.recipe, o.recipe);
  o.recipe.device = j.device, o.recipe.dtype = j.dtype, o.recipe.quiet = j.quiet;
  o.teacher = j.model;
  o.data = j.distill_data.empty() ? j.data : j.distill_data;
  o.eval_data = j.data;
  o.tokens = j.distill_tokens;
  o.eval_seq_len = j.seq_len;
  o.eval_windows = std::max<int64_t>(1, j.eval_tokens / j.seq_len);
  o.eval_micro_batch = j.micro_batch;
  o.seed = j.seed;
  if (note) note(fmt::format("distilling {} finalist(s) for {} tokens each", out.finalists.size(), j.distill_tokens));
  out.distilled = distill_finalists(out.finalists, o, [&](size_t i, size_t n) {
    if (note) note(fmt::format("finalist {}/{} distilled", i, n));
  });
  out.finalists_report = write_finalists_report(out.distilled, j.output, out.metric, o);
  if (note) note(fmt::format("wrote {0}/finalists.json, {0}/finalists.csv, {0}/finalists.svg", j.output));
}

}  // namespace

SearchOutcome run_search_job(const SearchJob& j, const SearchNote& note) {
  const bool ranking = !j.importance.empty() || !j.data.empty();
  check_combinations(j, ranking);
  guard_search_output(j);
  const ModelConfig parent = load_config(j.model.empty() ? j.config : j.model);
  const Budget budget = j.budget.empty() ? Budget{} : load_budget(j.budget);
  const SearchSpace space = space_with_overrides(parent, j.space);
  SearchOutcome out;
  std::optional<SpeedPrediction> speed;
  if (j.predict_speed) {
    out.throughput_model = j.throughput_model.empty() ? default_throughput_path() : j.throughput_model;
    if (!out.throughput_model.empty())
      speed = SpeedPrediction{load_throughput(out.throughput_model), Workload{budget.batch, j.prompt_tokens, j.output_tokens}};
  }
  const std::optional<RankTask> task = ranking ? rank_task(j) : std::nullopt;
  std::optional<Importance> imp;
  std::vector<int64_t> order;
  const LayerMetric lm = parse_layer_metric(j.layer_metric);
  if (ranking) {
    imp = load_importance(j.importance);
    order = layer_ranking(*imp, lm);
  }
  out.result = run_search(parent, budget, space, j.limits, order, speed);
  SearchResult& r = out.result;
  out.parent_gib = to_gib(deployment_memory(parent, budget).total());
  out.memory_limit_gib = j.limits.max_memory_gib > 0 ? j.limits.max_memory_gib : budget.memory_limit_gib;
  if (r.feasible.empty())
    fail_input("no candidate fits: none of the {} satisfies memory in [{}, {}] GiB under {}, parameters in "
               "[{:.4g}, {:.4g}] B{}; widen the space, the budget or the limits",
               r.enumerated, j.limits.min_memory_gib, out.memory_limit_gib, budget.name, j.limits.min_params / 1e9,
               j.limits.max_params / 1e9,
               j.limits.min_speedup > 0 ? fmt::format(" and predicted speed-up >= {}", j.limits.min_speedup) : "");
  out.metric = "params";
  std::optional<Model> model;
  if (ranking) {
    LoadOptions lo;
    lo.device = parse_device(j.device);
    lo.dtype = parse_dtype(j.dtype);
    model = load_model(j.model, lo);
    check_importance_matches(*imp, model->config, model_fingerprint(model->weights), j.importance, j.model);
    WindowSampler sampler(IndexedDataset::open(j.data), j.seq_len, j.seed, model->config.vocab_size);
    const int64_t n = std::max<int64_t>(1, std::min<int64_t>(j.eval_tokens / j.seq_len, sampler.num_windows()));
    RankOptions ro;
    ro.top_k = j.top;
    ro.metric = j.rank_by;
    if (task) {
      ro.metric = task->metric;
      ro.extra_metrics = [&task, &j](const Model& m) {
        eval::EvaluateOptions eo;
        eo.bootstrap_iters = 0;
        eo.seed = j.seed;
        for (const eval::MetricResult& mr : eval::evaluate_task(m, task->prepared, eo).metrics)
          if ("task_" + mr.name == task->metric) return std::map<std::string, double>{{task->metric, mr.value}};
        return std::map<std::string, double>{};
      };
    }
    ro.micro_batch = j.micro_batch;
    ro.layer_metric = lm;
    const int64_t k = std::min<int64_t>(j.top, static_cast<int64_t>(r.feasible.size()));
    Progress progress("rank", k, "candidates", j.quiet);
    rank_candidates(r, *model, *imp, sampler.fixed_windows(n), ro, [&](int64_t, int64_t) { progress.advance(1); });
    progress.finish();
    out.metric = ro.metric;
  }
  write_search_outputs(r, j.output, out.metric);
  for (int64_t i = 0; i < std::min<int64_t>(j.finalists, static_cast<int64_t>(r.feasible.size())); ++i) {
    const CandidateResult& c = r.feasible[i];
    const std::string dir = fmt::format("{}/finalist-{}", j.output, i + 1);
    const PruningPlan plan = make_plan(*imp, candidate_target(c, lm));
    // A resumed search keeps a finalist written before (a complete folder: AtomicDir) when it is
    // this candidate's; anything else is refused rather than mixed.
    if (j.resume && std::filesystem::exists(dir + "/config.json")) {
      if (config_to_json(load_config(dir)) != config_to_json(plan_config(model->config, plan)))
        fail_input("{}: holds another shape than candidate {} of this search; resume with the same settings or use a "
                   "new --output", dir, c.candidate.key());
    } else {
      SaveOptions so;
      so.companions_from = j.model;
      save_model(apply_plan(*model, plan), dir, so);
      if (note) note(fmt::format("wrote {} ({})", dir, c.candidate.key()));
    }
    auto mv = c.metrics.find(out.metric);
    out.finalists.push_back({dir, c.candidate.key(), i + 1, mv == c.metrics.end() ? 0.0 : mv->second});
  }
  if (note) note(fmt::format("wrote {0}/candidates.json, {0}/candidates.csv, {0}/pareto.svg, {0}/best.shape.json", j.output));
  if (j.distill_tokens > 0) {
    model.reset();  // the finalists' runs load what they need
    distill_and_rerank(j, out, note);
  }
  return out;
}

}  // namespace mp
