// Per-rank GPU memory of a `train` / `distill` step, from the model configs and the run's shape
// alone (no tensors): what the CUDA path of the trainer allocates, term by term, and the peak.
//
// Notation: Ps, Pt student / teacher parameters (model/accounting.h), e the compute dtype's bytes
// (2 for bf16), W ranks, T = micro_batch x seq_len tokens per micro-batch, d hidden size, V vocab.
// State per rank under --shard none | optimizer | full (s = 1 for none, W otherwise):
//   weights  e Ps (none, optimizer), e Ps / W (full; 0 extra when fp32 compute shares the masters)
//   grads    e Ps (none: .grad of every weight), e Ps / W (optimizer, full: reduce-scattered shards)
//   masters  4 Ps / s        moments  8 Ps / s (AdamW m and v in fp32)
//   teacher  e Pt (none, optimizer), e Pt / W (full: sharded, forward only)
// Activations: what autograd keeps per layer and token, read off the forward (model/forward.cpp,
// mixers.cpp, the CUDA kernels' saved tensors); groups G, state N, Mamba heads H x head dim P,
// I = H P, F the MLP width, Hq x hd the query heads:
//   every block   its input h (d e) and the pre-norm's fp32 rstd (4)
//   Mamba         in_proj input u (d), its output [z | xBC | dt] (2I + 2GN + H), the conv output
//                 (I + 2GN), the scan output y (I) and the gated norm's output (I), all e; the
//                 gated norm's fp32 rstd per group (4G); with --keep-ssd-states the scan's chunk
//                 states, e H P N per 64 positions
//   attention     u (d), q (Hq hd), k and v repeated to Hq heads (2 Hq hd), the fused attention's
//                 output (Hq hd), all e, and its fp32 log-sum-exp (4 Hq)
//   MLP           u (d), relu(up) (F) and its square (F), all e
// With --recompute a block keeps only its input (d e per token); its backward runs the block
// again, so one layer's full set plus its kept scan states is alive at a time.
// After the blocks: the final norm's input (d e + 4) and output (d e), the teacher's normed
// hidden states (d_t e), and the teacher's residual streams at the hidden-loss pairs.
// Loss (distill/kd_loss.cpp), at n = min(logit_slice, T) tokens a slice: d_loss/d_W in fp32
// (4 V d) and d_loss/d_h (T d e), plus per slice [n, V] fp32 temporaries (the peak of the KL path
// holds 8 of them: both logits, both log-softmaxes, p_t, exp(log p_s), its difference and the
// gradient; 9 at a temperature other than 1; CE alone 4.5), or 5.5 of them and the bf16 [V, d]
// product of the head gradient's matmul.
// Backward of one layer: the gradients of its intermediates (about its saved set again) and two
// [T, d] residual gradients.
// Peak = the largest of four moments, plus a fixed workspace and an allocator slack:
//   load       state + an fp32 copy of the parameters this rank masters (AdamW clones it)
//   forward    state + every layer's activations + the loss workspace (or the teacher's largest
//              layer, whichever is larger)
//   backward   state + activations of layers not yet done + gradients made so far + one layer's
//              backward (gradients of all weights when a step has more than one micro-batch)
//   optimizer  state + all gradients + 3 fp32 copies of the largest tensor (grad, sqrt(v), denom)
// Communication: with W > 1, --shard none keeps DDP's flat gradient buckets (e Ps); optimizer
// keeps buckets in flight (4 x bucket) and the largest gradient before it is bucketed; full
// gathers one layer and prefetches the next (2 x the largest layer, e; the embedding and LM
// head count as layers) and holds one layer's full gradient before its reduce-scatter; NCCL's
// own buffers are a constant.
// Invariants: every figure is in bytes and >= 0; from 2 ranks on, more ranks never raise a sharded
// mode's figures (1 rank has no communication buffers); --recompute lowers activations once a model
// has more than a few layers (on one layer it costs a second copy of that layer).
#pragma once

#include "distill/kd_loss.h"
#include "distill/shard/shard_mode.h"
#include "model/config.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mp {

using shard::ShardMode;  // the planner speaks the trainer's shard modes
using shard::all_shard_modes;
using shard::parse_shard_mode;
using shard::shard_mode_name;

// Constants of the model (bytes). Measured figures are compared against the plan by
// scripts/gpu_plan_check.sh.
constexpr int64_t kGiB = int64_t{1} << 30;
constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int64_t kCudaContextBytes = 768 * kMiB;  // CUDA context and handles, outside the allocator
constexpr int64_t kFixedWorkspaceBytes = 256 * kMiB;  // cuBLAS workspace, kernel scratch
constexpr double kAllocatorSlack = 0.05;              // caching-allocator fragmentation, of the peak
constexpr int64_t kNcclBufferBytes = 768 * kMiB;      // NCCL channel buffers when W > 1
// What CUDA reports as total memory on the two reference cards.
constexpr int64_t kCard80GB = int64_t{81559} * kMiB;    // H100 80 GB (79.6 GiB)
constexpr int64_t kCard141GB = int64_t{143771} * kMiB;  // H200 141 GB (140.4 GiB)

struct PlanSettings {
  int64_t seq_len = 1024, micro_batch = 1, global_batch = 8, world_size = 1;
  ShardMode shard = ShardMode::None;
  bool recompute = false, keep_ssd_states = false;
  int64_t element_bytes = 2;  // compute dtype: 2 (bf16 / fp16) or 4 (fp32)
  LossKind loss = LossKind::KL;
  double temperature = 1.0;
  int64_t logit_slice = 1024;
  int64_t hidden_pairs = 0;               // layer pairs of the hidden-state loss (0: none)
  int64_t bucket_bytes = int64_t{25} << 20;  // gradient bucket cap (MP_DIST_BUCKET_MB)
};

// Bytes per rank. State items are their full sizes; activations are for both recompute settings;
// `peak` is the largest moment (see the header comment), `peak_phase` names it.
struct RankMemory {
  int64_t weights = 0, gradients = 0, masters = 0, moments = 0, teacher = 0;
  int64_t activations = 0;             // at settings.recompute: all layers' saved set + one layer's backward
  int64_t activations_no_recompute = 0, activations_recompute = 0;
  int64_t loss_workspace = 0;          // the fused KD loss's workspace
  int64_t communication = 0;           // buckets, gathered layers, NCCL buffers
  int64_t workspace = 0;               // fixed workspace + allocator slack
  int64_t peak = 0;                    // what the card must hold (before the CUDA context)
  std::string peak_phase;              // load | forward | backward | optimizer
};

// `teacher` is null for `train`. Usage error for non-positive sizes or world size.
RankMemory plan_rank_memory(const ModelConfig& student, const ModelConfig* teacher, const PlanSettings& s);

// Smallest world size in 1..max_world whose peak fits `usable_bytes` under s's other settings
// (nullopt when none does; --shard none never gets smaller with more ranks).
std::optional<int64_t> smallest_world_size(const ModelConfig& student, const ModelConfig* teacher,
                                           PlanSettings s, int64_t usable_bytes, int64_t max_world = 4096);

// "80GiB", "141 GB" (decimal), "512MiB", "1.5TiB", or a bare number of GiB -> bytes. Usage error
// naming `flag` otherwise.
int64_t parse_memory_size(const std::string& text, const std::string& flag);

}  // namespace mp
