// Architecture search under a deployment budget: enumerate the space, cost every candidate
// (parameters, deployment memory), keep those that fit, order them. Ranking on held-out data
// against the parent plugs in through `score` (quality metrics per candidate).
#pragma once

#include "model/accounting.h"
#include "model/config.h"
#include "search/budget.h"
#include "search/cost_model.h"
#include "search/space.h"
#include "search/throughput.h"

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mp {

struct SearchConstraints {
  double max_memory_gib = -1;    // < 0: the budget's limit
  double min_memory_gib = 0;     // candidates that leave more than this unused are not worth ranking
  double min_params = 0, max_params = 1e300;
  double min_speedup = 0;  // predicted generation speed-up over the parent (needs a throughput model)
};

// Predicted generation speed on the card a throughput model was measured on.
struct SpeedPrediction {
  ThroughputModel model;
  Workload workload;
};

struct CandidateResult {
  Candidate candidate;
  std::vector<int64_t> kept_layers;  // parent indices
  ModelConfig config;
  int64_t params = 0;
  MemoryBreakdown memory;
  bool feasible = false;
  std::map<std::string, double> metrics;  // filled by ranking (accuracy, agreement, kl, loss)
  std::optional<GenerationEstimate> speed;  // with a throughput model
  double speedup = 0;                       // parent's generation time / this one's (0: no model)
};

struct SearchResult {
  ModelConfig parent;
  Budget budget;
  int64_t enumerated = 0;
  std::vector<CandidateResult> feasible;  // sorted: by rank metric if present, else params desc
  std::map<std::string, double> parent_metrics;  // the parent on the ranking windows (kl 0, agreement 1)
  std::optional<SpeedPrediction> speed;          // how speed was predicted, if it was
  std::optional<GenerationEstimate> parent_speed;
  double seconds = 0;
};

SearchResult run_search(const ModelConfig& parent, const Budget& budget, const SearchSpace& space,
                        const SearchConstraints& limits, const std::vector<int64_t>& layer_ranking,
                        const std::optional<SpeedPrediction>& speed = std::nullopt);

}  // namespace mp
