#include "prune/layer_importance.h"

#include "model/forward.h"
#include "model/weights.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>

namespace mp {
namespace {

// Float64 sums on the device; read back once at the end.
struct Sums {
  at::Tensor mse_hidden, mse_normed, kl, nll, agree;
  explicit Sums(at::Device dev) {
    auto o = at::TensorOptions().dtype(at::kDouble).device(dev);
    mse_hidden = at::zeros({}, o);
    mse_normed = at::zeros({}, o);
    kl = at::zeros({}, o);
    nll = at::zeros({}, o);
    agree = at::zeros({}, o);
  }
};

}  // namespace

LayerDropScores layer_importance(LayerSource& src, const at::Tensor& windows, const LayerImportanceOptions& opt) {
  at::NoGradGuard no_grad;
  const ModelConfig& c = src.config();
  const int64_t n = c.num_layers();
  const int64_t N = windows.size(0), L = windows.size(1) - 1;
  const int64_t mb = std::max<int64_t>(1, opt.micro_batch);
  const int64_t per_pass = std::max(mb, opt.windows_per_pass);
  const at::Device dev = src.device();
  std::vector<Sums> drop;  // one set of accumulators per layer (not copies of one: tensors share storage)
  for (int64_t i = 0; i < n; ++i) drop.emplace_back(dev);
  Sums full_sums(dev);

  for (int64_t p0 = 0; p0 < N; p0 += per_pass) {
    const int64_t pn = std::min(per_pass, N - p0);
    std::vector<at::Tensor> full, targets;
    for (int64_t b0 = p0; b0 < p0 + pn; b0 += mb) {
      at::Tensor w = windows.narrow(0, b0, std::min(mb, p0 + pn - b0));
      check_token_ids(w, c.vocab_size, "layer-importance window");
      w = w.to(dev, at::kLong);
      full.push_back(at::embedding(src.ends().w(kEmbeddingName), w.narrow(1, 0, L)));
      targets.push_back(w.narrow(1, 1, L).reshape({-1}));
    }
    const size_t nb = full.size();
    // dropped[i][b]: micro-batch b's stream with layer i skipped (defined once layer i is reached).
    std::vector<std::vector<at::Tensor>> dropped(n, std::vector<at::Tensor>(nb));
    for (int64_t j = 0; j < n; ++j) {
      const Model& m = src.layer(j);
      for (size_t b = 0; b < nb; ++b) {
        for (int64_t i = 0; i < j; ++i) dropped[i][b] = block_forward(m, j, dropped[i][b]);
        dropped[j][b] = full[b];  // skipping j: its input passes through unchanged
        full[b] = block_forward(m, j, full[b]);
      }
    }
    // Compare every dropped stream with the full one, a token slice at a time: neither logits nor
    // normed copies of all the dropped streams exist at once.
    const Model& e = src.ends();
    for (size_t b = 0; b < nb; ++b) {
      const int64_t d = full[b].size(-1);
      at::Tensor hf = full[b].reshape({-1, d});
      at::Tensor nf = apply_final_norm(e, hf);
      const int64_t T = hf.size(0);
      for (int64_t i = 0; i < n; ++i)
        drop[i].mse_hidden += (dropped[i][b].reshape({-1, d}).to(at::kFloat) - hf.to(at::kFloat)).pow(2).sum().to(at::kDouble);
      // Several [slice, V] fp32 tensors are alive at once (log-probs of both models, p, the KL
      // term): cap a slice at 16M logits (64 MB each), 128 tokens at Nemotron-H's 131072 vocab.
      const int64_t V = e.config.vocab_size;
      const int64_t slice = std::max<int64_t>(1, std::min<int64_t>(opt.slice_tokens, (int64_t{16} << 20) / V));
      for (int64_t t0 = 0; t0 < T; t0 += slice) {
        const int64_t tn = std::min(slice, T - t0);
        at::Tensor tgt = targets[b].narrow(0, t0, tn).unsqueeze(1);
        at::Tensor nfs = nf.narrow(0, t0, tn);
        at::Tensor lpf = at::log_softmax(lm_head_logits(e, nfs), -1);  // fp32 [tn, V]
        at::Tensor pf = lpf.exp();
        at::Tensor argf = lpf.argmax(-1);
        full_sums.nll -= lpf.gather(1, tgt).to(at::kDouble).sum();
        for (int64_t i = 0; i < n; ++i) {
          at::Tensor nds = apply_final_norm(e, dropped[i][b].reshape({-1, d}).narrow(0, t0, tn));
          drop[i].mse_normed += (nds.to(at::kFloat) - nfs.to(at::kFloat)).pow(2).sum().to(at::kDouble);
          at::Tensor lpd = at::log_softmax(lm_head_logits(e, nds), -1);
          // KL(full || drop) = sum_v p_f (log p_f - log p_d), summed over tokens.
          drop[i].kl += (pf * (lpf - lpd)).sum().to(at::kDouble);
          drop[i].nll -= lpd.gather(1, tgt).to(at::kDouble).sum();
          drop[i].agree += (lpd.argmax(-1) == argf).sum().to(at::kDouble);
        }
      }
      for (int64_t i = 0; i < n; ++i) dropped[i][b] = at::Tensor();  // free as we go
    }
    if (opt.on_windows) opt.on_windows(pn);
  }

  LayerDropScores out;
  out.windows = N;
  out.tokens = N * L;
  const double tokens = static_cast<double>(N * L);
  const double elems = tokens * static_cast<double>(c.hidden_size);
  out.full_loss = full_sums.nll.item<double>() / tokens;
  for (int64_t i = 0; i < n; ++i) {
    out.mse_hidden.push_back(drop[i].mse_hidden.item<double>() / elems);
    out.mse_normed.push_back(drop[i].mse_normed.item<double>() / elems);
    out.kl.push_back(drop[i].kl.item<double>() / tokens);
    out.loss_delta.push_back(drop[i].nll.item<double>() / tokens - out.full_loss);
    out.agreement.push_back(drop[i].agree.item<double>() / tokens);
  }
  return out;
}

}  // namespace mp
