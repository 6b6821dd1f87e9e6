// One search job, as `minipuzzle search` runs it: the parent's shape (or checkpoint), a budget and
// a space in; every candidate costed, the feasible ones optionally ranked against the parent on
// held-out data (or a benchmark task), the outputs written (candidates.json/.csv, pareto.svg,
// best.shape.json), the best N pruned to OUTPUT/finalist-k and, optionally, distilled briefly and
// ranked again (finalists.json/.csv/.svg).
#pragma once

#include "distill/finalists.h"
#include "search/search.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace mp {

struct SearchJob {
  std::string model;   // parent checkpoint folder (needed for ranking), or
  std::string config;  // the parent's config.json (shape only)
  std::string budget;  // budget JSON; empty: Budget{}
  std::string output = "search-out";
  SearchSpace space;   // an empty list keeps that axis's default (default_space)
  SearchConstraints limits;
  // Predicted generation speed: with throughput_model, else configs/throughput/h200-bf16.json
  // when present.
  bool predict_speed = true;
  std::string throughput_model;
  int64_t prompt_tokens = 65536, output_tokens = 1024;
  // Ranking against the parent: model, importance and data together.
  std::string importance, data, device = "cpu", dtype = "fp32";
  std::string rank_by = "kl";  // kl, loss, accuracy, agreement, or task:FILE
  std::string layer_metric = "mse_normed";
  int64_t eval_tokens = 16384, seq_len = 512, top = 20, micro_batch = 4;
  uint64_t seed = 4321;
  int64_t finalists = 0;       // pruned checkpoints written, best first
  int64_t distill_tokens = 0;  // > 0: distill each finalist this long, then rank again
  std::string recipe, distill_data;  // distillation recipe and data (default: data)
  bool quiet = false, overwrite = false, resume = false;
};

struct SearchOutcome {
  SearchResult result;
  std::string metric;            // the ranking metric ("params" without ranking)
  std::string throughput_model;  // the file speed was predicted with (empty: none)
  double parent_gib = 0;         // the parent's deployment memory under the budget
  double memory_limit_gib = 0;   // the limit candidates were held to
  std::vector<Finalist> finalists;
  std::vector<FinalistResult> distilled;  // with distill_tokens
  nlohmann::json finalists_report;        // finalists.json's document, with distill_tokens
};

// Progress notes (one line each, no newline), e.g. "wrote OUTPUT/finalist-1 (KEY)".
using SearchNote = std::function<void(const std::string&)>;

// Usage errors name the flag; "no candidate fits" is bad input naming the limits.
SearchOutcome run_search_job(const SearchJob& job, const SearchNote& note = {});

}  // namespace mp
