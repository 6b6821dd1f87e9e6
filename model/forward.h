// The forward pass of the hybrid stack: embedding -> blocks h = h + mixer(RMSNorm(h)) -> norm_f
// -> LM head. Intermediate tensors are reachable through one observer hook, keyed by
// (layer, site): calibration statistics, hidden-state losses and debug dumps all use it.
#pragma once

#include "model/model.h"

#include <ATen/core/Tensor.h>

#include <functional>
#include <vector>

namespace mp {

enum class Site {
  BlockInput,     // residual stream entering layer i            [B, L, d]
  MixerInput,     // RMSNorm output feeding the mixer of layer i  [B, L, d]
  MambaX,         // x slice of in_proj's output (before conv)    [B, L, H, P]
  AttnHeads,      // attention output per head, before o_proj     [B, L, Hq, hd]
  MlpActivation,  // squared-ReLU activation                      [B, L, F]
  MixerOutput,    // mixer output added to the residual           [B, L, d]
  FinalHidden,    // residual stream after the last layer (layer = num_layers) [B, L, d]
};
const char* site_name(Site s);

using Observer = std::function<void(int64_t layer, Site site, const at::Tensor& value)>;

struct ForwardOptions {
  std::vector<bool> skip_layer;  // empty, or one flag per layer: skipped layers are identity
  const Observer* observer = nullptr;
  // Recompute each block's activations in the backward pass instead of keeping them
  // (model/recompute.h); not with an observer.
  bool recompute = false;
  // CUDA autograd: every SSD scan keeps its chunk states for its backward (SsdOptions::
  // keep_chunk_states): a faster backward for more activation memory.
  bool keep_ssd_states = false;
};

// Bad input when an id is outside [0, vocab_size) (names the position and the id).
void check_token_ids(const at::Tensor& ids_BL, int64_t vocab_size, const char* what = "input_ids");

// One block: h + mixer_i(RMSNorm_i(h)), reporting MixerInput / per-mixer sites / MixerOutput (not
// BlockInput) to `obs`. Reads only layer i's tensors, so `m` may hold just that layer (streaming).
at::Tensor block_forward(const Model& m, int64_t layer, const at::Tensor& h_BLD, const Observer* obs = nullptr);

// Residual stream after the last layer, before norm_f.
at::Tensor forward_hidden(const Model& m, const at::Tensor& ids_BL, const ForwardOptions& opt = {});
at::Tensor apply_final_norm(const Model& m, const at::Tensor& hidden);
// Logits in float32 for normed hidden states [.., d] -> [.., V].
at::Tensor lm_head_logits(const Model& m, const at::Tensor& normed);
// Full forward: float32 logits [B, L, V].
at::Tensor forward_logits(const Model& m, const at::Tensor& ids_BL, const ForwardOptions& opt = {});

// What a mixer's full-sequence pass leaves behind for incremental decoding (model/decode.h),
// filled only when a caller passes one. Mamba: the conv input xBC [B, L, conv_dim] (before the
// conv, model dtype; a view, no copy) and the SSM state after the last position [B, H, P, N]
// (fp32). Attention: K and V [B, Hkv, L, hd] before GQA repetition.
struct MixerTail {
  at::Tensor conv_input_BLC, ssm_state_BHPN;
  at::Tensor k_BHLD, v_BHLD;
};

// One block's mixer, on the normed input [B, L, d] (mixers.cpp).
at::Tensor mamba_mixer(const Model& m, int64_t layer, const at::Tensor& u_BLD, const Observer* obs,
                       MixerTail* tail = nullptr);
at::Tensor attention_mixer(const Model& m, int64_t layer, const at::Tensor& u_BLD, const Observer* obs,
                           MixerTail* tail = nullptr);
at::Tensor mlp_mixer(const Model& m, int64_t layer, const at::Tensor& u_BLD, const Observer* obs);

}  // namespace mp
