// What the benchmarks share: random models built on the device, the card's measured matmul rate.
#pragma once

#include "model/model.h"
#include "model/weights.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <vector>
#include <string>

namespace mp::bench {

// Random weights made directly on the device with the model's own initialisation
// (make_random_model): a 100 GB model need not touch the disk or the host.
inline Model random_model_on(const ModelConfig& c, at::Device dev, at::ScalarType dt, uint64_t seed = 0) {
  return make_random_model(c, seed, dt, dev);
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
