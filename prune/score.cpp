#include "prune/score.h"

#include "common/error.h"
#include "common/progress.h"
#include "data/sampler.h"
#include "prune/calibration.h"
#include "model/device_memory.h"
#include "prune/layer_importance.h"
#include "prune/layer_source.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <iostream>

namespace mp {
namespace {

// An importance file holds numbers only: a score that is not finite (the model without some layer
// overflows in the compute dtype) stops the run with one line instead of being written.
void check_finite_scores(const LayerDropScores& d, const std::string& dtype) {
  if (!std::isfinite(d.full_loss))
    fail_runtime("layer removal: the full model's loss is {} ({} activations overflow?); nothing was written",
                 d.full_loss, dtype);
  const std::pair<const char*, const std::vector<double>*> metrics[] = {
      {"mse_hidden", &d.mse_hidden}, {"mse_normed", &d.mse_normed}, {"kl", &d.kl},
      {"loss_delta", &d.loss_delta}, {"agreement", &d.agreement}};
  for (const auto& [name, v] : metrics)
    for (size_t i = 0; i < v->size(); ++i)
      if (!std::isfinite((*v)[i]))
        fail_runtime("layer removal: layer {}'s {} is {} (the model without it overflows in {}?); nothing was written",
                     i, name, (*v)[i], dtype);
}

}  // namespace

ScoreResult score_model(const ScoreOptions& opt) {
  const auto start = std::chrono::steady_clock::now();
  ScoreSettings s = opt.settings;
  const at::ScalarType dtype = parse_dtype(s.dtype);
  reset_peak_memory(opt.device);
  Model loaded;
  std::unique_ptr<LayerSource> src;
  if (s.stream) {
    src = streaming_source(opt.model, opt.device, dtype);
  } else {
    LoadOptions lo;
    lo.device = opt.device;
    lo.dtype = dtype;
    loaded = load_model(opt.model, lo);
    src = memory_source(loaded);
  }
  const ModelConfig& c = src->config();
  WindowSampler sampler(IndexedDataset::open(opt.data), s.seq_len, s.seed, c.vocab_size);
  if (sampler.num_windows() < s.samples) {
    if (!opt.quiet)
      std::cerr << fmt::format("score: {} holds only {} windows of {} tokens; using {} instead of {}\n", opt.data,
                               sampler.num_windows(), s.seq_len, sampler.num_windows(), s.samples);
    s.samples = sampler.num_windows();
  }
  s.layer_samples = std::min(s.layer_samples, s.samples);
  s.data = opt.data;
  at::Tensor windows = sampler.fixed_windows(s.samples);

  CalibrationOptions co;
  co.seq = parse_seq_agg(s.aggregate_seq);
  co.batch = parse_batch_agg(s.aggregate_batch);
  co.micro_batch = opt.micro_batch;
  co.windows_per_pass = s.stream ? opt.stream_windows : 0;
  Progress p1("calibration", s.samples, "win", opt.quiet);
  co.on_windows = [&](int64_t k) { p1.advance(k); };
  CalibrationScores cal = calibrate(*src, windows, co);
  p1.finish();

  LayerImportanceOptions lo;
  lo.micro_batch = opt.micro_batch;
  // Layer removal keeps one stream per layer for each window of a pass, so passes stay one
  // micro-batch wide even when streaming (the layers are then read once per micro-batch).
  lo.windows_per_pass = 0;
  Progress p2("layer removal", s.layer_samples, "win", opt.quiet);
  lo.on_windows = [&](int64_t k) { p2.advance(k); };
  LayerDropScores drops = layer_importance(*src, windows.narrow(0, 0, s.layer_samples), lo);
  p2.finish();
  check_finite_scores(drops, s.dtype);

  ScoreResult r;
  r.importance = make_importance(c, src->fingerprint(), s, cal, drops);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.peak_device_bytes = peak_memory_bytes(opt.device);
  return r;
}

}  // namespace mp
