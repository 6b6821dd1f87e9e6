#include "model/shard_index.h"

#include "common/error.h"
#include "common/input_file.h"
#include "common/json_file.h"

#include <nlohmann/json.hpp>

#include <map>

namespace mp {
namespace {

void check_shard_name(const std::string& source, const std::string& tensor, const std::string& shard) {
  if (shard.empty() || shard == "." || shard == ".." || shard.find('/') != std::string::npos ||
      shard.find('\\') != std::string::npos || shard.find('\0') != std::string::npos)
    fail_input("{}: weight_map entry for tensor '{}' names shard '{}'; expected a plain file name inside the "
               "checkpoint folder (no folders, no '..', not absolute)",
               source, tensor, shard);
}

}  // namespace

ShardIndex shard_index_from_json(const nlohmann::json& index, const std::string& source) {
  if (!index.is_object()) fail_input("{}: expected a JSON object, found {}", source, index.type_name());
  auto wm = index.find("weight_map");
  if (wm == index.end() || !wm->is_object())
    fail_input("{}: missing \"weight_map\" object (tensor name -> shard file)", source);
  ShardIndex out;
  std::map<std::string, size_t> position;
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it->is_string())
      fail_input("{}: weight_map entry for tensor '{}' is {}, expected a shard file name", source, it.key(),
                 it->type_name());
    const std::string& shard = it->get_ref<const std::string&>();
    auto [pos, added] = position.emplace(shard, out.shards.size());
    if (added) {
      check_shard_name(source, it.key(), shard);
      out.shards.push_back(shard);
    }
    out.weight_map.emplace_back(it.key(), pos->second);
  }
  return out;
}

ShardIndex shard_index_from_json_text(const std::string& text, const std::string& source) {
  return shard_index_from_json(parse_json_text(text, source), source);
}

ShardIndex read_shard_index(const std::string& path) {
  return shard_index_from_json_text(read_regular_file(path, JsonLimits{}.max_bytes, "JSON"), path);
}

}  // namespace mp
