#include "distill/shard/shard_mode.h"

#include "common/error.h"

namespace mp::shard {

ShardMode parse_shard_mode(const std::string& name) {
  if (name == "none") return ShardMode::None;
  if (name == "optimizer") return ShardMode::Optimizer;
  if (name == "full") return ShardMode::Full;
  fail_usage("--shard: expected none, optimizer or full, got '{}'", name);
}

const char* shard_mode_name(ShardMode m) {
  switch (m) {
    case ShardMode::None: return "none";
    case ShardMode::Optimizer: return "optimizer";
    case ShardMode::Full: return "full";
  }
  return "?";
}

const std::vector<ShardMode>& all_shard_modes() {
  static const std::vector<ShardMode> modes = {ShardMode::None, ShardMode::Optimizer, ShardMode::Full};
  return modes;
}

}  // namespace mp::shard
