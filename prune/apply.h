// Applying a pruning plan to weights: the one function prune, search's candidate evaluation and
// the tests share. Every tensor is sliced with the plan's (ascending) kept indices:
//   hidden d     embedding / lm_head columns, every norm weight, every projection's d side
//   MLP          up_proj rows, down_proj columns
//   attention    q_proj rows and o_proj columns of the kept query heads; k/v untouched (all kv heads
//                stay; each kv group keeps the same number of query heads, so head j of the child
//                still reads kv head j / (Hq'/Hkv))
//   Mamba        in_proj rows of z and x (kept heads x kept channels) and dt (kept heads); the B and
//                C rows and the state size stay; conv1d weight/bias x channels (B, C channels stay);
//                A_log, D, dt_bias per head; the gated norm weight like z; out_proj columns like x.
//                Heads keep their groups: every group keeps the same number of heads, so child head
//                j reads group j / (H'/G), and the gated norm's G contiguous groups of I'/G channels
//                are exactly the kept heads of each group (the group count stays, its size shrinks).
// Layers not kept are removed and the rest renumbered in order.
#pragma once

#include "model/model.h"
#include "prune/plan.h"

namespace mp {

Model apply_plan(const Model& parent, const PruningPlan& plan);
// The same, releasing each parent tensor once it is sliced: peak memory is the child plus one
// layer instead of parent plus child (for pruning checkpoints that barely fit in host memory).
Model apply_plan_consuming(Model&& parent, const PruningPlan& plan);

}  // namespace mp
