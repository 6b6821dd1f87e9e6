// Calibration pass (docs/method.md): one forward pass over N windows, collecting through the
// observer hook, per layer:
//   MLP neurons       Site::MlpActivation [B,L,F]          -> score [F]
//   attention heads   Site::AttnHeads [B,L,Hq,hd], L2 over hd -> score [Hq]
//   Mamba x slice     Site::MambaX [B,L,H,P]               -> score [H,P]
//   mixer inputs      Site::MixerInput [B,L,d] (RMSNorm output) -> score [d]; the embedding-channel
//                     score is their sum over layers (Importance::hidden)
// Each activation a is first reduced over the sequence of each window (seq aggregation), giving one
// value per window, then over the windows (batch aggregation):
//   seq   mean: mean_t |a_t|      l2: sqrt(sum_t a_t^2)     var: mean_t (a_t - mean a)^2
//   batch mean: mean_b s_b        l2: sqrt(sum_b s_b^2)     var: mean_b (s_b - mean s)^2
// Default mean over the sequence, L2 over the batch (MiniPuzzle / Minitron).
// Also Block Influence (ShortGPT): BI_i = mean over tokens of 1 - cos(h_i, h_{i+1}), h_i the
// residual stream entering layer i (h_n = the stream after the last layer).
// Windows are processed in micro-batches; per-window reductions run in float32, the sums over
// windows in float64.
#pragma once

#include "prune/layer_source.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace mp {

enum class SeqAgg { Mean, L2, Var };
enum class BatchAgg { Mean, L2, Var };
SeqAgg parse_seq_agg(const std::string& s);      // usage error naming the choices
BatchAgg parse_batch_agg(const std::string& s);
const char* agg_name(SeqAgg a);
const char* agg_name(BatchAgg a);

struct CalibrationOptions {
  SeqAgg seq = SeqAgg::Mean;
  BatchAgg batch = BatchAgg::L2;
  int64_t micro_batch = 4;        // windows per forward call
  int64_t windows_per_pass = 0;   // windows whose activations advance together through one layer
                                  // load (streaming); 0 = micro_batch. Results do not depend on it.
  std::function<void(int64_t windows_done)> on_windows;
};

// Per layer; an undefined tensor where the layer has no such axis. float32, CPU.
struct CalibrationScores {
  std::vector<at::Tensor> mlp;          // [F]
  std::vector<at::Tensor> attn_heads;   // [Hq]
  std::vector<at::Tensor> mamba;        // [H, P]
  std::vector<at::Tensor> mixer_input;  // [d]
  std::vector<double> block_influence;
  int64_t windows = 0, tokens = 0;
};

// windows: int64 [N, L + 1] (inputs are [:, :L]).
CalibrationScores calibrate(LayerSource& src, const at::Tensor& windows, const CalibrationOptions& opt);

// The two reductions, exposed for tests: [B, L, X] -> per-window [B, X] (float64), and the
// batch reduction of running sums (sum, sum of squares, count) -> [X].
at::Tensor reduce_sequence(const at::Tensor& a_BLX, SeqAgg agg);
at::Tensor reduce_batch(const at::Tensor& sum, const at::Tensor& sumsq, int64_t n, BatchAgg agg);

}  // namespace mp
