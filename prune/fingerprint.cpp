#include "prune/fingerprint.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <vector>

namespace mp {

uint64_t fnv1a64(const void* data, size_t bytes, uint64_t h) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < bytes; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

uint64_t tensor_fingerprint(const std::string& name, const at::Tensor& t) {
  uint64_t h = fnv1a64(name.data(), name.size());
  for (int64_t s : t.sizes()) h = fnv1a64(&s, sizeof s, h);
  const int64_t n = t.numel(), k = std::min<int64_t>(n, 64);
  if (k == 0) return h;
  std::vector<int64_t> pos(k);
  for (int64_t i = 0; i < k; ++i) pos[i] = i * n / k;  // evenly spaced, first element included
  at::Tensor idx = at::tensor(pos, at::kLong).to(t.device());
  at::Tensor sample = t.reshape({-1}).index_select(0, idx).to(at::kFloat).to(at::kBFloat16).cpu().contiguous();
  return fnv1a64(sample.data_ptr(), static_cast<size_t>(k) * 2, h);
}

uint64_t combine_fingerprints(const std::map<std::string, uint64_t>& per_tensor) {
  uint64_t h = fnv1a64("minipuzzle-weights", 18);
  for (const auto& [name, f] : per_tensor) {
    h = fnv1a64(name.data(), name.size(), h);
    h = fnv1a64(&f, sizeof f, h);
  }
  return h;
}

uint64_t model_fingerprint(const std::map<std::string, at::Tensor>& weights) {
  std::map<std::string, uint64_t> per;
  for (const auto& [n, t] : weights) per[n] = tensor_fingerprint(n, t);
  return combine_fingerprints(per);
}

}  // namespace mp
