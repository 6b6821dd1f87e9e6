// Generation speed of a shape on one card, predicted from latencies measured on that card.
//
// A layer's latency in a phase is a linear function of a few work terms of its shape, with
// non-negative coefficients (seconds per layer, per FLOP, per byte, per element) fitted to
// measured runs (bench/bench_throughput, docs/search.md). A model's latency is the sum over its
// layers plus the embedding / final norm / LM head term. The work terms, per layer, for a batch
// of b sequences (T = b*L tokens; d hidden, F MLP width, I = H*P Mamba inner width, R Mamba
// in_proj rows, Cd conv channels, Q chunk, q / kv heads of head_dim hd, V vocabulary):
//
//   prefill of L tokens     per-layer   matmul FLOPs             special FLOPs            elements
//   mamba                   1           2T d (R + I)             b L (4HPN + 2GQN + 2HQP)  T (d + R + Cd)
//   attention               1           2T d hd (2q + 2kv)       2 b L^2 q hd (causal)     T (d + hd (q + 2kv))
//   mlp                     1           4T d F                   -                         T (d + F)
//   head                    1           2 b d V (last token)     -                         T d
//
//   decode at context c     per-layer   weight bytes (bf16)      state bytes
//   mamba                   1           2 (d R + I d + Cd K)     4 b H P N (fp32 SSM state)
//   attention               1           2 d hd (2q + 2kv)        2 b c kv hd 2 (K and V read)
//   mlp                     1           4 d F                    -
//   head                    1           2 V d                    -
//
// A generation of P prompt tokens and O new ones takes prefill(P) + O * decode(P + O/2): decode
// latency is linear in the context, so the middle context gives the exact mean.
#pragma once

#include "model/config.h"

#include <nlohmann/json_fwd.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace mp {

enum class Phase { Prefill = 0, Decode = 1 };
enum class Part { Mamba = 0, Attention = 1, Mlp = 2, Head = 3 };
constexpr int kNumParts = 4;
const char* phase_name(Phase p);
const char* part_name(Part p);

// The work terms of one layer of `part` (table above); `length` is L for prefill, c for decode.
std::vector<double> part_features(const ModelConfig& c, Part part, Phase phase, int64_t batch, int64_t length);
const std::vector<std::string>& part_feature_names(Part part, Phase phase);

struct Workload {
  int64_t batch = 1;
  int64_t prompt_tokens = 65536;  // the paper's generation benchmark: 65536 in, 1024 out
  int64_t output_tokens = 1024;
};

struct GenerationEstimate {
  double prefill_s = 0, decode_s_per_token = 0;
  double generation_s = 0;  // prefill_s + output_tokens * decode_s_per_token
};

// One measured run: a whole model (any mix of layers) in one phase.
struct ThroughputSample {
  ModelConfig config;
  Phase phase = Phase::Prefill;
  int64_t batch = 1, length = 1;
  double seconds = 0;
};

// How a decode step's layer terms combine. A decode step at batch 1 runs tens of small kernels a
// layer; the host enqueues them while the GPU works through earlier ones, so the step takes the
// longer of the two, not their sum:
//   sum:     sum over layers of every term
//   overlap: max(host, device), host = sum of the per-layer ("layer"/"model") terms, device = sum
//            of the byte terms
enum class DecodeCombine { Sum, Overlap };

struct ThroughputModel {
  std::string card, dtype = "bf16", date, commit, runtime;
  DecodeCombine decode_combine = DecodeCombine::Sum;
  // coefficients[phase][part][feature], seconds per unit of the feature.
  std::array<std::array<std::vector<double>, kNumParts>, 2> coefficients;
  // Fit quality on the samples: root-mean-square and worst relative error, per phase.
  std::array<double, 2> rms_rel_error{0, 0}, max_rel_error{0, 0};
  std::array<int64_t, 2> samples{0, 0};

  double predict(const ModelConfig& c, Phase phase, int64_t batch, int64_t length) const;  // seconds
  GenerationEstimate estimate(const ModelConfig& c, const Workload& w) const;
  // Parent's generation time over the candidate's (> 1: the candidate is faster).
  double speedup(const ModelConfig& parent, const ModelConfig& candidate, const Workload& w) const;
};

// Non-negative least squares on relative error (each run weighted by 1 / its time, so a 0.2 ms
// decode step counts as much as a 2 s prefill). With `combine` Overlap the decode fit alternates:
// each sample is host- or device-bound under the current coefficients, the two groups are fitted
// on their own terms, until no sample changes side. Bad input without samples of both phases or
// with fewer samples than coefficients in a phase.
ThroughputModel fit_throughput(const std::vector<ThroughputSample>& samples,
                               DecodeCombine combine = DecodeCombine::Overlap);

nlohmann::json throughput_to_json(const ThroughputModel& m);
ThroughputModel throughput_from_json(const nlohmann::json& j, const std::string& source);
ThroughputModel load_throughput(const std::string& path);  // bad input naming the file and field
nlohmann::json sample_to_json(const ThroughputSample& s);
ThroughputSample sample_from_json(const nlohmann::json& j, const std::string& source);

// configs/throughput/h200-bf16.json of the source tree this binary was built from, or "" if absent.
std::string default_throughput_path();

}  // namespace mp
