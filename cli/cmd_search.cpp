// minipuzzle search: candidates that fit a deployment budget, ranked, with the trade-offs laid out.
#include "cli/commands.h"
#include "common/error.h"
#include "model/config.h"
#include "search/report.h"
#include "search/search.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <iostream>
#include <memory>

namespace mp::cli {
namespace {

struct SearchArgs {
  std::string model, config, budget, output = "search-out";
  std::string mamba_layers, attention_layers, mlp_layers, ffn_grid, hidden_grid, attention_heads, mamba_heads,
      mamba_head_dim;
  double min_memory_gib = 0, max_memory_gib = -1, min_params = 0, max_params = 1e300;
  size_t show = 15;
};

void run_search_cmd(const SearchArgs& a) {
  if (a.model.empty() == a.config.empty()) fail_usage("search: give exactly one of --model DIR or --config CONFIG.json");
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
  SearchResult r = run_search(parent, budget, space, lim, {});
  const double parent_gib = to_gib(deployment_memory(parent, budget).total());
  std::cout << fmt::format("parent {} layers, {:.2f} B parameters, {:.2f} GiB under {} (limit {} GiB)\n",
                           parent.num_layers(), count_params(parent).total() / 1e9, parent_gib, budget.name,
                           lim.max_memory_gib > 0 ? lim.max_memory_gib : budget.memory_limit_gib);
  std::cout << fmt::format("{} candidates enumerated, {} fit, in {:.3f} s\n", r.enumerated, r.feasible.size(), r.seconds);
  if (r.feasible.empty())
    fail_input("no candidate fits: the smallest of the {} needs more than {} GiB under {}; widen the space or the budget",
               r.enumerated, lim.max_memory_gib > 0 ? lim.max_memory_gib : budget.memory_limit_gib, budget.name);
  write_search_outputs(r, a.output, "params");
  std::cout << search_table(r, a.show, "params");
  std::cout << fmt::format("wrote {0}/candidates.json, {0}/candidates.csv, {0}/pareto.svg, {0}/best.shape.json\n", a.output);
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
      ->capture_default_str();
  cmd->add_option("--max-memory-gib", a->max_memory_gib, "Override the budget's limit");
  cmd->add_option("--min-params", a->min_params, "Parameter range, in billions")->capture_default_str();
  cmd->add_option("--max-params", a->max_params, "Parameter range, in billions");
  cmd->add_option("--show", a->show, "Rows of the terminal table")->capture_default_str();
  cmd->callback([a] { run_search_cmd(*a); });
}

}  // namespace mp::cli
