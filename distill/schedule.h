// Learning-rate schedule: linear warmup, then cosine decay from lr to min_lr.
//
// For the optimizer step with 0-based index s of `total` steps:
//   s <  warmup : lr * (s + 1) / warmup            (the first step already moves; the last
//                                                   warmup step reaches lr)
//   s >= warmup : min_lr + (lr - min_lr) * (1 + cos(pi * q)) / 2,
//                 q = (s - warmup) / max(1, total - warmup)  in [0, 1)
// so the first post-warmup step uses lr and the schedule approaches min_lr at the end.
// Pure arithmetic: the same value on every machine, so resume needs only the step index.
#pragma once

#include <cstdint>

namespace mp {

struct LrSchedule {
  double lr = 1e-4, min_lr = 1e-5;
  int64_t warmup = 0, total = 1;
  double at(int64_t step) const;
};

}  // namespace mp
