// importance.json: everything `score` learns about a parent model, and what `prune` and `search`
// need from it. Versioned ("format": "minipuzzle-importance", "version": 1); carries the parent's
// config and a fingerprint of its weights (fingerprint.h), so an importance file is never applied
// to another model by mistake.
//
// Layout (higher score = more important everywhere, except `agreement`, where lower = more important):
//   settings      calibration settings (samples, seq_len, seed, aggregations, dtype, data)
//   hidden        {"aggregate": [d], "per_layer": {"i": [d], ...}}   mixer-input statistics
//   mlp           {"i": [F]}            per MLP layer
//   attention     {"i": [Hq]}           per attention layer (query heads)
//   mamba         {"i": {"heads": H, "head_dim": P, "scores": [H*P] (row-major head, channel)}}
//   layers        [{"index", "type", "mse_hidden", "mse_normed", "kl", "loss_delta", "agreement",
//                   "block_influence"}]
// Score vectors are float32 written in their shortest round-trip form, so reading back is exact.
#pragma once

#include "model/config.h"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace mp {

struct CalibrationScores;
struct LayerDropScores;

struct ScoreSettings {
  int64_t samples = 1024;        // windows for the width axes
  int64_t layer_samples = 128;   // windows for layer removal
  int64_t seq_len = 1024;
  uint64_t seed = 1234;
  std::string aggregate_seq = "mean", aggregate_batch = "l2";
  std::string dtype = "fp32", data;
  bool stream = false;
};

enum class LayerMetric { MseHidden, MseNormed, Kl, LossDelta, Agreement, BlockInfluence };
LayerMetric parse_layer_metric(const std::string& s);  // usage error listing the names
const char* layer_metric_name(LayerMetric m);          // "mse_hidden", ...

struct LayerImportanceRow {
  double mse_hidden = 0, mse_normed = 0, kl = 0, loss_delta = 0, agreement = 1, block_influence = 0;
  // The metric as an importance: larger = more important (agreement is negated).
  double importance(LayerMetric m) const;
};

struct Importance {
  ModelConfig parent;
  uint64_t fingerprint = 0;
  ScoreSettings settings;
  double full_loss = 0.0;                              // parent's LM loss on the layer windows
  std::vector<float> hidden;                           // [d]: sum over layers of mixer_input
  std::vector<std::vector<float>> hidden_per_layer;    // [layer][d]
  std::vector<std::vector<float>> mlp;                 // [layer][F]; empty for non-MLP layers
  std::vector<std::vector<float>> attention;           // [layer][Hq]
  std::vector<std::vector<float>> mamba;               // [layer][H*P], row-major (head, channel)
  std::vector<LayerImportanceRow> layers;              // one per layer
};

// Assembles the file's content from the two passes.
Importance make_importance(const ModelConfig& parent, uint64_t fingerprint, const ScoreSettings& s,
                           const CalibrationScores& cal, const LayerDropScores& drops);

nlohmann::json importance_to_json(const Importance& imp);
// Validates field by field (format, version, config, every vector's length against the config);
// bad input naming `source` and the field.
Importance importance_from_json(const nlohmann::json& j, const std::string& source);
void save_importance(const Importance& imp, const std::string& path);  // atomic

// The control experiment: the same file with every score replaced by a uniform random number
// (deterministic in `seed`), so that make_plan() keeps random indices and random layers of the
// same shape. Pruning by importance must beat this.
Importance randomized_importance(const Importance& imp, uint64_t seed);
Importance importance_from_json_text(const std::string& text, const std::string& source);
Importance load_importance(const std::string& path);
// How the file writes a weight fingerprint (fingerprint.h): "0x0123456789abcdef".
std::string fingerprint_hex(uint64_t f);

// Refuses (bad input) an importance file made for another model: config mismatch (names the
// first differing field) or weight fingerprint mismatch (names both fingerprints).
void check_importance_matches(const Importance& imp, const ModelConfig& model, uint64_t model_fingerprint,
                              const std::string& importance_path, const std::string& model_path);

}  // namespace mp
