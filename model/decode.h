// Incremental inference: prefill a prompt, then decode one token per sequence per step, keeping
// per-layer state in an InferenceCache. The math is the full forward's (forward.h, mixers.cpp),
// rearranged as a recurrence; docs/decode.md derives each state update.
//
// Shapes (suffix legend): B batch, T cache capacity (max_len), C conv channels (conv_dim =
// I + 2 G N), K conv kernel, H Mamba heads, P head dim, N state size, Hkv kv heads, D head dim.
// Invariants:
//   - every attention layer's `length` equals the cache's `length` (tokens seen per sequence);
//   - positions [0, length) of K/V hold real keys/values, the rest is unused capacity;
//   - conv_BCK[..., j] is the conv input of position length - (K-1) + j (zeros before position 0);
//   - ssm_BHPN is the SSM state after position length - 1 (fp32, whatever the model dtype);
//   - buffers are allocated once, at construction: decoding writes in place, never concatenates.
// Widths are read from each layer's tensors, so a pruned (per-layer narrower) model works.
#pragma once

#include "model/model.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace mp {

struct LayerCache {
  LayerType type = LayerType::Mlp;
  // Mamba: the last K-1 conv inputs [B, conv_dim, K-1] (model dtype) and the SSM state
  // [B, H, P, N] (fp32).
  at::Tensor conv_BCK, ssm_BHPN;
  // Attention: preallocated keys and values [B, Hkv, max_len, D] (model dtype) and how many
  // positions hold data.
  at::Tensor k_BHTD, v_BHTD;
  int64_t length = 0;
};

struct InferenceCache {
  // Allocates every buffer (zeros) on the model's device: attention K/V in the model dtype, conv
  // states in the model dtype, SSM states in fp32. Bad input when batch or max_len < 1.
  InferenceCache(const Model& m, int64_t batch, int64_t max_len);

  std::vector<LayerCache> layers;  // one per model layer; MLP layers hold nothing
  int64_t batch = 0, max_len = 0;
  int64_t length = 0;  // tokens per sequence held so far (prefill + decode steps)

  // Bytes of all state buffers: attention layers x 2 x Hkv x D x max_len x B x dtype bytes
  // + Mamba layers x B x (conv_dim x (K-1) x dtype bytes + H x P x N x 4).
  uint64_t bytes() const;
};

// Runs the prompt ids_BL (B = cache.batch, 1 <= L <= cache.max_len) through the chunked full
// forward, starts the cache over with that prompt's state and returns the float32 logits of the
// last position [B, V]. Bad input for ids outside the vocabulary, a wrong batch or L > max_len.
at::Tensor prefill(const Model& m, const at::Tensor& ids_BL, InferenceCache& cache);

// Appends one token per sequence (ids_B, int64) and returns float32 logits [B, V] for the next
// position. Bad input when the cache is full (length == max_len), an id is outside the
// vocabulary, or ids_B has the wrong shape.
at::Tensor decode_step(const Model& m, InferenceCache& cache, const at::Tensor& ids_B);

// Appends L >= 1 tokens per sequence (ids_BL, int64 [B, L]) in one pass and returns float32 logits
// [B, L, V]: position j's logits predict the token after ids_BL[:, j]. The same math as L decode
// steps, done as a chunk: each Mamba layer runs its conv over [cached inputs | new inputs] and the
// chunked scan from the cached state; each attention layer's queries see the cached keys and the
// new ones causally. Bad input when length + L > max_len, an id is outside the vocabulary, or
// ids_BL is not [batch, L].
at::Tensor extend(const Model& m, InferenceCache& cache, const at::Tensor& ids_BL);
// The same, returning the final-normed hidden states [B, L, d] instead of logits, for callers that
// need the LM head at a few positions only (a 131072-token vocabulary makes [B, L, V] large).
at::Tensor extend_normed(const Model& m, InferenceCache& cache, const at::Tensor& ids_BL);

// A new cache of capacity max_len (>= src.length) whose row i holds src's state of row rows[i]:
// one prompt's state handed to several continuations, or several prompts regrouped. Bad input for
// a row outside [0, src.batch) or a capacity below what src holds.
InferenceCache gather_cache_rows(const Model& m, const InferenceCache& src, const std::vector<int64_t>& rows,
                                 int64_t max_len);

// For benchmarks only: pretends `length` tokens were already seen, without running a prefill.
// Sets the cache's and every attention layer's length to `length` and fills K/V positions
// [0, length), conv and SSM states with N(0, 1) values drawn on the cache's device after
// at::manual_seed(seed) (deterministic on one device; reseeds the global generators). Decode timings at long context are then realistic (same shapes, same
// work); its logits are meaningless. Bad input when length is outside [0, max_len].
void fill_for_benchmark(InferenceCache& cache, int64_t length, uint64_t seed);

// One token through one layer's mixer, on the normed input [B, 1, d], updating that layer's state
// in place; returns the mixer output [B, 1, d] (decode_mamba.cpp, decode_attention.cpp). The
// attention step writes position state.length and advances it; capacity is checked by the caller.
at::Tensor mamba_step(const Model& m, int64_t layer, const at::Tensor& u_B1D, LayerCache& state);
at::Tensor attention_step(const Model& m, int64_t layer, const at::Tensor& u_B1D, LayerCache& state);
// The same for L tokens at once on the normed input [B, L, d] (decode_extend.cpp).
at::Tensor mamba_extend(const Model& m, int64_t layer, const at::Tensor& u_BLD, LayerCache& state);
at::Tensor attention_extend(const Model& m, int64_t layer, const at::Tensor& u_BLD, LayerCache& state);

}  // namespace mp
