#include "model/lm_eval.h"

#include "model/forward.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>

namespace mp {

LmStats lm_stats_from_hidden(const Model& m, const at::Tensor& normed, const at::Tensor& targets,
                             int64_t slice_tokens) {
  LmStats s;
  const int64_t T = normed.size(0);
  at::Tensor loss_sum = at::zeros({}, normed.options().dtype(at::kDouble));
  at::Tensor correct = at::zeros({}, normed.options().dtype(at::kLong));
  for (int64_t t0 = 0; t0 < T; t0 += slice_tokens) {
    const int64_t n = std::min(slice_tokens, T - t0);
    at::Tensor logits = lm_head_logits(m, normed.narrow(0, t0, n));  // fp32 [n, V]
    at::Tensor tgt = targets.narrow(0, t0, n).unsqueeze(1);
    at::Tensor nll = at::logsumexp(logits, -1) - logits.gather(1, tgt).squeeze(1);
    loss_sum += nll.to(at::kDouble).sum();
    correct += (logits.argmax(-1) == tgt.squeeze(1)).sum();
  }
  s.loss_sum = loss_sum.item<double>();
  s.correct = correct.item<int64_t>();
  s.tokens = T;
  return s;
}

LmStats lm_stats(const Model& m, const at::Tensor& windows, int64_t micro_batch,
                 const std::function<void(int64_t)>& on_batch) {
  at::NoGradGuard no_grad;
  LmStats total;
  const int64_t N = windows.size(0), L = windows.size(1) - 1;
  for (int64_t i = 0; i < N; i += micro_batch) {
    const int64_t b = std::min(micro_batch, N - i);
    at::Tensor w = windows.narrow(0, i, b).to(m.device());
    at::Tensor normed = apply_final_norm(m, forward_hidden(m, w.narrow(1, 0, L)));
    total.add(lm_stats_from_hidden(m, normed.reshape({b * L, -1}), w.narrow(1, 1, L).reshape({b * L})));
    if (on_batch) on_batch(b * L);
  }
  return total;
}

}  // namespace mp
