#include "search/search.h"

#include "common/error.h"

#include <algorithm>
#include <chrono>

namespace mp {

SearchResult run_search(const ModelConfig& parent, const Budget& budget, const SearchSpace& space,
                        const SearchConstraints& limits, const std::vector<int64_t>& ranking,
                        const std::optional<SpeedPrediction>& speed) {
  auto t0 = std::chrono::steady_clock::now();
  SearchResult r;
  r.parent = parent;
  r.budget = budget;
  const double max_gib = limits.max_memory_gib > 0 ? limits.max_memory_gib : budget.memory_limit_gib;
  if (limits.min_speedup > 0 && !speed)
    fail_usage("a minimum speed-up needs a throughput model (--throughput-model FILE, see docs/search.md)");
  r.speed = speed;
  if (speed) r.parent_speed = speed->model.estimate(parent, speed->workload);
  std::vector<Candidate> all = enumerate(space, parent);
  r.enumerated = static_cast<int64_t>(all.size());
  for (const Candidate& c : all) {
    CandidateResult cr;
    cr.candidate = c;
    cr.kept_layers = choose_layers(parent, c, ranking);
    cr.config = candidate_config(parent, c, cr.kept_layers);
    cr.params = count_params(cr.config).total();
    cr.memory = deployment_memory(cr.config, budget);
    const double g = to_gib(cr.memory.total());
    cr.feasible = g <= max_gib && g >= limits.min_memory_gib && cr.params >= limits.min_params &&
                  cr.params <= limits.max_params;
    if (cr.feasible && speed) {
      cr.speed = speed->model.estimate(cr.config, speed->workload);
      cr.speedup = r.parent_speed->generation_s / cr.speed->generation_s;
      cr.feasible = cr.speedup >= limits.min_speedup;
    }
    if (cr.feasible) r.feasible.push_back(std::move(cr));
  }
  std::stable_sort(r.feasible.begin(), r.feasible.end(),
                   [](const CandidateResult& a, const CandidateResult& b) { return a.params > b.params; });
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace mp
