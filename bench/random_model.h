// Random weights built directly on the device, for benchmarks: a 100 GB model need not touch the
// disk or the host. Distributions as model/weights' init_weights (norms 1, A = -[1..H], dt near
// 0.01, projections N(0, initializer_range)), so activations stay in a realistic range.
#pragma once

#include "model/model.h"
#include "model/weights.h"

#include <ATen/ATen.h>

#include <cstring>
#include <string>

namespace mp::bench {

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

}  // namespace mp::bench
