#include "prune/prune_job.h"

#include "common/error.h"
#include "common/output_guard.h"
#include "model/accounting.h"
#include "model/checkpoint_io.h"
#include "model/model.h"
#include "prune/apply.h"
#include "prune/fingerprint.h"

namespace mp {

PruneTarget resolve_target(const TargetRequest& r) {
  PruneTarget t = r.shape_file.empty() ? PruneTarget{} : load_target(r.shape_file);
  for (auto [value, field] : {std::pair{r.hidden_size, &t.hidden_size}, {r.intermediate_size, &t.intermediate_size},
                              {r.num_attention_heads, &t.num_attention_heads}, {r.mamba_num_heads, &t.mamba_num_heads},
                              {r.mamba_head_dim, &t.mamba_head_dim}})
    if (value) *field = value;
  if (!r.keep_layers.empty() && !r.drop_layers.empty()) fail_usage("give --keep-layers or --drop-layers, not both");
  // Layers given here replace whatever layer choice the shape file made.
  if (!r.keep_layers.empty() || !r.drop_layers.empty()) {
    t.keep_layers.reset();
    t.drop_layers.reset();
    t.keep_counts.reset();
  }
  if (!r.drop_layers.empty()) t.drop_layers = parse_index_list(r.drop_layers, "--drop-layers");
  if (!r.keep_layers.empty()) {
    if (r.keep_layers.find('=') != std::string::npos)
      t.keep_counts = parse_layer_counts(r.keep_layers, "--keep-layers");
    else
      t.keep_layers = parse_index_list(r.keep_layers, "--keep-layers");
  }
  if (!r.layer_metric.empty()) t.layer_metric = parse_layer_metric(r.layer_metric);
  return t;
}

PruneOutcome run_prune_job(const PruneJob& job) {
  const bool write = !job.output.empty();
  if (write) guard_output({"--output", job.output, OutputKind::Folder}, {job.model, job.importance, job.shape_file},
                              job.overwrite);
  const Importance imp = load_importance(job.importance);
  const ModelConfig parent = load_config(job.model);
  // Same shape first (cheap, and names the differing field); the weights' fingerprint below.
  check_importance_matches(imp, parent, imp.fingerprint, job.importance, job.model);
  const PruningPlan plan =
      make_plan(job.random_indices_seed ? randomized_importance(imp, *job.random_indices_seed) : imp, job.target);
  PruneOutcome out;
  out.parent = parent;
  out.child = plan_config(parent, plan);
  out.parent_params = count_params(parent).total();
  out.child_params = count_params(out.child).total();
  out.layer_metric = job.target.layer_metric;
  for (int64_t i = 0, k = 0; i < parent.num_layers(); ++i) {
    if (k < static_cast<int64_t>(plan.kept_layers.size()) && plan.kept_layers[k] == i)
      ++k;
    else
      out.dropped_layers.push_back(i);
  }
  if (!write) return out;
  Model m = load_model(job.model);
  check_importance_matches(imp, m.config, model_fingerprint(m.weights), job.importance, job.model);
  SaveOptions so;
  so.max_shard_bytes = job.max_shard_bytes;
  so.dtype = job.dtype;
  so.companions_from = job.model;
  save_model(apply_plan_consuming(std::move(m), plan), job.output, so);
  return out;
}

}  // namespace mp
