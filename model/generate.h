// Token generation on top of prefill / decode_step (decode.h): greedy at temperature 0, else
// sampling from softmax(logits / temperature) with a seeded CPU generator (same seed, same tokens).
// Times prefill and decode separately, the figures search's speed predictions are checked against.
// Invariant: generated token j of a sequence is chosen from the logits after prompt + tokens < j.
#pragma once

#include "model/model.h"

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace mp {

struct GenerateOptions {
  int64_t max_new_tokens = 16;  // >= 1
  double temperature = 0.0;     // 0: greedy (argmax); > 0: sample
  uint64_t seed = 0;            // sampling only
};

struct GenerateResult {
  at::Tensor tokens_BN;             // generated ids, int64 on the CPU [B, max_new_tokens]
  int64_t prefill_tokens = 0;       // B x prompt length
  int64_t decode_tokens = 0;        // B x decode steps (max_new_tokens - 1: the first new token
                                    // comes from the prefill's logits, the last is not fed back)
  double prefill_seconds = 0, decode_seconds = 0;
  double prefill_tokens_per_second() const { return prefill_tokens / (prefill_seconds > 0 ? prefill_seconds : 1e-12); }
  double decode_tokens_per_second() const { return decode_tokens / (decode_seconds > 0 ? decode_seconds : 1e-12); }
};

// prompt_BL: int64 ids. Bad input for ids outside the vocabulary, max_new_tokens < 1 or a
// negative temperature.
GenerateResult generate(const Model& m, const at::Tensor& prompt_BL, const GenerateOptions& opt);

}  // namespace mp
