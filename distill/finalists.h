// Short distillation of a search's finalists, as MiniPuzzle's search ends: the best candidates of
// the zero-shot ranking are each distilled from the parent for the same number of tokens with the
// same recipe, evaluated on the same held-out windows, and ranked again by that loss. The two
// rankings, their Spearman rank correlation and a plot are written beside the search's outputs.
//
// Each finalist's run lives in FINALIST-distill/ (a normal `distill` run folder), so a search that
// is killed resumes: finished runs (summary.json says finished) are read back, unfinished ones
// continue from their last checkpoint (bit-exact, as `distill --resume`), the rest start.
#pragma once

#include "distill/train_config.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace mp {

struct Finalist {
  std::string dir;          // the pruned checkpoint
  std::string key;          // the candidate's shape key
  int64_t zero_shot_rank = 0;    // 1-based place in the search's ranking
  double zero_shot_metric = 0;   // the search's ranking metric (kl, loss, ...)
};

struct FinalistDistillOptions {
  TrainConfig recipe;       // loss, lr, batch, seq_len, device, dtype, ...: the same for every finalist
  std::string teacher;      // the parent checkpoint
  std::string data;         // distillation token data
  std::string eval_data;    // held-out token data (the search's ranking data)
  int64_t tokens = 0;       // distillation tokens per finalist
  int64_t eval_seq_len = 512, eval_windows = 32, eval_micro_batch = 4;
  uint64_t seed = 4321;
};

struct FinalistResult {
  Finalist finalist;
  double loss_before = 0, loss_after = 0;  // held-out LM loss (nats/token) of the pruned / distilled model
  int64_t rank_after = 0;                  // 1-based, by loss_after
  int64_t steps = 0, tokens = 0;
  double seconds = 0;
  std::string run_dir;
};

// Distills every finalist in turn (resuming what a killed search left), evaluates and re-ranks.
// `on_finalist(i, n)` is called after each. Bad input from the trainer propagates.
std::vector<FinalistResult> distill_finalists(const std::vector<Finalist>& finalists, const FinalistDistillOptions& o,
                                              const std::function<void(size_t, size_t)>& on_finalist = {});

// Spearman's rank correlation of two rankings of the same items (1-based ranks, no ties): 1 when
// they agree, -1 when reversed; 1 for fewer than two items.
double spearman_rank_correlation(const std::vector<int64_t>& a, const std::vector<int64_t>& b);

// OUTPUT/finalists.json, finalists.csv and finalists.svg (held-out loss before and after
// distillation by zero-shot rank); returns the JSON document. `metric` names the zero-shot one.
nlohmann::json write_finalists_report(const std::vector<FinalistResult>& results, const std::string& output,
                                      const std::string& metric, const FinalistDistillOptions& o);

}  // namespace mp
