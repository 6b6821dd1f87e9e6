// The three mixers. Widths are read from the layer's tensors, not the config, so that layers
// pruned to different widths run unchanged; the config supplies what tensors cannot tell
// (head_dim for attention, group count for Mamba, epsilon, chunk size, dt limits).
#include "common/error.h"
#include "kernels/conv_norm.h"
#include "kernels/ssd_scan.h"
#include "model/forward.h"

#include <ATen/ATen.h>
#include <torch/version.h>

#include <limits>

namespace mp {

at::Tensor mamba_mixer(const Model& m, int64_t layer, const at::Tensor& u, const Observer* obs, MixerTail* tail) {
  const ModelConfig& c = m.config;
  const at::Tensor& A_log = m.layer_w(layer, "mixer.A_log");
  const at::Tensor& conv_w = m.layer_w(layer, "mixer.conv1d.weight");
  const int64_t H = A_log.size(0);
  const int64_t I = m.layer_w(layer, "mixer.norm.weight").size(0);
  const int64_t P = I / H;
  const int64_t conv_dim = conv_w.size(0);
  const int64_t G = c.n_groups;
  const int64_t N = (conv_dim - I) / (2 * G);
  const int64_t Bsz = u.size(0), L = u.size(1);

  at::Tensor zxbcdt = at::linear(u, m.layer_w(layer, "mixer.in_proj.weight"));
  at::Tensor z = zxbcdt.narrow(-1, 0, I);
  at::Tensor xBC = zxbcdt.narrow(-1, I, conv_dim);
  at::Tensor dt = zxbcdt.narrow(-1, I + conv_dim, H);
  if (obs) (*obs)(layer, Site::MambaX, xBC.narrow(-1, 0, I).reshape({Bsz, L, H, P}));
  if (tail) tail->conv_input_BLC = xBC;

  at::Tensor conv_b = c.use_conv_bias ? m.layer_w(layer, "mixer.conv1d.bias") : at::Tensor();
  xBC = causal_conv1d(xBC, conv_w, conv_b, /*silu=*/true);
  at::Tensor x = xBC.narrow(-1, 0, I).reshape({Bsz, L, H, P});
  at::Tensor Bm = xBC.narrow(-1, I, G * N).reshape({Bsz, L, G, N});
  at::Tensor Cm = xBC.narrow(-1, I + G * N, G * N).reshape({Bsz, L, G, N});
  at::Tensor A = -at::exp(A_log.to(at::kFloat));

  SsdOptions so;
  so.chunk_size = c.chunk_size;
  so.dt_min = c.time_step_limit_lo;
  so.dt_max = c.time_step_limit_hi;
  SsdResult scan = ssd_scan(x, dt, A, Bm, Cm, m.layer_w(layer, "mixer.D"), m.layer_w(layer, "mixer.dt_bias"), so,
                            /*initial_state_BHPN=*/{}, /*return_final_state=*/tail != nullptr);
  if (tail) tail->ssm_state_BHPN = scan.final_state_BHPN;
  at::Tensor y = scan.y_BLHP.reshape({Bsz, L, I});
  at::Tensor g = gated_rms_norm(y, z, m.layer_w(layer, "mixer.norm.weight"), G, c.layer_norm_epsilon);
  return at::linear(g, m.layer_w(layer, "mixer.out_proj.weight"));
}

at::Tensor attention_mixer(const Model& m, int64_t layer, const at::Tensor& u, const Observer* obs, MixerTail* tail) {
  const int64_t hd = m.config.head_dim;
  const at::Tensor& Wq = m.layer_w(layer, "mixer.q_proj.weight");
  const at::Tensor& Wk = m.layer_w(layer, "mixer.k_proj.weight");
  const int64_t Hq = Wq.size(0) / hd, Hkv = Wk.size(0) / hd;
  const int64_t Bsz = u.size(0), L = u.size(1);

  // [B, heads, L, hd]; each group of Hq / Hkv query heads shares one kv head.
  at::Tensor q = at::linear(u, Wq).view({Bsz, L, Hq, hd}).transpose(1, 2);
  at::Tensor k = at::linear(u, Wk).view({Bsz, L, Hkv, hd}).transpose(1, 2);
  at::Tensor v = at::linear(u, m.layer_w(layer, "mixer.v_proj.weight")).view({Bsz, L, Hkv, hd}).transpose(1, 2);
  if (tail) {
    tail->k_BHLD = k;
    tail->v_BHLD = v;
  }
  if (Hq != Hkv) {
    k = k.repeat_interleave(Hq / Hkv, 1);
    v = v.repeat_interleave(Hq / Hkv, 1);
  }
  at::Tensor out;
#if TORCH_VERSION_MAJOR >= 2
  const bool fused = u.is_cuda();
#else
  const bool fused = false;
#endif
  if (fused) {
#if TORCH_VERSION_MAJOR >= 2
    out = at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true);
#endif
  } else {
    // No positional encoding: scores are plain scaled dot products, softmax in fp32.
    at::Tensor scores = at::matmul(q, k.transpose(-1, -2)).to(at::kFloat) * (1.0 / std::sqrt(static_cast<double>(hd)));
    at::Tensor future = at::ones({L, L}, u.options().dtype(at::kBool)).triu(1);
    scores = scores.masked_fill(future, -std::numeric_limits<float>::infinity());
    out = at::matmul(at::softmax(scores, -1).to(q.scalar_type()), v);
  }
  out = out.transpose(1, 2);  // [B, L, Hq, hd]
  if (obs) (*obs)(layer, Site::AttnHeads, out);
  return at::linear(out.reshape({Bsz, L, Hq * hd}), m.layer_w(layer, "mixer.o_proj.weight"));
}

at::Tensor mlp_mixer(const Model& m, int64_t layer, const at::Tensor& u, const Observer* obs) {
  at::Tensor a = at::relu(at::linear(u, m.layer_w(layer, "mixer.up_proj.weight"))).pow(2);
  if (obs) (*obs)(layer, Site::MlpActivation, a);
  return at::linear(a, m.layer_w(layer, "mixer.down_proj.weight"));
}

}  // namespace mp
