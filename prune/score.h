// The whole `score` stage as one library call: read the parent (in memory, or a layer at a time
// with --stream), draw fixed windows from token data, run the calibration pass (width axes, block
// influence) and the layer-removal pass, and assemble an Importance. The first `layer_samples`
// windows of the calibration set are the layer-removal windows.
#pragma once

#include "prune/importance.h"

#include <c10/core/Device.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace mp {

struct ScoreOptions {
  std::string model, data;
  ScoreSettings settings;       // samples, layer_samples, seq_len, seed, aggregations, dtype
  at::Device device = at::kCPU;
  int64_t micro_batch = 4;
  int64_t stream_windows = 32;  // --stream: windows advanced through each layer load (calibration;
                                // layer removal reads the layers once per micro-batch)
  bool quiet = false;
};

struct ScoreResult {
  Importance importance;
  double seconds = 0.0;
  std::optional<int64_t> peak_device_bytes;  // CUDA only
};

ScoreResult score_model(const ScoreOptions& opt);

}  // namespace mp
