#include "prune/calibration.h"

#include "common/error.h"
#include "model/forward.h"
#include "model/weights.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>

namespace mp {

SeqAgg parse_seq_agg(const std::string& s) {
  if (s == "mean") return SeqAgg::Mean;
  if (s == "l2") return SeqAgg::L2;
  if (s == "var") return SeqAgg::Var;
  fail_usage("--aggregate-seq {}: expected mean, l2 or var", s);
}
BatchAgg parse_batch_agg(const std::string& s) {
  if (s == "mean") return BatchAgg::Mean;
  if (s == "l2") return BatchAgg::L2;
  if (s == "var") return BatchAgg::Var;
  fail_usage("--aggregate-batch {}: expected mean, l2 or var", s);
}
const char* agg_name(SeqAgg a) { return a == SeqAgg::Mean ? "mean" : a == SeqAgg::L2 ? "l2" : "var"; }
const char* agg_name(BatchAgg a) { return a == BatchAgg::Mean ? "mean" : a == BatchAgg::L2 ? "l2" : "var"; }

at::Tensor reduce_sequence(const at::Tensor& a_BLX, SeqAgg agg) {
  // In float32 (a float64 copy of a [B, L, 32768] activation would cost gigabytes); the per-window
  // results, small, are carried in float64.
  at::Tensor a = a_BLX.to(at::kFloat), s;
  switch (agg) {
    case SeqAgg::Mean: s = a.abs().mean(1); break;
    case SeqAgg::L2: s = a.pow(2).sum(1).sqrt(); break;
    case SeqAgg::Var: s = (a - a.mean(1, /*keepdim=*/true)).pow(2).mean(1); break;
  }
  return s.to(at::kDouble);
}

at::Tensor reduce_batch(const at::Tensor& sum, const at::Tensor& sumsq, int64_t n, BatchAgg agg) {
  switch (agg) {
    case BatchAgg::Mean: return sum / static_cast<double>(n);
    case BatchAgg::L2: return sumsq.sqrt();
    case BatchAgg::Var: {
      at::Tensor mean = sum / static_cast<double>(n);
      return (sumsq / static_cast<double>(n) - mean * mean).clamp_min(0.0);
    }
  }
  return {};
}

namespace {

// Running sums over windows of one per-window statistic [B, X].
struct Running {
  at::Tensor sum, sumsq;
  int64_t n = 0;
  void add(const at::Tensor& s_BX) {
    at::Tensor s = s_BX.sum(0), q = s_BX.pow(2).sum(0);
    if (!sum.defined()) {
      sum = s;
      sumsq = q;
    } else {
      sum += s;
      sumsq += q;
    }
    n += s_BX.size(0);
  }
  at::Tensor result(BatchAgg agg) const {
    if (!sum.defined()) return {};
    return reduce_batch(sum, sumsq, n, agg).to(at::kFloat).cpu();
  }
};

// 1 - cos per token, summed: [B, L, d] x2 -> scalar (float64).
at::Tensor influence_sum(const at::Tensor& a, const at::Tensor& b) {
  at::Tensor x = a.to(at::kFloat), y = b.to(at::kFloat);
  at::Tensor cos = (x * y).sum(-1) / (x.norm(2, {-1}) * y.norm(2, {-1})).clamp_min(1e-12);
  return (1.0 - cos).to(at::kDouble).sum();
}

}  // namespace

CalibrationScores calibrate(LayerSource& src, const at::Tensor& windows, const CalibrationOptions& opt) {
  at::NoGradGuard no_grad;
  const ModelConfig& c = src.config();
  const int64_t n_layers = c.num_layers();
  const int64_t N = windows.size(0), L = windows.size(1) - 1;
  const int64_t mb = std::max<int64_t>(1, opt.micro_batch);
  const int64_t per_pass = std::max(mb, opt.windows_per_pass);
  std::vector<Running> mlp(n_layers), attn(n_layers), mamba(n_layers), mixin(n_layers);
  std::vector<at::Tensor> bi(n_layers);
  std::vector<int64_t> mamba_heads(n_layers, 0);
  for (auto& t : bi) t = at::zeros({}, at::TensorOptions().dtype(at::kDouble).device(src.device()));

  // Only the sites the scores need; the rest of the observer traffic is ignored.
  Observer obs = [&](int64_t i, Site site, const at::Tensor& v) {
    switch (site) {
      case Site::MlpActivation: mlp[i].add(reduce_sequence(v, opt.seq)); break;
      case Site::AttnHeads: attn[i].add(reduce_sequence(v.to(at::kFloat).norm(2, {-1}), opt.seq)); break;
      case Site::MambaX:
        mamba_heads[i] = v.size(2);
        mamba[i].add(reduce_sequence(v.flatten(2), opt.seq));
        break;
      case Site::MixerInput: mixin[i].add(reduce_sequence(v, opt.seq)); break;
      default: break;
    }
  };

  for (int64_t p0 = 0; p0 < N; p0 += per_pass) {
    const int64_t pn = std::min(per_pass, N - p0);
    std::vector<at::Tensor> h;  // one residual stream per micro-batch
    for (int64_t b0 = p0; b0 < p0 + pn; b0 += mb) {
      at::Tensor ids = windows.narrow(0, b0, std::min(mb, p0 + pn - b0)).narrow(1, 0, L);
      check_token_ids(ids, c.vocab_size, "calibration window");
      h.push_back(at::embedding(src.ends().w(kEmbeddingName), ids.to(src.device(), at::kLong)));
    }
    for (int64_t i = 0; i < n_layers; ++i) {
      const Model& m = src.layer(i);
      for (at::Tensor& hb : h) {
        at::Tensor next = block_forward(m, i, hb, &obs);
        // Stopped at the first layer whose output is not finite (an overflow in the compute dtype),
        // before a whole pass is spent and long before a file with NaN scores could be written.
        if (!at::isfinite(next).all().item<bool>())
          fail_runtime("calibration: the output of layer {} holds NaN or infinity (windows {}..{}; {} activations "
                       "overflow?); nothing was written",
                       i, p0, p0 + pn - 1, c10::toString(next.scalar_type()));
        bi[i] += influence_sum(hb, next);
        hb = next;
      }
    }
    if (opt.on_windows) opt.on_windows(pn);
  }

  CalibrationScores out;
  out.windows = N;
  out.tokens = N * L;
  out.mlp.resize(n_layers);
  out.attn_heads.resize(n_layers);
  out.mamba.resize(n_layers);
  out.mixer_input.resize(n_layers);
  for (int64_t i = 0; i < n_layers; ++i) {
    out.mlp[i] = mlp[i].result(opt.batch);
    out.attn_heads[i] = attn[i].result(opt.batch);
    if (mamba[i].sum.defined()) out.mamba[i] = mamba[i].result(opt.batch).reshape({mamba_heads[i], -1});
    out.mixer_input[i] = mixin[i].result(opt.batch);
    out.block_influence.push_back(bi[i].item<double>() / static_cast<double>(N * L));
    for (const at::Tensor* t : {&out.mlp[i], &out.attn_heads[i], &out.mamba[i], &out.mixer_input[i]})
      if (t->defined() && !at::isfinite(*t).all().item<bool>())
        fail_runtime("calibration: non-finite activation statistics at layer {} (overflow in the compute dtype?)", i);
  }
  return out;
}

}  // namespace mp
