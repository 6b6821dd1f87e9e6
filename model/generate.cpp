// The generation loop: prefill the prompt, pick a token, feed it back for max_new_tokens - 1
// decode steps. Choosing a token brings its id to the CPU, so each timing ends after the device
// finished the step (no separate synchronisation needed).
#include "model/generate.h"

#include "common/error.h"
#include "model/decode.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include <chrono>

namespace mp {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// logits [B, V] float32 on the model's device -> ids [B] int64 on the CPU.
at::Tensor pick(const at::Tensor& logits, const GenerateOptions& opt, at::Generator& gen) {
  if (opt.temperature == 0.0) return logits.argmax(-1).cpu();
  at::Tensor probs = at::softmax(logits.cpu().to(at::kDouble) / opt.temperature, -1);
  return at::multinomial(probs, 1, /*replacement=*/false, gen).squeeze(1);
}

}  // namespace

GenerateResult generate(const Model& m, const at::Tensor& prompt_BL, const GenerateOptions& opt) {
  if (opt.max_new_tokens < 1) fail_input("generate: max_new_tokens must be at least 1, got {}", opt.max_new_tokens);
  if (!(opt.temperature >= 0.0)) fail_input("generate: temperature must be >= 0, got {}", opt.temperature);
  if (prompt_BL.dim() != 2) fail_input("generate: prompt ids: expected shape [batch, length], got {} dimensions", prompt_BL.dim());
  at::NoGradGuard no_grad;
  const int64_t B = prompt_BL.size(0), L = prompt_BL.size(1);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(opt.seed);
  InferenceCache cache(m, B, L + opt.max_new_tokens);
  GenerateResult r;
  r.tokens_BN = at::empty({B, opt.max_new_tokens}, at::kLong);

  Clock::time_point t0 = Clock::now();
  at::Tensor next = pick(prefill(m, prompt_BL, cache), opt, gen);
  r.prefill_seconds = seconds_since(t0);
  r.prefill_tokens = B * L;
  r.tokens_BN.select(1, 0).copy_(next);

  t0 = Clock::now();
  for (int64_t j = 1; j < opt.max_new_tokens; ++j) {
    next = pick(decode_step(m, cache, next), opt, gen);
    r.tokens_BN.select(1, j).copy_(next);
  }
  r.decode_seconds = seconds_since(t0);
  r.decode_tokens = B * (opt.max_new_tokens - 1);
  return r;
}

}  // namespace mp
