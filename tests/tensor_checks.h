// Tensor comparisons shared by the tests that link LibTorch.
#pragma once

#include <ATen/ATen.h>

#include <cmath>

namespace mp::test {

// ||a - ref|| / ||ref|| in float64 on the CPU. A non-finite `a` never passes (infinity), and an
// exactly-zero reference is compared absolutely.
inline double rel_err(const at::Tensor& a, const at::Tensor& ref) {
  const at::Tensor d = a.cpu().to(at::kDouble), r = ref.cpu().to(at::kDouble);
  if (!at::isfinite(d).all().item<bool>()) return INFINITY;
  const double rn = r.norm().item<double>();
  return (d - r).norm().item<double>() / (rn > 0 ? rn : 1.0);
}

}  // namespace mp::test
