// Ranking candidates against the parent on held-out tokens (docs/method.md): each candidate is
// built in memory by slicing the parent with the importance-driven plan (the same apply_plan that
// `minipuzzle prune` uses; no checkpoint is written) and compared with the parent on the same
// windows by next-token accuracy, agreement with the parent's argmax, KL(parent || candidate)
// and LM loss. The parent's final hidden states are computed once; logits are formed a token
// slice at a time so the vocabulary never needs [tokens x V] memory.
#pragma once

#include "model/model.h"
#include "prune/importance.h"
#include "prune/plan.h"
#include "search/search.h"

#include <ATen/core/Tensor.h>

#include <functional>
#include <map>
#include <string>

namespace mp {

struct RankOptions {
  int64_t top_k = 20;          // candidates evaluated, taken in the current (parameter) order
  int64_t micro_batch = 4;
  std::string metric = "kl";   // kl | loss (lower is better), accuracy | agreement (higher)
  LayerMetric layer_metric = LayerMetric::MseNormed;
  // More metrics of a model (the parent and each candidate), merged into its metrics; `metric`
  // may name one of them (e.g. a benchmark task's accuracy, cli/cmd_search.cpp). Their names
  // start with "task_" and are higher-is-better.
  std::function<std::map<std::string, double>(const Model&)> extra_metrics;
};

// Parent layer indices ordered most important first by the chosen layer metric.
std::vector<int64_t> layer_ranking(const Importance& imp, LayerMetric metric);

// Evaluates the first top_k feasible candidates and reorders all of them: evaluated ones first,
// best first by `metric`; the rest keep their order. `on_candidate(i, n)` reports progress.
void rank_candidates(SearchResult& r, const Model& parent, const Importance& imp, const at::Tensor& windows,
                     const RankOptions& opt, const std::function<void(int64_t, int64_t)>& on_candidate = {});

bool metric_higher_is_better(const std::string& metric);

// The prune target that builds a candidate: its widths and exactly its kept layers.
PruneTarget candidate_target(const CandidateResult& c, LayerMetric layer_metric);

}  // namespace mp
