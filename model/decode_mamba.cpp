// One Mamba-2 decode step: the full mixer (mixers.cpp) at a single position, with the causal conv
// and the SSD scan replaced by their recurrences on the cached state (docs/decode.md):
//   window = [conv state | xBC_t]            (K inputs, oldest first)
//   xBC'   = SiLU(bias + sum_k w[:, k] window[:, k]),   conv state <- window[:, 1:]
//   dt     = clamp(softplus(dt_t + dt_bias), time_step_limit)
//   S      = exp(dt A) S + dt x_t B_t^T       (per head; B, C of the head's group)
//   y      = S C_t + D x_t,   then gated grouped RMSNorm and out_proj as in the forward.
// Dtypes follow the forward: projections in the model dtype; conv and scan math in fp32 with the
// results cast back to the model dtype (as the CUDA conv kernel and the scan do); the state is fp32.
#include "kernels/conv_norm.h"
#include "kernels/ssd_scan.h"
#include "model/decode.h"

#include <ATen/ATen.h>

namespace mp {

at::Tensor mamba_step(const Model& m, int64_t layer, const at::Tensor& u, LayerCache& st) {
  const ModelConfig& c = m.config;
  const at::Tensor& conv_w = m.layer_w(layer, "mixer.conv1d.weight");
  const int64_t C = conv_w.size(0), K = conv_w.size(-1);
  const int64_t H = st.ssm_BHPN.size(1), P = st.ssm_BHPN.size(2), N = st.ssm_BHPN.size(3);
  const int64_t I = H * P, G = c.n_groups, Bsz = u.size(0);
  const at::ScalarType dtype = u.scalar_type();

  at::Tensor zxbcdt = at::linear(u, m.layer_w(layer, "mixer.in_proj.weight"));  // [B, 1, rows]
  at::Tensor z = zxbcdt.narrow(-1, 0, I);
  at::Tensor xBC = zxbcdt.narrow(-1, I, C).squeeze(1);                           // [B, C]
  at::Tensor dt_raw = zxbcdt.narrow(-1, I + C, H);                               // [B, 1, H]

  // Depthwise causal conv at one position: the window is the K-1 cached inputs and this one.
  at::Tensor window = at::cat({st.conv_BCK, xBC.unsqueeze(-1)}, -1);            // [B, C, K]
  st.conv_BCK.copy_(window.narrow(-1, 1, K - 1));
  at::Tensor conv = (window.to(at::kFloat) * conv_w.reshape({C, K}).to(at::kFloat)).sum(-1);
  if (c.use_conv_bias) conv = conv + m.layer_w(layer, "mixer.conv1d.bias").to(at::kFloat);
  conv = at::silu(conv).to(dtype);  // the forward's conv output is in the model dtype

  // x [B, G, H/G, P] and B, C [B, G, 1, N]: heads split as (group, head in group) so that a
  // group's B and C reach its heads by broadcasting.
  const at::Tensor x = conv.narrow(-1, 0, I).to(at::kFloat).view({Bsz, G, H / G, P});
  const at::Tensor Bm = conv.narrow(-1, I, G * N).to(at::kFloat).view({Bsz, G, 1, N});
  const at::Tensor Cm = conv.narrow(-1, I + G * N, G * N).to(at::kFloat).view({Bsz, G, 1, N});

  SsdOptions so;
  so.dt_min = c.time_step_limit_lo;
  so.dt_max = c.time_step_limit_hi;
  const at::Tensor dt = ssd_effective_dt(dt_raw, m.layer_w(layer, "mixer.dt_bias"), so)
                            .view({Bsz, G, H / G, 1, 1});                         // fp32
  const at::Tensor A = -at::exp(m.layer_w(layer, "mixer.A_log").to(at::kFloat)).view({1, G, H / G, 1, 1});

  // S <- exp(dt A) S + dt x B^T, in place on the cached fp32 state.
  at::Tensor S = st.ssm_BHPN.view({Bsz, G, H / G, P, N});
  S.mul_(at::exp(dt * A)).add_(dt * x.unsqueeze(-1) * Bm.unsqueeze(-2));
  // y = S C + D x, cast to the model dtype as the scan's output is.
  const at::Tensor D = m.layer_w(layer, "mixer.D").to(at::kFloat).view({1, G, H / G, 1});
  at::Tensor y = at::matmul(S, Cm.unsqueeze(-1)).squeeze(-1) + D * x;           // [B, G, H/G, P]
  y = y.to(dtype).reshape({Bsz, 1, I});

  at::Tensor g = gated_rms_norm(y, z, m.layer_w(layer, "mixer.norm.weight"), G, c.layer_norm_epsilon);
  return at::linear(g, m.layer_w(layer, "mixer.out_proj.weight"));
}

}  // namespace mp
