#include "model/companion_files.h"

#include "common/atomic_output.h"
#include "common/error.h"

#include <algorithm>
#include <array>
#include <filesystem>
#include <system_error>

namespace fs = std::filesystem;

namespace mp {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_weight_file(const std::string& name) {
  static const std::array<const char*, 10> kWeightSuffixes = {
      ".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".gguf", ".onnx", ".index.json"};
  for (const char* s : kWeightSuffixes)
    if (ends_with(name, s)) return true;
  return false;
}

}  // namespace

std::vector<std::string> companion_files(const std::string& dir) {
  std::vector<std::string> names;
  if (dir.empty()) return names;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return names;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name[0] == '.' || name == "config.json" || is_weight_file(name)) continue;
    std::error_code st;
    if (!fs::is_regular_file(entry.path(), st)) continue;  // follows links; skips folders, pipes, devices
    names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> copy_companion_files(const std::string& from, const std::string& to) {
  std::vector<std::string> copied;
  for (const std::string& name : companion_files(from)) {
    const std::string target = to + "/" + name;
    std::error_code ec;
    if (fs::exists(target, ec)) continue;
    write_file_atomic(target, read_file(from + "/" + name));
    copied.push_back(name);
  }
  return copied;
}

}  // namespace mp
