// A task ready for the model: its documents rendered into requests (task_requests.h) and every
// request in token form (request_tokens.h), so that every input is checked before weights load.
#pragma once

#include "eval/request_tokens.h"
#include "eval/task_requests.h"

#include <cstdint>
#include <utility>
#include <vector>

namespace mp::eval {

struct PreparedTask {
  TaskRequests requests;
  std::vector<TokenRequest> tokens;  // every request's token form; rolling documents have several
  // For document d, request r: tokens[span[d][r].first, span[d][r].second).
  std::vector<std::vector<std::pair<int64_t, int64_t>>> span;
};

// The task's files read, rendered and tokenized.
PreparedTask prepare_task(const TaskSpec& spec, const BuildOptions& build, const TextEncoder& enc, int64_t max_length);
// Rendered requests tokenized: rolling documents into windows of at most `max_length`, the others
// truncated from the left.
PreparedTask tokenize_requests(TaskRequests requests, const TextEncoder& enc, int64_t max_length);

}  // namespace mp::eval
