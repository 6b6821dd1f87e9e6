// A pruning plan: which layers stay and, per axis, which indices stay. Kept indices are sorted
// ascending (the parent's order is preserved). The MiniPuzzle shape is homogeneous: every MLP
// keeps the same number of neurons, every attention layer the same number of query heads per kv
// group (all kv heads stay), every Mamba layer the same number of heads per group and the same
// head channels for all its heads; hidden (embedding) channels are shared by the whole model.
//
// make_plan() ranks with an Importance (docs/method.md):
//   hidden      aggregate mixer-input score, top d'
//   MLP         per layer, that layer's neuron scores, top F'
//   attention   per layer, query heads ranked inside their kv group, top Hq'/Hkv per group
//   Mamba       per layer: channel score c_p = L2 over heads of s[h, p]; top P' channels; head
//               score = L2 over the kept channels; heads ranked inside their group, top H'/G each
//   layers      explicit keep / drop lists, or the most important n of each type by a layer metric
// Ties go to the lower index. Refusals (bad input): a target above the parent's size, Mamba heads
// not a multiple of n_groups, query heads not a multiple of kv heads, more layers than exist,
// unknown layer indices.
#pragma once

#include "model/config.h"
#include "prune/importance.h"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mp {

struct PruningPlan {
  std::vector<int64_t> kept_layers;                  // parent layer indices, ascending
  std::vector<int64_t> hidden;                       // kept embedding channels
  std::vector<std::vector<int64_t>> mlp;             // [parent layer] kept neurons (MLP layers)
  std::vector<std::vector<int64_t>> attention;       // [parent layer] kept query heads
  std::vector<std::vector<int64_t>> mamba_heads;     // [parent layer] kept heads
  std::vector<std::vector<int64_t>> mamba_channels;  // [parent layer] kept head channels
};

// Keeps everything.
PruningPlan identity_plan(const ModelConfig& parent);
// The child's config; validates the plan against the parent (sorted, unique, in range,
// homogeneous counts, equal heads per group) with a bad-input message naming the axis and layer.
ModelConfig plan_config(const ModelConfig& parent, const PruningPlan& plan);

// The target shape. Unset widths keep the parent's.
struct PruneTarget {
  std::optional<int64_t> hidden_size, intermediate_size, num_attention_heads, mamba_num_heads, mamba_head_dim;
  std::optional<std::vector<int64_t>> keep_layers, drop_layers;  // at most one of these
  std::optional<std::map<LayerType, int64_t>> keep_counts;       // or counts per type
  // Default: MSE of the LM head's input (after norm_f): "the activation right before the LM
  // head" taken literally, and free of the residual stream's scale growth with depth.
  LayerMetric layer_metric = LayerMetric::MseNormed;
};

// Shape file (JSON object): hidden_size, intermediate_size, num_attention_heads, mamba_num_heads,
// mamba_head_dim (all optional) and at most one of "kept_layers" [..], "drop_layers" [..],
// "layers" {"mamba": n, "attention": n, "mlp": n}; optional "layer_metric". "name", "comment" and
// "metadata" are ignored; any other key is refused.
PruneTarget target_from_json(const nlohmann::json& j, const std::string& source);
PruneTarget target_from_json_text(const std::string& text, const std::string& source);
PruneTarget load_target(const std::string& path);
// "mamba=45,attention=5,mlp=48" -> counts; "3,7,9" -> indices. Usage error naming `flag`.
std::map<LayerType, int64_t> parse_layer_counts(const std::string& text, const std::string& flag);
std::vector<int64_t> parse_index_list(const std::string& text, const std::string& flag);

PruningPlan make_plan(const Importance& imp, const PruneTarget& target);

}  // namespace mp
