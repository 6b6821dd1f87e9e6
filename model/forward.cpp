#include "model/forward.h"

#include "common/error.h"
#include "kernels/conv_norm.h"
#include "kernels/ssd_scan.h"
#include "model/recompute.h"
#include "model/weights.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <optional>

namespace mp {

const char* site_name(Site s) {
  switch (s) {
    case Site::BlockInput: return "block_input";
    case Site::MixerInput: return "mixer_input";
    case Site::MambaX: return "mamba_x";
    case Site::AttnHeads: return "attn_heads";
    case Site::MlpActivation: return "mlp_activation";
    case Site::MixerOutput: return "mixer_output";
    case Site::FinalHidden: return "final_hidden";
  }
  return "?";
}

void check_token_ids(const at::Tensor& ids, int64_t vocab_size, const char* what) {
  if (ids.dim() != 2) fail_input("{}: expected shape [batch, length], got {} dimensions", what, ids.dim());
  if (ids.scalar_type() != at::kLong && ids.scalar_type() != at::kInt)
    fail_input("{}: expected int64 token ids, got {}", what, c10::toString(ids.scalar_type()));
  if (ids.numel() == 0) fail_input("{}: empty", what);
  at::Tensor bad = (ids < 0).logical_or(ids >= vocab_size);
  if (bad.any().item<bool>()) {
    at::Tensor pos = bad.nonzero().select(0, 0).cpu();
    int64_t b = pos[0].item<int64_t>(), t = pos[1].item<int64_t>();
    fail_input("{}: token id {} at [{}, {}] is outside the vocabulary [0, {})", what,
               ids.index({b, t}).item<int64_t>(), b, t, vocab_size);
  }
}

at::Tensor block_forward(const Model& m, int64_t i, const at::Tensor& h, const Observer* obs) {
  at::Tensor u = rms_norm(h, m.layer_w(i, "norm.weight"), m.config.layer_norm_epsilon);
  if (obs) (*obs)(i, Site::MixerInput, u);
  at::Tensor out;
  switch (m.config.layers[i]) {
    case LayerType::Mamba: out = mamba_mixer(m, i, u, obs); break;
    case LayerType::Attention: out = attention_mixer(m, i, u, obs); break;
    case LayerType::Mlp: out = mlp_mixer(m, i, u, obs); break;
  }
  if (obs) (*obs)(i, Site::MixerOutput, out);
  return h + out;
}

at::Tensor forward_hidden(const Model& m, const at::Tensor& ids_BL, const ForwardOptions& opt) {
  const ModelConfig& c = m.config;
  check_token_ids(ids_BL, c.vocab_size);
  if (opt.recompute && opt.observer) fail_usage("activation recomputation cannot be combined with an observer");
  at::Tensor h = at::embedding(m.w(kEmbeddingName), ids_BL.to(m.device(), at::kLong));
  std::optional<SsdKeepChunkStates> keep;
  if (opt.keep_ssd_states) keep.emplace();
  for (int64_t i = 0; i < c.num_layers(); ++i) {
    if (!opt.skip_layer.empty() && opt.skip_layer[i]) continue;
    if (opt.observer) (*opt.observer)(i, Site::BlockInput, h);
    h = opt.recompute && at::GradMode::is_enabled() ? block_forward_recomputed(m, i, h) : block_forward(m, i, h, opt.observer);
  }
  if (opt.observer) (*opt.observer)(c.num_layers(), Site::FinalHidden, h);
  return h;
}

at::Tensor apply_final_norm(const Model& m, const at::Tensor& hidden) {
  return rms_norm(hidden, m.w(kFinalNormName), m.config.layer_norm_epsilon);
}

at::Tensor lm_head_logits(const Model& m, const at::Tensor& normed) {
  return at::linear(normed, m.w(kLmHeadName)).to(at::kFloat);
}

at::Tensor forward_logits(const Model& m, const at::Tensor& ids_BL, const ForwardOptions& opt) {
  return lm_head_logits(m, apply_final_norm(m, forward_hidden(m, ids_BL, opt)));
}

}  // namespace mp
