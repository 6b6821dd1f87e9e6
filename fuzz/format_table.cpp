#include "fuzz/format_readers.h"

namespace mp::fuzz {

const std::vector<Format>& formats() {
  static const std::vector<Format> table = {
      {"safetensors", read_safetensors}, {"config", read_config},   {"shard_index", read_shard_index},
      {"megatron_idx", read_megatron_idx}, {"importance", read_importance}, {"shape", read_shape},
      {"recipe", read_recipe},           {"budget", read_budget},   {"tokenizer", read_tokenizer},
      {"task", read_task}};
  return table;
}

}  // namespace mp::fuzz
