#include "model/model_folder.h"

#include "common/error.h"

#include <ATen/ATen.h>

#include <filesystem>
#include <set>

namespace mp {

// Checked in slices while the data is still in the CPU cache after its copy out of the file (one
// extra read pass; the temporary is at most 16 MB).
bool all_finite(const at::Tensor& t) {
  if (!c10::isFloatingType(t.scalar_type())) return true;
  const at::Tensor flat = t.reshape({-1});
  const int64_t n = flat.numel();
  constexpr int64_t kSlice = int64_t{1} << 24;
  for (int64_t i = 0; i < n; i += kSlice)
    if (!at::isfinite(flat.slice(0, i, std::min(n, i + kSlice))).all().item<bool>()) return false;
  return true;
}

ModelFolder::ModelFolder(const std::string& dir) : dir_(dir) {
  if (!std::filesystem::is_directory(dir)) fail_input("{}: checkpoint folder not found", dir);
  config_ = load_config(dir);
  reader_ = std::make_unique<CheckpointReader>(dir);
  for (const std::string& n : reader_->names()) {
    std::string c = canonical_tensor_name(n);
    if (c.rfind("mtp.", 0) == 0) continue;  // multi-token-prediction heads: not part of the model
    if (!stored_.emplace(c, n).second)
      fail_input("{}: tensor '{}' is stored twice (as '{}' and '{}')", dir, c, stored_[c], n);
  }
  tensors_ = expected_tensors(config_);
  std::set<std::string> expected;
  for (const TensorSpec& spec : tensors_) {
    expected.insert(spec.name);
    auto it = stored_.find(spec.name);
    if (it == stored_.end())
      fail_input("{}: tensor '{}' is missing; config.json ({} layers, pattern {}) implies it with shape {}", dir,
                 spec.name, config_.num_layers(), config_.pattern(), shape_string(spec.shape));
    const StTensorInfo& info = reader_->info(it->second);
    if (info.shape != spec.shape)
      fail_input("{}: tensor '{}' has shape {}, config.json implies {}", dir, it->second, shape_string(info.shape),
                 shape_string(spec.shape));
    if (info.dtype != StDType::F32 && info.dtype != StDType::BF16 && info.dtype != StDType::F16)
      fail_input("{}: tensor '{}' has dtype {}; model weights must be F32, BF16 or F16", dir, it->second,
                 st_dtype_name(info.dtype));
  }
  for (const auto& [canon, stored] : stored_)
    if (!expected.count(canon))
      fail_input("{}: unexpected tensor '{}' (not implied by config.json, pattern {})", dir, stored, config_.pattern());
}

const std::string& ModelFolder::stored_name(const std::string& name) const {
  auto it = stored_.find(name);
  if (it == stored_.end()) fail_runtime("{}: no tensor '{}' in the model", dir_, name);
  return it->second;
}

StDType ModelFolder::stored_dtype(const std::string& name) const { return reader_->info(stored_name(name)).dtype; }

at::Tensor ModelFolder::read(const std::string& name) const {
  at::Tensor t = reader_->load(stored_name(name));
  if (!all_finite(t))
    fail_input("{}: tensor '{}' holds NaN or infinite values; the checkpoint is damaged", dir_, stored_name(name));
  return t;
}

at::Tensor ModelFolder::read_range(const std::string& name, int64_t begin, int64_t end) const {
  at::Tensor t = reader_->load_range(stored_name(name), begin, end);
  if (!all_finite(t))
    fail_input("{}: tensor '{}' holds NaN or infinite values; the checkpoint is damaged", dir_, stored_name(name));
  return t;
}

}  // namespace mp
