// What the benchmarks share: random models built on the device, the card's measured matmul rate.
#pragma once

#include "model/model.h"
#include "model/weights.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>
#include <string>

namespace mp::bench {

// Random weights built directly on the device: a 100 GB model need not touch the disk or the
// host. Distributions as model/weights' init_weights (norms 1, A = -[1..H], dt near 0.01,
// projections N(0, initializer_range)), so activations stay in a realistic range.
inline Model random_model_on(const ModelConfig& c, at::Device dev, at::ScalarType dt, uint64_t seed = 0) {
  Model m;
  m.config = c;
  at::manual_seed(seed);
  auto opts = at::TensorOptions().device(dev).dtype(at::kFloat);
  for (const TensorSpec& s : expected_tensors(c)) {
    const std::string& n = s.name;
    auto ends = [&](const char* suf) {
      return n.size() >= strlen(suf) && n.compare(n.size() - strlen(suf), strlen(suf), suf) == 0;
    };
    at::Tensor t;
    if (ends("norm.weight") || ends("norm_f.weight") || ends("mixer.D")) t = at::ones(s.shape, opts);
    else if (ends("mixer.A_log")) t = at::log(at::arange(1, c.mamba_num_heads + 1, opts));
    else if (ends("mixer.dt_bias")) t = at::log(at::expm1(at::full(s.shape, 0.01, opts)));
    else t = at::randn(s.shape, opts) * c.initializer_range;
    m.weights[n] = t.to(dt);
  }
  return m;
}

// bf16 n x n x n matmul rate in TFLOP/s (median of `reps` runs of 10), the denominator of every
// roofline and MFU figure, measured in the same run on the same card.
inline double measure_matmul_tflops(at::Device dev, int64_t n = 8192, int reps = 5) {
  auto opts = at::TensorOptions().device(dev).dtype(at::kBFloat16);
  at::Tensor a = at::randn({n, n}, opts), b = at::randn({n, n}, opts);
  at::Tensor c = at::matmul(a, b);
  c.sum().item<float>();
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 10; ++i) c = at::matmul(a, b);
    c.sum().item<float>();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / 10);
  }
  std::sort(t.begin(), t.end());
  return 2.0 * n * n * n / t[t.size() / 2] / 1e12;
}

}  // namespace mp::bench
