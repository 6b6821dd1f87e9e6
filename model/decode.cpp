// prefill, decode_step and extend: the block loop of forward_hidden (forward.cpp) with each mixer
// either run over the prompt while handing its final state to the cache (prefill), or run for one
// token (decode_step) or several (extend) from the cached state. Residual, norms and LM head are the forward's functions, so
// only the mixers' recurrences (decode_mamba.cpp, decode_attention.cpp) are new math.
// Validation happens before anything in the cache changes: a rejected call leaves it as it was.
#include "model/decode.h"

#include "common/error.h"
#include "kernels/conv_norm.h"
#include "model/forward.h"
#include "model/weights.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

namespace mp {
namespace {

// The cache must have been made for this model (same layer pattern) on its device.
void check_cache(const Model& m, const InferenceCache& cache, const char* what) {
  const ModelConfig& c = m.config;
  if (static_cast<int64_t>(cache.layers.size()) != c.num_layers())
    fail_input("{}: the inference cache has {} layers, expected the model's {}", what, cache.layers.size(), c.num_layers());
  for (int64_t i = 0; i < c.num_layers(); ++i) {
    const LayerCache& lc = cache.layers[i];
    if (lc.type != c.layers[i])
      fail_input("{}: inference cache layer {} is {}, expected the model's {}", what, i, layer_type_name(lc.type),
                 layer_type_name(c.layers[i]));
    const at::Tensor& t = lc.type == LayerType::Mamba ? lc.ssm_BHPN : lc.k_BHTD;
    if (t.defined() && t.device() != m.device())
      fail_input("{}: inference cache layer {} is on {}, expected the model's device {}", what, i, t.device().str(),
                 m.device().str());
    if (lc.type == LayerType::Attention && lc.length != cache.length)
      fail_runtime("{}: inference cache layer {} holds {} positions but the cache {}", what, i, lc.length, cache.length);
  }
}

// conv_BCK <- the last K-1 columns of the conv input xBC [B, L, C], zero-padded on the left when
// the prompt is shorter (the forward's conv pads with zeros before position 0).
void store_conv_tail(at::Tensor& conv_BCK, const at::Tensor& xBC_BLC) {
  const int64_t K1 = conv_BCK.size(-1), L = xBC_BLC.size(1);
  const at::Tensor x_BCL = xBC_BLC.transpose(1, 2);
  if (L >= K1) {
    conv_BCK.copy_(x_BCL.narrow(-1, L - K1, K1));
  } else {
    conv_BCK.zero_();
    conv_BCK.narrow(-1, K1 - L, L).copy_(x_BCL);
  }
}

at::Tensor last_logits(const Model& m, const at::Tensor& h_BLD) {
  return lm_head_logits(m, apply_final_norm(m, h_BLD.narrow(1, h_BLD.size(1) - 1, 1))).squeeze(1);
}

}  // namespace

at::Tensor prefill(const Model& m, const at::Tensor& ids_BL, InferenceCache& cache) {
  at::NoGradGuard no_grad;
  const ModelConfig& c = m.config;
  check_cache(m, cache, "prefill");
  check_token_ids(ids_BL, c.vocab_size, "prefill ids");
  const int64_t B = ids_BL.size(0), L = ids_BL.size(1);
  if (B != cache.batch) fail_input("prefill ids: batch {}, expected the inference cache's batch {}", B, cache.batch);
  if (L > cache.max_len)
    fail_input("prefill ids: {} tokens exceed the inference cache's capacity; expected at most max_len = {}", L,
               cache.max_len);

  at::Tensor h = at::embedding(m.w(kEmbeddingName), ids_BL.to(m.device(), at::kLong));
  for (int64_t i = 0; i < c.num_layers(); ++i) {
    LayerCache& lc = cache.layers[i];
    const at::Tensor u = rms_norm(h, m.layer_w(i, "norm.weight"), c.layer_norm_epsilon);
    MixerTail tail;
    at::Tensor out;
    switch (lc.type) {
      case LayerType::Mamba:
        out = mamba_mixer(m, i, u, nullptr, &tail);
        store_conv_tail(lc.conv_BCK, tail.conv_input_BLC);
        lc.ssm_BHPN.copy_(tail.ssm_state_BHPN);
        break;
      case LayerType::Attention:
        out = attention_mixer(m, i, u, nullptr, &tail);
        lc.k_BHTD.narrow(2, 0, L).copy_(tail.k_BHLD);
        lc.v_BHTD.narrow(2, 0, L).copy_(tail.v_BHLD);
        lc.length = L;
        break;
      case LayerType::Mlp: out = mlp_mixer(m, i, u, nullptr); break;
    }
    h = h + out;
  }
  cache.length = L;
  return last_logits(m, h);
}

at::Tensor decode_step(const Model& m, InferenceCache& cache, const at::Tensor& ids_B) {
  at::NoGradGuard no_grad;
  const ModelConfig& c = m.config;
  check_cache(m, cache, "decode_step");
  if (ids_B.dim() != 1 || ids_B.size(0) != cache.batch)
    fail_input("decode_step ids: expected shape [{}] (one token per sequence of the inference cache), got {}",
               cache.batch, shape_string(ids_B.sizes().vec()));
  if (cache.length >= cache.max_len)
    fail_input("decode_step: the inference cache is full ({} of max_len = {} tokens per sequence); expected prompt + "
               "generated tokens <= max_len",
               cache.length, cache.max_len);
  const at::Tensor ids_B1 = ids_B.unsqueeze(1);
  check_token_ids(ids_B1, c.vocab_size, "decode_step ids");

  at::Tensor h = at::embedding(m.w(kEmbeddingName), ids_B1.to(m.device(), at::kLong));  // [B, 1, d]
  for (int64_t i = 0; i < c.num_layers(); ++i) {
    LayerCache& lc = cache.layers[i];
    const at::Tensor u = rms_norm(h, m.layer_w(i, "norm.weight"), c.layer_norm_epsilon);
    at::Tensor out;
    switch (lc.type) {
      case LayerType::Mamba: out = mamba_step(m, i, u, lc); break;
      case LayerType::Attention: out = attention_step(m, i, u, lc); break;
      case LayerType::Mlp: out = mlp_mixer(m, i, u, nullptr); break;
    }
    h = h + out;
  }
  cache.length += 1;
  return last_logits(m, h);
}

at::Tensor extend_normed(const Model& m, InferenceCache& cache, const at::Tensor& ids_BL) {
  at::NoGradGuard no_grad;
  const ModelConfig& c = m.config;
  check_cache(m, cache, "extend");
  if (ids_BL.dim() != 2 || ids_BL.size(0) != cache.batch || ids_BL.size(1) < 1)
    fail_input("extend ids: expected shape [{}, L >= 1] (tokens per sequence of the inference cache), got {}",
               cache.batch, shape_string(ids_BL.sizes().vec()));
  const int64_t L = ids_BL.size(1);
  if (cache.length + L > cache.max_len)
    fail_input("extend: {} held + {} new tokens exceed the inference cache's capacity; expected at most max_len = {}",
               cache.length, L, cache.max_len);
  check_token_ids(ids_BL, c.vocab_size, "extend ids");

  at::Tensor h = at::embedding(m.w(kEmbeddingName), ids_BL.to(m.device(), at::kLong));  // [B, L, d]
  for (int64_t i = 0; i < c.num_layers(); ++i) {
    LayerCache& lc = cache.layers[i];
    const at::Tensor u = rms_norm(h, m.layer_w(i, "norm.weight"), c.layer_norm_epsilon);
    at::Tensor out;
    switch (lc.type) {
      case LayerType::Mamba: out = mamba_extend(m, i, u, lc); break;
      case LayerType::Attention: out = attention_extend(m, i, u, lc); break;
      case LayerType::Mlp: out = mlp_mixer(m, i, u, nullptr); break;
    }
    h = h + out;
  }
  cache.length += L;
  return apply_final_norm(m, h);
}

at::Tensor extend(const Model& m, InferenceCache& cache, const at::Tensor& ids_BL) {
  at::NoGradGuard no_grad;
  return lm_head_logits(m, extend_normed(m, cache, ids_BL));
}

}  // namespace mp
