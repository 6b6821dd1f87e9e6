#include "distill/schedule.h"

#include <algorithm>
#include <cmath>

namespace mp {

double LrSchedule::at(int64_t step) const {
  if (step < warmup) return lr * static_cast<double>(step + 1) / static_cast<double>(warmup);
  const double span = static_cast<double>(std::max<int64_t>(1, total - warmup));
  const double q = std::min(1.0, static_cast<double>(step - warmup) / span);
  return min_lr + (lr - min_lr) * 0.5 * (1.0 + std::cos(M_PI * q));
}

}  // namespace mp
