#include "distill/kd_loss.h"

#include "common/error.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>

namespace mp {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// forward returns {loss, kl, ce} (scalars in the math dtype); only loss is differentiable.
struct FusedKdLoss : public torch::autograd::Function<FusedKdLoss> {
  static variable_list forward(AutogradContext* ctx, at::Tensor hs, at::Tensor ws, at::Tensor ht, at::Tensor wt,
                               at::Tensor targets, int64_t kind_i, double tau, int64_t slice, bool has_targets) {
    const auto kind = static_cast<LossKind>(kind_i);
    const bool use_kl = kind != LossKind::CE, train_ce = kind != LossKind::KL;
    const bool log_ce = has_targets;
    const at::ScalarType math = hs.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    const int64_t T = hs.size(0);
    const double inv_T = 1.0 / static_cast<double>(T);

    at::Tensor grad_h = at::empty_like(hs);
    at::Tensor grad_w = at::zeros(ws.sizes(), ws.options().dtype(math));
    at::Tensor kl_sum = at::zeros({}, hs.options().dtype(math));
    at::Tensor ce_sum = at::zeros({}, hs.options().dtype(math));
    // The two gradient matmuls run in the weights' dtype (bf16 on GPU: tensor cores, no fp32
    // copy of a [V, d] head); grad_w is accumulated over slices in the math dtype.
    const at::ScalarType mm_type = ws.scalar_type();

    for (int64_t t0 = 0; t0 < T; t0 += slice) {
      const int64_t n = std::min(slice, T - t0);
      at::Tensor h = hs.narrow(0, t0, n);
      at::Tensor zs = at::linear(h, ws).to(math);  // [n, V]
      at::Tensor G;                                // d loss / d zs for this slice, times T
      at::Tensor logp_s_tau;
      if (use_kl) {
        at::Tensor zt = at::linear(ht.narrow(0, t0, n), wt).to(math);
        logp_s_tau = at::log_softmax(tau == 1.0 ? zs : zs / tau, -1);
        at::Tensor logp_t = at::log_softmax(tau == 1.0 ? zt : zt / tau, -1);
        at::Tensor p_t = at::exp(logp_t);
        // Zero wherever p_t underflows to 0 (log p_t stays finite for finite logits).
        kl_sum += (p_t * (logp_t - logp_s_tau)).sum();
        // d [tau^2 KL] / d zs = tau^2 * (1/tau) (p_s - p_t).
        G = (at::exp(logp_s_tau) - p_t) * tau;
      }
      if (log_ce || train_ce) {
        at::Tensor logp_s = (use_kl && tau == 1.0) ? logp_s_tau : at::log_softmax(zs, -1);
        at::Tensor tgt = targets.narrow(0, t0, n).to(at::kLong).unsqueeze(1);
        ce_sum -= logp_s.gather(1, tgt).sum();
        if (train_ce) {
          // d CE / d zs = softmax(zs) - onehot(target).
          at::Tensor g_ce = at::exp(logp_s).scatter_add(1, tgt, at::full({n, 1}, -1.0, logp_s.options()));
          G = G.defined() ? G + g_ce : g_ce;
        }
      }
      G = (G * inv_T).to(mm_type);
      grad_h.narrow(0, t0, n).copy_(at::mm(G, ws));          // [n, V] x [V, d]
      grad_w.add_(at::mm(G.t(), h.to(mm_type)));             // [V, n] x [n, d]
    }

    at::Tensor kl = kl_sum * inv_T, ce = ce_sum * inv_T;
    at::Tensor loss = at::zeros({}, kl.options());
    if (use_kl) loss = loss + kl * (tau * tau);
    if (train_ce) loss = loss + ce;
    ctx->save_for_backward({grad_h, grad_w.to(ws.scalar_type())});
    ctx->mark_non_differentiable({kl, ce});
    return {loss, kl, ce};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    variable_list saved = ctx->get_saved_variables();
    at::Tensor g = grad_out[0];
    at::Tensor gh, gw;
    if (g.defined()) {
      gh = saved[0] * g.to(saved[0].scalar_type());
      gw = saved[1] * g.to(saved[1].scalar_type());
    }
    return {gh, gw, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

std::string shape_str(const at::Tensor& t) {
  std::string r = "[";
  for (int64_t i = 0; i < t.dim(); ++i) r += (i ? ", " : "") + std::to_string(t.size(i));
  return r + "]";
}

}  // namespace

KdLossResult kd_loss(const at::Tensor& hs, const at::Tensor& ws, const at::Tensor& ht, const at::Tensor& wt,
                     const at::Tensor& targets, const KdLossOptions& opt) {
  const bool use_kl = opt.kind != LossKind::CE;
  if (!(opt.temperature > 0.0)) fail_usage("temperature: must be > 0, got {}", opt.temperature);
  if (opt.slice_tokens < 1) fail_usage("logit slice: must be >= 1 token, got {}", opt.slice_tokens);
  if (hs.dim() != 2 || ws.dim() != 2 || hs.size(1) != ws.size(1))
    fail_input("kd_loss: student hidden {} and head {} do not fit ([T, d] and [V, d])", shape_str(hs), shape_str(ws));
  if (use_kl) {
    if (!ht.defined() || !wt.defined()) fail_usage("loss {}: needs a teacher", loss_kind_name(opt.kind));
    if (ht.dim() != 2 || wt.dim() != 2 || ht.size(1) != wt.size(1) || ht.size(0) != hs.size(0))
      fail_input("kd_loss: teacher hidden {} and head {} do not fit the student's {} tokens", shape_str(ht),
                 shape_str(wt), hs.size(0));
    if (wt.size(0) != ws.size(0))
      fail_input("kd_loss: teacher vocabulary {} differs from the student's {}", wt.size(0), ws.size(0));
  }
  if (opt.kind != LossKind::KL && !targets.defined()) fail_usage("loss {}: needs targets", loss_kind_name(opt.kind));
  if (targets.defined() && (targets.dim() != 1 || targets.size(0) != hs.size(0)))
    fail_input("kd_loss: targets {} do not match {} tokens", shape_str(targets), hs.size(0));

  // LibTorch 1.13's Function::apply reads every tensor argument's device: absent inputs are
  // passed as empty tensors, with flags saying what is really there.
  const at::Tensor none = at::empty({0}, hs.options());
  variable_list out = FusedKdLoss::apply(hs, ws, use_kl ? ht : none, use_kl ? wt : none,
                                         targets.defined() ? targets : none.to(at::kLong),
                                         static_cast<int64_t>(opt.kind), opt.temperature, opt.slice_tokens,
                                         targets.defined());
  KdLossResult r;
  r.loss = out[0];
  r.kl = out[1].item<double>();
  r.ce = out[2].item<double>();
  return r;
}

}  // namespace mp
