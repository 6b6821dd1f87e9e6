// Checkpoint folders: one model.safetensors, or shards listed by model.safetensors.index.json
// (transformers' layout). When both are present the index wins, as in transformers.
// Invariant after the constructor: every tensor name maps to exactly one open, validated file.
#include "model/checkpoint_io.h"

#include "common/atomic_output.h"
#include "common/error.h"
#include "model/shard_index.h"

#include <c10/core/ScalarType.h>
#include <nlohmann/json.hpp>

#include <cctype>
#include <filesystem>
#include <set>

namespace fs = std::filesystem;

namespace mp {
namespace {

using json = nlohmann::json;

constexpr const char* kSingleName = "model.safetensors";
constexpr const char* kIndexName = "model.safetensors.index.json";

std::string join_path(const std::string& dir, const std::string& name) { return (fs::path(dir) / name).string(); }

// Same set write_safetensors accepts; checked up front so a refused tensor leaves no shard behind.
bool writable(at::ScalarType s) {
  switch (s) {
    case at::kBool: case at::kByte: case at::kChar: case at::kShort: case at::kHalf:
    case at::kBFloat16: case at::kInt: case at::kFloat: case at::kLong: case at::kDouble:
      return true;
    default:
      return false;
  }
}

}  // namespace

CheckpointReader::CheckpointReader(const std::string& dir) : dir_(dir) {
  if (!fs::exists(dir_)) fail_input("{}: checkpoint folder not found", dir_);
  if (!fs::is_directory(dir_)) fail_input("{}: is not a folder; expected a checkpoint folder", dir_);
  const std::string index_path = join_path(dir_, kIndexName);
  const std::string single_path = join_path(dir_, kSingleName);

  if (!fs::exists(index_path)) {
    if (!fs::exists(single_path))
      fail_input("{}: no {} or {} in the checkpoint folder", dir_, kSingleName, kIndexName);
    files_.push_back(SafetensorsFile::open(single_path));
    for (const StTensorInfo& t : files_[0]->tensors()) where_[t.name] = 0;
    return;
  }

  const ShardIndex index = read_shard_index(index_path);
  for (size_t k = 0; k < index.shards.size(); ++k) {
    const std::string& shard = index.shards[k];
    const std::string shard_path = join_path(dir_, shard);
    if (!fs::exists(shard_path) && !fs::is_symlink(shard_path)) {
      std::string tensor;
      for (const auto& [name, where] : index.weight_map)
        if (where == k && tensor.empty()) tensor = name;
      fail_input("{}: shard '{}' (named for tensor '{}') not found in {}", index_path, shard, tensor, dir_);
    }
    files_.push_back(SafetensorsFile::open(shard_path));
  }

  // Every tensor of every shard belongs to exactly one shard.
  for (size_t i = 0; i < files_.size(); ++i) {
    for (const StTensorInfo& t : files_[i]->tensors()) {
      auto [pos, inserted] = where_.emplace(t.name, i);
      if (!inserted)
        fail_input("{}: tensor '{}' appears in two shards, '{}' and '{}'", index_path, t.name,
                   index.shards[pos->second], index.shards[i]);
    }
  }
  // Every mapped tensor is in the shard it is mapped to.
  for (const auto& [name, k] : index.weight_map)
    if (!files_[k]->find(name))
      fail_input("{}: tensor '{}' is mapped to shard '{}', which does not contain it", index_path, name,
                 index.shards[k]);
}

std::vector<std::string> CheckpointReader::names() const {
  std::vector<std::string> out;
  out.reserve(where_.size());
  for (const auto& kv : where_) out.push_back(kv.first);
  return out;
}

bool CheckpointReader::has(const std::string& name) const { return where_.count(name) != 0; }

const StTensorInfo& CheckpointReader::info(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) fail_input("{}: tensor '{}' not found in the checkpoint", dir_, name);
  return *files_[it->second]->find(name);
}

at::Tensor CheckpointReader::load(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) fail_input("{}: tensor '{}' not found in the checkpoint", dir_, name);
  return files_[it->second]->load(name);
}

at::Tensor CheckpointReader::load_range(const std::string& name, int64_t begin, int64_t end) const {
  auto it = where_.find(name);
  if (it == where_.end()) fail_input("{}: tensor '{}' not found in the checkpoint", dir_, name);
  return files_[it->second]->load_range(name, begin, end);
}

uint64_t CheckpointReader::total_bytes() const {
  uint64_t total = 0;
  for (const auto& f : files_)
    for (const StTensorInfo& t : f->tensors()) total += t.end - t.begin;
  return total;
}

void write_checkpoint_tensors_streaming(const std::string& dir, const std::vector<StTensorSpec>& specs,
                                        uint64_t max_shard_bytes,
                                        const std::function<at::Tensor(size_t index)>& produce) {
  if (!fs::is_directory(dir)) fail_input("{}: output folder does not exist", dir);
  std::set<std::string> seen;
  std::vector<uint64_t> sizes;
  uint64_t total = 0;
  for (const StTensorSpec& s : specs) {
    if (!seen.insert(s.name).second) fail_input("{}: tensor '{}' given twice; names must be unique", dir, s.name);
    uint64_t bytes = static_cast<uint64_t>(st_dtype_size(s.dtype));
    for (int64_t d : s.shape) bytes *= static_cast<uint64_t>(d);
    sizes.push_back(bytes);
    total += bytes;
  }
  auto write_file = [&](const std::string& file, size_t first, size_t last) {
    SafetensorsWriter w(join_path(dir, file), std::vector<StTensorSpec>(specs.begin() + first, specs.begin() + last));
    for (size_t i = first; i < last; ++i) w.write(produce(i));
    w.finish();
  };

  if (max_shard_bytes == 0 || total <= max_shard_bytes) {
    write_file(kSingleName, 0, specs.size());
    return;
  }

  // Greedy in the given order, as transformers does: start a new shard when the next tensor
  // would push the current one past the limit (a tensor above the limit sits alone).
  std::vector<size_t> starts = {0};  // first tensor of each shard
  uint64_t current = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    if (i > starts.back() && current + sizes[i] > max_shard_bytes) {
      starts.push_back(i);
      current = 0;
    }
    current += sizes[i];
  }
  starts.push_back(specs.size());

  json weight_map = json::object();
  const size_t n = starts.size() - 1;
  for (size_t s = 0; s < n; ++s) {
    const std::string file = fmt::format("model-{:05d}-of-{:05d}.safetensors", s + 1, n);
    write_file(file, starts[s], starts[s + 1]);
    for (size_t i = starts[s]; i < starts[s + 1]; ++i) weight_map[specs[i].name] = file;
  }
  json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  write_file_atomic(join_path(dir, kIndexName), index.dump(2) + "\n");  // last: shards exist before it
}

void write_checkpoint_tensors(const std::string& dir, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                              uint64_t max_shard_bytes) {
  if (!fs::is_directory(dir)) fail_input("{}: output folder does not exist", dir);
  std::vector<StTensorSpec> specs;
  for (const auto& [name, t] : tensors) {
    if (!t.defined()) fail_input("{}: tensor '{}' is undefined", dir, name);
    StDType d;
    if (!st_dtype_from_scalar_type(t.scalar_type(), &d))
      fail_input("{}: tensor '{}': dtype {} cannot be written to safetensors", dir, name,
                 c10::toString(t.scalar_type()));
    specs.push_back({name, d, std::vector<int64_t>(t.sizes().begin(), t.sizes().end())});
  }
  write_checkpoint_tensors_streaming(dir, specs, max_shard_bytes, [&](size_t i) { return tensors[i].second; });
}

uint64_t parse_byte_size(const std::string& text) {
  size_t i = 0, n = text.size();
  while (i < n && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  while (n > i && std::isspace(static_cast<unsigned char>(text[n - 1]))) --n;
  const std::string s = text.substr(i, n - i);

  // Number: digits, optionally '.' and more digits; kept exact as integer / 10^frac_digits.
  size_t p = 0;
  unsigned __int128 mantissa = 0;
  int frac_digits = 0, digits = 0;
  bool dot = false;
  for (; p < s.size(); ++p) {
    char c = s[p];
    if (c == '.' && !dot) {
      dot = true;
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      if (digits >= 20) fail_input("'{}': size has too many digits", text);
      mantissa = mantissa * 10 + static_cast<unsigned>(c - '0');
      ++digits;
      if (dot) ++frac_digits;
    } else {
      break;
    }
  }
  if (digits == 0)
    fail_input("'{}': expected a size such as 5GB, 500MB, 1.5GiB or a plain number of bytes", text);

  std::string unit = s.substr(p);
  while (!unit.empty() && unit.front() == ' ') unit.erase(unit.begin());
  for (char& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  static const std::map<std::string, uint64_t> kUnits = {
      {"", 1},
      {"B", 1},
      {"KB", 1000ULL},
      {"MB", 1000ULL * 1000},
      {"GB", 1000ULL * 1000 * 1000},
      {"TB", 1000ULL * 1000 * 1000 * 1000},
      {"KIB", 1ULL << 10},
      {"MIB", 1ULL << 20},
      {"GIB", 1ULL << 30},
      {"TIB", 1ULL << 40},
  };
  auto u = kUnits.find(unit);
  if (u == kUnits.end())
    fail_input("'{}': unknown unit '{}' (expected B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)", text, s.substr(p));

  unsigned __int128 value = mantissa * u->second;
  for (int k = 0; k < frac_digits; ++k) value /= 10;  // rounds down to whole bytes
  if (value > static_cast<unsigned __int128>(UINT64_MAX)) fail_input("'{}': size too large", text);
  return static_cast<uint64_t>(value);
}

}  // namespace mp
