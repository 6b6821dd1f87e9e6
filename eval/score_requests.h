// Log-likelihood requests scored on a model: for each (context, continuation) of token ids, the
// sum of log p(continuation token | everything before it) and whether greedy decoding would have
// produced the continuation (every continuation token is its position's argmax), as the harness's
// _loglikelihood_tokens returns them.
//
// Two ways to the same numbers:
//   - separately (the harness's way): every request is one sequence context + continuation[:-1];
//     requests are sorted longest first and run in right-padded batches (padding never changes
//     earlier positions of a causal model) of at most batch_tokens tokens;
//   - reusing contexts (the default): requests that share a context (the choices of one question)
//     run it once: prefill keeps every layer's state (Mamba conv and SSM state, attention keys and
//     values, model/decode.h), its last logits score each continuation's first token, the state
//     is handed to one row per continuation (gather_cache_rows) and the continuations' remaining
//     tokens run as one batch from there (extend). Contexts of equal length are prefilled
//     together. A request whose context nobody shares is scored separately.
// Both give the same log-likelihoods to floating-point rounding (tests/test_eval_scoring.cpp).
#pragma once

#include "eval/request_tokens.h"
#include "model/model.h"

#include <cstdint>
#include <functional>
#include <vector>

namespace mp::eval {

struct TokenScore {
  double logprob = 0.0;  // natural log
  bool greedy = false;
};

struct ScoreOptions {
  int64_t batch_tokens = 4096;  // tokens per forward pass (at least one sequence)
  bool reuse_context = true;
};

struct ScoreStats {
  int64_t model_tokens = 0;     // tokens run through the model (prefill + extend + separate)
  int64_t shared_contexts = 0;  // contexts prefilled once for several continuations
};

// Scores in request order. `on_done(n)` reports n more requests scored. Bad input for a request
// with an empty context or continuation, or an id outside the model's vocabulary.
std::vector<TokenScore> score_requests(const Model& m, const std::vector<TokenRequest>& requests,
                                       const ScoreOptions& options, const std::function<void(int64_t)>& on_done = {},
                                       ScoreStats* stats = nullptr);

}  // namespace mp::eval
