// L tokens through one layer's mixer from the cached state, the chunk form of the decode steps in
// decode_mamba.cpp and decode_attention.cpp (docs/decode.md derives the recurrences):
//   Mamba: the causal conv of the new inputs needs the K-1 inputs before them, which the cache
//   holds, so it runs over [cached | new] and the first K-1 outputs (those windows reach before
//   the cache) are dropped; the chunked SSD scan starts from the cached SSM state (its
//   initial-state argument) and hands back the state after the last new position.
//   Attention: the new keys and values are written at positions [length, length + L); query j
//   sees cached positions and new positions up to its own (length + j), nothing later.
// Dtypes follow the forward's plain path (mixers.cpp): projections in the model dtype, conv and
// scan math in fp32 cast back, attention scores soft-maxed in fp32.
#include "kernels/conv_norm.h"
#include "kernels/ssd_scan.h"
#include "model/decode.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace mp {

at::Tensor mamba_extend(const Model& m, int64_t layer, const at::Tensor& u, LayerCache& st) {
  const ModelConfig& c = m.config;
  const at::Tensor& conv_w = m.layer_w(layer, "mixer.conv1d.weight");
  const int64_t C = conv_w.size(0), K = conv_w.size(-1);
  const int64_t H = st.ssm_BHPN.size(1), P = st.ssm_BHPN.size(2), N = st.ssm_BHPN.size(3);
  const int64_t I = H * P, G = c.n_groups, Bsz = u.size(0), L = u.size(1);

  at::Tensor zxbcdt = at::linear(u, m.layer_w(layer, "mixer.in_proj.weight"));  // [B, L, rows]
  at::Tensor z = zxbcdt.narrow(-1, 0, I);
  at::Tensor xBC = zxbcdt.narrow(-1, I, C);                                      // [B, L, C]
  at::Tensor dt = zxbcdt.narrow(-1, I + C, H);                                   // [B, L, H]

  // [cached K-1 inputs | L new inputs]: every new position's window is complete, so the conv's
  // zero padding only touches the K-1 outputs that are dropped.
  at::Tensor ext = at::cat({st.conv_BCK.transpose(1, 2), xBC}, 1);              // [B, K-1+L, C]
  at::Tensor conv_b = c.use_conv_bias ? m.layer_w(layer, "mixer.conv1d.bias") : at::Tensor();
  at::Tensor conv = causal_conv1d(ext.contiguous(), conv_w, conv_b, /*silu=*/true).narrow(1, K - 1, L);
  st.conv_BCK.copy_(ext.narrow(1, L, K - 1).transpose(1, 2));

  at::Tensor x = conv.narrow(-1, 0, I).reshape({Bsz, L, H, P});
  at::Tensor Bm = conv.narrow(-1, I, G * N).reshape({Bsz, L, G, N});
  at::Tensor Cm = conv.narrow(-1, I + G * N, G * N).reshape({Bsz, L, G, N});
  at::Tensor A = -at::exp(m.layer_w(layer, "mixer.A_log").to(at::kFloat));
  SsdOptions so;
  // Any chunk size gives the same scan; a chunk no longer than the L new tokens avoids padding a
  // few continuation tokens out to a whole chunk of work.
  so.chunk_size = std::min(c.chunk_size, L);
  so.dt_min = c.time_step_limit_lo;
  so.dt_max = c.time_step_limit_hi;
  SsdResult scan = ssd_scan(x, dt, A, Bm, Cm, m.layer_w(layer, "mixer.D"), m.layer_w(layer, "mixer.dt_bias"), so,
                            st.ssm_BHPN, /*return_final_state=*/true);
  st.ssm_BHPN.copy_(scan.final_state_BHPN);
  at::Tensor y = scan.y_BLHP.reshape({Bsz, L, I});
  at::Tensor g = gated_rms_norm(y, z, m.layer_w(layer, "mixer.norm.weight"), G, c.layer_norm_epsilon);
  return at::linear(g, m.layer_w(layer, "mixer.out_proj.weight"));
}

at::Tensor attention_extend(const Model& m, int64_t layer, const at::Tensor& u, LayerCache& st) {
  const int64_t hd = m.config.head_dim;
  const at::Tensor& Wq = m.layer_w(layer, "mixer.q_proj.weight");
  const int64_t Hq = Wq.size(0) / hd, Hkv = st.k_BHTD.size(1);
  const int64_t Bsz = u.size(0), L = u.size(1), t = st.length;

  at::Tensor q = at::linear(u, Wq).view({Bsz, L, Hq, hd}).transpose(1, 2);       // [B, Hq, L, hd]
  at::Tensor k = at::linear(u, m.layer_w(layer, "mixer.k_proj.weight")).view({Bsz, L, Hkv, hd}).transpose(1, 2);
  at::Tensor v = at::linear(u, m.layer_w(layer, "mixer.v_proj.weight")).view({Bsz, L, Hkv, hd}).transpose(1, 2);
  st.k_BHTD.narrow(2, t, L).copy_(k);
  st.v_BHTD.narrow(2, t, L).copy_(v);
  st.length = t + L;
  at::Tensor keys = st.k_BHTD.narrow(2, 0, t + L), values = st.v_BHTD.narrow(2, 0, t + L);
  if (Hq != Hkv) {
    keys = keys.repeat_interleave(Hq / Hkv, 1);
    values = values.repeat_interleave(Hq / Hkv, 1);
  }
  // Query j (absolute position t + j) sees keys 0..t+j: key i is in its future when i > t + j.
  at::Tensor scores = at::matmul(q, keys.transpose(-1, -2)).to(at::kFloat) * (1.0 / std::sqrt(static_cast<double>(hd)));
  const auto idx = at::TensorOptions().dtype(at::kLong).device(u.device());
  at::Tensor future = at::arange(t + L, idx).unsqueeze(0) > (at::arange(L, idx) + t).unsqueeze(1);  // [L, t+L]
  scores = scores.masked_fill(future, -std::numeric_limits<float>::infinity());
  at::Tensor out = at::matmul(at::softmax(scores, -1).to(q.scalar_type()), values).transpose(1, 2);  // [B, L, Hq, hd]
  return at::linear(out.reshape({Bsz, L, Hq * hd}), m.layer_w(layer, "mixer.o_proj.weight"));
}

}  // namespace mp
