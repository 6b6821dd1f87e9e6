#include "search/rank.h"

#include "common/error.h"
#include "model/forward.h"
#include "prune/apply.h"
#include "prune/plan.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <numeric>

namespace mp {

bool metric_higher_is_better(const std::string& m) {
  return m == "accuracy" || m == "agreement" || m.rfind("task_", 0) == 0;
}

std::vector<int64_t> layer_ranking(const Importance& imp, LayerMetric metric) {
  std::vector<int64_t> order(imp.layers.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return imp.layers[a].importance(metric) > imp.layers[b].importance(metric);
  });
  return order;
}

PruneTarget candidate_target(const CandidateResult& c, LayerMetric layer_metric) {
  PruneTarget t;
  t.hidden_size = c.candidate.hidden;
  t.intermediate_size = c.candidate.ffn;
  t.num_attention_heads = c.candidate.attention_heads;
  t.mamba_num_heads = c.candidate.mamba_heads;
  t.mamba_head_dim = c.candidate.mamba_head_dim;
  t.keep_layers = c.kept_layers;
  t.layer_metric = layer_metric;
  return t;
}

namespace {

// Final normed hidden states [N * L, d] of a model on the inputs of `windows`.
at::Tensor normed_hidden(const Model& m, const at::Tensor& windows, int64_t micro_batch) {
  const int64_t N = windows.size(0), L = windows.size(1) - 1;
  std::vector<at::Tensor> parts;
  for (int64_t i = 0; i < N; i += micro_batch) {
    const int64_t b = std::min(micro_batch, N - i);
    at::Tensor ids = windows.narrow(0, i, b).narrow(1, 0, L).to(m.device());
    parts.push_back(apply_final_norm(m, forward_hidden(m, ids)).reshape({b * L, -1}));
  }
  return at::cat(parts, 0);
}

std::map<std::string, double> compare(const Model& parent, const at::Tensor& parent_h, const Model& child,
                                      const at::Tensor& child_h, const at::Tensor& targets) {
  const int64_t T = targets.size(0), slice = 2048;
  double kl = 0, nll = 0;
  int64_t correct = 0, agree = 0;
  for (int64_t t0 = 0; t0 < T; t0 += slice) {
    const int64_t n = std::min(slice, T - t0);
    at::Tensor lp = at::log_softmax(lm_head_logits(parent, parent_h.narrow(0, t0, n)), -1);
    at::Tensor lc = at::log_softmax(lm_head_logits(child, child_h.narrow(0, t0, n)), -1);
    at::Tensor tgt = targets.narrow(0, t0, n);
    kl += (lp.exp() * (lp - lc)).sum().item<double>();
    nll -= lc.gather(1, tgt.unsqueeze(1)).sum().item<double>();
    at::Tensor arg = lc.argmax(-1);
    correct += (arg == tgt).sum().item<int64_t>();
    agree += (arg == lp.argmax(-1)).sum().item<int64_t>();
  }
  const double dT = static_cast<double>(T);
  return {{"kl", kl / dT}, {"loss", nll / dT}, {"accuracy", correct / dT}, {"agreement", agree / dT}};
}

}  // namespace

void rank_candidates(SearchResult& r, const Model& parent, const Importance& imp, const at::Tensor& windows,
                     const RankOptions& opt, const std::function<void(int64_t, int64_t)>& on_candidate) {
  const bool builtin = opt.metric == "kl" || opt.metric == "loss" || opt.metric == "accuracy" || opt.metric == "agreement";
  if (!builtin && !opt.extra_metrics)
    fail_usage("--rank-by '{}': expected kl, loss, accuracy, agreement or task:FILE", opt.metric);
  at::NoGradGuard no_grad;
  const int64_t L = windows.size(1) - 1;
  at::Tensor targets = windows.narrow(1, 1, L).reshape({-1}).to(parent.device());
  at::Tensor parent_h = normed_hidden(parent, windows, opt.micro_batch);
  r.parent_metrics = compare(parent, parent_h, parent, parent_h, targets);
  if (opt.extra_metrics)
    for (const auto& [k, v] : opt.extra_metrics(parent)) r.parent_metrics[k] = v;
  if (!r.parent_metrics.count(opt.metric))
    fail_usage("--rank-by '{}': not a metric of this ranking; expected kl, loss, accuracy, agreement or task:FILE",
               opt.metric);
  const int64_t n = std::min<int64_t>(opt.top_k, static_cast<int64_t>(r.feasible.size()));
  for (int64_t i = 0; i < n; ++i) {
    CandidateResult& c = r.feasible[i];
    Model child = apply_plan(parent, make_plan(imp, candidate_target(c, opt.layer_metric)));
    c.metrics = compare(parent, parent_h, child, normed_hidden(child, windows, opt.micro_batch), targets);
    if (opt.extra_metrics)
      for (const auto& [k, v] : opt.extra_metrics(child)) c.metrics[k] = v;
    if (on_candidate) on_candidate(i + 1, n);
  }
  const bool higher = metric_higher_is_better(opt.metric);
  std::stable_sort(r.feasible.begin(), r.feasible.begin() + n, [&](const CandidateResult& a, const CandidateResult& b) {
    double x = a.metrics.at(opt.metric), y = b.metrics.at(opt.metric);
    return higher ? x > y : x < y;
  });
}

}  // namespace mp
