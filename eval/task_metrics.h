// Per-document metrics and their aggregation, as the harness defines them (lm_eval/api/task.py
// process_results, lm_eval/api/metrics.py):
//   acc              multiple choice: argmax_i ll_i == gold;   loglikelihood: greedy match
//   acc_norm         argmax_i ll_i / len(choice_i) == gold, len in characters (code points)
//   perplexity       exp(-mean over documents of ll)                  (loglikelihood)
//   word_perplexity  exp(-sum ll / sum words), words = len(re.split(r"\s+", text))
//   byte_perplexity  exp(-sum ll / sum bytes), bytes of the text in UTF-8
//   bits_per_byte    -sum ll / sum bytes / ln 2
// ll is a natural-log likelihood; argmax takes the first of equal values (numpy's rule).
// Standard errors: acc and acc_norm as the harness, the sample standard deviation of the 0/1
// values over sqrt(n). For perplexity the harness bootstraps (100000 resamples, Python's random);
// here every perplexity-type metric (the harness reports none for the three weighted ones) gets
// a bootstrap estimate: resample the documents with replacement `iters` times (a seeded 64-bit
// Mersenne Twister), recompute the metric, take the sample standard deviation of the replicates.
// None for a single document.
#pragma once

#include "eval/task_requests.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mp::eval {

struct DocOutcome {
  std::vector<double> loglikelihoods;  // one per request (rolling: summed over its windows)
  std::vector<bool> greedy;
  int64_t pred = -1, pred_norm = -1;   // multiple choice
  int64_t words = 0, bytes = 0;        // rolling
  std::map<std::string, double> values;  // per-document metric items: acc, acc_norm (0/1), ll
};

struct MetricResult {
  std::string name;
  double value = 0;
  std::optional<double> stderr_value;
  std::string stderr_method;  // "mean" or "bootstrap"
  bool higher_is_better = true;
};

DocOutcome doc_outcome(const TaskSpec& spec, const DocRequests& doc, std::vector<double> lls, std::vector<bool> greedy);

std::vector<MetricResult> aggregate_metrics(const TaskSpec& spec, const std::vector<DocOutcome>& docs,
                                            int64_t bootstrap_iters, uint64_t seed);

// The metric's value over a subset (with repetition) of documents given by index.
double metric_value(const std::string& metric, const std::vector<DocOutcome>& docs, const std::vector<int64_t>& idx);
bool metric_higher_is_better(const std::string& metric);

}  // namespace mp::eval
