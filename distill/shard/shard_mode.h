// What `--shard` spreads across the ranks of a data-parallel run.
//   none      every rank holds the whole model, its fp32 masters and AdamW moments (DDP)
//   optimizer masters, moments and gradients sharded; compute weights whole (ZeRO-1/2)
//   full      compute weights sharded too, gathered one unit at a time (ZeRO-3 / FSDP)
#pragma once

#include <string>
#include <vector>

namespace mp::shard {

enum class ShardMode { None, Optimizer, Full };
ShardMode parse_shard_mode(const std::string& name);  // "none", "optimizer", "full"; usage error otherwise
const char* shard_mode_name(ShardMode m);
const std::vector<ShardMode>& all_shard_modes();  // none, optimizer, full

}  // namespace mp::shard
