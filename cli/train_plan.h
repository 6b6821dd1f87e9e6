// `train --plan` / `distill --plan` (cmd_train_plan.cpp): the memory plan as a table or JSON, and
// the card a run is planned against.
#pragma once

#include "distill/memory_check.h"

#include <cstdint>
#include <optional>
#include <string>

namespace mp::cli {

// --gpu-memory SIZE when given (the card's total); else, for a CUDA device, its free memory (rank
// r of a launched job reads cuda:LOCAL_RANK when the device is plain "cuda"); else nullopt.
std::optional<Card> run_card(const std::string& gpu_memory, const std::string& device, int64_t local_rank);

void print_train_plan(const JobPlan& p, bool json);

}  // namespace mp::cli
