// model.safetensors.index.json: which shard file of a sharded checkpoint holds each tensor
// (transformers' layout: {"metadata": {...}, "weight_map": {"tensor name": "shard file name"}}).
// Reading it needs no LibTorch. A shard must be a plain file name inside the checkpoint folder:
// no folder part, no "..", not absolute, so an index can never point the reader elsewhere.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace mp {

struct ShardIndex {
  std::vector<std::string> shards;                          // file names, in order of first mention
  std::vector<std::pair<std::string, size_t>> weight_map;  // tensor name -> index into shards
};

// Bad input naming `source` and the tensor: not an object, no "weight_map" object, an entry that
// is not a string, a shard name that is not a plain file name.
ShardIndex shard_index_from_json(const nlohmann::json& j, const std::string& source);
// The text of an index (bounded like every JSON the tool reads, common/json_file.h), and a file.
ShardIndex shard_index_from_json_text(const std::string& text, const std::string& source);
ShardIndex read_shard_index(const std::string& path);

}  // namespace mp
