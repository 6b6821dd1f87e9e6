// One attention decode step: the full mixer (mixers.cpp) for a single query, with this token's
// K and V written into the preallocated cache at position `length` (no concatenation: each step
// costs O(length), not a copy of the cache). NemotronH attention has no positional encoding, so
// cached keys never change. GQA without repeating the cache: the Hq = Hkv x R query heads are
// viewed as [Hkv, R] (query head h reads kv head h / R, as repeat_interleave does in the forward),
// making the R queries of a kv head one small matrix against that head's keys.
// Dtypes follow the forward's plain path: scores in the model dtype, scaled and soft-maxed in fp32,
// probabilities cast back before the product with V.
#include "model/decode.h"

#include <ATen/ATen.h>

#include <cmath>

namespace mp {

at::Tensor attention_step(const Model& m, int64_t layer, const at::Tensor& u, LayerCache& st) {
  const int64_t hd = m.config.head_dim;
  const at::Tensor& Wq = m.layer_w(layer, "mixer.q_proj.weight");
  const int64_t Hq = Wq.size(0) / hd, Hkv = st.k_BHTD.size(1), R = Hq / Hkv;
  const int64_t Bsz = u.size(0), t = st.length;

  at::Tensor q = at::linear(u, Wq).view({Bsz, Hkv, R, hd});                                   // [B, Hkv, R, hd]
  at::Tensor k = at::linear(u, m.layer_w(layer, "mixer.k_proj.weight")).view({Bsz, Hkv, 1, hd});
  at::Tensor v = at::linear(u, m.layer_w(layer, "mixer.v_proj.weight")).view({Bsz, Hkv, 1, hd});
  st.k_BHTD.narrow(2, t, 1).copy_(k);
  st.v_BHTD.narrow(2, t, 1).copy_(v);
  st.length = t + 1;
  const at::Tensor keys = st.k_BHTD.narrow(2, 0, t + 1), values = st.v_BHTD.narrow(2, 0, t + 1);

  // The single query sees every cached position, so there is nothing to mask.
  at::Tensor scores = at::matmul(q, keys.transpose(-1, -2)).to(at::kFloat) * (1.0 / std::sqrt(static_cast<double>(hd)));
  at::Tensor out = at::matmul(at::softmax(scores, -1).to(q.scalar_type()), values);            // [B, Hkv, R, hd]
  return at::linear(out.reshape({Bsz, 1, Hq * hd}), m.layer_w(layer, "mixer.o_proj.weight"));
}

}  // namespace mp
