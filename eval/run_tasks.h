// eval-tasks end to end: tasks resolved, documents rendered into requests and tokenized (every
// input checked before the model runs), requests scored, metrics aggregated; the results document
// and per-sample records as JSON.
#pragma once

#include "eval/prepare_task.h"
#include "eval/request_tokens.h"
#include "eval/score_requests.h"
#include "eval/task_metrics.h"
#include "eval/task_requests.h"
#include "model/model.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mp::eval {

// The text encoder for a checkpoint: `tokenizer` (a file or folder) if given, else the
// checkpoint's tokenizer.json, else UTF-8 bytes. Bad input when the tokenizer can produce ids the
// model's vocabulary lacks, when bytes need a vocabulary of 256 that the model does not have, or
// when the prefix token is outside the vocabulary.
TextEncoder encoder_for_model(const std::string& model_dir, int64_t vocab_size, const std::string& tokenizer,
                              std::optional<int64_t> prefix_token);
// --max-length default: config.json's max_position_embeddings, else 4096.
int64_t default_max_length(const std::string& model_dir);

struct TaskOutcome {
  std::vector<DocOutcome> docs;
  std::vector<MetricResult> metrics;
  ScoreStats stats;
  double seconds = 0;
};

struct EvaluateOptions {
  ScoreOptions score;
  int64_t bootstrap_iters = 100000;
  uint64_t seed = 1234;
};

TaskOutcome evaluate_task(const Model& m, const PreparedTask& task, const EvaluateOptions& options,
                          const std::function<void(int64_t)>& on_requests = {});

// {"task", "num_fewshot", "documents", "metrics": {NAME: {"value", "stderr", "stderr_method"}}, ...}
nlohmann::json task_result_json(const PreparedTask& task, const TaskOutcome& outcome);
// One record per document: its requests (strings, token ids), log-likelihoods, choice, metrics.
std::vector<nlohmann::json> sample_records(const PreparedTask& task, const TaskOutcome& outcome);

}  // namespace mp::eval
