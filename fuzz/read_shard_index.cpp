#include "fuzz/format_readers.h"

#include "model/shard_index.h"

namespace mp::fuzz {

void read_shard_index(const uint8_t* data, size_t size) {
  const ShardIndex ix = shard_index_from_json_text(text_of(data, size), "model.safetensors.index.json");
  for (const auto& [tensor, k] : ix.weight_map) {
    require(k < ix.shards.size(), "tensor '" + tensor + "' maps past the shard list");
    const std::string& s = ix.shards[k];
    require(!s.empty() && s != "." && s != ".." && s.find('/') == std::string::npos &&
                s.find('\\') == std::string::npos && s.find('\0') == std::string::npos,
            "shard name leaves the folder");
  }
}

}  // namespace mp::fuzz
